"""Stopping a run on a signal: SIGINT (Ctrl-C), SIGTERM and SIGHUP.

The first of these signals stops the run: while the supervisor runs the stream it raises
``Interrupted`` there, and the supervisor stops the workers in stages and writes the summary.
Any signal after the first only hurries that stop (shorter graces) and never breaks it off;
a signal that arrives while nothing can be stopped (the stream is over, the summary is being
written) is kept, and the run ends as it would have, then ``streamlec run`` stops there.
The exit code is the shell's for a death by that signal: 128 + its number (130, 143, 129).
"""

from __future__ import annotations

import signal

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by ``signum``."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """What SIGINT, SIGTERM and SIGHUP did to this process (one per process: signal
    handlers are). ``received`` lists them in order of arrival."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.armed = False
        self.previous: dict[int, object] = {}

    def install(self) -> None:
        """Handle the three signals here from now on (``restore`` undoes it)."""
        self.received.clear()
        for signum in HANDLED:
            self.previous[signum] = signal.signal(signum, self.handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()

    def handle(self, signum: int, frame) -> None:
        self.received.append(signum)
        if self.armed and len(self.received) == 1:
            self.armed = False
            raise Interrupted(signum)

    def arm(self) -> None:
        """From now on the first signal raises ``Interrupted`` (at once if one came before);
        call ``disarm`` where a stop could no longer be carried out."""
        self.check()
        self.armed = True

    def disarm(self) -> None:
        """From now on signals are only kept (and hurry a stop under way)."""
        self.armed = False

    def check(self) -> None:
        """Raise ``Interrupted`` for a signal that came while it could not be raised."""
        if self.received:
            raise Interrupted(self.received[0])

    def first(self) -> Interrupted | None:
        return Interrupted(self.received[0]) if self.received else None

    @property
    def hurried(self) -> bool:
        """A second signal came: the stop should not wait its full graces."""
        return len(self.received) > 1


#: This process's signals (a signal handler belongs to a process, not to a run).
SIGNALS = StopSignals()
