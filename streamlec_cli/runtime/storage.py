"""What the reactive scheme keeps on disk: the write-ahead log (the source's, or each storage
worker's, ``replica.py``), the sink's checkpoints.

Both are real files, flushed and fsynced: a batch is in the log before any of it is sent,
and a checkpoint replaces the previous one atomically (write, fsync, rename, fsync the
directory), so a crash at any instant leaves either the old or the new checkpoint whole.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

_HEADER = struct.Struct("<qqqqdd")  # batch, offset, count, width, t_first, t_last


class WriteAheadLog:
    """Append-only log of the batches the source ingested, readable by batch index."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._file = open(self.path, "w+b")  # noqa: SIM115 - kept open for the run
        self._positions: list[int] = []

    def append(self, batch: int, offset: int, rows: np.ndarray, t_first: float, t_last: float):
        if batch != len(self._positions):
            msg = f"log expects batch {len(self._positions)}, got {batch}"
            raise ValueError(msg)
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        self._file.seek(0, os.SEEK_END)
        self._positions.append(self._file.tell())
        self._file.write(_HEADER.pack(batch, offset, rows.shape[0], rows.shape[1], t_first, t_last))
        self._file.write(rows.data)
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def read(self, batch: int) -> tuple[int, np.ndarray, float, float]:
        """``(offset, rows, t_first, t_last)`` of a logged batch."""
        self._file.seek(self._positions[batch])
        _, offset, count, width, t_first, t_last = _HEADER.unpack(self._file.read(_HEADER.size))
        rows = np.fromfile(self._file, dtype=np.float64, count=count * width)
        return offset, rows.reshape(count, width), t_first, t_last

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def bytes(self) -> int:
        """The log's size on disk."""
        return self._file.seek(0, os.SEEK_END)

    def close(self) -> None:
        self._file.close()


def write_checkpoint(path: Path, first_version: int, models: list[np.ndarray]) -> None:
    """Atomically replace the checkpoint at ``path`` with these model versions."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(first_version, dtype=np.int64))
        np.save(f, np.stack(models))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: Path) -> tuple[int, list[np.ndarray]]:
    """``(first_version, models)`` from a checkpoint file."""
    with open(path, "rb") as f:
        first = int(np.load(f))
        models = np.load(f)
    return first, list(models)
