"""A run's results directory: writing it as the run goes, reading it back for plots and reports.

``results/<spec name>/<run id>/`` (the run id is the setting's name and the UTC time the run
started, ``<setting>-YYYYmmdd-HHMMSS``, plus ``-2``, ``-3``... when that name is taken: every
run gets a new directory and an earlier run's is never touched) holds ``spec.yaml``
(resolved), ``meta.json`` (commit, host, cores, memory, versions, start time, run id and
setting), ``batches.csv``, ``timeline.csv``, ``events.csv``, ``predictions.f64`` (one float64
per stream item, NaN where lost), ``latency.f32`` (seconds from each item's arrival to its
final result, NaN where lost), for a classifier ``labels.u8`` (each item's label, 1 or 0) and
``batch_metrics.csv`` (``clickmetrics``), ``model.npy``, worker logs under ``logs/`` and
``summary.json``. CSV rows are flushed as they are written, and events are appended one
``write`` per line, so whatever was measured survives a crash of the harness.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import schemes
from .profiles import cluster_label

BATCH_COLUMNS = (
    "batch",
    "epoch",
    "offset",
    "count",
    "items_lost",
    "decoded_items",
    "recovery_round",
    "model_version",
    "loss",
    "accuracy",
    "t_arrival_first",
    "t_arrival_last",
    "t_final",
    "replayed",
    "missing_slots",  # slots whose output never came, space-separated
)
TIMELINE_COLUMNS = (
    "t_s",
    "items",
    "throughput_items_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_max",
)
EVENT_COLUMNS = ("time", "worker", "event", "detail")


class CsvLog:
    """A CSV file written row by row, each row flushed."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._file = open(path, "w", newline="")  # noqa: SIM115 - open for the run
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        self._writer.writeheader()
        self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def append_event(run_dir: Path, time: float, worker: str, event: str, detail: str = "") -> None:
    """Append one line to ``events.csv`` with a single write (safe from several processes)."""
    path = Path(run_dir) / "events.csv"
    detail = detail.replace('"', "'")
    line = f'{time:.6f},{worker},{event},"{detail}"\n'
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            os.write(fd, (",".join(EVENT_COLUMNS) + "\n").encode())
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def merge_events(path: Path, text: str) -> None:
    """Add the rows of another ``events.csv`` (``text``, a worker's on another host) to
    ``path``, every row in time order under one header; written whole, then renamed."""
    header, *rows = text.splitlines(keepends=True)
    if path.exists():
        header, *mine = path.read_text().splitlines(keepends=True)
        rows = mine + rows

    def when(row: str) -> float:
        try:
            return float(row.split(",", 1)[0])
        except ValueError:
            return 0.0

    merging = path.with_name(path.name + ".merging")
    merging.write_text(header + "".join(sorted(rows, key=when)))
    os.replace(merging, path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_plain) + "\n")
    except OSError:  # a full disk: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def machine_info() -> dict[str, Any]:
    """Host, cores, memory and versions of what the numbers depend on."""
    memory = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {"python": platform.python_version()}
    for package in ("streamlec", "numpy", "pyzmq", "scikit-learn", "pandas", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "versions": versions,
        "argv": sys.argv,
    }


#: How a run directory's name says when the run started (UTC), after the setting's name.
RUN_TIME_FORMAT = "%Y%m%d-%H%M%S"


def new_run_directory(spec_dir: Path, setting: str, now: float | None = None) -> Path:
    """Create and return a directory no other run has: ``<spec_dir>/<setting>-<UTC time>``,
    or that name plus ``-2``, ``-3``... when it is taken.

    ``mkdir`` without ``exist_ok`` either creates the name or fails, so two runs that start
    in the same second, even from two processes, each get their own directory, and no
    earlier run's directory is ever reused.
    """
    spec_dir = Path(spec_dir)
    spec_dir.mkdir(parents=True, exist_ok=True)
    base = f"{setting}-{time.strftime(RUN_TIME_FORMAT, time.gmtime(now))}"
    for n in itertools.count(1):
        path = spec_dir / (base if n == 1 else f"{base}-{n}")
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path


#: A folder holding this file is a committed set of results (``results/reference``): scanning
#: a parent folder skips it, so ``streamlec plot results/`` shows the user's own runs only;
#: name the folder itself to use it.
SEALED = ".streamlec-reference"


