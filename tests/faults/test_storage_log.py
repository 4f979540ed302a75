"""The reactive scheme's log on storage workers of their own (``log: storage``): every batch
is acknowledged by ``replicas`` storage processes before it is sent, and read back from one of
them when a processor crash rolls the run back."""

from __future__ import annotations

import json
import os
import signal

import pytest
import yaml
from test_runtime import (
    RUN_TIMEOUT,
    assert_absorbed,
    events,
    leftover_processes,
    live_run,
    only_run_dir,
    run_spec,
    streamlec,
)

from streamlec_cli.runtime import wire
from streamlec_cli.runtime.plan import free_ports

from .test_by_hand import finish, start_worker, write_spec
from .test_emulated_run import (
    TIMEOUT,
    TWO_KILLS,
    alive,
    assert_two_kills_absorbed,
    kernel_leftovers,
    spec_file,
    start_run,
)
from .test_emulated_run import worker_pids as spawned_pids
from .test_replacement import worker_pids

STORAGE = {"name": "reactive", "checkpoint_every": 4, "log": "storage", "replicas": 2}


@pytest.mark.parametrize("transport", ["ipc", "tcp"])  # tcp: storage-I on port base+3+I
def test_storage_log_replays_after_a_kill_and_leaves_no_file(tmp_path, transport):
    summary, run_dir, _ = run_spec(
        tmp_path,
        transport=transport,
        scheme=STORAGE,
        failures=[{"at_batch": 6, "kill": ["processor-2"]}],
        runtime={"warmup": 0.0, "standby": False},  # a cold restart: its tasks are lost
    )
    assert_absorbed(summary, run_dir, ["processor-2"])
    assert summary["rollbacks"] >= 1
    assert summary["replayed_batches"] >= 1
    assert (summary["log"], summary["replicas"]) == ("storage", 2)
    assert summary["scheme_label"] == "reactive-storage"
    spawned = {e["worker"] for e in events(run_dir) if e["event"] == "spawned"}
    assert {"storage-0", "storage-1"} <= spawned  # two processes of their own
    # each replica logged every item (fsynced) and its file is gone once the run is over
    assert summary["wal_bytes"] >= 2 * 144_000 * 29 * 8
    assert not list(run_dir.glob("storage-*.bin"))
    assert not (run_dir / "wal.bin").exists()  # nothing logged by the source itself
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["log"] == {"where": "storage", "replicas": 2}
    if transport == "tcp":
        base = int((run_dir / "port").read_text())
        log = (run_dir / "logs" / "storage-1.log").read_text()
        assert f"listens for the source at tcp://127.0.0.1:{base + 4}" in log
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["scheme"]["log"] == "storage"


def test_source_log_stays_on_the_source(tmp_path):
    summary, run_dir, _ = run_spec(
        tmp_path,
        scheme={"name": "reactive", "checkpoint_every": 4, "log": "source"},
        failures=[{"at_batch": 6, "kill": ["processor-1"]}],
        runtime={"warmup": 0.0, "standby": False},
    )
    assert_absorbed(summary, run_dir, ["processor-1"])
    assert (summary["log"], summary["replicas"]) == ("source", 0)
    assert summary["scheme_label"] == "reactive-source"
    assert not any(e["worker"].startswith("storage-") for e in events(run_dir))
    assert summary["wal_bytes"] >= 144_000 * 29 * 8
    resolved = yaml.safe_load((run_dir / "spec.yaml").read_text())["scheme"]
    assert resolved["log"] == "source" and "replicas" not in resolved  # read back by workers


