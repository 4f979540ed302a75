"""Linear SVM by mini-batch subgradient descent on the hinge loss.

Labels may be {0, 1} or {-1, +1}: y' = +1 where y > 0.5, else -1 (the threshold sits between
the two encodings, so a label decoded with rounding error keeps its sign). The prediction is
the margin w.x + b (scikit-learn's ``decision_function``): its sign is the class, and its size
ranks the items for the ROC AUC.
"""

from __future__ import annotations

import numpy as np

from .base import LinearModel


def signed(y: np.ndarray) -> np.ndarray:
    return np.where(y > 0.5, 1.0, -1.0)


class SVM(LinearModel):
    """Prediction z = w.x + b (class +1 where z >= 0); coefficient c = -y' where y' z < 1,
    else 0."""

    name = "svm"
    prediction_kind = "margin"

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        y = signed(Z[:, 0])
        z = self.margin(model, Z)
        return np.where(y * z < 1.0, -y, 0.0)[:, None]

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self.margin(model, Z)

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, 1.0 - signed(Z[:, 0]) * self.margin(model, Z))

    def correct(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self.margin(model, Z) >= 0.0) == (Z[:, 0] > 0.5)
