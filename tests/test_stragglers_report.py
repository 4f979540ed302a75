"""Stragglers in ``streamlec plot`` and ``streamlec report``: the figure, the table, the claim.

Run directories are written by hand in the results contract's format (summary.json,
meta.json, spec.yaml, batches.csv, latency.f32, events.csv) with known numbers: each stream
delivers 10,000 items/s for 12 s, every item ``before_ms`` late except those that arrive
during the slowdown (4 s to 8 s), ``during_ms`` late. The summaries' latency around the
slowdown is given, as the report reads it; the figure reads the items' latencies.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from matplotlib.image import imread
from test_report import LAN_1G

from streamlec_cli.cli import main
from streamlec_cli.plotting import DELIVERY_BIN, latency_by_delivery

COMMIT = "0123456789abcdef0123456789abcdef01234567"
T0 = 1_800_000_000.0  # unix time the synthetic streams start
RATE = 10_000  # items per second
BATCH = 1_000  # items: a batch every 0.1 s
BATCHES = 120  # 12 s of stream
WINDOW = (4.0, 8.0)  # seconds into the stream the processors run slow
SCHEMES: dict[str, dict[str, Any]] = {
    "none": {"scheme": "none"},
    "reactive": {"scheme": "reactive", "log": "storage"},
    "rep3": {"scheme": "rep", "copies": 3},
    "ec42": {"scheme": "ec", "k": 4, "r": 2, "attach": "linear", "incremental": True},
}
_ids = itertools.count()


def write_run(
    root: Path,
    scheme: str,
    *,
    spec_name: str = "stragglers",
    slow: tuple[str, ...] = ("processor-2",),
    slowdown: float = 5.0,
    before_ms: float = 10.0,
    during_ms: float = 10.0,
    lost: int = 0,
    reference_error: float | None = 4e-16,
    rate: float | str = float(RATE),
    throughput: float = float(RATE),
    cluster: dict | None = None,
    **fields: Any,
) -> Path:
    """One finished run (``fields`` added to its summary); returns its directory. ``slow``
    processors ran ``slowdown`` times slower during ``WINDOW``; ``lost`` items (at most a
    batch) were lost at 6 s.

    The summary's p50, p99 and p99.9 are 0.6, 1 and 1.2 times ``before_ms`` before the
    slowdown and ``during_ms`` during it.
    """
    run_id = f"{scheme}-{'_'.join(slow) or 'fast'}-{next(_ids)}"
    run_dir = root / spec_name / run_id
    run_dir.mkdir(parents=True)
    windows = [
        {
            "index": i,
            "worker": worker,
            "slowdown": slowdown,
            "how": "runs 20 ms of every 100 ms (SIGSTOP/SIGCONT)",
            "start": T0 + WINDOW[0],
            "end": T0 + WINDOW[1],
        }
        for i, worker in enumerate(slow)
    ]

    def span(ms: float) -> dict[str, Any]:
        return {"items": 40_000, "p50_ms": 0.6 * ms, "p99_ms": ms, "p99.9_ms": 1.2 * ms}

    during = (
        {
            "by": "delivery",
            "before": span(before_ms),
            "during": span(during_ms),
            "after": span(before_ms),
            "p50_ratio": during_ms / before_ms,
            "p99_ratio": during_ms / before_ms,
            "p99.9_ratio": during_ms / before_ms,
        }
        if slow
        else None
    )
    machine = {"host": "testhost", "cores": 2, "memory_gib": 8.0, "platform": "Linux-test"}
    items = BATCH * BATCHES
    summary = {
        "spec_name": spec_name,
        "run_id": run_id,
        "complete": True,
        "error": None,
        "algorithm": "logreg",
        "dataset": "higgs",
        "processors": 6,
        "k": None,
        "r": None,
        "copies": None,
        **SCHEMES[scheme],
        "batch": BATCH,
        "rate": rate,
        "items_in": items,
        "items_out": items - lost,
        "items_lost": lost,
        "throughput_items_per_s": throughput,
        "latency_ms": {"p50": before_ms / 2, "p99": during_ms, "max": during_ms},
        "latency_around_first_failure": None,
        "stragglers": windows,
        "latency_during_slowdown": during,
        "failures": [],
        "reference_max_rel_err": reference_error,
        "reference": {
            "max_rel_err": reference_error,
            "matches": reference_error is not None and reference_error <= 1e-9,
        },
        "commit": COMMIT,
        "machine": machine,
        **fields,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    meta = {
        "spec_name": spec_name,
        "run_id": run_id,
        "run_index": 0,
        "commit": COMMIT,
        **machine,
        "versions": {"python": "3.11.7", "streamlec": "0.1.0", "numpy": "2.0"},
        "cluster": cluster,
    }
    (run_dir / "meta.json").write_text(json.dumps(meta))
    planned = [
        {"worker": worker, "slowdown": slowdown, "from": WINDOW[0], "to": WINDOW[1]}
        for worker in slow
    ]
    (run_dir / "spec.yaml").write_text(
        yaml.safe_dump({"name": spec_name, "failures": [], "stragglers": planned})
    )
    arrivals = T0 + np.arange(items) / RATE
    slowed = (arrivals >= T0 + WINDOW[0]) & (arrivals < T0 + WINDOW[1])
    latency = np.where(slowed, during_ms, before_ms).astype(np.float32) / 1e3
    lost_batch = int(6.0 * RATE / BATCH) if lost else -1
    rows = [
        "batch,epoch,offset,count,items_lost,decoded_items,recovery_round,model_version,"
        "loss,accuracy,t_arrival_first,t_arrival_last,t_final,replayed,missing_slots"
    ]
    for b in range(BATCHES):
        first, last = float(arrivals[b * BATCH]), float(arrivals[(b + 1) * BATCH - 1])
        final = last + float(latency[(b + 1) * BATCH - 1])
        gone = lost if b == lost_batch else 0
        latency[b * BATCH : b * BATCH + gone] = np.nan
        rows.append(f"{b},0,{b * BATCH},{BATCH},{gone},0,0,{b},0.69,0.53,{first!r},{last!r},")
        rows[-1] += f"{final!r},0,"
    (run_dir / "batches.csv").write_text("\n".join(rows) + "\n")
    latency.tofile(run_dir / "latency.f32")
    (run_dir / "events.csv").write_text(f'time,worker,event,detail\n{T0 - 1:.6f},sink,spawned,""\n')
    return run_dir


def sweep(root: Path, **fields: Any) -> None:
    """The stragglers spec's eight runs: each scheme with one and with two slow processors."""
    during = {"none": 37.7, "reactive": 34.2, "rep3": 10.0, "ec42": 10.7}
    for slow in (("processor-2",), ("processor-2", "processor-3")):
        for scheme, ms in during.items():
            write_run(root, scheme, slow=slow, during_ms=ms + len(slow) - 1, **fields)


