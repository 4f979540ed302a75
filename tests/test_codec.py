"""The real-valued MDS code: exact decoding from any k rows, conditioning."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlec_cli import codec
from streamlec_cli.cli import main

PARAMS = [(2, 1), (4, 2), (5, 1), (6, 3), (8, 3), (10, 4)]


@pytest.mark.parametrize("name", codec.CODES)
@pytest.mark.parametrize(("k", "r"), PARAMS)
def test_every_erasure_pattern_decodes_within_condition_bound(k, r, name):
    code = codec.make_code(k, r, name)
    bound = code.worst_condition() * 1e-15
    rng = np.random.default_rng(k * 100 + r)
    data = rng.standard_normal((50, k, 29))
    rows = np.concatenate([data, code.encode(data)], axis=1)
    scale = np.abs(data).max()
    for kept in itertools.combinations(range(k + r), k):
        decoded = code.decode({i: rows[:, i] for i in kept})
        assert np.abs(decoded - data).max() / scale <= bound, kept


@settings(max_examples=60, deadline=None)
@given(
    kr=st.sampled_from(PARAMS),
    stripes=st.integers(1, 40),
    width=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_decode_from_any_k_rows_property(kr, stripes, width, seed, data):
    k, r = kr
    code = codec.make_code(k, r)
    x = np.random.default_rng(seed).normal(0, 1e3, size=(stripes, k, width))
    rows = np.concatenate([x, code.encode(x)], axis=1)
    kept = data.draw(st.lists(st.integers(0, k + r - 1), min_size=k, max_size=k, unique=True))
    decoded = code.decode({i: rows[:, i] for i in kept})
    bound = code.worst_condition() * 1e-15
    assert np.abs(decoded - x).max() <= bound * np.abs(x).max()


def test_generator_is_systematic_and_vandermonde_is_the_papers():
    code = codec.make_code(4, 2, "vandermonde")
    np.testing.assert_array_equal(code.generator[:4], np.eye(4))
    np.testing.assert_array_equal(code.parity, [[1, 1, 1, 1], [1, 2, 4, 8]])


def test_decoder_inverse_is_cached_per_pattern():
    code = codec.make_code(6, 3)
    assert code.decoder((0, 1, 2, 6, 7, 8)) is code.decoder((0, 1, 2, 6, 7, 8))


def test_too_few_rows_is_an_error():
    code = codec.make_code(4, 2)
    with pytest.raises(codec.CodeError, match="any 4 of 6"):
        code.decode({0: np.zeros((2, 3)), 5: np.zeros((2, 3))})


@pytest.mark.parametrize(("k", "r"), [(1, 1), (4, 0), (10, 7)])
def test_parameters_out_of_range(k, r):
    with pytest.raises(codec.CodeError):
        codec.make_code(k, r)


def test_code_info_default_beats_vandermonde_at_k8_r3():
    runner = CliRunner()
    default = runner.invoke(main, ["code-info", "--k", "8", "--r", "3", "--json"])
    assert default.exit_code == 0, default.output
    info = json.loads(default.output)
    assert {"k", "r", "code", "generator", "worst_condition", "worst_decode_rel_error"} <= set(info)
    assert np.array(info["generator"]).shape == (11, 8)
    vand = json.loads(
        runner.invoke(
            main, ["code-info", "--k", "8", "--r", "3", "--code", "vandermonde", "--json"]
        ).output
    )
    assert info["worst_condition"] <= 1e3
    assert vand["worst_condition"] >= 100 * info["worst_condition"]
    assert info["worst_decode_rel_error"] <= info["worst_condition"] * 1e-15


def test_code_info_rejects_bad_parameters_without_traceback():
    result = CliRunner().invoke(main, ["code-info", "--k", "1", "--r", "2"])
    assert result.exit_code == 2
    assert "k must be at least 2" in result.output
    assert "Traceback" not in result.output
