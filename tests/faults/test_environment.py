"""Faults of the environment and specs that would exhaust the machine, with real files,
real mounts and real runs.

What a user relies on: a bad output directory, a data path that is not a regular file, a data
file deleted or truncated while the run reads it, and a disk that fills up mid-run each end in
one ``error:`` paragraph naming what is wrong, exit code 2, no traceback, and what was already
written kept; a spec that would expand to billions of values or runs is refused at once by
``validate`` (run here under a memory limit, so the old behaviour of expanding it fails).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

RUN_TIMEOUT = 120
MEMORY_LIMIT = 512 * 1024 * 1024  # validate of a small spec needs a small fraction of this
ROOT = os.geteuid() == 0
NEEDS_ROOT = pytest.mark.skipif(not ROOT, reason="mounting a small tmpfs needs root")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def streamlec(*args: str, timeout: float = RUN_TIMEOUT, limit_memory: bool = False, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "streamlec_cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        preexec_fn=_limit_memory if limit_memory else None,
    )


def start(*args: str, cwd=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamlec_cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    """Wait for a started run; its exit code and everything it printed."""
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the run did not end in {RUN_TIMEOUT} s:\n{out}\n{err}")
    return proc.returncode, out + err


def write_spec(path: Path, **fields: object) -> Path:
    spec = {"name": "env", "processors": 2, "batch": 2_000, "runtime": {"warmup": 0}}
    spec.update(fields)
    path.write_text(yaml.safe_dump(spec))
    return path


def assert_clear_error(code: int, output: str, *fragments: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    assert "error:" in output or "run failed:" in output, output  # before or during a run
    for fragment in fragments:
        assert fragment in output, output


def wait_for_batches(out: Path, count: int, timeout: float = 60) -> Path:
    """The run directory under ``out`` once it has committed ``count`` batches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for found in out.rglob("batches.csv"):
            if len(found.read_text().splitlines()) > count:
                return found.parent
        time.sleep(0.05)
    pytest.fail(f"the run under {out} committed fewer than {count} batches in {timeout} s")


@contextlib.contextmanager
def tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A small real filesystem mounted at ``where`` for the test's life."""
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# -- specs that would exhaust the machine ------------------------------------------------------


def alias_bomb(depth: int = 9) -> str:
    """About 500 bytes of YAML whose sweep value holds 9**depth values once expanded."""
    anchors = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    anchors += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    return f"name: bomb\nprocessors: 1\nsweep:\n  batch: [[{', '.join(anchors)}]]\n"


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(alias_bomb())
    assert len(spec.read_bytes()) < 600
    result = streamlec("validate", str(spec), timeout=20, limit_memory=True)
    assert_clear_error(
        result.returncode, result.stdout + result.stderr, "once its YAML aliases", "100,000"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"repeat": 10_000_000}, "expands to 10,000,000 runs"),
        (
            {
                "sweep": {
                    "batch": list(range(1000, 1100)),
                    "rate": list(range(1000, 1100)),
                    "port": list(range(2000, 2100)),
                }
            },
            "expands to 1,000,000 runs (100 values of batch x 100 values of port x 100 values",
        ),
    ],
)
def test_too_many_runs_are_refused_before_expanding(
    tmp_path: Path, fields: dict, expected: str
) -> None:
    spec = write_spec(tmp_path / "wide.yaml", **fields)
    result = streamlec("validate", str(spec), timeout=20, limit_memory=True)
    assert_clear_error(result.returncode, result.stdout + result.stderr, expected, "10,000")


def test_merge_keys_are_valid_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "merge.yaml"
    spec.write_text(
        "name: merge\nprocessors: 6\nscheme: &ec {name: ec, k: 4, r: 2}\n"
        "sweep:\n  scheme: [*ec, {<<: *ec, k: 5, r: 1}]\n"
    )
    result = streamlec("validate", str(spec))
    assert result.returncode == 0, result.stderr
    assert "2 runs" in result.stdout
    assert "ec51-logreg-higgs" in result.stdout


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"algorithm": {"name": "kmeans", "clusters": 3000}},
            "algorithm.clusters: 3000 is not allowed",
        ),
        (
            {"runtime": {"heartbeat_interval": "1ms", "failure_timeout": "10ms"}},
            "runtime.failure_timeout: '10ms' is not allowed: failure_timeout must be at least 50ms",
        ),
        ({"rate": 1}, "rate: 1 is not allowed: at 1 items/s the first batch (2000 items) takes"),
        ({"scheme": {"name": "ec", "kk": 1}}, "unknown key 'scheme.kk' (did you mean 'k'?)"),
    ],
)
def test_values_a_run_cannot_use_are_validate_errors(
    tmp_path: Path, fields: dict, expected: str
) -> None:
    spec = write_spec(tmp_path / "bad.yaml", **fields)
    result = streamlec("validate", str(spec))
    assert_clear_error(result.returncode, result.stdout + result.stderr, expected)


