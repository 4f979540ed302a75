"""The ``slurm`` launcher over three Slurm nodes (n1, n2, n3: a slurmd each, on this machine).

Each node has its own slurmd and its own copy of the run directory, and is not this host by
name, so the run goes the way it goes on a real cluster: the files staged per node and brought
back, the workers placed over the nodes, samples from ``sstat``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, available
from test_launch_slurm import SLURM, TWO_KILLS, run_in_allocation
from test_runtime import RUN_TIMEOUT, assert_absorbed, events, only_run_dir, write_spec

from streamlec_cli.runtime.launch_slurm import sstat_samples

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm3"), nodes=3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_ec42_run_over_three_nodes_absorbs_two_kills(cluster, tmp_path):
    spec = write_spec(tmp_path, **SLURM, **TWO_KILLS)
    env = {**cluster.env(), "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    run = run_in_allocation(tmp_path, spec, env, nodes=3)
    stdout, stderr = run.communicate(timeout=RUN_TIMEOUT)
    assert run.returncode == 0, stdout + stderr
    run_dir = only_run_dir(tmp_path / "results")
    summary = json.loads((run_dir / "summary.json").read_text())
    # How idle "the machine" was has no one answer over several nodes: unknown, not made up
    assert summary["machine_idle_during_stream"] is None
    assert_absorbed(
        {**summary, "machine_idle_during_stream": 0.0}, run_dir, ["processor-1", "processor-2"]
    )
    spawned = {e["worker"]: e["detail"] for e in events(run_dir) if e["event"] == "spawned"}
    assert spawned["sink"].endswith("on n1") and spawned["source"].endswith("on n2")
    assert spawned["processor-0"].endswith("on n3")  # one node left for the processors
    assert any(e["worker"] == "sink" and e["event"] == "finished" for e in events(run_dir))
    memory = (run_dir / "memory.csv").read_text()
    assert "processor-0" in memory, memory[:500]  # sampled through sstat
    assert [s for s in cluster.steps() if "streamlec:" in s] == []
    tag = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
    assert not list(Path("/tmp").glob(f"streamlec-*-{tag}-*"))  # every node's copy is gone


def test_sstat_of_a_job_without_steps_is_empty(cluster):
    assert sstat_samples("999999") == {}
