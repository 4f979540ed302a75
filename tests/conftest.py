"""What every test shares: a private registry of live runs.

``streamlec ps``, ``kill-worker`` and the clean-up after a killed supervisor read the registry
of live runs (``runtime/registry.py``). Each test gets its own, so the runs a test starts do
not show in the user's ``streamlec ps`` (nor make a ``kill-worker WORKER`` there ambiguous)
while the suite runs, and a test never sees, signals or cleans up a run it did not start.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_registry(tmp_path, monkeypatch):
    """Every command of a test, in-process or a child process, sees only that test's runs."""
    monkeypatch.setenv("STREAMLEC_RUNTIME_DIR", str(tmp_path / "registry"))
