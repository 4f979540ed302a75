"""The local launcher with real processes: what the supervisor, ``ps`` and ``kill-worker``
rely on from a handle (an exit wakes a poll at once, signals arrive, memory is sampled, a
handle rebuilt from a registry entry reaches the same process) and the warm spare's hand-over.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

import pytest
import zmq

from streamlec_cli.runtime.launch import (
    ExitWatch,
    LocalHandle,
    LocalLauncher,
    handle_from_record,
)
from streamlec_cli.runtime.worker import STANDBY

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
#: A stand-in for the warm spare: reads its slot from stdin, says it, then waits.
SPARE = [
    sys.executable,
    "-c",
    "import sys, time; print('got', sys.stdin.readline().strip(), flush=True); time.sleep(60)",
]


@pytest.fixture
def launcher(tmp_path):
    started: list[LocalHandle] = []
    launcher = LocalLauncher(tmp_path, tmp_path / "spec.yaml")
    original = launcher.start

    def start(*args, **kwargs):
        handle = original(*args, **kwargs)
        started.append(handle)
        return handle

    launcher.start = start
    yield launcher
    for handle in started:
        if handle.proc is not None and handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait()


def wait_for_exit(handle: LocalHandle, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while handle.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return handle.poll()


def test_exit_watch_wakes_at_a_workers_exit_and_forgets_it_once_dropped(launcher):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    handle = launcher.start("processor-0", 1, SLEEPER)
    watch = ExitWatch(sock)
    try:
        watch.follow([handle])
        assert not watch.polling  # pidfds: Linux 5.3 or later, as here and in CI
        assert watch.wait(0.05) == set()
        assert not watch.exited()
        threading.Timer(0.2, handle.signal, [signal.SIGKILL]).start()
        began = time.monotonic()
        while handle.poll() is None and time.monotonic() - began < 30:
            assert watch.wait(30.0) == set()  # no message: only the exit can end the wait
            if watch.exited():
                break
        assert handle.returncode == -signal.SIGKILL
        assert time.monotonic() - began < 10  # woken by the exit, not by the 30 s timeout
        watch.follow([])
        assert watch.fds == {}
    finally:
        watch.close()
        ctx.destroy(linger=0)


def test_spawned_worker_has_its_identity_a_log_and_one_blas_thread(launcher, tmp_path):
    env = "import os; print(os.environ['OMP_NUM_THREADS'], os.environ['PYTHONSAFEPATH'])"
    handle = launcher.start("processor-3", 2, [sys.executable, "-c", env])
    assert (handle.worker, handle.incarnation, handle.host) == ("processor-3", 2, handle.host)
    assert handle.pid == handle.proc.pid and handle.host
    assert wait_for_exit(handle) == 0
    assert (tmp_path / "logs" / "processor-3.log").read_text().split() == ["1", "1"]
    assert handle.sample() is None  # it has ended
    assert not handle.signal(signal.SIGKILL)  # reaped: nothing is signalled


def test_worker_argv_carries_the_incarnation(launcher, tmp_path):
    argv = launcher.worker_argv("processor-1", 3)
    assert argv[1:] == [
        "-m",
        "streamlec_cli",
        "worker",
        str(tmp_path / "spec.yaml"),
        "processor-1",
        "--run-dir",
        str(tmp_path),
        "--incarnation",
        "3",
    ]
    assert "--incarnation" not in launcher.worker_argv(STANDBY, None)


def test_sample_reads_memory_and_cpu_of_a_live_worker(launcher):
    handle = launcher.start("processor-0", 1, SLEEPER)
    sample = handle.sample()
    assert sample is not None
    assert sample.rss_kb > 0 and sample.peak_kb >= sample.rss_kb
    assert sample.cpu_s >= 0.0
    idle, total = launcher.machine_ticks()
    assert 0 < idle <= total


def test_handle_rebuilt_from_a_registry_record_signals_the_same_process(launcher):
    handle = launcher.start("processor-2", 4, SLEEPER)
    record = json.loads(json.dumps({**handle.record(), "state": "running"}))
    assert record["launcher"] == "local" and record["incarnation"] == 4
    rebuilt = handle_from_record("processor-2", record)
    assert (rebuilt.worker, rebuilt.pid, rebuilt.incarnation) == ("processor-2", handle.pid, 4)
    assert rebuilt.sample() is not None
    assert rebuilt.signal(signal.SIGTERM)
    assert wait_for_exit(handle) == -signal.SIGTERM
    assert not rebuilt.signal(signal.SIGKILL)  # reaped by its parent: gone


def test_a_stopped_worker_is_seen_stopped_until_it_is_resumed(launcher):
    handle = launcher.start("processor-1", 1, SLEEPER)
    rebuilt = handle_from_record("processor-1", handle.record())  # as ``ps`` sees it
    assert not handle.stopped() and not rebuilt.stopped()
    assert handle.signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while not rebuilt.stopped() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert handle.stopped() and rebuilt.stopped()
    assert handle.signal(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while rebuilt.stopped() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not handle.stopped() and not rebuilt.stopped()
    handle.signal(signal.SIGKILL)
    wait_for_exit(handle)
    assert not handle.stopped() and not rebuilt.stopped()  # gone is not stopped


def test_a_record_of_an_unknown_launcher_is_refused():
    with pytest.raises(LookupError, match="kubernetes"):
        handle_from_record("processor-0", {"launcher": "kubernetes", "pid": 1, "incarnation": 1})


def test_spare_takes_a_slot_with_its_name_and_incarnation(launcher, tmp_path):
    spare = launcher.start(STANDBY, 0, SPARE, stdin=True)
    handle = launcher.adopt(spare, "processor-2", 3)
    assert handle is not None
    assert (handle.worker, handle.incarnation, handle.pid) == ("processor-2", 3, spare.pid)
    log = tmp_path / "logs" / f"{STANDBY}.log"
    deadline = time.monotonic() + 10
    while "got" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.read_text().strip() == "got processor-2 3"
    assert handle.signal(signal.SIGKILL)
    assert wait_for_exit(handle) == -signal.SIGKILL


def test_a_dead_spare_is_not_adopted_and_a_dismissed_one_ends(launcher):
    dead = launcher.start(STANDBY, 0, SPARE, stdin=True)
    dead.signal(signal.SIGKILL)
    wait_for_exit(dead)
    assert launcher.adopt(dead, "processor-0", 2) is None
    waiting = launcher.start(
        STANDBY, 0, [sys.executable, "-c", "import sys; sys.stdin.read()"], True
    )
    launcher.dismiss(waiting)
    assert wait_for_exit(waiting) == 0
