"""``streamlec plot``: every figure renders from a small synthetic results directory.

The run directories here are written by hand in the results contract's format (summary.json,
meta.json, spec.yaml, batches.csv, timeline.csv, events.csv), so the test exercises plotting
alone, in seconds, without running the harness.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from matplotlib.image import imread

from streamlec_cli import spec
from streamlec_cli.cli import main
from streamlec_cli.plotting import FIGURES, SCHEME_COLOURS

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
T0 = 1_800_000_000.0  # unix time the synthetic streams start
SCHEMES: dict[str, dict[str, Any]] = {
    "none": {"scheme": "none"},
    "reactive": {"scheme": "reactive"},
    "rep3": {"scheme": "rep", "copies": 3},
    "ec51": {"scheme": "ec", "k": 5, "r": 1},
    "ec42": {"scheme": "ec", "k": 4, "r": 2},
}


def write_run(
    root: Path,
    spec_name: str,
    *,
    scheme: str = "ec42",
    algorithm: str = "logreg",
    dataset: str = "higgs",
    processors: int = 6,
    throughput: float = 100_000.0,
    repeat: int | None = None,
    rate: str | float = "max",
    kill: tuple[str, ...] = (),
    kill_at: float = 6.0,
    lost: int = 0,
    spike: float = 1.0,
    cluster: dict | None = None,
    **fields: Any,
) -> Path:
    """One run directory in the results contract's format; returns it.

    ``kill`` names the processors killed ``kill_at`` seconds into the stream; ``lost`` items
    are lost in the batch that ends then.
    """
    algorithm_params = fields.pop("algorithm_params", {})
    settings = {"k": None, "r": None, "copies": None, **SCHEMES[scheme], **fields}
    name = settings["scheme"]
    ec = name == "ec"
    attach = settings.pop("attach", "linear") if ec else None
    incremental = settings.pop("incremental", True) if ec else None
    code = settings.pop("code", "gaussian") if ec else None
    slug = f"ec{settings['k']}-{settings['r']}" if ec else scheme
    run_id = f"{slug}-{algorithm}-{dataset}-p{processors}-{attach}-{incremental}-{code}"
    run_id += "".join(f"-{key}{value}" for key, value in algorithm_params.items())
    run_id += f"-{len(kill)}kill" + (f"-r{repeat}" if repeat is not None else "")
    run_dir = root / spec_name / run_id
    run_dir.mkdir(parents=True)
    label = {
        "ec": f"ec({settings['k']},{settings['r']})-{attach}",
        "rep": f"rep-{settings['copies']}x",
    }.get(name, name)
    failures = [
        {
            "worker": w,
            "pid": 100 + i,
            "time": T0 + kill_at,
            "elapsed_s": kill_at,
            "after_batch": int(kill_at / 0.12) - 1,
        }
        for i, w in enumerate(kill)
    ]
    machine = {"host": "testhost", "cores": 2, "memory_gib": 8.0, "platform": "Linux-test"}
    summary = {
        "spec_name": spec_name,
        "run_id": run_id,
        "complete": True,
        "error": None,
        "scheme_label": label,
        "algorithm": algorithm,
        "algorithm_params": algorithm_params,
        "dataset": dataset,
        "processors": processors,
        "code": code,
        "attach": attach,
        "incremental": incremental,
        "code_worst_condition": (10.0 * settings["k"] ** (3 if code == "vandermonde" else 1))
        if ec
        else None,
        "batch": 12000,
        "rate": rate,
        "items_in": 1_200_000,
        "items_out": 1_200_000 - lost,
        "items_lost": lost,
        "items_duplicated": 0,
        "decoded_items": 3000 if kill and ec else 0,
        "throughput_items_per_s": throughput,
        "latency_ms": {"p50": 8.0 * spike, "p95": 15.0, "p99": 20.0 * spike, "max": 40.0},
        "latency_around_first_failure": (
            {
                "window_s": 5.0,
                "before": {"items": 1000, "p50_ms": 8.0, "p99_ms": 20.0},
                "after": {"items": 1000, "p50_ms": 8.0 * spike, "p99_ms": 20.0 * spike},
                "p99_ratio": spike,
            }
            if kill
            else None
        ),
        "failures": failures,
        "reference_max_rel_err": decode_error(settings["k"], code),
        "metrics": {"loss": 0.69, "accuracy": 0.53},
        "commit": COMMIT,
        "machine": machine,
        "run_dir": str(run_dir),
        **settings,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    meta = {
        "spec_name": spec_name,
        "run_id": run_id,
        "run_index": repeat or 0,
        "commit": COMMIT,
        **machine,
        "versions": {"python": "3.11.7", "streamlec": "0.1.0", "numpy": "2.0"},
        "cluster": cluster,
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    planned = [{"at": kill_at, "kill": list(kill)}] if kill else []
    (run_dir / "spec.yaml").write_text(yaml.safe_dump({"name": spec_name, "failures": planned}))
    batches = [
        "batch,epoch,offset,count,items_lost,decoded_items,recovery_round,model_version,"
        "loss,accuracy,t_arrival_first,t_arrival_last,t_final,replayed"
    ]
    lost_batch = int(kill_at / 0.12) if lost else -1
    for b in range(100):
        t = T0 + 0.12 * b
        gone = lost if b == lost_batch else 0
        batches.append(f"{b},0,{b * 12000},12000,{gone},0,0,{b},0.69,0.53,{t},{t},{t + 0.02},0")
    (run_dir / "batches.csv").write_text("\n".join(batches) + "\n")
    timeline = ["t_s,items,throughput_items_per_s,latency_ms_p50,latency_ms_p99,latency_ms_max"]
    rng = np.random.default_rng(len(run_id))
    for i in range(120):
        t = i / 10
        boost = spike * np.exp(-(t - kill_at) / 0.4) if kill and t >= kill_at else 1.0
        p99 = 20.0 * max(1.0, boost) * rng.uniform(0.9, 1.1)
        timeline.append(f"{t:.1f},12000,120000.0,{p99 / 2.5},{p99},{p99 * 1.2}")
    (run_dir / "timeline.csv").write_text("\n".join(timeline) + "\n")
    events = ["time,worker,event,detail", f'{T0 - 1:.6f},sink,spawned,"pid 1"']
    for i, worker in enumerate(kill):
        events.append(f'{T0 + kill_at:.6f},{worker},kill,"SIGKILL pid {100 + i}"')
        events.append(f'{T0 + kill_at + 0.01:.6f},{worker},exited,"pid {100 + i}, signal 9"')
    (run_dir / "events.csv").write_text("\n".join(events) + "\n")
    return run_dir


def decode_error(k: int | None, code: str | None) -> float:
    """A made-up decode error that grows with k, faster for Vandermonde."""
    return 1e-15 * (k or 1) ** (4 if code == "vandermonde" else 1)


def synthetic_results(root: Path) -> None:
    """Runs of each evaluation spec (and one spec of a user's own) with known throughputs."""
    base = {"none": 260e3, "reactive": 60e3, "rep3": 200e3, "ec51": 290e3, "ec42": 300e3}
    for algorithm in ("logreg", "kmeans"):
        for dataset in ("higgs", "kdd12"):
            for scheme, tp in base.items():
                for rep in range(2):
                    write_run(
                        root, "throughput", scheme=scheme, algorithm=algorithm,
                        dataset=dataset, throughput=tp * (1 + 0.05 * rep), repeat=rep,
                    )  # fmt: skip
    for scheme, spike in (("reactive", 9.0), ("rep3", 1.05), ("ec42", 1.1)):
        for kill in (("processor-1",), ("processor-1", "processor-2")):
            write_run(
                root, "recovery", scheme=scheme, rate=100000.0, kill=kill, spike=spike * len(kill)
            )
    write_run(root, "recovery", scheme="none", rate=100000.0, kill=("processor-1",), lost=12000)
    for attach in ("linear", "inputs"):
        for incremental in (True, False):
            for rep in range(2):
                tp = 300e3 * (1.0 if attach == "linear" else 0.7) * (1.0 if incremental else 0.9)
                write_run(root, "coding", attach=attach, incremental=incremental,
                          throughput=tp * (1 + 0.03 * rep), repeat=rep)  # fmt: skip
    for k, r in ((2, 1), (3, 1), (5, 1), (2, 2), (4, 2), (10, 2), (3, 3), (9, 3)):
        for code in ("vandermonde", "gaussian"):
            slower = 0.5 if code == "vandermonde" else 1.0  # pooled, the two make a whisker
            write_run(root, "parameters", scheme="ec42", k=k, r=r, code=code, processors=12,
                      throughput=30e3 * k / (k + r) * slower, kill=("processor-0",))  # fmt: skip
    for processors in (6, 12, 18):
        for scheme in ("rep3", "ec42"):
            tp = (200e3 if scheme == "rep3" else 300e3) * (1 - processors / 60)
            write_run(root, "scalability", scheme=scheme, processors=processors, throughput=tp)
    for clusters in (2, 8, 32):
        for scheme, tp in (("none", 900e3), ("rep3", 500e3), ("ec42", 800e3)):
            params = {"clusters": clusters, "decay": 0.01}
            write_run(root, "intensity", scheme=scheme, algorithm="kmeans",
                      throughput=tp / clusters, algorithm_params=params)  # fmt: skip
    for scheme in ("none", "ec42"):  # a user's own spec: named after no figure
        write_run(root, "mine", scheme=scheme, throughput=123e3)
    for n, (profile, link, cpu) in enumerate(REGIME):  # shared cores, then emulated hosts
        cluster = None
        if cpu is not None:
            asked = {"hosts": 8, "link_bit_s": link, "cpu": cpu}
            cluster = {"emulated": True, "asked": asked, "profile": profile and {"name": profile}}
        slower = 1.0 if link is None else link / 1e10  # the network costs replication most
        for scheme, tp in (("reactive", 60e3), ("rep3", 150e3 * slower), ("ec42", 200e3)):
            write_run(root, "regime", scheme=scheme, throughput=tp, cluster=cluster, repeat=n)


#: Conditions of the regime spec's runs: (profile, link bit/s, CPU per host).
REGIME = (
    (None, None, None),
    ("cores-only", None, 0.2),
    ("lan-10g", 2e9, 0.2),
    ("lan-1g", 2e8, 0.2),
    (None, None, 0.1),
    (None, None, 0.25),
)


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    synthetic_results(root)
    return root


@pytest.fixture(scope="module")
def plotted(results_root: Path) -> tuple[Path, Any]:
    root = results_root
    out = root.parent / "plots"
    result = CliRunner().invoke(main, ["plot", str(root), "--out", str(out)])
    return out, result


#: Every figure (the synthetic results hold runs for each) and a spec of a user's own.
EXPECTED = (*FIGURES, "throughput-mine")


def test_plot_writes_every_figure(plotted: tuple[Path, Any]) -> None:
    out, result = plotted
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in EXPECTED for ext in ("png", "svg")
    )
    assert {Path(line).name for line in result.stdout.split()} == {p.name for p in out.iterdir()}