def run_directories(paths: Sequence[Path]) -> list[Path]:
    """Every run directory (one holding ``summary.json``) under the given paths; one inside
    another run's directory (a pair of a run of several, ``runtime/pairs.py``) is part of
    that run, not a run of its own."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if (path / "summary.json").exists():
            found.append(path)
        elif path.is_dir():
            sealed = [p.parent for p in path.rglob(SEALED) if p.parent != path]
            runs = {p.parent for p in path.rglob("summary.json")}
            found.extend(
                sorted(
                    run
                    for run in runs
                    if not any(s == run or s in run.parents for s in sealed)
                    and not any(parent in runs for parent in run.parents)
                )
            )
    return found


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def item_arrivals(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrival time and latency (seconds) of every delivered item, in stream order.

    Read from ``batches.csv`` and ``latency.f32``; returns two float64 arrays.
    """
    latency = np.fromfile(Path(run_dir) / "latency.f32", dtype=np.float32).astype(np.float64)
    arrivals = np.empty_like(latency)
    with open(Path(run_dir) / "batches.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["replayed"] == "1":
                continue
            offset, count = int(row["offset"]), int(row["count"])
            first, last = float(row["t_arrival_first"]), float(row["t_arrival_last"])
            arrivals[offset : offset + count] = np.linspace(first, last, count)
    return arrivals, latency


class NoRunsError(LookupError):
    """No run results where the user pointed; the message says what was expected."""


def find_runs(paths: Sequence[Path]) -> list[Path]:
    """Every run directory under ``paths``; :class:`NoRunsError` (one paragraph) when none."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        msg = (
            f"{', '.join(repr(m) for m in missing)} does not exist: pass the results "
            "directories that `streamlec run` wrote (results/ unless --out said otherwise)"
        )
        raise NoRunsError(msg)
    found = run_directories(paths)
    if not found:
        where = ", ".join(repr(str(p)) for p in paths)
        msg = (
            f"no run results in {where}: found no run directory (a folder holding "
            "summary.json, which `streamlec run` writes as <out>/<spec name>/<run id>/). "
            "Run a spec first, e.g. `streamlec run experiments/throughput.yaml`, then pass "
            "its results directory, e.g. results/"
        )
        raise NoRunsError(msg)
    return found


def setting_of(summary: dict[str, Any], run_dir: Path) -> str:
    """The setting a run ran (``Spec.run_id``: scheme, algorithm, dataset, sweep values,
    ``-rN``); in runs written before run ids were time-stamped, the run id itself."""
    return str(summary.get("setting") or summary.get("run_id") or Path(run_dir).name)


def started(run_dir: Path) -> tuple:
    """Sort key of runs by when they started (``meta.json``), then by directory name."""
    start = read_meta(run_dir).get("start_time")
    return (float(start) if isinstance(start, int | float) else 0.0, natural_key(run_dir.name))


_YAML = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when there is one: faster


def spec_text(resolved: dict[str, Any]) -> str:
    """A resolved spec as text equal for equal specs: as ``spec.yaml`` would hold it, read
    back as YAML data, keys sorted."""
    return _canonical(yaml.load(yaml.safe_dump(resolved), Loader=_YAML))


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def ran_spec(run_dir: Path) -> str | None:
    """``spec_text`` of the spec a run ran (its ``spec.yaml``); None when unreadable."""
    try:
        return _canonical(yaml.load((Path(run_dir) / "spec.yaml").read_text(), Loader=_YAML))
    except (OSError, yaml.YAMLError):
        return None


def finished_runs(spec_dir: Path) -> dict[tuple[str, str | None], Path]:
    """The runs under ``spec_dir`` that ran to the end, by (setting, ``ran_spec``); the
    latest when a setting has several.

    A run counts when its ``summary.json`` says ``complete: true`` with no ``error``.
    ``streamlec run --resume`` looks a new run up with its setting and ``spec_text`` of
    the spec it would write: the same resolved spec compared as YAML data, every key and
    value, data file path included, not the file's content nor the code's version.
    """
    found = {}
    for path in sorted(Path(spec_dir).glob("*/summary.json"), key=lambda p: started(p.parent)):
        run_dir = path.parent
        try:
            summary = read_summary(run_dir)
        except (OSError, ValueError):
            continue
        if summary.get("complete") is True and not summary.get("error"):
            found[(setting_of(summary, run_dir), ran_spec(run_dir))] = run_dir
    return found


def read_meta(run_dir: Path) -> dict[str, Any]:
    """``meta.json`` of a run, or an empty mapping when it is missing."""
    path = Path(run_dir) / "meta.json"
    return json.loads(path.read_text()) if path.exists() else {}


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``events.csv`` (``time`` as a float, unix seconds); empty when there is none."""
    path = Path(run_dir) / "events.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["time"] = float(row["time"])
    return rows


def last_log_line(path: Path) -> str:
    """The last non-empty line of a worker's log (what it said before it ended)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1] if lines else ""


def stream_start(run_dir: Path) -> float | None:
    """Unix time of the first item's arrival: the zero of ``timeline.csv`` (None if unknown)."""
    path = Path(run_dir) / "batches.csv"
    if not path.exists():
        return None
    with open(path, newline="") as f:
        times = [float(row["t_arrival_first"]) for row in csv.DictReader(f)]
    return min(times) if times else None


def scheme_family(summary: dict[str, Any]) -> str:
    """``none``, ``reactive``, ``rep-3x`` or ``ec(4,2)``: the scheme without its options."""
    return schemes.label(str(summary.get("scheme")), _scheme_values(summary), "family")


def scheme_variant(summary: dict[str, Any]) -> str:
    """The family plus the options that differ from the defaults, e.g. ``ec(4,2) inputs``,
    ``reactive source`` (the log on the source's own disk)."""
    return schemes.label(str(summary.get("scheme")), _scheme_values(summary), "variant")


def _scheme_values(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary's scheme parameters; a reactive run from before ``log`` was recorded kept
    its log on the source (the only place there was)."""
    if summary.get("scheme") == "reactive" and summary.get("log") is None:
        return {**summary, "log": "source"}
    return summary


#: The paper's schemes in the order of tables and legends (least redundancy last).
FAMILY_ORDER = tuple(
    schemes.label(name, values)
    for name, values in (
        ("none", {}),
        ("reactive", {}),
        ("rep", {"copies": 2}),
        ("rep", {"copies": 3}),
        ("ec", {"k": 5, "r": 1}),
        ("ec", {"k": 4, "r": 2}),
    )
)


def load_runs(
    paths: Sequence[Path], all_runs: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """Finished runs under ``paths`` and a note for each run left out.

    Each run is its ``summary.json`` plus ``meta`` (``meta.json``), ``run_dir``, ``family``,
    ``variant``, ``cluster`` (``profiles.cluster_label``: where its workers ran), ``spec_dir``
    (the folder of its spec's runs), ``setting`` (``setting_of``)
    and ``config`` (the setting without the ``-rN`` of ``repeat``, shared by the repeats of
    one configuration). Unless ``all_runs``, only the latest complete run of each setting
    (``latest_per_setting``) is kept, and a note says which earlier ones were left out.
    Raises :class:`NoRunsError` when there is no run directory at all.
    """
    runs, notes = [], []
    for run_dir in find_runs(paths):
        try:
            summary = read_summary(run_dir)
        except (OSError, ValueError) as exc:
            notes.append(f"{run_dir}: summary.json cannot be read ({exc})")
            continue
        if engine_of(summary) != STREAMLEC:  # another engine's run: see load_baselines
            continue
        if not summary.get("complete") or summary.get("throughput_items_per_s") is None:
            why = summary.get("error") or "the run did not finish"
            notes.append(f"{run_dir}: left out, {why}")
            continue
        meta = read_meta(run_dir)
        spec_name = summary.get("spec_name", run_dir.parent.name)
        setting = setting_of(summary, run_dir)
        suffix = f"-r{meta.get('run_index', 0)}"
        config = setting[: -len(suffix)] if setting.endswith(suffix) else setting
        runs.append(
            {
                **summary,
                "meta": meta,
                "run_dir": run_dir,
                "spec_dir": run_dir.parent,
                "spec_name": spec_name,
                "setting": setting,
                "same_setting": (spec_name, setting, ran_spec(run_dir)),
                "config": config,
                "family": scheme_family(summary),
                "variant": scheme_variant(summary),
                "cluster": cluster_label(meta),
            }
        )
    if not all_runs:
        runs, earlier = latest_per_setting(runs)
        notes.extend(earlier)
    label_algorithms(runs)
    return runs, notes


STREAMLEC = "streamlec"


def engine_of(summary: dict[str, Any]) -> str:
    """Which engine a run ran on: ``streamlec`` (no ``engine`` key), or the engine a
    ``streamlec baseline`` run names (``spark``)."""
    return str(summary.get("engine") or STREAMLEC)


def load_baselines(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The complete runs of other engines under ``paths`` (``streamlec baseline``): the
    latest per engine and spec folder, each its ``summary.json`` plus ``run_dir``,
    ``spec_dir`` and ``meta``. :func:`load_runs` leaves these runs out."""
    latest: dict[tuple[str, Path], dict[str, Any]] = {}
    for run_dir in sorted(run_directories(paths), key=started):
        try:
            summary = read_summary(run_dir)
        except (OSError, ValueError):
            continue
        if engine_of(summary) == STREAMLEC or not summary.get("complete"):
            continue
        run = {**summary, "run_dir": run_dir, "spec_dir": run_dir.parent}
        run["meta"] = read_meta(run_dir)
        latest[(engine_of(summary), run_dir.parent)] = run
    return list(latest.values())


def latest_per_setting(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The latest run (``started``) of each setting, and one note per spec naming the
    earlier runs left out. Runs are of the same setting when they have the same spec name,
    setting name and resolved spec (``spec.yaml``), as for ``streamlec run --resume``: a
    run with other ``--set`` values is another setting."""
    latest: dict[tuple, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda run: started(run["run_dir"])):
        latest[run["same_setting"]] = run
    kept = [run for run in runs if latest[run["same_setting"]] is run]
    left: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if latest[run["same_setting"]] is not run:
            left.setdefault(str(run["spec_name"]), []).append(run)
    notes = []
    for spec_name, older in left.items():
        shown = ", ".join(str(run["run_dir"]) for run in older[:3])
        more = f" and {len(older) - 3} more" if len(older) > 3 else ""
        noun = "run" if len(older) == 1 else "runs"
        notes.append(
            f"spec {spec_name!r}: the latest complete run of each setting is used; "
            f"{len(older)} earlier {noun} of the same settings left out ({shown}{more}); "
            "--all-runs uses every run"
        )
    return kept, notes


def natural_key(text: str) -> tuple:
    """Sort key reading the digit runs as numbers: ``clusters=8`` before ``clusters=32``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def label_algorithms(runs: list[dict[str, Any]]) -> None:
    """Set each run's ``algorithm_label``: the algorithm's name, plus the parameters that
    differ among the runs of that algorithm in the same spec folder (``kmeans clusters=64``),
    so runs of different settings are never pooled."""
    by_algorithm: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        by_algorithm.setdefault((run["spec_dir"], str(run.get("algorithm"))), []).append(run)
    for (_, name), group in by_algorithm.items():
        params = [run.get("algorithm_params") or {} for run in group]
        keys = sorted({key for p in params for key in p})
        varying = [key for key in keys if len({repr(p.get(key)) for p in params}) > 1]
        for run, p in zip(group, params, strict=True):
            run["algorithm_label"] = " ".join([name, *(f"{key}={p.get(key)}" for key in varying)])


def latency_around(run_dir: Path, instant: float, window: float = 5.0) -> dict | None:
    """p50/p99 latency (ms) of the items *delivered* in ``window`` seconds before/after ``instant``.

    An item counts by the time its result became final (arrival + latency), so an item that
    arrived before a crash and waited for the recovery counts after it, where its delay was
    seen. None when the run has no ``latency.f32`` or ``batches.csv``.
    """
    spans = {"before": (instant - window, instant), "after": (instant, instant + window)}
    out = latency_in_spans(run_dir, spans, (50, 99))
    if out is None:
        return None
    out = {"window_s": window, **out}
    if out["before"]["p99_ms"] and out["after"]["p99_ms"]:
        out["p99_ratio"] = out["after"]["p99_ms"] / out["before"]["p99_ms"]
    return out


def latency_in_spans(
    run_dir: Path, spans: dict[str, tuple[float, float]], percentiles: Sequence[float]
) -> dict | None:
    """Latency percentiles (ms) of the items delivered in each named span (wall clock, from,
    to), with their count; ``by: delivery`` as in ``latency_around``. None without the files."""
    run_dir = Path(run_dir)
    if not ((run_dir / "latency.f32").exists() and (run_dir / "batches.csv").exists()):
        return None
    arrivals, latency = item_arrivals(run_dir)
    delivered = arrivals + latency
    out: dict[str, Any] = {"by": "delivery"}
    for name, (lo, hi) in spans.items():
        chosen = latency[(delivered >= lo) & (delivered < hi)]  # NaN (lost) compares False
        out[name] = {"items": int(chosen.size)}
        for q in percentiles:
            value = float(np.percentile(chosen, q) * 1e3) if chosen.size else None
            out[name][f"p{q:g}_ms"] = value
    return out