# -- data paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda d: os.mkfifo(d / "pipe") or d / "pipe", "is a named pipe (FIFO)"),
        (lambda d: Path("/dev/urandom"), "is a character device"),
        (lambda d: Path("/dev/zero"), "is a character device"),
        (lambda d: d, "is a directory"),
        (lambda d: d / "missing.csv", "does not exist"),
    ],
)
def test_a_data_path_that_is_not_a_regular_file_is_refused(tmp_path: Path, make, kind: str) -> None:
    path = make(tmp_path)
    for name in ("higgs", "kdd12"):
        dataset = {"name": name, "path": str(path), "items": 4_000}
        spec = write_spec(tmp_path / f"{name}.yaml", dataset=dataset)
        checked = streamlec("validate", str(spec), timeout=30)
        assert_clear_error(checked.returncode, checked.stdout + checked.stderr, kind, str(path))
        ran = streamlec("run", str(spec), "--out", str(tmp_path / "out"), "--quiet", timeout=30)
        assert_clear_error(ran.returncode, ran.stdout + ran.stderr, kind, str(path))
    assert not (tmp_path / "out" / "env").exists()  # refused before any run started


# -- the output directory ----------------------------------------------------------------------


def test_out_naming_a_file_is_refused(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", dataset={"name": "higgs", "items": 4_000})
    taken = tmp_path / "results.txt"
    taken.write_text("earlier notes\n")
    result = streamlec("run", str(spec), "--out", str(taken), "--quiet")
    assert_clear_error(result.returncode, result.stderr, f"--out '{taken}' is a file")
    assert taken.read_text() == "earlier notes\n"


def test_read_only_out_is_refused_before_the_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", dataset={"name": "higgs", "items": 4_000})
    with contextlib.ExitStack() as stack:
        if ROOT:  # root ignores permissions: a read-only filesystem is the real fault
            out = stack.enter_context(tmpfs(tmp_path / "ro", "1m", "ro"))
            expected = "Read-only file system"
        else:
            out = tmp_path / "ro"
            out.mkdir()
            out.chmod(0o555)
            stack.callback(out.chmod, 0o755)
            expected = "Permission denied"
        result = streamlec("run", str(spec), "--out", str(out), "--quiet")
        assert_clear_error(result.returncode, result.stderr, f"--out '{out}'", expected)
        nested = streamlec("run", str(spec), "--out", str(out / "deeper"), "--quiet")
        assert_clear_error(nested.returncode, nested.stderr, "cannot be created", expected)


@NEEDS_ROOT
def test_out_without_room_for_the_results_is_refused_before_the_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", dataset={"name": "higgs", "items": 400_000})
    with tmpfs(tmp_path / "small", "1m") as out:
        result = streamlec("run", str(spec), "--out", str(out), "--quiet")
        assert_clear_error(result.returncode, result.stderr, "free but the 1 run(s) need about")
        assert list(out.iterdir()) == []  # nothing started, nothing written


@NEEDS_ROOT
def test_a_disk_that_fills_mid_run_ends_it_clearly_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    dataset = {"name": "higgs", "items": 60_000}
    spec = write_spec(tmp_path / "s.yaml", dataset=dataset, rate=12_000)
    with tmpfs(tmp_path / "disk", "6m") as out:
        proc = start("run", str(spec), "--out", str(out), "--quiet")
        run_dir = wait_for_batches(out, 3)
        with open(out / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:  # another program fills the disk
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        code, output = finish(proc)
        assert_clear_error(code, output, "No space left on device")
        rows = (run_dir / "batches.csv").read_text().splitlines()
        assert len(rows) > 3  # the batches committed before the disk filled are kept
        assert (run_dir / "predictions.f64").stat().st_size >= 8 * 2_000 * 3


# -- the data file changing under the run ------------------------------------------------------


@pytest.fixture(scope="module")
def higgs_file(tmp_path_factory) -> Path:
    """A real HIGGS CSV of 30,000 rows (about 22 MB, several of the reader's blocks)."""
    path = tmp_path_factory.mktemp("data") / "higgs.csv"
    made = streamlec("datasets", "gen", "higgs", "--items", "30000", "--out", str(path))
    assert made.returncode == 0, made.stderr
    return path


def slow_run(tmp_path: Path, higgs_file: Path) -> tuple[subprocess.Popen, Path, Path]:
    """A 5-second open-loop run streaming a copy of the data file; returns (process, file,
    out) once the source has opened the file and batches are being committed."""
    data = tmp_path / "data.csv"
    shutil.copyfile(higgs_file, data)
    dataset = {"name": "higgs", "path": str(data), "items": 30_000}
    spec = write_spec(tmp_path / "s.yaml", dataset=dataset, rate=6_000)
    out = tmp_path / "out"
    proc = start("run", str(spec), "--out", str(out), "--quiet")
    wait_for_batches(out, 1)
    return proc, data, out


def test_data_file_truncated_mid_run_fails_the_run_naming_it(
    tmp_path: Path, higgs_file: Path
) -> None:
    proc, data, out = slow_run(tmp_path, higgs_file)
    os.truncate(data, 100_000)
    code, output = finish(proc)
    assert_clear_error(code, output, f"data file '{data}' was truncated while it was read")
    summary = json.loads(next(out.rglob("summary.json")).read_text())
    assert summary["exit_code"] == 2
    assert "was truncated" in summary["error"]


def test_data_file_deleted_mid_run_fails_the_run_naming_it(
    tmp_path: Path, higgs_file: Path
) -> None:
    proc, data, out = slow_run(tmp_path, higgs_file)
    data.unlink()
    code, output = finish(proc)
    assert_clear_error(code, output, f"data file '{data}' does not exist")
    summary = json.loads(next(out.rglob("summary.json")).read_text())
    assert summary["exit_code"] == 2
    assert str(data) in summary["error"]
    # The source had the file open: every item was still streamed and delivered.
    assert summary["items_out"] == 30_000
    assert summary["items_lost"] == 0
