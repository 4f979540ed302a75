"""The real-valued systematic MDS code: pure numpy, no sockets, no I/O.

A code with parameters (k, r) has the generator ``G = [I_k ; A]`` of shape (k+r, k): row i < k
is data slot i itself, row k+q is parity q, ``parity_q = sum_j A[q, j] * data_j``. Any k rows of
``G`` are invertible, so the data of a stripe can be rebuilt from any k of its k+r rows.

Constructions:

* ``vandermonde`` -- the paper's: ``A[q, j] = (q+1)**j``. Exact MDS, but its condition number
  grows exponentially with k and r (about 1e7 at k=8, r=3).
* ``gaussian`` -- a Gaussian matrix drawn from a frozen per-(k, r) seed, the seed being the best
  of a search over 256 seeds (64 when k+r > 14) by the worst-case condition number over all
  erasure patterns (see ``benchmarks/search_codes.py``). Any square submatrix of a Gaussian
  matrix is invertible with probability one, and the worst condition number checked here is
  a few hundred at k=8, r=3. It is the default.

Everything is float64. Decoding uses a k x k inverse cached per erasure pattern.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CODES = ("gaussian", "vandermonde")
DEFAULT_CODE = "gaussian"
MAX_SLOTS = 16

# Best seed of ``np.random.default_rng(seed).standard_normal((r, k))`` per (k, r), found by
# benchmarks/search_codes.py (lowest worst-case condition number over all erasure patterns).
_GAUSSIAN_SEEDS: dict[tuple[int, int], int] = {
    (2, 1): 104,
    (2, 2): 16,
    (2, 3): 168,
    (2, 4): 164,
    (2, 5): 168,
    (2, 6): 189,
    (2, 7): 144,
    (2, 8): 203,
    (2, 9): 203,
    (2, 10): 180,
    (2, 11): 180,
    (2, 12): 180,
    (2, 13): 2,
    (2, 14): 24,
    (3, 1): 104,
    (3, 2): 172,
    (3, 3): 123,
    (3, 4): 22,
    (3, 5): 210,
    (3, 6): 123,
    (3, 7): 210,
    (3, 8): 210,
    (3, 9): 210,
    (3, 10): 159,
    (3, 11): 2,
    (3, 12): 8,
    (3, 13): 8,
    (4, 1): 234,
    (4, 2): 1,
    (4, 3): 212,
    (4, 4): 101,
    (4, 5): 192,
    (4, 6): 19,
    (4, 7): 41,
    (4, 8): 225,
    (4, 9): 19,
    (4, 10): 19,
    (4, 11): 24,
    (4, 12): 24,
    (5, 1): 40,
    (5, 2): 214,
    (5, 3): 217,
    (5, 4): 38,
    (5, 5): 31,
    (5, 6): 149,
    (5, 7): 138,
    (5, 8): 207,
    (5, 9): 207,
    (5, 10): 19,
    (5, 11): 2,
    (6, 1): 40,
    (6, 2): 52,
    (6, 3): 177,
    (6, 4): 155,
    (6, 5): 44,
    (6, 6): 180,
    (6, 7): 174,
    (6, 8): 174,
    (6, 9): 44,
    (6, 10): 41,
    (7, 1): 168,
    (7, 2): 202,
    (7, 3): 94,
    (7, 4): 218,
    (7, 5): 31,
    (7, 6): 95,
    (7, 7): 164,
    (7, 8): 43,
    (7, 9): 40,
    (8, 1): 93,
    (8, 2): 44,
    (8, 3): 253,
    (8, 4): 252,
    (8, 5): 139,
    (8, 6): 134,
    (8, 7): 57,
    (8, 8): 33,
    (9, 1): 1,
    (9, 2): 38,
    (9, 3): 103,
    (9, 4): 228,
    (9, 5): 98,
    (9, 6): 46,
    (9, 7): 12,
    (10, 1): 19,
    (10, 2): 71,
    (10, 3): 150,
    (10, 4): 13,
    (10, 5): 63,
    (10, 6): 22,
    (11, 1): 19,
    (11, 2): 114,
    (11, 3): 114,
    (11, 4): 9,
    (11, 5): 11,
    (12, 1): 19,
    (12, 2): 10,
    (12, 3): 54,
    (12, 4): 14,
    (13, 1): 19,
    (13, 2): 45,
    (13, 3): 0,
    (14, 1): 19,
    (14, 2): 10,
    (15, 1): 19,
}


class CodeError(ValueError):
    """Parameters outside what the code supports."""


def check_parameters(k: int, r: int) -> None:
    """Raise CodeError unless 2 <= k, 1 <= r and k + r <= 16."""
    if k < 2:
        msg = f"k={k} is not allowed: k must be at least 2"
        raise CodeError(msg)
    if r < 1:
        msg = f"r={r} is not allowed: r must be at least 1"
        raise CodeError(msg)
    if k + r > MAX_SLOTS:
        msg = f"k+r={k + r} (k={k}, r={r}) is not allowed: k+r must be at most {MAX_SLOTS}"
        raise CodeError(msg)


def parity_matrix(k: int, r: int, code: str = DEFAULT_CODE) -> np.ndarray:
    """The r x k parity block ``A`` of the named construction."""
    check_parameters(k, r)
    if code == "vandermonde":
        q = np.arange(1, r + 1, dtype=np.float64)[:, None]
        j = np.arange(k, dtype=np.float64)[None, :]
        return q**j
    if code == "gaussian":
        seed = _GAUSSIAN_SEEDS.get((k, r), 0)
        return np.random.default_rng(seed).standard_normal((r, k))
    msg = f"code {code!r} is not known: choose one of {', '.join(CODES)}"
    raise CodeError(msg)


@dataclass(frozen=True, eq=False)
class Code:
    """A systematic (k+r, k) real-valued MDS code.

    Shapes: a *stripe* is k rows of width w; ``encode`` maps ``(stripes, k, w)`` to
    ``(stripes, r, w)``; ``decode`` maps the rows that arrived back to the k data rows.
    """

    k: int
    r: int
    name: str = DEFAULT_CODE
    parity: np.ndarray = field(init=False, repr=False)
    generator: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parity = parity_matrix(self.k, self.r, self.name)
        parity.setflags(write=False)
        generator = np.vstack([np.eye(self.k), parity])
        generator.setflags(write=False)
        object.__setattr__(self, "parity", parity)
        object.__setattr__(self, "generator", generator)

    @property
    def n(self) -> int:
        """Slots per group: k data plus r parity."""
        return self.k + self.r

    def encode(self, data: np.ndarray) -> np.ndarray:
        """Parity rows of every stripe: ``(stripes, k, w) -> (stripes, r, w)``."""
        stripes, k, width = data.shape
        if k != self.k:
            msg = f"encode expects stripes of k={self.k} rows, got {k}"
            raise CodeError(msg)
        # One stacked matmul, (r, k) @ (k, w) per stripe, reading the data where it lies (no
        # transposed copy) and writing into an (r, stripes, w) buffer, so each parity row
        # ``out[:, q]`` is contiguous. About 3x faster than transposing into one big GEMM.
        out = np.empty((self.r, stripes, width), dtype=np.result_type(self.parity, data))
        view = np.moveaxis(out, 0, 1)
        np.matmul(self.parity, data, out=view)
        return view

    def choose_rows(self, present: Sequence[int]) -> tuple[int, ...]:
        """The k rows used to decode: every present data row, then the lowest parity rows."""
        rows = sorted(set(present))
        if len(rows) < self.k:
            msg = f"cannot decode from {len(rows)} rows: any {self.k} of {self.n} are needed"
            raise CodeError(msg)
        data = [i for i in rows if i < self.k]
        parity = [i for i in rows if i >= self.k]
        return tuple(data + parity[: self.k - len(data)])

    def decoder(self, rows: Sequence[int]) -> np.ndarray:
        """The k x k matrix D with ``data = D @ arrived`` for exactly these k rows (cached)."""
        return _inverse(self, tuple(rows))

    def decode(self, arrived: dict[int, np.ndarray]) -> np.ndarray:
        """Data rows from any k arrived rows: ``{row: (stripes, w)} -> (stripes, k, w)``."""
        rows = self.choose_rows(list(arrived))
        stacked = np.stack([arrived[i] for i in rows], axis=0)  # (k, stripes, w)
        k, stripes, width = stacked.shape
        data = self.decoder(rows) @ stacked.reshape(k, stripes * width)
        return np.moveaxis(data.reshape(k, stripes, width), 0, 1)

    def decode_rows(self, arrived: dict[int, np.ndarray], wanted: Sequence[int]) -> np.ndarray:
        """Only the wanted data rows: ``-> (len(wanted), stripes, w)``."""
        rows = self.choose_rows(list(arrived))
        stacked = np.stack([arrived[i] for i in rows], axis=0)
        k, stripes, width = stacked.shape
        weights = self.decoder(rows)[list(wanted)]
        return (weights @ stacked.reshape(k, stripes * width)).reshape(len(wanted), stripes, width)

    def condition_numbers(self) -> np.ndarray:
        """Condition number of every k-row submatrix of G, one per erasure pattern."""
        return _condition_numbers(self.k, self.r, self.name)

    def worst_condition(self) -> float:
        """The largest condition number over all erasure patterns of up to r rows."""
        return float(self.condition_numbers().max())


@functools.lru_cache(maxsize=4096)
def _inverse_cached(k: int, r: int, name: str, rows: tuple[int, ...]) -> np.ndarray:
    code = make_code(k, r, name)
    inverse = np.linalg.inv(code.generator[list(rows)])
    inverse.setflags(write=False)
    return inverse


def _inverse(code: Code, rows: tuple[int, ...]) -> np.ndarray:
    if len(rows) != code.k or len(set(rows)) != code.k:
        msg = f"decoding needs exactly {code.k} distinct rows, got {rows}"
        raise CodeError(msg)
    return _inverse_cached(code.k, code.r, code.name, rows)


@functools.lru_cache(maxsize=256)
def _condition_numbers(k: int, r: int, name: str) -> np.ndarray:
    generator = make_code(k, r, name).generator
    patterns = np.array(list(itertools.combinations(range(k + r), k)))
    return np.linalg.cond(generator[patterns])


@functools.lru_cache(maxsize=256)
def make_code(k: int, r: int, name: str = DEFAULT_CODE) -> Code:
    """The (cached, immutable) code for these parameters."""
    return Code(k, r, name)


def erasure_patterns(k: int, r: int, max_erased: int | None = None) -> list[tuple[int, ...]]:
    """Every set of erased rows of size 1..max_erased (default r)."""
    n = k + r
    top = r if max_erased is None else max_erased
    return [e for size in range(1, top + 1) for e in itertools.combinations(range(n), size)]


def measure_decode_error(code: Code, stripes: int = 64, width: int = 29, seed: int = 0) -> float:
    """Worst relative decode error over every erasure pattern of r rows, on random data."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((stripes, code.k, width))
    rows = np.concatenate([data, code.encode(data)], axis=1)
    worst = 0.0
    scale = np.abs(data).max()
    for kept in itertools.combinations(range(code.n), code.k):
        decoded = code.decode({i: rows[:, i] for i in kept})
        worst = max(worst, float(np.abs(decoded - data).max() / scale))
    return worst


def describe(k: int, r: int, name: str = DEFAULT_CODE) -> dict:
    """What ``streamlec code-info`` prints: the generator and its numerical quality."""
    code = make_code(k, r, name)
    conds = code.condition_numbers()
    return {
        "k": k,
        "r": r,
        "code": name,
        "generator": code.generator.tolist(),
        "erasure_patterns": math.comb(k + r, k),
        "worst_condition": float(conds.max()),
        "median_condition": float(np.median(conds)),
        "worst_decode_rel_error": measure_decode_error(code),
    }
