"""Streaming K-Means with decayed centroid updates.

Model: a (K, d+1) array, centroids C in the first d columns and the decayed counts n_k in the
last. Item rows carry |x|^2 as one extra column (added by ``prepare`` at the source and encoded
like the label), so the per-item squared distance to the assigned centroid,
``|x|^2 + |c_k|^2 - 2 c_k.x``, is computed from Z alone even for a decoded item.
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import Algorithm, Stats


class KMeans(Algorithm):
    """Assignment argmin_k(|c_k|^2 - 2 c_k.x); update c_k = (a n_k c_k + S_k) / (a n_k + m_k)."""

    name = "kmeans"
    extra = 1
    classifier = False
    parameters = (
        Param("clusters", int, 8, "number of centroids", minimum=1),
        Param("decay", float, 0.01, "weight a of the old counts in the update", minimum=0),
        Param("seed", int, 0, "seed of the initial centroids' draw", minimum=0),
    )
    clusters: int
    decay: float
    seed: int

    @property
    def outputs(self) -> int:
        return self.clusters

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.shape[0], rows.shape[1] + 1))
        out[:, 0] = rows[:, 0]
        x = rows[:, 1:]
        np.einsum("ij,ij->i", x, x, out=out[:, 1])
        out[:, 2:] = x
        return out

    def init_model(self, first_batch: np.ndarray) -> np.ndarray:
        x = self.features(first_batch)
        if x.shape[0] < self.clusters:
            msg = f"kmeans needs at least {self.clusters} items in the first batch"
            raise ValueError(msg)
        pick = np.random.default_rng(self.seed).choice(x.shape[0], self.clusters, replace=False)
        model = np.zeros((self.clusters, self.d + 1))
        model[:, : self.d] = x[np.sort(pick)]
        return model

    def weights(self, model: np.ndarray) -> np.ndarray:
        return model[:, : self.d].T

    def _scores(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        centroids = model[:, : self.d]
        sq = np.einsum("kd,kd->k", centroids, centroids)
        return sq[None, :] - 2.0 * Z[:, 2:]

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return np.argmin(self._scores(model, Z), axis=1).astype(np.float64)

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        assigned = np.argmin(self._scores(model, Z), axis=1)
        onehot = np.zeros((Z.shape[0], self.clusters))
        onehot[np.arange(Z.shape[0]), assigned] = 1.0
        return onehot

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return np.maximum(Z[:, 1] + self._scores(model, Z).min(axis=1), 0.0)

    def update(self, model: np.ndarray, stats: Stats) -> np.ndarray:
        out = model.copy()
        centroids = model[:, : self.d]
        n = model[:, self.d]
        m = stats.fsum
        weight = self.decay * n
        denom = weight + m
        moved = denom > 0
        out[moved, : self.d] = (weight[moved, None] * centroids[moved] + stats.U.T[moved]) / denom[
            moved, None
        ]
        out[:, self.d] = n + m
        return out
