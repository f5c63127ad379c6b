"""Atomic file output (a temporary file beside the target, then a rename), and the register of the
temporary paths alive right now, so that an abort can remove them."""

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_PENDING: set[Path] = set()
# Held by a thread from creating a temporary file until its rename. An abort from another thread
# waits for it (`stop_writing`): a writer that opens its file by name (savefig, savez) would
# otherwise re-create a temporary file the abort has just removed.
_WRITING = threading.RLock()
ABORT_WAIT_SECONDS = 5.0  # longer than any one file takes to write; then the abort goes on regardless


@contextlib.contextmanager
def pending(path: Path) -> Iterator[Path]:
    """Registers a temporary file or folder for `remove_pending` while the block runs."""
    _PENDING.add(path)
    try:
        yield path
    finally:
        _PENDING.discard(path)


def stop_writing(timeout: float = ABORT_WAIT_SECONDS) -> None:
    """Waits until no other thread is writing a temporary file (`timeout` seconds at most), and from
    then on keeps every other thread from starting one: for an abort, which ends the process next."""
    _WRITING.acquire(timeout=timeout)


def remove_pending() -> None:
    """Removes every registered temporary path: for an abort that skips the `finally` blocks."""
    for path in list(_PENDING):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _new_temporary(target: Path) -> Path:
    """A new empty file in target's folder, named after it and this process: .NAME.PID.XXXX.tmp."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def _alive(pid: int) -> bool:
    """Whether a process of that id exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Removes the temporary files of `atomic_path` and folders of `temporary_folder` in folder whose
    process is dead (a kill -9 mid-write leaves them), and returns them; a live process's are kept."""
    stale = []
    for path in folder.glob(".*.tmp") if folder.is_dir() else ():
        pid = path.name.rsplit(".", 3)[-3] if path.name.count(".") >= 4 else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            stale.append(path)
    return stale


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path in the target's folder; on success renames it to `path`.

    On any exception the temporary file is removed and `path` is left as it was, so a reader never
    sees a half-written file; an abort removes it through `remove_pending`.
    """
    target = Path(path)
    with _WRITING, pending(_new_temporary(target)) as temp_path:
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
def temporary_folder(prefix: str, beside: Path | None = None) -> Iterator[Path]:
    """A fresh temporary folder (in `beside`, so that its files rename into place there; else the
    system's), removed afterwards, also by an abort; named PREFIX.PID.XXXX.tmp, so that
    `remove_stale_temporaries` removes one that a kill -9 left."""
    folder = tempfile.TemporaryDirectory(prefix=f"{prefix.rstrip('.')}.{os.getpid()}.", suffix=".tmp", dir=beside)
    with folder as name, pending(Path(name)) as path:
        yield path


def copy_whole(source: Path, target: Path) -> Path:
    """source copied to target through a temporary file and a rename: whole, and a link at target is
    replaced, never written through. Returns target."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)
    return target


def write_whole(target: Path, content: str | bytes) -> Path:
    """content written to target as `copy_whole` writes: whole, never through a link. Returns target."""
    with atomic_path(target) as temporary:
        (temporary.write_bytes if isinstance(content, bytes) else temporary.write_text)(content)
    return target


def unlink_link(path: Path) -> None:
    """Removes a symbolic link at path (not what it points to), so that a program writing path (a
    compiler's -o) makes a new file there instead of writing through the link."""
    if path.is_symlink():
        path.unlink()
