"""Results are never destroyed: real ``streamlec run`` processes on small specs.

A run writes a new directory every time (re-running a spec, or two runs of it at once with
the same ``--out``, never touches another run's files), ``--resume`` after an interrupted
sweep runs only the settings left, and ``plot``/``report`` read the latest run of a setting.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

RUN_TIMEOUT = 240  # seconds; two runs share 2 cores with whatever else the machine runs
ITEMS = 48_000


def write_spec(tmp_path: Path, **overrides) -> Path:
    spec = {
        "name": "kept",
        "dataset": {"name": "higgs", "items": ITEMS, "seed": 3},
        "algorithm": {"name": "logreg", "lr": 0.05},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        "batch": 6_000,
        "runtime": {"warmup": 0.0},
        **overrides,
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def streamlec(*args: str) -> subprocess.CompletedProcess:
    """One ``streamlec`` command to its end, its output captured."""
    command = [sys.executable, "-m", "streamlec_cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)


def start(spec: Path, out: Path) -> subprocess.Popen:
    """``streamlec run`` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlec_cli", "run", str(spec), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs_under(out: Path) -> dict[Path, dict]:
    """Every run directory under ``out`` and its summary."""
    return {p.parent: json.loads(p.read_text()) for p in sorted(out.rglob("summary.json"))}


def fingerprint(run_dir: Path) -> dict[str, str]:
    """Every file of a run directory and a digest of its bytes."""
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
    }


def assert_exact(summary: dict, context: str) -> None:
    assert summary["complete"], context
    assert summary["items_in"] == ITEMS, context
    assert summary["items_out"] == ITEMS, context
    assert summary["items_lost"] == 0, context
    assert summary["items_duplicated"] == 0, context
    assert summary["reference"]["matches"], context


def wait_until(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s")


def committed_batches(run_dir: Path) -> int:
    path = run_dir / "batches.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def test_rerunning_a_spec_keeps_every_earlier_run_byte_for_byte(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "results"
    first = streamlec("run", str(spec), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stdout + first.stderr
    ((first_dir, first_summary),) = runs_under(out).items()
    before = fingerprint(first_dir)

    again = streamlec("run", str(spec), "--out", str(out), "--quiet")
    other = streamlec("run", str(spec), "--out", str(out), "--quiet", "--set", "batch=4000")
    for proc in (again, other):
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fingerprint(first_dir) == before  # not one byte of the first run changed
    runs = runs_under(out)
    assert len(runs) == 3, list(runs)
    assert first_summary["setting"] == "ec42-logreg-higgs"
    assert first_summary["run_id"] == first_dir.name
    assert first_dir.name.startswith("ec42-logreg-higgs-")
    for run_dir, summary in runs.items():
        assert_exact(summary, str(run_dir))
        assert summary["run_dir"] == str(run_dir)
        assert str(run_dir) in again.stderr + other.stderr + first.stderr  # "results:" line

    # plot and report read the latest complete run of each setting, and say so
    table = tmp_path / "report.json"
    report = streamlec("report", str(out), "--json", str(table))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "--all-runs" in report.stderr and str(first_dir) in report.stderr
    latest = max(
        (d for d, s in runs.items() if s["batch"] == 6_000),
        key=lambda d: json.loads((d / "meta.json").read_text())["start_time"],
    )
    rows = json.loads(table.read_text())["throughput"]
    assert sorted(row["ec(4,2)"] for row in rows) == sorted(
        summary["throughput_items_per_s"]
        for run_dir, summary in runs.items()
        if run_dir == latest or summary["batch"] == 4_000
    )
    plot = streamlec("plot", str(out), "--out", str(tmp_path / "plots"))
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert str(first_dir) in plot.stderr


def test_two_runs_of_one_spec_at_once_each_keep_their_own_directory(tmp_path):
    spec = write_spec(tmp_path, rate=20_000)  # open loop: about 2.4 s of stream each
    out = tmp_path / "results"
    first = start(spec, out)
    try:
        wait_until(lambda: any(committed_batches(d) >= 2 for d in out.glob("kept/*")), "batch 2")
        second = start(spec, out)
        try:
            outputs = [proc.communicate(timeout=RUN_TIMEOUT) for proc in (first, second)]
        finally:
            second.kill()
    finally:
        first.kill()
    for proc, (stdout, stderr) in zip((first, second), outputs, strict=True):
        assert proc.returncode == 0, stdout + stderr
        assert "Traceback" not in stderr
    runs = runs_under(out)
    assert len(runs) == 2, list(runs)
    for run_dir, summary in runs.items():
        assert_exact(summary, f"{run_dir}: {json.dumps(summary, indent=1)}")
        assert summary["run_dir"] == str(run_dir)


def test_resume_runs_only_the_settings_an_interrupted_sweep_left(tmp_path):
    spec = write_spec(tmp_path, rate=20_000, sweep={"batch": [6_000, 4_000, 3_000]})
    out = tmp_path / "results"
    settings = [f"ec42-logreg-higgs-batch{b}" for b in (6000, 4000, 3000)]
    sweep = start(spec, out)
    try:  # Ctrl-C in the middle of the second run's stream, after the first one finished
        wait_until(
            lambda: any(committed_batches(d) >= 2 for d in out.glob(f"kept/{settings[1]}*")),
            "the second run's batch 2",
        )
        sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=RUN_TIMEOUT)
    finally:
        sweep.kill()
    assert sweep.returncode == 130, stdout + stderr
    before = runs_under(out)
    done = [d for d, s in before.items() if s["complete"]]
    assert [before[d].get("setting", d.name) for d in done] == settings[:1], stdout + stderr
    kept = fingerprint(done[0])

    resumed = streamlec("run", str(spec), "--out", str(out), "--quiet", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    skipped = [line for line in resumed.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and settings[0] in skipped[0] and str(done[0]) in skipped[0]
    after = runs_under(out)
    complete = {s["setting"]: d for d, s in after.items() if s["complete"]}
    assert sorted(complete) == sorted(settings)  # each setting once, the first not run again
    assert len(after) == len(before) + 2
    assert complete[settings[0]] == done[0] and fingerprint(done[0]) == kept
    for setting in settings:
        assert_exact(after[complete[setting]], setting)
        assert complete[setting].name in resumed.stdout  # the table has every setting's run
