"""What every worker derives from a run's spec: the algorithm, the scheme, the addresses and
the run's token."""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .. import datasets
from ..algorithms import Algorithm, make_algorithm
from ..schemes import Scheme, make_scheme
from ..spec import Spec
from . import wire
from .emulate import gateway_address, host_address, host_index, subnet_of
from .placement import host_of

#: Batches the source may have in flight beyond the last acknowledged one (closed loop).
DEFAULT_WINDOW = 2


@dataclass(frozen=True)
class Plan:
    spec: Spec
    run_dir: Path
    algorithm: Algorithm
    scheme: Scheme

    @property
    def depth(self) -> int:
        return self.spec.pipeline_depth

    @property
    def window(self) -> int:
        return max(self.spec.pipeline_depth + 1, DEFAULT_WINDOW)

    def address(self, name: str) -> str:
        """Address of the ``sink``, ``source`` or ``supervisor`` ROUTER for this run: on the
        host the placement gives (``cluster``), else the one top-level ``hosts`` names."""
        return wire.endpoint(
            self.run_dir,
            name,
            self.spec.transport,
            host=self.host_address(name),
            base_port=self.spec.port or base_port(self.run_dir),
        )

    def host_address(self, name: str) -> str:
        """Where ``name`` (sink, source, supervisor) listens, as the others reach it."""
        cluster = self.spec.cluster
        if cluster is None:
            return dict(self.spec.hosts).get(name, "127.0.0.1")
        if cluster.emulate is not None:  # the supervisor sits on the bridge
            host, subnet = host_of(self.spec, name), subnet_of(self.run_dir)
            if host is None:
                return gateway_address(subnet)
            return host_address(host_index(host), subnet)
        known = self.addresses
        if name == "supervisor" and name in known:
            return known[name]
        if name == "supervisor":  # on the host that runs ``streamlec run``
            loopback = cluster.hosts and all(h.startswith("127.") for h in cluster.hosts)
            return (
                "127.0.0.1" if loopback or cluster.hosts == ("localhost",) else socket.gethostname()
            )
        host = host_of(self.spec, name)
        return "127.0.0.1" if host is None else known.get(host, host)

    @cached_property
    def addresses(self) -> dict[str, str]:
        """The run's hosts' addresses, and the supervisor's, where the launcher gave them
        (``ADDRESSES_FILE``: Slurm nodes whose ``NodeAddr`` is not their name)."""
        path = self.run_dir / ADDRESSES_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    @cached_property
    def token(self) -> str:
        """The run's token, carried by every message (``wire.use_run``)."""
        return run_token(self.run_dir, self.spec)

    @staticmethod
    def slot_of(worker: str) -> int:
        return int(worker.rsplit("-", 1)[1])


#: TCP port of the sink when neither the spec nor the supervisor names one (workers started by
#: hand): below Linux's ephemeral range (32768-60999), so that no outgoing connection of this
#: host is given it, and so that a worker retrying its connection never connects to itself.
DEFAULT_PORT = 27100
#: Where the supervisor looks for free ports when the spec gives none (below the ephemeral range).
PORT_RANGE = (20000, 32000)
#: The file in the run directory that holds the run's token (written by the supervisor).
TOKEN_FILE = "token"
#: The file in the run directory that maps hosts (and ``supervisor``) to the addresses the
#: workers reach them at, when the launcher knows better than the host names (JSON).
ADDRESSES_FILE = "addresses.json"


def base_port(run_dir: Path) -> int:
    """TCP port of the sink (the source's and the supervisor's are the next ones) when the
    spec gives none: the first of the free ports the supervisor picked (file ``port`` in the
    run directory), else ``DEFAULT_PORT``."""
    path = Path(run_dir) / "port"
    return int(path.read_text()) if path.exists() else DEFAULT_PORT


def ephemeral_low() -> int:
    """The first port of this host's ephemeral range (the kernel gives outgoing connections
    ports from there); 32768 where it cannot be read."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def taken_ports(base: int, count: int) -> list[int]:
    """Which of the ports ``base .. base+count-1`` some socket of this host listens on (or
    holds bound). ZeroMQ binds with SO_REUSEADDR, so the test does too: a port left in
    TIME_WAIT by a run that ended is free for the next one."""
    taken = []
    for port in range(base, base + count):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                taken.append(port)
    return taken


def free_ports(count: int) -> int | None:
    """The first of ``count`` consecutive free TCP ports on this host, below its ephemeral
    range (None: none found)."""
    low, high = PORT_RANGE
    high = min(high, ephemeral_low() - count)
    if high < low:  # an ephemeral range that starts this low leaves no room below it
        low, high = 1024, 65535 - count
    for _ in range(100):
        port = random.randint(low, high)
        if not taken_ports(port, count):
            return port
    return None


def new_run_token(run_dir: Path) -> str:
    """Draw a run's token and write it where its workers read it (``run_token``)."""
    token = secrets.token_hex(8)
    (Path(run_dir) / TOKEN_FILE).write_text(token)
    return token


def run_token(run_dir: Path, spec: Spec) -> str:
    """The run's token: the one its supervisor drew (in the run directory), else, for workers
    started by hand, one derived from the spec, so that the workers of one spec agree and
    those of another spec on the same port ignore them."""
    path = Path(run_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    text = json.dumps(spec.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_plan(spec: Spec, run_dir: Path) -> Plan:
    d = datasets.feature_count(spec.dataset.name)
    algorithm = make_algorithm(spec.algorithm.name, d, **spec.algorithm.kwargs())
    return Plan(spec, Path(run_dir), algorithm, make_scheme(spec.scheme, spec.processors))


def model_version_for(batch: int, depth: int) -> int:
    """The model version batch ``batch`` is processed with (versions count applied batches)."""
    return max(0, batch - depth + 1)
