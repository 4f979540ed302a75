"""A real OpenSSH server for the tests, on loopback addresses and a free high port.

It runs from a temporary directory with its own host key and an ``AuthorizedKeysFile`` that
holds a key made for the test, listens on 127.0.0.1, 127.0.0.2 and 127.0.0.3 (three "hosts",
all this machine: loopback only, never any other address), and is stopped at the end.
It needs root (sshd changes user for each login); without root the tests that use it skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamlec_cli.runtime.launch_ssh import SshSettings

SSHD = "/usr/sbin/sshd"
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def why_not() -> str | None:
    """Why a real sshd cannot run here, or None."""
    if os.geteuid() != 0:
        return "a real sshd for the ssh launcher's tests needs root"
    if not (Path(SSHD).exists() and shutil.which("ssh") and shutil.which("ssh-keygen")):
        return "openssh-server and openssh-client are not installed (.ci/run installs them)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOSTS[-1], port), timeout=0.2):
            return True
    except OSError:
        return False


def make_keys(where: Path) -> None:
    """A host key, a client key, and ``authorized_keys`` that lets the client key in."""
    for key in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(where / key)], check=True
        )
    shutil.copy(where / "client_key.pub", where / "authorized_keys")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory


def write_config(where: Path, port: int, addresses: list[str], name: str = "") -> Path:
    """An sshd configuration in ``where`` (keys from ``make_keys``): root logs in with the
    client key only, on ``port`` of these addresses only."""
    config = where / f"sshd_config{name}"
    listen = "".join(f"ListenAddress {address}\n" for address in addresses)
    config.write_text(
        f"Port {port}\n{listen}"
        f"HostKey {where / 'host_key'}\n"
        f"AuthorizedKeysFile {where / 'authorized_keys'}\n"
        f"PidFile {where / f'sshd{name}.pid'}\n"
        "PermitRootLogin prohibit-password\n"
        "StrictModes no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "MaxSessions 100\n"
        "MaxStartups 100\n"
    )
    return config


def client_settings(where: Path, port: int) -> SshSettings:
    """The settings that reach such an sshd as root with the client key."""
    return SshSettings(
        user="root",
        port=port,
        identity=str(where / "client_key"),
        options=(
            f"UserKnownHostsFile={where / 'known_hosts'}",
            "StrictHostKeyChecking=accept-new",
            "LogLevel=ERROR",
        ),
    )


@contextmanager
def sshd(where: Path) -> Iterator[SshSettings]:
    """Run sshd until the block ends; the settings that reach it as root with the test key."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    where.mkdir(parents=True, exist_ok=True)
    make_keys(where)
    port = free_port()
    config = write_config(where, port, HOSTS)
    server = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(where / "sshd.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    try:
        deadline = time.monotonic() + 10
        while not _listening(port):
            assert server.poll() is None, (where / "sshd.log").read_text()
            assert time.monotonic() < deadline, "sshd did not listen within 10 s"
            time.sleep(0.02)
        yield client_settings(where, port)
    finally:
        server.terminate()
        server.wait(10)
