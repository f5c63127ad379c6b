"""MNIST through `tensorflow_datasets.data_source` (array_record; no TensorFlow needed)."""

import contextlib
import logging
import os
import socket

import numpy as np

from fmlp.data.core import IMAGE_SHAPE, MNIST, DataError, check

TFDS_HOST = "storage.googleapis.com"  # where TFDS downloads MNIST from
PROBE_TIMEOUT_SECONDS = 3.0


def tfds_host_reachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> bool:
    """Whether TFDS's download host accepts a TCP connection within `timeout` seconds.

    TFDS itself retries an unreachable host for minutes before it gives up.
    """
    try:
        with socket.create_connection((TFDS_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_absl():
    """Hides TFDS's warnings (logged through absl) while it runs, e.g. "Variant folder ... has no
    dataset_info.json" for the empty folder that looking for a prepared copy leaves behind: expected,
    harmless, and the first thing a newcomer would otherwise see. Errors still show."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_tfds(data_dir: str | os.PathLike | None = None, download: bool = True) -> MNIST:
    """MNIST through `tensorflow_datasets.data_source` (no TensorFlow needed).

    A prepared copy is used without touching the network. Otherwise, with download=False, nothing is
    loaded; with download=True the download host is probed first, so an unreachable network fails in
    seconds rather than minutes.
    """
    import tensorflow_datasets as tfds  # imported here: it is slow to import and only this path needs it

    with _quiet_absl():
        builder = tfds.builder("mnist", data_dir=data_dir)
        if builder.is_prepared():
            download = False
        elif not download:
            raise DataError(f"tfds: no prepared MNIST in {builder.data_dir}")
        elif not tfds_host_reachable():
            raise DataError(
                f"tfds: {TFDS_HOST} is not reachable (probed for up to {PROBE_TIMEOUT_SECONDS} s); "
                "try --data-source mirror"
            )
        try:
            arrays = {}
            for split in ("train", "test"):
                records = tfds.data_source("mnist", split=split, data_dir=data_dir, download=download)
                examples = [records[i] for i in range(len(records))]
                arrays[f"{split}_images"] = np.stack([e["image"] for e in examples]).reshape(-1, *IMAGE_SHAPE)
                arrays[f"{split}_labels"] = np.array([e["label"] for e in examples], np.uint8)
        except Exception as error:
            raise DataError(
                f"tfds: loading MNIST into {builder.data_dir} failed: {type(error).__name__}: {error}"
            ) from error
        return check(MNIST(**arrays), "tfds")
