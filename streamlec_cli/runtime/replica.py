"""The reactive scheme's log on storage workers (``log: storage``): both ends of it.

A storage worker (``storage-I``, a process of its own, on a host of its own in a cluster) binds
a ROUTER and appends every batch the source sends it (LOG) to its own fsynced write-ahead log,
then answers LOGGED; asked for a batch (FETCH) it reads it back from its disk and sends the
rows (FETCHED). The source's side, ``ReplicatedLog``, sends each batch to every replica and
returns only once every one of them has acknowledged it, so a batch counts as logged when it
is on ``replicas`` disks; a replay reads the batch back over the wire from a replica. Rows
travel as raw numpy buffers (``wire``), never pickled. The storage workers stop when the
source tells them (STOP), or with the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zmq

from . import wire
from .plan import Plan
from .startup import Deadline, StartupTimeout, tell
from .storage import WriteAheadLog

#: Seconds the source waits for a replica's acknowledgement (or a fetched batch) before it
#: gives up: a storage worker that is down stops the run (it is outside the processors).
ACK_TIMEOUT = 60.0


class LogUnavailable(RuntimeError):
    """The storage workers did not acknowledge (or send back) a batch in time."""


#: The file name of a storage worker's log in its run directory (a glob over all of them).
LOG_FILES = "storage-*.bin"


def log_file(plan: Plan, name: str) -> Path:
    """Where storage worker ``name`` keeps its log: ``storage-I.bin`` in the run directory."""
    return plan.run_dir / f"{name}.bin"


def log_files(run_dir: Path) -> list[Path]:
    """The storage workers' logs in a run directory (removed once the run is over)."""
    return sorted(Path(run_dir).glob(LOG_FILES))


class StorageWorker:
    """One replica of the log: append, acknowledge, read back. Batches come in order from
    the one source; a batch it already holds (sent again) is acknowledged, not stored twice."""

    def __init__(self, plan: Plan, name: str, startup_timeout: float | None = None) -> None:
        self.plan = plan
        self.name = name
        self.startup_timeout = startup_timeout
        self.ctx = zmq.Context()
        self.sock = wire.router(self.ctx, plan.address(name))
        policy = plan.scheme.replay
        fsync = policy.wal_fsync if policy is not None else True
        self.log = WriteAheadLog(log_file(plan, name), fsync=fsync)

    def run(self) -> None:
        tell(
            self.name,
            f"pid {os.getpid()}, log {self.log.path}; listens for the source at "
            f"{wire.bound(self.sock)}",
        )
        deadline = Deadline(self.startup_timeout)
        heard = False
        try:
            while True:
                if not self.sock.poll(100):
                    if not heard and deadline.expired():
                        detail = "the source never sent a batch to log"
                        raise StartupTimeout(self.name, deadline.seconds or 0.0, ["source"], detail)
                    continue
                msg = wire.recv(self.sock, router=True)
                if msg.kind == wire.FOREIGN:
                    continue
                heard = True
                if msg.kind == wire.LOG:
                    self.append(msg)
                elif msg.kind == wire.FETCH:
                    self.fetch(msg)
                elif msg.kind == wire.STOP:
                    break
            tell(self.name, f"stopped by the source after {len(self.log)} batches logged")
        finally:
            self.log.close()
            self.ctx.destroy(linger=0)

    def append(self, msg: wire.Message) -> None:
        meta = msg.meta
        batch = int(meta["batch"])
        if batch == len(self.log):
            self.log.append(batch, meta["offset"], msg.arrays[0], meta["t_first"], meta["t_last"])
        elif batch > len(self.log):
            problem = f"batch {batch} came before batch {len(self.log)}"
            raise RuntimeError(f"{self.name}: {problem}")
        reply = {"batch": batch, "bytes": self.log.bytes}
        wire.send(self.sock, wire.LOGGED, reply, to=msg.sender, block=False)

    def fetch(self, msg: wire.Message) -> None:
        batch = int(msg.meta["batch"])
        offset, rows, t_first, t_last = self.log.read(batch)
        meta = {"batch": batch, "offset": offset, "t_first": t_first, "t_last": t_last}
        wire.send(self.sock, wire.FETCHED, meta, [rows], to=msg.sender, block=False)


def run_storage(plan: Plan, name: str, startup_timeout: float | None = None) -> None:
    StorageWorker(plan, name, startup_timeout).run()


class ReplicatedLog:
    """The source's log on ``replicas`` storage workers; reads like ``WriteAheadLog``."""

    def __init__(
        self,
        ctx: zmq.Context,
        plan: Plan,
        replicas: Sequence[str],
        identity: str = "source",
        timeout: float = ACK_TIMEOUT,
    ) -> None:
        self.replicas = tuple(replicas)
        self.timeout = timeout
        self.socks = {name: wire.dealer(ctx, plan.address(name), identity) for name in replicas}
        self.poller = zmq.Poller()
        for sock in self.socks.values():
            self.poller.register(sock, zmq.POLLIN)
        self.count = 0
        self.bytes: dict[str, int] = {}  # replica -> bytes of its log, as it last said

    def append(self, batch: int, offset: int, rows: np.ndarray, t_first: float, t_last: float):
        """Send the batch to every replica; return once each has it on its disk."""
        meta = {"batch": batch, "offset": offset, "t_first": t_first, "t_last": t_last}
        parts = wire.frames(wire.LOG, meta, [np.ascontiguousarray(rows, dtype=np.float64)])
        for sock in self.socks.values():
            wire.send_frames(sock, parts)
        waiting = set(self.replicas)
        deadline = time.monotonic() + self.timeout
        while waiting:
            for name, msg in self._replies(deadline, waiting, f"acknowledge batch {batch}"):
                if msg.kind == wire.LOGGED and msg.meta["batch"] == batch:
                    waiting.discard(name)
                    self.bytes[name] = int(msg.meta["bytes"])
        self.count = max(self.count, batch + 1)

    def read(self, batch: int) -> tuple[int, np.ndarray, float, float]:
        """``(offset, rows, t_first, t_last)`` of a logged batch, read back from the first
        replica (every replica holds every logged batch; one that is down stops the run)."""
        sock = self.socks[self.replicas[0]]
        wire.send(sock, wire.FETCH, {"batch": batch})
        deadline = time.monotonic() + self.timeout
        while True:
            for _, msg in self._replies(deadline, {self.replicas[0]}, f"send back batch {batch}"):
                if msg.kind == wire.FETCHED and msg.meta["batch"] == batch:
                    meta = msg.meta  # the rows are copied out of the frame, writable, as
                    rows = np.array(msg.arrays[0])  # a batch read from the local file is
                    return meta["offset"], rows, meta["t_first"], meta["t_last"]

    def _replies(self, deadline: float, waiting: set[str], what: str):
        """The messages the replicas have sent, waiting up to ``deadline`` for one."""
        left = deadline - time.monotonic()
        ready = dict(self.poller.poll(max(0, int(left * 1000)))) if left > 0 else {}
        if not ready:
            late = ", ".join(sorted(waiting))
            msg = f"storage worker(s) {late} did not {what} within {self.timeout:g} s"
            raise LogUnavailable(msg)
        for name, sock in self.socks.items():
            if sock in ready:
                yield name, wire.recv(sock)

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        """Tell the storage workers the stream is over (the message gets a second to go)."""
        for sock in self.socks.values():
            wire.send(sock, wire.STOP, block=False)
            sock.close(linger=1000)
