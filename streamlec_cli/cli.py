"""The ``streamlec`` command line: a thin click group over the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import __version__, codec, spec
from .data.formats import DatasetError

#: Commands that first clean up after runs whose supervisor died (``runtime/leftovers.py``).
_CLEANING = frozenset({"run", "ps", "kill-worker", "plot", "report", "validate", "cluster"})


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlec")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Erasure-coded proactive fault tolerance for stream machine learning (StreamLEC)."""
    if ctx.invoked_subcommand in _CLEANING:
        from .runtime.registry import stale_runs

        stale = stale_runs()
        if stale:  # a supervisor was killed: its sockets, staged rows and log are still here
            from .runtime.leftovers import clean_up

            for live in stale:
                click.echo(clean_up(live, ctx.invoked_subcommand), err=True)
        from .runtime.leftovers import clean_emulations

        cleaned = clean_emulations()  # emulated hosts of a run whose supervisor died
        if cleaned:
            click.echo(cleaned, err=True)


@main.command("code-info")
@click.option("--k", "k", type=int, required=True, help="Data slots per stripe (k >= 2).")
@click.option("--r", "r", type=int, required=True, help="Parity slots per stripe (r >= 1).")
@click.option(
    "--code",
    type=click.Choice(codec.CODES),
    default=codec.DEFAULT_CODE,
    show_default=True,
    help="Construction of the parity rows.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def code_info(k: int, r: int, code: str, as_json: bool) -> None:
    """Generator matrix of an EC(k, r) code and its worst-case conditioning."""
    try:
        info = codec.describe(k, r, code)
    except codec.CodeError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"EC(k={k}, r={r}), construction {code!r}: generator G = [I_{k} ; A]")
    for i, row in enumerate(info["generator"]):
        tag = f"data {i}" if i < k else f"parity {i - k}"
        click.echo(f"  {tag:>9}: " + " ".join(f"{v:10.4g}" for v in row))
    click.echo(f"erasure patterns checked: {info['erasure_patterns']}")
    click.echo(f"worst condition number:   {info['worst_condition']:.4g}")
    click.echo(f"median condition number:  {info['median_condition']:.4g}")
    click.echo(f"worst decode rel. error:  {info['worst_decode_rel_error']:.3g} (random data)")


def _load_runs(spec_file: Path, overrides: tuple[str, ...]) -> list[spec.Spec]:
    """The runs of a spec; a mistake is printed as one paragraph with exit code 2."""
    try:
        return spec.load(spec_file, overrides)
    except spec.SpecError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None


_SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one spec value by dotted key, e.g. --set scheme.k=6 (repeatable).",
)


