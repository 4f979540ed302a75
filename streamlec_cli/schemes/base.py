"""What every fault-tolerance scheme provides, free of sockets and processes.

A scheme answers three questions, each in one place, for the source, the processors and the
sink alike (the distributed runtime and the in-process ``testing`` pipeline call exactly this):

* ``route(rows)``: which rows of a micro-batch go to which processor slot (source side);
* ``process(algorithm, model, task)``: what a slot computes and sends back (processor side);
* ``assembler(...)``: how the sink turns the outputs that arrived into the batch's final
  results and update statistics, and what is lost when too few arrived (sink side).

Items of a batch are numbered 0..count-1 in stream order; every final result is keyed by that
offset, so "nothing lost, nothing twice" can be checked item by item.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..algorithms import Algorithm, Stats
from ..params import MODE, OPTION, SHAPE, Param, ParamError, bind, defaults

#: Roles of a slot's task.
PART, DATA, PARITY = "part", "data", "parity"


@dataclass(frozen=True)
class Task:
    """The rows one processor slot receives for one batch."""

    slot: int
    role: str  # PART, DATA or PARITY
    rows: np.ndarray  # (n, width) prepared item rows, or parity rows


@dataclass
class SlotOutput:
    """What one slot sends back to the sink for one batch (any field may be absent)."""

    slot: int
    Z: np.ndarray | None = None  # linear part of its rows (sent where the sink decodes from it)
    stats: Stats | None = None  # update statistics of its rows
    rows: np.ndarray | None = None  # attached inputs (EC ``attach: inputs``)
    results: np.ndarray | None = None  # (n, 3) prediction, loss, correct of its items


@dataclass
class BatchResult:
    """The sink's final word on one batch."""

    count: int
    stats: Stats  # over every item not lost
    lost: np.ndarray  # (count,) bool
    decoded: int  # items whose results were rebuilt from parity (EC)
    predictions: np.ndarray = field(init=False)
    loss: np.ndarray = field(init=False)
    correct: np.ndarray | None = field(init=False)

    @property
    def items_lost(self) -> int:
        return int(self.lost.sum())