@pytest.mark.parametrize("stem", EXPECTED)
def test_each_figure_is_a_real_image(plotted: tuple[Path, Any], stem: str) -> None:
    out, _ = plotted
    png = out / f"{stem}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    pixels = imread(png)[..., :3]
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    rgb = (pixels.reshape(-1, 3) * 255).round().astype(np.int64)
    colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    assert len(colours) > 20
    inked = (pixels < 0.9).any(axis=-1).mean()
    assert 0.02 < inked < 0.9


@pytest.mark.parametrize("stem", EXPECTED)
def test_each_figure_names_its_commit_and_machine(plotted: tuple[Path, Any], stem: str) -> None:
    out, _ = plotted
    svg = (out / f"{stem}.svg").read_text()
    assert svg.lstrip().startswith("<?xml")
    assert COMMIT[:10] in svg
    assert "testhost: 2 cores, 8.0 GiB" in svg


@pytest.mark.parametrize("stem", ["throughput", "recovery", "scalability", "throughput-mine"])
def test_ec42_has_the_same_colour_in_every_figure(plotted: tuple[Path, Any], stem: str) -> None:
    out, _ = plotted
    pixels = imread(out / f"{stem}.png")[..., :3]
    hex_colour = SCHEME_COLOURS["ec(4,2)"].lstrip("#")
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (0, 2, 4)])
    matches = (np.abs(pixels - rgb).max(axis=-1) < 0.02).sum()
    assert matches > 50


