"""Entry point of one worker process: ``streamlec worker SPEC WORKER [--run-dir DIR]
[--incarnation N]``.

The local launcher starts every worker this way, and a user can start any worker by hand
on another host (with ``transport: tcp`` and ``hosts`` in the spec). A warm spare
(``standby-N``) imports everything, then reads its slot from its standard input as one line
``"<worker> <incarnation>"`` (an empty line or end of file: no slot will come, it ends); while
it waits it says hello and heartbeats (incarnation 0) to the supervisor, which replaces a
spare that falls silent (stopped, hung) before it is needed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import sys
import time
from pathlib import Path

from ..spec import Spec
from .plan import Plan, make_plan

SUPERVISOR_ENV = "STREAMLEC_SUPERVISOR_PID"
STANDBY = "standby"  # a warm spare's name is "standby-N" until it is given a slot
#: A directory: every worker runs under cProfile and writes ``<worker>-<pid>.prof`` there at exit.
PROFILE_ENV = "STREAMLEC_PROFILE"
_PR_SET_PDEATHSIG = 1


def is_spare(name: str) -> bool:
    """Whether ``name`` is a warm spare's (``standby`` or ``standby-N``)."""
    return name == STANDBY or name.startswith(f"{STANDBY}-")


def _die_with_supervisor() -> None:
    """A worker started by a supervisor ends when the supervisor ends, however it ends
    (Linux: PR_SET_PDEATHSIG); elsewhere the staged shutdown has to do."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return  # started by hand: it lives until STOP or a signal
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(supervisor):  # it ended before we could ask
        os._exit(1)


def run_worker(spec: Spec, name: str, run_dir: Path, incarnation: int | None = None) -> None:
    """Run worker ``name`` until it is told to stop; ``incarnation`` numbers this start of
    its slot (the supervisor counts 1, 2, ...; by hand: the process's pid)."""
    incarnation = os.getpid() if incarnation is None else incarnation
    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir:
        _run_worker(spec, name, run_dir, incarnation)
        return
    import cProfile

    profiler = cProfile.Profile(time.thread_time)  # CPU of this thread, not wall time
    try:
        profiler.runcall(_run_worker, spec, name, run_dir, incarnation)
    finally:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(Path(profile_dir) / f"{name}-{os.getpid()}.prof")


def _run_worker(spec: Spec, name: str, run_dir: Path, incarnation: int) -> None:
    # Ctrl-C belongs to the supervisor; a worker stops on STOP, SIGTERM or SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    _die_with_supervisor()
    plan = make_plan(spec, run_dir)
    if is_spare(name):
        # A warm spare: everything imported, waiting for the supervisor to name its slot.
        from .processor import run_processor

        assigned = _wait_for_slot(plan, name)
        if not assigned:
            return
        spare = name
        name, incarnation = assigned[0], int(assigned[1])
        print(f"pid {os.getpid()}: {spare} becomes {name} ({incarnation})", flush=True)
        run_processor(plan, name, incarnation)
        return
    if name == "source":
        from .source import run_source

        run_source(plan)
    elif name == "sink":
        from .sink import run_sink

        run_sink(plan)
    else:
        from .processor import run_processor

        run_processor(plan, name, incarnation)


def _wait_for_slot(plan: Plan, name: str) -> list[str]:
    """A spare's wait: heartbeats to the supervisor until its slot comes on standard input;
    the line's words (none: no slot will come)."""
    import zmq

    from . import wire

    ctx = zmq.Context()
    try:
        sock = wire.dealer(ctx, plan.address("supervisor"), name)
        beat = {"pid": os.getpid(), "incarnation": 0}
        wire.send(sock, wire.HELLO, beat, block=False)
        interval = plan.spec.runtime.heartbeat_interval
        while not select.select([sys.stdin], [], [], interval)[0]:
            wire.send(sock, wire.HEARTBEAT, beat, block=False)
    finally:
        ctx.destroy(linger=0)
    return sys.stdin.readline().split()
