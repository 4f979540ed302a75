"""What ``kill-worker`` leaves in a run's events, read back as the supervisor reads it."""

from __future__ import annotations

from streamlec_cli.results import append_event
from streamlec_cli.runtime.control import signal_name, user_signal


def test_the_last_signal_sent_to_a_pid_is_the_one_that_counts(tmp_path):
    append_event(tmp_path, 10.0, "processor-1", "kill", "SIGKILL pid 77 (scheduled at batch 3)")
    assert user_signal(tmp_path, 77) is None  # the spec's kills are not the user's
    append_event(tmp_path, 11.0, "processor-2", "kill", "SIGSTOP pid 42 (kill-worker)")
    assert user_signal(tmp_path, 42) == ("SIGSTOP", 11.0)
    assert user_signal(tmp_path, 4) is None  # pid 4 is not pid 42
    append_event(tmp_path, 12.0, "processor-2", "kill", "SIGCONT pid 42 (kill-worker)")
    assert user_signal(tmp_path, 42) is None  # resumed: what it does next is its own
    append_event(tmp_path, 13.0, "processor-2", "kill", "SIGTERM pid 42 (kill-worker)")
    assert user_signal(tmp_path, 42) == ("SIGTERM", 13.0)


def test_an_exit_status_names_its_signal():
    assert signal_name(-9) == "SIGKILL" and signal_name(-15) == "SIGTERM"
    assert signal_name(0) is None and signal_name(1) is None and signal_name(None) is None
