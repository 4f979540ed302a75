"""A run's summary: what the supervisor saw, checked against what the sink wrote.

``summarise`` writes ``summary.json`` from the run directory (``sink.json``, ``batches.csv``,
``memory.csv``) and the supervisor's ``Observed`` record; it recounts the delivered items from
``batches.csv`` on its own, judges from the slots missing in each batch whether the scheme
tolerated what happened, and compares the model and predictions with the single-process
reference. For a classifier it adds the click-through metrics (``clickmetrics``: log loss and
ROC AUC of the delivered predictions, for the run and, in ``batch_metrics.csv``, per batch), and
the reference's, computed from its own predictions. A sink started by hand has no supervisor:
it summarises with an empty ``Observed`` (``supervised=False``: no failures known, no memory
samples). ``write_meta`` and ``write_resolved_spec`` write the run's ``meta.json`` and
``spec.yaml`` at its start.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .. import clickmetrics, datasets
from ..provenance import code_commit
from ..reference import iter_reference
from ..results import latency_around, latency_in_spans, machine_info, write_json
from ..spec import Spec
from .plan import Plan

LATENCY_WINDOW = 5.0  # seconds before/after the first kill compared in the summary


@dataclass
class Observed:
    """What the supervisor saw of a run, for its summary."""

    failures: list[dict] = field(default_factory=list)  # one per processor failure
    fired: set[int] = field(default_factory=set)  # indices of the spec's failures carried out
    unexpected: list[str] = field(default_factory=list)  # failures nobody scheduled
    restarts: int = 0
    exit_code: int = 0
    started_at: float | None = None  # wall clock at the stream's start
    peak_kb: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[tuple[str, int], float] = field(default_factory=dict)  # (worker, incarnation)
    cpu_at_start: dict[tuple[str, int], float] = field(default_factory=dict)
    ticks_at_start: tuple[int, int] = (0, 0)  # the machine's (idle, total) CPU ticks
    ticks_at_end: tuple[int, int] = (0, 0)
    wal_bytes: int | None = None
    supervised: bool = True  # False: a sink started by hand, nobody watched the processors
    slowdowns: list[dict] = field(default_factory=list)  # the stragglers' windows, as applied

    def cpu_by_worker(self) -> dict[str, float]:
        """CPU seconds each worker slot used from the stream's start to its end (all its
        incarnations; a restarted one's start-up counts, it is part of recovering)."""
        out: dict[str, float] = {}
        for key, seconds in self.cpu_s.items():
            used = seconds - self.cpu_at_start.get(key, 0.0)
            out[key[0]] = round(out.get(key[0], 0.0) + used, 3)
        return dict(sorted(out.items()))

    def idle_during_stream(self) -> float | None:
        """Share of the machine's CPU time left idle from the stream's start to its end: a
        pipeline that waits on itself leaves cores idle however cheap its workers are."""
        idle = self.ticks_at_end[0] - self.ticks_at_start[0]
        total = self.ticks_at_end[1] - self.ticks_at_start[1]
        return round(idle / total, 3) if total > 0 and self.started_at is not None else None


#: Exit code of a run that finished but lost items (failures beyond its scheme's tolerance)
#: or does not match the single-process reference.
EXIT_LOST = 3


def run_exit_code(summary: dict) -> int:
    """The exit code this run gives ``streamlec run``, kept in ``summary.json`` so that a
    script reading the summary sees the same verdict as one reading the exit status: the stop
    signal's or error's code when there is one, else ``EXIT_LOST`` when items were lost or the
    reference does not match, else 0."""
    if summary["exit_code"]:
        return summary["exit_code"]
    if summary["error"] or not summary["complete"]:
        return 1
    if summary["items_lost"] or not (summary["reference"] or {}).get("matches"):
        return EXIT_LOST
    return 0


def latency_during_slowdown(run_dir: Path, seen: Observed) -> dict | None:
    """p50/p99/p99.9 latency of the items delivered before the first slowdown, during the
    slowdowns (first start to last end) and after them, and during / before ratios."""
    windows = [w for w in seen.slowdowns if w.get("start") is not None]
    if not windows or seen.started_at is None:
        return None
    start = min(w["start"] for w in windows)
    ends = [w["end"] for w in windows]
    end = max(e for e in ends if e is not None) if all(e is not None for e in ends) else None
    spans = {"before": (seen.started_at, start), "during": (start, end or math.inf)}
    if end is not None:
        spans["after"] = (end, math.inf)
    out = latency_in_spans(run_dir, spans, (50, 99, 99.9))
    if out is None:
        return None
    for q in ("p50", "p99", "p99.9"):
        before, during = out["before"][f"{q}_ms"], out["during"][f"{q}_ms"]
        out[f"{q}_ratio"] = during / before if before and during else None
    return out


