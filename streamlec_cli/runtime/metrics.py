"""Latency and throughput accounting at the sink, in memory that does not grow with the run.

Latencies go into a log-bucketed histogram (2% wide buckets from 10 us to 1000 s), so
percentiles are exact to within one bucket whatever the run length. The timeline keeps one
histogram per open 100 ms bin and hands each bin over as a row once it is closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

_LOW, _HIGH, _RATIO = 1e-5, 1e3, 1.02
_BUCKETS = math.ceil(math.log(_HIGH / _LOW) / math.log(_RATIO)) + 2
_EDGES = _LOW * _RATIO ** np.arange(_BUCKETS - 1)


def same_counts(latency: float, n: int) -> np.ndarray:
    """``bucket_counts`` of ``n`` latencies all equal to ``latency``, without an array of them
    (a closed-loop batch: its items share one arrival)."""
    scaled = math.log(max(latency, _LOW * 0.5) / _LOW) / math.log(_RATIO)
    counts = np.zeros(_BUCKETS, dtype=np.int64)
    counts[min(max(math.ceil(scaled), 0), _BUCKETS - 1)] = n
    return counts


def bucket_counts(latencies: np.ndarray) -> np.ndarray:
    """How many latencies fall in each bucket (bucket i holds (EDGES[i-1], EDGES[i]])."""
    scaled = np.log(np.maximum(latencies, _LOW * 0.5) / _LOW) / math.log(_RATIO)
    index = np.clip(np.ceil(scaled), 0, _BUCKETS - 1).astype(np.intp)
    return np.bincount(index, minlength=_BUCKETS)


class LatencyHistogram:
    """Counts of latencies (seconds) in log buckets; also the exact maximum."""

    def __init__(self) -> None:
        self.counts = np.zeros(_BUCKETS, dtype=np.int64)
        self.max = 0.0
        self.total = 0

    def add(self, latencies: np.ndarray) -> None:
        self.add_counts(bucket_counts(latencies), float(latencies.max(initial=0.0)))

    def add_counts(self, counts: np.ndarray, largest: float) -> None:
        """Add the ``bucket_counts`` of some latencies whose maximum is ``largest``."""
        self.counts += counts
        self.max = max(self.max, largest)
        self.total += int(counts.sum())

    def quantile(self, q: float) -> float:
        """Upper edge of the bucket holding the q-quantile (seconds; NaN when empty)."""
        if self.total == 0:
            return float("nan")
        index = int(np.searchsorted(np.cumsum(self.counts), q * self.total))
        if index >= _BUCKETS - 1:
            return self.max
        return min(float(_EDGES[index]), self.max)

    def summary_ms(self) -> dict[str, float]:
        return {
            "p50": 1e3 * self.quantile(0.50),
            "p95": 1e3 * self.quantile(0.95),
            "p99": 1e3 * self.quantile(0.99),
            "max": 1e3 * self.max if self.total else float("nan"),
        }


@dataclass
class _Bin:
    items: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


class Timeline:
    """Items made final and their latencies in fixed bins of ``width`` seconds since ``start``."""

    def __init__(self, start: float, width: float = 0.1) -> None:
        self.start = start
        self.width = width
        self.bins: dict[int, _Bin] = {}
        self.closed_upto = 0  # bins below this index were handed over

    def add(self, now: float, counts: np.ndarray, largest: float) -> None:
        """Latencies (as ``bucket_counts``) of items made final at ``now``."""
        index = max(self.closed_upto, int((now - self.start) // self.width))
        entry = self.bins.setdefault(index, _Bin())
        entry.items += int(counts.sum())
        entry.latency.add_counts(counts, largest)

    def close(self, now: float | None = None) -> list[dict]:
        """Rows of every bin that ended before ``now`` (all bins when None), empty ones too."""
        last = (
            max(self.bins, default=self.closed_upto - 1) + 1
            if now is None
            else int((now - self.start) // self.width)
        )
        rows = []
        for index in range(self.closed_upto, last):
            entry = self.bins.pop(index, _Bin())
            ms = entry.latency.summary_ms()
            rows.append(
                {
                    "t_s": round(index * self.width, 6),
                    "items": entry.items,
                    "throughput_items_per_s": entry.items / self.width,
                    "latency_ms_p50": ms["p50"],
                    "latency_ms_p99": ms["p99"],
                    "latency_ms_max": ms["max"],
                }
            )
        self.closed_upto = max(self.closed_upto, last)
        return rows
