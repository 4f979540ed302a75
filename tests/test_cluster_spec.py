"""The ``cluster`` section of a spec: its errors, the default placement and the addresses."""

from __future__ import annotations

import pytest

from streamlec_cli import spec
from streamlec_cli.runtime.placement import host_of, placement
from streamlec_cli.runtime.plan import make_plan


def build(cluster: dict, processors: int = 6, **settings) -> spec.Spec:
    raw = {
        "name": "c",
        "dataset": {"name": "higgs", "items": 1000},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": processors,
        "cluster": cluster,
        **settings,
    }
    return spec.parse(raw)[0]


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"launcher": "kubernetes"}, "cluster.launcher: 'kubernetes' is not allowed: choose one"),
        (
            {"launcher": "ssh", "hosts": ["a", "b"], "place": {"sink": "c"}},
            "cluster.place.sink: 'c' is not one of the hosts (a, b)",
        ),
        (
            {"emulate": {"hosts": 3}, "place": {"processor-9": "h1"}},
            "cluster.place.processor-9: processor-9 does not exist",
        ),
        ({"emulate": {"hosts": 3, "delay": "10ms"}}, "this kernel has no netem"),
        ({"emulate": {"hosts": 3, "link": "10tbit"}}, "link must be a rate such as 1gbit"),
        ({"emulate": {"hosts": 3, "link": "50bit"}}, "from 100kbit to 40gbit"),
        ({"emulate": {"hosts": 3, "cpu": 0}}, "cpu must be a share of cores from 0.01"),
        ({"emulate": {"hosts": 3, "cpu": 999}}, "cpu must be a share of cores from 0.01"),
        ({"emulate": {"hosts": 0}}, "cluster.emulate.hosts: 0 is not allowed"),
        ({"emulate": {"link": "1gbit"}}, "cluster.emulate.hosts: missing"),
        ({"emulate": {"hosts": 3}, "hosts": ["a"]}, "the emulated hosts are named h1 .. h3"),
        ({"launcher": "ssh"}, "launcher ssh needs the hosts"),
        ({"launcher": "slurm", "emulate": {"hosts": 2}}, "start the hosts and their slurmd"),
        ({"hosts": ["a", "b"]}, "not allowed with launcher local without emulate"),
        ({"emulate": {"hosts": 3}, "colour": 1}, "unknown key 'cluster.colour'"),
        ({"emulate": "lan-2g"}, "profile must be one of lan-10g, lan-1g, lan-100m, cores-only"),
        ({"emulate": {"profile": "lan-1g", "cpu": 0.5}}, "0.5 is not allowed with profile lan-1g"),
        ({"emulate": {"profile": "cores-only", "link": "1gbit"}}, "leave link out"),
        ({"emulate": 7}, "emulate must be a profile (lan-10g, lan-1g"),
        ({"emulate": {"hosts": 9, "dilation": 20}}, "dilation: allowed only with a profile"),
        (
            {"emulate": {"profile": "lan-1g", "dilation": 0.5}},
            "dilation must be a number from 1 to 100",
        ),
    ],
)
def test_a_bad_cluster_section_is_one_clear_error(cluster, expected):
    with pytest.raises(spec.SpecError) as err:
        build(cluster)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_emulation_implies_tcp_and_refuses_ipc():
    assert build({"emulate": {"hosts": 3}}).transport == "tcp"
    with pytest.raises(spec.SpecError, match="hosts talk tcp"):
        build({"emulate": {"hosts": 3}}, transport="ipc")


def test_link_rates_read_like_tc():
    assert spec.link_rate("1gbit") == 1e9
    assert spec.link_rate("100mbit") == 100e6
    assert spec.link_rate("500kbit") == 500e3
    assert spec.link_rate(2_000_000) == 2e6


def test_the_cluster_section_survives_the_resolved_spec():
    one = build({"emulate": {"hosts": 9, "link": "1gbit", "cpu": 0.2}, "place": {"sink": "h9"}})
    again = spec.parse(one.to_dict())[0]
    assert again.cluster == one.cluster and again.transport == "tcp"
    ssh = build({"launcher": "ssh", "hosts": ["n1", "n2"], "ssh": {"user": "me", "options": []}})
    assert spec.parse(ssh.to_dict())[0].cluster == ssh.cluster


