"""Replacements under faults of every shape, with real processes and real signals.

Crashes in back-to-back bursts within the scheme's tolerance, a processor stopped (SIGSTOP)
under every scheme, stopped warm spares, and a paused sink or supervisor: what a user relies
on is that the run finishes, nothing is lost where the scheme tolerates the fault, the model
matches the single-process reference, nobody is accused of a pause that was not theirs, and
every failure records how soon the group was back to full tolerance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_runtime import RUN_TIMEOUT, events, live_run, only_run_dir, run_spec, streamlec

EC42 = {"name": "ec", "k": 4, "r": 2}
REP3 = {"name": "rep", "copies": 3}
#: Open loop, about 3.8 s of stream in 60 batches: a burst at batch 24 (the spares started with
#: the processors have long been ready), the next 12 batches (about 0.75 s) later.
BURSTS = {"dataset": {"name": "higgs", "items": 120_000, "seed": 5}, "batch": 2_000, "rate": 32_000}


def finish(run: subprocess.Popen, out: Path) -> tuple[dict, Path, str]:
    """Wait for a background run (bounded: a stall fails the test) and read its summary."""
    _, stderr = run.communicate(timeout=RUN_TIMEOUT)
    run_dir = only_run_dir(out)
    return json.loads((run_dir / "summary.json").read_text()), run_dir, stderr


def assert_exact(summary: dict, items: int) -> None:
    context = json.dumps(summary, indent=1)
    assert summary["complete"], context
    assert summary["items_in"] == items, context
    assert summary["items_lost"] == 0, context
    assert summary["items_duplicated"] == 0, context
    assert summary["reference"]["matches"], context


def assert_restored(summary: dict) -> None:
    """Every failure has its time to full tolerance, and the summary their median and max."""
    times = [f["time_to_full_tolerance_s"] for f in summary["failures"]]
    assert times and all(t is not None and t >= 0 for t in times), summary["failures"]
    assert summary["time_to_full_tolerance_max_s"] == max(times)
    assert summary["time_to_full_tolerance_median_s"] <= max(times)
    assert summary["failures_not_restored"] == 0


def committed(out: Path) -> int:
    """Batches the run under ``out`` has committed so far."""
    found = list(out.rglob("batches.csv"))
    return len(found[0].read_text().splitlines()) - 1 if found else 0


def signal_worker(env: dict, worker: str, sig: str = "KILL") -> int:
    """``streamlec kill-worker``, as a user sends it; the pid it reached."""
    sent = streamlec("kill-worker", worker, "--signal", sig, env=env)
    assert sent.returncode == 0, sent.stderr
    return int(sent.stdout.split("(pid ")[1].split()[0])


def worker_pids(env: dict) -> dict[str, int]:
    """Worker -> pid of the one live run, as ``streamlec ps`` shows them."""
    lines = streamlec("ps", env=env).stdout.splitlines()[1:]
    return {line.split()[0]: int(line.split()[2]) for line in lines}


def wait_for_event(run_dir_parent: Path, worker: str, event: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(run_dir_parent.rglob("events.csv"))
        if found and any(
            e["worker"] == worker and e["event"] == event for e in events(found[0].parent)
        ):
            return
        time.sleep(0.05)
    pytest.fail(f"no {event!r} event of {worker} within {timeout} s")


# -- crashes in bursts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "first", "second"),
    [
        # ec(4,2): both parities, then two data slots while the first pair is back
        pytest.param(
            EC42, ["processor-4", "processor-5"], ["processor-1", "processor-2"], id="ec42"
        ),
        # rep-3x over two groups absorbs four at once (two per group), then the third copies
        pytest.param(
            REP3,
            ["processor-0", "processor-1", "processor-3", "processor-4"],
            ["processor-2", "processor-5"],
            id="rep3",
        ),
    ],
)
def test_back_to_back_bursts_within_tolerance_lose_nothing(tmp_path, scheme, first, second):
    summary, run_dir, proc = run_spec(
        tmp_path,
        scheme=scheme,
        failures=[{"at_batch": 24, "kill": first}, {"at_batch": 36, "kill": second}],
        **BURSTS,
    )
    assert_exact(summary, 120_000)
    assert proc.returncode == 0
    assert sorted(f["worker"] for f in summary["failures"]) == sorted(first + second)
    assert_restored(summary)
    warm = [e for e in events(run_dir) if e["event"] == "restarted" and "warm spare" in e["detail"]]
    assert len(warm) >= len(first)  # the whole first burst was taken by spares already waiting
    assert "restored:  full tolerance" in proc.stderr


# -- a stopped processor -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "absorbed"),
    [
        (EC42, True),
        (REP3, True),
        ({"name": "reactive", "checkpoint_every": 4}, True),  # rolls back and replays
        ({"name": "none"}, False),  # the tasks queued at the stopped processor are lost
    ],
    ids=["ec42", "rep3", "reactive", "none"],
)
def test_a_stopped_processor_is_fenced_and_replaced_without_a_stall(tmp_path, scheme, absorbed):
    items = {"name": "higgs", "items": 180_000, "seed": 5}
    with live_run(tmp_path, scheme=scheme, dataset=items, rate=30_000) as (run, env, out):
        stopped = signal_worker(env, "processor-2", "STOP")  # about 6 s of stream, 30 batches
        assert committed(out) < 30  # mid-stream
        summary, run_dir, stderr = finish(run, out)
    log = events(run_dir)
    fenced = [e for e in log if e["event"] == "fenced" and e["worker"] == "processor-2"]
    assert fenced and f"pid {stopped}" in fenced[0]["detail"], log
    assert any(e["event"] == "restarted" and e["worker"] == "processor-2" for e in log), log
    assert [f["worker"] for f in summary["failures"]] == ["processor-2"]
    assert_restored(summary)
    if absorbed:
        assert run.returncode == 0, stderr
        assert_exact(summary, 180_000)
    else:  # `none` says what it lost (exit 3) and loses only the stopped slot's share
        assert run.returncode == 3, stderr
        assert summary["complete"] and 0 < summary["items_lost"] < 180_000 // 6
        assert summary["items_out"] + summary["items_lost"] == 180_000


# -- stopped spares ------------------------------------------------------------------------


def test_a_stopped_spare_is_never_given_a_slot(tmp_path):
    items = {"name": "higgs", "items": 240_000, "seed": 5}
    with live_run(tmp_path, dataset=items, rate=30_000) as (run, env, out):  # about 8 s
        spares = {w: pid for w, pid in worker_pids(env).items() if w.startswith("standby")}
        assert spares
        for spare in spares:
            signal_worker(env, spare, "STOP")
        signal_worker(env, "processor-1")
        # The slot is back (a stopped spare would hold it for the rest of the run) ...
        wait_for_event(out, "processor-1", "rejoined", timeout=30)
        # ... so two more crashes at once are within ec(4,2)'s tolerance.
        assert committed(out) < 40  # mid-stream
        for worker in ("processor-2", "processor-3"):
            signal_worker(env, worker)
        summary, run_dir, stderr = finish(run, out)
    assert run.returncode == 0, stderr
    assert_exact(summary, 240_000)
    assert_restored(summary)
    log = events(run_dir)
    adopted = [e["detail"] for e in log if e["event"] == "restarted"]
    assert not any(f"pid {pid} " in detail for detail in adopted for pid in spares.values())
    retired = {e["worker"] for e in log if e["event"] == "fenced"}
    assert set(spares) <= retired, log


def test_spares_that_die_are_replaced_before_a_slot_needs_them(tmp_path):
    items = {"name": "higgs", "items": 180_000, "seed": 5}
    with live_run(tmp_path, dataset=items, rate=30_000) as (run, env, out):  # about 6 s
        for spare in ("standby-1", "standby-2"):
            signal_worker(env, spare, "TERM")
        wait_for_event(out, "standby-4", "spawned", timeout=30)
        time.sleep(1.0)  # they import
        signal_worker(env, "processor-1")
        wait_for_event(out, "processor-1", "restarted", timeout=30)
        summary, run_dir, stderr = finish(run, out)
    assert run.returncode == 0, stderr
    assert_exact(summary, 180_000)
    assert_restored(summary)
    log = events(run_dir)
    assert {e["worker"] for e in log if e["event"] == "exited"} >= {"standby-1", "standby-2"}
    (taken,) = [e["detail"] for e in log if e["event"] == "restarted"]
    assert "warm spare standby-3" in taken or "warm spare standby-4" in taken, taken


# -- a paused sink or supervisor -----------------------------------------------------------


@pytest.mark.parametrize(
    ("paused", "scheme"),
    [("sink", EC42), ("sink", {"name": "reactive", "checkpoint_every": 4}), ("supervisor", EC42)],
    ids=["sink-ec42", "sink-reactive", "supervisor-ec42"],
)
def test_a_paused_sink_or_supervisor_accuses_nobody(tmp_path, paused, scheme):
    with live_run(tmp_path, scheme=scheme, rate=30_000) as (run, env, out):  # about 5 s
        pid = run.pid if paused == "supervisor" else worker_pids(env)["sink"]
        os.kill(pid, signal.SIGSTOP)
        assert committed(out) < 24  # mid-stream
        time.sleep(2.0)
        os.kill(pid, signal.SIGCONT)
        summary, run_dir, stderr = finish(run, out)
    assert run.returncode == 0, stderr
    assert_exact(summary, 144_000)
    log = events(run_dir)
    assert not [e for e in log if e["event"] in ("detected", "fenced", "items lost")], log
    assert summary["failures"] == [] and summary["unexpected_exits"] == []
