"""What the sink measures and writes: latencies, the timeline, delivered results, counters.

Every item's latency is stamped the moment its result is final (``final``), its prediction and
latency (and, for an algorithm with a ``prediction_kind``, its label as the source announced
it: ``labels.u8``, for the click-through metrics that ``clickmetrics.score_run`` computes after
the stream) are appended when its batch is delivered (``deliver``), one row per committed
batch goes to ``batches.csv``, and ``summary`` writes ``sink.json``. Rows are flushed as they are
produced, so a crash keeps what was measured. It decides nothing about batches.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..clickmetrics import LABELS_FILE
from ..results import BATCH_COLUMNS, TIMELINE_COLUMNS, CsvLog, write_json
from .commit import Deliver
from .metrics import LatencyHistogram, Timeline, bucket_counts, same_counts


class _Arrivals:
    """When a batch's items arrived at the source, each item's latency once final, and their
    labels (label 1 or not; None when the source sends none)."""

    def __init__(
        self, count: int, t_first: float, t_last: float, labels: np.ndarray | None
    ) -> None:
        self.count, self.t_first, self.t_last = count, t_first, t_last
        self.latency = np.full(count, np.nan)
        self.labels = labels

    def at(self, items: np.ndarray) -> np.ndarray:
        if self.count <= 1:
            return np.full(items.shape, self.t_first)
        return self.t_first + (self.t_last - self.t_first) * items / (self.count - 1)


class RunRecorder:
    def __init__(self, run_dir: Path, warmup: float, classifier: bool) -> None:
        self.run_dir = Path(run_dir)
        self.warmup = warmup
        self.classifier = classifier
        self.arrivals: dict[int, _Arrivals] = {}
        self.t_start: float | None = None
        self.t_last_final: float | None = None
        self.latency = LatencyHistogram()
        self.latency_all = LatencyHistogram()
        self.timeline: Timeline | None = None
        self.items_out = 0
        self.items_out_measured = 0
        self.items_lost = 0
        self.decoded_items = 0
        self.loss_sum = 0.0
        self.correct_sum = 0
        self.metric_items = 0
        self.batches_log = CsvLog(self.run_dir / "batches.csv", BATCH_COLUMNS)
        self.timeline_log = CsvLog(self.run_dir / "timeline.csv", TIMELINE_COLUMNS)
        self.predictions = open(self.run_dir / "predictions.f64", "wb")  # noqa: SIM115
        self.latencies = open(self.run_dir / "latency.f32", "wb")  # noqa: SIM115
        self.labels = None  # labels.u8, opened with the first batch that has labels

    def announced(
        self,
        batch: int,
        count: int,
        t_first: float,
        t_last: float,
        labels: np.ndarray | None = None,
    ) -> None:
        if self.t_start is None:
            self.t_start = t_first
            self.timeline = Timeline(t_first)
        self.arrivals[batch] = _Arrivals(count, t_first, t_last, labels)

    def measured(self, t_first: float) -> bool:
        """Whether items that arrived at ``t_first`` count (after the warm-up)."""
        assert self.t_start is not None
        return t_first >= self.t_start + self.warmup

    def final(self, batch: int, items: np.ndarray, now: float) -> None:
        """Items of a batch became final now: record their latency (delivery is at commit)."""
        arrivals = self.arrivals.get(batch)
        if arrivals is None or not items.size:
            return
        fresh = items[np.isnan(arrivals.latency[items])]
        if not fresh.size:
            return
        if arrivals.t_first == arrivals.t_last:  # closed loop: one arrival, one latency
            latency = now - arrivals.t_first
            arrivals.latency[fresh] = latency
            counts, largest = same_counts(latency, fresh.size), latency
        else:
            latencies = now - arrivals.at(fresh)
            arrivals.latency[fresh] = latencies
            counts, largest = bucket_counts(latencies), float(latencies.max())
        self.latency_all.add_counts(counts, largest)
        assert self.timeline is not None
        self.timeline.add(now, counts, largest)
        if self.measured(arrivals.t_first):
            self.latency.add_counts(counts, largest)

    def deliver(self, done: Deliver) -> None:
        """A committed batch: results, counters and its row in ``batches.csv``."""
        result = done.result
        arrivals = self.arrivals.pop(done.batch)
        keep = ~result.lost
        if not done.replayed:
            # Items final only now (a recovery round) get their latency now.
            late = np.flatnonzero(keep & np.isnan(arrivals.latency))
            if late.size:
                self.final(done.batch, late, done.now)
            arrivals.latency[~keep] = np.nan
            self.predictions.write(result.predictions.astype(np.float64).tobytes())
            self.predictions.flush()
            self.latencies.write(arrivals.latency.astype(np.float32).tobytes())
            self.latencies.flush()
            if arrivals.labels is not None:
                self._write_labels(arrivals.labels)
            delivered = int(keep.sum())
            self.items_out += delivered
            self.items_lost += result.items_lost
            self.decoded_items += result.decoded
            if self.measured(arrivals.t_first):
                self.items_out_measured += delivered
            self.loss_sum += float(np.nansum(result.loss))
            if result.correct is not None:
                self.correct_sum += int(result.correct.sum())
            self.metric_items += delivered
            self.t_last_final = done.now
        correct = result.correct[keep].mean() if result.correct is not None and keep.any() else ""
        self.batches_log.write(
            {
                "batch": done.batch,
                "epoch": done.epoch,
                "offset": done.offset,
                "count": done.count,
                "items_lost": result.items_lost,
                "decoded_items": result.decoded,
                "recovery_round": int(done.recovery_round),
                "model_version": done.model_version,
                "loss": float(np.nanmean(result.loss)) if keep.any() else "",
                "accuracy": correct,
                "t_arrival_first": arrivals.t_first,
                "t_arrival_last": arrivals.t_last,
                "t_final": done.now,
                "replayed": int(done.replayed),
                "missing_slots": " ".join(str(slot) for slot in done.missing),
            }
        )

    def _write_labels(self, labels: np.ndarray) -> None:
        if self.labels is None:
            self.labels = open(self.run_dir / LABELS_FILE, "wb")  # noqa: SIM115
        self.labels.write(labels.astype(np.uint8).tobytes())
        self.labels.flush()

    def rolled_back(self) -> None:
        """Batches not committed are announced again after a rollback."""
        self.arrivals.clear()

    def flush_timeline(self, now: float | None = None) -> None:
        """Write the 100 ms bins that can no longer change (all of them with ``now=None``)."""
        if self.timeline is not None:
            for row in self.timeline.close(now):
                self.timeline_log.write(row)

    def summary(self, complete: bool, items_in: int | None, counters: dict) -> dict:
        """Write ``sink.json``: what the sink measured (``counters``: the core's)."""
        start = self.t_start or time.time()
        end = self.t_last_final or start
        span = end - (start + self.warmup)
        if span > 0 and self.items_out_measured:
            throughput = self.items_out_measured / span
            warmup = self.warmup
        else:  # the run was shorter than its warm-up: measure all of it
            span = max(end - start, 1e-9)
            throughput = self.items_out / span
            warmup = 0.0
        hist = self.latency if self.latency.total else self.latency_all
        accuracy = self.correct_sum / self.metric_items if self.metric_items else None
        sink = {
            "complete": complete,
            "items_in": items_in,
            "items_out": self.items_out,
            "items_lost": self.items_lost,
            "items_duplicated": 0,
            "decoded_items": self.decoded_items,
            **counters,
            "throughput_items_per_s": throughput,
            "measured_seconds": span,
            "warmup_seconds": warmup,
            "latency_ms": hist.summary_ms(),
            "metrics": {
                "loss": self.loss_sum / self.metric_items if self.metric_items else None,
                "accuracy": accuracy if self.classifier else None,
            },
            "t_start": start,
            "t_end": end,
        }
        write_json(self.run_dir / "sink.json", sink)
        return sink

    def close(self) -> None:
        self.predictions.close()
        self.latencies.close()
        if self.labels is not None:
            self.labels.close()
        self.batches_log.close()
        self.timeline_log.close()
