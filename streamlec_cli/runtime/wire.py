"""The message format, in one place: every kind of message the workers exchange.

A message is a list of ZeroMQ frames: ``[identity] header buffer...``. The header is a small
JSON object ``{"kind": ..., "meta": {...}, "arrays": [[dtype, shape], ...]}``; each array
follows as one raw frame, sent without copying and received as a numpy view of the frame
(pyzmq's zero-copy serialisation; nothing is pickled).

Topology (``endpoint`` builds the addresses):

* the sink binds a ROUTER at ``sink``; the source, every processor and the supervisor connect a
  DEALER with their worker name as identity. Outputs, recovery answers, heartbeats and batch
  announcements flow in; models, recovery requests, acks and progress flow out.
* the source binds a ROUTER at ``source``; every processor connects a DEALER with its name as
  identity and receives its tasks there.
* with the reactive scheme's ``log: storage``, each storage worker binds a ROUTER at
  ``storage-I``; the source connects a DEALER to each, sends every batch (LOG) and counts it
  logged once every one has answered LOGGED; on a replay it asks one of them (FETCH) and gets
  the rows back (FETCHED). The source tells them STOP when it stops.
* the supervisor binds a ROUTER at ``supervisor``; every processor (and every warm spare
  while it waits, as ``standby-N`` with incarnation 0) connects a DEALER with its name as
  identity and sends HELLO (pid, incarnation) once, then a HEARTBEAT (incarnation) every
  ``runtime.heartbeat_interval``: the supervisor alone decides that a processor failed.

ROUTER sockets are mandatory-routing with handover: a message to a dead worker fails at once
(the sender skips it and never blocks) and a restarted worker takes its name over.

Every process belongs to one run (``use_run``): its header says the run's token, its DEALERs
name themselves ``<worker>@<token>``, and a message of another run is dropped on receipt
(``recv`` returns it as kind ``FOREIGN``, which no receiver acts on). So a worker of a
neighbouring run that reaches our port by mistake neither joins this run nor takes a worker's
name over, and nothing of ours reaches it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

from ..algorithms import Stats
from ..schemes import SlotOutput

# Message kinds -------------------------------------------------------------------------------
HELLO = "hello"  # worker -> sink/source/supervisor: I am up (meta: pid, incarnation)
HEARTBEAT = "heartbeat"  # processor or spare -> supervisor: I am alive (meta: incarnation)
TASK = "task"  # source -> processor: rows of one batch for one slot (meta: batch, role)
BATCH = "batch"  # source -> sink: a batch was ingested (meta: batch, offset, count, t0, t1)
END = "end"  # source -> sink: the stream is over (meta: batches, items)
OUTPUT = "output"  # processor -> sink: Z / stats / rows of one slot for one batch
RECOVER = "recover"  # sink -> processor: weights of the EC recovery round (meta: batch, round)
# processor -> sink: answer to RECOVER (meta: batch, slot, round; missing: it has no such batch)
PARTIAL = "partial"
MODEL = "model"  # sink -> processor: model versions (meta: first, reset, epoch), arrays: models
ACK = "ack"  # sink -> source: batches up to meta.batch are final (flow control)
REPLAY = "replay"  # sink -> source: reactive recovery, resend from meta.batch
PROGRESS = "progress"  # sink -> supervisor: meta: batch, items_out, ...
DIED = "died"  # supervisor -> sink: a processor failed (meta: worker, incarnation, how)
RESTARTED = "restarted"  # supervisor -> sink: a worker was restarted
DONE = "done"  # sink -> supervisor: results written (meta: summary)
STOP = "stop"  # supervisor/sink -> anyone: shut down now
LOG = "log"  # source -> storage: append this batch (meta: batch, offset, t_first, t_last)
LOGGED = "logged"  # storage -> source: the batch is on its disk, fsynced (meta: batch, bytes)
FETCH = "fetch"  # source -> storage: send a logged batch back (meta: batch)
FETCHED = "fetched"  # storage -> source: answer to FETCH (meta as LOG), arrays: the rows
FOREIGN = "foreign"  # never sent: what ``recv`` makes of a message of another run (dropped)

KINDS = frozenset(
    {
        HELLO,
        HEARTBEAT,
        TASK,
        BATCH,
        END,
        OUTPUT,
        RECOVER,
        PARTIAL,
        MODEL,
        ACK,
        REPLAY,
        PROGRESS,
        DIED,
        RESTARTED,
        DONE,
        STOP,
        LOG,
        LOGGED,
        FETCH,
        FETCHED,
    }
)


# Plain ints: pyzmq's flag enums cost an object per combination, on every frame.
_SNDMORE, _NOBLOCK = int(zmq.SNDMORE), int(zmq.NOBLOCK)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)


@dataclass
class Message:
    kind: str
    meta: dict = field(default_factory=dict)
    arrays: list[np.ndarray] = field(default_factory=list)
    sender: str | None = None  # identity frame, on ROUTER sockets


# The run this process belongs to ------------------------------------------------------------

_run = {"token": "", "suffix": "", "warned": False}


def use_run(token: str) -> None:
    """This process belongs to the run ``token`` (a supervisor calls it once per run, a
    worker once): every message it sends from now on carries the token, and every message
    of another run it receives is dropped. Sockets made before the call keep their names."""
    _run.update(token=token, suffix=f"@{token}" if token else "", warned=False)


def _foreign(token: object, sender: str | None) -> Message:
    """A message of another run: dropped, and said once in this process's output."""
    if not _run["warned"]:
        _run["warned"] = True
        who = f" from {sender!r}" if sender else ""
        print(
            f"ignoring messages of another run (token {token!r}{who}; this run's token is "
            f"{_run['token']!r}): two runs share an address",
            file=sys.stderr,
            flush=True,
        )
    return Message(FOREIGN, {}, [], sender)


