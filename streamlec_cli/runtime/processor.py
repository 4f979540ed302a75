"""A processor: applies the model to its slot's rows and sends the results to the sink.

It holds nothing that matters beyond the model window the sink sends it and, for the EC
recovery round, the rows of batches not yet committed; a SIGKILL loses exactly that, and a
restarted processor gets the current model from the sink when it says hello.

``ProcessorCore`` is its state machine without I/O (tasks and models in, outputs and answers
out); ``run_processor`` is the loop around it, and ``testing.run_pipeline`` drives the same
core in one process.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import zmq

from ..algorithms import Algorithm
from ..schemes import Scheme, SlotOutput, Task
from ..schemes.base import partial_statistics
from ..window import ModelWindow
from . import wire
from .plan import Plan
from .startup import Connections, Deadline, StartupTimeout, tell

#: (batch, epoch, output) of one task, ready to go to the sink.
Emitted = tuple[int, int, SlotOutput]


class ProcessorCore:
    """One slot's work: a task waits for its model version, then becomes an output."""

    def __init__(self, slot: int, algorithm: Algorithm, scheme: Scheme, depth: int) -> None:
        self.slot = slot
        self.algorithm = algorithm
        self.scheme = scheme
        self.window = ModelWindow(depth)
        self.epoch = 0  # raised by a rollback; tasks of earlier epochs are dropped
        self.waiting: dict[int, tuple[Task, int]] = {}  # batch -> (task, epoch)
        self.held: dict[int, np.ndarray] = {}  # batch -> rows, for the recovery round

    def task(self, batch: int, epoch: int, role: str, rows: np.ndarray) -> list[Emitted]:
        """A task arrived; returns the outputs it (and nothing else) produced."""
        if epoch < self.epoch or (epoch == self.epoch and self.window.stale(batch)):
            return []  # sent before a rollback, or its batch is committed already
        task = Task(self.slot, role, rows)
        if epoch > self.epoch or not self.window.has(batch):
            # its model is yet to come (a task of a new epoch waits for the rollback's models)
            self.waiting[batch] = (task, epoch)
            return []
        return [self._work(batch, task, epoch)]

    def models(self, first: int, models: list[np.ndarray], reset: bool, epoch: int):
        """Model versions from the sink; returns the outputs of tasks that waited for them."""
        if reset:  # a rollback: only the new epoch's tasks count
            self.epoch = epoch
            self.waiting = {b: (t, e) for b, (t, e) in self.waiting.items() if e >= epoch}
        self.window.load(first, models, reset=reset)
        # Batches below the newest version are committed: their rows can go.
        newest = self.window.latest_version
        for batch in [b for b in self.held if b < newest]:
            del self.held[batch]
        out = []
        for batch in sorted(self.waiting):
            task, task_epoch = self.waiting[batch]
            if task_epoch > self.epoch:
                continue
            if self.window.stale(batch):
                del self.waiting[batch]
            elif self.window.has(batch):
                del self.waiting[batch]
                out.append(self._work(batch, task, task_epoch))
        return out

    def recover(self, batch: int, weights: np.ndarray) -> np.ndarray | None:
        """The answer to the sink's survivor round (None: this incarnation never had it)."""
        rows = self.held.get(batch)
        return None if rows is None else partial_statistics(self.algorithm, rows, weights)

    def _work(self, batch: int, task: Task, epoch: int) -> Emitted:
        out = self.scheme.process(self.algorithm, self.window.for_batch(batch), task)
        self.held[batch] = task.rows
        return batch, epoch, out


class Heartbeat:
    """A processor's hello and heartbeats to the supervisor, sent from a thread of their own:
    a task whose work takes longer than ``failure_timeout`` (a big batch, many clusters, a
    busy machine) must not read as silence and get a healthy processor fenced with the items
    it holds. The beats still stop when the process is stopped, and when its loop stops
    turning outside a task (blocked or hung) for ``failure_timeout``."""

    def __init__(self, ctx: zmq.Context, plan: Plan, name: str, hello: dict) -> None:
        runtime = plan.spec.runtime
        self.interval, self.timeout = runtime.heartbeat_interval, runtime.failure_timeout
        self.turned = time.monotonic()  # the loop's last turn
        self.busy = False  # inside a task, a model or a recovery answer
        self._stop = threading.Event()
        sock = wire.dealer(ctx, plan.address("supervisor"), name)  # used by the thread only
        args = (sock, hello, {"incarnation": hello["incarnation"]})
        self._thread = threading.Thread(target=self._beat, args=args, daemon=True)
        self._thread.start()

    def _beat(self, sock: zmq.Socket, hello: dict, beat: dict) -> None:
        wire.send(sock, wire.HELLO, hello, block=False)
        while not self._stop.wait(self.interval):
            if self.busy or time.monotonic() - self.turned < self.timeout:
                wire.send(sock, wire.HEARTBEAT, beat, block=False)
        sock.close(linger=0)

    def turn(self) -> None:
        """The loop turned: it is not hung."""
        self.turned = time.monotonic()

    @contextmanager
    def working(self) -> Iterator[None]:
        """The loop is busy with a message, however long its work takes."""
        self.busy = True
        try:
            yield
        finally:
            self.busy = False
            self.turn()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


