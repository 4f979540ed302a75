"""``streamlec baseline spark``: the paper's motivation experiment, the cost of recovery in
Spark Structured Streaming.

The same logistic-regression stream as a streamlec spec (the seeded generator's items, the
batch size, the rate, the learning rate) goes through a Structured Streaming query on
pyspark's local engine (``local[2]``, checkpointing on; ``spark_job.py``) in a process of its
own. The harness writes one CSV file per batch into the query's input directory at the fixed
rate; after ``kill_at_batch`` micro-batches are applied it SIGKILLs the driver's process group
(the Python driver and its JVM), starts the query again from its checkpoint, and keeps
feeding. Measured: the recovery time (from the kill until Spark's commit log holds the first
micro-batch committed after it), the latency of each batch (file written -> its update
committed) before and after the kill, items lost and duplicated (every item id applied
exactly once), and the final model against the single-process reference of the same batches
(the model a run without a kill computes). The batch files are removed at the end (the seed
makes them again); Spark's checkpoint and the sink's state stay under ``spark/``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import datasets
from ..algorithms import make_algorithm
from ..provenance import code_commit
from ..reference import max_rel_err, run_reference
from ..results import CsvLog, append_event, machine_info, new_run_directory, write_json
from .spark_job import APPLIED, read_state

INSTALL_HINT = (
    "the Spark baseline needs pyspark, which is not installed in this environment: "
    "install the optional engines with `pip install '.[engines]'` (from the streamlec "
    "checkout; pyspark is about 400 MB and needs Java 17), then run "
    "`streamlec baseline spark` again"
)
SETTING = "baseline-spark"
MODEL_TOLERANCE = 1e-9  # normwise relative distance to the reference model
BATCH_COLUMNS = ("batch", "spark_batch_id", "count", "t_written", "t_committed", "latency_s")


class BaselineError(Exception):
    """A user-facing problem: printed as one paragraph, no traceback."""


@dataclass(frozen=True)
class SparkBaseline:
    """What one Spark baseline run streams and when it kills."""

    name: str = SETTING  # the folder its run goes into under --out (a spec's name)
    dataset: str = "higgs"
    items: int = 60_000
    seed: int = 1
    batch: int = 2000
    rate: float = 4000.0  # items per second: one file every batch / rate seconds
    lr: float = 0.05
    l2: float = 1e-4
    kill_at_batch: int | None = 10  # stream batches applied before the kill; None: no kill
    timeout: float = 600.0


def require_pyspark() -> str:
    """pyspark's version; :class:`BaselineError` with the install command when it is missing."""
    try:
        import pyspark
    except ImportError:
        raise BaselineError(INSTALL_HINT) from None
    return str(pyspark.__version__)


def from_spec(run: Any) -> dict[str, Any]:
    """The settings of a :class:`SparkBaseline` taken from one run of a streamlec spec."""
    if run.algorithm.name != "logreg":
        msg = f"the Spark baseline runs logistic regression only, not {run.algorithm.name!r}"
        raise BaselineError(msg)
    if run.dataset.path is not None:
        msg = "the Spark baseline streams the seeded generator, not a data file (dataset.path)"
        raise BaselineError(msg)
    if run.rate is None:
        msg = "the Spark baseline feeds files at a fixed rate: give the spec a number as rate"
        raise BaselineError(msg)
    params = dict(run.algorithm.params)
    found: dict[str, Any] = {
        "name": run.name,
        "dataset": run.dataset.name,
        "items": run.dataset.items,
        "seed": run.dataset.seed,
        "batch": run.batch,
        "rate": float(run.rate),
        "lr": float(params.get("lr", 0.05)),
        "l2": float(params.get("l2", 1e-4)),
    }
    if run.failures:
        first = run.failures[0]
        at = first.at_batch if first.at_batch is not None else first.at * run.rate / run.batch
        found["kill_at_batch"] = max(1, round(at))
    return found


