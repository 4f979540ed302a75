"""The supervisor: one run, start to finish, as real OS processes.

It spawns the sink, the source and P processors (``python -m streamlec_cli worker ...``, each
in its own session so a terminal Ctrl-C reaches only the supervisor), carries out the spec's
failures with SIGKILL, watches its children (an exit is reported to the sink at once and the
processor restarted in its slot), samples every worker's memory, and at the end stops the
workers in stages (end of stream, SIGTERM, SIGKILL), compares the run with the single-process
reference and writes ``summary.json``. Nothing it measured is lost if it is interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
import zmq

from .. import datasets
from ..provenance import PACKAGE, code_commit
from ..reference import iter_reference
from ..results import (
    append_event,
    latency_around,
    machine_info,
    read_events,
    write_json,
)
from ..spec import Spec
from . import wire
from .plan import make_plan
from .registry import LiveRun
from .worker import SUPERVISOR_ENV

STARTUP_TIMEOUT = 60.0
STOP_GRACE = 3.0
STANDBY = "standby"
STALL_TIMEOUT = 60.0  # no progress for this long (closed loop) means the run is stuck
WAKE_S = 0.1  # longest sleep of the supervisor's loop (stall check, progress line)
POLL_MS = 5  # without pidfds: how often child exits are looked at
LATENCY_WINDOW = 5.0  # seconds before/after the first kill compared in the summary


class _Done(Exception):
    """The sink reported the end of the run (seen while looking at a worker's exit)."""


class RunFailed(RuntimeError):
    """The run could not finish (a source or sink crash, a start-up timeout).

    ``exit_code`` is 2 when the cause is bad input (a malformed data line), else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    killed_by_us: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid


def run_directory(out: Path, spec: Spec) -> Path:
    return Path(out) / spec.name / spec.run_id


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("", port + 1))
            except OSError:
                continue
        return port
    msg = "no two consecutive free TCP ports found"
    raise RunFailed(msg)


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _machine_jiffies() -> tuple[int, int]:
    """(idle, total) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return ticks[3] + ticks[4], sum(ticks)  # idle + iowait; user .. steal


def _last_line(path: Path) -> str:
    """The last non-empty line of a worker's log (what it said before it died)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def _memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB, (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class ExitWatch:
    """Waits for a message from the sink or the exit of a child, whichever comes first.

    Each child's pidfd sits in the poller beside the sink's socket, so an exit wakes the
    supervisor at once and the loop sleeps otherwise. Where pidfds are missing (not Linux,
    or a kernel before 5.3) the children are looked at every ``POLL_MS`` instead.
    """

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.fds: dict[int, int] = {}  # pid -> pidfd
        self.polling = not hasattr(os, "pidfd_open")
        self.fired = False

    def follow(self, pids: list[int]) -> None:
        """Watch exactly these children (a restart brings a new pid, a reaped one goes)."""
        for pid in set(self.fds) - set(pids):
            self.poller.unregister(self.fds[pid])
            os.close(self.fds.pop(pid))
        if self.polling:
            return
        for pid in set(pids) - set(self.fds):
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:  # already gone: the next look at it reaps it
                self.fired = True
                continue
            except OSError:  # no pidfds here
                self.polling = True
                return
            self.fds[pid] = fd
            self.poller.register(fd, zmq.POLLIN)

    def wait(self, timeout: float) -> bool:
        """Sleep until a message, an exit or ``timeout`` seconds; True if a message waits."""
        ms = POLL_MS if self.polling else max(0, round(timeout * 1000))
        events = dict(self.poller.poll(ms))
        if len(events) > (self.sock in events):
            self.fired = True
        return self.sock in events

    def exited(self) -> bool:
        """Whether a child may have exited since the last call (always, when polling)."""
        fired, self.fired = self.fired, False
        return fired or self.polling

    def close(self) -> None:
        self.follow([])


class Supervisor:
    def __init__(
        self,
        spec: Spec,
        out: Path,
        progress: Callable[[dict], None] | None = None,
    ) -> None:
        self.spec = spec
        self.run_dir = run_directory(out, spec)
        self.progress = progress or (lambda state: None)
        self.children: dict[str, Child] = {}
        self.killed_pids: set[int] = set()
        self.fired: set[int] = set()
        self.started_at: float | None = None
        self.last_batch = -1
        self.items_out = 0
        self.failures_done: list[dict] = []
        self.restarts = 0
        self.unexpected: list[str] = []
        self.peak_kb: dict[str, int] = {}
        self.cpu_s: dict[tuple[str, int], float] = {}  # (worker, pid) -> CPU seconds so far
        self.cpu_at_start: dict[tuple[str, int], float] = {}
        self.jiffies_at_start = self.jiffies_at_end = (0, 0)  # machine (idle, total)
        self.incarnations: dict[str, int] = {}
        self.standby: Child | None = None  # a processor-to-be, imported and waiting
        self.exit_code = 0
        self.last_progress = time.monotonic()

    # -- set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True)
        resolved = self.spec.to_dict()
        resolved["repeat"] = 1
        resolved.pop("sweep", None)
        with open(self.run_dir / "spec.yaml", "w") as f:
            yaml.safe_dump(resolved, f, sort_keys=False)
        if self.spec.transport == "tcp" and self.spec.port is None:
            (self.run_dir / "port").write_text(str(_free_port_pair()))
        meta = {
            "spec_name": self.spec.name,
            "run_id": self.spec.run_id,
            "run_index": self.spec.run_index,
            "sweep_values": dict(self.spec.sweep_values),
            "commit": code_commit(),
            "start_time": time.time(),
            "start_time_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "dataset_source": datasets.source_description(self.spec.dataset),
            **machine_info(),
        }
        write_json(self.run_dir / "meta.json", meta)
        self.plan = make_plan(self.spec, self.run_dir)

    def stage(self) -> None:
        """``dataset.stage``: write the rows to the run directory before any worker starts,
        so that generating or parsing them is not part of the measured stream."""
        began = time.monotonic()
        try:
            rows = datasets.stage(self.spec.dataset, self.run_dir / datasets.STAGED_FILE)
        except datasets.DatasetError as exc:
            raise RunFailed(str(exc), exit_code=2) from None
        took = time.monotonic() - began
        self.event("staged", f"{rows} rows in {took:.1f} s to {datasets.STAGED_FILE}")

    def spawn(self, name: str) -> Child:
        log = open(self.run_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"  # one core per worker: the workers are the parallelism
        env["PYTHONUNBUFFERED"] = "1"
        env[SUPERVISOR_ENV] = str(os.getpid())
        # Workers run the supervisor's copy of the code, never a streamlec_cli that happens
        # to sit in the working directory (``python -m`` would put it first on the path);
        # when the supervisor's copy is the one in the working directory, they get that.
        env["PYTHONSAFEPATH"] = "1"
        if PACKAGE.parent == Path.cwd().resolve():
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(PACKAGE.parent), env.get("PYTHONPATH")) if p
            )
        cmd = [
            sys.executable,
            "-m",
            "streamlec_cli",
            "worker",
            str(self.run_dir / "spec.yaml"),
            name,
            "--run-dir",
            str(self.run_dir),
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if name == STANDBY else subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        child = Child(name, proc)
        if name == STANDBY:
            self.standby = child
            return child
        self.children[name] = child
        self.incarnations[name] = self.incarnations.get(name, 0) + 1
        self.event(
            "spawned" if self.incarnations[name] == 1 else "restarted", f"pid {proc.pid}", name
        )
        return child

    def replace(self, name: str) -> None:
        """Put a processor back in its slot: the warm standby takes it over (it has already
        paid for starting Python and importing), else a fresh process is started."""
        standby = self.standby
        self.standby = None
        if standby is not None and standby.proc.poll() is None:
            assert standby.proc.stdin is not None
            try:
                standby.proc.stdin.write(f"{name}\n".encode())
                standby.proc.stdin.close()
            except OSError:
                standby = None
        else:
            standby = None
        if standby is None:
            self.spawn(name)
        else:
            self.children[name] = Child(name, standby.proc)
            self.incarnations[name] = self.incarnations.get(name, 0) + 1
            self.event("restarted", f"pid {standby.pid} (warm standby)", name)
        if self.spec.runtime.restart and self.spec.runtime.standby:
            self.spawn(STANDBY)

    def event(self, event: str, detail: str = "", worker: str = "supervisor") -> None:
        append_event(self.run_dir, time.time(), worker, event, detail)

    def register(self) -> None:
        self.live = LiveRun(
            run=f"{self.spec.name}/{self.spec.run_id}",
            run_dir=str(self.run_dir),
            supervisor=os.getpid(),
            workers={},
        )
        self.update_registry()

    def update_registry(self) -> None:
        self.live.workers = {
            name: {"pid": child.pid, "state": "running" if child.proc.poll() is None else "exited"}
            for name, child in self.children.items()
        }
        if self.standby is not None:  # the warm spare that takes the next crashed slot
            alive = self.standby.proc.poll() is None
            self.live.workers[STANDBY] = {
                "pid": self.standby.pid,
                "state": "spare" if alive else "exited",
            }
        self.live.save()

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        self.prepare()
        ctx = zmq.Context()
        sink_sock = None
        interrupted = False
        error: str | None = None
        try:
            if self.spec.dataset.stage:
                self.stage()
            self.spawn("sink")
            sink_sock = wire.dealer(ctx, self.plan.address("sink"), "supervisor")
            wire.send(sink_sock, wire.HELLO, {"pid": os.getpid()})
            self.spawn("source")
            for i in range(self.spec.processors):
                self.spawn(f"processor-{i}")
            if self.spec.runtime.restart and self.spec.runtime.standby:
                self.spawn(STANDBY)
            self.register()
            self.loop(sink_sock)
        except KeyboardInterrupt:
            interrupted = True
            self.event("interrupted", "Ctrl-C: stopping every worker, keeping the results")
            if sink_sock is not None:
                wire.send(sink_sock, wire.STOP, block=False)
                self.wait_for_exit(["sink"], 2.0)
        except RunFailed as exc:
            error = str(exc)
            self.exit_code = exc.exit_code
            self.event("run failed", error)
        finally:
            self.shutdown()
            ctx.destroy(linger=0)
            wire.remove_socket_files(self.run_dir)
            if hasattr(self, "live"):
                self.live.remove()
        wal = self.run_dir / "wal.bin"
        self.wal_bytes = wal.stat().st_size if wal.exists() else None
        # The run is over: nothing left to replay or read (either can be gigabytes).
        for path in (wal, self.run_dir / datasets.STAGED_FILE):
            path.unlink(missing_ok=True)
        summary = self.summarise(interrupted=interrupted, error=error)
        if interrupted:
            raise KeyboardInterrupt
        return summary

    def loop(self, sink_sock: zmq.Socket) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        next_sample = 0.0
        memory_log = open(self.run_dir / "memory.csv", "w", newline="")  # noqa: SIM115
        memory = csv.writer(memory_log)
        memory.writerow(["time", "worker", "pid", "rss_mb", "peak_mb", "cpu_s"])
        exits = ExitWatch(sink_sock)
        try:
            while True:
                live = [child.pid for child in self.children.values()]
                if self.standby is not None:
                    live.append(self.standby.pid)
                exits.follow(live)
                if exits.wait(self.next_wake(next_sample)):
                    while True:
                        try:
                            msg = wire.recv(sink_sock, block=False)
                        except zmq.Again:
                            break
                        if msg.kind == wire.PROGRESS:
                            if self.started_at is None:  # the stream has started
                                self.started_at = time.time()
                                self.jiffies_at_start = _machine_jiffies()
                                self.cpu_at_start = {
                                    (name, child.pid): _cpu_seconds(child.pid)
                                    for name, child in self.children.items()
                                }
                            self.last_batch = max(self.last_batch, msg.meta["batch"])
                            self.last_progress = time.monotonic()
                            self.items_out = msg.meta["items_out"]
                        elif msg.kind == wire.DONE:
                            self.sample(memory)
                            return
                if self.started_at is None and time.monotonic() > deadline:
                    msg = "workers did not start in time; see the logs/ of the run"
                    raise RunFailed(msg)
                if self.started_at is not None and time.monotonic() - self.last_progress > (
                    self.stall_limit()
                ):
                    msg = (
                        f"no batch was committed for {self.stall_limit():.0f} s after batch "
                        f"{self.last_batch}: the run is stuck; see events.csv and logs/ in "
                        f"{self.run_dir}"
                    )
                    raise RunFailed(msg)
                self.inject()
                if exits.exited():
                    try:
                        self.watch(sink_sock)
                    except _Done:
                        self.sample(memory)
                        return
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + 0.5
                    self.sample(memory)
                    memory_log.flush()
                self.progress(
                    {
                        "items_out": self.items_out,
                        "items": self.spec.dataset.items,
                        "elapsed": time.time() - (self.started_at or time.time()),
                        "failures": len(self.failures_done),
                        "batch": self.last_batch,
                    }
                )
        finally:
            exits.close()
            memory_log.close()

    def next_wake(self, next_sample: float) -> float:
        """Seconds the loop may sleep: until the next memory sample or time-scheduled
        failure, and never longer than ``WAKE_S``."""
        now = time.monotonic()
        wake = min(WAKE_S, max(0.0, next_sample - now))
        if self.started_at is not None:
            elapsed = time.time() - self.started_at
            for index, failure in enumerate(self.spec.failures):
                if index not in self.fired and failure.at is not None:
                    wake = min(wake, max(0.0, failure.at - elapsed))
        return wake

    def stall_limit(self) -> float:
        """Seconds without a committed batch after which the run is declared stuck."""
        per_batch = self.spec.batch / self.spec.rate if self.spec.rate else 0.0
        return max(STALL_TIMEOUT, 5 * per_batch)

    def sample(self, memory) -> None:
        """One row per live worker in memory.csv: RSS, peak RSS, CPU seconds so far."""
        self.jiffies_at_end = _machine_jiffies()
        for name, child in self.children.items():
            rss, hwm = _memory_kb(child.pid)
            if rss:
                self.peak_kb[name] = max(self.peak_kb.get(name, 0), hwm)
                cpu = _cpu_seconds(child.pid)
                self.cpu_s[(name, child.pid)] = cpu
                memory.writerow(
                    [f"{time.time():.3f}", name, child.pid, rss / 1024, hwm / 1024, cpu]
                )

    def inject(self) -> None:
        if self.started_at is None:
            return
        elapsed = time.time() - self.started_at
        for index, failure in enumerate(self.spec.failures):
            if index in self.fired:
                continue
            due = (failure.at is not None and elapsed >= failure.at) or (
                failure.at_batch is not None and self.last_batch >= failure.at_batch - 1
            )
            if not due:
                continue
            self.fired.add(index)
            for name in failure.kill:
                child = self.children[name]
                if child.proc.poll() is not None:
                    continue
                child.killed_by_us = True
                self.killed_pids.add(child.pid)
                os.kill(child.pid, signal.SIGKILL)
                when = (
                    f"at {elapsed:.2f}s"
                    if failure.at is not None
                    else f"at batch {failure.at_batch}"
                )
                self.event("kill", f"SIGKILL pid {child.pid} (scheduled {when})", name)
                self.failures_done.append(
                    {
                        "worker": name,
                        "pid": child.pid,
                        "time": time.time(),
                        "elapsed_s": elapsed,
                        "after_batch": self.last_batch,
                        "by": "spec",
                    }
                )

    def done_after_exit(self, sink_sock: zmq.Socket) -> bool:
        """A source or sink ended with code 0: the end of the stream (DONE follows at once),
        or it was told to stop (SIGTERM) before the end, which fails the run."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if sink_sock.poll(50):
                msg = wire.recv(sink_sock)
                if msg.kind == wire.DONE:
                    return True
        return False

    def killed_by_user(self, pid: int) -> bool:
        """Whether ``streamlec kill-worker`` logged a kill of this pid."""
        return any(
            e["event"] == "kill" and f"pid {pid} " in e["detail"] + " "
            for e in read_events(self.run_dir)
        )

    def watch(self, sink_sock: zmq.Socket) -> None:
        if self.standby is not None and self.standby.proc.poll() is not None:
            self.event(
                "exited", f"pid {self.standby.pid}, code {self.standby.proc.returncode}", STANDBY
            )
            self.spawn(STANDBY)
            self.update_registry()
        for name, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            if name in ("source", "sink"):
                if code == 0 and self.done_after_exit(sink_sock):
                    raise _Done
                log = self.run_dir / "logs" / f"{name}.log"
                last = _last_line(log)
                msg = f"the {name} exited with code {code}" + (f": {last}" if last else "")
                msg += f" (log: {log})"
                raise RunFailed(msg, exit_code=2 if code == 2 else 1)
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            if not child.killed_by_us:
                by = "kill-worker" if self.killed_by_user(child.pid) else "crash"
                if by == "crash":
                    self.unexpected.append(f"{name} ({how})")
                self.failures_done.append(
                    {
                        "worker": name,
                        "pid": child.pid,
                        "time": time.time(),
                        "elapsed_s": time.time() - (self.started_at or time.time()),
                        "after_batch": self.last_batch,
                        "by": by,
                    }
                )
            self.event("exited", f"pid {child.pid}, {how}", name)
            died = {"worker": name, "incarnation": child.pid, "how": how}
            wire.send(sink_sock, wire.DIED, died, block=False)
            if self.spec.runtime.restart:
                self.replace(name)
                self.restarts += 1
            else:
                del self.children[name]
            self.update_registry()

    # -- the end --------------------------------------------------------------------------

    def wait_for_exit(self, names: list[str], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self.children[n].proc.poll() is not None for n in names if n in self.children):
                return True
            time.sleep(0.02)
        return False

    def shutdown(self) -> None:
        """End of stream already told the workers to stop; then SIGTERM, then SIGKILL."""
        if self.standby is not None:  # it waits on its stdin: closing it ends it
            with contextlib.suppress(OSError):
                assert self.standby.proc.stdin is not None
                self.standby.proc.stdin.close()
            self.children[STANDBY] = self.standby
            self.standby = None
        names = list(self.children)
        if self.wait_for_exit(names, STOP_GRACE):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for name in names:
                child = self.children[name]
                if child.proc.poll() is None:
                    self.event("stopping", f"{signal.Signals(sig).name} pid {child.pid}", name)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.pid, sig)
            if self.wait_for_exit(names, 2.0):
                return

    def cpu_by_worker(self) -> dict[str, float]:
        """CPU seconds each worker slot used from the stream's start to its end (all its
        incarnations; a restarted one's start-up counts, it is part of recovering)."""
        out: dict[str, float] = {}
        for key, seconds in self.cpu_s.items():
            used = seconds - self.cpu_at_start.get(key, 0.0)
            out[key[0]] = round(out.get(key[0], 0.0) + used, 3)
        return dict(sorted(out.items()))

    def idle_during_stream(self) -> float | None:
        """Share of the machine's CPU time left idle from the stream's start to its end: a
        pipeline that waits on itself leaves cores idle however cheap its workers are."""
        idle = self.jiffies_at_end[0] - self.jiffies_at_start[0]
        total = self.jiffies_at_end[1] - self.jiffies_at_start[1]
        return round(idle / total, 3) if total > 0 and self.started_at is not None else None

    def summarise(self, interrupted: bool, error: str | None) -> dict:
        spec = self.spec
        sink_path = self.run_dir / "sink.json"
        sink = {}
        if sink_path.exists():
            sink = json.loads(sink_path.read_text())
        audit = audit_batches(self.run_dir / "batches.csv")
        meta = json.loads((self.run_dir / "meta.json").read_text())
        items_in = sink.get("items_in") or audit["items_seen"]
        complete = bool(sink.get("complete")) and not interrupted and error is None
        reference = compare_with_reference(spec, self.run_dir, self.plan) if complete else {}
        around = None
        if complete and self.failures_done:
            first = min(f["time"] for f in self.failures_done)
            around = latency_around(self.run_dir, first, LATENCY_WINDOW)
        summary = {
            "spec_name": spec.name,
            "run_id": spec.run_id,
            "complete": complete,
            "error": error,
            "exit_code": 130 if interrupted else (self.exit_code if error else 0),
            "scheme": spec.scheme.name,
            "scheme_label": self.plan.scheme.describe(),
            "algorithm": spec.algorithm.name,
            "algorithm_params": dict(spec.algorithm.params),
            "dataset": spec.dataset.name,
            "processors": spec.processors,
            "k": spec.scheme.k if spec.scheme.name == "ec" else None,
            "r": spec.scheme.r if spec.scheme.name == "ec" else None,
            "code": spec.scheme.code if spec.scheme.name == "ec" else None,
            "attach": spec.scheme.attach if spec.scheme.name == "ec" else None,
            "incremental": spec.scheme.incremental if spec.scheme.name == "ec" else None,
            "code_worst_condition": (
                self.plan.scheme.code.worst_condition() if spec.scheme.name == "ec" else None
            ),
            "copies": spec.scheme.copies if spec.scheme.name == "rep" else None,
            "batch": spec.batch,
            "rate": "max" if spec.rate is None else spec.rate,
            "items_in": items_in,
            "items_out": audit["items_out"],
            "items_lost": (
                items_in - audit["items_out"] if items_in is not None and complete else None
            ),
            "items_duplicated": audit["items_duplicated"],
            "decoded_items": sink.get("decoded_items"),
            "throughput_items_per_s": sink.get("throughput_items_per_s"),
            "measured_seconds": sink.get("measured_seconds"),
            "warmup_seconds": sink.get("warmup_seconds"),
            "latency_ms": sink.get("latency_ms"),
            "latency_around_first_failure": around,
            "failures": self.failures_done,
            "failures_not_done": [
                failure.to_dict()
                for index, failure in enumerate(spec.failures)
                if index not in self.fired
            ],
            "unexpected_exits": self.unexpected,
            "restarts": self.restarts,
            "recovery_rounds": sink.get("recovery_rounds"),
            "rollbacks": sink.get("rollbacks"),
            "replayed_batches": sink.get("replayed_batches"),
            "wal_bytes": self.wal_bytes,
            "tolerated": spec_tolerates(self.plan, self.failures_done),
            "reference_max_rel_err": reference.get("max_rel_err"),
            "reference": reference,
            "metrics": sink.get("metrics"),
            "peak_memory_mb": {k: round(v / 1024, 1) for k, v in sorted(self.peak_kb.items())},
            "memory_growth_mb": memory_growth(self.run_dir / "memory.csv"),
            "cpu_seconds_during_stream": self.cpu_by_worker(),
            "machine_idle_during_stream": self.idle_during_stream(),
            "pipeline_depth": spec.pipeline_depth,
            "commit": meta.get("commit"),
            "machine": {k: meta.get(k) for k in ("host", "cores", "memory_gib", "platform")},
            "run_dir": str(self.run_dir),
        }
        write_json(self.run_dir / "summary.json", summary)
        return summary


