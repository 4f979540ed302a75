"""The single-process oracle: the same spec computed in one process with plain numpy.

Same batches, same update rule, same model versions (batch b is processed with the model
produced by batch b - depth), no scheme, no sockets. Every run is compared against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .algorithms import Algorithm, Stats
from .window import ModelWindow

BatchMetrics = tuple[float, float]  # (mean loss, accuracy or NaN) of one batch


@dataclass
class ReferenceResult:
    model: np.ndarray
    predictions: np.ndarray
    batch_loss: list[float] = field(default_factory=list)
    batch_accuracy: list[float] = field(default_factory=list)


def iter_reference(
    algorithm: Algorithm, batches: Iterable[np.ndarray], depth: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray, BatchMetrics]]:
    """Stream the reference: per batch ``(predictions, model after the batch, metrics)``."""
    window: ModelWindow | None = None
    for b, raw in enumerate(batches):
        rows = algorithm.prepare(raw)
        if window is None:
            window = ModelWindow.starting(algorithm.init_model(rows), depth)
        model = window.for_batch(b)
        Z = algorithm.linear(model, rows)
        F = algorithm.coefficients(model, Z)
        stats: Stats = algorithm.statistics(rows, F)
        correct = algorithm.correct(model, Z)
        metrics = (
            float(algorithm.loss(model, Z).mean()),
            float(correct.mean()) if correct is not None else float("nan"),
        )
        window.push(algorithm.update(window.latest, stats))
        yield algorithm.predict(model, Z), window.latest, metrics


def run_reference(
    algorithm: Algorithm, batches: Iterable[np.ndarray], depth: int = 1
) -> ReferenceResult:
    """Run the stream through ``algorithm`` in one process; rows are dataset rows ``[y, x]``."""
    result = ReferenceResult(np.empty(0), np.empty(0))
    predictions: list[np.ndarray] = []
    for batch_predictions, model, (loss, accuracy) in iter_reference(algorithm, batches, depth):
        predictions.append(batch_predictions)
        result.batch_loss.append(loss)
        result.batch_accuracy.append(accuracy)
        result.model = model
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
