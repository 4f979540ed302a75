"""Every scheme x algorithm x failure pattern: exact against the reference, nothing lost.

One table, two backends (the ``backend`` fixture): in one process, where the runtime's own
commit core and processor cores run over in-memory queues and a failure drops a slot's
messages from batch b onwards; and as real processes (``streamlec run``) with real SIGKILLs,
for a representative subset. Beyond the tolerance, both report the loss and keep the rest.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import yaml

from streamlec_cli import datasets, schemes
from streamlec_cli.algorithms import ALGORITHMS, make_algorithm
from streamlec_cli.reference import max_rel_err, run_reference
from streamlec_cli.schemes import ErasureCoded, Reactive
from streamlec_cli.schemes.base import partial_statistics
from streamlec_cli.schemes.ec import slot_sizes
from streamlec_cli.testing import SlotFailure, run_pipeline

ITEMS, BATCH = 10_007, 1_000  # an uneven last batch and stripes that need padding
TOL = 1e-9


@pytest.fixture(scope="module")
def stream():
    return list(datasets.batches("higgs", ITEMS, BATCH, seed=7))


@pytest.fixture(scope="module")
def references(stream):
    return {name: run_reference(algorithm(name), stream) for name in ALGORITHMS}


def algorithm(name):
    return make_algorithm(name, 28, **ALGORITHM_PARAMS[name])


ALGORITHM_PARAMS = {
    **{name: {"lr": 0.05} for name in ALGORITHMS},
    "kmeans": {"clusters": 5, "seed": 3},
    "mlp": {"hidden": 12, "lr": 0.05, "seed": 3},
}


def fail(*pairs):
    return [SlotFailure(slot, batch) for slot, batch in pairs]


# Each case: the spec's scheme section and the failures (slot, from batch).
EC42 = {"name": "ec", "k": 4, "r": 2}
WITHIN = {
    "none, no failure": ({"name": "none"}, []),
    "ec(4,2) linear, data 1 and 3": (EC42, [(1, 2), (3, 5)]),
    "ec(4,2) linear, both parities": (EC42, [(4, 1), (5, 1)]),
    "ec(4,2) linear, data and parity": (EC42, [(0, 0), (5, 4)]),
    "ec(4,2) inputs, data 0 and 2": ({**EC42, "attach": "inputs"}, [(0, 3), (2, 3)]),
    "ec(4,2) inputs, parity and data": (
        {**EC42, "attach": "inputs", "incremental": False},
        [(4, 2), (1, 6)],
    ),
    "ec(4,2) vandermonde": ({**EC42, "code": "vandermonde"}, [(2, 1), (3, 1)]),
    "ec(5,1) linear, data 4": ({"name": "ec", "k": 5, "r": 1}, [(4, 2)]),
    "ec(2,1) x2 groups, one per group": ({"name": "ec", "k": 2, "r": 1}, [(0, 1), (4, 3)]),
    "rep-3x, two copies of group 0": ({"name": "rep", "copies": 3}, [(0, 1), (1, 4)]),
    "rep-2x, one copy per group": ({"name": "rep", "copies": 2}, [(1, 2), (2, 2), (5, 7)]),
    "reactive, one crash": ({"name": "reactive", "checkpoint_every": 3}, [(2, 5)]),
    "reactive, two crashes": ({"name": "reactive", "checkpoint_every": 4}, [(0, 2), (5, 7)]),
}

# The same table with real processes and real SIGKILLs: a representative subset (every
# scheme, every algorithm, both attach modes), each a whole run of ``streamlec run``.
IN_PROCESSES = {
    ("ec(4,2) linear, data 1 and 3", "logreg"),
    ("ec(4,2) inputs, data 0 and 2", "svm"),
    ("ec(2,1) x2 groups, one per group", "kmeans"),
    ("rep-3x, two copies of group 0", "linreg"),
    ("reactive, two crashes", "logreg"),
    ("none, no failure", "kmeans"),
    ("ec(4,2) linear, data 1 and 3", "mlp"),
}


def make(scheme_section: dict):
    section = dict(scheme_section)
    return schemes.scheme_class(section.pop("name"))(6, **section)


@pytest.mark.parametrize(
    ("section", "processors", "at_once"),
    [
        ({"name": "ec", "k": 4, "r": 2}, 6, 2),
        ({"name": "ec", "k": 2, "r": 1}, 6, 2),  # one per group of three
        ({"name": "rep", "copies": 3}, 6, 4),  # two of each group of three
        ({"name": "none"}, 6, 0),
    ],
)
def test_tolerates_at_once_is_the_most_failures_one_batch_absorbs(section, processors, at_once):
    scheme = schemes.scheme_class(section["name"])(
        processors, **{k: v for k, v in section.items() if k != "name"}
    )
    assert scheme.tolerates_at_once == at_once
    # Spread over the groups as evenly as the scheme allows: that many are absorbed, one more
    # in any group is not.
    size = scheme.group_size(scheme.settings) or 1
    by_group = sorted(range(processors), key=lambda slot: (slot % size, slot))
    assert scheme.tolerates(by_group[:at_once])
    assert not scheme.tolerates(by_group[: at_once + processors // size])


@dataclass
class Outcome:
    """What a backend reports of one run, in the terms the table asserts."""

    items_in: int
    items_out: int
    items_lost: int
    items_duplicated: int
    decoded_items: int
    reference_err: float | None  # model and every prediction against the reference
    lost_before: int  # items lost in batches before the first failure
    rollbacks: int
    exit_code: int | None = None  # of ``streamlec run`` (processes only)


class InProcess:
    """The runtime's commit core and processor cores over in-memory queues."""

    name = "in-process"

    def __init__(self, stream, references):
        self.stream, self.references = stream, references

    def run(self, scheme_section, algo, failures, standby=True) -> Outcome:
        result = run_pipeline(make(scheme_section), algorithm(algo), self.stream, fail(*failures))
        ref = self.references[algo]
        first = min((batch for _, batch in failures), default=len(self.stream)) * BATCH
        err = max(
            max_rel_err(result.model, ref.model), max_rel_err(result.predictions, ref.predictions)
        )
        return Outcome(
            result.items_in,
            result.items_in - result.items_lost,
            result.items_lost,
            result.items_duplicated,
            result.decoded_items,
            err,
            int(np.isnan(result.predictions[:first]).sum()),
            result.rollbacks,
        )


