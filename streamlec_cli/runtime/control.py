"""Acting on a live run from another shell: ``streamlec kill-worker``.

The signal goes through the handle of the worker's registry entry (``launch.handle_from_record``),
so it reaches the worker wherever its launcher put it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ..results import append_event
from .launch import handle_from_record
from .registry import live_runs


class KillError(LookupError):
    """The run or worker named does not exist; the message lists what does."""


def _listing(runs) -> str:
    return "; ".join(f"{run.run}: {', '.join(run.workers)}" for run in runs)


def kill_worker(run_name: str | None, worker: str, sig: str = "KILL") -> str:
    """Signal one worker of a live run; returns what was done."""
    runs = live_runs()
    if not runs:
        msg = "there is no live run on this machine (start one with `streamlec run SPEC.yaml`)"
        raise KillError(msg)
    if run_name is None:
        if len(runs) > 1:
            msg = f"{len(runs)} runs are live, name one: {_listing(runs)}"
            raise KillError(msg)
        run = runs[0]
    else:
        matches = [
            r
            for r in runs
            if r.run == run_name
            or r.run.endswith("/" + run_name)
            or r.run.split("/")[0] == run_name
            or r.setting == run_name
        ]
        if len(matches) != 1:
            what = "is not a live run" if not matches else "matches several live runs"
            msg = f"run {run_name!r} {what}; live runs: {_listing(runs)}"
            raise KillError(msg)
        run = matches[0]
    if worker not in run.workers:
        msg = f"worker {worker!r} is not part of run {run.run!r}: its workers are " + ", ".join(
            run.workers
        )
        raise KillError(msg)
    if not worker.startswith("processor-") and sig == "KILL":
        msg = (
            f"worker {worker!r} is the run's {worker}: only processors can be killed "
            f"(choose one of {', '.join(w for w in run.workers if w.startswith('processor-'))})"
        )
        raise KillError(msg)
    handle = handle_from_record(worker, run.workers[worker])
    where = f"pid {handle.pid} on {handle.host}"
    append_event(
        Path(run.run_dir), time.time(), worker, "kill", f"SIG{sig} pid {handle.pid} (kill-worker)"
    )
    if not handle.signal(getattr(signal, f"SIG{sig}")):
        msg = f"worker {worker!r} ({where}) of run {run.run!r} has already exited"
        raise KillError(msg)
    return f"sent SIG{sig} to {worker} ({where}) of run {run.run}"
