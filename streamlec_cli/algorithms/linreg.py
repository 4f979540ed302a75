"""Linear regression by mini-batch gradient descent on the squared error."""

from __future__ import annotations

import numpy as np

from .base import LinearModel


class LinReg(LinearModel):
    """Prediction z = w.x + b; residual c = z - y; loss is the squared error."""

    name = "linreg"
    classifier = False

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self.margin(model, Z) - Z[:, 0])[:, None]

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self.margin(model, Z)

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self.margin(model, Z) - Z[:, 0]) ** 2
