"""The single-process oracle: the same spec computed in one process with plain numpy.

Same batches, same update rule, same model versions (batch b is processed with the model
produced by batch b - depth), no scheme, no sockets. Every run is compared against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .algorithms import Algorithm, Stats


@dataclass
class ReferenceResult:
    model: np.ndarray
    predictions: np.ndarray
    batch_loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)


class ModelHistory:
    """The last ``depth`` model versions: batch b is processed with version max(0, b-depth+1).

    Versions are numbered by how many batches they have seen; ``current`` is the one the next
    batch uses, ``latest`` the newest.
    """

    def __init__(self, initial: np.ndarray, depth: int = 1) -> None:
        self.depth = depth
        self.versions = [initial]
        self.latest_version = 0

    @property
    def current(self) -> np.ndarray:
        return self.versions[0]

    @property
    def current_version(self) -> int:
        return self.latest_version - len(self.versions) + 1

    @property
    def latest(self) -> np.ndarray:
        return self.versions[-1]

    def push(self, model: np.ndarray) -> None:
        self.versions.append(model)
        self.latest_version += 1
        del self.versions[: max(0, len(self.versions) - self.depth)]

    def copy(self) -> ModelHistory:
        other = ModelHistory(self.versions[0], self.depth)
        other.versions = list(self.versions)
        other.latest_version = self.latest_version
        return other


def run_reference(
    algorithm: Algorithm, batches: Iterable[np.ndarray], depth: int = 1
) -> ReferenceResult:
    """Run the stream through ``algorithm`` in one process; rows are dataset rows ``[y, x]``."""
    history: ModelHistory | None = None
    predictions: list[np.ndarray] = []
    result = ReferenceResult(np.empty(0), np.empty(0))
    for raw in batches:
        rows = algorithm.prepare(raw)
        if history is None:
            history = ModelHistory(algorithm.init_model(rows), depth)
        model = history.current
        Z = algorithm.linear(model, rows)
        F = algorithm.coefficients(model, Z)
        stats: Stats = algorithm.statistics(rows, F)
        predictions.append(algorithm.predict(model, Z))
        result.batch_loss.append(float(algorithm.loss(model, Z).mean()))
        correct = algorithm.correct(model, Z)
        result.batch_accuracy.append(float(correct.mean()) if correct is not None else float("nan"))
        history.push(algorithm.update(history.latest, stats))
    result.model = history.latest if history is not None else np.empty(0)
    result.predictions = np.concatenate(predictions) if predictions else np.empty(0)
    return result


def max_rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """Normwise relative distance ``max|a - e| / max|e|`` (inf when shapes or NaNs differ)."""
    if actual.shape != expected.shape:
        return float("inf")
    if np.isnan(actual).any() or np.isnan(expected).any():
        return float("inf")
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    diff = float(np.abs(actual - expected).max()) if expected.size else 0.0
    return diff / scale if scale > 0 else diff
