"""``streamlec report``: the paper's headline ratios beside the ones recomputed from saved runs.

Every number comes from the ``summary.json`` of the runs found (and, where a summary lacks
the before/after latency of its first failure, from the run's ``latency.f32`` and
``batches.csv``); nothing is typed in. A claim without the runs to measure it says
"not measured".

How each ratio is measured:

* **Throughput, EC(4,2) vs another scheme**: runs without failures at ``rate: max`` are
  paired by setting (spec folder, algorithm, dataset, processors, batch, items). Per setting
  the ratio is the mean throughput of the EC(4,2) runs (attach linear, incremental encoding,
  i.e. the full StreamLEC; other EC(4,2) variants only when those are missing) over the
  mean of the other scheme's runs; the reported ratio is the geometric mean over settings,
  those of the spec named ``throughput`` only when it has such runs.
* **Latency after failures**: runs of the scheme in which exactly n processors were killed,
  open-loop runs (a fixed ``rate``) only when there are any, as closed-loop latency is mostly
  queueing; per run, the p99 latency of the items delivered in the 5 s after the first kill
  over that of the items delivered in the 5 s before (the summary's
  ``latency_around_first_failure``); the reported ratio is the geometric mean over runs.
  Items count by delivery time, not arrival: by arrival, the items that arrived just before
  a crash and waited for the recovery (the batches reactive replays) would land in the
  "before" window and hide the slowdown.
* **Stragglers**: runs whose processors were slowed (the spec's ``stragglers``) count in no
  other table or claim. Each gets a row of the stragglers table from its summary's
  ``latency_during_slowdown``: latency of the items delivered before the first slowdown began
  and during the slowdowns (by delivery time, as above). The claim: per run of EC(4,2) or
  ``none`` with one processor slowed 5x (open-loop runs only when there are any), the p99
  during over before; the geometric mean over runs, per condition (shared cores, an emulated
  cluster).
* **Motivation** (a section of its own, when the paths hold a ``streamlec baseline spark``
  run): recovery time and latency around the kill, Spark beside the streamlec runs with
  kills in the same spec folder (``motivation.py``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import median
from typing import Any

from . import motivation, schemes
from .profiles import SHARED, cluster_line
from .regime import default_variant
from .results import FAMILY_ORDER, load_baselines, load_runs, natural_key

Run = dict[str, Any]
Record = dict[str, Any]  # one row of a table, as numbers where it holds numbers

EC = schemes.label("ec", {"k": 4, "r": 2})
REP3 = schemes.label("rep", {"copies": 3})
NOT_MEASURED = "not measured"
#: Specs whose runs sweep the conditions (shared cores, emulated profiles) to compare them;
#: they are left out of the claims' columns (the regime figure shows them).
OWN_TABLE_SPECS = frozenset({"regime", "scalability"})
SCALING_SPEC = "scalability"  # its runs get the scalability table
PREFERRED_THROUGHPUT_SPEC = "throughput"  # its settings alone, when it has the runs
LATENCY_WINDOW = 5.0  # seconds, as the run's own summary uses


@dataclass(frozen=True)
class Row:
    """One line of the claims table: ``measured`` as text, ``ratio`` (and, for latency,
    ``p50_ratio``) as numbers, None when not measured."""

    claim: str
    paper: str
    measured: str
    basis: str
    ratio: float | None = None
    p50_ratio: float | None = None


@dataclass(frozen=True)
class Report:
    """The Markdown text, the same tables as records (``claims``, ``throughput``, ``cpu``;
    one dict per row, numbers as numbers) for CSV and JSON, and a note per run left out."""

    markdown: str
    tables: dict[str, list[Record]]
    notes: list[str]


def build_report(paths: Sequence[Path], all_runs: bool = False) -> Report:
    """The report on the runs under ``paths``: the latest complete run of each setting, or
    every run with ``all_runs`` (``results.load_runs``).

    Raises :class:`~streamlec_cli.results.NoRunsError` when there is no run directory.
    """
    runs, notes = load_runs(paths, all_runs)
    # A spec that sweeps the conditions themselves has a table and a figure of its own; the
    # claims get a column per condition of the other specs (when there are any).
    # Runs whose processors were slowed are measured in the stragglers section alone.
    unslowed = [run for run in runs if not slowed(run)]
    claimed = [run for run in unslowed if run["spec_name"] not in OWN_TABLE_SPECS] or unslowed
    clusters = sorted({run["cluster"] for run in claimed}, key=lambda c: (c != SHARED, c))
    by_cluster = {
        cluster: claim_rows([r for r in claimed if r["cluster"] == cluster])
        for cluster in clusters or [SHARED]
    }
    lines = [
        "## StreamLEC: the paper's claims beside this reproduction",
        "",
        *claims_table(by_cluster),
        "",
        provenance(runs, paths),
    ]
    throughput = throughput_records([run for run in runs if run["spec_name"] != SCALING_SPEC])
    if throughput:
        lines += ["", "### Throughput by setting (items/s, mean over repeats)", ""]
        lines += _markdown(throughput, _throughput_columns(throughput))
    costs = cpu_records(runs)
    if costs:
        lines += [
            "",
            "### Where the CPU goes (CPU seconds per million items delivered)",
            "",
            "Failure-free runs at rate max, by scheme (median over runs), from each run's "
            "`cpu_seconds_during_stream`. Redundancy only adds processor work; the source and "
            "the sink cost about the same under every scheme (the reactive source also writes "
            "its log), so where they share the cores with the processors they bound how far "
            "apart the schemes' throughputs can be. Machine idle is the share of all cores' "
            "time left idle during the stream (`machine_idle_during_stream`): where it is high, "
            "the synchronous pipeline (batch b waits for the model of batch b-1) waits on "
            "itself, and saving CPU does not raise throughput.",
            "",
            f"Runs of spec {costs[0]['specs']}:",
            "",
            *_markdown(costs, CPU_COLUMNS),
        ]
    claims = [
        {"cluster": cluster, **asdict(row)}
        for cluster, cluster_rows in by_cluster.items()
        for row in cluster_rows
    ]
    scaling = scaling_records(runs)
    if scaling:
        lines += [
            "",
            "### Scalability (items/s of all pairs together, mean over repeats)",
            "",
            "Failure-free runs of the scalability spec: each source/sink pair is a stream "
            "with its own source, sink and model, and the pairs share the processors' hosts. "
            "`x pairs 1` is the throughput over that of one pair with the same processors; "
            "`x procs min` over that of the fewest processors with the same pairs.",
            "",
            *_markdown(scaling, SCALING_COLUMNS),
        ]
    quality = quality_records(runs)
    if quality:
        lines += [
            "",
            "### Prediction quality (progressive: each item predicted before it is learned from)",
            "",
            "Classification runs by setting (median over its runs, every scheme alike: they "
            "predict what the single-process reference predicts), from each run's "
            "`metrics`: ROC AUC of the predictions (svm: of its margin), log loss (logreg; a "
            "margin is no probability), accuracy beside that of always predicting the commoner "
            "label, which a rare label (KDD12's clicks) makes high. `AUC spread` is the largest "
            "difference between two runs of the setting: above 0 only where a run lost items.",
            "",
            *_markdown(quality, QUALITY_COLUMNS),
        ]
    stragglers = straggler_records(runs)
    lines += ["", *stragglers_section(runs, stragglers)]
    tables = {
        "claims": claims,
        "throughput": throughput,
        "cpu": costs,
        "scaling": scaling,
        "quality": quality,
        "stragglers": stragglers,
    }
    compared = motivation.records(runs, load_baselines(paths))
    if compared:
        lines += ["", *motivation_section(compared)]
        tables["motivation"] = compared
    return Report("\n".join(lines), tables, notes)


Column = tuple[str, str, Callable[[Any], str]]  # record key, Markdown header, cell text


def claim_rows(runs: list[Run]) -> list[Row]:
    """The paper's claims, each measured from these runs."""
    return [
        throughput_row(runs, "reactive", "5.17x"),
        throughput_row(runs, "reactive", "5.17x", REACTIVE_SOURCE),
        throughput_row(runs, REP3, "1.55x"),
        latency_row(runs, "reactive", 1, "8.9x"),
        latency_row(runs, "reactive", 2, "14x"),
        latency_row(runs, EC, 1, "negligible (about 1x)"),
        latency_row(runs, EC, 2, "negligible (about 1x)"),
    ]


