"""Where the paper's throughput claims hold: EC(4,2)'s throughput over rep-3x's and over
reactive's in each condition a spec's runs ran in (this machine's shared cores, or emulated
hosts with a link rate and a CPU share), read from failure-free closed-loop runs.

The ``regime`` spec sweeps the conditions; its figure (``plotting.draw_regime``) and the
report's regime table come from ``conditions`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import schemes
from .profiles import SHARED

Run = dict[str, Any]

EC = schemes.label("ec", {"k": 4, "r": 2})
REP3 = schemes.label("rep", {"copies": 3})
PAPER = {REP3: 1.55, "reactive": 5.17}  # EC(4,2) over each, as the paper reports


@dataclass(frozen=True)
class Condition:
    """One condition: where the workers ran, and EC(4,2)'s ratio to each other scheme."""

    label: str  # profiles.cluster_label: "shared cores", "lan-1g", "emulated (...)"
    emulated: bool
    link_bit_s: float | None  # None: not shaped
    cpu: float | None  # CPU share of each host; None: not confined
    throughput: dict[str, float]  # mean items/s by scheme family
    runs: int

    def ratio(self, other: str) -> float | None:
        ec, them = self.throughput.get(EC), self.throughput.get(other)
        return ec / them if ec and them else None


def conditions(runs: list[Run]) -> list[Condition]:
    """The conditions of failure-free runs at rate max, each with its mean throughputs (the
    full StreamLEC variant for EC(4,2)), shared cores first, then by CPU and link rate."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        if run.get("failures") or run.get("rate") not in (None, "max"):
            continue
        if run["family"] == EC and run["variant"] != EC:
            continue
        grouped.setdefault(run.get("cluster", SHARED), []).append(run)
    found = []
    for label, members in grouped.items():
        cluster = (members[0].get("meta") or {}).get("cluster") or {}
        asked = cluster.get("asked") or {}
        by_family: dict[str, list[Run]] = {}
        for run in members:
            by_family.setdefault(run["family"], []).append(run)
        throughput = {
            family: _mean_throughput(default_variant(family_runs, family))
            for family, family_runs in by_family.items()
        }
        found.append(
            Condition(
                label=label,
                emulated=bool(cluster.get("emulated")),
                link_bit_s=asked.get("link_bit_s"),
                cpu=asked.get("cpu"),
                throughput=throughput,
                runs=len(members),
            )
        )
    return sorted(found, key=_order)


def default_variant(runs: list[Run], family: str) -> list[Run]:
    """A family's runs of its default variant if there are any (reactive: the log on storage
    workers, the paper's backup to persistent storage, as in the report's ratios)."""
    return [run for run in runs if run["variant"] == family] or runs


def _mean_throughput(runs: list[Run]) -> float:
    return sum(float(run["throughput_items_per_s"]) for run in runs) / len(runs)


def _order(condition: Condition) -> tuple:
    unshaped = float("inf")
    return (
        condition.emulated,
        -(condition.cpu or unshaped),
        -(condition.link_bit_s or unshaped),
        condition.label,
    )


def link_series(found: list[Condition]) -> list[Condition]:
    """The emulated conditions at the most common CPU share, fastest link first (unshaped
    first of all): the ratio against link rate."""
    emulated = [c for c in found if c.emulated]
    if not emulated:
        return []
    shares = [c.cpu for c in emulated]
    common = max(set(shares), key=lambda share: (shares.count(share), share or 0))
    return [c for c in emulated if c.cpu == common]


def cpu_series(found: list[Condition]) -> list[Condition]:
    """The emulated conditions with unshaped links, by CPU share: the ratio against CPU."""
    return sorted(
        (c for c in found if c.emulated and c.link_bit_s is None and c.cpu is not None),
        key=lambda c: c.cpu or 0,
    )
