"""Log loss and ROC AUC (``clickmetrics``) equal scikit-learn's on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from streamlec_cli import clickmetrics


@pytest.mark.parametrize("rate", [0.05, 0.5, 0.93])
@pytest.mark.parametrize("distinct", [3, 50, None])  # None: every score its own value
def test_roc_auc_equals_sklearn_with_and_without_ties(rate: float, distinct: int | None) -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    labels = rng.random(n) < rate
    scores = rng.normal(size=n) + 0.7 * labels
    if distinct is not None:  # heavy ties, across both classes
        scores = np.round(scores * distinct / 8) / distinct
    ours = clickmetrics.roc_auc(labels, scores)
    assert ours == pytest.approx(roc_auc_score(labels, scores), rel=1e-12, abs=0)


def test_roc_auc_of_margins_is_the_auc_of_their_ranking() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    scores = np.array([-2.0, 0.5, 0.5, 3.0, -1.0, -3.0])
    # pairs (1, 0): 0.5 vs {-2, 0.5, -1} -> 2.5; 3 vs all -> 3; -3 vs none -> 0; 5.5 / 9
    assert clickmetrics.roc_auc(labels, scores) == pytest.approx(5.5 / 9, rel=1e-15)
    assert clickmetrics.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_roc_auc_needs_both_labels() -> None:
    assert clickmetrics.roc_auc(np.zeros(5, dtype=bool), np.arange(5.0)) is None
    assert clickmetrics.roc_auc(np.ones(5, dtype=bool), np.arange(5.0)) is None


def test_log_loss_equals_sklearn_also_at_certain_predictions() -> None:
    rng = np.random.default_rng(3)
    n = 10_000
    labels = rng.random(n) < 0.05
    p = rng.random(n)
    p[:10] = 0.0  # certain and right or wrong: sklearn clips to [eps, 1 - eps] as we do
    p[10:20] = 1.0
    p[20:30] = 1.0 / (1.0 + np.exp(-20.0))  # logreg's most confident probability
    ours = clickmetrics.log_loss(labels, p)
    assert ours == pytest.approx(log_loss(labels, p, labels=[0, 1]), rel=1e-12)


def test_score_leaves_out_lost_items_and_gives_svm_no_log_loss() -> None:
    labels = np.array([1, 0, 1, 0, 0], dtype=bool)
    predictions = np.array([0.9, 0.2, np.nan, 0.4, np.nan])
    got = clickmetrics.score(labels, predictions, clickmetrics.PROBABILITY)
    assert (got.items, got.positives, got.roc_auc) == (3, 1, 1.0)
    keep = np.isfinite(predictions)
    assert got.log_loss == pytest.approx(log_loss(labels[keep], predictions[keep]))
    margins = clickmetrics.score(labels, predictions, clickmetrics.MARGIN)
    assert margins.log_loss is None and margins.roc_auc == 1.0


def test_score_run_reads_the_run_files_per_batch_and_whole(tmp_path) -> None:
    """``predictions.f64`` and ``labels.u8`` hold the delivered batches in order; a replayed
    row of ``batches.csv`` (a reactive rollback) wrote nothing there and is skipped."""
    rng = np.random.default_rng(5)
    counts = [400, 400, 250]
    n = sum(counts)
    labels = rng.random(n) < 0.1
    p = np.clip(rng.normal(0.1 + 0.3 * labels, 0.2), 0.001, 0.999)
    p[17] = np.nan  # a lost item
    labels[400:800] = False  # batch 1 has one label only: no AUC
    p.tofile(tmp_path / "predictions.f64")
    labels.astype(np.uint8).tofile(tmp_path / clickmetrics.LABELS_FILE)
    rows = [
        "batch,offset,count,replayed",
        "0,0,400,0",
        "1,400,400,1",  # replayed after a rollback: delivered again below
        "1,400,400,0",
        "2,800,250,0",
    ]
    (tmp_path / "batches.csv").write_text("\n".join(rows) + "\n")

    whole = clickmetrics.score_run(tmp_path, clickmetrics.PROBABILITY)
    keep = np.isfinite(p)
    assert whole is not None and whole.items == n - 1
    assert whole.log_loss == pytest.approx(log_loss(labels[keep], p[keep]), rel=1e-12)
    assert whole.roc_auc == pytest.approx(roc_auc_score(labels[keep], p[keep]), rel=1e-12)

    import pandas as pd

    per_batch = pd.read_csv(tmp_path / clickmetrics.BATCH_METRICS_FILE)
    assert per_batch["batch"].tolist() == [0, 1, 2]
    assert per_batch["items_scored"].tolist() == [399, 400, 250]
    assert np.isnan(per_batch["roc_auc"][1])
    for b, part in ((0, slice(0, 400)), (2, slice(800, 1050))):
        y, q = labels[part][keep[part]], p[part][keep[part]]
        assert per_batch["log_loss"][b] == pytest.approx(log_loss(y, q, labels=[0, 1]), rel=1e-12)
        assert per_batch["roc_auc"][b] == pytest.approx(roc_auc_score(y, q), rel=1e-12)


def test_score_run_without_labels_is_none(tmp_path) -> None:
    np.zeros(3).tofile(tmp_path / "predictions.f64")
    assert clickmetrics.score_run(tmp_path, clickmetrics.MARGIN) is None
