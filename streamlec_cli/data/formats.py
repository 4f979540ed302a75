"""Data files in every published format of HIGGS and KDD12: detect, read in chunks, write.

Formats (``dataset.format`` and ``--format`` take these names):

* ``higgs-csv``: the UCI file, no header, 29 comma-separated numbers per line: label (0 or 1)
  then 28 features.
* ``kdd12-dense``: the dense trace of the paper's prototype, 12 space-separated numbers: click
  label (0 or 1) then 11 features in [0, 1].
* ``kdd12-raw``: track 2's ``training.txt``, 12 tab-separated non-negative integers: clicks,
  impressions, display URL, ad, advertiser, depth, position, query, keyword, title,
  description, user. Dense form: label ``clicks > 0``; each other column divided by its
  maximum in the KDD12 scaling (``kdd12.Scaling``: fixed maxima, 3 for depth and position).
* ``kdd12-libsvm``: LIBSVM's ``kdd12``, ``label index:value ...`` with labels 0/1 or -1/+1 and
  at most 11 ascending indices per line (kdd12 lists one per field). Dense form: label 1 for a
  positive label; the j-th listed index is field j's, ``index - offset_j`` its id (each field's
  ids numbered after the previous fields' maxima), divided by field j's maximum; values are
  ignored (kdd12's are all 1); a field a line does not list is 0.

The scaling is the same for every KDD12 form, and for the generator: the same rows give the
same features in the dense trace, ``training.txt`` and LIBSVM, whatever else the file holds
(a value above its maximum is an error naming the line, never a feature above 1).

Any of them may be compressed with gzip, bzip2 or xz, or be the data member of a zip archive;
compression is recognised by the file's first bytes, not its name. Files are read in blocks of
whole lines (a few MB), so memory stays flat whatever the file's size. Blocks are parsed by
pandas' C parser and checked with numpy; a block that fails is read again line by line, so
every malformed line is a :class:`DatasetError` naming the file, the line number and what was
expected.

Writing (``streamlec datasets gen``) takes the generator's dense rows: HIGGS with the UCI
file's own ``%.18e`` numbers, the dense trace with the shortest decimals that read back
exactly, raw and LIBSVM as the integers behind the features (LIBSVM: each field's ids numbered
after the previous fields', one ``index:1`` per field).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import kdd12

BLOCK_BYTES = 1 << 22  # text read per step
MAX_LINE_BYTES = 1 << 24  # a longer "line" means this is not a text data file
GZIP_LEVEL = 6


class DatasetError(ValueError):
    """A data file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class FileFormat:
    """One published file format of one dataset."""

    name: str
    dataset: str
    title: str
    expected: str  # what one line holds, for error messages


KDD12_FIELDS = ("clicks", *kdd12.FEATURE_NAMES)  # a training.txt line: clicks, impression, ...
FORMATS: dict[str, FileFormat] = {
    "higgs-csv": FileFormat(
        "higgs-csv", "higgs", "HIGGS CSV", "29 comma-separated numbers (label then 28 features)"
    ),
    "kdd12-dense": FileFormat(
        "kdd12-dense",
        "kdd12",
        "KDD12 dense trace",
        "12 space-separated numbers (click label 0 or 1, then 11 features in [0, 1])",
    ),
    "kdd12-raw": FileFormat(
        "kdd12-raw",
        "kdd12",
        "KDD12 track 2 training.txt",
        "12 tab-separated non-negative integers (" + ", ".join(KDD12_FIELDS) + ")",
    ),
    "kdd12-libsvm": FileFormat(
        "kdd12-libsvm",
        "kdd12",
        "KDD12 LIBSVM",
        "'label index:value ...' with label 0/1 or -1/+1 and at most 11 ascending indices",
    ),
}
DEFAULT_FORMAT = {"higgs": "higgs-csv", "kdd12": "kdd12-dense"}
_EVERY_FORMAT = "; or ".join(f"{f.expected} for {f.title}" for f in FORMATS.values())
_EVERY_TITLE = ", ".join(f.title for f in FORMATS.values())


class _Unparsed(Exception):
    """The fast parser refused a block; the slow path finds the line and says why."""


# -- opening (decompression by content) --------------------------------------------------------

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)


