"""The motivation comparison: recovery after a kill in Spark Structured Streaming beside
streamlec's schemes, from saved runs only (``streamlec plot`` draws it as ``motivation``,
``streamlec report`` gives it a section).

It is made for each spec folder holding a ``streamlec baseline spark`` run: the Spark run
and the streamlec runs of that folder in which processors were killed, the latest per
scheme. The recovery times measure different things, each engine's own "back to work":

* Spark: from the SIGKILL of the driver until its commit log holds the first micro-batch
  committed after it (the restart, the JVM's start and the replay included);
* streamlec: ``time_to_full_tolerance_s`` of the first failure, from the kill until every
  slot has a live processor again (the stream goes on meanwhile under rep and EC).

Latency p50 before and after the kill is per item for streamlec (the 5 s on either side,
by delivery, ``latency_around_first_failure``) and per batch for Spark (every batch
committed before the kill and after it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import FAMILY_ORDER, latency_around

Record = dict[str, Any]
COLUMNS = (
    "system",
    "recovery_s",
    "p50_before_ms",
    "p50_after_ms",
    "items_lost",
    "items_duplicated",
    "run",
)


def records(runs: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> list[Record]:
    """One row per system: each baseline, then the streamlec schemes of its spec folder."""
    rows: list[Record] = []
    for baseline in baselines:
        if baseline.get("kill_time") is None:
            continue
        before = baseline.get("latency_ms_before_kill") or {}
        after = baseline.get("latency_ms_after_kill") or {}
        rows.append(
            {
                "system": f"{baseline['engine']} (driver killed)",
                "family": str(baseline["engine"]),
                "recovery_s": baseline.get("recovery_s"),
                "p50_before_ms": before.get("p50"),
                "p50_after_ms": after.get("p50"),
                "items_lost": baseline.get("items_lost"),
                "items_duplicated": baseline.get("items_duplicated"),
                "run": str(baseline["run_dir"]),
            }
        )
        killed = [
            run for run in runs if run["spec_dir"] == baseline["spec_dir"] and run.get("failures")
        ]
        order = {family: i for i, family in enumerate(FAMILY_ORDER)}
        for run in sorted(killed, key=lambda r: order.get(r["family"], len(order))):
            rows.append(_streamlec_row(run))
    return rows


def _streamlec_row(run: dict[str, Any]) -> Record:
    failure = run["failures"][0]
    around = run.get("latency_around_first_failure")
    if not around and failure.get("time") is not None:
        around = latency_around(Path(run["run_dir"]), float(failure["time"]))
    around = around or {}
    return {
        "system": f"streamlec {run['family']}",
        "family": run["family"],
        "recovery_s": failure.get("time_to_full_tolerance_s"),
        "p50_before_ms": (around.get("before") or {}).get("p50_ms"),
        "p50_after_ms": (around.get("after") or {}).get("p50_ms"),
        "items_lost": run.get("items_lost"),
        "items_duplicated": run.get("items_duplicated"),
        "run": str(run["run_dir"]),
    }
