"""The stream learning algorithms and their registry.

A new algorithm is one module with an :class:`Algorithm` subclass that declares its
``parameters``, plus one ``register(...)`` call (here, or at run time).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..params import Param, Registry
from .base import Algorithm, Stats
from .kmeans import KMeans
from .linreg import LinReg
from .logreg import LogReg
from .mlp import MLP
from .svm import SVM

_REGISTRY: Registry[Algorithm] = Registry("algorithm")
#: Registered algorithms by name, in registration order (a read-only view of the registry).
ALGORITHMS: Mapping[str, type[Algorithm]] = _REGISTRY.view


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Make ``cls`` available by its ``name`` to specs and ``make_algorithm`` (a decorator)."""
    return _REGISTRY.register(cls)


def unregister(name: str) -> None:
    """Remove the algorithm registered as ``name``."""
    _REGISTRY.unregister(name)


def algorithm_class(name: str) -> type[Algorithm]:
    """The registered algorithm class; ValueError naming the known ones otherwise."""
    return _REGISTRY.get(name)


def parameters(name: str) -> tuple[Param, ...]:
    """The declared parameters of algorithm ``name`` (none when it is not registered)."""
    return _REGISTRY.parameters(name)


def make_algorithm(name: str, d: int, **params: object) -> Algorithm:
    """Instantiate a registered algorithm by name."""
    return algorithm_class(name)(d, **params)


_REGISTRY.register_all((LinReg, LogReg, SVM, KMeans, MLP))


__all__ = [
    "ALGORITHMS",
    "MLP",
    "SVM",
    "Algorithm",
    "KMeans",
    "LinReg",
    "LogReg",
    "Stats",
    "algorithm_class",
    "make_algorithm",
    "parameters",
    "register",
    "unregister",
]
