"""Experiment specs: YAML -> validated, frozen dataclasses.

A spec file describes one experiment. ``sweep`` (a cartesian product over dotted keys) and
``repeat`` expand it into several runs; :func:`load` and :func:`parse` return one :class:`Spec`
per run, each validated on its own after the ``--set`` overrides and its sweep assignments are
applied. Every mistake is a :class:`SpecError` whose message is one paragraph naming the key,
the bad value and what is allowed, fit to print as it is.

Build specs through :func:`load` or :func:`parse`: constructing the dataclasses directly skips
validation (only :class:`AlgorithmSpec` fills in its defaults on its own).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import yaml

from . import algorithms, schemes
from .data.kdd12 import DEFINED as KDD12_DEFINED
from .data.kdd12 import FEATURE_NAMES as KDD12_FEATURES
from .params import Param, ParamError
from .profiles import PROFILES, Profile
from .schemes.base import storage_workers

DATASETS = ("higgs", "kdd12")
DATASET_FORMATS: dict[str, tuple[str, ...]] = {
    "higgs": ("higgs-csv",),
    "kdd12": ("kdd12-dense", "kdd12-raw", "kdd12-libsvm"),
}
TRANSPORTS = ("ipc", "tcp")
TOP_LEVEL_KEYS = (
    "name",
    "dataset",
    "algorithm",
    "scheme",
    "processors",
    "pairs",
    "pair",
    "batch",
    "pipeline_depth",
    "rate",
    "failures",
    "stragglers",
    "sweep",
    "repeat",
    "transport",
    "port",
    "hosts",
    "runtime",
    "cluster",
)
_NOT_SWEPT = ("name", "sweep", "repeat")
_DATASET_KEYS = ("name", "items", "seed", "path", "format", "stage", "maxima")
_FAILURE_KEYS = ("at", "at_batch", "kill")
_STRAGGLER_KEYS = ("worker", "slowdown", "from", "to")
MAX_SLOWDOWN = 100.0
_RUNTIME_KEYS = ("heartbeat_interval", "failure_timeout", "grace", "warmup", "restart", "standby")
_RUNTIME_DURATIONS = _RUNTIME_KEYS[:4]
LAUNCHER_KINDS = ("local", "ssh", "slurm")
_CLUSTER_KEYS = ("launcher", "hosts", "place", "emulate", "ssh")
_EMULATE_KEYS = ("profile", "dilation", "hosts", "link", "cpu", "delay")
#: Most source/sink pairs a run may have (each is a whole pipeline of processes).
MAX_PAIRS = 16
_SSH_KEYS = ("user", "port", "identity", "options", "python", "dir")
#: Most emulated hosts: their addresses are 198.18.S.11 .. 198.18.S.(10+N) in one /24.
MAX_EMULATED_HOSTS = 200
#: Link rates an emulated host may be given, bits per second (tbf's useful range here).
LINK_RATE_RANGE = (100e3, 40e9)
_LINK_RATE = re.compile(
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[kmg]?bit)?"
)
_LINK_UNITS = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, None: 1.0}
_DEFAULT_SECTIONS = {"dataset": "higgs", "algorithm": "logreg", "scheme": "none"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_DURATION = re.compile(
    r"(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>ms|s|m|h)?"
)
_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
#: Most runs one spec may expand to (sweep combinations x repeat), checked before expanding.
MAX_RUNS = 10_000
#: Most values a spec may hold with every YAML alias expanded (a spec is a few hundred; a
#: 500-byte "billion laughs" of nested aliases holds billions once expanded).
MAX_VALUES = 100_000
#: Shortest failure_timeout: a processor beats from the loop that also runs its tasks, so a beat
#: is late by a task's compute (milliseconds for a batch) plus any descheduling on a busy
#: machine; below 50 ms such delays alone read as failures and healthy processors get fenced.
MIN_FAILURE_TIMEOUT = 0.05
#: Longest wait for the first batch at an open-loop ``rate`` (batch / rate), in seconds.
MAX_FIRST_BATCH_S = 60.0


class SpecError(ValueError):
    """A spec that cannot be run; the message names the key, the value and what is allowed."""


# -- the resolved spec -------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSpec:
    """The data to stream: the file at ``path`` when set, else the seeded generator."""

    name: str
    items: int = 200_000
    seed: int = 1
    path: str | None = None
    format: str | None = None
    stage: bool = False  # rows written to the run directory before the stream, read from there
    # KDD12: (feature, maximum) pairs over the fixed maxima of its scaling (kdd12.Scaling)
    maxima: tuple[tuple[str, int], ...] = ()

    def describe(self) -> str:
        """One-line summary, e.g. ``higgs(items=200000,seed=1)``."""
        parts = [f"items={self.items}", f"seed={self.seed}"]
        if self.path is not None:
            parts.append(f"path={self.path}")
        if self.format is not None:
            parts.append(f"format={self.format}")
        if self.stage:
            parts.append("staged")
        if self.maxima:
            parts.append("maxima=" + "/".join(f"{k}:{v}" for k, v in self.maxima))
        return f"{self.name}({','.join(parts)})"


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm and its hyperparameters; ``params`` always holds every declared key
    (the algorithm's declared default where not given), sorted."""

    name: str
    params: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        merged = _defaults(algorithms.parameters(self.name))
        merged.update(dict(self.params))
        object.__setattr__(self, "params", tuple(sorted(merged.items())))

    def kwargs(self) -> dict[str, object]:
        """Keyword arguments for the algorithm's constructor."""
        return dict(self.params)

    def describe(self) -> str:
        """One-line summary, e.g. ``logreg(l2=0.0001,lr=0.05)``."""
        return f"{self.name}({','.join(f'{k}={_plain(v)}' for k, v in self.params)})"


