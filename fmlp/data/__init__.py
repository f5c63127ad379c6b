"""Real MNIST from TFDS, a verified offline mirror on the Python package index, or local IDX files.

Every source yields the same `MNIST` tuple of uint8 arrays. `load_mnist("auto")` keeps one verified
copy in a local cache, so only the first load touches the network.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

from fmlp.data.cache import default_cache_dir, read_cache, write_cache
from fmlp.data.core import IDX_HINT, MEAN, MNIST, STD, DataError, normalize
from fmlp.data.idx import IDX_FILES, load_idx, read_idx
from fmlp.data.mirror import MIRROR_MEMBER, MIRROR_SHA256, MIRROR_WHEEL, load_mirror, mnist_from_wheel
from fmlp.data.tfds_source import load_tfds

SOURCES = ("auto", "tfds", "mirror", "idx")

__all__ = [
    "IDX_FILES", "IDX_HINT", "MEAN", "MIRROR_MEMBER", "MIRROR_SHA256", "MIRROR_WHEEL", "MNIST", "SOURCES", "STD",
    "DataError", "default_cache_dir", "load_auto", "load_idx", "load_mirror", "load_mnist", "load_tfds",
    "mnist_from_wheel", "normalize", "read_cache", "read_idx", "write_cache",
]  # fmt: skip


def _auto_sources(data_dir) -> list[tuple[str, Callable[[], MNIST]]]:
    """The network-bound sources of `auto`, in the order they are tried after the cache."""
    return [
        ("tfds (prepared copy)", lambda: load_tfds(data_dir, download=False)),
        ("tfds (download)", lambda: load_tfds(data_dir, download=True)),
        ("mirror", load_mirror),
    ]


def load_auto(data_dir=None, cache_dir=None) -> MNIST:
    """The cache; else TFDS's prepared copy, a TFDS download if its host answers, the mirror; cached."""
    cache_file = Path(cache_dir or default_cache_dir()) / "mnist.npz"
    failures = []
    if cache_file.exists():
        try:
            return read_cache(cache_file)
        except DataError as error:
            warnings.warn(f"{error}; rebuilding it", stacklevel=3)
    for name, load in _auto_sources(data_dir):
        try:
            dataset = load()
        except DataError as error:
            failures.append(f"  {name}: {error}")
            continue
        write_cache(cache_file, dataset)
        return dataset
    raise DataError("auto: no source gave MNIST:\n" + "\n".join(failures) + f"\nOr {IDX_HINT}.")


def load_mnist(source: str = "auto", data_dir=None, cache_dir=None) -> MNIST:
    """Real MNIST as uint8 arrays, each split in its standard order where the source keeps it.

    source: "auto" (cache, then TFDS, then the mirror; the result is cached), "tfds", "mirror" or
    "idx" (the four IDX files in data_dir). data_dir: the IDX folder, or TFDS's data_dir.
    cache_dir: where "auto" keeps its copy (default: `default_cache_dir()`).
    """
    if source == "auto":
        return load_auto(data_dir, cache_dir)
    if source == "tfds":
        return load_tfds(data_dir, download=True)
    if source == "mirror":
        return load_mirror()
    if source == "idx":
        if data_dir is None:
            raise DataError(f"idx: no folder given; {IDX_HINT}")
        return load_idx(data_dir)
    raise DataError(f"unknown data source {source!r}; choose one of {', '.join(SOURCES)}")
