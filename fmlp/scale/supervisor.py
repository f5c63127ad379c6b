"""One line instead of a C++ trace when the distributed runtime ends a process.

When another process of a run dies or stops answering, JAX's runtime aborts this one (SIGABRT) and
prints its own logs and a stack trace. A run over several processes therefore works in a child
process of the script: the parent passes on the child's output until the runtime starts logging its
failure, passes SIGINT and SIGTERM on (the child has a process group of its own, so that a Ctrl-C at
the terminal reaches it once, through the parent, like a signal sent to the parent alone), and when
the runtime aborted the child, says in one line what happened and how to resume. The child dies with
the parent (Linux's parent-death signal), so killing the script kills the run.
"""

import ctypes
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

MARKER = "FMLP_SUPERVISED"  # set in the child's environment: the child runs the work itself
# A log line of the runtime: severity, date, time, thread, file:line]  (E1202 13:50:13.437578 20609 x.cc:1]).
RUNTIME_LOG = re.compile(rb"^[EF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\]")
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux only; elsewhere nothing)."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _relay(stream, out, runtime_failed: list[bool]) -> None:
    """Copies the child's stderr to out, line by line (progress bars' "\r" parts at once), until the
    runtime logs an error; from then on nothing, since the child is being aborted."""
    pending = b""
    while chunk := stream.read1(4096):
        pending += chunk
        *complete, pending = re.split(rb"(?<=[\n\r])", pending)
        for line in complete:
            if RUNTIME_LOG.match(line):
                runtime_failed[0] = True
            if not runtime_failed[0]:
                out.write(line)
                out.flush()


def run_supervised(message: Callable[[], str]) -> None:
    """Runs this script again as a child and exits with its status; a runtime abort becomes one line,
    `message()`, and exit status 1. Returns at once in the child itself."""
    if os.environ.get(MARKER):
        return
    child = subprocess.Popen([sys.executable, *sys.argv], env=os.environ | {MARKER: "1"}, stderr=subprocess.PIPE,
                             preexec_fn=_die_with_parent, process_group=0)  # fmt: skip
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda number, frame: child.send_signal(number))
    runtime_failed = [False]
    _relay(child.stderr, sys.stderr.buffer, runtime_failed)
    status = child.wait()
    if status == -signal.SIGABRT or (runtime_failed[0] and status != 0):
        print(f"error: {message()}", file=sys.stderr)
        sys.exit(1)
    sys.exit(128 - status if status < 0 else status)


def runtime_ended(coordinator: str | None, checkpoint: Path) -> str:
    """What to say when the distributed runtime ended this process because another one failed."""
    kept = (f"the finished epochs are in {checkpoint}: give every process a copy and start them all again with "
            "--resume" if checkpoint.exists() else "no epoch had finished: start them all again")  # fmt: skip
    return ("another process of this run died, stopped answering or never joined (check that they all agree on "
            f"--num-processes, and that --coordinator {coordinator} is process 0 of this run, not some other "
            f"service), and the distributed runtime ended this one; {kept}")  # fmt: skip


def if_several_processes(coordinator: str | None, checkpoint: Path) -> None:
    """For a training script whose --coordinator (or JAX_COORDINATOR_ADDRESS) asks for several processes:
    the rest of the script runs in a supervised child (`run_supervised`). Called before JAX is imported,
    so that the supervising parent never loads it; `checkpoint` is where the run's checkpoint would be."""
    if coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        run_supervised(lambda: runtime_ended(coordinator, checkpoint))
