"""Worker processes that end with their parent, however the parent ends.

A pool's workers (the frida grid's federations, the serving replicas) hold hundreds of MB each; when
the parent is killed with SIGKILL (a SLURM time-out, an OOM kill) nothing runs its clean-up, and the
orphans would hang on. On Linux the kernel can signal a child when its parent dies (PR_SET_PDEATHSIG);
a worker asks for that first thing, as a pool initializer or at the top of its main function.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
    return True
