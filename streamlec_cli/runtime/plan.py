"""What every worker derives from a run's spec: the algorithm, the scheme, the addresses."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from .. import datasets
from ..algorithms import Algorithm, make_algorithm
from ..schemes import Scheme, make_scheme
from ..spec import Spec
from . import wire

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
        """Address of the ``sink``, ``source`` or ``supervisor`` ROUTER for this run."""
        hosts = dict(self.spec.hosts)
        return wire.endpoint(
            self.run_dir,
            name,
            self.spec.transport,
            host=hosts.get(name, "127.0.0.1"),
            base_port=self.spec.port or base_port(self.run_dir),
        )

    @staticmethod
    def slot_of(worker: str) -> int:
        return int(worker.rsplit("-", 1)[1])


DEFAULT_PORT = 47100


def base_port(run_dir: Path) -> int:
    """TCP port of the sink (the source's and the supervisor's are the next ones) when the
    spec gives none: the first of the free ports the supervisor picked (file ``port`` in the
    run directory), else 47100."""
    path = Path(run_dir) / "port"
    return int(path.read_text()) if path.exists() else DEFAULT_PORT


def free_ports(count: int) -> int | None:
    """The first of ``count`` consecutive free TCP ports on this host (None: none found)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        try:
            for offset in range(1, count):
                with socket.socket() as other:
                    other.bind(("", port + offset))
        except OSError:
            continue
        return port
    return None


def make_plan(spec: Spec, run_dir: Path) -> Plan:
    d = datasets.feature_count(spec.dataset.name)
    algorithm = make_algorithm(spec.algorithm.name, d, **spec.algorithm.kwargs())
    return Plan(spec, Path(run_dir), algorithm, make_scheme(spec.scheme, spec.processors))


def model_version_for(batch: int, depth: int) -> int:
    """The model version batch ``batch`` is processed with (versions count applied batches)."""
    return max(0, batch - depth + 1)
