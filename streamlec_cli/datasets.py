"""Datasets: the paper's HIGGS and KDD12, from the real files or from seeded generators.

Rows are float64 ``[label, features...]`` (HIGGS: 28 features, KDD12: 11). A spec's dataset
streams the real file when ``path`` is given, or when a real file sits at a default place
(:func:`default_file`, under :func:`data_dir`); otherwise the seeded generator of the same
schema. :func:`source_description` says which, for ``meta.json``.

Generators (:mod:`.data.higgs`, :mod:`.data.kdd12`): row ``i`` of the stream ``(name, seed)``
depends on nothing else, so any range or batch size reads the same items, and replays and
sweeps see the same data. They produce several million rows per second on one core, so the
source is never the bottleneck. Files (:mod:`.data.formats`): every published format, plain or
compressed, read in blocks of lines; a malformed line raises :class:`DatasetError` naming the
file, the line and what was expected.
"""

from __future__ import annotations

import math
import os
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .data import fields, formats, higgs, kdd12
from .data.formats import FORMATS, DatasetError

if TYPE_CHECKING:
    from .spec import DatasetSpec

__all__ = [
    "DATASETS",
    "FORMATS",
    "DatasetError",
    "DatasetInfo",
    "FileSummary",
    "batches",
    "check_path",
    "data_dir",
    "default_file",
    "describe_file",
    "feature_count",
    "generate",
    "open_batches",
    "read_file",
    "read_staged",
    "resolve_file",
    "source_description",
    "stage",
    "write_synthetic",
]

DATA_DIR_ENV = "STREAMLEC_DATA_DIR"
DEFAULT_DATA_DIR = "datasets"
GENERATOR_VERSION = 2  # bump when a seeded stream changes
_CHUNK_ROWS = 16384  # batches() generates at least this many rows at a time
_WRITE_ROWS = 4096  # rows formatted at a time when writing a file (a few MB of text)


@dataclass(frozen=True)
class DatasetInfo:
    """A built-in dataset: its schema, file formats and where its real file is looked for."""

    name: str
    features: int
    description: str
    feature_names: tuple[str, ...]
    formats: tuple[str, ...]
    default_files: tuple[str, ...]  # relative to data_dir(), first found wins


DATASETS = {
    "higgs": DatasetInfo(
        "higgs",
        28,
        "HIGGS (UCI): signal (1) or background (0); 21 low-level + 7 mass-like features",
        higgs.FEATURE_NAMES,
        ("higgs-csv",),
        ("HIGGS.csv.gz", "HIGGS.csv"),
    ),
    "kdd12": DatasetInfo(
        "kdd12",
        11,
        "KDD Cup 2012 track 2: click (1) or not (0); 11 features in [0, 1]",
        kdd12.FEATURE_NAMES,
        ("kdd12-dense", "kdd12-raw", "kdd12-libsvm"),
        (
            "kdd12.txt.gz",  # the dense trace
            "kdd12.txt",
            "training.txt.gz",  # track 2's raw file
            "training.txt",
            "track2/training.txt",
            "kdd12.bz2",  # LIBSVM's
            "kdd12",
        ),
    ),
}
_GENERATORS: dict[str, types.ModuleType] = {"higgs": higgs, "kdd12": kdd12}


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        msg = f"dataset {name!r} is not known: choose one of {', '.join(DATASETS)}"
        raise DatasetError(msg) from None


def feature_count(name: str) -> int:
    """Number of features (columns after the label) of dataset ``name``."""
    return _info(name).features


# -- seeded generators -------------------------------------------------------------------------


def _generate_into(name: str, start: int, out: np.ndarray, seed: int) -> np.ndarray:
    module = _GENERATORS[name]
    module.fill(fields.bit_generator(module.TAG, seed, start, module.WORDS), out)
    return out


def generate(name: str, start: int, stop: int, seed: int = 1) -> np.ndarray:
    """Rows ``start .. stop-1`` of the seeded synthetic stream ``name``, shape (n, 1 + d)."""
    width = 1 + _info(name).features
    if start < 0 or stop < start:
        msg = f"rows {start}..{stop}: need 0 <= start <= stop"
        raise DatasetError(msg)
    return _generate_into(name, start, np.empty((stop - start, width)), seed)


def batches(name: str, items: int, batch: int, seed: int = 1) -> Iterator[np.ndarray]:
    """The first ``items`` rows of the stream in batches of ``batch`` (the last may be shorter).

    Rows are generated in chunks of whole batches (at least ``_CHUNK_ROWS`` rows) from one
    advancing random stream; each batch is a view of a chunk that nothing else reuses.
    """
    width = 1 + _info(name).features
    if batch < 1:
        msg = f"batch must be at least 1, not {batch}"
        raise DatasetError(msg)
    module = _GENERATORS[name]
    bitgen = fields.bit_generator(module.TAG, seed, 0, module.WORDS)
    chunk = batch * max(1, math.ceil(_CHUNK_ROWS / batch))
    for first in range(0, items, chunk):
        rows = np.empty((min(chunk, items - first), width))
        module.fill(bitgen, rows)
        for start in range(0, rows.shape[0], batch):
            yield rows[start : start + batch]


