"""The commit core: a batch's way from outputs to a committed model, without any I/O.

It is the sink's state machine, in the sans-IO shape: events go in (a batch announced, an
output, a survivor's answer, a slot failed or joined, the end of the stream, the clock), and
actions come out (send models, ack the source, ask survivors for partial statistics, replay,
checkpoint, deliver a batch's results). It imports no ZeroMQ and writes no file; the sink
process carries the actions out, and ``testing.run_pipeline`` drives the very same core over
in-memory queues.

The rules it keeps:

* batches commit in order; batch b is processed with the model window's version for b;
* a batch is final as soon as its scheme's assembler says it is sufficient; missing outputs
  not yet known lost get a short ``grace``, never a failure timeout, and no grace at all from
  a slot that is behind (its output was missing from one of the last ``TRUSTED_AFTER``
  committed batches: a slow processor, whose late outputs are ignored, must not delay every
  batch by the grace, nor every batch after it caught up for a moment);
* an output is ignored when it comes from an incarnation already declared failed, from an
  earlier epoch (before a rollback), or for a batch already committed;
* the survivor round of a scheme that needs one (EC ``attach: linear``) is planned without
  the slots known unavailable, and planned again without a survivor that does not answer;
* a scheme with a ``replay`` policy rolls back to its last checkpoint once every slot whose
  output was lost has a new incarnation, and the source replays from there; a replayed batch
  is committed again (the model must move on) but its items are delivered only once;
* anything else that lost outputs commits with the loss counted (never hidden).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..algorithms import Algorithm
from ..schemes import Assembler, BatchResult, Scheme, SlotOutput
from ..window import ModelWindow, version_for

STUCK_BATCH_TIMEOUT = 30.0  # a batch missing outputs of live slots for this long is cut
TRUSTED_AFTER = 10  # committed batches in time before a slot behind gets the grace again

# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendModels:
    """Send the model window (``first``, ``models``) to these slots."""

    slots: tuple[int, ...]
    first: int
    models: list[np.ndarray]
    reset: bool
    epoch: int


@dataclass(frozen=True)
class Ack:
    """Batches up to ``batch`` are final: the source may send more (flow control)."""

    batch: int


@dataclass(frozen=True)
class Recover:
    """Ask survivor ``slot`` for ``Y_s.T @ weights`` over its rows of ``batch``; ``round``
    numbers the batch's survivor rounds, and the answer names the round it answers (a round
    planned again has other weights: an answer to an earlier one must not count)."""

    slot: int
    batch: int
    weights: np.ndarray
    round: int


@dataclass(frozen=True)
class Replay:
    """Rollback done: the source resends from ``batch`` in ``epoch`` once these incarnations
    (worker -> incarnation) have said hello to it."""

    batch: int
    epoch: int
    wait_for: dict[str, int]


@dataclass(frozen=True)
class Checkpoint:
    """Persist this model window (the replay policy's checkpoint)."""

    first: int
    models: list[np.ndarray]


@dataclass(frozen=True)
class Deliver:
    """Batch ``batch`` is committed; ``replayed``: its items were delivered before."""

    batch: int
    epoch: int
    offset: int
    count: int
    result: BatchResult
    missing: tuple[int, ...]  # slots whose output never came
    recovery_round: bool
    model_version: int
    replayed: bool
    now: float


@dataclass(frozen=True)
class Note:
    """A line for the run's events."""

    event: str
    detail: str
    worker: str | None = None


Action = SendModels | Ack | Recover | Replay | Checkpoint | Deliver | Note


# -- state -------------------------------------------------------------------------------------


@dataclass
class Pending:
    """A batch announced by the source and not yet committed."""

    batch: int
    offset: int
    count: int
    announced: float
    sent_to: list[int]  # incarnation that got each slot's task, -1: none
    assembler: Assembler | None = None
    never: set[int] = field(default_factory=set)  # slots whose output cannot come
    sufficient_at: float | None = None
    recovery_sent_at: float | None = None
    recovery_excluded: set[int] = field(default_factory=set)
    recovery_rounds: int = 0


class CommitCore:
    """The sink's batch state machine; see the module docstring."""

    def __init__(
        self,
        scheme: Scheme,
        algorithm: Algorithm,
        depth: int = 1,
        grace: float = 0.05,
        answer_timeout: float = 0.5,
    ) -> None:
        self.scheme = scheme
        self.algorithm = algorithm
        self.grace = grace
        self.answer_timeout = answer_timeout  # survivors' answers, and a rollback's wait
        self.window = ModelWindow(depth)
        self.epoch = 0
        self.pending: dict[int, Pending] = {}
        self.stash: dict[int, list[SlotOutput]] = {}
        self.next_commit = 0
        self.delivered_upto = 0  # batches below were delivered (never again)
        self.total_batches: int | None = None
        self.total_items: int | None = None
        self.incarnation: dict[int, int] = {}  # slot -> its current incarnation
        self.down: set[int] = set()  # slots whose current incarnation failed
        self.behind: dict[int, int] = {}  # slot -> batches in time it still owes (see rules)
        self.failed: set[tuple[int, int]] = set()  # (slot, incarnation) declared failed
        self.checkpoint: tuple[int, list[np.ndarray]] | None = None
        # replay: slot -> incarnation whose output was lost, waited for before rolling back
        self.rollback_needs: dict[int, int] | None = None
        self.rollback_since = 0.0
        self.rollbacks = 0
        self.replayed_batches = 0
        self.recovery_rounds = 0
        self.actions: list[Action] = []

    def take(self) -> list[Action]:
        """The actions produced since the last call, in order."""
        actions, self.actions = self.actions, []
        return actions

    @property
    def finished(self) -> bool:
        return self.total_batches is not None and self.next_commit >= self.total_batches

    def live_slots(self) -> tuple[int, ...]:
        return tuple(s for s in range(self.scheme.processors) if s not in self.down)

    def _send_models(self, slots: tuple[int, ...], reset: bool = False) -> None:
        if self.window.empty or not slots:
            return
        first, models = self.window.snapshot()
        self.actions.append(SendModels(slots, first, models, reset, self.epoch))

    # -- membership ---------------------------------------------------------------------------

    def joined(self, slot: int, incarnation: int) -> None:
        """Incarnation ``incarnation`` of ``slot`` is up: it gets the current model."""
        old = self.incarnation.get(slot)
        self.incarnation[slot] = incarnation
        if (slot, incarnation) not in self.failed:
            self.down.discard(slot)
        if old is not None and old != incarnation:
            detail = f"incarnation {incarnation} (was {old})"
            self.actions.append(Note("rejoined", detail, f"processor-{slot}"))
        self._send_models((slot,))

    def slot_failed(self, slot: int, incarnation: int) -> None:
        """That incarnation is gone: its missing outputs will never come."""
        if (slot, incarnation) in self.failed:
            return
        self.failed.add((slot, incarnation))
        if self.incarnation.get(slot, incarnation) == incarnation:
            self.down.add(slot)
        for pending in self.pending.values():
            if pending.sent_to[slot] in (incarnation, -1) and (
                pending.assembler is None or slot in pending.assembler.missing
            ):
                pending.never.add(slot)

    # -- the stream ---------------------------------------------------------------------------

    def announce(
        self,
        batch: int,
        epoch: int,
        offset: int,
        count: int,
        sent_to: list[int],
        now: float,
        initial_model: np.ndarray | None = None,
    ) -> bool:
        """The source ingested a batch; False when the announcement is stale or repeated."""
        if epoch != self.epoch or batch in self.pending or batch < self.next_commit:
            return False
        if batch == 0 and self.window.empty:
            assert initial_model is not None, "batch 0 carries the initial model"
            self.window.push(np.array(initial_model))
            self._send_models(self.live_slots())
            if self.scheme.replay is not None:
                self._checkpoint()
        never = {
            s
            for s, incarnation in enumerate(sent_to)
            if incarnation == -1 or (s, incarnation) in self.failed
        }
        pending = Pending(batch, offset, count, now, list(sent_to), never=never)
        self.pending[batch] = pending
        self._open(pending)
        return True

    def _open(self, pending: Pending) -> None:
        version = version_for(pending.batch, self.window.depth)
        if pending.assembler is not None or version > self.window.latest_version:
            return
        pending.assembler = self.scheme.assembler(
            self.algorithm, self.window.versions[version], pending.count
        )
        for out in self.stash.pop(pending.batch, []):
            pending.assembler.add(out)

    def output(self, batch: int, epoch: int, slot_output: SlotOutput, incarnation: int):
        """One slot's output; returns the item offsets that became final with it (none for
        a replayed batch, whose items were delivered before)."""
        empty = np.empty(0, dtype=np.int64)
        if epoch != self.epoch or (slot_output.slot, incarnation) in self.failed:
            return empty
        pending = self.pending.get(batch)
        if pending is None or pending.assembler is None:
            if batch >= self.next_commit:
                self.stash.setdefault(batch, []).append(slot_output)
            return empty
        final = pending.assembler.add(slot_output)
        return final if batch >= self.delivered_upto else empty

    def answer(self, batch: int, slot: int, partial: np.ndarray | None, round: int) -> None:
        """A survivor's answer to ``Recover`` of survivor round ``round`` (``partial`` None:
        it never saw that batch). An answer to an earlier round of the batch is dropped."""
        pending = self.pending.get(batch)
        if pending is None or pending.assembler is None or round != pending.recovery_rounds:
            return
        if partial is None:  # that survivor was replaced: plan again without it
            pending.recovery_excluded.add(slot)
            pending.recovery_sent_at = None
        else:
            pending.assembler.add_recovery(slot, partial)

    def end(self, batches: int, items: int) -> None:
        self.total_batches, self.total_items = batches, items

    # -- the clock ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Commit every batch that can be committed, in order (or roll back)."""
        if self.rollback_needs is not None:
            if all(self._back(slot, lost, now) for slot, lost in self.rollback_needs.items()):
                self._rollback()
            return
        while True:
            pending = self.pending.get(self.next_commit)
            if pending is None or pending.assembler is None or not self._ready(pending, now):
                return
            self._commit(pending, now)

    def _ready(self, pending: Pending, now: float) -> bool:
        asm = pending.assembler
        assert asm is not None
        if asm.complete:
            return self._recovered(pending, now)
        known = asm.missing <= pending.never
        if asm.sufficient:
            if pending.sufficient_at is None:
                pending.sufficient_at = now
            expected = not asm.missing <= pending.never | self.behind.keys()
            if expected and now - pending.sufficient_at < self.grace:
                return False
            return self._recovered(pending, now)
        if self.scheme.replay is not None:
            lost = asm.missing & pending.never
            if lost:
                self._need_rollback(pending, lost, now)
            return False
        if known:
            return self._recovered(pending, now)
        if now - pending.announced > STUCK_BATCH_TIMEOUT:
            missing = sorted(asm.missing)
            self.actions.append(Note("timeout", f"batch {pending.batch}: no output from {missing}"))
            pending.never |= set(asm.missing)
            return self._recovered(pending, now)
        return False

    def _recovered(self, pending: Pending, now: float) -> bool:
        """Run the survivor round where the scheme needs one; True when it is done."""
        asm = pending.assembler
        assert asm is not None
        if pending.recovery_sent_at is None:
            unavailable = frozenset(pending.never | pending.recovery_excluded | self.down)
            requests = asm.recovery_requests(unavailable)
            pending.recovery_sent_at = now
            if not requests:
                return True
            self.recovery_rounds += 1
            pending.recovery_rounds += 1
            for slot, weights in requests.items():
                self.actions.append(Recover(slot, pending.batch, weights, pending.recovery_rounds))
            return False
        if asm.recovery_complete:
            return True
        if now - pending.recovery_sent_at > self.answer_timeout:
            # A survivor did not answer: plan again without it.
            pending.recovery_excluded |= asm.silent_survivors()
            pending.recovery_sent_at = None
        return False

    def _commit(self, pending: Pending, now: float) -> None:
        asm = pending.assembler
        assert asm is not None
        self._note_behind(asm.missing)
        new_model = self.algorithm.update(self.window.latest, asm.statistics())
        self.window.push(new_model)
        # The next batch waits for this model: it goes out (and the ack) before the rest.
        self._send_models(self.live_slots())
        self.actions.append(Ack(pending.batch))
        replayed = pending.batch < self.delivered_upto
        if replayed:
            self.replayed_batches += 1
        else:
            self.delivered_upto = pending.batch + 1
        self.actions.append(
            Deliver(
                batch=pending.batch,
                epoch=self.epoch,
                offset=pending.offset,
                count=pending.count,
                result=asm.result(),
                missing=tuple(sorted(asm.missing)),
                recovery_round=pending.recovery_rounds > 0,
                model_version=version_for(pending.batch, self.window.depth),
                replayed=replayed,
                now=now,
            )
        )
        del self.pending[pending.batch]
        self.next_commit += 1
        policy = self.scheme.replay
        if policy is not None and policy.checkpoint_due(pending.batch):
            self._checkpoint()
        for other in sorted(self.pending):
            self._open(self.pending[other])

    def _note_behind(self, missing: frozenset[int]) -> None:
        """A slot missing from a committed batch is behind until ``TRUSTED_AFTER`` in time."""
        for slot in list(self.behind):
            if slot not in missing:
                self.behind[slot] -= 1
                if self.behind[slot] <= 0:
                    del self.behind[slot]
        for slot in missing:
            self.behind[slot] = TRUSTED_AFTER

    # -- replay -------------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        first, models = self.window.snapshot()
        self.checkpoint = (first, list(models))
        self.actions.append(Checkpoint(first, list(models)))

    def _need_rollback(self, pending: Pending, slots: frozenset[int], now: float) -> None:
        """Roll back once these slots are back (see ``tick``)."""
        if self.rollback_needs is None:
            self.rollback_needs = {}
            self.rollback_since = now
        for slot in slots:
            if slot not in self.rollback_needs:
                sent = pending.sent_to[slot]
                self.rollback_needs[slot] = sent if sent >= 0 else self.incarnation.get(slot, -1)
                worker = f"processor-{slot}"
                self.actions.append(Note("recovery started", f"waiting for a new {worker}", worker))

    def _back(self, slot: int, lost: int, now: float) -> bool:
        """Whether ``slot`` can take part in a replay: a new incarnation joined, or the old one
        is provably alive (its output was lost some other way)."""
        if slot in self.down or slot not in self.incarnation:
            return False
        if self.incarnation[slot] != lost:
            return True
        return now - self.rollback_since > 2 * self.answer_timeout

    def _rollback(self) -> None:
        assert self.checkpoint is not None and self.rollback_needs is not None
        first, models = self.checkpoint
        self.epoch += 1
        self.rollbacks += 1
        self.window.load(first, models, reset=True)
        resume = self.window.latest_version  # version v has seen batches 0..v-1
        self.pending.clear()
        self.stash.clear()
        self.next_commit = resume
        waited = {f"processor-{s}": self.incarnation[s] for s in self.rollback_needs}
        self.rollback_needs = None
        self._send_models(self.live_slots(), reset=True)
        self.actions.append(Replay(resume, self.epoch, waited))
        self.actions.append(
            Note("rollback", f"to checkpoint after batch {resume - 1}; replay from {resume}")
        )
