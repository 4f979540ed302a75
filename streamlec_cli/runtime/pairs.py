"""Several source/sink pairs in one run (``pairs: N``): N independent streams, each with its
own source, sink and model, whose processors share the same hosts.

Pair ``I`` is a whole run of its own in ``<run>/pair-I`` (its spec has ``pair: I`` and
``dataset.seed`` + I, so each pair streams other rows), written by a supervisor of its own: a
process started here (``python -m streamlec_cli.runtime.pairs <run>/pair-I``), so that each
pair has its signals, sockets, fault injection and summary exactly as a run of one pair has.
On an emulated cluster the hosts are made and measured once, here, and every pair places its
workers on them (``placement.py``: each pair's sink and source on hosts of their own,
processor-I of every pair on one host, sharing its CPU quota and its link); on shared cores
every worker runs on this machine. A failure in the spec kills processor-I of every pair,
as the crash of the host they share would.

The run's own ``summary.json`` adds the pairs up: items, losses and throughput are sums (each
pair's throughput over its own measured window; the pairs start together and stream as many
items each), the latency percentiles and the distance to the reference are the worst pair's,
and ``pairs_runs`` lists each pair's. ``results.run_directories`` reads a pair's directory as
part of its run, never as a run of its own.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import clickmetrics
from .. import spec as specs
from ..results import write_json
from ..spec import Spec
from . import wire
from .emulate import EmulatedCluster, EmulationError, SharedCluster
from .interrupt import SIGNALS, Interrupted
from .lifeline import die_with_parent
from .placement import host_of
from .plan import free_ports
from .summary import add_meta, write_meta, write_resolved_spec

PAIR_FILE = "pair.json"  # in a pair's directory: its spec and the hosts it shares
PAIR_LOG = "supervisor.log"  # in a pair's directory: what its supervisor printed
SHUTDOWN_GRACE = 60.0  # seconds a pair's supervisor has to stop after a stop signal


class PairsFailed(RuntimeError):
    """The pairs could not be started (no hosts, no ports); the message says why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def pair_spec(spec: Spec, pair: int, port: int | None) -> Spec:
    """Pair ``pair``'s own run: its index, its rows (the seed plus its index) and its ports."""
    dataset = dataclasses.replace(spec.dataset, seed=spec.dataset.seed + pair)
    return dataclasses.replace(spec, pair=pair, dataset=dataset, port=port)


def pair_name(pair: int) -> str:
    return f"pair-{pair}"


class PairedRun:
    """One run of ``spec.pairs`` pairs, started by ``streamlec run`` (``console.py``)."""

    def __init__(self, spec: Spec, out: Path) -> None:
        from .supervisor import run_directory

        self.spec = spec
        self.run_dir = run_directory(out, spec)
        emulate = None if spec.cluster is None else spec.cluster.emulate
        self.emulated = None if emulate is None else EmulatedCluster(emulate)
        self.children: list[subprocess.Popen] = []

    def run(self) -> dict:
        write_resolved_spec(self.spec, self.run_dir / "spec.yaml")
        write_meta(self.spec, self.run_dir)
        error, stop = None, None
        try:
            shared = self.make_hosts()
            self.start(shared)
            stop = self.wait()
        except PairsFailed as exc:
            error = str(exc)
        finally:
            self.end()
            if self.emulated is not None:
                self.emulated.destroy()
        summary = combine(self.spec, self.run_dir, error)
        if stop is not None:
            raise stop
        return summary

    def make_hosts(self) -> SharedCluster | None:
        """Make and measure the emulated hosts once, for every pair (None: shared cores)."""
        if self.emulated is None:
            return None
        try:
            self.emulated.create()
            measured = self.emulated.measure()
        except EmulationError as exc:
            raise PairsFailed(str(exc), exit_code=2) from None
        placed = {
            pair_name(pair): {
                worker: host_of(pair_spec(self.spec, pair, None), worker)
                for worker in ("sink", "source", *self.spec.workers)
            }
            for pair in range(self.spec.pairs)
        }
        hosts = self.emulated.hosts
        add_meta(
            self.run_dir,
            "cluster",
            {
                "launcher": "local",
                "emulated": True,
                "network": self.emulated.network,
                "profile": None
                if self.emulated.emulate.profile is None
                else self.emulated.emulate.profile.to_dict(),
                **measured,
                "addresses": {host: self.emulated.address(host) for host in hosts},
                "placement": placed,
            },
        )
        return SharedCluster(self.emulated.owner, self.emulated.subnet, measured)

    def ports(self) -> list[int | None]:
        """Each pair's first port (tcp): ports of their own, one block after another."""
        if self.spec.transport != "tcp":
            return [None] * self.spec.pairs
        count = wire.port_count(len(self.spec.storage))
        base = self.spec.port or free_ports(count * self.spec.pairs)
        if base is None:
            msg = f"no {count * self.spec.pairs} consecutive free TCP ports found"
            raise PairsFailed(msg)
        return [base + pair * count for pair in range(self.spec.pairs)]

    def start(self, shared: SharedCluster | None) -> None:
        for pair, port in enumerate(self.ports()):
            pair_dir = self.run_dir / pair_name(pair)
            pair_dir.mkdir()
            one = pair_spec(self.spec, pair, port)
            write_json(
                pair_dir / PAIR_FILE,
                {
                    "spec": one.to_dict(),
                    "run_index": one.run_index,
                    "sweep_values": [list(item) for item in one.sweep_values],
                    "shared": None if shared is None else shared.to_dict(),
                },
            )
            with (pair_dir / PAIR_LOG).open("wb") as log:
                argv = [sys.executable, "-m", "streamlec_cli.runtime.pairs", str(pair_dir)]
                self.children.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def wait(self) -> Interrupted | None:
        """Until every pair's supervisor has ended; a stop signal is passed on to them."""
        passed = 0
        while any(child.poll() is None for child in self.children):
            received = SIGNALS.received
            if len(received) > passed:  # the same signal, so each pair stops as a run does
                for child in self.children:
                    if child.poll() is None:
                        child.send_signal(received[-1])
                passed = len(received)
            time.sleep(0.1)
        return SIGNALS.first()

    def end(self) -> None:
        """Every pair's supervisor ends: SIGTERM after a grace, then SIGKILL."""
        deadline = time.monotonic() + SHUTDOWN_GRACE
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _stop_with_parent() -> None:
    die_with_parent(signal.SIGTERM)