def test_recovery_marks_the_kills_and_the_ratio(plotted: tuple[Path, Any]) -> None:
    out, _ = plotted
    svg = (out / "recovery.svg").read_text()
    assert "kill processor-1, processor-2" in svg
    assert "p99 after/before: 9.0x" in svg  # reactive, one failure
    assert "2 processors killed at once at 6 s" in svg


def test_scalability_marks_oversubscribed_runs(plotted: tuple[Path, Any]) -> None:
    out, _ = plotted
    svg = (out / "scalability.svg").read_text()
    assert "the CPU the run asked for (a core per process) exceeds this machine" in svg
    assert "every run here" in svg  # 6+ processors on 2 cores


@pytest.mark.parametrize("layout", ["empty", "foreign"])
def test_plot_without_results_is_a_clear_error(tmp_path: Path, layout: str) -> None:
    if layout == "foreign":
        (tmp_path / "notes.txt").write_text("not a run")
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "table.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["plot", str(tmp_path), "--out", str(tmp_path / "plots")])
    assert result.exit_code == 2
    assert "no run results in" in result.output
    assert "summary.json" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "plots").exists()


def test_plot_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_plot_leaves_out_unfinished_runs_and_says_so(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "results", "mine", scheme="ec42")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(complete=False, error="the sink exited with code 1")
    (run_dir / "summary.json").write_text(json.dumps(summary))
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "results"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "no finished run" in result.output
    assert "the sink exited with code 1" in result.output


