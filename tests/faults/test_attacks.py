"""Faults an attacker would try next, with real processes and real signals: what the run
says about itself must be what happened, in its exit status and in ``summary.json`` alike.
"""

from __future__ import annotations

from test_runtime import events, run_spec

#: About 2 s of open-loop stream in 30 batches.
SMALL = {"dataset": {"name": "higgs", "items": 60_000, "seed": 5}, "batch": 2_000, "rate": 32_000}


def test_a_run_that_lost_items_says_exit_code_3_in_its_summary_too(tmp_path):
    """A kill under ``none`` in closed loop loses the tasks queued at the processor:
    ``streamlec run`` exits 3, and a script reading ``summary.json`` must see the same 3."""
    failures = [{"at_batch": 4, "kill": ["processor-5"]}]
    summary, _, proc = run_spec(tmp_path, exit_code=3, scheme={"name": "none"}, failures=failures)
    assert summary["complete"] and summary["items_lost"] > 0, summary
    assert summary["tolerated"] is False
    assert summary["exit_code"] == 3 == proc.returncode


def test_a_run_within_tolerance_says_exit_code_0_in_its_summary(tmp_path):
    failures = [{"at_batch": 10, "kill": ["processor-4", "processor-5"]}]
    summary, _, proc = run_spec(tmp_path, failures=failures, **SMALL)
    assert summary["items_lost"] == 0 and summary["reference"]["matches"], summary
    assert summary["exit_code"] == 0 == proc.returncode


def test_a_processor_busy_with_a_long_task_is_not_fenced(tmp_path):
    """k-means with 400 clusters on 15,000-row slices: each task takes longer than the
    default failure_timeout (0.5 s) on a busy 2-core machine. A healthy processor that is
    only computing keeps beating; fencing it lost every item of the run."""
    summary, run_dir, _ = run_spec(
        tmp_path,
        dataset={"name": "higgs", "items": 120_000, "seed": 5},
        algorithm={"name": "kmeans", "clusters": 400},
        batch=60_000,
    )
    log = events(run_dir)
    assert not [e for e in log if e["event"] in ("detected", "fenced", "items lost")], log
    assert summary["items_lost"] == 0 and summary["reference"]["matches"], summary
    assert summary["failures"] == [] and summary["unexpected_exits"] == []
