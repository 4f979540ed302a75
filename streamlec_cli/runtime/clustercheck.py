"""``streamlec cluster check``: what this machine can emulate, and whether a spec's hosts answer.

``capabilities`` probes for real (as root): it makes a throw-away network namespace and, inside
it only, a bridge, a veth pair, a ``tbf`` and a ``netem`` qdisc, then removes the namespace.
``check_hosts`` asks each host of a spec to run this streamlec and say its version over the
network; ``HOST_CHECKS`` has one check per launcher: ``emulate`` and ``slurm`` (a step on each
node of the allocation) here, ``ssh`` through ``launch_ssh.check_cluster``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__
from ..spec import Spec
from .emulate import (
    EmulatedCluster,
    EmulationError,
    cgroup_version,
    signals_held,
)

#: Seconds a host's answer may take (a step, or a process entering an emulated host).
ANSWER_WITHIN = 30.0


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it holds, and what was seen."""

    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok ' if self.ok else 'no '} {self.what}: {self.detail}"


def capabilities() -> list[Check]:
    """Root, namespaces, veth and bridge, tbf, netem, and the cgroup cpu controller."""
    root = os.geteuid() == 0
    checks = [
        Check("root", root, "yes" if root else f"no (uid {os.geteuid()}): emulation needs root")
    ]
    version = cgroup_version()
    cpu = {1: "v1 cpu controller (cpu.cfs_quota_us)", 2: "v2 cpu controller (cpu.max)"}
    checks.append(Check("cgroup cpu", version is not None, cpu.get(version, "none found")))
    if not root:
        checks.append(Check("namespaces", False, "not probed (needs root)"))
        return checks
    with signals_held():
        checks += _probe_kernel()
    return checks


def _probe_kernel() -> list[Check]:
    """Namespaces, bridge, veth, tbf, netem: made for real in a throw-away namespace."""
    from pyroute2 import NetNS, netns

    checks: list[Check] = []
    name = f"streamlec-{os.getpid()}-h0"  # the name clean_leftovers knows
    try:
        netns.create(name)
    except OSError as exc:
        checks.append(Check("network namespaces", False, f"cannot create one: {exc}"))
        return checks
    checks.append(Check("network namespaces", True, "created and removed one"))
    try:
        with NetNS(name) as ns:
            checks.append(_probe(ns, "bridge", lambda: ns.link("add", ifname="b0", kind="bridge")))
            veth = _probe(
                ns, "veth", lambda: ns.link("add", ifname="v0", kind="veth", peer={"ifname": "v1"})
            )
            checks.append(veth)
            if veth.ok:
                v0, v1 = ns.link_lookup(ifname="v0")[0], ns.link_lookup(ifname="v1")[0]
                tbf = _probe(
                    ns,
                    "tbf",
                    lambda: ns.tc("add", "tbf", v0, rate="1gbit", burst=70000, latency="50ms"),
                )
                checks.append(tbf)
                netem = _probe(ns, "netem", lambda: ns.tc("add", "netem", v1, delay=1000))
                if not netem.ok:
                    netem = Check(
                        "netem", False, "absent: link delay and loss cannot be emulated here"
                    )
                checks.append(netem)
    finally:
        with contextlib.suppress(OSError):
            netns.remove(name)
    return checks


def _probe(ns, what: str, action: Callable[[], object]) -> Check:
    try:
        action()
    except Exception as exc:  # a netlink error: the kernel lacks it
        return Check(what, False, f"refused by the kernel ({exc})")
    return Check(what, True, "works")


def check_emulated(spec: Spec) -> list[Check]:
    """Make the spec's emulated hosts, ask each to run this streamlec and send its version to
    the bridge over TCP, then remove them."""
    assert spec.cluster is not None and spec.cluster.emulate is not None
    cluster = EmulatedCluster(spec.cluster.emulate)
    try:
        cluster.create()
    except EmulationError as exc:
        return [Check("emulated hosts", False, str(exc))]
    checks = []
    try:
        with socket.create_server((cluster.gateway, 0)) as server:
            port = server.getsockname()[1]
            for host in cluster.hosts:
                checks.append(_ask(cluster, host, server, port))
    finally:
        cluster.destroy()
    return checks


_REPORT = """
import json, socket, sys
import streamlec_cli
from streamlec_cli.provenance import code_commit
said = {"version": streamlec_cli.__version__}
if sys.argv[3:] == ["commit"]:
    said["commit"] = code_commit()
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as c:
    c.sendall(json.dumps(said).encode())
"""


