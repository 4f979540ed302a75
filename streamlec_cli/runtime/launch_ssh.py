"""The ``ssh`` launcher: each worker on a host reached by ssh, one ssh channel per worker.

It uses the OpenSSH client (``ssh``), not a Python ssh library: it reads the user's
``~/.ssh/config``, agent and known hosts like any ssh the user types, reaches EC2 and
bastion hosts the same way, and adds no dependency. One master connection per host
(``ControlMaster``, a child of the supervisor) carries every channel, so a worker's channel
opens without a new handshake (about 0.1 s on a busy two-core machine, against 0.5 s for the
first on a host).

Each worker's channel runs a small guard (``_GUARD``, ``python -c``) with the worker as its
child, and the local ``ssh`` process of the channel is the handle's process:

* the guard prints the worker's pid on the channel's stderr at once, and its exact exit
  status (negative: the signal that ended it) when it ends; then the channel closes and the
  local ``ssh`` ends, so the handle's exit fd (a pidfd of that ``ssh``) is readable at once.
  OpenSSH's client does not pass on a remote signal exit (it exits 255), hence the guard;
* the worker's output comes back on the channel's stdout, straight into the local
  ``logs/<worker>.log``, while it runs;
* signals go through the channel too, as a line ``signal N`` to the guard, which sends it on
  at once (OpenSSH's client cannot send channel ``signal`` requests); a handle rebuilt in
  another process (``kill-worker``) runs ``kill -s SIG <pid>`` on the host instead, through
  the run's master connection while it is there;
* the channel's stdin is the worker's lifeline: when it closes (the supervisor ended, however,
  or the connection broke) the guard kills the worker, which has asked for a parent-death
  signal from the guard. A spare's slot line goes through it to the spare;
* ``sample()`` and ``stopped()`` give what a thread of the launcher (``Sampler``) last read of
  ``/proc/<pid>/status|stat`` on the hosts, one ssh command per host every ``SAMPLE_EVERY``
  seconds, so the supervisor's loop never waits on ssh for them; a handle rebuilt in another
  process (``ps``) reads them when asked.

No shared filesystem is assumed: before a host's first worker starts, the run's resolved
``spec.yaml``, ``token`` and ``port`` files (and, for the source, the staged rows) are copied
to a run directory of its own on that host (``<dir>/<spec name>/<run>/<host>``, under the
remote home unless ``dir`` is absolute); ``finish()`` brings back what the workers wrote
there (the sink's ``batches.csv``, ``timeline.csv``, ``events.csv``, ``sink.json``, the model,
predictions and latencies), never over a file already in the local run directory (the
events recorded there join the local ``events.csv`` in time order), then removes the remote
directories and closes the master connections.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..results import merge_events
from .launch import LAUNCHERS, Handle, Launcher, Sample, best_offset, give_slot, route_source
from .lifeline import die_with_parent
from .worker import SUPERVISOR_ENV

SAMPLE_EVERY = 0.5  # seconds: how often a worker's /proc is read over ssh at most
START_TIMEOUT = 30.0  # seconds for a channel to say its worker's pid
PID_LINE = "streamlec-pid "
EXIT_LINE = "streamlec-exit "

#: Runs on the host as ``python -c _GUARD MODE ARGV...``: starts ARGV (the worker) in a session
#: of its own, says its pid, sends it signal N for each line ``signal N`` on its stdin, passes
#: the first other line to a spare (MODE ``spare``), kills the worker when its stdin closes,
#: and says the worker's exit status.
_GUARD = r"""
import os, signal, subprocess, sys, threading
spare = sys.argv[1] == "spare"
env = dict(os.environ, SUPERVISOR_ENV=str(os.getpid()))
worker = subprocess.Popen(sys.argv[2:], env=env, start_new_session=True,
                          stdout=1, stderr=subprocess.STDOUT,
                          stdin=subprocess.PIPE if spare else subprocess.DEVNULL)
os.write(2, b"PID_LINE%d\n" % worker.pid)
def lifeline():
    buf = b""
    while True:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.startswith(b"signal "):
                if worker.returncode is None:
                    try:
                        os.kill(worker.pid, int(line[7:]))
                    except (OSError, ValueError):
                        pass
            elif worker.stdin is not None and not worker.stdin.closed:
                try:
                    worker.stdin.write(line + b"\n")
                    worker.stdin.close()
                except OSError:
                    pass
    try:
        worker.kill()
    except OSError:
        pass