@dataclass(frozen=True, init=False)
class SchemeSpec:
    """A fault-tolerance scheme and its parameters; ``params`` holds every key the scheme
    declares (its declared default where not given), in declaration order.

    ``SchemeSpec("ec", k=6)`` builds one by keyword. A parameter reads as an attribute
    (``spec.scheme.k``); one the scheme does not declare reads as the default of the scheme
    that does (``k`` of a ``rep`` scheme is ec's default), as every caller may ask any of them.
    """

    name: str
    params: tuple[tuple[str, object], ...]

    def __init__(
        self, name: str, params: tuple[tuple[str, object], ...] = (), **values: object
    ) -> None:
        declared = schemes.parameters(name)
        merged = _defaults(declared)
        for key, value in (*params, *values.items()):
            if declared and key not in merged:
                msg = f"scheme {name} has no parameter {key!r} ({', '.join(merged) or 'none'})"
                raise TypeError(msg)
            merged[key] = value
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", tuple(merged.items()))

    def __getattr__(self, key: str) -> object:
        if key.startswith("__") or "params" not in self.__dict__:
            raise AttributeError(key)
        own = dict(self.__dict__["params"])
        if key in own:
            return own[key]
        for other in schemes.SCHEMES:
            for param in schemes.parameters(other):
                if param.name == key:
                    return param.default
        msg = f"{type(self).__name__!r} object has no attribute {key!r}"
        raise AttributeError(msg)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys that apply to this scheme (``name`` first)."""
        return ("name", *(key for key, _ in self.params))

    @property
    def label(self) -> str:
        """Short filesystem-safe label: ``none``, ``ec42`` (``ec12-3`` past one digit), ``rep3``."""
        return schemes.label(self.name, dict(self.params), "slug")

    def to_dict(self) -> dict[str, object]:
        """The keys that apply to this scheme and their values."""
        return {"name": self.name, **dict(self.applying)}

    def describe(self) -> str:
        """One-line summary, e.g. ``ec(k=4,r=2,code=gaussian,attach=linear,incremental=true)``."""
        params = [f"{k}={_plain(v)}" for k, v in self.applying]
        return f"{self.name}({','.join(params)})" if params else self.name

    @property
    def applying(self) -> tuple[tuple[str, object], ...]:
        """``params`` without those that mean nothing with the others' values (``replicas``
        with ``log: source``): a spec may not give them, so its resolved form leaves them out."""
        values = dict(self.params)
        when = {p.name: p.applies_when for p in schemes.parameters(self.name)}
        return tuple(
            (key, value)
            for key, value in self.params
            if when.get(key) is None or values.get(when[key][0]) == when[key][1]
        )


def _defaults(params: Sequence[Param]) -> dict[str, object]:
    return {param.name: param.default for param in params}


@dataclass(frozen=True)
class Failure:
    """SIGKILL of the processors in ``kill`` at ``at`` seconds or at batch ``at_batch``."""

    at: float | None = None
    at_batch: int | None = None
    kill: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """``{at: seconds, kill: [...]}`` or ``{at_batch: n, kill: [...]}``."""
        when: dict[str, object] = (
            {"at": self.at} if self.at is not None else {"at_batch": self.at_batch}
        )
        return {**when, "kill": list(self.kill)}

    def describe(self) -> str:
        """E.g. ``at 10s kill processor-1`` or ``at batch 60 kill processor-1``."""
        when = f"at {_plain(self.at)}s" if self.at is not None else f"at batch {self.at_batch}"
        return f"{when} kill {','.join(self.kill)}"


@dataclass(frozen=True)
class Straggler:
    """``worker`` runs ``slowdown`` times slower from ``start`` to ``end`` seconds into the
    stream (``end`` None: to its end), by CPU throttling (runtime/stragglers.py)."""

    worker: str
    slowdown: float
    start: float = 0.0
    end: float | None = None

    def to_dict(self) -> dict[str, object]:
        """``{worker, slowdown, from: seconds, to: seconds or end}``."""
        return {
            "worker": self.worker,
            "slowdown": self.slowdown,
            "from": self.start,
            "to": "end" if self.end is None else self.end,
        }

    def describe(self) -> str:
        """E.g. ``processor-2 5x slower 2s-8s``."""
        end = "end" if self.end is None else f"{_plain(self.end)}s"
        return f"{self.worker} {_plain(self.slowdown)}x slower {_plain(self.start)}s-{end}"

    def active(self, elapsed: float) -> bool:
        """Whether the slowdown holds ``elapsed`` seconds into the stream."""
        return self.start <= elapsed and (self.end is None or elapsed < self.end)


@dataclass(frozen=True)
class RuntimeSpec:
    """Timing of failure detection and recovery, in seconds."""

    heartbeat_interval: float = 0.1
    failure_timeout: float = 0.5
    grace: float = 0.05
    warmup: float = 1.0
    restart: bool = True
    standby: bool = True  # a warm spare process takes a crashed slot (else a cold start)

    def to_dict(self) -> dict[str, object]:
        """Every field and its value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class EmulateSpec:
    """Emulated hosts ``h1 .. hN`` on this machine: ``link`` bits per second each way, ``cpu``
    cores of CPU time each; ``profile``, when they come from a named profile (``profiles``)."""

    hosts: int
    link: float | None = None
    cpu: float | None = None
    profile: Profile | None = None

    def to_dict(self) -> dict[str, object]:
        named = {} if self.profile is None else {"profile": self.profile.name}
        if self.profile is not None and self.profile.dilation != Profile.dilation:
            named["dilation"] = self.profile.dilation
        return {**named, "hosts": self.hosts, "link": self.link, "cpu": self.cpu}


@dataclass(frozen=True)
class ClusterSpec:
    """Where the workers run: the launcher, its hosts, the placement asked for, emulation."""

    launcher: str = "local"
    hosts: tuple[str, ...] = ()
    place: tuple[tuple[str, str], ...] = ()
    emulate: EmulateSpec | None = None
    ssh: tuple[tuple[str, object], ...] = ()

    def to_dict(self) -> dict[str, object]:
        resolved: dict[str, object] = {"launcher": self.launcher}
        if self.emulate is None:  # emulated hosts are named by their count
            resolved["hosts"] = list(self.hosts)
        resolved["place"] = dict(self.place)
        resolved["emulate"] = None if self.emulate is None else self.emulate.to_dict()
        resolved["ssh"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.ssh}
        return resolved


@dataclass(frozen=True)
class Spec:
    """One run: a fully resolved, validated experiment configuration."""

    name: str
    dataset: DatasetSpec = field(default_factory=lambda: DatasetSpec("higgs"))
    algorithm: AlgorithmSpec = field(default_factory=lambda: AlgorithmSpec("logreg"))
    scheme: SchemeSpec = field(default_factory=lambda: SchemeSpec("none"))
    processors: int = 1
    #: Independent streams, each with its own source, sink and model, on shared processor hosts.
    pairs: int = 1
    #: Which of the ``pairs`` streams this run is (0 for a run of one pair).
    pair: int = 0
    batch: int = 12_000
    pipeline_depth: int = 1
    rate: float | None = None
    failures: tuple[Failure, ...] = ()
    stragglers: tuple[Straggler, ...] = ()
    repeat: int = 1
    transport: str = "ipc"
    port: int | None = None
    hosts: tuple[tuple[str, str], ...] = ()
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    cluster: ClusterSpec | None = None
    run_index: int = 0
    sweep_values: tuple[tuple[str, object], ...] = ()

    @property
    def workers(self) -> tuple[str, ...]:
        """``("source", "processor-0", ..., "processor-{P-1}", "sink")``, then the storage
        workers that hold the log (``storage-0``, ...) when the scheme asks for them."""
        return ("source", *_processor_names(self.processors), "sink", *self.storage)

    @property
    def storage(self) -> tuple[str, ...]:
        """The storage workers of the scheme's log (``log: storage``): ``storage-0``, ..."""
        params = dict(self.scheme.params)
        if params.get("log") != "storage":
            return ()
        return storage_workers(int(params.get("replicas", 1)))

    @property
    def run_id(self) -> str:
        """Filesystem-safe label, unique among the runs of one expansion.

        ``<scheme label>-<algorithm>-<dataset>``, then one part per sweep key (its resolved
        value), then ``-rN`` when the spec repeats, e.g. ``ec42-logreg-higgs-batch6000-r1``.
        """
        parts = [self.scheme.label, self.algorithm.name, self.dataset.name]
        resolved = self.to_dict()
        swept = set()
        for key, raw in self.sweep_values:
            parts.extend(_sweep_slug(key, _lookup(resolved, key, raw)))
            swept.add(key)
        emulate = self.cluster.emulate if self.cluster is not None else None
        if emulate is not None and emulate.profile is not None and not swept & _CLUSTER_SWEEPS:
            parts.extend(_sweep_slug("cluster.emulate", emulate.to_dict()))  # apart from shared
        if self.pairs > 1 and "pairs" not in swept:
            parts.append(f"pairs{self.pairs}")
        if self.repeat > 1:
            parts.append(f"r{self.run_index}")
        return "-".join(part for part in parts if part)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain data (YAML-dumpable; ``parse`` accepts it again).

        ``run_index`` and ``sweep_values`` are not part of it: ``parse(d)[spec.run_index]``
        gives back this run's configuration.
        """
        resolved = {
            "name": self.name,
            "dataset": self.dataset_dict(),
            "algorithm": {"name": self.algorithm.name, **self.algorithm.kwargs()},
            "scheme": self.scheme.to_dict(),
            "processors": self.processors,
            **({"pairs": self.pairs, "pair": self.pair} if self.pairs > 1 else {}),
            "batch": self.batch,
            "pipeline_depth": self.pipeline_depth,
            "rate": "max" if self.rate is None else self.rate,
            "failures": [failure.to_dict() for failure in self.failures],
            **({"stragglers": [s.to_dict() for s in self.stragglers]} if self.stragglers else {}),
            "repeat": self.repeat,
            "transport": self.transport,
            "port": self.port,
            "hosts": dict(self.hosts),
            "runtime": self.runtime.to_dict(),
        }
        if self.cluster is not None:
            resolved["cluster"] = self.cluster.to_dict()
        return resolved

    def dataset_dict(self) -> dict[str, Any]:
        """The dataset section as plain data (``maxima`` only when given)."""
        out = {f.name: getattr(self.dataset, f.name) for f in fields(self.dataset)}
        out["maxima"] = dict(self.dataset.maxima)
        if not out["maxima"]:
            del out["maxima"]
        return out

    def describe(self) -> str:
        """One line: run id, scheme, algorithm, dataset, processors, batch, rate, failures."""
        rate = "max" if self.rate is None else f"{_plain(self.rate)}/s"
        failures = "; ".join(f.describe() for f in self.failures) or "none"
        return (
            f"{self.run_id}  scheme={self.scheme.describe()}  "
            f"algorithm={self.algorithm.describe()}  dataset={self.dataset.describe()}  "
            f"processors={self.processors}  "
            + (f"pairs={self.pairs}  " if self.pairs > 1 else "")
            + f"batch={self.batch}  rate={rate}  "
            f"failures=[{failures}]"
            + (
                f"  stragglers=[{'; '.join(s.describe() for s in self.stragglers)}]"
                if self.stragglers
                else ""
            )
            + self.cluster_text()
        )

    def cluster_text(self) -> str:
        """`` cluster=...`` when the workers run elsewhere than on this machine alone."""
        cluster = self.cluster
        if cluster is None:
            return ""
        emulate = cluster.emulate
        if emulate is None:
            return f"  cluster={cluster.launcher}({len(cluster.hosts) or 'allocation'} hosts)"
        if emulate.profile is not None:
            return f"  cluster={emulate.profile.label}({emulate.hosts} hosts)"
        given = [f"{emulate.hosts} hosts"]
        given += [f"cpu={emulate.cpu:g}"] if emulate.cpu is not None else []
        given += [f"link={emulate.link / 1e6:g}mbit"] if emulate.link is not None else []
        return f"  cluster=emulated({', '.join(given)})"


# -- public entry points -----------------------------------------------------------------------


def load(path: str | Path, overrides: Sequence[str] = ()) -> list[Spec]:
    """Read a spec file, apply ``--set`` overrides, expand sweep x repeat, validate each run."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"spec file '{path}' does not exist"
        raise SpecError(msg) from None
    except IsADirectoryError:
        msg = f"spec file '{path}' is a directory, not a YAML file"
        raise SpecError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"spec file '{path}' cannot be read: {exc}"
        raise SpecError(msg) from exc
    raw = _parse_yaml(text, f"spec file '{path}'", " is not valid YAML")
    if raw is None:
        msg = f"spec file '{path}' is empty: a spec is a mapping with at least name and processors"
        raise SpecError(msg)
    if not isinstance(raw, Mapping):
        msg = (
            f"spec file '{path}' must be a mapping of keys (at least name and processors), "
            f"found {_kind(raw)}"
        )
        raise SpecError(msg)
    return parse(raw, overrides, source=str(path))


