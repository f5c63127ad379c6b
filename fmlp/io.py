"""Atomic file output: write to a temporary file beside the target, then rename over it."""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; on success renames it to `path`.

    On any exception (Ctrl-C included) the temporary file is removed and `path` is left as it was,
    so a reader never sees a half-written file.
    """
    target = Path(path)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    temp_path = Path(temp_name)
    try:
        yield temp_path
        # mkstemp creates the file private (0600); give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        temp_path.chmod(0o666 & ~umask)
        os.replace(temp_path, target)
    finally:
        temp_path.unlink(missing_ok=True)