threading.Thread(target=lifeline, daemon=True).start()
code = worker.wait()
os.write(2, b"EXIT_LINE%d\n" % code)
os._exit(0)
"""
_GUARD = (
    _GUARD.replace("SUPERVISOR_ENV", SUPERVISOR_ENV)
    .replace("PID_LINE", PID_LINE)
    .replace("EXIT_LINE", EXIT_LINE)
)


def sent_files(name: str) -> list[str]:
    """Files of the local run directory that worker ``name`` reads: the resolved spec, the
    run's token, ports and the supervisor's address, and for the source the staged rows.
    (Imported here, not at the top: ``ps`` imports this module and must stay light.)"""
    from ..datasets import STAGED_FILE
    from .plan import ADDRESSES_FILE, TOKEN_FILE

    files = ["spec.yaml", TOKEN_FILE, "port", ADDRESSES_FILE]
    return [*files, *([STAGED_FILE] if name == "source" else [])]


def left_on_hosts() -> list[str]:
    """What is never brought back: what was sent, and the write-ahead logs of the source and
    of the storage workers (they can be gigabytes, and nothing reads them after the run)."""
    return [*sent_files("source"), "wal.bin", "storage-*.bin"]


@dataclass(frozen=True)
class SshSettings:
    """How to reach the hosts (the spec's ``cluster.ssh``); ``None``: ssh's own default
    (``~/.ssh/config``, then the current user, port 22, the usual keys)."""

    user: str | None = None
    port: int | None = None
    identity: str | None = None
    options: tuple[str, ...] = ()  # extra ``-o`` options, e.g. "StrictHostKeyChecking=no"
    python: str = field(default_factory=lambda: sys.executable)  # the interpreter on the hosts
    dir: str = ".streamlec/runs"  # where run directories go on the hosts

    @classmethod
    def from_mapping(cls, values: dict | None) -> SshSettings:
        values = dict(values or {})
        if "options" in values:
            values["options"] = tuple(values["options"])
        if values.get("port") is not None:
            values["port"] = int(values["port"])
        return cls(**values)

    def to_mapping(self) -> dict:
        return {
            "user": self.user,
            "port": self.port,
            "identity": self.identity,
            "options": list(self.options),
            "python": self.python,
            "dir": self.dir,
        }


def ssh_argv(settings: SshSettings, host: str, control: str | None = None) -> list[str]:
    """The ``ssh`` command line up to the host (a remote command follows)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if control is not None:  # use the master connection when it is there, else connect
        argv += ["-o", "ControlMaster=no", "-o", f"ControlPath={control}"]
    if settings.user:
        argv += ["-l", settings.user]
    if settings.port:
        argv += ["-p", str(settings.port)]
    if settings.identity:
        argv += ["-i", str(settings.identity), "-o", "IdentitiesOnly=yes"]
    for option in settings.options:
        argv += ["-o", option]
    return [*argv, host]


def _die_with_parent() -> None:
    """In a local ``ssh`` child: end when the supervisor ends (Linux), which closes the
    channel and so ends the worker on the host."""
    die_with_parent(signal.SIGKILL)


def _remote(
    settings: SshSettings, host: str, command: str, control: str | None, timeout: float = 30.0
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*ssh_argv(settings, host, control), command],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )


def _proc_of(ticks: int, lines: list[str]) -> tuple[Sample | None, str]:
    """A sample and the state letter from ``/proc/<pid>/status`` then ``/proc/<pid>/stat`` as
    printed on the host ((None, ""): the process is gone)."""
    rss = hwm = 0
    for line in lines[:-1]:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    try:
        fields = lines[-1].rsplit(")", 1)[1].split()
        state, cpu = fields[0], (int(fields[11]) + int(fields[12])) / ticks
    except (IndexError, ValueError):
        return None, ""
    if not rss:  # a zombie: it has ended
        return None, ""
    return Sample(rss, hwm, cpu), state


