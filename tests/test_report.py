"""``streamlec report``: the paper's ratios recomputed from saved summaries, never invented.

Summaries are written by hand with known numbers, so every expected ratio is exact.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from streamlec_cli.cli import main
from streamlec_cli.results import latency_around

_ids = itertools.count()


def write_summary(
    root: Path,
    spec_name: str,
    scheme: str,
    throughput: float,
    *,
    algorithm: str = "logreg",
    killed: int = 0,
    p99: tuple[float, float] | None = None,
    p50: tuple[float, float] = (10.0, 10.0),
    rate: str | float = "max",
    cluster: dict | None = None,
    **fields: Any,
) -> Path:
    """A run directory holding summary.json and meta.json only; ``p99`` is (before, after)."""
    settings: dict[str, Any] = {
        "none": {"scheme": "none"},
        "reactive": {"scheme": "reactive"},
        "rep3": {"scheme": "rep", "copies": 3},
        "ec42": {"scheme": "ec", "k": 4, "r": 2, "attach": "linear", "incremental": True},
    }[scheme]
    settings = {**settings, **fields}
    run_id = f"{scheme}-{algorithm}-{next(_ids)}"
    run_dir = root / spec_name / run_id
    run_dir.mkdir(parents=True)
    around = None
    if p99 is not None:
        around = {
            "window_s": 5.0,
            "before": {"items": 1000, "p50_ms": p50[0], "p99_ms": p99[0]},
            "after": {"items": 1000, "p50_ms": p50[1], "p99_ms": p99[1]},
            "p99_ratio": p99[1] / p99[0],
        }
    summary = {
        "spec_name": spec_name,
        "run_id": run_id,
        "complete": True,
        "error": None,
        "algorithm": algorithm,
        "dataset": "higgs",
        "processors": 6,
        "batch": 12000,
        "rate": rate,
        "items_in": 600_000,
        "items_out": 600_000,
        "throughput_items_per_s": throughput,
        "latency_around_first_failure": around,
        "failures": [
            {"worker": f"processor-{i}", "time": 1e9 + 6.0, "elapsed_s": 6.0} for i in range(killed)
        ],
        "commit": "feedfacecafe0123456789",
        "machine": {"host": "labhost", "cores": 2, "memory_gib": 8.0, "platform": "Linux"},
        **settings,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    meta = {"run_index": 0, "commit": summary["commit"], "cluster": cluster}
    (run_dir / "meta.json").write_text(json.dumps(meta))
    return run_dir


def report(*paths: Path, extra: tuple[str, ...] = ()) -> tuple[dict[str, list[str]], Any]:
    """Run the command; the claims table as {claim: [paper, measured, measured from]}."""
    result = CliRunner().invoke(main, ["report", *map(str, paths), *extra])
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("claim", "---"):
            rows[cells[0]] = cells[1:]
    return rows, result


def test_throughput_ratios_from_known_numbers(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 900.0)
    write_summary(tmp_path, "throughput", "ec42", 1100.0)  # a repeat: the mean is 1000
    write_summary(tmp_path, "throughput", "reactive", 200.0)
    write_summary(tmp_path, "throughput", "rep3", 500.0)
    write_summary(tmp_path, "throughput", "none", 1200.0)
    rows, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    assert rows["throughput, EC(4,2) / Reactive"][:2] == ["5.17x", "5.00x"]
    assert rows["throughput, EC(4,2) / Rep-3x"][:2] == ["1.55x", "2.00x"]
    assert (
        "mean of 2 runs of EC(4,2) and 1 run of Reactive"
        in rows["throughput, EC(4,2) / Reactive"][2]
    )
    assert "| throughput | logreg | higgs | 6 | 1,200 | 200 | 500 | 1,000 | 5.00x | 2.00x |" in (
        result.stdout
    )
    assert "labhost (2 cores, 8.0 GiB, Linux)" in result.stdout
    assert "`feedfacecafe`" in result.stdout


def test_cpu_table_per_million_items_by_role(tmp_path: Path) -> None:
    cpu = {"source": 0.8, "sink": 0.4, "processor-0": 0.3, "processor-1": 0.5}
    write_summary(tmp_path, "benchmark", "ec42", 1000.0, cpu_seconds_during_stream=cpu)
    write_summary(  # the median of the rep-3x runs: source 1.0, sink 0.6, processors 2.0
        tmp_path,
        "benchmark",
        "rep3",
        500.0,
        machine_idle_during_stream=0.1,
        cpu_seconds_during_stream={
            "source": 1.0,
            "sink": 0.6,
            "processor-0": 1.2,
            "processor-1": 0.8,
        },
    )
    write_summary(
        tmp_path,
        "benchmark",
        "rep3",
        400.0,
        machine_idle_during_stream=0.3,
        cpu_seconds_during_stream={
            "source": 1.2,
            "sink": 0.9,
            "processor-0": 1.5,
            "processor-1": 0.9,
        },
    )
    write_summary(
        tmp_path,
        "benchmark",
        "rep3",
        300.0,
        machine_idle_during_stream=0.2,
        cpu_seconds_during_stream={
            "source": 0.6,
            "sink": 0.3,
            "processor-0": 1.0,
            "processor-1": 0.6,
        },
    )
    write_summary(  # a run with a kill is not a cost baseline
        tmp_path,
        "benchmark",
        "rep3",
        100.0,
        killed=1,
        cpu_seconds_during_stream={"source": 9.0, "sink": 9.0, "processor-0": 9.0},
    )
    _, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    # 600,000 items delivered: 0.8 CPU s is 1.33 s per million items
    # machine idle: the median of 10%, 30% and 20%; "-" for a run that did not record it
    assert "| rep-3x | 3 | 1.67 | 1.00 | 3.33 | 0.00 | 6.00 | 56% | 20% |" in result.stdout
    assert "| ec(4,2) | 1 | 1.33 | 0.67 | 1.33 | 0.00 | 3.33 | 40% | - |" in result.stdout
    assert result.stdout.index("| rep-3x | 3") < result.stdout.index("| ec(4,2) | 1")


def test_runs_differing_in_an_algorithm_parameter_are_separate_settings(tmp_path: Path) -> None:
    for clusters, ec, rep in ((64, 300.0, 200.0), (2, 1000.0, 900.0)):
        params = {"clusters": clusters, "seed": 0}
        for scheme, throughput in (("ec42", ec), ("rep3", rep)):
            write_summary(
                tmp_path,
                "intensity",
                scheme,
                throughput,
                algorithm="kmeans",
                algorithm_params=params,
            )
    rows, result = report(tmp_path)
    assert "| intensity | kmeans clusters=2 | higgs | 6 | 900 | 1,000 | 1.11x |" in result.stdout
    assert "| intensity | kmeans clusters=64 | higgs | 6 | 200 | 300 | 1.50x |" in result.stdout
    assert result.stdout.index("clusters=2 |") < result.stdout.index("clusters=64 |")
    measured, basis = rows["throughput, EC(4,2) / Rep-3x"][1:]
    assert measured == "1.29x"  # sqrt(10/9 * 3/2), not the ratio of pooled means
    assert "2 settings" in basis


def test_throughput_ratio_is_the_geometric_mean_over_settings(tmp_path: Path) -> None:
    for algorithm, ec, reactive in (("logreg", 800.0, 200.0), ("svm", 900.0, 100.0)):
        write_summary(tmp_path, "throughput", "ec42", ec, algorithm=algorithm)
        write_summary(tmp_path, "throughput", "reactive", reactive, algorithm=algorithm)
    rows, _ = report(tmp_path)
    measured, basis = rows["throughput, EC(4,2) / Reactive"][1:]
    assert measured == "6.00x"  # sqrt(4 * 9)
    assert "2 settings" in basis
    assert "4.00x to 9.00x" in basis


def test_runs_with_failures_or_a_fixed_rate_are_not_throughput_runs(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "reactive", 200.0)
    write_summary(tmp_path, "throughput", "reactive", 50.0, killed=1, p99=(10.0, 80.0))
    write_summary(tmp_path, "throughput", "reactive", 100.0, rate=100000.0)
    rows, _ = report(tmp_path)
    assert rows["throughput, EC(4,2) / Reactive"][1] == "5.00x"


def test_ec_variants_other_than_full_streamlec_are_only_a_fallback(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "ec42", 10.0, attach="inputs")
    write_summary(tmp_path, "throughput", "rep3", 500.0)
    rows, _ = report(tmp_path)
    assert rows["throughput, EC(4,2) / Rep-3x"][1] == "2.00x"


def test_latency_ratios_after_one_and_two_failures(tmp_path: Path) -> None:
    write_summary(tmp_path, "recovery", "reactive", 1.0, killed=1, p99=(10.0, 89.0), rate=1e5)
    write_summary(tmp_path, "recovery", "reactive", 1.0, killed=2, p99=(10.0, 140.0), rate=1e5)
    write_summary(
        tmp_path, "recovery", "ec42", 1.0, killed=1, p99=(20.0, 20.4), p50=(8.0, 8.0), rate=1e5
    )
    rows, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    one = rows["latency after 1 failure / before, Reactive"]
    assert one[:2] == ["8.9x", "8.90x (p50: 1.00x)"]
    assert "1 processor killed at 6 s" in one[2]
    assert "open loop at 100,000 items/s" in one[2]
    two = rows["latency after 2 failures / before, Reactive"]
    assert two[:2] == ["14x", "14.00x (p50: 1.00x)"]
    assert "2 processors killed at once at 6 s" in two[2]
    assert rows["latency after 1 failure / before, EC(4,2)"][1] == "1.02x (p50: 1.00x)"


def test_missing_runs_say_not_measured(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "rep3", 500.0)
    rows, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    assert rows["throughput, EC(4,2) / Rep-3x"][1] == "2.00x"
    for claim in (
        "throughput, EC(4,2) / Reactive",
        "latency after 1 failure / before, Reactive",
        "latency after 2 failures / before, Reactive",
        "latency after 1 failure / before, EC(4,2)",
        "latency after 2 failures / before, EC(4,2)",
    ):
        assert rows[claim][1] == "not measured", claim
    assert "experiments/recovery.yaml" in rows["latency after 2 failures / before, Reactive"][2]


def test_unfinished_runs_are_left_out_with_a_note(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    stopped = write_summary(tmp_path, "throughput", "reactive", 200.0)
    summary = json.loads((stopped / "summary.json").read_text())
    summary.update(complete=False, error="interrupted")
    (stopped / "summary.json").write_text(json.dumps(summary))
    rows, result = report(tmp_path)
    assert rows["throughput, EC(4,2) / Reactive"][1] == "not measured"
    assert "interrupted" in result.stderr


def test_out_writes_the_same_markdown(tmp_path: Path) -> None:
    write_summary(tmp_path / "results", "throughput", "ec42", 1000.0)
    write_summary(tmp_path / "results", "throughput", "reactive", 200.0)
    target = tmp_path / "docs" / "report.md"
    _, result = report(tmp_path / "results", extra=("--out", str(target)))
    assert result.exit_code == 0, result.output
    assert target.read_text() == result.stdout
    assert "| throughput, EC(4,2) / Reactive | 5.17x | 5.00x |" in target.read_text()


def test_report_without_results_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("no runs here")
    _, result = report(tmp_path)
    assert result.exit_code == 2
    assert "no run results in" in result.output
    assert "Traceback" not in result.output


def test_latency_ratios_prefer_open_loop_runs(tmp_path: Path) -> None:
    # A closed-loop run with a crash (e.g. the parameters spec): its latency is queueing.
    write_summary(tmp_path, "parameters", "ec42", 1.0, killed=1, p99=(10.0, 30.0))
    rows, _ = report(tmp_path)
    closed = rows["latency after 1 failure / before, EC(4,2)"]
    assert closed[1].startswith("3.00x")
    assert "closed loop (latency includes queueing)" in closed[2]
    write_summary(tmp_path, "recovery", "ec42", 1.0, killed=1, p99=(20.0, 20.4), rate=1e5)
    rows, _ = report(tmp_path)
    assert rows["latency after 1 failure / before, EC(4,2)"][1].startswith("1.02x")


def test_the_throughput_spec_alone_gives_the_headline_when_it_has_the_runs(
    tmp_path: Path,
) -> None:
    write_summary(tmp_path, "scalability", "ec42", 300.0, processors=24)
    write_summary(tmp_path, "scalability", "rep3", 300.0, processors=24)
    rows, _ = report(tmp_path)
    assert rows["throughput, EC(4,2) / Rep-3x"][1] == "1.00x"  # no throughput spec: any
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "rep3", 500.0)
    rows, _ = report(tmp_path)
    assert rows["throughput, EC(4,2) / Rep-3x"][1] == "2.00x"
    assert "spec throughput" in rows["throughput, EC(4,2) / Rep-3x"][2]


def test_latency_counts_items_by_when_their_results_were_delivered(tmp_path: Path) -> None:
    """Items that arrived just before the kill and waited for the recovery count as after."""
    kill = 1e9 + 6.0
    run_dir = write_summary(
        tmp_path, "recovery", "reactive", 1.0, killed=1, p99=(100.0, 100.0), rate=1000.0
    )
    arrivals = kill - 2.0 + np.arange(4000) / 1000.0  # 1000 items/s from 2 s before the kill
    latency = np.full(arrivals.size, 0.1, dtype=np.float32)
    latency[(arrivals >= kill - 0.5) & (arrivals < kill)] = 1.0  # delayed by the recovery
    latency.tofile(run_dir / "latency.f32")
    rows = ["batch,offset,count,t_arrival_first,t_arrival_last,replayed"]
    for b in range(4):
        first, last = float(arrivals[b * 1000]), float(arrivals[b * 1000 + 999])
        rows.append(f"{b},{b * 1000},1000,{first!r},{last!r},0")
    (run_dir / "batches.csv").write_text("\n".join(rows) + "\n")
    around = latency_around(run_dir, kill, 5.0)
    assert around["before"]["p99_ms"] == pytest.approx(100.0, rel=1e-6)
    assert around["after"]["p99_ms"] == pytest.approx(1000.0, rel=1e-6)
    assert around["p99_ratio"] == pytest.approx(10.0)  # by arrival it would be 0.1x


def test_cpu_table_prefers_the_throughput_spec_like_the_ratios(tmp_path: Path) -> None:
    light = {"source": 0.6, "sink": 0.6, "processor-0": 0.6}
    heavy = {"source": 6.0, "sink": 6.0, "processor-0": 60.0}
    write_summary(tmp_path, "throughput", "ec42", 1000.0, cpu_seconds_during_stream=light)
    write_summary(tmp_path, "intensity", "ec42", 100.0, cpu_seconds_during_stream=heavy)
    _, result = report(tmp_path)
    assert "Runs of spec throughput:" in result.stdout
    assert "| ec(4,2) | 1 | 1.00 | 1.00 | 1.00 | 0.00 | 3.00 | 33% |" in result.stdout


def test_reactive_log_variants_apart_and_storage_counted(tmp_path: Path) -> None:
    """The storage workers' CPU has a column and counts in the total; reactive with its log on
    the source is a variant of its own, and the EC ratio uses the storage-log runs."""
    cpu = {"source": 0.6, "sink": 0.6, "processor-0": 0.6, "storage-0": 0.3, "storage-1": 0.3}
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(
        tmp_path,
        "throughput",
        "reactive",
        250.0,
        log="storage",
        replicas=2,
        cpu_seconds_during_stream=cpu,
    )
    write_summary(tmp_path, "throughput", "reactive", 500.0, log="source", replicas=0)
    _, result = report(tmp_path)
    assert "| reactive | 1 | 1.00 | 1.00 | 1.00 | 1.00 | 4.00 | 25% |" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "EC(4,2) / Reactive" in line)
    assert "| 4.00x |" in row  # against the storage-log run (250 items/s), not 500


def rerun(run_dir: Path, name: str, throughput: float, start: float) -> Path:
    """A later run of the same setting as ``run_dir``, in a directory of its own."""
    later = run_dir.parent / name
    later.mkdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(run_id=name, setting=summary["run_id"], throughput_items_per_s=throughput)
    (later / "summary.json").write_text(json.dumps(summary))
    (later / "meta.json").write_text(json.dumps({"run_index": 0, "start_time": start}))
    return later


def test_the_latest_run_of_a_setting_is_used_and_the_earlier_ones_are_named(
    tmp_path: Path,
) -> None:
    first = write_summary(tmp_path, "throughput", "ec42", 1000.0)
    rerun(first, "ec42-again", 3000.0, start=2e9)  # the latest, whatever the name's order
    rerun(first, "ec42-between", 2000.0, start=1.9e9)
    write_summary(tmp_path, "throughput", "reactive", 200.0)
    rows, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    assert rows["throughput, EC(4,2) / Reactive"][1] == "15.00x"
    assert str(first) in result.stderr and "ec42-between" in result.stderr
    assert "--all-runs" in result.stderr
    rows, result = report(tmp_path, extra=("--all-runs",))
    assert rows["throughput, EC(4,2) / Reactive"][1] == "10.00x"  # the mean of all three
    assert "--all-runs" not in result.stderr


def test_committed_reference_results_in_the_old_layout_are_all_read(tmp_path: Path) -> None:
    reference = Path(__file__).resolve().parents[1] / "results" / "reference"
    summaries = [  # a spec folder sealed of its own (motivation) is read only when named,
        json.loads(path.read_text())  # and a pair of a run of several is part of its run
        for path in reference.rglob("summary.json")
        if not any(
            (folder / ".streamlec-reference").exists()
            for folder in path.parents[1 : len(path.relative_to(reference).parts) - 1]
        )
        and not (path.parents[1] / "summary.json").exists()
    ]
    finished = [run for run in summaries if run.get("complete") and not run.get("error")]
    assert len(finished) >= 218  # the committed runs (the old layout) and those added since
    _, result = report(reference)
    assert result.exit_code == 0, result.output
    assert f"{len(finished)} runs finished" in result.stdout
    assert "left out" not in result.stderr


def test_the_readmes_claims_table_is_what_report_prints_from_the_reference_results():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text().split("## Reproducing the paper", 1)[1]
    table = [line for line in readme.splitlines() if line.startswith("|")]
    table = table[: table.index("|---|---|---|---|---|") + 7]  # its header, rule and six claims
    assert len(table) == 8 and table[0].startswith("| claim | paper |")
    _, result = report(root / "results" / "reference")
    assert result.exit_code == 0, result.output
    printed = result.stdout.splitlines()
    assert [line for line in table if line not in printed] == []


def test_tables_as_csv_and_json_for_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    cpu = {"source": 0.6, "sink": 0.3, "processor-0": 0.9}
    write_summary(tmp_path, "throughput", "ec42", 1000.0, cpu_seconds_during_stream=cpu)
    write_summary(tmp_path, "throughput", "reactive", 200.0, cpu_seconds_during_stream=cpu)
    write_summary(tmp_path, "throughput", "rep3", 500.0)
    write_summary(tmp_path, "recovery", "ec42", 1000.0, killed=1, rate=300000, p99=(10, 12))
    tables, data = tmp_path / "tables", tmp_path / "out" / "report.json"
    _, result = report(tmp_path, extra=("--csv", str(tables), "--json", str(data)))
    assert result.exit_code == 0, result.output
    claims = pd.read_csv(tables / "claims.csv").set_index("claim")
    assert list(claims.columns) == ["cluster", "paper", "measured", "basis", "ratio", "p50_ratio"]
    assert set(claims["cluster"]) == {"shared cores"}
    assert claims.loc["throughput, EC(4,2) / Reactive", "ratio"] == pytest.approx(5.0)
    assert claims.loc["latency after 1 failure / before, EC(4,2)", "ratio"] == pytest.approx(1.2)
    assert pd.isna(claims.loc["latency after 2 failures / before, Reactive", "ratio"])
    throughput = pd.read_csv(tables / "throughput.csv")
    assert list(throughput.columns) == [
        "spec",
        "cluster",
        "algorithm",
        "dataset",
        "processors",
        "reactive",
        "rep-3x",
        "ec(4,2)",
        "EC(4,2) / Reactive",
        "EC(4,2) / Rep-3x",
    ]
    assert throughput.loc[0, "EC(4,2) / Rep-3x"] == pytest.approx(2.0)
    cpu_table = pd.read_csv(tables / "cpu.csv").set_index("scheme")
    assert cpu_table.loc["ec(4,2)", "total"] == pytest.approx(1.8e6 / 600_000)
    assert cpu_table.loc["ec(4,2)", "processors_share"] == pytest.approx(0.5)
    loaded = json.loads(data.read_text())
    for name in ("claims", "throughput", "cpu"):
        from_json = pd.DataFrame(loaded[name])
        from_csv = pd.read_csv(tables / f"{name}.csv")
        assert list(from_json.columns) == list(from_csv.columns)
        assert len(from_json) == len(from_csv)


def test_a_run_directory_of_any_name_is_labelled_by_its_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink started by hand writes into the user's ``--run-dir`` (here ``hand/run``), not
    ``<spec name>/<run id>``: the tables name the spec the run ran, never the folder above."""
    written = write_summary(tmp_path / "results", "byhand", "ec42", 1000.0)
    (tmp_path / "hand").mkdir()
    written.rename(tmp_path / "hand" / "run")
    monkeypatch.chdir(tmp_path / "hand")
    row = "| byhand | logreg | higgs | 6 | 1,000 |"
    for path in (Path("run"), tmp_path / "hand" / "run"):
        _, result = report(path)
        assert result.exit_code == 0, result.output
        assert row in result.stdout


