"""Spec parsing: defaults, aliases, sweep x repeat expansion, overrides and readable errors."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from streamlec_cli import algorithms, schemes
from streamlec_cli.algorithms import LinReg
from streamlec_cli.params import OPTION, SHAPE, Param
from streamlec_cli.runtime.placement import placement
from streamlec_cli.schemes.partition import Partitioned
from streamlec_cli.spec import (
    AlgorithmSpec,
    Failure,
    RuntimeSpec,
    SchemeSpec,
    SpecError,
    apply_override,
    load,
    parse,
    parse_duration,
)
from streamlec_cli.testing import registered

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"


def ec_spec(**extra: object) -> dict:
    """A small valid EC(4,2) spec mapping; ``extra`` replaces top-level keys."""
    return {
        "name": "t",
        "dataset": {"name": "higgs", "items": 24_000},
        "algorithm": "logreg",
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        **extra,
    }


def only(raw: dict, *overrides: str):
    runs = parse(raw, overrides)
    assert len(runs) == 1
    return runs[0]


# -- valid specs -------------------------------------------------------------------------------


def test_quickstart_is_ec42_logreg_with_one_failure() -> None:
    (run,) = load(QUICKSTART)
    assert run.scheme == SchemeSpec("ec", k=4, r=2, code="gaussian", attach="linear")
    assert run.algorithm.name == "logreg"
    assert (run.dataset.name, run.dataset.items) == ("higgs", 10_000_000)
    assert (run.processors, run.batch, run.rate) == (6, 12_000, None)
    assert run.failures == (Failure(at_batch=400, kill=("processor-1",)),)
    assert run.run_id == "ec42-logreg-higgs"


def test_minimal_spec_gets_every_default() -> None:
    run = only({"name": "m", "processors": 2})
    assert run.dataset.name == "higgs"
    assert (run.dataset.items, run.dataset.seed, run.dataset.path) == (200_000, 1, None)
    assert run.algorithm.kwargs() == {"lr": 0.05, "l2": 1e-4}
    assert run.scheme.name == "none"
    assert (run.batch, run.pipeline_depth, run.repeat) == (12_000, 1, 1)
    assert run.rate is None
    assert run.transport == "ipc"
    assert run.runtime == RuntimeSpec(0.1, 0.5, 0.05, 1.0, True)
    assert run.failures == ()
    assert run.workers == ("source", "processor-0", "processor-1", "sink")


def test_kmeans_params_are_filled_and_sorted() -> None:
    run = only(ec_spec(algorithm={"name": "kmeans", "clusters": 5}))
    assert run.algorithm.params == (("clusters", 5), ("decay", 0.01), ("seed", 0))
    assert run.algorithm.kwargs() == {"clusters": 5, "decay": 0.01, "seed": 0}
    # built directly, the dataclass fills its defaults the same way
    assert AlgorithmSpec("kmeans", (("seed", 3),)).kwargs() == {
        "clusters": 8,
        "decay": 0.01,
        "seed": 3,
    }


def test_mlp_params_are_filled() -> None:
    run = only(ec_spec(algorithm={"name": "mlp", "hidden": 16}))
    assert run.run_id.endswith("-mlp-higgs")
    assert run.algorithm.kwargs() == {"hidden": 16, "l2": 1e-4, "lr": 0.3, "seed": 0}
    alg = algorithms.make_algorithm("mlp", 28, **run.algorithm.kwargs())
    assert (alg.hidden, alg.outputs) == (16, 16)


@pytest.mark.parametrize(
    ("given_name", "scheme", "processors"),
    [("replication", "rep", 6), ("checkpoint", "reactive", 5), ("EC", "ec", 6)],
)
def test_scheme_aliases_map_to_canonical_names(
    given_name: str, scheme: str, processors: int
) -> None:
    run = only(ec_spec(scheme=given_name, processors=processors))
    assert run.scheme.name == scheme
    assert run.to_dict()["scheme"]["name"] == scheme


def test_rep_and_reactive_keep_their_own_fields() -> None:
    rep = only(ec_spec(scheme={"name": "rep", "copies": 2}, processors=4))
    assert (rep.scheme.copies, rep.scheme.label) == (2, "rep2")
    assert rep.to_dict()["scheme"] == {"name": "rep", "copies": 2}
    reactive = only(ec_spec(scheme={"name": "reactive", "checkpoint_every": 3, "wal_fsync": False}))
    assert reactive.to_dict()["scheme"] == {
        "name": "reactive",
        "checkpoint_every": 3,
        "wal_fsync": False,
        "log": "storage",
        "replicas": 2,
    }


def test_sweep_is_a_cartesian_product_in_key_order() -> None:
    raw = ec_spec(
        sweep={
            "scheme": [{"name": "none"}, {"name": "ec", "k": 4, "r": 2}, {"name": "rep"}],
            "batch": [6000, 12000],
        }
    )
    runs = parse(raw)
    assert [(r.scheme.name, r.batch) for r in runs] == [
        ("none", 6000),
        ("none", 12000),
        ("ec", 6000),
        ("ec", 12000),
        ("rep", 6000),
        ("rep", 12000),
    ]
    assert runs[0].run_id == "none-logreg-higgs-batch6000"
    assert runs[3].run_id == "ec42-logreg-higgs-batch12000"
    assert runs[4].run_id == "rep3-logreg-higgs-batch6000"
    assert runs[3].sweep_values == (
        ("scheme", (("name", "ec"), ("k", 4), ("r", 2))),
        ("batch", 12000),
    )
    assert len({r.run_id for r in runs}) == len(runs)


def test_dotted_sweep_key_replaces_one_field_only() -> None:
    raw = ec_spec(scheme={"name": "ec", "k": 4, "r": 2, "code": "vandermonde"}, processors=12)
    raw["sweep"] = {"scheme.k": [2, 4], "algorithm.lr": [0.1, 0.01]}
    runs = parse(raw)
    assert [(r.scheme.k, r.algorithm.kwargs()["lr"]) for r in runs] == [
        (2, 0.1),
        (2, 0.01),
        (4, 0.1),
        (4, 0.01),
    ]
    assert {r.scheme.code for r in runs} == {"vandermonde"}
    assert [r.run_id for r in runs] == [
        "ec22-logreg-higgs-lr0.1",
        "ec22-logreg-higgs-lr0.01",
        "ec42-logreg-higgs-lr0.1",
        "ec42-logreg-higgs-lr0.01",
    ]


def test_sweep_over_non_base_scheme_fields_still_gives_unique_ids() -> None:
    raw = ec_spec(sweep={"scheme": [{"name": "ec"}, {"name": "ec", "attach": "inputs"}]})
    ids = [r.run_id for r in parse(raw)]
    assert ids == ["ec42-logreg-higgs", "ec42-logreg-higgs-attach_inputs"]


def test_repeat_multiplies_runs_and_labels_them() -> None:
    runs = parse(ec_spec(repeat=3, sweep={"rate": ["max", 50_000]}))
    assert len(runs) == 6
    # The whole sweep once per repeat: a drift in the machine's speed hits both rates alike.
    assert [r.run_index for r in runs] == [0, 0, 1, 1, 2, 2]
    assert [r.rate for r in runs] == [None, 50_000.0] * 3
    assert runs[0].run_id == "ec42-logreg-higgs-rate_max-r0"
    assert runs[5].run_id == "ec42-logreg-higgs-rate50000-r2"
    assert len({r.run_id for r in runs}) == 6


def test_identical_sweep_combinations_are_rejected() -> None:
    with pytest.raises(SpecError, match="same settings"):
        parse(ec_spec(scheme="rep", sweep={"scheme.name": ["rep", "replication"]}))


def test_overrides_are_applied_before_validation() -> None:
    raw = ec_spec(scheme="ec")
    before = copy.deepcopy(raw)
    run = only(
        raw, "scheme.k=2", "scheme.r=1", "processors=9", "failures=[{at: 2m, kill: [processor-8]}]"
    )
    assert raw == before  # the input mapping is left alone
    assert (run.scheme.k, run.scheme.r, run.processors) == (2, 1, 9)
    assert run.failures == (Failure(at=120.0, kill=("processor-8",)),)


def test_apply_override_handles_lists_new_mappings_and_sweep_keys() -> None:
    raw = ec_spec(failures=[{"at": "10s", "kill": ["processor-1"]}])
    out = apply_override(raw, "failures.0.at=500ms")
    assert out["failures"][0] == {"at": "500ms", "kill": ["processor-1"]}
    assert raw["failures"][0]["at"] == "10s"
    out = apply_override(raw, "runtime.warmup=2s")
    assert out["runtime"] == {"warmup": "2s"}
    out = apply_override(raw, "sweep.scheme.k=[2, 4]")
    assert out["sweep"] == {"scheme.k": [2, 4]}
    assert len(parse(out, ["processors=12"])) == 2


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("2m", 120.0),
        (3, 3.0),
        (0.25, 0.25),
        ("7", 7.0),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text, "runtime.warmup") == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10x", "-1s", "s", True, None, [1], "fast"])
def test_parse_duration_rejects_with_the_key(bad: object) -> None:
    with pytest.raises(SpecError, match=r"^failures\[0\]\.at: .* is not allowed: .*10s, 500ms"):
        parse_duration(bad, "failures[0].at")


def test_runtime_durations_are_parsed() -> None:
    run = only(
        ec_spec(runtime={"heartbeat_interval": "50ms", "failure_timeout": "1s", "warmup": 0})
    )
    assert run.runtime == RuntimeSpec(0.05, 1.0, 0.05, 0.0, True)


def test_to_dict_round_trips_through_yaml() -> None:
    raw = ec_spec(
        rate=1000,
        failures=[{"at": "1.5s", "kill": "processor-2"}, {"at_batch": 9, "kill": ["processor-0"]}],
        transport="tcp",
        hosts={"source": "a", "processor-0": "b"},
        runtime={"grace": "10ms"},
    )
    run = only(raw)
    dumped = yaml.safe_load(yaml.safe_dump(run.to_dict()))
    assert dumped["rate"] == 1000.0
    assert dumped["hosts"] == {"source": "a", "processor-0": "b"}
    assert only(dumped) == run
    assert only(ec_spec()).to_dict()["rate"] == "max"


def test_spec_is_frozen_and_hashable() -> None:
    run = only(ec_spec(sweep={"scheme": [{"name": "ec", "k": 4}]}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.processors = 3  # type: ignore[misc]
    assert hash(run) == hash(only(ec_spec(sweep={"scheme": [{"name": "ec", "k": 4}]})))


@given(k=st.integers(2, 8), r=st.integers(1, 8), groups=st.integers(1, 3))
def test_every_ec_shape_within_16_slots_validates(k: int, r: int, groups: int) -> None:
    raw = ec_spec(scheme={"name": "ec", "k": k, "r": r}, processors=groups * (k + r))
    if k + r > 16:
        with pytest.raises(SpecError, match="at most 16"):
            parse(raw)
        return
    run = only(raw)
    assert len(run.workers) == groups * (k + r) + 2
    assert run.run_id.startswith("ec")


# -- bad specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"scheme": {"name": "ec", "kk": 3}},
            ["unknown key 'scheme.kk'", "allowed keys under scheme are name, k, r"],
        ),
        ({"foo": 1}, ["unknown key 'foo'", "allowed top-level keys are name, dataset"]),
        ({"procesors": 6}, ["unknown key 'procesors' (did you mean 'processors'?)"]),
        (
            {"scheme": {"name": "ec", "copies": 3}},
            ["scheme.copies", "does not apply to scheme ec", "name, k, r, code, attach"],
        ),
        ({"scheme": {"name": "ec", "k": 0}}, ["scheme.k: 0 is not allowed: k must be at least 2"]),
        (
            {"scheme": {"name": "ec", "r": 5}},
            ["scheme: ec with k=4, r=5 needs k+r=9 processors, spec has processors: 6"],
        ),
        (
            {"processors": 8},
            ["processors: 8 is not a multiple of k+r=6 (ec groups of k+r processors)"],
        ),
        ({"scheme": {"name": "ec", "k": 14, "r": 3}, "processors": 17}, ["k+r must be at most 16"]),
        (
            {"scheme": {"name": "rep", "copies": 4}},
            ["processors: 6 is not a multiple of copies=4"],
        ),
        (
            {"failures": [{"at": "10s", "kill": ["processor-9"]}]},
            ["failures[0].kill: processor-9 does not exist (processor-0..processor-5)"],
        ),
        (
            {"failures": [{"at": "10s", "kill": ["source"]}]},
            ["failures[0].kill: source cannot be killed", "only processors can be killed"],
        ),
        (
            {"failures": [{"at": "1s", "at_batch": 3, "kill": ["processor-1"]}]},
            ["failures[0]: both at and at_batch are given", "exactly one"],
        ),
        (
            {"failures": [{"kill": ["processor-1"]}]},
            ["failures[0]: neither at nor at_batch is given"],
        ),
        (
            {"stragglers": [{"worker": "sink", "slowdown": 5}]},
            ["stragglers[0].worker: sink is not a processor", "(processor-0..processor-5)"],
        ),
        (
            {"stragglers": [{"worker": "processor-2", "slowdown": 0.5}]},
            ["stragglers[0].slowdown: 0.5 is not allowed", "a number above 1 and at most 100"],
        ),
        (
            {"stragglers": [{"worker": "processor-2"}]},
            ["stragglers[0].slowdown: missing"],
        ),
        (
            {"stragglers": [{"worker": "processor-2", "slowdown": 5, "from": "8s", "to": "2s"}]},
            ["stragglers[0]: to (2s) is not after from (8s)"],
        ),
        (
            {
                "stragglers": [
                    {"worker": "processor-2", "slowdown": 5, "from": "1s", "to": "5s"},
                    {"worker": "processor-2", "slowdown": 2, "from": "4s"},
                ]
            },
            ["stragglers[1]: processor-2 is already slowed at that time"],
        ),
        (
            {"stragglers": [{"worker": "processor-2", "slowdown": 5, "for": "2s"}]},
            ["unknown key 'stragglers[0].for'", "worker, slowdown, from, to"],
        ),
        (
            {"pairs": 2, "stragglers": [{"worker": "processor-2", "slowdown": 5}]},
            ["stragglers: not allowed with pairs: 2"],
        ),
        (
            {
                "cluster": {"launcher": "ssh", "hosts": ["a", "b"]},
                "stragglers": [{"worker": "processor-2", "slowdown": 5}],
            },
            ["stragglers: not allowed with launcher ssh on real hosts"],
        ),
        ({"batch": "abc"}, ["batch: 'abc' is not allowed: batch must be a positive integer"]),
        (
            {"algorithm": "foo"},
            ["algorithm.name: 'foo' is not allowed: choose one of linreg, logreg, svm, kmeans"],
        ),
        (
            {"rate": -5},
            ["rate: -5 is not allowed: rate must be 'max' or a positive number of items"],
        ),
        ({"processors": True}, ["processors: true is not allowed", "positive integer"]),
        ({"scheme": {"name": "ec", "incremental": "yes please"}}, ["must be true or false"]),
        (
            {"dataset": {"name": "higgs", "stage": "yes"}},
            ["dataset.stage: 'yes' is not allowed: stage must be true or false"],
        ),
        (
            {"algorithm": {"name": "svm", "clusters": 3}},
            ["unknown key 'algorithm.clusters'", "name, lr, l2", "clusters is for kmeans"],
        ),
        (
            {"algorithm": {"name": "mlp", "hidden": 0}},
            ["algorithm.hidden: 0 is not allowed: hidden must be a positive integer"],
        ),
        (
            {"algorithm": {"name": "logreg", "hidden": 32}},
            ["unknown key 'algorithm.hidden'", "name, lr, l2", "hidden is for mlp"],
        ),
        ({"scheme": "raid"}, ["scheme.name: 'raid' is not allowed", "none, ec, rep, reactive"]),
        ({"transport": "udp"}, ["transport: 'udp' is not allowed: choose one of ipc, tcp"]),
        (
            {"dataset": {"name": "kdd12", "path": "x.txt", "format": "higgs-csv"}},
            ["dataset.format", "kdd12-dense, kdd12-raw, kdd12-libsvm"],
        ),
        (
            {"dataset": {"name": "higgs", "maxima": {"query": 10}}},
            ["dataset.maxima: {query: 10} is not allowed: maxima applies to kdd12 only"],
        ),
        (
            {"dataset": {"name": "kdd12", "maxima": {"depth": 4}}},
            ["dataset.maxima: 'depth' is not allowed: choose one of impression", "position: 3"],
        ),
        (
            {"dataset": {"name": "kdd12", "maxima": {"qurey": 30000000}}},
            ["dataset.maxima: 'qurey' is not allowed", "(did you mean 'query'?)"],
        ),
        (
            {"dataset": {"name": "kdd12", "maxima": {"user": -1}}},
            ["dataset.maxima.user: -1 is not allowed: user must be a positive integer"],
        ),
        ({"hosts": {"processor-6": "h1"}}, ["hosts.processor-6: processor-6 does not exist"]),
        (
            {"hosts": {"source": "h1", "sink": "h2"}},
            ["2 different hosts are not allowed with transport ipc"],
        ),
        ({"runtime": {"warmup": "soon"}}, ["runtime.warmup: 'soon' is not allowed", "500ms"]),
        ({"name": "../x"}, ["name: '../x' is not allowed"]),
        ({"processors": None}, ["processors: missing"]),
        ({"sweep": {"batch": 6000}}, ["sweep.batch: 6000 is not allowed", "non-empty list"]),
        ({"sweep": {"bogus.key": [1]}}, ["unknown key 'bogus.key' in sweep"]),
        ({"sweep": {"shceme.k": [1]}}, ["'shceme.k' in sweep (did you mean 'scheme'?)"]),
        ({"scheme": {"name": "ec", "kk": 4}}, ["unknown key 'scheme.kk' (did you mean 'k'?)"]),
        ({"algorithm": {"name": "logreg", "lrr": 1}}, ["'algorithm.lrr' (did you mean 'lr'?)"]),
        (
            {"runtime": {"failure_timout": "1s"}},
            ["unknown key 'runtime.failure_timout' (did you mean 'failure_timeout'?)"],
        ),
        ({"dataset": {"name": "higgs", "itmes": 5}}, ["'dataset.itmes' (did you mean 'items'?)"]),
        (
            {"algorithm": {"name": "kmeans", "clusters": 5000}, "batch": 4000},
            ["algorithm.clusters: 5000 is not allowed", "clusters must be at most 4000"],
        ),
        (
            {
                "algorithm": {"name": "kmeans", "clusters": 50},
                "dataset": {"name": "higgs", "items": 40},
            },
            ["algorithm.clusters: 50 is not allowed", "clusters must be at most 40"],
        ),
        (
            {"runtime": {"heartbeat_interval": "1ms", "failure_timeout": "10ms"}},
            ["runtime.failure_timeout: '10ms' is not allowed", "at least 50ms"],
        ),
        ({"rate": 1}, ["rate: 1 is not allowed", "takes 12,000 s", "at least 200 items/s"]),
        ({"repeat": 10_000_000}, ["expands to 10,000,000 runs", "at most 10,000 runs"]),
        (
            {"sweep": {"batch": list(range(1, 101)), "rate": list(range(1000, 1101))}},
            ["expands to 10,100 runs (100 values of batch x 101 values of rate)"],
        ),
    ],
)
def test_bad_spec_names_key_and_allowed_values(change: dict, expected: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse(ec_spec(**change))
    message = str(info.value)
    for fragment in expected:
        assert fragment in message
    assert "\n" not in message


def test_spec_at_the_bounds_is_valid() -> None:
    raw = ec_spec(
        algorithm={"name": "kmeans", "clusters": 4000},
        batch=4000,
        rate=4000 / 60,
        runtime={"heartbeat_interval": "10ms", "failure_timeout": "50ms"},
    )
    assert only(raw).algorithm.kwargs()["clusters"] == 4000
    assert len(parse(ec_spec(sweep={"batch": list(range(1, 101))}, repeat=100))) == 10_000


def test_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"  # 10**6 values once expanded, in a mapping this time
    levels = ["&l0 {a: 1, b: 1, c: 1, d: 1, e: 1, f: 1, g: 1, h: 1, i: 1, j: 1}"]
    for i in range(1, 6):
        inner = ", ".join(f"{key}: *l{i - 1}" for key in "abcdefghij")
        levels.append(f"&l{i} {{{inner}}}")
    path.write_text(f"name: t\nprocessors: 1\nsweep:\n  batch: [[{', '.join(levels)}]]\n")
    with pytest.raises(SpecError, match="more than 100,000 values once its YAML aliases"):
        load(path)


def test_a_spec_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: t\nprocessors: 1\nsweep:\n  batch: &x [1, *x]\n")
    with pytest.raises(SpecError, match="contains itself"):
        load(path)


def test_merge_keys_work_and_own_keys_override(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "name: t\nprocessors: 6\nscheme: &ec {name: ec, k: 4, r: 2}\n"
        "sweep:\n  scheme: [*ec, {<<: *ec, k: 5, r: 1}]\n"
    )
    runs = load(path)
    assert [(r.scheme.k, r.scheme.r) for r in runs] == [(4, 2), (5, 1)]


def test_sweep_error_names_the_combination() -> None:
    raw = ec_spec(sweep={"scheme": [{"name": "ec", "k": 4}, {"name": "ec", "k": 5}]})
    with pytest.raises(SpecError) as info:
        parse(raw)
    assert str(info.value) == (
        "run scheme=ec,k=5: scheme: ec with k=5, r=2 needs k+r=7 processors, spec has processors: 6"
    )


@pytest.mark.parametrize(
    "assignment", ["foo", "=3", "scheme..k=3", "processors.x=1", "failures.3.at=1s"]
)
def test_bad_override_is_a_spec_error(assignment: str) -> None:
    with pytest.raises(SpecError, match=r"^--set .* is not allowed"):
        parse(ec_spec(failures=[]), [assignment])


def test_bad_override_message_asks_for_dotted_key() -> None:
    with pytest.raises(SpecError) as info:
        apply_override({}, "foo")
    assert str(info.value) == "--set 'foo' is not allowed: write dotted.key=value"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("name: [unclosed\n", "is not valid YAML"),
        ("name: a\nname: b\nprocessors: 1\n", "duplicate key 'name' at line 2"),
        ("- 1\n- 2\n", "must be a mapping"),
        ("", "is empty"),
    ],
)
def test_file_errors_name_the_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpecError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 20),
    st.floats(allow_nan=True),
    st.sampled_from(["ec", "rep", "max", "10s", "processor-1", "k", "x.y", "", "1e3"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "k", "r", "at", "kill", "lr", "0"]), inner)
    ),
    max_leaves=8,
)


@given(
    st.dictionaries(st.sampled_from(["name", "processors", "bogus", *ec_spec()]), _values),
    st.dictionaries(st.sampled_from(["scheme", "batch", "failures", "sweep", "rate"]), _values),
)
def test_any_yaml_shaped_input_gives_specs_or_a_spec_error(base: dict, extra: dict) -> None:
    try:
        runs = parse({**ec_spec(), **base, **extra})
    except SpecError as exc:
        assert str(exc)
        return
    assert runs
    assert len({r.run_id for r in runs}) == len(runs)


def test_processors_auto_is_one_group_of_the_scheme():
    runs = parse(
        {
            "name": "auto",
            "processors": "auto",
            "scheme": {"name": "ec"},
            "sweep": {"scheme.k": [2, 10], "scheme.r": [1, 3]},
        }
    )
    assert [(r.scheme.k, r.scheme.r, r.processors) for r in runs] == [
        (2, 1, 3),
        (2, 3, 5),
        (10, 1, 11),
        (10, 3, 13),
    ]
    assert (
        parse({"name": "a", "processors": "auto", "scheme": {"name": "rep", "copies": 2}})[
            0
        ].processors
        == 2
    )
    with pytest.raises(
        SpecError, match=r"processors: 'auto' is not allowed: auto needs .*\(ec or rep\)"
    ):
        parse({"name": "a", "processors": "auto", "scheme": "none"})


# -- registered at run time --------------------------------------------------------------------


class ToyReg(LinReg):
    """linreg under another name, with one more declared parameter."""

    name = "toyreg"
    parameters = (
        *LinReg.parameters,
        Param("momentum", float, 0.5, "unused here", minimum=0, exclusive=True),
    )


class ToyScheme(Partitioned):
    """Groups of ``width`` slots, each with the group's whole part (rep under another name)."""

    name = "toy"
    aliases = ("plaything",)
    parameters = (
        Param("width", int, 2, "slots per group", minimum=1, label=SHAPE),
        Param("mode", str, "a", "a choice", choices=("a", "b"), label=OPTION),
    )

    @property
    def copies(self) -> int:  # type: ignore[override]
        return self.width