# -- the run's summary -----------------------------------------------------------------------

_SUMMED = (
    "items_in",
    "items_out",
    "items_lost",
    "items_duplicated",
    "decoded_items",
    "restarts",
    "recovery_rounds",
    "rollbacks",
    "replayed_batches",
    "wal_bytes",
)
_WORST = ("reference_max_rel_err",)


def combine(spec: Spec, run_dir: Path, error: str | None) -> dict:
    """Write and return the run's ``summary.json`` from its pairs' (see the module's text)."""
    runs = []
    for pair in range(spec.pairs):
        path = run_dir / pair_name(pair) / "summary.json"
        runs.append(json.loads(path.read_text()) if path.exists() else None)
    missing = [pair_name(p) for p, run in enumerate(runs) if run is None]
    if missing and error is None:
        error = f"{', '.join(missing)} wrote no summary (see its {PAIR_LOG})"
    done = [run for run in runs if run is not None]
    first = done[0] if done else _unrun(spec)
    errors = [
        f"{pair_name(p)}: {run['error']}" for p, run in enumerate(runs) if run and run["error"]
    ]
    error = error or ("; ".join(errors) or None)
    complete = bool(done) and not missing and all(run["complete"] for run in done)
    summary = {
        **first,
        "run_id": run_dir.name,
        "setting": spec.run_id,
        "pairs": spec.pairs,
        "complete": complete and error is None,
        "error": error,
        "exit_code": max([run["exit_code"] for run in done] or [1]) if error or done else 1,
    }
    for key in _SUMMED:
        values = [run.get(key) for run in done]
        summary[key] = None if missing or None in values else sum(values)
    for key in _WORST:
        values = [run.get(key) for run in done if run.get(key) is not None]
        summary[key] = max(values) if values else None
    references = [run.get("reference") or {} for run in done]
    first_reference = dict(references[0]) if references else {}
    first_reference.pop("metrics", None)  # one pair's reference scores: in its own summary
    summary["reference"] = {
        **first_reference,
        "max_rel_err": summary["reference_max_rel_err"],
        "matches": bool(references) and all(ref.get("matches") for ref in references),
    }
    rates = [run.get("throughput_items_per_s") for run in done]
    summed = None if missing or None in rates else float(sum(rates))
    together = None if summed is None else concurrent_throughput(run_dir, spec.pairs)
    summary["throughput_items_per_s"] = summed if together is None else together[0]
    summary["throughput_sum_of_pairs"] = summed
    summary["concurrent_seconds"] = None if together is None else together[1]
    summary["latency_ms"] = _worst_latency([run.get("latency_ms") for run in done])
    summary["failures"] = [{**f, "pair": p} for p, run in enumerate(done) for f in run["failures"]]
    summary["metrics"] = _pooled_metrics(run_dir, spec, done)
    summary["pairs_runs"] = [
        {
            "pair": pair,
            "run_dir": pair_name(pair),
            "seed": spec.dataset.seed + pair,
            **(
                {}
                if run is None
                else {
                    key: run.get(key)
                    for key in (
                        "complete",
                        "exit_code",
                        "items_in",
                        "items_out",
                        "items_lost",
                        "throughput_items_per_s",
                        "measured_seconds",
                        "reference_max_rel_err",
                        "metrics",
                    )
                }
            ),
        }
        for pair, run in enumerate(runs)
    ]
    if error and summary["exit_code"] == 0:
        summary["exit_code"] = 1
    summary["run_dir"] = str(run_dir)
    write_json(run_dir / "summary.json", summary)
    return summary