def claims_table(by_cluster: dict[str, list[Row]]) -> list[str]:
    """The claims as a Markdown table: one "measured here" column, or, when the runs ran in
    several conditions (shared cores, emulated clusters), a column for each."""
    if len(by_cluster) == 1:
        (rows,) = by_cluster.values()
        return [
            "| claim | paper | measured here | measured from |",
            "|---|---|---|---|",
            *(f"| {r.claim} | {r.paper} | {r.measured} | {r.basis} |" for r in rows),
        ]
    clusters = list(by_cluster)
    lines = [
        f"| claim | paper | {' | '.join(clusters)} | measured from |",
        "|---|---|" + "---|" * len(clusters) + "---|",
    ]
    for i, first in enumerate(by_cluster[clusters[0]]):
        cells = [by_cluster[cluster][i] for cluster in clusters]
        basis = "; ".join(
            f"{cluster}: {row.basis}"
            for cluster, row in zip(clusters, cells, strict=True)
            if row.measured != NOT_MEASURED
        )
        measured = " | ".join(row.measured for row in cells)
        lines.append(f"| {first.claim} | {first.paper} | {measured} | {basis or cells[0].basis} |")
    return lines


def _markdown(records: list[Record], columns: Sequence[Column]) -> list[str]:
    """A Markdown table of ``records``, one column per (key, header, cell text)."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for record in records:
        cells = (text(record[key]) for key, _, text in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_tables(tables: dict[str, list[Record]], csv_dir: Path | None, json_file: Path | None):
    """``--csv DIR``: one ``<table>.csv`` per table (a header row, then one row per record);
    ``--json FILE``: ``{table: [record, ...]}``. Both read as they are into pandas
    (``pd.read_csv``, ``pd.DataFrame(data[table])``). Returns the files written."""
    written = []
    if csv_dir is not None:
        csv_dir.mkdir(parents=True, exist_ok=True)
        for name, records in tables.items():
            path = csv_dir / f"{name}.csv"
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=_keys(name, records))
                writer.writeheader()
                writer.writerows(records)
            written.append(path)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(tables, indent=1) + "\n")
        written.append(json_file)
    return written


def _keys(name: str, records: list[Record]) -> list[str]:
    """The columns of a table, also when it has no rows."""
    if records:
        return list(records[0])
    empty = {
        "claims": [f.name for f in fields(Row)],
        "cpu": [k for k, _, _ in CPU_COLUMNS],
        "quality": [k for k, _, _ in QUALITY_COLUMNS],
        "stragglers": list(STRAGGLER_KEYS),
    }
    return empty.get(name, ["spec", "algorithm", "dataset", "processors"])


# -- scalability ---------------------------------------------------------------------------

SCALING_COLUMNS: list[Column] = [
    ("cluster", "where", str),
    ("batch", "batch", str),
    ("scheme", "scheme", str),
    ("pairs", "pairs", str),
    ("processors", "processors", str),
    ("throughput", "items/s", lambda v: f"{v:,.0f}"),
    ("over_one_pair", "x pairs 1", lambda v: "" if v is None else f"{v:.2f}x"),
    ("over_fewest_processors", "x procs min", lambda v: "" if v is None else f"{v:.2f}x"),
    ("runs", "runs", str),
]


def scaling_records(runs: list[Run]) -> list[Record]:
    """Throughput of the scalability spec's failure-free runs by where they ran, scheme,
    pairs and processors, with its ratio to one pair and to the fewest processors."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for run in runs:
        if run["spec_name"] != SCALING_SPEC or run.get("failures") or run.get("rate") != "max":
            continue
        key = (
            run["cluster"],
            -int(run["batch"]),
            _scheme_name(run["family"]),
            int(run.get("pairs") or 1),
            int(run["processors"]),
        )
        groups[key].append(float(run["throughput_items_per_s"]))
    means = {key: sum(values) / len(values) for key, values in groups.items()}
    records = []
    for key in sorted(means, key=lambda k: (k[0] != SHARED, *k)):
        cluster, batch, scheme, pairs, processors = key
        one = means.get((cluster, batch, scheme, 1, processors))
        same = (cluster, batch, scheme, pairs)
        fewest = min(k[-1] for k in means if k[:-1] == same)
        base = means[(*same, fewest)]
        records.append(
            {
                "cluster": cluster,
                "batch": -batch,
                "scheme": scheme,
                "pairs": pairs,
                "processors": processors,
                "throughput": means[key],
                "over_one_pair": None if one is None or pairs == 1 else means[key] / one,
                "over_fewest_processors": None if processors == fewest else means[key] / base,
                "runs": len(groups[key]),
            }
        )
    return records


