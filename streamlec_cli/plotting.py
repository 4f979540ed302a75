"""Figures from saved run results only; never imported by workers.

:func:`plot_results` reads every finished run under the given paths and writes each figure
as PNG and SVG (or the formats asked for). Which figures it draws depends on what it finds
(or only those asked for). Runs are grouped by spec (the folder holding a spec's runs); a
spec named after a figure gets that figure, any other spec the figure that fits what varies
among its runs:

* ``recovery``: latency p99 per 100 ms bin and items finished per second over time, one line
  per scheme, one pair of panels per failure pattern, kills as vertical lines, items lost
  marked where their batch ended, the after/before p99 ratio in the legend unless the kill
  came less than its window into the stream (a spec whose runs killed processors);
* ``scalability``: throughput against the number of processors, oversubscribed runs hollow
  (processors vary);
* ``parameters``: throughput, worst condition number and decode error against k, a line per
  r and construction (only EC, k or r vary);
* ``coding``: attach mode x incremental encoding: throughput and latency (only EC, those
  vary);
* ``throughput``: bars per scheme grouped by algorithm, one row per dataset (anything else).

Only by its spec's name: ``regime`` (EC(4,2)'s ratios across shared cores and emulated
clusters) and ``intensity`` (throughput against work per item: bars per scheme grouped by
K-Means's centroid count).

Whatever the spec, its runs that had processors slowed (the spec's ``stragglers``) make the
``stragglers`` figure: latency p50, p99 and p99.9 of the items delivered in each 250 ms over
time, one line per scheme, one row of panels per set of slow processors, the slowdown shaded,
each run's during/before p99 ratio, items lost and distance to the reference in the legend;
the spec's other runs make the figure they would make without them.

Besides, ``motivation`` (one figure) when the paths hold a ``streamlec baseline spark`` run:
Spark's recovery time and latency around its kill beside those of the streamlec runs with
kills in the same spec folder (``motivation.py``).

A scheme keeps its colour in every figure (:data:`SCHEME_COLOURS`); repeats give the mean
and min-max whiskers; every figure names the commit, machine and versions it came from.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from . import motivation, regime
from .profiles import SHARED, cluster_line
from .report import LATENCY_WINDOW
from .results import (
    FAMILY_ORDER,
    NoRunsError,
    item_arrivals,
    load_baselines,
    load_runs,
    natural_key,
    read_events,
    stream_start,
)

Run = dict[str, Any]
Drawn = Iterable[tuple[str, Figure]]

FIGURES = (
    "throughput",
    "recovery",
    "coding",
    "parameters",
    "scalability",
    "regime",
    "intensity",
)
#: The figure of the runs that had processors slowed, whatever their spec's name.
STRAGGLERS = "stragglers"
#: What ``streamlec plot --only`` picks from: the figures above, the stragglers figure and the
#: Spark comparison.
KINDS = (*FIGURES, STRAGGLERS, "motivation")
#: File formats ``streamlec plot --format`` writes; PNG and SVG unless told otherwise.
FORMATS = ("png", "svg", "pdf")
DEFAULT_FORMATS = ("png", "svg")
#: Figures that set the conditions (shared cores, emulated clusters) of their runs side by side.
ACROSS_CLUSTERS = ("regime",)

#: One colour per scheme family, the same in every figure.
SCHEME_COLOURS: dict[str, str] = dict(
    zip(
        FAMILY_ORDER,
        ("#8c8c8c", "#d62728", "#fdae61", "#e66101", "#74add1", "#1f4e9c"),
        strict=True,
    )
)
OTHER_EC_COLOUR = "#6a3d9a"
OTHER_REP_COLOUR = "#8c510a"
OTHER_COLOUR = "#333333"
SCHEME_ORDER = FAMILY_ORDER
SCHEME_NAMES = {"none": "none: no fault tolerance", "reactive": "reactive: log + checkpoints"}
#: Hatches tell apart EC variants of one family (attach inputs, no incremental encoding).
VARIANT_EXTRAS = ("", "no-incremental", "inputs", "inputs no-incremental")
VARIANT_HATCHES = dict(zip(VARIANT_EXTRAS, ("", "..", "//", "xx"), strict=True))
#: Parity counts r get shades of the EC colours in the parameters figure.
R_COLOURS = {1: "#74add1", 2: "#1f4e9c", 3: "#081d58"}
CODE_STYLES = {"gaussian": "-", "vandermonde": "--"}
DPI = 150
SMOOTH_BINS = 5  # timeline bins (100 ms) averaged for the items-finished curve of recovery
DELIVERY_BIN = 0.25  # seconds: the stragglers figure's latency percentiles per bin
#: The stragglers figure's panels: percentile, its name in a ``latency_during_slowdown`` span.
PERCENTILES = ((50.0, "p50"), (99.0, "p99"), (99.9, "p99.9"))
EXACT = 1e-9  # largest relative distance to the reference that counts as the same model
FOOTER_INCHES = 0.45


def scheme_colour(family: str) -> str:
    """The fixed colour of a scheme family (``ec(4,2)``, ``rep-3x``, ``reactive``, ...)."""
    if family in SCHEME_COLOURS:
        return SCHEME_COLOURS[family]
    if family.startswith("ec("):
        return OTHER_EC_COLOUR
    if family.startswith("rep-"):
        return OTHER_REP_COLOUR
    return OTHER_COLOUR


class PlotError(ValueError):
    """What ``streamlec plot`` was asked for cannot be drawn; the message says what can."""


def check_choices(only: Collection[str], formats: Collection[str]) -> None:
    """Raise :class:`PlotError` (one paragraph) for a figure name or format not offered."""
    for option, asked, allowed in (("--only", only, KINDS), ("--format", formats, FORMATS)):
        unknown = [name for name in asked if name not in allowed]
        if unknown:
            what = "a figure" if option == "--only" else "a file format streamlec plot writes"
            msg = (
                f"{option} {', '.join(repr(name) for name in unknown)} is not {what}; "
                f"choose from {', '.join(allowed)} (repeat {option} or separate names "
                "with commas for several)"
            )
            raise PlotError(msg)


def plot_results(
    paths: Sequence[Path],
    out: Path,
    all_runs: bool = False,
    *,
    only: Collection[str] = (),
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> tuple[list[Path], list[str]]:
    """Write the figures the runs under ``paths`` allow into ``out``: from the latest
    complete run of each setting, or from every run with ``all_runs``; only the kinds named
    in ``only`` (all when empty), one file per format in ``formats``.

    Returns the files written and a note per run left out. Raises
    :class:`~streamlec_cli.results.NoRunsError` when there is nothing to plot and
    :class:`PlotError` when ``only`` or ``formats`` names what is not offered or the runs
    make none of the figures in ``only``.
    """
    check_choices(only, formats)
    only, formats = tuple(dict.fromkeys(only)), tuple(dict.fromkeys(formats))  # once each
    runs, notes = load_runs(paths, all_runs)
    baselines = load_baselines(paths)
    if not runs and not baselines:
        where = ", ".join(repr(str(p)) for p in paths)
        msg = (
            f"no finished run in {where}: every run directory found stopped before the end "
            "of its stream, so there is nothing to plot:\n  " + "\n  ".join(notes)
        )
        raise NoRunsError(msg)
    planned = _planned(runs)
    compared = motivation.records(runs, baselines)
    made = {kind for kind, *_ in planned} | ({"motivation"} if compared else set())
    missing = [kind for kind in only if kind not in made]
    if missing:
        searched = ", ".join(repr(str(p)) for p in paths)
        they_make = ", ".join(kind for kind in KINDS if kind in made)
        if len(missing) == len(only):
            msg = f"the runs in {searched} make no {' or '.join(missing)} figure; they make: "
            raise PlotError(msg + they_make)
        notes.append(f"the runs in {searched} make no {' or '.join(missing)} figure")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for kind, spec_dir, spec_name, where, subset in planned:
        if only and kind not in only:
            continue
        try:
            for suffix, figure in DRAW[kind](subset):
                figure.text(0.01, 0.005, provenance(subset), fontsize=7, color="#555555")
                stem = _stem(kind, spec_name, "-".join(p for p in (where, suffix) if p), used)
                written.extend(_save(figure, out / stem, formats))
        except (KeyError, ValueError, TypeError, OSError, pd.errors.ParserError) as exc:
            plt.close("all")
            notes.append(
                f"{spec_dir}: the {kind} figure could not be drawn "
                f"({type(exc).__name__}: {exc}); the other figures are unaffected"
            )
    if compared and (not only or "motivation" in only):
        figure = draw_motivation(compared)
        figure.text(0.01, 0.005, provenance([*runs, *baselines]), fontsize=7, color="#555555")
        stem = _stem("motivation", "motivation", "", used)
        written.extend(_save(figure, out / stem, formats))
    return written, notes


def _planned(runs: list[Run]) -> list[tuple[str, Path, str, str, list[Run]]]:
    """(kind, spec folder, spec name, condition or "", runs) of every figure the runs make.

    A spec's runs on shared cores and on an emulated cluster make figures of their own.
    """
    groups: dict[tuple[Path, str], list[Run]] = defaultdict(list)
    for run in runs:
        apart = run["spec_name"] not in ACROSS_CLUSTERS
        groups[(run["spec_dir"], run.get("cluster", SHARED) if apart else SHARED)].append(run)
    planned = []
    for spec_dir, cluster in sorted(groups, key=lambda key: (key[0], key[1] != SHARED, key[1])):
        group = groups[(spec_dir, cluster)]
        spec_name = str(group[0]["spec_name"])
        where = "" if cluster == SHARED else cluster
        for kind, subset in figure_kinds(spec_name, group):
            planned.append((kind, spec_dir, spec_name, where, subset))
    return planned


def figure_kinds(spec_name: str, runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """The figures a spec's runs make: the runs that had processors slowed the stragglers
    figure; the others by the spec's name, else by what varies among them."""
    slowed = [run for run in runs if run.get("stragglers")]
    if slowed:
        rest = [run for run in runs if not run.get("stragglers")]
        return [(STRAGGLERS, slowed), *(figure_kinds(spec_name, rest) if rest else [])]
    if spec_name in FIGURES:
        return [(spec_name, runs)]
    if any(run.get("failures") for run in runs):
        return [("recovery", [run for run in runs if run.get("failures")])]
    if _varies(runs, "processors"):
        return [("scalability", runs)]
    only_ec = all(run.get("scheme") == "ec" for run in runs)
    if only_ec and (_varies(runs, "k") or _varies(runs, "r")):
        return [("parameters", runs)]
    if only_ec and (_varies(runs, "attach") or _varies(runs, "incremental")):
        return [("coding", runs)]
    return [("throughput", runs)]


