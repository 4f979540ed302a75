"""Contract checks run against every registered algorithm, then each update rule by hand.

In the spirit of River's ``river/checks``: the linear part is linear, no method mutates its
inputs, same seed -> same model, an algorithm survives pickling, ``Stats`` is additive, and
every array has the documented shape. The unit checks at the end recompute one batch of each
algorithm with a numpy formula written from the contract in ``algorithms/base.py`` and the
algorithm's module docstring, with non-default hyperparameters so nothing hard-coded passes.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from streamlec_cli import clickmetrics, datasets
from streamlec_cli.algorithms import ALGORITHMS, Algorithm, Stats, make_algorithm
from streamlec_cli.reference import run_reference

D = 28  # HIGGS-shaped rows: [label, 28 features]
NAMES = sorted(ALGORITHMS)


def higgs(n: int, seed: int = 0, start: int = 0) -> np.ndarray:
    return datasets.generate("higgs", start, start + n, seed)


def stream(n: int, batch: int = 500, seed: int = 0) -> list[np.ndarray]:
    rows = higgs(n, seed)
    return [rows[i : i + batch] for i in range(0, n, batch)]


def one_step(alg: Algorithm, rows: np.ndarray) -> np.ndarray:
    """The model after init_model and one update on these prepared rows."""
    model = alg.init_model(rows)
    Z = alg.linear(model, rows)
    return alg.update(model, alg.statistics(rows, alg.coefficients(model, Z)))


@pytest.fixture(params=NAMES)
def alg(request: pytest.FixtureRequest) -> Algorithm:
    return make_algorithm(request.param, D)


@pytest.fixture
def rows(alg: Algorithm) -> np.ndarray:
    return alg.prepare(higgs(600, seed=5))


@pytest.fixture
def model(alg: Algorithm, rows: np.ndarray) -> np.ndarray:
    trained = one_step(alg, rows)
    # Non-trivial: the linear models start at zero, so one step must have moved them.
    assert np.abs(alg.weights(trained)).max() > 1e-6
    return trained


def test_registry_names_match_classes() -> None:
    assert set(NAMES) == {"linreg", "logreg", "svm", "kmeans", "mlp"}
    for name, cls in ALGORITHMS.items():
        assert cls.name == name
        assert type(make_algorithm(name, D)) is cls


def test_unknown_algorithm_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'forest' is not known.*linreg"):
        make_algorithm("forest", D)


# -- the contract, for every algorithm --------------------------------------------------------


def test_linear_is_linear_in_the_row(alg: Algorithm, model: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    x1 = rng.standard_normal((50, alg.width))
    x2 = rng.standard_normal((50, alg.width))
    a, b = 1.7, -0.35
    combined = alg.linear(model, a * x1 + b * x2)
    expected = a * alg.linear(model, x1) + b * alg.linear(model, x2)
    np.testing.assert_allclose(combined, expected, rtol=1e-12, atol=1e-12)
    # The head columns are the row's own label and aux columns, untouched.
    head = 1 + alg.extra
    np.testing.assert_array_equal(alg.linear(model, x1)[:, :head], x1[:, :head])


def test_no_method_mutates_its_inputs(alg: Algorithm) -> None:
    raw = higgs(400, seed=2)
    raw_copy = raw.copy()
    rows = alg.prepare(raw)
    np.testing.assert_array_equal(raw, raw_copy)
    rows_copy = rows.copy()

    alg.init_model(rows)
    np.testing.assert_array_equal(rows, rows_copy)
    model = one_step(alg, rows)  # a non-trivial model for the calls below
    np.testing.assert_array_equal(rows, rows_copy)
    model_copy = model.copy()

    Z = alg.linear(model, rows)
    Z_copy = Z.copy()
    calls = {
        "coefficients": lambda: alg.coefficients(model, Z),
        "predict": lambda: alg.predict(model, Z),
        "loss": lambda: alg.loss(model, Z),
        "correct": lambda: alg.correct(model, Z),
        "linear": lambda: alg.linear(model, rows),
    }
    for name, call in calls.items():
        call()
        for label, now, before in (("rows", rows, rows_copy), ("Z", Z, Z_copy)):
            assert np.array_equal(now, before), f"{name} mutated {label}"
        assert np.array_equal(model, model_copy), f"{name} mutated the model"

    F = alg.coefficients(model, Z)
    F_copy = F.copy()
    stats = alg.statistics(rows, F)
    np.testing.assert_array_equal(rows, rows_copy)
    np.testing.assert_array_equal(F, F_copy)

    U_copy, fsum_copy = stats.U.copy(), stats.fsum.copy()
    new = alg.update(model, stats)
    np.testing.assert_array_equal(model, model_copy)
    np.testing.assert_array_equal(stats.U, U_copy)
    np.testing.assert_array_equal(stats.fsum, fsum_copy)
    assert not np.shares_memory(new, model), "update must return a new array"
    assert not np.array_equal(new, model), "a batch of 400 items must move the model"


def test_same_seed_gives_the_same_model(alg: Algorithm) -> None:
    first = run_reference(make_algorithm(alg.name, D, **alg.params()), stream(3000))
    second = run_reference(make_algorithm(alg.name, D, **alg.params()), stream(3000))
    np.testing.assert_array_equal(first.model, second.model)
    np.testing.assert_array_equal(first.predictions, second.predictions)
    assert first.batch_loss == second.batch_loss
    assert len(first.batch_loss) == 6


def test_kmeans_seed_chooses_the_initial_centroids() -> None:
    rows = make_algorithm("kmeans", D).prepare(higgs(1000))
    a = make_algorithm("kmeans", D, seed=0).init_model(rows)
    again = make_algorithm("kmeans", D, seed=0).init_model(rows)
    b = make_algorithm("kmeans", D, seed=1).init_model(rows)
    np.testing.assert_array_equal(a, again)
    assert not np.array_equal(a[:, :D], b[:, :D])
    # Initial centroids are items of the first batch, with zero counts.
    features = rows[:, 2:]
    for centroid in a[:, :D]:
        assert (features == centroid).all(axis=1).any()
    np.testing.assert_array_equal(a[:, D], 0.0)


def test_kmeans_rejects_a_first_batch_smaller_than_k() -> None:
    alg = make_algorithm("kmeans", D, clusters=8)
    with pytest.raises(ValueError, match="at least 8 items"):
        alg.init_model(alg.prepare(higgs(5)))


@pytest.mark.parametrize("name", NAMES)
def test_pickled_algorithm_computes_the_same_model(name: str) -> None:
    params = {
        "kmeans": {"clusters": 5, "decay": 0.3, "seed": 7},
        "mlp": {"hidden": 6, "lr": 0.02, "l2": 1e-3, "seed": 4},
    }.get(name, {"lr": 0.02, "l2": 1e-3})
    alg = make_algorithm(name, D, **params)
    clone = pickle.loads(pickle.dumps(alg))
    assert type(clone) is type(alg)
    assert clone.params() == alg.params() == params
    assert repr(clone) == repr(alg)
    expected = run_reference(alg, stream(3000))
    actual = run_reference(clone, stream(3000))
    np.testing.assert_array_equal(actual.model, expected.model)


def test_stats_are_additive_over_a_split(alg: Algorithm, rows: np.ndarray, model: np.ndarray):
    Z = alg.linear(model, rows)
    F = alg.coefficients(model, Z)
    whole = alg.statistics(rows, F)
    cut = 237
    # F is per item: the coefficients of a slice are that slice of the whole batch's.
    np.testing.assert_array_equal(alg.coefficients(model, Z[:cut]), F[:cut])
    halves = alg.statistics(rows[:cut], F[:cut]) + alg.statistics(rows[cut:], F[cut:])
    assert halves.count == whole.count == rows.shape[0]
    scale = np.abs(whole.U).max()
    np.testing.assert_allclose(halves.U, whole.U, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(halves.fsum, whole.fsum, rtol=1e-12, atol=1e-12)
    total = Stats.total(
        [alg.statistics(rows[i : i + 100], F[i : i + 100]) for i in range(0, 600, 100)],
        D,
        alg.outputs,
        alg.summed,
    )
    np.testing.assert_allclose(total.U, whole.U, rtol=1e-12, atol=1e-12 * scale)
    assert total.count == 600


def test_apply_equals_coefficients_and_evaluate(alg: Algorithm, rows: np.ndarray, model):
    # The processors call the fused apply(); the reference calls the parts one by one.
    Z = alg.linear(model, rows)
    Z[:5, 1 + alg.extra :] *= 1e3  # margins beyond the clip
    F, results = alg.apply(model, Z)
    np.testing.assert_allclose(F, alg.coefficients(model, Z), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(results, alg.evaluate(model, Z), rtol=1e-12, atol=1e-15)


def test_shapes(alg: Algorithm, rows: np.ndarray, model: np.ndarray) -> None:
    n, m, s = rows.shape[0], alg.outputs, alg.summed
    assert rows.shape == (n, 1 + alg.extra + D) == (n, alg.width)
    assert alg.weights(model).shape == (D, m)
    Z = alg.linear(model, rows)
    assert Z.shape == (n, 1 + alg.extra + m)
    F = alg.coefficients(model, Z)
    assert F.shape == (n, m + s)
    assert alg.predict(model, Z).shape == (n,)
    assert alg.loss(model, Z).shape == (n,)
    correct = alg.correct(model, Z)
    if alg.classifier:
        assert correct is not None
        assert correct.shape == (n,)
        assert correct.dtype == np.bool_
    else:
        assert correct is None
    stats = alg.statistics(rows, F)
    assert stats.U.shape == (D, m)
    assert stats.fsum.shape == (m + s,)
    # X weights only the first m columns of F (what the EC survivor round recovers); the
    # other s are needed only summed, from Z alone.
    scale = np.abs(stats.U).max()
    np.testing.assert_allclose(stats.U, alg.features(rows).T @ F[:, :m], atol=1e-12 * scale)
    np.testing.assert_allclose(stats.fsum, F.sum(axis=0), rtol=1e-12, atol=1e-12)
    assert stats.count == n
    assert alg.update(model, stats).shape == model.shape


def test_a_classifier_says_what_its_predictions_are(
    alg: Algorithm, rows: np.ndarray, model: np.ndarray
) -> None:
    """Every classifier gets log loss or ROC AUC (``clickmetrics``): its prediction is a
    probability of label 1 or a margin whose sign is its class."""
    assert (alg.prediction_kind in clickmetrics.KINDS) == alg.classifier
    if alg.prediction_kind is None:
        return
    Z = alg.linear(model, rows)
    predicted = alg.predict(model, Z)
    says_one = predicted >= (0.5 if alg.prediction_kind == clickmetrics.PROBABILITY else 0.0)
    np.testing.assert_array_equal(
        says_one == clickmetrics.positive(rows[:, 0]), alg.correct(model, Z)
    )
    if alg.prediction_kind == clickmetrics.PROBABILITY:
        assert ((predicted > 0.0) & (predicted < 1.0)).all()


# -- each update rule against the formula -----------------------------------------------------


def linear_batch(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``[y, x]`` with random features, a model ``[w, b]`` and the features X."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D))
    y = (rng.random(n) < 0.5).astype(np.float64)
    model = np.concatenate([rng.standard_normal(D), [0.4]])
    return np.column_stack([y, X]), model, X


def run_batch(alg: Algorithm, model: np.ndarray, raw: np.ndarray):
    rows = alg.prepare(raw)
    Z = alg.linear(model, rows)
    F = alg.coefficients(model, Z)
    return Z, F, alg.update(model, alg.statistics(rows, F))


def gradient_step(model: np.ndarray, X: np.ndarray, c: np.ndarray, lr: float, l2: float):
    w, b = model[:D], model[D]
    B = X.shape[0]
    return np.concatenate([w - lr * (X.T @ c / B + l2 * w), [b - lr * c.sum() / B]])


def test_linreg_update_rule() -> None:
    raw, model, X = linear_batch(1)
    raw[:, 0] = np.random.default_rng(2).normal(3.0, 2.0, raw.shape[0])  # real-valued targets
    alg = make_algorithm("linreg", D, lr=0.07, l2=0.02)
    Z, F, new = run_batch(alg, model, raw)
    z = X @ model[:D] + model[D]
    c = z - raw[:, 0]
    np.testing.assert_allclose(F[:, 0], c, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(alg.predict(model, Z), z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(alg.loss(model, Z), c**2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new, gradient_step(model, X, c, 0.07, 0.02), rtol=1e-12)


def test_logreg_update_rule_clips_the_margin() -> None:
    raw, model, X = linear_batch(3)
    model *= 6.0  # margins well beyond +-20 for some items
    alg = make_algorithm("logreg", D, lr=0.3, l2=0.005)
    z = X @ model[:D] + model[D]
    assert (z > 20).sum() > 10 and (z < -20).sum() > 10
    Z, F, new = run_batch(alg, model, raw)
    y = raw[:, 0]
    p = 1.0 / (1.0 + np.exp(-np.clip(z, -20.0, 20.0)))
    c = p - y
    np.testing.assert_allclose(F[:, 0], c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(alg.predict(model, Z), p, rtol=1e-12)
    zc = np.clip(z, -20.0, 20.0)
    np.testing.assert_allclose(alg.loss(model, Z), np.log1p(np.exp(zc)) - y * zc, rtol=1e-10)
    np.testing.assert_array_equal(alg.correct(model, Z), (z >= 0) == (y > 0.5))
    np.testing.assert_allclose(new, gradient_step(model, X, c, 0.3, 0.005), rtol=1e-12)


def test_svm_update_rule_on_both_label_encodings() -> None:
    raw, model, X = linear_batch(4, n=400)
    rng = np.random.default_rng(5)
    # {0, 1} and {-1, +1} labels, some with decoding noise: the sign is read at 0.5.
    raw[:, 0] = rng.choice([0.0, 1.0, -1.0], size=400) + rng.normal(0.0, 1e-9, 400)
    model *= 0.4  # margins of a few units, so both branches of the hinge occur
    alg = make_algorithm("svm", D, lr=0.2, l2=0.01)
    Z, F, new = run_batch(alg, model, raw)
    z = X @ model[:D] + model[D]
    signed = np.where(raw[:, 0] > 0.5, 1.0, -1.0)
    inside = signed * z < 1.0
    assert 50 < inside.sum() < 350
    c = np.where(inside, -signed, 0.0)
    np.testing.assert_array_equal(F[:, 0], c)
    np.testing.assert_allclose(alg.predict(model, Z), z, rtol=1e-12, atol=1e-12)  # the margin
    np.testing.assert_array_equal(alg.correct(model, Z), (z >= 0) == (signed > 0))
    np.testing.assert_allclose(alg.loss(model, Z), np.maximum(0, 1 - signed * z), atol=1e-12)
    np.testing.assert_allclose(new, gradient_step(model, X, c, 0.2, 0.01), rtol=1e-12)


def test_kmeans_update_rule() -> None:
    rng = np.random.default_rng(6)
    K, n, decay = 5, 400, 0.3
    X = rng.standard_normal((n, D))
    raw = np.column_stack([rng.random(n), X])
    model = np.zeros((K, D + 1))
    model[:, :D] = rng.standard_normal((K, D))
    model[:, D] = [10.0, 0.0, 3.5, 0.0, 7.0]
    model[3, :D] += 100.0  # far away with no history: gets no items and must stay put
    model[4, :D] -= 100.0  # far away with history: gets no items, stays put
    alg = make_algorithm("kmeans", D, clusters=K, decay=decay, seed=0)
    Z, F, new = run_batch(alg, model, raw)

    C, counts = model[:, :D], model[:, D]
    dist = ((X[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    assigned = dist.argmin(axis=1)
    np.testing.assert_array_equal(F, np.eye(K)[assigned])
    np.testing.assert_array_equal(alg.predict(model, Z), assigned.astype(float))
    np.testing.assert_allclose(alg.loss(model, Z), dist.min(axis=1), rtol=1e-10, atol=1e-10)

    m = np.bincount(assigned, minlength=K).astype(float)
    assert m[3] == m[4] == 0 and m[:3].min() > 0
    S = np.stack([X[assigned == k].sum(axis=0) for k in range(K)])
    expected = model.copy()
    weight = decay * counts
    for k in range(K):
        if weight[k] + m[k] > 0:
            expected[k, :D] = (weight[k] * C[k] + S[k]) / (weight[k] + m[k])
    expected[:, D] = counts + m
    np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(new[3], model[3])  # no history, no items: untouched


def test_kmeans_prepare_adds_the_squared_norm() -> None:
    raw = higgs(50)
    rows = make_algorithm("kmeans", D).prepare(raw)
    np.testing.assert_array_equal(rows[:, 0], raw[:, 0])
    np.testing.assert_allclose(rows[:, 1], (raw[:, 1:] ** 2).sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(rows[:, 2:], raw[:, 1:])


def mlp_model(rng: np.random.Generator, hidden: int) -> tuple[np.ndarray, ...]:
    """A random MLP ``(W1, b1, w2, b2)`` and its flat model ``[W1 (row-major), b1, w2, b2]``."""
    W1 = rng.standard_normal((D, hidden)) * 0.4
    b1 = rng.standard_normal(hidden) * 0.5
    w2 = rng.standard_normal(hidden) * 1.5
    b2 = 0.3
    return W1, b1, w2, b2, np.concatenate([W1.ravel(), b1, w2, [b2]])


def test_mlp_update_rule() -> None:
    rng = np.random.default_rng(9)
    n, h, lr, l2 = 400, 7, 0.15, 0.01
    X = rng.standard_normal((n, D))
    y = (rng.random(n) < 0.5).astype(np.float64)
    X[:5] *= 40.0  # output margins beyond +-20 for some items
    W1, b1, w2, b2, model = mlp_model(rng, h)
    alg = make_algorithm("mlp", D, hidden=h, lr=lr, l2=l2, seed=3)
    Z, F, new = run_batch(alg, model, np.column_stack([y, X]))

    A = X @ W1 + b1  # the hidden layer's input: the linear part plus its bias
    assert 0.3 < (A > 0).mean() < 0.7  # both sides of the ReLU
    H = np.maximum(A, 0.0)
    o = H @ w2 + b2
    assert (np.abs(o) > 20).sum() >= 3
    oc = np.clip(o, -20.0, 20.0)
    p = 1.0 / (1.0 + np.exp(-oc))
    d2 = p - y  # output error
    d1 = d2[:, None] * w2[None, :] * (A > 0)  # hidden error (ReLU' = 0 at 0, as scikit-learn)
    np.testing.assert_allclose(Z[:, 1:], X @ W1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F[:, :h], d1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F[:, h : 2 * h], H * d2[:, None], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F[:, 2 * h], d2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(alg.predict(model, Z), p, rtol=1e-12)
    np.testing.assert_allclose(alg.loss(model, Z), np.logaddexp(0.0, oc) - y * oc, rtol=1e-10)
    np.testing.assert_array_equal(alg.correct(model, Z), (o >= 0) == (y > 0.5))

    expected = np.concatenate(
        [
            (W1 - lr * (X.T @ d1 / n + l2 * W1)).ravel(),
            b1 - lr * d1.sum(axis=0) / n,
            w2 - lr * (H.T @ d2 / n + l2 * w2),
            [b2 - lr * d2.sum() / n],
        ]
    )
    np.testing.assert_allclose(new, expected, rtol=1e-12, atol=1e-14)


def test_mlp_seed_draws_glorot_uniform_initial_weights() -> None:
    h = 16
    rows = higgs(300)
    a = make_algorithm("mlp", D, hidden=h, seed=0).init_model(rows)
    again = make_algorithm("mlp", D, hidden=h, seed=0).init_model(higgs(300, seed=8))
    b = make_algorithm("mlp", D, hidden=h, seed=1).init_model(rows)
    np.testing.assert_array_equal(a, again)  # the seed alone, not the first batch
    assert not np.array_equal(a, b)
    assert a.shape == (D * h + 2 * h + 1,)
    # As scikit-learn's MLPClassifier: uniform within sqrt(6 / (fan_in + fan_out)), biases too.
    first, second = np.sqrt(6.0 / (D + h)), np.sqrt(6.0 / (h + 1))
    layer1, layer2 = a[: (D + 1) * h], a[(D + 1) * h :]
    assert np.abs(layer1).max() <= first and np.abs(layer1).max() > 0.9 * first
    assert np.abs(layer2).max() <= second and np.abs(layer2).max() > 0.5 * second
    assert abs(layer1.mean()) < 0.1 * first


def test_mlp_hidden_sets_the_linear_part() -> None:
    alg = make_algorithm("mlp", D, hidden=5)
    assert (alg.outputs, alg.summed, alg.extra) == (5, 6, 0)
    model = alg.init_model(higgs(10))
    np.testing.assert_array_equal(alg.weights(model), model[: D * 5].reshape(D, 5))
    assert np.shares_memory(alg.weights(model), model)
