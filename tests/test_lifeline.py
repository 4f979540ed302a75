"""A child given ``die_with_parent`` ends when its parent ends, even killed outright, and even
when the parent forked it while other threads of its were busy (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

PARENT = """
import subprocess, sys, threading, time
from streamlec_cli.runtime.lifeline import die_with_parent
busy = threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(int, 1)], daemon=True)
busy.start()
child = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: die_with_parent(9))
print(child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_child_ends_when_its_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    gone = not alive(child)
    if not gone:
        os.kill(child, 9)
    assert gone, "the child outlived its parent"
