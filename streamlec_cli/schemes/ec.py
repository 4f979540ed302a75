"""EC(k, r): stripes of k items encoded into r parity items, k+r slots per group.

Layout. The batch is cut into ``groups`` contiguous parts, and a part of n items into k
contiguous slices of near-equal size (the first ``n % k`` one item longer): slice j goes to data
slot j of the group. Stripe s is item s of every slice (zero where a slice is one item short),
and parity slot k+q gets parity q of every stripe. Any assignment of items to stripes works for
the code; this one makes every data slice a view of the batch, sent without a gather, and the
encoding of a part one matrix product over the part as it lies (``A @ part`` seen as k x m*w).

Incremental encoding (the default) sends the k data slices first and computes the parities
while they are on their way (ZeroMQ's I/O thread transmits as the source encodes), then sends
the parities; ``incremental=False`` encodes the whole part before sending any of it.

Two attach modes decide what a slot sends back and how the sink rebuilds a lost data slot:

* ``inputs``: data slots attach their rows, parity slots forward their parity rows; the sink
  decodes the lost rows and recomputes their results.
* ``linear`` (hybrid coded computation): every slot sends only its Z (parity slots compute the
  linear part of their parity rows). A lost slot's items are final as soon as any k outputs
  arrived: its Z, hence its predictions, decode from them (when needed: usually the slot's own
  output comes a moment later). The lost update statistics ``X_e.T @ F_e`` come from one
  extra round: with D the decoding matrix of the k chosen rows, survivor i is sent
  ``W_i = sum_e D[e, i] F_e`` and answers ``Y_i.T @ W_i``; the answers sum to the lost
  statistics exactly. Only vectors of stripe and model size cross the network. The columns of
  F an algorithm needs only summed (``Algorithm.summed``: an MLP's second layer) never go out:
  the sink sums them over the decoded Z itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import codec
from ..algorithms import Algorithm, Stats
from ..params import MODE, OPTION, SHAPE, Param, ParamError
from .base import (
    DATA,
    PARITY,
    Assembler,
    BatchResult,
    Scheme,
    SlotOutput,
    Task,
    compute,
    contiguous_parts,
)

ATTACH_MODES = ("linear", "inputs")
# Where a data slot's results come from at the end of a batch.
_OUTPUT, _REBUILT, _DECODED, _LOST = "output", "rebuilt", "decoded", "lost"


def slot_sizes(n: int, k: int) -> list[int]:
    """Items of each data slot of a part of n items (the first ``n % k`` get one more)."""
    return [hi - lo for lo, hi in contiguous_parts(n, k)]


def _encode(parity: np.ndarray, part: np.ndarray, slices: list[np.ndarray]) -> np.ndarray:
    """Parity rows ``(r, stripes, width)`` of a part cut into ``slices`` (contiguous, of near
    equal size): ``A @ X`` with X the slices as k rows of stripes*width values. When the slices
    are equal the part is X as it lies (a view); otherwise the short slices are zero-padded."""
    k, stripes, width = len(slices), slices[0].shape[0], part.shape[1]
    if part.shape[0] == k * stripes:
        data = part.reshape(k, stripes * width)
    else:
        data = np.zeros((k, stripes, width))
        for j, rows in enumerate(slices):
            data[j, : rows.shape[0]] = rows
        data = data.reshape(k, stripes * width)
    return (parity @ data).reshape(-1, stripes, width)


class ErasureCoded(Scheme):
    name = "ec"
    parameters = (
        Param("k", int, 4, "data slots per group", minimum=2, label=SHAPE),
        Param("r", int, 2, "parity slots per group", minimum=1, label=SHAPE),
        Param("code", str, codec.DEFAULT_CODE, "parity construction", choices=codec.CODES),
        Param(
            "attach",
            str,
            "linear",
            "what outputs carry for decoding",
            choices=ATTACH_MODES,
            label=MODE,
        ),
        Param("incremental", bool, True, "parities encoded while the data is sent", label=OPTION),
    )
    k: int
    r: int
    attach: str
    incremental: bool

    def __init__(self, processors: int, *args: object, **kwargs: object) -> None:
        super().__init__(processors, *args, **kwargs)
        self.code = codec.make_code(self.k, self.r, self.settings["code"])

    @classmethod
    def check(cls, values) -> None:
        """k and r must be a code the codec supports (k+r at most ``codec.MAX_SLOTS``)."""
        try:
            codec.check_parameters(int(values["k"]), int(values["r"]))
        except codec.CodeError as exc:
            raise ParamError("r", str(exc)) from exc

    @property
    def n(self) -> int:
        return self.k + self.r

    @property
    def groups(self) -> int:
        return self.processors // self.n

    def role(self, slot: int) -> str:
        return DATA if slot % self.n < self.k else PARITY

    # -- source -------------------------------------------------------------------------------

    def route(self, rows: np.ndarray) -> Iterator[Task]:
        k, generator = self.k, self.code.parity
        for g, (lo, hi) in enumerate(contiguous_parts(rows.shape[0], self.groups)):
            base = g * self.n
            slices = [rows[lo + a : lo + b] for a, b in contiguous_parts(hi - lo, k)]
            if not self.incremental:
                parity = _encode(generator, rows[lo:hi], slices)
            for j, data in enumerate(slices):
                yield Task(base + j, DATA, data)  # sent before the generator resumes
            if self.incremental:
                parity = _encode(generator, rows[lo:hi], slices)
            for q in range(self.r):
                yield Task(base + k + q, PARITY, parity[q])

    # -- processor ----------------------------------------------------------------------------

    def process(self, algorithm: Algorithm, model: np.ndarray, task: Task) -> SlotOutput:
        attach = task.rows if self.attach == "inputs" else None
        if task.role == DATA:  # Z only where the sink decodes from it
            out = compute(algorithm, model, task.rows, keep_Z=self.attach == "linear")
            out.slot, out.rows = task.slot, attach
            return out
        if self.attach == "inputs":
            return SlotOutput(task.slot, rows=task.rows)
        return SlotOutput(task.slot, Z=algorithm.linear(model, task.rows))

    # -- sink ---------------------------------------------------------------------------------

    def assembler(self, algorithm: Algorithm, model: np.ndarray, count: int) -> Assembler:
        return ECAssembler(self, algorithm, model, count)

    def tolerates(self, failed) -> bool:
        per_group: dict[int, int] = {}
        for slot in set(failed):
            per_group[slot // self.n] = per_group.get(slot // self.n, 0) + 1
        return all(n <= self.r for n in per_group.values())

    @property
    def tolerates_at_once(self) -> int:
        return self.r * self.groups


class _Group:
    """Sink-side state of one group of one batch."""

    def __init__(self, lo: int, hi: int, k: int) -> None:
        self.lo, self.hi = lo, hi
        # Data slot j holds the batch's items lo + a .. lo + b - 1, (a, b) = slices[j].
        self.slices = contiguous_parts(hi - lo, k)
        self.sizes = [b - a for a, b in self.slices]
        self.stripes = -(-(hi - lo) // k)
        self.arrived: list[int] = []  # local rows (0..k+r-1) in arrival order
        self.decodable: tuple[int, ...] = ()  # data slots missing at the k-th arrival
        self.decoded: dict[int, np.ndarray] = {}  # lost data slot -> Z (sizes[j], zcols)
        self.decoded_stats: dict[int, Stats] = {}  # inputs mode: lost data slot -> its stats
        self.lost_F: dict[int, np.ndarray] = {}  # linear mode: lost data slot -> F (stripes, m + s)
        self.recovering: tuple[int, ...] = ()  # data slots the extra round rebuilds
        self.requested: dict[int, np.ndarray] = {}
        self.answers: dict[int, np.ndarray] = {}


class ECAssembler(Assembler):
    def __init__(self, scheme: ErasureCoded, algorithm: Algorithm, model: np.ndarray, count: int):
        super().__init__(algorithm, model, count)
        self.scheme = scheme
        self.groups = [
            _Group(lo, hi, scheme.k) for lo, hi in contiguous_parts(count, scheme.groups)
        ]
        self._expected = frozenset(range(scheme.processors))
        self._stats: Stats | None = None

    @property
    def expected(self) -> frozenset[int]:
        return self._expected

    @property
    def sufficient(self) -> bool:
        return all(len(g.arrived) >= self.scheme.k for g in self.groups)

    def _span(self, group: _Group, j: int) -> slice:
        """The batch offsets of data slot j's items (contiguous)."""
        a, b = group.slices[j]
        return slice(group.lo + a, group.lo + b)

    def _items_of(self, group: _Group, j: int) -> np.ndarray:
        span = self._span(group, j)
        return np.arange(span.start, span.stop)

    def _became_final(self, slot: int) -> np.ndarray:
        k, n = self.scheme.k, self.scheme.n
        group = self.groups[slot // n]
        local = slot % n
        group.arrived.append(local)
        final: list[np.ndarray] = []
        have = set(group.arrived)
        if len(group.arrived) < k:
            if local < k:
                final.append(self._items_of(group, local))
        elif len(group.arrived) == k:
            # Any k outputs make the whole group final: every data slot still missing can be
            # decoded from them. The decoding waits until its values are needed (``_settle``):
            # usually the slot's own output comes a moment later and none is.
            group.decodable = tuple(j for j in range(k) if j not in have)
            final.extend(
                self._items_of(group, j) for j in range(k) if j == local or j in group.decodable
            )
        elif local < k and local not in group.decodable:
            final.append(self._items_of(group, local))
        return np.concatenate(final) if final else np.empty(0, dtype=np.int64)

    def _arrived_rows(self, g: int, field: str) -> dict[int, np.ndarray]:
        """Arrived outputs of group g as code rows padded to whole stripes."""
        group, n = self.groups[g], self.scheme.n
        rows = {}
        for local in group.arrived:
            value = getattr(self.outputs[g * n + local], field)
            if value.shape[0] < group.stripes:
                padded = np.zeros((group.stripes, value.shape[1]))
                padded[: value.shape[0]] = value
                value = padded
            rows[local] = value
        return rows

    def _settle(self, g: int) -> None:
        """Decode the data slots of group g made final at the k-th arrival whose own output
        has not come since (for a recovery round or the batch's result)."""
        group = self.groups[g]
        missing = [j for j in group.decodable if j not in group.arrived and j not in group.decoded]
        if missing:
            self._decode(g, missing)

    def _decode(self, g: int, missing: list[int]) -> None:
        group, alg, model = self.groups[g], self.algorithm, self.model
        if self.scheme.attach == "linear":
            decoded = self.scheme.code.decode_rows(self._arrived_rows(g, "Z"), missing)
            for e, Z in zip(missing, decoded, strict=True):
                group.decoded[e] = Z[: group.sizes[e]]
                F = np.zeros((group.stripes, alg.outputs + alg.summed))
                F[: group.sizes[e]] = alg.coefficients(model, group.decoded[e])
                group.lost_F[e] = F
            return
        decoded = self.scheme.code.decode_rows(self._arrived_rows(g, "rows"), missing)
        for e, rows in zip(missing, decoded, strict=True):
            out = compute(alg, model, rows[: group.sizes[e]])
            group.decoded[e] = out.Z
            group.decoded_stats[e] = out.stats

    # -- the extra round (linear mode) --------------------------------------------------------

    def recovery_requests(self, unavailable: frozenset[int] = frozenset()) -> dict[int, np.ndarray]:
        """Weights per survivor slot so that their answers sum to the lost statistics."""
        requests: dict[int, np.ndarray] = {}
        if self.scheme.attach != "linear":
            return requests
        code, n, m = self.scheme.code, self.scheme.n, self.algorithm.outputs
        for g, group in enumerate(self.groups):
            self._settle(g)
            group.requested, group.answers = {}, {}
            # A slot decoded at the k-th arrival whose own output came since needs no round.
            group.recovering = tuple(e for e in sorted(group.lost_F) if e not in group.arrived)
            if not group.recovering:
                continue
            usable = [i for i in group.arrived if g * n + i not in unavailable]
            if len(usable) < code.k:
                continue  # beyond tolerance: these statistics are lost (see result)
            rows = code.choose_rows(usable)
            D = code.decoder(rows)
            for position, local in enumerate(rows):
                weights = sum(D[e, position] * group.lost_F[e][:, :m] for e in group.recovering)
                group.requested[local] = weights
                requests[g * n + local] = weights
        return requests

    def add_recovery(self, slot: int, partial: np.ndarray) -> None:
        group = self.groups[slot // self.scheme.n]
        local = slot % self.scheme.n
        if local in group.requested:
            group.answers[local] = partial

    @property
    def recovery_complete(self) -> bool:
        return all(set(g.answers) == set(g.requested) for g in self.groups)

    def silent_survivors(self) -> set[int]:
        n = self.scheme.n
        return {
            g * n + local
            for g, group in enumerate(self.groups)
            for local in group.requested
            if local not in group.answers
        }

    # -- final --------------------------------------------------------------------------------

    def _kinds(self, g: int) -> tuple[list[str], set[int]]:
        """Where each data slot's results come from, and the slots the extra round rebuilt."""
        self._settle(g)
        group = self.groups[g]
        have = set(group.arrived)
        recovered = bool(group.requested) and set(group.answers) == set(group.requested)
        rebuilt = set(group.recovering) if recovered else set()
        kinds = []
        for j in range(self.scheme.k):
            if j in rebuilt:  # linear mode: decoded Z, statistics from the extra round
                kinds.append(_REBUILT)
            elif j in have:
                kinds.append(_OUTPUT)
            elif j in group.decoded_stats:  # inputs mode: decoded rows, recomputed
                kinds.append(_DECODED)
            else:
                kinds.append(_LOST)
        return kinds, rebuilt

    def statistics(self) -> Stats:
        if self._stats is None:
            alg, n = self.algorithm, self.scheme.n
            stats = Stats.zero(alg.d, alg.outputs, alg.summed)
            for g, group in enumerate(self.groups):
                kinds, rebuilt = self._kinds(g)
                for j, kind in enumerate(kinds):
                    if kind == _OUTPUT:
                        stats = stats + self.outputs[g * n + j].stats
                    elif kind == _DECODED:
                        stats = stats + group.decoded_stats[j]
                if rebuilt:
                    U = sum(group.answers[i] for i in sorted(group.answers))
                    F = np.concatenate([group.lost_F[e][: group.sizes[e]] for e in sorted(rebuilt)])
                    stats = stats + Stats(U, F.sum(axis=0), F.shape[0])
            self._stats = stats
        return self._stats

    def result(self) -> BatchResult:
        n = self.scheme.n
        results = np.full((self.count, 3), np.nan)
        lost = np.zeros(self.count, dtype=bool)
        decoded = []
        for g, group in enumerate(self.groups):
            kinds, _ = self._kinds(g)
            for j, kind in enumerate(kinds):
                items = self._span(group, j)
                if kind == _OUTPUT:
                    results[items] = self.outputs[g * n + j].results
                elif kind == _LOST:
                    lost[items] = True
                else:
                    decoded.append((items, group.decoded[j]))
        return self._finish(results, lost, decoded)
