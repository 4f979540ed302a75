"""Random 16-bit fields and the quantile tables that turn them into values.

A synthetic stream draws ``words`` 64-bit words per item from one PCG64 stream per (dataset,
seed) and views them as ``4 * words`` unsigned 16-bit fields. Row ``i`` always takes words
``[i * words, (i + 1) * words)``, and every later step is elementwise per row, so item ``i`` is
the same whatever range or batch size produced it (``PCG64.advance`` jumps to any row).

A field ``f`` stands for the uniform quantile ``u = (f + 0.5) / 65536``; a distribution is a
table of its 65536 quantiles at those points, looked up with ``np.take``. Every table here is
built with plain numpy from closed forms, so it is the same on every machine.
"""

from __future__ import annotations

import math

import numpy as np

FIELD = 1 << 16  # values of one 16-bit field; entries of every quantile table


def bit_generator(tag: int, seed: int, row: int, words: int) -> np.random.PCG64:
    """The PCG64 stream of dataset ``tag`` and ``seed``, positioned at the start of ``row``."""
    bitgen = np.random.PCG64(np.random.SeedSequence([seed, tag]))
    if row:
        bitgen.advance(row * words)
    return bitgen


def draw_fields(bitgen: np.random.PCG64, rows: int, words: int) -> np.ndarray:
    """The next ``rows`` rows of fields, shape ``(rows, 4 * words)``, dtype uint16."""
    return bitgen.random_raw(rows * words).view(np.uint16).reshape(rows, 4 * words)


def uniform_points() -> np.ndarray:
    """The 65536 quantile levels ``(f + 0.5) / 65536`` a field stands for."""
    return (np.arange(FIELD) + 0.5) / FIELD


# Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9).
_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
      -30.66479806614716, 2.506628277459239)  # fmt: skip
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572)  # fmt: skip
_C = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783)  # fmt: skip
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)
_P_LOW = 0.02425


def _poly(coefficients: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    result = np.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        result = result * x + c
    return result


def normal_quantile(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile of each ``p`` in (0, 1)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.empty_like(p)
    low, high = p < _P_LOW, p > 1.0 - _P_LOW
    mid = ~(low | high)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = q * _poly(_A, r) / (_poly(_B, r) * r + 1.0)
    for mask, sign, tail in ((low, 1.0, p[low]), (high, -1.0, 1.0 - p[high])):
        s = np.sqrt(-2.0 * np.log(tail))
        out[mask] = sign * _poly(_C, s) / (_poly(_D, s) * s + 1.0)
    return out


def truncated_normal_table(bound: float) -> np.ndarray:
    """Quantiles of the standard normal truncated to ``[-bound, bound]``."""
    edge = 0.5 * math.erfc(bound / math.sqrt(2.0))  # P(Z < -bound)
    return normal_quantile(edge + uniform_points() * (1.0 - 2.0 * edge))


def lognormal_table(sigma: float, floor: float = 0.0) -> np.ndarray:
    """Quantiles of ``floor + (1 - floor) * exp(sigma Z - sigma^2 / 2)``: positive, mean 1."""
    z = normal_quantile(uniform_points())
    return floor + (1.0 - floor) * np.exp(sigma * z - 0.5 * sigma * sigma)


def levels_table(
    values: tuple[float, ...], probabilities: tuple[float, ...], points: np.ndarray | None = None
) -> np.ndarray:
    """Quantiles of a discrete law on ``values`` (ascending) with these probabilities.

    At ``points`` (default: the 65536 field levels).
    """
    edges = np.cumsum(probabilities)[:-1]
    points = uniform_points() if points is None else points
    return np.asarray(values, dtype=np.float64)[np.searchsorted(edges, points)]


def zipf_ranks(count: int, exponent: float, head: int = 1 << 20) -> np.ndarray:
    """Quantiles (int64 ranks ``1..count``) of the law ``P(rank r) ∝ r ** -exponent``.

    The first ``head`` ranks are summed exactly; the rest of the mass is the integral of
    ``x ** -exponent`` over ``[head + 0.5, count + 0.5]``, inverted in closed form.
    """
    head = min(head, count)
    weights = np.arange(1, head + 1, dtype=np.float64) ** -exponent
    cumulative = np.cumsum(weights)

    def integral(a: float | np.ndarray, b: float | np.ndarray) -> float | np.ndarray:
        if exponent == 1.0:
            return np.log(b) - np.log(a)
        return (b ** (1.0 - exponent) - a ** (1.0 - exponent)) / (1.0 - exponent)

    tail = float(integral(head + 0.5, count + 0.5)) if count > head else 0.0
    total = cumulative[-1] + tail
    targets = uniform_points() * total
    ranks = np.searchsorted(cumulative, targets) + 1
    beyond = targets > cumulative[-1]
    if beyond.any():
        rest = targets[beyond] - cumulative[-1]
        start = head + 0.5
        if exponent == 1.0:
            x = start * np.exp(rest)
        else:
            x = (start ** (1.0 - exponent) + rest * (1.0 - exponent)) ** (1.0 / (1.0 - exponent))
        ranks[beyond] = np.floor(x + 0.5)
    return np.clip(ranks, 1, count).astype(np.int64)


def scramble(ranks: np.ndarray, count: int, multiplier: int) -> np.ndarray:
    """A fixed bijection of ``1..count``: popularity ranks become arbitrary-looking ids.

    ``id = ((rank - 1) * a + multiplier) mod count + 1`` with ``a`` the first number from
    ``multiplier`` up that is coprime with ``count``.
    """
    a = multiplier
    while math.gcd(a, count) != 1:
        a += 1
    return ((ranks - 1) * a + multiplier) % count + 1
