"""The scheme logic end to end in one process: exact against the reference, nothing lost.

A failure here is "slot j's outputs are missing from batch b onwards"; the distributed
runtime runs the same scheme code with real processes and real SIGKILLs.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli import datasets
from streamlec_cli.algorithms import ALGORITHMS, make_algorithm
from streamlec_cli.reference import max_rel_err, run_reference
from streamlec_cli.schemes import ErasureCoded, NoScheme, Reactive, Replication
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
    params = {"lr": 0.05} if name != "kmeans" else {"clusters": 5, "seed": 3}
    return make_algorithm(name, 28, **params)


def fail(*pairs):
    return [SlotFailure(slot, batch) for slot, batch in pairs]


WITHIN = {
    "none, no failure": (lambda: NoScheme(6), []),
    "ec(4,2) linear, data 1 and 3": (lambda: ErasureCoded(6, 4, 2), fail((1, 2), (3, 5))),
    "ec(4,2) linear, both parities": (lambda: ErasureCoded(6, 4, 2), fail((4, 1), (5, 1))),
    "ec(4,2) linear, data and parity": (lambda: ErasureCoded(6, 4, 2), fail((0, 0), (5, 4))),
    "ec(4,2) inputs, data 0 and 2": (
        lambda: ErasureCoded(6, 4, 2, attach="inputs"),
        fail((0, 3), (2, 3)),
    ),
    "ec(4,2) inputs, parity and data": (
        lambda: ErasureCoded(6, 4, 2, attach="inputs", incremental=False),
        fail((4, 2), (1, 6)),
    ),
    "ec(4,2) vandermonde": (
        lambda: ErasureCoded(6, 4, 2, code="vandermonde"),
        fail((2, 1), (3, 1)),
    ),
    "ec(5,1) linear, data 4": (lambda: ErasureCoded(6, 5, 1), fail((4, 2))),
    "ec(2,1) x2 groups, one per group": (lambda: ErasureCoded(6, 2, 1), fail((0, 1), (4, 3))),
    "rep-3x, two copies of group 0": (lambda: Replication(6, 3), fail((0, 1), (1, 4))),
    "rep-2x, one copy per group": (lambda: Replication(6, 2), fail((1, 2), (2, 2), (5, 7))),
    "reactive, one crash": (lambda: Reactive(6, 3), fail((2, 5))),
    "reactive, two crashes": (lambda: Reactive(6, 4), fail((0, 2), (5, 7))),
}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@pytest.mark.parametrize("case", list(WITHIN))
def test_within_tolerance_equals_reference(stream, references, name, case):
    make, failures = WITHIN[case]
    scheme = make()
    result = run_pipeline(scheme, algorithm(name), stream, failures)
    ref = references[name]
    assert result.items_in == ITEMS
    assert result.items_lost == 0
    assert result.items_duplicated == 0
    assert max_rel_err(result.model, ref.model) <= TOL
    assert max_rel_err(result.predictions, ref.predictions) <= TOL
    data_slots_failed = isinstance(scheme, ErasureCoded) and any(
        f.slot % scheme.n < scheme.k for f in failures
    )
    assert (result.decoded_items > 0) == data_slots_failed
    if isinstance(scheme, Reactive):
        assert result.rollbacks == len(failures)


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
    "none, one crash": (lambda: NoScheme(6), fail((2, 4)), None),
    "ec(4,2), three slots": (lambda: ErasureCoded(6, 4, 2), fail((0, 3), (1, 3), (5, 3)), (0, 1)),
    "ec(4,2) inputs, three data slots": (
        lambda: ErasureCoded(6, 4, 2, attach="inputs"),
        fail((0, 5), (1, 5), (2, 5)),
        (0, 1, 2),
    ),
    "rep-3x, all copies of group 1": (
        lambda: Replication(6, 3),
        fail((3, 2), (4, 2), (5, 2)),
        None,
    ),
}


@pytest.mark.parametrize("case", list(BEYOND))
def test_beyond_tolerance_reports_the_loss(stream, references, case):
    make, failures, ec_slots = BEYOND[case]
    result = run_pipeline(make(), algorithm("logreg"), stream, failures)
    lost_mask = np.isnan(result.predictions)
    assert result.items_lost > 0
    assert result.items_lost == int(lost_mask.sum())
    assert result.items_duplicated == 0
    first = min(f.batch for f in failures)
    assert not lost_mask[: first * BATCH].any()  # everything before the failure is kept
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
