"""Search the frozen seeds of the ``gaussian`` construction (codec._GAUSSIAN_SEEDS).

For every k >= 2, r >= 1, k + r <= 16: draw ``standard_normal((r, k))`` from seeds 0..N-1
(N = 256, or 64 when k + r > 14), keep the seed whose generator has the lowest worst-case
condition number over all k-row submatrices. Prints the table to paste into codec.py.
Takes a few minutes on one core.

    python benchmarks/search_codes.py
"""

from __future__ import annotations

import itertools

import numpy as np


def worst_condition(parity: np.ndarray) -> float:
    r, k = parity.shape
    generator = np.vstack([np.eye(k), parity])
    patterns = np.array(list(itertools.combinations(range(k + r), k)))
    return float(np.linalg.cond(generator[patterns]).max())


def main() -> None:
    table = {}
    for n in range(3, 17):
        for k in range(2, n):
            r = n - k
            tries = 256 if n <= 14 else 64
            best = min(
                range(tries),
                key=lambda s: worst_condition(np.random.default_rng(s).standard_normal((r, k))),
            )
            table[(k, r)] = best
            print(f"# k={k} r={r}: seed {best}", flush=True)
    print(
        "_GAUSSIAN_SEEDS = {" + ", ".join(f"{key}: {v}" for key, v in sorted(table.items())) + "}"
    )


if __name__ == "__main__":
    main()
