"""Live runs on this machine, for ``streamlec ps`` and ``streamlec kill-worker``.

Each supervisor keeps one JSON file per live run in the registry directory
(``$STREAMLEC_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/streamlec``, else
``/tmp/streamlec-<uid>``): the run's name, directory, the supervisor's pid and, for every
worker, its launcher's kind, host, pid, incarnation and state (a handle's ``record()`` plus
``state``; ``launch.handle_from_record`` turns it back into a handle). It is rewritten
atomically on every change and removed when the run ends; a file whose supervisor is gone
is stale: ``live_runs`` ignores it, and the next ``streamlec`` command cleans up after that
run (``leftovers.py``) and removes it. ``live_state`` adds what the registry cannot know: a
worker stopped by SIGSTOP shows as ``stopped``, read live through its handle.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .launch import handle_from_record


def registry_dir() -> Path:
    base = os.environ.get("STREAMLEC_RUNTIME_DIR")
    if base:
        path = Path(base)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "streamlec"
    else:
        path = Path(f"/tmp/streamlec-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LiveRun:
    run: str  # "<spec name>/<run id>"
    run_dir: str
    supervisor: int
    workers: dict[str, dict]  # name -> {"launcher", "host", "pid", "incarnation", "state"}
    setting: str = ""  # the spec's setting the run is of (kill-worker accepts it as RUN)

    @property
    def path(self) -> Path:
        return registry_dir() / (self.run.replace("/", "__") + ".json")

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=1))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _entries() -> list[LiveRun]:
    runs = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            runs.append(LiveRun(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return runs


def live_runs() -> list[LiveRun]:
    """Runs whose supervisor is alive."""
    return [run for run in _entries() if _alive(run.supervisor)]


def stale_runs() -> list[LiveRun]:
    """Entries whose supervisor is gone without removing them (killed, crashed)."""
    return [run for run in _entries() if not _alive(run.supervisor)]


def live_state(worker: str, record: dict) -> str:
    """A worker's state for ``ps``: ``stopped`` while it is stopped, else the registry's (a
    slowed worker's duty cycle stops it most of the time: it stays ``slowed``)."""
    if record.get("state", "").startswith("slowed"):
        return record["state"]
    try:
        stopped = handle_from_record(worker, record).stopped()
    except LookupError:
        stopped = False
    return "stopped" if stopped and record.get("state") != "exited" else record["state"]