def run_baseline(config: SparkBaseline, out: Path, quiet: bool = False) -> Path:
    """Run the Spark baseline; return its new run directory (never an existing one)."""
    version = require_pyspark()
    batches = [
        b.copy() for b in datasets.batches(config.dataset, config.items, config.batch, config.seed)
    ]
    if config.kill_at_batch is not None and not 0 < config.kill_at_batch < len(batches):
        msg = f"kill_at_batch must be between 1 and {len(batches) - 1}, not {config.kill_at_batch}"
        raise BaselineError(msg)
    run_dir = new_run_directory(Path(out) / config.name, SETTING)
    work = run_dir / "spark"
    for sub in ("input", "state", "checkpoint", "staging"):
        (work / sub).mkdir(parents=True)
    (run_dir / "logs").mkdir()
    write_json(
        run_dir / "meta.json",
        {
            "engine": "spark",
            "setting": SETTING,
            "config": asdict(config),
            "commit": code_commit(),
            "start_time": time.time(),
            **machine_info(),
            "pyspark": version,
        },
    )
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr))
    job = {
        "input": str(work / "input"),
        "state": str(work / "state"),
        "checkpoint": str(work / "checkpoint"),
        "features": datasets.feature_count(config.dataset),
        "items": config.items,
        "batch": config.batch,
        "params": {"lr": config.lr, "l2": config.l2},
    }
    driver = _Driver(run_dir, job)
    try:
        first = driver.start(1)
        say(f"spark: query running after {first.startup_s:.1f} s (pid {first.pid}); feeding")
        feeder = _Feeder(work, batches, config.batch / config.rate)
        feeder.start()
        kill = None
        deadline = time.monotonic() + config.timeout
        if config.kill_at_batch is not None:
            while _applied_batches(work, config.batch) < config.kill_at_batch:
                driver.check(first, deadline)
                time.sleep(0.01)
            kill = driver.kill(first)
            say(f"spark: SIGKILL to the driver (pid {first.pid}) and its JVM at {kill:.3f}")
            second = driver.start(2)
            say(f"spark: restarted from the checkpoint, running after {second.startup_s:.1f} s")
            driver.wait(second, deadline)
        else:
            driver.wait(first, deadline)
    except BaseException as exc:
        driver.stop()  # no Spark process outlives the harness
        why = str(exc) or type(exc).__name__
        write_json(run_dir / "summary.json", {"engine": "spark", "complete": False, "error": why})
        raise
    feeder.join()
    summary = _summarise(run_dir, work, config, batches, feeder.written, kill, driver)
    summary["pyspark"] = version
    np.save(run_dir / "model.npy", read_state(work / "state")[0])
    write_json(run_dir / "summary.json", summary)
    for fed in ("input", "staging"):  # the stream's files: the seed makes them again
        shutil.rmtree(work / fed)
    return run_dir


@dataclass
class _Start:
    incarnation: int
    process: subprocess.Popen
    pid: int
    began: float
    startup_s: float
    jvm_pid: int


