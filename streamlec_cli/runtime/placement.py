"""Which host each worker of a run goes to (``cluster.hosts``, or the emulated ``h1 .. hN``).

By default the sink and the source each get a host of their own (the first two), and so does
each storage worker of the log (``storage-0``, ``storage-1``, ...: the next ones) when there is
a host for every worker of the run; then the processors go one per host over the rest, round
robin, and the warm spares continue that round robin. With fewer hosts than workers the storage
workers share the processors' hosts (``storage-I`` on the I-th of them), so the processors are
placed as under any other scheme; with fewer than three hosts every worker goes round robin
over all of them.
With ``pairs`` (several independent streams), the first hosts are each pair's sink and source
in turn (pair 0's sink and source, pair 1's, ...), then, when there is a host for every worker,
each pair's storage workers; the processors of every pair share the rest, so processor-I of
each pair runs on the same host (their CPU quota and link are that host's).
``cluster.place`` overrides any of it, worker by worker. Without a ``cluster`` section there is
no placement (every worker runs on this host).
"""

from __future__ import annotations

from ..spec import Spec


def _own(spec: Spec, hosts: tuple[str, ...]) -> int:
    """How many of the first hosts go to one worker each: each pair's sink and source, and
    the storage workers too when there is a host for every worker of the run."""
    if len(hosts) < 2 * spec.pairs + 1:
        return 0
    every = spec.pairs * (2 + len(spec.storage)) + spec.processors
    return spec.pairs * (2 + len(spec.storage)) if len(hosts) >= every else 2 * spec.pairs


def _rest(spec: Spec, hosts: tuple[str, ...]) -> tuple[str, ...]:
    """The hosts processors and spares take turns on."""
    return hosts[_own(spec, hosts) :] or hosts


def host_of(spec: Spec, worker: str) -> str | None:
    """The host ``worker`` (sink, source, processor-I, storage-I, standby-N) runs on; None: this one
    (the supervisor always runs here)."""
    cluster = spec.cluster
    if cluster is None or not cluster.hosts or worker == "supervisor":
        return None
    place = dict(cluster.place)
    if worker in place:
        return place[worker]
    hosts = cluster.hosts
    if worker == "sink":
        return hosts[2 * spec.pair % len(hosts)]
    if worker == "source":
        return hosts[(2 * spec.pair + 1) % len(hosts)]
    number = int(worker.rsplit("-", 1)[1])
    if worker.startswith("storage-"):  # a host of its own, else the processors' in turn
        if _own(spec, hosts) > 2 * spec.pairs:
            return hosts[2 * spec.pairs + spec.pair * len(spec.storage) + number]
        rest = _rest(spec, hosts)
        return rest[number % len(rest)]
    turn = number if worker.startswith("processor-") else spec.processors + number - 1
    rest = _rest(spec, hosts)
    offset = 0 if len(hosts) >= 3 else 2
    return rest[(turn + offset) % len(rest)]


def placement(spec: Spec) -> dict[str, str]:
    """``{worker: host}`` for the sink, the source, the processors and the storage workers
    (empty: all here)."""
    placed = {worker: host_of(spec, worker) for worker in ("sink", "source", *spec.workers)}
    return {worker: host for worker, host in placed.items() if host is not None}
