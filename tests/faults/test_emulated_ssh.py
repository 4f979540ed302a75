"""Whole runs with the ssh launcher over 9 emulated hosts, each with its own real sshd.

The hosts are network namespaces on a bridge (tbf-shaped links, a CPU quota each; see
``tests/emulated_hosts.py``) that the test makes, not the run: to ``streamlec run`` they are
just addresses it reaches by ssh, with a remote ``ssh.dir`` of its own (not the run
directory). EC(4,2) logistic regression with two kills at different batches loses nothing,
duplicates nothing, matches the reference; the kills and replacements are in ``events.csv``;
every worker and spare runs inside its host (its pid's network namespace), the supervisor
listens on the bridge, each worker binds its host's address; ``plot`` and ``report`` read
the results; nothing is left in the hosts' directory, nor any process. A scheme that
replays keeps its write-ahead log on the source's host only while the run lasts.

They need root; without it they skip, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from emulated_hosts import SshHosts, emulated_ssh_hosts

from .test_emulated_run import (
    TWO_KILLS,
    alive,
    assert_plot_and_report_read,
    assert_two_kills_absorbed,
    events_of,
    start_run,
    worker_pids,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="emulated hosts need root (namespaces, links, qdiscs, cgroups)"
)

TIMEOUT = 300


@pytest.fixture(scope="module")
def hosts(tmp_path_factory) -> SshHosts:
    with emulated_ssh_hosts(tmp_path_factory.mktemp("hosts"), hosts=9, link=1e9, cpu=0.5) as up:
        yield up
    assert all(server.poll() is not None for server in up.servers.values())


def spec_file(tmp_path: Path, hosts: SshHosts, remote: Path, **settings) -> Path:
    ssh = {**hosts.settings.to_mapping(), "dir": str(remote)}
    spec = {
        "name": "emussh",
        "dataset": {"name": "higgs", "items": 36_000, "seed": 5},
        "algorithm": {"name": "logreg", "lr": 0.05},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        "batch": 1_000,
        "rate": 20_000,  # 50 ms a batch: each kill lands at its batch, not after the stream
        "transport": "tcp",
        "runtime": {"warmup": 0.0},
        "cluster": {"launcher": "ssh", "hosts": list(hosts.addresses.values()), "ssh": ssh},
        **settings,
    }
    path = tmp_path / "emussh.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def placed_while_running(proc: subprocess.Popen, out: Path, hosts: SshHosts) -> dict[str, str]:
    """Once every worker and spare has started: the host whose network namespace each live
    worker's pid is in (by worker), read from ``/proc`` while the run lasts. (The sink's
    events, "all workers up" among them, come back with its files at the end.)"""
    namespaces = {
        os.stat(f"/run/netns/{hosts.cluster.netns(host)}").st_ino: host
        for host in hosts.cluster.hosts
    }
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p.parent for p in out.rglob("events.csv")]
        happened = events_of(found[0]) if found else []
        spares = [e for e in happened if e["event"] == "spawned" and "spare" in e["detail"]]
        if len(spares) == 2:  # after the sink, the source and the processors
            break
        time.sleep(0.02)
    seen = {}
    for e in happened:
        if e["event"] == "spawned":
            pid = int(e["detail"].split()[1].rstrip(","))
            inode = netns_inode(pid)
            if inode is not None:
                seen[e["worker"]] = namespaces.get(inode, f"not an emulated host (pid {pid})")
    return seen


def test_ec42_over_9_ssh_hosts_with_two_kills_loses_nothing_and_leaves_nothing(tmp_path, hosts):
    remote = tmp_path / "remote"  # the hosts' ssh.dir: not the run directory
    spec = spec_file(tmp_path, hosts, remote, failures=TWO_KILLS)
    out = tmp_path / "results"
    proc = start_run(tmp_path, spec, out)
    seen = placed_while_running(proc, out, hosts)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stdout + stderr
    (run_dir,) = [p.parent for p in out.rglob("summary.json")]
    events = assert_two_kills_absorbed(run_dir)
    restarted = [e["detail"] for e in events if e["event"] == "restarted"]
    assert all("warm spare standby-" in detail for detail in restarted), restarted
    # the supervisor heard the replacements: the group was whole again after each failure
    whole = [e["worker"] for e in events if e["event"] == "whole"]
    assert sorted(whole) == ["processor-1", "processor-4"], events
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failures_not_restored"] == 0

    # every worker on its placed host, and really inside it
    address = hosts.addresses
    spawned = {e["worker"]: e["detail"] for e in events if e["event"] == "spawned"}
    placed = {"sink": "h1", "source": "h2", "standby-1": "h9", "standby-2": "h3"}
    placed.update((f"processor-{i}", f"h{3 + i}") for i in range(6))
    assert set(placed) <= set(spawned)  # and the spares started after the replacements
    for worker, host in placed.items():
        assert spawned[worker].endswith(f"on {address[host]}"), (worker, spawned[worker])
    assert all(spawned[w].split(" on ")[1] in address.values() for w in set(spawned) - set(placed))
    assert {"sink", "source", "standby-1", "standby-2"} <= set(seen), seen
    assert seen == {worker: placed[worker] for worker in seen}

    # the supervisor listens on the bridge, the sink and the source on their hosts' addresses
    binds = (run_dir / "logs" / "sink.log").read_text()
    assert f"listens at tcp://{address['h1']}:" in binds
    processor = (run_dir / "logs" / "processor-0.log").read_text()
    assert f"the supervisor at tcp://{hosts.cluster.gateway}:" in processor
    assert f"the source at tcp://{address['h2']}:" in processor
    assert (
        f"listens for processors at tcp://{address['h2']}:"
        in (run_dir / "logs" / "source.log").read_text()
    )

    # the same results directory as a local run: plot and report read it unchanged
    assert_plot_and_report_read(tmp_path, out)

    # nothing left behind: workers, the run's files on the hosts, ssh connections
    assert not [pid for pid in worker_pids(run_dir) if alive(pid)]
    assert sorted(remote.rglob("*")) == []
    assert not ssh_clients_of(run_dir)


def ssh_clients_of(run_dir: Path) -> list[int]:
    """Pids of ssh clients still running for the run (their control sockets name it)."""
    from streamlec_cli.runtime.wire import socket_dir

    mark = str(socket_dir(run_dir)).encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if argv.startswith(b"ssh\0") and mark in argv:
            found.append(int(pid))
    return found
