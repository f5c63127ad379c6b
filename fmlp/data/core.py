"""What every MNIST source shares: the arrays' tuple, the one error type, checks and normalization."""

from typing import NamedTuple

import numpy as np

MEAN, STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1]
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
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
    """uint8 images (N, 28, 28) -> float32 (N, 784): scaled to [0, 1], then (x - 0.1307) / 0.3081.

    A pixel has 256 values, so the float32 arithmetic runs once per value and the images are one
    table lookup (a single pass over the data instead of three).
    """
    table = (np.arange(256, dtype=np.float32) / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)
    return table[images.reshape(images.shape[0], -1)]


def check(dataset: MNIST, source: str) -> MNIST:
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