LAN_1G = {
    "launcher": "local",
    "emulated": True,
    "asked": {"hosts": 8, "link_bit_s": 200e6, "cpu": 0.2},
    "measured": {"link_bit_s": 190e6, "cpu": 0.2},
    "profile": {"name": "lan-1g", "description": "lan-1g: 1-core hosts on 1 Gbit/s links"},
}


def test_runs_on_shared_cores_and_on_an_emulated_cluster_are_measured_apart(tmp_path: Path):
    # the same spec run twice: on this machine's shared cores, then with --set
    # cluster.emulate=lan-1g; each condition gets its own ratio, never a mix of both
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "rep3", 800.0)
    write_summary(tmp_path, "throughput", "ec42", 300.0, cluster=LAN_1G)
    slower = {**LAN_1G, "measured": {"link_bit_s": 180e6, "cpu": 0.18}}
    write_summary(tmp_path, "throughput", "rep3", 150.0, cluster=slower)
    _, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "| claim | paper | shared cores | lan-1g | measured from |" in lines
    (row,) = [line for line in lines if line.startswith("| throughput, EC(4,2) / Rep-3x")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:4] == ["1.55x", "1.25x", "2.00x"]
    assert "shared cores: " in cells[4] and "lan-1g: " in cells[4]
    assert "on lan-1g" in cells[4]
    assert (
        "(the emulated runs' workers on an emulated cluster of 8 hosts, lan-1g: 1-core hosts "
        "on 1 Gbit/s links, measured 0.18 to 0.20 CPU, 180 to 190 Mbit/s in 2 runs)"
        in result.stdout
    )


