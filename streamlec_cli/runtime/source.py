"""The source: reads the stream, stamps arrivals, routes each batch to the processor slots.

Closed loop (``rate: max``) it keeps at most ``window`` batches beyond the last one the sink
acknowledged; open loop it releases item i at ``start + i / rate`` and a batch when its last
item has arrived. EC encoding is incremental: the data slices are sent as soon as they are cut
(views of the batch), the parities are computed while they travel and go out after them. A
send to a dead processor fails at once and is skipped: the source never blocks on one. Under
``reactive`` every batch is in the fsynced write-ahead log before any of it is sent, and a
REPLAY from the sink resends the logged batches from the checkpoint on.
"""

from __future__ import annotations

import os
import time

import zmq

from .. import datasets
from . import wire
from .plan import Plan
from .storage import WriteAheadLog

STARTUP_TIMEOUT = 60.0
REPLAY_WAIT = 10.0  # longest wait for a restarted processor before replaying regardless


def run_source(plan: Plan, name: str = "source") -> None:
    spec, algorithm, scheme = plan.spec, plan.algorithm, plan.scheme
    ctx = zmq.Context()
    to_sink = wire.dealer(ctx, plan.address("sink"), name)
    workers = wire.router(ctx, plan.address("source"))
    wire.send(to_sink, wire.HELLO, {"pid": os.getpid()})
    poller = zmq.Poller()
    poller.register(to_sink, zmq.POLLIN)
    poller.register(workers, zmq.POLLIN)
    wal = None
    if spec.scheme.name == "reactive":
        wal = WriteAheadLog(plan.run_dir / "wal.bin", fsync=spec.scheme.wal_fsync)

    state = {"acked": -2, "epoch": 0, "next": 0, "stop": False, "replay_deadline": 0.0}
    hello: dict[str, int] = {}  # processor -> pid of its latest incarnation
    replay_wait: dict[str, int] = {}  # restarted processors a replay must wait for

    def waiting() -> bool:
        if replay_wait and time.monotonic() > state["replay_deadline"]:
            print(f"replay: no hello from {sorted(replay_wait)} in time; replaying", flush=True)
            replay_wait.clear()
        return any(hello.get(worker) != pid for worker, pid in replay_wait.items())

    def handle(timeout_ms: int) -> None:
        for sock, _ in poller.poll(timeout_ms):
            if sock is workers:
                msg = wire.recv(workers, router=True)
                if msg.kind == wire.HELLO:
                    hello[msg.sender] = msg.meta["pid"]
                continue
            msg = wire.recv(to_sink)
            if msg.kind == wire.ACK:
                state["acked"] = max(state["acked"], msg.meta["batch"])
            elif msg.kind == wire.REPLAY:
                state["epoch"] = msg.meta["epoch"]
                state["next"] = msg.meta["batch"]
                state["acked"] = msg.meta["batch"] - 1
                replay_wait.clear()
                replay_wait.update(msg.meta.get("wait_for", {}))
                state["replay_deadline"] = time.monotonic() + REPLAY_WAIT
            elif msg.kind == wire.STOP:
                state["stop"] = True

    def send_batch(batch: int, offset: int, rows, t_first: float, t_last: float) -> None:
        """Tasks first (EC: each slice as soon as it is encoded), then the announcement,
        which says which incarnation of each processor got its task (-1: none, it is down)."""
        epoch = state["epoch"]
        sent_to = [-1] * scheme.processors  # pid of the incarnation each task went to
        for task in scheme.route(rows):
            name = f"processor-{task.slot}"
            if wire.send(
                workers,
                wire.TASK,
                {"batch": batch, "epoch": epoch, "role": task.role},
                [task.rows],
                to=name,
                block=False,
            ):
                sent_to[task.slot] = hello.get(name, 0)
        meta = {
            "batch": batch,
            "offset": offset,
            "count": int(rows.shape[0]),
            "t_first": t_first,
            "t_last": t_last,
            "epoch": epoch,
            "sent_to": sent_to,
        }
        arrays = [algorithm.init_model(rows)] if batch == 0 else []
        wire.send(to_sink, wire.BATCH, meta, arrays)

    try:
        # Start when the sink says every processor is up (ACK of batch -1) and every
        # processor has said hello here too (a task sent before that would be dropped).
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while (state["acked"] < -1 or len(hello) < scheme.processors) and not state["stop"]:
            if time.monotonic() > deadline:
                raise RuntimeError("the sink did not report every processor up in time")
            handle(100)
        if spec.dataset.stage:  # written by the supervisor before the run
            width = 1 + datasets.feature_count(spec.dataset.name)
            stream = datasets.read_staged(plan.run_dir / datasets.STAGED_FILE, width, spec.batch)
        else:
            stream = datasets.open_batches(spec.dataset, spec.batch)
        rate = spec.rate
        start = time.time()
        produced = 0  # batches read from the stream
        offset = 0
        exhausted = False
        end_sent = False
        while not state["stop"]:
            nxt = state["next"]
            blocked = nxt > state["acked"] + plan.window or waiting()
            if blocked or (exhausted and nxt >= produced):
                if exhausted and nxt >= produced and not end_sent:
                    wire.send(to_sink, wire.END, {"batches": produced, "items": offset})
                    end_sent = True
                handle(50)
                continue
            handle(0)
            if nxt < produced:  # replaying from the log
                assert wal is not None
                logged_offset, rows, t_first, t_last = wal.read(nxt)
                send_batch(nxt, logged_offset, rows, t_first, t_last)
                state["next"] = nxt + 1
                continue
            try:
                raw = next(stream, None)
            except datasets.DatasetError as exc:  # a bad line deep in a real file
                print(f"error: {exc}", flush=True)
                raise SystemExit(2) from None
            if raw is None:
                exhausted = True
                continue
            count = raw.shape[0]
            epoch = state["epoch"]
            if rate is None:
                t_first = t_last = time.time()
            else:
                t_first = start + offset / rate
                t_last = start + (offset + count - 1) / rate
                delay = t_last - time.time()
                if delay > 0:
                    handle(int(delay * 1000))
                    while time.time() < t_last:
                        time.sleep(min(0.001, max(0.0, t_last - time.time())))
            rows = algorithm.prepare(raw)
            if wal is not None:
                wal.append(produced, offset, rows, t_first, t_last)
            if state["epoch"] == epoch:
                send_batch(produced, offset, rows, t_first, t_last)
                state["next"] = produced + 1
            # else a REPLAY came while this batch arrived: it is in the log, and the replay,
            # which starts earlier, sends it in its turn
            produced += 1
            offset += count
    finally:
        if wal is not None:
            wal.close()
        ctx.destroy(linger=0)