def summarise(
    plan: Plan, run_dir: Path, seen: Observed, interrupted: bool, error: str | None
) -> dict:
    """Write and return ``summary.json``: what the sink wrote, what the supervisor saw, the
    independent audit of ``batches.csv`` and the distance to the reference."""
    spec = plan.spec
    sink_path = run_dir / "sink.json"
    sink = {}
    if sink_path.exists():
        sink = json.loads(sink_path.read_text())
    audit = audit_batches(run_dir / "batches.csv")
    meta = json.loads((run_dir / "meta.json").read_text())
    items_in = sink.get("items_in") or audit["items_seen"]
    # A stop signal that came after the sink finished the stream takes nothing from the run.
    complete = bool(sink.get("complete")) and error is None
    reference: dict = {}
    if complete:
        try:
            reference = compare_with_reference(spec, run_dir, plan)
        except datasets.DatasetError as exc:  # the data file was deleted or changed meanwhile
            error = f"the stream ended but the reference cannot be computed: {exc}"
            seen.exit_code = 2
    around = None
    if complete and seen.failures:
        first = min(f["time"] for f in seen.failures)
        around = latency_around(run_dir, first, LATENCY_WINDOW)
    slowdown = latency_during_slowdown(run_dir, seen) if complete else None
    summary = {
        "spec_name": spec.name,
        "run_id": run_dir.name,
        "setting": spec.run_id,
        "complete": complete,
        "error": error,
        "exit_code": seen.exit_code if interrupted or error else 0,  # see run_exit_code
        "scheme": spec.scheme.name,
        "scheme_label": plan.scheme.describe(),
        "algorithm": spec.algorithm.name,
        "algorithm_params": dict(spec.algorithm.params),
        "dataset": spec.dataset.name,
        "processors": spec.processors,
        "k": spec.scheme.k if spec.scheme.name == "ec" else None,
        "r": spec.scheme.r if spec.scheme.name == "ec" else None,
        "code": spec.scheme.code if spec.scheme.name == "ec" else None,
        "attach": spec.scheme.attach if spec.scheme.name == "ec" else None,
        "incremental": spec.scheme.incremental if spec.scheme.name == "ec" else None,
        "code_worst_condition": (
            plan.scheme.code.worst_condition() if spec.scheme.name == "ec" else None
        ),
        "copies": spec.scheme.copies if spec.scheme.name == "rep" else None,
        "batch": spec.batch,
        "rate": "max" if spec.rate is None else spec.rate,
        "items_in": items_in,
        "items_out": audit["items_out"],
        "items_lost": (
            items_in - audit["items_out"] if items_in is not None and complete else None
        ),
        "items_duplicated": audit["items_duplicated"],
        "decoded_items": sink.get("decoded_items"),
        "throughput_items_per_s": sink.get("throughput_items_per_s"),
        "measured_seconds": sink.get("measured_seconds"),
        "warmup_seconds": sink.get("warmup_seconds"),
        "latency_ms": sink.get("latency_ms"),
        "latency_around_first_failure": around,
        "stragglers": seen.slowdowns,
        "latency_during_slowdown": slowdown,
        "failures": seen.failures,
        **tolerance_restored(seen.failures),
        "failures_not_done": [
            failure.to_dict()
            for index, failure in enumerate(spec.failures)
            if index not in seen.fired
        ],
        "unexpected_exits": seen.unexpected,
        "restarts": seen.restarts,
        "recovery_rounds": sink.get("recovery_rounds"),
        "rollbacks": sink.get("rollbacks"),
        "replayed_batches": sink.get("replayed_batches"),
        **_flat_log(spec),
        "wal_bytes": seen.wal_bytes,
        **batch_tolerance(plan, run_dir / "batches.csv"),
        "supervised": seen.supervised,
        "reference_max_rel_err": reference.get("max_rel_err"),
        "reference": reference,
        "metrics": run_metrics(plan, run_dir, sink.get("metrics")),
        "peak_memory_mb": {k: round(v / 1024, 1) for k, v in sorted(seen.peak_kb.items())},
        "memory_growth_mb": memory_growth(run_dir / "memory.csv"),
        "cpu_seconds_during_stream": seen.cpu_by_worker(),
        "machine_idle_during_stream": seen.idle_during_stream(),
        "pipeline_depth": spec.pipeline_depth,
        "commit": meta.get("commit"),
        "machine": {k: meta.get(k) for k in ("host", "cores", "memory_gib", "platform")},
        "run_dir": str(run_dir),
    }
    summary["exit_code"] = run_exit_code(summary)
    write_json(run_dir / "summary.json", summary)
    return summary