# -- throughput ----------------------------------------------------------------------------


def draw_throughput(runs: list[Run]) -> Drawn:
    """Bars per scheme variant grouped by algorithm; one row of axes per dataset."""
    head = "Throughput per fault-tolerance scheme, no failures"
    yield "", _throughput_bars(_frame(runs), "algorithm", "algorithm", head)


def draw_intensity(runs: list[Run]) -> Drawn:
    """Throughput against the work per item: bars per scheme grouped by K-Means's centroid
    count (one dot product per centroid per item), EC(4,2) over rep-3x under each group.

    Runs that are not all K-Means get the throughput figure's bars per algorithm."""
    frame = _frame(runs)
    if frame["centroids"].isna().any():
        yield from draw_throughput(runs)
        return
    frame["centroids"] = frame["centroids"].astype(int)
    counts = sorted(frame["centroids"].unique())
    head = (
        "Throughput against work per item, no failures\n"
        f"K-Means with {_span(counts)} centroids: each item costs the processors one dot "
        "product per centroid"
    )
    xlabel = "K-Means centroids (work per item: one dot product per centroid per item)"
    yield "", _throughput_bars(frame, "centroids", xlabel, head, tick=_centroids_tick)


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]} to {values[-1]}"


def _centroids_tick(part: pd.DataFrame, centroids: int) -> str:
    """The centroid count and, when both ran, EC(4,2)'s mean throughput over rep-3x's."""
    runs = part[part["centroids"] == centroids]
    ec = runs.loc[runs["variant"] == regime.EC, "throughput"].mean()
    rep = runs.loc[runs["variant"] == regime.REP3, "throughput"].mean()
    if not (ec > 0 and rep > 0):  # NaN when one of them did not run
        return str(centroids)
    return f"{centroids}\nEC(4,2) / {regime.REP3} {ec / rep:.2f}x"


def _throughput_bars(
    frame: pd.DataFrame,
    by: str,
    xlabel: str,
    head: str,
    tick: Callable[[pd.DataFrame, Any], str] | None = None,
) -> Figure:
    """Bars per scheme variant grouped by ``by``, one row of axes per dataset; ``tick``
    labels a group (its value by default)."""
    datasets = sorted(frame["dataset"].unique())
    variants = _ordered_variants(frame)
    width = max(9.0, 1.5 + 0.4 * len(variants) * frame[by].nunique())
    fig, axes = _figure(len(datasets), 1, (width, 1.5 + 3.3 * len(datasets)))
    for ax, dataset in zip(axes[:, 0], datasets, strict=True):
        part = frame[frame["dataset"] == dataset]
        groups = _grouped_bars(ax, part, by, variants, "throughput", scale=1e-3)
        if tick is not None:
            ax.set_xticks(range(len(groups)), [tick(part, group) for group in groups])
        ax.set_ylabel("throughput (thousand items/s)")
        ax.set_xlabel(xlabel)
        ax.set_title(f"dataset {dataset}", fontsize=10, loc="left")
    title = f"{head}\n{_setting(frame)}; {_rate_phrase(frame)}; {_repeat_phrase(frame)}"
    _titled_legend(fig, title, [_variant_patch(v) for v in variants], columns=3)
    return fig


# -- recovery ------------------------------------------------------------------------------


