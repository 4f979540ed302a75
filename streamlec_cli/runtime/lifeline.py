"""A process that ends with its parent, however the parent ends (Linux ``PR_SET_PDEATHSIG``).

The C library is looked up once, here, when the module is imported: ``die_with_parent`` runs
between ``fork`` and ``exec`` (a ``preexec_fn``) in a parent that has threads, where nothing
may start a process or take a lock, and ``ctypes.util.find_library`` runs ``ldconfig``.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

_PR_SET_PDEATHSIG = 1

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)  # this process's own libc
except OSError:  # not a platform with dlopen(NULL)
    _LIBC = None


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """This process gets ``sig`` when the thread that started it ends; whether that is set
    (not on a system without ``prctl``)."""
    if _LIBC is None:
        return False
    with contextlib.suppress(AttributeError):
        return _LIBC.prctl(_PR_SET_PDEATHSIG, int(sig)) == 0
    return False
