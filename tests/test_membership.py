"""The membership, fed by hand (it is sans-IO): which incarnation of a slot is alive and when
a failure is decided, at most once per incarnation."""

from __future__ import annotations

from streamlec_cli.runtime.membership import Membership


def test_an_exit_is_one_verdict_and_never_a_second():
    members = Membership(timeout=0.5)
    members.placed("processor-1", 1)
    verdict = members.exited("processor-1", 1, "signal 9")
    assert verdict is not None
    assert (verdict.worker, verdict.incarnation, verdict.how) == ("processor-1", 1, "signal 9")
    assert not verdict.silent
    assert members.exited("processor-1", 1, "signal 9") is None
    assert not members.alive("processor-1")


def test_silence_past_the_timeout_is_a_verdict_to_fence():
    members = Membership(timeout=0.5)
    members.placed("processor-0", 1)
    members.heard("processor-0", 1, now=10.0)
    now = 10.0
    verdicts = []
    while now < 10.45:  # silent but within the timeout, watched every 0.1 s
        now += 0.1
        verdicts += members.expire(now)
    assert verdicts == []
    now += 0.1
    (verdict,) = members.expire(now)
    assert (verdict.worker, verdict.incarnation, verdict.silent) == ("processor-0", 1, True)
    assert members.expire(now + 1.0) == []  # decided once
    assert members.exited("processor-0", 1, "signal 9") is None  # its fencing is no news


def test_heartbeats_keep_an_incarnation_alive():
    members = Membership(timeout=0.5)
    members.placed("processor-0", 1)
    for step in range(50):
        now = step * 0.1
        members.heard("processor-0", 1, now)
        assert members.expire(now) == []
    assert members.alive("processor-0")


def test_a_slot_never_heard_from_is_not_accused_of_silence():
    members = Membership(timeout=0.5)
    members.placed("processor-0", 1)
    assert [members.expire(t / 10) for t in range(100)] == [[]] * 100


def test_a_paused_detector_accuses_nobody_of_its_own_pause():
    members = Membership(timeout=0.5)
    members.placed("processor-0", 1)
    members.heard("processor-0", 1, now=0.0)
    assert members.expire(0.1) == []
    # The detector itself was stopped for 30 s: no expire call, no heartbeat read.
    assert members.expire(30.1) == []
    members.heard("processor-0", 1, now=30.15)  # its heartbeats were queued meanwhile
    assert members.expire(30.2) == []
    assert members.alive("processor-0")


def test_silence_after_the_pause_still_counts():
    members = Membership(timeout=0.5)
    members.placed("processor-0", 1)
    members.heard("processor-0", 1, now=0.0)
    members.expire(0.1)
    members.expire(30.1)  # the pause is forgiven ...
    now, verdicts = 30.1, []
    while not verdicts and now < 32.0:  # ... but not the silence that follows it
        now += 0.1
        verdicts = members.expire(now)
    assert [v.worker for v in verdicts] == ["processor-0"]
    assert now < 30.1 + 0.5 + 0.25


def test_a_stale_incarnations_heartbeat_does_not_refresh_the_new_one():
    members = Membership(timeout=0.5)
    members.placed("processor-2", 1)
    members.heard("processor-2", 1, now=0.0)
    members.exited("processor-2", 1, "signal 9")
    members.placed("processor-2", 2)
    members.heard("processor-2", 2, now=0.1)
    now, verdicts = 0.1, []
    while not verdicts and now < 2.0:
        now += 0.1
        members.heard("processor-2", 1, now)  # queued beats of the dead one keep coming
        verdicts = members.expire(now)
    assert [(v.worker, v.incarnation) for v in verdicts] == [("processor-2", 2)]
    assert now < 0.1 + 0.5 + 0.25


def test_a_late_exit_of_a_replaced_incarnation_is_still_its_own_verdict():
    members = Membership(timeout=0.5)
    members.placed("processor-2", 1)
    members.placed("processor-2", 2)
    verdict = members.exited("processor-2", 1, "signal 9")
    assert verdict is not None and verdict.incarnation == 1
    assert members.alive("processor-2")  # the new incarnation is untouched
    assert members.current("processor-2") == 2


def test_an_incarnation_placed_with_a_deadline_fails_if_it_never_speaks():
    members = Membership(timeout=0.5)
    members.placed("processor-1", 2, expect_by=1.0)  # a warm spare: it should answer at once
    assert [members.expire(t / 10) for t in range(11)] == [[]] * 11
    (verdict,) = members.expire(1.05)
    assert (verdict.worker, verdict.incarnation, verdict.silent) == ("processor-1", 2, True)
    members.placed("processor-1", 3, expect_by=2.0)
    members.heard("processor-1", 3, now=1.2)  # it spoke in time: silence rules from now on
    assert members.expire(1.3) == [] and members.expire(1.6) == []
    assert members.alive("processor-1")


def test_the_group_is_whole_once_every_current_incarnation_was_heard_from():
    members = Membership(timeout=0.5)
    for worker in ("processor-0", "processor-1"):
        members.placed(worker, 1)
        members.heard(worker, 1, now=0.0)
    assert members.whole()
    members.exited("processor-1", 1, "signal 9")
    assert not members.whole()
    members.placed("processor-1", 2)
    assert not members.whole()  # started, not yet heard from
    members.heard("processor-1", 2, now=0.3)
    assert members.whole()


def test_a_forgotten_slot_is_neither_watched_nor_part_of_the_group():
    members = Membership(timeout=0.5)
    members.placed("standby-1", 0)
    members.heard("standby-1", 0, now=0.0)
    members.forget("standby-1")  # it took a processor's slot: its spare heartbeats stop
    assert members.expire(0.1) == [] and members.expire(5.0) == []
    assert members.whole()
