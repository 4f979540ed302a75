"""Acting on a live run from another shell: ``streamlec kill-worker``.

The signal goes through the handle of the worker's registry entry (``launch.handle_from_record``),
so it reaches the worker wherever its launcher put it. Every signal sent is first written to
the run's ``events.csv`` as a ``kill`` event whose detail names it (``SIGSTOP pid 123
(kill-worker)``): the supervisor reads it back to tell a failure the user caused, and with
which signal, from a crash (``user_signal``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ..results import append_event, read_events
from .launch import handle_from_record
from .registry import live_runs


class KillError(LookupError):
    """The run or worker named does not exist; the message lists what does."""


_BY_USER = "(kill-worker)"


def user_signal(run_dir: Path, pid: int) -> tuple[str, float] | None:
    """The signal ``kill-worker`` last sent to ``pid`` and when (None: none, or the last one
    was SIGCONT, so the worker was resumed and what it does next is its own)."""
    sent = [
        (e["detail"].split()[0], e["time"])
        for e in read_events(run_dir)
        if e["event"] == "kill"
        and _BY_USER in e["detail"]
        and f" pid {pid} " in " " + e["detail"] + " "
    ]
    return sent[-1] if sent and sent[-1][0] != "SIGCONT" else None


def _killable(worker: str) -> bool:
    """Whether SIGKILL is a fault the run absorbs: a processor's (replaced in its slot) or a
    warm spare's (``standby-N``, replaced by a new spare), never the source's or the sink's."""
    return worker.startswith(("processor-", "standby"))


def signal_name(code: int | None) -> str | None:
    """``SIGSEGV`` for an exit status of -11; None for an exit code or a living process."""
    if code is None or code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


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
    if not _killable(worker) and sig == "KILL":
        msg = (
            f"the {worker} cannot be SIGKILLed: that ends the run instead of testing its fault "
            "tolerance; only processors and warm spares can (choose one of "
            f"{', '.join(w for w in run.workers if _killable(w))}), and the {worker} takes "
            "--signal STOP, CONT or TERM"
        )
        raise KillError(msg)
    handle = handle_from_record(worker, run.workers[worker])
    where = f"pid {handle.pid} on {handle.host}"
    detail = f"SIG{sig} pid {handle.pid} {_BY_USER}"
    if sig != "CONT":  # written first: the supervisor looks for it as soon as the worker ends
        append_event(Path(run.run_dir), time.time(), worker, "kill", detail)
    if not handle.signal(getattr(signal, f"SIG{sig}")):
        msg = f"worker {worker!r} ({where}) of run {run.run!r} has already exited"
        raise KillError(msg)
    if sig == "CONT":  # only a worker that was resumed counts as resumed
        append_event(Path(run.run_dir), time.time(), worker, "kill", detail)
    return f"sent SIG{sig} to {worker} ({where}) of run {run.run}"