def run_metrics(plan: Plan, run_dir: Path, sink_metrics: dict | None) -> dict | None:
    """The sink's metrics (mean loss, accuracy) and, for an algorithm with a
    ``prediction_kind``, the click-through metrics of every delivered prediction (log loss for a
    probability, None for a margin; ROC AUC; the share of label 1 and the accuracy of always
    predicting the commoner label, which a rare label makes high), from the run's files."""
    kind = plan.algorithm.prediction_kind
    if kind is None:
        return sink_metrics
    scores = clickmetrics.score_run(run_dir, kind) or clickmetrics.Scores(0, 0, None, None)
    return {**(sink_metrics or {}), "prediction_kind": kind, **scores.to_dict()}


def write_meta(spec: Spec, run_dir: Path) -> None:
    """``meta.json``: which run of which spec, the code's commit, the machine, the start.
    The run is named by its directory; ``setting`` is the spec's name for its settings."""
    meta = {
        "spec_name": spec.name,
        "run_id": run_dir.name,
        "setting": spec.run_id,
        "run_index": spec.run_index,
        "sweep_values": dict(spec.sweep_values),
        "commit": code_commit(),
        "start_time": time.time(),
        "start_time_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset_source": datasets.source_description(spec.dataset),
        "log": log_used(spec),
        **machine_info(),
    }
    write_json(run_dir / "meta.json", meta)


def _flat_log(spec: Spec) -> dict:
    """The summary's ``log`` (``storage``, ``source``; None without a log) and ``replicas``
    (storage workers; 0 for the source's own file), beside the scheme's other parameters."""
    used = log_used(spec)
    if used is None:
        return {"log": None, "replicas": None}
    return {"log": used["where"], "replicas": used["replicas"]}


def log_used(spec: Spec) -> dict | None:
    """Where a scheme that replays keeps its log: ``{"where": "storage", "replicas": 2}``
    (storage workers) or ``{"where": "source", "replicas": 0}`` (the source's own disk);
    None for a scheme without a log."""
    params = dict(spec.scheme.params)
    if "log" not in params:
        return None
    return {"where": params["log"], "replicas": len(spec.storage)}


def add_meta(run_dir: Path, key: str, value: object) -> None:
    """Add ``key`` to the run's ``meta.json`` (what was learned after it was written)."""
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text())
    meta[key] = value
    write_json(path, meta)


def resolved_spec(spec: Spec) -> dict:
    """What a run directory's ``spec.yaml`` holds: the one run's spec with every default
    filled in, without sweep or repeat (``--resume`` compares it with an earlier run's)."""
    resolved = spec.to_dict()
    resolved["repeat"] = 1
    resolved.pop("sweep", None)
    return resolved


