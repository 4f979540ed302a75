"""Checks of the output directory before any run starts: it is a directory, it is writable,
and it has room for what the runs will write.

A run that finds out mid-stream that its disk is read-only or full fails after its workers
started and part of its results were written; these checks say so before the first process
starts. The estimate of what a run writes is deliberately simple (per item: 8 bytes of
prediction, 4 of latency; per batch: a CSV row; staged rows and the write-ahead log while
the run lasts), and a disk that fills anyway mid-run still fails the run with a clear error.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from pathlib import Path

from .. import datasets
from ..spec import Spec
from .plan import make_plan

PROBE_NAME = ".streamlec-probe"
#: Bytes a run writes besides its per-item and per-batch files: logs, events, meta, summary.
FIXED_BYTES = 1 << 20
BATCH_ROW_BYTES = 256 + 128  # one row of batches.csv and one of batch_metrics.csv
TIMELINE_BYTES_PER_S = 10 * 128  # ten rows of timeline.csv per second of stream
ITEM_BYTES = 8 + 4 + 1  # predictions.f64, latency.f32 and labels.u8


class OutputError(RuntimeError):
    """The output directory cannot take the results; the message says why and what to do."""


def check_output(out: Path, runs: list[Spec]) -> None:
    """Create ``out`` if needed, prove a file can be written and synced there, and check that
    its disk has room for every run's results plus the largest run's temporary files."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out '{out}' is a file, not a directory: give a directory (created if missing)"
        raise OutputError(msg)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"--out '{out}' cannot be created: {exc.strerror or exc}; choose another directory"
        raise OutputError(msg) from None
    _probe(out)
    need = sum(results_bytes(spec) for spec in runs) + max(
        (temporary_bytes(spec) for spec in runs), default=0
    )
    free = shutil.disk_usage(out).free
    if need > free:
        msg = (
            f"--out '{out}' has {_size(free)} free but the {len(runs)} run(s) need about "
            f"{_size(need)} (8 bytes of prediction and 4 of latency per item, staged rows and "
            "the write-ahead log while a run lasts): free some space, choose another directory "
            "or lower dataset.items"
        )
        raise OutputError(msg)


def _probe(out: Path) -> None:
    """Write, fsync and remove a small file in ``out``: a read-only or failing disk shows."""
    probe = out / f"{PROBE_NAME}-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"streamlec\n" * 400)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        msg = (
            f"--out '{out}' is not writable: {exc.strerror or exc}; choose a directory you can "
            "write to (--out)"
        )
        raise OutputError(msg) from None
    probe.unlink()


def results_bytes(spec: Spec) -> int:
    """About what a run leaves in its directory."""
    items, batches = spec.dataset.items, -(-spec.dataset.items // spec.batch)
    seconds = items / spec.rate if spec.rate else 0.0
    return (
        FIXED_BYTES
        + ITEM_BYTES * items
        + BATCH_ROW_BYTES * batches
        + int(TIMELINE_BYTES_PER_S * seconds)
    )


def temporary_bytes(spec: Spec) -> int:
    """About what a run writes and removes at its end: staged rows, the write-ahead log (one
    copy per storage worker with ``log: storage``: here they all share this disk)."""
    items = spec.dataset.items
    width = 1 + datasets.feature_count(spec.dataset.name)
    staged = 8 * width * items if spec.dataset.stage else 0
    plan = make_plan(spec, Path("."))
    copies = max(1, len(spec.storage))
    wal = 8 * plan.algorithm.width * items * copies if plan.scheme.replay is not None else 0
    return staged + wal


def _size(count: int) -> str:
    """Bytes for a person: ``1.5 MB``, ``320.0 kB``, ``12 bytes``."""
    if count < 1000:
        return f"{count} bytes"
    exponent = min(3, int(math.log10(count) // 3))
    return f"{count / 1000**exponent:,.1f} {('kB', 'MB', 'GB')[exponent - 1]}"
