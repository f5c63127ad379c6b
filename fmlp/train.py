"""One lane's training: the static config, the SGD step, an epoch as one `lax.scan`, and evaluation.

Everything here is for a single network (one lane). `fmlp.lanes` runs many lanes, or one, as one
compiled program built from these functions, so the per-step math lives here only.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fmlp import mlp, optim
from fmlp.layers import cross_entropy


class Config(NamedTuple):
    """The static options of training, hashable: passed to compiled functions as one static argument.

    A new option goes here, in its flag, and in the one function that reads it.
    """

    sizes: tuple[int, ...] = mlp.REFERENCE_SIZES
    batch_size: int = 64
    lane_group: int = 1  # lanes trained together by vmap; 1 trains them one after another
    patience: int | None = None  # epochs without a better validation accuracy before a lane stops
    devices: int = 1  # devices the lane axis is split over (`fmlp.distributed`)
    eval_chunk: int = 2000  # rows per evaluation product, so memory stays flat


class EpochMetrics(NamedTuple):
    """What one training epoch measured on the batches it trained on."""

    loss: jax.Array  # mean of the batch losses, each taken before that batch's update
    accuracy: jax.Array  # fraction of the epoch's training examples classified right, same moments


def init_lane(seed: int, sizes: tuple[int, ...] = mlp.REFERENCE_SIZES) -> tuple[mlp.Params, jax.Array]:
    """Initial parameters and shuffle key of one seed: (params, key)."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    return mlp.init(init_key, sizes), shuffle_key


def epoch_batch_indices(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """A fresh permutation cut into (num_examples // batch_size, batch_size) indices.

    The last incomplete batch is dropped, as in the reference exercise.
    """
    num_batches = num_examples // batch_size
    permutation = jax.random.permutation(key, num_examples)
    return permutation[: num_batches * batch_size].reshape(num_batches, batch_size)


def sgd_step(
    params: mlp.Params, images: jax.Array, labels: jax.Array, learning_rate: jax.Array
) -> tuple[mlp.Params, tuple[jax.Array, jax.Array]]:
    """One SGD step on a batch: images (B, D), labels (B,) -> (new params, (loss, number right))."""
    loss, grads, probs = mlp.loss_grads_and_probs(params, images, labels)
    correct = jnp.sum(jnp.argmax(probs, axis=-1) == labels)
    return optim.sgd(params, grads, learning_rate), (loss, correct)


def sgd_over_batches(
    params: mlp.Params,
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    learning_rate: jax.Array,
    step: Callable = sgd_step,
) -> tuple[mlp.Params, EpochMetrics]:
    """One `step` per row of batch_indices (num_batches, B), gathering each batch on device.

    images: (N, D) float; labels: (N,) int. `step` has the signature of `sgd_step` (the benchmark
    passes one with autodiff gradients).
    """

    def scan_body(params, indices):
        return step(params, images[indices], labels[indices], learning_rate)

    params, (losses, correct) = jax.lax.scan(scan_body, params, batch_indices)
    return params, EpochMetrics(jnp.mean(losses), jnp.sum(correct) / batch_indices.size)


def lane_epoch(
    config: Config,
    params: mlp.Params,
    key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    learning_rate: jax.Array,
    step: Callable = sgd_step,
) -> tuple[mlp.Params, jax.Array, EpochMetrics]:
    """One pass over a fresh shuffle of the training set: (params, next key, metrics).

    images: (N, D) float32, normalized; labels: (N,) int; learning_rate: float32 scalar.
    """
    key, shuffle_key = jax.random.split(key)
    batch_indices = epoch_batch_indices(shuffle_key, images.shape[0], config.batch_size)
    params, metrics = sgd_over_batches(params, images, labels, batch_indices, learning_rate, step)
    return params, key, metrics


def _loss_and_correct(params: mlp.Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy and number of right answers over images (B, D), labels (B,)."""
    logits, _ = mlp.forward_logits(params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return cross_entropy(logits, labels) * images.shape[0], correct


def evaluate(
    params: mlp.Params, images: jax.Array, labels: jax.Array, chunk_size: int = 2000
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy over a whole split, chunk by chunk so memory stays flat.

    images: (N, D) float32; labels: (N,) int -> (scalar loss, scalar accuracy in [0, 1]).
    """
    num_examples = images.shape[0]
    chunk_size = min(chunk_size, num_examples)
    num_full = num_examples // chunk_size
    full_end = num_full * chunk_size

    def chunk(totals, chunk_index):
        start = chunk_index * chunk_size
        loss, correct = _loss_and_correct(
            params,
            jax.lax.dynamic_slice_in_dim(images, start, chunk_size),
            jax.lax.dynamic_slice_in_dim(labels, start, chunk_size),
        )
        return (totals[0] + loss, totals[1] + correct), None

    zero = (jnp.zeros((), images.dtype), jnp.zeros((), jnp.int32))
    (loss_sum, correct), _ = jax.lax.scan(chunk, zero, jnp.arange(num_full))
    if full_end < num_examples:
        rest_loss, rest_correct = _loss_and_correct(params, images[full_end:], labels[full_end:])
        loss_sum, correct = loss_sum + rest_loss, correct + rest_correct
    return loss_sum / num_examples, correct / num_examples