class Processes:
    """``streamlec run`` as a user runs it: real worker processes, kills by SIGKILL."""

    name = "processes"
    ITEMS, BATCH = 72_000, 3_000

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path

    def run(self, scheme_section, algo, failures, standby=True) -> Outcome:
        """``standby``: warm spares take the slots of the killed (else cold restarts)."""
        by_batch: dict[int, list[str]] = {}
        for slot, batch in failures:
            by_batch.setdefault(batch, []).append(f"processor-{slot}")
        spec = {
            "name": "table",
            "dataset": {"name": "higgs", "items": self.ITEMS, "seed": 7},
            "algorithm": {"name": algo, **ALGORITHM_PARAMS[algo]},
            "scheme": scheme_section,
            "processors": 6,
            "batch": self.BATCH,
            "failures": [{"at_batch": b, "kill": kill} for b, kill in sorted(by_batch.items())],
            "runtime": {"warmup": 0.0, "standby": standby},
        }
        path = self.tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        out = self.tmp_path / "results"
        proc = subprocess.run(
            [sys.executable, "-m", "streamlec_cli", "run", str(path), "--out", str(out), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        found = list(out.rglob("summary.json"))
        assert len(found) == 1, proc.stdout + proc.stderr
        summary_path = found[0]
        summary = json.loads(summary_path.read_text())
        assert summary["complete"], proc.stdout + proc.stderr
        first = min((batch for _, batch in failures), default=10**9)
        with open(summary_path.parent / "batches.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["replayed"] == "0"]
        return Outcome(
            summary["items_in"],
            summary["items_out"],
            summary["items_lost"],
            summary["items_duplicated"],
            summary["decoded_items"],
            summary["reference_max_rel_err"],
            sum(int(r["items_lost"]) for r in rows if int(r["batch"]) < first),
            summary["rollbacks"],
            proc.returncode,
        )


CASES = [
    pytest.param(
        backend,
        case,
        name,
        id=f"{backend}-{case}-{name}",
    )
    for case in WITHIN
    for name in sorted(ALGORITHMS)
    for backend in ("in-process", "processes")
    if backend == "in-process" or (case, name) in IN_PROCESSES
]


@pytest.fixture
def backend(request, stream, references, tmp_path):
    """The pipeline to run a case through: in one process, or as real processes."""
    if request.param == "in-process":
        return InProcess(stream, references)
    return Processes(tmp_path)


@pytest.mark.parametrize(("backend", "case", "name"), CASES, indirect=["backend"])
def test_within_tolerance_equals_reference(backend, case, name):
    scheme_section, failures = WITHIN[case]
    got = backend.run(scheme_section, name, failures)
    context = f"{backend.name}: {got}"
    assert got.items_out == got.items_in, context
    assert got.items_lost == 0, context
    assert got.items_duplicated == 0, context
    assert got.reference_err is not None and got.reference_err <= TOL, context
    data_slots_failed = scheme_section["name"] == "ec" and any(
        slot % (scheme_section["k"] + scheme_section["r"]) < scheme_section["k"]
        for slot, _ in failures
    )
    assert (got.decoded_items > 0) == data_slots_failed, context
    assert got.exit_code in (None, 0), context
    if scheme_section["name"] == "reactive":
        if backend.name == "in-process":
            assert got.rollbacks == len(failures), context
        else:  # a kill loses the tasks in flight to it, unless it had none at that moment
            assert 1 <= got.rollbacks <= len(failures), context


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_pipeline_depth_two_matches_reference(stream, name):
    ref = run_reference(algorithm(name), stream, depth=2)
    result = run_pipeline(ErasureCoded(6, 4, 2), algorithm(name), stream, fail((1, 3)), depth=2)
    assert result.items_lost == 0
    assert max_rel_err(result.model, ref.model) <= TOL
    assert max_rel_err(result.predictions, ref.predictions) <= TOL


@pytest.mark.parametrize("attach", ["linear", "inputs"])
@pytest.mark.parametrize("when", ["slow", "late"])
def test_outputs_arriving_after_a_decode_count_once(stream, references, attach, when):
    # Slots 1 and 4 answer after the sink already rebuilt them (or planned to): each item
    # must still count exactly once in the model update.
    delayed = {when: [SlotFailure(1, 0), SlotFailure(4, 0), SlotFailure(2, 5, 7)]}
    result = run_pipeline(
        ErasureCoded(6, 4, 2, attach=attach), algorithm("logreg"), stream, **delayed
    )
    ref = references["logreg"]
    assert result.items_lost == 0
    assert max_rel_err(result.model, ref.model) <= TOL
    assert max_rel_err(result.predictions, ref.predictions) <= TOL


def test_reactive_replays_from_last_checkpoint(stream):
    result = run_pipeline(Reactive(6, 4), algorithm("logreg"), stream, fail((3, 6)))
    # Checkpoints after batches 3 and 7; a crash at batch 6 replays batches 4 and 5.
    assert result.rollbacks == 1
    assert result.replayed_batches == 2


def lost_ec_items(failed_slots, from_batch, k=4):
    sizes = [rows.shape[0] for rows in datasets.batches("higgs", ITEMS, BATCH, seed=7)]
    return sum(slot_sizes(size, k)[j] for size in sizes[from_batch:] for j in failed_slots if j < k)


BEYOND = {
    "none, one crash": ({"name": "none"}, [(2, 4)], None),
    "ec(4,2), three slots": (EC42, [(0, 3), (1, 3), (5, 3)], (0, 1)),
    "ec(4,2) inputs, three data slots": (
        {**EC42, "attach": "inputs"},
        [(0, 5), (1, 5), (2, 5)],
        (0, 1, 2),
    ),
    "rep-3x, all copies of group 1": ({"name": "rep", "copies": 3}, [(3, 2), (4, 2), (5, 2)], None),
}
BEYOND_IN_PROCESSES = {"none, one crash", "ec(4,2), three slots"}


@pytest.mark.parametrize(
    ("backend", "case"),
    [
        pytest.param(backend, case, id=f"{backend}-{case}")
        for case in BEYOND
        for backend in ("in-process", "processes")
        if backend == "in-process" or case in BEYOND_IN_PROCESSES
    ],
    indirect=["backend"],
)
def test_beyond_tolerance_reports_the_loss_and_keeps_the_rest(backend, case):
    scheme_section, failures, _ = BEYOND[case]
    # cold restarts: warm spares can refill slots before any batch misses more than it absorbs
    got = backend.run(scheme_section, "logreg", failures, standby=False)
    context = f"{backend.name}: {got}"
    assert got.items_lost > 0, context
    assert got.items_out + got.items_lost == got.items_in, context
    assert got.items_duplicated == 0, context
    assert got.lost_before == 0, context  # everything before the failure is kept
    assert got.exit_code in (None, 3), context  # streamlec run says so


@pytest.mark.parametrize("case", list(BEYOND))
def test_beyond_tolerance_in_process_loses_exactly_the_dead_slots_items(stream, references, case):
    scheme_section, failures, ec_slots = BEYOND[case]
    result = run_pipeline(make(scheme_section), algorithm("logreg"), stream, fail(*failures))
    lost_mask = np.isnan(result.predictions)
    assert result.items_lost == int(lost_mask.sum())
    first = min(batch for _, batch in failures)
    assert result.lost_batches == list(range(first, len(stream)))
    if ec_slots is not None:
        assert result.items_lost == lost_ec_items(ec_slots, first)
    # Results not lost still match the reference where the models had not yet diverged.
    ref = references["logreg"]
    np.testing.assert_allclose(
        result.predictions[: first * BATCH], ref.predictions[: first * BATCH], rtol=1e-9
    )


@pytest.mark.parametrize("incremental", [True, False])
def test_incremental_encoding_runs_after_the_data_slices_are_handed_over(incremental):
    rows = np.random.default_rng(7).standard_normal((1000, 29))
    before = rows.copy()
    route = ErasureCoded(6, 4, 2, incremental=incremental).route(rows)
    assert [next(route).role for _ in range(4)] == ["data"] * 4
    rows += 1.0  # changed while the data slices are on their way: seen only if encoded now
    parity = [task.rows for task in route]
    seen = rows if incremental else before
    expected = [t.rows for t in ErasureCoded(6, 4, 2).route(seen) if t.role == "parity"]
    for got, want in zip(parity, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("count", [1000, 997, 3])
def test_ec_route_sends_data_slices_as_views_with_the_parity_of_their_stripes(count):
    rows = np.random.default_rng(count).standard_normal((count, 29))
    scheme = ErasureCoded(6, 4, 2)
    tasks = list(scheme.route(rows))
    data = [t.rows for t in tasks if t.role == "data"]
    assert [t.slot for t in tasks] == list(range(6))
    assert all(np.shares_memory(d, rows) for d in data if d.size)  # no gather, no copy
    assert np.array_equal(np.concatenate(data), rows)  # contiguous slices in stream order
    stripes = data[0].shape[0]
    padded = np.zeros((stripes, 4, 29))
    for j, d in enumerate(data):
        padded[: d.shape[0], j] = d
    expected = scheme.code.encode(padded)
    for q, task in enumerate(t for t in tasks if t.role == "parity"):
        assert np.abs(task.rows - expected[:, q]).max() < 1e-12
    batch_encoded = ErasureCoded(6, 4, 2, incremental=False)
    for a, b in zip(tasks, batch_encoded.route(rows), strict=True):
        assert a.rows.shape == b.rows.shape
        assert np.abs(a.rows - b.rows).max(initial=0.0) < 1e-12


def test_ec_survivor_round_sends_only_the_columns_that_weight_x(stream):
    # mlp's F has 2h + 1 columns; only the first h weight X. The sink sums the other h + 1
    # over the decoded Z itself: the survivors are sent (and answer) h columns per stripe.
    alg = algorithm("mlp")
    scheme = ErasureCoded(6, 4, 2)
    rows = alg.prepare(stream[0])
    model = alg.init_model(rows)
    whole = alg.statistics(rows, alg.coefficients(model, alg.linear(model, rows)))
    assembler = scheme.assembler(alg, model, rows.shape[0])
    for task in scheme.route(rows):
        if task.slot != 2:
            assembler.add(scheme.process(alg, model, task))
    requests = assembler.recovery_requests()
    assert sorted(requests) == [0, 1, 3, 4]
    assert {weights.shape[1] for weights in requests.values()} == {alg.outputs}
    held = {task.slot: task.rows for task in scheme.route(rows)}
    for slot, weights in requests.items():
        assembler.add_recovery(slot, partial_statistics(alg, held[slot], weights))
    got = assembler.statistics()
    assert got.count == whole.count
    np.testing.assert_allclose(got.U, whole.U, rtol=1e-9, atol=1e-9 * np.abs(whole.U).max())
    np.testing.assert_allclose(got.fsum, whole.fsum, rtol=1e-9, atol=1e-9)
