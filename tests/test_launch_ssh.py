"""The ssh launcher against a real sshd on loopback: what the supervisor, ``ps`` and
``kill-worker`` rely on from a handle (the exit seen at once through the channel, signals
that arrive, memory and CPU read from the host, a handle rebuilt from its record), the warm
spare's hand-over, the worker's lifeline, the run's files sent and brought back, and
``check_host``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sshd import HOSTS, sshd
from test_runtime import events, streamlec, write_spec

from streamlec_cli.runtime.launch import handle_from_record
from streamlec_cli.runtime.launch_ssh import (
    SshHandle,
    SshLauncher,
    SshSettings,
    check_cluster,
    check_host,
    clock_offset,
)
from streamlec_cli.runtime.registry import live_runs
from streamlec_cli.runtime.supervisor import Supervisor
from streamlec_cli.runtime.wire import socket_dir
from streamlec_cli.spec import load

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> SshSettings:
    with sshd(tmp_path_factory.mktemp("sshd")) as reached:
        yield reached


@pytest.fixture
def launcher(tmp_path, settings):
    run_dir = tmp_path / "results" / "it" / "run-1"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "spec.yaml").write_text("name: it\n")
    (run_dir / "token").write_text("0123456789abcdef")
    settings = SshSettings(**{**settings.to_mapping(), "dir": str(tmp_path / "remote")})
    launcher = SshLauncher(run_dir, run_dir / "spec.yaml", HOSTS, settings)
    yield launcher
    launcher.close()  # the channels end with their master connections, and their workers


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (the "hosts" are this machine) and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_for_exit(handle: SshHandle, timeout: float = 10.0) -> int | None:
    try:
        fd = handle.exit_fd()
    except ProcessLookupError:  # ended and reaped already
        return handle.poll()
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return handle.poll()


def test_a_killed_worker_is_seen_at_once_through_its_channel(launcher):
    began = time.monotonic()
    first = launcher.start("processor-0", 1, SLEEPER, host=HOSTS[2])
    connected = time.monotonic() - began  # with the host's master connection and files
    began = time.monotonic()
    handle = launcher.start("processor-1", 1, SLEEPER, host=HOSTS[2])
    started = time.monotonic() - began  # through the master connection
    assert first.pid != handle.pid
    assert handle.host == HOSTS[2] and alive(handle.pid)
    assert handle.poll() is None
    fd = handle.exit_fd()
    try:
        assert select.select([fd], [], [], 0.2)[0] == []
        began = time.monotonic()
        assert handle.signal(signal.SIGKILL)
        assert select.select([fd], [], [], 10)[0] == [fd]
        seen = time.monotonic() - began
    finally:
        os.close(fd)
    assert handle.poll() == -signal.SIGKILL
    assert not alive(handle.pid)
    assert not handle.signal(signal.SIGTERM)  # gone: nothing is sent to a pid reused since
    print(
        f"\nssh: first worker on a host running after {connected * 1000:.0f} ms, the next "
        f"after {started * 1000:.0f} ms; kill to exit seen {seen * 1000:.0f} ms"
    )


def test_a_workers_own_exit_status_comes_back(launcher):
    handle = launcher.start("processor-1", 1, [sys.executable, "-c", "raise SystemExit(3)"])
    assert wait_for_exit(handle) == 3


def eventually(check, timeout: float = 10.0):
    """``check()`` once it is true (the sampler reads the hosts every half second)."""
    deadline = time.monotonic() + timeout
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_a_worker_that_cannot_start_says_why(launcher):
    launcher.settings = SshSettings(**{**launcher.settings.to_mapping(), "python": "/no/python"})
    with pytest.raises(OSError, match=r"cannot start a worker on host '127\.0\.0\.3'.*no/python"):
        launcher.start("processor-0", 1, SLEEPER, host=HOSTS[2])
    assert "/no/python" in (launcher.run_dir / "logs" / "processor-0.log").read_text()


def test_stop_continue_and_samples_are_read_on_the_host(launcher):
    handle = launcher.start("processor-0", 1, SLEEPER)
    sample = eventually(handle.sample)
    assert sample is not None and sample.rss_kb > 1000 and sample.peak_kb >= sample.rss_kb
    idle, total = launcher.machine_ticks()
    assert 0 < idle < total
    assert not handle.stopped()
    assert handle.signal(signal.SIGSTOP)
    assert eventually(handle.stopped)
    assert handle.poll() is None  # stopped is not ended
    assert handle.signal(signal.SIGCONT)
    assert eventually(lambda: not handle.stopped())
    assert handle.signal(signal.SIGTERM)
    assert wait_for_exit(handle) == -signal.SIGTERM
    assert eventually(lambda: handle.sample() is None)


def test_a_handle_rebuilt_from_its_record_reaches_the_same_worker(launcher):
    handle = launcher.start("source", 1, SLEEPER)
    record = json.loads(json.dumps({**handle.record(), "state": "running"}))
    assert record["launcher"] == "ssh" and record["host"] == handle.host
    rebuilt = handle_from_record("source", record)  # through the run's master connection
    assert isinstance(rebuilt, SshHandle)
    assert (rebuilt.pid, rebuilt.host, rebuilt.incarnation) == (handle.pid, handle.host, 1)
    assert rebuilt.sample() is not None
    # Without the master connection (its socket gone), it connects on its own.
    rebuilt = handle_from_record("source", {**record, "control": str(launcher.run_dir / "no")})
    assert rebuilt.signal(signal.SIGSTOP) and rebuilt.stopped()
    assert rebuilt.signal(signal.SIGKILL)
    assert wait_for_exit(handle) == -signal.SIGKILL


def test_a_spare_gets_its_slot_through_the_channel_and_keeps_its_lifeline(launcher):
    spare_argv = [
        sys.executable,
        "-c",
        "import sys, time; print('got', sys.stdin.readline().strip(), flush=True); time.sleep(60)",
    ]
    spare = launcher.start("standby-1", 0, spare_argv, spare=True)
    adopted = launcher.adopt(spare, "processor-3", 2)
    assert adopted is not None and (adopted.worker, adopted.incarnation) == ("processor-3", 2)
    assert adopted.pid == spare.pid and adopted.host == spare.host
    log = launcher.run_dir / "logs" / "standby-1.log"
    deadline = time.monotonic() + 10
    while "got processor-3 2" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "got processor-3 2" in log.read_text()
    assert alive(adopted.pid)  # the slot line did not end its lifeline
    adopted.proc.kill()  # the supervisor's side of the channel is gone: the worker ends
    deadline = time.monotonic() + 10
    while alive(adopted.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(adopted.pid)


def test_the_runs_files_go_to_the_host_and_what_the_worker_wrote_comes_back(launcher):
    (launcher.run_dir / "stream.f64").write_bytes(b"\0" * 64)
    writes = [
        sys.executable,
        "-c",
        "import pathlib; t = pathlib.Path('token').read_text(); "
        "pathlib.Path('events.csv').write_text('time,worker,event,detail\\n2.5,sink,b,\\n'); "
        "pathlib.Path('sink.json').write_text(t); "
        "pathlib.Path('staged').write_text(str(pathlib.Path('stream.f64').exists()))",
    ]
    sink = launcher.start("sink", 1, writes)
    source = launcher.start("source", 1, writes)
    assert (sink.host, source.host) == (HOSTS[0], HOSTS[1])  # each on a host of its own
    assert wait_for_exit(sink) == 0 and wait_for_exit(source) == 0
    (launcher.run_dir / "staged").write_text("kept")  # a local file is never overwritten
    (launcher.run_dir / "events.csv").write_text("time,worker,event,detail\n1.0,a,a,\n3.0,c,c,\n")
    remote = [Path(launcher.remote_dir(host)) for host in (sink.host, source.host)]
    assert all(path.is_dir() for path in remote)
    launcher.finish()
    assert (launcher.run_dir / "sink.json").read_text() == "0123456789abcdef"
    assert (launcher.run_dir / "staged").read_text() == "kept"
    happened = [line.split(",")[2] for line in (launcher.run_dir / "events.csv").open()]
    assert happened == ["event", "a", "b", "b", "c"]  # both hosts' events, in time order
    assert (launcher.run_dir / "stream.f64").stat().st_size == 64
    assert not any(path.exists() for path in remote)  # nothing left on the hosts
    assert not launcher.masters and not launcher.control_dir.exists()


def test_named_hosts_are_reached_at_their_addresses(tmp_path, settings):
    """Emulated hosts are named h1 .. hN: ssh goes to the address each one has."""
    addresses = {"h1": HOSTS[0], "h2": HOSTS[1]}
    settings = SshSettings(**{**settings.to_mapping(), "dir": str(tmp_path / "remote")})
    launcher = SshLauncher(
        tmp_path / "it" / "run-1", tmp_path / "spec.yaml", ["h1", "h2"], settings, addresses
    )
    try:
        handle = launcher.start("processor-0", 1, SLEEPER, host="h2")
        assert handle.host == "h2" and alive(handle.pid)
        rebuilt = handle_from_record("processor-0", {**handle.record(), "control": None})
        assert rebuilt.host == "h2" and rebuilt.signal(signal.SIGKILL)
        assert wait_for_exit(handle) == -signal.SIGKILL
    finally:
        launcher.close()


def test_a_hosts_clock_offset_is_measured_within_its_round_trip(settings):
    offset, rtt = clock_offset(settings, HOSTS[1])  # the same clock: no offset beyond the trip
    assert 0 < rtt < 10 and abs(offset) <= rtt / 2


def test_check_host_says_reachable_with_the_same_version(settings):
    ok, message = check_host(settings, HOSTS[1])
    assert ok, message
    assert message.startswith(f"{HOSTS[1]}: reachable in ")


def test_check_cluster_checks_every_host_once(settings):
    section = SimpleNamespace(hosts=(*HOSTS, HOSTS[0]), ssh=tuple(settings.to_mapping().items()))
    found = check_cluster(SimpleNamespace(cluster=section))
    assert [host for host, _, _ in found] == HOSTS
    assert all(ok for _, ok, _ in found), found


def test_check_host_says_why_a_host_cannot_be_used(settings):
    ok, message = check_host(SshSettings(**{**settings.to_mapping(), "port": 1}), HOSTS[0])
    assert not ok and "unreachable by ssh" in message
    python = SshSettings(**{**settings.to_mapping(), "python": "/bin/false"})
    ok, message = check_host(python, HOSTS[0])
    assert not ok and "/bin/false has no streamlec" in message


def test_a_supervised_run_through_ssh_absorbs_two_kills_exactly(tmp_path, settings, monkeypatch):
    """EC(4,2) logistic regression, every worker on a "host" reached through sshd, two
    processors SIGKILLed at different batches: nothing lost or twice, the reference matched,
    the kills and replacements in events.csv, the sink's files brought back, nothing left
    running and nothing left on the hosts. (The supervisor is given the ssh launcher here;
    ``streamlec run`` chooses it from the spec's ``cluster`` section.)"""
    monkeypatch.setenv("STREAMLEC_RUNTIME_DIR", str(tmp_path / "registry"))
    kills = [{"at_batch": 8, "kill": ["processor-1"]}, {"at_batch": 16, "kill": ["processor-4"]}]
    # Open loop, 9 s of stream: the kills come mid-stream however long the spawns took.
    spec = load(write_spec(tmp_path, transport="tcp", rate=16_000, failures=kills))[0]
    supervisor = Supervisor(spec, tmp_path / "results")
    remote = tmp_path / "remote"
    settings = SshSettings(**{**settings.to_mapping(), "dir": str(remote)})
    run_dir = supervisor.run_dir
    supervisor.launcher = SshLauncher(run_dir, run_dir / "spec.yaml", HOSTS, settings)
    # Meanwhile, from another shell: ``kill-worker`` kills a third processor through a handle
    # rebuilt from the registry, and ``ps`` shows the workers on their hosts.
    seen_by_ps: list[str] = []
    user = threading.Thread(target=kill_then_ps, args=("processor-2", seen_by_ps), daemon=True)
    user.start()
    summary = supervisor.run()
    user.join(30)
    assert seen_by_ps[0].startswith("sent SIGKILL to processor-2"), seen_by_ps
    assert any("processor-" in line and "ssh on 127.0.0.3" in line for line in seen_by_ps)
    context = json.dumps(summary, indent=1)
    assert summary["complete"] and summary["items_in"] == 144_000, context
    assert summary["items_lost"] == 0 and summary["items_duplicated"] == 0, context
    assert summary["reference"]["matches"], context
    assert summary["reference"]["max_rel_err"] <= 1e-9, context
    killed = sorted(f["worker"] for f in summary["failures"])
    assert killed == ["processor-1", "processor-2", "processor-4"], context
    seen = [(e["event"], e["worker"]) for e in events(run_dir)]
    for worker in ("processor-1", "processor-4"):
        assert ("kill", worker) in seen and ("restarted", worker) in seen, seen
    assert ("restarted", "processor-2") in seen, seen
    assert ("all workers up", "sink") in seen and ("finished", "sink") in seen, seen  # the sink's
    times = [float(e["time"]) for e in events(run_dir)]
    assert times == sorted(times)
    for name in ("batches.csv", "timeline.csv", "sink.json", "summary.json"):
        assert (run_dir / name).exists(), name
    assert "processor-0" in (run_dir / "logs" / "processor-0.log").read_text()
    clocks = json.loads((run_dir / "meta.json").read_text())["clock_offset"]
    assert sorted(clocks) == ["sink", "source"], clocks  # compared once, at the start
    for clock in clocks.values():  # every "host" reads this machine's clock
        assert abs(clock["offset_s"]) <= clock["round_trip_s"] / 2 + 0.01, clocks
    assert ("clock", "sink") in seen and ("clock", "source") in seen, seen
    assert not running_in(remote) and not any(remote.rglob("*.*"))
    assert not running_in(supervisor.launcher.control_dir)


#: A supervisor with the ssh launcher, in a process of its own: spec, results, settings, hosts.
SUPERVISE = """
import json, sys
from pathlib import Path
from streamlec_cli.runtime.launch_ssh import SshLauncher, SshSettings
from streamlec_cli.runtime.supervisor import Supervisor
from streamlec_cli.runtime.wire import socket_dir
from streamlec_cli.spec import load
spec = load(sys.argv[1])[0]
supervisor = Supervisor(spec, Path(sys.argv[2]))
settings = SshSettings.from_mapping(json.loads(sys.argv[3]))
run_dir = supervisor.run_dir
hosts = json.loads(sys.argv[4])
supervisor.launcher = SshLauncher(run_dir, run_dir / "spec.yaml", hosts, settings)
supervisor.run()
"""


def test_workers_on_the_hosts_end_with_a_killed_supervisor(tmp_path, settings):
    remote = tmp_path / "remote"
    settings = SshSettings(**{**settings.to_mapping(), "dir": str(remote)})
    spec = write_spec(tmp_path, transport="tcp", rate=8_000)  # 18 s of stream
    env = {**os.environ, "STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")}
    args = [str(spec), str(tmp_path / "results"), json.dumps(settings.to_mapping())]
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE, *args, json.dumps(HOSTS)], env=env
    )
    try:
        assert eventually(lambda: len(running_in(remote)) >= 8, timeout=60), running_in(remote)
    finally:
        supervisor.kill()
        supervisor.wait()
    assert eventually(lambda: not running_in(remote)), running_in(remote)
    [run_dir] = (tmp_path / "results" / "it").iterdir()
    assert list(socket_dir(run_dir).glob("ssh-*"))  # the master connections' sockets
    streamlec("ps", env={"STREAMLEC_RUNTIME_DIR": str(tmp_path / "registry")})
    assert not socket_dir(run_dir).exists()  # the next command cleans up after the dead one


def kill_then_ps(worker: str, said: list[str], timeout: float = 60) -> None:
    """Once the run lists ``worker``: ``streamlec kill-worker`` it, then ``streamlec ps``
    (what they printed goes to ``said``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(worker in run.workers for run in live_runs()):
            sent = streamlec("kill-worker", worker)
            said.append(sent.stdout + sent.stderr)
            said.extend(streamlec("ps").stdout.splitlines())
            return
        time.sleep(0.05)


def running_in(where: Path) -> list[str]:
    """Processes working in ``where`` or naming it (the "hosts" are this machine)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd.startswith(str(where)) or str(where) in args:
            found.append(f"{proc.name}: {args}")
    return found
