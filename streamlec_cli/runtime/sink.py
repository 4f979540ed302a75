"""The sink: turns slot outputs into final results, updates the model and sends it back.

It holds the authoritative model. For every batch it runs the scheme's assembler on the
outputs that arrive, stamps each item's latency the moment its result is final, and commits
batches in order: model update, one row in ``batches.csv``, predictions appended to
``predictions.f64``, the new model to every processor, an ack to the source.

When outputs are missing it never waits for failure detection if the scheme does not need
it: an EC batch with at most r outputs missing per group is finalised after a short grace
(plus the survivor round in ``attach: linear``). A batch that cannot be finalised without
loss waits until its missing slots are known dead (the supervisor's view of child exits, or
no heartbeat for ``failure_timeout``); then ``reactive`` rolls back to its last checkpoint
and has the source replay the log, and the other schemes commit the batch with the loss
counted and reported.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from ..algorithms import Stats
from ..results import BATCH_COLUMNS, TIMELINE_COLUMNS, CsvLog, append_event, write_json
from ..schemes import Assembler, Reactive, SlotOutput
from . import wire
from .metrics import LatencyHistogram, Timeline, bucket_counts, same_counts
from .plan import Plan, model_version_for
from .storage import read_checkpoint, write_checkpoint

STUCK_BATCH_TIMEOUT = 30.0  # a batch missing outputs of live slots for this long is cut
PROGRESS_EVERY = 0.05  # seconds between progress reports to the supervisor


@dataclass
class Pending:
    """A batch announced by the source and not yet committed."""

    batch: int
    offset: int
    count: int
    t_first: float
    t_last: float
    announced: float
    assembler: Assembler | None = None
    never: set[int] = field(default_factory=set)  # slots whose output cannot come
    sufficient_at: float | None = None
    recovery_sent_at: float | None = None
    recovery_excluded: set[int] = field(default_factory=set)
    recovery_rounds: int = 0
    latency: np.ndarray | None = None  # per item, seconds; NaN until final
    sent_to: list[int] = field(default_factory=list)  # pid that got each slot's task, -1: none

    def arrival(self, items: np.ndarray) -> np.ndarray:
        if self.count <= 1:
            return np.full(items.shape, self.t_first)
        return self.t_first + (self.t_last - self.t_first) * items / (self.count - 1)


class Sink:
    def __init__(self, plan: Plan, name: str = "sink") -> None:
        self.plan = plan
        self.spec = plan.spec
        self.algorithm = plan.algorithm
        self.scheme = plan.scheme
        self.reactive = isinstance(plan.scheme, Reactive)
        self.run_dir = plan.run_dir
        self.name = name
        self.ctx = zmq.Context()
        self.sock = wire.router(self.ctx, plan.address("sink"))
        self.processors = [f"processor-{i}" for i in range(self.spec.processors)]
        self.pids: dict[str, int] = {}
        self.last_seen: dict[str, float] = {}
        self.dead: set[str] = set()
        self.dead_pids: set[int] = set()
        self.source_ready = False
        self.started = False
        # Progress goes to the supervisor every PROGRESS_EVERY, and at once after the batch a
        # scheduled failure waits for (it kills after batch at_batch - 1 is committed).
        self.progress_sent = 0.0
        self.progress_batches = {
            f.at_batch - 1 for f in self.spec.failures if f.at_batch is not None
        }
        # model versions by number; the window a batch may need is kept
        self.models: dict[int, np.ndarray] = {}
        self.latest_version = -1
        self.epoch = 0
        self.pending: dict[int, Pending] = {}
        self.stash: dict[int, list[SlotOutput]] = {}
        self.next_commit = 0
        self.delivered_upto = 0  # batches below were delivered (never again)
        self.total_batches: int | None = None
        self.total_items: int | None = None
        # reactive: workers that must be back (a new incarnation) before rolling back -> the pid
        # of the incarnation whose output was lost; and since when we wait
        self.rollback_needs: dict[str, int] | None = None
        self.rollback_since = 0.0
        self.rollbacks = 0
        self.replayed_batches = 0
        # measurement
        self.t_start: float | None = None
        self.t_last_final: float | None = None
        self.latency = LatencyHistogram()
        self.latency_all = LatencyHistogram()
        self.timeline: Timeline | None = None
        self.items_out = 0
        self.items_out_measured = 0
        self.items_lost = 0
        self.items_duplicated = 0
        self.decoded_items = 0
        self.recovery_rounds = 0
        self.loss_sum = 0.0
        self.correct_sum = 0
        self.metric_items = 0
        self.batches_log = CsvLog(self.run_dir / "batches.csv", BATCH_COLUMNS)
        self.timeline_log = CsvLog(self.run_dir / "timeline.csv", TIMELINE_COLUMNS)
        self.predictions = open(self.run_dir / "predictions.f64", "wb")  # noqa: SIM115
        self.latencies = open(self.run_dir / "latency.f32", "wb")  # noqa: SIM115
        self.checkpoint_path = self.run_dir / "checkpoint.npy"

    # -- helpers --------------------------------------------------------------------------

    def event(self, event: str, detail: str = "", worker: str | None = None) -> None:
        append_event(self.run_dir, time.time(), worker or self.name, event, detail)

    def send(self, to: str, kind: str, meta: dict | None = None, arrays=()) -> bool:
        return wire.send(self.sock, kind, meta, arrays, to=to, block=False)

    def window_models(self) -> tuple[int, list[np.ndarray]]:
        first = max(0, self.latest_version - self.plan.depth + 1)
        return first, [self.models[v] for v in range(first, self.latest_version + 1)]

    def send_models(self, to: list[str], reset: bool = False) -> None:
        if self.latest_version < 0:
            return
        first, models = self.window_models()
        meta = {"first": first, "reset": reset, "epoch": self.epoch}
        parts = wire.frames(wire.MODEL, meta, models)
        for worker in to:
            if worker not in self.dead:
                wire.send_frames(self.sock, parts, to=worker, block=False)

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> None:
        self.event("started", f"pid {os.getpid()}")
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        try:
            while True:
                events = poller.poll(timeout=5)
                now = time.time()
                if events:
                    for _ in range(256):  # drain what is there, then look at the clocks
                        if not wire.readable(self.sock):
                            break
                        msg = wire.recv(self.sock, router=True)
                        if self.handle(msg, now) == "stop":
                            return
                        now = time.time()
                self.check_heartbeats(now)
                self.advance(now)
                if self.timeline is not None:
                    for row in self.timeline.close(now - 0.2):
                        self.timeline_log.write(row)
                if self.finished():
                    self.finish()
                    return
        finally:
            self.predictions.close()
            self.latencies.close()
            self.batches_log.close()
            self.timeline_log.close()
            self.ctx.destroy(linger=0)

    def finished(self) -> bool:
        return self.total_batches is not None and self.next_commit >= self.total_batches

    # -- messages -------------------------------------------------------------------------

    def handle(self, msg: wire.Message, now: float) -> str | None:
        kind, sender = msg.kind, msg.sender
        if kind == wire.OUTPUT:
            if msg.meta["epoch"] == self.epoch:
                self.add_output(msg.meta["batch"], wire.parse_output(msg), now)
        elif kind == wire.PARTIAL:
            pending = self.pending.get(msg.meta["batch"])
            if pending is not None and pending.assembler is not None:
                if msg.meta.get("missing"):  # that survivor was replaced: plan without it
                    pending.recovery_excluded.add(msg.meta["slot"])
                    pending.recovery_sent_at = None
                else:
                    pending.assembler.add_recovery(msg.meta["slot"], msg.arrays[0])
        elif kind == wire.HEARTBEAT:
            if sender not in self.pids:
                return None  # from a connection its replacement took over
            self.last_seen[sender] = now
            if sender in self.dead and self.pids.get(sender) == msg.meta["pid"]:
                # declared dead on a missed heartbeat, yet alive: its lost outputs stay lost
                self.dead.discard(sender)
                self.dead_pids.discard(msg.meta["pid"])
                self.event("alive again", f"pid {msg.meta['pid']}", sender)
        elif kind == wire.BATCH:
            self.announce(msg, now)
        elif kind == wire.HELLO:
            self.hello(sender, msg.meta["pid"], now)
        elif kind == wire.DIED:
            worker, pid = msg.meta["worker"], msg.meta["pid"]
            self.dead_pids.add(pid)
            if self.pids.get(worker, pid) == pid:
                self.declare_dead(worker, now, how="exit seen by supervisor")
            else:  # its replacement already said hello: only its lost work matters
                self.lose_outputs(int(worker.rsplit("-", 1)[1]))
        elif kind == wire.END:
            self.total_batches = msg.meta["batches"]
            self.total_items = msg.meta["items"]
        elif kind == wire.STOP:
            self.event("stopped", "stop requested before the end of the stream")
            self.write_summary(complete=False)
            self.stop_workers()
            return "stop"
        return None

    def hello(self, worker: str, pid: int, now: float) -> None:
        if worker == "source":
            self.source_ready = True
        elif worker == "supervisor" and self.started:  # it connected late: tell it again
            self.send("supervisor", wire.PROGRESS, {"batch": -1, "items_out": 0, "items_lost": 0})
        elif worker.startswith("processor-"):
            old = self.pids.get(worker)
            self.pids[worker] = pid
            self.last_seen[worker] = now
            self.dead.discard(worker)
            if old is not None and old != pid:
                self.event("rejoined", f"pid {pid} (was {old})", worker)
            self.send_models([worker])
        if not self.started and self.source_ready and set(self.processors) <= set(self.pids):
            self.started = True
            self.send("source", wire.ACK, {"batch": -1})
            self.send("supervisor", wire.PROGRESS, {"batch": -1, "items_out": 0, "items_lost": 0})
            self.event("all workers up")

    def announce(self, msg: wire.Message, now: float) -> None:
        meta = msg.meta
        if meta["epoch"] != self.epoch:
            return
        batch = meta["batch"]
        if batch in self.pending or batch < self.next_commit:
            return  # announced already in this epoch (its outputs may be in): keep that
        if batch == 0 and self.latest_version < 0:
            self.models[0] = np.array(msg.arrays[0])
            self.latest_version = 0
            self.send_models(self.processors)
            if self.reactive:
                write_checkpoint(self.checkpoint_path, 0, [self.models[0]])
        if self.t_start is None:
            self.t_start = meta["t_first"]
            self.timeline = Timeline(self.t_start)
        pending = Pending(
            batch,
            meta["offset"],
            meta["count"],
            meta["t_first"],
            meta["t_last"],
            now,
            # a task that did not go out, or went to an incarnation now dead, has no output
            never={
                s for s, pid in enumerate(meta["sent_to"]) if pid == -1 or pid in self.dead_pids
            },
            sent_to=list(meta["sent_to"]),
        )
        pending.latency = np.full(pending.count, np.nan)
        self.pending[batch] = pending
        self.open_assembler(pending, now)

    def open_assembler(self, pending: Pending, now: float) -> None:
        version = model_version_for(pending.batch, self.plan.depth)
        if pending.assembler is not None or version > self.latest_version:
            return
        pending.assembler = self.scheme.assembler(
            self.algorithm, self.models[version], pending.count
        )
        for out in self.stash.pop(pending.batch, []):
            self.add_output(pending.batch, out, now)

    def add_output(self, batch: int, out: SlotOutput, now: float) -> None:
        pending = self.pending.get(batch)
        if pending is None or pending.assembler is None:
            if batch >= self.next_commit:
                self.stash.setdefault(batch, []).append(out)
            return
        final = pending.assembler.add(out)
        if final.size:
            self.stamp(pending, final, now)

    def stamp(self, pending: Pending, items: np.ndarray, now: float) -> None:
        """Items of a batch became final now: record their latency (delivery is at commit)."""
        if pending.batch < self.delivered_upto:
            return  # a replayed batch: these items were delivered before the crash
        fresh = items[np.isnan(pending.latency[items])]
        if not fresh.size:
            return
        if pending.t_first == pending.t_last:  # closed loop: one arrival, one latency
            latency = now - pending.t_first
            pending.latency[fresh] = latency
            counts, largest = same_counts(latency, fresh.size), latency
        else:
            latencies = now - pending.arrival(fresh)
            pending.latency[fresh] = latencies
            counts, largest = bucket_counts(latencies), float(latencies.max())
        self.latency_all.add_counts(counts, largest)
        assert self.timeline is not None
        self.timeline.add(now, counts, largest)
        if pending.t_first >= self.t_start + self.spec.runtime.warmup:
            self.latency.add_counts(counts, largest)

    # -- failures -------------------------------------------------------------------------

    def check_heartbeats(self, now: float) -> None:
        timeout = self.spec.runtime.failure_timeout
        for worker, seen in list(self.last_seen.items()):
            if worker not in self.dead and now - seen > timeout:
                self.declare_dead(worker, now, how=f"no heartbeat for {timeout:g}s")

    def declare_dead(self, worker: str, now: float, how: str) -> None:
        if worker in self.dead or not worker.startswith("processor-"):
            return
        self.dead.add(worker)
        if worker in self.pids:
            self.dead_pids.add(self.pids[worker])
        self.last_seen.pop(worker, None)
        self.event("detected", how, worker)
        self.lose_outputs(int(worker.rsplit("-", 1)[1]))

    def lose_outputs(self, slot: int) -> None:
        """Outputs of ``slot`` still missing from pending batches will never come."""
        for pending in self.pending.values():
            if pending.assembler is None or slot in pending.assembler.missing:
                pending.never.add(slot)

    def need_rollback(self, pending: Pending, slots: set[int], now: float) -> None:
        """Reactive: roll back once these slots' processors are back (see ``advance``)."""
        if self.rollback_needs is None:
            self.rollback_needs = {}
            self.rollback_since = now
        for slot in slots:
            worker = f"processor-{slot}"
            sent = pending.sent_to[slot]
            lost = sent if sent > 0 else self.pids.get(worker, -1)
            if worker not in self.rollback_needs:
                self.rollback_needs[worker] = lost
                self.event("recovery started", f"waiting for a new {worker}", worker)

    def back(self, worker: str, lost_pid: int, now: float) -> bool:
        """Whether ``worker`` can take part in a replay: a new incarnation said hello, or the
        old one is provably alive (its output was lost some other way)."""
        if worker in self.dead or worker not in self.pids:
            return False
        if self.pids[worker] != lost_pid:
            return True
        return now - self.rollback_since > 2 * self.spec.runtime.failure_timeout

    def rollback(self, now: float) -> None:
        first, models = read_checkpoint(self.checkpoint_path)
        self.epoch += 1
        self.rollbacks += 1
        self.models = {first + i: m for i, m in enumerate(models)}
        self.latest_version = first + len(models) - 1
        resume = self.latest_version  # version v has seen batches 0..v-1
        self.pending.clear()
        self.stash.clear()
        self.next_commit = resume
        assert self.rollback_needs is not None
        waited = {worker: self.pids[worker] for worker in self.rollback_needs}
        self.rollback_needs = None
        self.send_models(self.processors, reset=True)
        self.send("source", wire.REPLAY, {"batch": resume, "epoch": self.epoch, "wait_for": waited})
        self.event("rollback", f"to checkpoint after batch {resume - 1}; replay from {resume}")

    # -- committing -----------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Commit every batch that can be committed, in order."""
        if self.rollback_needs is not None:
            if all(self.back(w, pid, now) for w, pid in self.rollback_needs.items()):
                self.rollback(now)
            return
        while True:
            pending = self.pending.get(self.next_commit)
            if pending is None or pending.assembler is None:
                return
            if not self.ready(pending, now):
                return
            self.commit(pending, now)

    def ready(self, pending: Pending, now: float) -> bool:
        asm = pending.assembler
        assert asm is not None
        if asm.complete:
            return self.recovered(pending, now)
        if asm.sufficient:
            if pending.sufficient_at is None:
                pending.sufficient_at = now
            known = asm.missing <= pending.never
            if not known and now - pending.sufficient_at < self.spec.runtime.grace:
                return False
            return self.recovered(pending, now)
        lost = asm.missing & pending.never
        if self.reactive:
            if lost:
                self.need_rollback(pending, set(lost), now)
            return False
        known = asm.missing <= pending.never
        if known:
            return self.recovered(pending, now)
        if now - pending.announced > STUCK_BATCH_TIMEOUT:
            self.event("timeout", f"batch {pending.batch}: no output from {sorted(asm.missing)}")
            pending.never |= set(asm.missing)
            return self.recovered(pending, now)
        return False

    def recovered(self, pending: Pending, now: float) -> bool:
        """Run the survivor round where the scheme needs one; True when it is done."""
        asm = pending.assembler
        assert asm is not None
        if pending.recovery_sent_at is None:
            unavailable = frozenset(pending.never | pending.recovery_excluded) | {
                int(w.rsplit("-", 1)[1]) for w in self.dead
            }
            requests = asm.recovery_requests(unavailable)
            pending.recovery_sent_at = now
            if not requests:
                return True
            self.recovery_rounds += 1
            pending.recovery_rounds += 1
            for slot, weights in requests.items():
                self.send(f"processor-{slot}", wire.RECOVER, {"batch": pending.batch}, [weights])
            return False
        if asm.recovery_complete:
            return True
        if now - pending.recovery_sent_at > self.spec.runtime.failure_timeout:
            # A survivor did not answer: plan again without it.
            pending.recovery_excluded |= asm.silent_survivors()
            pending.recovery_sent_at = None
        return False

    def commit(self, pending: Pending, now: float) -> None:
        asm = pending.assembler
        assert asm is not None
        stats: Stats = asm.statistics()
        new_model = self.algorithm.update(self.models[self.latest_version], stats)
        self.latest_version += 1
        self.models[self.latest_version] = new_model
        for version in [v for v in self.models if v <= self.latest_version - self.plan.depth]:
            del self.models[version]
        # The next batch waits for this model: send it (and the ack) before the bookkeeping.
        self.send_models([p for p in self.processors if p not in self.dead])
        self.send("source", wire.ACK, {"batch": pending.batch})
        result = asm.result()
        replayed = pending.batch < self.delivered_upto
        keep = ~result.lost
        if not replayed:
            # Items final only now (a recovery round) get their latency now.
            late = np.flatnonzero(keep & np.isnan(pending.latency))
            if late.size:
                self.stamp(pending, late, now)
            pending.latency[~keep] = np.nan
            self.predictions.write(result.predictions.astype(np.float64).tobytes())
            self.predictions.flush()
            self.latencies.write(pending.latency.astype(np.float32).tobytes())
            self.latencies.flush()
            delivered = int(keep.sum())
            self.items_out += delivered
            self.items_lost += result.items_lost
            self.decoded_items += result.decoded
            if pending.t_first >= self.t_start + self.spec.runtime.warmup:
                self.items_out_measured += delivered
            self.loss_sum += float(np.nansum(result.loss))
            if result.correct is not None:
                self.correct_sum += int(result.correct.sum())
            self.metric_items += delivered
            self.delivered_upto = pending.batch + 1
            self.t_last_final = now
            if result.items_lost:
                self.event(
                    "items lost",
                    f"batch {pending.batch}: {result.items_lost} items; no output from "
                    f"{sorted(asm.missing)}",
                )
        else:
            self.replayed_batches += 1
        correct = result.correct[keep].mean() if result.correct is not None and keep.any() else ""
        self.batches_log.write(
            {
                "batch": pending.batch,
                "epoch": self.epoch,
                "offset": pending.offset,
                "count": pending.count,
                "items_lost": result.items_lost,
                "decoded_items": result.decoded,
                "recovery_round": int(pending.recovery_rounds > 0),
                "model_version": model_version_for(pending.batch, self.plan.depth),
                "loss": float(np.nanmean(result.loss)) if keep.any() else "",
                "accuracy": correct,
                "t_arrival_first": pending.t_first,
                "t_arrival_last": pending.t_last,
                "t_final": now,
                "replayed": int(replayed),
            }
        )
        del self.pending[pending.batch]
        self.next_commit += 1
        if self.reactive and self.scheme.checkpoint_due(pending.batch):
            first, models = self.window_models()
            write_checkpoint(self.checkpoint_path, first, models)
        if pending.batch in self.progress_batches or now - self.progress_sent >= PROGRESS_EVERY:
            self.progress_sent = now
            meta = {"batch": pending.batch, "items_out": self.items_out}
            self.send("supervisor", wire.PROGRESS, {**meta, "items_lost": self.items_lost})
        nxt = self.pending.get(self.next_commit)
        if nxt is not None:
            self.open_assembler(nxt, now)
        for other in self.pending.values():
            self.open_assembler(other, now)

    # -- the end --------------------------------------------------------------------------

    def finish(self) -> None:
        np.save(self.run_dir / "model.npy", self.models[self.latest_version])
        if self.timeline is not None:
            for row in self.timeline.close():
                self.timeline_log.write(row)
        summary = self.write_summary(complete=True)
        self.event("finished", f"{self.items_out} items out, {self.items_lost} lost")
        self.stop_workers()
        self.send("supervisor", wire.DONE, {"items_out": summary["items_out"]})

    def stop_workers(self) -> None:
        """End of stream: tell the source and every processor to exit."""
        for worker in ["source", *self.processors]:
            self.send(worker, wire.STOP)

    def write_summary(self, complete: bool) -> dict:
        start = self.t_start or time.time()
        measured_from = start + self.spec.runtime.warmup
        end = self.t_last_final or start
        span = end - measured_from
        if span > 0 and self.items_out_measured:
            throughput = self.items_out_measured / span
            warmup = self.spec.runtime.warmup
        else:  # the run was shorter than its warm-up: measure all of it
            span = max(end - start, 1e-9)
            throughput = self.items_out / span
            warmup = 0.0
        hist = self.latency if self.latency.total else self.latency_all
        accuracy = self.correct_sum / self.metric_items if self.metric_items else None
        sink = {
            "complete": complete,
            "items_in": self.total_items,
            "items_out": self.items_out,
            "items_lost": self.items_lost,
            "items_duplicated": self.items_duplicated,
            "decoded_items": self.decoded_items,
            "batches_committed": self.next_commit,
            "recovery_rounds": self.recovery_rounds,
            "rollbacks": self.rollbacks,
            "replayed_batches": self.replayed_batches,
            "throughput_items_per_s": throughput,
            "measured_seconds": span,
            "warmup_seconds": warmup,
            "latency_ms": hist.summary_ms(),
            "metrics": {
                "loss": self.loss_sum / self.metric_items if self.metric_items else None,
                "accuracy": accuracy if self.algorithm.classifier else None,
            },
            "t_start": start,
            "t_end": end,
        }
        write_json(self.run_dir / "sink.json", sink)
        return sink


def run_sink(plan: Plan, name: str = "sink") -> None:
    Sink(plan, name).run()
