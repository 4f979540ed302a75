"""``streamlec validate``: lists the runs of a good spec, exits 2 with one clear line otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from streamlec_cli.cli import main

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"

GOOD = """\
name: sweep-demo
dataset: {name: kdd12, items: 50000}
algorithm: {name: svm, lr: 0.1}
scheme: {name: ec, k: 4, r: 2, code: vandermonde}
processors: 6
batch: 6000
rate: 20000
failures: [{at: 2s, kill: [processor-1, processor-4]}]
sweep:
  scheme: [{name: none}, {name: ec, k: 4, r: 2}, {name: replication, copies: 3}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def invoke(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


def test_quickstart_validates() -> None:
    result = invoke(str(QUICKSTART))
    assert result.exit_code == 0, result.output
    assert "1 run" in result.stdout
    line = result.stdout.splitlines()[1]
    assert line.split()[0] == "ec42-logreg-higgs"
    for fragment in (
        "scheme=ec(k=4,r=2,code=gaussian,attach=linear",
        "algorithm=logreg(",
        "dataset=higgs(items=10000000",
        "processors=6",
        "batch=12000",
        "rate=max",
        "failures=[at batch 400 kill processor-1]",
    ):
        assert fragment in line


@pytest.mark.parametrize("path", sorted(QUICKSTART.parent.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_experiment_validates_and_says_what_it_measures(path: Path) -> None:
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text().startswith("#")


def test_good_sweep_lists_one_line_per_run(tmp_path: Path) -> None:
    result = invoke(str(write(tmp_path, GOOD)))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert "3 runs" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == [
        "none-svm-kdd12",
        "ec42-svm-kdd12",
        "rep3-svm-kdd12",
    ]
    assert "scheme=rep(copies=3)" in lines[3]
    assert all("rate=20000/s" in line for line in lines[1:])
    assert all("failures=[at 2s kill processor-1,processor-4]" in line for line in lines[1:])


def test_set_overrides_are_applied(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = invoke(
        str(path), "--set", "sweep.scheme=[{name: ec, k: 2, r: 1}]", "--set", "batch=300"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[1].split()[0] == "ec21-svm-kdd12"
    assert "code=gaussian" in lines[1]  # a swept mapping replaces the whole scheme
    assert "batch=300" in lines[1]


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        (GOOD.replace("batch: 6000", "batch: abc"), (), "batch: 'abc' is not allowed"),
        (
            GOOD + "flavour: blue\n",
            (),
            "unknown key 'flavour': allowed top-level keys are name, dataset",
        ),
        (
            GOOD.replace("processor-4", "processor-9"),
            (),
            "failures[0].kill: processor-9 does not exist (processor-0..processor-5)",
        ),
        (
            GOOD,
            ("--set", "sweep.scheme=[{name: ec, k: 4, r: 5}]"),
            "run scheme=ec,k=4,r=5: scheme: ec with k=4, r=5 needs k+r=9 processors, "
            "spec has processors: 6",
        ),
        (
            GOOD,
            ("--set", "processors"),
            "--set 'processors' is not allowed: write dotted.key=value",
        ),
        (
            GOOD.replace("name: svm", "name: tree"),
            (),
            "algorithm.name: 'tree' is not allowed: choose one of linreg, logreg, svm, kmeans",
        ),
        (
            GOOD.replace("rate: 20000", "rate: -5"),
            (),
            "rate: -5 is not allowed: rate must be 'max'",
        ),
        ("name: x\nprocessors: [1\n", (), "is not valid YAML"),
        ("- just\n- a list\n", (), "must be a mapping"),
        (GOOD.replace("processors: 6", "processors: true"), (), "processors: true is not allowed"),
    ],
)
def test_bad_spec_exits_2_with_the_message(
    tmp_path: Path, text: str, args: tuple[str, ...], expected: str
) -> None:
    result = invoke(str(write(tmp_path, text)), *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke(str(missing))
    assert result.exit_code == 2
    assert result.stderr == f"error: spec file '{missing}' does not exist\n"
    assert "Traceback" not in result.output


def test_validate_takes_several_specs_and_fails_if_one_is_wrong(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("name: g\nprocessors: 2\n")
    bad.write_text("name: b\nprocessors: 2\nbatch: abc\n")
    result = CliRunner().invoke(main, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert "spec 'g' is valid" in result.output
    assert "batch" in result.output and "Traceback" not in result.output
    assert f"error: {bad}: batch" in result.stderr  # which of the specs is wrong


def test_dataset_path_must_be_a_readable_regular_file(tmp_path: Path) -> None:
    data = tmp_path / "higgs.csv"
    text = f"name: d\nprocessors: 1\ndataset: {{name: higgs, path: '{data}'}}\n"
    result = invoke(str(write(tmp_path, text)))
    assert result.exit_code == 2
    assert result.stderr == f"error: data file '{data}' does not exist\n"
    data.mkdir()
    result = invoke(str(write(tmp_path, text)))
    assert result.exit_code == 2
    assert f"'{data}' is a directory, not a data file" in result.stderr
    data.rmdir()
    data.write_text("1," + ",".join(["0.5"] * 28) + "\n")
    result = invoke(str(write(tmp_path, text)))
    assert result.exit_code == 0, result.output
