"""Launchers: starting, watching, signalling and sampling a worker on a host.

A launcher starts a named worker and gives back a ``Handle``; everything the supervisor, ``ps``
and ``kill-worker`` do to a worker goes through its handle, so a launcher for another kind of
host (ssh, slurm) is one new pair of classes. Every handle offers:

* ``worker``, ``incarnation``, ``host``, ``pid``: who it is and where;
* ``exit_fd()``: a new file descriptor that becomes readable when the worker ends, to sit in
  the supervisor's poller beside its sockets (``None``: none here, look every ``POLL_MS``);
* ``poll()`` / ``returncode``: its exit status once it ended (``-N`` for signal N);
* ``signal(sig)``: deliver a signal; False when the worker is already gone;
* ``sample()``: its memory (RSS, peak) and CPU seconds so far, ``None`` once it is gone;
* ``stopped()``: whether it is stopped right now (SIGSTOP), alive but running nothing;
* ``record()``: what the registry keeps, from which ``handle_from_record`` rebuilds a handle
  in another process (it can signal and sample, not wait).

``spawn`` and ``spare`` take the ``host`` the placement gives (``placement.py``; None: this
one), and ``Launcher.for_run`` makes the launcher a run's ``cluster.launcher`` names. Warm
spares: ``Launcher.spare(name)`` starts a worker (``standby-N``) that imports everything and
waits; ``Launcher.adopt(spare, name, incarnation)`` gives it a slot (``None`` if it has
died).

``local`` is a child process on this host: ``python -m streamlec_cli worker ...`` in its own
session (a terminal's Ctrl-C reaches only the supervisor), one BLAS thread, its output in
``logs/<worker>.log``; its exit is seen through a pidfd (Linux 5.3 or later), its memory and
CPU read from ``/proc``. It dies with the supervisor (``worker.py`` asks for a parent-death
signal). Given an emulated cluster (``emulate.py``), it starts each worker inside the
worker's emulated host (its namespace and CPU group), still a child of the supervisor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from ..provenance import PACKAGE
from .emulate import CPU_GROUP_ENV
from .worker import SUPERVISOR_ENV

if TYPE_CHECKING:
    from ..spec import Spec
    from .emulate import EmulatedCluster

POLL_MS = 5  # without exit fds: how often the workers are looked at


@dataclass(frozen=True)
class Sample:
    rss_kb: int
    peak_kb: int
    cpu_s: float


class Handle(ABC):
    """One incarnation of one worker, wherever it runs."""

    kind: str  # the launcher's name, kept in the registry
    worker: str
    incarnation: int
    host: str
    pid: int

    @abstractmethod
    def exit_fd(self) -> int | None:
        """A new fd, readable once the worker ended (the caller closes it); None: unsupported.

        Raises ``ProcessLookupError`` when the worker is already gone and reaped."""

    @abstractmethod
    def poll(self) -> int | None:
        """The exit status if the worker ended (negative: killed by that signal), else None."""

    @property
    def returncode(self) -> int | None:
        return self.poll()

    @abstractmethod
    def signal(self, sig: int) -> bool:
        """Send ``sig``; False if the worker is already gone."""

    @abstractmethod
    def sample(self) -> Sample | None:
        """Memory and CPU time so far; None once the worker is gone."""

    def stopped(self) -> bool:
        """Whether the worker is stopped (SIGSTOP) right now; False where it cannot be seen."""
        return False

    def record(self) -> dict:
        """The registry's entry (``state`` is added by whoever writes the registry)."""
        return {
            "launcher": self.kind,
            "host": self.host,
            "pid": self.pid,
            "incarnation": self.incarnation,
        }


