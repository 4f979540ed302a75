"""What ``streamlec run`` shows: a progress line per run, a verdict, a summary table."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import click

from .. import datasets
from ..results import finished_runs, read_summary, spec_text
from ..spec import Spec
from .interrupt import SIGNALS, Interrupted
from .pairs import PairedRun
from .preflight import OutputError, check_output
from .summary import EXIT_LOST, resolved_spec
from .supervisor import RunFailed, Supervisor, port_problem


class Progress:
    """One self-rewriting line on a terminal (items, items/s, failures so far)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, state: dict) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        done, total = state["items_out"], max(1, state["items"])
        width = 24
        filled = min(width, int(width * done / total))
        rate = done / state["elapsed"] if state["elapsed"] > 0 else 0.0
        line = (
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:,}/{total:,} items  {rate:,.0f} items/s  failures {state['failures']}"
        )
        click.echo(line, nl=False, err=True)

    def close(self) -> None:
        if self.enabled:
            click.echo("", err=True)


def past_tense(sig: str) -> str:
    """``SIGKILLed``, ``SIGTERMed``, ``SIGSTOPped``."""
    return sig + ("ped" if sig.endswith("P") else "ed")


def how_it_failed(kill: dict) -> str:
    """A failure of the summary in words, with the real signal: ``SIGTERMed (by
    kill-worker)``, ``SIGSTOPped (by kill-worker), then fenced``, ``silent, fenced``."""
    sig = kill.get("signal", "SIGKILL")  # summaries before signals were recorded: SIGKILL
    fenced = ", then fenced" if kill.get("fenced") else ""
    if kill["by"] == "spec":
        return f"{past_tense(sig)} (as the spec says)"
    if kill["by"] == "kill-worker":
        return f"{past_tense(sig)} (by kill-worker){fenced}"
    if kill["by"] == "fenced":
        return "silent, fenced with SIGKILL (crash)"
    return f"killed by {sig} (crash)" if sig else "exited by itself (crash)"