def memory_growth(path: Path) -> dict:
    """Per worker: median RSS (MB) over the second and over the last quarter of the run.

    A worker whose memory does not grow with the run length shows the same two numbers.
    """
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    start, end = float(rows[0]["time"]), float(rows[-1]["time"])
    span = max(end - start, 1e-9)
    out = {}
    for worker in sorted({r["worker"] for r in rows}):
        mine = [r for r in rows if r["worker"] == worker]
        last_pid = mine[-1]["pid"]  # the latest incarnation
        mine = [(float(r["time"]), float(r["rss_mb"])) for r in mine if r["pid"] == last_pid]
        second = [m for t, m in mine if 0.25 <= (t - start) / span < 0.5]
        last = [m for t, m in mine if (t - start) / span >= 0.75]
        if second and last:
            out[worker] = {
                "second_quarter": round(float(np.median(second)), 1),
                "last_quarter": round(float(np.median(last)), 1),
            }
    return out


def spec_tolerates(plan, failures: list[dict]) -> bool:
    """Whether the scheme promises to absorb these kills (each batch sees at most these)."""
    slots = [int(f["worker"].rsplit("-", 1)[1]) for f in failures]
    return plan.scheme.tolerates(slots)


def audit_batches(path: Path) -> dict:
    """Independent count of what the sink delivered, from ``batches.csv``.

    Each delivered (not replayed) row covers ``[offset, offset+count)`` minus its lost items;
    an item covered by two delivered rows is a duplicate.
    """
    items_out = duplicated = seen = 0
    covered: list[tuple[int, int]] = []
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["replayed"] == "1":
                    continue
                offset, count = int(row["offset"]), int(row["count"])
                items_out += count - int(row["items_lost"])
                covered.append((offset, offset + count))
                seen = max(seen, offset + count)
    covered.sort()
    reach = 0
    for lo, hi in covered:
        if lo < reach:
            duplicated += min(hi, reach) - lo
        reach = max(reach, hi)
    return {"items_out": items_out, "items_duplicated": duplicated, "items_seen": seen}


