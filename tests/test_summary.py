"""The run's verdicts are true: the reference in both directions, tolerance per batch, the
real signal of each failure."""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli import datasets
from streamlec_cli.reference import run_reference
from streamlec_cli.runtime.console import how_it_failed, metrics_line, restored_line, verdict
from streamlec_cli.runtime.plan import make_plan
from streamlec_cli.runtime.summary import (
    batch_tolerance,
    compare_with_reference,
    tolerance_restored,
)
from streamlec_cli.spec import parse


@pytest.fixture
def finished_run(tmp_path):
    """A run directory holding exactly the reference's predictions and model."""
    (spec,) = parse(
        {
            "name": "verdict",
            "dataset": {"name": "higgs", "items": 3_000, "seed": 4},
            "algorithm": {"name": "svm", "lr": 0.05},
            "processors": 2,
            "batch": 1_000,
        }
    )
    plan = make_plan(spec, tmp_path)
    ref = run_reference(plan.algorithm, datasets.open_batches(spec.dataset, spec.batch))
    ref.predictions.astype(np.float64).tofile(tmp_path / "predictions.f64")
    np.save(tmp_path / "model.npy", ref.model)
    return spec, plan, tmp_path, ref


def test_the_reference_itself_matches(finished_run):
    spec, plan, run_dir, _ = finished_run
    verdict = compare_with_reference(spec, run_dir, plan)
    assert verdict["matches"] and verdict["max_rel_err"] == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_model_is_never_a_match(finished_run, bad):
    spec, plan, run_dir, ref = finished_run
    np.save(run_dir / "model.npy", np.full_like(ref.model, bad))  # predictions still agree
    verdict = compare_with_reference(spec, run_dir, plan)
    assert not verdict["matches"]
    assert verdict["max_rel_err"] is None and verdict["model_rel_err"] is None


def test_a_non_finite_prediction_is_never_a_match(finished_run):
    spec, plan, run_dir, ref = finished_run
    predictions = ref.predictions.copy()
    predictions[1_500] = np.inf
    predictions.tofile(run_dir / "predictions.f64")
    verdict = compare_with_reference(spec, run_dir, plan)
    assert not verdict["matches"] and verdict["predictions_rel_err"] is None


def ec42_plan(tmp_path, processors: int = 6):
    (spec,) = parse(
        {
            "name": "tolerance",
            "dataset": {"name": "higgs", "items": 3_000},
            "scheme": {"name": "ec", "k": 4, "r": 2},
            "processors": processors,
            "batch": 1_000,
        }
    )
    return make_plan(spec, tmp_path)


def batches_csv(tmp_path, missing_per_batch: list[str]):
    """A ``batches.csv`` with only the columns the verdict reads: batch, missing_slots."""
    path = tmp_path / "batches.csv"
    rows = ["batch,missing_slots"] + [f"{b},{m}" for b, m in enumerate(missing_per_batch)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_two_pairs_of_kills_in_different_batches_are_tolerated(tmp_path):
    # EC(4,2): processors 4 and 5 out in batches 5-6, then 1 and 2 in batch 40. Four slots
    # failed in the run, but never more than two at once: within what the code absorbs.
    missing = [""] * 50
    missing[5] = missing[6] = "4 5"
    missing[40] = "1 2"
    verdict = batch_tolerance(ec42_plan(tmp_path), batches_csv(tmp_path, missing))
    assert verdict["tolerated"] is True
    assert verdict["most_missing_at_once"] == 2
    assert verdict["most_missing_batch"] == 5 and verdict["most_missing_slots"] == [4, 5]


def test_three_slots_missing_in_one_batch_are_not_tolerated(tmp_path):
    missing = ["", "1", "1 2 3", ""]
    verdict = batch_tolerance(ec42_plan(tmp_path), batches_csv(tmp_path, missing))
    assert verdict["tolerated"] is False
    assert verdict["most_missing_at_once"] == 3
    assert (verdict["most_missing_batch"], verdict["most_missing_slots"]) == (2, [1, 2, 3])


def test_tolerance_is_per_group_within_a_batch(tmp_path):
    # Two EC(4,2) groups: two slots missing in each at once is within tolerance; three in one
    # group is not, even with fewer missing in the batch as a whole.
    plan = ec42_plan(tmp_path, processors=12)
    assert batch_tolerance(plan, batches_csv(tmp_path, ["0 1 6 7"]))["tolerated"] is True
    assert batch_tolerance(plan, batches_csv(tmp_path, ["6 7 8"]))["tolerated"] is False


def test_a_run_without_batches_missed_nothing(tmp_path):
    verdict = batch_tolerance(ec42_plan(tmp_path), tmp_path / "batches.csv")
    assert verdict["tolerated"] is True and verdict["most_missing_at_once"] == 0


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        ({"by": "spec", "signal": "SIGKILL"}, "SIGKILLed (as the spec says)"),
        ({"by": "kill-worker", "signal": "SIGTERM"}, "SIGTERMed (by kill-worker)"),
        (
            {"by": "kill-worker", "signal": "SIGSTOP", "fenced": True},
            "SIGSTOPped (by kill-worker), then fenced",
        ),
        ({"by": "fenced", "signal": "SIGKILL", "fenced": True}, "silent, fenced with SIGKILL"),
        ({"by": "crash", "signal": "SIGSEGV"}, "killed by SIGSEGV (crash)"),
        ({"by": "crash", "signal": None}, "exited by itself (crash)"),
    ],
)
def test_a_failure_is_told_with_its_real_signal(failure, words):
    assert how_it_failed(failure).startswith(words)