def _ask(cluster: EmulatedCluster, host: str, server: socket.socket, port: int) -> Check:
    argv = [*cluster.enter_argv(host), sys.executable, "-c", _REPORT, cluster.gateway, str(port)]
    said = _answer(argv, server, cluster.address(host))
    where = f"{host} ({cluster.address(host)})"
    if isinstance(said, str):
        return Check(where, False, said)
    version = said.get("version")
    same = version == __version__
    return Check(
        where, same, f"reachable, streamlec {version}" + ("" if same else f" (here {__version__})")
    )


def _answer(
    argv: list[str], server: socket.socket, address: str | None, env: dict | None = None
) -> dict | str:
    """Run ``argv`` (``_REPORT`` somewhere) and read what it sends to ``server``; a string
    says what went wrong (no answer, or one from another address than ``address``)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + ANSWER_WITHIN
    server.settimeout(0.1)
    try:
        while True:  # until it connects, ends without a word, or the deadline passes
            try:
                conn, peer = server.accept()
                break
            except TimeoutError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise TimeoutError(f"nothing within {ANSWER_WITHIN:g} s") from None
        with conn:
            conn.settimeout(10)
            said = json.loads(conn.recv(4096) or b"{}")
    except (OSError, ValueError) as exc:
        proc.kill()
        _, err = proc.communicate()
        return f"did not answer ({exc}): {err.strip()[-300:]}"
    proc.wait(timeout=30)
    if address is not None and peer[0] != address:
        return f"answered from {peer[0]}, not its own address"
    return said


def check_slurm(spec: Spec) -> list[Check]:
    """Inside an allocation, each node (the spec's ``cluster.hosts``, else the allocation's)
    runs a step that connects back to this host at the address a run's supervisor listens at
    (``launch.route_source``) and says its streamlec code commit, which must be this
    one's. Outside an allocation, one line that says how to run the check."""
    from ..provenance import code_commit
    from .launch import route_source, worker_env
    from .launch_slurm import (
        REMOTE_SUPERVISOR,
        STEP_PREFIX,
        SlurmError,
        allocation_nodes,
        node_addresses,
        on_this_machine,
        step_argv,
    )

    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        msg = (
            "not inside a Slurm allocation (no SLURM_JOB_ID): the nodes are an allocation's; "
            "check them from inside one, `salloc -N<nodes> streamlec cluster check SPEC`"
        )
        return [Check("slurm", False, msg)]
    try:
        named = spec.cluster.hosts if spec.cluster is not None else ()
        nodes = list(dict.fromkeys(named)) or allocation_nodes()
        addresses = node_addresses()
    except SlurmError as exc:
        return [Check("slurm", False, str(exc))]
    here, env = code_commit(), worker_env(REMOTE_SUPERVISOR)
    checks = []
    with socket.create_server(("", 0)) as server:
        port = server.getsockname()[1]
        for node in nodes:
            address = addresses.get(node, node)
            local = on_this_machine(node, addresses)
            towards = "127.0.0.1" if local else route_source([address])
            where = f"{node} ({address})"
            if towards is None:
                checks.append(Check(where, False, f"no route from this host to {address}"))
                continue
            probe = [sys.executable, "-c", _REPORT, towards, str(port), "commit"]
            argv = step_argv(job, node, probe, f"{STEP_PREFIX}:check")
            said = _answer(argv, server, None if local else _ip(address), env)
            if isinstance(said, str):
                checks.append(Check(where, False, said))
                continue
            commit = said.get("commit")
            same = commit == here
            detail = f"a step reached {towards}, " + (
                f"same code ({commit})" if same else f"streamlec at commit {commit}, here {here}"
            )
            checks.append(Check(where, same, detail))
    return checks


def _ip(address: str) -> str | None:
    """``address`` if it is an IPv4 address (a node's answer must come from there)."""
    with contextlib.suppress(OSError):
        socket.inet_aton(address)
        return address
    return None


def check_ssh(spec: Spec) -> list[Check]:
    """Each ssh host reachable, running the same streamlec (``launch_ssh.check_cluster``)."""
    from .launch_ssh import check_cluster

    return [Check("ssh", ok, message) for _host, ok, message in check_cluster(spec)]


#: Host checks by launcher; each gives one ``Check`` per host of the spec.
HOST_CHECKS: dict[str, Callable[[Spec], list[Check]]] = {
    "emulate": check_emulated,
    "ssh": check_ssh,
    "slurm": check_slurm,
}


def check_hosts(spec: Spec) -> list[Check]:
    """Whether every host of ``spec`` is reachable and runs the same streamlec."""
    cluster = spec.cluster
    if cluster is None:
        return [Check("hosts", True, "no cluster section: every worker runs on this host")]
    kind = "emulate" if cluster.emulate is not None else cluster.launcher
    if kind not in HOST_CHECKS:
        return [Check(f"{kind} hosts", False, f"no check for launcher {kind} here")]
    return HOST_CHECKS[kind](spec)