def frames(kind: str, meta: dict | None = None, arrays: Sequence[np.ndarray] = ()) -> list:
    """The frames of a message (without identity)."""
    if kind not in KINDS:
        msg = f"unknown message kind {kind!r}"
        raise ValueError(msg)
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = {
        "kind": kind,
        "run": _run["token"],
        "meta": meta or {},
        "arrays": [[a.dtype.str, list(a.shape)] for a in arrays],
    }
    return [json.dumps(header, separators=(",", ":")).encode(), *arrays]


def send(
    sock: zmq.Socket,
    kind: str,
    meta: dict | None = None,
    arrays: Sequence[np.ndarray] = (),
    to: str | None = None,
    block: bool = True,
) -> bool:
    """Send one message; on a ROUTER give ``to``. Returns False if it could not go right now
    (peer gone or queue full with ``block=False``) instead of blocking."""
    return send_frames(sock, frames(kind, meta, arrays), to, block)


def send_frames(sock: zmq.Socket, parts: list, to: str | None = None, block: bool = True) -> bool:
    """``send`` of frames built once by ``frames`` (one message to many peers)."""
    flags = 0 if block else _NOBLOCK
    if to is not None:
        parts = [(to + _run["suffix"]).encode(), *parts]
    last = len(parts) - 1
    try:
        for i, part in enumerate(parts):
            sock.send(part, flags if i == last else flags | _SNDMORE, copy=False)
    except zmq.Again:
        return False
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EHOSTUNREACH:
            return False
        raise
    return True


def recv(sock: zmq.Socket, router: bool = False, block: bool = True) -> Message:
    """Receive one message; arrays are read-only views of the received frames. A message of
    another run comes back as kind ``FOREIGN``, without meta or arrays.

    With ``block=False`` raises ``zmq.Again`` when nothing is waiting."""
    frame = sock.recv(0 if block else _NOBLOCK, copy=False)
    parts = [frame]
    while frame.more:  # the rest of a message is there once its first frame is
        frame = sock.recv(copy=False)
        parts.append(frame)
    sender = None
    if router:
        # A worker's name; or, for messages still queued from a connection that a restarted
        # worker took over (ROUTER_HANDOVER), the binary routing id ZeroMQ gave the old one.
        sender = parts[0].bytes.decode(errors="backslashreplace")
        suffix = _run["suffix"]
        if suffix and sender.endswith(suffix):
            sender = sender[: -len(suffix)]
        parts = parts[1:]
    header = json.loads(parts[0].bytes)
    if header.get("run", "") != _run["token"]:
        return _foreign(header.get("run"), sender)
    arrays = [
        np.frombuffer(part.buffer, dtype=np.dtype(dtype)).reshape(shape)
        for (dtype, shape), part in zip(header["arrays"], parts[1:], strict=True)
    ]
    return Message(header["kind"], header["meta"], arrays, sender)


def readable(sock: zmq.Socket) -> bool:
    """Whether a whole message waits at ``sock`` (no poll, no exception when none does)."""
    return bool(sock.get(_EVENTS) & _POLLIN)


# Endpoints and sockets -----------------------------------------------------------------------

DEFAULT_PORTS = {"sink": 0, "source": 1, "supervisor": 2}
#: ``storage-I`` listens at the base port + ``STORAGE_PORT`` + I (after the three above).
STORAGE_PORT = 3


def port_count(storage: int = 0) -> int:
    """How many consecutive ports a tcp run uses, with ``storage`` storage workers."""
    return len(DEFAULT_PORTS) + storage


def port_offset(name: str) -> int:
    """Where ``name``'s port is, counted from the run's base port."""
    if name.startswith("storage-"):
        return STORAGE_PORT + int(name.rsplit("-", 1)[1])
    return DEFAULT_PORTS[name]