def read_procs(
    settings: SshSettings, host: str, control: str | None, pids: list[int]
) -> tuple[dict[int, tuple[Sample | None, str]], tuple[int, int] | None]:
    """Each pid's sample and state on ``host``, and the host's (idle, total) CPU ticks, read
    with one ssh command (None for the ticks: the host could not be read)."""
    command = "getconf CLK_TCK; head -n1 /proc/stat" + "".join(
        f"; echo @@ {pid}; cat /proc/{pid}/status /proc/{pid}/stat 2>/dev/null" for pid in pids
    )
    gone: tuple[Sample | None, str] = (None, "")
    try:
        done = _remote(settings, host, command, control, timeout=10.0)
    except subprocess.TimeoutExpired:
        return dict.fromkeys(pids, gone), None
    chunks = done.stdout.decode(errors="replace").split("@@ ")
    head = chunks[0].splitlines()
    try:
        ticks = [int(x) for x in head[1].split()[1:9]]
        per_second = int(head[0])
    except (IndexError, ValueError):
        return dict.fromkeys(pids, gone), None
    found = {}
    for chunk in chunks[1:]:
        lines = chunk.splitlines()
        found[int(lines[0])] = _proc_of(per_second, lines[1:]) if len(lines) > 2 else gone
    return found, (ticks[3] + ticks[4], sum(ticks))


