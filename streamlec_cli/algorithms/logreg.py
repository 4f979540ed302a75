"""Logistic regression (labels in {0, 1}) by mini-batch gradient descent on the log loss."""

from __future__ import annotations

import numpy as np

from .base import LinearModel

CLIP = 20.0


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function of z clipped to [-20, 20]."""
    return 1.0 / (1.0 + np.exp(-np.clip(z, -CLIP, CLIP)))


class LogReg(LinearModel):
    """Prediction p = sigmoid(w.x + b); coefficient c = p - y."""

    name = "logreg"
    prediction_kind = "probability"

    def apply(self, model: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.clip(self.margin(model, Z), -CLIP, CLIP)  # the clip changes no sign
        y = Z[:, 0]
        results = np.empty((Z.shape[0], 3))
        p = results[:, 0]
        np.negative(z, out=p)
        np.exp(p, out=p)
        p += 1.0
        np.reciprocal(p, out=p)
        np.logaddexp(0.0, z, out=results[:, 1])
        results[:, 1] -= y * z
        results[:, 2] = (z >= 0.0) == (y > 0.5)
        return (p - y)[:, None], results

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (sigmoid(self.margin(model, Z)) - Z[:, 0])[:, None]

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return sigmoid(self.margin(model, Z))

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        z = np.clip(self.margin(model, Z), -CLIP, CLIP)
        y = Z[:, 0]
        # log(1 + e^z) - y z, written stably
        return np.logaddexp(0.0, z) - y * z

    def correct(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self.margin(model, Z) >= 0.0) == (Z[:, 0] > 0.5)
