"""Stop signals: the first stops the stream where it can be stopped, later ones only hurry."""

from __future__ import annotations

import os
import signal

import pytest

from streamlec_cli.runtime.interrupt import Interrupted, StopSignals


@pytest.fixture
def signals():
    stop = StopSignals()
    stop.install()
    yield stop
    stop.restore()


def test_the_first_signal_stops_the_stream_with_its_own_exit_code(signals):
    signals.arm()
    with pytest.raises(Interrupted) as stopped:
        os.kill(os.getpid(), signal.SIGHUP)
    assert (stopped.value.name, stopped.value.exit_code) == ("SIGHUP", 129)
    assert not signals.hurried
    os.kill(os.getpid(), signal.SIGINT)  # a second one, during the stop: kept, not raised
    assert signals.hurried and signals.received == [signal.SIGHUP, signal.SIGINT]


def test_a_signal_outside_a_stream_is_kept_and_raised_where_a_stream_would_start(signals):
    os.kill(os.getpid(), signal.SIGTERM)  # nothing raised here: say, the summary is written
    assert signals.first().exit_code == 143
    with pytest.raises(Interrupted, match="SIGTERM"):
        signals.arm()  # where a stream would start


def test_restore_gives_the_previous_handlers_back():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopSignals()
    stop.install()
    assert signal.getsignal(signal.SIGTERM) == stop.handle
    stop.restore()
    assert signal.getsignal(signal.SIGTERM) == before
