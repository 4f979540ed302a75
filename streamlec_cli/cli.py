"""The ``streamlec`` command line: a thin click group over the library."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import __version__, codec, spec


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamlec")
def main() -> None:
    """Erasure-coded proactive fault tolerance for stream machine learning (StreamLEC)."""


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


@main.command("validate")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one spec value by dotted key, e.g. --set scheme.k=6 (repeatable).",
)
def validate(spec_file: Path, overrides: tuple[str, ...]) -> None:
    """Check a spec and list the runs it expands to (exit code 2 if it is wrong)."""
    try:
        runs = spec.load(spec_file, overrides)
    except spec.SpecError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None
    noun = "run" if len(runs) == 1 else "runs"
    click.echo(f"{spec_file}: spec {runs[0].name!r} is valid, {len(runs)} {noun}")
    for run in runs:
        click.echo(f"  {run.describe()}")


def _load_runs(spec_file: Path, overrides: tuple[str, ...]) -> list[spec.Spec]:
    try:
        return spec.load(spec_file, overrides)
    except spec.SpecError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from None


@main.command("run")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one spec value by dotted key (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Directory the results go under.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run(spec_file: Path, overrides: tuple[str, ...], out: Path, quiet: bool) -> None:
    """Run every run SPEC expands to; results under OUT/<spec name>/<run id>/."""
    from .runtime.console import run_all

    runs = _load_runs(spec_file, overrides)
    code = run_all(runs, out, quiet=quiet)
    if code:
        raise click.exceptions.Exit(code)


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
def worker(spec_file: Path, worker: str, run_dir: Path | None, run_index: int) -> None:
    """Start one worker of a run by hand (source, sink or processor-N)."""
    from .runtime.worker import run_worker

    runs = _load_runs(spec_file, ())
    if not 0 <= run_index < len(runs):
        raise click.UsageError(f"--run-index {run_index}: the spec has runs 0..{len(runs) - 1}")
    chosen = runs[run_index]
    if worker not in chosen.workers:
        names = f"source, sink, processor-0..processor-{chosen.processors - 1}"
        raise click.UsageError(f"worker {worker!r} is not part of this run: choose one of {names}")
    run_worker(chosen, worker, run_dir or spec_file.resolve().parent)


@main.command("ps")
def ps() -> None:
    """Live runs on this machine: workers, pids and state."""
    from .runtime.registry import live_runs

    runs = live_runs()
    if not runs:
        click.echo("no live runs")
        return
    for live in runs:
        click.echo(f"{live.run}  (supervisor pid {live.supervisor}, {live.run_dir})")
        for name, info in live.workers.items():
            click.echo(f"  {name:<14} pid {info['pid']:<8} {info['state']}")


@main.command("kill-worker")
@click.argument("names", nargs=-1, required=True, metavar="[RUN] WORKER")
@click.option(
    "--signal",
    "sig",
    default="KILL",
    show_default=True,
    type=click.Choice(["KILL", "TERM", "STOP"], case_sensitive=False),
    help="Signal to send.",
)
def kill_worker(names: tuple[str, ...], sig: str) -> None:
    """Send SIGKILL (by default) to one worker of a live run."""
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