class Launcher(ABC):
    """Starts workers of one run; see the module docstring."""

    kind: str

    @classmethod
    def for_run(cls, spec: Spec, run_dir: Path, cluster: EmulatedCluster | None) -> Launcher:
        """The launcher of one run (its resolved spec is ``run_dir/spec.yaml``); ``cluster``:
        the emulated hosts, when the spec asks for them."""
        return cls(run_dir, run_dir / "spec.yaml")  # type: ignore[call-arg]

    @classmethod
    def hosts_for(cls, spec: Spec) -> tuple[str, ...]:
        """The hosts a run of ``spec`` places its workers on when its ``cluster.hosts`` names
        none (a launcher that knows them, as Slurm knows its allocation, says so here)."""
        return () if spec.cluster is None else spec.cluster.hosts

    @abstractmethod
    def spawn(self, name: str, incarnation: int, host: str | None = None) -> Handle:
        """Start worker ``name`` as incarnation ``incarnation`` on ``host`` (None: this one)."""

    @abstractmethod
    def spare(self, name: str, host: str | None = None) -> Handle:
        """Start warm spare ``name`` on ``host``: a processor-to-be, imported and waiting for
        its slot."""

    @abstractmethod
    def adopt(self, spare: Handle, name: str, incarnation: int) -> Handle | None:
        """The spare becomes ``name``'s incarnation ``incarnation``; None if it is gone."""

    @abstractmethod
    def dismiss(self, spare: Handle) -> None:
        """Tell a spare that no slot will come (it ends by itself)."""

    @abstractmethod
    def machine_ticks(self) -> tuple[int, int]:
        """(idle, total) CPU time of the workers' machine so far, in clock ticks."""

    @classmethod
    @abstractmethod
    def handle(cls, worker: str, record: dict) -> Handle:
        """A handle rebuilt from a registry entry written by another process."""

    def finish(self) -> None:  # noqa: B027 - most launchers have nothing to bring back
        """After the last worker ended: bring back what the workers wrote elsewhere."""

    def peer_addresses(self) -> dict[str, str]:
        """Where the workers reach each host of the run and the supervisor, for hosts whose
        names alone do not say it (written to the run directory, ``plan.ADDRESSES_FILE``);
        empty: the names are the addresses."""
        return {}

    def clock_offset(self, host: str) -> tuple[float, float] | None:
        """How far ``host``'s wall clock is ahead of this one's (seconds) and the round trip
        that bounds the error; None when ``host`` reads this machine's clock."""
        return None


def best_offset(read_clock: Callable[[], float], tries: int = 3) -> tuple[float, float]:
    """How far another host's wall clock is ahead of this one's, in seconds, and the round
    trip that bounds the error, the best of ``tries`` (``read_clock`` asks the host for its
    time): the host's time is taken as read halfway through the round trip."""
    best: tuple[float, float] | None = None
    for _ in range(tries):
        began = time.time()
        there = read_clock()
        ended = time.time()
        if best is None or ended - began < best[1]:
            best = (there - (began + ended) / 2, ended - began)
    assert best is not None
    return best


def give_slot(
    spare: subprocess.Popen, name: str, incarnation: int, keep_open: bool = False
) -> bool:
    """Tell a waiting spare the slot it takes: one line ``"<worker> <incarnation>"`` on its
    standard input, then closed (``keep_open``: flushed, where the pipe is its lifeline).
    False when it has ended or cannot be told."""
    if spare.poll() is not None or spare.stdin is None:
        return False
    try:
        spare.stdin.write(f"{name} {incarnation}\n".encode())
        if keep_open:
            spare.stdin.flush()
        else:
            spare.stdin.close()
    except OSError:
        return False
    return True


def no_slot(spare: subprocess.Popen) -> None:
    """Tell a waiting spare that no slot will come: its standard input ends."""
    if spare.stdin is not None:
        with contextlib.suppress(OSError):
            spare.stdin.close()


def route_source(targets: Iterable[str]) -> str | None:
    """The address of this host that the kernel sends from to reach every one of
    ``targets`` (names or addresses), when it is one and the same for all; None when one does
    not resolve or they are reached from different addresses. Nothing is sent: a UDP socket
    is only connected, which looks the route up."""
    found = set()
    for target in targets:
        try:
            (*_, where), *_ = socket.getaddrinfo(target, 9, socket.AF_INET, socket.SOCK_DGRAM)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect(where)
                found.add(probe.getsockname()[0])
        except OSError:
            return None
    return found.pop() if len(found) == 1 else None


