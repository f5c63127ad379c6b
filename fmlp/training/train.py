"""One lane's training: the step (our SGD or an optax optimizer), an epoch as one `lax.scan`.

Everything here is for a single network (one lane). `fmlp.training.lanes` runs many lanes, or one, as one
compiled program built from these functions, so the per-step math lives here only. Every function takes
the experiment's description (`fmlp.description.Experiment`), the compiled programs' static argument.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fmlp.description import Architecture, Experiment
from fmlp.nn import mlp, update
from fmlp.training import optimizers


class EpochMetrics(NamedTuple):
    """What one training epoch measured on the batches it trained on."""

    loss: jax.Array  # mean of the batch losses, each taken before that batch's update
    accuracy: jax.Array  # fraction of the epoch's training examples classified right, same moments


def init_lane(seed: int, architecture: Architecture) -> tuple[mlp.Params, jax.Array]:
    """Initial parameters and shuffle key of one seed: (params, key)."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    return mlp.init(init_key, architecture), shuffle_key


def epoch_batch_indices(key: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """A fresh permutation cut into (num_examples // batch_size, batch_size) indices.

    The last incomplete batch is dropped, as in the reference exercise.
    """
    num_batches = num_examples // batch_size
    permutation = jax.random.permutation(key, num_examples)
    return permutation[: num_batches * batch_size].reshape(num_batches, batch_size)


Gradients = Callable[[Architecture, mlp.Params, jax.Array, jax.Array], tuple[jax.Array, mlp.Params, jax.Array]]


def train_step(
    experiment: Experiment,
    carry: tuple[mlp.Params, optax.OptState | None],
    images: jax.Array,
    labels: jax.Array,
    learning_rate: jax.Array,
    gradients: Gradients | None = None,
) -> tuple[tuple[mlp.Params, optax.OptState | None], tuple[jax.Array, jax.Array]]:
    """One step on a batch: carry (params, optimizer state) -> (new carry, (loss, right)).

    images (B, D), labels (B,). gradients(architecture, params, images, labels) -> (loss,
    grads, scores), where only the argmax of the scores (probabilities or logits) is used; None
    is `mlp.loss_grads_and_probs`, looked up at trace time. Plain SGD is our own update,
    θ ← θ − η ∂L/∂θ; the other optimizers are optax's transformations fed the same gradients.
    """
    params, state = carry
    gradients = gradients or mlp.loss_grads_and_probs
    loss, grads, scores = gradients(experiment.network, params, images, labels)
    correct = jnp.sum(jnp.argmax(scores, axis=-1) == labels)
    if experiment.training.optimizer == "sgd":
        return (update.sgd(params, grads, learning_rate), state), (loss, correct)
    optimizer = optimizers.transformation(experiment.training, learning_rate)
    updates, state = optimizer.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), (loss, correct)


def train_over_batches(
    experiment: Experiment,
    carry: tuple[mlp.Params, optax.OptState | None],
    images: jax.Array,
    labels: jax.Array,
    batch_indices: jax.Array,
    learning_rate: jax.Array,
    gradients: Gradients | None = None,
) -> tuple[tuple[mlp.Params, optax.OptState | None], EpochMetrics]:
    """One `train_step` per row of batch_indices (num_batches, B), gathering each batch on device.

    images: (N, D) float; labels: (N,) int. The carry (params, optimizer state) runs through the scan.
    """

    def scan_body(carry, indices):
        return train_step(experiment, carry, images[indices], labels[indices], learning_rate, gradients)

    carry, (losses, correct) = jax.lax.scan(scan_body, carry, batch_indices)
    return carry, EpochMetrics(jnp.mean(losses), jnp.sum(correct) / batch_indices.size)


def lane_epoch(
    experiment: Experiment,
    params: mlp.Params,
    state: optax.OptState | None,
    key: jax.Array,
    images: jax.Array,
    labels: jax.Array,
    learning_rate: jax.Array,
    gradients: Gradients | None = None,
) -> tuple[mlp.Params, optax.OptState | None, jax.Array, EpochMetrics]:
    """One pass over a fresh shuffle of the training set: (params, optimizer state, next key, metrics).

    images: (N, D) float32, normalized; labels: (N,) int; learning_rate: float32 scalar.
    """
    key, shuffle_key = jax.random.split(key)
    batch_indices = epoch_batch_indices(shuffle_key, images.shape[0], experiment.training.batch_size)
    (params, state), metrics = train_over_batches(
        experiment, (params, state), images, labels, batch_indices, learning_rate, gradients
    )
    return params, state, key, metrics