def run_processor(
    plan: Plan, name: str, incarnation: int, startup_timeout: float | None = None
) -> None:
    """Process ``name``'s tasks until the sink or the source says STOP; give up (raise
    ``StartupTimeout``) when neither has sent anything within ``startup_timeout`` seconds."""
    slot = Plan.slot_of(name)
    core = ProcessorCore(slot, plan.algorithm, plan.scheme, plan.depth)
    wake_ms = max(1, int(1000 * plan.spec.runtime.heartbeat_interval))
    ctx = zmq.Context()
    to_sink = wire.dealer(ctx, plan.address("sink"), name)
    from_source = wire.dealer(ctx, plan.address("source"), name)
    tell(
        name,
        f"incarnation {incarnation}, pid {os.getpid()}, run dir {plan.run_dir}; connects to "
        f"the sink at {plan.address('sink')}, the source at {plan.address('source')} and "
        f"the supervisor at {plan.address('supervisor')}",
    )
    hello = {"pid": os.getpid(), "slot": slot, "incarnation": incarnation}
    for sock in (from_source, to_sink):
        wire.send(sock, wire.HELLO, hello, block=False)
    beats = Heartbeat(ctx, plan, name, hello)
    poller = zmq.Poller()
    poller.register(to_sink, zmq.POLLIN)
    poller.register(from_source, zmq.POLLIN)
    waiting: Connections | None = Connections({"sink": to_sink, "source": from_source})
    deadline = Deadline(startup_timeout)
    tasks = 0
    try:
        while True:
            beats.turn()
            events = dict(poller.poll(timeout=wake_ms))
            if waiting is not None and events:  # the first word from a peer: we are in
                waiting.close()
                waiting = None
                tell(name, "connected; the stream has started")
            elif waiting is not None and deadline.expired():
                raise _gave_up(plan, name, waiting, deadline)
            if from_source in events:
                msg = wire.recv(from_source)
                if msg.kind == wire.STOP:
                    tell(name, f"stopped by the source after {tasks} tasks")
                    return
                if msg.kind == wire.TASK:
                    meta = msg.meta
                    tasks += 1
                    with beats.working():
                        emitted = core.task(
                            meta["batch"], meta["epoch"], meta["role"], msg.arrays[0]
                        )
                        _send_outputs(to_sink, emitted, incarnation)
            if to_sink in events:
                msg = wire.recv(to_sink)
                meta = msg.meta
                if msg.kind == wire.MODEL:
                    reset = bool(meta.get("reset"))
                    with beats.working():
                        emitted = core.models(meta["first"], msg.arrays, reset, meta["epoch"])
                        _send_outputs(to_sink, emitted, incarnation)
                elif msg.kind == wire.RECOVER:
                    with beats.working():
                        partial = core.recover(meta["batch"], msg.arrays[0])
                    answer = {
                        "batch": meta["batch"],
                        "slot": slot,
                        "missing": partial is None,
                        "round": meta["round"],
                    }
                    wire.send(to_sink, wire.PARTIAL, answer, [] if partial is None else [partial])
                elif msg.kind == wire.STOP:
                    tell(name, f"stopped by the sink after {tasks} tasks")
                    return
    finally:
        beats.stop()
        if waiting is not None:
            waiting.close()
        ctx.destroy(linger=0)


def _gave_up(plan: Plan, name: str, waiting: Connections, deadline: Deadline) -> StartupTimeout:
    """Why a processor heard nothing: a peer it cannot reach, or a stream not started."""
    up = waiting.connected()
    missing = [peer for peer in ("sink", "source") if not up[peer]]
    if missing:
        where = " nor ".join(f"the {peer} at {plan.address(peer)}" for peer in missing)
        detail = f"it could not connect to {where}"
    else:
        everyone = f"processor-0..processor-{plan.spec.processors - 1}"
        detail = (
            "it is connected to the sink and the source, but the stream did not start: the "
            f"sink starts it once the source and every processor ({everyone}) have connected"
        )
    return StartupTimeout(name, deadline.seconds or 0.0, missing, detail)


def _send_outputs(sock: zmq.Socket, emitted: list[Emitted], incarnation: int) -> None:
    for batch, epoch, out in emitted:
        meta, arrays = wire.output_message(out, batch, epoch, incarnation)
        wire.send(sock, wire.OUTPUT, meta, arrays)
