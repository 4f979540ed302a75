"""The source: reads the stream, stamps arrivals, routes each batch to the processor slots.

Closed loop (``rate: max``) it keeps at most ``window`` batches beyond the last one the sink
acknowledged; open loop it releases item i at ``start + i / rate`` and a batch when its last
item has arrived, sleeping (on its sockets) until then. Routing is the scheme's: for EC the
data slices go out as soon as they are cut and the parities are computed while they travel.
A send to a dead processor fails at once and is skipped: the source never blocks on one.
When the scheme recovers by replay, every batch is in the fsynced write-ahead log before any
of it is sent (the source's own file, or, with ``log: storage``, acknowledged by every storage
worker, ``replica.py``), and a REPLAY from the sink resends the logged batches from the
checkpoint on (read back from the file, or from a storage worker).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np
import zmq

from .. import datasets
from ..clickmetrics import positive
from . import wire
from .plan import Plan
from .replica import LogUnavailable, ReplicatedLog
from .startup import Connections, Deadline, StartupTimeout, tell
from .storage import WriteAheadLog

REPLAY_WAIT = 10.0  # longest wait for a restarted processor before replaying regardless


class Source:
    """One stream's source. State: ``acked`` (flow control), ``epoch`` and ``next`` (what
    goes out next; below ``produced`` it is a replay from the log), ``hello`` (the incarnation
    each processor connection belongs to) and ``replay_wait``."""

    def __init__(
        self, plan: Plan, name: str = "source", startup_timeout: float | None = None
    ) -> None:
        self.plan = plan
        self.name = name
        self.startup_timeout = startup_timeout
        self.scheme = plan.scheme
        self.algorithm = plan.algorithm
        self.ctx = zmq.Context()
        self.to_sink = wire.dealer(self.ctx, plan.address("sink"), name)
        self.workers = wire.router(self.ctx, plan.address("source"))
        self.poller = zmq.Poller()
        self.poller.register(self.to_sink, zmq.POLLIN)
        self.poller.register(self.workers, zmq.POLLIN)
        policy = plan.scheme.replay
        self.wal: WriteAheadLog | ReplicatedLog | None = None
        if policy is not None and policy.storage:
            self.wal = ReplicatedLog(self.ctx, plan, policy.storage, name)
        elif policy is not None:
            self.wal = WriteAheadLog(plan.run_dir / "wal.bin", fsync=policy.wal_fsync)
        self.acked = -2  # -1 once the sink says every processor is up
        self.epoch = 0
        self.next = 0  # the batch to send next
        self.produced = 0  # batches read from the stream
        self.offset = 0  # items read from the stream
        self.stopped = False
        self.hello: dict[str, int] = {}  # processor -> incarnation of its connection
        self.replay_wait: dict[str, int] = {}  # new incarnations a replay waits for
        self.replay_deadline = 0.0
        wire.send(self.to_sink, wire.HELLO, {"pid": os.getpid()})

    # -- messages -------------------------------------------------------------------------

    def handle(self, timeout_ms: int) -> None:
        """Take in what the sockets have, waiting up to ``timeout_ms`` for the first."""
        for sock, _ in self.poller.poll(timeout_ms):
            if sock is self.workers:
                msg = wire.recv(self.workers, router=True)
                if msg.kind == wire.HELLO:
                    self.hello[msg.sender] = msg.meta["incarnation"]
                continue
            msg = wire.recv(self.to_sink)
            if msg.kind == wire.ACK:
                self.acked = max(self.acked, msg.meta["batch"])
            elif msg.kind == wire.REPLAY:
                self.epoch = msg.meta["epoch"]
                self.next = msg.meta["batch"]
                self.acked = msg.meta["batch"] - 1
                self.replay_wait = dict(msg.meta.get("wait_for", {}))
                self.replay_deadline = time.monotonic() + REPLAY_WAIT
            elif msg.kind == wire.STOP:
                self.stopped = True

    def waiting_for_replacements(self) -> bool:
        """A replay waits until the new incarnations it needs have connected here."""
        if self.replay_wait and time.monotonic() > self.replay_deadline:
            late = sorted(self.replay_wait)
            print(f"replay: no hello from {late} in time; replaying", flush=True)
            self.replay_wait.clear()
        return any(self.hello.get(w) != inc for w, inc in self.replay_wait.items())

    # -- routing --------------------------------------------------------------------------

    def emit(self, batch: int, offset: int, rows: np.ndarray, t_first: float, t_last: float):
        """Tasks first (EC: each slice as soon as it is cut), then the announcement, which
        says which incarnation of each processor got its task (-1: none, it is down)."""
        sent_to = [-1] * self.scheme.processors
        meta = {"batch": batch, "epoch": self.epoch, "role": ""}
        for task in self.scheme.route(rows):
            name = f"processor-{task.slot}"
            meta["role"] = task.role
            if wire.send(self.workers, wire.TASK, meta, [task.rows], to=name, block=False):
                sent_to[task.slot] = self.hello.get(name, 0)
        announcement = {
            "batch": batch,
            "offset": offset,
            "count": int(rows.shape[0]),
            "t_first": t_first,
            "t_last": t_last,
            "epoch": self.epoch,
            "sent_to": sent_to,
            "initial": batch == 0,
            "labels": self.algorithm.prediction_kind is not None,
        }
        arrays = [self.algorithm.init_model(rows)] if batch == 0 else []
        if announcement["labels"]:  # for the sink's labels.u8 (click-through metrics)
            arrays.append(positive(rows[:, 0]))
        wire.send(self.to_sink, wire.BATCH, announcement, arrays)
        self.next = batch + 1

    # -- pacing ---------------------------------------------------------------------------

    def pace(self, t_last: float) -> None:
        """Open loop: wait (on the sockets, then a short sleep) until ``t_last``."""
        delay = t_last - time.time()
        if delay > 0.002:
            self.handle(int((delay - 0.001) * 1000))
        delay = t_last - time.time()
        if delay > 0:
            time.sleep(delay)

    # -- the run --------------------------------------------------------------------------

    def wait_for_start(self) -> None:
        """Start when the sink says every processor is up (ACK of batch -1) and every
        processor has said hello here too (a task sent before that would be dropped); give
        up (``StartupTimeout``) after the start-up deadline."""
        deadline = Deadline(self.startup_timeout)
        sink = Connections({"sink": self.to_sink})
        try:
            while (self.acked < -1 or len(self.hello) < self.scheme.processors) and (
                not self.stopped
            ):
                if deadline.expired():
                    raise self.gave_up(sink.connected()["sink"], deadline.seconds or 0.0)
                self.handle(100)
        finally:
            sink.close()
        if not self.stopped:
            tell(self.name, "the sink reports every processor up; the stream has started")

    def gave_up(self, sink_connected: bool, seconds: float) -> StartupTimeout:
        """Who the source waited for: the sink, processors that never said hello here."""
        everyone = [f"processor-{i}" for i in range(self.scheme.processors)]
        missing = ([] if sink_connected else ["sink"]) + [
            p for p in everyone if p not in self.hello
        ]
        if missing:
            detail = f"{', '.join(missing)} never connected"
            if not sink_connected:
                detail += f" (the sink is expected at {self.plan.address('sink')})"
        else:
            detail = "every processor connected, but the sink did not start the stream"
        return StartupTimeout(self.name, seconds, missing, detail)

    def stream(self) -> Iterator[np.ndarray]:
        spec = self.plan.spec
        if spec.dataset.stage:  # written by the supervisor before the run
            width = 1 + datasets.feature_count(spec.dataset.name)
            path = self.plan.run_dir / datasets.STAGED_FILE
            return datasets.read_staged(path, width, spec.batch)
        return datasets.open_batches(spec.dataset, spec.batch)

    def run(self) -> None:
        tell(
            self.name,
            f"pid {os.getpid()}, run dir {self.plan.run_dir}; listens for processors at "
            f"{wire.bound(self.workers)}; connects to the sink at "
            f"{self.plan.address('sink')}",
        )
        try:
            self.wait_for_start()
            self.emit_all(self.stream())
            sent = f"{self.produced} batches, {self.offset} items"
            tell(self.name, f"stopped by the sink after {sent}")
        except datasets.DatasetError as exc:  # a bad line deep in a real file, or a file gone
            _give_up(str(exc))
        except OSError as exc:  # the disk of the write-ahead log is full or failing
            _give_up(f"cannot write in {self.plan.run_dir}: {exc.strerror or exc}")
        except LogUnavailable as exc:  # a storage worker of the log is gone
            print(f"error: {exc}", flush=True)
            raise SystemExit(1) from None
        finally:
            if self.wal is not None:
                self.wal.close()
            self.ctx.destroy(linger=0)

    def emit_all(self, stream: Iterator[np.ndarray]) -> None:
        rate = self.plan.spec.rate
        start = time.time()
        exhausted = end_sent = False
        while not self.stopped:
            blocked = self.next > self.acked + self.plan.window or self.waiting_for_replacements()
            if blocked or (exhausted and self.next >= self.produced):
                if exhausted and self.next >= self.produced and not end_sent:
                    end = {"batches": self.produced, "items": self.offset}
                    wire.send(self.to_sink, wire.END, end)
                    end_sent = True
                self.handle(50)
                continue
            self.handle(0)
            if self.next < self.produced:  # replaying from the log
                assert self.wal is not None
                self.emit(self.next, *self.wal.read(self.next))
                continue
            raw = next(stream, None)
            if raw is None:
                exhausted = True
                continue
            self.ingest(raw, rate, start)

    def ingest(self, raw: np.ndarray, rate: float | None, start: float) -> None:
        """One batch read from the stream: stamp, pace, log, send."""
        count, epoch = raw.shape[0], self.epoch
        if rate is None:
            t_first = t_last = time.time()
        else:
            t_first = start + self.offset / rate
            t_last = start + (self.offset + count - 1) / rate
            self.pace(t_last)
        rows = self.algorithm.prepare(raw)
        if self.wal is not None:
            self.wal.append(self.produced, self.offset, rows, t_first, t_last)
        if self.epoch == epoch:
            self.emit(self.produced, self.offset, rows, t_first, t_last)
        # else a REPLAY came while this batch arrived: it is in the log, and the replay,
        # which starts earlier, sends it in its turn
        self.produced += 1
        self.offset += count


def _give_up(problem: str) -> None:
    """End the source on bad input or a failing disk: one line for the run's error, exit 2."""
    print(f"error: {problem}", flush=True)
    raise SystemExit(2) from None


def run_source(plan: Plan, name: str = "source", startup_timeout: float | None = None) -> None:
    Source(plan, name, startup_timeout).run()
