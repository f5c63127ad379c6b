"""Real MNIST from TFDS, a verified offline mirror on the Python package index, or local IDX files.

Every source yields the same `MNIST` tuple of uint8 arrays. `load_mnist("auto")` keeps one verified
copy in a local cache, so only the first load touches the network.
"""

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from fmlp.data.cache import default_cache_dir, read_cache, write_cache
from fmlp.data.core import IDX_HINT, MEAN, MNIST, STD, DataError, normalize
from fmlp.data.idx import IDX_FILES, idx_files_present, load_idx, read_idx, write_idx
from fmlp.data.mirror import (
    DOWNLOAD_TIMEOUT_SECONDS,
    MIRROR_MEMBER,
    MIRROR_SHA256,
    MIRROR_WHEEL,
    load_mirror,
    mnist_from_wheel,
)
from fmlp.data.tfds_source import load_tfds
from fmlp.description import SOURCES

__all__ = [
    "DOWNLOAD_TIMEOUT_SECONDS", "IDX_FILES", "IDX_HINT", "MEAN", "MIRROR_MEMBER", "MIRROR_SHA256", "MIRROR_WHEEL",
    "MNIST", "SOURCES", "STD", "DataError", "Origin", "default_cache_dir", "load", "load_auto", "load_idx",
    "load_mirror", "load_mnist", "load_tfds", "mnist_from_wheel", "normalize", "read_cache", "read_idx", "write_cache",
    "write_idx",
]  # fmt: skip


class Origin(NamedTuple):
    """Where a load actually found MNIST: a source name and the file or folder it read."""

    source: str  # "cache", "tfds", "mirror" or "idx"
    path: str | None


def _quiet(message: str) -> None:
    """The default `say`: loading stays silent unless the caller passes a printer."""


def _auto_sources(data_dir, timeout: float, say: Callable[[str], None]) -> list[tuple[str, Callable[[], MNIST]]]:
    """The network-bound sources of `auto`, in the order they are tried after the cache."""
    return [
        ("tfds (prepared copy)", lambda: load_tfds(data_dir, download=False)),
        ("tfds (download)", lambda: load_tfds(data_dir, download=True)),
        ("mirror", lambda: load_mirror(timeout, say)),
    ]


def _auto_from_data_dir(data_dir: Path) -> tuple[MNIST, Origin]:
    """`auto` with a folder given: its IDX files, else the TFDS copy prepared in it; never the cache."""
    if idx_files_present(data_dir):
        return load_idx(data_dir), Origin("idx", str(data_dir))
    try:
        return load_tfds(data_dir, download=False), Origin("tfds", str(data_dir))
    except DataError as error:
        raise DataError(
            f"auto: {data_dir} holds neither the four IDX files nor a prepared TFDS MNIST ({error}); "
            f"for IDX files pass --data-source idx --data-dir {data_dir}"
        ) from error


def load_auto(
    data_dir=None, cache_dir=None, timeout: float = DOWNLOAD_TIMEOUT_SECONDS, say: Callable[[str], None] = _quiet
) -> tuple[MNIST, Origin]:
    """The cache; else TFDS's prepared copy, a TFDS download if its host answers, the mirror; cached.

    With data_dir, that folder's IDX files or prepared TFDS copy instead. A cache that cannot be
    written costs a warning through say(message), not the run.
    """
    if data_dir is not None:
        return _auto_from_data_dir(Path(data_dir))
    cache_file = Path(cache_dir or default_cache_dir()) / "mnist.npz"
    failures = []
    if cache_file.exists():
        try:
            return read_cache(cache_file), Origin("cache", str(cache_file))
        except DataError as error:
            warnings.warn(f"{error}; rebuilding it", stacklevel=3)
    for name, load_source in _auto_sources(data_dir, timeout, say):
        try:
            dataset = load_source()
        except DataError as error:
            failures.append(f"  {name}: {error}")
            continue
        try:
            write_cache(cache_file, dataset)
        except OSError as error:
            say(f"warning: cannot cache MNIST in {cache_file.parent} ({error.strerror or error}); using it uncached")
        return dataset, Origin(name.split()[0], None)
    raise DataError("auto: no source gave MNIST:\n" + "\n".join(failures) + f"\nOr {IDX_HINT}.")


def load(
    source: str = "auto",
    data_dir=None,
    cache_dir=None,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    say: Callable[[str], None] = _quiet,
) -> tuple[MNIST, Origin]:
    """Real MNIST as uint8 arrays and where it came from; each split in its standard order.

    source: "auto" (cache, then TFDS, then the mirror; the result is cached; with data_dir, that
    folder's IDX files or prepared TFDS copy), "tfds", "mirror" or "idx" (the four IDX files in
    data_dir). data_dir: the IDX folder, or TFDS's data_dir. cache_dir: where "auto" keeps its copy
    (default: `default_cache_dir()`). timeout: seconds allowed for the mirror's whole download.
    say(message): announcements (a download starting) and warnings (a cache that cannot be written).
    """
    if source == "auto":
        return load_auto(data_dir, cache_dir, timeout, say)
    if source == "tfds":
        return load_tfds(data_dir, download=True), Origin("tfds", None if data_dir is None else str(data_dir))
    if source == "mirror":
        return load_mirror(timeout, say), Origin("mirror", None)
    if source == "idx":
        if data_dir is None:
            raise DataError(f"idx: no folder given; {IDX_HINT}")
        return load_idx(data_dir), Origin("idx", str(data_dir))
    raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")


def load_mnist(source: str = "auto", data_dir=None, cache_dir=None) -> MNIST:
    """`load` without the origin: real MNIST as uint8 arrays."""
    return load(source, data_dir, cache_dir)[0]
