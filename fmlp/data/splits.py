"""MNIST's uint8 arrays -> normalized splits on the device, with the validation hold-out.

The validation split is the last N of the (possibly limited) training images, in the standard order;
with all 60,000 images and N = 10,000 it is exactly the "valid" split of the classic mnist.pkl.gz.
Those images are never trained on: the training split ends where they begin.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp.data import MNIST, normalize


class Splits(NamedTuple):
    """Normalized data on the device: images float32 (N, D), labels int32 (N,); no validation: None."""

    train_images: jax.Array
    train_labels: jax.Array
    val_images: jax.Array | None
    val_labels: jax.Array | None
    test_images: jax.Array
    test_labels: jax.Array


def held_out(num_train: int, validation: int) -> tuple[slice, slice]:
    """(training slice, validation slice) of the first num_train images: the last `validation` are held out."""
    return slice(0, num_train - validation), slice(num_train - validation, num_train)


def _on_device(images: np.ndarray, labels: np.ndarray) -> tuple[jax.Array, jax.Array]:
    return jnp.asarray(normalize(images)), jnp.asarray(labels.astype(np.int32))


def device_splits(mnist: MNIST, train_limit: int | None = None, validation: int = 0) -> Splits:
    """Normalizes and puts on the device, once: the first train_limit training images (all if None),
    the last `validation` of them held out, and the test split."""
    num_train = len(mnist.train_images) if train_limit is None else min(train_limit, len(mnist.train_images))
    train, val = held_out(num_train, validation)
    val_images = val_labels = None
    if validation:
        val_images, val_labels = _on_device(mnist.train_images[val], mnist.train_labels[val])
    return Splits(
        *_on_device(mnist.train_images[train], mnist.train_labels[train]),
        val_images,
        val_labels,
        *_on_device(mnist.test_images, mnist.test_labels),
    )
