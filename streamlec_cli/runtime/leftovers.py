"""What a supervisor that died without cleaning up (SIGKILL, a crash) left behind.

Its workers die with it (``worker.py`` asks for a parent-death signal), but its ipc socket
files, its registry entry, the staged rows (``stream.f64``) and the write-ahead logs
(``wal.bin``, ``storage-*.bin``) stay: the next ``streamlec`` command finds the entry of a
dead supervisor and removes them, says so in one line, and writes a ``summary.json`` marked as
written after the fact (``complete: false``) when the run has none, so that the run is not
taken for one that finished. Results (summary, events, batches, logs, model) are never
touched. The emulated hosts of a dead supervisor (namespaces, links, bridge, qdiscs, cgroups;
``emulate.py``) are found by the owner's pid in their names, whether or not its registry entry
survived, and removed by ``clean_emulations``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from ..datasets import STAGED_FILE
from ..results import write_json
from . import wire
from .registry import LiveRun
from .summary import audit_batches

WAL_FILE = "wal.bin"
STORAGE_LOGS = "storage-*.bin"  # the storage workers' logs (``replica.LOG_FILES``)


def clean_up(run: LiveRun, command: str) -> str:
    """Remove what the dead supervisor of ``run`` left behind; returns what was removed."""
    run_dir = Path(run.run_dir)
    removed = []
    workers = _kill_orphans(run)
    if workers:
        removed.append(f"{workers} worker(s) still running, SIGKILLed")
    sockets = _remove_sockets(run_dir)
    if sockets:
        removed.append(f"{sockets} socket(s)")
    logs = [(path.name, "write-ahead log") for path in sorted(run_dir.glob(STORAGE_LOGS))]
    for name, what in ((STAGED_FILE, "staged rows"), (WAL_FILE, "write-ahead log"), *logs):
        size = _remove(run_dir / name)
        if size is not None:
            removed.append(f"{_size(size)} {what} ({name})")
    run.remove()
    removed.append("registry entry")
    if _write_summary_after_the_fact(run, command):
        removed.append("summary.json written (complete: false)")
    return f"cleaned up after run {run.run} (supervisor pid {run.supervisor} gone): " + ", ".join(
        removed
    )


def clean_emulations() -> str | None:
    """Remove the emulated clusters whose owner died; one line each saying so, or None."""
    from .emulate import clean_leftovers

    return clean_leftovers()


def _kill_orphans(run: LiveRun) -> int:
    """Workers of the run still alive (where the parent-death signal is not available).
    A pid counts only while its ``--run-dir`` is the run's directory: pids are reused."""
    count = 0
    for info in run.workers.values():
        pid = int(info.get("pid", 0))
        if pid > 0 and _run_dir_of(pid) == Path(run.run_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                count += 1
    return count


def _run_dir_of(pid: int) -> Path | None:
    """The ``--run-dir`` of a worker process, made absolute (None: not a worker, or gone)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    if "worker" not in argv or "--run-dir" not in argv[:-1]:
        return None
    return Path(os.path.normpath(Path(cwd) / argv[argv.index("--run-dir") + 1]))


def _remove_sockets(run_dir: Path) -> int:
    folder = wire.socket_dir(run_dir)
    count = sum(1 for _ in folder.glob("*")) if folder.is_dir() else 0
    wire.remove_socket_files(run_dir)
    return count


def _remove(path: Path) -> int | None:
    """Delete ``path``; its size, or None when there was none."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return None
    return size


def _size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _write_summary_after_the_fact(run: LiveRun, command: str) -> bool:
    """A ``summary.json`` that says only what the run directory shows: the run did not
    finish, how many items had their results written (``batches.csv``), and that nobody
    saw how it ended. None is written where one exists or the directory is gone."""
    run_dir = Path(run.run_dir)
    path = run_dir / "summary.json"
    if path.exists() or not run_dir.is_dir():
        return False
    meta = {}
    with contextlib.suppress(OSError, ValueError):
        meta = json.loads((run_dir / "meta.json").read_text())
    audit = audit_batches(run_dir / "batches.csv")
    spec_name, _, run_id = run.run.partition("/")
    summary = {
        "spec_name": meta.get("spec_name", spec_name),
        "run_id": meta.get("run_id", run_id),
        "complete": False,
        "error": (
            f"the supervisor (pid {run.supervisor}) ended without writing a summary (killed "
            f"or crashed); this one was written after the fact by `streamlec {command}`, "
            "from the run directory alone: failures, memory, CPU and the reference were not "
            "recorded"
        ),
        "exit_code": None,
        "written_after_the_fact": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "items_in": None,
        "items_out": audit["items_out"],
        "items_lost": None,
        "items_duplicated": audit["items_duplicated"],
        "commit": meta.get("commit"),
        "run_dir": str(run_dir),
    }
    write_json(path, summary)
    return True