@pytest.mark.parametrize("name", FIGURES)
def test_the_experiment_spec_of_each_figure_validates(name: str) -> None:
    runs = spec.load(EXPERIMENTS / f"{name}.yaml")
    assert runs[0].name == name  # the plot picks its figure by the spec's name
    text = (EXPERIMENTS / f"{name}.yaml").read_text()
    assert text.startswith("#")  # says what it measures and how to scale it up


def test_sealed_reference_results_are_skipped_when_scanning_a_parent(tmp_path: Path) -> None:
    from streamlec_cli.results import SEALED, run_directories

    for part in ("mine/a", "reference/spec/b"):
        (tmp_path / part).mkdir(parents=True)
        (tmp_path / part / "summary.json").write_text("{}")
    (tmp_path / "reference" / SEALED).write_text("")
    assert run_directories([tmp_path]) == [tmp_path / "mine" / "a"]
    assert run_directories([tmp_path / "reference"]) == [tmp_path / "reference" / "spec" / "b"]


def test_plot_uses_the_latest_run_of_each_setting_and_names_the_others(tmp_path: Path) -> None:
    first = write_run(tmp_path / "results", "throughput", scheme="ec42")
    later = first.parent / "later"
    later.mkdir()
    for name in ("summary.json", "meta.json"):
        data = json.loads((first / name).read_text())
        data.update(run_id="later", setting=first.name, start_time=T0 + 60)
        (later / name).write_text(json.dumps(data))
    for name in ("spec.yaml", "batches.csv", "timeline.csv", "events.csv"):
        (later / name).write_bytes((first / name).read_bytes())
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "results"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert str(first) in result.stderr and "--all-runs" in result.stderr
    every = CliRunner().invoke(
        main, ["plot", str(tmp_path / "results"), "--out", str(out), "--all-runs"]
    )
    assert every.exit_code == 0, every.output
    assert str(first) not in every.stderr


def test_runs_on_an_emulated_cluster_make_figures_of_their_own(tmp_path: Path) -> None:
    lan = {
        "emulated": True,
        "asked": {"hosts": 8, "link_bit_s": 200e6, "cpu": 0.2},
        "measured": {"link_bit_s": 191e6, "cpu": 0.2},
        "profile": {"name": "lan-1g", "description": "lan-1g: 1-core hosts on 1 Gbit/s links"},
    }
    root = tmp_path / "results"
    for scheme in ("rep3", "ec42"):
        write_run(root, "throughput", scheme=scheme, throughput=200e3)
        write_run(root, "throughput", scheme=scheme, throughput=50e3, cluster=lan, repeat=1)
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.svg")) == ["throughput", "throughput-lan-1g"]
    emulated = (out / "throughput-lan-1g.svg").read_text()
    assert "emulated cluster of 8 hosts, lan-1g: 1-core hosts on 1 Gbit/s links" in emulated
    assert "emulated cluster" not in (out / "throughput.svg").read_text()


def test_regime_sets_the_ratio_against_link_rate_and_cpu_beside_the_papers(plotted) -> None:
    out, _ = plotted
    svg = (out / "regime.svg").read_text()
    for text in ("paper 1.55x", "paper 5.17x", "EC(4,2) / Rep-3x", "EC(4,2) / Reactive"):
        assert text in svg
    for tick in ("shared", "lan-10g", "lan-1g", "cores-only", "0.1", "0.25"):
        assert tick in svg


def test_recovery_shows_the_items_a_run_lost(plotted: tuple[Path, Any]) -> None:
    out, _ = plotted
    svg = (out / "recovery.svg").read_text()
    # In the panel's title, in the scheme's legend entry and beside the marker where they went.
    assert "items lost: none 12,000" in svg
    assert "none: no fault tolerance: 12,000 items lost" in svg
    assert "none: 12,000 lost" in svg
    assert "X: items lost" in svg


