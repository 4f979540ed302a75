"""A new algorithm and a new scheme are one class each plus one registration.

Both are defined here, in the test, and registered at run time: the spec accepts them with
their declared parameters, and they run through the runtime's commit core in one process,
exact against the reference, with a failure the scheme tolerates.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamlec_cli import datasets
from streamlec_cli.algorithms.base import LinearModel
from streamlec_cli.params import SHAPE, Param
from streamlec_cli.reference import max_rel_err, run_reference
from streamlec_cli.runtime.plan import make_plan
from streamlec_cli.schemes.partition import Partitioned
from streamlec_cli.spec import SpecError, parse
from streamlec_cli.testing import SlotFailure, registered, run_pipeline


class LeastAbsolute(LinearModel):
    """Linear regression on the absolute error: c = scale * sign(z - y)."""

    name = "l1reg"
    classifier = False
    parameters = (
        *LinearModel.parameters,
        Param("scale", float, 1.0, "step multiplier", minimum=0, exclusive=True),
    )
    scale: float

    def coefficients(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return (self.scale * np.sign(self.margin(model, Z) - Z[:, 0]))[:, None]

    def predict(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return self.margin(model, Z)

    def loss(self, model: np.ndarray, Z: np.ndarray) -> np.ndarray:
        return np.abs(self.margin(model, Z) - Z[:, 0])


class Mirrored(Partitioned):
    """Every item goes to the ``ways`` slots of its group; the first copy wins."""

    name = "mirrored"
    parameters = (Param("ways", int, 2, "slots per group", minimum=2, label=SHAPE),)
    ways: int

    @property
    def copies(self) -> int:  # type: ignore[override]
        return self.ways

    def tolerates(self, failed) -> bool:
        return len(set(failed)) < self.ways


@pytest.fixture
def extended():
    with registered(LeastAbsolute, Mirrored):
        yield


def test_a_registered_algorithm_and_scheme_run_exactly_through_the_pipeline(extended, tmp_path):
    (spec,) = parse(
        {
            "name": "extended",
            "dataset": {"name": "higgs", "items": 8_000, "seed": 2},
            "algorithm": {"name": "l1reg", "lr": 0.01, "scale": 0.5},
            "scheme": {"name": "mirrored", "ways": 3},
            "processors": 6,
            "batch": 1_000,
        }
    )
    assert spec.run_id == "mirrored3-l1reg-higgs"
    plan = make_plan(spec, tmp_path)
    assert isinstance(plan.scheme, Mirrored) and plan.algorithm.scale == 0.5
    stream = list(datasets.batches("higgs", 8_000, 1_000, seed=2))
    result = run_pipeline(plan.scheme, plan.algorithm, stream, [SlotFailure(4, 3)])
    ref = run_reference(plan.algorithm, stream)
    assert result.items_lost == 0 and result.items_duplicated == 0
    assert max_rel_err(result.model, ref.model) <= 1e-9
    assert max_rel_err(result.predictions, ref.predictions) <= 1e-9
    assert not np.allclose(ref.model, 0)  # the toy algorithm really learned something


def test_a_registered_schemes_declared_parameters_are_checked(extended):
    raw = {"name": "x", "processors": 6, "scheme": {"name": "mirrored", "ways": 1}}
    with pytest.raises(SpecError, match=r"scheme\.ways: 1 is not allowed: .*at least 2"):
        parse(raw)
