"""The ``slurm`` launcher against a real slurmctld, slurmd and munged on this host.

The module starts a cluster of one node (``slurm_cluster.py``, everything in a temporary
directory) and one allocation in it, as ``salloc`` gives a user; every test runs inside that
allocation. What a user relies on: a worker is a job step that starts at once, its end is seen
at once, it is signalled through Slurm, ``ps``/``kill-worker`` in another shell reach it from
its record, and a whole run with kills inside an allocation loses nothing and leaves no step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from slurm_cluster import SlurmCluster, available
from test_runtime import (
    RUN_TIMEOUT,
    assert_absorbed,
    events,
    only_run_dir,
    streamlec,
    write_spec,
)

from streamlec_cli.results import merge_events
from streamlec_cli.runtime.launch import handle_from_record
from streamlec_cli.runtime.launch_slurm import SlurmHandle, SlurmLauncher
from streamlec_cli.runtime.supervisor import RunFailed
from streamlec_cli.spec import Spec

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
#: A spare in miniature: waits for its slot on standard input, says it, ends.
READER = [sys.executable, "-c", "import sys; print('slot', sys.stdin.readline().strip())"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def allocation(cluster):
    """An allocation of the whole node, its variables in this process's environment."""
    salloc = subprocess.Popen(
        ["salloc", "-N1", "--no-shell", "--job-name=streamlec-tests"],
        env=cluster.env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    line = salloc.stderr.readline()
    assert "Granted job allocation" in line, line
    job = line.split()[-1]
    salloc.wait(30)
    saved = dict(os.environ)
    os.environ.update(
        SLURM_CONF=str(cluster.conf), SLURM_JOB_ID=job, SLURM_JOB_NODELIST=cluster.node
    )
    try:
        yield job
    finally:
        os.environ.clear()
        os.environ.update(saved)
        subprocess.run(["scancel", job], env=cluster.env())


@pytest.fixture
def launcher(allocation, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spec.yaml").write_text("name: x\n")
    launcher = SlurmLauncher(run_dir, run_dir / "spec.yaml")
    handles: list[SlurmHandle] = []

    def start(name: str, argv: list[str], **kwargs) -> SlurmHandle:
        handle = launcher.start(name, 1, argv, **kwargs)
        handles.append(handle)
        return handle

    launcher.start_test = start  # type: ignore[attr-defined]
    yield launcher
    for handle in handles:
        if handle.proc is not None and handle.proc.poll() is None:
            handle.signal(signal.SIGKILL)
            handle.proc.wait(10)
    launcher.finish()


def wait_readable(fd: int, timeout: float = 10.0) -> float:
    """Seconds until ``fd`` became readable."""
    began = time.monotonic()
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, f"fd {fd} not readable within {timeout} s"
    return time.monotonic() - began


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_nodes_default_to_the_allocations(launcher, cluster):
    assert launcher.nodes == [cluster.node]
    assert launcher.place("sink") == cluster.node
    run_dir = launcher.run_dir
    named = SimpleNamespace(cluster=SimpleNamespace(hosts=("n1", "n2", "n3", "n4")))
    assert SlurmLauncher.for_run(named, run_dir).nodes == ["n1", "n2", "n3", "n4"]
    unnamed = SimpleNamespace(cluster=SimpleNamespace(hosts=()))
    assert SlurmLauncher.for_run(unnamed, run_dir).nodes == [cluster.node]
    placed = SlurmLauncher.for_run(named, run_dir)
    where = [placed.place(w) for w in ("sink", "source", "processor-0", "processor-1")]
    assert where == ["n1", "n2", "n3", "n4"]
    assert placed.place("processor-2") == "n3"


def test_outside_an_allocation_the_run_fails_saying_so(tmp_path, monkeypatch):
    for var in ("SLURM_JOB_ID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RunFailed, match="inside an allocation") as failed:
        SlurmLauncher.for_run(SimpleNamespace(cluster=None), tmp_path)
    assert failed.value.exit_code == 2


def test_a_step_starts_is_signalled_and_its_end_is_seen_at_once(launcher, cluster):
    handle = launcher.start_test("processor-0", SLEEPER)
    assert handle.host == cluster.node and handle.job == launcher.job
    assert handle.step is not None and handle.step.startswith(f"{launcher.job}.")
    assert any(handle.step_name in line for line in cluster.steps())
    wait_for(lambda: handle.sample() is not None)  # /proc of the task on this node
    assert handle.sample().rss_kb > 0
    assert handle.poll() is None

    assert handle.signal(signal.SIGSTOP)
    wait_for(handle.stopped)
    assert handle.signal(signal.SIGCONT)
    wait_for(lambda: not handle.stopped())

    fd = handle.exit_fd()
    try:
        sent = time.monotonic()
        assert handle.signal(signal.SIGKILL)
        wait_readable(fd)
        print(f"kill seen after {1000 * (time.monotonic() - sent):.0f} ms")
    finally:
        os.close(fd)
    handle.proc.wait(5)
    assert handle.poll() == -signal.SIGKILL
    assert not handle.signal(signal.SIGTERM)  # gone: nothing to signal
    assert handle.sample() is None
    wait_for(lambda: not any(handle.step_name in line for line in cluster.steps()))


def test_a_handle_rebuilt_from_its_record_reaches_the_same_step(launcher):
    handle = launcher.start_test("processor-1", SLEEPER)
    record = json.loads(json.dumps({**handle.record(), "state": "running"}))
    assert record["launcher"] == "slurm" and record["step"] == handle.step
    assert record["task_pid"] is not None
    other = handle_from_record("processor-1", record)  # as ps/kill-worker in another shell
    assert isinstance(other, SlurmHandle) and other.proc is None
    assert other.sample() is not None
    assert other.signal(signal.SIGSTOP)
    wait_for(other.stopped)
    assert handle.stopped()
    assert other.signal(signal.SIGKILL)
    handle.proc.wait(10)
    assert handle.poll() == -signal.SIGKILL
    wait_for(lambda: not other.alive())
    assert not other.signal(signal.SIGKILL)


def test_a_spare_reads_its_slot_through_srun(launcher):
    spare = launcher.start_test("standby-1", READER, stdin=True)
    taken = launcher.adopt(spare, "processor-3", 2)
    assert taken is not None and (taken.worker, taken.incarnation) == ("processor-3", 2)
    assert taken.proc.wait(20) == 0
    log = launcher.run_dir / "logs" / "standby-1.log"
    assert "slot processor-3 2" in log.read_text()


def test_files_go_to_the_node_and_what_workers_wrote_comes_back(launcher):
    run_dir = launcher.run_dir
    (run_dir / "token").write_text("abc")
    (run_dir / "events.csv").write_text('time,worker,event,detail\n1.0,sup,spawned,"a"\n')
    write = textwrap.dedent(
        """
        import pathlib, sys
        d = pathlib.Path(sys.argv[1])
        assert (d / "token").read_text() == "abc" and not (d / "events.csv").exists()
        (d / "sink.json").write_text("{}")
        rows = '0.5,sink,x,"b"\\n2.0,sink,y,"c"\\n'
        (d / "events.csv").write_text("time,worker,event,detail\\n" + rows)
        """
    )
    handle = launcher.start_test(
        "sink", [sys.executable, "-c", write, str(launcher.remote_dir(launcher.nodes[0]))]
    )
    assert handle.proc.wait(20) == 0, (run_dir / "logs" / "sink.log").read_text()
    launcher.finish()
    assert (run_dir / "sink.json").read_text() == "{}"
    assert (run_dir / "token").read_text() == "abc"
    rows = (run_dir / "events.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["time", "0.5", "1.0", "2.0"]
    assert not launcher.remote_dir(
        launcher.nodes[0]
    ).exists()  # the node is this host: its copy is gone


def test_merge_events_keeps_one_header_and_time_order(tmp_path):
    path = tmp_path / "events.csv"
    merge_events(path, 'time,worker,event,detail\n3.0,a,b,"c, d"\n')
    merge_events(path, 'time,worker,event,detail\n1.0,a,b,""\n')
    assert path.read_text() == 'time,worker,event,detail\n1.0,a,b,""\n3.0,a,b,"c, d"\n'


def test_step_start_and_kill_seen_latency(launcher):
    """Measured: from ``srun`` to the step's task running, and from ``scancel`` to its end."""
    starts, kills = [], []
    for i in range(5):
        began = time.monotonic()
        handle = launcher.start_test(f"processor-{i}", SLEEPER)
        wait_for(lambda h=handle: h.task_pid is not None)
        starts.append(time.monotonic() - began)
        fd = handle.exit_fd()
        try:
            sent = time.monotonic()
            handle.signal(signal.SIGKILL)
            wait_readable(fd)
            kills.append(time.monotonic() - sent)
        finally:
            os.close(fd)
        handle.proc.wait(5)
    start_ms, kill_ms = 1000 * statistics.median(starts), 1000 * statistics.median(kills)
    print(f"step start {start_ms:.0f} ms, kill seen {kill_ms:.0f} ms (medians of 5)")
    assert start_ms < 2000 and kill_ms < 2000


# -- a whole run inside an allocation ------------------------------------------------------

#: EC(4,2) over tcp, about 3 s of stream, so that both kills land mid-stream.
TWO_KILLS = {
    "rate": 48_000,
    "failures": [
        {"at_batch": 3, "kill": ["processor-1"]},
        {"at_batch": 9, "kill": ["processor-2"]},
    ],
}

#: ``cluster: {launcher: slurm}`` where the spec has that section; before it had one, the
#: tests ran ``streamlec run`` with the slurm launcher put in place of the local one.
HAS_CLUSTER = "cluster" in {f.name for f in dataclasses.fields(Spec)}
SLURM = {"transport": "tcp", **({"cluster": {"launcher": "slurm"}} if HAS_CLUSTER else {})}
HARNESS = """
import sys
from streamlec_cli.runtime import supervisor
from streamlec_cli.runtime.launch_slurm import SlurmLauncher
supervisor.LocalLauncher = SlurmLauncher
from streamlec_cli.cli import main
main(sys.argv[1:])
"""


def streamlec_argv(tmp_path: Path) -> list[str]:
    """How to start ``streamlec`` so that ``run`` uses the slurm launcher on a ``SLURM`` spec."""
    if HAS_CLUSTER:
        return [sys.executable, "-m", "streamlec_cli"]
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    return [sys.executable, str(harness)]


def run_in_allocation(tmp_path: Path, spec: Path, env: dict, nodes: int = 1) -> subprocess.Popen:
    """``streamlec run SPEC --out tmp_path/results`` with the slurm launcher, inside a new
    allocation of ``nodes`` nodes (``salloc -N nodes ...``), in the background."""
    salloc = ["salloc", f"-N{nodes}", "--job-name=streamlec-run"]
    command = ["run", str(spec), "--out", str(tmp_path / "results"), "--quiet"]
    return subprocess.Popen(
        [*salloc, *streamlec_argv(tmp_path), *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ec42_run_inside_an_allocation_absorbs_two_kills(cluster, tmp_path):
    spec = write_spec(tmp_path, **SLURM, **TWO_KILLS)
    env = {**cluster.env(), "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    run = run_in_allocation(tmp_path, spec, env)
    stdout, stderr = run.communicate(timeout=RUN_TIMEOUT)
    assert run.returncode == 0, stdout + stderr
    run_dir = only_run_dir(tmp_path / "results")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert_absorbed(summary, run_dir, ["processor-1", "processor-2"])
    log = events(run_dir)
    assert any(e["worker"] == "sink" for e in log), log  # the sink's events came back
    assert "/tmp/streamlec-" in (run_dir / "logs" / "sink.log").read_text()  # on its node
    for name in ("batches.csv", "sink.json", "model.npy", "timeline.csv"):
        assert (run_dir / name).exists(), name
    assert [s for s in cluster.steps() if "streamlec:" in s] == []  # no step left
    tag = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert tag not in leftovers  # no worker of the run (they run in the node-local copy)
    assert not list(Path("/tmp").glob(f"streamlec-*-{tag}-*"))  # the node's copy is gone


def test_ps_and_kill_worker_in_another_shell_reach_a_step(cluster, tmp_path):
    """A user's ``streamlec ps`` and ``kill-worker`` beside a run in an allocation."""
    env = {**cluster.env(), "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    spec = write_spec(tmp_path, **SLURM, rate=24_000)  # about 6 s of stream
    run = run_in_allocation(tmp_path, spec, env)
    try:
        # The sink's files come back at the end (no shared file system): ps tells when the
        # workers are up, and the stream is under way a little later.
        wait_for(lambda: "processor-1" in streamlec("ps", env=env).stdout, timeout=60)
        time.sleep(2.5)
        ps = streamlec("ps", env=env)
        assert "slurm" in ps.stdout or "processor-1" in ps.stdout, ps.stdout + ps.stderr
        killed = streamlec("kill-worker", "processor-1", env=env)
        assert killed.returncode == 0, killed.stdout + killed.stderr
        _, stderr = run.communicate(timeout=RUN_TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr
    run_dir = only_run_dir(tmp_path / "results")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert_absorbed(summary, run_dir, ["processor-1"])
    assert [s for s in cluster.steps() if "streamlec:" in s] == []


def test_a_killed_supervisor_leaves_no_step_in_the_allocation(allocation, cluster, tmp_path):
    """A supervisor killed outright (the OOM killer, kill -9) inside an allocation that goes
    on: each srun client gets SIGTERM from the kernel and ends its step."""
    env = {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    spec = write_spec(tmp_path, **SLURM, rate=6_000)  # about 24 s of stream
    out = tmp_path / "results"
    run = subprocess.Popen(
        [*streamlec_argv(tmp_path), "run", str(spec), "--out", str(out), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: "processor-1" in streamlec("ps", env=env).stdout, timeout=60)
        assert [s for s in cluster.steps() if "streamlec:" in s]
    finally:
        run.kill()
        run.wait(10)
    wait_for(lambda: not [s for s in cluster.steps() if "streamlec:" in s], timeout=5)
    (run_dir,) = (meta.parent for meta in out.rglob("meta.json"))  # no summary: it was killed
    tag = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    wait_for(lambda: not list(Path("/tmp").glob(f"streamlec-*-{tag}-*")))  # nor a node copy
