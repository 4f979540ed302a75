"""The stream learning algorithms and their registry."""

from __future__ import annotations

from .base import Algorithm, Stats
from .kmeans import KMeans
from .linreg import LinReg
from .logreg import LogReg
from .svm import SVM

ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (LinReg, LogReg, SVM, KMeans)}


def make_algorithm(name: str, d: int, **params: object) -> Algorithm:
    """Instantiate a registered algorithm by name."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        msg = f"algorithm {name!r} is not known: choose one of {', '.join(ALGORITHMS)}"
        raise ValueError(msg) from None
    return cls(d, **params)


__all__ = [
    "ALGORITHMS",
    "SVM",
    "Algorithm",
    "KMeans",
    "LinReg",
    "LogReg",
    "Stats",
    "make_algorithm",
]
