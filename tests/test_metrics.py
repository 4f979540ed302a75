"""Latency accounting at the sink: bounded memory, percentiles true to within one bucket."""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli.runtime.metrics import LatencyHistogram, Timeline, bucket_counts, same_counts


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


def test_a_run_of_equal_latencies_lands_where_the_array_would():
    from streamlec_cli.runtime.metrics import _EDGES

    rng = np.random.default_rng(3)
    values = [1e-7, 5e-6, 1e-5, 2e3, 1e4, *rng.uniform(1e-5, 1.0, 200), *_EDGES[::37]]
    for value in values:
        same, array = LatencyHistogram(), LatencyHistogram()
        same.add_counts(same_counts(float(value), 7), float(value))
        array.add(np.full(7, value))
        np.testing.assert_array_equal(same.counts, array.counts)
        assert (same.max, same.total) == (array.max, array.total)
    timeline = Timeline(start=100.0)
    timeline.add(100.05, same_counts(0.01, 10), 0.01)
    timeline.add(100.06, bucket_counts(np.full(2, 0.01)), 0.01)
    (row,) = timeline.close()
    assert row["items"] == 12 and row["latency_ms_max"] == 10.0
