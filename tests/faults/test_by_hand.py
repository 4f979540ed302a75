"""Workers started by hand, and signals sent with ``kill-worker`` (real processes, real signals).

* a run whose sink, source and processors are started one by one with ``streamlec worker``
  over tcp, processors first, in a run directory that does not exist yet, finishes exact and
  writes ``meta.json`` and ``summary.json``, which ``streamlec report`` and ``plot`` read;
* a worker whose peers never come gives up after ``--startup-timeout`` with one ``error:``
  paragraph naming whom it waited for and the command that starts them;
* ``kill-worker --signal TERM`` is recorded and shown as SIGTERM, not SIGKILL;
* ``kill-worker --signal STOP`` shows the worker ``stopped`` in ``ps``, and the processor is
  fenced, replaced and recorded as a failure with its real signal; ``--signal CONT`` resumes
  it before that, and then nothing failed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

TIMEOUT = 180  # seconds any one command may take on a busy machine


def free_port_below_ephemeral() -> int:
    """The first of three consecutive free TCP ports between 20000 and 32000 (outside
    Linux's ephemeral range, so a retrying connection can never be given one of them)."""
    for _ in range(200):
        port = random.randrange(20_000, 32_000)
        try:
            for offset in range(3):
                with socket.socket() as s:
                    s.bind(("", port + offset))
        except OSError:
            continue
        return port
    pytest.fail("no three consecutive free TCP ports between 20000 and 32000")


#: A small EC(2,1) run: 12 batches of 3,000 items.
SMALL_RUN = yaml.safe_load(
    """
    name: hand
    dataset: {name: higgs, items: 36000, seed: 5}
    algorithm: {name: logreg, lr: 0.05}
    scheme: {name: ec, k: 2, r: 1}
    processors: 3
    batch: 3000
    runtime: {warmup: 0.0}
    """
)


def write_spec(tmp_path: Path, **settings) -> Path:
    """``SMALL_RUN`` with ``settings`` in place of its own, as ``spec.yaml``."""
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**SMALL_RUN, **settings}))
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamlec_cli", *args]


def streamlec(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=TIMEOUT, env=env)


def by_hand_env() -> dict:
    """The environment of a user's shell: no supervisor in it."""
    env = dict(os.environ)
    env.pop("STREAMLEC_SUPERVISOR_PID", None)
    return env