def socket_dir(run_dir: Path) -> Path:
    """Where a run's ipc sockets live: a short private directory named after the run
    directory, so that a socket's path stays under the kernel's 107 bytes however long the
    run directory's path is."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"streamlec-ipc-{os.getuid()}" / digest


def endpoint(
    run_dir: Path, name: str, transport: str = "ipc", host: str = "127.0.0.1", base_port: int = 0
) -> str:
    """Address of the ``sink``, ``source``, ``supervisor`` or ``storage-I`` ROUTER."""
    if transport == "ipc":
        return f"ipc://{socket_dir(run_dir) / name}"
    return f"tcp://{host}:{base_port + port_offset(name)}"


def bind_address(address: str) -> str:
    """What the owner binds: for tcp, the address itself when it is an IP address (the one the
    others reach it at, and nothing else of the host), every interface on the port when it
    is a host name (ZeroMQ binds no names)."""
    if address.startswith("tcp://"):
        host, port = address[len("tcp://") :].rsplit(":", 1)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return f"tcp://*:{port}"
    return address


def bound(sock: zmq.Socket) -> str:
    """The address a socket was bound at (``router`` may fall back to every interface)."""
    return sock.getsockopt_string(zmq.LAST_ENDPOINT).replace("tcp://0.0.0.0:", "tcp://*:")


HWM = 64  # messages queued per peer before a send would block
RCV_HWM = 4096  # messages queued at a receiver before its senders are held back
#: Frames below this many bytes are copied into the message, larger ones sent zero-copy:
#: handing a buffer to ZeroMQ's garbage collector costs more than copying a small one.
COPY_THRESHOLD = 1 << 18


class CannotListen(RuntimeError):
    """A worker cannot bind its address (most often: another run or program holds the port)."""


def router(ctx: zmq.Context, address: str) -> zmq.Socket:
    """A ROUTER bound at ``address``; ``CannotListen`` says why it could not be."""
    if address.startswith("ipc://"):
        Path(address[len("ipc://") :]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    sock = ctx.socket(zmq.ROUTER)
    sock.copy_threshold = COPY_THRESHOLD
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, RCV_HWM)
    where = bind_address(address)
    try:
        try:
            sock.bind(where)
        except zmq.ZMQError as exc:
            if exc.errno != errno.EADDRNOTAVAIL or not where.startswith("tcp://"):
                raise
            # not an address of this host (one the others reach through NAT, say): the port
            # on every interface, as for a host name
            where = "tcp://*:" + where.rsplit(":", 1)[1]
            sock.bind(where)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (
                "; another run or program listens on this port: stop it, or give the spec "
                "another `port:` (the sink uses port, the source port+1, the supervisor port+2)"
            )
        raise CannotListen(f"cannot listen at {where}: {exc.strerror}{hint}") from None
    return sock


def dealer(ctx: zmq.Context, address: str, identity: str) -> zmq.Socket:
    sock = ctx.socket(zmq.DEALER)
    sock.copy_threshold = COPY_THRESHOLD
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IDENTITY, (identity + _run["suffix"]).encode())
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, RCV_HWM)
    sock.connect(address)
    return sock


def remove_socket_files(run_dir: Path) -> None:
    """Remove the ipc socket files of a run and their directory (no leftovers)."""
    folder = socket_dir(run_dir)
    for path in folder.glob("*"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        folder.rmdir()


# Slot outputs --------------------------------------------------------------------------------


def output_message(
    out: SlotOutput, batch: int, epoch: int, incarnation: int
) -> tuple[dict, list[np.ndarray]]:
    """Meta and arrays of an OUTPUT message for a ``SlotOutput``."""
    present: dict[str, np.ndarray] = {}
    if out.Z is not None:
        present["Z"] = out.Z
    if out.stats is not None:
        present["U"] = out.stats.U
        present["fsum"] = out.stats.fsum
    if out.rows is not None:
        present["rows"] = out.rows
    if out.results is not None:
        present["results"] = out.results
    meta = {
        "batch": batch,
        "slot": out.slot,
        "epoch": epoch,
        "incarnation": incarnation,
        "fields": list(present),
        "count": out.stats.count if out.stats is not None else 0,
    }
    return meta, list(present.values())


def parse_output(message: Message) -> SlotOutput:
    """The ``SlotOutput`` carried by an OUTPUT message."""
    got = dict(zip(message.meta["fields"], message.arrays, strict=True))
    stats = None
    if "U" in got:
        stats = Stats(got["U"], got["fsum"], int(message.meta["count"]))
    return SlotOutput(
        message.meta["slot"],
        Z=got.get("Z"),
        stats=stats,
        rows=got.get("rows"),
        results=got.get("results"),
    )