def parse(raw: dict, overrides: Sequence[str] = (), source: str = "<spec>") -> list[Spec]:
    """Validate an already-loaded spec mapping and expand it into its runs.

    ``raw`` is not modified. Overrides are applied first, in order, then each sweep
    combination (keys in the given order, the first varying slowest). With ``repeat`` the
    whole sweep runs once per repeat, so a drift in the machine's speed during the runs
    touches every combination alike instead of favouring the ones run first.
    """
    if not isinstance(raw, Mapping):
        msg = (
            f"{source}: a spec must be a mapping of keys (at least name and processors), "
            f"found {_kind(raw)}"
        )
        raise SpecError(msg)
    _check_size(raw)
    for assignment in overrides:
        raw = apply_override(raw, assignment)
    _check_size(raw)
    raw = dict(raw)
    _check_keys(raw, TOP_LEVEL_KEYS, "")
    if raw.get("name") is None:
        msg = "name: missing: a spec must give a name (it names the results directory)"
        raise SpecError(msg)
    sweep = _sweep_axes(raw.pop("sweep", None))
    repeat = _integer("repeat", raw.get("repeat", 1), 1)
    _check_run_count(sweep, repeat)

    bases: list[Spec] = []
    for combination in itertools.product(*(values for _, values in sweep)):
        assignments = tuple(
            (key, value) for (key, _), value in zip(sweep, combination, strict=True)
        )
        resolved = copy.deepcopy(raw)
        for key, value in assignments:
            _assign(resolved, key, copy.deepcopy(value), f"sweep key {key!r}")
        try:
            base = _build(resolved, _freeze(assignments))
        except SpecError as exc:
            if not assignments:
                raise
            msg = f"run {_combination_label(assignments)}: {exc}"
            raise SpecError(msg) from exc
        bases.append(base)
    runs = [replace(base, run_index=index) for index in range(repeat) for base in bases]

    seen: dict[str, Spec] = {}
    for run in runs:
        if run.run_id in seen:
            msg = (
                f"sweep: two runs resolve to the same settings (run id {run.run_id!r}): "
                "make every sweep combination differ"
            )
            raise SpecError(msg)
        seen[run.run_id] = run
    return runs


def apply_override(raw: dict, assignment: str) -> dict:
    """Return a copy of ``raw`` with ``dotted.key=value`` set (value parsed as YAML).

    Missing mappings on the way are created; ``scheme: ec`` becomes ``{name: ec}`` when a key
    below it is set; a number indexes a list (``failures.0.at=5s``); ``sweep.scheme.k=[2, 4]``
    sets the sweep key ``scheme.k``.
    """
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        msg = f"--set {assignment!r} is not allowed: write dotted.key=value"
        raise SpecError(msg)
    value = _parse_yaml(
        text, f"--set {assignment!r} is not allowed", ": the value is not valid YAML"
    )
    result = copy.deepcopy(dict(raw))
    _assign(result, key, value, f"--set {assignment!r}")
    return result


def parse_duration(value: object, key: str) -> float:
    """Seconds from ``"10s"``, ``"500ms"``, ``"1.5s"``, ``"2m"``, ``"1h"`` or a bare number."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match:
            seconds = float(match["number"]) * _DURATION_UNITS[match["unit"]]
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        _reject(
            key,
            value,
            f"{_leaf(key)} must be a duration such as 10s, 500ms, 1.5s, 2m or a number of "
            "seconds, not negative",
        )
    return seconds


# -- building one run --------------------------------------------------------------------------


def _build(raw: dict[str, Any], sweep_values: tuple[tuple[str, object], ...]) -> Spec:
    """Validate one fully assigned spec mapping (no sweep left) into a Spec."""
    name = raw.get("name")
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name):
        _reject(
            "name",
            name,
            "name must be letters, digits, '.', '_' or '-' (it names the results directory)",
        )
    if raw.get("processors") is None:
        msg = "processors: missing: a spec must give processors (a positive integer, or auto)"
        raise SpecError(msg)
    scheme = _scheme(raw.get("scheme"))
    processors = _processors(raw["processors"], scheme)
    _check_group(scheme, processors)
    storage = Spec(name, scheme=scheme).storage
    pairs = _integer("pairs", raw.get("pairs", 1), 1)
    if pairs > MAX_PAIRS:
        _reject("pairs", pairs, f"pairs must be from 1 to {MAX_PAIRS}")
    pair = _integer("pair", raw.get("pair", 0), 0)
    if pair >= pairs:
        _reject("pair", pair, f"pair must be below pairs ({pairs}): which of the streams it is")
    cluster = _cluster(raw.get("cluster"), processors, storage, pairs)
    _check_pairs(pairs, cluster, raw)
    transport = _choice("transport", raw.get("transport", "ipc"), TRANSPORTS)
    if cluster is not None and (cluster.emulate is not None or cluster.launcher != "local"):
        if "transport" in raw and transport != "tcp":
            msg = (
                "transport: ipc is not allowed with workers on several hosts (cluster.emulate, "
                "or launcher ssh or slurm): hosts talk tcp"
            )
            raise SpecError(msg)
        transport = "tcp"
    if cluster is not None and raw.get("hosts"):
        msg = (
            "hosts: not allowed beside cluster: say where workers run with cluster.place "
            "(sink, source and processors are placed on cluster.hosts)"
        )
        raise SpecError(msg)
    rate_raw = raw.get("rate", "max")
    rate: float | None = None
    if not (rate_raw is None or (isinstance(rate_raw, str) and rate_raw.strip() == "max")):
        rate = _real(
            "rate",
            rate_raw,
            positive=True,
            why="rate must be 'max' or a positive number of items per second",
        )
    dataset = _dataset(raw.get("dataset"))
    algorithm = _algorithm(raw.get("algorithm"))
    batch = _integer("batch", raw.get("batch", 12_000), 1)
    first_batch = min(batch, dataset.items)  # the items the first batch holds
    _check_clusters(algorithm, first_batch)
    _check_first_batch_time(rate_raw, rate, first_batch)
    return Spec(
        name=name,
        dataset=dataset,
        algorithm=algorithm,
        scheme=scheme,
        processors=processors,
        pairs=pairs,
        pair=pair,
        batch=batch,
        pipeline_depth=_integer("pipeline_depth", raw.get("pipeline_depth", 1), 1),
        rate=rate,
        failures=_failures(raw.get("failures"), processors),
        stragglers=_stragglers(raw.get("stragglers"), processors, cluster, pairs),
        repeat=_integer("repeat", raw.get("repeat", 1), 1),
        transport=transport,
        port=_port(raw.get("port")),
        hosts=_hosts(raw.get("hosts"), processors, transport, storage),
        runtime=_runtime(raw.get("runtime")),
        cluster=cluster,
        sweep_values=sweep_values,
    )


def _check_pairs(pairs: int, cluster: ClusterSpec | None, raw: Mapping) -> None:
    """Several pairs run here or on an emulated cluster, never on hosts named worker by
    worker: the names (sink, source, processor-I) are each pair's own."""
    if pairs == 1:
        return
    if raw.get("hosts"):
        msg = (
            f"hosts: not allowed with pairs: {pairs}: every pair has its own sink and source, "
            "so a host per worker name is ambiguous; leave hosts out (all on this machine) or "
            "emulate the hosts with cluster.emulate"
        )
        raise SpecError(msg)
    if cluster is not None and cluster.launcher != "local":
        msg = (
            f"pairs: {pairs} is not allowed with launcher {cluster.launcher}: several pairs run "
            "on this machine's shared cores or on an emulated cluster (cluster.emulate); use "
            "pairs: 1 across real hosts"
        )
        raise SpecError(msg)
    if cluster is not None and cluster.place:
        msg = (
            f"cluster.place: not allowed with pairs: {pairs}: the pairs' sinks and sources get "
            "a host each and their processors share the rest (runtime/placement.py); leave "
            "place out"
        )
        raise SpecError(msg)


