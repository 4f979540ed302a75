"""A real Slurm cluster of one node on this host, for the tests of the ``slurm`` launcher.

``SlurmCluster(dir).start()`` runs ``munged`` (as the munge user, with a key of its own),
``slurmctld`` and ``slurmd`` with a generated ``slurm.conf``, everything (configuration,
state, spool, logs, pid files, the munge socket) in ``dir``; ``env()`` is the environment in
which ``srun``, ``salloc``, ``squeue`` and ``scancel`` talk to it (``SLURM_CONF``). ``stop()``
ends every daemon it started, by pid. Nothing under /etc or /var is read or changed: the
daemons are told every path, and the node is this machine (``SlurmctldHost`` must be its host
name), reached on loopback.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "srun", "salloc", "squeue", "scancel")


def available() -> str | None:
    """Why the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "a Slurm cluster of its own needs root (slurmd starts jobs as any user)"
    missing = [
        d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()
    ]
    if missing:
        return f"not installed: {', '.join(missing)} (Debian: slurm-wlm munge)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "no munge user (Debian's munge package creates it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, root: Path, nodes: int = 1, cpus: int | None = None) -> None:
        self.root = Path(root)
        self.node = socket.gethostname()
        # One node: this machine by its name. More: n1 .. nN, a slurmd each (slurmd -N),
        # all on this machine, each on a port of its own.
        self.nodes = [self.node] if nodes == 1 else [f"n{i}" for i in range(1, nodes + 1)]
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.root / "slurm.conf"
        self.procs: list[int] = []  # pids of the daemons, stopped in reverse order

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
            del env[var]  # an allocation of another cluster is none of ours
        return env

    def start(self) -> SlurmCluster:
        root = self.root
        for sub in ("state", "log", *(f"spool/{node}" for node in self.nodes)):
            (root / sub).mkdir(parents=True, exist_ok=True)
        munge = pwd.getpwnam("munge")
        # munged wants every directory above its socket searchable by all, which a test's
        # temporary directory is not: its own directory under /tmp, removed by stop()
        self.munge_dir = Path(tempfile.mkdtemp(prefix="streamlec-munge-"))
        self.munge_dir.chmod(0o755)
        keydir, sockdir = self.munge_dir / "key", self.munge_dir / "socket"
        for d, mode in ((keydir, 0o700), (sockdir, 0o755)):
            d.mkdir(exist_ok=True)
            os.chown(d, munge.pw_uid, munge.pw_gid)
            d.chmod(mode)
        key = keydir / "key"
        key.write_bytes(os.urandom(128))
        os.chown(key, munge.pw_uid, munge.pw_gid)
        key.chmod(0o600)
        self.munge_socket = sockdir / "sock"
        started = subprocess.run(
            [
                "setpriv",
                f"--reuid={munge.pw_uid}",
                f"--regid={munge.pw_gid}",
                "--init-groups",
                _sbin("munged"),
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={sockdir / 'pid'}",
                f"--log-file={sockdir / 'log'}",
                f"--seed-file={sockdir / 'seed'}",
            ],
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise RuntimeError(f"munged did not start: {started.stderr.strip()}")
        self.procs.append(int(self._wait_for_file(sockdir / "pid").read_text()))
        (root / "plugstack.conf").write_text("")
        (root / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\n")
        self.conf.write_text(self.config())
        env = self.env()
        daemons = [([], "slurmctld", [])] + [
            (self.enter(node), "slurmd", ["-N", node]) for node in self.nodes
        ]
        for enter, daemon, args in daemons:
            proc = subprocess.Popen(
                [*enter, _sbin(daemon), "-D", "-f", str(self.conf), *args],
                env=env,
                stdout=open(root / "log" / f"{daemon}.out", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.procs.append(proc.pid)
            self.__dict__.setdefault("popens", []).append(proc)
            if daemon == "slurmctld":
                self._wait_until(["scontrol", "ping"], "UP", 20)
        self._wait_until(["sinfo", "-h", "-o", "%D %t"], f"{len(self.nodes)} idle", 30)
        return self

    #: Where the nodes reach slurmctld (it runs on this machine, as ``self.node``).
    controller_address = "127.0.0.1"

    def node_address(self, node: str) -> str:
        """Slurm's ``NodeAddr`` of ``node``: where slurmctld and ``srun`` reach its slurmd."""
        return "127.0.0.1"

    def enter(self, node: str) -> list[str]:
        """The argv prefix that runs ``node``'s slurmd where the node is (here: nothing)."""
        return []

    def config(self) -> str:
        root = self.root
        nodes = "\n".join(
            f"NodeName={node} NodeAddr={self.node_address(node)} Port={_free_port()} "
            f"CPUs={self.cpus}"
            for node in self.nodes
        )
        return f"""\
ClusterName=streamlec
SlurmctldHost={self.node}({self.controller_address})
SlurmctldPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
PlugStackConfig={root}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=2
MinJobAge=2
{nodes}
PartitionName=debug Nodes={",".join(self.nodes)} Default=YES State=UP OverSubscribe=YES
"""

    def _wait_for_file(self, path: Path, timeout: float = 10) -> Path:
        deadline = time.monotonic() + timeout
        while not path.exists() or not path.read_text().strip():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} did not appear")
            time.sleep(0.05)
        return path

    def _wait_until(self, argv: list[str], text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            res = subprocess.run(argv, env=self.env(), capture_output=True, text=True)
            out = res.stdout + res.stderr
            if text in out:
                return
            time.sleep(0.2)
        logs = "\n".join(
            p.read_text()[-2000:] for p in sorted((self.root / "log").glob("*")) if p.is_file()
        )
        raise RuntimeError(f"{' '.join(argv)} never said {text!r}: {out}\n{logs}")

    def steps(self) -> list[str]:
        res = subprocess.run(
            ["squeue", "-s", "-h", "-o", "%i %j"], env=self.env(), capture_output=True, text=True
        )
        return [line for line in res.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env(), timeout=10)
        for pid in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for proc in self.__dict__.get("popens", []):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in self.procs:  # munged: not our child; wait until it is gone
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.procs.clear()
        if hasattr(self, "munge_dir"):
            shutil.rmtree(self.munge_dir, ignore_errors=True)


class EmulatedSlurmCluster(SlurmCluster):
    """A Slurm node per emulated host (``emulate.EmulatedCluster``, already made): node ``hI``
    is a slurmd started inside host ``hI`` (its network namespace and CPU group, which its
    job steps inherit), reached at the host's address; slurmctld runs on this machine and
    the nodes reach it at the bridge (the cluster's gateway)."""

    def __init__(self, root: Path, emulated) -> None:
        super().__init__(root, nodes=len(emulated.hosts))
        self.emulated = emulated
        self.nodes = list(emulated.hosts)
        self.controller_address = emulated.gateway

    def node_address(self, node: str) -> str:
        return self.emulated.address(node)

    def enter(self, node: str) -> list[str]:
        return self.emulated.enter_argv(node)
