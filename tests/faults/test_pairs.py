"""Several source/sink pairs in one run (``pairs: N``), as real processes with real SIGKILLs.

* Two pairs on this machine, EC(4,2), processor-1 of each pair SIGKILLed at batch 5: each pair
  streams its own rows (its own seed), loses nothing and matches its own single-process
  reference; the run's summary adds them up; ``plot``, ``report`` and ``load_runs`` read the
  run as one run, not three.
* Two pairs on an emulated cluster: each pair's sink and source on hosts of their own, and
  processor-I of both pairs in one host's network namespace and CPU group while they stream;
  nothing left behind. Needs root; skips without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from streamlec_cli.results import load_runs
from streamlec_cli.runtime.emulate import owned

from .test_emulated_run import alive, events_of, kernel_leftovers, worker_pids

TIMEOUT = 300
ITEMS = 36_000


def spec_file(tmp_path: Path, **settings) -> Path:
    spec = {
        "name": "pairs",
        "dataset": {"name": "higgs", "items": ITEMS, "seed": 5},
        "algorithm": {"name": "logreg", "lr": 0.05},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        "pairs": 2,
        "batch": 1_000,
        "runtime": {"warmup": 0.0},
        **settings,
    }
    path = tmp_path / "pairs.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def streamlec(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamlec_cli", *args]


def env_of(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}


def test_two_pairs_each_absorb_a_kill_and_match_their_own_reference(tmp_path):
    spec = spec_file(
        tmp_path,
        rate=20_000,  # 50 ms a batch: the kill lands at its batch
        failures=[{"at_batch": 5, "kill": "processor-1"}],
    )
    out = tmp_path / "results"
    done = subprocess.run(
        streamlec("run", str(spec), "--out", str(out), "--quiet"),
        capture_output=True,
        text=True,
        env=env_of(tmp_path),
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (out / "pairs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pairs"] == 2 and summary["complete"]
    assert summary["items_in"] == summary["items_out"] == 2 * ITEMS
    assert summary["items_lost"] == 0 and summary["items_duplicated"] == 0
    assert summary["reference"]["matches"] and summary["reference_max_rel_err"] <= 1e-9
    assert summary["throughput_items_per_s"] > 0
    assert f"{2 * ITEMS:,} in, {2 * ITEMS:,} out" in done.stderr
    models = []
    for pair in (0, 1):
        pair_dir = run_dir / f"pair-{pair}"
        own = json.loads((pair_dir / "summary.json").read_text())
        assert own["items_out"] == ITEMS and own["items_lost"] == 0
        assert own["reference"]["matches"], own["reference"]
        ran = yaml.safe_load((pair_dir / "spec.yaml").read_text())
        assert ran["dataset"]["seed"] == 5 + pair and ran["pair"] == pair
        kills = [e for e in events_of(pair_dir) if e["event"] == "kill"]
        assert [e["worker"] for e in kills] == ["processor-1"] and "batch 5" in kills[0]["detail"]
        assert [e["worker"] for e in events_of(pair_dir) if e["event"] == "restarted"] == [
            "processor-1"
        ]
        models.append((pair_dir / "model.npy").read_bytes())
    assert models[0] != models[1]  # two streams of their own, not one run twice
    # The run's ROC AUC is over both pairs' delivered predictions together.
    pairs = [run_dir / f"pair-{pair}" for pair in (0, 1)]
    labels = np.concatenate([np.fromfile(d / "labels.u8", dtype=np.uint8) for d in pairs])
    scores = np.concatenate([np.fromfile(d / "predictions.f64") for d in pairs])
    assert summary["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), rel=1e-12)
    assert [run["metrics"]["items_scored"] for run in summary["pairs_runs"]] == [ITEMS, ITEMS]
    assert not [
        pid for pair in (0, 1) for pid in worker_pids(run_dir / f"pair-{pair}") if alive(pid)
    ]

    runs, _ = load_runs([out])
    assert [run["run_dir"] for run in runs] == [run_dir]
    for command in (
        ("plot", str(out), "--out", str(tmp_path / "plots")),
        ("report", str(out), "--out", str(tmp_path / "report.md")),
    ):
        read = subprocess.run(
            streamlec(*command), capture_output=True, text=True, env=env_of(tmp_path), timeout=120
        )
        assert read.returncode == 0, read.stdout + read.stderr


def namespace_and_group(pid: int) -> tuple[str, str]:
    """The network namespace and the cpu cgroup the process ``pid`` is in now."""
    netns = os.readlink(f"/proc/{pid}/ns/net")
    groups = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") or [""]:
            groups[controller] = path
    return netns, groups.get("cpu", groups.get(""))


def spawned_pids(run_dir: Path) -> dict[str, int]:
    return {
        e["worker"]: int(e["detail"].split()[1].rstrip(","))
        for e in events_of(run_dir)
        if e["event"] == "spawned" and not e["worker"].startswith("standby")
    }


@pytest.mark.skipif(
    os.geteuid() != 0, reason="emulated hosts need root (namespaces, links, qdiscs, cgroups)"
)
def test_two_pairs_on_emulated_hosts_share_the_processors_hosts(tmp_path):
    spec = spec_file(
        tmp_path,
        dataset={"name": "higgs", "items": 400_000, "seed": 5},
        rate=20_000,
        cluster={"emulate": {"hosts": 10, "link": "1gbit", "cpu": 0.5}},
    )
    out = tmp_path / "results"
    proc = subprocess.Popen(
        streamlec("run", str(spec), "--out", str(out), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_of(tmp_path),
    )
    try:
        deadline = time.monotonic() + 120
        pair_dirs: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            pair_dirs = sorted(out.rglob("pair-*"))
            up = [d for d in pair_dirs if any(e["event"] == "all workers up" for e in events_of(d))]
            if len(up) == 2:
                break
            time.sleep(0.05)
        assert len(pair_dirs) == 2, "the pairs never got their workers up"
        where = [
            {w: namespace_and_group(pid) for w, pid in spawned_pids(d).items()} for d in pair_dirs
        ]
        for i in range(6):  # processor-I of both pairs: one host, one CPU group
            assert where[0][f"processor-{i}"] == where[1][f"processor-{i}"]
            assert where[0][f"processor-{i}"][1].endswith(f"/h{5 + i}")
        hosts = [where[p][w] for p in (0, 1) for w in ("sink", "source")]
        assert len(set(hosts)) == 4  # each sink and source on a host of its own
        assert [h[1].rsplit("/", 1)[1] for h in hosts] == ["h1", "h2", "h3", "h4"]
    finally:
        proc.send_signal(2)  # SIGINT: stop the streams, keep the results
        proc.communicate(timeout=TIMEOUT)
    run_dir = pair_dirs[0].parent
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["cluster"]["placement"]["pair-1"]["processor-3"] == "h8"
    assert meta["cluster"]["placement"]["pair-1"]["sink"] == "h3"
    assert not [pid for d in pair_dirs for pid in worker_pids(d) if alive(pid)]
    assert kernel_leftovers(proc.pid) == ""
    assert proc.pid not in owned()


def batches_done(run_dir: Path) -> int:
    path = run_dir / "batches.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def test_ctrl_c_stops_every_pair_once_and_keeps_what_they_wrote(tmp_path):
    spec = spec_file(
        tmp_path, dataset={"name": "higgs", "items": 2_000_000, "seed": 5}, rate=20_000
    )
    out = tmp_path / "results"
    proc = subprocess.Popen(
        streamlec("run", str(spec), "--out", str(out), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_of(tmp_path),
    )
    deadline = time.monotonic() + 120
    pair_dirs: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        pair_dirs = sorted(out.rglob("pair-*"))
        if len(pair_dirs) == 2 and all(batches_done(d) >= 3 for d in pair_dirs):
            break
        time.sleep(0.05)
    proc.send_signal(2)  # SIGINT, as Ctrl-C in the terminal sends it to the run
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, stderr
    assert "interrupted by SIGINT" in stderr
    for pair_dir in pair_dirs:
        stopped = [e for e in events_of(pair_dir) if e["event"] == "interrupted"]
        assert len(stopped) == 1 and stopped[0]["detail"].startswith("SIGINT: stopping"), stopped
        own = json.loads((pair_dir / "summary.json").read_text())
        assert not own["complete"] and own["items_out"] > 0
        assert not [pid for pid in worker_pids(pair_dir) if alive(pid)]
    summary = json.loads((pair_dirs[0].parent / "summary.json").read_text())
    assert not summary["complete"] and summary["items_out"] > 0
