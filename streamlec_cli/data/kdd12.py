"""A seeded generator with the schema and the statistical character of KDD Cup 2012, track 2.

Rows are the dense 12-column trace of the paper's prototype: click label (1 when the line has
at least one click), then 11 features scaled to [0, 1], in the order of ``training.txt``:
impression, display URL, ad, advertiser, depth, position, query, keyword, title, description,
user. Every feature is an integer divided by a fixed maximum (:data:`SCALES`): ids by their
largest value, depth and position by 3, so the raw ``training.txt`` form is recovered exactly.

That division is the KDD12 scaling of every form of the data (:class:`Scaling`): a raw
``training.txt`` or LIBSVM file is divided by the same maxima, so the same rows give the same
features whatever the format, and whatever else the file holds.

* ids: a popularity rank with Zipf-like frequencies (``P(rank r) ∝ r ** -s``, ``s`` per column,
  table resolution 1/65536) mapped through a fixed bijection of ``1..count``, so frequent ids
  are spread over the range as anonymised ids are, while their frequencies stay heavy-tailed;
* impression: how many sessions the line aggregates, ``P(k) ∝ k ** -2.5`` (mostly 1);
* depth in {1, 2, 3} (ads shown) and position in {1..depth}, both divided by 3;
* click: each impression is clicked with a probability that falls with the position (and, for
  the top slot, rises with the depth); the label is ``clicks > 0``, so lines that aggregate more
  impressions are clicked more often. About 5% of the lines are positive.

Speed: one row takes three 64-bit words (12 fields) and one ``np.take`` into the C-ordered
output; the label costs a handful of vectorised operations.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import fields

TAG = 2  # separates this dataset's random stream from the others' for the same seed
WORDS = 3  # 64-bit words per row: 12 fields, one per column (position reuses depth's field)
COLUMNS = 12
CHUNK = 8192

FEATURE_NAMES = (
    "impression", "display_url", "ad", "advertiser", "depth", "position", "query",
    "keyword", "title", "description", "user",
)  # fmt: skip


@dataclass(frozen=True)
class IdColumn:
    """An id-like feature: ``count`` ids with Zipf exponent ``exponent``."""

    name: str
    count: int
    exponent: float
    multiplier: int  # of the bijection rank -> id; 0 keeps ranks as they are


# Counts of the same order as the released data's; exponents < 1 give longer tails.
IMPRESSION = IdColumn("impression", 10_000, 2.5, 0)
ID_COLUMNS = (
    IMPRESSION,
    IdColumn("display_url", 30_000, 1.0, 2_654_435_761),
    IdColumn("ad", 650_000, 1.0, 2_246_822_519),
    IdColumn("advertiser", 15_000, 1.1, 3_266_489_917),
    None,  # depth
    None,  # position
    IdColumn("query", 25_000_000, 0.9, 668_265_263),
    IdColumn("keyword", 1_250_000, 1.0, 374_761_393),
    IdColumn("title", 4_000_000, 1.0, 2_870_177_450),
    IdColumn("description", 3_200_000, 1.0, 1_181_783_497),
    IdColumn("user", 23_000_000, 0.8, 3_772_112_181),
)
DEPTH, POSITION = 5, 6  # output columns (0 is the label)
MAX_DEPTH = 3
# Each feature is an integer divided by its scale: the fixed maxima of the KDD12 scaling.
SCALES = tuple(float(c.count) if c is not None else float(MAX_DEPTH) for c in ID_COLUMNS)
#: Features whose maximum is fixed by the data's definition (at most 3 ads shown).
DEFINED = ("depth", "position")


@dataclass(frozen=True)
class Scaling:
    """How the integers behind the 11 features become features: ``value / maximum``.

    ``maxima`` are :data:`SCALES` (the generator's id ranges) except where a spec gives its
    own (``dataset.maxima``: a real file whose ids go further). In a LIBSVM file, feature j's
    value is its index minus ``offsets[j]``: each field's ids are numbered after the previous
    fields' (the sum of their maxima), as ``streamlec datasets gen`` writes them. A value
    outside ``0..maximum`` is an error, never a feature outside [0, 1].
    """

    given: tuple[tuple[str, int], ...] = ()  # (feature, maximum) in feature order

    @property
    def maxima(self) -> np.ndarray:
        out = np.array(SCALES)
        for name, value in self.given:
            out[FEATURE_NAMES.index(name)] = float(value)
        return out

    @property
    def offsets(self) -> np.ndarray:
        """Where each field's LIBSVM indices start (index = offset + value)."""
        return np.concatenate([[0.0], np.cumsum(self.maxima)[:-1]])

    def describe(self) -> dict:
        """What ``meta.json`` records of it (``dataset_source.scaling``)."""
        return {
            "rule": "feature = value / maximum, the same for the dense trace (whose features "
            "are these already), training.txt and LIBSVM (value = index - offset)",
            "maxima": {n: int(m) for n, m in zip(FEATURE_NAMES, self.maxima, strict=True)},
            "libsvm_offsets": {n: int(o) for n, o in zip(FEATURE_NAMES, self.offsets, strict=True)},
            "given": dict(self.given),
        }


DEPTH_PROBABILITIES = (0.25, 0.40, 0.35)  # depth 1, 2, 3; position uniform on 1..depth
CLICK_RATE = {  # per impression, by (depth, position)
    (1, 1): 0.034,
    (2, 1): 0.043,
    (2, 2): 0.021,
    (3, 1): 0.049,
    (3, 2): 0.025,
    (3, 3): 0.016,
}


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value table, per-column offsets, ``count * log(1 - rate)`` by depth field)."""
    u = fields.uniform_points()
    combos = [(d, p) for d in (1, 2, 3) for p in range(1, d + 1)]
    weights = [DEPTH_PROBABILITIES[d - 1] / d for d, _ in combos]
    combo = np.searchsorted(np.cumsum(weights)[:-1], u)
    depth = np.array([d for d, _ in combos], dtype=np.float64)[combo]
    position = np.array([p for _, p in combos], dtype=np.float64)[combo]
    rate = np.array([CLICK_RATE[c] for c in combos])[combo]
    segments = []
    for column in ID_COLUMNS:
        if column is None:
            continue
        ranks = fields.zipf_ranks(column.count, column.exponent)
        if column.multiplier:
            ranks = fields.scramble(ranks, column.count, column.multiplier)
        segments.append(ranks / column.count)
    segments[DEPTH - 1 : DEPTH - 1] = [depth / MAX_DEPTH, position / MAX_DEPTH]
    table = np.concatenate(segments)
    offsets = np.arange(COLUMNS, dtype=np.int32) - 1
    offsets[0] = 0  # the label column is overwritten after the look-up
    offsets *= fields.FIELD
    no_click = np.log1p(-rate) * IMPRESSION.count  # times impression / count = log P(no click)
    return table, offsets, no_click


def fill(bitgen: np.random.PCG64, out: np.ndarray) -> None:
    """Write the next ``len(out)`` rows of the stream into ``out`` (C-ordered, (n, 12))."""
    table, offsets, no_click = _tables()
    rows = out.shape[0]
    size = min(rows, CHUNK)
    index = np.empty((size, COLUMNS), dtype=np.int32)
    a = np.empty(size)
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        f = fields.draw_fields(bitgen, n, WORDS)
        o = out[start : start + n]
        idx = index[:n]
        np.add(f, offsets, out=idx)
        np.add(f[:, DEPTH], offsets[POSITION], out=idx[:, POSITION])  # position <= depth
        np.take(table, idx, out=o, mode="wrap")
        # P(no click) = (1 - rate) ** impressions; clicked when u = (f0 + 0.5) / 65536 >= it.
        np.take(no_click, f[:, DEPTH], out=a[:n])
        np.multiply(a[:n], o[:, 1], out=a[:n])
        np.exp(a[:n], out=a[:n])
        np.multiply(a[:n], fields.FIELD, out=a[:n])
        a[:n] -= 0.5
        np.greater_equal(f[:, 0], a[:n], out=o[:, 0], casting="unsafe")