@main.command("validate")
@click.argument(
    "spec_files", nargs=-1, required=True, metavar="SPEC.yaml...", type=click.Path(path_type=Path)
)
@_SET_OPTION
def validate(spec_files: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Check specs and list the runs each expands to (exit code 2 if one is wrong)."""
    failed = False
    for spec_file in spec_files:
        try:
            runs = spec.load(spec_file, overrides)
            _check_data_paths(runs)
        except (spec.SpecError, DatasetError) as exc:
            where = "" if len(spec_files) == 1 or str(spec_file) in str(exc) else f"{spec_file}: "
            click.echo(f"error: {where}{exc}", err=True)
            failed = True
            continue
        noun = "run" if len(runs) == 1 else "runs"
        click.echo(f"{spec_file}: spec {runs[0].name!r} is valid, {len(runs)} {noun}")
        for run in runs:
            click.echo(f"  {run.describe()}")
    if failed:
        raise click.exceptions.Exit(2)


def _check_data_paths(runs: list[spec.Spec]) -> None:
    """Each run's ``dataset.path`` names a regular file that can be read (``validate``)."""
    from .datasets import check_path

    for dataset in {run.dataset for run in runs}:  # a sweep's runs often share one
        check_path(dataset)


def _out_directory(default: Path, what: str):
    """The ``--out DIR`` option of a command that writes under a directory."""
    return click.option(
        "--out", type=click.Path(path_type=Path), default=default, show_default=True, help=what
    )


@main.command("run")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@_SET_OPTION
@_out_directory(Path("results"), "Directory the results go under.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--resume",
    is_flag=True,
    help="Skip each run whose setting already has a complete run under OUT with the same "
    "resolved spec (an interrupted sweep goes on where it stopped).",
)
def run(spec_file: Path, overrides: tuple[str, ...], out: Path, quiet: bool, resume: bool) -> None:
    """Run every run SPEC expands to; each in a new OUT/<spec name>/<setting>-<UTC time>/."""
    from .runtime.console import run_all

    runs = _load_runs(spec_file, overrides)
    code = run_all(runs, out, quiet=quiet, resume=resume)
    if code:
        raise click.exceptions.Exit(code)


@main.group("baseline")
def baseline_group() -> None:
    """Another stream engine on the same stream, killed mid-stream (the paper's motivation)."""


@baseline_group.command("spark")
@click.argument("spec_file", required=False, metavar="[SPEC.yaml]", type=click.Path(path_type=Path))
@_SET_OPTION
@_out_directory(Path("results"), "Directory the results go under (OUT/<spec name>/...).")
@click.option("--items", type=click.IntRange(min=2), default=None, help="Stream items.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Items per batch.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Items per second fed (one file of BATCH items every BATCH/RATE seconds).",
)
@click.option(
    "--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Learning rate."
)
@click.option(
    "--kill-at-batch",
    type=click.IntRange(min=1),
    default=None,
    help="SIGKILL the Spark driver once this many batches are applied.",
)
@click.option("--no-kill", is_flag=True, help="Run the stream without a kill.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def baseline_spark(
    spec_file: Path | None,
    overrides: tuple[str, ...],
    out: Path,
    quiet: bool,
    no_kill: bool,
    **options: object,
) -> None:
    """Run SPEC's logistic-regression stream (first run; else the options) on Spark
    Structured Streaming (local[2], checkpointing on) and SIGKILL its driver mid-stream."""
    from .baselines.spark import (
        BaselineError,
        SparkBaseline,
        from_spec,
        require_pyspark,
        run_baseline,
    )

    settings: dict[str, object] = {}
    try:
        require_pyspark()
        if spec_file is not None:
            settings.update(from_spec(_load_runs(spec_file, overrides)[0]))
        settings.update({key: value for key, value in options.items() if value is not None})
        if no_kill:
            settings["kill_at_batch"] = None
        run_dir = run_baseline(SparkBaseline(**settings), out, quiet)
    except BaselineError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    summary = json.loads((run_dir / "summary.json").read_text())
    click.echo(f"{run_dir}")
    click.echo(
        f"items in {summary['items_in']}, out {summary['items_out']}, lost "
        f"{summary['items_lost']}, duplicated {summary['items_duplicated']}; model vs "
        f"reference: max rel. err. {summary['model_max_rel_err']:.3g}"
    )
    if summary.get("recovery_s") is not None:
        before = summary["latency_ms_before_kill"]["p50"]
        after = summary["latency_ms_after_kill"]["p50"]
        click.echo(
            f"recovery {summary['recovery_s']:.2f} s (kill -> first commit); latency p50 "
            f"{_ms(before)} before, {_ms(after)} after the kill"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


@main.command("worker")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@click.argument("worker")
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The run's directory (sockets, logs, results); default: the spec's folder.",
)
@click.option(
    "--run-index",
    type=int,
    default=0,
    show_default=True,
    help="Which run of a sweep/repeat spec to take.",
)
@click.option(
    "--incarnation",
    type=click.IntRange(min=1),
    default=None,
    help="Which start of this worker's slot this is (the supervisor counts 1, 2, ...); "
    "default: the process's pid.",
)
@click.option(
    "--startup-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up (exit code 1) when the worker's peers have not come within this long.",
)
def worker(
    spec_file: Path,
    worker: str,
    run_dir: Path | None,
    run_index: int,
    incarnation: int | None,
    startup_timeout: float,
) -> None:
    """Start one worker of a run by hand (source, sink or processor-N), in any order."""
    from .runtime.startup import StartupTimeout
    from .runtime.wire import CannotListen
    from .runtime.worker import is_spare, run_worker, supervised

    runs = _load_runs(spec_file, ())
    if not 0 <= run_index < len(runs):
        raise click.UsageError(f"--run-index {run_index}: the spec has runs 0..{len(runs) - 1}")
    chosen = runs[run_index]
    if worker not in chosen.workers and not (is_spare(worker) and supervised()):
        names = f"source, sink, processor-0..processor-{chosen.processors - 1}"
        raise click.UsageError(f"worker {worker!r} is not part of this run: choose one of {names}")
    try:
        run_worker(
            chosen, worker, run_dir or spec_file.resolve().parent, incarnation, startup_timeout
        )
    except StartupTimeout as exc:
        click.echo(f"error: {exc.advice(spec_file, run_dir)}", err=True)
        raise click.exceptions.Exit(1) from None
    except CannotListen as exc:
        click.echo(f"error: {worker}: {exc}", err=True)
        raise click.exceptions.Exit(2) from None


@main.command("ps")
def ps() -> None:
    """Live runs on this machine: workers, pids, state, incarnation and where they run."""
    from .runtime.registry import live_runs, live_state

    runs = live_runs()
    if not runs:
        click.echo("no live runs")
        return
    for live in runs:
        click.echo(f"{live.run}  (supervisor pid {live.supervisor}, {live.run_dir})")
        for name, info in live.workers.items():
            where = f"{info.get('launcher', 'local')} on {info.get('host', '?')}"
            click.echo(
                f"  {name:<14} pid {info['pid']:<8} {live_state(name, info):<8} "
                f"incarnation {info.get('incarnation', '?'):<4} {where}"
            )


@main.command("kill-worker")
@click.argument("names", nargs=-1, required=True, metavar="[RUN] WORKER")
@click.option(
    "--signal",
    "sig",
    default="KILL",
    show_default=True,
    type=click.Choice(["KILL", "TERM", "STOP", "CONT"], case_sensitive=False),
    help="Signal to send (CONT resumes a stopped worker before it is fenced).",
)
def kill_worker(names: tuple[str, ...], sig: str) -> None:
    """Send SIGKILL (by default) or another signal to one worker of a live run; the run
    records it by name."""
    from .runtime.control import KillError
    from .runtime.control import kill_worker as kill

    if len(names) > 2:
        raise click.UsageError("give at most RUN and WORKER")
    run_name, worker_name = (None, names[0]) if len(names) == 1 else names
    try:
        message = kill(run_name, worker_name, sig.upper())
    except KillError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    click.echo(message)


_ALL_RUNS_OPTION = click.option(
    "--all-runs",
    is_flag=True,
    help="Use every complete run (default: the latest complete run of each setting).",
)


def _names(values: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable option's values, each of which may also be a comma-separated list."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


@main.command("plot")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path), metavar="RESULTS...")
@_out_directory(
    Path("results/plots"),
    "Directory the figures go into (the committed figures are in plots/: name it to redraw them).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="NAME",
    help="Draw only this figure (throughput, recovery, coding, parameters, scalability, "
    "regime, intensity, stragglers, motivation); repeat it or separate names with commas.",
)
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="FORMAT",
    help="Write each figure in this format (png, svg, pdf); repeat it or separate with commas. "
    "Default: png and svg.",
)
@_ALL_RUNS_OPTION
def plot(
    results: tuple[Path, ...],
    out: Path,
    only: tuple[str, ...],
    formats: tuple[str, ...],
    all_runs: bool,
) -> None:
    """Figures from saved results only (RESULTS: run or results directories; default results/)."""
    from .plotting import DEFAULT_FORMATS, PlotError, plot_results
    from .results import NoRunsError

    try:
        written, notes = plot_results(
            results or (Path("results"),),
            out,
            all_runs,
            only=_names(only),
            formats=_names(formats) or DEFAULT_FORMATS,
        )
    except (NoRunsError, PlotError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    for note in notes:
        click.echo(f"note: {note}", err=True)
    for path in written:
        click.echo(str(path))


def _also_written(flag: str, dest: str, what: str, **path: bool):
    """An optional ``flag PATH`` of ``report``: one more place the report is written to."""
    kind = click.Path(path_type=Path, **path)
    return click.option(flag, dest, type=kind, default=None, help=what)


@main.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path), metavar="RESULTS...")
@_also_written("--out", "out", "Also write the Markdown report to this file.")
@_also_written(
    "--csv",
    "csv_dir",
    "Also write each table as DIR/<table>.csv (claims, throughput, cpu), for pandas.",
    file_okay=False,
)
@_also_written(
    "--json",
    "json_file",
    "Also write every table to this JSON file ({table: [row, ...]}), for pandas.",
    dir_okay=False,
)
@_ALL_RUNS_OPTION
def report(
    results: tuple[Path, ...],
    out: Path | None,
    csv_dir: Path | None,
    json_file: Path | None,
    all_runs: bool,
) -> None:
    """The paper's headline ratios beside the ones measured in RESULTS (Markdown)."""
    from .report import build_report, write_tables
    from .results import NoRunsError

    try:
        built = build_report(results or (Path("results"),), all_runs)
    except NoRunsError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    for note in built.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(built.markdown)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(built.markdown + "\n")
    for path in write_tables(built.tables, csv_dir, json_file):
        click.echo(f"wrote {path}", err=True)


