"""The local copy that `load_mnist("auto")` keeps: one compressed .npz plus the sha256 of its arrays."""

import hashlib
import os
from pathlib import Path

import numpy as np

from fmlp.data.core import MNIST, DataError, check
from fmlp.files import atomic_path


def default_cache_dir() -> Path:
    """$FMLP_DATA_DIR, else $XDG_CACHE_HOME/fmlp, else ~/.cache/fmlp. DataError naming FMLP_DATA_DIR when
    it names something that is not a folder."""
    if os.environ.get("FMLP_DATA_DIR"):
        folder = Path(os.environ["FMLP_DATA_DIR"])
        if folder.exists() and not folder.is_dir():
            raise DataError(f"FMLP_DATA_DIR={folder} is not a folder; point it at the folder of MNIST's cache")
        return folder
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "fmlp"
    return Path.home() / ".cache" / "fmlp"


def _arrays_sha256(dataset: MNIST) -> str:
    digest = hashlib.sha256()
    for name, array in zip(MNIST._fields, dataset):
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def write_cache(cache_file: Path, dataset: MNIST) -> None:
    """One compressed .npz plus `<file>.sha256` of its arrays, each written atomically."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_file) as temp_path, open(temp_path, "wb") as file:
        np.savez_compressed(file, **dataset._asdict())
    with atomic_path(cache_file.with_name(cache_file.name + ".sha256")) as temp_path:
        temp_path.write_text(_arrays_sha256(dataset) + "\n")


def read_cache(cache_file: Path) -> MNIST:
    """The cached arrays, if their sha256 matches the one stored beside them; DataError otherwise."""
    checksum_file = cache_file.with_name(cache_file.name + ".sha256")
    try:
        expected = checksum_file.read_text().strip()
        with np.load(cache_file) as arrays:
            dataset = MNIST(**{name: arrays[name] for name in MNIST._fields})
    except Exception as error:
        raise DataError(f"cache: cannot read {cache_file} or {checksum_file.name}: {error}") from error
    found = _arrays_sha256(dataset)
    if found != expected:
        raise DataError(f"cache: {cache_file} has sha256 {found}, expected {expected}")
    return check(dataset, f"cache ({cache_file})")
