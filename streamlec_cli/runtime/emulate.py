"""An emulated cluster on this machine: hosts that are network namespaces on a bridge.

Each host ``hI`` (I = 1 .. N) is a Linux network namespace with one end of a veth pair,
``eth0`` with address 198.18.S.(10+I)/24 and ``lo`` up; the other end sits on a bridge of the
run's own with 198.18.S.1/24, where the supervisor listens. A link rate is a token-bucket
filter (``tbf``) on both ends of the pair (the host's egress, and on the bridge side its
ingress); a CPU share is a cgroup (v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, or v2
``cpu.max``) that every process of the host joins. A process enters a host through
``enter_argv``: a small wrapper joins the cgroup first, then the namespace (``setns``), then
execs the command, so the pid the launcher holds is the worker's own.

Addresses: only 198.18.0.0/16 (in the range reserved for benchmarking networks, RFC 2544),
on the run's own bridge, which routes nowhere. Each emulated cluster takes the first /24
``198.18.S.0/24`` that no other holds (chosen under a lock, ``NETWORK_LOCK``), so that several
runs, or a run and a test, can each have one at the same time. Names carry the owner's pid
(``sl<pid>b``, ``sl<pid>hI``, netns ``streamlec-<pid>-hI``, cgroup ``streamlec-<pid>``), so that
``clean_leftovers`` (run by the next ``streamlec`` command) removes what a killed owner left.

Netlink through pyroute2 (no ``ip``/``tc`` processes). It needs root. This kernel has no
``netem``: links are shaped in rate only, never delayed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..spec import EmulateSpec

NETWORK = "198.18.0.0/16"  # every emulated cluster takes one /24 of it: 198.18.S.0/24
SUBNETS = 256
NETWORK_LOCK = Path("/run/streamlec-emulated.lock")  # held while a cluster picks its /24
SUBNET_FILE = "subnet"  # in the run directory: the /24 its emulated hosts have
PREFIXLEN = 24
CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_V1 = CGROUP_ROOT / "cpu"
NETNS_DIR = Path("/run/netns")
PERIOD_US = 100_000  # cfs period given to each host's group
TBF_LATENCY = "50ms"  # how long a packet may wait in a host's tbf queue
MEASURE_PORT = 5201  # inside the fresh namespaces nothing else listens
MEASURE_BYTES = 50_000_000
MEASURE_SECONDS = 2.0
TRANSFERS = 2  # the link's rate is the best of these
CPU_SECONDS = 1.0
#: A worker started on an emulated host finds its host's CPU group here and joins it once its
#: imports are done (``join_cpu_group``): start-up is not part of the stream, and at a small
#: share of a core it would take tens of seconds.
CPU_GROUP_ENV = "STREAMLEC_CPU_GROUP"

_LINK_NAME = re.compile(r"sl(\d+)(?:b|h\d+)")
_NETNS_NAME = re.compile(r"streamlec-(\d+)-h\d+")
_CGROUP_NAME = re.compile(r"streamlec-(\d+)")


class EmulationError(RuntimeError):
    """The emulated cluster cannot be made here (not root, no namespaces, another one up)."""


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Stop signals (SIGINT, SIGTERM, SIGHUP) wait until the block is done, then arrive."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def host_address(index: int, subnet: int = 0) -> str:
    """Address of emulated host ``h<index>`` (1-based) in ``198.18.<subnet>.0/24``."""
    return f"198.18.{subnet}.{10 + index}"


def gateway_address(subnet: int = 0) -> str:
    """The bridge's address in ``198.18.<subnet>.0/24``: this machine as the hosts reach it."""
    return f"198.18.{subnet}.1"


def subnet_of(run_dir: Path) -> int:
    """The /24 a run's emulated hosts were given (``SUBNET_FILE``, written by the supervisor
    once they exist), as its third octet; 0 before that."""
    path = Path(run_dir) / SUBNET_FILE
    return int(path.read_text().split(".")[2]) if path.exists() else 0


def host_index(host: str) -> int:
    return int(host[1:])


