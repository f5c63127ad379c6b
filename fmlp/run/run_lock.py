"""One run at a time on a result: a run holds an OS file lock on its output folder's result (the folder
and the result's name) for as long as it writes, and a second run on the same result is refused at
once, naming the first one's process. The lock dies with its process, so kill -9 leaves none behind.

The lock files live in the system's temporary folder, keyed by the output folder's resolved path, so
that taking the lock writes nothing into the output folder before the run has something to write.
"""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock

LOCKS = Path(tempfile.gettempdir()) / "fmlp-locks"


class Taken(Exception):
    """Another live process holds the lock on the same result."""


def lock_path(out: Path, name: str) -> Path:
    """The lock file of result `name` in output folder `out`."""
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return LOCKS / f"{digest}-{name}.lock"


@contextlib.contextmanager
def holding(out: Path, name: str) -> Iterator[None]:
    """Holds the lock of result `name` in `out` while the block runs; Taken naming the holder's pid (as
    it wrote it beside the lock) if another process holds it."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    path = lock_path(out, name)
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = path.with_suffix(".pid")
        pid = holder.read_text().strip() if holder.is_file() else "unknown"
        raise Taken(f"another run (process {pid}) is writing {out / name}.* now; wait for it to end, or give "
                    "this one another --out") from None  # fmt: skip
    try:
        path.with_suffix(".pid").write_text(f"{os.getpid()}\n")
        yield
    finally:
        lock.release()