def toys_registered():
    return registered(ToyReg, ToyScheme)


@pytest.fixture
def toys():
    with toys_registered():
        yield


def test_registered_algorithm_and_scheme_parse_with_their_declared_params(toys) -> None:
    raw = {
        "name": "toys",
        "processors": "auto",
        "algorithm": {"name": "toyreg", "momentum": 0.25},
        "scheme": {"name": "plaything", "width": 3},
    }
    run = only(raw)
    assert run.algorithm.kwargs() == {"l2": 1e-4, "lr": 0.05, "momentum": 0.25}
    assert (run.scheme.name, run.scheme.width, run.scheme.mode) == ("toy", 3, "a")
    assert run.to_dict()["scheme"] == {"name": "toy", "width": 3, "mode": "a"}
    assert run.processors == 3  # auto: one group of the declared shape
    assert run.run_id == "toy3-toyreg-higgs"
    assert only(run.to_dict()) == run
    scheme = schemes.make_scheme(run.scheme, run.processors)
    assert (type(scheme), scheme.width, scheme.describe()) == (ToyScheme, 3, "toy(3)")
    assert schemes.label("toy", {"width": 3, "mode": "b"}, "variant") == "toy(3) b"
    algorithm = algorithms.make_algorithm(run.algorithm.name, 4, **run.algorithm.kwargs())
    assert algorithm.params() == {"lr": 0.05, "l2": 1e-4, "momentum": 0.25}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"scheme": {"name": "toy", "mode": "c"}},
            "scheme.mode: 'c' is not allowed: choose one of a, b",
        ),
        (
            {"scheme": {"name": "toy", "width": 0}},
            "scheme.width: 0 is not allowed: width must be a positive integer",
        ),
        (
            {"scheme": {"name": "toy", "width": 4}},
            "processors: 6 is not a multiple of width=4 (toy groups of width processors)",
        ),
        (
            {"scheme": {"name": "toy", "k": 4}},
            "key 'scheme.k' does not apply to scheme toy: allowed keys under scheme are "
            "name, width, mode when name is toy (k is for ec)",
        ),
        (
            {"algorithm": {"name": "toyreg", "momentum": 0}},
            "algorithm.momentum: 0 is not allowed: momentum must be a positive number",
        ),
        (
            {"algorithm": {"name": "toyreg", "clusters": 2}},
            "unknown key 'algorithm.clusters': allowed keys under algorithm are "
            "name, lr, l2, momentum when name is toyreg (clusters is for kmeans)",
        ),
        ({"scheme": "raid"}, "choose one of none, ec, rep, reactive, toy (or replication"),
    ],
)
def test_registered_params_are_checked_by_their_declarations(
    toys, change: dict, expected: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse(ec_spec(**change))
    assert expected in str(info.value)


def test_unregistering_restores_the_registries() -> None:
    before = (list(algorithms.ALGORITHMS), list(schemes.SCHEMES), schemes.aliases())
    with toys_registered():
        assert "toyreg" in algorithms.ALGORITHMS and "toy" in schemes.SCHEMES
        with pytest.raises(ValueError, match="already registered"):
            schemes.register(ToyScheme)
    assert (list(algorithms.ALGORITHMS), list(schemes.SCHEMES), schemes.aliases()) == before
    with pytest.raises(SpecError, match="choose one of none, ec, rep, reactive "):
        parse(ec_spec(scheme="toy"))
    unknown = r"choose one of linreg, logreg, svm, kmeans, mlp \(did you mean 'logreg'\?\)$"
    with pytest.raises(SpecError, match=unknown):
        parse(ec_spec(algorithm="toyreg"))


def test_scheme_labels_come_from_the_declarations() -> None:
    assert [schemes.label("ec", {"k": 12, "r": 3}, s) for s in ("slug", "family", "scheme")] == [
        "ec12-3",
        "ec(12,3)",
        "ec(12,3)-linear",
    ]
    assert schemes.label("ec", {"attach": "inputs", "incremental": False}, "variant") == (
        "ec(4,2) inputs no-incremental"
    )
    assert [schemes.label("rep", {"copies": 2}, s) for s in ("slug", "family")] == [
        "rep2",
        "rep-2x",
    ]
    assert SchemeSpec("ec", k=12, r=3).label == "ec12-3"
    assert schemes.ErasureCoded(6, 4, 2, attach="inputs").describe() == "ec(4,2)-inputs"


# -- where the reactive scheme logs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        (
            {"name": "reactive", "log": "storag"},
            "scheme.log: 'storag' is not allowed: choose one of source, storage "
            "(did you mean 'storage'?)",
        ),
        (
            {"name": "reactive", "replicas": 0},
            "scheme.replicas: 0 is not allowed: replicas must be a positive integer",
        ),
        (
            {"name": "reactive", "log": "source", "replicas": 3},
            "scheme.replicas: not allowed with log: source: replicas (storage workers that hold "
            "every batch) applies only with log: storage",
        ),
        (
            {"name": "ec", "k": 4, "r": 2, "log": "storage"},
            "key 'scheme.log' does not apply to scheme ec: allowed keys under scheme are name, "
            "k, r, code, attach, incremental when name is ec (log is for reactive)",
        ),
        (
            {"name": "rep", "copies": 3, "replicas": 2},
            "key 'scheme.replicas' does not apply to scheme rep",
        ),
        ({"name": "reactive", "replica": 2}, "unknown key 'scheme.replica' (did you mean"),
    ],
    ids=["log-typo", "no-replicas", "replicas-not-storage", "log-ec", "replicas-rep", "key-typo"],
)
def test_bad_log_settings_are_one_paragraph_naming_the_key(scheme, expected) -> None:
    with pytest.raises(SpecError) as caught:
        parse(ec_spec(scheme=scheme))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_storage_log_adds_workers_hosts_and_labels() -> None:
    storage = only(ec_spec(scheme={"name": "reactive"}, cluster={"emulate": "lan-1g"}))
    assert storage.scheme.log == "storage" and storage.scheme.replicas == 2  # the default
    assert storage.storage == ("storage-0", "storage-1")
    assert storage.workers[-2:] == ("storage-0", "storage-1")
    assert storage.cluster.emulate.hosts == 6 + 2 + 2  # processors, sink, source, storage
    placed = placement(storage)
    assert [placed[w] for w in ("sink", "source", "storage-0", "storage-1")] == [
        "h1",
        "h2",
        "h3",
        "h4",
    ]
    assert {placed[f"processor-{i}"] for i in range(6)} == {f"h{i}" for i in range(5, 11)}
    source = {"name": "reactive", "log": "source"}
    local = only(ec_spec(scheme=source, cluster={"emulate": "lan-1g"}))
    assert local.storage == () and local.cluster.emulate.hosts == 8
    assert placement(local)["processor-0"] == "h3"
    fixed = only(ec_spec(scheme={"name": "reactive"}, cluster={"emulate": {"hosts": 8}}))
    placed = placement(fixed)  # no host for every worker: processors placed as without storage
    assert placed == {**placement(local), "storage-0": "h3", "storage-1": "h4"}
    assert schemes.label("reactive", {"log": "storage"}, "scheme") == "reactive-storage"
    assert schemes.label("reactive", {"log": "source"}, "variant") == "reactive source"
    assert schemes.label("reactive", {"log": "storage"}, "variant") == "reactive"
    both = parse(
        ec_spec(sweep={"scheme": [{"name": "reactive"}, {"name": "reactive", "log": "source"}]})
    )
    assert len({run.run_id for run in both}) == 2
    assert both[1].run_id.endswith("log_source")