def require_root(what: str = "an emulated cluster") -> None:
    if os.geteuid() != 0:
        msg = (
            f"{what} needs root: it creates network namespaces, a bridge, veth links, tbf "
            "qdiscs and cgroups (run as root, or leave cluster.emulate out of the spec to run "
            "every worker on this host)"
        )
        raise EmulationError(msg)


def cgroup_version() -> int | None:
    """2 where the unified hierarchy at /sys/fs/cgroup offers ``cpu``, 1 where the v1 ``cpu``
    controller is mounted, None where neither is."""
    with contextlib.suppress(OSError):
        if "cpu" in (CGROUP_ROOT / "cgroup.controllers").read_text().split():
            return 2
    if (CPU_V1 / "cpu.cfs_quota_us").exists():
        return 1
    return None


def tbf_burst(rate_bit_s: float) -> int:
    """Bucket size: 2 ms at the rate, at least one GSO segment (64 kB) and a frame."""
    return max(int(rate_bit_s / 8 / 500), 65536 + 1514)


@dataclass(frozen=True)
class SharedCluster:
    """Emulated hosts made and measured by another process (``owner``, which removes them):
    where the pairs of one run all place their workers."""

    owner: int
    subnet: int
    measured: dict

    def to_dict(self) -> dict:
        return {"owner": self.owner, "subnet": self.subnet, "measured": self.measured}