class Sampler:
    """Reads the workers' ``/proc`` on their hosts every ``SAMPLE_EVERY`` seconds in a thread
    of its own (one ssh command per host), so that the supervisor's loop never waits on ssh
    for a sample: ``latest`` answers from what was last read."""

    def __init__(self, reach: Callable[[str], SshSettings], controls: dict[str, str]) -> None:
        self.reach = reach
        self.controls = controls
        self.handles: dict[tuple[str, int], SshHandle] = {}
        self.seen: dict[tuple[str, int], tuple[Sample | None, str]] = {}
        self.ticks: dict[str, tuple[int, int]] = {}
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def follow(self, handle: SshHandle) -> None:
        self.handles[(handle.host, handle.pid)] = handle
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="ssh-sampler", daemon=True)
            self.thread.start()

    def latest(self, host: str, pid: int) -> tuple[Sample | None, str]:
        return self.seen.get((host, pid), (None, ""))

    def run(self) -> None:
        while True:
            self.read()
            if self.done.wait(SAMPLE_EVERY):
                return

    def read(self) -> None:
        hosts: dict[str, list[int]] = {}
        for (host, pid), handle in list(self.handles.items()):
            if handle.proc is not None and handle.proc.poll() is not None:
                del self.handles[(host, pid)]
                self.seen[(host, pid)] = (None, "")
            else:
                hosts.setdefault(host, []).append(pid)
        for host in set(self.ticks) | set(hosts):
            found, ticks = read_procs(
                self.reach(host), host, self.controls.get(host), hosts.get(host, [])
            )
            for pid, seen in found.items():
                self.seen[(host, pid)] = seen
            if ticks is not None:
                self.ticks[host] = ticks

    def close(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(15)


class SshHandle(Handle):
    """A worker on a host, behind its own ssh channel (``proc``: the local ``ssh``), or one
    rebuilt from a record (no channel: it can signal and sample, not wait)."""

    kind = "ssh"

    def __init__(
        self,
        worker: str,
        incarnation: int,
        host: str,
        pid: int,
        settings: SshSettings,
        control: str | None = None,
        proc: subprocess.Popen | None = None,
        log: Path | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        self.worker = worker
        self.incarnation = incarnation
        self.host = host
        self.pid = pid
        self.settings = settings
        self.control = control
        self.proc = proc
        self.log = log
        self.code: int | None = None
        self.said = b""  # what the guard said after the pid, read while waiting for it
        self.sampler = sampler  # the launcher's, in the supervisor; None: read when asked
        self.seen: tuple[float, Sample | None, str] | None = None  # (when, sample, state)
        if sampler is not None:
            sampler.follow(self)

    def exit_fd(self) -> int | None:
        if self.proc is None or not hasattr(os, "pidfd_open"):
            return None
        try:
            return os.pidfd_open(self.proc.pid)
        except ProcessLookupError:
            raise
        except OSError:
            return None

    def poll(self) -> int | None:
        """The worker's own exit status as the guard saw it; the channel's (255: the
        connection broke) when the guard could not say."""
        if self.proc is None or self.proc.poll() is None:
            return None
        if self.code is None:
            self.code = self.proc.returncode
            if self.proc.stderr is not None:
                rest = (self.said + self.proc.stderr.read()).decode(errors="replace")
                self.proc.stderr.close()
                said = [line for line in rest.splitlines() if not line.startswith(EXIT_LINE)]
                for line in rest.splitlines():
                    if line.startswith(EXIT_LINE):
                        self.code = int(line[len(EXIT_LINE) :])
                if said and self.log is not None:  # ssh's own complaints, kept in the log
                    with open(self.log, "a") as f:
                        f.write("".join(f"ssh: {line}\n" for line in said))
        return self.code

    def signal(self, sig: int) -> bool:
        """Through the worker's own channel (its guard sends it on at once); a handle rebuilt
        in another process, which has no channel, runs ``kill`` on the host."""
        if self.proc is not None and self.proc.poll() is not None:
            return False  # ended: its pid may belong to another process by now
        self.seen = None
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(f"signal {int(sig)}\n".encode())
                self.proc.stdin.flush()
            except OSError:
                return False
            return True
        name = signal.Signals(sig).name.removeprefix("SIG")
        done = _remote(self.settings, self.host, f"kill -s {name} {self.pid}", self.control)
        return done.returncode == 0

    def read_proc(self) -> tuple[Sample | None, str]:
        """The worker's /proc on its host: the sampler's latest reading, or (a handle rebuilt
        in another process) read now, at most once every ``SAMPLE_EVERY`` s."""
        if self.sampler is not None:
            return self.sampler.latest(self.host, self.pid)
        now = time.monotonic()
        if self.seen is not None and now - self.seen[0] < SAMPLE_EVERY:
            return self.seen[1], self.seen[2]
        if self.proc is not None and self.proc.poll() is not None:
            return None, ""
        found, _ = read_procs(self.settings, self.host, self.control, [self.pid])
        sample, state = found.get(self.pid, (None, ""))
        self.seen = (now, sample, state)
        return sample, state

    def sample(self) -> Sample | None:
        return self.read_proc()[0]

    def stopped(self) -> bool:
        return self.read_proc()[1] in ("T", "t")

    def record(self) -> dict:
        return {**super().record(), "ssh": self.settings.to_mapping(), "control": self.control}


class SshLauncher(Launcher):
    """Workers on ``hosts`` through ssh; see the module docstring.

    ``spawn``/``spare`` take the host to use; without one, the sink and the source each get a
    host of their own (the first two), then the processors and the spares one per host, round
    robin over the rest (over all hosts when there are only one or two)."""

    kind = "ssh"

    def __init__(
        self,
        run_dir: Path,
        spec_file: Path,
        hosts: list[str],
        settings: SshSettings | None = None,
        addresses: dict[str, str] | None = None,
    ) -> None:
        if not hosts:
            msg = "the ssh launcher needs at least one host (cluster.hosts)"
            raise ValueError(msg)
        self.run_dir = Path(run_dir)
        self.spec_file = Path(spec_file)
        self.hosts = list(hosts)
        self.settings = settings or SshSettings()
        self.addresses = dict(addresses or {})  # host name -> the address ssh connects to
        from .wire import socket_dir  # here: ``ps`` imports this module, never a launcher

        # The master connections' sockets sit with the run's ipc sockets (a short path), so
        # they go with them after the run, or after a killed supervisor (``leftovers.py``).
        self.control_dir = socket_dir(self.run_dir)
        self.control_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.masters: dict[str, subprocess.Popen] = {}  # host -> its master connection
        self.controls: dict[str, str] = {}  # host -> the master's socket
        self.ready: dict[str, set[str]] = {}  # host -> the files copied there
        self.placed = 0  # processors and spares placed without a host so far
        self.sampler = Sampler(self.reach, self.controls)
        atexit.register(self.close)  # a supervisor that fails before finish() lets go too

    @classmethod
    def for_run(cls, spec, run_dir: Path, cluster=None) -> SshLauncher:
        """The spec's ``cluster`` section: its ``hosts`` and ``ssh`` settings; with emulated
        hosts (``cluster``), ssh goes to each host's address."""
        section = spec.cluster
        hosts = list(section.hosts)
        addresses = {} if cluster is None else {host: cluster.address(host) for host in hosts}
        settings = SshSettings.from_mapping(dict(section.ssh))
        return cls(run_dir, Path(run_dir) / "spec.yaml", hosts, settings, addresses)

    def peer_addresses(self) -> dict[str, str]:
        """The supervisor's address as the hosts reach it: this host's on the route to them
        (127.0.0.1 for loopback hosts, the bridge's for emulated ones), when all are reached
        from one; else the plan's own choice."""
        route = route_source(self.addresses.get(host, host) for host in self.hosts)
        return {} if route is None else {"supervisor": route}

    def clock_offset(self, host: str) -> tuple[float, float] | None:
        return clock_offset(self.reach(host), host, self.controls.get(host))

    # -- where ---------------------------------------------------------------------------

    def reach(self, host: str) -> SshSettings:
        """How ssh reaches ``host``: the settings, and its address when it has one."""
        address = self.addresses.get(host)
        if address is None:
            return self.settings
        return replace(self.settings, options=(*self.settings.options, f"HostName={address}"))

    def default_host(self, name: str) -> str:
        if name in ("sink", "source") and len(self.hosts) > 2:
            return self.hosts[0 if name == "sink" else 1]
        if name in ("sink", "source"):
            return self.hosts[(name == "source") % len(self.hosts)]
        pool = self.hosts[2:] or self.hosts
        if name.startswith("processor-"):
            return pool[int(name.rsplit("-", 1)[1]) % len(pool)]
        self.placed += 1
        return pool[-self.placed % len(pool)]  # spares: from the last host backwards

    def remote_dir(self, host: str) -> str:
        spec_name = self.run_dir.parent.name or "run"
        return f"{self.settings.dir.rstrip('/')}/{spec_name}/{self.run_dir.name}/{host}"

    def control(self, host: str) -> str:
        """The master connection's socket for ``host``, started on first use."""
        if host in self.masters:
            return self.controls[host]
        path = str(self.control_dir / f"ssh-{len(self.masters)}")
        self.controls[host] = path
        argv = ssh_argv(self.reach(host), host)
        argv[1:1] = ["-M", "-S", path, "-N", "-o", "ControlPersist=no"]
        master = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        self.masters[host] = master
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(path):
            if master.poll() is not None:
                why = master.stderr.read().decode(errors="replace").strip()
                msg = f"cannot reach host {host!r} by ssh: {why or f'exit {master.returncode}'}"
                raise OSError(msg)
            if time.monotonic() > deadline:
                msg = f"host {host!r}: no ssh connection within {START_TIMEOUT:.0f} s"
                raise OSError(msg)
            time.sleep(0.005)
        return path

    # -- files ---------------------------------------------------------------------------

    def send(self, host: str, names: list[str]) -> None:
        """Copy these files of the run directory to the host's run directory (once each)."""
        first = host not in self.ready  # its run directory is made then
        done = self.ready.setdefault(host, set())
        names = [n for n in names if n not in done and (self.run_dir / n).exists()]
        if not names and not first:
            return
        where = shlex.quote(self.remote_dir(host))
        command = f"mkdir -p {where}/logs" + (f" && tar -C {where} -xf -" if names else "")
        tar = subprocess.Popen(
            ["tar", "-C", str(self.run_dir), "-cf", "-", *names] if names else ["true"],
            stdout=subprocess.PIPE,
        )
        copy = subprocess.run(
            [*ssh_argv(self.reach(host), host, self.control(host)), command],
            stdin=tar.stdout,
            capture_output=True,
            check=False,
        )
        tar.wait()
        tar.stdout.close()
        if copy.returncode or tar.returncode:
            why = copy.stderr.decode(errors="replace").strip()
            msg = f"cannot copy the run's files to host {host!r}: {why}"
            raise OSError(msg)
        done.update(names)

    def finish(self) -> None:
        """Bring back what the workers wrote on every host (no local file is overwritten),
        then remove the hosts' run directories and close the connections. A host that
        cannot be reached keeps its directory, named in a warning on stderr."""
        brought = []
        try:
            for host in self.ready:
                try:
                    self.bring_back(host)
                except (OSError, subprocess.SubprocessError) as exc:
                    where = self.remote_dir(host)
                    print(
                        f"warning: files of {host}:{where} not brought back: {exc}", file=sys.stderr
                    )
                    continue
                brought.append(host)
            for host in brought:
                where = self.remote_dir(host)
                parents = " ".join(
                    shlex.quote(str(p)) for p in list(Path(where).parents)[:2] if str(p) != "."
                )
                command = f"rm -rf {shlex.quote(where)}; rmdir {parents} 2>/dev/null; true"
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    _remote(self.reach(host), host, command, self.control(host))
        finally:
            self.close()

    def bring_back(self, host: str) -> None:
        """The host's run directory into the local one: files not there yet move in, the
        events the workers recorded there join ``events.csv`` in time order, and no other
        local file is overwritten."""
        where = shlex.quote(self.remote_dir(host))
        leave = " ".join(f"--exclude=./{name}" for name in left_on_hosts())
        command = f"cd {where} 2>/dev/null && tar {leave} -cf - ."
        with tempfile.TemporaryDirectory(prefix="slec-back-") as staging:
            fetch = subprocess.Popen(
                [*ssh_argv(self.reach(host), host, self.control(host)), command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            subprocess.run(
                ["tar", "-C", staging, "-xf", "-"],
                stdin=fetch.stdout,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            fetch.wait()
            fetch.stdout.close()
            for path in sorted(Path(staging).rglob("*")):
                here = self.run_dir / path.relative_to(staging)
                if path.is_dir():
                    here.mkdir(exist_ok=True)
                elif path.name == "events.csv" and here.exists():
                    merge_events(here, path.read_text())
                elif not here.exists():
                    shutil.move(path, here)

    def close(self) -> None:
        """End the master connections (their channels' workers end with them)."""
        self.sampler.close()
        for master in self.masters.values():
            if master.poll() is None:
                master.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                master.wait(5)
            if master.poll() is None:
                master.kill()
                master.wait()
            if master.stderr is not None:
                master.stderr.close()
        self.masters = {}
        for path in self.control_dir.glob("ssh-*"):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.control_dir.rmdir()  # unless the run's ipc sockets are still there

    # -- workers -------------------------------------------------------------------------

    def worker_argv(self, name: str, incarnation: int | None) -> list[str]:
        argv = [self.settings.python, "-m", "streamlec_cli", "worker", "spec.yaml", name]
        argv += ["--run-dir", "."]
        if incarnation is not None:
            argv += ["--incarnation", str(incarnation)]
        return argv

    def start(
        self, name: str, incarnation: int, argv: list[str], spare: bool = False, host=None
    ) -> SshHandle:
        """Run ``argv`` in the host's run directory as worker ``name``, behind the guard
        (the seam ``spawn`` and ``spare`` share; tests start any command through it)."""
        host = host or self.default_host(name)
        control = self.control(host)
        self.send(host, sent_files(name))
        env = " ".join(
            f"{var}=1" for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
        )
        guard = [self.settings.python, "-c", _GUARD, "spare" if spare else "plain", *argv]
        command = (
            f"cd {shlex.quote(self.remote_dir(host))} && "
            f"exec env {env} PYTHONUNBUFFERED=1 PYTHONSAFEPATH=1 {shlex.join(guard)}"
        )
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log = self.run_dir / "logs" / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*ssh_argv(self.reach(host), host, control), command],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
        pid, said = self.read_pid(proc, host, log)
        handle = SshHandle(
            name, incarnation, host, pid, self.reach(host), control, proc, log, self.sampler
        )
        handle.said = said
        return handle

    @staticmethod
    def read_pid(proc: subprocess.Popen, host: str, log: Path) -> tuple[int, bytes]:
        """The worker's pid, the guard's first line, and what came after it; what ssh said
        instead goes to the log. Waits at most ``START_TIMEOUT``."""
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        deadline = time.monotonic() + START_TIMEOUT
        said = b""
        while True:
            for line in said.splitlines(keepends=True):
                if line.startswith(PID_LINE.encode()) and line.endswith(b"\n"):
                    before, _, after = said.partition(line)
                    return int(line[len(PID_LINE) :]), before + after
            left = deadline - time.monotonic()
            chunk = os.read(fd, 4096) if left > 0 and select.select([fd], [], [], left)[0] else b""
            if not chunk:
                break
            said += chunk
        if proc.poll() is None:  # no answer in time
            proc.kill()
            said += f"no answer within {START_TIMEOUT:.0f} s\n".encode()
        proc.wait()
        lines = said.decode(errors="replace").splitlines()
        with open(log, "a") as f:
            f.write("".join(f"ssh: {line}\n" for line in lines))
        why = "; ".join(lines) or f"ssh exit {proc.returncode}"
        msg = f"cannot start a worker on host {host!r}: {why}"
        raise OSError(msg)

    def spawn(self, name: str, incarnation: int, host: str | None = None) -> SshHandle:
        return self.start(name, incarnation, self.worker_argv(name, incarnation), host=host)

    def spare(self, name: str, host: str | None = None) -> SshHandle:
        return self.start(name, 0, self.worker_argv(name, None), spare=True, host=host)

    def adopt(self, spare: Handle, name: str, incarnation: int) -> SshHandle | None:
        assert isinstance(spare, SshHandle) and spare.proc is not None
        # The channel's stdin stays open: it is the worker's lifeline.
        if not give_slot(spare.proc, name, incarnation, keep_open=True):
            return None
        adopted = SshHandle(
            name,
            incarnation,
            spare.host,
            spare.pid,
            spare.settings,
            spare.control,
            spare.proc,
            spare.log,
            self.sampler,
        )
        adopted.said = spare.said
        return adopted

    def dismiss(self, spare: Handle) -> None:
        assert isinstance(spare, SshHandle) and spare.proc is not None
        if spare.proc.stdin is not None:
            with contextlib.suppress(OSError):
                spare.proc.stdin.write(b"\n")  # an empty line: no slot will come
                spare.proc.stdin.flush()

    def machine_ticks(self) -> tuple[int, int]:
        """Idle and total CPU ticks summed over the hosts that run workers (as the sampler
        last read them)."""
        readings = list(self.sampler.ticks.values())
        return sum(idle for idle, _ in readings), sum(total for _, total in readings)

    @classmethod
    def handle(cls, worker: str, record: dict) -> SshHandle:
        settings = SshSettings.from_mapping(record.get("ssh"))
        return SshHandle(
            worker,
            int(record["incarnation"]),
            record["host"],
            int(record["pid"]),
            settings,
            record.get("control"),
        )


def clock_offset(
    settings: SshSettings, host: str, control: str | None = None, tries: int = 3
) -> tuple[float, float]:
    """How far ``host``'s wall clock is ahead of this one's, in seconds, and the round trip
    that bounds the error (the best of ``tries``): the host's time is taken as read halfway
    through the round trip."""

    def read_clock() -> float:
        done = _remote(settings, host, "date +%s.%N", control, timeout=10.0)
        try:
            return float(done.stdout.decode().strip())
        except ValueError as exc:
            msg = f"cannot read the clock of host {host!r}: {done.stderr.decode().strip()}"
            raise OSError(msg) from exc

    return best_offset(read_clock, tries)


def check_host(settings: SshSettings, host: str) -> tuple[bool, str]:
    """Whether ``host`` is reachable by ssh and runs the same streamlec (its code commit) as
    this machine; the message says what was found and how long the round trip took."""
    from ..provenance import code_commit

    here = code_commit()
    probe = "import streamlec_cli.provenance as p; print(p.code_commit())"
    command = shlex.join([settings.python, "-c", probe])
    began = time.monotonic()
    try:
        done = _remote(settings, host, command, None, timeout=30.0)
    except subprocess.TimeoutExpired:
        return False, f"{host}: no answer by ssh within 30 s"
    took = time.monotonic() - began
    if done.returncode == 255:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return False, f"{host}: unreachable by ssh ({why[-1] if why else 'exit 255'})"
    if done.returncode:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return False, f"{host}: {settings.python} has no streamlec ({why[-1] if why else ''})"
    there = done.stdout.decode().strip()
    if there != here:
        return False, f"{host}: streamlec at commit {there}, here {here}"
    return True, f"{host}: reachable in {took * 1000:.0f} ms, streamlec at commit {there}"


def check_cluster(spec) -> list[tuple[str, bool, str]]:
    """``streamlec cluster check`` for ``launcher: ssh``: (host, ok, message) for every host
    of the spec's ``cluster`` section, reached with its ``cluster.ssh`` settings."""
    settings = SshSettings.from_mapping(dict(spec.cluster.ssh))
    return [(host, *check_host(settings, host)) for host in dict.fromkeys(spec.cluster.hosts)]


LAUNCHERS["ssh"] = SshLauncher
