"""Which code a run ran: the git commit, whether the package runs from its checkout or was
installed from one (standard library only: the build step imports it too)."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: Written into an installed package by the build step (``_build.py``): the commit installed.
COMMIT_FILE = "COMMIT"
PACKAGE = Path(__file__).resolve().parent


def _git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=where, capture_output=True, text=True, check=True
    ).stdout.strip()


def checkout_commit(where: Path) -> str | None:
    """``<sha>`` (``-dirty`` with uncommitted changes) of the git checkout at ``where``."""
    try:
        commit = _git(where, "rev-parse", "HEAD")
        dirty = _git(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def code_commit(package: Path = PACKAGE) -> str:
    """The commit of the code that runs, or ``unknown``.

    Running from a checkout (an editable install, or from source), that checkout's commit. An
    installed copy is no longer in its checkout (git would answer for whatever repository
    happens to contain the environment), so it carries the commit it was built from.
    """
    try:
        top = Path(_git(package, "rev-parse", "--show-toplevel")).resolve()
    except (OSError, subprocess.CalledProcessError):
        top = None
    if top is not None and top / package.name == package:
        return checkout_commit(package) or "unknown"
    recorded = package / COMMIT_FILE
    if recorded.is_file():
        return recorded.read_text().strip() or "unknown"
    return "unknown"