def compare_with_reference(spec: Spec, run_dir: Path, plan) -> dict:
    """Distance of the run's model and predictions to the single-process reference."""
    path = run_dir / "predictions.f64"
    if not path.exists() or not (run_dir / "model.npy").exists():
        return {}
    predictions = np.memmap(path, dtype=np.float64, mode="r")
    model = np.load(run_dir / "model.npy")
    diff = scale = 0.0
    offset = 0
    ref_model = None
    for batch_predictions, after_batch, _ in iter_reference(
        plan.algorithm, datasets.open_batches(spec.dataset, spec.batch), spec.pipeline_depth
    ):
        ref_model = after_batch
        got = predictions[offset : offset + batch_predictions.size]
        offset += batch_predictions.size
        if got.size != batch_predictions.size or np.isnan(got).any():
            diff = float("inf")
            continue
        diff = max(diff, float(np.abs(got - batch_predictions).max()))
        scale = max(scale, float(np.abs(batch_predictions).max()))
    pred_err = diff / scale if scale > 0 else diff
    assert ref_model is not None
    model_scale = float(np.abs(ref_model).max())
    model_err = float(np.abs(model - ref_model).max()) / (model_scale or 1.0)
    worst = max(pred_err, model_err)
    return {
        "max_rel_err": worst if np.isfinite(worst) else None,
        "model_rel_err": model_err,
        "predictions_rel_err": pred_err if np.isfinite(pred_err) else None,
        "predictions_compared": offset,
        "matches": bool(np.isfinite(worst) and worst <= 1e-9),
    }