def verdict(summary: dict) -> str:
    """A few plain lines: what happened to the failures, the items and the model."""
    if summary.get("error"):
        return f"  run failed: {summary['error']}"
    if not summary["complete"]:
        return "  stopped before the end of the stream; the results so far are kept"
    lost, dup = summary["items_lost"], summary["items_duplicated"]
    lines = []
    for kill in summary["failures"]:
        lines.append(
            f"  crash:     {kill['worker']} {how_it_failed(kill)} after batch {kill['after_batch']}"
        )
    if summary["failures"]:
        if lost == 0:
            how = []
            if summary.get("decoded_items"):
                how.append(f"{summary['decoded_items']:,} items decoded from parity")
            if summary.get("rollbacks"):
                how.append(
                    f"{summary['rollbacks']} rollback(s) to a checkpoint, "
                    f"{summary['replayed_batches']} batches replayed from the log"
                )
            if summary.get("restarts"):
                how.append(f"{summary['restarts']} processor(s) restarted in their slot")
            lines.append("  absorbed:  " + ("; ".join(how) or "no item needed rebuilding"))
        else:
            lines.append(
                f"  LOST:      {lost:,} items: more failures than {summary['scheme_label']} "
                "tolerates (see events.csv and batches.csv)"
            )
        if (line := restored_line(summary)) is not None:
            lines.append(line)
    lines.append(
        f"  items:     {summary['items_in']:,} in, {summary['items_out']:,} out, "
        f"{lost:,} lost, {dup:,} duplicated"
    )
    ref = summary.get("reference") or {}
    if ref.get("matches"):
        lines.append(
            "  reference: model and every prediction match the single-process reference "
            f"(max rel. err {ref['max_rel_err']:.1e})"
        )
    elif ref:
        err = ref.get("max_rel_err")
        lines.append(
            "  reference: the model DIFFERS from the single-process reference "
            + (f"(max rel. err {err:.1e})" if err is not None else "(items are missing)")
        )
    if (line := metrics_line(summary.get("metrics") or {})) is not None:
        lines.append(line)
    if summary.get("failures_not_done"):
        lines.append(
            f"  note:      {len(summary['failures_not_done'])} scheduled failure(s) not carried "
            "out: the stream ended first"
        )
    if summary.get("unexpected_exits"):
        lines.append("  unexpected exits: " + ", ".join(summary["unexpected_exits"]))
    throughput = summary.get("throughput_items_per_s")
    lat = summary.get("latency_ms") or {}
    if throughput:
        p50, p99 = lat.get("p50", float("nan")), lat.get("p99", float("nan"))
        lines.append(
            f"  speed:     {throughput:,.0f} items/s, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        measured = summary.get("measured_seconds")
        if measured is not None and measured < SHORT_MEASUREMENT_S:
            lines.append(
                f"  note:      the throughput was measured over {measured:.1f} s after the "
                f"warm-up only: raise dataset.items for a few seconds of steady stream"
            )
    return "\n".join(lines)


#: A throughput measured over less than this (seconds after the warm-up) gets a note.
SHORT_MEASUREMENT_S = 2.0


def metrics_line(metrics: dict) -> str | None:
    """A classifier's progressive metrics (every item predicted before the model learned from
    it): ROC AUC, log loss (none for a margin), accuracy beside that of always predicting the
    commoner label. None for other algorithms and for summaries from before these metrics."""
    kind = metrics.get("prediction_kind")
    if kind is None:
        return None
    auc, loss = metrics.get("roc_auc"), metrics.get("log_loss")
    parts = [
        "ROC AUC " + ("- (one label only)" if auc is None else f"{auc:.4f}"),
        f"log loss {loss:.4f}" if loss is not None else f"no log loss ({kind}, no probability)",
    ]
    if metrics.get("accuracy") is not None and metrics.get("majority_accuracy") is not None:
        parts.append(
            f"accuracy {metrics['accuracy']:.1%} "
            f"(always the commoner label: {metrics['majority_accuracy']:.1%})"
        )
    return "  metrics:   " + ", ".join(parts)


def restored_line(summary: dict) -> str | None:
    """How soon the group was back to full tolerance after its failures (None: no failure)."""
    median = summary.get("time_to_full_tolerance_median_s")
    never = summary.get("failures_not_restored") or 0
    if median is None and not never:
        return None
    parts = []
    if median is not None:
        most = summary["time_to_full_tolerance_max_s"]
        parts.append(f"full tolerance {median:.2f} s after each failure (median), {most:.2f} s max")
    if never:
        parts.append(f"{never} failure(s) not restored before the run ended")
    return "  restored:  " + "; ".join(parts)


def _fmt(value, spec: str = ",.0f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(summaries: list[dict]) -> str:
    head = (
        "run",
        "scheme",
        "items/s",
        "p50 ms",
        "p99 ms",
        "lost",
        "dup",
        "decoded",
        "ref err",
        "roc auc",
    )
    rows = [head]
    for s in summaries:
        lat = s.get("latency_ms") or {}
        err = s.get("reference_max_rel_err")
        rows.append(
            (
                s["run_id"],
                s["scheme_label"],
                _fmt(s.get("throughput_items_per_s")),
                _fmt(lat.get("p50"), ".1f"),
                _fmt(lat.get("p99"), ".1f"),
                _fmt(s.get("items_lost"), ","),
                _fmt(s.get("items_duplicated"), ","),
                _fmt(s.get("decoded_items"), ","),
                "-" if err is None else f"{err:.1e}",
                _fmt((s.get("metrics") or {}).get("roc_auc"), ".4f"),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


_KEPT = (
    "every worker stopped; results so far are kept, and the same command with --resume "
    "runs only the runs that did not finish"
)


def exit_code(summary: dict) -> int:
    """A run's share of the exit code (see ``run_all``)."""
    if summary.get("error") or not summary["complete"]:
        return summary.get("exit_code") or 1
    if summary.get("items_lost") or not (summary.get("reference") or {}).get("matches"):
        return EXIT_LOST
    return 0


def run_all(runs: list[Spec], out: Path, quiet: bool = False, resume: bool = False) -> int:
    """Run each spec in turn; returns the exit code: 0 when every run finished with nothing
    lost and matched the reference, 1 if a run failed, 2 on bad input, ``EXIT_LOST`` (3) if
    a run lost items or differs from the reference, 128 + the signal's number when stopped by
    SIGINT, SIGTERM or SIGHUP (130, 143, 129).

    With ``resume``, a setting that already has a complete run under ``out``
    (``results.finished_runs``) is not run again: its earlier summary takes its place."""
    SIGNALS.install()
    try:
        return _run_all(runs, out, quiet, resume)
    finally:
        SIGNALS.restore()


def _taken_port(runs: list[Spec]) -> str | None:
    """The error for the first tcp run that names a port taken right now."""
    for spec in runs:
        if spec.transport == "tcp" and spec.port is not None:
            problem = port_problem(spec.port, len(spec.storage))
            if problem:
                return problem
    return None


def _run_all(runs: list[Spec], out: Path, quiet: bool, resume: bool) -> int:
    summaries = []
    code = 0
    for spec in runs:  # a missing or unreadable data file stops us before any process starts
        try:
            next(datasets.open_batches(spec.dataset, spec.batch), None)
        except datasets.DatasetError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
    try:  # a read-only, full or misnamed --out stops us before any process starts too
        check_output(out, runs)
    except OutputError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    taken = _taken_port(runs)  # and so does a port that another program listens on
    if taken:
        click.echo(f"error: {taken}", err=True)
        return 2
    done = finished_runs(out / runs[0].name) if resume else {}
    for index, spec in enumerate(runs, 1):
        if SIGNALS.received:  # a stop signal came outside a stream: start no other run
            break
        label = f"[{index}/{len(runs)}] {spec.run_id}"
        earlier = done.get((spec.run_id, spec_text(resolved_spec(spec)))) if done else None
        if earlier:
            click.echo(f"{label}: skipped, already complete in {earlier}", err=True)
            summaries.append(read_summary(earlier))
            code = max(code, exit_code(summaries[-1]))
            continue
        click.echo(f"{label}", err=True)
        click.echo(f"  spec:      {spec.describe().split('  ', 1)[1]}", err=True)
        progress = Progress(label, enabled=not quiet)
        try:
            if spec.pairs > 1:  # a supervisor of its own for each pair
                summary = PairedRun(spec, out).run()
            else:
                summary = Supervisor(spec, out, progress).run()
        except KeyboardInterrupt as exc:
            stop = exc if isinstance(exc, Interrupted) else Interrupted()
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                progress.close()
                click.echo(f"interrupted by {stop.name}: {_KEPT}", err=True)
            return stop.exit_code
        except RunFailed as exc:  # pragma: no cover - summarised inside run()
            progress.close()
            click.echo(f"error: {exc}", err=True)
            return 1
        except OSError as exc:  # even summary.json could not be written: the disk is full
            progress.close()
            click.echo(
                f"error: cannot write the results under {out}: {exc.strerror or exc}; "
                "what was written before is kept",
                err=True,
            )
            return 2
        progress.close()
        click.echo(verdict(summary), err=True)
        click.echo(f"  results:   {summary['run_dir']}", err=True)
        code = max(code, exit_code(summary))
        summaries.append(summary)
    if summaries:
        click.echo(table(summaries))
    late = SIGNALS.first()
    if late is not None:  # it came between streams: the runs that ran are whole
        click.echo(f"interrupted by {late.name} outside a stream: {_KEPT}", err=True)
        return late.exit_code
    return code