def test_the_regime_specs_conditions_get_no_claims_column_of_their_own(tmp_path: Path):
    # the regime spec sweeps conditions to set them side by side in its own table and figure;
    # the claims keep one column per condition of the other specs
    write_summary(tmp_path, "throughput", "ec42", 1000.0)
    write_summary(tmp_path, "throughput", "rep3", 800.0)
    cores_only = {**LAN_1G, "profile": {"name": "cores-only", "description": "cores-only"}}
    write_summary(tmp_path, "regime", "ec42", 300.0, cluster=cores_only)
    write_summary(tmp_path, "regime", "rep3", 150.0, cluster=cores_only)
    _, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    assert "| claim | paper | measured here | measured from |" in result.stdout.splitlines()
    assert "| regime | cores-only |" in result.stdout


def test_prediction_quality_table_from_the_runs_metrics(tmp_path: Path) -> None:
    """Classification runs of one setting share a row whatever their scheme; runs without
    click-through metrics (other algorithms, older summaries) are not in it."""

    def metrics(auc: float, loss: float | None, kind: str = "probability") -> dict:
        return {
            "prediction_kind": kind,
            "roc_auc": auc,
            "log_loss": loss,
            "accuracy": 0.95,
            "positive_rate": 0.05,
            "majority_accuracy": 0.95,
        }

    write_summary(tmp_path, "ctr", "ec42", 900.0, metrics=metrics(0.71, 0.19))
    write_summary(tmp_path, "ctr", "rep3", 500.0, metrics=metrics(0.71, 0.19))
    write_summary(tmp_path, "ctr", "none", 500.0, metrics=metrics(0.70, 0.20))  # lost items
    write_summary(tmp_path, "ctr", "ec42", 900.0, algorithm="svm", metrics=metrics(0.69, None))
    write_summary(tmp_path, "ctr", "ec42", 900.0, algorithm="linreg", metrics={"loss": 1.0})
    _, result = report(tmp_path, extra=("--csv", str(tmp_path / "tables")))
    assert result.exit_code == 0, result.output
    assert "### Prediction quality" in result.stdout
    section = result.stdout.split("### Prediction quality", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ctr |")]
    assert (
        "| ctr | logreg | higgs | 600,000 | 3 | 5.0% | 95.0% | 95.0% | 0.1900 | 0.7100 |"
        in (rows[0])
    )
    assert rows[0].endswith("| 1.0e-02 |")
    assert "| ctr | svm | higgs | 600,000 | 1 | 5.0% | 95.0% | 95.0% | - | 0.6900 |" in rows[1]
    assert not [row for row in rows if "linreg" in row]
    import pandas as pd

    table = pd.read_csv(tmp_path / "tables" / "quality.csv")
    assert table["roc_auc"].tolist() == [0.71, 0.69]


def test_no_prediction_quality_table_without_classification_metrics(tmp_path: Path) -> None:
    write_summary(tmp_path, "throughput", "ec42", 900.0)
    _, result = report(tmp_path)
    assert result.exit_code == 0 and "Prediction quality" not in result.stdout