# -- throughput ----------------------------------------------------------------------------


#: Reactive with its log on the source's own disk: its variant's label, and how a claim says it.
REACTIVE_SOURCE = ("reactive source", "log on the source's disk")


def throughput_row(
    runs: list[Run], other: str, paper: str, variant: tuple[str, str] | None = None
) -> Row:
    """EC(4,2) throughput over ``other``'s, from failure-free closed-loop runs: ``other``'s
    default variant where any setting has it (reactive: the log on storage workers, as the
    paper's backup to persistent storage), else any of its runs; ``variant``: only that
    variant's runs (its label, and what the claim calls it)."""
    claim = f"throughput, EC(4,2) / {_scheme_name(other)}"
    settings = _normal_settings(runs)
    if variant is not None:
        claim += f", {variant[1]}"
        pairs = _ratios(settings, other, lambda run: run["variant"] == variant[0])
    else:
        pairs = _ratios(settings, other, lambda run: run["variant"] == other)
        pairs = pairs or _ratios(settings, other, lambda run: True)
    preferred = [
        pair for pair in pairs if _spec_name(settings[pair[0]]) == PREFERRED_THROUGHPUT_SPEC
    ]
    pairs = preferred or pairs
    if not pairs:
        basis = (
            f"needs runs of EC(4,2) and {other} without failures at rate max in the same "
            "setting (e.g. experiments/throughput.yaml)"
        )
        return Row(claim, paper, NOT_MEASURED, basis)
    ratios = [ratio for _, ratio, *_ in pairs]
    runs_used = sum(n_ec + n_other for _, _, n_ec, n_other, _ in pairs)
    specs = sorted({_spec_name(settings[setting]) for setting, *_ in pairs})
    variants = sorted({variant for *_, variant in pairs})
    if len(pairs) == 1:
        ((setting, _, n_ec, n_other, _),) = pairs
        how = (
            f"{_describe_setting(setting)}; mean of {_runs(n_ec)} of EC(4,2) and "
            f"{_runs(n_other)} of {_scheme_name(other)}"
        )
    else:
        how = (
            f"geometric mean over {len(pairs)} settings (algorithm x dataset), "
            f"range {_ratio(min(ratios))} to {_ratio(max(ratios))}; {runs_used} runs"
        )
    ec_note = "" if variants == [EC] else f"; EC runs: {', '.join(variants)}"
    ratio = _geomean(ratios)
    return Row(claim, paper, _ratio(ratio), f"{how}; spec {', '.join(specs)}{ec_note}", ratio)


