"""A worker asks to die with its parent: SIGKILL the parent and the worker is gone too."""

import os
import signal
import subprocess
import sys
import time

PARENT = """
import multiprocessing as mp, sys, time
from common.processes import die_with_parent
def worker(ready):
    die_with_parent()
    ready.set()
    time.sleep(120)
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=worker, args=(ready,))
    p.start()
    ready.wait(120)  # the worker has asked for the signal
    print(p.pid, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for init to reap it counts as gone
        return fh.read().split()[2] != "Z"


def test_a_worker_dies_when_its_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60  # the kernel signals at once; a loaded machine may delay the exit
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
