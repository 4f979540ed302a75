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
