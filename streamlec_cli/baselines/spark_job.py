"""The Spark side of ``streamlec baseline spark``: one Structured Streaming query, run as
``python -m streamlec_cli.baselines.spark_job JOB.json`` (pyspark starts its JVM as a child).

The query reads the batch files the harness drops into ``input/`` (a file source taking one
file per micro-batch) and updates a logistic-regression model in ``foreachBatch``: one
gradient step of the project's algorithm per stream batch (the rows of one file, in stream
order). A micro-batch usually holds one file; the first one planned after a restart may hold
two (Spark re-plans the batch it had not yet written to its offset log), so the steps follow
the stream's batches, not Spark's, and the model does not depend on where Spark cut. The
model lives in ``state/model.npz`` with the id of the last micro-batch applied, replaced
atomically, so the sink is idempotent per batch id (Spark's exactly-once sink pattern): a
micro-batch that Spark runs again after a crash (planned in its offset log, not yet in its
commit log) is recognised and not applied twice. The process exits once every item of the
stream has been applied.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms import make_algorithm

STATE = "model.npz"
APPLIED = "applied"  # applied/<batch id>.json and .npy: what each micro-batch applied


def read_state(state_dir: Path) -> tuple[np.ndarray | None, int, int]:
    """``(model, last batch id applied, items applied)``; ``(None, -1, 0)`` before any."""
    path = Path(state_dir) / STATE
    if not path.exists():
        return None, -1, 0
    with np.load(path) as saved:
        return saved["model"].copy(), int(saved["batch_id"]), int(saved["items"])


def write_state(state_dir: Path, model: np.ndarray, batch_id: int, items: int) -> None:
    """Replace the state in one rename: a reader sees the old state or the new, never half."""
    path = Path(state_dir) / STATE
    tmp = path.with_name(".model.npz.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, model=model, batch_id=np.int64(batch_id), items=np.int64(items))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ModelSink:
    """``foreachBatch`` function: each micro-batch id applied at most once, one gradient step
    per stream batch in it."""

    def __init__(self, state_dir: Path, features: int, batch: int, params: dict[str, Any]) -> None:
        self.state_dir = Path(state_dir)
        self.batch = batch  # items per stream batch: item i is in stream batch i // batch
        (self.state_dir / APPLIED).mkdir(parents=True, exist_ok=True)
        self.algorithm = make_algorithm("logreg", features, **params)
        self.features = features

    def __call__(self, frame: Any, batch_id: int) -> None:
        started = time.time()
        model, last, items = read_state(self.state_dir)
        if batch_id <= last:  # a replay of a micro-batch whose update is already in the state
            self._record(batch_id, {"event": "replay-skipped", "t_start": started})
            return
        rows = np.array(frame.collect(), dtype=np.float64).reshape(-1, 2 + self.features)
        rows = rows[np.argsort(rows[:, 0], kind="stable")]  # item ids are exact in float64
        ids = rows[:, 0].astype(np.int64)
        if ids.size and ids[0] != items:
            msg = f"micro-batch {batch_id} starts at item {ids[0]}, not {items}: out of order"
            raise RuntimeError(msg)
        for part in np.split(rows[:, 1:], np.flatnonzero(np.diff(ids // self.batch)) + 1):
            if model is None:
                model = self.algorithm.init_model(part)
            if part.shape[0]:
                Z = self.algorithm.linear(model, part)
                F = self.algorithm.coefficients(model, Z)
                model = self.algorithm.update(model, self.algorithm.statistics(part, F))
        np.save(self.state_dir / APPLIED / f"{batch_id}.npy", ids)
        record = {"batch_id": batch_id, "count": int(ids.size), "t_start": started}
        record["t_committed"] = time.time()
        # the record first: whenever the state holds this batch, its record is there too
        (self.state_dir / APPLIED / f"{batch_id}.json").write_text(json.dumps(record))
        write_state(self.state_dir, model, batch_id, items + int(ids.size))

    def _record(self, batch_id: int, record: dict[str, Any]) -> None:
        name = f"{batch_id}-replay-{os.getpid()}.json"
        (self.state_dir / APPLIED / name).write_text(json.dumps({"batch_id": batch_id, **record}))


def run(job: dict[str, Any]) -> None:
    """Start Spark, run the query until every item is applied, stop."""
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    status = Path(job["status"])
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("streamlec-baseline")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    features = int(job["features"])
    schema = StructType(
        [StructField("item", LongType()), StructField("y", DoubleType())]
        + [StructField(f"x{i}", DoubleType()) for i in range(features)]
    )
    sink = ModelSink(Path(job["state"]), features, int(job["batch"]), job["params"])
    stream = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).csv(job["input"])
    query = (
        stream.writeStream.foreachBatch(sink)
        .option("checkpointLocation", job["checkpoint"])
        .trigger(processingTime="0 seconds")
        .start()
    )
    jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
    status.write_text(json.dumps({"query_started": time.time(), "jvm_pid": jvm_pid}))
    while read_state(sink.state_dir)[2] < job["items"]:
        if query.exception() is not None:
            raise RuntimeError(str(query.exception()))
        time.sleep(0.05)
    query.stop()
    spark.stop()


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
