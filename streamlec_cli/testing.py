"""An in-process pipeline: the scheme logic driven in one process, without sockets.

A failure here means "slot j's outputs are missing from batch b onwards" (until the optional
``until`` batch, or, for ``reactive``, until the crash is detected and the slot restarted).
Everything else is the code the distributed runtime runs: ``Scheme.route`` at the source,
``Scheme.process`` at each slot, the scheme's ``Assembler`` and the algorithm's update at the
sink, and the reactive policy of rolling back to the last checkpoint and replaying the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .algorithms import Algorithm
from .reference import ModelHistory
from .schemes import Reactive, Scheme
from .schemes.base import Ledger, partial_statistics


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


def run_pipeline(
    scheme: Scheme,
    algorithm: Algorithm,
    batches: Sequence[np.ndarray],
    failures: Sequence[SlotFailure] = (),
    depth: int = 1,
    slow: Sequence[SlotFailure] = (),
    late: Sequence[SlotFailure] = (),
) -> PipelineResult:
    """Drive ``batches`` (dataset rows ``[y, x]``) through ``scheme`` in one process.

    ``slow`` slots' outputs arrive after all others but before the sink plans the extra
    round; ``late`` slots' outputs arrive after the round, just before the batch is final.
    """
    prepared = [algorithm.prepare(rows) for rows in batches]
    offsets = np.cumsum([0] + [rows.shape[0] for rows in prepared])
    items = int(offsets[-1])
    ledger = Ledger(items)
    predictions = np.full(items, np.nan)
    out = PipelineResult(np.empty(0), predictions, items, 0, 0, 0)
    reactive = isinstance(scheme, Reactive)
    pending = list(failures)  # reactive: a failure is over once detected and recovered
    history = ModelHistory(algorithm.init_model(prepared[0]), depth)
    checkpoint = (0, history.copy())
    delivered_upto = 0
    b = 0
    while b < len(prepared):
        dead = {f.slot for f in pending if f.dead_at(b)}
        model = history.current
        rows = prepared[b]
        assembler = scheme.assembler(algorithm, model, rows.shape[0])
        held: dict[int, np.ndarray] = {}  # each live slot keeps its inputs until committed
        slow_now = {f.slot for f in slow if f.dead_at(b)}
        late_now = {f.slot for f in late if f.dead_at(b)}
        delayed: dict[int, list] = {"slow": [], "late": []}
        for task in scheme.route(rows):
            if task.slot in dead:
                continue
            held[task.slot] = task.rows
            output = scheme.process(algorithm, model, task)
            if task.slot in slow_now:
                delayed["slow"].append(output)
            elif task.slot in late_now:
                delayed["late"].append(output)
            else:
                assembler.add(output)
        for output in delayed["slow"]:
            assembler.add(output)
        if reactive and not assembler.complete:
            # Detected: restart the slots, restore the last checkpoint, replay from the log.
            pending = [f for f in pending if f.slot not in dead or not f.dead_at(b)]
            b, history = checkpoint[0], checkpoint[1].copy()
            out.rollbacks += 1
            continue
        requests = assembler.recovery_requests(frozenset(dead))
        for slot, weights in requests.items():
            assembler.add_recovery(slot, partial_statistics(algorithm, held[slot], weights))
        for output in delayed["late"]:
            assembler.add(output)
        stats = assembler.statistics()  # as the sink: the model update first
        result = assembler.result()
        if b >= delivered_upto:
            keep = np.flatnonzero(~result.lost)
            ledger.deliver(offsets[b] + keep)
            predictions[offsets[b] + keep] = result.predictions[keep]
            out.decoded_items += result.decoded
            if result.items_lost:
                out.lost_batches.append(b)
            delivered_upto = b + 1
        else:
            out.replayed_batches += 1
        history.push(algorithm.update(history.latest, stats))
        if reactive and scheme.checkpoint_due(b):
            checkpoint = (b + 1, history.copy())
        b += 1
    out.model = history.latest
    out.items_lost = ledger.lost(items)
    out.items_duplicated = ledger.duplicated
    return out
