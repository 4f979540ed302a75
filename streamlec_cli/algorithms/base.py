"""The algorithm contract: a linear part, a non-linear part, and additive update statistics.

An *item row* is ``[y, aux..., x]``: the label, ``extra`` model-independent columns an algorithm
may add once at the source (``prepare``), then the d features. Every column of a row is carried
through the erasure code, so whatever is a linear function of the row decodes exactly.

For a batch of rows the algorithm defines

* the **linear part** ``Z = [y, aux..., X @ W]`` (``linear``), W of shape (d, m) taken from the
  model -- linear in the row, so the Z of a parity row is the parity of the data rows' Z;
* the **non-linear part**: per-item coefficients ``F = F(Z)`` of shape (n, m + s)
  (``coefficients``), predictions and per-item loss, all computed from Z alone;
* the **update statistics** ``Stats(U = X.T @ F[:, :m], fsum = F.sum(0), count = n)``,
  additive over any partition of the batch, and the model update from their total
  (``update``). The first m columns of F weight X; the other s (``summed``, none for most
  algorithms) are needed only summed over the items: the statistics of whatever the model
  computes after its linear part (an MLP's second layer), functions of Z alone, so the sink
  computes them for decoded items itself and only the first m cross the survivor round.

Lifecycle: ``init_model`` once, from the first batch; then for every batch ``linear`` ->
``coefficients`` -> ``statistics`` on slices, ``Stats`` summed, and ``update`` once at the sink.
A model is one float64 array, so it travels as a raw buffer. Algorithms do no I/O, never mutate
their inputs, and are deterministic for a given seed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..params import Param, bind


@dataclass(frozen=True)
class Stats:
    """Additive update statistics of a set of items."""

    U: np.ndarray  # (d, m): X.T @ F[:, :m]
    fsum: np.ndarray  # (m + s,): F summed over the items
    count: int

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.U + other.U, self.fsum + other.fsum, self.count + other.count)

    @staticmethod
    def zero(d: int, m: int, s: int = 0) -> Stats:
        return Stats(np.zeros((d, m)), np.zeros(m + s), 0)

    @staticmethod
    def total(parts: list[Stats], d: int, m: int, s: int = 0) -> Stats:
        """Sum of parts, added in the given order."""
        out = Stats.zero(d, m, s)
        for part in parts:
            out = out + part
        return out


class Algorithm(ABC):
    """Base class: subclasses set ``name``, declare ``parameters`` and implement the abstract
    methods. Each declared parameter is a constructor argument after d (keyword, or
    positional in declaration order) and an attribute of the same name."""

    name: ClassVar[str]
    #: The hyperparameters, declared once: the spec's checks and defaults come from here.
    parameters: ClassVar[tuple[Param, ...]] = ()
    #: Model-independent columns ``prepare`` inserts after the label.
    extra: ClassVar[int] = 0
    #: True when the algorithm has a notion of a correct prediction (accuracy).
    classifier: ClassVar[bool] = True
    #: What a prediction says about label 1 (``y > 0.5``), for the click-through metrics
    #: (``clickmetrics``): ``"probability"`` (P(label 1): log loss and ROC AUC), ``"margin"``
    #: (a score, larger for label 1: ROC AUC only), or None (no such metrics).
    prediction_kind: ClassVar[str | None] = None

    def __init__(self, d: int, *args: Any, **kwargs: Any) -> None:
        self.d = d
        for key, value in bind(type(self).__name__, self.parameters, args, kwargs).items():
            setattr(self, key, value)

    # -- layout -------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Columns of a prepared item row."""
        return 1 + self.extra + self.d

    @property
    def outputs(self) -> int:
        """m: the number of dot products per item in the linear part."""
        return 1

    @property
    def summed(self) -> int:
        """s: columns of F after the first m, needed only summed over the items (never
        weighting X). 0 by default."""
        return 0

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        """Dataset rows ``[y, x]`` -> item rows ``[y, aux..., x]`` (once, at the source)."""
        return rows

    def features(self, rows: np.ndarray) -> np.ndarray:
        """The X block of prepared rows (a view)."""
        return rows[:, 1 + self.extra :]

    # -- the three parts ----------------------------------------------------------------------

    @abstractmethod
    def init_model(self, first_batch: np.ndarray) -> np.ndarray:
        """The model before any update, from the prepared rows of the first batch."""

    @abstractmethod
    def weights(self, model: np.ndarray) -> np.ndarray:
        """W of shape (d, m): the linear part is ``X @ W``."""

    def linear(self, model: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``Z = [y, aux..., X @ W]`` of shape (n, 1 + extra + m); linear in ``rows``."""
        head = 1 + self.extra
        out = np.empty((rows.shape[0], head + self.outputs))
        out[:, :head] = rows[:, :head]
        np.matmul(rows[:, head:], self.weights(model), out=out[:, head:])
        return out

    @abstractmethod
    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """The non-linear F(Z), shape (n, m + s): its first m columns weight X in the update
        statistics, all of them are summed."""

    @abstractmethod
    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """One prediction per item, shape (n,)."""

    @abstractmethod
    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """Per-item loss, shape (n,)."""

    def correct(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray | None:
        """Per-item correctness (bool, shape (n,)), or None where accuracy has no meaning."""
        return None

    def evaluate(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """Per-item results, shape (n, 3): prediction, loss, correct (1/0, NaN if no notion)."""
        out = np.empty((Z.shape[0], 3))
        out[:, 0] = self.predict(model, Z)
        out[:, 1] = self.loss(model, Z)
        correct = self.correct(model, Z)
        out[:, 2] = np.nan if correct is None else correct
        return out

    def apply(self, model: np.ndarray, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(coefficients, evaluate)`` of the same Z at once: a processor's non-linear work.
        Subclasses may share the work between the two; the values must not change."""
        return self.coefficients(model, Z), self.evaluate(model, Z)

    def statistics(self, rows: np.ndarray, F: np.ndarray) -> Stats:
        """Stats of these rows given their coefficients."""
        return Stats(self.features(rows).T @ F[:, : self.outputs], F.sum(axis=0), rows.shape[0])

    @abstractmethod
    def update(self, model: np.ndarray, stats: Stats) -> np.ndarray:
        """The next model (a new array) from the total statistics of one batch."""

    # -- helpers ------------------------------------------------------------------------------

    def params(self) -> dict:
        """Hyperparameters under their constructor names (excluding d)."""
        return {p.name: getattr(self, p.name) for p in self.parameters}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}(d={self.d}{', ' if args else ''}{args})"


class LinearModel(Algorithm):
    """Shared parts of linreg, logreg and svm: model = ``[w (d), b]``, one output."""

    parameters = (
        Param("lr", float, 0.05, "learning rate", minimum=0, exclusive=True),
        Param("l2", float, 1e-4, "L2 penalty on w", minimum=0),
    )
    lr: float
    l2: float

    def init_model(self, first_batch: np.ndarray) -> np.ndarray:
        return np.zeros(self.d + 1)

    def weights(self, model: np.ndarray) -> np.ndarray:
        return model[: self.d, None]

    def margin(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """z = w.x + b (the bias is added here, outside the linear part)."""
        return Z[:, 1] + model[self.d]

    def update(self, model: np.ndarray, stats: Stats) -> np.ndarray:
        out = model.copy()
        if stats.count == 0:
            return out
        w = model[: self.d]
        out[: self.d] = w - self.lr * (stats.U[:, 0] / stats.count + self.l2 * w)
        out[self.d] = model[self.d] - self.lr * stats.fsum[0] / stats.count
        return out