def contiguous_parts(count: int, parts: int) -> list[tuple[int, int]]:
    """Split 0..count-1 into ``parts`` contiguous ranges of near-equal size (as array_split)."""
    size, extra = divmod(count, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return list(itertools.pairwise(bounds))


def compute(
    algorithm: Algorithm, model: np.ndarray, rows: np.ndarray, keep_Z: bool = True
) -> SlotOutput:
    """The ordinary work of a slot holding real items: update statistics, per-item results
    and (``keep_Z``, for a code to decode from) the linear part."""
    Z = algorithm.linear(model, rows)
    F, results = algorithm.apply(model, Z)
    stats = algorithm.statistics(rows, F)
    return SlotOutput(slot=-1, Z=Z if keep_Z else None, stats=stats, results=results)


def partial_statistics(algorithm: Algorithm, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A survivor's answer in the EC recovery round: ``X_s.T @ weights`` over its own rows."""
    return algorithm.features(rows).T @ weights[: rows.shape[0]]


@dataclass(frozen=True)
class ReplayPolicy:
    """Recovery by replay: every batch is in a write-ahead log (fsynced when ``wal_fsync``)
    before it is sent, the sink checkpoints its model every ``checkpoint_every`` batches, and a
    batch that lost outputs rolls the run back to the last checkpoint and replays the log.

    ``log`` says where the log lives: ``source`` (a file on the source's own disk) or
    ``storage`` (``replicas`` storage workers, each on a host of its own in a cluster, every
    one of which has the batch on its disk before the source sends it)."""

    checkpoint_every: int = 10
    wal_fsync: bool = True
    log: str = "source"
    replicas: int = 0

    @property
    def storage(self) -> tuple[str, ...]:
        """The storage workers the log lives on (none: it is the source's own file)."""
        return storage_workers(self.replicas) if self.log == "storage" else ()

    def checkpoint_due(self, batch: int) -> bool:
        """Whether the model after ``batch`` is checkpointed."""
        return (batch + 1) % self.checkpoint_every == 0


def storage_workers(replicas: int) -> tuple[str, ...]:
    """``("storage-0", ..., "storage-{replicas-1}")``."""
    return tuple(f"storage-{i}" for i in range(replicas))


class Scheme(ABC):
    """Routing and recovery policy of one fault-tolerance scheme over ``processors`` slots.

    How a scheme recovers lost outputs is its own: from what arrived (its ``Assembler``:
    decoding, the first copy, nothing), or, with a ``replay`` policy, by rolling back to a
    checkpoint and replaying the source's log. The runtime asks only these attributes.

    Subclasses set ``name`` and declare ``parameters``; each is a constructor argument after
    ``processors`` (keyword, or positional in declaration order) and an attribute of the same
    name. The ``shape`` parameters (``Param.label``) size a group of slots and name the scheme
    in every label; ``check`` holds the rules that tie several parameters together.
    """

    name: ClassVar[str]
    #: Other names a spec may use for this scheme.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: The parameters, declared once: the spec's checks, defaults and the labels come from here.
    parameters: ClassVar[tuple[Param, ...]] = ()
    #: Display label (``str.format`` over the values), default ``name(shape values)``.
    family_format: ClassVar[str | None] = None
    #: Recovery by rollback and replay; None: a batch is final from the outputs that arrived.
    replay: ReplayPolicy | None = None

    def __init__(self, processors: int, *args: Any, **kwargs: Any) -> None:
        self.processors = processors
        values = bind(type(self).__name__, self.parameters, args, kwargs)
        self.check(values)
        self.check_processors(values, processors)
        #: The declared parameters' values, as given.
        self.settings = values
        for key, value in values.items():
            setattr(self, key, value)

    # -- rules over the declared parameters ---------------------------------------------------

    @classmethod
    def values(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared parameter's value: ``given`` where set (not None), else the default."""
        out = defaults(cls.parameters)
        out.update((k, v) for k, v in given.items() if k in out and v is not None)
        return out

    @classmethod
    def check(cls, values: Mapping[str, Any]) -> None:
        """Raise ParamError (naming the parameter to blame) for values not allowed together;
        each value on its own is already within its declaration. None by default."""
        return

    @classmethod
    def shape(cls) -> tuple[str, ...]:
        """Names of the parameters that size a group (``Param.label == "shape"``)."""
        return tuple(p.name for p in cls.parameters if p.label == SHAPE)

    @classmethod
    def group_size(cls, values: Mapping[str, Any]) -> int | None:
        """Slots per group (the sum of the shape parameters), None for a scheme without groups."""
        shape = cls.shape()
        return sum(int(values[key]) for key in shape) if shape else None

    @classmethod
    def check_processors(cls, values: Mapping[str, Any], processors: int) -> None:
        """Raise ParamError unless ``processors`` is a whole number of groups; its ``key`` is
        the spec key to blame (``scheme`` or ``processors``)."""
        size = cls.group_size(values)
        if size is None:
            return
        what = "+".join(cls.shape())
        if processors < size:
            given = ", ".join(f"{key}={values[key]}" for key in cls.shape())
            why = (
                f"{cls.name} with {given} needs {what}={size} processors, "
                f"spec has processors: {processors}"
            )
            raise ParamError("scheme", why)
        if processors % size:
            why = (
                f"{processors} is not a multiple of {what}={size} "
                f"({cls.name} groups of {what} processors)"
            )
            raise ParamError("processors", why)

    @classmethod
    def label(cls, values: Mapping[str, Any], style: str = "family") -> str:
        """The scheme's name for output, from its declared parameters (see ``schemes.label``)."""
        values = cls.values(values)
        shape = [values[key] for key in cls.shape()]
        if style == "slug":
            sep = "" if all(int(v) < 10 for v in shape) else "-"
            return cls.name + sep.join(str(v) for v in shape)
        if cls.family_format is not None:
            family = cls.family_format.format(name=cls.name, **values)
        else:
            family = f"{cls.name}({','.join(str(v) for v in shape)})" if shape else cls.name
        if style == "family":
            return family
        if style == "scheme":
            return "".join(
                [family, *(f"-{values[p.name]}" for p in cls.parameters if p.label == MODE)]
            )
        if style == "variant":
            changed = [
                p
                for p in cls.parameters
                if p.label in (MODE, OPTION) and values[p.name] != p.default
            ]
            return " ".join([family, *(_option_word(p.name, values[p.name]) for p in changed)])
        msg = f"label style {style!r} is not known: choose one of slug, family, scheme, variant"
        raise ValueError(msg)

    # -- the data path ------------------------------------------------------------------------

    @abstractmethod
    def route(self, rows: np.ndarray) -> Iterator[Task]:
        """Tasks of one batch, in the order the source sends them."""

    def process(self, algorithm: Algorithm, model: np.ndarray, task: Task) -> SlotOutput:
        """What slot ``task.slot`` computes for its task (the processor's whole job); without
        a code nothing is decoded, so Z stays home."""
        out = compute(algorithm, model, task.rows, keep_Z=False)
        out.slot = task.slot
        return out

    @abstractmethod
    def assembler(self, algorithm: Algorithm, model: np.ndarray, count: int) -> Assembler:
        """A fresh sink-side assembler for a batch of ``count`` items processed with ``model``."""

    def tolerates(self, failed: Sequence[int]) -> bool:
        """Whether losing these slots' outputs of one batch loses no item."""
        return not failed

    @property
    def tolerates_at_once(self) -> int:
        """The most slots that may fail together (in one batch) without losing an item: how
        many replacements the runtime keeps ready. None by default."""
        return 0

    def describe(self) -> str:
        """The label of summaries and the console, e.g. ``ec(4,2)-linear`` or ``rep-3x``."""
        return self.label(self.settings, "scheme")


def _option_word(key: str, value: object) -> str:
    """A parameter off its default in a variant label: ``inputs``, ``no-incremental``."""
    if isinstance(value, bool):
        return key if value else f"no-{key}"
    return str(value)


class Assembler(ABC):
    """Collects slot outputs of one batch at the sink and finalises it.

    Lifecycle: ``add`` for each output as it arrives (returns the item offsets that became
    final with it); the runtime then calls ``recovery_requests`` (empty unless an extra round
    is needed), feeds each answer to ``add_recovery``, and finally calls ``statistics`` (all the
    model update needs, so the new model can go out first) and ``result``.
    ``complete`` says whether every expected output arrived; ``sufficient`` whether the batch
    can be finalised without loss from what arrived.
    """

    def __init__(self, algorithm: Algorithm, model: np.ndarray, count: int) -> None:
        self.algorithm = algorithm
        self.model = model
        self.count = count
        self.outputs: dict[int, SlotOutput] = {}

    @property
    @abstractmethod
    def expected(self) -> frozenset[int]:
        """Slots whose output this batch waits for."""

    def add(self, output: SlotOutput) -> np.ndarray:
        """Record one slot's output; returns the item offsets that became final with it."""
        if output.slot in self.outputs or output.slot not in self.expected:
            return np.empty(0, dtype=np.int64)
        self.outputs[output.slot] = output
        return self._became_final(output.slot)

    @abstractmethod
    def _became_final(self, slot: int) -> np.ndarray: ...

    @property
    def complete(self) -> bool:
        return self.expected.issubset(self.outputs)

    @property
    def missing(self) -> frozenset[int]:
        return self.expected - frozenset(self.outputs)

    @property
    @abstractmethod
    def sufficient(self) -> bool:
        """True when finalising now loses no item."""

    def recovery_requests(self, unavailable: frozenset[int] = frozenset()) -> dict[int, np.ndarray]:
        """Weights to send to survivors for an extra round (slot -> weights); default none."""
        return {}

    def add_recovery(self, slot: int, partial: np.ndarray) -> None:
        msg = f"{type(self).__name__} has no recovery round"
        raise RuntimeError(msg)

    @property
    def recovery_complete(self) -> bool:
        """Whether every answer of the extra round arrived (always, without a round)."""
        return True

    def silent_survivors(self) -> set[int]:
        """Slots asked in the extra round that have not answered."""
        return set()

    @abstractmethod
    def statistics(self) -> Stats:
        """Update statistics of every item not lost (equal to ``result().stats``)."""

    @abstractmethod
    def result(self) -> BatchResult:
        """Final results of the batch from what arrived (lost items marked)."""

    # -- shared helpers -----------------------------------------------------------------------

    def _finish(
        self,
        results: np.ndarray,
        lost: np.ndarray,
        decoded: list[tuple[slice, np.ndarray]],
    ) -> BatchResult:
        """The batch's result from the slots' per-item results; the items rebuilt from parity
        (``decoded``: their offsets and their decoded Z) are evaluated here."""
        for items, Z in decoded:
            results[items] = self.algorithm.evaluate(self.model, Z)
        result = BatchResult(
            self.count, self.statistics(), lost, sum(Z.shape[0] for _, Z in decoded)
        )
        results[lost] = np.nan
        result.predictions = results[:, 0]
        result.loss = results[:, 1]
        if np.isnan(results[~lost, 2]).any() or not self.algorithm.classifier:
            result.correct = None
        else:
            result.correct = results[:, 2] > 0.5
        return result


class Ledger:
    """Delivery accounting at the sink: which item of the stream got its final result.

    ``deliver`` marks stream offsets; one delivered twice counts as a duplicate (a bug the run
    must report, never hide). Items never delivered by the end are the lost ones.
    """

    def __init__(self, items: int) -> None:
        self.delivered = np.zeros(items, dtype=bool)
        self.duplicated = 0

    def deliver(self, offsets: np.ndarray) -> None:
        seen = self.delivered[offsets]
        self.duplicated += int(seen.sum())
        self.delivered[offsets] = True

    @property
    def items_out(self) -> int:
        return int(self.delivered.sum())

    def lost(self, items_in: int) -> int:
        return items_in - int(self.delivered[:items_in].sum())