def test_default_placement_gives_sink_and_source_hosts_of_their_own_then_round_robin():
    nine = build({"emulate": {"hosts": 9}})
    assert placement(nine) == {
        "sink": "h1",
        "source": "h2",
        **{f"processor-{i}": f"h{3 + i}" for i in range(6)},
    }
    assert host_of(nine, "standby-1") == "h9"  # the spares continue the round robin
    assert host_of(nine, "standby-2") == "h3"
    five = build({"emulate": {"hosts": 5}})
    assert [host_of(five, f"processor-{i}") for i in range(6)] == ["h3", "h4", "h5"] * 2
    two = build({"emulate": {"hosts": 2}})
    assert host_of(two, "sink") == "h1" and host_of(two, "source") == "h2"
    assert {host_of(two, f"processor-{i}") for i in range(6)} == {"h1", "h2"}
    placed = build({"emulate": {"hosts": 9}, "place": {"sink": "h5", "standby-1": "h1"}})
    assert host_of(placed, "sink") == "h5" and host_of(placed, "standby-1") == "h1"
    assert host_of(build({}), "sink") is None  # no hosts: everything here


def test_addresses_follow_the_placement(tmp_path):
    plan = make_plan(build({"emulate": {"hosts": 9}, "place": {"source": "h7"}}), tmp_path)
    (tmp_path / "port").write_text("27100")
    assert plan.address("sink") == "tcp://198.18.0.11:27100"
    assert plan.address("source") == "tcp://198.18.0.17:27101"
    assert plan.address("supervisor") == "tcp://198.18.0.1:27102"
    (tmp_path / "subnet").write_text("198.18.7.0/24\n")  # the /24 the run's cluster was given
    assert plan.address("sink") == "tcp://198.18.7.11:27100"
    assert plan.address("supervisor") == "tcp://198.18.7.1:27102"
    ssh = make_plan(build({"launcher": "ssh", "hosts": ["n1", "n2", "n3"]}), tmp_path)
    assert ssh.address("sink") == "tcp://n1:27100" and ssh.address("source") == "tcp://n2:27101"


def test_a_profile_gives_each_worker_a_host_scaled_down_in_cpu_and_link_together():
    lan = build({"emulate": "lan-1g"}).cluster.emulate
    assert (lan.hosts, lan.cpu, lan.link) == (8, 0.2, 200e6)  # 6 processors, source, sink
    assert lan.profile.name == "lan-1g" and lan.profile.dilation == 5
    assert "1-core hosts on 1 Gbit/s links at 1/5 speed" in lan.profile.describe()
    nine = build({"emulate": {"profile": "lan-10g", "hosts": 9}}).cluster.emulate
    assert (nine.hosts, nine.cpu, nine.link) == (9, 0.2, 2e9)
    assert build({"emulate": "cores-only"}).cluster.emulate.link is None
    # the resolved spec names the profile and repeats its values, and reads back the same
    again = build(build({"emulate": "lan-100m"}).cluster.to_dict()).cluster.emulate
    assert (again.profile.name, again.hosts, again.cpu, again.link) == ("lan-100m", 8, 0.2, 20e6)


def test_a_dilation_slows_a_profile_and_names_its_runs_apart():
    slowed = build({"emulate": {"profile": "lan-1g", "dilation": 20}})
    lan = slowed.cluster.emulate
    assert (lan.hosts, lan.cpu, lan.link) == (8, 0.05, 50e6)
    assert lan.profile.label == "lan-1g-d20"
    assert "1-core hosts on 1 Gbit/s links at 1/20 speed (0.05 CPU" in lan.profile.describe()
    assert slowed.run_id == "ec42-logreg-higgs-lan-1g-d20-8h"
    again = build(slowed.cluster.to_dict()).cluster.emulate
    assert (again.profile.label, again.cpu, again.link) == ("lan-1g-d20", 0.05, 50e6)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"pairs": 0}, "pairs: 0 is not allowed"),
        ({"pairs": 17}, "pairs must be from 1 to 16"),
        ({"pairs": 2, "pair": 2}, "pair must be below pairs (2)"),
        (
            {"pairs": 2, "cluster": {"launcher": "ssh", "hosts": ["a", "b", "c"]}},
            "pairs: 2 is not allowed with launcher ssh",
        ),
        (
            {"pairs": 2, "cluster": {"emulate": {"hosts": 9}, "place": {"sink": "h2"}}},
            "cluster.place: not allowed with pairs: 2",
        ),
        (
            {"pairs": 4, "cluster": {"emulate": {"hosts": 8}}},
            "4 pairs need at least 9 hosts",
        ),
        (
            {"pairs": 2, "transport": "tcp", "hosts": {"sink": "127.0.0.1"}},
            "hosts: not allowed with pairs: 2",
        ),
    ],
)
def test_bad_pairs_are_one_clear_error(settings, expected):
    raw = {
        "name": "c",
        "dataset": {"name": "higgs", "items": 1000},
        "scheme": {"name": "ec", "k": 4, "r": 2},
        "processors": 6,
        **settings,
    }
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_pairs_get_a_sink_and_a_source_host_each_and_share_the_processors_hosts():
    two = build({"emulate": "lan-1g"}, pairs=2)
    assert two.cluster.emulate.hosts == 10  # 2 sinks, 2 sources, 6 processors
    assert two.run_id == "ec42-logreg-higgs-lan-1g-10h-pairs2"
    second = spec.parse({**two.to_dict(), "pair": 1})[0]
    assert placement(two) == {
        "sink": "h1",
        "source": "h2",
        **{f"processor-{i}": f"h{5 + i}" for i in range(6)},
    }
    assert placement(second) == {
        "sink": "h3",
        "source": "h4",
        **{f"processor-{i}": f"h{5 + i}" for i in range(6)},
    }
    assert host_of(two, "standby-1") == host_of(second, "standby-1") == "h5"
    # the log's storage workers: a host of each pair's own, after the sinks and sources
    reactive = {"name": "reactive", "log": "storage", "replicas": 2}
    logged = build({"emulate": "lan-1g"}, pairs=2, scheme=reactive)
    assert logged.cluster.emulate.hosts == 14
    other = spec.parse({**logged.to_dict(), "pair": 1})[0]
    assert host_of(logged, "storage-1") == "h6" and host_of(other, "storage-0") == "h7"
    assert host_of(other, "processor-0") == "h9"


