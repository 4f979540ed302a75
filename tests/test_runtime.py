"""The distributed runtime with real processes, real ZeroMQ sockets and real SIGKILLs.

Each test runs ``python -m streamlec_cli run`` on a small spec, then reads the run's results
directory: what a user relies on is that the kills happened (events.csv), nothing was lost or
delivered twice, the model matches the single-process reference, and no worker outlived the run.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import log_loss, roc_auc_score

from streamlec_cli import datasets
from streamlec_cli.runtime.wire import socket_dir
from streamlec_cli.spec import DatasetSpec

RUN_TIMEOUT = 180


def write_spec(tmp_path: Path, **overrides) -> Path:
    spec = {
        "name": "it",
        "dataset": {"name": "higgs", "items": 144_000, "seed": 5},
        "algorithm": {"name": "logreg", "lr": 0.05},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        "batch": 6_000,
        "runtime": {"warmup": 0.0},
    }
    spec.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def streamlec(*args: str, timeout: float = RUN_TIMEOUT, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "streamlec_cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def only_run_dir(out: Path) -> Path:
    runs = [p.parent for p in out.rglob("summary.json")]
    assert len(runs) == 1, runs
    return runs[0]


def events(run_dir: Path) -> list[dict]:
    with open(run_dir / "events.csv", newline="") as f:
        return list(csv.DictReader(f))


def leftover_processes(run_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(run_dir) in line and "worker" in line]


def wait_for_batches(out: Path, count: int, timeout: float = 60) -> None:
    """Wait until the run under ``out`` has committed ``count`` batches (mid-stream)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(out.rglob("batches.csv"))
        if found and len(found[0].read_text().splitlines()) > count:
            return
        time.sleep(0.05)
    pytest.fail(f"the run under {out} committed fewer than {count} batches in {timeout} s")


