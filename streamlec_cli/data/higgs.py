"""A seeded generator with the schema and the statistical character of UCI HIGGS.

Columns, as in ``HIGGS.csv``: label (1 signal, 0 background), then 21 low-level features
(lepton pT, eta, phi; missing energy magnitude, phi; four jets of pT, eta, phi, b-tag), then 7
mass-like features (m_jj, m_jjj, m_lv, m_jlv, m_bb, m_wbb, m_wwbb). Scales follow the released
file, where every momentum-like feature has mean about 1:

* momenta (pT, missing energy): positive, right-skewed, mean 1 (log-normal quantiles);
* pseudorapidities: symmetric, standard normal truncated to [-2.5, 2.5];
* angles: uniform on [-sqrt(3), sqrt(3)] (standardised radians);
* b-tags: three levels {0, 1.0865, 2.1731}, as in the file;
* masses: computed from the low-level features of the same row. A pair of massless objects has
  ``m^2 = 2 pT_a pT_b (cosh(d_eta) - cos(d_phi))``; with ``cosh x ~ 1 + x^2 / 2`` this is
  ``pT_a pT_b (d_eta^2 + 2 - 2 cos(d_phi))``, ``cos(d_phi)`` read from a table indexed by the
  difference of the two angle fields. Three pairs are computed that way (b b, j j, l nu); larger
  systems add ``4 pT_a pT_b`` for the remaining pairs, the pair factor's mean. Each mass is
  scaled to mean about 1.

The label is drawn after the features: ``y = 1`` when a score of the row beats logistic noise.
The score rewards b-tags on the two leading jets, m_bb near its resonance, a heavy m_wwbb and a
central leading jet, so a linear model separates the classes only partly (about 64% accuracy),
while the resonance and centrality terms leave more for a non-linear one; about 53% of the rows
are signal.

Speed: one row takes six 64-bit words (24 fields); the 22 table look-ups of a row are one
``np.take`` straight into the C-ordered output, the masses and the score cost a few dozen
vectorised operations per row, done in chunks that stay in cache.
"""

from __future__ import annotations

import functools

import numpy as np

from . import fields

TAG = 1  # separates this dataset's random stream from the others' for the same seed
WORDS = 6  # 64-bit words per row: fields 0..21 are used, 22 and 23 spare
COLUMNS = 29
CHUNK = 4096  # rows computed together (the working set stays in L2)

FEATURE_NAMES = (
    "lepton_pT", "lepton_eta", "lepton_phi", "missing_energy_magnitude",
    "missing_energy_phi", "jet1_pt", "jet1_eta", "jet1_phi", "jet1_b-tag",
    "jet2_pt", "jet2_eta", "jet2_phi", "jet2_b-tag", "jet3_pt", "jet3_eta", "jet3_phi",
    "jet3_b-tag", "jet4_pt", "jet4_eta", "jet4_phi", "jet4_b-tag",
    "m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb",
)  # fmt: skip

# Output columns (0 is the label).
LEP_PT, LEP_ETA, LEP_PHI, MET, MET_PHI = 1, 2, 3, 4, 5
JET_PT, JET_ETA, JET_PHI, JET_BTAG = (6, 10, 14, 18), (7, 11, 15, 19), (8, 12, 16, 20), (9, 13, 17, 21)
M_JJ, M_JJJ, M_LV, M_JLV, M_BB, M_WBB, M_WWBB = range(22, 29)

BTAG_LEVELS = (0.0, 1.0865, 2.1731)
BTAG_PROBABILITIES = (0.5, 0.08, 0.42)
ANGLE_SCALE = 3.0**0.5  # the file's angles are radians scaled to unit variance

# Mass-like features are scaled by these so that each has mean about 1 (measured on 1M rows).
MASS_SCALE = np.array([0.5876, 0.3070, 0.7133, 0.3342, 0.5876, 0.2214, 0.1459])