def draw_recovery(runs: list[Run]) -> Drawn:
    """Latency p99 and items finished over time per scheme, a pair of panels per failure pattern.

    One figure per setting (algorithm, dataset, rate); of repeats, the first run is drawn.
    """
    frame = _frame(runs)
    settings = frame.groupby(["algorithm", "dataset", "rate_label"], sort=True)
    for (algorithm, dataset, rate_label), part in settings:
        first = part[part["run_index"] == part["run_index"].min()]
        patterns = sorted(
            first["pattern"].unique(),
            key=lambda p: (first.loc[first["pattern"] == p, "killed"].max(), p),
        )
        fig, axes = _figure(
            2 * len(patterns),
            1,
            (12, 1.6 + 4.2 * len(patterns)),
            sharex=True,
            height_ratios=[3, 1.2] * len(patterns),
        )
        variants = _ordered_variants(first)
        for i, pattern in enumerate(patterns):
            ax_latency, ax_items = axes[2 * i, 0], axes[2 * i + 1, 0]
            runs_of = first[first["pattern"] == pattern]
            _recovery_panels(ax_latency, ax_items, runs_of, variants)
            ax_latency.set_title(pattern + _lost_phrase(runs_of), fontsize=10, loc="left")
        axes[-1, 0].set_xlabel("time since the stream started (s)")
        repeats = " (first of the repeats)" if part["run_index"].nunique() > 1 else ""
        window = f"{_window(first):g} s"
        lost_key = "; X: items lost (where their batch ended)" if first["items_lost"].any() else ""
        fig.suptitle(
            f"Latency before and after processor crashes: {algorithm} on {dataset}, "
            f"{_processors_phrase(first)}, {_rate_phrase(first)}{repeats}\n"
            f"dashed lines: SIGKILL of processors{lost_key}\n"
            f"in the legend: p99 latency of items delivered in the {window} after the first kill "
            f"/ in the {window} before, withheld when the stream ran less than {window} before it",
            fontsize=10,
        )
        suffix = "" if settings.ngroups == 1 else f"{algorithm}-{dataset}-{rate_label}"
        yield suffix, fig


