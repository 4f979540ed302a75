"""Emulated hosts reached by ssh: an ``EmulatedCluster`` with a real sshd inside each host.

Each host (a network namespace on the cluster's own bridge, its link shaped, its processes
under a CPU quota) runs its own sshd, started through ``cluster.enter_argv(host)``: it listens
on the host's address only, port 22 of that namespace, with a host key and an authorized
client key made for the test, all in a temporary directory (nothing in /etc is changed).
Whatever a login starts runs in the host's namespace and CPU group, as on a real machine.
Everything is stopped and removed at the end of the block, also when it fails. Needs root.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd import SSHD, client_settings, make_keys, why_not, write_config

from streamlec_cli.runtime.emulate import EmulatedCluster
from streamlec_cli.runtime.launch_ssh import SshSettings
from streamlec_cli.spec import EmulateSpec

SSH_PORT = 22  # each host is a namespace of its own: its port 22 is free


@dataclass
class SshHosts:
    """The live cluster, the address of each host, and the settings that reach them."""

    cluster: EmulatedCluster
    addresses: dict[str, str]  # h1 -> 198.18.S.11, ...
    settings: SshSettings
    servers: dict[str, subprocess.Popen]


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def emulated_ssh_hosts(
    where: Path, hosts: int = 9, link: float | None = 1e9, cpu: float | None = 0.5
) -> Iterator[SshHosts]:
    """``hosts`` emulated hosts, each with an sshd on its address, until the block ends."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    make_keys(where)
    cluster = EmulatedCluster(EmulateSpec(hosts=hosts, link=link, cpu=cpu))
    servers: dict[str, subprocess.Popen] = {}
    with ExitStack() as stack:
        cluster.create()
        stack.callback(cluster.destroy)  # last: the namespaces go after their sshd's
        addresses = {host: cluster.address(host) for host in cluster.hosts}
        for host, address in addresses.items():
            log = stack.enter_context(open(where / f"sshd.{host}.log", "wb"))
            config = write_config(where, SSH_PORT, [address], f".{host}")
            servers[host] = subprocess.Popen(
                [*cluster.enter_argv(host), SSHD, "-D", "-e", "-f", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            stack.callback(_stop, servers[host])
        deadline = time.monotonic() + 20
        for host, address in addresses.items():
            while not _listening(address, SSH_PORT):
                log = (where / f"sshd.{host}.log").read_text()
                assert servers[host].poll() is None, f"sshd on {host} ended: {log}"
                assert time.monotonic() < deadline, f"sshd on {host} did not listen in 20 s"
                time.sleep(0.02)
        yield SshHosts(cluster, addresses, client_settings(where, SSH_PORT), servers)
