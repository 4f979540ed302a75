"""Peak memory of streaming a large gzip HIGGS file through ``datasets.open_batches``.

Writes ``--rows`` rows (default 2 million, about 0.5 GB compressed) of the seeded HIGGS
stream as ``HIGGS.csv.gz`` in a temporary directory (or uses ``--file``), then streams it as
the source worker does: ``open_batches`` with ``dataset.path`` set, batches of ``--batch``
rows, every row touched. Writing and streaming each run in a fresh process started by this
one, which imports nothing heavy: Linux carries a parent's peak RSS over ``fork``/``exec``
into the child's ``ru_maxrss``. The streaming process reports its own peak resident set size
(``resource.getrusage``: ``ru_maxrss``; and ``VmHWM`` from ``/proc/self/status`` where there
is one), its size before the first batch (interpreter, numpy, pandas), the rows read and the
rate. The target is a peak under 300 MB whatever the file's size: the file is read in blocks of
a few MB, never whole.

    python benchmarks/dataset_memory.py [--rows 2000000] [--batch 12000] [--file PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def high_water_mb() -> float | None:
    """``VmHWM`` of this process in MB (Linux only), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write(path: Path, rows: int) -> None:
    from streamlec_cli import datasets

    datasets.write_synthetic("higgs", rows, path, seed=1)


def stream(path: Path, batch: int) -> dict:
    """Stream the file as the source does; runs in the measured (child) process."""
    from streamlec_cli import datasets
    from streamlec_cli.spec import DatasetSpec

    spec = DatasetSpec("higgs", items=10**12, path=str(path))
    before = peak_rss_mb()
    start = time.perf_counter()
    rows = positives = 0
    for rows_batch in datasets.open_batches(spec, batch):
        rows += rows_batch.shape[0]
        positives += int(rows_batch[:, 0].sum())
    seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "positive_rate": positives / max(rows, 1),
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "vm_hwm_mb": high_water_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=12_000)
    parser.add_argument("--file", type=Path, default=None, help="Stream this file instead.")
    parser.add_argument("--child", choices=("write", "stream"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "write":
        write(args.file, args.rows)
        return
    if args.child == "stream":
        print(json.dumps(stream(args.file, args.batch)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "HIGGS.csv.gz"
            start = time.perf_counter()
            child(["write", "--file", str(path), "--rows", str(args.rows)])
            size = path.stat().st_size / 2**20
            took = time.perf_counter() - start
            print(f"wrote {args.rows} rows to {path} ({size:.0f} MB) in {took:.0f} s")
        result = json.loads(child(["stream", "--file", str(path), "--batch", str(args.batch)]))
    print(
        f"streamed {result['rows']} rows in batches of {args.batch}: "
        f"{result['seconds']} s ({result['rows_per_s']} rows/s), "
        f"label mean {result['positive_rate']:.4f}"
    )
    print(
        f"peak RSS {result['peak_rss_mb']} MB (getrusage; VmHWM {result['vm_hwm_mb']} MB; "
        f"before the first batch: {result['rss_before_mb']} MB; target < 300 MB)"
    )


def child(arguments: list[str]) -> str:
    """Run this script in a fresh process; its standard output."""
    command = [sys.executable, __file__, "--child", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


if __name__ == "__main__":
    main()