def _check_clusters(algorithm: AlgorithmSpec, first_batch: int) -> None:
    """An algorithm with ``clusters`` (kmeans) draws its initial centroids from the first
    batch at the source, so that batch must hold at least that many items."""
    clusters = dict(algorithm.params).get("clusters")
    if isinstance(clusters, int) and clusters > first_batch:
        _reject(
            "algorithm.clusters",
            clusters,
            f"{algorithm.name} draws its {clusters} initial centroids from the first batch, "
            f"which holds {first_batch} items (batch and dataset.items): clusters must be at "
            f"most {first_batch}, or raise batch",
        )


def _check_first_batch_time(value: object, rate: float | None, first_batch: int) -> None:
    """An open-loop ``rate`` must bring the first batch within ``MAX_FIRST_BATCH_S``: a slower
    one looks like a run that never starts (and trips the start-up and stall limits)."""
    if rate is None or first_batch / rate <= MAX_FIRST_BATCH_S:
        return
    lowest = math.ceil(first_batch / MAX_FIRST_BATCH_S)
    _reject(
        "rate",
        value,
        f"at {_plain(rate)} items/s the first batch ({first_batch} items) takes "
        f"{first_batch / rate:,.0f} s to arrive: rate must be at least {lowest} items/s "
        f"(batch / {MAX_FIRST_BATCH_S:g} s), or lower batch",
    )


def _section(value: object, key: str) -> dict[str, Any]:
    """``dataset``/``algorithm``/``scheme`` as a mapping: a bare string is its name."""
    if value is None:
        return {"name": _DEFAULT_SECTIONS[key]}
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, Mapping):
        section = dict(value)
        if section.get("name") is None:
            msg = f"{key}.name: missing: {key} needs a name"
            raise SpecError(msg)
        return section
    _reject(key, value, f"{key} must be a name or a mapping with a name and its settings")


def _dataset(value: object) -> DatasetSpec:
    section = _section(value, "dataset")
    _check_keys(section, _DATASET_KEYS, "dataset")
    name = _choice("dataset.name", section["name"], DATASETS)
    path = section.get("path")
    if path is not None and (not isinstance(path, str) or not path.strip()):
        _reject("dataset.path", path, "path must be the path of a data file")
    fmt = section.get("format")
    if fmt is not None:
        fmt = _choice("dataset.format", fmt, DATASET_FORMATS[name], what=f"dataset {name}")
        if path is None:
            _reject("dataset.format", fmt, "format applies only to a file given by dataset.path")
    return DatasetSpec(
        name=name,
        items=_integer("dataset.items", section.get("items", 200_000), 1),
        seed=_integer("dataset.seed", section.get("seed", 1), 0),
        path=path,
        format=fmt,
        stage=_boolean("dataset.stage", section.get("stage", False)),
        maxima=_maxima(name, section.get("maxima")),
    )


def _maxima(name: str, value: object) -> tuple[tuple[str, int], ...]:
    """``dataset.maxima``: KDD12 features and the largest id each may have, over the fixed
    maxima of its scaling (depth and position are at most 3 by definition)."""
    if value is None or value == {}:
        return ()
    if name != "kdd12":
        _reject("dataset.maxima", value, "maxima applies to kdd12 only (its ids' scaling)")
    if not isinstance(value, Mapping):
        _reject("dataset.maxima", value, "maxima must be a mapping of kdd12 features to numbers")
    allowed = tuple(f for f in KDD12_FEATURES if f not in KDD12_DEFINED)
    given = {}
    for key, number in value.items():
        feature = _choice("dataset.maxima", key, allowed, what="a maximum (depth and position: 3)")
        given[feature] = _integer(f"dataset.maxima.{feature}", number, 1)
    return tuple((f, given[f]) for f in allowed if f in given)


def _algorithm(value: object) -> AlgorithmSpec:
    section = _section(value, "algorithm")
    name = _choice("algorithm.name", section["name"], tuple(algorithms.ALGORITHMS))
    declared = algorithms.parameters(name)
    _check_params(section, "algorithm", name, declared, algorithms.ALGORITHMS)
    params = {
        p.name: _param(f"algorithm.{p.name}", p, section.get(p.name, p.default)) for p in declared
    }
    return AlgorithmSpec(name=name, params=tuple(params.items()))


def _scheme(value: object) -> SchemeSpec:
    section = _section(value, "scheme")
    name = _choice(
        "scheme.name", section["name"], tuple(schemes.SCHEMES), aliases=schemes.aliases()
    )
    declared = schemes.parameters(name)
    _check_params(section, "scheme", name, declared, schemes.SCHEMES)
    params = {
        p.name: _param(f"scheme.{p.name}", p, section.get(p.name, p.default)) for p in declared
    }
    for p in declared:
        if p.name in section and p.applies_when is not None:
            other, value = p.applies_when
            if params[other] != value:
                msg = (
                    f"scheme.{p.name}: not allowed with {other}: {_plain(params[other])}: "
                    f"{p.name} ({p.doc}) applies only with {other}: {_plain(value)}; leave "
                    f"{p.name} out, or set {other}: {_plain(value)}"
                )
                raise SpecError(msg)
    try:
        schemes.scheme_class(name).check(params)
    except ParamError as exc:
        msg = f"scheme.{exc.key}: {exc}"
        raise SpecError(msg) from exc
    return SchemeSpec(name, tuple(params.items()))