class _Driver:
    """Starts, kills and waits for the Spark driver process (its own process group)."""

    def __init__(self, run_dir: Path, job: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.job = job
        self.starts: list[_Start] = []
        self.processes: list[subprocess.Popen] = []  # every driver started, running or not

    def start(self, incarnation: int) -> _Start:
        status = self.run_dir / "spark" / f"driver-{incarnation}.json"
        job_file = self.run_dir / "spark" / "job.json"
        job_file.write_text(json.dumps({**self.job, "status": str(status)}))
        log = open(self.run_dir / "logs" / f"driver-{incarnation}.log", "wb")  # noqa: SIM115
        began = time.time()
        command = [sys.executable, "-m", "streamlec_cli.baselines.spark_job", str(job_file)]
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}  # Spark binds loopback only
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        log.close()
        self.processes.append(process)
        append_event(self.run_dir, began, "spark-driver", "start", f"incarnation {incarnation}")
        while not status.exists():
            if process.poll() is not None:
                raise BaselineError(self._failed(incarnation, process.returncode))
            if time.time() - began > 300:
                os.killpg(process.pid, signal.SIGKILL)
                raise BaselineError(f"the Spark query did not start within 300 s{self._log(1)}")
            time.sleep(0.02)
        said = json.loads(status.read_text())
        started = float(said["query_started"])
        append_event(self.run_dir, started, "spark-driver", "query-started", f"pid {process.pid}")
        start = _Start(incarnation, process, process.pid, began, started - began, said["jvm_pid"])
        self.starts.append(start)
        return start

    def stop(self) -> None:
        """SIGKILL every driver process group still running."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def kill(self, start: _Start) -> float:
        """SIGKILL the driver's process group (Python driver, JVM, Python workers)."""
        when = time.time()
        os.killpg(start.pid, signal.SIGKILL)
        detail = f"SIGKILL driver pid {start.pid}, JVM pid {start.jvm_pid}"
        append_event(self.run_dir, when, "spark-driver", "kill", detail)
        start.process.wait()
        return when

    def check(self, start: _Start, deadline: float) -> None:
        if start.process.poll() is not None:
            raise BaselineError(self._failed(start.incarnation, start.process.returncode))
        if time.monotonic() > deadline:
            os.killpg(start.pid, signal.SIGKILL)
            raise BaselineError(f"the Spark run did not finish in time{self._log(start)}")

    def wait(self, start: _Start, deadline: float) -> None:
        while start.process.poll() is None:
            self.check(start, deadline)
            time.sleep(0.05)
        if start.process.returncode != 0:
            raise BaselineError(self._failed(start.incarnation, start.process.returncode))
        append_event(self.run_dir, time.time(), "spark-driver", "exit", "stream applied")

    def _failed(self, incarnation: int, code: int) -> str:
        return f"the Spark driver (start {incarnation}) exited with code {code}" + self._log(
            incarnation
        )

    def _log(self, incarnation: int | _Start) -> str:
        n = incarnation.incarnation if isinstance(incarnation, _Start) else incarnation
        path = self.run_dir / "logs" / f"driver-{n}.log"
        lines = path.read_text(errors="replace").strip().splitlines()[-15:]
        return f"; the end of {path}:\n  " + "\n  ".join(lines)


class _Feeder(threading.Thread):
    """Writes batch b into the input directory at ``b * interval`` seconds, atomically."""

    def __init__(self, work: Path, batches: list[np.ndarray], interval: float) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.batches = batches
        self.interval = interval
        self.written: list[float] = []

    def run(self) -> None:
        begin = time.monotonic()
        first = 0
        for b, rows in enumerate(self.batches):
            time.sleep(max(0.0, begin + b * self.interval - time.monotonic()))
            ids = np.arange(first, first + rows.shape[0])
            first += rows.shape[0]
            staged = self.work / "staging" / f"batch-{b:06d}.csv"
            table = np.column_stack([ids, rows])
            fmt = ["%d"] + ["%.17g"] * rows.shape[1]
            np.savetxt(staged, table, fmt=fmt, delimiter=",")
            os.replace(staged, self.work / "input" / staged.name)
            self.written.append(time.time())


def _applied_batches(work: Path, batch: int) -> int:
    """Stream batches whose update is in the sink's state."""
    return read_state(work / "state")[2] // batch