def test_time_to_full_tolerance_is_summarised_and_shown():
    failures = [{"time_to_full_tolerance_s": t} for t in (0.04, 0.02, 0.09, None)]
    summary = tolerance_restored(failures)
    assert summary == {
        "time_to_full_tolerance_median_s": 0.04,
        "time_to_full_tolerance_max_s": 0.09,
        "failures_not_restored": 1,
    }
    line = restored_line(summary)
    assert line is not None
    assert "0.04 s after each failure (median), 0.09 s max" in line
    assert "1 failure(s) not restored" in line
    assert restored_line(tolerance_restored([])) is None  # no failure: nothing to say


def test_the_metrics_line_puts_accuracy_beside_the_commoner_labels() -> None:
    logreg = {
        "prediction_kind": "probability",
        "roc_auc": 0.71234,
        "log_loss": 0.19876,
        "accuracy": 0.9512,
        "majority_accuracy": 0.9471,
    }
    assert metrics_line(logreg) == (
        "  metrics:   ROC AUC 0.7123, log loss 0.1988, "
        "accuracy 95.1% (always the commoner label: 94.7%)"
    )
    svm = {**logreg, "prediction_kind": "margin", "log_loss": None, "roc_auc": None}
    assert metrics_line(svm) == (
        "  metrics:   ROC AUC - (one label only), no log loss (margin, no probability), "
        "accuracy 95.1% (always the commoner label: 94.7%)"
    )
    assert metrics_line({"loss": 1.0, "accuracy": None}) is None  # linreg, kmeans


def test_the_reference_scores_its_own_predictions(finished_run) -> None:
    """The reference's log loss and ROC AUC (svm: of its margins) are sklearn's."""
    from sklearn.metrics import roc_auc_score

    spec, plan, run_dir, ref = finished_run
    labels = np.concatenate(list(datasets.open_batches(spec.dataset, spec.batch)))[:, 0] > 0.5
    metrics = compare_with_reference(spec, run_dir, plan)["metrics"]
    assert metrics["log_loss"] is None  # a margin is no probability
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, ref.predictions), rel=1e-12)
    assert metrics["items_scored"] == 3_000 and metrics["positives"] == labels.sum()


@pytest.mark.parametrize(("measured", "noted"), [(0.6, True), (5.0, False)])
def test_a_throughput_measured_over_a_short_window_says_so(measured, noted) -> None:
    summary = {
        "complete": True,
        "items_in": 1000,
        "items_out": 1000,
        "items_lost": 0,
        "items_duplicated": 0,
        "failures": [],
        "throughput_items_per_s": 2.5e6,
        "measured_seconds": measured,
        "latency_ms": {"p50": 1.0, "p99": 2.0},
    }
    text = verdict(summary)
    assert ("measured over 0.6 s after the warm-up only: raise dataset.items" in text) == noted
