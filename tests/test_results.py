"""Run directories: a new one for every run, and which earlier run ``--resume`` may reuse."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml

from streamlec_cli.results import finished_runs, new_run_directory, spec_text

SPEC = {"name": "s", "batch": 6000, "scheme": {"name": "ec", "k": 4, "r": 2}}


def test_every_call_creates_a_new_directory_even_in_the_same_second(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    first = new_run_directory(tmp_path / "s", "ec42-logreg-higgs", now)
    (first / "kept.txt").write_text("measured")
    second = new_run_directory(tmp_path / "s", "ec42-logreg-higgs", now)
    assert first.name == "ec42-logreg-higgs-20270115-080000"
    assert second.name == "ec42-logreg-higgs-20270115-080000-2"
    assert (first / "kept.txt").read_text() == "measured"
    assert list(second.iterdir()) == []


def test_concurrent_callers_never_share_a_directory(tmp_path: Path) -> None:
    made: list[Path] = []
    start = threading.Barrier(16)

    def claim() -> None:
        start.wait()
        made.append(new_run_directory(tmp_path / "s", "setting", 1_800_000_000.0))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 16
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(p.name for p in made)


def write_run(spec_dir: Path, name: str, start: float, spec=SPEC, **summary) -> Path:
    run_dir = spec_dir / name
    run_dir.mkdir(parents=True)
    summary = {"setting": "ec42", "complete": True, "error": None, **summary}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "meta.json").write_text(json.dumps({"start_time": start}))
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_dir


def finished_run(spec_dir: Path, setting: str, spec: dict) -> Path | None:
    """The run ``--resume`` reuses for this setting and resolved spec."""
    return finished_runs(spec_dir).get((setting, spec_text(spec)))


def test_resume_reuses_only_a_complete_run_of_the_same_setting_and_spec(tmp_path: Path) -> None:
    write_run(tmp_path, "stopped", 10.0, complete=False)
    write_run(tmp_path, "failed", 11.0, error="the sink exited with code 1")
    write_run(tmp_path, "other-setting", 12.0, setting="ec42-r1")
    write_run(tmp_path, "other-spec", 13.0, spec={**SPEC, "batch": 4000})
    assert finished_run(tmp_path, "ec42", SPEC) is None
    older = write_run(tmp_path, "older", 1.0)
    assert finished_run(tmp_path, "ec42", SPEC) == older
    newer = write_run(tmp_path, "newer", 2.0)
    reordered = dict(reversed(list(SPEC.items())))  # the same content in another key order
    assert finished_run(tmp_path, "ec42", reordered) == newer
    assert finished_run(tmp_path / "nowhere", "ec42", SPEC) is None


def test_a_run_from_before_settings_were_recorded_is_found_by_its_run_id(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "ec42", 1.0, setting=None, run_id="ec42")
    assert finished_run(tmp_path, "ec42", SPEC) == run_dir
