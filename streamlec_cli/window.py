"""The model window: which model version a batch is processed with, and which to keep.

Versions count the batches applied: version v has seen batches 0..v-1. With pipeline depth D,
batch b is processed with version ``max(0, b - D + 1)`` (D = 1: the model of the batch just
before, the synchronous pipeline). Once version v exists no batch below v - D + 1 is still
open, so a window keeps the D newest versions and nothing older.

One implementation serves the sink (the authoritative model), each processor (its copy) and
the single-process reference, so the three can never disagree on a version.
"""

from __future__ import annotations

import numpy as np


def version_for(batch: int, depth: int) -> int:
    """The model version batch ``batch`` is processed with."""
    return max(0, batch - depth + 1)


class ModelWindow:
    """The ``depth`` newest model versions, by number."""

    def __init__(self, depth: int = 1) -> None:
        self.depth = depth
        self.versions: dict[int, np.ndarray] = {}
        self.latest_version = -1

    @classmethod
    def starting(cls, initial: np.ndarray, depth: int = 1) -> ModelWindow:
        window = cls(depth)
        window.push(initial)
        return window

    @property
    def empty(self) -> bool:
        return self.latest_version < 0

    @property
    def latest(self) -> np.ndarray:
        return self.versions[self.latest_version]

    @property
    def first_version(self) -> int:
        return min(self.versions) if self.versions else 0

    def push(self, model: np.ndarray) -> int:
        """Add the next version; versions no open batch can need any more are dropped."""
        self.latest_version += 1
        self.versions[self.latest_version] = model
        self._trim()
        return self.latest_version

    def has(self, batch: int) -> bool:
        """Whether the model batch ``batch`` is processed with is here."""
        return version_for(batch, self.depth) in self.versions

    def stale(self, batch: int) -> bool:
        """Whether ``batch``'s model was dropped already: the batch is committed."""
        return bool(self.versions) and version_for(batch, self.depth) < self.first_version

    def for_batch(self, batch: int) -> np.ndarray:
        return self.versions[version_for(batch, self.depth)]

    def snapshot(self) -> tuple[int, list[np.ndarray]]:
        """``(first version, models)``: what a newcomer or a checkpoint needs."""
        first = self.first_version
        return first, [self.versions[v] for v in range(first, self.latest_version + 1)]

    def load(self, first: int, models: list[np.ndarray], reset: bool = False) -> None:
        """Take versions ``first, first+1, ...`` (``reset``: forget every other one first)."""
        if reset:
            self.versions.clear()
            self.latest_version = -1
        for i, model in enumerate(models):
            self.versions[first + i] = model
        self.latest_version = max(self.latest_version, first + len(models) - 1)
        self._trim()

    def _trim(self) -> None:
        for version in [v for v in self.versions if v <= self.latest_version - self.depth]:
            del self.versions[version]

    def copy(self) -> ModelWindow:
        other = ModelWindow(self.depth)
        other.versions = dict(self.versions)
        other.latest_version = self.latest_version
        return other