def compression(path: str | Path) -> str | None:
    """``gzip``, ``bzip2``, ``xz``, ``zip`` or None, from the file's first bytes."""
    head = _head(Path(path))
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_file(path: str | Path) -> Path:
    """``path`` if it names a regular file that can be opened for reading, else a
    :class:`DatasetError` saying what it is. A pipe or a device is refused without being
    opened: opening a FIFO blocks, and a device such as /dev/urandom never ends."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        msg = f"data file '{path}' does not exist"
        raise DatasetError(msg) from None
    except OSError as exc:
        msg = f"data file '{path}' cannot be read: {exc.strerror or exc}"
        raise DatasetError(msg) from exc
    for test, kind in _KINDS:
        if test(mode):
            msg = (
                f"data file '{path}' is {kind}, not a data file: dataset.path must name a "
                "regular file (plain or compressed)"
            )
            raise DatasetError(msg)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        msg = f"data file '{path}' cannot be read: {exc.strerror or exc}"
        raise DatasetError(msg) from exc
    return path


def _head(path: Path) -> bytes:
    check_file(path)
    try:
        with open(path, "rb") as f:
            return f.read(6)
    except OSError as exc:
        msg = f"data file '{path}' cannot be read: {exc.strerror or exc}"
        raise DatasetError(msg) from exc


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """``(raw, stream)``: the file as opened, and its decompressed bytes read from it."""
    kind = compression(path)
    try:
        with open(path, "rb") as raw, _decompressed(path, raw, kind) as stream:
            yield raw, stream
    except FileNotFoundError:
        msg = f"data file '{path}' was deleted before it could be read"
        raise DatasetError(msg) from None
    except (OSError, zipfile.BadZipFile) as exc:
        msg = f"data file '{path}' cannot be opened: {exc}"
        raise DatasetError(msg) from exc


def _decompressed(path: Path, raw: BinaryIO, kind: str | None) -> BinaryIO:
    """The decompressed bytes of ``raw`` (which the caller closes)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw, "rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, "rb")
    if kind == "zip":
        return _open_zip_member(path, raw)
    return raw


def _open_zip_member(path: Path, raw: BinaryIO) -> BinaryIO:
    archive = zipfile.ZipFile(raw)
    members = [m for m in archive.infolist() if not m.is_dir()]
    preferred = [m for m in members if Path(m.filename).name == "training.txt"]
    chosen = preferred or members
    try:
        if len(chosen) != 1:
            names = ", ".join(m.filename for m in members) or "nothing"
            msg = f"zip archive '{path}' must hold one data file (or a training.txt): {names}"
            raise DatasetError(msg)
        return archive.open(chosen[0])
    finally:
        archive.close()


def _check_whole(path: Path, raw: BinaryIO, size: int, line: int) -> None:
    """At the end of the data (or a damaged read): refuse a file that shrank while it was
    read, which would otherwise end the stream early without a word."""
    now = os.fstat(raw.fileno()).st_size
    if now < size:
        msg = (
            f"data file '{path}' was truncated while it was read (from {size:,} to {now:,} "
            f"bytes, near line {line}): the stream cannot go on; restore the file and run again"
        )
        raise DatasetError(msg)