def worker_command(spec_file: Path, run_dir: Path, name: str, incarnation: int | None) -> list[str]:
    """``streamlec worker`` for ``name`` with this interpreter (the same path on every host)."""
    argv = [sys.executable, "-m", "streamlec_cli", "worker", str(spec_file), name]
    argv += ["--run-dir", str(run_dir)]
    if incarnation is not None:
        argv += ["--incarnation", str(incarnation)]
    return argv


def worker_env(supervisor: str | None = None) -> dict[str, str]:
    """The environment of a worker: this one, with one BLAS thread, unbuffered output, the
    supervisor's pid (or ``supervisor``) and the supervisor's copy of the code."""
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"  # one core per worker: the workers are the parallelism
    env["PYTHONUNBUFFERED"] = "1"
    env[SUPERVISOR_ENV] = supervisor or str(os.getpid())
    # Workers run the supervisor's copy of the code, never a streamlec_cli that happens
    # to sit in the working directory (``python -m`` would put it first on the path);
    # when the supervisor's copy is the one in the working directory, they get that.
    env["PYTHONSAFEPATH"] = "1"
    if PACKAGE.parent == Path.cwd().resolve():
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PACKAGE.parent), env.get("PYTHONPATH")) if p
        )
    return env


# -- local: a child process on this host -------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