def _check_params(
    section: Mapping[str, Any],
    where: str,
    name: str,
    declared: Sequence[Param],
    registry: Mapping[str, Any],
) -> None:
    """Every key of ``section`` is ``name`` or a parameter the chosen class declares."""
    allowed = ("name", *(p.name for p in declared))
    for key in section:
        if key in allowed:
            continue
        owners = [
            other
            for other, cls in registry.items()
            if any(p.name == key for p in getattr(cls, "parameters", ()))
        ]
        head = f"unknown key '{where}.{key}'"
        if owners and where == "scheme":
            head = f"key '{where}.{key}' does not apply to scheme {name}"
        elif not owners:
            head += _did_you_mean(key, allowed)
        hint = f" ({key} is for {', '.join(owners)})" if owners else ""
        msg = (
            f"{head}: allowed keys under {where} are {', '.join(allowed)} when name is {name}{hint}"
        )
        raise SpecError(msg)


def _param(key: str, param: Param, value: object) -> object:
    """One declared parameter's value from the spec, checked against its declaration."""
    if param.kind is bool:
        return _boolean(key, value)
    if param.choices:
        return _choice(key, value, param.choices)
    if param.kind is int:
        return _integer(key, value, None if param.minimum is None else math.ceil(param.minimum))
    if param.kind is float:
        return _real(key, value, positive=param.exclusive, minimum=param.minimum)
    if isinstance(value, str) and value.strip():
        return value
    _reject(key, value, f"{param.name} must be text")


def _processors(value: object, scheme: SchemeSpec) -> int:
    """A positive integer, or ``auto``: one group of the scheme (k+r for ec, copies for rep)."""
    if isinstance(value, str) and value.strip() == "auto":
        size = schemes.scheme_class(scheme.name).group_size(dict(scheme.params))
        if size is not None:
            return size
        grouped = [
            name
            for name, cls in schemes.SCHEMES.items()
            if cls.group_size(_defaults(cls.parameters)) is not None
        ]
        _reject(
            "processors",
            value,
            f"auto needs a scheme with groups ({' or '.join(grouped)}), not {scheme.name}; "
            "give a number",
        )
    return _integer("processors", value, 1)


def _check_group(scheme: SchemeSpec, processors: int) -> None:
    """A scheme with groups needs a whole number of them (k+r processors for ec, copies
    for rep)."""
    try:
        schemes.scheme_class(scheme.name).check_processors(dict(scheme.params), processors)
    except ParamError as exc:
        msg = f"{exc.key}: {exc}"
        raise SpecError(msg) from exc


