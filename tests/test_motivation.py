"""The motivation comparison in ``streamlec plot`` and ``streamlec report``: a Spark
baseline's recovery beside streamlec's schemes, from hand-written summaries."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from matplotlib.image import imread
from test_report import write_summary

from streamlec_cli.cli import main


def write_spark_run(root: Path, spec_name: str, recovery_s: float = 12.5) -> Path:
    run_dir = root / spec_name / "baseline-spark-20260101-000000"
    run_dir.mkdir(parents=True)
    summary = {
        "engine": "spark",
        "setting": "baseline-spark",
        "spec_name": spec_name,
        "complete": True,
        "items_in": 600,
        "items_out": 600,
        "items_lost": 0,
        "items_duplicated": 0,
        "kill_time": 1e9 + 6.0,
        "recovery_s": recovery_s,
        "latency_ms_before_kill": {"p50": 400.0},
        "latency_ms_after_kill": {"p50": 9000.0},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "meta.json").write_text(json.dumps({"commit": "feedface", "start_time": 1e9}))
    return run_dir


def results(root: Path) -> None:
    write_spark_run(root, "motivation")
    for scheme in ("ec42", "reactive"):
        run_dir = write_summary(root, "motivation", scheme, 1000.0, killed=1, p99=(20.0, 30.0),
                                p50=(10.0, 15.0), rate=2000.0)  # fmt: skip
        summary = json.loads((run_dir / "summary.json").read_text())
        summary["failures"][0]["time_to_full_tolerance_s"] = 0.25
        (run_dir / "summary.json").write_text(json.dumps(summary))


def test_report_sets_spark_beside_the_schemes(tmp_path: Path) -> None:
    results(tmp_path)
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "### Motivation: recovery after a kill" in result.stdout
    assert "| spark (driver killed) | 12.5 | 400 | 9000 | 0 | 0 |" in result.stdout
    assert "| streamlec reactive | 0.25 | 10 | 15 |" in result.stdout
    assert "| streamlec ec(4,2) | 0.25 | 10 | 15 |" in result.stdout
    assert "left out" not in result.output  # the Spark run is not taken for a failed run


def test_report_without_a_baseline_has_no_motivation_section(tmp_path: Path) -> None:
    write_summary(tmp_path, "motivation", "ec42", 1000.0, killed=1, p99=(20.0, 30.0))
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Motivation" not in result.stdout


def test_plot_draws_the_motivation_figure(tmp_path: Path) -> None:
    results(tmp_path / "results")
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "results"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "motivation.png").exists() and (out / "motivation.svg").exists()
    assert imread(out / "motivation.png").shape[0] > 100
    svg = (out / "motivation.svg").read_text()
    assert "spark (driver killed)" in svg and "streamlec ec(4,2)" in svg


def test_plot_of_a_spark_run_alone(tmp_path: Path) -> None:
    write_spark_run(tmp_path / "results", "baseline-spark")
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "results"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["motivation.png", "motivation.svg"]
