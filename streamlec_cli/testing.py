"""An in-process pipeline: the runtime's own cores driven in one process over queues.

The sink's ``CommitCore`` and every processor's ``ProcessorCore`` are the very objects the
distributed runtime runs; here the source is a loop over the batches, the sockets are lists,
and the clock is virtual. A failure is the death of a slot's incarnation: the messages it had
not sent are dropped, the core is told (as the supervisor's membership would tell the sink),
and the slot stays empty until ``until`` (a scheme that recovers by replay gets a new
incarnation at once, as the supervisor's replacement would). ``slow`` and ``late`` slots only
delay their outputs: after every other output but before the sink plans its survivor round,
or after that round, just before the batch is final.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import algorithms, schemes
from .algorithms import Algorithm
from .runtime.commit import CommitCore, Deliver, Recover, Replay, SendModels
from .runtime.processor import ProcessorCore
from .schemes import Scheme, SlotOutput
from .schemes.base import Ledger


@contextlib.contextmanager
def registered(*classes: type) -> Iterator[None]:
    """Algorithms and schemes registered for the duration of a ``with`` block (a test's),
    unregistered afterwards whatever happens."""
    done: list[tuple[object, str]] = []
    try:
        for cls in classes:
            package = schemes if issubclass(cls, Scheme) else algorithms
            package.register(cls)
            done.append((package, cls.name))
        yield
    finally:
        for package, name in reversed(done):
            package.unregister(name)


@dataclass(frozen=True)
class SlotFailure:
    """Slot ``slot`` produces nothing from batch ``batch`` until batch ``until`` (exclusive)."""

    slot: int
    batch: int
    until: int | None = None

    def dead_at(self, batch: int) -> bool:
        return self.batch <= batch and (self.until is None or batch < self.until)


@dataclass
class PipelineResult:
    model: np.ndarray
    predictions: np.ndarray  # per stream item; NaN where lost
    items_in: int
    items_lost: int
    items_duplicated: int
    decoded_items: int
    rollbacks: int = 0
    replayed_batches: int = 0
    lost_batches: list[int] = field(default_factory=list)


@dataclass
class _Sent:
    """An output on its way to the sink."""

    slot: int
    incarnation: int
    batch: int
    epoch: int
    output: SlotOutput


class InProcessPipeline:
    """The source, P processors and the sink's core in one process (see the module)."""

    GRACE = 0.05
    ANSWER_TIMEOUT = 0.5

    def __init__(
        self, scheme: Scheme, algorithm: Algorithm, batches: Sequence[np.ndarray], depth: int = 1
    ) -> None:
        self.scheme = scheme
        self.algorithm = algorithm
        self.depth = depth
        self.prepared = [algorithm.prepare(rows) for rows in batches]
        self.offsets = np.cumsum([0] + [rows.shape[0] for rows in self.prepared])
        items = int(self.offsets[-1])
        self.core = CommitCore(scheme, algorithm, depth, self.GRACE, self.ANSWER_TIMEOUT)
        self.processors: dict[int, ProcessorCore | None] = {}
        self.incarnation: dict[int, int] = {}
        self.outbox: list[_Sent] = []
        self.now = 0.0
        self.replay_from: int | None = None
        self.ledger = Ledger(items)
        self.result = PipelineResult(np.empty(0), np.full(items, np.nan), items, 0, 0, 0)
        for slot in range(scheme.processors):
            self.start(slot)

    # -- membership ---------------------------------------------------------------------------

    def start(self, slot: int) -> None:
        """A new incarnation fills the slot and says hello to the sink."""
        self.incarnation[slot] = self.incarnation.get(slot, 0) + 1
        self.processors[slot] = ProcessorCore(slot, self.algorithm, self.scheme, self.depth)
        self.core.joined(slot, self.incarnation[slot])
        self.pump()

    def kill(self, slot: int) -> None:
        """The slot's incarnation dies: what it had not sent is lost; the core is told."""
        self.processors[slot] = None
        self.outbox = [sent for sent in self.outbox if sent.slot != slot]
        self.core.slot_failed(slot, self.incarnation[slot])

    # -- message passing ----------------------------------------------------------------------

    def _emit(self, slot: int, emitted) -> None:
        for batch, epoch, out in emitted:
            self.outbox.append(_Sent(slot, self.incarnation[slot], batch, epoch, out))

    def pump(self) -> None:
        """Carry out the core's actions until it has none."""
        while actions := self.core.take():
            for action in actions:
                if isinstance(action, SendModels):
                    for slot in action.slots:
                        proc = self.processors[slot]
                        if proc is not None:
                            args = (action.first, action.models, action.reset, action.epoch)
                            self._emit(slot, proc.models(*args))
                elif isinstance(action, Recover):
                    proc = self.processors[action.slot]
                    if proc is not None:  # a dead survivor never answers
                        partial = proc.recover(action.batch, action.weights)
                        self.core.answer(action.batch, action.slot, partial, action.round)
                elif isinstance(action, Deliver):
                    self.delivered(action)
                elif isinstance(action, Replay):
                    self.replay_from = action.batch

    def deliver(self, slots: set[int] | None = None) -> None:
        """Hand the outputs of these slots (all: None) to the sink's core."""
        keep = []
        for sent in self.outbox:
            if slots is None or sent.slot in slots:
                self.core.output(sent.batch, sent.epoch, sent.output, sent.incarnation)
            else:
                keep.append(sent)
        self.outbox = keep

    def step(self, slots: set[int] | None = None, wait: float = 0.0) -> None:
        """Deliver, let ``wait`` seconds pass, let the core decide, carry out its actions."""
        self.deliver(slots)
        self.now += wait
        self.core.tick(self.now)
        self.pump()

    def delivered(self, done: Deliver) -> None:
        result, out = done.result, self.result
        if done.replayed:
            out.replayed_batches += 1
            return
        keep = np.flatnonzero(~result.lost)
        self.ledger.deliver(self.offsets[done.batch] + keep)
        out.predictions[self.offsets[done.batch] + keep] = result.predictions[keep]
        out.decoded_items += result.decoded
        if result.items_lost:
            out.lost_batches.append(done.batch)

    # -- the stream ---------------------------------------------------------------------------

    def send(self, b: int) -> None:
        """The source: route batch b to the live slots, then announce it."""
        rows = self.prepared[b]
        sent_to = [-1] * self.scheme.processors
        for task in self.scheme.route(rows):
            proc = self.processors[task.slot]
            if proc is not None:
                sent_to[task.slot] = self.incarnation[task.slot]
                self._emit(task.slot, proc.task(b, self.core.epoch, task.role, task.rows))
        initial = self.algorithm.init_model(rows) if b == 0 else None
        offset, count = int(self.offsets[b]), rows.shape[0]
        self.core.announce(b, self.core.epoch, offset, count, sent_to, self.now, initial)
        self.pump()

    def run(
        self,
        failures: Sequence[SlotFailure] = (),
        slow: Sequence[SlotFailure] = (),
        late: Sequence[SlotFailure] = (),
    ) -> PipelineResult:
        struck: set[int] = set()  # failures already carried out
        b = 0
        while b < len(self.prepared):
            for slot, proc in self.processors.items():
                ended = any(f.slot == slot and f.until == b for f in failures)
                if proc is None and ended:
                    self.start(slot)
            self.send(b)
            for index, failure in enumerate(failures):
                if failure.batch == b and index not in struck:
                    struck.add(index)
                    self.kill(failure.slot)
                    if self.scheme.replay is not None:
                        self.start(failure.slot)  # the supervisor replaces it at once
            slow_now = {f.slot for f in slow if f.dead_at(b)}
            late_now = {f.slot for f in late if f.dead_at(b)}
            on_time = set(self.processors) - slow_now - late_now
            self.step(on_time)
            self.step(on_time | slow_now)
            self.step(on_time | slow_now, wait=2 * self.GRACE)  # plans the survivor round
            for _ in range(4):  # the late outputs, then whatever the core still waits for
                self.step(wait=2 * self.ANSWER_TIMEOUT)
                if self.core.next_commit > b or self.replay_from is not None:
                    break
            if self.replay_from is not None:
                b, self.replay_from = self.replay_from, None
                continue
            if self.core.next_commit <= b:
                msg = f"batch {b} was not committed: the pipeline is stuck"
                raise RuntimeError(msg)
            b += 1
        out = self.result
        out.model = self.core.window.latest
        out.items_lost = self.ledger.lost(out.items_in)
        out.items_duplicated = self.ledger.duplicated
        out.rollbacks = self.core.rollbacks
        return out


def run_pipeline(
    scheme: Scheme,
    algorithm: Algorithm,
    batches: Sequence[np.ndarray],
    failures: Sequence[SlotFailure] = (),
    depth: int = 1,
    slow: Sequence[SlotFailure] = (),
    late: Sequence[SlotFailure] = (),
) -> PipelineResult:
    """Drive ``batches`` (dataset rows ``[y, x]``) through ``scheme`` in one process."""
    return InProcessPipeline(scheme, algorithm, batches, depth).run(failures, slow, late)