@contextlib.contextmanager
def live_run(tmp_path: Path, **overrides):
    """Start ``streamlec run`` in the background with a private registry of live runs and
    wait until it is mid-stream; yields (process, env for other commands, results dir).
    The process is killed on the way out if a test left it running."""
    env = {"STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    out = tmp_path / "results"
    spec = write_spec(tmp_path, **overrides)
    run = subprocess.Popen(
        [sys.executable, "-m", "streamlec_cli", "run", str(spec), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        wait_for_batches(out, 4)
        yield run, env, out
    finally:
        if run.poll() is None:
            run.kill()


def run_spec(
    tmp_path: Path, exit_code: int = 0, **overrides
) -> tuple[dict, Path, subprocess.CompletedProcess]:
    out = tmp_path / "results"
    proc = streamlec("run", str(write_spec(tmp_path, **overrides)), "--out", str(out), "--quiet")
    assert proc.returncode == exit_code, proc.stdout + proc.stderr
    run_dir = only_run_dir(out)
    return json.loads((run_dir / "summary.json").read_text()), run_dir, proc


def assert_absorbed(summary: dict, run_dir: Path, killed: list[str]) -> None:
    context = json.dumps(summary, indent=1)
    assert summary["complete"], context
    assert summary["items_in"] == 144_000
    assert summary["items_lost"] == 0, context
    assert summary["items_duplicated"] == 0, context
    assert summary["reference_max_rel_err"] is not None, context
    assert summary["reference_max_rel_err"] <= 1e-9, context
    assert 0.0 <= summary["machine_idle_during_stream"] <= 1.0, context
    log = events(run_dir)
    for worker in killed:
        assert any(e["worker"] == worker and e["event"] == "kill" for e in log), log
        assert any(e["worker"] == worker and e["event"] == "restarted" for e in log), log
    assert sorted(f["worker"] for f in summary["failures"]) == sorted(killed)
    assert leftover_processes(run_dir) == []
    assert not socket_dir(run_dir).exists()  # no ipc socket left


@pytest.mark.parametrize("attach", ["linear", "inputs"])
def test_ec42_absorbs_two_kills_at_different_batches(tmp_path, attach):
    # Cold replacements: a warm spare takes a slot within milliseconds, often before the
    # batch sent after the kill is due, and then nothing needs decoding. A cold start takes
    # far longer than the grace, so the batches in flight are decoded from parity.
    summary, run_dir, _ = run_spec(
        tmp_path,
        runtime={"warmup": 0.0, "standby": False},
        scheme={"name": "ec", "k": 4, "r": 2, "attach": attach},
        failures=[
            {"at_batch": 3, "kill": ["processor-1"]},
            {"at_batch": 9, "kill": ["processor-2"]},
        ],
    )
    assert_absorbed(summary, run_dir, ["processor-1", "processor-2"])
    assert summary["decoded_items"] > 0


def test_mlp_with_two_batches_in_flight_absorbs_two_kills_in_one_batch(tmp_path):
    # The network's first layer is coded; two data slots of one batch die, and the survivor
    # round rebuilds their first-layer statistics while the next batch is already out.
    summary, run_dir, _ = run_spec(
        tmp_path,
        algorithm={"name": "mlp", "hidden": 24, "lr": 0.05, "seed": 2},
        pipeline_depth=2,
        failures=[{"at_batch": 6, "kill": ["processor-0", "processor-3"]}],
    )
    assert_absorbed(summary, run_dir, ["processor-0", "processor-3"])
    assert summary["algorithm"] == "mlp"
    assert summary["decoded_items"] > 0
    assert 0.0 < summary["metrics"]["accuracy"] < 1.0


def test_staged_rows_stream_like_generated_ones_and_leave_no_file(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        dataset={"name": "higgs", "items": 144_000, "seed": 5, "stage": True},
        failures=[{"at_batch": 5, "kill": ["processor-0"]}],
    )
    assert_absorbed(summary, run_dir, ["processor-0"])  # the reference generates its rows
    staged = [e for e in events(run_dir) if e["event"] == "staged"]
    assert staged and staged[0]["detail"].startswith("144000 rows")
    assert json.loads((run_dir / "meta.json").read_text())["dataset_source"]["staged"] is True
    assert not (run_dir / "stream.f64").exists()


def test_ec51_absorbs_one_kill(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        scheme={"name": "ec", "k": 5, "r": 1},
        failures=[{"at_batch": 4, "kill": ["processor-3"]}],
    )
    assert_absorbed(summary, run_dir, ["processor-3"])
    assert summary["decoded_items"] > 0


def test_rep3_absorbs_two_copies_of_one_group(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        scheme={"name": "rep", "copies": 3},
        failures=[
            {"at_batch": 3, "kill": ["processor-0"]},
            {"at_batch": 6, "kill": ["processor-1"]},
        ],
    )
    assert_absorbed(summary, run_dir, ["processor-0", "processor-1"])


def test_reactive_replays_after_a_kill(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        scheme={"name": "reactive", "checkpoint_every": 4},
        failures=[{"at_batch": 6, "kill": ["processor-2"]}],
        runtime={"warmup": 0.0, "standby": False},  # a cold restart: its tasks are lost
    )
    assert_absorbed(summary, run_dir, ["processor-2"])
    assert summary["rollbacks"] >= 1
    assert summary["replayed_batches"] >= 1
    assert summary["wal_bytes"] >= 144_000 * 29 * 8  # every item was logged to disk
    assert not (run_dir / "wal.bin").exists()  # and the log removed once the run was over
    assert any(e["event"] == "rollback" for e in events(run_dir))
    # The replayed batches' labels were kept once, as their predictions were.
    assert (run_dir / "labels.u8").stat().st_size == 144_000
    assert summary["metrics"]["items_scored"] == 144_000


def test_ec42_three_kills_in_one_batch_reports_the_loss(tmp_path):
    summary, run_dir, proc = run_spec(
        tmp_path,
        exit_code=3,  # finished, but lost items: scripts can tell
        failures=[{"at_batch": 5, "kill": ["processor-0", "processor-1", "processor-2"]}],
        # cold restarts: warm spares can refill two slots before any batch misses three
        runtime={"warmup": 0.0, "standby": False},
    )
    assert summary["complete"]
    assert summary["items_lost"] > 0
    assert summary["items_duplicated"] == 0
    assert summary["items_out"] + summary["items_lost"] == 144_000
    assert "LOST" in proc.stderr
    with open(run_dir / "batches.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(int(r["items_lost"]) == 0 for r in rows[:5])  # results before are kept
    assert sum(int(r["items_lost"]) for r in rows) == summary["items_lost"]
    assert leftover_processes(run_dir) == []


def test_none_with_one_kill_reports_the_loss(tmp_path):
    summary, run_dir, proc = run_spec(
        tmp_path,
        exit_code=3,
        scheme={"name": "none"},
        failures=[{"at_batch": 4, "kill": ["processor-5"]}],
    )
    assert summary["items_lost"] > 0
    assert summary["items_lost"] % 1_000 == 0  # whole slices of the dead slot: 6000 / 6
    assert summary["items_duplicated"] == 0
    with open(run_dir / "batches.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(int(r["items_lost"]) == 0 for r in rows[:4])  # nothing lost before the kill
    assert "LOST" in proc.stderr
    assert any(e["event"] == "items lost" for e in events(run_dir))


@pytest.mark.parametrize(
    ("algorithm", "dataset", "scheme", "exit_code"),
    [
        ("logreg", "kdd12", {"name": "ec", "k": 4, "r": 2}, 0),  # decoded items scored too
        ("svm", "higgs", {"name": "none"}, 3),  # the dead slot's items are lost: left out
    ],
)
def test_click_metrics_are_sklearns_on_the_runs_own_predictions(
    tmp_path, algorithm, dataset, scheme, exit_code
):
    """summary.json's log loss and ROC AUC, for the run and per batch, are scikit-learn's
    on the predictions the run saved and the labels it kept, which are the data's."""
    data = {"name": dataset, "items": 144_000, "seed": 3}
    summary, run_dir, proc = run_spec(
        tmp_path,
        exit_code=exit_code,
        dataset=data,
        algorithm={"name": algorithm, "lr": 0.5},
        scheme=scheme,
        failures=[{"at_batch": 4, "kill": ["processor-1"]}],
        # cold restarts: under none, the tasks sent meanwhile to the dead slot are lost
        runtime={"warmup": 0.0, "standby": False},
    )
    predictions = np.fromfile(run_dir / "predictions.f64")
    labels = np.fromfile(run_dir / "labels.u8", dtype=np.uint8)
    rows = np.concatenate(list(datasets.open_batches(DatasetSpec(**data), 6_000)))
    np.testing.assert_array_equal(labels, rows[:, 0] > 0.5)
    kept = np.isfinite(predictions)
    assert kept.sum() == summary["items_out"]
    y, scores = labels[kept].astype(bool), predictions[kept]

    metrics = summary["metrics"]
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, scores), rel=1e-12)
    assert metrics["items_scored"] == kept.sum() and metrics["positives"] == y.sum()
    if algorithm == "logreg":
        assert metrics["log_loss"] == pytest.approx(log_loss(y, scores), rel=1e-12)
        assert summary["decoded_items"] > 0
        reference = summary["reference"]["metrics"]
        assert reference["roc_auc"] == pytest.approx(metrics["roc_auc"], rel=1e-9)
        assert reference["log_loss"] == pytest.approx(metrics["log_loss"], rel=1e-9)
    else:  # a margin is no probability
        assert metrics["log_loss"] is None and summary["items_lost"] > 0
    assert 0.5 < metrics["roc_auc"] < 1.0  # a little learned in 24 steps (and every run alike)
    assert summary["failures"] and not summary["failures_not_done"]
    assert "  metrics:   ROC AUC" in proc.stderr

    with open(run_dir / "batch_metrics.csv", newline="") as f:
        per_batch = list(csv.DictReader(f))
    assert [int(r["batch"]) for r in per_batch] == list(range(24))
    for r in per_batch:
        part = slice(int(r["offset"]), int(r["offset"]) + int(r["count"]))
        keep = kept[part]
        yb, sb = labels[part][keep].astype(bool), predictions[part][keep]
        assert float(r["roc_auc"]) == pytest.approx(roc_auc_score(yb, sb), rel=1e-12)
        if algorithm == "logreg":
            assert float(r["log_loss"]) == pytest.approx(log_loss(yb, sb), rel=1e-12)
        else:
            assert r["log_loss"] == ""


def test_kill_worker_from_a_second_shell(tmp_path):
    with live_run(tmp_path, rate=40_000) as (run, env, out):  # open loop: about 3.6 s
        ps = streamlec("ps", env=env)
        assert "processor-2" in ps.stdout and "running" in ps.stdout
        assert "standby-1" in ps.stdout and "spare" in ps.stdout
        spares = {line.split()[0]: line.split()[2] for line in ps.stdout.splitlines()[1:]}
        spares = {name: pid for name, pid in spares.items() if name.startswith("standby-")}
        assert len(spares) == 2  # ec(4,2): one warm spare per failure it absorbs at once
        wrong = streamlec("kill-worker", "processor-9", env=env)
        assert wrong.returncode == 2
        assert "processor-9" in wrong.stderr and "processor-0" in wrong.stderr
        killed = streamlec("kill-worker", "processor-2", env=env)
        assert killed.returncode == 0, killed.stderr
        assert "SIGKILL" in killed.stdout
        after = streamlec("ps", env=env).stdout.splitlines()  # a spare took the slot
        pids = {line.split()[0]: line.split()[2] for line in after[1:]}
        assert pids["processor-2"] in spares.values()
        waiting = {name for name in pids if name.startswith("standby-")}
        assert len(waiting) == 2 and waiting != set(spares)  # and a new spare waits
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT)
    assert run.returncode == 0, stdout + stderr
    run_dir = only_run_dir(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert_absorbed(summary, run_dir, ["processor-2"])
    assert summary["failures"][0]["by"] == "kill-worker"
    assert any("kill-worker" in e["detail"] for e in events(run_dir) if e["event"] == "kill")
    assert streamlec("ps", env=env).stdout.strip() == "no live runs"


def test_ctrl_c_stops_everything_and_keeps_results(tmp_path):
    with live_run(tmp_path, rate=30_000) as (run, _env, out):  # about 5 s of stream
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    run_dir = only_run_dir(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False
    assert summary["items_out"] >= 3 * 6_000
    assert leftover_processes(run_dir) == []
    assert not socket_dir(run_dir).exists()  # no ipc socket left


def test_malformed_line_mid_file_stops_the_run_cleanly(tmp_path):
    rows = datasets.generate("higgs", 0, 30_000, 1)
    data = tmp_path / "HIGGS.csv"
    with open(data, "w") as f:
        for i, row in enumerate(rows):
            f.write("x,1\n" if i == 25_000 else ",".join(repr(float(v)) for v in row) + "\n")
    out = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        dataset={"name": "higgs", "items": 30_000, "path": str(data)},
        scheme={"name": "none"},
        processors=2,
        batch=3_000,
    )
    proc = streamlec("run", str(spec), "--out", str(out), "--quiet")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{data}, line 25001" in proc.stderr
    assert "Traceback" not in proc.stderr
    run_dir = only_run_dir(out)
    with open(run_dir / "batches.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) >= 1  # what was finished before is kept
    assert leftover_processes(run_dir) == []


def test_reactive_absorbs_two_simultaneous_kills_open_loop(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        scheme={"name": "reactive", "checkpoint_every": 4},
        rate=80_000,
        failures=[{"at": "0.8s", "kill": ["processor-1", "processor-2"]}],
        runtime={"warmup": 0.0, "standby": False},  # a cold restart: their tasks are lost
    )
    assert_absorbed(summary, run_dir, ["processor-1", "processor-2"])
    assert summary["rollbacks"] >= 1


def test_sink_stopped_mid_run_fails_the_run_at_once(tmp_path):
    with live_run(tmp_path, rate=40_000) as (run, env, out):  # about 3.6 s of stream
        assert streamlec("kill-worker", "sink", "--signal", "TERM", env=env).returncode == 0
        started = time.monotonic()
        stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 1, stdout + stderr
    assert time.monotonic() - started < 20  # not the 60 s stall limit
    assert "the sink exited" in stderr and "Traceback" not in stderr
    assert leftover_processes(only_run_dir(out)) == []


def test_workers_run_the_supervisors_code_not_a_package_in_the_working_directory(tmp_path):
    # `python -m` puts the working directory first on the path: a worker started that way
    # from here would import this broken copy instead of the code the supervisor runs.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "streamlec_cli").mkdir(parents=True)
    (elsewhere / "streamlec_cli" / "__init__.py").write_text("raise ImportError('wrong copy')\n")
    spec = write_spec(
        tmp_path, scheme={"name": "none"}, dataset={"name": "higgs", "items": 24_000, "seed": 5}
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-P", "-m", "streamlec_cli", "run", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=elsewhere,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((only_run_dir(out) / "summary.json").read_text())
    assert summary["items_out"] == 24_000 and summary["items_lost"] == 0
    assert summary["commit"] != "" and not summary["commit"].startswith("wrong")
