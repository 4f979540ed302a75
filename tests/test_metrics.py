"""Latency accounting at the sink: bounded memory, percentiles true to within one bucket."""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli.runtime.metrics import LatencyHistogram, Timeline, bucket_counts


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_histogram_quantiles_within_two_percent(q):
    samples = np.random.default_rng(3).lognormal(-4.0, 1.0, 200_000)
    hist = LatencyHistogram()
    for chunk in np.array_split(samples, 37):
        hist.add(chunk)
    exact = np.quantile(samples, q)
    assert hist.total == samples.size
    assert exact <= hist.quantile(q) <= exact * 1.021
    assert hist.max == samples.max()


def test_bucket_counts_keep_every_sample():
    samples = np.array([0.0, 1e-9, 2e-5, 0.5, 3.0, 5e3])  # below, inside and above the range
    assert bucket_counts(samples).sum() == samples.size


def test_timeline_bins_by_finalisation_time():
    timeline = Timeline(start=100.0, width=0.1)
    timeline.add(100.05, bucket_counts(np.full(10, 0.01)), 0.01)
    timeline.add(100.25, bucket_counts(np.full(5, 0.2)), 0.2)
    rows = timeline.close()
    assert [r["items"] for r in rows] == [10, 0, 5]
    assert rows[0]["throughput_items_per_s"] == pytest.approx(100.0)
    assert rows[2]["latency_ms_max"] == pytest.approx(200.0)
    assert np.isnan(rows[1]["latency_ms_p99"])
