"""The message format over real ZeroMQ sockets: arrays round-trip, taken-over connections."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from streamlec_cli.algorithms import Stats
from streamlec_cli.runtime import wire
from streamlec_cli.schemes import SlotOutput


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def test_arrays_and_outputs_round_trip(ctx, tmp_path):
    address = wire.endpoint(tmp_path, "sink")
    router = wire.router(ctx, address)
    dealer = wire.dealer(ctx, address, "processor-3")
    big = np.random.default_rng(0).standard_normal((3000, 29))  # sent zero-copy
    out = SlotOutput(3, Z=big[:, :2].copy(), stats=Stats(np.ones((28, 1)), np.ones(1), 3000))
    meta, arrays = wire.output_message(out, batch=7, epoch=1, incarnation=2)
    assert wire.send(dealer, wire.OUTPUT, meta, arrays)
    assert wire.send(dealer, wire.TASK, {"batch": 7}, [big, np.arange(5, dtype=np.int32)])
    got = wire.recv(router, router=True)
    assert (got.kind, got.sender, got.meta["batch"]) == (wire.OUTPUT, "processor-3", 7)
    parsed = wire.parse_output(got)
    np.testing.assert_array_equal(parsed.Z, out.Z)
    assert parsed.stats.count == 3000 and parsed.slot == 3
    task = wire.recv(router, router=True)
    np.testing.assert_array_equal(task.arrays[0], big)
    assert task.arrays[1].dtype == np.int32
    with pytest.raises(ValueError, match="unknown message kind"):
        wire.frames("nonsense")


def test_send_to_a_worker_that_is_not_there_returns_at_once(ctx, tmp_path):
    router = wire.router(ctx, wire.endpoint(tmp_path, "source"))
    start = time.monotonic()
    assert not wire.send(router, wire.TASK, {"batch": 0}, to="processor-9", block=False)
    assert time.monotonic() - start < 1.0


def test_a_binary_routing_id_does_not_break_the_receiver(ctx, tmp_path):
    # Messages still queued from a connection that a restarted worker took over (ROUTER
    # handover) arrive under a binary routing id that ZeroMQ made up, like this one.
    address = wire.endpoint(tmp_path, "sink")
    router = wire.router(ctx, address)
    stale = ctx.socket(zmq.DEALER)
    stale.setsockopt(zmq.LINGER, 0)
    stale.setsockopt(zmq.IDENTITY, b"\x00k\x8b\x12\x34")
    stale.connect(address)
    wire.send(stale, wire.HEARTBEAT, {"pid": 1})
    msg = wire.recv(router, router=True)
    assert msg.kind == wire.HEARTBEAT and msg.meta["pid"] == 1
    assert isinstance(msg.sender, str) and not msg.sender.startswith("processor-")


@pytest.fixture
def run_token():
    """Make this process a member of a run with a token (the default, no token, after)."""
    yield wire.use_run
    wire.use_run("")


def test_a_message_of_another_run_is_dropped_and_cannot_take_a_name_over(
    ctx, tmp_path, run_token, capfd
):
    address = wire.endpoint(tmp_path, "sink")
    run_token("aaaa")
    router = wire.router(ctx, address)
    ours = wire.dealer(ctx, address, "processor-0")
    run_token("bbbb")  # a worker of another run that reached our address by mistake
    theirs = wire.dealer(ctx, address, "processor-0")
    wire.send(theirs, wire.HELLO, {"incarnation": 7})
    wire.send(theirs, wire.HEARTBEAT, {"incarnation": 7})
    run_token("aaaa")
    time.sleep(0.2)  # both connected: a takeover by name (ROUTER handover) would be done
    wire.send(ours, wire.HELLO, {"incarnation": 1})
    got = [wire.recv(router, router=True) for _ in range(3)]
    foreign = [m for m in got if m.kind == wire.FOREIGN]
    hello = [m for m in got if m.kind == wire.HELLO]
    assert len(foreign) == 2 and foreign[0].meta == {} and foreign[0].arrays == []
    assert len(hello) == 1 and hello[0].sender == "processor-0"
    assert hello[0].meta["incarnation"] == 1
    assert capfd.readouterr().err.count("another run") == 1  # said once
    assert wire.send(router, wire.MODEL, {"first": 3}, to="processor-0")
    assert ours.poll(5000)  # ours got it, not theirs
    assert wire.recv(ours).meta == {"first": 3}
    assert not theirs.poll(200)
