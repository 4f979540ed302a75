"""Partitioned routing shared by ``none``, ``rep`` and ``reactive``.

The batch is cut into contiguous parts, one per group; every slot of a group receives its
group's whole part (one slot per group without replication, ``copies`` with it). The first
output of a group to arrive is final; later copies are ignored, so no item counts twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..algorithms import Algorithm, Stats
from ..params import MODE, SHAPE, Param
from .base import PART, Assembler, BatchResult, ReplayPolicy, Scheme, Task, contiguous_parts


class Partitioned(Scheme):
    """``processors`` slots in groups of ``copies``; group g covers the g-th contiguous part."""

    copies = 1

    @property
    def groups(self) -> int:
        return self.processors // self.copies

    def group_of(self, slot: int) -> int:
        return slot // self.copies

    def route(self, rows: np.ndarray) -> Iterator[Task]:
        for g, (lo, hi) in enumerate(contiguous_parts(rows.shape[0], self.groups)):
            part = rows[lo:hi]
            for c in range(self.copies):
                yield Task(g * self.copies + c, PART, part)

    def assembler(self, algorithm: Algorithm, model: np.ndarray, count: int) -> Assembler:
        return PartitionAssembler(self, algorithm, model, count)

    def tolerates(self, failed) -> bool:
        hit: dict[int, int] = {}
        for slot in set(failed):
            hit[self.group_of(slot)] = hit.get(self.group_of(slot), 0) + 1
        return all(n < self.copies for n in hit.values())

    @property
    def tolerates_at_once(self) -> int:
        return (self.copies - 1) * self.groups


class PartitionAssembler(Assembler):
    def __init__(self, scheme: Partitioned, algorithm: Algorithm, model: np.ndarray, count: int):
        super().__init__(algorithm, model, count)
        self.scheme = scheme
        self.ranges = contiguous_parts(count, scheme.groups)
        self.first: dict[int, int] = {}  # group -> slot whose output counts
        self._expected = frozenset(range(scheme.processors))

    @property
    def expected(self) -> frozenset[int]:
        return self._expected

    @property
    def complete(self) -> bool:
        # A group is done with its first copy: later copies are not waited for.
        return len(self.first) == self.scheme.groups

    @property
    def missing(self) -> frozenset[int]:
        done = set(self.first)
        return frozenset(s for s in self._expected if self.scheme.group_of(s) not in done)

    @property
    def sufficient(self) -> bool:
        return self.complete

    def _became_final(self, slot: int) -> np.ndarray:
        group = self.scheme.group_of(slot)
        if group in self.first:
            return np.empty(0, dtype=np.int64)
        self.first[group] = slot
        lo, hi = self.ranges[group]
        return np.arange(lo, hi)

    def statistics(self) -> Stats:
        alg = self.algorithm
        parts = [self.outputs[self.first[group]].stats for group in sorted(self.first)]
        return Stats.total(parts, alg.d, alg.outputs, alg.summed)

    def result(self) -> BatchResult:
        results = np.full((self.count, 3), np.nan)
        lost = np.ones(self.count, dtype=bool)
        for group in sorted(self.first):
            lo, hi = self.ranges[group]
            results[lo:hi] = self.outputs[self.first[group]].results
            lost[lo:hi] = False
        return self._finish(results, lost, decoded=[])


class NoScheme(Partitioned):
    """No redundancy: a crashed slot's items of that batch are lost (and reported)."""

    name = "none"


class Replication(Partitioned):
    """Every item goes to ``copies`` slots; the first copy to arrive wins."""

    name = "rep"
    aliases = ("replication",)
    parameters = (Param("copies", int, 3, "slots that get every item", minimum=2, label=SHAPE),)
    family_format = "rep-{copies}x"


class Reactive(Partitioned):
    """Partitioned, plus a write-ahead log and periodic checkpoints (recovery by replay).

    Routing and assembling are those of ``none``; what differs is the recovery policy
    (``replay``), which the commit core carries out: on a missing output, restore the last
    checkpoint and replay the logged batches since, delivering each item's result once.
    The log is backed up to ``replicas`` storage workers (``log: storage``, the paper's backup
    to persistent storage) or kept on the source's own disk (``log: source``).
    """

    name = "reactive"
    aliases = ("checkpoint",)
    parameters = (
        Param("checkpoint_every", int, 10, "batches between checkpoints of the model", minimum=1),
        Param("wal_fsync", bool, True, "the write-ahead log is fsynced per batch"),
        Param(
            "log",
            str,
            "storage",
            "where the write-ahead log lives: storage workers, or the source's own disk",
            choices=("source", "storage"),
            label=MODE,
        ),
        Param(
            "replicas",
            int,
            2,
            "storage workers that hold every batch",
            minimum=1,
            applies_when=("log", "storage"),
        ),
    )
    checkpoint_every: int
    wal_fsync: bool
    log: str
    replicas: int

    def __init__(self, processors: int, *args, **kwargs) -> None:
        super().__init__(processors, *args, **kwargs)
        replicas = self.replicas if self.log == "storage" else 0
        self.replay = ReplayPolicy(self.checkpoint_every, self.wal_fsync, self.log, replicas)

    def tolerates(self, failed) -> bool:
        return True  # every crash is recovered by replay

    @property
    def tolerates_at_once(self) -> int:
        return self.processors
