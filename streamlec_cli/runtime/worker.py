"""Entry point of one worker process: ``streamlec worker SPEC WORKER [--run-dir DIR]
[--incarnation N] [--startup-timeout S]``.

The local launcher starts every worker this way, and a user can start any worker by hand
on another host (with ``transport: tcp`` and ``hosts`` in the spec). A warm spare
(``standby-N``) imports everything, then reads its slot from its standard input as one line
``"<worker> <incarnation>"`` (an empty line or end of file: no slot will come, it ends); while
it waits it says hello and heartbeats (incarnation 0) to the supervisor, which replaces a
spare that falls silent (stopped, hung) before it is needed.

A worker started by hand (no supervisor in its environment) creates its run directory and
stops on Ctrl-C (exit code 130) or SIGTERM (143). When it is the sink it writes the run's
``spec.yaml`` and ``meta.json`` at its start and ``summary.json`` at its end (``supervised:
false``), as a supervisor would, so ``streamlec plot`` and ``streamlec report`` read the run
like any other, and it tells the source and the processors to stop however it ends.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .lifeline import die_with_parent
from .startup import DEFAULT_STARTUP_TIMEOUT

if TYPE_CHECKING:  # the launcher imports this module: ``ps`` must not pay for the spec's
    from ..spec import Spec
    from .plan import Plan

SUPERVISOR_ENV = "STREAMLEC_SUPERVISOR_PID"
STANDBY = "standby"  # a warm spare's name is "standby-N" until it is given a slot
#: A directory: every worker runs under cProfile and writes ``<worker>-<pid>.prof`` there at exit.
PROFILE_ENV = "STREAMLEC_PROFILE"


def is_spare(name: str) -> bool:
    """Whether ``name`` is a warm spare's (``standby`` or ``standby-N``)."""
    return name == STANDBY or name.startswith(f"{STANDBY}-")


def _die_with_supervisor() -> None:
    """A worker started by a supervisor ends when the supervisor ends, however it ends
    (Linux: PR_SET_PDEATHSIG); elsewhere the staged shutdown has to do."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor:
        return  # started by hand: it lives until STOP or a signal
    if not supervisor.isdigit():
        return  # supervised from another host: the launcher's step or channel ends it
    if not die_with_parent(signal.SIGKILL):
        return
    if os.getppid() != int(supervisor):  # it ended before we could ask
        os._exit(1)


def supervised() -> bool:
    """Whether a supervisor started this process (else a user did, by hand)."""
    return bool(os.environ.get(SUPERVISOR_ENV))


def run_worker(
    spec: Spec,
    name: str,
    run_dir: Path,
    incarnation: int | None = None,
    startup_timeout: float | None = DEFAULT_STARTUP_TIMEOUT,
) -> None:
    """Run worker ``name`` until it is told to stop; ``incarnation`` numbers this start of
    its slot (the supervisor counts 1, 2, ...; by hand: the process's pid). A worker whose
    peers have not come within ``startup_timeout`` seconds raises ``StartupTimeout``."""
    incarnation = os.getpid() if incarnation is None else incarnation
    if not supervised():
        (Path(run_dir) / "logs").mkdir(parents=True, exist_ok=True)
    args = (spec, name, Path(run_dir), incarnation, startup_timeout)
    profile_dir = os.environ.get(PROFILE_ENV)
    if not profile_dir:
        _run_worker(*args)
        return
    import cProfile

    profiler = cProfile.Profile(time.thread_time)  # CPU of this thread, not wall time
    try:
        profiler.runcall(_run_worker, *args)
    finally:
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(Path(profile_dir) / f"{name}-{os.getpid()}.prof")


def _exit_with(code: int):
    """A signal handler that ends the worker with ``code`` (its ``finally`` blocks run)."""

    def stop(*_) -> None:
        raise SystemExit(code)

    return stop


def _run_worker(
    spec: Spec, name: str, run_dir: Path, incarnation: int, startup_timeout: float | None
) -> None:
    # Under a supervisor Ctrl-C is the supervisor's; a worker stops on STOP, SIGTERM or
    # SIGKILL. By hand, Ctrl-C in the worker's terminal stops it, with the shell's codes.
    if supervised():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_with(0))
    else:
        signal.signal(signal.SIGINT, _exit_with(130))
        signal.signal(signal.SIGTERM, _exit_with(143))
    _die_with_supervisor()
    from . import wire
    from .plan import make_plan

    plan = make_plan(spec, run_dir)
    wire.use_run(plan.token)
    from .emulate import join_cpu_group

    role = _role(name)
    join_cpu_group()  # on an emulated host: its CPU quota from here on
    if is_spare(name):
        # A warm spare: everything imported, waiting for the supervisor to name its slot.
        assigned = _wait_for_slot(plan, name)
        if not assigned:
            return
        spare = name
        name, incarnation = assigned[0], int(assigned[1])
        print(f"pid {os.getpid()}: {spare} becomes {name} ({incarnation})", flush=True)
        role(plan, name, incarnation, startup_timeout)
        return
    role(plan, name, incarnation, startup_timeout)


def _role(name: str):
    """What runs worker ``name`` (its modules imported): ``role(plan, name, incarnation,
    startup_timeout)``."""
    if name == "source":
        from .source import run_source

        return lambda plan, name, incarnation, timeout: run_source(plan, startup_timeout=timeout)
    if name.startswith("storage-"):
        from .replica import run_storage

        return lambda plan, name, incarnation, timeout: run_storage(plan, name, timeout)
    if name == "sink":
        from .sink import run_sink

        def sink(plan: Plan, name: str, incarnation: int, timeout: float | None) -> None:
            if supervised():
                run_sink(plan, startup_timeout=timeout)
            else:
                _run_sink_by_hand(plan, timeout)

        return sink
    from .processor import run_processor

    return run_processor


def _run_sink_by_hand(plan: Plan, startup_timeout: float | None) -> None:
    """The sink without a supervisor: it writes the run's header and summary itself."""
    from .sink import run_sink
    from .startup import StartupTimeout, tell
    from .summary import Observed, summarise, write_meta, write_resolved_spec
    from .wire import CannotListen

    run_dir = plan.run_dir
    if not (run_dir / "spec.yaml").exists():  # never overwrite a file the user keeps there
        write_resolved_spec(plan.spec, run_dir / "spec.yaml")
    write_meta(plan.spec, run_dir)
    interrupted = False
    error = None
    code = 0  # the worker's own exit code, which its summary.json records
    try:
        run_sink(plan, startup_timeout=startup_timeout, by_hand=True)
    except (StartupTimeout, CannotListen) as exc:
        error = str(exc)
        raise
    except (SystemExit, KeyboardInterrupt) as exc:  # Ctrl-C (130) or SIGTERM (143)
        interrupted = True
        code = exc.code if isinstance(exc, SystemExit) else 130
        raise
    finally:
        seen = Observed(supervised=False, exit_code=1 if error else code)
        summary = summarise(plan, run_dir, seen, interrupted, error)
        where = run_dir / "summary.json"
        if summary["complete"]:
            ref = summary["reference"]
            match = "matches" if ref.get("matches") else "DIFFERS from"
            tell("sink", f"the model {match} the single-process reference; summary in {where}")
        elif error is None:  # a give-up or a taken port is told by the command line
            tell("sink", f"stopped before the end of the stream; results so far in {where}")
    if summary["complete"] and (summary["items_lost"] or not summary["reference"].get("matches")):
        from .console import EXIT_LOST

        raise SystemExit(EXIT_LOST)  # as `streamlec run` exits: a script sees the loss


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