def start_worker(spec: Path, worker: str, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        command("worker", str(spec), worker, "--run-dir", str(run_dir), *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=by_hand_env(),
    )


def finish(procs: dict[str, subprocess.Popen], timeout: float = TIMEOUT) -> dict[str, tuple]:
    """Wait for every worker; (exit code, stdout, stderr) of each. A worker still running at
    the deadline is killed and fails the test with everything the workers said."""
    deadline = time.monotonic() + timeout
    said = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs.values():
                other.kill()
            told = {n: p.communicate() for n, p in procs.items() if n not in said}
            pytest.fail(f"{name} still running after {timeout} s: {said} {told}")
        said[name] = (proc.returncode, out, err)
    return said


def test_a_by_hand_run_started_processors_first_finishes_and_reads_like_any_other(tmp_path):
    spec = write_spec(tmp_path, transport="tcp", port=free_port_below_ephemeral())
    run_dir = tmp_path / "not" / "yet" / "there"  # every worker creates it as it needs
    procs = {f"processor-{i}": start_worker(spec, f"processor-{i}", run_dir) for i in range(3)}
    time.sleep(1.0)  # the processors retry until their peers come
    procs["source"] = start_worker(spec, "source", run_dir)
    time.sleep(1.0)
    procs["sink"] = start_worker(spec, "sink", run_dir)
    said = finish(procs)
    for name, (code, out, err) in said.items():
        assert code == 0, (name, out, err)
        assert "Traceback" not in err, (name, err)
        lines = out.splitlines()
        assert len(lines) >= 3 and all(line.startswith(f"{name}: ") for line in lines), out
        assert str(run_dir) in lines[0]  # it says where it works ...
        assert "tcp://" in lines[0]  # ... and which addresses it binds or connects to
        assert "stream has started" in out
    assert "summary in" in said["sink"][1]
    summary = json.loads((run_dir / "summary.json").read_text())
    context = json.dumps(summary, indent=1)
    assert summary["complete"] and summary["supervised"] is False, context
    assert summary["items_in"] == 36_000 and summary["items_lost"] == 0, context
    assert summary["items_duplicated"] == 0, context
    assert summary["reference"]["matches"], context
    assert summary["tolerated"] and summary["most_missing_at_once"] == 0, context
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["spec_name"] == "hand" and meta["commit"] and meta["cores"] >= 1
    assert (run_dir / "spec.yaml").exists() and (run_dir / "logs").is_dir()
    report = streamlec("report", str(run_dir))
    assert report.returncode == 0, report.stdout + report.stderr
    assert "ec(2,1)" in report.stdout and "left out" not in report.stderr
    plots = tmp_path / "plots"
    plot = streamlec("plot", str(run_dir), "--out", str(plots))
    assert plot.returncode == 0, plot.stdout + plot.stderr
    assert list(plots.glob("*.png")), plot.stdout + plot.stderr


@pytest.mark.parametrize(
    ("worker", "waited_for"),
    [("processor-1", "sink"), ("sink", "processor-0"), ("source", "sink")],
)
def test_a_worker_whose_peers_never_come_gives_up_with_a_clear_message(
    tmp_path, worker, waited_for
):
    spec = write_spec(tmp_path, transport="tcp", port=free_port_below_ephemeral())
    run_dir = tmp_path / "missing" / "run"
    began = time.monotonic()
    said = finish({worker: start_worker(spec, worker, run_dir, "--startup-timeout", "2")}, 60)
    code, out, err = said[worker]
    assert code == 1, out + err
    assert time.monotonic() - began < 60
    assert err.startswith("error: ") and "Traceback" not in err, err
    paragraph = err.strip()
    assert "\n" not in paragraph, err
    assert f"{worker} gave up after 2 s" in paragraph
    assert waited_for in paragraph
    assert f"streamlec worker {spec}" in paragraph and f"--run-dir {run_dir}" in paragraph
    assert "--startup-timeout" in paragraph
    assert run_dir.is_dir()  # a run directory that did not exist is no reason to crash
    if worker == "sink":  # what it has is kept and says why the run did not happen
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["complete"] is False and "gave up" in summary["error"]
        assert (run_dir / "meta.json").exists()


@pytest.mark.parametrize(("worker", "offset"), [("sink", 0), ("source", 1)])
def test_a_worker_whose_port_is_taken_says_so_in_one_paragraph(tmp_path, worker, offset):
    port = free_port_below_ephemeral()
    spec = write_spec(tmp_path, transport="tcp", port=port)
    with socket.socket() as holder:  # another program listens on the worker's port
        holder.bind(("", port + offset))
        holder.listen()
        said = finish(
            {worker: start_worker(spec, worker, tmp_path / "run", "--startup-timeout", "5")}, 60
        )
    code, out, err = said[worker]
    assert code == 2, out + err
    assert err.startswith("error: ") and "Traceback" not in err, err
    paragraph = err.strip()
    assert "\n" not in paragraph, err
    assert f"cannot listen at tcp://127.0.0.1:{port + offset}" in paragraph
    assert "port" in paragraph.split(":", 3)[-1]  # says what to do: another port


# -- kill-worker on a supervised run ------------------------------------------------------------


def committed(out: Path) -> int:
    found = list(out.rglob("batches.csv"))
    return len(found[0].read_text().splitlines()) - 1 if found else 0


def start_run(
    tmp_path: Path, items: int = 144_000, **settings
) -> tuple[subprocess.Popen, dict, Path]:
    """``streamlec run`` in the background with a private registry, once mid-stream."""
    env = {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    out = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        dataset={"name": "higgs", "items": items, "seed": 5},
        scheme={"name": "ec", "k": 4, "r": 2},
        processors=6,
        batch=6_000,
        **settings,
    )
    run = subprocess.Popen(
        command("run", str(spec), "--out", str(out), "--quiet"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    while committed(out) < 4:
        if run.poll() is not None or time.monotonic() > deadline:
            run.kill()
            pytest.fail("the run did not reach batch 4: " + "".join(run.communicate()))
        time.sleep(0.05)
    return run, env, out


@contextlib.contextmanager
def killed_on_failure(run: subprocess.Popen):
    """A run left behind by a failed assertion is killed (its workers die with it)."""
    try:
        yield
    except BaseException:
        run.kill()
        run.communicate()
        raise


def finished_run(run: subprocess.Popen, out: Path) -> tuple[dict, list[dict], str]:
    """The run's summary, events and console output once it has ended (exit code 0)."""
    try:
        stdout, stderr = run.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail("the run did not end: " + "".join(run.communicate()))
    assert run.returncode == 0, stdout + stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "events.csv", newline="") as f:
        events = list(csv.DictReader(f))
    assert summary["items_lost"] == 0 and summary["reference"]["matches"], summary
    assert summary["tolerated"], summary
    return summary, events, stderr


def ps_states(env: dict) -> dict[str, str]:
    """Each worker's state as ``streamlec ps`` shows it."""
    rows = [line.split() for line in streamlec("ps", env=env).stdout.splitlines()]
    return {row[0]: row[3] for row in rows if row and row[1:2] == ["pid"]}  # name pid N state


def test_kill_worker_term_is_recorded_and_shown_as_sigterm(tmp_path):
    run, env, out = start_run(tmp_path, 240_000, rate=40_000)  # open loop: about 6 s
    with killed_on_failure(run):
        sent = streamlec("kill-worker", "processor-2", "--signal", "TERM", env=env)
        assert sent.returncode == 0, sent.stderr
        assert "SIGTERM" in sent.stdout
    summary, events, console = finished_run(run, out)
    (failure,) = summary["failures"]
    assert failure["worker"] == "processor-2" and failure["by"] == "kill-worker"
    assert failure["signal"] == "SIGTERM"
    kills = [e for e in events if e["event"] == "kill" and e["worker"] == "processor-2"]
    assert len(kills) == 1 and kills[0]["detail"].startswith("SIGTERM pid ")
    assert "processor-2 SIGTERMed (by kill-worker)" in console, console
    assert "SIGKILL" not in console, console


def test_kill_worker_stop_shows_stopped_in_ps_and_is_fenced_and_recorded(tmp_path):
    # A failure timeout of 5 s leaves time to look at the stopped worker before it is fenced,
    # on a busy machine too; the stream (10 s) goes on long enough to see it fenced.
    runtime = {"warmup": 0.0, "failure_timeout": "5s"}
    run, env, out = start_run(tmp_path, 300_000, rate=30_000, runtime=runtime)
    with killed_on_failure(run):
        sent = streamlec("kill-worker", "processor-2", "--signal", "STOP", env=env)
        assert sent.returncode == 0, sent.stderr
        states = ps_states(env)
        assert states["processor-2"] == "stopped" and states["processor-1"] == "running"
    summary, events, console = finished_run(run, out)
    (failure,) = summary["failures"]
    assert failure["worker"] == "processor-2" and failure["by"] == "kill-worker"
    assert failure["signal"] == "SIGSTOP" and failure["fenced"] is True
    assert any(e["event"] == "fenced" and e["worker"] == "processor-2" for e in events), events
    assert any(e["event"] == "restarted" and e["worker"] == "processor-2" for e in events)
    assert "processor-2 SIGSTOPped (by kill-worker), then fenced" in console, console
    assert summary["unexpected_exits"] == [], summary
    assert 1 <= summary["most_missing_at_once"] <= 2, summary  # its outputs, until replaced


def test_kill_worker_cont_resumes_a_stopped_processor_before_it_is_fenced(tmp_path):
    runtime = {"warmup": 0.0, "failure_timeout": "20s"}  # never reached: it is resumed first
    run, env, out = start_run(tmp_path, 240_000, rate=40_000, runtime=runtime)  # 6 s
    with killed_on_failure(run):
        stopped = streamlec("kill-worker", "processor-1", "--signal", "STOP", env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert ps_states(env)["processor-1"] == "stopped"
        resumed = streamlec("kill-worker", "processor-1", "--signal", "CONT", env=env)
        assert resumed.returncode == 0 and "SIGCONT" in resumed.stdout, resumed.stderr
        assert ps_states(env)["processor-1"] == "running"
    summary, events, _ = finished_run(run, out)
    assert summary["failures"] == [] and summary["unexpected_exits"] == [], summary
    sent = [e["detail"].split()[0] for e in events if e["event"] == "kill"]
    assert sent == ["SIGSTOP", "SIGCONT"], events


def test_a_by_hand_sink_stopped_with_ctrl_c_keeps_its_results_and_stops_the_others(tmp_path):
    spec = write_spec(
        tmp_path,
        transport="tcp",
        port=free_port_below_ephemeral(),
        dataset={"name": "higgs", "items": 600_000, "seed": 5},
        rate=30_000,  # 20 s of stream: the Ctrl-C comes in the middle of it
    )
    run_dir = tmp_path / "run"
    procs = {name: start_worker(spec, name, run_dir) for name in ("sink", "source")}
    procs |= {f"processor-{i}": start_worker(spec, f"processor-{i}", run_dir) for i in range(3)}
    deadline = time.monotonic() + 60
    while committed(run_dir) < 4:
        if time.monotonic() > deadline:
            finish(procs, 1)
        time.sleep(0.05)
    procs["sink"].send_signal(signal.SIGINT)
    said = finish(procs, 60)  # nobody waits forever for a sink that is gone
    code, out, err = said["sink"]
    assert code == 130 and "Traceback" not in err, out + err
    assert "results so far" in out
    for name in ("source", "processor-0", "processor-1", "processor-2"):
        assert said[name][0] == 0 and "stopped by the sink" in said[name][1], said[name]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["supervised"] is False
    assert summary["exit_code"] == 130  # as the sink exited, like a run stopped by Ctrl-C
    assert summary["items_out"] >= 4 * 3_000  # what was finished is kept
    assert (run_dir / "meta.json").exists()


def test_a_supervised_sink_starts_the_stream_only_once_its_supervisor_is_connected(tmp_path):
    # A short stream could end before the supervisor's connection to the sink is made: its
    # end of run went to an unknown peer and was lost, and the run was judged failed.
    spec = write_spec(tmp_path, transport="tcp", port=free_port_below_ephemeral())
    run_dir = tmp_path / "run"
    procs = {f"processor-{i}": start_worker(spec, f"processor-{i}", run_dir) for i in range(3)}
    procs["source"] = start_worker(spec, "source", run_dir, "--startup-timeout", "4")
    supervised = {**by_hand_env(), "STREAMLEC_SUPERVISOR_PID": str(os.getpid())}
    procs["sink"] = subprocess.Popen(
        command("worker", str(spec), "sink", "--run-dir", str(run_dir), "--startup-timeout", "4"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=supervised,
    )
    said = finish(procs, 60)
    code, out, err = said["sink"]
    assert code != 0, out + err
    assert "stream has started" not in out, out + err
    assert "gave up after 4 s" in err and "supervisor" in err, out + err
    assert committed(run_dir) == 0
