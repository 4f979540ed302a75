"""The fault model as the README's first-time user tries it, with real processes and signals.

A warm spare (``standby-N``, listed by ``streamlec ps``) is SIGKILLed like a processor and the
run starts a new one; the source or sink cannot be SIGKILLed (a clear error says what can), and a
source ended by a signal from ``kill-worker`` is reported with that signal's name rather than
as a bare "exited with code 0". A sweep stopped by Ctrl-C says that ``--resume`` goes on with
the runs that did not finish, and it does. A sink started by hand whose run lost items exits
with 3, as ``streamlec run`` does.
"""

from __future__ import annotations

import json
import signal
import time

from test_runtime import events, live_run, streamlec

from .test_by_hand import committed, free_port_below_ephemeral, start_worker, write_spec
from .test_by_hand import finish as finish_workers
from .test_replacement import (
    assert_exact,
    finish,
    signal_worker,
    wait_for_event,
    worker_pids,
)

ITEMS = {"name": "higgs", "items": 240_000, "seed": 5}
RATE = 30_000  # about 8 s of stream: time for a second shell's commands on a busy machine


def test_a_spare_is_sigkilled_like_a_processor_and_replaced(tmp_path):
    with live_run(tmp_path, dataset=ITEMS, rate=RATE) as (run, env, out):
        refused = streamlec("kill-worker", "sink", env=env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error: the sink cannot be SIGKILLed")
        assert "processor-0" in refused.stderr and "standby-1" in refused.stderr
        assert "Traceback" not in refused.stderr
        spares = [w for w in worker_pids(env) if w.startswith("standby")]
        killed = {spare: signal_worker(env, spare) for spare in spares}  # the default, KILL
        wait_for_event(out, f"standby-{2 * len(spares)}", "spawned", timeout=30)
        summary, run_dir, stderr = finish(run, out)
    assert run.returncode == 0, stderr
    assert_exact(summary, ITEMS["items"])
    log = events(run_dir)
    for spare, pid in killed.items():
        assert any(
            e["worker"] == spare and e["event"] == "exited" and e["detail"] == f"pid {pid}, code -9"
            for e in log
        ), log


def test_a_source_ended_by_kill_worker_names_the_signal(tmp_path):
    with live_run(tmp_path, dataset=ITEMS, rate=RATE) as (run, env, _):
        signal_worker(env, "source", "TERM")
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    assert "the source exited with code 0 after kill-worker sent it SIGTERM" in stderr, stderr


def test_an_interrupted_sweep_says_how_to_go_on_and_that_works(tmp_path):
    sweep = {"batch": [6_000, 4_000]}
    with live_run(tmp_path, dataset=ITEMS, rate=RATE, sweep=sweep) as (run, env, out):
        run.send_signal(signal.SIGINT)  # Ctrl-C in the first of the two runs
        _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    assert "the same command with --resume runs only the runs that did not finish" in stderr
    again = streamlec("run", *run.args[4:], "--resume", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("spec:") == 2, again.stderr  # the interrupted run ran again
    assert len(list(out.rglob("summary.json"))) == 3  # and the interrupted one is kept


def test_a_by_hand_sink_that_lost_items_exits_3_like_a_run(tmp_path):
    spec = write_spec(
        tmp_path,
        transport="tcp",
        port=free_port_below_ephemeral(),
        scheme={"name": "none"},
        dataset={"name": "higgs", "items": 120_000, "seed": 5},
        rate=30_000,  # about 4 s of stream: the crash comes in the middle of it
    )
    run_dir = tmp_path / "run"
    names = ["sink", "source", "processor-0", "processor-1", "processor-2"]
    procs = {name: start_worker(spec, name, run_dir) for name in names}
    deadline = time.monotonic() + 60
    while committed(run_dir) < 4:
        if time.monotonic() > deadline:
            finish_workers(procs, 1)
        time.sleep(0.05)
    procs["processor-1"].kill()  # nobody replaces it: its tasks are lost
    said = finish_workers(procs, 120)
    code, out, err = said["sink"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] and summary["items_lost"] > 0, summary
    assert code == 3 and "Traceback" not in err, out + err
    assert "DIFFERS" in out


def test_a_warm_spare_cannot_be_started_by_hand(tmp_path):
    """A spare waits for its slot from a supervisor; started by hand it would wait for nothing
    (or leave at once, silently, with code 0), so the command says what can be started."""
    spec = write_spec(tmp_path)
    started = streamlec("worker", str(spec), "standby-1", "--run-dir", str(tmp_path / "run"))
    assert started.returncode == 2, started.stderr
    assert "'standby-1' is not part of this run: choose one of source, sink" in started.stderr
