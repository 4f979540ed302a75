"""The output directory's checks before a run: a file, a read-only directory and a disk too
small are refused with one paragraph; a good directory is created and left as it was."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from streamlec_cli.runtime import preflight
from streamlec_cli.spec import parse


def runs(items: int, **extra: object):
    return parse(
        {"name": "p", "processors": 1, "dataset": {"name": "higgs", "items": items}, **extra}
    )


def test_a_good_directory_is_created_and_left_empty(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    preflight.check_output(out, runs(1000))
    assert out.is_dir()
    assert list(out.iterdir()) == []  # the probe file is gone


def test_a_file_is_not_an_output_directory(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    with pytest.raises(preflight.OutputError, match="is a file, not a directory"):
        preflight.check_output(taken, runs(1000))
    with pytest.raises(preflight.OutputError, match="cannot be created: Not a directory"):
        preflight.check_output(taken / "below", runs(1000))


def _refusal_as_a_user(out: Path) -> str:
    """``check_output(out)``'s refusal as an ordinary user: root writes into read-only
    directories, so as root it runs in a forked child that dropped to ``nobody``."""
    if os.geteuid() != 0:
        with pytest.raises(preflight.OutputError) as refused:
            preflight.check_output(out, runs(1000))
        return str(refused.value)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        message = "accepted"
        try:
            os.setgid(65534)
            os.setuid(65534)
            preflight.check_output(out, runs(1000))
        except Exception as exc:  # the parent asserts on what it was
            message = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, message.encode())
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as answer:
        return answer.read()


def test_a_directory_without_write_permission_is_refused() -> None:
    with tempfile.TemporaryDirectory() as top:  # reachable by nobody, unlike pytest's tmp
        out = Path(top) / "out"
        out.mkdir(mode=0o555)
        Path(top).chmod(0o755)
        try:
            refusal = _refusal_as_a_user(out)
        finally:
            out.chmod(0o755)
    assert refusal.startswith("OutputError") or os.geteuid() != 0
    assert "is not writable: Permission denied" in refusal


def test_the_estimate_counts_items_staged_rows_and_the_log() -> None:
    (plain,) = runs(1_000_000)
    assert preflight.results_bytes(plain) >= 12 * 1_000_000
    assert preflight.temporary_bytes(plain) == 0
    (staged,) = runs(
        1_000_000, scheme="reactive", dataset={"name": "higgs", "items": 10**6, "stage": True}
    )
    assert preflight.temporary_bytes(staged) >= 2 * 8 * 29 * 1_000_000  # rows and the log


def test_more_than_the_disk_holds_is_refused_with_both_sizes(tmp_path: Path) -> None:
    with pytest.raises(preflight.OutputError, match=r"free but the 1 run\(s\) need about"):
        preflight.check_output(tmp_path, runs(10**15))