def _recovery_panels(ax: Any, ax_items: Any, part: pd.DataFrame, variants: list[str]) -> None:
    """Latency p99 per bin (log) above items finished per second per bin, one line a scheme."""
    kills: list[tuple[float, str]] = []
    handles = []
    for variant in variants:
        rows = part[part["variant"] == variant]
        if rows.empty:
            continue
        run = rows.iloc[0]
        colour = scheme_colour(run["family"])
        timeline = _timeline(run["run_dir"])
        if timeline is None or timeline.empty:
            continue
        p99 = _bridge_single_gaps(timeline["latency_ms_p99"])
        ax.step(timeline["t_s"], p99, where="post", color=colour, lw=1.4)
        items = timeline["throughput_items_per_s"].rolling(SMOOTH_BINS, center=True).mean()
        ax_items.plot(timeline["t_s"] + 0.05, items * 1e-3, color=colour, lw=1.2)
        killed = _kills(run)
        for when, worker in killed:
            for axis in (ax, ax_items):
                axis.axvline(when, color=colour, ls="--", lw=1.0, alpha=0.8)
            kills.append((when, worker))
        lost = int(run["items_lost"])
        if lost:
            _mark_lost(ax_items, run, lost, killed, colour)
        label = _variant_name(variant) + (f": {lost:,} items lost" if lost else "")
        handles.append(Line2D([], [], color=colour, lw=2, label=label + _ratio_note(run, killed)))
    _log_y(ax)
    ax.set_ylabel("latency p99 per 100 ms\n(ms, log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax_items.set_ylabel(f"items finished\n(thousand/s, {SMOOTH_BINS / 10:g} s mean)")
    ax_items.set_ylim(bottom=0)
    ax_items.grid(True, alpha=0.3)
    rates = part["rate"].dropna().unique()
    if len(rates) == 1:
        ax_items.axhline(rates[0] * 1e-3, color="black", lw=0.8, ls=":")
        ax_items.annotate(
            "input rate",
            (0.0, rates[0] * 1e-3),
            xycoords=("axes fraction", "data"),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=7,
        )
    for when, workers in _cluster(kills):
        ax.annotate(
            "kill " + ", ".join(workers),
            xy=(when, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -14),
            textcoords="offset points",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _bridge_single_gaps(values: pd.Series) -> pd.Series:
    """Carry a value over one empty bin (batches finish less often than every 100 ms); longer
    gaps, where nothing finished for a while (a stall), stay gaps in the line."""
    empty = values.isna()
    run_id = (empty != empty.shift()).cumsum()
    run_length = empty.groupby(run_id).transform("size")
    return values.where(~(empty & (run_length == 1)), values.ffill())


def _kills(run: pd.Series) -> list[tuple[float, str]]:
    """(seconds since the stream started, worker) of each kill: events.csv, else the summary."""
    start = stream_start(run["run_dir"])
    if start is None:
        return []
    events = [e for e in read_events(run["run_dir"]) if e["event"] == "kill"]
    if events:
        return [(e["time"] - start, e["worker"]) for e in events]
    return [(f["time"] - start, f["worker"]) for f in run["failures"] if "time" in f]


def _cluster(kills: list[tuple[float, str]], width: float = 0.3) -> list[tuple[float, list[str]]]:
    """Kills of several runs at about the same time, one label each."""
    clusters: list[tuple[float, list[str]]] = []
    for when, worker in sorted(kills):
        if clusters and when - clusters[-1][0] < width:
            if worker not in clusters[-1][1]:
                clusters[-1][1].append(worker)
        else:
            clusters.append((when, [worker]))
    return clusters


def _ratio_note(run: pd.Series, kills: list[tuple[float, str]]) -> str:
    """The legend's p99 latency ratio of the items delivered in the window after the first
    kill over the window before, or why it is withheld: a kill earlier in the stream than
    the window leaves the "before" side short, filled with the start-up's latencies."""
    around = run["latency_around_first_failure"]
    if not isinstance(around, dict) or around.get("p99_ratio") is None:
        return ""
    window = float(around.get("window_s") or LATENCY_WINDOW)
    if not kills:
        return "  (p99 after/before withheld: the kill's time in the stream is unknown)"
    first = min(when for when, _ in kills)
    if first < window:
        return f"  (p99 after/before withheld: {first:.1f} s of stream before the kill)"
    return f"  (p99 after/before: {float(around['p99_ratio']):.1f}x)"


def _window(frame: pd.DataFrame) -> float:
    """Seconds on either side of the first kill that the runs' latency ratios compare."""
    for around in frame["latency_around_first_failure"]:
        if isinstance(around, dict) and around.get("window_s"):
            return float(around["window_s"])
    return LATENCY_WINDOW


def _lost_phrase(frame: pd.DataFrame) -> str:
    """``; items lost: none 12,000`` for the runs that lost items, else nothing."""
    lost = [(v, int(n)) for v, n in zip(frame["variant"], frame["items_lost"], strict=True) if n]
    if not lost:
        return ""
    return "; items lost: " + ", ".join(f"{variant} {n:,}" for variant, n in lost)


def _mark_lost(
    ax: Any, run: pd.Series, lost: int, kills: list[tuple[float, str]], colour: str
) -> None:
    """An X on the time axis where each batch lost items (when its loss was final), the
    total beside the first; at the first kill when ``batches.csv`` does not say."""
    when = _lost_times(run["run_dir"])
    if not when and kills:
        when = [min(t for t, _ in kills)]
    if when:
        _lost_marks(ax, when, colour)
        _lost_label(ax, when[0], f"{run['variant']}: {lost:,} lost", colour)


def _lost_marks(ax: Any, when: list[float], colour: str, foot: bool = False) -> None:
    """An X at height 0 at each of ``when`` (``foot``: at the foot of the panel, whatever
    its y scale)."""
    ax.scatter(
        when,
        [0.0] * len(when),
        **({"transform": ax.get_xaxis_transform()} if foot else {}),
        marker="X",
        s=70,
        color=colour,
        edgecolor="black",
        lw=0.6,
        zorder=5,
        clip_on=False,
    )


def _lost_label(ax: Any, when: float, text: str, colour: str, foot: bool = False) -> None:
    """``text`` beside the X at ``when`` (see ``_lost_marks``)."""
    ax.annotate(
        text,
        (when, 0.0),
        **({"xycoords": ("data", "axes fraction")} if foot else {}),
        xytext=(7, 4),
        textcoords="offset points",
        fontsize=8,
        fontweight="bold",
        bbox={"facecolor": "white", "edgecolor": colour, "alpha": 0.9, "pad": 1.5},
    )


def _lost_times(run_dir: Path) -> list[float]:
    """Seconds since the stream started at which batches that lost items became final."""
    start = stream_start(run_dir)
    path = Path(run_dir) / "batches.csv"
    if start is None or not path.exists():
        return []
    batches = pd.read_csv(path)
    if "items_lost" not in batches or "t_final" not in batches:
        return []
    return list(batches.loc[batches["items_lost"] > 0, "t_final"] - start)


# -- stragglers ----------------------------------------------------------------------------


def draw_stragglers(runs: list[Run]) -> Drawn:
    """Latency p50, p99 and p99.9 of the items delivered in each bin over time, one line per
    scheme, a row of panels per set of slow processors, the slowdown shaded.

    One figure per setting (algorithm, dataset, rate); of repeats, the first run is drawn.
    """
    frame = _frame(runs)
    frame["slow"] = [_slow_set(run) for run in runs]
    frame["slowed"] = [len({w["worker"] for w in run.get("stragglers") or []}) for run in runs]
    settings = frame.groupby(["algorithm", "dataset", "rate_label"], sort=True)
    for (algorithm, dataset, rate_label), part in settings:
        first = part[part["run_index"] == part["run_index"].min()]
        sets = sorted(
            first["slow"].unique(),
            key=lambda s: (first.loc[first["slow"] == s, "slowed"].max(), s),
        )
        fig, rows = _row_figure(len(sets), len(PERCENTILES), (16, 2.0 + 3.5 * len(sets)))
        variants = _ordered_variants(first)
        lowest = np.inf
        for (subfig, row), slow in zip(rows, sets, strict=True):
            runs_of = first[first["slow"] == slow]
            lowest = min(lowest, _straggler_panels(row, runs_of, variants))
            subfig.suptitle(slow + _lost_phrase(runs_of), x=0.01, ha="left", fontsize=10)
        _log_y(rows[0][1][0])  # once every panel has its lines: the panels share the axis
        if np.isfinite(lowest) and lowest > 0:  # from a power of ten, so that it has a tick
            rows[0][1][0].set_ylim(bottom=10 ** np.floor(np.log10(lowest)))
        for ax in rows[-1][1]:
            ax.set_xlabel("time since the stream started (s)")
        repeats = " (first of the repeats)" if part["run_index"].nunique() > 1 else ""
        lost_key = "; X: items lost (where their batch ended)" if first["items_lost"].any() else ""
        fig.suptitle(
            f"Latency while processors run slow: {algorithm} on {dataset}, "
            f"{_processors_phrase(first)}, {_rate_phrase(first)}{repeats}\n"
            f"shaded: the slowdown, as it was applied{lost_key}\n"
            "in the legend: p99 of the items delivered during the slowdown / before it, items "
            "lost, and the largest relative distance to the single-process reference "
            f"(exact: at most {EXACT:.0e})",
            fontsize=10,
        )
        suffix = "" if settings.ngroups == 1 else f"{algorithm}-{dataset}-{rate_label}"
        yield suffix, fig


def _row_figure(
    rows: int, cols: int, size: tuple[float, float]
) -> tuple[Figure, list[tuple[Any, Any]]]:
    """A constrained-layout figure of ``rows`` subfigures (each with a title of its own over
    its row) of ``cols`` axes, every axis sharing x and y; room for the provenance footer."""
    fig = plt.figure(figsize=size, layout="constrained")
    bottom = FOOTER_INCHES / size[1]
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    made = []
    first = None
    for subfig in fig.subfigures(rows, 1, squeeze=False)[:, 0]:
        axes = subfig.subplots(1, cols, squeeze=False)[0]
        for i, ax in enumerate(axes):
            if first is None:
                first = ax
            else:
                ax.sharex(first)
                ax.sharey(first)
            if i:
                ax.tick_params(labelleft=False)
        made.append((subfig, axes))
    return fig, made


def _straggler_panels(row: Sequence[Any], part: pd.DataFrame, variants: list[str]) -> float:
    """A panel per percentile: one line per scheme, the slowdown shaded, the legend beside the
    last panel. Returns the lowest latency drawn (ms; inf when none)."""
    handles = []
    windows: list[tuple[float, float | None]] = []
    last, lowest = 0.0, np.inf
    for variant in variants:
        rows = part[part["variant"] == variant]
        if rows.empty:
            continue
        run = rows.iloc[0]
        start = stream_start(run["run_dir"])
        if start is None:
            continue
        colour = scheme_colour(run["family"])
        bins = latency_by_delivery(run["run_dir"], start)
        if len(bins):
            for ax, (_, name) in zip(row, PERCENTILES, strict=True):
                ax.plot(bins.index + DELIVERY_BIN / 2, bins[name], color=colour, lw=1.3)
            last = max(last, float(bins.index.max()) + DELIVERY_BIN)
            lowest = min(lowest, float(np.nanmin(bins.to_numpy())))
        windows += [
            (w["start"] - start, None if w.get("end") is None else w["end"] - start)
            for w in run["stragglers"]
            if w.get("start") is not None
        ]
        lost = int(run["items_lost"])
        if lost:
            _mark_lost_below(row, run, lost, colour)
        label = f"{_variant_name(variant)}\n{_slowdown_note(run)}"
        handles.append(Line2D([], [], color=colour, lw=2, label=label))
    if windows:
        begin = min(w[0] for w in windows)
        ends = [w[1] for w in windows]
        end = last if None in ends else max(e for e in ends if e is not None)
        for ax in row:
            ax.axvspan(begin, end, color="#999999", alpha=0.2, lw=0)
        row[0].annotate(
            "slowdown",
            xy=(begin, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
        )
    for ax, (q, _) in zip(row, PERCENTILES, strict=True):
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(
            f"p{q:g} of the items delivered in each {1000 * DELIVERY_BIN:.0f} ms", fontsize=9
        )
    row[0].set_ylabel("latency (ms, log scale)")
    row[-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return lowest


def latency_by_delivery(run_dir: Path, start: float) -> pd.DataFrame:
    """Latency percentiles (ms, a column per ``PERCENTILES`` name) of the items delivered in
    each bin of ``DELIVERY_BIN`` seconds, indexed by the bin's start (seconds since ``start``).

    An item counts when its result became final (arrival + latency), as in the summary's
    ``latency_during_slowdown``; lost items count nowhere, and a bin in which nothing was
    delivered is a gap in the lines.
    """
    arrivals, latency = item_arrivals(run_dir)
    delivered = arrivals + latency - start
    kept = np.isfinite(delivered)
    bins = np.floor(delivered[kept] / DELIVERY_BIN).astype(np.int64)
    items = pd.DataFrame({"bin": bins, "ms": latency[kept] * 1e3})
    found = items.groupby("bin")["ms"].quantile([q / 100 for q, _ in PERCENTILES]).unstack()
    found.columns = [name for _, name in PERCENTILES]
    if found.empty:
        return found
    every = pd.RangeIndex(int(found.index.min()), int(found.index.max()) + 1)
    found = found.reindex(every)
    found.index = found.index * DELIVERY_BIN
    return found


def _slow_set(run: Run) -> str:
    """The run's slow processors as its spec gives them, e.g. ``2 slow processors:
    processor-2 and processor-3 5x slower from 4 s to 8 s``; as applied when the spec is
    unreadable."""
    planned = [s for s in _spec_entries(run["run_dir"], "stragglers") if "worker" in s]
    windows = planned or [
        {"worker": w["worker"], "slowdown": w["slowdown"]} for w in run.get("stragglers") or []
    ]
    groups: dict[tuple, list[str]] = defaultdict(list)
    for window in windows:
        key = (float(window["slowdown"]), window.get("from"), window.get("to"))
        if window["worker"] not in groups[key]:
            groups[key].append(str(window["worker"]))
    parts = []
    for (slowdown, begin, end), workers in groups.items():
        when = ""
        if begin is not None:
            to = "the end" if end in (None, "end") else f"{float(end):g} s"
            when = f" from {float(begin):g} s to {to}"
        parts.append(f"{' and '.join(workers)} {slowdown:g}x slower{when}")
    count = len({str(window["worker"]) for window in windows})
    noun = "slow processor" if count == 1 else "slow processors"
    return f"{count} {noun}: {'; '.join(parts)}"


def _slowdown_note(run: pd.Series) -> str:
    """The legend's line under a scheme: p99 during the slowdown / before, items lost, and
    whether the model and predictions are the single-process reference's."""
    during = run["latency_during_slowdown"]
    ratio = during.get("p99_ratio") if isinstance(during, dict) else None
    parts = [f"p99 during/before {float(ratio):.2f}x" if ratio else "p99 during/before n/a"]
    lost = int(run["items_lost"])
    parts.append(f"{lost:,} items lost" if lost else "0 lost")
    error = None if pd.isna(run["ref_err"]) else float(run["ref_err"])
    matches = run["reference_matches"]
    matches = None if matches is None or pd.isna(matches) else bool(matches)
    if error is None and matches is None:
        parts.append("reference not compared")
    elif matches is False or error is None or error > EXACT:
        parts.append("NOT exact" + ("" if error is None else f" (error {error:.1e})"))
    else:
        parts.append(f"exact (error {error:.0e})")
    return ", ".join(parts)


def _mark_lost_below(row: Sequence[Any], run: pd.Series, lost: int, colour: str) -> None:
    """An X at the foot of each panel where a batch lost items, the total beside the first."""
    when = _lost_times(run["run_dir"])
    if not when:
        return
    for ax in row:
        _lost_marks(ax, when, colour, foot=True)
    _lost_label(row[0], when[0], f"{run['variant']}: {lost:,} lost", colour, foot=True)


# -- coding --------------------------------------------------------------------------------


def draw_coding(runs: list[Run]) -> Drawn:
    """EC variants (attach mode x incremental encoding): throughput, latency p50 and p99."""
    frame = _frame(runs)
    frame["setting"] = frame["algorithm"] + " on " + frame["dataset"]
    variants = _ordered_variants(frame)
    panels = (
        ("throughput", 1e-3, "throughput (thousand items/s)"),
        ("p50", 1.0, "latency p50 (ms)"),
        ("p99", 1.0, "latency p99 (ms)"),
    )
    width = max(13.0, 3 * (1.0 + 0.35 * len(variants) * frame["setting"].nunique()))
    fig, axes = _figure(1, 3, (width, 5.2))
    for ax, (column, scale, label) in zip(axes[0], panels, strict=True):
        _grouped_bars(ax, frame, "setting", variants, column, scale=scale)
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0], fontsize=10, loc="left")
    title = (
        "The two coding optimisations: attaching linear parts (hybrid coded computation) "
        "instead of inputs, and incremental encoding\n"
        f"{_setting(frame)}; {_rate_phrase(frame)}; {_repeat_phrase(frame)}"
    )
    _titled_legend(fig, title, [_variant_patch(v, coding=True) for v in variants], columns=2)
    yield "", fig


# -- parameters ----------------------------------------------------------------------------


def draw_parameters(runs: list[Run]) -> Drawn:
    """Throughput, worst condition number and decode error against k: a line per parity
    count r (colour) and construction (line style); whiskers span repeats only."""
    frame = _frame(runs)
    frame = frame[frame["scheme"] == "ec"].astype({"k": int, "r": int})
    if frame.empty:  # a spec named parameters without EC runs: show what there is
        yield from draw_throughput(runs)
        return
    fig, axes = _figure(1, 3, (16, 5.4))
    ax_tp, ax_cond, ax_err = axes[0]
    processors_vary = frame["processors"].nunique() > 1
    for r, part in frame.groupby("r"):
        colour = R_COLOURS.get(int(r), OTHER_EC_COLOUR)
        for n, (code, by_code) in enumerate(part.groupby("code")):
            style = CODE_STYLES.get(str(code), ":")
            stats = by_code.groupby("k")["throughput"].agg(["mean", "min", "max"]).sort_index()
            stats *= 1e-3
            ax_tp.errorbar(
                stats.index,
                stats["mean"],
                yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                color=colour,
                ls=style,
                marker="o",
                capsize=3,
                label=f"r = {r}, {code}",
            )
            if processors_vary and n == 0:  # once per point of k and r
                for k, procs in by_code.groupby("k")["processors"].first().items():
                    ax_tp.annotate(
                        f"P={procs}",
                        (k, stats.loc[k, "mean"]),
                        xytext=(4, 4),
                        textcoords="offset points",
                        fontsize=7,
                        color=colour,
                    )
            cond = by_code.groupby("k")["worst_condition"].max().dropna().sort_index()
            ax_cond.plot(cond.index, cond.to_numpy(), ls=style, marker="o", color=colour)
            err = by_code.groupby("k").agg(err=("ref_err", "max"), decoded=("decoded", "max"))
            err = err.dropna(subset=["err"]).sort_index()
            values = np.maximum(err["err"].to_numpy(dtype=float), 1e-17)
            decoded = err["decoded"].to_numpy(dtype=float) > 0
            ax_err.plot(err.index, values, ls=style, color=colour, alpha=0.7)
            ax_err.scatter(err.index[decoded], values[decoded], color=colour, zorder=3)
            ax_err.scatter(
                err.index[~decoded], values[~decoded], facecolor="white", edgecolor=colour, zorder=3
            )
    xlabel = "k (data processors per group)"
    ax_tp.set_title("throughput", fontsize=10, loc="left")
    ax_tp.set_ylim(bottom=0)
    ax_tp.set_ylabel("throughput (thousand items/s)")
    ax_tp.legend(fontsize=8, title="parity r, construction", title_fontsize=8)
    ax_cond.set_title("worst condition number over all erasure patterns", fontsize=10, loc="left")
    ax_cond.set_yscale("log")
    ax_cond.set_ylabel("condition number (log scale)")
    ax_err.set_title(
        "decode error: max relative distance to the reference", fontsize=10, loc="left"
    )
    ax_err.set_yscale("log")
    ax_err.set_ylabel("max relative error (log scale)")
    ax_err.axhline(1e-9, color="black", lw=0.8, ls=":")
    ax_err.annotate(
        "exactness bound 1e-9",
        (0.01, 1e-9),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=7,
    )
    for ax in axes[0]:
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    codes = sorted(str(c) for c in frame["code"].dropna().unique())
    code_handles = [
        Line2D([], [], color="black", ls=CODE_STYLES.get(c, ":"), label=f"{c} code") for c in codes
    ]
    hollow = Line2D(
        [], [], color="black", marker="o", ls="", markerfacecolor="white", label="nothing decoded"
    )
    ax_cond.legend(handles=code_handles, fontsize=8)
    ax_err.legend(handles=[*code_handles, hollow], fontsize=8)
    procs = (
        "k+r processors (one group) or as marked" if processors_vary else _processors_phrase(frame)
    )
    fig.suptitle(
        f"EC parameters k and r: {_algorithms_phrase(frame)}, {procs}; {_rate_phrase(frame)}\n"
        f"failures: {_failures_phrase(frame)}; colour: r; line style: construction",
        fontsize=10,
    )
    yield "", fig


# -- scalability ---------------------------------------------------------------------------


def draw_scalability(runs: list[Run]) -> Drawn:
    """Throughput against processors per scheme and, where the runs have several source/sink
    pairs, against pairs too; hollow markers where the run asked for more CPU than the machine
    has (processes on shared cores, or the emulated hosts' quotas)."""
    frame = _frame(runs)
    frame["over"] = frame["demand"] > frame["cores"].fillna(np.inf)
    batches = sorted(frame["batch"].unique(), reverse=True)
    for batch in batches:  # a figure per batch size: the bottleneck moves with it
        part = frame[frame["batch"] == batch]
        suffix = f"batch{batch}" if len(batches) > 1 else ""
        yield suffix, _scaling_figure(part, f", batches of {batch:,} items" if suffix else "")


def _scaling_figure(frame: pd.DataFrame, batch: str) -> Figure:
    """One scalability figure (see ``draw_scalability``)."""
    several = frame["pairs"].nunique() > 1
    panels = [("pairs", "processors"), ("processors", "pairs")] if several else [("processors", "")]
    fig, axes = _figure(1, len(panels), (13.0 if several else 9.5, 6.0))
    for ax, (x_key, line_key) in zip(axes[0], panels, strict=True):
        for variant in _ordered_variants(frame):
            part = frame[frame["variant"] == variant]
            colour = scheme_colour(part["family"].iloc[0])
            values = sorted(part[line_key].unique()) if line_key else [None]
            for n, value in enumerate(values):
                line = part if value is None else part[part[line_key] == value]
                stats = line.groupby(x_key).agg(
                    mean=("throughput", "mean"),
                    lo=("throughput", "min"),
                    hi=("throughput", "max"),
                    over=("over", "max"),
                )
                x = stats.index.to_numpy()
                mean, lo, hi = (stats[c].to_numpy() * 1e-3 for c in ("mean", "lo", "hi"))
                label = _variant_name(variant)
                if value is not None:
                    label += f", {value} {line_key if value != 1 else line_key.rstrip('s')}"
                ax.errorbar(
                    x,
                    mean,
                    yerr=[mean - lo, hi - mean],
                    color=colour,
                    ls=SCALING_STYLES[n % len(SCALING_STYLES)],
                    capsize=3,
                    lw=1.6,
                    label=label,
                )
                over = stats["over"].to_numpy(dtype=bool)
                ax.scatter(x[~over], mean[~over], color=colour, s=45, zorder=3)
                ax.scatter(
                    x[over], mean[over], facecolor="white", edgecolor=colour, lw=1.6, s=45, zorder=3
                )
        ax.set_xlabel(SCALING_AXES[x_key])
        ax.set_xticks(sorted(int(v) for v in frame[x_key].unique()))
        ax.set_ylabel("throughput, all pairs together (thousand items/s)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        handles.append(
            Line2D(
                [], [], color="black", marker="o", ls="", markerfacecolor="white", label="over CPU"
            )
        )
        ax.legend(handles=handles, fontsize=7, loc="best")
    cores = "/".join(str(int(c)) for c in sorted(frame["cores"].dropna().unique())) or "unknown"
    what = "the CPU the run asked for" + (
        " (the emulated hosts' quotas)" if frame["emulated"].any() else " (a core per process)"
    )
    axes[0, 0].set_title(
        f"hollow markers: {what} exceeds this machine's {cores} cores"
        + (" (every run here)" if frame["over"].all() else ""),
        fontsize=9,
        loc="left",
    )
    fig.suptitle(
        f"Scalability: throughput against {'source/sink pairs and ' if several else ''}"
        f"processors, {_algorithms_phrase(frame)}{batch}\n"
        f"{_rate_phrase(frame)}; {_repeat_phrase(frame)}",
        fontsize=10,
    )
    return fig


SCALING_STYLES = ("-", "--", ":", "-.")
SCALING_AXES = {
    "processors": "processors (shared by every pair)",
    "pairs": "source/sink pairs (each its own stream and model)",
}


def _demand(run: Run) -> float:
    """Cores the run asked for: the emulated hosts' quotas, else one per process."""
    cluster = (run.get("meta") or {}).get("cluster") or {}
    asked = cluster.get("asked") or {}
    if cluster.get("emulated") and asked.get("cpu") and asked.get("hosts"):
        return float(asked["cpu"]) * int(asked["hosts"])
    pairs = int(run.get("pairs") or 1)
    return float(int(run.get("processors") or 0) + 2 * pairs)


def _log_y(ax: Any) -> None:
    """Log y scale with plain numbers (20, 50, 100) rather than powers of ten."""
    ax.set_yscale("log")
    axis = ax.yaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


# -- regime ---------------------------------------------------------------------------------


def draw_regime(runs: list[Run]) -> Drawn:
    """EC(4,2)'s throughput over rep-3x's and reactive's against link rate (left) and CPU per
    host (right), with shared cores as the first point on the left and the paper's ratios."""
    found = regime.conditions(runs)
    links, cpus = regime.link_series(found), regime.cpu_series(found)
    shared = [c for c in found if not c.emulated]
    if not links and not cpus:
        msg = "no failure-free run at rate max on emulated hosts: nothing to set against"
        raise ValueError(msg)
    fig, axes = _figure(1, 2, (12.0, 5.5), sharey=True)
    left, right = axes[0, 0], axes[0, 1]
    series = [*shared, *links]
    for other in (regime.REP3, "reactive"):
        colour = scheme_colour(other)
        name = f"EC(4,2) / {'Rep-3x' if other == regime.REP3 else 'Reactive'}"
        for ax, points, xs in (
            (left, series, list(range(len(series)))),
            (right, cpus, [c.cpu for c in cpus]),
        ):
            ratios = [c.ratio(other) for c in points]
            shown = [(x, y) for x, y in zip(xs, ratios, strict=True) if y is not None]
            if shown:
                ax.plot(*zip(*shown, strict=True), marker="o", color=colour, lw=1.6, label=name)
            paper = regime.PAPER[other]
            ax.axhline(paper, color=colour, ls="--", lw=1.0)
            ax.annotate(
                f"paper {paper:g}x",
                (0.99, paper),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                fontsize=8,
                color=colour,
            )
    left.set_xticks(range(len(series)), [_condition_tick(c) for c in series], fontsize=8)
    cpu_text = f"{links[0].cpu:g} CPU per emulated host" if links and links[0].cpu else ""
    left.set_title(f"against link rate ({cpu_text or 'links only'})", fontsize=10, loc="left")
    left.set_ylabel("throughput ratio (EC(4,2) over the other scheme)")
    right.set_title("against CPU per host (links unshaped)", fontsize=10, loc="left")
    right.set_xlabel("CPU share of each emulated host (cores)")
    if cpus:
        right.set_xticks([c.cpu for c in cpus], [f"{c.cpu:g}" for c in cpus])
    for ax in (left, right):
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    left.legend(loc="upper left", fontsize=9)
    fig.suptitle("Where the paper's throughput ratios hold: by network and CPU per host")
    yield "", fig


def _condition_tick(condition: regime.Condition) -> str:
    if not condition.emulated:
        return "shared\ncores"
    link = "unshaped" if condition.link_bit_s is None else f"{condition.link_bit_s / 1e6:g} Mbit/s"
    if condition.label.startswith("emulated"):
        return link
    return f"{condition.label}\n({link})"


DRAW: dict[str, Callable[[list[Run]], Drawn]] = {
    "throughput": draw_throughput,
    "recovery": draw_recovery,
    "coding": draw_coding,
    "parameters": draw_parameters,
    "scalability": draw_scalability,
    "regime": draw_regime,
    "intensity": draw_intensity,
    STRAGGLERS: draw_stragglers,
}


# -- motivation: Spark's recovery beside streamlec's --------------------------------------------

SPARK_COLOUR = "#222222"  # apart from every scheme's colour


def draw_motivation(rows: list[dict[str, Any]]) -> Figure:
    """Recovery time after a kill per system, and p50 latency before and after it."""
    names = [row["system"] for row in rows][::-1]
    colours = [
        SPARK_COLOUR if row["family"] == "spark" else scheme_colour(row["family"]) for row in rows
    ][::-1]
    fig, axes = _figure(1, 2, (11.0, 1.6 + 0.45 * len(rows)))
    left, right = axes[0, 0], axes[0, 1]
    y = np.arange(len(rows))
    recovery = [row["recovery_s"] for row in rows][::-1]
    left.barh(y, [v or 0.0 for v in recovery], color=colours)
    for i, value in enumerate(recovery):
        text = "n/a" if value is None else f"{value:.3g} s"
        left.text(value or 0.0, i, " " + text, va="center", fontsize=8)
    left.set_yticks(y, names)
    left.set_xscale("symlog", linthresh=0.01)
    left.set_xlim(0, 5 * max([v for v in recovery if v is not None], default=1.0))
    left.set_xlabel("recovery after the kill (s)")
    left.set_title("Spark: kill -> first commit\nstreamlec: kill -> full tolerance", fontsize=9)
    height = 0.38
    for offset, key, label, alpha in (
        (height / 2, "p50_before_ms", "before the kill", 0.45),
        (-height / 2, "p50_after_ms", "after the kill", 1.0),
    ):
        values = [row[key] or 0.0 for row in rows][::-1]
        right.barh(y + offset, values, height, color=colours, alpha=alpha, label=label)
    right.set_yticks(y, [""] * len(rows))
    right.set_xscale("log")
    right.set_xlabel("latency p50 (ms)")
    right.set_title("latency p50, light: before the kill, dark: after", fontsize=9)
    fig.suptitle("Recovery from one killed process: Spark Structured Streaming vs streamlec")
    return fig


# -- reading runs into a table -------------------------------------------------------------


def _frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run with the columns the figures use."""
    rows = []
    for run in runs:
        latency = run.get("latency_ms") or {}
        machine = run.get("machine") or {}
        meta = run.get("meta") or {}
        rate = run.get("rate")
        closed = rate in (None, "max")
        rows.append(
            {
                "run_dir": run["run_dir"],
                "config": run["config"],
                "run_index": int(meta.get("run_index", 0)),
                "scheme": run.get("scheme"),
                "family": run["family"],
                "variant": run["variant"],
                "algorithm": run.get("algorithm_label") or str(run.get("algorithm")),
                "centroids": _centroids(run),
                "dataset": str(run.get("dataset")),
                "processors": int(run.get("processors") or 0),
                "batch": run.get("batch"),
                "k": run.get("k"),
                "r": run.get("r"),
                "code": run.get("code"),
                "worst_condition": run.get("code_worst_condition"),
                "rate": None if closed else float(rate),
                "rate_label": "max rate" if closed else f"{float(rate):,.0f} items per s",
                "throughput": float(run["throughput_items_per_s"]),
                "p50": latency.get("p50"),
                "p99": latency.get("p99"),
                "ref_err": run.get("reference_max_rel_err"),
                "decoded": run.get("decoded_items") or 0,
                "failures": run.get("failures") or [],
                "killed": len(run.get("failures") or []),
                "items_lost": int(run.get("items_lost") or 0),
                "pattern": _pattern(run),
                "latency_around_first_failure": run.get("latency_around_first_failure"),
                "stragglers": run.get("stragglers") or [],
                "latency_during_slowdown": run.get("latency_during_slowdown"),
                "reference_matches": (run.get("reference") or {}).get("matches"),
                "cores": machine.get("cores") or meta.get("cores"),
                "pairs": int(run.get("pairs") or 1),
                "demand": _demand(run),
                "emulated": bool((meta.get("cluster") or {}).get("emulated")),
            }
        )
    frame = pd.DataFrame(rows)
    for column in ("cores", "worst_condition", "ref_err", "p50", "p99"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def _centroids(run: Run) -> int | None:
    """K-Means's centroid count (its work per item), None for another algorithm."""
    if run.get("algorithm") != "kmeans":
        return None
    return (run.get("algorithm_params") or {}).get("clusters")


def _pattern(run: Run) -> str:
    """The failures as the spec gives them, e.g. ``2 processors killed at once at 6 s (...)``."""
    planned = _spec_entries(run["run_dir"], "failures")
    done = run.get("failures") or []
    if not planned:
        if not done:
            return "no failure"
        noun = "processor" if len(done) == 1 else "processors"
        return f"{len(done)} {noun} killed ({', '.join(f['worker'] for f in done)})"
    parts = []
    for failure in planned:
        kill = list(failure.get("kill") or [])
        if failure.get("at") is not None:
            when = f"at {float(failure['at']):g} s"
        else:
            when = f"at batch {failure.get('at_batch')}"
        noun = "processor killed" if len(kill) == 1 else "processors killed at once"
        parts.append(f"{len(kill)} {noun} {when} ({', '.join(kill)})")
    return "; then ".join(parts)


def _spec_entries(run_dir: Path, key: str) -> list[dict[str, Any]]:
    """The mappings under ``key`` (``failures``, ``stragglers``) of the run's spec.yaml."""
    path = Path(run_dir) / "spec.yaml"
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    entries = spec.get(key) if isinstance(spec, dict) else None
    return [entry for entry in entries or [] if isinstance(entry, dict)]


def _timeline(run_dir: Path) -> pd.DataFrame | None:
    path = Path(run_dir) / "timeline.csv"
    return pd.read_csv(path) if path.exists() else None


def _varies(runs: list[Run], key: str) -> bool:
    return len({str(run.get(key)) for run in runs}) > 1


# -- drawing helpers -----------------------------------------------------------------------


def _figure(rows: int, cols: int, size: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """A constrained-layout figure with room at the bottom for the provenance footer."""
    fig, axes = plt.subplots(
        rows, cols, figsize=size, squeeze=False, layout="constrained", **kwargs
    )
    bottom = FOOTER_INCHES / size[1]
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    return fig, axes


def _titled_legend(fig: Figure, title: str, handles: list[Any], columns: int) -> None:
    """The figure's title with its legend below it, above the axes.

    (A legend title rather than ``suptitle``: constrained layout overlaps those two.)
    """
    legend = fig.legend(
        handles=handles,
        loc="outside upper center",
        fontsize=9,
        ncols=min(len(handles), columns),
        frameon=False,
        title=title,
        title_fontsize=11,
    )
    legend.get_title().set_multialignment("center")


def _order_key(variant: str) -> tuple:
    family, _, extra = variant.partition(" ")
    if family in SCHEME_ORDER:
        rank: tuple = (0, SCHEME_ORDER.index(family), ())
    else:
        rank = (1, family.split("(")[0], tuple(int(n) for n in re.findall(r"\d+", family)))
    extra_rank = VARIANT_EXTRAS.index(extra) if extra in VARIANT_EXTRAS else len(VARIANT_EXTRAS)
    return (*rank, extra_rank, extra)


def _ordered_variants(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["variant"].unique(), key=_order_key)


def _variant_name(variant: str) -> str:
    """Legend name: the scheme and its redundancy, e.g. ``ec(4,2): 1.5x redundancy``."""
    family, _, extra = variant.partition(" ")
    name = SCHEME_NAMES.get(family)
    ec = re.fullmatch(r"ec\((\d+),(\d+)\)", family)
    rep = re.fullmatch(r"rep-(\d+)x", family)
    if ec:
        k, r = int(ec[1]), int(ec[2])
        name = f"{family}: {(k + r) / k:.3g}x redundancy"
    elif rep:
        name = f"{family}: {rep[1]} copies"
    return f"{name or family} {extra}".strip()


def _variant_patch(variant: str, *, coding: bool = False) -> Patch:
    family, _, extra = variant.partition(" ")
    label = _variant_name(variant)
    if coding:
        attach = "attach inputs" if "inputs" in extra else "attach linear parts (hybrid)"
        encoding = "encoding not incremental" if "no-incremental" in extra else "incremental"
        label = f"{family}: {attach}, {encoding}"
    return Patch(
        facecolor=scheme_colour(family),
        edgecolor="white",
        hatch=VARIANT_HATCHES.get(extra, "++"),
        label=label,
    )


def _grouped_bars(
    ax: Any, frame: pd.DataFrame, by: str, variants: list[str], column: str, *, scale: float
) -> list[Any]:
    """A bar per (group, variant): the mean over repeats, whiskers min-max, value on top;
    returns the groups in their order on the x axis."""
    groups = sorted(frame[by].unique(), key=lambda group: natural_key(str(group)))
    width = 0.84 / max(1, len(variants))
    for i, variant in enumerate(variants):
        stats = frame[frame["variant"] == variant].groupby(by)[column].agg(["mean", "min", "max"])
        stats = stats.dropna() * scale
        xs = [
            g - 0.42 + width * (i + 0.5) for g, group in enumerate(groups) if group in stats.index
        ]
        if not xs:
            continue
        stats = stats.loc[[group for group in groups if group in stats.index]]
        mean = stats["mean"].to_numpy()
        spread = [mean - stats["min"].to_numpy(), stats["max"].to_numpy() - mean]
        family, _, extra = variant.partition(" ")
        ax.bar(
            xs,
            mean,
            width=width * 0.92,
            color=scheme_colour(family),
            edgecolor="white",
            hatch=VARIANT_HATCHES.get(extra, "++"),
            yerr=spread if np.any(spread) else None,
            capsize=2,
            error_kw={"lw": 0.8},
        )
        for x, value, high in zip(xs, mean, stats["max"], strict=True):
            ax.annotate(
                _short(value),
                (x, high),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=90,
            )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.margins(y=0.2)
    ax.set_ylim(bottom=0)
    ax.grid(True, axis="y", alpha=0.3)
    return groups


def _short(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _setting(frame: pd.DataFrame) -> str:
    batches = sorted({int(b) for b in frame["batch"].dropna()})
    text = _processors_phrase(frame)
    return text + (f", batch {'/'.join(str(b) for b in batches)}" if batches else "")


def _processors_phrase(frame: pd.DataFrame) -> str:
    processors = sorted(int(p) for p in frame["processors"].unique())
    noun = "processor" if processors == [1] else "processors"
    return f"{'/'.join(str(p) for p in processors)} {noun}"


def _rate_phrase(frame: pd.DataFrame) -> str:
    rates = sorted(frame["rate_label"].unique())
    if rates == ["max rate"]:
        return "closed loop (max rate)"
    return "open loop at " + " / ".join(rates)


def _repeat_phrase(frame: pd.DataFrame) -> str:
    counts = frame.groupby("config").size()
    low, high = int(counts.min()), int(counts.max())
    if high == 1:
        return "one run each"
    n = str(high) if low == high else f"{low}-{high}"
    return f"bars: mean of {n} repeats, whiskers: min-max"


def _algorithms_phrase(frame: pd.DataFrame) -> str:
    pairs = zip(frame["algorithm"], frame["dataset"], strict=True)
    return ", ".join(sorted({f"{a} on {d}" for a, d in pairs}))


def _failures_phrase(frame: pd.DataFrame) -> str:
    patterns = sorted(frame["pattern"].unique())
    if patterns == ["no failure"]:
        return "none (a decode error needs a kill)"
    return "; ".join(patterns)


def provenance(runs: list[Run]) -> str:
    """Two lines: the commit(s) and machine(s), then versions and spec(s) of the runs."""
    commits, machines, versions = set(), set(), set()
    for run in runs:
        machine, meta = run.get("machine") or {}, run.get("meta") or {}
        commits.add(_short_commit(str(run.get("commit") or meta.get("commit") or "unknown")))
        host = machine.get("host") or meta.get("host") or "unknown host"
        cores = machine.get("cores") or meta.get("cores") or "?"
        memory = machine.get("memory_gib") or meta.get("memory_gib") or "?"
        platform = machine.get("platform") or meta.get("platform")
        machines.add(f"{host}: {cores} cores, {memory} GiB" + (f", {platform}" if platform else ""))
        known = meta.get("versions") or {}
        names = ("streamlec", "python", "numpy", "pyzmq")
        versions.add(", ".join(f"{name} {known[name]}" for name in names if known.get(name)))
    specs = ", ".join(sorted({str(run["spec_name"]) for run in runs}))
    clusters = sorted({cluster_line(run.get("meta") or {}) for run in runs})
    noun = "commit" if len(commits) == 1 else "commits"
    first = f"{noun} {', '.join(sorted(commits))}  |  machine {'; '.join(sorted(machines))}"
    version_text = "; ".join(sorted(v for v in versions if v)) or "versions unknown"
    count = "1 run" if len(runs) == 1 else f"{len(runs)} runs"
    where = "" if clusters == ["this machine"] else "  |  " + "; ".join(clusters)
    if len(clusters) > 2:  # a figure across conditions names them on its axes
        where = f"  |  {len(clusters)} conditions: this machine's shared cores and emulated hosts"
    return f"{first}\n{version_text}  |  spec {specs}: {count}{where}"


def _short_commit(commit: str) -> str:
    base, dirty, _ = commit.partition("-dirty")
    return base[:10] + (" (with uncommitted changes)" if dirty else "")


def _stem(kind: str, spec_name: str, suffix: str, used: set[str]) -> str:
    """File name without extension: ``throughput`` for spec throughput, else ``kind-spec``."""
    parts = [kind] if spec_name == kind else [kind, spec_name]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join([*parts, suffix] if suffix else parts))
    candidate, n = stem, 2
    while candidate in used:
        candidate, n = f"{stem}-{n}", n + 1
    used.add(candidate)
    return candidate


#: Metadata left out of each format, so the same results give the same files.
UNDATED = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def _save(figure: Figure, stem: Path, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """One file per format (SVG text kept as text), undated."""
    paths = []
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "streamlec"}):
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            dpi = DPI if fmt == "png" else "figure"  # vector formats: the figure's own
            figure.savefig(path, dpi=dpi, metadata=UNDATED[fmt])
            paths.append(path)
    plt.close(figure)
    return paths
