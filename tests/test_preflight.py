"""The output directory's checks before a run: a file, a read-only directory and a disk too
small are refused with one paragraph; a good directory is created and left as it was."""

from __future__ import annotations

import os
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


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_directory_without_write_permission_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(preflight.OutputError, match="is not writable: Permission denied"):
            preflight.check_output(tmp_path, runs(1000))
    finally:
        tmp_path.chmod(0o755)


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
