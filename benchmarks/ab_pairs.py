"""Before/after throughput of one spec, in interleaved pairs on the same machine.

Each pair runs the spec once with the "before" installation and once with the "after" one
(alternating which goes first), so a drift in the machine's speed touches both alike; it
prints every pair's throughputs and ratio, then the median ratio after / before.

    python benchmarks/ab_pairs.py BEFORE_PYTHON AFTER_PYTHON SPEC.yaml [--pairs 5]
        [--set key=value]... [--out DIR]

BEFORE_PYTHON and AFTER_PYTHON are interpreters of two virtual environments with the two
versions of streamlec installed (e.g. ``pip install .`` of each checkout). The spec should
expand to one run (use ``--set`` to pin a sweep); every run's results stay under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path


def run_once(python: str, spec: str, overrides: list[str], out: Path) -> float:
    before = set(out.rglob("summary.json"))
    args = [python, "-m", "streamlec_cli", "run", spec, "--out", str(out), "--quiet"]
    for assignment in overrides:
        args += ["--set", assignment]
    subprocess.run(args, check=True, capture_output=True, text=True)
    (summary,) = set(out.rglob("summary.json")) - before
    return json.loads(summary.read_text())["throughput_items_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("spec")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ab-pairs-"))
    ratios = []
    for pair in range(args.pairs):
        order = ("before", "after") if pair % 2 == 0 else ("after", "before")
        got = {}
        for which in order:
            python = args.before if which == "before" else args.after
            got[which] = run_once(python, args.spec, args.overrides, out / which / str(pair))
        ratio = got["after"] / got["before"]
        ratios.append(ratio)
        print(
            f"pair {pair + 1}: before {got['before'] / 1e6:.3f}M items/s, "
            f"after {got['after'] / 1e6:.3f}M items/s, after/before {ratio:.3f}",
            flush=True,
        )
    print(f"median after/before over {len(ratios)} pairs: {statistics.median(ratios):.3f}")
    print(f"results under {out}")


if __name__ == "__main__":
    main()
