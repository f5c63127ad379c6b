"""MNIST from the four standard IDX files (raw or gzip), parsed strictly."""

import gzip
import os
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fmlp.data.core import IDX_HINT, MNIST, DataError, check

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UBYTE = 0x08
MAX_IMAGES = 60000  # MNIST's larger split


def _find_idx_file(data_dir: Path, name: str) -> Path:
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"idx: {data_dir / name} (or {name}.gz) not found; {IDX_HINT}")


def idx_files_present(data_dir: Path) -> bool:
    """Whether data_dir holds all four IDX files, raw or .gz."""
    return all((data_dir / name).is_file() or (data_dir / f"{name}.gz").is_file() for name in IDX_FILES.values())


def _open(path: Path) -> BinaryIO:
    """The file's bytes, inflated as they are read where it is gzip."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def check_shape(path: Path, shape: tuple[int, ...]) -> None:
    """DataError unless a declared shape is one of MNIST's: at most MAX_IMAGES images of 28 x 28, or
    as many labels."""
    images_or_labels = shape[0] if shape else 0
    if images_or_labels > MAX_IMAGES or shape[1:] not in ((), (28, 28)):
        raise DataError(f"idx: {path}: declares shape {shape}; MNIST holds at most {MAX_IMAGES:,} images of "
                        "28 x 28 pixels, or as many labels")  # fmt: skip


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Parses one IDX file (raw or gzip) of unsigned bytes, strictly.

    Header: two zero bytes, the dtype code (0x08 = ubyte), the number of dimensions, then each
    dimension as a big-endian uint32; the payload must hold exactly the product of the dimensions.
    The header is read and its shape checked against MNIST's first, and no more than the declared
    payload and one byte is inflated, so a small gzip file can never fill the memory.
    """
    try:
        with _open(path) as file:
            magic = file.read(4)
            if len(magic) < 4 or magic[0:2] != b"\x00\x00":
                raise DataError(f"idx: {path}: bad magic number {magic.hex()}, expected 0000 08 0{expected_ndim}")
            if magic[2] != IDX_UBYTE:
                raise DataError(f"idx: {path}: dtype code 0x{magic[2]:02x}, expected 0x08 (unsigned byte)")
            if magic[3] != expected_ndim:
                raise DataError(f"idx: {path}: {magic[3]} dimensions, expected {expected_ndim}")
            dimensions = file.read(4 * expected_ndim)
            if len(dimensions) < 4 * expected_ndim:
                raise DataError(f"idx: {path}: header truncated ({4 + len(dimensions)} bytes, expected "
                                f"{4 + 4 * expected_ndim})")  # fmt: skip
            shape = tuple(int(d) for d in np.frombuffer(dimensions, ">u4"))
            check_shape(path, shape)
            expected = int(np.prod(shape))
            payload = file.read(expected + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"idx: cannot read {path}: {error}") from error
    if len(payload) != expected:
        found = f"{len(payload)}" if len(payload) <= expected else f"more than {expected}"
        raise DataError(f"idx: {path}: payload of {found} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(payload, np.uint8).reshape(shape)


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
    return check(MNIST(**arrays), f"idx ({directory})")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes a uint8 array (N,) or (N, 28, 28) as an IDX file: magic 0x0800 + ndim, then each
    dimension as a big-endian uint32, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    Path(path).write_bytes(header + np.ascontiguousarray(array, np.uint8).tobytes())