# -- real files ---------------------------------------------------------------------------------


def data_dir() -> Path:
    """Where real files are looked for: ``$STREAMLEC_DATA_DIR``, else ``./datasets``."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def default_file(name: str) -> Path | None:
    """The first of the dataset's default files that exists under :func:`data_dir`."""
    for candidate in _info(name).default_files:
        path = data_dir() / candidate
        if path.is_file():
            return path
    return None


def check_path(dataset: DatasetSpec) -> None:
    """A :class:`DatasetError` unless ``dataset.path`` (when given) names a regular file that
    can be read: a missing file, a directory, a pipe or a device is named as such."""
    if dataset.path is not None:
        formats.check_file(dataset.path)


def resolve_file(dataset: DatasetSpec) -> tuple[Path, str] | None:
    """``(path, format)`` of the real file a spec's dataset streams, or None for the generator.

    The format is ``dataset.format`` when given, else detected from the content; it must be
    one of the dataset's formats.
    """
    path = Path(dataset.path) if dataset.path is not None else default_file(dataset.name)
    if path is None:
        return None
    fmt = dataset.format or formats.detect(path)
    _check_format(path, fmt, dataset.name)
    return path, fmt


def _check_format(path: Path, fmt: str, name: str | None) -> None:
    if fmt not in FORMATS:
        msg = f"format {fmt!r} is not known: choose one of {', '.join(FORMATS)}"
        raise DatasetError(msg)
    if name is not None and FORMATS[fmt].dataset != name:
        msg = (
            f"{path} holds {FORMATS[fmt].title} data (format {fmt}), not {name}: "
            f"set dataset.name to {FORMATS[fmt].dataset} or point dataset.path at a {name} file"
        )
        raise DatasetError(msg)


def read_file(
    path: str | Path,
    fmt: str | None = None,
    name: str | None = None,
    scaling: kdd12.Scaling | None = None,
) -> Iterator[np.ndarray]:
    """A data file's rows in the dense form, chunk by chunk (a few thousand rows each).

    ``fmt`` None detects the format; ``name`` checks that the file holds that dataset;
    ``scaling`` scales a raw or LIBSVM KDD12 file (default: the fixed maxima).
    """
    path = Path(path)
    fmt = fmt or formats.detect(path)
    _check_format(path, fmt, name)
    return formats.read(path, fmt, scaling)


def scaling(dataset: DatasetSpec) -> kdd12.Scaling | None:
    """The KDD12 scaling a spec's dataset uses (its ``maxima`` over the fixed ones); None
    for HIGGS, whose features are read as they are."""
    return kdd12.Scaling(dataset.maxima) if dataset.name == "kdd12" else None


def _rebatch(chunks: Iterable[np.ndarray], items: int, batch: int) -> Iterator[np.ndarray]:
    """Chunks of any size cut into batches of ``batch`` rows, ``items`` rows in all at most."""
    pending: list[np.ndarray] = []
    have = 0
    left = items
    for chunk in chunks:
        chunk = chunk[:left]
        left -= chunk.shape[0]
        while chunk.shape[0]:
            take = min(batch - have, chunk.shape[0])
            pending.append(chunk[:take])
            have += take
            chunk = chunk[take:]
            if have == batch:
                yield pending[0] if len(pending) == 1 else np.concatenate(pending)
                pending, have = [], 0
        if left <= 0:
            break
    if have:
        yield np.concatenate(pending)


def open_batches(dataset: DatasetSpec, batch: int) -> Iterator[np.ndarray]:
    """Batches of a spec's ``dataset``: the real file when there is one, else the generator.

    At most ``dataset.items`` rows in batches of ``batch`` (the last may be shorter). A file is
    streamed block by block, never read whole; the file's problems (missing, empty, unknown
    format, wrong dataset) are raised here, a malformed line when the stream reaches it.
    """
    if batch < 1:
        msg = f"batch must be at least 1, not {batch}"
        raise DatasetError(msg)
    found = resolve_file(dataset)
    if found is None:
        return batches(dataset.name, dataset.items, batch, dataset.seed)
    path, fmt = found
    return _rebatch(formats.read(path, fmt, scaling(dataset)), dataset.items, batch)


# -- staging ------------------------------------------------------------------------------------

STAGED_FILE = "stream.f64"  # in the run directory: the staged rows (``dataset.stage``)
_STAGE_ROWS = 65536  # rows generated (or parsed) and written at a time


def stage(dataset: DatasetSpec, path: str | Path) -> int:
    """Write the rows ``dataset`` streams to ``path``, raw float64 in C order, before a run.

    A source reading them (:func:`read_staged`) does no per-row work, as a source streaming a
    dataset already loaded would: the cost of generating or parsing is paid here, outside the
    measured stream. Returns the rows written.
    """
    rows = 0
    with open(path, "wb") as f:
        for chunk in open_batches(dataset, _STAGE_ROWS):
            f.write(np.ascontiguousarray(chunk).data)
            rows += chunk.shape[0]
    return rows