class LocalHandle(Handle):
    """A process on this host: a child of ours (``proc``), or one rebuilt from a record."""

    kind = "local"

    def __init__(
        self,
        worker: str,
        incarnation: int,
        pid: int,
        proc: subprocess.Popen | None = None,
        host: str | None = None,
    ) -> None:
        self.worker = worker
        self.incarnation = incarnation
        self.pid = pid
        self.host = host or socket.gethostname()
        self.proc = proc

    def exit_fd(self) -> int | None:
        if not hasattr(os, "pidfd_open"):
            return None
        try:
            return os.pidfd_open(self.pid)
        except ProcessLookupError:
            raise
        except OSError:  # a kernel before 5.3
            return None

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, sig: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            return False  # reaped: its pid may belong to another process by now
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def sample(self) -> Sample | None:
        rss = hwm = 0
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm = int(line.split()[1])
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        if not rss:  # a zombie: it has ended
            return None
        return Sample(rss, hwm, (int(fields[11]) + int(fields[12])) / _TICKS)

    def stopped(self) -> bool:
        """State ``T`` (stopped by a signal) or ``t`` (stopped by a tracer) in /proc."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state in ("T", "t")


class LocalLauncher(Launcher):
    """Workers as child processes of the supervisor, on this host."""

    kind = "local"

    def __init__(
        self, run_dir: Path, spec_file: Path, cluster: EmulatedCluster | None = None
    ) -> None:
        self.run_dir = Path(run_dir)
        self.spec_file = Path(spec_file)
        self.cluster = cluster  # emulated hosts to start the workers in, if any

    @classmethod
    def for_run(cls, spec: Spec, run_dir: Path, cluster: EmulatedCluster | None) -> Launcher:
        return cls(run_dir, run_dir / "spec.yaml", cluster)

    def worker_argv(self, name: str, incarnation: int | None) -> list[str]:
        return worker_command(self.spec_file, self.run_dir, name, incarnation)

    def start(
        self,
        name: str,
        incarnation: int,
        argv: list[str],
        stdin: bool = False,
        host: str | None = None,
    ) -> LocalHandle:
        """Run ``argv`` as worker ``name`` (the seam ``spawn`` and ``spare`` share; tests
        start any command through it). ``stdin``: keep a pipe to its standard input.
        ``host``: an emulated host of ``cluster`` to run it in."""
        env = worker_env()
        if host is not None and self.cluster is not None:  # its CPU quota once it has started
            argv = [*self.cluster.enter_argv(host, cpu=False), *argv]
            group = self.cluster.cgroup
            if group is not None:
                env[CPU_GROUP_ENV] = str(group / host)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "logs" / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        return LocalHandle(name, incarnation, proc.pid, proc, host if self.cluster else None)

    def spawn(self, name: str, incarnation: int, host: str | None = None) -> LocalHandle:
        return self.start(name, incarnation, self.worker_argv(name, incarnation), host=host)

    def spare(self, name: str, host: str | None = None) -> LocalHandle:
        return self.start(name, 0, self.worker_argv(name, None), stdin=True, host=host)

    def adopt(self, spare: Handle, name: str, incarnation: int) -> LocalHandle | None:
        assert isinstance(spare, LocalHandle) and spare.proc is not None
        if not give_slot(spare.proc, name, incarnation):
            return None
        return LocalHandle(name, incarnation, spare.pid, spare.proc, spare.host)

    def dismiss(self, spare: Handle) -> None:
        assert isinstance(spare, LocalHandle) and spare.proc is not None
        no_slot(spare.proc)

    def machine_ticks(self) -> tuple[int, int]:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return 0, 0
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait; user .. steal

    @classmethod
    def handle(cls, worker: str, record: dict) -> LocalHandle:
        incarnation, pid = int(record["incarnation"]), int(record["pid"])
        return LocalHandle(worker, incarnation, pid, host=record.get("host"))


LAUNCHERS: dict[str, type[Launcher]] = {"local": LocalLauncher}


def handle_from_record(worker: str, record: dict) -> Handle:
    """The handle of a registry entry, through the launcher that wrote it."""
    kind = record.get("launcher", "local")
    if kind not in LAUNCHERS:
        msg = f"worker {worker!r} was started by launcher {kind!r}, unknown here"
        raise LookupError(msg)
    return LAUNCHERS[kind].handle(worker, record)


# -- waiting on sockets and exits at once ------------------------------------------------------


class ExitWatch:
    """Waits for a message on any of some sockets or the end of a worker, whichever is first.

    Each followed handle's exit fd sits in the poller beside the sockets, so an exit wakes the
    caller at once and it sleeps otherwise. Where a handle has no exit fd the workers are
    looked at every ``POLL_MS`` instead.
    """

    def __init__(self, *sockets: zmq.Socket) -> None:
        self.sockets = sockets
        self.poller = zmq.Poller()
        for sock in sockets:
            self.poller.register(sock, zmq.POLLIN)
        self.fds: dict[Handle, int] = {}
        self.polling = False
        self.fired = False

    def follow(self, handles: Iterable[Handle]) -> None:
        """Watch exactly these handles (a replacement brings a new one, an ended one goes)."""
        handles = list(handles)
        for handle in set(self.fds) - set(handles):
            fd = self.fds.pop(handle)
            self.poller.unregister(fd)
            os.close(fd)
        for handle in handles:
            if handle in self.fds:
                continue
            try:
                fd = handle.exit_fd()
            except ProcessLookupError:  # already gone: the next look at it sees that
                self.fired = True
                continue
            if fd is None:
                self.polling = True
                continue
            self.fds[handle] = fd
            self.poller.register(fd, zmq.POLLIN)

    def wait(self, timeout: float) -> set[zmq.Socket]:
        """Sleep until a message, an exit or ``timeout`` seconds; the sockets with a message."""
        ms = POLL_MS if self.polling else max(0, round(timeout * 1000))
        events = dict(self.poller.poll(ms))
        ready = {sock for sock in self.sockets if sock in events}
        if len(events) > len(ready):
            self.fired = True
        return ready

    def exited(self) -> bool:
        """Whether a worker may have ended since the last call (always, when polling)."""
        fired, self.fired = self.fired, False
        return fired or self.polling

    def close(self) -> None:
        self.follow([])


# The other launchers register themselves in LAUNCHERS ("ssh", "slurm") when imported.
from . import launch_slurm, launch_ssh  # noqa: E402, F401
