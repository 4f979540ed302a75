"""Whole runs with the ``slurm`` launcher over 9 emulated hosts, a Slurm node each.

The module makes 9 emulated hosts (``emulate.EmulatedCluster``: namespaces on a bridge, a
shaped link and a CPU quota each) and a Slurm cluster over them (``slurm_cluster``:
munged and slurmctld on this machine, listening at the bridge; a slurmd inside each host,
``NodeName=hI NodeAddr=<hI's address>``), so that every job step runs in its node's
namespace and CPU group. ``streamlec run`` inside ``salloc -N9``:

* EC(4,2) logistic regression with two kills at different batches loses nothing, duplicates
  nothing and matches the reference; the kills and replacements are in ``events.csv``; each
  worker ran inside the namespace and CPU group of the node it was placed on (sink and source
  on nodes of their own); ``plot`` and ``report`` read the results directory; no step, job,
  slurmstepd or worker is left;
* ``streamlec cluster check`` reaches every node of the allocation through a step, and says
  plainly when it is not inside one.

They need root and Debian's slurm-wlm and munge; without them they skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slurm_cluster import EmulatedSlurmCluster, available

from faults.test_emulated_run import assert_two_kills_absorbed, kernel_leftovers, spec_file
from streamlec_cli.runtime.emulate import EmulatedCluster
from streamlec_cli.spec import EmulateSpec

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

TIMEOUT = 300
HOSTS = 9
SALLOC = ["salloc", f"-N{HOSTS}", "--job-name=streamlec-eslurm"]
STREAMLEC = [sys.executable, "-m", "streamlec_cli"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """9 emulated hosts (1 Gbit/s links, half a core each) and a Slurm node in each; all of
    it removed at the end, also when a test failed."""
    emulated = EmulatedCluster(EmulateSpec(hosts=HOSTS, link=1e9, cpu=0.5))
    emulated.create()
    try:
        slurm = EmulatedSlurmCluster(tmp_path_factory.mktemp("eslurm"), emulated)
        try:
            yield slurm.start()
        finally:
            slurm.stop()
    finally:
        emulated.destroy()
    assert kernel_leftovers(os.getpid()) == ""


def in_allocation(cluster, tmp_path: Path, *args: str) -> subprocess.Popen:
    """``salloc -N9 python -m streamlec_cli ARGS`` in the background, on this machine."""
    return subprocess.Popen(
        [*SALLOC, *STREAMLEC, *args],
        env={**cluster.env(), "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def processes_in(cluster) -> list[dict]:
    """Every process inside one of the emulated hosts: pid, host, cpu group, command line."""
    hosts = {os.stat(f"/run/netns/{cluster.emulated.netns(h)}").st_ino: h for h in cluster.nodes}
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            netns = os.stat(proc / "ns" / "net").st_ino
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cgroups = (proc / "cgroup").read_text()
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if netns in hosts:
            found.append(
                {"pid": int(proc.name), "host": hosts[netns], "argv": argv, "cgroup": cgroups}
                | {"comm": comm}
            )
    return found


def workers_by_host(cluster) -> dict[str, tuple[str, str]]:
    """``{worker: (host of its namespace, its cpu cgroup)}`` for the workers alive now."""
    seen = {}
    for proc in processes_in(cluster):
        argv = proc["argv"]
        if "streamlec_cli" in argv and "worker" in argv:
            name = argv[argv.index("worker") + 2]
            rows = [line.split(":", 2) for line in proc["cgroup"].splitlines()]
            cpu = [row[2] for row in rows if len(row) == 3 and "cpu" in row[1].split(",")]
            seen[name] = (proc["host"], cpu[0] if cpu else "")
    return seen


def jobs(cluster) -> list[str]:
    res = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %t"], env=cluster.env(), capture_output=True, text=True
    )
    return [line for line in res.stdout.splitlines() if line.strip()]


def test_ec42_over_9_slurm_nodes_in_emulated_hosts_with_two_kills(cluster, tmp_path):
    spec = spec_file(
        tmp_path,
        transport="tcp",
        cluster={"launcher": "slurm"},
        rate=10_000,  # 0.1 s a batch: the kills land at their batches, the workers are seen
        failures=[
            {"at_batch": 8, "kill": "processor-1"},
            {"at_batch": 20, "kill": "processor-4"},
        ],
    )
    out = tmp_path / "results"
    run = in_allocation(cluster, tmp_path, "run", str(spec), "--out", str(out), "--quiet")
    # While the stream flows: where each worker runs, seen from the kernel
    where = {"sink": "h1", "source": "h2"} | {f"processor-{i}": f"h{3 + i}" for i in range(6)}
    placed: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + TIMEOUT
    while run.poll() is None and time.monotonic() < deadline and set(where) - set(placed):
        placed = {**workers_by_host(cluster), **placed}  # the first seen: not a spare
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=TIMEOUT)
    assert run.returncode == 0, stdout + stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    events = assert_two_kills_absorbed(run_dir)
    assert any(e["worker"] == "sink" and e["event"] == "finished" for e in events)
    spawned = {e["worker"]: e["detail"] for e in events if e["event"] == "spawned"}
    for worker, host in where.items():
        assert spawned[worker].endswith(f"on {host}"), spawned
        # it ran in that host's namespace and CPU group (its slurmd's, inherited by the step)
        assert placed[worker][0] == host, placed
        assert placed[worker][1].endswith(f"/{host}"), placed
    # the clocks of the sink's and the source's nodes, read through a step on each: this
    # machine's clock, so the offset is within the round trip that bounds its error
    clocks = json.loads((run_dir / "meta.json").read_text())["clock_offset"]
    assert clocks["sink"]["host"] == "h1" and clocks["source"]["host"] == "h2", clocks
    for clock in clocks.values():
        assert abs(clock["offset_s"]) <= clock["round_trip_s"], clocks
    addresses = json.loads((run_dir / "addresses.json").read_text())
    assert addresses["supervisor"] == cluster.emulated.gateway
    assert addresses["h1"] == cluster.emulated.address("h1")
    for name in ("batches.csv", "sink.json", "model.npy", "timeline.csv"):
        assert (run_dir / name).exists(), name  # brought back from the sink's node
    assert "/tmp/streamlec-" in (run_dir / "logs" / "sink.log").read_text()

    env = {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    for command in (
        ["plot", str(out), "--out", str(tmp_path / "plots")],
        ["report", str(out), "--out", str(tmp_path / "report.md")],
    ):
        done = subprocess.run(
            [*STREAMLEC, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    # Nothing left: no step, no job, no slurmstepd or worker in the hosts, no node-local copy
    assert cluster.steps() == []
    deadline = time.monotonic() + 30
    while (jobs(cluster) or leftovers(cluster)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert jobs(cluster) == []
    assert leftovers(cluster) == []
    tag = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    assert not list(Path("/tmp").glob(f"streamlec-*-{tag}-*"))


def leftovers(cluster) -> list[str]:
    """What runs in the emulated hosts besides the slurmd's: slurmstepd, workers, srun."""
    return [" ".join(p["argv"]) for p in processes_in(cluster) if p["comm"] != "slurmd"]


