"""Acting on a live run from another shell: ``streamlec kill-worker``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ..results import append_event
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
    pid = run.workers[worker]["pid"]
    append_event(
        Path(run.run_dir), time.time(), worker, "kill", f"SIG{sig} pid {pid} (kill-worker)"
    )
    try:
        os.kill(pid, getattr(signal, f"SIG{sig}"))
    except ProcessLookupError:
        msg = f"worker {worker!r} (pid {pid}) of run {run.run!r} has already exited"
        raise KillError(msg) from None
    return f"sent SIG{sig} to {worker} (pid {pid}) of run {run.run}"
