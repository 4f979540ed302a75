"""The ``slurm`` launcher: each worker is a job step of the allocation ``streamlec run`` runs in.

``streamlec run`` inside ``salloc`` or ``sbatch`` starts every worker as a step of its own,
``srun --overlap --exact -N1 -n1 -w NODE --job-name=streamlec:<worker>:<incarnation> python -m
streamlec_cli worker ...``. The ``srun`` client is a child of the supervisor, so:

* the worker's exit is the end of its step, and the ``srun`` client ends with it: its pidfd is
  the handle's ``exit_fd`` (seen within tens of milliseconds of a kill), its exit code the
  worker's (``128+N``, from a signal N, is read as ``-N``);
* the worker's output reaches its log here through ``srun`` (``logs/<worker>.log``), and a
  warm spare reads its slot from ``srun``'s standard input, forwarded to the step;
* signals go through Slurm, ``scancel --signal=SIG JOB.STEP``, from any shell that sees the
  cluster, so a handle rebuilt from ``record()`` (job, step, node) in another shell signals
  the same worker; a step that no longer exists is a worker gone;
* ``sample()`` and ``stopped()`` read the task's ``/proc`` when its node is this host (its pid
  from ``scontrol listpids``, which asks the node's own slurmd); on another node ``sample()``
  gives what ``sstat`` said (memory and CPU, where the cluster gathers job accounting; one
  ``sstat`` for all steps twice a second, in a thread) and ``stopped()`` cannot see a stop
  (False).

``--overlap`` lets the steps share the allocation's CPUs: a run has more workers than most
allocations have cores, and a worker mostly waits. The nodes are the allocation's
(``SLURM_JOB_NODELIST``, expanded by ``scontrol show hostnames``) unless given.

No shared file system is assumed. Before the first worker starts on a node, a step unpacks
the run directory as it is then (``spec.yaml``, ``token``, ``port``, the staged data set; not
the logs) into a node-local directory, ``/tmp/streamlec-<job>-<hash of the run
directory>-<node>``; the workers run there. At the end (``finish``), a step per node packs
what the workers wrote there (the sink's results, its events) and it is unpacked into the run
directory, the sink's events merged with the supervisor's by time; then the node-local
directory is removed, by a keeper step per node that removes it when its input closes, or
when the supervisor is gone (killed outright: its ``srun`` gets a parent-death SIGUSR1 and
passes it on). A killed supervisor's worker steps end too: their ``srun`` clients get a
parent-death SIGTERM, on which srun cancels its step. Every node needs the same Python with
streamlec installed at the supervisor's ``sys.executable``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import select
import signal as signals
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

from ..results import merge_events
from ..spec import Spec
from .launch import (
    LAUNCHERS,
    Handle,
    Launcher,
    LocalHandle,
    LocalLauncher,
    Sample,
    best_offset,
    give_slot,
    no_slot,
    route_source,
    worker_command,
    worker_env,
)
from .lifeline import die_with_parent

STEP_PREFIX = "streamlec"
STEP_SEEN_WITHIN = 10.0  # seconds for a new step to show in squeue
CLOCK_WITHIN = 10.0  # seconds for a node's clock step to answer
REMOTE_SUPERVISOR = "slurm"  # a worker's supervisor is on another host: its step ends it
EVENTS = "events.csv"


#: Runs in a step on a node: says its wall clock once for each line on its standard input.
_CLOCK = "import sys, time\nfor _ in sys.stdin:\n    print(repr(time.time()), flush=True)"


class SlurmError(RuntimeError):
    """Slurm is not there, or this is not inside an allocation."""


def _slurm(*argv: str, stdin: bytes | None = None, check: bool = True) -> str:
    try:
        res = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=60)
    except FileNotFoundError:
        msg = f"{argv[0]} not found: the slurm launcher needs Slurm's client commands"
        raise SlurmError(msg) from None
    if check and res.returncode != 0:
        err = res.stderr.decode(errors="replace").strip()
        msg = f"{' '.join(argv[:2])} failed (exit code {res.returncode}): {err}"
        raise SlurmError(msg)
    return res.stdout.decode(errors="replace")


def this_host(node: str) -> bool:
    """Whether ``node`` is the host this runs on (Slurm's node names are short host names)."""
    name = socket.gethostname()
    return node in (name, name.split(".")[0], "localhost")


def node_addresses() -> dict[str, str]:
    """Every node's ``NodeAddr``: where Slurm, and so the other nodes, reach it (its name
    where the cluster gives no address of its own)."""
    addresses = {}
    for line in _slurm("scontrol", "-o", "show", "node").splitlines():
        fields = dict(field.split("=", 1) for field in line.split() if "=" in field)
        if "NodeName" in fields:
            addresses[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return addresses


def on_this_machine(node: str, addresses: dict[str, str]) -> bool:
    """Whether ``node`` is this host by name, or reached at a loopback address."""
    return this_host(node) or addresses.get(node, node).startswith("127.")


def step_argv(job: str, node: str, argv: list[str], step_name: str) -> list[str]:
    """``srun`` running ``argv`` as a step of its own on ``node`` of allocation ``job``,
    sharing the allocation's CPUs with the other steps."""
    return [
        "srun",
        f"--jobid={job}",
        "--overlap",
        "--exact",
        "-N1",
        "-n1",
        f"--nodelist={node}",
        f"--job-name={step_name}",
        "--quiet",
        *argv,
    ]


def allocation_nodes() -> list[str]:
    """The nodes of the allocation this runs in."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodelist:
        msg = "no SLURM_JOB_NODELIST: run streamlec inside an allocation (salloc or sbatch)"
        raise SlurmError(msg)
    return _slurm("scontrol", "show", "hostnames", nodelist).split()


def step_of(job: str, step_name: str) -> str | None:
    """The ``JOB.STEP`` id of the live step named ``step_name``, or None."""
    out = _slurm("squeue", "-s", "-h", "-j", job, "-o", "%i|%j", check=False)
    for line in out.splitlines():
        step, _, name = line.strip().partition("|")
        if name == step_name:
            return step
    return None


class SlurmHandle(Handle):
    """One worker as one job step: our ``srun`` client (``proc``), or rebuilt from a record."""

    kind = "slurm"

    def __init__(
        self,
        worker: str,
        incarnation: int,
        host: str,
        job: str,
        step_name: str,
        pid: int,
        proc: subprocess.Popen | None = None,
        step: str | None = None,
        task_pid: int | None = None,
        sampler: StepSampler | None = None,
    ) -> None:
        self.sampler = sampler
        self.worker = worker
        self.incarnation = incarnation
        self.host = host
        self.job = job
        self.step_name = step_name
        self.pid = pid  # the srun client's, on the supervisor's host
        self.proc = proc
        self._step = step
        self._task_pid = task_pid

    @property
    def step(self) -> str | None:
        """``JOB.STEP``, looked up by the step's name the first time (None once it ended)."""
        deadline = time.monotonic() + STEP_SEEN_WITHIN
        while self._step is None and self.poll() is None:
            self._step = step_of(self.job, self.step_name)
            if self._step is None:
                if self.proc is None or time.monotonic() > deadline:
                    break
                time.sleep(0.01)
        return self._step

    @property
    def task_pid(self) -> int | None:
        """The worker's pid on its node, where that node is this host."""
        if self._task_pid is not None or not this_host(self.host) or self.step is None:
            return self._task_pid
        env = dict(os.environ, SLURMD_NODENAME=self.host)
        deadline = time.monotonic() + STEP_SEEN_WITHIN
        while self._task_pid is None and self.alive() and time.monotonic() < deadline:
            res = subprocess.run(
                ["scontrol", "listpids", self.step], capture_output=True, text=True, env=env
            )
            rows = [line.split() for line in res.stdout.splitlines()[1:]]
            # task 0's; its pid is -1 until slurmstepd has forked it
            pids = [int(r[0]) for r in rows if len(r) >= 4 and r[3] == "0" and int(r[0]) > 0]
            if pids:
                self._task_pid = min(pids)
            else:  # the step is there, its task not yet
                time.sleep(0.01)
        return self._task_pid

    def _local(self) -> LocalHandle | None:
        pid = self.task_pid
        return None if pid is None else LocalHandle(self.worker, self.incarnation, pid)

    def exit_fd(self) -> int | None:
        if self.proc is None:
            return None  # rebuilt in another process: no srun client of ours to wait on
        return LocalHandle(self.worker, self.incarnation, self.proc.pid).exit_fd()

    def poll(self) -> int | None:
        if self.proc is None:
            return None
        code = self.proc.poll()
        if code is not None and code > 128:
            return -(code - 128)  # srun: 128+N when the task died of signal N
        return code

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return step_of(self.job, self.step_name) is not None

    def signal(self, sig: int) -> bool:
        if not self.alive() or self.step is None:
            return False
        name = signals.Signals(sig).name.removeprefix("SIG")
        res = subprocess.run(
            ["scancel", "--quiet", f"--signal={name}", self.step], capture_output=True
        )
        return res.returncode == 0

    def sample(self) -> Sample | None:
        if not self.alive():
            return None
        local = self._local()
        if local is not None:
            return local.sample()
        if self.step is None:
            return None
        if self.sampler is not None:  # the supervisor's: read in a thread, never waited on
            return self.sampler.get(self.step)
        return sstat_samples(self.step).get(self.step)

    def stopped(self) -> bool:
        local = self._local() if self.alive() else None
        return local is not None and local.stopped()

    def record(self) -> dict:
        return {
            **super().record(),
            "job": self.job,
            "step": self.step,
            "step_name": self.step_name,
            "task_pid": self.task_pid,
        }


def sstat_samples(target: str) -> dict[str, Sample]:
    """``{JOB.STEP: Sample}`` from one ``sstat`` of a step, or of every step of a job (memory
    and CPU, where the cluster gathers job accounting; else nothing)."""
    argv = ["sstat", "-n", "-P", "-o", "JobID,MaxRSS,AveCPU", "-j", target]
    if "." not in target:
        argv.insert(1, "-a")
    samples = {}
    for line in _slurm(*argv, check=False).splitlines():
        fields = line.strip().split("|")
        if len(fields) == 3 and fields[1]:
            rss = _kilobytes(fields[1])
            samples[fields[0]] = Sample(rss, rss, _seconds(fields[2]))
    return samples


class StepSampler:
    """The samples of a job's steps on other nodes, read by one ``sstat`` for all of them
    every ``every`` seconds in a thread of its own, so that the supervisor's loop never
    waits on Slurm (it samples every worker twice a second)."""

    def __init__(self, job: str, every: float = 0.5) -> None:
        self.job = job
        self.every = every
        self.samples: dict[str, Sample] = {}
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def get(self, step: str) -> Sample | None:
        if self.thread is None:
            self.thread = threading.Thread(target=self.run, name="sstat", daemon=True)
            self.thread.start()
        return self.samples.get(step)

    def run(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(SlurmError, OSError, subprocess.SubprocessError):
                self.samples = sstat_samples(self.job)
            self.done.wait(self.every)

    def close(self) -> None:
        self.done.set()


def _kilobytes(text: str) -> int:
    scale = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
    text = text.strip()
    if text and text[-1] in scale:
        return int(float(text[:-1]) * scale[text[-1]])
    return int(float(text or 0)) // 1024


def _seconds(text: str) -> float:
    """sstat's ``[D-]HH:MM:SS[.mmm]`` or ``MM:SS.mmm``."""
    days, _, rest = text.strip().rpartition("-")
    total = 0.0
    for part in rest.split(":"):
        total = total * 60 + float(part or 0)
    return total + 86400 * int(days or 0)


def _die_with_parent(sig: int = signals.SIGTERM) -> None:
    """In the ``srun`` client, before it runs: ``sig`` when the supervisor ends however it
    ends. On SIGTERM srun cancels its step (its tasks are killed); SIGUSR1 it passes on to
    them, so that they can still do something."""
    die_with_parent(sig)


class SlurmLauncher(Launcher):
    """Workers as job steps of the allocation this runs in; see the module docstring."""

    kind = "slurm"

    def __init__(
        self, run_dir: Path, spec_file: Path, nodes: list[str] | None = None, job: str = ""
    ) -> None:
        self.run_dir = Path(run_dir)
        self.spec_file = Path(spec_file)
        self.job = job or os.environ.get("SLURM_JOB_ID", "")
        if not self.job:
            msg = "no SLURM_JOB_ID: run streamlec inside an allocation (salloc or sbatch)"
            raise SlurmError(msg)
        self.nodes = list(nodes or allocation_nodes())
        tag = hashlib.sha256(str(self.run_dir.resolve()).encode()).hexdigest()[:10]
        self.run_tag = f"{self.job}-{tag}"  # names the run's steps and node-local copies
        self.staged: list[str] = []  # nodes that have the run directory
        self.keepers: dict[str, subprocess.Popen] = {}  # node -> the step that removes it
        self.sampler = StepSampler(self.job)
        self.spares_placed = 0

    @classmethod
    def for_run(cls, spec: object, run_dir: Path, cluster: object = None) -> SlurmLauncher:
        """The launcher of one run: the spec's ``cluster.hosts`` are the nodes (none: the
        allocation's). Emulated hosts (``cluster``) are not Slurm nodes: not used here."""
        from .supervisor import RunFailed  # here: the supervisor imports the launchers

        hosts = getattr(getattr(spec, "cluster", None), "hosts", ())
        try:
            return cls(Path(run_dir), Path(run_dir) / "spec.yaml", list(hosts) or None)
        except SlurmError as exc:  # not in an allocation, no Slurm: said in one line
            raise RunFailed(f"cluster.launcher slurm: {exc}", exit_code=2) from None

    @classmethod
    def hosts_for(cls, spec: Spec) -> tuple[str, ...]:
        """The spec's hosts, or else the allocation's nodes (so that the sink's and source's
        addresses are their nodes, not this host's)."""
        named = super().hosts_for(spec)
        if named:
            return named
        from .supervisor import RunFailed  # here: the supervisor imports the launchers

        try:
            nodes = allocation_nodes()
            addresses = node_addresses()
            here = all(on_this_machine(node, addresses) for node in nodes)
        except SlurmError as exc:  # not in an allocation, no Slurm: said in one line
            raise RunFailed(f"cluster.launcher slurm: {exc}", exit_code=2) from None
        # Nodes that are all this machine are reached on loopback, whatever their names.
        return () if here else tuple(nodes)

    # -- placement: sink and source on nodes of their own, then the processors round robin -

    def place(self, name: str) -> str:
        n = len(self.nodes)
        if name == "sink":
            return self.nodes[0]
        if name == "source":
            return self.nodes[1 % n]
        rest = self.nodes[2:] or self.nodes
        if name.startswith("processor-") and name.removeprefix("processor-").isdigit():
            return rest[int(name.removeprefix("processor-")) % len(rest)]
        self.spares_placed += 1
        return rest[(self.spares_placed - 1) % len(rest)]

    # -- files to and from the nodes -----------------------------------------------------

    def srun(self, node: str, *argv: str, step_name: str = "") -> list[str]:
        return step_argv(self.job, node, list(argv), step_name or f"{STEP_PREFIX}:files")

    # -- where the workers reach each other -----------------------------------------------

    @functools.cached_property
    def node_addresses(self) -> dict[str, str]:
        return node_addresses()

    def clock_offset(self, host: str) -> tuple[float, float] | None:
        """Read through one step on ``host`` that says its clock for each line it is sent:
        the best of three round trips (the step's start, 30 to 70 ms, is not in them). None
        when ``host`` is this machine, or its step does not answer (then latencies compare
        the clocks uncorrected)."""
        if on_this_machine(host, self.node_addresses):
            return None
        step_name = f"{STEP_PREFIX}:clock:{self.run_tag}"
        proc = subprocess.Popen(
            self.srun(host, sys.executable, "-c", _CLOCK, step_name=step_name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdin is not None and proc.stdout is not None
        fd, pending = proc.stdout.fileno(), bytearray()

        def read_clock() -> float:
            proc.stdin.write(b"\n")
            deadline = time.monotonic() + CLOCK_WITHIN
            while b"\n" not in pending:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise OSError(f"no answer from the clock step on {host}")
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise OSError(f"the clock step on {host} ended")
                pending.extend(chunk)
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            return float(line)

        try:
            return best_offset(read_clock)
        except (OSError, ValueError):
            return None
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=CLOCK_WITHIN)
            except subprocess.TimeoutExpired:
                proc.terminate()  # srun cancels its step
                proc.wait()

    def peer_addresses(self) -> dict[str, str]:
        """Each node's ``NodeAddr`` where it is not its name, and the supervisor's address as
        the nodes reach it (this host's on the way to them); nothing when every node is this
        machine (the workers then meet on loopback)."""
        addresses = self.node_addresses
        if all(on_this_machine(node, addresses) for node in self.nodes):
            return {}
        known = {node: addresses.get(node, node) for node in self.nodes}
        elsewhere = [known[node] for node in self.nodes if not this_host(node)]
        supervisor = route_source(elsewhere[:1]) if elsewhere else None
        return {
            **{node: address for node, address in known.items() if address != node},
            "supervisor": supervisor or socket.gethostname(),
        }

    def remote_dir(self, node: str) -> Path:
        """The node-local copy of the run directory on ``node`` (the node in its name, so
        that nodes on one machine keep theirs apart)."""
        return Path(f"/tmp/streamlec-{self.run_tag}-{node}")

    def stage(self, node: str) -> None:
        """Unpack the run directory (without logs and events) into the node-local one."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(self.run_dir.iterdir()):
                if path.name not in ("logs", EVENTS):
                    tar.add(path, arcname=path.name)
        d = self.remote_dir(node)
        script = f"mkdir -p {d} && tar -xf - -C {d} && touch {d}/.staged"
        _slurm(*self.srun(node, "sh", "-c", script), stdin=buf.getvalue())
        self.staged.append(node)
        # The copy's keeper: a step that removes it when its standard input closes (finish)
        # or when the supervisor is gone (its srun passes the parent-death SIGUSR1 on, and
        # the input closes). Each way removes it itself, not only through the exit trap.
        remove = f"rm -rf {d}"
        keep = (
            f"trap '{remove}; exit 0' TERM HUP INT USR1; trap '{remove}' EXIT; "
            f"cat >/dev/null; {remove}"
        )
        self.keepers[node] = subprocess.Popen(
            self.srun(node, "sh", "-c", keep, step_name=f"{STEP_PREFIX}:keeper:{self.run_tag}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, signals.SIGUSR1),
        )

    def finish(self) -> None:
        """Bring back what the workers wrote on each node, then remove the node-local copy."""
        self.sampler.close()
        for node in self.staged:
            d = self.remote_dir(node)
            pack = f"cd {d} && find . -type f -newer .staged -print0 | tar --null -T - -cf -"
            try:
                data = subprocess.run(
                    self.srun(node, "sh", "-c", pack), capture_output=True, timeout=300
                ).stdout
                if data:
                    self.unpack(data)
            finally:
                keeper = self.keepers.pop(node)
                with contextlib.suppress(OSError):
                    keeper.communicate(timeout=60)  # end of input: it removes the copy
        self.staged.clear()

    def unpack(self, data: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                name = os.path.normpath(member.name)
                if not member.isfile() or name.startswith(".."):
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                body = f.read()
                target = self.run_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if name == EVENTS:
                    merge_events(target, body.decode())
                else:
                    target.write_bytes(body)

    # -- workers ----------------------------------------------------------------------

    def worker_argv(self, name: str, incarnation: int | None, node: str) -> list[str]:
        run_dir = self.remote_dir(node)
        return worker_command(run_dir / "spec.yaml", run_dir, name, incarnation)

    def start(
        self,
        name: str,
        incarnation: int,
        argv: list[str],
        stdin: bool = False,
        host: str | None = None,
    ) -> SlurmHandle:
        """Run ``argv`` as worker ``name`` in a step of its own on ``host``."""
        node = host or self.place(name)
        if node not in self.staged:
            self.stage(node)
        step_name = f"{STEP_PREFIX}:{name}:{incarnation}:{self.run_tag}"
        env = worker_env(REMOTE_SUPERVISOR)
        env["SLURM_JOB_ID"] = self.job
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "logs" / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                self.srun(node, *argv, step_name=step_name),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return SlurmHandle(
            name, incarnation, node, self.job, step_name, proc.pid, proc, sampler=self.sampler
        )

    def spawn(self, name: str, incarnation: int, host: str | None = None) -> SlurmHandle:
        node = host or self.place(name)
        return self.start(name, incarnation, self.worker_argv(name, incarnation, node), host=node)

    def spare(self, name: str, host: str | None = None) -> SlurmHandle:
        node = host or self.place(name)
        return self.start(name, 0, self.worker_argv(name, None, node), stdin=True, host=node)

    def adopt(self, spare: Handle, name: str, incarnation: int) -> SlurmHandle | None:
        assert isinstance(spare, SlurmHandle) and spare.proc is not None
        step = spare.step
        if not give_slot(spare.proc, name, incarnation):
            return None
        return SlurmHandle(
            name,
            incarnation,
            spare.host,
            spare.job,
            spare.step_name,
            spare.pid,
            spare.proc,
            step,
            spare._task_pid,
            self.sampler,
        )

    def dismiss(self, spare: Handle) -> None:
        assert isinstance(spare, SlurmHandle) and spare.proc is not None
        no_slot(spare.proc)

    def machine_ticks(self) -> tuple[int, int]:
        """This host's, when every node is this host; else unknown (0, 0)."""
        if all(this_host(node) for node in self.nodes):
            return LocalLauncher.machine_ticks(self)  # type: ignore[arg-type]
        return 0, 0

    @classmethod
    def handle(cls, worker: str, record: dict) -> SlurmHandle:
        return SlurmHandle(
            worker,
            int(record["incarnation"]),
            str(record["host"]),
            str(record["job"]),
            str(record["step_name"]),
            int(record["pid"]),
            step=record.get("step"),
            task_pid=record.get("task_pid"),
        )


LAUNCHERS["slurm"] = SlurmLauncher
