"""Items per second of the seeded generators, single-threaded: can the source keep up?

For each dataset, three ways of drawing ``--items`` rows, as the harness does:

* ``batches B``  -- ``datasets.batches(name, items, B)``: the source's path (``open_batches``
  without a file), for B = 1000 and the specs' default 12000;
* ``generate``   -- ``datasets.generate(name, start, stop)`` in ranges of 100000 rows (random
  access, e.g. tests and the reference).

Each figure is the best of ``--repeats`` runs. ``--clock cpu`` (the default) counts the
process's CPU time, so other programs on a shared machine do not count against the
generator; ``--clock wall`` counts elapsed time. BLAS and OpenMP are pinned to one thread
before numpy is imported (the generators use neither). The target is above 5 million items/s.

    python benchmarks/generator_speed.py [--items 2000000 --repeats 5 --clock cpu]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from streamlec_cli import datasets  # noqa: E402

RANGE = 100_000


def best_rate(run: Callable[[], int], repeats: int, clock: Callable[[], float]) -> float:
    """Items per second of the fastest of ``repeats`` calls of ``run`` (it returns its items)."""
    run()  # warm up: the lookup tables are built on first use
    best = float("inf")
    items = 0
    for _ in range(repeats):
        start = clock()
        items = run()
        best = min(best, clock() - start)
    return items / best


def through_batches(name: str, items: int, batch: int) -> Callable[[], int]:
    def run() -> int:
        return sum(rows.shape[0] for rows in datasets.batches(name, items, batch, seed=1))

    return run


def through_generate(name: str, items: int) -> Callable[[], int]:
    def run() -> int:
        return sum(
            datasets.generate(name, start, min(start + RANGE, items), seed=1).shape[0]
            for start in range(0, items, RANGE)
        )

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"{args.items} items per run, best of {args.repeats}, {args.clock} time")
    print(f"{'dataset':<8} {'path':<16} {'M items/s':>10}")
    for name in datasets.DATASETS:
        ways = {
            "batches 1000": through_batches(name, args.items, 1000),
            "batches 12000": through_batches(name, args.items, 12000),
            "generate": through_generate(name, args.items),
        }
        for label, run in ways.items():
            rate = best_rate(run, args.repeats, clock)
            print(f"{name:<8} {label:<16} {rate / 1e6:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