def test_cluster_check_reaches_every_node_through_a_step(cluster, tmp_path):
    spec = spec_file(tmp_path, transport="tcp", cluster={"launcher": "slurm"})
    check = in_allocation(cluster, tmp_path, "cluster", "check", str(spec))
    stdout, stderr = check.communicate(timeout=TIMEOUT)
    assert check.returncode == 0, stdout + stderr
    lines = stdout.split(f"hosts of {spec}:")[1].strip().splitlines()
    assert len(lines) == HOSTS, stdout
    for host, line in zip(cluster.nodes, lines, strict=True):
        # the answer came from inside the node, over its link, to this host's bridge address
        assert line.strip().startswith(f"ok  {host} ({cluster.emulated.address(host)})"), line
        assert f"reached {cluster.emulated.gateway}" in line and "same code" in line, line
    assert cluster.steps() == []


def test_cluster_check_outside_an_allocation_says_so(cluster, tmp_path):
    spec = spec_file(tmp_path, transport="tcp", cluster={"launcher": "slurm"})
    done = subprocess.run(
        [*STREAMLEC, "cluster", "check", str(spec)],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not inside a Slurm allocation" in done.stdout, done.stdout
    assert "salloc -N<nodes> streamlec cluster check SPEC" in done.stdout, done.stdout


def test_cluster_check_names_a_node_its_step_cannot_reach(cluster, tmp_path):
    two = {"launcher": "slurm", "hosts": ["h1", "h2"]}
    spec = spec_file(tmp_path, transport="tcp", cluster=two)
    check = subprocess.run(
        ["salloc", "-N1", "-w", "h1", *STREAMLEC, "cluster", "check", str(spec)],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    h1, h2 = check.stdout.split(f"hosts of {spec}:")[1].strip().splitlines()
    assert h1.strip().startswith("ok  h1") and h2.strip().startswith("no  h2"), check.stdout
    assert "did not answer" in h2, check.stdout  # h2 is not in the allocation: no step
