"""Slow processors (``stragglers``), as real processes really throttled.

* On this machine: processor-2 is held to a fifth of the CPU by a stop/continue duty cycle,
  seen stopped (state T in /proc) while the slowdown holds and never after it; the
  SIGKILL of that processor in the middle of its slowdown is absorbed too. EC(4,2) and
  ``none`` (which waits for the slow one) both lose nothing and match the reference.
* On an emulated cluster (root): the slow processor's host has its CPU quota divided by the
  slowdown while it holds, and back when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from streamlec_cli.runtime.emulate import CPU_V1, cgroup_version, owned

from .test_emulated_run import (
    alive,
    env_of,
    events_of,
    kernel_leftovers,
    spec_file,
    start_run,
    streamlec,
    worker_pids,
)

TIMEOUT = 300
SLOW = {"worker": "processor-2", "slowdown": 5, "from": "1s", "to": "4s"}


def state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_of(run_dir: Path, worker: str) -> int | None:
    for row in events_of(run_dir):
        if row["worker"] == worker and row["event"] in ("spawned", "restarted"):
            return int(row["detail"].split()[1].rstrip(","))
    return None


def watch_run(proc, out: Path, seen) -> Path:
    """Call ``seen(run_dir)`` every few milliseconds until the run ends; its directory."""
    deadline = time.monotonic() + TIMEOUT
    run_dir = None
    while proc.poll() is None and time.monotonic() < deadline:
        found = [p.parent for p in out.rglob("events.csv")]
        if found:
            run_dir = found[0]
            seen(run_dir)
        time.sleep(0.003)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stdout + stderr
    assert run_dir is not None
    return run_dir


def assert_exact(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    context = json.dumps(summary, indent=1)
    assert summary["complete"] and summary["items_out"] == 36_000, context
    assert summary["items_lost"] == 0 and summary["items_duplicated"] == 0, context
    assert summary["reference"]["matches"] and summary["reference_max_rel_err"] <= 1e-9, context
    (window,) = summary["stragglers"]
    assert window["worker"] == "processor-2" and window["slowdown"] == 5
    assert window["end"] is not None and window["end"] > window["start"]
    during = summary["latency_during_slowdown"]["during"]
    assert during["items"] > 0 and during["p99_ms"] is not None
    events = [(e["worker"], e["event"]) for e in events_of(run_dir)]
    assert ("processor-2", "slowed") in events and ("processor-2", "restored") in events
    assert not [pid for pid in worker_pids(run_dir) if alive(pid)]
    return summary


@pytest.mark.parametrize("scheme", [{"name": "ec", "k": 4, "r": 2}, {"name": "none"}])
def test_a_slow_processor_is_stopped_in_its_window_and_nothing_is_lost(tmp_path, scheme):
    spec = spec_file(tmp_path, scheme=scheme, rate=6_000, stragglers=[SLOW], cluster=None)
    out = tmp_path / "results"
    stopped_at: list[float] = []
    listed: list[str] = []  # what ps says while it is slowed

    def seen(run_dir: Path) -> None:
        pid = pid_of(run_dir, "processor-2")
        if pid is not None and state(pid) == "T":
            stopped_at.append(time.time())
            if not listed:
                ps = subprocess.run(
                    streamlec(tmp_path, "ps"), capture_output=True, text=True, env=env_of(tmp_path)
                )
                listed.append(ps.stdout)

    run_dir = watch_run(start_run(tmp_path, spec, out), out, seen)
    summary = assert_exact(run_dir)
    (window,) = summary["stragglers"]
    assert "SIGSTOP/SIGCONT" in window["how"]
    assert stopped_at, "processor-2 was never seen stopped"
    assert all(window["start"] <= t <= window["end"] + 0.05 for t in stopped_at)
    (row,) = [line for line in listed[0].splitlines() if "processor-2" in line]
    assert "slowed 5x" in row and "stopped" not in row


def test_a_slow_processor_killed_in_its_slowdown_is_replaced_and_nothing_is_lost(tmp_path):
    spec = spec_file(
        tmp_path,
        rate=6_000,
        stragglers=[SLOW],
        failures=[{"at": "2s", "kill": ["processor-2"]}],
        cluster=None,
    )
    out = tmp_path / "results"
    run_dir = watch_run(start_run(tmp_path, spec, out), out, lambda run_dir: None)
    summary = assert_exact(run_dir)
    assert [f["worker"] for f in summary["failures"]] == ["processor-2"]
    events = [(e["worker"], e["event"]) for e in events_of(run_dir)]
    assert ("processor-2", "kill") in events and ("processor-2", "restarted") in events


@pytest.mark.skipif(os.geteuid() != 0, reason="an emulated cluster needs root")
@pytest.mark.skipif(cgroup_version() is None, reason="no cgroup cpu controller here")
def test_a_slow_processor_on_an_emulated_host_gets_a_fifth_of_its_quota(tmp_path):
    spec = spec_file(tmp_path, rate=6_000, stragglers=[SLOW])
    out = tmp_path / "results"
    proc = start_run(tmp_path, spec, out)
    quotas: set[int] = set()

    def seen(run_dir: Path) -> None:
        # processor-2 is placed on h5 (sink h1, source h2, processors from h3)
        group = CPU_V1 if cgroup_version() == 1 else Path("/sys/fs/cgroup")
        path = group / f"streamlec-{proc.pid}" / "h5"
        quota = path / ("cpu.cfs_quota_us" if cgroup_version() == 1 else "cpu.max")
        with contextlib.suppress(OSError, ValueError):
            quotas.add(int(quota.read_text().split()[0]))

    run_dir = watch_run(proc, out, seen)
    summary = assert_exact(run_dir)
    (window,) = summary["stragglers"]
    assert "host h5's CPU quota" in window["how"]
    full = max(quotas)
    assert full // 5 in quotas or round(full / 5) in quotas, quotas
    assert kernel_leftovers(proc.pid) == ""
    assert proc.pid not in owned()


def test_a_slowed_processor_stopped_by_kill_worker_stays_stopped_and_is_fenced(tmp_path):
    # The hang (kill-worker --signal stop) wins over the slowdown's duty cycle, which would
    # otherwise continue it within 100 ms and hide the hang from failure detection.
    slow = {**SLOW, "to": "end"}
    spec = spec_file(tmp_path, rate=6_000, stragglers=[slow], cluster=None)
    out = tmp_path / "results"
    sent: list[str] = []

    def seen(run_dir: Path) -> None:
        slowed = any(e["event"] == "slowed" for e in events_of(run_dir))
        if slowed and not sent:
            time.sleep(0.5)
            stop = subprocess.run(
                streamlec(tmp_path, "kill-worker", "processor-2", "--signal", "stop"),
                capture_output=True,
                text=True,
                env=env_of(tmp_path),
            )
            sent.append(stop.stdout + stop.stderr)

    run_dir = watch_run(start_run(tmp_path, spec, out), out, seen)
    summary = json.loads((run_dir / "summary.json").read_text())
    context = json.dumps(summary, indent=1)
    assert summary["complete"] and summary["items_lost"] == 0, context
    assert summary["reference"]["matches"], context
    (failure,) = summary["failures"]
    assert failure["worker"] == "processor-2" and failure["signal"] == "SIGSTOP", context
    assert failure["fenced"], context