def test_storage_workers_can_be_placed_by_hand_and_only_those_that_exist() -> None:
    scheme = {"name": "reactive", "replicas": 2}
    by_hand = only(ec_spec(scheme=scheme, transport="tcp", hosts={"storage-1": "node4"}))
    assert dict(by_hand.hosts) == {"storage-1": "node4"}
    with pytest.raises(SpecError, match=r"hosts.storage-2: storage-2 does not exist \(.*storage-0"):
        parse(ec_spec(scheme=scheme, transport="tcp", hosts={"storage-2": "node4"}))
    with pytest.raises(SpecError, match=r"hosts\.storage-0: storage-0 does not exist"):
        parse(ec_spec(scheme={"name": "reactive", "log": "source"}, hosts={"storage-0": "x"}))


def test_kdd12_maxima_round_trip_through_the_resolved_spec() -> None:
    """``dataset.maxima`` is kept in feature order, written to spec.yaml only when given, and
    a resolved spec reads back as the same run."""
    (spec,) = parse(
        {
            "name": "real",
            "processors": 2,
            "dataset": {"name": "kdd12", "maxima": {"user": 23907635, "query": "26243606"}},
        }
    )
    assert spec.dataset.maxima == (("query", 26243606), ("user", 23907635))
    resolved = spec.to_dict()
    assert resolved["dataset"]["maxima"] == {"query": 26243606, "user": 23907635}
    assert parse(resolved)[0] == spec
    (plain,) = parse({"name": "x", "processors": 2, "dataset": "kdd12"})
    assert "maxima" not in plain.to_dict()["dataset"]  # earlier runs' spec.yaml stay the same


def test_stragglers_round_trip_and_name_their_runs() -> None:
    one = [{"worker": "processor-2", "slowdown": 5, "from": "4s", "to": "8s"}]
    two = [*one, {"worker": "processor-3", "slowdown": 2.5, "from": "1s"}]
    specs = parse(ec_spec(failures=[], sweep={"stragglers": [[], one, two]}))
    assert [s.run_id.split("-")[-1] for s in specs] == ["noslow", "slow_p2x5", "slow_p2x5_p3x2.5"]
    resolved = specs[2].to_dict()["stragglers"]
    assert resolved[1] == {"worker": "processor-3", "slowdown": 2.5, "from": 1.0, "to": "end"}
    assert parse(specs[2].to_dict())[0].stragglers == specs[2].stragglers
    assert "stragglers" not in specs[0].to_dict()  # runs without any record nothing new