def write_resolved_spec(spec: Spec, path: Path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(resolved_spec(spec), f, sort_keys=False)


def memory_growth(path: Path) -> dict:
    """Per worker: median RSS (MB) over the second and over the last quarter of the run.

    A worker whose memory does not grow with the run length shows the same two numbers.
    """
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    start, end = float(rows[0]["time"]), float(rows[-1]["time"])
    span = max(end - start, 1e-9)
    out = {}
    for worker in sorted({r["worker"] for r in rows}):
        mine = [r for r in rows if r["worker"] == worker]
        last_pid = mine[-1]["pid"]  # the latest incarnation
        mine = [(float(r["time"]), float(r["rss_mb"])) for r in mine if r["pid"] == last_pid]
        second = [m for t, m in mine if 0.25 <= (t - start) / span < 0.5]
        last = [m for t, m in mine if (t - start) / span >= 0.75]
        if second and last:
            out[worker] = {
                "second_quarter": round(float(np.median(second)), 1),
                "last_quarter": round(float(np.median(last)), 1),
            }
    return out


def batch_tolerance(plan, path: Path) -> dict:
    """Whether the scheme tolerated what happened: in every batch of ``batches.csv``, the
    slots whose output never came (``missing_slots``) were at most what the scheme absorbs at
    once. Also the most slots missing at once in any batch, which batch and which slots."""
    worst: list[int] = []
    worst_batch = None
    tolerated = True
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                missing = [int(slot) for slot in (row.get("missing_slots") or "").split()]
                tolerated = tolerated and plan.scheme.tolerates(missing)
                if len(missing) > len(worst):
                    worst, worst_batch = missing, int(row["batch"])
    return {
        "tolerated": tolerated,
        "most_missing_at_once": len(worst),
        "most_missing_batch": worst_batch,
        "most_missing_slots": worst,
    }


def tolerance_restored(failures: list[dict]) -> dict:
    """Median and maximum over the failures of the seconds until every processor slot was
    live and heard from again (None without such a failure), and how many never got there
    (the run ended first, or nothing restarts)."""
    times = [f["time_to_full_tolerance_s"] for f in failures]
    restored = [t for t in times if t is not None]
    return {
        "time_to_full_tolerance_median_s": float(np.median(restored)) if restored else None,
        "time_to_full_tolerance_max_s": max(restored) if restored else None,
        "failures_not_restored": len(times) - len(restored),
    }


def audit_batches(path: Path) -> dict:
    """Independent count of what the sink delivered, from ``batches.csv``.

    Each delivered (not replayed) row covers ``[offset, offset+count)`` minus its lost items;
    an item covered by two delivered rows is a duplicate.
    """
    items_out = duplicated = seen = 0
    covered: list[tuple[int, int]] = []
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["replayed"] == "1":
                    continue
                offset, count = int(row["offset"]), int(row["count"])
                items_out += count - int(row["items_lost"])
                covered.append((offset, offset + count))
                seen = max(seen, offset + count)
    covered.sort()
    reach = 0
    for lo, hi in covered:
        if lo < reach:
            duplicated += min(hi, reach) - lo
        reach = max(reach, hi)
    return {"items_out": items_out, "items_duplicated": duplicated, "items_seen": seen}


def compare_with_reference(spec: Spec, run_dir: Path, plan) -> dict:
    """Distance of the run's model and predictions to the single-process reference."""
    path = run_dir / "predictions.f64"
    if not path.exists() or not (run_dir / "model.npy").exists():
        return {}
    predictions = np.memmap(path, dtype=np.float64, mode="r")
    model = np.load(run_dir / "model.npy")
    diff = scale = 0.0
    offset = 0
    ref_model = None
    kind = plan.algorithm.prediction_kind
    labels: list[np.ndarray] = []  # for the reference's click-through metrics
    scores: list[np.ndarray] = []

    def batches():
        for rows in datasets.open_batches(spec.dataset, spec.batch):
            if kind is not None:
                labels.append(clickmetrics.positive(rows[:, 0]))
            yield rows

    for batch_predictions, after_batch, _ in iter_reference(
        plan.algorithm, batches(), spec.pipeline_depth
    ):
        ref_model = after_batch
        if kind is not None:
            scores.append(batch_predictions)
        got = predictions[offset : offset + batch_predictions.size]
        offset += batch_predictions.size
        finite = np.isfinite(got).all() and np.isfinite(batch_predictions).all()
        if got.size != batch_predictions.size or not finite:
            diff = float("inf")  # a lost, missing or non-finite prediction never matches
            continue
        diff = max(diff, float(np.abs(got - batch_predictions).max()))
        scale = max(scale, float(np.abs(batch_predictions).max()))
    pred_err = diff / scale if scale > 0 else diff
    assert ref_model is not None
    if np.isfinite(model).all() and np.isfinite(ref_model).all() and model.shape == ref_model.shape:
        model_scale = float(np.abs(ref_model).max())
        model_err = float(np.abs(model - ref_model).max()) / (model_scale or 1.0)
    else:  # a diverged model (NaN, inf) is never a match, even against a diverged reference
        model_err = float("inf")
    worst = max(pred_err, model_err)
    compared = {
        "max_rel_err": worst if np.isfinite(worst) else None,
        "model_rel_err": model_err if np.isfinite(model_err) else None,
        "predictions_rel_err": pred_err if np.isfinite(pred_err) else None,
        "predictions_compared": offset,
        "matches": bool(np.isfinite(worst) and worst <= 1e-9),
    }
    if kind is not None:
        ref = clickmetrics.score(np.concatenate(labels), np.concatenate(scores), kind)
        compared["metrics"] = ref.to_dict()
    return compared