@pytest.mark.skipif(os.geteuid() != 0, reason="emulated hosts need root")
def test_storage_log_over_emulated_hosts_crosses_the_links(tmp_path):
    """A host for every worker (6 processors, sink, source, 2 storage workers): the log goes
    to the storage workers' own hosts over tcp, and a kill is still absorbed."""
    spec = spec_file(
        tmp_path,
        scheme=STORAGE,
        rate=20_000,  # 50 ms a batch: the kills land at their batches
        failures=TWO_KILLS,
        cluster={"launcher": "local", "emulate": {"hosts": 10, "link": "1gbit", "cpu": 1.0}},
    )
    out = tmp_path / "results"
    proc = start_run(tmp_path, spec, out)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stdout + stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    events = assert_two_kills_absorbed(run_dir)
    spawned = {e["worker"]: e["detail"] for e in events if e["event"] == "spawned"}
    assert spawned["storage-0"].endswith("on h3") and spawned["storage-1"].endswith("on h4")
    assert {spawned[f"processor-{i}"].split()[-1] for i in range(6)} == {
        f"h{i}" for i in range(5, 11)
    }
    meta = json.loads((run_dir / "meta.json").read_text())
    network = meta["cluster"]["network"].removesuffix("0/24")
    for i, host in ((0, 13), (1, 14)):  # hI is .(10+I): listening on its host's address
        log = (run_dir / "logs" / f"storage-{i}.log").read_text()
        assert f"listens for the source at tcp://{network}{host}:" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["log"], summary["replicas"]) == ("storage", 2)
    assert summary["wal_bytes"] >= 2 * 36_000 * 29 * 8
    assert not list(run_dir.glob("storage-*.bin"))
    assert not [pid for pid in spawned_pids(run_dir) if alive(pid)]
    assert kernel_leftovers(proc.pid) == ""


def test_a_crashed_storage_worker_stops_the_run_plainly_and_keeps_what_finished(tmp_path):
    """A storage worker is outside the processors: its SIGKILL ends the run with exit 1,
    naming it, instead of a stall; the batches committed before stay, and no worker or log
    file outlives the run."""
    with live_run(tmp_path, scheme=STORAGE, rate=30_000) as (run, env, out):  # about 5 s
        refused = streamlec("kill-worker", "storage-0", env=env)  # not a tolerated fault
        assert refused.returncode != 0 and "cannot be SIGKILLed" in refused.stderr
        pid = worker_pids(env)["storage-0"]
        os.kill(pid, signal.SIGKILL)
        _, stderr = run.communicate(timeout=RUN_TIMEOUT)
    assert run.returncode == 1, stderr
    assert "storage-0 exited with code -9" in stderr
    run_dir = only_run_dir(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["items_out"] > 0
    assert summary["items_duplicated"] == 0
    assert not list(run_dir.glob("storage-*.bin"))
    assert leftover_processes(run_dir) == []


def test_storage_workers_started_by_hand_hold_the_log_and_stop_with_the_source(tmp_path):
    """Every worker by hand over tcp, the storage workers first: the run finishes exact, each
    storage worker stops when the source does and says how many batches it logged (by hand
    its log stays, as the source's wal.bin does)."""
    port = free_ports(wire.port_count(2))
    assert port is not None
    spec = write_spec(tmp_path, transport="tcp", port=port, scheme=STORAGE)
    run_dir = tmp_path / "hand"
    order = ("storage-0", "storage-1", "processor-0", "processor-1", "processor-2", "source")
    procs = {name: start_worker(spec, name, run_dir) for name in (*order, "sink")}
    said = finish(procs)
    for name, (code, out, err) in said.items():
        assert code == 0, (name, out, err)
        assert "Traceback" not in err, (name, err)
    for i in range(2):
        out = said[f"storage-{i}"][1]
        assert f"tcp://127.0.0.1:{port + 3 + i}" in out
        assert "stopped by the source after 12 batches logged" in out
        assert (run_dir / f"storage-{i}.bin").stat().st_size >= 36_000 * 29 * 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["items_lost"] == 0 and summary["items_duplicated"] == 0
    assert summary["reference"]["matches"]
    assert (summary["log"], summary["replicas"]) == ("storage", 2)
