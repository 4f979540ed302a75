"""Datasets: seeded streams, their statistics, every file format, and the errors users see.

What a user relies on: item i of a seeded stream is the same whatever reads it; the synthetic
data has the character of HIGGS and KDD12 (a linear model learns HIGGS only partly, KDD12 has
about 5% clicks); a file written in any real format reads back as the same rows (or as the
documented dense form); a spec with a path streams the file in chunks and honours ``items``;
a bad file gives one ``error:`` paragraph naming the file and line, exit code 2.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlec_cli import datasets
from streamlec_cli.algorithms import make_algorithm
from streamlec_cli.cli import main
from streamlec_cli.data import formats, higgs, kdd12
from streamlec_cli.reference import run_reference
from streamlec_cli.spec import DATASET_FORMATS, DatasetSpec

SAMPLES = Path(__file__).resolve().parents[1] / "datasets" / "samples"
NAMES = sorted(datasets.DATASETS)


@pytest.fixture(autouse=True)
def no_default_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Real files are looked for in an empty directory unless a test puts one there."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(data))
    return data


def cli(*args: str):
    return CliRunner().invoke(main, ["datasets", *args])


# -- the seeded streams -------------------------------------------------------------------------


def test_public_schema() -> None:
    assert datasets.feature_count("higgs") == 28
    assert datasets.feature_count("kdd12") == 11
    for name, info in datasets.DATASETS.items():
        assert len(info.feature_names) == info.features
        assert info.formats == DATASET_FORMATS[name]  # the spec accepts exactly these
        rows = datasets.generate(name, 0, 10)
        assert rows.shape == (10, 1 + info.features)
        assert rows.dtype == np.float64 and rows.flags.c_contiguous


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 999, 12_000, 20_000])
def test_item_i_is_the_same_whatever_the_batch_size(name: str, batch: int) -> None:
    items = 41_000
    whole = datasets.generate(name, 0, items, seed=7)
    parts = list(datasets.batches(name, items, batch, seed=7))
    assert [len(p) for p in parts[:-1]] == [batch] * (len(parts) - 1)
    assert 0 < len(parts[-1]) <= batch
    assert np.array_equal(np.concatenate(parts), whole)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    start=st.integers(0, 30_000),
    length=st.integers(0, 9_000),
    seed=st.integers(0, 2**32),
)
def test_any_range_is_a_slice_of_the_stream(name: str, start: int, length: int, seed: int) -> None:
    part = datasets.generate(name, start, start + length, seed)
    whole = datasets.generate(name, 0, start + length, seed)
    assert np.array_equal(part, whole[start:])


@pytest.mark.parametrize("name", NAMES)
def test_seeds_and_datasets_give_different_streams(name: str) -> None:
    a, b = datasets.generate(name, 0, 1000, seed=1), datasets.generate(name, 0, 1000, seed=2)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, datasets.generate(name, 0, 1000, seed=1))


def test_bad_arguments_are_dataset_errors() -> None:
    with pytest.raises(datasets.DatasetError, match="'mnist' is not known"):
        datasets.generate("mnist", 0, 10)
    with pytest.raises(datasets.DatasetError, match="start <= stop"):
        datasets.generate("higgs", 10, 5)
    assert datasets.generate("kdd12", 5, 5).shape == (0, 12)


@pytest.fixture(scope="module")
def higgs_rows() -> np.ndarray:
    return datasets.generate("higgs", 0, 1_000_000, seed=1)


def test_higgs_has_the_character_of_the_real_data(higgs_rows: np.ndarray) -> None:
    rows = higgs_rows[:200_000]
    assert abs(rows[:, 0].mean() - 0.53) < 0.01
    assert set(np.unique(rows[:, 0])) == {0.0, 1.0}
    momenta = rows[:, [higgs.LEP_PT, higgs.MET, *higgs.JET_PT]]
    assert (momenta > 0).all()
    assert np.all(np.abs(momenta.mean(axis=0) - 1.0) < 0.02)
    assert np.all(momenta.mean(axis=0) > np.median(momenta, axis=0) + 0.05)  # right-skewed
    etas = rows[:, [higgs.LEP_ETA, *higgs.JET_ETA]]
    assert np.abs(etas).max() <= 2.5 and np.all(np.abs(etas.mean(axis=0)) < 0.02)
    assert np.all(np.abs(np.median(etas, axis=0)) < 0.02)  # symmetric
    angles = rows[:, [higgs.LEP_PHI, higgs.MET_PHI, *higgs.JET_PHI]]
    assert np.abs(angles).max() <= 3**0.5
    assert np.all(np.abs(angles.std(axis=0) - 1.0) < 0.01)  # uniform on [-sqrt3, sqrt3]
    histogram, _ = np.histogram(angles[:, 0], bins=10)
    assert histogram.min() > 0.9 * histogram.max()
    btags = rows[:, list(higgs.JET_BTAG)]
    assert set(np.unique(btags)) == set(higgs.BTAG_LEVELS)
    masses = rows[:, higgs.M_JJ :]
    assert (masses >= 0).all()
    assert np.all(np.abs(masses.mean(axis=0) - 1.0) < 0.02)


def test_higgs_masses_are_computed_from_the_other_features(higgs_rows: np.ndarray) -> None:
    """The documented formulas, recomputed here from the low-level columns alone."""
    r = higgs_rows[:20_000]
    radians = np.pi / 3**0.5  # the file's angles are radians scaled to unit variance

    def pt(j: int) -> np.ndarray:
        return r[:, higgs.JET_PT[j]]

    def pair(a: np.ndarray, b: np.ndarray, d_eta: np.ndarray, d_phi: np.ndarray) -> np.ndarray:
        return a * b * (d_eta**2 + 2.0 - 2.0 * np.cos(d_phi * radians))

    def jets(x: int, y: int) -> np.ndarray:
        d_eta = r[:, higgs.JET_ETA[x]] - r[:, higgs.JET_ETA[y]]
        d_phi = r[:, higgs.JET_PHI[x]] - r[:, higgs.JET_PHI[y]]
        return pair(pt(x), pt(y), d_eta, d_phi)

    lep, met = r[:, higgs.LEP_PT], r[:, higgs.MET]
    bb, jj = jets(0, 1), jets(2, 3)
    lv = pair(lep, met, 0.0, r[:, higgs.LEP_PHI] - r[:, higgs.MET_PHI])
    wbb = bb + jj + 4 * (pt(0) + pt(1)) * (pt(2) + pt(3))
    squared = {
        higgs.M_JJ: jj,
        higgs.M_JJJ: jj + 4 * pt(1) * (pt(2) + pt(3)),
        higgs.M_LV: lv,
        higgs.M_JLV: lv + 4 * pt(0) * (lep + met),
        higgs.M_BB: bb,
        higgs.M_WBB: wbb,
        higgs.M_WWBB: wbb + lv + 4 * (pt(0) + pt(1) + pt(2) + pt(3)) * (lep + met),
    }
    for column, m2 in squared.items():
        expected = np.sqrt(m2) * higgs.MASS_SCALE[column - higgs.M_JJ]
        np.testing.assert_allclose(r[:, column], expected, rtol=1e-9, atol=1e-9)


def test_logistic_regression_learns_higgs_only_partly(higgs_rows: np.ndarray) -> None:
    """1M items through the reference: accuracy in the real data's range (0.58 to 0.70)."""
    batch = 1000
    alg = make_algorithm("logreg", 28, lr=0.1, l2=1e-4)
    result = run_reference(alg, (higgs_rows[i : i + batch] for i in range(0, 1_000_000, batch)))
    accuracy = float(np.mean(result.batch_accuracy[len(result.batch_accuracy) // 2 :]))
    assert 0.58 <= accuracy <= 0.70, accuracy


def test_kdd12_has_the_character_of_the_real_data() -> None:
    rows = datasets.generate("kdd12", 0, 1_000_000, seed=1)
    assert 0.04 <= rows[:, 0].mean() <= 0.06  # about 5% clicks
    features = rows[:, 1:]
    assert features.min() >= 0.0 and features.max() <= 1.0
    depth, position = rows[:, kdd12.DEPTH] * 3, rows[:, kdd12.POSITION] * 3
    assert set(np.unique(np.round(depth))) == {1.0, 2.0, 3.0}
    assert np.allclose(depth, np.round(depth)) and np.allclose(position, np.round(position))
    assert (position <= depth + 1e-9).all()
    rates = [rows[np.round(position) == p, 0].mean() for p in (1, 2, 3)]
    assert rates[0] > rates[1] > rates[2]  # clicks more likely at the top
    ad = np.round(rows[:, 3] * kdd12.SCALES[2]).astype(np.int64)
    counts = np.sort(np.unique(ad, return_counts=True)[1])[::-1]
    assert counts[: len(counts) // 100].sum() > 0.3 * len(ad)  # 1% of the ads, >30% of rows
    assert counts[0] > 1000 * np.median(counts)  # heavy-tailed (Zipf-like) id frequencies


# -- files: round trips -------------------------------------------------------------------------


def read_all(path: Path, fmt: str | None = None) -> np.ndarray:
    return np.concatenate(list(datasets.read_file(path, fmt)))


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".xz"])
def test_higgs_csv_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"HIGGS.csv{suffix}"
    assert datasets.write_synthetic("higgs", 2500, path, seed=4) == 2500
    assert formats.detect(path) == "higgs-csv"
    assert np.array_equal(read_all(path), datasets.generate("higgs", 0, 2500, seed=4))


def test_higgs_csv_looks_like_the_uci_file(tmp_path: Path) -> None:
    path = tmp_path / "HIGGS.csv.gz"
    datasets.write_synthetic("higgs", 3, path)
    with gzip.open(path, "rt") as f:
        line = f.readline().rstrip("\n").split(",")
    assert len(line) == 29 and line[0] in ("1.000000000000000000e+00", "0.000000000000000000e+00")


def kdd12_ids(rows: np.ndarray) -> np.ndarray:
    return np.rint(rows[:, 1:] * np.asarray(kdd12.SCALES))


@pytest.mark.parametrize("fmt", ["kdd12-dense", "kdd12-raw", "kdd12-libsvm"])
def test_kdd12_round_trips(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"{fmt}.txt.gz"
    datasets.write_synthetic("kdd12", 3000, path, seed=5, fmt=fmt)
    assert formats.detect(path) == fmt
    rows = datasets.generate("kdd12", 0, 3000, seed=5)
    got = read_all(path)
    assert got.shape == rows.shape
    assert np.array_equal(got[:, 0], rows[:, 0])
    assert np.array_equal(got, rows)  # every format: id / its fixed maximum, as generated


def test_checked_in_samples_are_the_seeded_streams() -> None:
    higgs_sample = read_all(SAMPLES / "HIGGS-sample.csv")
    assert np.array_equal(higgs_sample, datasets.generate("higgs", 0, len(higgs_sample)))
    dense = read_all(SAMPLES / "kdd12-sample.txt")
    assert np.array_equal(dense, datasets.generate("kdd12", 0, len(dense)))
    for name, fmt in [("training-sample.txt", "kdd12-raw"), ("kdd12-libsvm-sample.txt", None)]:
        assert np.array_equal(read_all(SAMPLES / name, fmt), dense)


def test_the_same_rows_give_the_same_features_in_every_format(tmp_path: Path) -> None:
    """The KDD12 scaling is fixed: no format and no part of a file scales by what the file
    holds, so the first rows of a stream read the same from a short file and a long one, as
    the dense trace, training.txt or LIBSVM, and as the generator makes them."""
    stream = datasets.generate("kdd12", 0, 3000, seed=8)
    for fmt in ("kdd12-dense", "kdd12-raw", "kdd12-libsvm"):
        short, long = tmp_path / f"short-{fmt}", tmp_path / f"long-{fmt}.gz"
        formats.write(short, fmt, [stream[:40]])
        formats.write(long, fmt, [stream])
        assert np.array_equal(read_all(short), stream[:40]), fmt
        assert np.array_equal(read_all(long), stream), fmt
    meta = datasets.source_description(DatasetSpec("kdd12", path=str(tmp_path / "short-kdd12-raw")))
    scaling = meta["scaling"]
    assert scaling["maxima"]["ad"] == 650_000 and scaling["maxima"]["depth"] == 3
    assert scaling["libsvm_offsets"]["display_url"] == 10_000 and scaling["given"] == {}
    generated = datasets.source_description(DatasetSpec("kdd12"))
    assert generated["scaling"] == scaling  # the generator's ids over the same maxima
    assert "scaling" not in datasets.source_description(DatasetSpec("higgs"))


def test_a_value_above_its_maximum_names_the_line_and_the_spec_key(tmp_path: Path) -> None:
    raw = tmp_path / "training.txt"
    line = "0\t1\t2\t3\t4\t2\t1\t5\t6\t7\t8\t9"
    big = "1\t1\t2\t3\t4\t2\t1\t26243606\t6\t7\t8\t9"
    raw.write_text("\n".join([line, "", line, big, line]) + "\n")
    spec = DatasetSpec("kdd12", path=str(raw), items=10)
    with pytest.raises(datasets.DatasetError) as refused:
        list(datasets.open_batches(spec, 10))
    message = str(refused.value)
    assert f"{raw}, line 4: field 8 (query) is 26243606, above 25000000" in message
    assert "dataset.maxima.query" in message and "datasets info" in message
    given = DatasetSpec("kdd12", path=str(raw), items=10, maxima=(("query", 30_000_000),))
    rows = np.concatenate(list(datasets.open_batches(given, 10)))
    assert rows[2, 7] == 26243606 / 30_000_000 and rows[0, 7] == 5 / 30_000_000
    assert rows[0, 3] == 3 / 650_000  # the other features keep their fixed maxima
    info = cli("info", str(raw))
    assert info.exit_code == 0, info.output
    assert "values above their maximum: query" in info.output
    assert "dataset: {maxima: {query: 26243606}}" in info.output


def test_a_libsvm_index_outside_its_fields_range_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "kdd12"
    path.write_text("0 3:1 10010:1\n1 3:1 5:1\n")  # line 2: 5 is no display_url index
    with pytest.raises(datasets.DatasetError) as refused:
        read_all(path)
    message = str(refused.value)
    assert f"{path}, line 2: entry 2 (index 5) is not a display_url index" in message
    assert "10000..40000" in message


def test_libsvm_accepts_signed_labels_and_short_lines(tmp_path: Path) -> None:
    path = tmp_path / "kdd12"
    # impression ids start at index 0, display_url's at 10000, ad's at 40000
    path.write_text("+1 3:1 10010:1\n-1 4:1 10020:1 40005:1\n\n0 5:1\n")
    rows = read_all(path)
    assert rows[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert rows[:, 1].tolist() == [3 / 10_000, 4 / 10_000, 5 / 10_000]
    assert rows[:, 2].tolist() == [10 / 30_000, 20 / 30_000, 0.0]
    assert rows[1, 3] == 5 / 650_000 and rows[0, 3] == 0.0  # a field a line lacks is 0


def test_zip_archive_of_training_txt(tmp_path: Path) -> None:
    import zipfile

    plain = tmp_path / "training.txt"
    datasets.write_synthetic("kdd12", 50, plain, fmt="kdd12-raw")
    archive = tmp_path / "track2.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(plain, "track2/training.txt")
        z.writestr("track2/README", "not data")
    assert formats.detect(archive) == "kdd12-raw"
    assert np.array_equal(read_all(archive), read_all(plain))


def test_a_large_file_is_read_in_many_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "HIGGS.csv"
    datasets.write_synthetic("higgs", 300, path)
    monkeypatch.setattr(formats, "BLOCK_BYTES", 4096)
    chunks = list(datasets.read_file(path))
    assert len(chunks) > 40 and max(len(c) for c in chunks) < 10
    assert np.array_equal(np.concatenate(chunks), datasets.generate("higgs", 0, 300))


# -- specs: file or generator --------------------------------------------------------------------


def test_open_batches_streams_a_file_and_honours_items(tmp_path: Path) -> None:
    path = tmp_path / "HIGGS.csv.gz"
    datasets.write_synthetic("higgs", 2600, path, seed=3)
    spec = DatasetSpec("higgs", items=2500, path=str(path))
    parts = list(datasets.open_batches(spec, 1000))
    assert [len(p) for p in parts] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate(parts), datasets.generate("higgs", 0, 2500, seed=3))
    everything = DatasetSpec("higgs", items=10_000, path=str(path), format="higgs-csv")
    assert sum(len(p) for p in datasets.open_batches(everything, 1000)) == 2600
    described = datasets.source_description(spec)
    assert described["kind"] == "file" and described["format"] == "higgs-csv"
    assert described["compression"] == "gzip" and described["path"] == str(path.resolve())


def test_generator_when_there_is_no_file() -> None:
    spec = DatasetSpec("kdd12", items=5000, seed=9)
    parts = list(datasets.open_batches(spec, 2000))
    assert np.array_equal(np.concatenate(parts), datasets.generate("kdd12", 0, 5000, seed=9))
    described = datasets.source_description(spec)
    assert described == {
        "kind": "generator",
        "name": "kdd12",
        "seed": 9,
        "items": 5000,
        "generator_version": datasets.GENERATOR_VERSION,
        "staged": False,
        "scaling": kdd12.Scaling().describe(),
    }


def test_a_real_file_at_the_default_place_is_used(no_default_files: Path) -> None:
    datasets.write_synthetic("higgs", 700, no_default_files / "HIGGS.csv.gz", seed=11)
    spec = DatasetSpec("higgs", items=500)  # no path; seed 1 would differ
    rows = np.concatenate(list(datasets.open_batches(spec, 200)))
    assert np.array_equal(rows, datasets.generate("higgs", 0, 500, seed=11))
    described = datasets.source_description(spec)
    assert described["kind"] == "file" and described["default_location"] is True
    kdd = DatasetSpec("kdd12", items=10)
    assert datasets.source_description(kdd)["kind"] == "generator"


def test_a_file_of_the_other_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "HIGGS.csv"
    datasets.write_synthetic("higgs", 5, path)
    with pytest.raises(datasets.DatasetError, match=r"holds HIGGS CSV data .* not kdd12"):
        datasets.open_batches(DatasetSpec("kdd12", path=str(path)), 10)


# -- errors ---------------------------------------------------------------------------------------


def higgs_lines(n: int) -> list[str]:
    rows = datasets.generate("higgs", 0, n)
    return [",".join(repr(v) for v in row) for row in rows.tolist()]


def expect_error(path: Path, *expected: str, fmt: str | None = None) -> str:
    """``datasets info`` fails with exit code 2 and one ``error:`` paragraph naming the file."""
    args = ["info", str(path)] + (["--format", fmt] if fmt else [])
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert str(path) in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    with pytest.raises(datasets.DatasetError):
        list(datasets.read_file(path, fmt))
    return result.stderr


def test_wrong_column_count_names_the_line(tmp_path: Path) -> None:
    lines = higgs_lines(6)
    lines[3] = lines[3].rsplit(",", 1)[0]
    path = tmp_path / "short.csv"
    path.write_text("\n".join(lines) + "\n")
    expect_error(path, "line 4:", "expected 29 comma-separated numbers", "found 28 fields")


def test_a_non_number_names_the_line_and_field(tmp_path: Path) -> None:
    lines = higgs_lines(6)
    fields = lines[4].split(",")
    fields[7] = "n/a"
    lines[4] = ",".join(fields)
    path = tmp_path / "HIGGS.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")
    expect_error(path, "line 5:", "field 8 is 'n/a', not a number")


def test_errors_deep_in_a_file_name_the_right_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = higgs_lines(80)
    lines.insert(20, "")  # blank lines are skipped but still counted
    lines[57] = lines[57].replace(",", ";", 1)
    path = tmp_path / "HIGGS.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(formats, "BLOCK_BYTES", 1000)  # dozens of blocks
    expect_error(path, "line 58:")


def test_bad_labels_and_ranges(tmp_path: Path) -> None:
    lines = higgs_lines(3)
    lines[1] = "2" + lines[1][lines[1].index(",") :]
    higgs_path = tmp_path / "labels.csv"
    higgs_path.write_text("\n".join(lines) + "\n")
    expect_error(higgs_path, "line 2:", "the label (field 1) is 2: expected 0 or 1")
    raw = tmp_path / "training.txt"
    raw.write_text("0\t1\t2\t3\t4\t2\t1\t5\t6\t7\t8\t9\n0\t1\t2\t3\t4\t2\t3\t5\t6\t7\t8\t9\n")
    expect_error(raw, "line 2:", "field 7 (position) is 3: expected 1 to the depth (2)")
    dense = tmp_path / "kdd12.txt"
    dense.write_text("0 " + " ".join(["0.5"] * 10) + " 1.5\n")
    expect_error(dense, "line 1:", "field 12 (user) is 1.5: expected a value in [0, 1]")
    svm = tmp_path / "kdd12.svm"
    svm.write_text("1 2:1 7:1\n1 5:1 3:1\n")
    expect_error(svm, "line 2:", "indices must be ascending")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    expect_error(empty, "line 1: the file is empty")
    expect_error(empty, "line 1: the file is empty", fmt="kdd12-raw")
    missing = tmp_path / "nowhere" / "HIGGS.csv.gz"
    expect_error(missing, "does not exist")
    with pytest.raises(datasets.DatasetError, match="does not exist"):
        datasets.open_batches(DatasetSpec("higgs", path=str(missing)), 100)


def test_damaged_gzip_and_unknown_content(tmp_path: Path) -> None:
    whole = tmp_path / "whole.csv.gz"
    datasets.write_synthetic("higgs", 400, whole)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole.read_bytes()[:20_000])
    expect_error(cut, "damaged or cut short")
    odd = tmp_path / "odd.txt"
    odd.write_text("hello\n")
    expect_error(odd, "line 1: cannot tell the format", "--format")


# -- the command line ------------------------------------------------------------------------------


def test_gen_then_info(tmp_path: Path) -> None:
    out = tmp_path / "k.txt.gz"
    result = cli("gen", "kdd12", "--items", "4000", "--out", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "wrote 4000 rows of kdd12" in result.output and "gzip" in result.output
    assert np.array_equal(read_all(out), datasets.generate("kdd12", 0, 4000, seed=3))
    info = cli("info", str(out))
    assert info.exit_code == 0, info.output
    rows = datasets.generate("kdd12", 0, 4000, seed=3)
    positives = int(rows[:, 0].sum())
    assert "kdd12-dense (detected, gzip)" in info.output
    assert "rows: 4000" in info.output and f"label: {positives} positive" in info.output
    assert "position" in info.output and f"{rows[:, 6].mean():.6g}" in info.output
    assert "scaling: KDD12 fixed maxima, the same for the dense trace" in info.output
    assert "values above their maximum" not in info.output


def test_gen_refuses_a_format_of_the_other_dataset(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    result = cli("gen", "kdd12", "--items", "5", "--out", str(out), "--format", "higgs-csv")
    assert result.exit_code == 2 and "not a kdd12 format" in result.stderr
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_list_shows_datasets_and_where_files_are_looked_for(no_default_files: Path) -> None:
    result = cli("list")
    assert result.exit_code == 0, result.output
    assert "higgs: 28 features" in result.output and "kdd12: 11 features" in result.output
    assert str(no_default_files / "HIGGS.csv.gz") in result.output
    assert datasets.DATA_DIR_ENV in result.output
    datasets.write_synthetic("kdd12", 5, no_default_files / "training.txt", fmt="kdd12-raw")
    assert f"using {no_default_files / 'training.txt'}" in cli("list").output


@pytest.mark.parametrize("path", [None, "file"])
def test_staged_rows_are_the_streamed_rows_in_batches_of_their_own(tmp_path: Path, path) -> None:
    if path is not None:  # a real file is staged in its dense form, like it streams
        path = str(tmp_path / "higgs.csv")
        datasets.write_synthetic("higgs", 3000, path, seed=4)
    dataset = DatasetSpec("higgs", items=2500, seed=4, path=path, stage=True)
    staged = tmp_path / datasets.STAGED_FILE
    assert datasets.stage(dataset, staged) == 2500
    parts = list(datasets.read_staged(staged, 29, 1000))
    assert [p.shape for p in parts] == [(1000, 29), (1000, 29), (500, 29)]
    expected = np.concatenate(list(datasets.open_batches(dataset, 1000)))
    assert np.array_equal(np.concatenate(parts), expected)
    assert not np.shares_memory(parts[0], parts[1])  # sent zero-copy: never a reused buffer