@dataclass
class EmulatedCluster:
    """The hosts of one run; ``create`` makes them, ``destroy`` removes all of it."""

    emulate: EmulateSpec
    owner: int = field(default_factory=os.getpid)
    created: bool = False
    #: The third octet of the cluster's /24 (``198.18.<subnet>.0/24``), chosen by ``create``.
    subnet: int = 0

    @property
    def hosts(self) -> list[str]:
        return [f"h{i}" for i in range(1, self.emulate.hosts + 1)]

    @property
    def bridge(self) -> str:
        return f"sl{self.owner}b"

    def veth(self, host: str) -> str:
        return f"sl{self.owner}{host}"

    def netns(self, host: str) -> str:
        return f"streamlec-{self.owner}-{host}"

    @property
    def cgroup(self) -> Path | None:
        version = cgroup_version()
        if self.emulate.cpu is None or version is None:
            return None
        return (CPU_V1 if version == 1 else CGROUP_ROOT) / f"streamlec-{self.owner}"

    def address(self, host: str) -> str:
        return host_address(host_index(host), self.subnet)

    @property
    def gateway(self) -> str:
        """The bridge's address: this machine as the hosts reach it (the supervisor's)."""
        return gateway_address(self.subnet)

    @property
    def network(self) -> str:
        return f"198.18.{self.subnet}.0/{PREFIXLEN}"

    def enter_argv(self, host: str, cpu: bool = True) -> list[str]:
        """The prefix that runs a command on ``host`` (``cpu``: under its CPU quota)."""
        group = self.cgroup if cpu else None
        cgroup = str(group / host) if group is not None else "-"
        return [sys.executable, "-m", "streamlec_cli.runtime.emulate", self.netns(host), cgroup]

    # -- set-up and tear-down -------------------------------------------------------------

    def create(self) -> None:
        """Make the bridge, the hosts, their shaping and CPU groups (stop signals are held
        meanwhile: netlink interrupted half-way leaves pyroute2 hung)."""
        with signals_held():
            self._create()

    def _create(self) -> None:
        require_root()
        if self.emulate.cpu is not None and cgroup_version() is None:
            msg = "cluster.emulate.cpu: this machine has no cgroup cpu controller (v1 or v2)"
            raise EmulationError(msg)
        clean_leftovers()
        from pyroute2 import IPRoute, NetNS, netns

        self.created = True  # from here on, destroy() removes whatever part was made
        try:
            with IPRoute() as ipr:
                bridge = self._claim_subnet(ipr)
                for host in self.hosts:
                    name = self.netns(host)
                    netns.create(name)
                    ipr.link(
                        "add",
                        ifname=self.veth(host),
                        kind="veth",
                        peer={"ifname": self.veth(host) + "p", "net_ns_fd": name},
                    )
                    outer = ipr.link_lookup(ifname=self.veth(host))[0]
                    ipr.link("set", index=outer, master=bridge, state="up")
                    self._shape(ipr, outer)
                    with NetNS(name) as ns:
                        inner = ns.link_lookup(ifname=self.veth(host) + "p")[0]
                        ns.link("set", index=inner, ifname="eth0")
                        ns.addr("add", index=inner, address=self.address(host), prefixlen=24)
                        ns.link("set", index=inner, state="up")
                        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
                        self._shape(ns, inner)
            self._make_cgroups()
        except Exception:
            self.destroy()
            raise

    def _claim_subnet(self, ipr) -> int:
        """Make the bridge with the gateway address of the first /24 of ``NETWORK`` that no
        interface of this machine has an address in (under ``NETWORK_LOCK``); its index."""
        import fcntl

        with open(NETWORK_LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            held = {
                int(address.split(".")[2])
                for address in (a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=2))
                if address and address.startswith("198.18.")
            }
            free = [subnet for subnet in range(SUBNETS) if subnet not in held]
            if not free:
                msg = (
                    f"every /24 of {NETWORK} is held by another emulated cluster or interface "
                    "of this machine: wait for a run to end, or remove what holds them"
                )
                raise EmulationError(msg)
            self.subnet = free[0]
            ipr.link("add", ifname=self.bridge, kind="bridge")
            bridge = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.addr("add", index=bridge, address=self.gateway, prefixlen=PREFIXLEN)
            ipr.link("set", index=bridge, state="up")
        return bridge

    def _shape(self, ipr, index: int) -> None:
        rate = self.emulate.link
        if rate is not None:
            burst = tbf_burst(rate)
            ipr.tc("add", "tbf", index, rate=f"{int(rate)}bit", burst=burst, latency=TBF_LATENCY)

    def _make_cgroups(self) -> None:
        group = self.cgroup
        if group is None:
            return
        cpu = self.emulate.cpu
        assert cpu is not None
        group.mkdir(exist_ok=True)
        quota = max(1000, round(cpu * PERIOD_US))
        if group.parent == CGROUP_ROOT:  # v2: the cpu controller down to the hosts' groups
            with contextlib.suppress(OSError):  # already on where the root gives it out
                (CGROUP_ROOT / "cgroup.subtree_control").write_text("+cpu")
            (group / "cgroup.subtree_control").write_text("+cpu")
        for host in self.hosts:
            path = group / host
            path.mkdir(exist_ok=True)
            if (path / "cpu.max").exists():
                (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (path / "cpu.cfs_quota_us").write_text(str(quota))

    def destroy(self) -> list[str]:
        """Remove everything this cluster made (also what a failed ``create`` made); what."""
        if not self.created:
            return []
        self.created = False
        with signals_held():
            return remove_owned(self.owner)

    def __enter__(self) -> EmulatedCluster:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- measuring what the hosts give ------------------------------------------------------

    def measure(self) -> dict:
        """What one link and one host really gave, beside what was asked."""
        measured: dict[str, object] = {}
        if self.emulate.link is not None:
            measured.update(self.measure_link())
        if self.cgroup is not None:
            measured.update(self.measure_cpu())
        return {
            "asked": {
                "hosts": self.emulate.hosts,
                "link_bit_s": self.emulate.link,
                "cpu": self.emulate.cpu,
            },
            "measured": measured,
        }

    def measure_link(self) -> dict:
        """``TRANSFERS`` bounded TCP transfers (``MEASURE_BYTES`` or ``MEASURE_SECONDS``,
        whichever ends first) from the last host to the first (or from the bridge when there
        is one host); a rate is what the receiver saw from its first byte to its last, and the
        link's is the best of them (a slower one was held back by its ends). Both ends run
        outside the CPU quota and at a high priority (nice -15), so that it is the link that
        is measured, not their share of a busy machine."""
        receiver = self.hosts[0]
        sender = self.hosts[-1] if len(self.hosts) > 1 else None
        rates = [self._transfer(sender, receiver) for _ in range(TRANSFERS)]
        return {
            "link_bit_s": max(rates),
            "link_between": f"{sender or 'bridge'} -> {receiver}",
            "link_transfers_bit_s": rates,
        }

    def _transfer(self, sender: str | None, receiver: str) -> float:
        """Bits per second of one transfer from ``sender`` (None: the bridge) to ``receiver``."""
        target, port = self.address(receiver), str(MEASURE_PORT)
        recv = subprocess.Popen(
            [*self.enter_argv(receiver, cpu=False), sys.executable, "-c", _RECEIVER, target, port],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            limits = [port, str(MEASURE_BYTES), str(MEASURE_SECONDS)]
            send_argv = [sys.executable, "-c", _SENDER, target, *limits]
            if sender is not None:
                send_argv = [*self.enter_argv(sender, cpu=False), *send_argv]
            subprocess.run(send_argv, check=True, timeout=30, capture_output=True)
            out, _ = recv.communicate(timeout=30)
        finally:
            if recv.poll() is None:
                recv.kill()
                recv.wait()
        got = json.loads(out)
        return 8 * got["bytes"] / got["seconds"] if got["seconds"] > 0 else 0.0

    def measure_cpu(self) -> dict:
        """A busy loop of ``CPU_SECONDS`` in the first host's group: the CPU time it got over
        the wall time it ran. Meanwhile the run's and the host's groups get the highest
        scheduling weight, so that other load on the machine cannot keep the loop below its
        quota: the group stays saturated and what is measured is the quota's share."""
        host = self.hosts[0]
        assert self.cgroup is not None
        with _weight_raised([self.cgroup, self.cgroup / host]):
            out = subprocess.run(
                [*self.enter_argv(host), sys.executable, "-c", _BUSY, str(CPU_SECONDS)],
                check=True,
                timeout=60,
                capture_output=True,
                text=True,
            ).stdout
        got = json.loads(out)
        return {"cpu": got["cpu_s"] / got["wall_s"], "cpu_host": host, "cpu_wall_s": got["wall_s"]}


@contextlib.contextmanager
def _weight_raised(groups: list[Path]) -> Iterator[None]:
    """The groups' CPU weight at its highest (v1 ``cpu.shares``, v2 ``cpu.weight``), then back."""
    before = {}
    for group in groups:
        for name, top in (("cpu.shares", "262144"), ("cpu.weight", "10000")):
            path = group / name
            if path.exists():
                before[path] = path.read_text().strip()
                path.write_text(top)
    try:
        yield
    finally:
        for path, value in before.items():
            with contextlib.suppress(OSError):
                path.write_text(value)


_RECEIVER = """
import json, os, socket, sys, time
os.nice(-15)  # the wire is measured, not this process's share of a busy machine
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # rides out a late wake-up
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
n = 0; first = last = None
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    now = time.monotonic()
    if first is None:
        first = now
    else:
        n += len(b)
    last = now
print(json.dumps({"bytes": n, "seconds": (last - first) if first else 0.0}))
"""

_SENDER = """
import os, socket, sys, time
os.nice(-15)
host, port, total, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + 10
while True:
    try:
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        c.settimeout(5)
        c.connect((host, port))
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.02)
chunk = bytes(1 << 20)
sent = 0
end = time.monotonic() + limit
while sent < total and time.monotonic() < end:
    c.sendall(chunk)
    sent += len(chunk)
c.close()
"""

_BUSY = """
import json, sys, time
limit = float(sys.argv[1])
t0 = time.monotonic(); c0 = time.process_time()
while time.monotonic() - t0 < limit:
    pass
print(json.dumps({"cpu_s": time.process_time() - c0, "wall_s": time.monotonic() - t0}))
"""


# -- removing what an owner made ---------------------------------------------------------------


def _owner_alive(pid: int) -> bool:
    """Whether ``pid`` is a live streamlec process (pids are reused)."""
    if pid == os.getpid():
        return True
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"streamlec" in argv or b"pytest" in argv


def owned() -> dict[int, dict[str, list[str]]]:
    """What emulated clusters exist on this machine, by owner pid."""
    found: dict[int, dict[str, list[str]]] = {}

    def add(pid: str, kind: str, name: str) -> None:
        found.setdefault(int(pid), {}).setdefault(kind, []).append(name)

    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(NETNS_DIR)):
            if m := _NETNS_NAME.fullmatch(entry):
                add(m[1], "netns", entry)
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir("/sys/class/net")):
            if m := _LINK_NAME.fullmatch(entry):
                add(m[1], "links", entry)
    for root in (CPU_V1, CGROUP_ROOT):
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(root)):
                if (m := _CGROUP_NAME.fullmatch(entry)) and (root / entry).is_dir():
                    add(m[1], "cgroups", str(root / entry))
    return found


