"""The supervisor: one run, start to finish, as real OS processes.

It starts the sink, the source, P processors and the storage workers of a reactive log
(``log: storage``) through a launcher (``launch.py``), carries
out the spec's failures with SIGKILL, and is the one component that decides a processor has
failed: its ``Membership`` hears every processor's hello and heartbeats (a ROUTER at
``plan.address("supervisor")``) and learns of every exit from the launcher's handles. Each
verdict is written to the events, told to the sink (``DIED``) and, on silence, enforced by
fencing the silent incarnation with SIGKILL; the slot is then refilled by a warm spare when one
is ready. It keeps as many spares as its scheme tolerates failures at once (``standby-1``,
``standby-2``, ...), watches them like processors (a spare that dies, stops or falls silent is
replaced and never given a slot), and records for each failure the time until every slot was
live and heard from again (its time to full tolerance). It samples every worker's memory and
CPU, and at the end stops the workers in stages (end of stream, SIGTERM, SIGKILL) and writes
``summary.json`` (``summary.py``). Nothing it measured is lost if it is interrupted. It never
touches a pid or ``/proc`` itself.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from .. import datasets
from ..results import append_event, last_log_line, new_run_directory
from ..spec import Spec
from . import wire
from .control import signal_name, user_signal
from .emulate import SUBNET_FILE, EmulatedCluster, EmulationError, SharedCluster
from .interrupt import SIGNALS, Interrupted
from .launch import LAUNCHERS, ExitWatch, Handle, Launcher
from .membership import Membership, Verdict
from .placement import host_of
from .plan import ADDRESSES_FILE, base_port, free_ports, make_plan, new_run_token, taken_ports
from .registry import LiveRun
from .replica import log_files
from .stragglers import Throttle
from .summary import Observed, add_meta, summarise, write_meta, write_resolved_spec
from .worker import STANDBY, is_spare

STARTUP_TIMEOUT = 60.0
STOP_GRACE = 3.0
STALL_TIMEOUT = 60.0  # no progress for this long (closed loop) means the run is stuck
WAKE_S = 0.1  # longest sleep of the supervisor's loop (stall check, failure detection)
SPARE_STARTUP = 30.0  # a spare that has not said hello this long after its start is replaced
WARM_JOIN = 5.0  # a ready spare given a slot says hello within this, or is fenced
COLD_JOIN = 30.0  # the same for a replacement started from scratch
REFILL_AFTER = 0.5  # spares are started again once the group is whole, or this long after


class _Done(Exception):
    """The sink reported the end of the run (seen while looking at a worker's exit)."""


class RunFailed(RuntimeError):
    """The run could not finish (a source or sink crash, a start-up timeout).

    ``exit_code`` is 2 when the cause is bad input (a malformed data line), else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def port_problem(base: int, storage: int = 0) -> str | None:
    """Why a tcp run on port ``base`` cannot start here (its ports are taken), or None;
    ``storage``: storage workers of the log, which listen on the ports after those three."""
    taken = taken_ports(base, wire.port_count(storage))
    if not taken:
        return None
    ports = ", ".join(str(p) for p in taken)
    noun = "port" if len(taken) == 1 else "ports"
    needs = f"{base}, {base + 1} and {base + 2} (sink, source, supervisor)"
    if storage:
        last = base + wire.port_count(storage) - 1
        needs = f"{base} to {last} (sink, source, supervisor, the {storage} storage workers)"
    return (
        f"{noun} {ports} already in use on this host (another run or program listens there); "
        f"a run with port {base} needs {needs}: pick another port in the spec (or --set "
        "port=N), or leave port out and the run picks free ones"
    )


def run_directory(out: Path, spec: Spec) -> Path:
    """Create the run's own new directory, ``out/<spec name>/<setting>-<UTC time>[-N]``:
    never an earlier run's, nor that of a run of the same spec started at the same time."""
    return new_run_directory(Path(out) / spec.name, spec.run_id)


class Supervisor:
    def __init__(
        self,
        spec: Spec,
        out: Path,
        progress: Callable[[dict], None] | None = None,
        run_dir: Path | None = None,
        shared: SharedCluster | None = None,
    ) -> None:
        """``run_dir``: the run's directory, made by the caller (else a new one under
        ``out``); ``shared``: emulated hosts another process made and measured, which this
        run places its workers on and leaves standing (one pair of several, ``pairs.py``)."""
        cluster = spec.cluster
        kind = "local" if cluster is None else cluster.launcher
        if kind not in LAUNCHERS:
            msg = f"cluster.launcher: {kind} is not available here (known: {', '.join(LAUNCHERS)})"
            raise RunFailed(msg, exit_code=2)
        hosts = LAUNCHERS[kind].hosts_for(spec)
        if cluster is not None and hosts != cluster.hosts:  # recorded in spec.yaml as used
            spec = dataclasses.replace(spec, cluster=dataclasses.replace(cluster, hosts=hosts))
        self.spec = spec
        self.run_dir = run_directory(out, spec) if run_dir is None else run_dir
        self.progress = progress or (lambda state: None)
        emulate = None if cluster is None else cluster.emulate
        self.shared = shared
        #: The emulated hosts (made in ``run``, removed at its end), if the spec asks for them.
        self.emulated = None if emulate is None else EmulatedCluster(emulate)
        if shared is not None and emulate is not None:  # made, and removed, by its owner
            self.emulated = EmulatedCluster(emulate, owner=shared.owner, subnet=shared.subnet)
        self.launcher: Launcher = LAUNCHERS[kind].for_run(spec, self.run_dir, self.emulated)
        self.children: dict[str, Handle] = {}  # worker -> its current incarnation
        self.spares: list[Handle] = []  # processors-to-be, imported and waiting for a slot
        self.spares_started = 0  # numbers their names: standby-1, standby-2, ...
        self.refill_by: float | None = None  # the pool is to be filled again by then
        self.spare_watch = Membership(spec.runtime.failure_timeout)  # the spares' heartbeats
        self.awaiting_whole: list[dict] = []  # failures after which the group is not whole yet
        self.incarnations: dict[str, int] = {}  # worker -> incarnations placed so far
        self.membership = Membership(spec.runtime.failure_timeout)
        self.killed: set[tuple[str, int]] = set()  # (worker, incarnation) the spec killed
        self.fenced: set[tuple[str, int]] = set()  # killed by us after a verdict on silence
        self.seen = Observed()
        self.throttle = Throttle(
            spec.stragglers, self.children.get, self.host_group, self.event, self.hung
        )
        self.last_batch = -1
        self.items_out = 0
        self.last_progress = time.monotonic()

    # -- set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        (self.run_dir / "logs").mkdir()
        write_resolved_spec(self.spec, self.run_dir / "spec.yaml")
        addresses = self.launcher.peer_addresses()
        if addresses:  # the workers read where their peers and the supervisor are
            (self.run_dir / ADDRESSES_FILE).write_text(json.dumps(addresses, indent=1) + "\n")
        if self.spec.transport == "tcp" and self.spec.port is None:
            count = wire.port_count(len(self.spec.storage))
            port = free_ports(count)
            if port is None:
                msg = f"no {count} consecutive free TCP ports found"
                raise RunFailed(msg)
            (self.run_dir / "port").write_text(str(port))
        new_run_token(self.run_dir)
        write_meta(self.spec, self.run_dir)
        self.plan = make_plan(self.spec, self.run_dir)

    def check_ports(self) -> None:
        """With ``transport: tcp``, the run's three ports must be free before anything
        starts: a run on a taken port would talk to the run that holds it."""
        if self.spec.transport != "tcp":
            return
        problem = port_problem(self.spec.port or base_port(self.run_dir), len(self.spec.storage))
        if problem:
            raise RunFailed(problem, exit_code=2)

    def emulate(self) -> None:
        """Make the emulated hosts, measure what one link and one host give, and record both
        beside what was asked in ``meta.json`` (``cluster``)."""
        assert self.emulated is not None
        began = time.monotonic()
        try:
            if self.shared is None:
                self.emulated.create()
            (self.run_dir / SUBNET_FILE).write_text(self.emulated.network + "\n")
            measured = self.emulated.measure() if self.shared is None else self.shared.measured
        except EmulationError as exc:
            raise RunFailed(str(exc), exit_code=2) from None
        took = time.monotonic() - began
        got = measured["measured"]
        said = ", ".join(
            part
            for part in (
                f"link {got['link_bit_s'] / 1e6:.0f} Mbit/s" if "link_bit_s" in got else "",
                f"cpu {got['cpu']:.3f}" if "cpu" in got else "",
            )
            if part
        )
        hosts, profile = self.emulated.hosts, self.emulated.emulate.profile
        self.event("emulated", f"{len(hosts)} hosts in {took:.1f} s; measured {said or 'nothing'}")
        addresses = {host: self.emulated.address(host) for host in hosts}
        placed = {
            worker: host_of(self.spec, worker) for worker in ("sink", "source", *self.spec.workers)
        }
        add_meta(
            self.run_dir,
            "cluster",
            {
                "launcher": self.launcher.kind,
                "emulated": True,
                "network": self.emulated.network,
                "profile": None if profile is None else profile.to_dict(),
                **measured,
                "addresses": addresses,
                "placement": placed,
            },
        )

    def compare_clocks(self) -> None:
        """Latencies subtract the source's clock from the sink's: where they run on other
        hosts, record once how far each host's clock is from this one's (``meta.json``
        ``clock_offset``, with the round trip that bounds the error)."""
        offsets = {}
        for name in ("sink", "source"):
            host = self.children[name].host
            measured = self.launcher.clock_offset(host)
            if measured is not None:
                offset, round_trip = measured
                offsets[name] = {"host": host, "offset_s": offset, "round_trip_s": round_trip}
                detail = f"{host} is {offset * 1e3:+.1f} ms (round trip {round_trip * 1e3:.1f} ms)"
                self.event("clock", detail, name)
        if offsets:
            add_meta(self.run_dir, "clock_offset", offsets)

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

    def spawn(self, name: str, expect_by: float | None = None) -> None:
        """Start the next incarnation of ``name`` from scratch."""
        incarnation = self.incarnations.get(name, 0) + 1
        handle = self.launcher.spawn(name, incarnation, host=host_of(self.spec, name))
        event = "spawned" if handle.incarnation == 1 else "restarted"
        self.place(handle, event, "", expect_by)

    def place(self, handle: Handle, event: str, how: str, expect_by: float | None = None) -> None:
        """``handle`` now fills its worker's slot (``expect_by``: see ``Membership.placed``)."""
        name = handle.worker
        self.children[name] = handle
        self.incarnations[name] = handle.incarnation
        if name.startswith("processor-"):
            self.membership.placed(name, handle.incarnation, expect_by)
        detail = f"pid {handle.pid}{how}, incarnation {handle.incarnation} on {handle.host}"
        self.event(event, detail, name)

    def spares_wanted(self) -> int:
        """Warm spares kept waiting: one per failure the scheme absorbs at once (r per EC
        group, c-1 per rep group), at least one; a scheme that recovers by replay keeps one."""
        runtime = self.spec.runtime
        if not (runtime.restart and runtime.standby):
            return 0
        scheme = self.plan.scheme
        return 1 if scheme.replay is not None else max(1, scheme.tolerates_at_once)

    def fill_spares(self) -> None:
        """Start spares until the pool is full. Each pays for Python and its imports (about a
        second of a core) now, while nothing waits for it, so that a slot never does."""
        self.refill_by = None
        while len(self.spares) < self.spares_wanted():
            self.spares_started += 1
            name = f"{STANDBY}-{self.spares_started}"
            spare = self.launcher.spare(name, host=host_of(self.spec, name))
            self.spares.append(spare)
            self.spare_watch.placed(name, 0, expect_by=time.monotonic() + SPARE_STARTUP)
            self.event("spawned", f"pid {spare.pid}, a warm spare on {spare.host}", name)

    def retire_spare(self, spare: Handle, event: str, detail: str) -> None:
        """Take a spare that died, stopped or fell silent out of the pool, for good."""
        self.spares.remove(spare)
        self.spare_watch.forget(spare.worker)
        spare.signal(signal.SIGKILL)  # no-op when it has ended
        self.event(event, detail, spare.worker)

    def adopt_spare(self, name: str, incarnation: int) -> Handle | None:
        """The first spare that runs (those already heard from first) takes ``name``'s slot;
        None when no spare can. A stopped spare is fenced instead: it would hold the slot."""
        self.spares.sort(key=lambda spare: not self.spare_watch.heard_from(spare.worker))
        while self.spares:
            spare = self.spares[0]
            if spare.stopped():
                self.retire_spare(spare, "fenced", f"SIGKILL pid {spare.pid}: stopped, not adopted")
                continue
            ready = self.spare_watch.heard_from(spare.worker)
            self.spares.remove(spare)
            self.spare_watch.forget(spare.worker)
            handle = self.launcher.adopt(spare, name, incarnation)
            if handle is None:
                self.event("exited", f"pid {spare.pid}, before it could be adopted", spare.worker)
                continue
            how = f" (warm spare {spare.worker}{'' if ready else ', still starting'})"
            due = time.monotonic() + (WARM_JOIN if ready else COLD_JOIN)
            self.place(handle, "restarted", how, expect_by=due)
            return handle
        return None

    def replace(self, name: str) -> None:
        """Put a processor back in its slot: a warm spare takes it over (it has already paid
        for starting Python and importing), else a fresh process is started; then the pool
        of spares is filled again for the next failure."""
        if self.adopt_spare(name, self.incarnations[name] + 1) is None:
            self.spawn(name, expect_by=time.monotonic() + COLD_JOIN)
        # Starting spares takes the CPU the replacements need for their first steps: the
        # pool is filled again once they are all back (``refill``), or soon in any case.
        self.refill_by = self.refill_by or time.monotonic() + REFILL_AFTER

    def refill(self) -> None:
        """Fill the pool of spares when a replacement used it and the group is whole again
        (or that is taking longer than ``REFILL_AFTER``)."""
        if self.refill_by is not None and (
            self.membership.whole() or time.monotonic() >= self.refill_by
        ):
            self.fill_spares()
            self.update_registry()

    def host_group(self, host: str) -> Path | None:
        """The CPU group of emulated host ``host`` when it has a quota (else None)."""
        emulated = self.emulated
        if emulated is None or emulated.cgroup is None or host not in emulated.hosts:
            return None
        return emulated.cgroup / host

    def event(self, event: str, detail: str = "", worker: str = "supervisor") -> None:
        with contextlib.suppress(OSError):  # a full disk must not stop the shutdown
            append_event(self.run_dir, time.time(), worker, event, detail)

    def register(self) -> None:
        self.live = LiveRun(
            run=f"{self.spec.name}/{self.run_dir.name}",
            setting=self.spec.run_id,
            run_dir=str(self.run_dir.resolve()),  # kill-worker may run from anywhere
            supervisor=os.getpid(),
            workers={},
        )
        self.update_registry()

    def update_registry(self) -> None:
        """Each worker's launcher, host, pid, incarnation and state, for ``ps``/``kill-worker``."""
        workers = dict(self.children)
        workers.update((spare.worker, spare) for spare in self.spares)  # the next slots' takers
        self.live.workers = {}
        for name, handle in workers.items():
            if handle.poll() is not None:
                state = "exited"
            elif (name, handle.incarnation) in self.fenced:
                state = "fenced"
            elif name in self.throttle.slowed:
                state = f"slowed {self.throttle.slowed[name]:g}x"  # stopped part of the time
            else:
                state = "spare" if is_spare(name) else "running"
            self.live.workers[name] = {**handle.record(), "state": state}
        self.live.save()

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict:
        self.prepare()
        wire.use_run(self.plan.token)
        ctx = zmq.Context()
        sink_sock = None
        stop: Interrupted | None = None
        error: str | None = None
        try:
            SIGNALS.arm()  # the first stop signal now raises Interrupted here (interrupt.py)
            self.register()  # before staging: a killed supervisor's rows are found
            self.check_ports()
            if self.emulated is not None:
                self.emulate()
            if self.spec.dataset.stage:
                self.stage()
            try:
                beats = wire.router(ctx, self.plan.address("supervisor"))
            except wire.CannotListen as exc:
                raise RunFailed(str(exc), exit_code=2) from None
            self.spawn("sink")
            sink_sock = wire.dealer(ctx, self.plan.address("sink"), "supervisor")
            wire.send(sink_sock, wire.HELLO, {"pid": os.getpid()})
            for name in self.spec.storage:  # the log's replicas, before the source logs
                self.spawn(name)
            self.spawn("source")
            self.compare_clocks()
            for i in range(self.spec.processors):
                self.spawn(f"processor-{i}")
            self.fill_spares()
            self.update_registry()
            self.loop(sink_sock, beats)
        except KeyboardInterrupt as exc:  # Interrupted; plain when no handler is installed
            stop = exc if isinstance(exc, Interrupted) else Interrupted()
            self.seen.exit_code = stop.exit_code
            self.event("interrupted", f"{stop.name}: stopping every worker, keeping the results")
            if sink_sock is not None:  # the sink writes what it has and stops the others
                wire.send(sink_sock, wire.STOP, block=False)
                self.wait_for_exit(["sink"], 2.0)
        except RunFailed as exc:
            SIGNALS.disarm()
            error = str(exc)
            self.seen.exit_code = exc.exit_code
            self.event("run failed", error)
        except OSError as exc:  # mostly: the disk of the run directory is full or failing
            error = f"{exc.strerror or exc}: {exc.filename or self.run_dir}"
            self.seen.exit_code = 2
        finally:
            SIGNALS.disarm()  # a stop signal from here on hurries the stop, never breaks it
            self.throttle.stop()  # nothing stays stopped or throttled while the run stops
            self.seen.slowdowns = self.throttle.applied
            self.shutdown()
            self.launcher.finish()
            ctx.destroy(linger=0)
            wire.remove_socket_files(self.run_dir)
            if self.emulated is not None:
                self.emulated.destroy()
            if hasattr(self, "live"):
                self.live.remove()
        logs = [self.run_dir / "wal.bin", *log_files(self.run_dir)]
        sizes = [path.stat().st_size for path in logs if path.exists()]
        self.seen.wal_bytes = sum(sizes) if sizes else None  # every replica's, with log: storage
        # The run is over: nothing left to replay or read (either can be gigabytes).
        for path in (*logs, self.run_dir / datasets.STAGED_FILE):
            path.unlink(missing_ok=True)
        late = SIGNALS.first()
        if stop is None and error is None and late is not None:  # after the stream ended
            self.seen.exit_code = late.exit_code
            self.event("interrupted", f"{late.name} after the end of the stream: nothing lost")
        interrupted = stop is not None or late is not None
        summary = summarise(self.plan, self.run_dir, self.seen, interrupted, error)
        if stop is not None:
            raise stop
        return summary

    def loop(self, sink_sock: zmq.Socket, beats: zmq.Socket) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        next_sample = 0.0
        memory_log = open(self.run_dir / "memory.csv", "w", newline="")  # noqa: SIM115
        memory = csv.writer(memory_log)
        memory.writerow(["time", "worker", "pid", "rss_mb", "peak_mb", "cpu_s"])
        exits = ExitWatch(sink_sock, beats)
        try:
            while True:
                exits.follow([*self.children.values(), *self.spares])
                ready = exits.wait(self.next_wake(next_sample))
                if beats in ready:
                    self.hear(beats)
                    self.restored()
                if sink_sock in ready and self.from_sink(sink_sock):
                    self.sample(memory)
                    return
                if self.seen.started_at is None and time.monotonic() > deadline:
                    msg = "workers did not start in time; see the logs/ of the run"
                    raise RunFailed(msg)
                if self.seen.started_at is not None and time.monotonic() - self.last_progress > (
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
                for verdict in self.membership.expire(time.monotonic()):
                    self.failed(verdict, sink_sock)
                for verdict in self.spare_watch.expire(time.monotonic()):
                    self.spare_failed(verdict)
                self.refill()
                if self.throttle.changed.is_set():
                    self.throttle.changed.clear()
                    self.update_registry()
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + 0.5
                    self.sample(memory)
                    memory_log.flush()
                self.progress(
                    {
                        "items_out": self.items_out,
                        "items": self.spec.dataset.items,
                        "elapsed": time.time() - (self.seen.started_at or time.time()),
                        "failures": len(self.seen.failures),
                        "batch": self.last_batch,
                    }
                )
        finally:
            exits.close()
            memory_log.close()

    def from_sink(self, sink_sock: zmq.Socket) -> bool:
        """Read what the sink said (progress); True once it reported the end of the run."""
        while True:
            try:
                msg = wire.recv(sink_sock, block=False)
            except zmq.Again:
                return False
            if msg.kind == wire.PROGRESS:
                if self.seen.started_at is None:  # the stream has started
                    self.seen.started_at = time.time()
                    self.throttle.start(self.seen.started_at)
                    self.seen.ticks_at_start = self.launcher.machine_ticks()
                    for name, handle in self.children.items():
                        sample = handle.sample()
                        if sample is not None:
                            self.seen.cpu_at_start[(name, handle.incarnation)] = sample.cpu_s
                self.last_batch = max(self.last_batch, msg.meta["batch"])
                self.last_progress = time.monotonic()
                self.items_out = msg.meta["items_out"]
            elif msg.kind == wire.DONE:
                return True

    def hear(self, beats: zmq.Socket) -> None:
        """Every processor's HELLO and HEARTBEAT (meta ``incarnation``) go to the membership,
        every spare's to the spares' own."""
        now = time.monotonic()
        while True:
            try:
                msg = wire.recv(beats, router=True, block=False)
            except zmq.Again:
                return
            if msg.kind in (wire.HELLO, wire.HEARTBEAT) and "incarnation" in msg.meta:
                members = self.spare_watch if is_spare(msg.sender or "") else self.membership
                members.heard(msg.sender, int(msg.meta["incarnation"]), now)

    def restored(self) -> None:
        """Once every failed incarnation has a successor and every slot's current incarnation
        is alive and heard from, the group is whole: each failure since gets its time to full
        tolerance. (A kill is recorded before its exit is seen: until then the membership
        still counts the killed incarnation, so the successors are checked too.)"""
        refilled = all(
            (self.membership.current(failure["worker"]) or 0) > failure["incarnation"]
            for failure in self.awaiting_whole
        )
        if not self.awaiting_whole or not refilled or not self.membership.whole():
            return
        now = time.time()
        for failure in self.awaiting_whole:
            took = now - failure["time"]
            failure["time_to_full_tolerance_s"] = round(took, 4)
            detail = (
                f"every processor slot live and heard from {took:.3f} s after the failure of "
                f"incarnation {failure['incarnation']}"
            )
            self.event("whole", detail, failure["worker"])
        self.awaiting_whole = []

    def next_wake(self, next_sample: float) -> float:
        """Seconds the loop may sleep: until the next memory sample or time-scheduled
        failure, and never longer than ``WAKE_S``."""
        now = time.monotonic()
        wake = min(WAKE_S, max(0.0, next_sample - now))
        if self.seen.started_at is not None:
            elapsed = time.time() - self.seen.started_at
            for index, failure in enumerate(self.spec.failures):
                if index not in self.seen.fired and failure.at is not None:
                    wake = min(wake, max(0.0, failure.at - elapsed))
        return wake

    def stall_limit(self) -> float:
        """Seconds without a committed batch after which the run is declared stuck."""
        per_batch = self.spec.batch / self.spec.rate if self.spec.rate else 0.0
        return max(STALL_TIMEOUT, 5 * per_batch)

    def sample(self, memory) -> None:
        """One row per live worker in memory.csv: RSS, peak RSS, CPU seconds so far."""
        self.seen.ticks_at_end = self.launcher.machine_ticks()
        for name, handle in self.children.items():
            sample = handle.sample()
            if sample is None:
                continue
            self.seen.peak_kb[name] = max(self.seen.peak_kb.get(name, 0), sample.peak_kb)
            self.seen.cpu_s[(name, handle.incarnation)] = sample.cpu_s
            row = [f"{time.time():.3f}", name, handle.pid, sample.rss_kb / 1024]
            memory.writerow([*row, sample.peak_kb / 1024, sample.cpu_s])

    def inject(self) -> None:
        if self.seen.started_at is None:
            return
        elapsed = time.time() - self.seen.started_at
        for index, failure in enumerate(self.spec.failures):
            if index in self.seen.fired:
                continue
            due = (failure.at is not None and elapsed >= failure.at) or (
                failure.at_batch is not None and self.last_batch >= failure.at_batch - 1
            )
            if not due:
                continue
            self.seen.fired.add(index)
            when = (
                f"at {elapsed:.2f}s" if failure.at is not None else f"at batch {failure.at_batch}"
            )
            for name in failure.kill:
                handle = self.children[name]
                if handle.poll() is not None:
                    continue
                self.killed.add((name, handle.incarnation))
                handle.signal(signal.SIGKILL)
                self.event("kill", f"SIGKILL pid {handle.pid} (scheduled {when})", name)
                self.record_failure(handle, "spec")

    def record_failure(self, handle: Handle, by: str) -> None:
        """One failure in the summary, with the signal that caused it: the one kill-worker
        sent (and when), SIGKILL for the spec's kills and fences, else what ended it."""
        sent = user_signal(self.run_dir, handle.pid) if by == "kill-worker" else None
        if sent is not None:
            sig, now = sent
        elif by in ("spec", "fenced"):
            sig, now = "SIGKILL", time.time()
        else:
            sig, now = signal_name(handle.poll()), time.time()
        failure = {
            "worker": handle.worker,
            "pid": handle.pid,
            "incarnation": handle.incarnation,
            "time": now,
            "elapsed_s": now - (self.seen.started_at or now),
            "after_batch": self.last_batch,
            "by": by,
            "signal": sig,
            "fenced": (handle.worker, handle.incarnation) in self.fenced,
            "time_to_full_tolerance_s": None,  # set once the group is whole again
        }
        self.seen.failures.append(failure)
        self.awaiting_whole.append(failure)

    def failed(self, verdict: Verdict, sink_sock: zmq.Socket) -> None:
        """Carry out a verdict: record it, tell the sink, and fence a silent incarnation."""
        self.event("detected", verdict.how, verdict.worker)
        meta = {"worker": verdict.worker, "incarnation": verdict.incarnation, "how": verdict.how}
        wire.send(sink_sock, wire.DIED, meta, block=False)
        handle = self.children.get(verdict.worker)
        if verdict.silent and handle is not None and handle.incarnation == verdict.incarnation:
            self.fenced.add((handle.worker, handle.incarnation))
            handle.signal(signal.SIGKILL)  # its exit then replaces it like any crash
            detail = f"SIGKILL pid {handle.pid}, incarnation {handle.incarnation}"
            self.event("fenced", detail, handle.worker)
            self.update_registry()

    def spare_failed(self, verdict: Verdict) -> None:
        """A spare fell silent (stopped, hung): fence it and start another."""
        spare = next((s for s in self.spares if s.worker == verdict.worker), None)
        if spare is not None:
            self.retire_spare(spare, "fenced", f"SIGKILL pid {spare.pid}: {verdict.how}")
            self.fill_spares()
            self.update_registry()

    def done_after_exit(self, sink_sock: zmq.Socket) -> bool:
        """A worker ended with code 0: the end of the stream (the sink's DONE is on its way,
        sent before it stopped the others), or it was told to stop (SIGTERM) before the end."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if sink_sock.poll(50) and self.from_sink(sink_sock):
                return True
        return False

    def hung(self, pid: int) -> bool:
        """Whether ``streamlec kill-worker`` stopped this pid (SIGSTOP) and did not resume it."""
        sent = user_signal(self.run_dir, pid)
        return sent is not None and sent[0] == "SIGSTOP"

    def killed_by_user(self, pid: int) -> bool:
        """Whether ``streamlec kill-worker`` sent this pid a signal (and did not resume it)."""
        return user_signal(self.run_dir, pid) is not None

    def how_it_ended(self, name: str, handle: Handle, code: int) -> str:
        """How the source or sink ended, naming the signal ``kill-worker`` sent it if any
        (its own handler may exit with code 0 after SIGTERM, which alone reads as a bug)."""
        sent = user_signal(self.run_dir, handle.pid)
        ended = f"the {name} exited with code {code}"
        return f"{ended} after kill-worker sent it {sent[0]}" if sent else ended

    def watch(self, sink_sock: zmq.Socket) -> None:
        ended = [spare for spare in self.spares if spare.poll() is not None]
        for spare in ended:
            self.retire_spare(spare, "exited", f"pid {spare.pid}, code {spare.poll()}")
        if ended:
            self.fill_spares()
            self.update_registry()
        for name, handle in list(self.children.items()):
            code = handle.poll()
            if code is None:
                continue
            if name.startswith("storage-") and code == 0:
                continue  # the source told it the stream is over
            if name in ("source", "sink") or name.startswith("storage-"):
                if code == 0 and self.done_after_exit(sink_sock):
                    raise _Done
                log = self.run_dir / "logs" / f"{name}.log"
                last = last_log_line(log)
                msg = self.how_it_ended(name, handle, code) + (f": {last}" if last else "")
                msg += f" (log: {log})"
                raise RunFailed(msg, exit_code=2 if code == 2 else 1)
            # A processor ends by itself only when the sink stops it at the end of the
            # stream; under load its exit can be seen before the sink's DONE is read.
            if (
                code == 0
                and not self.killed_by_user(handle.pid)
                and self.done_after_exit(sink_sock)
            ):
                raise _Done
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            key = (name, handle.incarnation)
            if key not in self.killed:
                by = "kill-worker" if self.killed_by_user(handle.pid) else "crash"
                if by == "crash" and key in self.fenced:
                    by = "fenced"
                if by != "kill-worker":
                    self.seen.unexpected.append(
                        f"{name} ({'silent, fenced' if by == 'fenced' else how})"
                    )
                self.record_failure(handle, by)
            self.event("exited", f"pid {handle.pid}, {how}", name)
            verdict = self.membership.exited(name, handle.incarnation, how)
            if verdict is not None:
                self.failed(verdict, sink_sock)
            if self.spec.runtime.restart:
                self.replace(name)
                self.seen.restarts += 1
            else:
                del self.children[name]
            self.update_registry()

    # -- the end --------------------------------------------------------------------------

    def wait_for_exit(self, names: list[str], timeout: float, hurry: bool = True) -> bool:
        """Whether these workers ended within ``timeout``; with ``hurry``, a second stop
        signal (``interrupt.SIGNALS``) ends the wait at once."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self.children[n].poll() is not None for n in names if n in self.children):
                return True
            if hurry and SIGNALS.hurried:
                return False
            time.sleep(0.02)
        return False

    def shutdown(self) -> None:
        """End of stream already told the workers to stop; then SIGTERM, then SIGKILL."""
        for spare in self.spares:  # a spare told that no slot will come ends by itself
            self.launcher.dismiss(spare)
            self.children[spare.worker] = spare
        self.spares = []
        names = list(self.children)
        if self.wait_for_exit(names, STOP_GRACE):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for name in names:
                handle = self.children[name]
                if handle.poll() is None:
                    self.event("stopping", f"{signal.Signals(sig).name} pid {handle.pid}", name)
                    handle.signal(sig)
            if self.wait_for_exit(names, 2.0, hurry=sig == signal.SIGTERM):
                return
