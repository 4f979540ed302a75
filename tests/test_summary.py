"""The run's verdict against the single-process reference: true in both directions."""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli import datasets
from streamlec_cli.reference import run_reference
from streamlec_cli.runtime.console import restored_line
from streamlec_cli.runtime.plan import make_plan
from streamlec_cli.runtime.summary import compare_with_reference, tolerance_restored
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