def _blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(number of the first line, whole lines)`` of the decompressed file, block by block.

    A file deleted after it was opened is read to its end (the open file keeps its data);
    one truncated while it is read is a :class:`DatasetError`."""
    line = 1
    rest = b""
    with _opened(path) as (raw, stream):
        size = os.fstat(raw.fileno()).st_size
        while True:
            try:
                data = stream.read(BLOCK_BYTES)
            except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
                _check_whole(path, raw, size, line)
                msg = (
                    f"{path}, near line {line}: the compressed data is damaged or cut short ({exc})"
                )
                raise DatasetError(msg) from exc
            if not data:
                _check_whole(path, raw, size, line)
                break
            data = rest + data if rest else data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) > MAX_LINE_BYTES:
                    msg = (
                        f"{path}, line {line}: no line break in the first {len(data)} bytes; "
                        "this is not a text data file"
                    )
                    raise DatasetError(msg)
                rest = data
                continue
            block, rest = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
            yield line, block
            line += block.count(b"\n")
    if rest:
        yield line, rest


def _first_line(path: Path) -> tuple[int, str] | None:
    """The first line that is not blank, with its number; None for an empty file."""
    for first, block in _blocks(path):
        for offset, raw in enumerate(block.split(b"\n")):
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                return first + offset, text
    return None


def detect(path: str | Path) -> str:
    """The format of a data file, from its first line that is not blank."""
    path = Path(path)
    found = _first_line(path)
    if found is None:
        raise _empty(path, f"one of {_EVERY_TITLE}")
    number, text = found
    tokens = text.split()
    if len(tokens) > 1 and ":" in tokens[1]:
        return "kdd12-libsvm"
    if "," in text:
        return "higgs-csv"
    if "\t" in text:
        return "kdd12-raw"
    if len(tokens) > 1:
        return "kdd12-dense"
    msg = (
        f"{path}, line {number}: cannot tell the format from {_shorten(text)!r}; expected "
        f"{_EVERY_FORMAT}. Name the format (dataset.format or --format) to check it line by line"
    )
    raise DatasetError(msg)


def _empty(path: Path, expected: str) -> DatasetError:
    return DatasetError(f"{path}, line 1: the file is empty (no data line); expected {expected}")


def require_content(path: str | Path, fmt: str) -> None:
    """Raise the 'file is empty' error when the file has no line that is not blank."""
    path = Path(path)
    if _first_line(path) is None:
        raise _empty(path, FORMATS[fmt].expected)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- line checks (the slow path: exact line and reason) ----------------------------------------


def _number(token: str, field: int, name: str | None = None) -> float | str:
    what = f"field {field}" + (f" ({name})" if name else "")
    try:
        value = float(token)
    except ValueError:
        return f"{what} is {_shorten(token)!r}, not a number"
    if not math.isfinite(value):
        return f"{what} is {token!r}: expected a finite number"
    return value


def _fields(text: str, sep: str | None, count: int, fmt: str) -> list[float] | str:
    parts = text.split(sep)
    if len(parts) != count:
        found = f"found {len(parts)} field" + ("" if len(parts) == 1 else "s")
        return f"expected {FORMATS[fmt].expected}, {found}"
    values = []
    for i, token in enumerate(parts):
        name = KDD12_FIELDS[i] if fmt == "kdd12-raw" else None
        value = _number(token.strip(), i + 1, name)
        if isinstance(value, str):
            return value
        values.append(value)
    return values


def _label_problem(value: float, allowed: tuple[float, ...] = (0.0, 1.0)) -> str | None:
    if value in allowed:
        return None
    names = [f"{v:g}" for v in allowed]
    labels = ", ".join(names[:-1]) + f" or {names[-1]}"
    return f"the label (field 1) is {value:g}: expected {labels}"


def _higgs_line(text: str) -> str | None:
    values = _fields(text, ",", 29, "higgs-csv")
    return values if isinstance(values, str) else _label_problem(values[0])


def _dense_line(text: str) -> str | None:
    values = _fields(text, None, 12, "kdd12-dense")
    if isinstance(values, str):
        return values
    for i, value in enumerate(values[1:]):
        if not 0.0 <= value <= 1.0:
            name = kdd12.FEATURE_NAMES[i]
            return f"field {i + 2} ({name}) is {value:g}: expected a value in [0, 1]"
    return _label_problem(values[0])


def _raw_line(text: str) -> str | None:
    values = _fields(text, "\t", 12, "kdd12-raw")
    if isinstance(values, str):
        return values
    for i, value in enumerate(values):
        if value < 0 or value != math.floor(value):
            name = KDD12_FIELDS[i]
            return f"field {i + 1} ({name}) is {value:g}: expected a non-negative integer"
    depth, position = values[kdd12.DEPTH], values[kdd12.POSITION]
    if depth not in (1, 2, 3):
        return f"field {kdd12.DEPTH + 1} (depth) is {depth:g}: expected 1, 2 or 3"
    if not 1 <= position <= depth:
        return (
            f"field {kdd12.POSITION + 1} (position) is {position:g}: expected 1 to the depth "
            f"({depth:g})"
        )
    return None


def _libsvm_line(text: str) -> str | None:
    tokens = text.split("#", 1)[0].split()
    label = _number(tokens[0], 1, "label")
    if isinstance(label, str):
        return label
    problem = _label_problem(label, (-1.0, 0.0, 1.0))
    if problem:
        return problem
    entries = tokens[1:]
    if len(entries) > kdd12.COLUMNS - 1:
        return (
            f"{len(entries)} index:value entries: expected at most {kdd12.COLUMNS - 1} "
            "(one per kdd12 field)"
        )
    previous = -1
    for k, entry in enumerate(entries, start=2):
        index, colon, value = entry.partition(":")
        if not colon or not index.isdigit():
            return f"field {k} is {_shorten(entry)!r}: expected index:value with an integer index"
        if isinstance(_number(value, k), str):
            return f"field {k} is {_shorten(entry)!r}: its value is not a number"
        if int(index) <= previous:
            return f"field {k} is {entry!r}: indices must be ascending and distinct"
        previous = int(index)
    return None


_LINE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "higgs-csv": _higgs_line,
    "kdd12-dense": _dense_line,
    "kdd12-raw": _raw_line,
    "kdd12-libsvm": _libsvm_line,
}


def _locate(path: Path, fmt: str, first: int, block: bytes, reason: str) -> DatasetError:
    """The error for the first bad line of a block the fast path refused."""
    check = _LINE_CHECKS[fmt]
    for offset, raw in enumerate(block.split(b"\n")):
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            continue
        problem = check(text)
        if problem:
            return DatasetError(f"{path}, line {first + offset}: {problem}")
    last = first + max(block.count(b"\n") - 1, 0)
    return DatasetError(f"{path}, lines {first}-{last}: cannot be read as {fmt} ({reason})")


# -- fast block parsers: text -> "raw" rows [label, 11 or 28 numbers] --------------------------


def _table(block: bytes, sep: str, columns: int) -> np.ndarray:
    import pandas as pd

    if not block.strip():
        return np.empty((0, columns))
    try:
        frame = pd.read_csv(
            io.BytesIO(block), header=None, sep=sep, dtype=np.float64, engine="c", na_filter=False
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _Unparsed(str(exc).strip()) from None
    rows = frame.to_numpy()
    if rows.shape[1] != columns:
        raise _Unparsed(f"{rows.shape[1]} columns")
    if not np.isfinite(rows).all():
        raise _Unparsed("a value is not a finite number")
    return rows


def _labels_ok(labels: np.ndarray, allowed: tuple[float, ...] = (0.0, 1.0)) -> None:
    if not np.isin(labels, allowed).all():
        raise _Unparsed("a label is out of range")


def _parse_higgs(block: bytes) -> np.ndarray:
    rows = _table(block, ",", 29)
    _labels_ok(rows[:, 0])
    return rows


def _parse_dense(block: bytes) -> np.ndarray:
    rows = _table(block, r"\s+", 12)
    _labels_ok(rows[:, 0])
    features = rows[:, 1:]
    if ((features < 0.0) | (features > 1.0)).any():
        raise _Unparsed("a feature is outside [0, 1]")
    return rows


def _parse_raw(block: bytes) -> np.ndarray:
    rows = _table(block, "\t", 12)
    if (rows < 0).any() or (rows != np.floor(rows)).any():
        raise _Unparsed("a value is not a non-negative integer")
    depth, position = rows[:, kdd12.DEPTH], rows[:, kdd12.POSITION]
    if not np.isin(depth, (1.0, 2.0, 3.0)).all() or ((position < 1) | (position > depth)).any():
        raise _Unparsed("depth or position out of range")
    return rows


def _parse_libsvm(block: bytes) -> np.ndarray:
    """``[label in {0, 1}, index at position 1..11 (NaN where the line lists fewer)]``.

    Read as a whitespace table after turning every ``:`` into a space (pandas' C parser), then
    checked: one ``:`` per entry on every line, indices ascending non-negative integers.
    """
    import pandas as pd

    width = kdd12.COLUMNS - 1
    data = [line.split(b"#", 1)[0] for line in block.split(b"\n")]
    colons = np.array([line.count(b":") for line in data if line.strip()])
    if not colons.size:
        return np.empty((0, 1 + width))
    try:
        frame = pd.read_csv(
            io.BytesIO(b"\n".join(data).replace(b":", b" ")),
            sep=r"\s+",
            header=None,
            names=range(1 + 2 * width),
            dtype=np.float64,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _Unparsed(str(exc).strip()) from None
    table = frame.to_numpy()
    labels, index, value = table[:, 0], table[:, 1::2], table[:, 2::2]
    present = ~np.isnan(index)
    if table.shape[0] != colons.shape[0] or (present.sum(axis=1) != colons).any():
        raise _Unparsed("not one ':' per index:value entry")
    _labels_ok(labels, (-1.0, 0.0, 1.0))
    listed = index[present]
    if (
        (present[:, 1:] & ~present[:, :-1]).any()
        or (np.isnan(value) != ~present).any()
        or (listed < 0).any()
        or (listed != np.floor(listed)).any()
        or (np.diff(index, axis=1)[present[:, 1:]] <= 0).any()
    ):
        raise _Unparsed("an entry is not index:value with ascending integer indices")
    rows = np.empty((table.shape[0], 1 + width))
    rows[:, 0] = labels > 0
    rows[:, 1:] = index
    return rows


_PARSERS: dict[str, Callable[[bytes], np.ndarray]] = {
    "higgs-csv": _parse_higgs,
    "kdd12-dense": _parse_dense,
    "kdd12-raw": _parse_raw,
    "kdd12-libsvm": _parse_libsvm,
}


def _parsed(path: Path, fmt: str) -> Iterator[tuple[int, bytes, np.ndarray]]:
    """``(number of the block's first line, the block, its rows)``, block by block."""
    parse = _PARSERS[fmt]
    for first, block in _blocks(path):
        try:
            rows = parse(block)
        except _Unparsed as exc:
            raise _locate(path, fmt, first, block, str(exc)) from None
        if rows.shape[0]:
            yield first, block, rows


# -- dense form ---------------------------------------------------------------------------------

SCALED = ("kdd12-raw", "kdd12-libsvm")  # formats whose integers become features by a Scaling


def _values(rows: np.ndarray, fmt: str, scaling: kdd12.Scaling) -> np.ndarray:
    """``[label 0 or 1, the 11 integers behind the features]`` of parsed raw or LIBSVM rows
    (NaN where a LIBSVM line lists fewer fields)."""
    if fmt == "kdd12-libsvm":
        out = rows.copy()
        out[:, 1:] -= scaling.offsets
        return out
    out = rows.copy()
    out[:, 0] = rows[:, 0] > 0  # clicks > 0
    return out


def features(values: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """Dense rows from ``_values``: each value over its maximum, a field not listed 0."""
    out = values.copy()
    np.divide(values[:, 1:], maxima, out=out[:, 1:])
    np.nan_to_num(out, copy=False, nan=0.0)
    return out


def _out_of_range(
    path: Path, fmt: str, first: int, block: bytes, values: np.ndarray, scaling: kdd12.Scaling
) -> DatasetError | None:
    """The error for the first value of a block outside ``0..maximum`` of its feature."""
    maxima = scaling.maxima
    features = values[:, 1:]
    bad = (features < 0) | (features > maxima)  # NaN (not listed) is neither
    if not bad.any():
        return None
    row, column = divmod(int(np.flatnonzero(bad)[0]), bad.shape[1])
    name, value, top = kdd12.FEATURE_NAMES[column], features[row, column], maxima[column]
    where = f"{path}, line {_line_of(block, first, row)}"
    fix = (
        f"a file whose {name} ids go further needs its own maximum, dataset.maxima.{name} in the "
        f"spec (streamlec datasets info {path} shows the file's largest values)"
    )
    if fmt == "kdd12-libsvm":
        offset = scaling.offsets[column]
        return DatasetError(
            f"{where}: entry {column + 1} (index {value + offset:.0f}) is not a {name} index: "
            f"the KDD12 scaling, the same for every format, numbers {name}'s ids "
            f"{offset:.0f}..{offset + top:.0f} (each field's after the previous fields' "
            f"maxima) and makes index - {offset:.0f} over {top:.0f} its feature; {fix}"
        )
    return DatasetError(
        f"{where}: field {column + 2} ({name}) is {value:.0f}, above {top:.0f}, its maximum in "
        f"the KDD12 scaling (feature = value / maximum, the same for every format); {fix}"
    )


def _line_of(block: bytes, first: int, row: int) -> int:
    """The line number of a block's ``row``-th data line (blank and comment lines skipped)."""
    seen = -1
    for offset, line in enumerate(block.split(b"\n")):
        if line.split(b"#", 1)[0].strip():
            seen += 1
            if seen == row:
                return first + offset
    return first


def read(path: str | Path, fmt: str, scaling: kdd12.Scaling | None = None) -> Iterator[np.ndarray]:
    """The file's rows in the dense form ``[label, features...]``, chunk by chunk (float64).

    A raw or LIBSVM KDD12 file is scaled by ``scaling`` (default: the fixed maxima), and a
    value outside its feature's range is a :class:`DatasetError` naming the line."""
    path = Path(path)
    require_content(path, fmt)
    if fmt in SCALED:
        return _scaled(path, fmt, scaling or kdd12.Scaling())
    return (rows for _, _, rows in _parsed(path, fmt))


def _scaled(path: Path, fmt: str, scaling: kdd12.Scaling) -> Iterator[np.ndarray]:
    maxima = scaling.maxima
    for first, block, rows in _parsed(path, fmt):
        values = _values(rows, fmt, scaling)
        problem = _out_of_range(path, fmt, first, block, values, scaling)
        if problem is not None:
            raise problem
        yield features(values, maxima)


def read_values(path: str | Path, fmt: str, scaling: kdd12.Scaling) -> Iterator[np.ndarray]:
    """A raw or LIBSVM KDD12 file's rows as ``[label, the 11 integers behind the features]``
    (NaN where a LIBSVM line lists fewer), unchecked: what ``datasets info`` describes."""
    path = Path(path)
    require_content(path, fmt)
    return (_values(rows, fmt, scaling) for _, _, rows in _parsed(path, fmt))


# -- writing ------------------------------------------------------------------------------------


def _kdd12_ids(rows: np.ndarray) -> np.ndarray:
    """The integers behind the generator's dense KDD12 features (``feature * scale``)."""
    return np.rint(rows[:, 1:] * np.asarray(kdd12.SCALES)).astype(np.int64)


_HIGGS_LINE = ",".join(["%.18e"] * 29)  # the UCI file's own number format


def _lines(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("ascii")


def _lines_higgs(rows: np.ndarray) -> bytes:
    return _lines([_HIGGS_LINE % tuple(row) for row in rows.tolist()])


def _lines_dense(rows: np.ndarray) -> bytes:
    # repr: the shortest text that reads back to the same float64
    return _lines([f"{int(r[0])} " + " ".join(map(repr, r[1:])) for r in rows.tolist()])


def _lines_raw(rows: np.ndarray) -> bytes:
    table = np.column_stack([rows[:, 0].astype(np.int64), _kdd12_ids(rows)])
    return _lines(["\t".join(map(str, row)) for row in table.tolist()])


# LIBSVM indices: feature j's ids 1..count_j sit after those of the features before it.
LIBSVM_OFFSETS = kdd12.Scaling().offsets.astype(np.int64)


def _lines_libsvm(rows: np.ndarray) -> bytes:
    indices = _kdd12_ids(rows) + LIBSVM_OFFSETS
    labels = rows[:, 0].tolist()
    return _lines(
        [
            f"{int(label)} " + " ".join(f"{i}:1" for i in row)
            for label, row in zip(labels, indices.tolist(), strict=True)
        ]
    )


_WRITERS: dict[str, Callable[[np.ndarray], bytes]] = {
    "higgs-csv": _lines_higgs,
    "kdd12-dense": _lines_dense,
    "kdd12-raw": _lines_raw,
    "kdd12-libsvm": _lines_libsvm,
}


def write(path: str | Path, fmt: str, chunks: Iterable[np.ndarray]) -> int:
    """Write generator rows (dense form) to ``path`` in ``fmt``; returns the rows written.

    Compressed as the suffix says (``.gz``, ``.bz2``, ``.xz``; plain otherwise). The file
    appears complete or not at all: it is written to ``<path>.part`` and renamed at the end.
    """
    path = Path(path)
    if path.suffix.lower() == ".zip":
        msg = f"cannot write '{path}': zip is read-only here; use .gz, .bz2, .xz or no suffix"
        raise DatasetError(msg)
    partial = path.with_name(path.name + ".part")
    to_bytes = _WRITERS[fmt]
    written = 0
    try:
        with _output(partial, path) as out:
            for rows in chunks:
                if rows.shape[0]:
                    out.write(to_bytes(rows))
                    written += rows.shape[0]
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


@contextlib.contextmanager
def _output(partial: Path, final: Path) -> Iterator[BinaryIO]:
    """``partial`` opened for writing, compressed as ``final``'s suffix asks."""
    try:
        raw = open(partial, "wb")  # noqa: SIM115 -- closed by the with below
    except OSError as exc:
        msg = f"cannot write '{final}': {exc.strerror or exc}"
        raise DatasetError(msg) from exc
    suffix = final.suffix.lower()
    with raw:
        if suffix == ".gz":  # mtime 0: the same rows give the same bytes
            with gzip.GzipFile(final.name, "wb", GZIP_LEVEL, fileobj=raw, mtime=0) as out:
                yield out
        elif suffix == ".bz2":
            with bz2.BZ2File(raw, "wb") as out:
                yield out
        elif suffix == ".xz":
            with lzma.LZMAFile(raw, "wb") as out:
                yield out
        else:
            yield raw
