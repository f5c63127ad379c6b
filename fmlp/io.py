"""Atomic file output (a temporary file beside the target, then a rename), and the register of the
temporary paths alive right now, so that an abort can remove them."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

_PENDING: set[Path] = set()


@contextlib.contextmanager
def pending(path: Path) -> Iterator[Path]:
    """Registers a temporary file or folder for `remove_pending` while the block runs."""
    _PENDING.add(path)
    try:
        yield path
    finally:
        _PENDING.discard(path)


def remove_pending() -> None:
    """Removes every registered temporary path: for an abort that skips the `finally` blocks."""
    for path in list(_PENDING):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; on success renames it to `path`.

    On any exception the temporary file is removed and `path` is left as it was, so a reader never
    sees a half-written file; an abort removes it through `remove_pending`.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    with pending(Path(temp_name)) as temp_path:
        try:
            yield temp_path
            # mkstemp creates the file private (0600); give the result the permissions a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            temp_path.chmod(0o666 & ~umask)
            os.replace(temp_path, target)
        finally:
            temp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def temporary_folder(prefix: str) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards, also by an abort."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name, pending(Path(name)) as path:
        yield path