def throughput_records(runs: list[Run]) -> list[Record]:
    """Per setting: mean throughput of each scheme family (items/s, None where it has no
    runs; the EC(4,2) column as in the ratios) and EC(4,2)'s ratio to Reactive and Rep-3x."""
    settings = _normal_settings(runs)
    present = {family for by_family in settings.values() for family in by_family}
    families = [f for f in FAMILY_ORDER if f in present]
    families += sorted(present - set(families))
    ratios = [f for f in ("reactive", REP3) if f in present and EC in present]
    records = []
    for setting in sorted(settings, key=lambda s: tuple(natural_key(str(part)) for part in s)):
        by_family = settings[setting]
        _, algorithm, dataset, processors, *_, cluster = setting
        record: Record = {
            "spec": _spec_name(by_family),
            "cluster": cluster,
            "algorithm": algorithm,
            "dataset": dataset,
            "processors": processors,
        }
        ec = _ec_runs(by_family)[0]
        for family in families:
            chosen = ec if family == EC else default_variant(by_family.get(family, []), family)
            record[family] = _mean_throughput(chosen) if chosen else None
        for family in ratios:
            other = default_variant(by_family.get(family, []), family)
            fits = ec and other
            ratio = _mean_throughput(ec) / _mean_throughput(other) if fits else None
            record[f"EC(4,2) / {_scheme_name(family)}"] = ratio
        records.append(record)
    return records


def _throughput_columns(records: list[Record]) -> list[Column]:
    """Markdown columns of ``throughput_records``: the setting, items/s, ratios."""
    several = len({record["cluster"] for record in records}) > 1
    setting = ("spec", "cluster", "algorithm", "dataset") if several else ("spec", "algorithm")
    columns: list[Column] = [(key, key, str) for key in setting]
    if not several:
        columns.append(("dataset", "dataset", str))
    columns.append(("processors", "processors", str))
    for key in list(records[0])[5:]:
        ratio = key.startswith("EC(4,2) / ")
        columns.append((key, key, _cell(_ratio if ratio else "{:,.0f}".format, "")))
    return columns


def _cell(text: Callable[[Any], str], missing: str) -> Callable[[Any], str]:
    """Cell text of a number, ``missing`` for None."""
    return lambda value: missing if value is None else text(value)


