"""Clean ends on SIGINT and SIGTERM.

The work runs in a worker thread while the main thread waits, so a signal is seen at once even while
XLA compiles or an epoch runs (Python runs signal handlers in the main thread only, between bytecodes).
Once the work has something worth keeping (`Control.keep` is set, e.g. after its first epoch), the
first signal asks it to stop at its next safe point and write what it has; before that, and on a
second signal, the process ends at once. Either way the temporary files of `fmlp.files` are removed and
the exit status is 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from fmlp.files import remove_pending, stop_writing

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Control(NamedTuple):
    """What the work and the signal handler share."""

    keep: threading.Event  # set by the work: stopping now should keep what it has done
    stop: threading.Event  # set by the first signal after `keep`: stop at the next safe point
    signals: list  # the signal numbers received, in order


def main_or_exit(main: Callable[[], None], message: str) -> None:
    """Runs a script's main outside the training loop's own handling (a script that does not train, or
    one that has not started training yet). SIGINT or SIGTERM ends it at once: its temporary files
    removed, `message` on stderr, exit status 128 + the signal's number, no traceback. A handler, not
    KeyboardInterrupt, which Python drops when it lands in a garbage-collection callback (JAX has one)."""
    for number in SIGNALS:
        signal.signal(number, lambda signum, frame: abort_or_defer(signum, message))
    main()


_HELD: list = []  # the messages of the `whole` blocks running now, innermost last
_DEFERRED: list = []  # the signals that arrived meanwhile


@contextlib.contextmanager
def whole(done: str) -> Iterator[None]:
    """Runs a block that must not be cut in two, such as the swap of a set of files: under `main_or_exit`,
    a signal that arrives meanwhile ends the process when the block has finished, with `done` (what is
    now true on disk) as its message."""
    _HELD.append(done)
    try:
        yield
    finally:
        _HELD.pop()
        if not _HELD and _DEFERRED:
            abort(_DEFERRED[0], done)


def abort_or_defer(signum: int, message: str) -> None:
    """`abort`, or inside a `whole` block its deferral to the block's end."""
    if _HELD:
        _DEFERRED.append(signum)
        return
    abort(signum, message)


def new_control() -> Control:
    return Control(threading.Event(), threading.Event(), [])


def exit_status(control: Control) -> int | None:
    """128 + the first signal's number if a signal arrived, else None."""
    return 128 + control.signals[0] if control.signals else None


def abort(signum: int, message: str) -> None:
    """Ends the process now: no `finally` runs, so the temporary files are removed here."""
    stop_writing()
    remove_pending()
    sys.stderr.write(f"\n{message}\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def _handler(control: Control) -> Callable:
    def handle(signum, frame):
        control.signals.append(signum)
        name = signal.Signals(signum).name
        if len(control.signals) > 1:
            abort(signum, f"{name} again: aborted")
        if not control.keep.is_set():
            abort(signum, f"interrupted ({name}) before anything was finished; nothing written")
        control.stop.set()
        sys.stderr.write(f"\n{name}: stopping after the current epoch and writing the results (again to abort)\n")

    return handle


def run(work: Callable[[Control], None]) -> Control:
    """Runs work(control) in a worker thread with SIGINT and SIGTERM handled as the module says.

    Re-raises in the caller whatever the work raised (SystemExit included); returns the control, whose
    `exit_status` says whether a signal arrived. Outside the main thread, runs the work directly.
    """
    control = new_control()
    if threading.current_thread() is not threading.main_thread():
        work(control)
        return control
    raised = []

    def target():
        try:
            work(control)
        except BaseException as error:  # handed to the main thread, which re-raises it
            raised.append(error)

    previous = {number: signal.signal(number, _handler(control)) for number in SIGNALS}
    try:
        worker = threading.Thread(target=target, name="fmlp-work", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if raised:
        raise raised[0]
    return control