def test_set_names_a_profile_on_the_command_line(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("name: s\ndataset: {name: higgs, items: 1000}\nprocessors: 4\n")
    (run,) = spec.load(path, overrides=["cluster.emulate=lan-1g"])
    assert run.cluster.emulate.profile.name == "lan-1g" and run.cluster.emulate.hosts == 6


def test_a_figure_and_the_report_say_which_cluster_the_workers_ran_on():
    from streamlec_cli.profiles import PROFILES, cluster_line

    meta = {
        "cluster": {
            "emulated": True,
            "asked": {"hosts": 8, "link_bit_s": 200e6, "cpu": 0.2},
            "measured": {"link_bit_s": 191e6, "cpu": 0.198},
            "profile": PROFILES["lan-1g"].to_dict(),
        }
    }
    line = cluster_line(meta)
    assert line.startswith("emulated cluster of 8 hosts, lan-1g: 1-core hosts on 1 Gbit/s")
    assert line.endswith("measured 0.20 CPU, 191 Mbit/s")
    meta["cluster"]["profile"] = None
    assert cluster_line(meta).startswith("emulated cluster of 8 hosts, 0.2 CPU, 200 Mbit/s each")
    assert cluster_line({}) == "this machine"


def test_a_profile_names_the_run_apart_from_the_same_setting_on_shared_cores(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: s\ndataset: {name: higgs, items: 1000}\nprocessors: 6\n"
        "sweep: {scheme: [{name: rep, copies: 3}, {name: ec, k: 2, r: 1}]}\n"
    )
    shared = [run.run_id for run in spec.load(path)]
    emulated = [run.run_id for run in spec.load(path, overrides=["cluster.emulate=lan-1g"])]
    assert shared == ["rep3-logreg-higgs", "ec21-logreg-higgs"]
    assert emulated == ["rep3-logreg-higgs-lan-1g-8h", "ec21-logreg-higgs-lan-1g-8h"]
    swept = spec.load(path, overrides=["sweep.cluster.emulate=[null, lan-100m]"])
    assert [run.run_id for run in swept][:2] == [
        "rep3-logreg-higgs-shared",
        "rep3-logreg-higgs-lan-100m-8h",
    ]


def test_addresses_the_launcher_wrote_are_where_the_workers_meet(tmp_path):
    """Slurm nodes whose NodeAddr is not their name: the run directory's addresses.json."""
    hosts = {"launcher": "slurm", "hosts": ["n1", "n2", "n3"]}
    (tmp_path / "port").write_text("27100")
    before = make_plan(build(hosts), tmp_path)
    assert before.address("sink") == "tcp://n1:27100"
    (tmp_path / "addresses.json").write_text(
        '{"n1": "198.18.200.11", "n2": "198.18.200.12", "supervisor": "198.18.200.1"}'
    )
    plan = make_plan(build(hosts), tmp_path)
    assert plan.address("sink") == "tcp://198.18.200.11:27100"
    assert plan.address("source") == "tcp://198.18.200.12:27101"
    assert plan.address("supervisor") == "tcp://198.18.200.1:27102"
