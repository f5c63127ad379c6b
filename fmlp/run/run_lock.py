"""One run at a time on a result: a run holds an OS file lock on its output folder's result (the folder
and the result's name) for as long as it writes, and a second run on the same result is refused at
once, naming the first one's process. The lock dies with its process, so kill -9 leaves none behind.

The lock files live in a folder of the user's own (`lock_folder`: created with mode 0700, refused
when another user owns it, others may write in it, or it is a link), keyed by the output folder's
resolved path, so that taking the lock writes nothing into the output folder before the run has
something to write, no other user can plant a link where a lock file will be, and each user's runs
lock in a folder of their own. A link at a lock file's path is refused, never followed.
"""

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock


class Taken(Exception):
    """Another live process holds the lock on the same result, or the lock cannot be taken safely."""


def lock_folder() -> Path:
    """This user's folder of lock files: $XDG_RUNTIME_DIR/fmlp-locks where the session has one (a
    per-user folder), else fmlp-locks-UID in the system's temporary folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "fmlp-locks"
    return Path(tempfile.gettempdir()) / f"fmlp-locks-{os.getuid()}"


def own_folder(folder: Path) -> Path:
    """`folder`, created with mode 0700 if missing; Taken naming it unless it is a real folder that this
    user owns and no one else may write in."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.lstat(folder)
    except OSError as error:
        raise Taken(f"cannot create the lock folder {folder} ({error.strerror})") from None
    if not stat.S_ISDIR(status.st_mode):
        problem = "a link" if stat.S_ISLNK(status.st_mode) else "not a folder"
    elif status.st_uid != os.getuid():
        problem = f"owned by another user (uid {status.st_uid})"
    elif status.st_mode & 0o022:
        problem = f"writable by other users (mode {stat.S_IMODE(status.st_mode):o})"
    else:
        return folder
    raise Taken(f"the lock folder {folder} is {problem}; remove it, or point TMPDIR at a folder of your own")


def lock_path(out: Path, name: str) -> Path:
    """The lock file of result `name` in output folder `out`."""
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return lock_folder() / f"{digest}-{name}.lock"


def _refuse_links(*paths: Path) -> None:
    """Taken naming the first path that is a symbolic link: a lock file is never written through one."""
    for path in paths:
        if path.is_symlink():
            raise Taken(f"{path} is a symbolic link, which a lock never writes through; remove it")


def _write_pid(path: Path) -> None:
    """This process's id into `path`, created 0600 and never through a link (O_NOFOLLOW)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        reason = "a symbolic link" if error.errno == errno.ELOOP else error.strerror
        raise Taken(f"cannot write the lock's process file {path} ({reason})") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(f"{os.getpid()}\n")


@contextlib.contextmanager
def holding(out: Path, name: str) -> Iterator[None]:
    """Holds the lock of result `name` in `out` while the block runs; Taken naming the holder's pid (as
    it wrote it beside the lock) if another process holds it, or naming the path that makes it unsafe."""
    own_folder(lock_folder())
    path = lock_path(out, name)
    holder = path.with_suffix(".pid")
    _refuse_links(path, holder)
    lock = filelock.FileLock(path, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        pid = holder.read_text().strip() if holder.is_file() and not holder.is_symlink() else "unknown"
        raise Taken(f"another run (process {pid}) is writing {out / name}.* now; wait for it to end, or give "
                    "this one another --out") from None  # fmt: skip
    except OSError as error:
        raise Taken(f"cannot take the lock {path} ({error.strerror})") from None
    try:
        _write_pid(holder)
        yield
    finally:
        lock.release()