def remove_owned(owner: int) -> list[str]:
    """Remove the namespaces, links and cgroups of ``owner``'s cluster; what was removed."""
    parts = owned().get(owner, {})
    removed = []
    for group in parts.get("cgroups", []):
        if _remove_cgroup(Path(group)):
            removed.append(f"cgroup {group}")
    if parts.get("netns"):
        from pyroute2 import netns

        for name in parts["netns"]:
            _kill_in_netns(name)
            with contextlib.suppress(OSError):
                netns.remove(name)
                removed.append(f"netns {name}")
    if parts.get("links"):
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            for name in parts["links"]:
                with contextlib.suppress(Exception):
                    for index in ipr.link_lookup(ifname=name):
                        ipr.link("del", index=index)
                        removed.append(f"link {name}")
    return removed


def _kill_in_netns(name: str) -> None:
    """SIGKILL the processes whose network namespace is ``name`` (found through /proc)."""
    try:
        target = os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{pid}/ns/net").st_ino == target and int(pid) != os.getpid():
                os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup(group: Path) -> bool:
    """Kill what runs in ``group`` and its children, then remove them (a group with tasks
    cannot be removed: retry for up to 2 s while they die)."""
    children = [p for p in group.iterdir() if p.is_dir()]
    for path in [*children, group]:
        with contextlib.suppress(OSError, ValueError):
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    for path in [*children, group]:
        while True:
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
    return True


