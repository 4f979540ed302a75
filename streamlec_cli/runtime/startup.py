"""Meeting the peers: what a worker says while it starts, and its start-up deadline.

A worker started by hand (``streamlec worker``) has nobody watching it, so it says what it
does (which run directory, which addresses it binds or connects to, when the stream starts,
how it ended) and gives up after ``startup_timeout`` seconds when its peers have not come,
naming the workers it waited for (``StartupTimeout``; the command line turns it into one
``error:`` paragraph that says what to start). ZeroMQ reconnects by itself, so the workers
may be started in any order. ``Connections`` tells whether a connecting socket has reached
its peer yet (a ZeroMQ socket monitor), so the message can say who is missing.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

#: Seconds a worker waits for its peers before it gives up (``--startup-timeout``).
DEFAULT_STARTUP_TIMEOUT = 60.0


def tell(worker: str, what: str) -> None:
    """One line on the worker's standard output (its log when a supervisor started it)."""
    print(f"{worker}: {what}", flush=True)


class StartupTimeout(RuntimeError):
    """``worker`` did not meet its peers within ``seconds``.

    ``missing``: the workers to start (in any order); ``detail``: what it saw instead."""

    def __init__(self, worker: str, seconds: float, missing: list[str], detail: str) -> None:
        self.worker = worker
        self.seconds = seconds
        self.missing = missing
        self.detail = detail
        super().__init__(f"{worker} gave up after {seconds:g} s: {detail}")

    def advice(self, spec_file: Path, run_dir: Path | None) -> str:
        """The whole message: who gave up, on whom, and the command that starts them."""
        where = f" --run-dir {run_dir}" if run_dir is not None else ""
        if len(self.missing) == 1:
            start = f"start it with `streamlec worker {spec_file} {self.missing[0]}{where}`"
        elif self.missing:
            start = (
                f"start them with `streamlec worker {spec_file} WORKER{where}` for WORKER in "
                + ", ".join(self.missing)
            )
        else:
            start = f"start every worker of the run with `streamlec worker {spec_file} WORKER`"
        return (
            f"{self}; {start} (in any order, with the same spec; on the hosts its `hosts` "
            "names), or give the workers more time with --startup-timeout"
        )


class Deadline:
    """The start-up deadline: ``expired()`` once ``seconds`` have passed (never for None)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() > self.end


class Connections:
    """Whether each of some connecting sockets has completed its handshake with its peer.

    ``sockets`` maps a peer's name (``sink``) to the socket connected to it. Call ``close``
    once the peers are met: a monitor costs a socket and a little work per connection event.
    """

    def __init__(self, sockets: dict[str, zmq.Socket]) -> None:
        events = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        self.sockets = dict(sockets)
        self.monitors = {name: sock.get_monitor_socket(events) for name, sock in sockets.items()}
        self.up = dict.fromkeys(sockets, False)

    def connected(self) -> dict[str, bool]:
        """Each peer: connected right now (as far as the monitor has said)."""
        for name, monitor in self.monitors.items():
            while monitor.poll(0):
                event = recv_monitor_message(monitor)["event"]
                self.up[name] = event == zmq.EVENT_HANDSHAKE_SUCCEEDED
        return dict(self.up)

    def close(self) -> None:
        for name, monitor in self.monitors.items():
            with contextlib.suppress(zmq.ZMQError):
                self.sockets[name].disable_monitor()
            monitor.close(linger=0)
        self.monitors = {}
