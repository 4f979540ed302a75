"""A neural network with one hidden layer (ReLU) and a logistic output, for labels in {0, 1}.

Model: one flat array ``[W1 (d x h, row-major), b1 (h), w2 (h), b2]``. The first layer is the
linear part, ``Z = [y, X @ W1]`` (h outputs, coded like any other algorithm's); everything after
it is computed from Z alone, so a decoded item's results and statistics are exact:

* forward: hidden layer ``a = relu(z + b1)``, output margin ``o = a . w2 + b2`` clipped to
  +-20 (as logreg), prediction ``p = sigmoid(o)``, loss ``log(1 + e^o) - y o``, correct where
  ``(o >= 0) == (y > 0.5)``;
* coefficients ``F = [delta1, a * delta2, delta2]`` (n x (2h + 1)), with the output error
  ``delta2 = p - y`` and the hidden error ``delta1 = delta2 * w2 * (z + b1 > 0)`` (ReLU' = 0
  at 0). The first h weight X: ``U = X.T @ delta1`` is the first layer's gradient, which EC's
  survivor round recovers exactly for lost items. The other h + 1 (``summed``) are only summed:
  ``fsum = [sum delta1, sum a delta2, sum delta2]``, the gradients of b1, w2 and b2;
* update: one step of mini-batch gradient descent on the batch's mean log loss, with an L2
  penalty on the weights (not the biases): ``W1 -= lr * (U / B + l2 * W1)``,
  ``b1 -= lr * sum delta1 / B``, ``w2 -= lr * (sum a delta2 / B + l2 * w2)``,
  ``b2 -= lr * sum delta2 / B``.

That is the step scikit-learn's ``MLPClassifier(hidden_layer_sizes=(h,), solver="sgd",
momentum=0, learning_rate_init=lr, alpha=l2 * B, batch_size=B)`` takes on a batch of B items
(its ``alpha`` is divided by the batch size). The initial weights and biases are drawn as its
are, uniform within ``sqrt(6 / (fan_in + fan_out))`` per layer, from the algorithm's seed alone.
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import Algorithm, Stats
from .logreg import CLIP, sigmoid


class MLP(Algorithm):
    """One hidden ReLU layer of ``hidden`` units, a logistic output; SGD on the log loss."""

    name = "mlp"
    prediction_kind = "probability"  # sigmoid of the output: P(label 1)
    parameters = (
        Param("hidden", int, 32, "hidden units (ReLU)", minimum=1),
        Param("lr", float, 0.3, "learning rate", minimum=0, exclusive=True),
        Param("l2", float, 1e-4, "L2 penalty on the weights", minimum=0),
        Param("seed", int, 0, "seed of the initial weights' draw", minimum=0),
    )
    hidden: int
    lr: float
    l2: float
    seed: int

    @property
    def outputs(self) -> int:
        return self.hidden

    @property
    def summed(self) -> int:
        return self.hidden + 1

    def layers(self, model: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Views ``(W1 (d, h), b1 (h,), w2 (h,), b2 (1,))`` of a model."""
        d, h = self.d, self.hidden
        cut = d * h
        return (
            model[:cut].reshape(d, h),
            model[cut : cut + h],
            model[cut + h : cut + 2 * h],
            model[cut + 2 * h :],
        )

    def init_model(self, first_batch: np.ndarray) -> np.ndarray:
        d, h = self.d, self.hidden
        rng = np.random.default_rng(self.seed)
        first, second = np.sqrt(6.0 / (d + h)), np.sqrt(6.0 / (h + 1))
        return np.concatenate(
            [rng.uniform(-first, first, (d + 1) * h), rng.uniform(-second, second, h + 1)]
        )

    def weights(self, model: np.ndarray) -> np.ndarray:
        return self.layers(model)[0]

    def _forward(self, model: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(z + b1, a, o)`` of every item: the hidden layer's input and output, the output
        margin (clipped; the clip changes no sign)."""
        _, b1, w2, b2 = self.layers(model)
        pre = Z[:, 1:] + b1
        hidden = np.maximum(pre, 0.0)
        margin = np.einsum("ij,j->i", hidden, w2)  # row by row: an item's alone decides it
        margin += b2
        np.clip(margin, -CLIP, CLIP, out=margin)
        return pre, hidden, margin

    def _coefficients(
        self, model: np.ndarray, Z: np.ndarray, forward: tuple[np.ndarray, ...]
    ) -> np.ndarray:
        pre, hidden, margin = forward
        h = self.hidden
        F = np.empty((Z.shape[0], 2 * h + 1))
        delta = F[:, 2 * h]
        np.subtract(sigmoid(margin), Z[:, 0], out=delta)
        np.multiply(hidden, delta[:, None], out=F[:, h : 2 * h])
        np.multiply(delta[:, None], self.layers(model)[2], out=F[:, :h])
        F[:, :h] *= pre > 0.0
        return F

    def _results(self, Z: np.ndarray, margin: np.ndarray) -> np.ndarray:
        y = Z[:, 0]
        out = np.empty((Z.shape[0], 3))
        out[:, 0] = sigmoid(margin)
        np.logaddexp(0.0, margin, out=out[:, 1])
        out[:, 1] -= y * margin
        out[:, 2] = (margin >= 0.0) == (y > 0.5)
        return out

    def apply(self, model: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        forward = self._forward(model, Z)
        return self._coefficients(model, Z, forward), self._results(Z, forward[2])

    def evaluate(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self._results(Z, self._forward(model, Z)[2])

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self._coefficients(model, Z, self._forward(model, Z))

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return sigmoid(self._forward(model, Z)[2])

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        margin = self._forward(model, Z)[2]
        return np.logaddexp(0.0, margin) - Z[:, 0] * margin

    def correct(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self._forward(model, Z)[2] >= 0.0) == (Z[:, 0] > 0.5)

    def update(self, model: np.ndarray, stats: Stats) -> np.ndarray:
        out = model.copy()
        if stats.count == 0:
            return out
        h, n, lr = self.hidden, stats.count, self.lr
        W1, b1, w2, b2 = self.layers(out)  # views: the step is taken in place, on the copy
        W1 -= lr * (stats.U / n + self.l2 * W1)
        b1 -= lr * stats.fsum[:h] / n
        w2 -= lr * (stats.fsum[h : 2 * h] / n + self.l2 * w2)
        b2 -= lr * stats.fsum[2 * h] / n
        return out
