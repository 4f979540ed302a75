"""The commit core and the processor core driven by hand, event by event, in milliseconds.

Each test feeds the sink's state machine exactly the messages a situation produces (in the
order that makes it hard) and checks the actions and the committed model against the
single-process reference of the same batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli import datasets
from streamlec_cli.algorithms import make_algorithm
from streamlec_cli.reference import max_rel_err, run_reference
from streamlec_cli.runtime.commit import (
    Ack,
    CommitCore,
    Deliver,
    Recover,
    Replay,
    SendModels,
)
from streamlec_cli.runtime.processor import ProcessorCore
from streamlec_cli.schemes import ErasureCoded, Reactive

BATCH = 600


@pytest.fixture(scope="module")
def stream():
    return list(datasets.batches("higgs", 6 * BATCH, BATCH, seed=11))


def logreg():
    return make_algorithm("logreg", 28, lr=0.05)


class Bench:
    """A commit core and P processor cores; messages are handed over by the test."""

    def __init__(self, scheme, stream, grace=0.05, answer_timeout=0.5):
        self.algorithm = logreg()
        self.scheme = scheme
        self.rows = [self.algorithm.prepare(raw) for raw in stream]
        self.core = CommitCore(scheme, self.algorithm, 1, grace, answer_timeout)
        self.procs = {s: ProcessorCore(s, self.algorithm, scheme, 1) for s in range(6)}
        self.outputs: dict[tuple[int, int], object] = {}  # (batch, slot) -> output
        self.log: list = []
        for slot in self.procs:
            self.core.joined(slot, 1)

    def carry_out(self) -> list:
        """Models to the processors (their outputs are kept for the test to hand over)."""
        actions = self.core.take()
        self.log.extend(actions)
        for action in actions:
            if isinstance(action, SendModels):
                for slot in action.slots:
                    args = (action.first, action.models, action.reset, action.epoch)
                    self.keep(slot, self.procs[slot].models(*args))
        return actions

    def keep(self, slot, emitted) -> None:
        for batch, _, out in emitted:
            self.outputs[(batch, slot)] = out

    def send(self, b: int, dead=()) -> None:
        """The source routes batch b to the live slots and announces it."""
        sent_to = [-1 if slot in dead else 1 for slot in range(6)]
        for task in self.scheme.route(self.rows[b]):
            if task.slot not in dead:
                self.keep(task.slot, self.procs[task.slot].task(b, 0, task.role, task.rows))
        initial = self.algorithm.init_model(self.rows[0]) if b == 0 else None
        self.core.announce(b, self.core.epoch, b * BATCH, BATCH, sent_to, 0.0, initial)
        self.carry_out()

    def hand_over(self, b: int, slots, incarnation: int = 1) -> None:
        for slot in slots:
            self.core.output(b, self.core.epoch, self.outputs[(b, slot)], incarnation)

    def answer(self, actions) -> list[Recover]:
        asked = [a for a in actions if isinstance(a, Recover)]
        for ask in asked:
            partial = self.procs[ask.slot].recover(ask.batch, ask.weights)
            self.core.answer(ask.batch, ask.slot, partial, ask.round)
        return asked


def reference(stream, batches: int) -> np.ndarray:
    return run_reference(logreg(), stream[:batches]).model


def delivered(log) -> list[Deliver]:
    return [a for a in log if isinstance(a, Deliver)]


def test_a_whole_batch_sends_the_model_before_the_ack_and_the_results(stream):
    bench = Bench(ErasureCoded(6, 4, 2), stream)
    bench.send(0)
    bench.hand_over(0, range(6))
    bench.core.tick(0.0)
    kinds = [type(a) for a in bench.carry_out()]
    assert kinds == [SendModels, Ack, Deliver]
    assert max_rel_err(bench.core.window.latest, reference(stream, 1)) <= 1e-12


def test_an_output_after_its_slot_was_decoded_counts_once(stream):
    bench = Bench(ErasureCoded(6, 4, 2), stream)
    bench.send(0)
    bench.hand_over(0, [0, 2, 3, 4, 5])  # k of 6: slot 1 is final, decodable
    bench.core.tick(0.0)
    assert bench.carry_out() == []  # not known lost: a grace, no commit yet
    bench.core.tick(0.1)  # past the grace: the survivor round for slot 1's statistics
    asked = bench.answer(bench.carry_out())
    assert asked and 1 not in {a.slot for a in asked}
    bench.hand_over(0, [1])  # and now slot 1's own output arrives after all
    bench.core.tick(0.2)
    (done,) = delivered(bench.carry_out())
    assert done.result.items_lost == 0 and done.recovery_round
    assert max_rel_err(bench.core.window.latest, reference(stream, 1)) <= 1e-12


def test_a_slot_behind_costs_the_next_batches_no_grace_and_its_late_outputs_count_once(stream):
    # A slow processor (a straggler): its outputs come after their batches are final.
    bench = Bench(ErasureCoded(6, 4, 2), stream)
    bench.send(0)
    bench.hand_over(0, [0, 2, 3, 4, 5])
    bench.core.tick(0.0)
    assert delivered(bench.carry_out()) == []  # the first miss: a grace
    bench.core.tick(0.1)
    bench.answer(bench.carry_out())
    bench.core.tick(0.1)
    assert len(delivered(bench.carry_out())) == 1
    for b in range(1, 4):
        bench.send(b)
        bench.hand_over(b - 1, [1])  # slot 1's late output of the batch before: ignored
        bench.hand_over(b, [0, 2, 3, 4, 5])
        now = 1.0 + b
        bench.core.tick(now)  # behind: no grace, the survivor round at once
        bench.answer(bench.carry_out())
        bench.core.tick(now)
        (done,) = delivered(bench.carry_out())
        assert done.batch == b and done.result.items_lost == 0 and done.missing == (1,)
    bench.send(4)
    bench.hand_over(4, range(6))  # caught up: in time again
    bench.core.tick(6.0)
    (done,) = delivered(bench.carry_out())
    assert done.missing == () and 1 in bench.core.behind  # trusted again only after a while
    assert max_rel_err(bench.core.window.latest, reference(stream, 5)) <= 1e-12


def survivor_round_of_batch_1(stream) -> tuple[Bench, list[Recover]]:
    """EC(4,2): batch 0 committed, slot 2 known failed in batch 1, the others' outputs in;
    the bench and the survivor round the sink asked for at once."""
    bench = Bench(ErasureCoded(6, 4, 2), stream)
    bench.send(0)
    bench.hand_over(0, range(6))
    bench.core.tick(0.0)
    bench.carry_out()
    bench.send(1)
    bench.core.slot_failed(2, 1)
    bench.hand_over(1, [0, 1, 3, 4, 5])
    bench.core.tick(0.0)  # known lost: no grace
    return bench, [a for a in bench.carry_out() if isinstance(a, Recover)]


def test_a_known_failure_starts_the_survivor_round_at_once_and_a_missing_answer_replans(stream):
    bench, asked = survivor_round_of_batch_1(stream)
    assert asked and {a.slot for a in asked} <= {0, 1, 3, 4, 5}
    first = asked[0]
    bench.core.answer(1, first.slot, None, first.round)  # "a replacement never saw that batch"
    bench.core.tick(0.0)
    again = bench.answer(bench.carry_out())
    assert again and first.slot not in {a.slot for a in again}
    bench.core.tick(0.0)
    (done,) = delivered(bench.carry_out())
    assert done.result.items_lost == 0 and done.result.decoded == BATCH // 4
    assert max_rel_err(bench.core.window.latest, reference(stream, 2)) <= 1e-12


def test_answers_to_an_earlier_survivor_round_do_not_count_in_the_next(stream):
    # A replacement says it never saw the batch, so the sink plans the round again, with
    # other weights; the first round's other answers were already on their way and arrive
    # after it. Only answers to the current round may count.
    bench, first = survivor_round_of_batch_1(stream)
    gone = first[0]
    bench.core.answer(1, gone.slot, None, gone.round)
    bench.core.tick(0.0)
    second = [a for a in bench.carry_out() if isinstance(a, Recover)]
    assert gone.slot not in {a.slot for a in second}
    for ask in first[1:]:  # late answers to the first round
        bench.core.answer(1, ask.slot, bench.procs[ask.slot].recover(1, ask.weights), ask.round)
        bench.core.tick(0.0)
    newcomer = [a for a in second if a.slot not in {b.slot for b in first}]
    assert newcomer  # asked only in the second round: its answer comes first
    for ask in newcomer + [a for a in second if a not in newcomer]:
        bench.core.answer(1, ask.slot, bench.procs[ask.slot].recover(1, ask.weights), ask.round)
        bench.core.tick(0.0)
    (done,) = delivered(bench.carry_out())
    assert done.result.items_lost == 0
    assert max_rel_err(bench.core.window.latest, reference(stream, 2)) <= 1e-12


def test_outputs_of_a_failed_incarnation_are_ignored(stream):
    bench = Bench(ErasureCoded(6, 4, 2, attach="inputs"), stream)
    bench.send(0)
    bench.core.slot_failed(3, 1)  # declared failed (silent, fenced) ...
    bench.hand_over(0, [3])  # ... what that incarnation sent before dying does not count
    assert 3 not in bench.core.pending[0].assembler.outputs
    bench.hand_over(0, [0, 1, 2, 4, 5])
    bench.core.tick(0.0)
    (done,) = delivered(bench.carry_out())
    assert done.result.decoded == BATCH // 4 and done.missing == (3,)
    assert max_rel_err(bench.core.window.latest, reference(stream, 1)) <= 1e-12


def test_a_lost_output_rolls_back_to_the_checkpoint_once_the_slot_is_back(stream):
    bench = Bench(Reactive(6, checkpoint_every=2), stream)
    for b in range(3):  # checkpoint after batch 1
        bench.send(b)
        bench.hand_over(b, range(6))
        bench.core.tick(0.0)
        bench.carry_out()
    bench.send(3)
    bench.hand_over(3, [0, 1, 2, 3, 5])
    bench.core.slot_failed(4, 1)
    bench.core.tick(0.0)
    assert not any(isinstance(a, Replay) for a in bench.carry_out())  # slot 4 is not back
    bench.procs[4] = ProcessorCore(4, bench.algorithm, bench.scheme, 1)
    bench.core.joined(4, 2)
    bench.carry_out()
    bench.core.tick(0.0)
    (replay,) = [a for a in bench.carry_out() if isinstance(a, Replay)]
    assert (replay.batch, replay.epoch, replay.wait_for) == (2, 1, {"processor-4": 2})
    # The source replays batches 2 and 3 in the new epoch; batch 2 was delivered before.
    bench.outputs.clear()
    for b in (2, 3):
        sent_to = [1, 1, 1, 1, 2, 1]
        for task in bench.scheme.route(bench.rows[b]):
            emitted = bench.procs[task.slot].task(b, 1, task.role, task.rows)
            bench.keep(task.slot, emitted)
        bench.core.announce(b, 1, b * BATCH, BATCH, sent_to, 0.0)
        bench.carry_out()
        bench.hand_over(b, range(4))
        bench.hand_over(b, [4], incarnation=2)
        bench.hand_over(b, [5])
        bench.core.tick(0.0)
        bench.carry_out()
    replays = [(d.batch, d.replayed) for d in delivered(bench.log)]
    assert replays == [(0, False), (1, False), (2, False), (2, True), (3, False)]
    assert max_rel_err(bench.core.window.latest, reference(stream, 4)) <= 1e-12


def test_a_task_of_a_new_epoch_waits_for_the_rollbacks_models():
    algorithm, scheme = logreg(), Reactive(6)
    proc = ProcessorCore(0, algorithm, scheme, 1)
    rows = algorithm.prepare(datasets.generate("higgs", 0, 100, 1))
    models = [np.full(29, float(v)) for v in range(12)]
    proc.models(0, models[:11], reset=False, epoch=0)  # at version 10: batches 0..9 done
    # Epoch 1 replays batch 8: its task can come before the sink's reset models.
    assert proc.task(8, 1, "part", rows) == []
    (emitted,) = proc.models(8, [models[8]], reset=True, epoch=1)
    assert emitted[:2] == (8, 1)
    assert proc.task(7, 0, "part", rows) == []  # an old epoch's task: dropped