def read_staged(path: str | Path, width: int, batch: int) -> Iterator[np.ndarray]:
    """The rows of a staged file in batches of ``batch``, each read into an array of its own
    (the source sends views of a batch without copying, so no buffer is reused)."""
    row_bytes = 8 * width
    with open(path, "rb", buffering=0) as f:
        while True:
            out = np.empty((batch, width))
            view = memoryview(out).cast("B")
            got = 0
            while got < view.nbytes:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            if got < row_bytes:
                return
            yield out[: got // row_bytes]


def source_description(dataset: DatasetSpec) -> dict:
    """What ``meta.json`` says about where the data came from (generator or file) and, for
    KDD12, the scaling that made its features (``kdd12.Scaling.describe``)."""
    found = resolve_file(dataset)
    used = scaling(dataset)
    scaled = {} if used is None else {"scaling": used.describe()}
    if found is None:
        return {
            "kind": "generator",
            "name": dataset.name,
            "seed": dataset.seed,
            "items": dataset.items,
            "generator_version": GENERATOR_VERSION,
            "staged": dataset.stage,
            **scaled,
        }
    path, fmt = found
    return {
        "kind": "file",
        "name": dataset.name,
        "path": str(path.resolve()),
        "format": fmt,
        "format_detected": dataset.format is None,
        "compression": formats.compression(path),
        "default_location": dataset.path is None,
        "items": dataset.items,
        "staged": dataset.stage,
        **scaled,
    }


# -- writing and describing files ---------------------------------------------------------------


def write_synthetic(
    name: str, items: int, path: str | Path, seed: int = 1, fmt: str | None = None
) -> int:
    """Write the first ``items`` rows of the seeded stream to ``path`` in a real file format.

    ``fmt`` defaults to the dataset's main format (``higgs-csv``, ``kdd12-dense``); a path
    ending in ``.gz`` (``.bz2``, ``.xz``) is compressed. Returns the rows written.
    """
    info = _info(name)
    fmt = fmt or formats.DEFAULT_FORMAT[name]
    if fmt not in info.formats:
        msg = f"format {fmt!r} is not a {name} format: choose one of {', '.join(info.formats)}"
        raise DatasetError(msg)
    if items < 1:
        msg = f"items must be at least 1, not {items}"
        raise DatasetError(msg)
    return formats.write(path, fmt, batches(name, items, _WRITE_ROWS, seed))


@dataclass
class FileSummary:
    """What ``streamlec datasets info`` prints about a data file (in the dense form)."""

    path: str
    format: str
    dataset: str
    compression: str | None
    rows: int
    positives: int
    feature_names: tuple[str, ...]
    minimum: np.ndarray
    mean: np.ndarray
    maximum: np.ndarray
    scaling: kdd12.Scaling | None = None  # KDD12: the scaling the features were made with
    largest: np.ndarray | None = None  # raw and LIBSVM: the largest integer behind each feature

    @property
    def positive_rate(self) -> float:
        return self.positives / self.rows if self.rows else float("nan")

    def above_maxima(self) -> dict[str, int]:
        """Features whose largest value in the file is above its maximum, with that value:
        what ``dataset.maxima`` must give for a run to read the file."""
        if self.scaling is None or self.largest is None:
            return {}
        over = self.largest > self.scaling.maxima
        return {
            name: int(value)
            for name, value, bad in zip(self.feature_names, self.largest, over, strict=True)
            if bad
        }


def describe_file(
    path: str | Path, fmt: str | None = None, items: int | None = None
) -> FileSummary:
    """Stream a data file once (or its first ``items`` rows) and summarise it: its features
    as a run makes them (KDD12: with the fixed maxima, values above them included, and the
    largest value behind each feature of a raw or LIBSVM file)."""
    path = Path(path)
    fmt = fmt or formats.detect(path)
    _check_format(path, fmt, None)
    name = FORMATS[fmt].dataset
    width = 1 + DATASETS[name].features
    rows = positives = 0
    low, high, total = np.full(width, np.inf), np.full(width, -np.inf), np.zeros(width)
    used = kdd12.Scaling() if name == "kdd12" else None
    if fmt in formats.SCALED:  # unchecked: values above their maxima are shown, not refused
        maxima = kdd12.Scaling().maxima
        chunks = (formats.features(v, maxima) for v in formats.read_values(path, fmt, used))
    else:
        chunks = formats.read(path, fmt)
    for chunk in _rebatch(chunks, items, 65536) if items is not None else chunks:
        rows += chunk.shape[0]
        positives += int(np.count_nonzero(chunk[:, 0] > 0.5))
        np.minimum(low, chunk.min(axis=0), out=low)
        np.maximum(high, chunk.max(axis=0), out=high)
        total += chunk.sum(axis=0)
    return FileSummary(
        path=str(path),
        format=fmt,
        dataset=name,
        compression=formats.compression(path),
        rows=rows,
        positives=positives,
        feature_names=DATASETS[name].feature_names,
        minimum=low[1:],
        mean=total[1:] / max(rows, 1),
        maximum=high[1:],
        scaling=used,
        # the integers behind the largest features (feature = value / maximum)
        largest=np.rint(high[1:] * used.maxima) if fmt in formats.SCALED else None,
    )
