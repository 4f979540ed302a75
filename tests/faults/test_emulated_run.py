"""Whole runs over emulated hosts with the local launcher (real namespaces, tbf, cgroups).

* EC(4,2) logistic regression over 9 emulated hosts with two kills at different batches: 0
  lost, 0 duplicated, the reference matched, the kills and replacements in ``events.csv``,
  every worker on its placed host, what was asked and measured in ``meta.json``, the results
  directory readable by ``plot`` and ``report``, and nothing left behind;
* ``ps`` and ``kill-worker`` from another shell name the emulated hosts and reach the workers
  there, and the killed one is replaced;
* a SIGKILLed supervisor's emulated hosts are removed by the next ``streamlec`` command.

They need root; without it they skip, saying so.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from streamlec_cli.runtime.emulate import owned

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="emulated hosts need root (namespaces, links, qdiscs, cgroups)"
)

TIMEOUT = 300
TWO_KILLS = [{"at_batch": 8, "kill": "processor-1"}, {"at_batch": 20, "kill": "processor-4"}]


def spec_file(tmp_path: Path, **settings) -> Path:
    spec = {
        "name": "emu",
        "dataset": {"name": "higgs", "items": 36_000, "seed": 5},
        "algorithm": {"name": "logreg", "lr": 0.05},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        "batch": 1_000,
        "runtime": {"warmup": 0.0},
        "cluster": {"launcher": "local", "emulate": {"hosts": 9, "link": "1gbit", "cpu": 1.0}},
        **settings,
    }
    path = tmp_path / "emu.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def streamlec(tmp_path: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "streamlec_cli", *args]


def start_run(tmp_path: Path, spec: Path, out: Path) -> subprocess.Popen:
    """``streamlec run`` in the background, with the test's own registry of live runs."""
    return subprocess.Popen(
        streamlec(tmp_path, "run", str(spec), "--out", str(out), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_of(tmp_path),
    )


def env_of(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}


def events_of(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "events.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def kernel_leftovers(owner: int) -> str:
    """Lines of ``ip netns``, ``ip link`` and the cgroup tree that carry ``owner``'s pid."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    out += subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found = [
        line for line in out.splitlines() if f"streamlec-{owner}-" in line or f" sl{owner}" in line
    ]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/streamlec-{owner}")]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"streamlec-{owner}")]
    return "\n".join(found)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def worker_pids(run_dir: Path) -> set[int]:
    pids = set()
    for row in events_of(run_dir):
        if row["event"] in ("spawned", "restarted") and row["detail"].startswith("pid "):
            pids.add(int(row["detail"].split()[1].rstrip(",")))
    return pids


def assert_two_kills_absorbed(run_dir: Path) -> list[dict[str, str]]:
    """The run of ``spec_file`` with ``TWO_KILLS``: complete, nothing lost or duplicated,
    the reference matched, both kills at their batches and both processors replaced; its
    events."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["items_out"] == 36_000
    assert summary["items_lost"] == 0 and summary["items_duplicated"] == 0
    assert summary["reference"]["matches"] and summary["reference_max_rel_err"] <= 1e-9
    events = events_of(run_dir)
    kills = [(e["worker"], e["detail"]) for e in events if e["event"] == "kill"]
    assert [w for w, _ in kills] == ["processor-1", "processor-4"]
    assert "batch 8" in kills[0][1] and "batch 20" in kills[1][1]
    restarted = {e["worker"] for e in events if e["event"] == "restarted"}
    assert restarted == {"processor-1", "processor-4"}
    return events


def assert_plot_and_report_read(tmp_path: Path, out: Path) -> None:
    """``streamlec plot`` and ``streamlec report`` read the results in ``out``."""
    for command in (
        ("plot", str(out), "--out", str(tmp_path / "plots")),
        ("report", str(out), "--out", str(tmp_path / "report.md")),
    ):
        done = subprocess.run(
            streamlec(tmp_path, *command),
            capture_output=True,
            text=True,
            env=env_of(tmp_path),
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_ec42_over_9_emulated_hosts_with_two_kills_loses_nothing_and_leaves_nothing(tmp_path):
    spec = spec_file(
        tmp_path,
        rate=20_000,  # 50 ms a batch: each kill lands at its batch, not after the stream
        failures=TWO_KILLS,
    )
    out = tmp_path / "results"
    proc = start_run(tmp_path, spec, out)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stdout + stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    events = assert_two_kills_absorbed(run_dir)
    spawned = {e["worker"]: e["detail"] for e in events if e["event"] == "spawned"}
    assert spawned["sink"].endswith("on h1") and spawned["source"].endswith("on h2")
    for i in range(6):
        assert spawned[f"processor-{i}"].endswith(f"on h{3 + i}")

    meta = json.loads((run_dir / "meta.json").read_text())
    cluster = meta["cluster"]
    assert cluster["asked"] == {"hosts": 9, "link_bit_s": 1e9, "cpu": 1.0}
    assert cluster["measured"]["link_bit_s"] > 0 and cluster["measured"]["cpu"] > 0
    assert cluster["network"].startswith("198.18.") and cluster["network"].endswith(".0/24")
    assert cluster["addresses"]["h1"] == cluster["network"].removesuffix("0/24") + "11"
    assert cluster["placement"]["sink"] == "h1"

    # the same results directory as a local run: plot and report read it unchanged
    assert_plot_and_report_read(tmp_path, out)
    report = (tmp_path / "report.md").read_text()
    assert "workers on an emulated cluster of 9 hosts, 1 CPU, 1000 Mbit/s each, measured" in report

    # nothing left behind: processes, namespaces, links, bridge, cgroups
    assert not [pid for pid in worker_pids(run_dir) if alive(pid)]
    assert kernel_leftovers(proc.pid) == ""
    assert proc.pid not in owned()


def test_the_next_command_removes_the_emulated_hosts_of_a_killed_supervisor(tmp_path):
    spec = spec_file(tmp_path, dataset={"name": "higgs", "items": 400_000, "seed": 5}, rate=20_000)
    out = tmp_path / "results"
    proc = start_run(tmp_path, spec, out)
    deadline = time.monotonic() + 120
    run_dir = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p.parent for p in out.rglob("events.csv")]
        if found and any(e["event"] == "all workers up" for e in events_of(found[0])):
            run_dir = found[0]
            break
        time.sleep(0.05)
    if run_dir is None:
        proc.kill()
        pytest.fail("the run never got its workers up:\n" + "".join(proc.communicate()))
    assert kernel_leftovers(proc.pid) != ""
    # ps and kill-worker from another shell work as in a local run
    listed = subprocess.run(
        streamlec(tmp_path, "ps"), capture_output=True, text=True, env=env_of(tmp_path), timeout=60
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert rows["sink"].endswith("local on h1") and rows["processor-2"].endswith("local on h5")
    killed = subprocess.run(
        streamlec(tmp_path, "kill-worker", "processor-2"),
        capture_output=True,
        text=True,
        env=env_of(tmp_path),
        timeout=60,
    )
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert "on h5" in killed.stdout
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        e["event"] == "restarted" and e["worker"] == "processor-2" for e in events_of(run_dir)
    ):
        time.sleep(0.05)
    replaced = [e for e in events_of(run_dir) if e["event"] == "restarted"]
    assert [e["worker"] for e in replaced] == ["processor-2"], events_of(run_dir)
    proc.kill()  # SIGKILL: the supervisor removes nothing
    proc.communicate(timeout=TIMEOUT)
    assert kernel_leftovers(proc.pid) != ""
    ps = subprocess.run(
        streamlec(tmp_path, "ps"), capture_output=True, text=True, env=env_of(tmp_path), timeout=60
    )
    assert ps.returncode == 0, ps.stdout + ps.stderr
    assert f"cleaned up the emulated cluster of pid {proc.pid} (gone)" in ps.stderr
    assert kernel_leftovers(proc.pid) == ""
    deadline = time.monotonic() + 10
    while [pid for pid in worker_pids(run_dir) if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in worker_pids(run_dir) if alive(pid)]
    again = subprocess.run(
        streamlec(tmp_path, "ps"), capture_output=True, text=True, env=env_of(tmp_path), timeout=60
    )
    assert "emulated cluster" not in again.stderr
