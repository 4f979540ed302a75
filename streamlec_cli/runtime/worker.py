"""Entry point of one worker process: ``streamlec worker SPEC WORKER [--run-dir DIR]``.

The supervisor starts every local worker this way, and a user can start any worker by hand
on another host (with ``transport: tcp`` and ``hosts`` in the spec).
"""

from __future__ import annotations

import signal
from pathlib import Path

from ..spec import Spec
from .plan import make_plan


def run_worker(spec: Spec, name: str, run_dir: Path) -> None:
    # Ctrl-C belongs to the supervisor; a worker stops on STOP, SIGTERM or SIGKILL.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    plan = make_plan(spec, run_dir)
    if name == "source":
        from .source import run_source

        run_source(plan)
    elif name == "sink":
        from .sink import run_sink

        run_sink(plan)
    else:
        from .processor import run_processor

        run_processor(plan, name)