def test_recovery_withholds_a_ratio_with_less_than_its_window_before_the_kill(
    tmp_path: Path,
) -> None:
    root = tmp_path / "results"
    write_run(root, "bursts", scheme="ec42", kill=("processor-1",), kill_at=2.4, spike=9.0)
    write_run(root, "bursts", scheme="reactive", kill=("processor-1",), kill_at=6.0, spike=3.0)
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    svg = (out / "recovery-bursts.svg").read_text()
    assert "p99 after/before: 9.0x" not in svg
    assert "p99 after/before withheld: 2.4 s of stream before the kill" in svg
    assert "withheld when the stream ran less than 5 s before it" in svg
    assert "p99 after/before: 3.0x" in svg  # the reactive run had its 5 s
    assert "X: items lost" not in svg  # nothing was lost here


def test_parameters_draws_a_line_per_code_not_one_whisker_over_both(results_root: Path) -> None:
    from streamlec_cli.plotting import draw_parameters
    from streamlec_cli.results import load_runs

    runs, _ = load_runs([results_root / "parameters"])
    [(_, figure)] = list(draw_parameters(runs))
    throughput = figure.axes[0]
    lines = [c for c in throughput.containers if hasattr(c, "has_yerr")]
    assert len(lines) == 3 * 2  # r = 1, 2, 3, each gaussian and vandermonde
    for line in lines:  # one run per (k, r, code): nothing to spread over
        for segment in line.lines[2][0].get_segments():
            assert segment[0][1] == pytest.approx(segment[1][1])
    labels = [t.get_text() for t in throughput.get_legend().get_texts()]
    assert "r = 2, vandermonde" in labels and "r = 2, gaussian" in labels


def test_intensity_says_it_is_about_work_per_item(plotted: tuple[Path, Any]) -> None:
    out, _ = plotted
    svg = (out / "intensity.svg").read_text()
    assert "work per item" in svg
    assert "K-Means centroids" in svg
    assert "EC(4,2) / rep-3x 1.60x" in svg  # 800 / 500 at each centroid count
    assert "kmeans clusters=2" not in svg  # the ticks are the centroid counts


def test_only_draws_the_figures_named(results_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    args = ["plot", str(results_root), "--out", str(out), "--only", "recovery"]
    result = CliRunner().invoke(main, [*args, "--only", "coding,parameters"])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.png")) == ["coding", "parameters", "recovery"]


def test_only_a_figure_the_runs_do_not_make_says_which_they_make(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_run(root, "mine", scheme="ec42")
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(root), "--out", str(out), "--only", "coding"])
    assert result.exit_code == 2
    assert "make no coding figure" in result.output
    assert "they make: throughput" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    some = CliRunner().invoke(
        main, ["plot", str(root), "--out", str(out), "--only", "coding,throughput"]
    )
    assert some.exit_code == 0, some.output
    assert "make no coding figure" in some.stderr
    assert sorted(p.name for p in out.iterdir()) == ["throughput-mine.png", "throughput-mine.svg"]


def test_format_picks_the_files_written(results_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "plots"
    args = ["plot", str(results_root / "coding"), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--format", "svg", "--format", "pdf"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["coding.pdf", "coding.svg"]
    assert (out / "coding.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("--only", "latency", "throughput, recovery, coding, parameters, scalability"),
        ("--format", "jpg", "png, svg, pdf"),
    ],
)
def test_a_bad_figure_name_or_format_is_one_clear_paragraph(
    results_root: Path, tmp_path: Path, option: str, value: str, allowed: str
) -> None:
    out = tmp_path / "plots"
    result = CliRunner().invoke(main, ["plot", str(results_root), "--out", str(out), option, value])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith("error: ") and "\n" not in message
    assert repr(value) in message and allowed in message
    assert "Traceback" not in result.output
    assert not out.exists()


def test_plot_writes_under_results_by_default_and_never_into_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_run(tmp_path / "results", "mine", scheme="ec42")
    committed = tmp_path / "plots"
    committed.mkdir()
    (committed / "throughput-mine.png").write_bytes(b"the committed figure")
    result = CliRunner().invoke(main, ["plot"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "results" / "plots" / "throughput-mine.png").exists()
    assert [p.name for p in committed.iterdir()] == ["throughput-mine.png"]
    assert (committed / "throughput-mine.png").read_bytes() == b"the committed figure"
    again = CliRunner().invoke(main, ["plot"])  # its own figures are not taken for runs
    assert again.exit_code == 0, again.output


def test_plot_help_names_every_figure_and_format() -> None:
    from streamlec_cli.plotting import FORMATS, KINDS

    result = CliRunner().invoke(main, ["plot", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert ", ".join(KINDS) in text
    assert ", ".join(FORMATS) in text
    assert "[default: results/plots]" in text
