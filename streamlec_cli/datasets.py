"""Datasets: seeded synthetic generators shaped like HIGGS and KDD12.

Rows are float64 ``[label, features...]``. A seeded stream is generated in fixed blocks, each
from its own ``default_rng([seed, block])``, so item i of a stream is the same whatever batch
size reads it: replays and sweeps see the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

BLOCK = 1 << 15


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    features: int
    description: str


DATASETS = {
    "higgs": DatasetInfo("higgs", 28, "HIGGS-shaped: label in {0,1}, 21 low-level + 7 mass-like"),
    "kdd12": DatasetInfo("kdd12", 11, "KDD12-shaped: click label in {0,1}, 11 features in [0,1]"),
}


def feature_count(name: str) -> int:
    return DATASETS[name].features


def _higgs_block(rng: np.random.Generator, n: int) -> np.ndarray:
    y = (rng.random(n) < 0.53).astype(np.float64)
    s = y[:, None]
    out = np.empty((n, 29))
    out[:, 0] = y
    # Four jets and a lepton: (pT, eta, phi) each; jets carry a b-tag on three levels.
    pt = rng.lognormal(mean=-0.1 + 0.12 * s, sigma=0.5, size=(n, 5))
    eta = np.clip(rng.normal(0.0, 1.0 - 0.08 * s, size=(n, 5)), -2.5, 2.5)
    phi = rng.uniform(-np.pi, np.pi, size=(n, 5))
    btag = rng.choice([0.0, 1.1, 2.2], p=[0.5, 0.25, 0.25], size=(n, 4))
    btag += (rng.random((n, 4)) < 0.12 * s) * 1.1
    np.minimum(btag, 2.2, out=btag)
    met = rng.lognormal(mean=-0.05 + 0.1 * y, sigma=0.55, size=n)
    out[:, 1], out[:, 2], out[:, 3] = pt[:, 0], eta[:, 0], phi[:, 0]
    out[:, 4], out[:, 5] = met, rng.uniform(-np.pi, np.pi, size=n)
    for j in range(4):
        base = 6 + 4 * j
        out[:, base], out[:, base + 1] = pt[:, j + 1], eta[:, j + 1]
        out[:, base + 2], out[:, base + 3] = phi[:, j + 1], btag[:, j]
    # Seven mass-like features: invariant-mass style combinations of the above.
    px, py = pt * np.cos(phi), pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = pt * np.cosh(eta)

    def mass(idx: list[int]) -> np.ndarray:
        e, x, yy, z = (a[:, idx].sum(axis=1) for a in (energy, px, py, pz))
        return np.sqrt(np.maximum(e * e - x * x - yy * yy - z * z, 0.0))

    out[:, 22] = mass([1, 2])
    out[:, 23] = mass([1, 2, 3])
    out[:, 24] = np.sqrt(2 * pt[:, 0] * met * (1 - np.cos(phi[:, 0] - out[:, 5])))
    out[:, 25] = mass([0, 1]) + out[:, 24] * 0.5
    out[:, 26] = mass([3, 4])
    out[:, 27] = mass([2, 3, 4])
    out[:, 28] = mass([0, 1, 2, 3, 4])
    out[:, 22:] *= 1.0 + 0.1 * s * rng.random((n, 1))
    return out


def _kdd12_block(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.empty((n, 12))
    depth = rng.integers(1, 4, size=n)
    position = np.minimum(rng.integers(1, 4, size=n), depth)
    ids = rng.zipf(1.6, size=(n, 9)).astype(np.float64)
    scaled = np.minimum(np.log1p(ids) / np.log1p(1e6), 1.0)
    out[:, 1:4] = scaled[:, :3]  # impression, url, ad
    out[:, 4] = scaled[:, 3]  # advertiser
    out[:, 5] = depth / 3.0
    out[:, 6] = position / 3.0
    out[:, 7:12] = scaled[:, 4:9]  # query, keyword, title, description, user
    logit = -3.3 - 0.9 * (position - 1) + 1.5 * out[:, 3] - 1.0 * out[:, 11]
    out[:, 0] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float64)
    return out


_GENERATORS = {"higgs": _higgs_block, "kdd12": _kdd12_block}


def generate(name: str, start: int, stop: int, seed: int = 1) -> np.ndarray:
    """Rows ``start .. stop-1`` of the seeded synthetic stream ``name``."""
    make = _GENERATORS[name]
    first, last = start // BLOCK, (stop - 1) // BLOCK if stop > start else start // BLOCK
    blocks = [make(np.random.default_rng([seed, b]), BLOCK) for b in range(first, last + 1)]
    rows = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    offset = first * BLOCK
    return rows[start - offset : stop - offset]


def batches(name: str, items: int, batch: int, seed: int = 1) -> Iterator[np.ndarray]:
    """The stream cut into consecutive batches of ``batch`` rows (the last may be shorter)."""
    block_rows: np.ndarray | None = None
    block_index = -1
    for start in range(0, items, batch):
        stop = min(start + batch, items)
        if start // BLOCK == block_index and (stop - 1) // BLOCK == block_index:
            assert block_rows is not None
            offset = block_index * BLOCK
            yield block_rows[start - offset : stop - offset]
            continue
        if start // BLOCK == (stop - 1) // BLOCK:
            block_index = start // BLOCK
            block_rows = _GENERATORS[name](np.random.default_rng([seed, block_index]), BLOCK)
            offset = block_index * BLOCK
            yield block_rows[start - offset : stop - offset]
        else:
            yield generate(name, start, stop, seed)


class DatasetError(ValueError):
    """A data file that cannot be read; the message names the file and the line."""


def open_batches(dataset, batch: int) -> Iterator[np.ndarray]:
    """Batches of a spec's ``dataset``: the real file when ``path`` is set, else the generator."""
    if dataset.path is not None:
        msg = (
            f"dataset.path: reading {dataset.path!r} is not supported yet; "
            "remove dataset.path to stream the seeded generator"
        )
        raise DatasetError(msg)
    return batches(dataset.name, dataset.items, batch, dataset.seed)


def source_description(dataset) -> dict:
    """What ``meta.json`` says about where the data came from."""
    if dataset.path is not None:
        return {"kind": "file", "path": dataset.path, "format": dataset.format}
    return {"kind": "generator", "name": dataset.name, "seed": dataset.seed}
