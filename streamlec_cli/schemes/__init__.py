"""The fault-tolerance schemes: routing and recovery policy, free of sockets; their registry.

A new scheme is one module with a :class:`Scheme` subclass that declares its ``parameters``,
plus one ``register(...)`` call (here, or at run time). :func:`label` is the one way to name
a scheme in any output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..params import Param, Registry
from .base import DATA, PARITY, PART, Assembler, BatchResult, Scheme, SlotOutput, Task
from .ec import ErasureCoded
from .partition import NoScheme, Reactive, Replication

__all__ = [
    "DATA",
    "PARITY",
    "PART",
    "SCHEMES",
    "Assembler",
    "BatchResult",
    "ErasureCoded",
    "NoScheme",
    "Reactive",
    "Replication",
    "Scheme",
    "SlotOutput",
    "Task",
    "aliases",
    "label",
    "make_scheme",
    "parameters",
    "register",
    "scheme_class",
    "unregister",
]

_REGISTRY: Registry[Scheme] = Registry("scheme")
#: Registered schemes by name, in registration order (a read-only view of the registry).
SCHEMES: Mapping[str, type[Scheme]] = _REGISTRY.view


def register(cls: type[Scheme]) -> type[Scheme]:
    """Make ``cls`` available by its ``name`` and ``aliases`` to specs and ``make_scheme``
    (a decorator)."""
    return _REGISTRY.register(cls)


def unregister(name: str) -> None:
    """Remove the scheme registered as ``name``."""
    _REGISTRY.unregister(name)


def scheme_class(name: str) -> type[Scheme]:
    """The registered scheme class for a name or alias; ValueError naming the known ones."""
    return _REGISTRY.get(name)


def aliases() -> dict[str, str]:
    """Alternative scheme names -> registered names (``replication`` -> ``rep``)."""
    return _REGISTRY.aliases()


def parameters(name: str) -> tuple[Param, ...]:
    """The declared parameters of scheme ``name`` (none when it is not registered)."""
    return _REGISTRY.parameters(name)


def label(name: str, values: Mapping[str, Any], style: str = "family") -> str:
    """The name of scheme ``name`` with parameter ``values`` (missing or None: the default).

    ``slug``: filesystem safe, for run ids (``ec42``, ``ec12-3``, ``rep3``, ``none``);
    ``family``: the scheme without its options (``ec(4,2)``, ``rep-3x``, ``reactive``);
    ``scheme``: the family with its mode (``ec(4,2)-linear``), as summaries and the console
    show it; ``variant``: the family plus the options off their defaults
    (``ec(4,2) inputs no-incremental``), as reports and plots group runs. A name that is not
    registered is returned as it is.
    """
    cls = SCHEMES.get(name)
    return str(name) if cls is None else cls.label(values, style)


def make_scheme(scheme: Any, processors: int) -> Scheme:
    """The scheme for a ``SchemeSpec`` (``name`` and ``to_dict()``) over ``processors``."""
    cls = scheme_class(scheme.name)
    values = {p.name: getattr(scheme, p.name) for p in cls.parameters}
    return cls(processors, **values)


_REGISTRY.register_all((NoScheme, ErasureCoded, Replication, Reactive))
