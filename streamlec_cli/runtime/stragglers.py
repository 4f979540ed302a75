"""Slow processors: the spec's ``stragglers`` made real by CPU throttling.

A slowdown of s holds a worker to about 1/s of the CPU it would get, from ``from`` to ``to``
seconds into the stream (the times failures' ``at`` counts from):

* on an emulated host with a CPU quota, the host's quota is divided by s for that time: the
  host is the slow machine, and every process on it (a spare too) runs slower;
* anywhere else, a stop/continue duty cycle of the worker's current incarnation: it runs for
  1/s of every ``PERIOD`` and is stopped (SIGSTOP) for the rest, as the kernel's CFS bandwidth
  controller holds a process to a quota. The period is short beside the failure timeout, so a
  slowed processor still beats and is never fenced for it.

A slowed processor stays in the run: its outputs come late, and a scheme that waits for every
output (``none``, ``reactive``) waits with them, while EC's batches are final at any k of k+r
outputs (the commit core stops waiting its grace for a slot that missed the batch before).
Everything is undone at the end of each window and when the run stops. A worker that
``kill-worker`` stopped (a hang) is left stopped: the duty cycle never continues it, so failure
detection sees the hang and fences it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..spec import Straggler
from .launch import Handle

PERIOD = 0.1  # seconds: one run-then-stop cycle (the kernel's default CFS period)
MIN_QUOTA_US = 1000  # the smallest quota the kernel accepts


class Throttle:
    """Applies the stragglers' slowdowns from a thread of its own; see the module docstring.

    ``handle_of(worker)``: the worker's current incarnation (None while it has none);
    ``host_group(host)``: the CPU group of an emulated host with a quota, else None;
    ``event(event, detail, worker)``: a line in the run's events;
    ``hung(pid)``: whether ``kill-worker`` stopped that process (the cycle leaves it alone)."""

    def __init__(
        self,
        stragglers: tuple[Straggler, ...],
        handle_of: Callable[[str], Handle | None],
        host_group: Callable[[str], Path | None],
        event: Callable[[str, str, str], None],
        hung: Callable[[int], bool] = lambda pid: False,
    ) -> None:
        self.stragglers = stragglers
        self.handle_of = handle_of
        self.host_group = host_group
        self.event = event
        self.hung = hung
        #: What was done, one entry per window: worker, slowdown, how, start and end (wall).
        self.applied: list[dict] = []
        #: Set when a window begins or ends (``slowed`` changes).
        self.changed = threading.Event()
        self._quotas: dict[int, tuple[Path, str]] = {}  # window -> (quota file, its old value)
        self._cycled: set[int] = set()  # windows held by the duty cycle
        self._stopped: set[Handle] = set()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def slowed(self) -> dict[str, float]:
        """Worker -> the slowdown it is held to now."""
        return {e["worker"]: e["slowdown"] for e in list(self.applied) if e["end"] is None}

    def start(self, started_at: float) -> None:
        """Begin counting the windows from ``started_at`` (the stream's start, wall clock)."""
        if self._thread is None and self.stragglers:
            self._thread = threading.Thread(
                target=self._run, args=(started_at,), name="throttle", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """End every slowdown now (the run stops): continue what is stopped, restore quotas."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * PERIOD + 1.0)
        for index in [*self._quotas, *self._cycled]:
            self._end(index)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self, started_at: float) -> None:
        while not self._halt.is_set():
            elapsed = time.time() - started_at
            for index, straggler in enumerate(self.stragglers):
                held = index in self._quotas or index in self._cycled
                if straggler.active(elapsed) and not held and not self._done(index):
                    self._begin(index, straggler)
                elif held and not straggler.active(elapsed):
                    self._end(index)
            if self._cycled:
                self._cycle()
            else:
                self._halt.wait(PERIOD / 5)

    def _done(self, index: int) -> bool:
        return any(entry["index"] == index for entry in self.applied)

    def _cycle(self) -> None:
        """One period: every duty-cycled worker runs for its share, then is stopped."""
        t0 = time.monotonic()
        shares = sorted((PERIOD / self.stragglers[index].slowdown, index) for index in self._cycled)
        for _, index in shares:
            self._continue(self.stragglers[index].worker)
        for share, index in shares:
            if self._halt.wait(max(0.0, t0 + share - time.monotonic())):
                return
            self._pause(self.stragglers[index].worker)
        self._halt.wait(max(0.0, t0 + PERIOD - time.monotonic()))

    def _pause(self, worker: str) -> None:
        handle = self.handle_of(worker)
        if handle is not None and not self.hung(handle.pid) and handle.signal(signal.SIGSTOP):
            self._stopped.add(handle)

    def _continue(self, worker: str | None = None) -> None:
        for handle in list(self._stopped):
            if worker is None or handle.worker == worker:
                if not self.hung(handle.pid):
                    handle.signal(signal.SIGCONT)
                self._stopped.discard(handle)

    # -- a window's start and end -----------------------------------------------------------

    def _begin(self, index: int, straggler: Straggler) -> None:
        handle = self.handle_of(straggler.worker)
        group = self.host_group(handle.host) if handle is not None else None
        if handle is not None and group is not None:
            how = self._lower_quota(index, group, straggler.slowdown, handle.host)
        else:
            self._cycled.add(index)
            run_ms = 1000 * PERIOD / straggler.slowdown
            how = f"runs {run_ms:.0f} ms of every {1000 * PERIOD:.0f} ms (SIGSTOP/SIGCONT)"
        self.applied.append(
            {
                "index": index,
                "worker": straggler.worker,
                "slowdown": straggler.slowdown,
                "how": how,
                "start": time.time(),
                "end": None,
            }
        )
        self.changed.set()
        self.event("slowed", f"{straggler.slowdown:g}x slower: {how}", straggler.worker)

    def _lower_quota(self, index: int, group: Path, slowdown: float, host: str) -> str:
        v2 = (group / "cpu.max").exists()
        path = group / ("cpu.max" if v2 else "cpu.cfs_quota_us")
        old = path.read_text().strip()
        quota_us = int(old.split()[0])
        slowed = max(MIN_QUOTA_US, round(quota_us / slowdown))
        path.write_text(f"{slowed} {old.split()[1]}" if v2 else str(slowed))
        self._quotas[index] = (path, old)
        return f"host {host}'s CPU quota {quota_us} -> {slowed} us per period"

    def _end(self, index: int) -> None:
        straggler = self.stragglers[index]
        if index in self._quotas:
            path, old = self._quotas.pop(index)
            with contextlib.suppress(OSError):  # the host is gone already
                path.write_text(old)
        if index in self._cycled:
            self._cycled.discard(index)
            self._continue(straggler.worker)
        for entry in self.applied:
            if entry["index"] == index and entry["end"] is None:
                entry["end"] = time.time()
                self.changed.set()
                self.event("restored", "full speed again", straggler.worker)