# -- streamlec datasets ------------------------------------------------------------------------

_ALL_FORMATS = tuple(fmt for names in spec.DATASET_FORMATS.values() for fmt in names)


def _dataset_failure(exc: Exception) -> click.exceptions.Exit:
    """Print a data problem as one ``error:`` paragraph; raise the result (exit code 2)."""
    click.echo(f"error: {exc}", err=True)
    return click.exceptions.Exit(2)


@main.group("cluster")
def cluster_group() -> None:
    """Hosts to run on: what this machine can emulate, whether a spec's hosts answer."""


@cluster_group.command("check")
@click.argument("spec_file", required=False, type=click.Path(exists=True, path_type=Path))
def cluster_check(spec_file: Path | None) -> None:
    """What this machine can emulate and, given SPEC_FILE, whether each of its hosts is
    reachable and runs this version of streamlec. Exit code 1 when a host is not."""
    from .runtime.clustercheck import capabilities, check_hosts

    click.echo("this machine:")
    for check in capabilities():
        click.echo("  " + check.line())
    if spec_file is None:
        return
    runs = _load_runs(spec_file, ())
    checks = check_hosts(runs[0])
    click.echo(f"hosts of {spec_file}:")
    for check in checks:
        click.echo("  " + check.line())
    if not all(check.ok for check in checks):
        raise click.exceptions.Exit(1)


