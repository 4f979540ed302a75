"""Emulated hosts for real: network namespaces, veth links on a bridge, tbf, cgroups.

These need root (CI runs as root and runs them); without it they skip, saying so, except the
check that a run asking for emulation without root gets a clear error. What the kernel
holds is read back with ``ip``, ``tc`` and the cgroup filesystem, not through the code under
test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from streamlec_cli import cli, spec
from streamlec_cli.runtime import emulate
from streamlec_cli.runtime.emulate import EmulatedCluster, EmulationError

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="emulated hosts need root (namespaces, links, qdiscs, cgroups)"
)


def kernel_state(owner: int) -> dict[str, list[str]]:
    """What ``ip`` and the cgroup filesystem show of ``owner``'s cluster."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    groups = [
        str(path)
        for root in (emulate.CPU_V1, emulate.CGROUP_ROOT)
        if root.is_dir()
        for path in root.glob(f"streamlec-{owner}*")
    ]
    return {
        "netns": [line.split()[0] for line in netns.splitlines() if f"streamlec-{owner}-" in line],
        "links": [line for line in links.splitlines() if f" sl{owner}" in line],
        "cgroups": groups,
    }


def nothing_left(owner: int) -> bool:
    return not any(kernel_state(owner).values())


def run_in(cluster: EmulatedCluster, host: str, command: str) -> str:
    argv = [*cluster.enter_argv(host), "/bin/sh", "-c", command]
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


@needs_root
def test_set_up_makes_shaped_hosts_on_a_bridge_and_tear_down_leaves_nothing():
    owner = os.getpid()
    assert nothing_left(owner)
    cluster = EmulatedCluster(spec.EmulateSpec(3, link=100e6, cpu=0.5))
    with cluster:
        state = kernel_state(owner)
        assert sorted(state["netns"]) == [f"streamlec-{owner}-h{i}" for i in (1, 2, 3)]
        assert len(state["links"]) == 4  # the bridge and the hosts' ends on it
        bridge = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", cluster.bridge],
            capture_output=True,
            text=True,
        ).stdout
        net = cluster.network.removesuffix("0/24")  # 198.18.S. of the first free /24
        assert cluster.network.startswith("198.18.") and f"{net}1/24" in bridge
        inside = run_in(
            cluster, "h2", "ip -o -4 addr show; tc qdisc show dev eth0; cat /proc/self/cgroup"
        )
        assert f"{net}12/24" in inside and "127.0.0.1/8" in inside
        assert "tbf" in inside and "rate 100Mbit" in inside
        assert f"streamlec-{owner}/h2" in inside  # joined the host's CPU group
        outer = subprocess.run(
            ["tc", "qdisc", "show", "dev", cluster.veth("h2")], capture_output=True, text=True
        ).stdout
        assert "tbf" in outer and "rate 100Mbit" in outer  # the host's ingress
        group = Path(state["cgroups"][0]) / "h2"
        if (group / "cpu.max").exists():
            assert (group / "cpu.max").read_text().split() == ["50000", "100000"]
        else:
            assert (group / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert (group / "cpu.cfs_period_us").read_text().strip() == "100000"
        # hosts reach each other and the bridge, over their own addresses
        probe = f"import socket; socket.create_connection(('{net}11', 9), timeout=5)"
        reached = subprocess.run(
            [*cluster.enter_argv("h3"), sys.executable, "-c", probe],
            capture_output=True,
            text=True,
        )
        assert "ConnectionRefusedError" in reached.stderr  # an answer from h1: nothing listens
    assert nothing_left(owner)


@needs_root
def test_a_1gbit_link_and_a_host_given_0_2_cpu_measure_as_asked():
    cluster = EmulatedCluster(spec.EmulateSpec(2, link=1e9, cpu=0.2))
    with cluster:
        got = cluster.measure()
    assert got["asked"] == {"hosts": 2, "link_bit_s": 1e9, "cpu": 0.2}
    measured = got["measured"]
    assert 0.9e9 <= measured["link_bit_s"] <= 1.1e9, measured
    assert measured["link_between"] == "h2 -> h1" and len(measured["link_transfers_bit_s"]) == 2
    assert 0.17 <= measured["cpu"] <= 0.23, measured
    assert nothing_left(os.getpid())


#: Another owner's cluster, in a process of its own (a cluster whose owner is not alive is
#: removed by the next streamlec command anywhere on the machine).
OTHER_OWNER = """
import sys
from streamlec_cli import spec
from streamlec_cli.runtime.emulate import EmulatedCluster
with EmulatedCluster(spec.EmulateSpec(2)) as cluster:
    print(cluster.subnet, flush=True)
    sys.stdin.readline()
"""


@needs_root
def test_two_clusters_at_once_each_have_a_subnet_of_their_own():
    # a second run (or a test) beside a run's emulated cluster: each gets a /24 of its own
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        second = EmulatedCluster(
            spec.EmulateSpec(2), owner=other.pid, subnet=int(other.stdout.readline())
        )
        with EmulatedCluster(spec.EmulateSpec(2)) as first:
            assert first.network != second.network
            assert first.gateway != second.gateway
            assert {first.address("h1"), second.address("h1")} == {
                first.network.removesuffix("0/24") + "11",
                second.network.removesuffix("0/24") + "11",
            }
            for cluster in (first, second):  # each host reaches its own bridge
                probe = f"import socket; socket.create_connection(('{cluster.gateway}', 9), 5)"
                argv = [*cluster.enter_argv("h2"), sys.executable, "-c", probe]
                reached = subprocess.run(argv, capture_output=True, text=True, timeout=60)
                assert "ConnectionRefusedError" in reached.stderr, reached.stderr
    finally:
        other.communicate("\n", timeout=60)
    assert nothing_left(os.getpid()) and nothing_left(other.pid)


@needs_root
def test_cluster_check_says_what_the_machine_can_emulate_and_that_each_host_answers(tmp_path):
    path = tmp_path / "spec.yaml"
    raw = {"name": "chk", "processors": 2, "cluster": {"emulate": {"hosts": 3, "cpu": 1}}}
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(cli.main, ["cluster", "check", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ok  root: yes" in out and "ok  tbf: works" in out and "ok  veth: works" in out
    assert "netem:" in out and "cgroup cpu:" in out
    for i in (1, 2, 3):
        assert re.search(rf"ok  h{i} \(198\.18\.\d+\.1{i}\): reachable, streamlec", out), out
    assert nothing_left(os.getpid())


def test_emulation_without_root_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    path = tmp_path / "spec.yaml"
    raw = {
        "name": "noroot",
        "dataset": {"name": "higgs", "items": 2000},
        "processors": 2,
        "cluster": {"emulate": {"hosts": 3}},
    }
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(EmulationError, match="needs root"):
        EmulatedCluster(spec.EmulateSpec(3)).create()
    result = CliRunner().invoke(cli.main, ["cluster", "check", str(path)])
    assert result.exit_code == 1
    assert "no  root: no (uid 1000): emulation needs root" in result.output
    assert "an emulated cluster needs root" in result.output
    monkeypatch.setenv("STREAMLEC_RUNTIME_DIR", str(tmp_path / "registry"))
    run = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(tmp_path / "r"), "--quiet"])
    assert run.exit_code == 2, run.output
    assert "an emulated cluster needs root" in run.output
    assert run.exception is None or isinstance(run.exception, SystemExit)