def _normal_settings(runs: list[Run]) -> dict[tuple, dict[str, list[Run]]]:
    """Failure-free closed-loop runs by setting, then by scheme family."""
    settings: dict[tuple, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.get("failures") or run.get("rate") not in (None, "max") or slowed(run):
            continue
        setting = (
            run["spec_dir"],
            run.get("algorithm_label") or str(run.get("algorithm")),
            str(run.get("dataset")),
            run.get("processors"),
            run.get("batch"),
            run.get("items_in"),
            run.get("cluster", SHARED),
        )
        settings[setting][run["family"]].append(run)
    return settings


def _spec_name(by_family: dict[str, list[Run]]) -> str:
    """The name of the spec a setting's runs ran (a by-hand run's directory is the user's,
    named after nothing, so it is not read from the path)."""
    return str(next(iter(by_family.values()))[0]["spec_name"])


def _ratios(
    settings: dict[tuple, dict[str, list[Run]]], other: str, chosen: Callable[[Run], bool]
) -> list[tuple]:
    """Per setting with both: (setting, EC(4,2)'s mean throughput over that of ``other``'s
    ``chosen`` runs, EC runs, their runs, the EC variant used)."""
    pairs = []
    for setting, by_family in settings.items():
        ec, variant_used = _ec_runs(by_family)
        theirs = [run for run in by_family.get(other, []) if chosen(run)]
        if ec and theirs and _mean_throughput(theirs) > 0:
            ratio = _mean_throughput(ec) / _mean_throughput(theirs)
            if ratio > 0:
                pairs.append((setting, ratio, len(ec), len(theirs), variant_used))
    return pairs


def _ec_runs(by_family: dict[str, list[Run]]) -> tuple[list[Run], str]:
    """The EC(4,2) runs of a setting: the full StreamLEC variant if there, else any."""
    runs = by_family.get(EC, [])
    full = [run for run in runs if run["variant"] == EC]
    if full:
        return full, EC
    return runs, ", ".join(sorted({run["variant"] for run in runs}))


def _mean_throughput(runs: list[Run]) -> float:
    return sum(float(run["throughput_items_per_s"]) for run in runs) / len(runs)


def _describe_setting(setting: tuple) -> str:
    _, algorithm, dataset, processors, batch, _, cluster = setting
    where = "" if cluster == SHARED else f", on {cluster}"
    return f"{algorithm} on {dataset}, {processors} processors, batch {batch}{where}"


# -- prediction quality ----------------------------------------------------------------------


def quality_records(runs: list[Run]) -> list[Record]:
    """Per setting of the runs whose summary has click-through metrics (spec, algorithm and
    its parameters, dataset, items, batch): the medians of ROC AUC, log loss, accuracy, the
    commoner label's share and the share of label 1, the runs, and the ROC AUC's spread."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        metrics = run.get("metrics") or {}
        if metrics.get("prediction_kind") is None:
            continue
        key = (
            str(run["spec_name"]),
            run.get("algorithm_label") or str(run.get("algorithm")),
            str(run.get("dataset")),
            run.get("items_in"),
            run.get("batch"),
        )
        groups[key].append(metrics)
    records = []
    for key in sorted(groups, key=lambda k: tuple(natural_key(str(part)) for part in k)):
        spec, algorithm, dataset, items, batch = key
        found = groups[key]
        aucs = [m["roc_auc"] for m in found if m.get("roc_auc") is not None]
        records.append(
            {
                "spec": spec,
                "algorithm": algorithm,
                "dataset": dataset,
                "items": items,
                "batch": batch,
                "runs": len(found),
                "positive_rate": _median_of(found, "positive_rate"),
                "accuracy": _median_of(found, "accuracy"),
                "majority_accuracy": _median_of(found, "majority_accuracy"),
                "log_loss": _median_of(found, "log_loss"),
                "roc_auc": _median_of(found, "roc_auc"),
                "roc_auc_spread": max(aucs) - min(aucs) if aucs else None,
            }
        )
    return records


def _median_of(metrics: list[dict[str, Any]], key: str) -> float | None:
    values = [m[key] for m in metrics if m.get(key) is not None]
    return median(values) if values else None


_SHARE = _cell("{:.1%}".format, "-")
QUALITY_COLUMNS: tuple[Column, ...] = (
    ("spec", "spec", str),
    ("algorithm", "algorithm", str),
    ("dataset", "dataset", str),
    ("items", "items", _cell("{:,}".format, "-")),
    ("runs", "runs", str),
    ("positive_rate", "label 1", _SHARE),
    ("accuracy", "accuracy", _SHARE),
    ("majority_accuracy", "always the commoner", _SHARE),
    ("log_loss", "log loss", _cell("{:.4f}".format, "-")),
    ("roc_auc", "ROC AUC", _cell("{:.4f}".format, "-")),
    ("roc_auc_spread", "AUC spread", _cell("{:.1e}".format, "-")),
)


# -- CPU -------------------------------------------------------------------------------------


def cpu_records(runs: list[Run]) -> list[Record]:
    """Per scheme variant: CPU seconds per million items delivered by the source, the sink,
    the processors, the storage workers of a reactive log and in total (median over runs), the
    processors' share and the share of the machine left idle (None for runs from before it was
    recorded)."""
    by_variant: dict[str, list[tuple[float | None, ...]]] = defaultdict(list)
    normal = [
        run
        for run in runs
        if not run.get("failures")
        and not slowed(run)
        and run.get("rate") in (None, "max")
        and run.get("cpu_seconds_during_stream")
        and run.get("items_out")
    ]
    # Like the throughput ratios: the throughput spec's runs alone when there are any, so
    # workloads of other specs (more processors, heavier models) are not pooled in.
    preferred = [run for run in normal if run["spec_name"] == PREFERRED_THROUGHPUT_SPEC]
    for run in preferred or normal:
        cpu, items = run["cpu_seconds_during_stream"], run["items_out"]
        per_million = 1e6 / items
        processors = sum(v for k, v in cpu.items() if k.startswith("processor-"))
        storage = sum(v for k, v in cpu.items() if k.startswith("storage-"))
        by_variant[run["variant"]].append(
            (
                cpu.get("source", 0.0) * per_million,
                cpu.get("sink", 0.0) * per_million,
                processors * per_million,
                storage * per_million,
                run.get("machine_idle_during_stream"),
            )
        )
    specs = ", ".join(sorted({run["spec_name"] for run in preferred or normal}))
    order = {family: i for i, family in enumerate(FAMILY_ORDER)}
    records = []
    for variant in sorted(by_variant, key=lambda v: (order.get(v.split()[0], 99), v)):
        rows = by_variant[variant]
        source, sink, processors, storage = (median(row[i] for row in rows) for i in range(4))
        total = source + sink + processors + storage
        idle = [row[4] for row in rows if row[4] is not None]
        records.append(
            {
                "scheme": variant,
                "runs": len(rows),
                "source": source,
                "sink": sink,
                "processors": processors,
                "storage": storage,
                "total": total,
                "processors_share": processors / total,
                "machine_idle": median(idle) if idle else None,
                "specs": specs,
            }
        )
    return records


_SECONDS = "{:.2f}".format
CPU_COLUMNS: tuple[Column, ...] = (
    ("scheme", "scheme", str),
    ("runs", "runs", str),
    ("source", "source", _SECONDS),
    ("sink", "sink", _SECONDS),
    ("processors", "processors", _SECONDS),
    ("storage", "storage", _SECONDS),
    ("total", "total", _SECONDS),
    ("processors_share", "processors' share", "{:.0%}".format),
    ("machine_idle", "machine idle", _cell("{:.0%}".format, "-")),
)


# -- latency after failures ----------------------------------------------------------------


def _latency_runs(candidates: list[Run], family: str) -> list[Run]:
    """The runs a latency claim is measured from: the family's default variant where it has
    one, open-loop runs where there are any (closed loop hides latency in back-pressure)."""
    candidates = default_variant(candidates, family)
    open_loop = [run for run in candidates if run.get("rate") not in (None, "max")]
    return open_loop or candidates


def latency_row(runs: list[Run], family: str, killed: int, paper: str) -> Row:
    """p99 latency after the first kill over before, in runs with ``killed`` processors killed."""
    noun = "failure" if killed == 1 else "failures"
    claim = f"latency after {killed} {noun} / before, {_scheme_name(family)}"
    candidates = [
        run for run in runs if run["family"] == family and len(run.get("failures") or []) == killed
    ]
    measured = []
    for run in _latency_runs(candidates, family):
        around = _around(run)
        if around is None:
            continue
        p99 = _ratio_of(around, "p99_ms")
        if p99 is not None:
            measured.append((run, p99, _ratio_of(around, "p50_ms")))
    if not measured:
        basis = (
            f"needs {family} runs with {killed} processor{'s' if killed > 1 else ''} killed "
            "(e.g. experiments/recovery.yaml)"
        )
        return Row(claim, paper, NOT_MEASURED, basis)
    p99 = _geomean([m[1] for m in measured])
    p50s = [m[2] for m in measured if m[2] is not None]
    p50_ratio = _geomean(p50s) if p50s else None
    p50 = f" (p50: {_ratio(p50_ratio)})" if p50_ratio is not None else ""
    arounds = [_around(run) or {} for run, *_ in measured]
    seconds = arounds[0].get("window_s", LATENCY_WINDOW)
    by = {a.get("by", "arrival") for a in arounds}
    grouped = "delivered" if by == {"delivery"} else "arriving" if by == {"arrival"} else "seen"
    rates = sorted({_rate(run) for run, *_ in measured})
    kills = sorted({_kill_times(run) for run, *_ in measured})
    specs = sorted({run["spec_name"] for run, *_ in measured})
    many = f"geometric mean of {len(measured)} runs" if len(measured) > 1 else "1 run"
    basis = (
        f"p99 latency of items {grouped} {seconds:g} s after the first kill / "
        f"{seconds:g} s before; "
        f"{many}; {', '.join(kills)}; {', '.join(rates)}; spec {', '.join(specs)}"
    )
    return Row(claim, paper, _ratio(p99) + p50, basis, p99, p50_ratio)


def _around(run: Run) -> dict[str, Any] | None:
    """Latency before/after the first kill (items grouped by delivery time)."""
    return run.get("latency_around_first_failure") or None


def _ratio_of(around: dict[str, Any], key: str) -> float | None:
    before = (around.get("before") or {}).get(key)
    after = (around.get("after") or {}).get(key)
    if not before or after is None:
        return None
    return float(after) / float(before)


def _kill_times(run: Run) -> str:
    failures = run.get("failures") or []
    times = sorted({round(float(f.get("elapsed_s") or 0.0), 1) for f in failures})
    workers = len(failures)
    when = " and ".join(f"{t:g} s" for t in times)
    together = " at once" if len(times) == 1 and workers > 1 else ""
    noun = "processor" if workers == 1 else "processors"
    return f"{workers} {noun} killed{together} at {when}"


def _rate(run: Run) -> str:
    rate = run.get("rate")
    if rate in (None, "max"):
        return "closed loop (latency includes queueing)"
    return f"open loop at {float(rate):,.0f} items/s"


# -- shared --------------------------------------------------------------------------------


def provenance(runs: list[Run], paths: Sequence[Path]) -> str:
    """Where the numbers came from: machine(s), commit(s), how many runs under which paths."""
    machines, commits = set(), set()
    for run in runs:
        machine, meta = run.get("machine") or {}, run.get("meta") or {}
        host = machine.get("host") or meta.get("host") or "unknown host"
        cores = machine.get("cores") or meta.get("cores") or "?"
        memory = machine.get("memory_gib") or meta.get("memory_gib") or "?"
        platform = machine.get("platform") or meta.get("platform")
        machines.add(
            f"{host} ({cores} cores, {memory} GiB" + (f", {platform})" if platform else ")")
        )
        commit = str(run.get("commit") or meta.get("commit") or "unknown")
        base, dirty, _ = commit.partition("-dirty")
        commits.add(f"`{base[:12]}`" + (" (with uncommitted changes)" if dirty else ""))
    where = ", ".join(f"`{p}`" for p in paths)
    noun = "commit" if len(commits) == 1 else "commits"
    emulated = _emulated_clusters(runs)
    inside = f" (the emulated runs' workers on an {'; an '.join(emulated)})" if emulated else ""
    return (
        f"Measured on {'; '.join(sorted(machines)) or 'an unknown machine'}{inside}, "
        f"{noun} {', '.join(sorted(commits)) or 'unknown'}; {_runs(len(runs))} finished "
        f"under {where}. Recomputed from the saved results by `streamlec report`."
    )


def _emulated_clusters(runs: list[Run]) -> list[str]:
    """Each emulated cluster the runs used, once, with the range of what its runs measured
    (one link and one host per run)."""
    measured: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        cluster = (run.get("meta") or {}).get("cluster") or {}
        if not cluster.get("emulated"):
            continue
        asked = cluster_line({"cluster": {**cluster, "measured": {}}})
        got = measured.setdefault(asked, {"cpu": [], "link_bit_s": []})
        for key, values in got.items():
            if (cluster.get("measured") or {}).get(key):
                values.append(float(cluster["measured"][key]))
    lines = []
    for asked, got in sorted(measured.items()):
        parts = []
        for key, unit, scale, digits in (("cpu", "CPU", 1, 2), ("link_bit_s", "Mbit/s", 1e6, 0)):
            if got[key]:
                low, high = min(got[key]) / scale, max(got[key]) / scale
                span = (
                    f"{low:.{digits}f}"
                    if f"{low:.{digits}f}" == f"{high:.{digits}f}"
                    else (f"{low:.{digits}f} to {high:.{digits}f}")
                )
                parts.append(f"{span} {unit}")
        runs_measured = max(len(got["cpu"]), len(got["link_bit_s"]))
        lines.append(
            asked + (f", measured {', '.join(parts)} in {_runs(runs_measured)}" if parts else "")
        )
    return lines


def _scheme_name(family: str) -> str:
    return {"reactive": "Reactive", "rep-3x": "Rep-3x", "rep-2x": "Rep-2x"}.get(
        family, family.upper() if family.startswith("ec") else family
    )


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


# -- stragglers ------------------------------------------------------------------------------

#: The stragglers claim is about one processor slowed this many times.
CLAIMED_SLOWDOWN = 5.0
#: Each scheme of the stragglers claim and what it claims for its p99 during / before.
STRAGGLER_CLAIMS = ((EC, "within 1.3x"), ("none", "more than 3x"))
STRAGGLERS_SPEC = "experiments/stragglers.yaml"


def slowed(run: Run) -> bool:
    """Whether processors of the run were slowed (its spec's ``stragglers``, as applied)."""
    return bool(run.get("stragglers"))


def straggler_records(runs: list[Run]) -> list[Record]:
    """One per run that had processors slowed: where it ran, its spec and scheme, its slow
    processors, latency p50/p99/p99.9 (ms) of the items delivered before the first slowdown
    and during the slowdowns (the summary's ``latency_during_slowdown``), the p99 during over
    before, items lost and the largest relative distance to the reference."""
    order = {family: i for i, family in enumerate(FAMILY_ORDER)}
    keyed = []
    for run in runs:
        if not slowed(run):
            continue
        spans = run.get("latency_during_slowdown") or {}
        before, during = spans.get("before") or {}, spans.get("during") or {}
        record: Record = {
            "cluster": run["cluster"],
            "spec": str(run["spec_name"]),
            "scheme": run["variant"],
            "slow_processors": _slow_processors(run),
            "slowed": len(_slow_workers(run)),
        }
        for q in ("p50", "p99", "p99.9"):
            record[f"{q}_before_ms"] = before.get(f"{q}_ms")
            record[f"{q}_during_ms"] = during.get(f"{q}_ms")
        record["p99_ratio"] = _p99_during_over_before(run)
        record["items_lost"] = int(run.get("items_lost") or 0)
        record["reference_error"] = run.get("reference_max_rel_err")
        family = order.get(run["family"], len(order))
        key = (run["cluster"] != SHARED, run["cluster"], record["spec"], record["slowed"])
        slow = natural_key(record["slow_processors"])
        keyed.append(((*key, slow, family, run["variant"]), record))
    return [record for _, record in sorted(keyed, key=lambda pair: pair[0])]


def _slow_workers(run: Run) -> list[str]:
    return list(dict.fromkeys(str(w["worker"]) for w in run.get("stragglers") or []))


def _slow_processors(run: Run) -> str:
    """E.g. ``processor-2, processor-3 at 5x for 4.0 s``: the windows as they were applied."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for window in run.get("stragglers") or []:
        start, end = window.get("start"), window.get("end")
        seconds = None if start is None or end is None else round(float(end) - float(start), 1)
        workers = groups[(float(window["slowdown"]), seconds)]
        if window["worker"] not in workers:
            workers.append(str(window["worker"]))
    parts = []
    for (slowdown, seconds), workers in groups.items():
        span = " to the end" if seconds is None else f" for {seconds:.1f} s"
        parts.append(f"{', '.join(workers)} at {slowdown:g}x{span}")
    return "; ".join(parts)


def _p99_during_over_before(run: Run) -> float | None:
    return (run.get("latency_during_slowdown") or {}).get("p99_ratio")


def straggler_claims(runs: list[Run]) -> list[str]:
    """The stragglers claim measured from the runs: a line for each condition (shared cores,
    an emulated cluster) runs with slow processors ran in, one saying "not measured" when
    there are none."""
    found = [run for run in runs if slowed(run)]
    clusters = sorted({run["cluster"] for run in found}, key=lambda c: (c != SHARED, c))
    if len(clusters) <= 1:
        return [_straggler_claim(found)]
    return [
        f"On {cluster}: " + _straggler_claim([run for run in found if run["cluster"] == cluster])
        for cluster in clusters
    ]


def _straggler_claim(runs: list[Run]) -> str:
    """``EC(4,2)'s p99 latency during a 5x slowdown of one processor is X times before
    (claim: within 1.3x); none's is Y times (claim: more than 3x).`` and what it is from."""
    said, used, bases = [], [], []
    for n, (family, claim) in enumerate(STRAGGLER_CLAIMS):
        ratio, measured = _slowdown_ratio(runs, family)
        name = _scheme_name(family)
        if ratio is None:
            told = "is not measured"
            bases.append(
                f"{name}: needs a run with one processor slowed {CLAIMED_SLOWDOWN:g}x "
                f"(e.g. {STRAGGLERS_SPEC})"
            )
        else:
            told = f"is {ratio:.2f} times" + (" before" if n == 0 else "")
            many = f"geometric mean of {len(measured)} runs" if len(measured) > 1 else "1 run"
            bases.append(f"{name}: {many}")
        subject = (
            f"{name}'s p99 latency during a {CLAIMED_SLOWDOWN:g}x slowdown of one processor"
            if n == 0
            else f"{name}'s"
        )
        said.append(f"{subject} {told} (claim: {claim})")
        used += measured
    basis = "; ".join(bases)
    if not used:
        names = " and ".join(_scheme_name(family) for family, _ in STRAGGLER_CLAIMS)
        basis = (
            f"needs runs of {names} with one processor slowed {CLAIMED_SLOWDOWN:g}x "
            f"(e.g. {STRAGGLERS_SPEC})"
        )
    else:
        rates = ", ".join(sorted({_rate(run) for run in used}))
        specs = ", ".join(sorted({str(run["spec_name"]) for run in used}))
        basis = (
            "p99 of the items delivered during the slowdown / before it; "
            f"{basis}; {rates}; spec {specs}"
        )
    return f"{'; '.join(said)}. Measured from: {basis}."


def _slowdown_ratio(runs: list[Run], family: str) -> tuple[float | None, list[Run]]:
    """The geometric mean over ``family``'s runs with one processor slowed
    ``CLAIMED_SLOWDOWN`` times (its default variant where it has one, open-loop runs where
    there are any) of their p99 during the slowdown over before, and those runs."""
    candidates = [
        run
        for run in runs
        if run["family"] == family
        and len(_slow_workers(run)) == 1
        and all(float(w["slowdown"]) == CLAIMED_SLOWDOWN for w in run["stragglers"])
        and _p99_during_over_before(run) is not None
    ]
    measured = _latency_runs(candidates, family)
    if not measured:
        return None, []
    return _geomean([_p99_during_over_before(run) or 0.0 for run in measured]), measured


def stragglers_section(runs: list[Run], records: list[Record]) -> list[str]:
    """The stragglers table (when there are runs with slow processors) and the claim."""
    lines = [
        "### Stragglers (latency while processors run slow)",
        "",
        "Runs whose spec slowed processors (`stragglers`, e.g. "
        f"{STRAGGLERS_SPEC}), one row each; they count in no other table or claim. Latency "
        "of the items delivered before the first slowdown began and of those delivered during "
        "the slowdowns, from each run's `latency_during_slowdown`. A scheme that waits for "
        "every output of a batch (none, reactive) waits for the slow processor too; rep takes "
        "each slot's first copy and EC any k of its k+r outputs.",
        "",
    ]
    if records:
        several = {key: len({record[key] for record in records}) > 1 for key in ("cluster", "spec")}
        columns = [c for c in STRAGGLER_COLUMNS if several.get(c[0], True)]
        lines += [*_markdown(records, columns), ""]
    return lines + straggler_claims(runs)


_MS_TENTH = _cell("{:.1f}".format, "-")
STRAGGLER_COLUMNS: tuple[Column, ...] = (
    ("cluster", "where", str),
    ("spec", "spec", str),
    ("scheme", "scheme", str),
    ("slow_processors", "slow processors", str),
    ("p50_before_ms", "p50 before (ms)", _MS_TENTH),
    ("p50_during_ms", "p50 during", _MS_TENTH),
    ("p99_before_ms", "p99 before", _MS_TENTH),
    ("p99_during_ms", "p99 during", _MS_TENTH),
    ("p99.9_before_ms", "p99.9 before", _MS_TENTH),
    ("p99.9_during_ms", "p99.9 during", _MS_TENTH),
    ("p99_ratio", "p99 during / before", _cell(_ratio, "-")),
    ("items_lost", "lost", "{:,}".format),
    ("reference_error", "reference error", _cell("{:.1e}".format, "-")),
)
#: The stragglers table's columns in CSV and JSON, also when it has no rows.
STRAGGLER_KEYS = (
    "cluster",
    "spec",
    "scheme",
    "slow_processors",
    "slowed",
    *(f"{q}_{when}_ms" for q in ("p50", "p99", "p99.9") for when in ("before", "during")),
    "p99_ratio",
    "items_lost",
    "reference_error",
)


# -- motivation: Spark beside streamlec -----------------------------------------------------


_MS = _cell("{:.0f}".format, "-")
MOTIVATION_COLUMNS: tuple[Column, ...] = (
    ("system", "system", str),
    ("recovery_s", "recovery (s)", _cell("{:.3g}".format, "n/a")),
    ("p50_before_ms", "latency p50 before (ms)", _MS),
    ("p50_after_ms", "latency p50 after (ms)", _MS),
    ("items_lost", "lost", _cell(str, "-")),
    ("items_duplicated", "duplicated", _cell(str, "-")),
)


def motivation_section(records: list[Record]) -> list[str]:
    """The paper's motivation: recovery after one kill, Spark beside streamlec's schemes."""
    return [
        "### Motivation: recovery after a kill, Spark Structured Streaming vs streamlec",
        "",
        "Spark (`streamlec baseline spark`, local[2], checkpointing on): from the SIGKILL of "
        "the driver and its JVM until the first micro-batch committed after the restart from "
        "the checkpoint; latency per batch, every batch committed before and after the kill. "
        "streamlec: `time_to_full_tolerance_s` of the first failure (from the kill until "
        "every slot has a live processor again); latency per item, 5 s either side of the "
        "kill, by delivery.",
        "",
        *_markdown(records, MOTIVATION_COLUMNS),
    ]
