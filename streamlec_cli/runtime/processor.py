"""A processor: applies the model to its slot's rows and sends the results to the sink.

It holds nothing that matters beyond the model copy the sink sends it and, for the EC
recovery round, the rows of batches not yet committed; a SIGKILL loses exactly that, and a
restarted processor gets the current model from the sink when it says hello.
"""

from __future__ import annotations

import os
import time

import numpy as np
import zmq

from ..schemes import Task
from ..schemes.base import partial_statistics
from . import wire
from .plan import Plan, model_version_for


def run_processor(plan: Plan, name: str) -> None:
    slot = Plan.slot_of(name)
    algorithm, scheme = plan.algorithm, plan.scheme
    heartbeat = plan.spec.runtime.heartbeat_interval
    ctx = zmq.Context()
    to_sink = wire.dealer(ctx, plan.address("sink"), name)
    from_source = wire.dealer(ctx, plan.address("source"), name)
    hello = {"pid": os.getpid(), "slot": slot}
    wire.send(from_source, wire.HELLO, hello)
    wire.send(to_sink, wire.HELLO, hello)
    poller = zmq.Poller()
    poller.register(to_sink, zmq.POLLIN)
    poller.register(from_source, zmq.POLLIN)

    models: dict[int, np.ndarray] = {}
    waiting: dict[int, tuple[Task, int]] = {}  # batch -> (task, epoch) until its model arrives
    held: dict[int, np.ndarray] = {}  # batch -> rows, for the recovery round
    next_beat = 0.0
    current_epoch = 0  # raised by a rollback (reactive); older tasks are dropped

    def work(batch: int, task: Task, epoch: int) -> None:
        out = scheme.process(algorithm, models[model_version_for(batch, plan.depth)], task)
        meta, arrays = wire.output_message(out, batch, epoch)
        wire.send(to_sink, wire.OUTPUT, meta, arrays)
        held[batch] = task.rows

    try:
        while True:
            now = time.monotonic()
            if now >= next_beat:
                wire.send(to_sink, wire.HEARTBEAT, {"pid": hello["pid"]}, block=False)
                next_beat = now + heartbeat
            events = dict(poller.poll(timeout=max(1, int(1000 * (next_beat - now)))))
            if from_source in events:
                msg = wire.recv(from_source)
                if msg.kind == wire.TASK:
                    batch, epoch = msg.meta["batch"], msg.meta["epoch"]
                    if epoch < current_epoch:
                        continue  # sent before a rollback: its results would be ignored
                    task = Task(slot, msg.meta["role"], msg.arrays[0])
                    if model_version_for(batch, plan.depth) in models:
                        work(batch, task, epoch)
                    else:
                        waiting[batch] = (task, epoch)
                elif msg.kind == wire.STOP:
                    return
            if to_sink in events:
                msg = wire.recv(to_sink)
                if msg.kind == wire.MODEL:
                    first = msg.meta["first"]
                    if msg.meta.get("reset"):  # a rollback: only the new epoch's tasks count
                        current_epoch = msg.meta["epoch"]
                        models.clear()
                        for batch in [b for b, (_, e) in waiting.items() if e < current_epoch]:
                            del waiting[batch]
                    for i, model in enumerate(msg.arrays):
                        models[first + i] = model
                    newest = max(models)
                    for version in [v for v in models if v <= newest - plan.depth - 1]:
                        del models[version]
                    # Batches below the newest version are committed: their rows can go.
                    for batch in [b for b in held if b < newest]:
                        del held[batch]
                    for batch in sorted(waiting):
                        if model_version_for(batch, plan.depth) in models:
                            work(batch, *waiting.pop(batch))
                elif msg.kind == wire.RECOVER:
                    batch = msg.meta["batch"]
                    if batch in held:
                        partial = partial_statistics(algorithm, held[batch], msg.arrays[0])
                        wire.send(to_sink, wire.PARTIAL, {"batch": batch, "slot": slot}, [partial])
                    else:  # a replacement never saw that batch: say so, the sink plans again
                        meta = {"batch": batch, "slot": slot, "missing": True}
                        wire.send(to_sink, wire.PARTIAL, meta)
                elif msg.kind == wire.STOP:
                    return
    finally:
        ctx.destroy(linger=0)