#: Shortest time all pairs must have streamed together for their joint throughput to be read
#: from it (else it is the sum of each pair's own).
MIN_TOGETHER_S = 1.0


def concurrent_throughput(run_dir: Path, pairs: int) -> tuple[float, float] | None:
    """Items per second all pairs delivered together while every one of them was streaming
    past its warm-up (from each sink's ``timeline.csv``; the pairs' sinks share this
    machine's clock), and for how long; None when that time is under ``MIN_TOGETHER_S``."""
    spans, timelines = [], []
    for pair in range(pairs):
        pair_dir = run_dir / pair_name(pair)
        sink = json.loads((pair_dir / "sink.json").read_text())
        if sink.get("t_start") is None or sink.get("t_end") is None:
            return None
        spans.append((sink["t_start"] + (sink.get("warmup_seconds") or 0.0), sink["t_end"]))
        rows = np.loadtxt(
            pair_dir / "timeline.csv", delimiter=",", skiprows=1, usecols=(0, 1), ndmin=2
        )
        timelines.append((sink["t_start"] + rows[:, 0], rows[:, 1]))
    begin, end = max(s for s, _ in spans), min(e for _, e in spans)
    if end - begin < MIN_TOGETHER_S:
        return None
    items = sum(int(n[(t > begin) & (t <= end)].sum()) for t, n in timelines)
    return items / (end - begin), end - begin


def _unrun(spec: Spec) -> dict:
    """What a summary says of the run when no pair wrote one."""
    from ..schemes import make_scheme

    return {
        "spec_name": spec.name,
        "scheme": spec.scheme.name,
        "scheme_label": make_scheme(spec.scheme, spec.processors).describe(),
        "algorithm": spec.algorithm.name,
        "dataset": spec.dataset.name,
        "processors": spec.processors,
        "latency_ms": None,
        "failures": [],
    }


def _pooled_metrics(run_dir: Path, spec: Spec, done: list[dict]) -> dict | None:
    """The pairs' metrics as one stream's: loss and accuracy weighted by items delivered, the
    click-through metrics over every pair's delivered predictions together."""
    if not done or not all(run.get("metrics") for run in done):
        return None
    weights = [run.get("items_out") or 0 for run in done]
    pooled: dict = {}
    for key in ("loss", "accuracy"):
        values = [run["metrics"].get(key) for run in done]
        if None not in values and sum(weights):
            pooled[key] = sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)
        else:
            pooled[key] = None
    kind = done[0]["metrics"].get("prediction_kind")
    if kind is not None:
        dirs = [run_dir / pair_name(pair) for pair in range(spec.pairs)]
        scores = clickmetrics.score_runs(dirs, kind) or clickmetrics.Scores(0, 0, None, None)
        pooled.update(prediction_kind=kind, **scores.to_dict())
    return pooled


def _worst_latency(latencies: list[dict | None]) -> dict | None:
    """Each latency percentile of the pair where it is highest."""
    known = [latency for latency in latencies if latency]
    if not known:
        return None
    keys = [key for key in known[0] if all(isinstance(lat.get(key), int | float) for lat in known)]
    return {key: max(lat[key] for lat in known) for key in keys}


# -- one pair's supervisor --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the pair whose directory is the argument, as its own run (``PAIR_FILE``)."""
    from .summary import run_exit_code
    from .supervisor import RunFailed, Supervisor

    pair_dir = Path((argv or sys.argv[1:])[0])
    told = json.loads((pair_dir / PAIR_FILE).read_text())
    one = specs.parse(told["spec"])[0]
    one = dataclasses.replace(
        one,
        run_index=told["run_index"],
        sweep_values=tuple((key, value) for key, value in told["sweep_values"]),
    )
    shared = None if told["shared"] is None else SharedCluster(**told["shared"])
    SIGNALS.install()
    try:
        summary = Supervisor(one, pair_dir.parent, run_dir=pair_dir, shared=shared).run()
    except Interrupted as stop:
        return stop.exit_code
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return run_exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
