"""Training: one compiled call per epoch (on-device shuffle, `lax.scan` over batches), and evaluation."""

import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fmlp import mlp, optim
from fmlp.layers import cross_entropy


class TrainState(NamedTuple):
    """Everything that changes from epoch to epoch."""

    params: mlp.Params
    step: jax.Array  # int32 scalar: SGD steps taken so far
    key: jax.Array  # RNG key from which the next epoch's shuffle is drawn


class EpochMetrics(NamedTuple):
    """What one training epoch measured on the batches it trained on."""

    loss: jax.Array  # mean of the batch losses, each taken before that batch's update
    accuracy: jax.Array  # fraction of the epoch's training examples classified right, same moments


class EpochRecord(NamedTuple):
    """One epoch of history, as plain Python numbers; None in a sweep lane from the epoch it diverged."""

    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None


class History(NamedTuple):
    """Per-epoch records of a run and where its time went (seconds, after `block_until_ready`)."""

    records: tuple[EpochRecord, ...]
    compile_seconds: float
    train_seconds: float
    eval_seconds: float


def init_state(seed: int, sizes: Sequence[int] = mlp.REFERENCE_SIZES) -> TrainState:
    """Initial parameters and shuffle key, both derived from one seed."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    return TrainState(mlp.init(init_key, sizes), jnp.zeros((), jnp.int32), shuffle_key)


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

    images: (N, D) float; labels: (N,) int. `step` has the signature of `sgd_step`; the sweep passes
    a vmapped one, whose losses and counts then carry a lane axis that the metrics keep.
    """

    def scan_body(params, indices):
        return step(params, images[indices], labels[indices], learning_rate)

    params, (losses, correct) = jax.lax.scan(scan_body, params, batch_indices)
    return params, EpochMetrics(jnp.mean(losses, axis=0), jnp.sum(correct, axis=0) / batch_indices.size)


@functools.partial(jax.jit, static_argnames="batch_size")
def train_epoch(
    state: TrainState,
    images: jax.Array,
    labels: jax.Array,
    learning_rate: jax.Array | float,
    batch_size: int = 64,
) -> tuple[TrainState, EpochMetrics]:
    """One pass over a fresh shuffle of the training set, as one compiled call.

    images: (N, D) float32, normalized; labels: (N,) int. The learning rate is traced, so every value
    reuses the same compiled program (pass Python floats, or float32 scalars, not a mix of both: JAX
    keys its cache on the argument's type).
    """
    key, shuffle_key = jax.random.split(state.key)
    batch_indices = epoch_batch_indices(shuffle_key, images.shape[0], batch_size)
    params, metrics = sgd_over_batches(state.params, images, labels, batch_indices, learning_rate)
    return TrainState(params, state.step + batch_indices.shape[0], key), metrics


def _loss_and_correct(params: mlp.Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy and number of right answers over images (B, D), labels (B,)."""
    logits, _ = mlp.forward_logits(params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return cross_entropy(logits, labels) * images.shape[0], correct


@functools.partial(jax.jit, static_argnames="chunk_size")
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


def timed(function: Callable, *args):
    """(function(*args), wall seconds), waiting for the device to finish the result."""
    start = time.perf_counter()
    result = jax.block_until_ready(function(*args))
    return result, time.perf_counter() - start


def fit(
    state: TrainState,
    train_images: jax.Array,
    train_labels: jax.Array,
    test_images: jax.Array,
    test_labels: jax.Array,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int = 64,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> tuple[TrainState, History]:
    """Trains for `epochs` epochs, evaluating on the test split after each; calls on_epoch(record)."""
    learning_rate = jnp.asarray(learning_rate, jnp.float32)
    start = time.perf_counter()
    epoch_fn = train_epoch.lower(state, train_images, train_labels, learning_rate, batch_size).compile()
    eval_fn = evaluate.lower(state.params, test_images, test_labels).compile()
    compile_seconds = time.perf_counter() - start

    records, train_seconds, eval_seconds = [], 0.0, 0.0
    for epoch in range(1, epochs + 1):
        (state, metrics), seconds = timed(epoch_fn, state, train_images, train_labels, learning_rate)
        train_seconds += seconds
        (test_loss, test_accuracy), seconds = timed(eval_fn, state.params, test_images, test_labels)
        eval_seconds += seconds
        record = EpochRecord(
            epoch, float(metrics.loss), float(metrics.accuracy), float(test_loss), float(test_accuracy)
        )
        records.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return state, History(tuple(records), compile_seconds, train_seconds, eval_seconds)
