"""Child processes that never outlive this one: a step of the hand-in, QEMU under a Cortex-M run.

Popen's `preexec_fn=end_with_parent` asks Linux (prctl PR_SET_PDEATHSIG) to send the child SIGTERM when
the process that started it ends, whatever ended it, kill -9 included, so that nothing is left running
that no one waits for. Elsewhere it does nothing.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def end_with_parent() -> None:
    """In the child, before it runs its program: SIGTERM when the parent ends; if the parent has ended
    already (between the fork and this call), SIGTERM now."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)
