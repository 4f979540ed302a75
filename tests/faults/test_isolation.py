"""Runs are isolated, and interruptions keep what finished (real processes, real signals).

* a second tcp run on the port of a live one is a clear error before anything starts, and the
  live run finishes exact with nothing lost; a run that picks its own ports picks them below
  the ephemeral range;
* an ``--out`` path of 200 characters runs over ipc like any other;
* SIGINT, SIGTERM and SIGHUP to ``streamlec run`` stop it in stages with a summary, the
  shell's exit code for that signal, no worker and no socket left; so does a second Ctrl-C
  during the stop, and a signal that comes after the stream ended;
* a SIGKILLed supervisor's workers die with it, and the next ``streamlec`` command removes
  its sockets, staged rows, write-ahead log and registry entry and says so.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from streamlec_cli.runtime.plan import ephemeral_low, free_ports
from streamlec_cli.runtime.wire import socket_dir

TIMEOUT = 180  # seconds any one command may take on a busy machine
ITEMS = 144_000


class Harness:
    """One test's specs, results and private registry of live runs."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.env = {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}

    def spec(self, name: str = "iso", **settings) -> Path:
        spec = {
            "name": name,
            "dataset": {"name": "higgs", "items": ITEMS, "seed": 5},
            "algorithm": {"name": "logreg", "lr": 0.05},
            "scheme": {"name": "ec", "k": 4, "r": 2},
            "processors": 6,
            "batch": 6_000,
            "runtime": {"warmup": 0.0},
            **settings,
        }
        path = self.tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "streamlec_cli", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=TIMEOUT, env=self.env
        )

    def start(self, spec: Path, out: Path) -> subprocess.Popen:
        """``streamlec run`` in the background, returned once it is mid-stream."""
        proc = subprocess.Popen(
            self.command("run", str(spec), "--out", str(out), "--quiet"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.wait_until(proc, lambda: committed(out) >= 4, "committed 4 batches")
        return proc

    def wait_until(self, proc: subprocess.Popen, ready, what: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                stdout, stderr = proc.communicate()
                pytest.fail(f"the run never {what}:\n{stdout}{stderr}")
            time.sleep(0.01)

    def registry_entries(self) -> list[Path]:
        return list((self.tmp / "registry").glob("*.json"))


def run_dirs(out: Path) -> list[Path]:
    return [p.parent for p in out.rglob("meta.json")]


def committed(out: Path) -> int:
    found = list(out.rglob("batches.csv"))
    return len(found[0].read_text().splitlines()) - 1 if found else 0


def events_of(run_dir: Path) -> list[tuple[str, str]]:
    """(event, detail) of every row of events.csv so far."""
    path = run_dir / "events.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [(row["event"], row["detail"]) for row in csv.DictReader(f)]


def workers_of(run_dir: Path) -> list[str]:
    """Processes still running a worker of this run."""
    table = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in table.splitlines() if str(run_dir) in line and " worker " in line]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_second_run_on_the_port_of_a_live_one_is_a_clear_error(tmp_path):
    h = Harness(tmp_path)
    first = h.start(h.spec(transport="tcp", rate=30_000), tmp_path / "first")  # about 5 s
    (first_dir,) = run_dirs(tmp_path / "first")
    port = int((first_dir / "port").read_text())  # picked by the run: outside the ephemeral range
    assert port + 2 < ephemeral_low()
    second = h.run(
        "run", str(h.spec(transport="tcp", port=port)), "--out", str(tmp_path / "second")
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr.startswith("error: ") and str(port) in second.stderr
    assert "pick another port" in second.stderr and "Traceback" not in second.stderr
    assert first.poll() is None  # the second one started nothing: the first still runs
    stdout, stderr = finish(first)
    assert first.returncode == 0, stdout + stderr
    summary = summary_of(first_dir)
    assert summary["complete"] and summary["items_out"] == ITEMS
    assert summary["items_lost"] == 0 and summary["reference"]["matches"]
    assert "another run" not in stdout + stderr


def test_a_worker_of_another_run_on_the_same_port_joins_nothing(tmp_path):
    h = Harness(tmp_path)
    port = free_ports(3)
    first = h.start(h.spec(transport="tcp", port=port, rate=30_000), tmp_path / "first")
    (first_dir,) = run_dirs(tmp_path / "first")
    other = h.spec("other", transport="tcp", port=port)  # another spec, the same port
    stranger_log = tmp_path / "stranger.log"
    with open(stranger_log, "w") as log:
        stranger = subprocess.Popen(
            h.command("worker", str(other), "processor-0", "--run-dir", str(tmp_path / "o")),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=h.env,
        )
    try:
        stdout, stderr = finish(first)
    finally:
        stranger.kill()
        stranger.wait()
    assert first.returncode == 0, stdout + stderr
    summary = summary_of(first_dir)
    assert summary["complete"] and summary["items_out"] == ITEMS
    assert summary["items_lost"] == 0 and summary["reference"]["matches"]
    assert summary["failures"] == [] and summary["unexpected_exits"] == []
    said = (first_dir / "logs" / "sink.log").read_text()
    assert "ignoring messages of another run" in said, said  # its hello was dropped


def test_free_ports_are_below_the_ephemeral_range():
    for _ in range(20):
        port = free_ports(3)
        assert port is not None and port >= 1024 and port + 2 < ephemeral_low()


def test_an_out_path_of_200_characters_runs_over_ipc(tmp_path):
    h = Harness(tmp_path)
    out = tmp_path / "o"
    out = out / ("x" * (200 - len(str(out)) - 1))
    assert len(str(out)) == 200
    proc = h.run("run", str(h.spec()), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = run_dirs(out)
    summary = summary_of(run_dir)
    assert summary["items_out"] == ITEMS and summary["items_lost"] == 0
    assert not socket_dir(run_dir).exists()


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
)
def test_a_signal_stops_the_run_in_stages_and_keeps_a_summary(tmp_path, sig, code):
    h = Harness(tmp_path)
    out = tmp_path / "results"
    proc = h.start(h.spec(rate=30_000), out)  # about 5 s of stream
    proc.send_signal(sig)
    stdout, stderr = finish(proc)
    name = signal.Signals(sig).name
    assert proc.returncode == code, stdout + stderr
    assert f"interrupted by {name}" in stderr and "Traceback" not in stderr
    (run_dir,) = run_dirs(out)
    summary = summary_of(run_dir)
    assert summary["complete"] is False and summary["exit_code"] == code
    assert summary["items_out"] >= 3 * 6_000
    said = [detail for event, detail in events_of(run_dir) if event == "interrupted"]
    assert len(said) == 1 and said[0].startswith(f"{name}: "), said
    assert workers_of(run_dir) == []
    assert not socket_dir(run_dir).exists()
    assert h.registry_entries() == []


def test_a_second_ctrl_c_hurries_the_stop_but_the_summary_is_written(tmp_path):
    h = Harness(tmp_path)
    out = tmp_path / "results"
    proc = h.start(h.spec(rate=30_000), out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = finish(proc)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    (run_dir,) = run_dirs(out)
    assert summary_of(run_dir)["complete"] is False
    assert workers_of(run_dir) == []
    assert not socket_dir(run_dir).exists()


def test_a_signal_just_after_the_stream_ended_still_leaves_the_summary(tmp_path):
    h = Harness(tmp_path)
    out = tmp_path / "results"
    proc = h.start(h.spec(dataset={"name": "higgs", "items": 600_000, "seed": 5}), out)
    (run_dir,) = run_dirs(out)
    h.wait_until(proc, lambda: "finished" in dict(events_of(run_dir)), "finished its stream")
    proc.send_signal(signal.SIGTERM)  # the supervisor is stopping workers or summarising
    stdout, stderr = finish(proc)
    assert proc.returncode == 143, stdout + stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    summary = summary_of(run_dir)  # the sink had finished: the run is whole
    assert summary["complete"] and summary["exit_code"] == 143
    assert summary["items_out"] == 600_000 and summary["items_lost"] == 0
    assert summary["reference"]["matches"]
    assert workers_of(run_dir) == []


@pytest.mark.parametrize(
    ("log", "logs"),
    [("source", ["wal.bin"]), ("storage", ["storage-0.bin", "storage-1.bin"])],
)
def test_the_next_command_cleans_up_after_a_killed_supervisor(tmp_path, log, logs):
    h = Harness(tmp_path)
    out = tmp_path / "results"
    spec = h.spec(
        dataset={"name": "higgs", "items": ITEMS, "seed": 5, "stage": True},
        scheme={"name": "reactive", "checkpoint_every": 4, "log": log},  # a write-ahead log
        rate=30_000,
    )
    proc = h.start(spec, out)
    (run_dir,) = run_dirs(out)
    assert (run_dir / "stream.f64").exists()
    assert all((run_dir / name).exists() for name in logs)
    assert socket_dir(run_dir).exists() and len(h.registry_entries()) == 1
    proc.kill()  # SIGKILL: the supervisor cleans nothing up
    finish(proc)
    deadline = time.monotonic() + 30
    while workers_of(run_dir) and time.monotonic() < deadline:  # they die with it
        time.sleep(0.05)
    assert workers_of(run_dir) == []
    ps = h.run("ps")
    assert ps.returncode == 0, ps.stdout + ps.stderr
    assert ps.stdout.strip() == "no live runs"
    said = ps.stderr
    assert "cleaned up after run iso/" in said and f"pid {proc.pid} gone" in said
    assert "socket" in said and "staged rows" in said and "write-ahead log" in said
    assert not socket_dir(run_dir).exists()
    assert not (run_dir / "stream.f64").exists()
    assert not any((run_dir / name).exists() for name in logs)
    assert h.registry_entries() == []
    for kept in ("events.csv", "batches.csv", "meta.json", "logs"):  # results stay
        assert (run_dir / kept).exists(), kept
    summary = summary_of(run_dir)
    assert summary["complete"] is False and summary["written_after_the_fact"]
    assert summary["items_out"] >= 3 * 6_000
    again = h.run("ps")  # said once: nothing is left to clean
    assert "cleaned up" not in again.stderr


def test_the_clean_up_kills_only_processes_that_are_workers_of_the_dead_run(tmp_path):
    # Where no parent-death signal exists a worker outlives its supervisor; a registered pid
    # may also have been reused by an unrelated process by then, which must be left alone.
    h = Harness(tmp_path)
    run_dir = tmp_path / "results" / "iso" / "run-1"
    run_dir.mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)", "worker", "processor-0"]
    orphan = subprocess.Popen([*sleeper, "--run-dir", "results/iso/run-1"], cwd=tmp_path)
    bystander = subprocess.Popen([*sleeper, "--run-dir", str(tmp_path / "elsewhere")])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # the dead supervisor's pid
    gone.wait()
    entry = {
        "run": "iso/run-1",
        "run_dir": str(run_dir),
        "supervisor": gone.pid,
        "workers": {
            name: {"launcher": "local", "host": "h", "pid": proc.pid, "incarnation": 1}
            for name, proc in (("processor-0", orphan), ("processor-1", bystander))
        },
    }
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "iso__run-1.json").write_text(json.dumps(entry))
    try:
        ps = h.run("ps")
        assert "1 worker(s) still running, SIGKILLed" in ps.stderr, ps.stderr
        assert orphan.wait(timeout=30) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander):
            proc.kill()
            proc.wait()
    assert h.registry_entries() == []
    assert summary_of(run_dir)["complete"] is False