_WHAT = {"cgroup": "CPU group(s)", "netns": "network namespace(s)", "link": "link(s)"}


def clean_leftovers() -> str | None:
    """Remove the emulated clusters whose owner is gone; one line saying what, or None."""
    if os.geteuid() != 0:
        return None
    lines = []
    for owner in sorted(owned()):
        if _owner_alive(owner):
            continue
        with signals_held():
            removed = remove_owned(owner)
        if removed:
            kinds = [entry.split()[0] for entry in removed]
            said = ", ".join(f"{kinds.count(kind)} {_WHAT[kind]}" for kind in dict.fromkeys(kinds))
            lines.append(f"cleaned up the emulated cluster of pid {owner} (gone): {said} removed")
    return "\n".join(lines) or None


# -- the wrapper a process enters a host through -----------------------------------------------


def join_cpu_group() -> None:
    """Join the CPU group ``CPU_GROUP_ENV`` names, if any (a worker, after its imports)."""
    group = os.environ.pop(CPU_GROUP_ENV, None)
    if group:
        (Path(group) / "cgroup.procs").write_text(str(os.getpid()))


def enter(netns_name: str, cgroup: str, argv: list[str]) -> None:
    """Join ``cgroup`` (``-``: none), then the network namespace, then exec ``argv``."""
    if cgroup != "-":
        with open(Path(cgroup) / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
    from pyroute2 import netns

    netns.setns(netns_name)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: python -m streamlec_cli.runtime.emulate NETNS CGROUP|- COMMAND ...")
    enter(sys.argv[1], sys.argv[2], sys.argv[3:])