@main.group("datasets")
def datasets_group() -> None:
    """The built-in datasets: seeded generators and real data files (HIGGS, KDD12)."""


@datasets_group.command("gen")
@click.argument("name", type=click.Choice(spec.DATASETS))
@click.option("--items", type=click.IntRange(min=1), required=True, help="Rows to write.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File to write; compressed when it ends in .gz (.bz2, .xz).",
)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_ALL_FORMATS),
    default=None,
    help="File format (default: higgs-csv for higgs, kdd12-dense for kdd12).",
)
def datasets_gen(name: str, items: int, out: Path, seed: int, fmt: str | None) -> None:
    """Write the first ITEMS rows of a seeded stream in a real file format."""
    from time import perf_counter

    from . import datasets

    start = perf_counter()
    try:
        rows = datasets.write_synthetic(name, items, out, seed=seed, fmt=fmt)
    except datasets.DatasetError as exc:
        raise _dataset_failure(exc) from None
    fmt = fmt or datasets.formats.DEFAULT_FORMAT[name]
    packed = datasets.formats.compression(out)
    how = f"{fmt}, {packed}" if packed else fmt
    took = perf_counter() - start
    click.echo(f"wrote {rows} rows of {name} (seed {seed}) to {out} ({how}) in {took:.1f} s")


