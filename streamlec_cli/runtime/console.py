"""What ``streamlec run`` shows: a progress line per run, a verdict, a summary table."""

from __future__ import annotations

import math
import signal
import sys
import time
from pathlib import Path

import click

from .. import datasets
from ..spec import Spec
from .supervisor import RunFailed, Supervisor


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


def verdict(summary: dict) -> str:
    """A few plain lines: what happened to the failures, the items and the model."""
    if summary.get("error"):
        return f"  run failed: {summary['error']}"
    if not summary["complete"]:
        return "  stopped before the end of the stream; the results so far are kept"
    lost, dup = summary["items_lost"], summary["items_duplicated"]
    lines = []
    for kill in summary["failures"]:
        by = {"spec": "as the spec says", "kill-worker": "by kill-worker"}.get(kill["by"], "crash")
        lines.append(
            f"  crash:     {kill['worker']} SIGKILLed ({by}) after batch {kill['after_batch']}"
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
    return "\n".join(lines)


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
    head = ("run", "scheme", "items/s", "p50 ms", "p99 ms", "lost", "dup", "decoded", "ref err")
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
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run as Ctrl-C does: staged, results kept


#: Exit code of ``streamlec run`` when every run finished but one lost items (failures beyond
#: its scheme's tolerance) or does not match the single-process reference.
EXIT_LOST = 3


def run_all(runs: list[Spec], out: Path, quiet: bool = False) -> int:
    """Run each spec in turn; returns the exit code: 0 when every run finished with nothing
    lost and matched the reference, 1 if a run failed, 2 on bad input, ``EXIT_LOST`` (3) if
    a run lost items or differs from the reference, 130 when interrupted."""
    signal.signal(signal.SIGTERM, _terminate)
    summaries = []
    code = 0
    for spec in runs:  # a missing or unreadable data file stops us before any process starts
        try:
            next(datasets.open_batches(spec.dataset, spec.batch), None)
        except datasets.DatasetError as exc:
            click.echo(f"error: {exc}", err=True)
            return 2
    for index, spec in enumerate(runs, 1):
        label = f"[{index}/{len(runs)}] {spec.run_id}"
        click.echo(f"{label}", err=True)
        click.echo(f"  spec:      {spec.describe().split('  ', 1)[1]}", err=True)
        progress = Progress(label, enabled=not quiet)
        try:
            summary = Supervisor(spec, out, progress).run()
        except KeyboardInterrupt:
            progress.close()
            click.echo("interrupted: every worker stopped; results so far are kept", err=True)
            return 130
        except RunFailed as exc:  # pragma: no cover - summarised inside run()
            progress.close()
            click.echo(f"error: {exc}", err=True)
            return 1
        progress.close()
        click.echo(verdict(summary), err=True)
        click.echo(f"  results:   {summary['run_dir']}", err=True)
        if summary.get("error") or not summary["complete"]:
            code = max(code, summary.get("exit_code") or 1)
        elif summary.get("items_lost") or not (summary.get("reference") or {}).get("matches"):
            code = max(code, EXIT_LOST)
        summaries.append(summary)
    click.echo(table(summaries))
    return code