# Label score: s = BIAS + W_BTAG * (b1 + b2) + W_RES * -(m_bb - 1)^2 + W_WWBB * m_wwbb
#              + W_ETA * -eta_j1^2;  y = 1 where s > logistic noise.
BIAS, W_BTAG, W_RES, W_WWBB, W_ETA = -0.55, 0.45, 1.2, 0.45, 0.25


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value table, per-column offsets of the 22 looked-up columns, 2 - 2 cos(d_phi) table)."""
    segments = {
        "noise": fields.logistic_table(),
        "pt": fields.lognormal_table(0.55, floor=0.15),
        "met": fields.lognormal_table(0.6),
        "eta": fields.truncated_normal_table(2.5),
        "phi": (2.0 * fields.uniform_points() - 1.0) * ANGLE_SCALE,
        "btag": fields.levels_table(BTAG_LEVELS, BTAG_PROBABILITIES),
    }
    names = list(segments)
    table = np.concatenate([segments[name] for name in names])
    jet = ["pt", "eta", "phi", "btag"]
    layout = ["noise", "pt", "eta", "phi", "met", "phi", *jet, *jet, *jet, *jet]
    offsets = np.array([names.index(s) * fields.FIELD for s in layout], dtype=np.int32)
    turn = 2.0 * np.pi * np.arange(fields.FIELD) / fields.FIELD
    return table, offsets, 2.0 - 2.0 * np.cos(turn)


def fill(bitgen: np.random.PCG64, out: np.ndarray) -> None:
    """Write the next ``len(out)`` rows of the stream into ``out`` (C-ordered, (n, 29))."""
    table, offsets, pair_angle = _tables()
    rows = out.shape[0]
    size = min(rows, CHUNK)
    index = np.empty((size, COLUMNS), dtype=np.int32)
    index[:, 22:] = 0  # the mass columns are overwritten after the look-up
    masses = np.empty((7, size))
    a, b, c = np.empty(size), np.empty(size), np.empty(size)
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        f = fields.draw_fields(bitgen, n, WORDS)
        o = out[start : start + n]
        idx = index[:n]
        np.add(f[:, :22], offsets, out=idx[:, :22])
        np.take(table, idx, out=o, mode="wrap")
        _masses(f, o, pair_angle, masses[:, :n], a[:n], b[:n], c[:n])
        _label(o, masses[:, :n], a[:n], b[:n])


def _pair(o, f, pair_angle, x: int, y: int, dst, a, b) -> None:
    """dst = pT_x pT_y (d_eta^2 + 2 - 2 cos d_phi) for jets x and y."""
    np.subtract(o[:, JET_ETA[x]], o[:, JET_ETA[y]], out=a)
    np.multiply(a, a, out=a)
    np.take(pair_angle, f[:, JET_PHI[x]] - f[:, JET_PHI[y]], out=b, mode="wrap")
    np.add(a, b, out=a)
    np.multiply(o[:, JET_PT[x]], o[:, JET_PT[y]], out=b)
    np.multiply(a, b, out=dst)


def _masses(f, o, pair_angle, m, a, b, c) -> None:
    """The 7 mass-like features of each row from its low-level ones (into ``m`` and ``o``)."""
    jj, jjj, lv, jlv, bb, wbb, wwbb = range(7)
    _pair(o, f, pair_angle, 0, 1, m[bb], a, b)
    _pair(o, f, pair_angle, 2, 3, m[jj], a, b)
    np.take(pair_angle, f[:, LEP_PHI] - f[:, MET_PHI], out=a, mode="wrap")
    np.multiply(a, o[:, LEP_PT], out=a)
    np.multiply(a, o[:, MET], out=m[lv])  # transverse mass: no eta for the neutrino
    np.add(o[:, JET_PT[2]], o[:, JET_PT[3]], out=a)  # W-jets
    a *= 4.0
    np.add(o[:, LEP_PT], o[:, MET], out=b)  # lepton + neutrino
    b *= 4.0
    np.add(o[:, JET_PT[0]], o[:, JET_PT[1]], out=c)  # b-jets
    np.multiply(o[:, JET_PT[1]], a, out=m[jjj])
    m[jjj] += m[jj]
    np.multiply(o[:, JET_PT[0]], b, out=m[jlv])
    m[jlv] += m[lv]
    np.multiply(c, a, out=m[wbb])
    m[wbb] += m[bb]
    m[wbb] += m[jj]
    c += o[:, JET_PT[2]]
    c += o[:, JET_PT[3]]
    np.multiply(c, b, out=m[wwbb])
    m[wwbb] *= 0.25
    m[wwbb] += m[wbb]
    m[wwbb] += m[lv]
    np.sqrt(m, out=m)
    m *= MASS_SCALE[:, None]
    o[:, 22:] = m.T


def _label(o, m, a, b) -> None:
    """Replace the logistic noise in column 0 by the label ``score > noise`` (1.0 or 0.0)."""
    np.add(o[:, JET_BTAG[0]], o[:, JET_BTAG[1]], out=a)
    a *= W_BTAG
    np.subtract(m[M_BB - 22], 1.0, out=b)
    np.multiply(b, b, out=b)
    b *= -W_RES
    a += b
    np.multiply(o[:, JET_ETA[0]], o[:, JET_ETA[0]], out=b)
    b *= -W_ETA
    a += b
    np.multiply(m[M_WWBB - 22], W_WWBB, out=b)
    a += b
    a += BIAS
    np.greater(a, o[:, 0], out=o[:, 0], casting="unsafe")