def _summarise(
    run_dir: Path,
    work: Path,
    config: SparkBaseline,
    batches: list[np.ndarray],
    written: list[float],
    kill: float | None,
    driver: _Driver,
) -> dict[str, Any]:
    applied = work / "state" / APPLIED
    records = sorted(
        (json.loads(p.read_text()) for p in applied.glob("*.json") if "replay" not in p.name),
        key=lambda r: r["batch_id"],
    )
    replays = [json.loads(p.read_text()) for p in applied.glob("*-replay-*.json")]
    counts = np.zeros(config.items, dtype=np.int64)
    rows = CsvLog(run_dir / "batches.csv", BATCH_COLUMNS)
    latencies, committed = [], []
    for record in records:
        ids = np.load(applied / f"{record['batch_id']}.npy")
        np.add.at(counts, ids, 1)
        numbers, sizes = np.unique(ids // config.batch, return_counts=True)
        for number, size in zip(numbers.tolist(), sizes.tolist(), strict=True):
            t_written = written[number] if number < len(written) else None
            latency = record["t_committed"] - t_written if t_written is not None else None
            rows.write(
                {
                    "batch": number,
                    "spark_batch_id": record["batch_id"],
                    "count": size,
                    "t_written": t_written,
                    "t_committed": record["t_committed"],
                    "latency_s": latency,
                }
            )
            if latency is not None:
                latencies.append(latency)
                committed.append(record["t_committed"])
    rows.close()
    for replay in replays:
        append_event(
            run_dir,
            replay["t_start"],
            "spark-sink",
            "replay-skipped",
            f"batch {replay['batch_id']}",
        )
    algorithm = make_algorithm(
        "logreg", datasets.feature_count(config.dataset), lr=config.lr, l2=config.l2
    )
    expected = run_reference(algorithm, batches).model
    model = read_state(work / "state")[0]
    latency = np.array(latencies)
    when = np.array(committed)
    summary: dict[str, Any] = {
        "engine": "spark",
        "setting": SETTING,
        "spec_name": config.name,
        "complete": True,
        "error": None,
        "master": "local[2]",
        "algorithm": "logreg",
        "algorithm_params": {"lr": config.lr, "l2": config.l2},
        "dataset": config.dataset,
        "batch": config.batch,
        "rate": config.rate,
        "items_in": config.items,
        "items_out": int((counts > 0).sum()),
        "items_lost": int((counts == 0).sum()),
        "items_duplicated": int((counts[counts > 1] - 1).sum()),
        "micro_batches": len(records),
        "replays_skipped": len(replays),
        "model_max_rel_err": max_rel_err(model, expected),
        "model_matches_reference": bool(max_rel_err(model, expected) <= MODEL_TOLERANCE),
        "spark_startup_s": driver.starts[0].startup_s,
        "spark_restart_startup_s": driver.starts[1].startup_s if len(driver.starts) > 1 else None,
        "latency_ms": _percentiles(latency),
    }
    if kill is None:
        summary.update({"kill_time": None, "recovery_s": None, "failures": []})
        return summary
    commits = [
        p.stat().st_mtime for p in (work / "checkpoint" / "commits").iterdir() if p.name.isdigit()
    ]
    after = [t for t in commits if t > kill]
    recovered = min(after) if after else None
    if recovered is not None:
        append_event(run_dir, recovered, "spark-driver", "first-commit-after-kill")
    start = driver.starts[0]
    summary.update(
        {
            "kill_time": kill,
            "recovery_s": recovered - kill if recovered is not None else None,
            "latency_ms_before_kill": _percentiles(latency[when < kill]),
            "latency_ms_after_kill": _percentiles(latency[when >= kill]),
            "failures": [
                {
                    "worker": "spark-driver",
                    "pid": start.pid,
                    "jvm_pid": start.jvm_pid,
                    "time": kill,
                    "elapsed_s": kill - (written[0] if written else kill),
                    "after_batch": config.kill_at_batch,
                    "signal": "SIGKILL",
                    "recovery_s": recovered - kill if recovered is not None else None,
                }
            ],
        }
    )
    return summary


def _percentiles(latency: np.ndarray) -> dict[str, float | None]:
    if latency.size == 0:
        return {"p50": None, "p99": None, "max": None, "batches": 0}
    return {
        "p50": float(np.percentile(latency, 50) * 1e3),
        "p99": float(np.percentile(latency, 99) * 1e3),
        "max": float(latency.max() * 1e3),
        "batches": int(latency.size),
    }
