"""Worker processes that end with the process that started them.

A pool's workers wait on a pipe for work; when their parent is killed with SIGKILL (no
``finally`` runs), nothing tells them to stop, and they linger with the model loaded
(~250 MB each). On Linux, ``prctl(PR_SET_PDEATHSIG)`` asks the kernel to send them
SIGTERM when the parent dies; elsewhere this is a no-op.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Call first thing in a worker: SIGTERM it when its parent (``parent_pid``) dies."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
