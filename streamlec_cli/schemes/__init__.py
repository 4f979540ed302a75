"""The fault-tolerance schemes: routing and recovery policy, free of sockets."""

from __future__ import annotations

from typing import Any

from .base import DATA, PARITY, PART, Assembler, BatchResult, Scheme, SlotOutput, Task
from .ec import ErasureCoded
from .partition import NoScheme, Reactive, Replication

SCHEMES = ("none", "ec", "rep", "reactive")


def make_scheme(scheme: Any, processors: int) -> Scheme:
    """The scheme for a ``SchemeSpec`` (anything with its attributes) over ``processors``."""
    if scheme.name == "none":
        return NoScheme(processors)
    if scheme.name == "ec":
        return ErasureCoded(
            processors,
            k=scheme.k,
            r=scheme.r,
            code=scheme.code,
            attach=scheme.attach,
            incremental=scheme.incremental,
        )
    if scheme.name == "rep":
        return Replication(processors, copies=scheme.copies)
    if scheme.name == "reactive":
        return Reactive(
            processors, checkpoint_every=scheme.checkpoint_every, wal_fsync=scheme.wal_fsync
        )
    msg = f"scheme {scheme.name!r} is not known: choose one of {', '.join(SCHEMES)}"
    raise ValueError(msg)


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
    "make_scheme",
]