def _failures(value: object, processors: int) -> tuple[Failure, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _reject("failures", value, "failures must be a list of {at or at_batch, kill}")
    names = _processor_names(processors)
    known = _name_range(names)
    result = []
    for index, item in enumerate(value):
        key = f"failures[{index}]"
        if not isinstance(item, Mapping):
            _reject(key, item, "a failure is a mapping {at: 10s, kill: [processor-1]}")
        _check_keys(item, _FAILURE_KEYS, key)
        given = [k for k in ("at", "at_batch") if item.get(k) is not None]
        if len(given) != 1:
            found = (
                "both at and at_batch are given" if given else "neither at nor at_batch is given"
            )
            msg = (
                f"{key}: {found}: give exactly one "
                "(at: a time such as 10s, or at_batch: a batch number)"
            )
            raise SpecError(msg)
        at = parse_duration(item["at"], f"{key}.at") if "at" in given else None
        at_batch = _integer(f"{key}.at_batch", item["at_batch"], 0) if at is None else None
        kill = item.get("kill")
        if isinstance(kill, str):
            kill = [kill]
        if not isinstance(kill, list) or not kill:
            _reject(f"{key}.kill", kill, f"kill must list processors to kill ({known})")
        for worker in kill:
            if worker in ("source", "sink"):
                msg = (
                    f"{key}.kill: {worker} cannot be killed: only processors can be killed "
                    f"({known})"
                )
                raise SpecError(msg)
            if worker not in names:
                msg = f"{key}.kill: {_plain(worker)} does not exist ({known})"
                raise SpecError(msg)
            if kill.count(worker) > 1:
                msg = f"{key}.kill: {worker} is listed twice: list each processor once"
                raise SpecError(msg)
        result.append(Failure(at=at, at_batch=at_batch, kill=tuple(kill)))
    return tuple(result)


def _stragglers(
    value: object, processors: int, cluster: ClusterSpec | None, pairs: int
) -> tuple[Straggler, ...]:
    if value is None or value == []:
        return ()
    shape = "stragglers must be a list of {worker, slowdown, from, to}"
    if not isinstance(value, list):
        _reject("stragglers", value, shape)
    _check_throttling(cluster, pairs)
    names = _processor_names(processors)
    known = _name_range(names)
    result: list[Straggler] = []
    for index, item in enumerate(value):
        key = f"stragglers[{index}]"
        if not isinstance(item, Mapping):
            _reject(
                key,
                item,
                "a straggler is a mapping {worker: processor-2, slowdown: 5, from: 2s, to: 8s}",
            )
        _check_keys(item, _STRAGGLER_KEYS, key)
        worker = item.get("worker")
        if worker not in names:
            msg = (
                f"{key}.worker: {_plain(worker)} is not a processor of the run: only processors "
                f"can be slowed ({known})"
            )
            raise SpecError(msg)
        if "slowdown" not in item:
            msg = f"{key}.slowdown: missing: how many times slower {worker} runs (e.g. 5)"
            raise SpecError(msg)
        why = (
            f"slowdown must be a number above 1 and at most {MAX_SLOWDOWN:g}: how many times "
            "slower the worker runs (5: a fifth of its CPU)"
        )
        slowdown = _real(f"{key}.slowdown", item["slowdown"], positive=True, minimum=1.0, why=why)
        if slowdown > MAX_SLOWDOWN:
            _reject(f"{key}.slowdown", item["slowdown"], why)
        start = parse_duration(item.get("from", 0), f"{key}.from")
        end_raw = item.get("to", "end")
        end = None if end_raw == "end" or end_raw is None else parse_duration(end_raw, f"{key}.to")
        if end is not None and end <= start:
            msg = (
                f"{key}: to ({_plain(end)}s) is not after from ({_plain(start)}s): a slowdown "
                "lasts from a time to a later one (or to: end)"
            )
            raise SpecError(msg)
        straggler = Straggler(worker, slowdown, start, end)
        for other in result:
            if other.worker == worker and _overlap(other, straggler):
                msg = (
                    f"{key}: {worker} is already slowed at that time ({other.describe()}): "
                    "give each worker's slowdowns times that do not overlap"
                )
                raise SpecError(msg)
        result.append(straggler)
    return tuple(result)


def _overlap(a: Straggler, b: Straggler) -> bool:
    return a.start < (b.end or math.inf) and b.start < (a.end or math.inf)  # end > start >= 0


def _check_throttling(cluster: ClusterSpec | None, pairs: int) -> None:
    """A slowdown is a stop/continue duty cycle of a process on this machine, or the CPU
    quota of an emulated host: hosts reached by ssh or Slurm have neither here."""
    if pairs > 1:
        msg = (
            f"stragglers: not allowed with pairs: {pairs}: the pairs' processors share hosts, "
            "so a slowed host would slow every pair; slow processors in a run of one pair"
        )
        raise SpecError(msg)
    if cluster is None or cluster.launcher == "local":
        return
    if cluster.emulate is None or cluster.emulate.cpu is None:
        msg = (
            f"stragglers: not allowed with launcher {cluster.launcher} on real hosts: a "
            "slowdown throttles a process on this machine (launcher local) or the CPU quota of "
            "an emulated host (cluster.emulate with a cpu)"
        )
        raise SpecError(msg)


def _port(value: object) -> int | None:
    """``port``: the sink listens on it, the source on port+1 and the supervisor on port+2
    (tcp); None: pick free ones."""
    if value is None:
        return None
    port = _integer("port", value, 1024)
    if port > 65533:
        why = "port must be between 1024 and 65533 (the source uses port+1, the supervisor port+2)"
        _reject("port", value, why)
    return port


def _worker_mapping(
    key: str,
    value: object,
    processors: int,
    *,
    spares: bool = False,
    storage: Sequence[str] = (),
) -> Mapping:
    """``value`` as a mapping whose keys are workers of the run (``spares``: or standby-N;
    ``storage``: the storage workers of the log)."""
    if not isinstance(value, Mapping):
        _reject(key, value, f"{_leaf(key)} must map worker names to host names")
    workers = ("source", *_processor_names(processors), "sink", *storage)
    for worker in value:
        if worker not in workers and not (spares and re.fullmatch(r"standby-\d+", str(worker))):
            known = f"source, {_name_range(_processor_names(processors))}, sink"
            known += f", {_name_range(storage)}" if storage else ""
            known += ", standby-N" if spares else ""
            msg = f"{key}.{worker}: {worker} does not exist ({known})"
            raise SpecError(msg)
    return value


def _hosts(
    value: object, processors: int, transport: str, storage: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    workers = ("source", *_processor_names(processors), "sink", *storage)
    for worker, host in _worker_mapping("hosts", value, processors, storage=storage).items():
        if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
            _reject(f"hosts.{worker}", host, "a host must be a host name or address")
    if transport == "ipc" and len(set(value.values())) > 1:
        msg = (
            f"hosts: {len(set(value.values()))} different hosts are not allowed with "
            "transport ipc (one host only): set transport: tcp"
        )
        raise SpecError(msg)
    return tuple((worker, value[worker]) for worker in workers if worker in value)


def _cluster(
    value: object, processors: int, storage: Sequence[str] = (), pairs: int = 1
) -> ClusterSpec | None:
    """``cluster``: the launcher, its hosts, placement and emulation (see ``ClusterSpec``);
    ``storage``: the storage workers of the scheme's log, which get hosts too."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        _reject("cluster", value, f"cluster must be a mapping of {', '.join(_CLUSTER_KEYS)}")
    _check_keys(value, _CLUSTER_KEYS, "cluster")
    launcher = _choice("cluster.launcher", value.get("launcher", "local"), LAUNCHER_KINDS)
    emulate = _emulate(value.get("emulate"), processors, len(storage), pairs)
    hosts_raw = value.get("hosts") or None
    if emulate is not None:
        if hosts_raw is not None:
            msg = (
                "cluster.hosts: not allowed with cluster.emulate: the emulated hosts are named "
                f"h1 .. h{emulate.hosts}"
            )
            raise SpecError(msg)
        if launcher != "local":
            msg = (
                f"cluster.emulate: not allowed with launcher {launcher}: the run makes emulated "
                f"hosts for the local launcher only (for {launcher}, start the hosts and their "
                f"{'sshd' if launcher == 'ssh' else 'slurmd'} first and name them in "
                "cluster.hosts)"
            )
            raise SpecError(msg)
        hosts = tuple(f"h{i}" for i in range(1, emulate.hosts + 1))
    elif hosts_raw is None:
        hosts = ()
    else:
        if not isinstance(hosts_raw, list) or not hosts_raw:
            _reject("cluster.hosts", hosts_raw, "hosts must be a list of host names")
        for host in hosts_raw:
            if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
                _reject("cluster.hosts", host, "a host must be a host name or address")
        if len(set(hosts_raw)) < len(hosts_raw):
            _reject("cluster.hosts", hosts_raw, "a host may be named only once")
        hosts = tuple(hosts_raw)
    if launcher == "local" and hosts and emulate is None:
        msg = (
            "cluster.hosts: not allowed with launcher local without emulate: the local "
            "launcher runs every worker on this host (emulate hosts with cluster.emulate, or "
            "choose launcher ssh or slurm)"
        )
        raise SpecError(msg)
    if launcher == "ssh" and not hosts:
        msg = "cluster.hosts: missing: launcher ssh needs the hosts to start workers on"
        raise SpecError(msg)
    place = _place(value.get("place"), processors, hosts, storage)
    ssh = value.get("ssh")
    if ssh is not None:
        if not isinstance(ssh, Mapping):
            _reject("cluster.ssh", ssh, f"ssh must be a mapping of {', '.join(_SSH_KEYS)}")
        _check_keys(ssh, _SSH_KEYS, "cluster.ssh")
    ssh_items = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in (ssh or {}).items())
    return ClusterSpec(launcher, hosts, place, emulate, ssh_items)


def _emulate(
    value: object, processors: int, storage: int = 0, pairs: int = 1
) -> EmulateSpec | None:
    if value is None:
        return None
    if isinstance(value, str):  # a profile's name: a host for each worker
        value = {"profile": value}
    if not isinstance(value, Mapping):
        why = f"emulate must be a profile ({', '.join(PROFILES)}) or a mapping of hosts, link, cpu"
        _reject("cluster.emulate", value, why)
    _check_keys(value, _EMULATE_KEYS, "cluster.emulate")
    if value.get("delay") not in (None, 0, "0", "0ms"):
        msg = (
            f"cluster.emulate.delay: {_show(value['delay'])} is not allowed: this kernel has "
            "no netem (the qdisc that delays packets), so a link delay cannot be emulated "
            "here; leave delay out (the links are shaped in rate only, with tbf)"
        )
        raise SpecError(msg)
    if value.get("profile") is not None:
        emulate = _profiled(value, processors, storage, pairs)
    else:
        emulate = _given(value)
    least = 2 * pairs + 1
    if pairs > 1 and emulate.hosts < least:
        why = f"{pairs} pairs need at least {least} hosts: a sink and a source each, and processors"
        _reject("cluster.emulate.hosts", emulate.hosts, why)
    return emulate


def _given(value: Mapping) -> EmulateSpec:
    """Hosts given by their count, link and CPU."""
    if value.get("dilation") is not None:
        msg = "cluster.emulate.dilation: allowed only with a profile, which it slows down"
        raise SpecError(msg)
    if "hosts" not in value:
        msg = "cluster.emulate.hosts: missing: how many hosts to emulate (e.g. hosts: 9)"
        raise SpecError(msg)
    hosts = _integer("cluster.emulate.hosts", value["hosts"], 1)
    if hosts > MAX_EMULATED_HOSTS:
        _reject("cluster.emulate.hosts", hosts, f"at most {MAX_EMULATED_HOSTS} hosts")
    link = None if value.get("link") is None else link_rate(value["link"])
    cpu = None
    if value.get("cpu") is not None:
        cores = os.cpu_count() or 1
        why = f"cpu must be a share of cores from 0.01 to {cores} (this machine's cores)"
        cpu = _real("cluster.emulate.cpu", value["cpu"], positive=True, minimum=0.0, why=why)
        if not 0.01 <= cpu <= cores:
            _reject("cluster.emulate.cpu", value["cpu"], why)
    return EmulateSpec(hosts, link, cpu)


def _profiled(value: Mapping, processors: int, storage: int = 0, pairs: int = 1) -> EmulateSpec:
    """Hosts from a named profile (its link and CPU, slowed by its ``dilation`` or the one
    given; hosts: one per worker unless given: each pair's sink, source and ``storage``
    workers of the log, and the processors the pairs share)."""
    name = value["profile"]
    if name not in PROFILES:
        _reject("cluster.emulate.profile", name, f"profile must be one of {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if value.get("dilation") is not None:
        why = "dilation must be a number from 1 to 100: how many times slower than the real hosts"
        dilation = _real("cluster.emulate.dilation", value["dilation"], positive=True, why=why)
        if not 1 <= dilation <= 100:
            _reject("cluster.emulate.dilation", value["dilation"], why)
        profile = dataclasses.replace(profile, dilation=dilation)
    hosts = processors + pairs * (2 + storage)
    if value.get("hosts") is not None:
        hosts = _integer("cluster.emulate.hosts", value["hosts"], 1)
        if hosts > MAX_EMULATED_HOSTS:
            _reject("cluster.emulate.hosts", hosts, f"at most {MAX_EMULATED_HOSTS} hosts")
    given = {"link": profile.emulated_link, "cpu": profile.emulated_cpu}
    for key, own in given.items():  # a resolved spec repeats them; anything else is a clash
        said = value.get(key)
        if said is None:
            continue
        number = link_rate(said) if key == "link" else _number(said)
        if own is None or number is None or abs(number - own) > 1e-9 * own:
            msg = (
                f"cluster.emulate.{key}: {_show(said)} is not allowed with profile {name}, "
                f"which sets it ({profile.describe()}); leave {key} out, or give link and cpu "
                "without a profile"
            )
            raise SpecError(msg)
    return EmulateSpec(hosts, profile.emulated_link, profile.emulated_cpu, profile)


def link_rate(value: object) -> float:
    """A link rate in bits per second from ``1gbit``, ``100mbit``, ``500kbit`` or a number."""
    low, high = LINK_RATE_RANGE
    why = (
        "link must be a rate such as 1gbit, 100mbit or 500kbit (bits per second), from "
        f"{low / 1e3:g}kbit to {high / 1e9:g}gbit"
    )
    number = _number(value)
    if number is None and isinstance(value, str):
        match = _LINK_RATE.fullmatch(value.strip().lower())
        if match:
            number = float(match["number"]) * _LINK_UNITS[match["unit"]]
    if number is None or not low <= number <= high:
        _reject("cluster.emulate.link", value, why)
    return float(number)


def _place(
    value: object, processors: int, hosts: tuple[str, ...], storage: Sequence[str] = ()
) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    mapping = _worker_mapping("cluster.place", value, processors, spares=True, storage=storage)
    for worker, host in mapping.items():
        if host not in hosts:
            known = ", ".join(hosts) if hosts else "none: give cluster.hosts or cluster.emulate"
            msg = f"cluster.place.{worker}: {_show(host)} is not one of the hosts ({known})"
            raise SpecError(msg)
    return tuple((str(worker), str(host)) for worker, host in value.items())


def _runtime(value: object) -> RuntimeSpec:
    if value is None:
        return RuntimeSpec()
    if not isinstance(value, Mapping):
        _reject("runtime", value, f"runtime must be a mapping of {', '.join(_RUNTIME_KEYS)}")
    _check_keys(value, _RUNTIME_KEYS, "runtime")
    defaults = RuntimeSpec()
    durations = {}
    for key in _RUNTIME_DURATIONS:
        durations[key] = parse_duration(value.get(key, getattr(defaults, key)), f"runtime.{key}")
    for key in ("heartbeat_interval", "failure_timeout"):
        if durations[key] <= 0:
            _reject(f"runtime.{key}", value.get(key), f"{key} must be longer than 0 s")
    if durations["failure_timeout"] < MIN_FAILURE_TIMEOUT:
        _reject(
            "runtime.failure_timeout",
            value.get("failure_timeout"),
            f"failure_timeout must be at least {MIN_FAILURE_TIMEOUT * 1000:g}ms: a processor's "
            "heartbeat can be late by a batch's work, and a shorter timeout takes that delay "
            "for a failure",
        )
    if durations["failure_timeout"] <= durations["heartbeat_interval"]:
        _reject(
            "runtime.failure_timeout",
            value.get("failure_timeout", defaults.failure_timeout),
            "failure_timeout must be longer than heartbeat_interval "
            f"({_plain(durations['heartbeat_interval'])} s)",
        )
    restart = _boolean("runtime.restart", value.get("restart", True))
    standby = _boolean("runtime.standby", value.get("standby", True))
    return RuntimeSpec(**durations, restart=restart, standby=standby)


# -- sweep and overrides -----------------------------------------------------------------------


def _sweep_axes(value: object) -> list[tuple[str, list[object]]]:
    """``sweep`` as ``[(dotted key, values), ...]`` in the given order."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        _reject("sweep", value, "sweep must map dotted keys to lists of values")
    axes = []
    sweepable = [key for key in TOP_LEVEL_KEYS if key not in _NOT_SWEPT]
    for key, values in value.items():
        top = str(key).split(".")[0]
        if top not in sweepable:
            msg = (
                f"unknown key {str(key)!r} in sweep{_did_you_mean(top, sweepable)}: sweep keys "
                f"start with one of {', '.join(sweepable)}"
            )
            raise SpecError(msg)
        if not isinstance(values, list) or not values:
            _reject(f"sweep.{key}", values, "a sweep value must be a non-empty list of values")
        axes.append((str(key), values))
    return axes


def _assign(raw: dict[str, Any], dotted: str, value: object, where: str) -> None:
    """Set ``dotted`` in ``raw`` in place (see :func:`apply_override`)."""
    parts = dotted.split(".")
    if parts[0] == "sweep" and len(parts) > 1:
        sweep = raw.get("sweep")
        sweep = dict(sweep) if isinstance(sweep, Mapping) else {}
        sweep[".".join(parts[1:])] = value
        raw["sweep"] = sweep
        return
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                msg = (
                    f"{where} is not allowed: {'.'.join(parts[:depth])} is a list of "
                    f"{len(node)}: index it with 0..{len(node) - 1}"
                )
                raise SpecError(msg)
            slot: Any = int(part)
        elif isinstance(node, dict):
            slot = part
        else:
            msg = f"{where} is not allowed: {'.'.join(parts[:depth])} is not a mapping"
            raise SpecError(msg)
        if last:
            node[slot] = value
            return
        child = node[slot] if isinstance(node, list) else node.get(slot)
        if child is None:
            child = (
                {"name": _DEFAULT_SECTIONS[slot]}
                if depth == 0 and slot in _DEFAULT_SECTIONS
                else {}
            )
        elif isinstance(child, str) and depth == 0 and slot in _DEFAULT_SECTIONS:
            child = {"name": child}
        elif isinstance(child, Mapping):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        node[slot] = child
        node = child


def _combination_label(assignments: Sequence[tuple[str, object]]) -> str:
    """``scheme=ec,k=5`` for a swept mapping, ``scheme.k=5`` for a swept key."""
    parts = []
    for key, value in assignments:
        if isinstance(value, Mapping):
            items = dict(value)
            if "name" in items:
                parts.append(f"{key}={_plain(items.pop('name'))}")
                parts.extend(f"{k}={_plain(v)}" for k, v in items.items())
            else:
                parts.extend(f"{key}.{k}={_plain(v)}" for k, v in items.items())
        else:
            parts.append(f"{key}={_plain(value)}")
    return ",".join(parts)


def _freeze(value: Any) -> Any:
    """Hashable copy: mappings become tuples of pairs, lists become tuples."""
    if isinstance(value, Mapping):
        return tuple((str(k), _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# -- run ids -----------------------------------------------------------------------------------


def _in_base(top: str) -> tuple[str, ...]:
    """Keys already in the run id's base label: a sweep over them adds nothing more (the
    scheme's shape parameters are in its slug)."""
    if top == "scheme":
        return ("name", *(key for cls in schemes.SCHEMES.values() for key in cls.shape()))
    return ("name",) if top in ("algorithm", "dataset") else ()


def _lookup(resolved: dict[str, Any], dotted: str, fallback: object) -> object:
    """The resolved value at ``dotted`` (list indices allowed), or ``fallback``."""
    node: Any = resolved
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return fallback
    return node


def _sweep_slug(key: str, value: object) -> list[str]:
    """Run id parts for one sweep assignment: injective in the resolved value."""
    parts = key.split(".")
    top, leaf = parts[0], parts[-1]
    if len(parts) == 2 and leaf in _in_base(top):
        return []
    sections = ("scheme", "algorithm", "dataset", "runtime")
    if len(parts) == 1 and top in sections and isinstance(value, dict):
        defaults = _section_defaults(top, value)
        return [
            _scalar_slug(k, v)
            for k, v in value.items()
            if k not in _in_base(top) and v != defaults.get(k, _MISSING)
        ]
    if key == "cluster.emulate":  # this machine's shared cores, or a profile's hosts
        if value is None:
            return ["shared"]
        if isinstance(value, dict) and value.get("profile"):
            slowed = f"-d{value['dilation']:g}" if value.get("dilation") else ""
            return [f"{_safe(str(value['profile']))}{slowed}-{value['hosts']}h"]
    if top == "stragglers" and len(parts) == 1 and (not value or isinstance(value, list)):
        if not value:
            return ["noslow"]
        return ["slow_" + "_".join(_straggler_slug(s) for s in value)]
    if top == "failures" and len(parts) == 1 and isinstance(value, list):
        if not value:
            return ["nofail"]
        return ["fail_" + "_".join(_failure_slug(f) for f in value)]
    if isinstance(value, dict | list):
        digest = hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode())
        return [f"{_safe(leaf)}_{digest.hexdigest()[:6]}"]
    return [_scalar_slug(leaf, value)]


_MISSING = object()
_CLUSTER_SWEEPS = {"cluster", "cluster.emulate"}


def _section_defaults(top: str, value: dict[str, Any]) -> dict[str, object]:
    if top == "scheme":
        return SchemeSpec(str(value.get("name", "none"))).to_dict()
    if top == "algorithm":
        return _defaults(algorithms.parameters(str(value.get("name"))))
    if top == "dataset":
        return {f.name: f.default for f in fields(DatasetSpec)}
    return RuntimeSpec().to_dict()


def _failure_slug(failure: dict[str, Any]) -> str:
    when = f"{_plain(failure['at'])}s" if "at" in failure else f"b{failure.get('at_batch')}"
    kills = "".join(str(k).replace("processor-", "p") for k in failure.get("kill", ()))
    return _safe(f"{when}{kills}")


def _straggler_slug(straggler: dict[str, Any]) -> str:
    worker = str(straggler.get("worker", "")).replace("processor-", "p")
    return _safe(f"{worker}x{_plain(straggler.get('slowdown'))}")


def _scalar_slug(key: str, value: object) -> str:
    if isinstance(value, bool):
        return key if value else f"no{key}"
    if value is None:
        return f"{key}none"
    if isinstance(value, int | float):
        return _safe(f"{key}{_plain(value)}")
    return _safe(f"{key}_{value}")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


# -- value checks ------------------------------------------------------------------------------


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (merge keys ``<<: *x`` are
    allowed, and the mapping's own keys override the merged ones, as YAML says)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # SafeLoader's flatten_mapping merges it
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # SafeLoader's own check reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str, where: str, invalid: str) -> Any:
    """``text`` as YAML data. A problem is a SpecError starting with ``where``: ``invalid``
    and the parser's complaint for text that is not YAML, else what ``_load_yaml`` refused
    (an alias bomb, a node too deep)."""
    try:
        return _load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}{invalid}: {_yaml_problem(exc)}") from exc
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _load_yaml(text: str) -> object:
    """The YAML document in ``text``. Aliases are built once and shared, so loading a
    "billion laughs" is cheap; :func:`_check_size` then refuses it before anything expands it."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except RecursionError:
        msg = "values are nested too deeply (lists or mappings inside each other)"
        raise SpecError(msg) from None


def _check_size(raw: object) -> None:
    """Refuse a spec holding more than ``MAX_VALUES`` values with its aliases expanded, or one
    that contains itself; counts each shared value once, so it takes as long as the text."""
    try:
        size = _expanded_size(raw, {}, set())
    except RecursionError:
        size = MAX_VALUES + 1
    if size > MAX_VALUES:
        msg = (
            f"the spec holds more than {MAX_VALUES:,} values once its YAML aliases (*name) are "
            "expanded: a spec that large is a mistake (nested aliases multiply); write the "
            "values out or use fewer aliases"
        )
        raise SpecError(msg)


def _expanded_size(value: object, memo: dict[int, int], open_: set[int]) -> int:
    """Number of values in ``value`` as if every shared list or mapping were copied out;
    stops counting past ``MAX_VALUES``."""
    if isinstance(value, Mapping):
        children: Sequence[object] = list(value.values())
    elif isinstance(value, list | tuple):
        children = value
    else:
        return 1
    key = id(value)
    if key in memo:
        return memo[key]
    if key in open_:
        msg = "the spec contains itself (a YAML alias inside the value it names)"
        raise SpecError(msg)
    open_.add(key)
    total = 1 + (len(value) if isinstance(value, Mapping) else 0)  # a mapping's keys too
    for child in children:
        total += _expanded_size(child, memo, open_)
        if total > MAX_VALUES:
            break
    open_.discard(key)
    memo[key] = total
    return total


def _check_run_count(sweep: Sequence[tuple[str, list[object]]], repeat: int) -> None:
    """At most ``MAX_RUNS`` runs, counted from the sweep's sizes before anything expands."""
    runs = repeat
    for _, values in sweep:
        runs *= len(values)
    if runs <= MAX_RUNS:
        return
    sizes = [f"{len(values):,} values of {key}" for key, values in sweep]
    if repeat > 1:
        sizes.append(f"repeat {repeat:,}")
    msg = (
        f"sweep and repeat: the spec expands to {runs:,} runs ({' x '.join(sizes)}): at most "
        f"{MAX_RUNS:,} runs are allowed; split it into several specs or lower repeat"
    )
    raise SpecError(msg)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``<problem> at line L, column C`` from a YAML error, without PyYAML's stream name."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def _reject(key: str, value: object, why: str) -> NoReturn:
    msg = f"{key}: {_show(value)} is not allowed: {why}"
    raise SpecError(msg)


def _did_you_mean(key: object, allowed: Sequence[str]) -> str:
    """`` (did you mean 'k'?)`` for the allowed key closest to a mistyped one, else ``""``."""
    close = difflib.get_close_matches(str(key), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(mapping: Mapping, allowed: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = _did_you_mean(key, allowed)
            if where:
                msg = (
                    f"unknown key '{where}.{key}'{hint}: allowed keys under {where} are "
                    f"{', '.join(allowed)}"
                )
            else:
                msg = (
                    f"unknown key {str(key)!r}{hint}: allowed top-level keys are "
                    f"{', '.join(allowed)}"
                )
            raise SpecError(msg)


def _number(value: object) -> int | float | None:
    """The finite number a YAML value stands for (``"3e6"`` included), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _integer(key: str, value: object, minimum: int | None) -> int:
    number = _number(value)
    whole = number is not None and float(number).is_integer()
    if whole and (minimum is None or number >= minimum):
        return int(number)
    _reject(key, value, _must_be(_leaf(key), "integer", minimum, above=False, close=whole))


def _must_be(noun: str, kind: str, minimum: float | None, *, above: bool, close: bool) -> str:
    """``lr must be a positive number``, ``k must be at least 2`` and the like (``close``: the
    value is of the right kind, only out of range)."""
    if minimum is None:
        return f"{noun} must be a{'n' if kind == 'integer' else ''} {kind}"
    if minimum == 0:
        return f"{noun} must be a {'positive' if above else 'non-negative'} {kind}"
    if kind == "integer" and minimum == 1:
        return f"{noun} must be a positive integer"
    if kind == "integer":
        return (
            f"{noun} must be at least {minimum}"
            if close
            else (f"{noun} must be an integer of at least {minimum}")
        )
    return f"{noun} must be a number {'above' if above else 'at least'} {minimum:g}"


def _real(
    key: str,
    value: object,
    *,
    positive: bool,
    minimum: float | None = 0.0,
    why: str | None = None,
) -> float:
    """A finite number above ``minimum`` (``positive``) or at least it; None: any number."""
    number = _number(value)
    if number is not None and (
        minimum is None or (number > minimum if positive else number >= minimum)
    ):
        return float(number)
    default = _must_be(_leaf(key), "number", minimum, above=positive, close=True)
    _reject(key, value, why or default)


def _boolean(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    _reject(key, value, f"{_leaf(key)} must be true or false")


def _choice(
    key: str,
    value: object,
    choices: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
    what: str | None = None,
) -> str:
    aliases = aliases or {}
    if isinstance(value, str):
        text = value.strip().lower()
        if text in choices:
            return text
        if text in aliases:
            return aliases[text]
    extra = f" (or {', '.join(f'{a} for {t}' for a, t in aliases.items())})" if aliases else ""
    scope = f" for {what}" if what else ""
    hint = _did_you_mean(value.strip().lower(), choices) if isinstance(value, str) else ""
    _reject(key, value, f"choose one of {', '.join(choices)}{scope}{extra}{hint}")


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _processor_names(processors: int) -> tuple[str, ...]:
    return tuple(f"processor-{i}" for i in range(processors))


def _name_range(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"


def _plain(value: object) -> str:
    """A value as a user would write it in YAML (no quotes on strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dict | list | tuple):
        return _show(value)
    return str(value)


def _show(value: object) -> str:
    """A value as it appears in an error message (strings quoted)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict | list | tuple):
        try:
            return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
        except yaml.YAMLError:
            return repr(value)
    return _plain(value)


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{_show(value)}"