def report(*paths: Path, extra: tuple[str, ...] = ()) -> tuple[list[str], Any]:
    """Run the command; the stragglers section's lines and the result."""
    result = CliRunner().invoke(main, ["report", *map(str, paths), *extra])
    lines = result.stdout.splitlines()
    start = lines.index("### Stragglers (latency while processors run slow)")
    section = list(itertools.takewhile(lambda line: not line.startswith("#"), lines[start + 1 :]))
    return section, result


def table(section: list[str]) -> list[dict[str, str]]:
    """The stragglers table's rows, by column header."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section]
    rows = [row for row in rows if len(row) > 1 and not set(row[0]) <= {"-"}]
    header, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def claim(section: list[str]) -> str:
    (line,) = [line for line in section if "p99 latency during a 5x slowdown" in line]
    return line


# -- report ----------------------------------------------------------------------------------


def test_the_stragglers_table_gives_each_runs_latency_before_and_during(tmp_path: Path) -> None:
    sweep(tmp_path)
    write_run(
        tmp_path, "none", slow=("processor-1",), during_ms=50.0, lost=300, reference_error=None
    )
    section, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    rows = table(section)
    assert len(rows) == 9
    assert list(rows[0]) == [
        "scheme",
        "slow processors",
        "p50 before (ms)",
        "p50 during",
        "p99 before",
        "p99 during",
        "p99.9 before",
        "p99.9 during",
        "p99 during / before",
        "lost",
        "reference error",
    ]
    none = next(row for row in rows if row["slow processors"] == "processor-2 at 5x for 4.0 s")
    assert none["scheme"] == "none"
    assert [none[key] for key in list(none)[2:]] == [
        "6.0", "22.6", "10.0", "37.7", "12.0", "45.2", "3.77x", "0", "4.0e-16",
    ]  # fmt: skip
    two = [row for row in rows if row["slow processors"].startswith("processor-2, processor-3")]
    assert [row["scheme"] for row in two] == ["none", "reactive", "rep-3x", "ec(4,2)"]
    assert two[0]["slow processors"] == "processor-2, processor-3 at 5x for 4.0 s"
    assert [row["p99 during / before"] for row in two] == ["3.87x", "3.52x", "1.10x", "1.17x"]
    lossy = next(row for row in rows if row["slow processors"].startswith("processor-1"))
    assert (lossy["lost"], lossy["reference error"], lossy["p99 during / before"]) == (
        "300",
        "-",
        "5.00x",
    )


def test_the_claim_is_measured_from_one_slow_processor_at_5x(tmp_path: Path) -> None:
    sweep(tmp_path)
    section, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    line = claim(section)
    assert line.startswith(
        "EC(4,2)'s p99 latency during a 5x slowdown of one processor is 1.07 times before "
        "(claim: within 1.3x); none's is 3.77 times (claim: more than 3x)."
    )
    assert "EC(4,2): 1 run; none: 1 run" in line
    assert "open loop at 10,000 items/s" in line and "spec stragglers" in line


def test_the_claim_is_the_geometric_mean_of_the_runs_that_fit_it(tmp_path: Path) -> None:
    write_run(tmp_path, "ec42", during_ms=10.0)
    write_run(tmp_path, "ec42", during_ms=12.1, spec_name="mine")
    # Neither two slow processors nor another slowdown count.
    write_run(tmp_path, "ec42", slow=("processor-2", "processor-3"), during_ms=90.0)
    write_run(tmp_path, "ec42", slowdown=3.0, during_ms=90.0)
    write_run(tmp_path, "none", during_ms=40.0)
    section, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    line = claim(section)
    assert "is 1.10 times before (claim: within 1.3x)" in line  # sqrt(1.0 * 1.21)
    assert "none's is 4.00 times (claim: more than 3x)" in line
    assert "EC(4,2): geometric mean of 2 runs" in line
    assert "spec mine, stragglers" in line
    assert len(table(section)) == 5


def test_the_claim_prefers_open_loop_runs(tmp_path: Path) -> None:
    write_run(tmp_path, "ec42", during_ms=11.0)
    write_run(tmp_path, "ec42", during_ms=50.0, rate="max")  # latency here is queueing
    write_run(tmp_path, "none", during_ms=50.0, rate="max")
    section, _ = report(tmp_path)
    line = claim(section)
    assert "is 1.10 times before" in line
    assert "none's is 5.00 times" in line  # its only run
    assert "closed loop" in line and "open loop at 10,000 items/s" in line


def test_without_such_runs_the_claim_says_not_measured(tmp_path: Path) -> None:
    write_run(tmp_path, "ec42", slow=())  # no stragglers: not a stragglers run at all
    section, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    assert not [line for line in section if line.startswith("|")]
    line = claim(section)
    assert "EC(4,2)'s p99 latency during a 5x slowdown of one processor is not measured" in line
    assert "none's is not measured" in line
    assert "experiments/stragglers.yaml" in line
    assert not re.search(r"\d\.\d\d times", line)


def test_a_scheme_without_runs_is_not_measured_beside_one_with_them(tmp_path: Path) -> None:
    write_run(tmp_path, "ec42", during_ms=10.7)
    write_run(tmp_path, "none", slow=("processor-2", "processor-3"), during_ms=40.0)
    section, _ = report(tmp_path)
    line = claim(section)
    assert "is 1.07 times before" in line
    assert "none's is not measured (claim: more than 3x)" in line
    assert "none: needs a run with one processor slowed 5x" in line


def test_runs_with_slow_processors_stay_out_of_the_other_tables_and_claims(tmp_path: Path):
    cpu = {"source": 1.2, "sink": 1.2, "processor-0": 1.2}
    normal = {"rate": "max", "spec_name": "throughput", "cpu_seconds_during_stream": cpu}
    write_run(tmp_path, "ec42", slow=(), throughput=1000.0, **normal)
    write_run(tmp_path, "rep3", slow=(), throughput=500.0, **normal)
    slowed = {**normal, "cpu_seconds_during_stream": {role: 60.0 for role in cpu}}
    write_run(tmp_path, "ec42", throughput=10.0, **slowed)
    killed = {  # a processor killed while another ran slow: no measure of a failure alone
        "failures": [{"worker": "processor-1", "time": T0 + 6.0, "elapsed_s": 6.0}],
        "latency_around_first_failure": {
            "window_s": 5.0,
            "before": {"items": 1000, "p50_ms": 8.0, "p99_ms": 20.0},
            "after": {"items": 1000, "p50_ms": 8.0, "p99_ms": 20.4},
            "p99_ratio": 1.02,
        },
    }
    write_run(tmp_path, "ec42", spec_name="recovery", **killed)
    _, result = report(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    (row,) = [line for line in lines if line.startswith("| throughput, EC(4,2) / Rep-3x")]
    assert "| 2.00x |" in row  # 1,000 / 500; with the slowed run it would be 505 / 500
    assert "| throughput | logreg | higgs | 6 | 500 | 1,000 | 2.00x |" in lines
    (ec,) = [line for line in lines if line.startswith("| ec(4,2) | 1 | ")]  # one run, not 2
    assert "| 10.00 | 10.00 | 10.00 |" in ec  # CPU seconds per million items: 1.2 / 120,000
    ec_failure = "| latency after 1 failure / before, EC(4,2) | negligible (about 1x) |"
    (failure,) = [line for line in lines if line.startswith(ec_failure)]
    assert failure.startswith(ec_failure + " not measured |")


def test_each_condition_gets_its_own_claim(tmp_path: Path) -> None:
    write_run(tmp_path, "ec42", during_ms=10.7)
    write_run(tmp_path, "none", during_ms=37.7)
    write_run(tmp_path, "ec42", during_ms=20.0, cluster=LAN_1G)
    write_run(tmp_path, "none", during_ms=90.0, cluster=LAN_1G)
    section, _ = report(tmp_path)
    lines = [line for line in section if "p99 latency during a 5x slowdown" in line]
    assert len(lines) == 2
    assert lines[0].startswith("On shared cores: EC(4,2)'s") and "is 1.07 times" in lines[0]
    assert lines[1].startswith("On lan-1g: EC(4,2)'s") and "is 2.00 times" in lines[1]
    assert "none's is 9.00 times" in lines[1]
    assert [row["where"] for row in table(section)] == ["shared cores"] * 2 + ["lan-1g"] * 2


def test_the_stragglers_table_as_csv_and_json(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    sweep(tmp_path / "results")
    csv_dir, json_file = tmp_path / "tables", tmp_path / "report.json"
    extra = ("--csv", str(csv_dir), "--json", str(json_file))
    _, result = report(tmp_path / "results", extra=extra)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(csv_dir / "stragglers.csv")
    assert len(frame) == 8
    one = frame[(frame["scheme"] == "ec(4,2)") & (frame["slowed"] == 1)].iloc[0]
    assert one["p99_ratio"] == pytest.approx(1.07)
    assert one["p99.9_during_ms"] == pytest.approx(12.84)
    assert one["items_lost"] == 0
    assert one["reference_error"] == pytest.approx(4e-16)
    loaded = json.loads(json_file.read_text())["stragglers"]
    assert list(pd.DataFrame(loaded).columns) == list(frame.columns)
    empty = tmp_path / "empty"
    write_run(empty, "ec42", slow=())
    _, result = report(empty, extra=("--csv", str(tmp_path / "none")))
    assert result.exit_code == 0, result.output
    header = (tmp_path / "none" / "stragglers.csv").read_text().splitlines()
    assert header == [",".join(frame.columns)]


# -- figure ----------------------------------------------------------------------------------


def plot(root: Path, out: Path, *extra: str) -> Any:
    return CliRunner().invoke(main, ["plot", str(root), "--out", str(out), *extra])


def test_plot_only_stragglers_writes_the_figure(tmp_path: Path) -> None:
    sweep(tmp_path / "results")
    out = tmp_path / "plots"
    result = plot(tmp_path / "results", out, "--only", "stragglers")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["stragglers.png", "stragglers.svg"]
    pixels = imread(out / "stragglers.png")[..., :3]
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800
    assert 0.02 < (pixels < 0.9).any(axis=-1).mean() < 0.9
    svg = (out / "stragglers.svg").read_text()
    assert "1 slow processor: processor-2 5x slower from 4 s to 8 s" in svg
    assert "2 slow processors: processor-2 and processor-3 5x slower from 4 s to 8 s" in svg
    for percentile in ("p50", "p99", "p99.9"):
        assert f"{percentile} of the items delivered in each 250 ms" in svg
    assert "p99 during/before 3.77x, 0 lost, exact (error 4e-16)" in svg  # none, one slow
    assert "p99 during/before 1.07x, 0 lost, exact (error 4e-16)" in svg  # ec(4,2), one slow
    assert "open loop at 10,000 items per s" in svg
    assert COMMIT[:10] in svg and "testhost: 2 cores, 8.0 GiB" in svg
    assert "X: items lost" not in svg  # nothing was lost here


def test_the_figure_shows_a_run_that_lost_items_or_is_not_exact(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_run(root, "ec42", during_ms=10.7)
    write_run(root, "none", during_ms=37.7, lost=1000, reference_error=2e-3)
    out = tmp_path / "plots"
    result = plot(root, out)
    assert result.exit_code == 0, result.output
    svg = (out / "stragglers.svg").read_text()
    assert "items lost: none 1,000" in svg  # in the row's title
    assert "1,000 items lost, NOT exact (error 2.0e-03)" in svg  # in the legend
    assert "none: 1,000 lost" in svg  # beside the X where its batch ended
    assert "X: items lost" in svg


def test_runs_without_stragglers_make_no_stragglers_figure(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for scheme in ("none", "ec42"):
        write_run(root, scheme, slow=(), spec_name="stragglers")
    out = tmp_path / "plots"
    result = plot(root, out)
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.png")) == ["throughput-stragglers"]
    only = plot(root, tmp_path / "only", "--only", "stragglers")
    assert only.exit_code == 2
    assert "make no stragglers figure" in only.output
    assert not (tmp_path / "only").exists()


def test_a_specs_runs_without_stragglers_make_their_own_figure(tmp_path: Path) -> None:
    root = tmp_path / "results"
    for scheme in ("none", "ec42"):
        write_run(root, scheme, spec_name="mine", during_ms=20.0)
        write_run(root, scheme, spec_name="mine", slow=())
    out = tmp_path / "plots"
    result = plot(root, out)
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.png")) == ["stragglers-mine", "throughput-mine"]
    assert "slow processor" not in (out / "throughput-mine.svg").read_text()
    assert "spec mine: 2 runs" in (out / "stragglers-mine.svg").read_text()


def test_runs_on_an_emulated_cluster_get_a_figure_of_their_own(tmp_path: Path) -> None:
    root = tmp_path / "results"
    write_run(root, "ec42", during_ms=10.7)
    write_run(root, "ec42", during_ms=20.0, cluster=LAN_1G)
    out = tmp_path / "plots"
    result = plot(root, out, "--only", "stragglers", "--format", "svg")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["stragglers-lan-1g.svg", "stragglers.svg"]
    emulated = (out / "stragglers-lan-1g.svg").read_text()
    assert "emulated cluster of 8 hosts, lan-1g: 1-core hosts on 1 Gbit/s links" in emulated
    assert "p99 during/before 2.00x" in emulated
    assert "emulated cluster" not in (out / "stragglers.svg").read_text()


def test_latency_per_bin_counts_items_by_when_they_were_delivered(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, "none", during_ms=40.0, lost=1000)
    bins = latency_by_delivery(run_dir, T0)
    assert list(bins.columns) == ["p50", "p99", "p99.9"]
    assert bins.index[0] == 0.0 and bins.index[1] == pytest.approx(DELIVERY_BIN)
    times = bins.index.to_numpy()
    inside = (times >= WINDOW[0] + DELIVERY_BIN) & (times < WINDOW[1] - DELIVERY_BIN)
    outside = (times < WINDOW[0] - DELIVERY_BIN) | (times > WINDOW[1] + DELIVERY_BIN)
    assert inside.sum() == 14 and outside.sum() > 20
    assert np.allclose(bins.loc[inside].to_numpy(), 40.0)
    assert np.allclose(bins.loc[outside].dropna().to_numpy(), 10.0)
    # The items that arrived during the slowdown were delivered 40 ms later: the bin where it
    # ends holds both kinds, and the batch lost at 6 s counts nowhere.
    at_end = bins.loc[math.floor(WINDOW[1] / DELIVERY_BIN) * DELIVERY_BIN]
    assert at_end["p50"] == pytest.approx(10.0) and at_end["p99"] > 10.0
    assert not bins.isna().any().any()


def test_the_readmes_stragglers_table_and_claim_are_what_report_prints_from_the_reference():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text().split("## Beyond the paper: slow processors", 1)[1]
    readme = readme.split("\n## ", 1)[0].splitlines()
    printed = [line for line in readme if line.startswith("|") or "p99 latency during a 5x" in line]
    assert len(printed) == 11  # header, rule, 8 runs, the claim
    section, result = report(root / "results" / "reference")
    assert result.exit_code == 0, result.output
    assert [line for line in printed if line not in section] == []
