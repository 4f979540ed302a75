"""``streamlec baseline spark``: the same stream through Spark Structured Streaming, its
driver SIGKILLed for real mid-stream and restarted from its checkpoint."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streamlec_cli import datasets, spec
from streamlec_cli.algorithms import make_algorithm
from streamlec_cli.baselines.spark import SparkBaseline, from_spec, run_baseline
from streamlec_cli.cli import main
from streamlec_cli.reference import run_reference

MOTIVATION = Path(__file__).resolve().parents[1] / "experiments" / "motivation.yaml"


def test_without_pyspark_the_error_says_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark raises ImportError
    result = CliRunner().invoke(
        main, ["baseline", "spark", str(MOTIVATION), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "pip install '.[engines]'" in result.output
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())  # no run directory for a run that never started


def test_the_stream_comes_from_the_motivation_spec() -> None:
    settings = from_spec(spec.load(MOTIVATION)[0])
    assert settings == {
        "name": "motivation",
        "dataset": "higgs",
        "items": 60_000,
        "seed": 1,
        "batch": 2000,
        "rate": 2000.0,
        "lr": 0.05,
        "l2": 0.0001,
        "kill_at_batch": 10,
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_driver_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install '.[test]'")
    config = SparkBaseline(items=2400, batch=200, rate=400.0, kill_at_batch=4)
    run_dir = run_baseline(config, tmp_path, quiet=True)
    assert run_dir.parent == tmp_path / "baseline-spark"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engine"] == "spark"
    assert (summary["items_in"], summary["items_out"]) == (2400, 2400)
    assert summary["items_lost"] == 0
    assert summary["items_duplicated"] == 0
    # the model of the same batches without a kill, one gradient step per batch
    algorithm = make_algorithm("logreg", 28, lr=0.05, l2=1e-4)
    unkilled = run_reference(algorithm, datasets.batches("higgs", 2400, 200)).model
    np.testing.assert_allclose(np.load(run_dir / "model.npy"), unkilled, rtol=1e-9, atol=1e-12)
    # the kill was real: the driver and its JVM are gone; the restart went on from the
    # checkpoint (no batch applied twice, none restarted from scratch)
    failure = summary["failures"][0]
    assert not _alive(failure["pid"]) and not _alive(failure["jvm_pid"])
    assert summary["recovery_s"] > 0
    assert not (run_dir / "spark" / "input").exists()  # the stream's files are removed
    with open(run_dir / "batches.csv", newline="") as f:
        batches = [int(row["batch"]) for row in csv.DictReader(f)]
    assert batches == list(range(12))
    with open(run_dir / "events.csv", newline="") as f:
        events = [row["event"] for row in csv.DictReader(f)]
    assert events.count("kill") == 1 and events.count("query-started") == 2
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["commit"] and meta["pyspark"] == summary["pyspark"]
