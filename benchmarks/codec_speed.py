"""Encode and decode throughput of the codec on HIGGS-shaped items, single-threaded.

An item is one float64 row of 29 columns (label + 28 features). A micro-batch of ``--batch``
items is cut into ``stripes = batch // k`` stripes of k rows, as the source does. Measured:

* ``encode``        -- ``Code.encode`` of the whole micro-batch, shape (stripes, k, 29);
* ``slice + fold``  -- ``code.encoder(stripes, 29)``, then for every j the contiguous slice
  ``np.ascontiguousarray(batch.reshape(stripes, k, 29)[:, j])`` folded in (the source's path);
* ``fold``          -- the same with the slices cut beforehand (the codec's share alone);
* ``decode``        -- ``Code.decode`` from k arrived rows, r data rows erased (all k data
  rows when r >= k), rebuilding the whole micro-batch.

Throughput counts data items of the micro-batch per second; each figure is the best of
``--repeats`` runs over ``--items`` items, cycling through a pool of distinct batches so the
data does not sit in cache. BLAS and OpenMP are pinned to one thread before numpy is imported.

    python benchmarks/codec_speed.py [--k 4 --r 2 --items 2000000 --code gaussian]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from streamlec_cli.codec import CODES, DEFAULT_CODE, Code, make_code  # noqa: E402
from streamlec_cli.datasets import generate  # noqa: E402

WIDTH = 29
POOL = 8  # distinct micro-batches cycled through (8 x 12000 x 29 x 8 B = 22 MB)


def best_rate(
    run: Callable[[np.ndarray], object],
    pool: list[np.ndarray],
    calls: int,
    items: int,
    repeats: int,
) -> tuple[float, float]:
    """(best seconds per call, items per second) over ``repeats`` runs of ``calls`` calls."""
    best = float("inf")
    run(pool[0])  # warm up: caches, lazily built decoders
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            run(pool[i % len(pool)])
        best = min(best, (time.perf_counter() - start) / calls)
    return best, items / best


def measure(code: Code, batch: int, total: int, repeats: int) -> list[tuple[str, float, float]]:
    k, r = code.k, code.r
    stripes = batch // k
    used = stripes * k
    calls = max(1, -(-total // used))
    base = generate("higgs", 0, used, seed=0)
    rng = np.random.default_rng(0)
    # Distinct batches with HIGGS-like magnitudes: the rows of one block, shuffled per batch.
    batches = [base[rng.permutation(used)] for _ in range(POOL)]

    def encode(rows: np.ndarray) -> object:
        return code.encode(rows.reshape(stripes, k, WIDTH))

    def slice_and_fold(rows: np.ndarray) -> object:
        encoder = code.encoder(stripes, WIDTH)
        view = rows.reshape(stripes, k, WIDTH)
        for j in range(k):
            encoder.fold(j, np.ascontiguousarray(view[:, j]))
        return encoder.parity

    slices = [
        [np.ascontiguousarray(b.reshape(stripes, k, WIDTH)[:, j]) for j in range(k)]
        for b in batches
    ]
    slice_of = {id(b): s for b, s in zip(batches, slices, strict=True)}

    def fold(rows: np.ndarray) -> object:
        encoder = code.encoder(stripes, WIDTH)
        for j, part in enumerate(slice_of[id(rows)]):
            encoder.fold(j, part)
        return encoder.parity

    erased = set(range(min(r, k)))
    kept = [i for i in range(code.n) if i not in erased][:k]
    arrived_of = {}
    for b in batches:
        data = b.reshape(stripes, k, WIDTH)
        full = np.concatenate([data, code.encode(data)], axis=1)
        arrived_of[id(b)] = {i: np.ascontiguousarray(full[:, i]) for i in kept}

    def decode(rows: np.ndarray) -> object:
        return code.decode(arrived_of[id(rows)])

    # The paths must agree before their speed means anything.
    reference = encode(batches[0])
    assert np.allclose(slice_and_fold(batches[0]), np.moveaxis(reference, 1, 0), rtol=1e-12)
    assert np.allclose(decode(batches[0]), batches[0].reshape(stripes, k, WIDTH), atol=1e-9)

    rows = []
    for label, run in (
        ("encode", encode),
        ("slice + fold", slice_and_fold),
        ("fold", fold),
        ("decode", decode),
    ):
        seconds, rate = best_rate(run, batches, calls, used, repeats)
        rows.append((label, seconds, rate))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=4, help="data slots per group")
    parser.add_argument("--r", type=int, default=2, help="parity slots per group")
    parser.add_argument("--items", type=int, default=2_000_000, help="items per timed run")
    parser.add_argument("--batch", type=int, default=12_000, help="items per micro-batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs; the best is kept")
    parser.add_argument("--code", choices=CODES, default=DEFAULT_CODE)
    args = parser.parse_args()

    code = make_code(args.k, args.r, args.code)
    stripes = args.batch // args.k
    print(
        f"code={args.code} k={args.k} r={args.r} batch={stripes * args.k} "
        f"(stripes={stripes}) width={WIDTH} items/run={args.items} best of {args.repeats}, "
        f"numpy {np.__version__}, 1 thread"
    )
    print(f"{'operation':<14} {'ms/batch':>9} {'Mitems/s':>9} {'GB/s in':>8}")
    for label, seconds, rate in measure(code, args.batch, args.items, args.repeats):
        gbps = rate * WIDTH * 8 / 1e9
        print(f"{label:<14} {seconds * 1e3:>9.3f} {rate / 1e6:>9.2f} {gbps:>8.2f}")


if __name__ == "__main__":
    main()
