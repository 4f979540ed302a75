"""scikit-learn as an external yardstick: our algorithms learn as well as its on the same data.

Both sides see the same HIGGS-shaped items (``datasets.generate("higgs", ...)``), standardised
by one ``StandardScaler`` fitted on a training prefix, and are scored on the same held-out
items with the same ``sklearn.metrics`` function. Our side runs through ``run_reference``
(one pass, batches of 1000); where scikit-learn learns incrementally (``MLPClassifier``) it sees
the same batches through ``partial_fit``. The checks are one-sided: ours may do better, but
not worse than 2 accuracy points (logreg, svm, mlp) or 5% inertia (kmeans). Each test also
checks that the yardstick is informative: scikit-learn must beat the trivial model by more
than the margin.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import MiniBatchKMeans
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import accuracy_score, pairwise_distances_argmin_min
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from streamlec_cli import datasets
from streamlec_cli.algorithms import make_algorithm
from streamlec_cli.reference import run_reference

D = 28
TRAIN = 300_000
TEST = 50_000
BATCH = 1000
ACCURACY_MARGIN = 0.02
INERTIA_MARGIN = 0.05


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray]:
    """Standardised (train, test) rows ``[label, 28 features]``; test items follow train."""
    rows = datasets.generate("higgs", 0, TRAIN + TEST, seed=0)
    scaler = StandardScaler().fit(rows[:50_000, 1:])
    rows[:, 1:] = scaler.transform(rows[:, 1:])
    return rows[:TRAIN], rows[TRAIN:]


def batches(train: np.ndarray) -> list[np.ndarray]:
    return [train[i : i + BATCH] for i in range(0, train.shape[0], BATCH)]


@pytest.mark.parametrize(
    ("name", "loss", "lr"),
    [("logreg", "log_loss", 0.1), ("svm", "hinge", 0.1)],
)
def test_linear_classifier_accuracy_matches_sgdclassifier(
    split: tuple[np.ndarray, np.ndarray], name: str, loss: str, lr: float
) -> None:
    train, test = split
    y_test = test[:, 0] > 0.5

    sgd = SGDClassifier(loss=loss, random_state=0).fit(train[:, 1:], train[:, 0])
    theirs = accuracy_score(y_test, sgd.predict(test[:, 1:]) > 0.5)

    alg = make_algorithm(name, D, lr=lr)
    model = run_reference(alg, batches(train)).model
    predicted = alg.predict(model, alg.linear(model, alg.prepare(test)))
    # logreg predicts a probability (class 1 above 0.5), svm a margin (class 1 from 0 up).
    ours = accuracy_score(y_test, predicted >= (0.5 if name == "logreg" else 0.0))

    majority = max(y_test.mean(), 1.0 - y_test.mean())
    assert theirs > majority + 2 * ACCURACY_MARGIN, f"sklearn {theirs:.4f}, majority {majority}"
    assert ours >= theirs - ACCURACY_MARGIN, f"{name}: ours {ours:.4f}, sklearn {theirs:.4f}"


def inertia(features: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances to the nearest centroid."""
    _, distances = pairwise_distances_argmin_min(features, centroids)
    return float(np.sum(distances**2))


