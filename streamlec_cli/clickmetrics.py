"""Click-through metrics of a binary classifier's stream: log loss and ROC AUC.

Where about 5% of the items are clicks (KDD12), accuracy says little: always predicting "no
click" scores 95%. The numbers that judge a click-through model are its log loss (how good its
probabilities are) and its ROC AUC (how well its scores rank clicks above the rest), measured
progressively as online-learning libraries such as River do: every item is predicted by a
model that has not yet learned from it (batch b uses the model of batch b - depth), so the
metrics of the delivered predictions are the model's held-out quality.

Label 1 is ``y > 0.5`` (labels 0/1 and -1/+1 alike, as the algorithms read them). What a
prediction says about it is the algorithm's ``prediction_kind``:

* ``probability`` (logreg): P(label 1). Log loss and ROC AUC.
* ``margin`` (svm): w.x + b, larger for label 1. ROC AUC only: a margin is no probability,
  and squashing it into one would be a model of our own, not the run's; log loss is None.

Both are exact and vectorised: log loss as scikit-learn's ``log_loss`` computes it
(probabilities clipped to [eps, 1 - eps], eps the float64 machine epsilon), ROC AUC as the
Mann-Whitney statistic with ties counted one half (what ``roc_auc_score`` gives), from one sort
of the smaller class and a binary search of the other's scores in it. ``score_run`` reads a run
directory's ``predictions.f64`` and ``labels.u8`` (the sink writes both, item by item, in the
order of the stream) and gives the run's metrics and each batch's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBABILITY = "probability"
MARGIN = "margin"
KINDS = (PROBABILITY, MARGIN)
LABELS_FILE = "labels.u8"  # one byte per item of the stream: 1 for label 1, else 0
_EPS = float(np.finfo(np.float64).eps)


def positive(y: np.ndarray) -> np.ndarray:
    """Which labels are label 1 (``y > 0.5``), as a bool array."""
    return np.asarray(y) > 0.5


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Mean of ``-log p`` over label-1 items and ``-log(1 - p)`` over the others (p clipped to
    [eps, 1 - eps]); None without items."""
    if not labels.size:
        return None
    p = np.clip(probabilities, _EPS, 1.0 - _EPS)
    return float(-np.mean(np.where(labels, np.log(p), np.log(1.0 - p))))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """The probability that a label-1 item scores above a label-0 one (ties count one half);
    None unless both labels occur."""
    pos, neg = scores[labels], scores[~labels]
    if not pos.size or not neg.size:
        return None
    # 2U = sum over one class of (other-class items strictly on the losing side) + (those not
    # on the winning side): each tie counts once instead of twice.
    if pos.size <= neg.size:
        ranked = np.sort(pos)
        below = np.searchsorted(ranked, neg, "left")  # label-1 items scoring below each 0
        upto = np.searchsorted(ranked, neg, "right")
        twice_u = 2 * pos.size * neg.size - int(below.sum()) - int(upto.sum())
    else:
        ranked = np.sort(neg)
        below = np.searchsorted(ranked, pos, "left")  # label-0 items scoring below each 1
        upto = np.searchsorted(ranked, pos, "right")
        twice_u = int(below.sum()) + int(upto.sum())
    return twice_u / (2 * pos.size * neg.size)


@dataclass(frozen=True)
class Scores:
    """The metrics of a set of predictions (None where undefined)."""

    items: int  # items with a prediction (lost items and NaN predictions left out)
    positives: int
    log_loss: float | None
    roc_auc: float | None

    def to_dict(self) -> dict:
        rate = self.positives / self.items if self.items else None
        return {
            "log_loss": self.log_loss,
            "roc_auc": self.roc_auc,
            "items_scored": self.items,
            "positives": self.positives,
            "positive_rate": rate,
            "majority_accuracy": None if rate is None else max(rate, 1.0 - rate),
        }


def score(labels: np.ndarray, predictions: np.ndarray, kind: str) -> Scores:
    """Metrics of the items whose prediction is a number (a lost item's is NaN)."""
    keep = np.isfinite(predictions)
    labels, predictions = labels[keep], predictions[keep]
    return Scores(
        items=int(labels.size),
        positives=int(np.count_nonzero(labels)),
        log_loss=log_loss(labels, predictions) if kind == PROBABILITY else None,
        roc_auc=roc_auc(labels, predictions),
    )


BATCH_METRICS_FILE = "batch_metrics.csv"
BATCH_METRICS_COLUMNS = (
    "batch",
    "offset",
    "count",
    "items_scored",
    "positives",
    "log_loss",
    "roc_auc",
)


def score_run(run_dir: Path, kind: str) -> Scores | None:
    """The run's metrics over every delivered item, and ``batch_metrics.csv``: each delivered
    batch's (in the rows of ``batches.csv`` not replayed, whose items ``predictions.f64`` holds
    in that order). None when the run has no labels (an algorithm without a ``prediction_kind``,
    or a run from before labels were kept)."""
    found = _read(run_dir)
    if found is None:
        return None
    labels, predictions = found
    n = labels.size
    with open(run_dir / BATCH_METRICS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BATCH_METRICS_COLUMNS)
        writer.writeheader()
        start = 0
        for batch, offset, count in _delivered(run_dir / "batches.csv"):
            part = slice(start, min(start + count, n))
            start += count
            got = score(labels[part], predictions[part], kind)
            writer.writerow(
                {
                    "batch": batch,
                    "offset": offset,
                    "count": count,
                    "items_scored": got.items,
                    "positives": got.positives,
                    "log_loss": "" if got.log_loss is None else got.log_loss,
                    "roc_auc": "" if got.roc_auc is None else got.roc_auc,
                }
            )
    return score(labels, predictions, kind)


def score_runs(run_dirs: list[Path], kind: str) -> Scores | None:
    """The metrics of several runs' delivered predictions together (the pairs of a run with
    ``pairs``: one ROC AUC over all their items); None when one of them has no labels."""
    found = [_read(run_dir) for run_dir in run_dirs]
    if not found or any(part is None for part in found):
        return None
    labels = np.concatenate([part[0] for part in found if part is not None])
    predictions = np.concatenate([part[1] for part in found if part is not None])
    return score(labels, predictions, kind)


def _read(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, predictions)`` of a run directory, item by item; None without labels."""
    path = run_dir / LABELS_FILE
    if not path.exists() or not (run_dir / "predictions.f64").exists():
        return None
    labels = np.fromfile(path, dtype=np.uint8).astype(bool)
    predictions = np.fromfile(run_dir / "predictions.f64", dtype=np.float64)
    n = min(labels.size, predictions.size)  # equal, unless the sink died between the writes
    return labels[:n], predictions[:n]


def _delivered(path: Path) -> list[tuple[int, int, int]]:
    """``(batch, offset, count)`` of each delivered batch, in delivery order."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            (int(row["batch"]), int(row["offset"]), int(row["count"]))
            for row in csv.DictReader(f)
            if row["replayed"] != "1"
        ]
