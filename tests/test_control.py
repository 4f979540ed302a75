"""``kill-worker`` names a live run by its run id, its spec's name or its setting."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from streamlec_cli.runtime.control import KillError, kill_worker
from streamlec_cli.runtime.registry import LiveRun


def live(run: str, setting: str, pid: int, tmp_path) -> LiveRun:
    record = {"launcher": "local", "host": "localhost", "pid": pid, "incarnation": 1}
    entry = LiveRun(run, str(tmp_path), os.getpid(), {"processor-0": record}, setting)
    entry.save()
    return entry


def test_a_setting_names_its_one_live_run(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMLEC_RUNTIME_DIR", str(tmp_path / "registry"))
    worker = subprocess.Popen(["sleep", "60"])
    try:
        live("s/ec42-logreg-higgs-20261201-055502", "ec42-logreg-higgs", worker.pid, tmp_path)
        live("s/rep3-logreg-higgs-20261201-055502", "rep3-logreg-higgs", os.getpid(), tmp_path)
        said = kill_worker("ec42-logreg-higgs", "processor-0", "KILL")
        assert "s/ec42-logreg-higgs-20261201-055502" in said
        assert worker.wait(timeout=10) == -signal.SIGKILL
    finally:
        worker.kill()


def test_a_setting_with_two_live_runs_is_ambiguous(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMLEC_RUNTIME_DIR", str(tmp_path / "registry"))
    for started in ("055502", "055503"):
        live(f"s/ec42-logreg-higgs-20261201-{started}", "ec42-logreg-higgs", 1, tmp_path)
    with pytest.raises(KillError, match="matches several live runs") as error:
        kill_worker("ec42-logreg-higgs", "processor-0", "KILL")
    assert "055502" in str(error.value) and "055503" in str(error.value)