def test_kmeans_inertia_matches_minibatch_kmeans(split: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = split
    clusters = 8

    mbk = MiniBatchKMeans(n_clusters=clusters, random_state=0).fit(train[:, 1:])
    theirs = inertia(test[:, 1:], mbk.cluster_centers_)

    alg = make_algorithm("kmeans", D, clusters=clusters, decay=0.5, seed=0)
    model = run_reference(alg, batches(train)).model
    ours = inertia(test[:, 1:], model[:, :D])

    # Our own per-item loss is the same squared distance, computed from Z alone.
    prepared = alg.prepare(test)
    own = float(alg.loss(model, alg.linear(model, prepared)).sum())
    assert own == pytest.approx(ours, rel=1e-9)

    # The yardstick is informative: the untrained initial centroids are far outside the margin.
    initial = inertia(test[:, 1:], alg.init_model(alg.prepare(train[:BATCH]))[:, :D])
    assert initial > theirs * (1 + 2 * INERTIA_MARGIN), (
        f"initial {initial:.0f}, sklearn {theirs:.0f}"
    )
    assert ours <= theirs * (1 + INERTIA_MARGIN), f"ours {ours:.0f}, sklearn {theirs:.0f}"


def mlp_classifier(hidden: int, **solver: object) -> MLPClassifier:
    """scikit-learn's network of the same shape, one step per ``partial_fit`` of a batch."""
    return MLPClassifier(
        hidden_layer_sizes=(hidden,), batch_size=BATCH, shuffle=False, random_state=0, **solver
    )


def test_mlp_takes_the_step_of_mlpclassifiers_sgd(split: tuple[np.ndarray, np.ndarray]) -> None:
    train, test = split
    hidden, lr, l2 = 8, 0.3, 1e-3
    first, second = batches(train)[:2]
    # scikit-learn's alpha is divided by the batch size, our l2 is per item.
    theirs = mlp_classifier(
        hidden, solver="sgd", momentum=0.0, learning_rate_init=lr, alpha=l2 * BATCH
    )
    theirs.partial_fit(first[:, 1:], first[:, 0].astype(int), classes=[0, 1])  # builds it

    alg = make_algorithm("mlp", D, hidden=hidden, lr=lr, l2=l2, seed=5)
    model = alg.init_model(alg.prepare(first))
    W1, b1, w2, b2 = alg.layers(model)
    theirs.coefs_ = [W1.copy(), w2[:, None].copy()]
    theirs.intercepts_ = [b1.copy(), b2.copy()]
    theirs.partial_fit(second[:, 1:], second[:, 0].astype(int))

    rows = alg.prepare(second)
    new = alg.update(model, alg.statistics(rows, alg.coefficients(model, alg.linear(model, rows))))
    W1, b1, w2, b2 = alg.layers(new)
    assert not np.allclose(W1, alg.layers(model)[0], rtol=1e-3)  # it moved
    for ours, expected in [
        (W1, theirs.coefs_[0]),
        (b1, theirs.intercepts_[0]),
        (w2, theirs.coefs_[1][:, 0]),
        (b2, theirs.intercepts_[1]),
    ]:
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-13)
    prepared = alg.prepare(test)
    np.testing.assert_allclose(
        alg.predict(new, alg.linear(new, prepared)),
        theirs.predict_proba(test[:, 1:])[:, 1],
        rtol=1e-9,
    )


@pytest.mark.parametrize(
    "solver",
    [
        # the same update rule: plain SGD at our learning rate
        {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.3},
        # scikit-learn's default solver; its default rate (0.001) is too slow for one pass
        # (0.70 accuracy here), 0.01 reaches what the network can
        {"solver": "adam", "learning_rate_init": 0.01},
    ],
    ids=["sgd", "adam"],
)
def test_mlp_accuracy_matches_mlpclassifier_partial_fit(
    split: tuple[np.ndarray, np.ndarray], solver: dict
) -> None:
    train, test = split
    y_test = test[:, 0] > 0.5
    hidden = 32

    theirs_model = mlp_classifier(hidden, **solver)
    for batch in batches(train):
        theirs_model.partial_fit(batch[:, 1:], batch[:, 0].astype(int), classes=[0, 1])
    theirs = accuracy_score(y_test, theirs_model.predict(test[:, 1:]) > 0.5)

    alg = make_algorithm("mlp", D, hidden=hidden, lr=0.3, seed=0)
    model = run_reference(alg, batches(train)).model
    ours = accuracy_score(y_test, alg.predict(model, alg.linear(model, alg.prepare(test))) > 0.5)

    print(f"mlp accuracy: ours {ours:.4f}, MLPClassifier {solver['solver']} {theirs:.4f}")
    majority = max(y_test.mean(), 1.0 - y_test.mean())
    assert theirs > majority + 2 * ACCURACY_MARGIN, f"sklearn {theirs:.4f}, majority {majority}"
    assert ours >= theirs - ACCURACY_MARGIN, f"mlp: ours {ours:.4f}, sklearn {theirs:.4f}"
