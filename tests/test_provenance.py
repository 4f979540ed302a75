"""Which commit a run records: the checkout's when it runs from one, the built-in one when the
package was installed, never that of an unrelated repository around the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamlec_cli.provenance import COMMIT_FILE, code_commit


def git(where: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=where,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def repository(root: Path, package: str) -> Path:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root / package


def test_a_checkout_records_its_commit_and_uncommitted_changes(tmp_path: Path) -> None:
    package = repository(tmp_path / "checkout", "streamlec_cli")
    head = git(package, "rev-parse", "HEAD")
    assert code_commit(package) == head
    (package / "__init__.py").write_text("# edited\n")
    assert code_commit(package) == head + "-dirty"


def test_an_installed_copy_records_the_commit_it_was_built_from(tmp_path: Path) -> None:
    # A virtual environment inside some other repository: its commit is not the code's.
    other = repository(tmp_path / "project", "somethingelse")
    package = other.parent / "venv" / "site-packages" / "streamlec_cli"
    package.mkdir(parents=True)
    assert code_commit(package) == "unknown"
    (package / COMMIT_FILE).write_text("0123abc\n")
    assert code_commit(package) == "0123abc"


def test_the_build_step_writes_the_commit_into_the_wheel(tmp_path: Path) -> None:
    import zipfile

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=root,
    )
    (wheel,) = tmp_path.glob("*.whl")
    recorded = zipfile.ZipFile(wheel).read(f"streamlec_cli/{COMMIT_FILE}").decode().strip()
    assert recorded.split("-")[0] == git(root, "rev-parse", "HEAD")