@datasets_group.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(_ALL_FORMATS), default=None, help="Default: detected."
)
@click.option("--items", type=click.IntRange(min=1), default=None, help="Read only this many rows.")
def datasets_info(path: Path, fmt: str | None, items: int | None) -> None:
    """Format, rows, label balance and per-feature min/mean/max of a data file."""
    from . import datasets

    try:
        summary = datasets.describe_file(path, fmt, items)
    except datasets.DatasetError as exc:
        raise _dataset_failure(exc) from None
    how = "named" if fmt else "detected"
    packed = f", {summary.compression}" if summary.compression else ""
    click.echo(f"{summary.path}: {summary.format} ({how}{packed}), dataset {summary.dataset}")
    click.echo(f"rows: {summary.rows}")
    click.echo(
        f"label: {summary.positives} positive ({100 * summary.positive_rate:.2f}%), "
        f"{summary.rows - summary.positives} negative"
    )
    if summary.scaling is None:
        click.echo(f"{'feature':<26} {'min':>12} {'mean':>12} {'max':>12}")
        for i, feature in enumerate(summary.feature_names):
            low, mean, high = summary.minimum[i], summary.mean[i], summary.maximum[i]
            click.echo(f"{feature:<26} {low:>12.6g} {mean:>12.6g} {high:>12.6g}")
        return
    for line in _scaling_lines(summary):
        click.echo(line)


def _scaling_lines(summary) -> list[str]:
    """``datasets info`` of a KDD12 file: the scaling its features get (the same for every
    format), each feature beside its maximum (and, for a raw or LIBSVM file, the largest value
    behind it), and what ``dataset.maxima`` a file with larger values needs."""
    maxima = summary.scaling.maxima
    raw = summary.largest is not None
    lines = [
        "scaling: KDD12 fixed maxima, the same for the dense trace, training.txt and LIBSVM "
        "(meta.json records them: dataset_source.scaling)",
        "  feature = value / maximum; LIBSVM: value = index - offset, each field's ids after the "
        "previous fields' maxima; "
        + (
            "this file's values are scaled by them"
            if raw
            else "a dense trace is read as it is (the generator's ids over these maxima)"
        ),
        f"{'feature':<14} {'min':>10} {'mean':>10} {'max':>10} {'maximum':>12}"
        + (f" {'largest value':>14}" if raw else ""),
    ]
    for i, feature in enumerate(summary.feature_names):
        low, mean, high = summary.minimum[i], summary.mean[i], summary.maximum[i]
        line = f"{feature:<14} {low:>10.6g} {mean:>10.6g} {high:>10.6g} {maxima[i]:>12.0f}"
        if raw:
            line += f" {summary.largest[i]:>14.0f}"
        lines.append(line)
    above = summary.above_maxima()
    if above:
        given = ", ".join(f"{name}: {value}" for name, value in above.items())
        lines.append(
            f"values above their maximum: {', '.join(above)}; a run reads this file with "
            f"dataset: {{maxima: {{{given}}}}} in its spec (features then value / that maximum)"
        )
    return lines


@datasets_group.command("list")
def datasets_list() -> None:
    """The built-in datasets and where their real files are looked for."""
    from . import datasets

    where = datasets.data_dir()
    for info in datasets.DATASETS.values():
        found = datasets.default_file(info.name)
        click.echo(f"{info.name}: {info.features} features; {info.description}")
        click.echo(f"  formats:   {', '.join(info.formats)}")
        click.echo(f"  real file: {', '.join(str(where / f) for f in info.default_files)}")
        state = f"using {found}" if found else "none found: runs use the seeded generator"
        click.echo(f"  status:    {state}")
    click.echo(
        f"Real files are looked for under {where} (set {datasets.DATA_DIR_ENV} to change it); "
        "a spec's dataset.path names any other file."
    )
