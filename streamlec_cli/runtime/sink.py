"""The sink process: receive, feed the commit core, carry out its actions, record results.

How a batch is decided lives in ``commit.CommitCore``; what is measured and written lives in
``recorder.RunRecorder``; which processor failed is the supervisor's membership's word
(``DIED``). This module is the loop that joins them to the sockets.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import zmq

from ..results import append_event
from . import wire
from .commit import Ack, Checkpoint, CommitCore, Deliver, Note, Recover, Replay, SendModels
from .plan import Plan
from .recorder import RunRecorder
from .startup import Deadline, StartupTimeout, tell
from .storage import write_checkpoint

PROGRESS_EVERY = 0.05  # seconds between progress reports to the supervisor


class Sink:
    def __init__(
        self,
        plan: Plan,
        name: str = "sink",
        startup_timeout: float | None = None,
        by_hand: bool = False,
    ) -> None:
        spec = plan.spec
        self.plan = plan
        self.name = name
        self.run_dir = plan.run_dir
        self.core = CommitCore(
            plan.scheme,
            plan.algorithm,
            depth=plan.depth,
            grace=spec.runtime.grace,
            answer_timeout=spec.runtime.failure_timeout,
        )
        self.recorder = RunRecorder(plan.run_dir, spec.runtime.warmup, plan.algorithm.classifier)
        self.ctx = zmq.Context()
        self.sock = wire.router(self.ctx, plan.address("sink"))
        self.processors = [f"processor-{i}" for i in range(spec.processors)]
        self.joined: set[str] = set()
        self.source_ready = False
        # A supervised run starts only once its supervisor is connected: a short stream can
        # end before it is, and the ROUTER would drop the DONE to an unknown peer.
        self.supervisor_ready = by_hand
        self.started = False
        self.startup = Deadline(startup_timeout)
        # Without a supervisor nobody else tells the source and the processors that the run
        # is over when the sink is interrupted: they would wait for it forever.
        self.by_hand = by_hand
        # Progress goes to the supervisor every PROGRESS_EVERY, and at once after the batch a
        # scheduled failure waits for (it kills after batch at_batch - 1 is committed).
        self.progress_sent = 0.0
        self.progress_batches = {f.at_batch - 1 for f in spec.failures if f.at_batch is not None}

    def event(self, event: str, detail: str = "", worker: str | None = None) -> None:
        append_event(self.run_dir, time.time(), worker or self.name, event, detail)

    def send(self, to: str, kind: str, meta: dict | None = None, arrays=()) -> bool:
        return wire.send(self.sock, kind, meta, arrays, to=to, block=False)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.event("started", f"pid {os.getpid()}")
        tell(
            self.name,
            f"pid {os.getpid()}, run dir {self.run_dir}; listens at "
            f"{wire.bound(self.sock)}; waiting for "
            f"{', '.join(self.absent())}",
        )
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            while True:
                events = poller.poll(timeout=5)
                now = time.time()
                if events:
                    for _ in range(256):  # drain what is there, then look at the clocks
                        if not wire.readable(self.sock):
                            break
                        if self.handle(wire.recv(self.sock, router=True), now) == "stop":
                            return
                        now = time.time()
                if not self.started and self.startup.expired():
                    self.give_up()
                self.core.tick(now)
                self.carry_out(now)
                self.recorder.flush_timeline(now - 0.2)
                if self.core.finished:
                    self.finish()
                    return
        except OSError as exc:  # the results' disk is full or failing: stop, keep what is written
            with contextlib.suppress(OSError):  # the log may be on the same full disk
                problem = exc.strerror or exc
                print(f"error: cannot write the results in {self.run_dir}: {problem}", flush=True)
            raise SystemExit(2) from None
        except (SystemExit, KeyboardInterrupt):
            if self.by_hand:
                self.event("stopped", "interrupted before the end of the stream")
                self.stop_workers()
                self.sock.close(linger=500)  # let the STOPs go out (at most 0.5 s)
            raise
        finally:
            with contextlib.suppress(OSError):
                self.recorder.close()
            self.ctx.destroy(linger=0)

    def handle(self, msg: wire.Message, now: float) -> str | None:
        kind, meta = msg.kind, msg.meta
        core = self.core
        if kind == wire.OUTPUT:
            out = wire.parse_output(msg)
            final = core.output(meta["batch"], meta["epoch"], out, meta["incarnation"])
            if final.size:
                self.recorder.final(meta["batch"], final, now)
        elif kind == wire.PARTIAL:
            partial = None if meta["missing"] else msg.arrays[0]
            core.answer(meta["batch"], meta["slot"], partial, meta["round"])
        elif kind == wire.BATCH:
            initial = msg.arrays[0] if meta["initial"] else None
            labels = msg.arrays[-1] if meta["labels"] else None
            batch, count = meta["batch"], meta["count"]
            args = (batch, meta["epoch"], meta["offset"], count, meta["sent_to"], now, initial)
            if core.announce(*args):
                self.recorder.announced(batch, count, meta["t_first"], meta["t_last"], labels)
        elif kind == wire.HELLO:
            self.hello(msg.sender, meta)
        elif kind == wire.DIED:
            core.slot_failed(Plan.slot_of(meta["worker"]), meta["incarnation"])
        elif kind == wire.END:
            core.end(meta["batches"], meta["items"])
        elif kind == wire.STOP:
            self.event("stopped", "stop requested before the end of the stream")
            self.write_summary(complete=False)
            self.stop_workers()
            return "stop"
        self.carry_out(now)
        return None

    def hello(self, worker: str, meta: dict) -> None:
        if worker == "source":
            self.source_ready = True
        elif worker == "supervisor":
            self.supervisor_ready = True
        elif worker.startswith("processor-"):
            self.joined.add(worker)
            self.core.joined(Plan.slot_of(worker), meta["incarnation"])
        if not self.started and not self.absent():
            self.started = True
            self.send("source", wire.ACK, {"batch": -1})
            self.send("supervisor", wire.PROGRESS, {"batch": -1, "items_out": 0, "items_lost": 0})
            self.event("all workers up")
            tell(self.name, "the source and every processor are up; the stream has started")

    def absent(self) -> list[str]:
        """The workers the stream still waits for (the source, processors not joined)."""
        source = [] if self.source_ready else ["source"]
        supervisor = [] if self.supervisor_ready else ["supervisor"]
        return supervisor + source + [p for p in self.processors if p not in self.joined]

    def give_up(self) -> None:
        """The start-up deadline passed: stop whoever came, and say who did not."""
        missing = self.absent()
        self.event("gave up", "start-up deadline passed; missing: " + ", ".join(missing))
        self.stop_workers()
        address = wire.bound(self.sock)
        detail = f"waited at {address} for {', '.join(missing)}, which never connected"
        raise StartupTimeout(self.name, self.startup.seconds or 0.0, missing, detail)

    # -- actions --------------------------------------------------------------------------

    def carry_out(self, now: float) -> None:
        for action in self.core.take():
            if isinstance(action, SendModels):
                meta = {"first": action.first, "reset": action.reset, "epoch": action.epoch}
                parts = wire.frames(wire.MODEL, meta, action.models)
                for slot in action.slots:
                    wire.send_frames(self.sock, parts, to=self.processors[slot], block=False)
            elif isinstance(action, Ack):
                self.send("source", wire.ACK, {"batch": action.batch})
            elif isinstance(action, Deliver):
                self.delivered(action, now)
            elif isinstance(action, Recover):
                meta = {"batch": action.batch, "round": action.round}
                self.send(self.processors[action.slot], wire.RECOVER, meta, [action.weights])
            elif isinstance(action, Checkpoint):
                write_checkpoint(self.run_dir / "checkpoint.npy", action.first, action.models)
            elif isinstance(action, Replay):
                self.recorder.rolled_back()
                meta = {"batch": action.batch, "epoch": action.epoch, "wait_for": action.wait_for}
                self.send("source", wire.REPLAY, meta)
            elif isinstance(action, Note):
                self.event(action.event, action.detail, action.worker)

    def delivered(self, done: Deliver, now: float) -> None:
        self.recorder.deliver(done)
        if done.result.items_lost and not done.replayed:
            self.event(
                "items lost",
                f"batch {done.batch}: {done.result.items_lost} items; no output from "
                f"{list(done.missing)}",
            )
        if done.batch in self.progress_batches or now - self.progress_sent >= PROGRESS_EVERY:
            self.progress_sent = now
            meta = {"batch": done.batch, "items_out": self.recorder.items_out}
            self.send("supervisor", wire.PROGRESS, {**meta, "items_lost": self.recorder.items_lost})

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> None:
        np.save(self.run_dir / "model.npy", self.core.window.latest)
        self.recorder.flush_timeline()
        summary = self.write_summary(complete=True)
        done = f"{summary['items_out']} items out, {summary['items_lost']} lost"
        self.event("finished", done)
        tell(self.name, f"finished: {summary['items_in']} items in, {done}")
        # The supervisor hears of the end first: a worker's exit seen before it reads as a crash.
        self.send("supervisor", wire.DONE, {"items_out": summary["items_out"]})
        self.stop_workers()

    def stop_workers(self) -> None:
        """End of stream: tell the source and every processor to exit."""
        for worker in ["source", *self.processors]:
            self.send(worker, wire.STOP)

    def write_summary(self, complete: bool) -> dict:
        core = self.core
        counters = {
            "batches_committed": core.next_commit,
            "recovery_rounds": core.recovery_rounds,
            "rollbacks": core.rollbacks,
            "replayed_batches": core.replayed_batches,
        }
        return self.recorder.summary(complete, core.total_items, counters)


def run_sink(
    plan: Plan, name: str = "sink", startup_timeout: float | None = None, by_hand: bool = False
) -> None:
    Sink(plan, name, startup_timeout, by_hand).run()
