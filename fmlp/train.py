"""One lane's training: the static config, the step (our SGD or an optax optimizer), an epoch as one
`lax.scan`, and evaluation.

Everything here is for a single network (one lane). `fmlp.lanes` runs many lanes, or one, as one
compiled program built from these functions, so the per-step math lives here only.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fmlp import mlp, optim
from fmlp.choices import EVAL_CHUNK, OPTIMIZERS
from fmlp.layers import cross_entropy


class Config(NamedTuple):
    """The static options of training, hashable: passed to compiled functions as one static argument.

    A new option goes here, in its flag, and in the one function that reads it; an option of the network
    itself goes into `mlp.Architecture` instead.
    """

    architecture: mlp.Architecture = mlp.REFERENCE  # the network: widths and hidden activation
    batch_size: int = 64
    lane_group: int = 1  # lanes trained together by vmap; 1 trains them one after another
    patience: int | None = None  # epochs without a better validation accuracy before a lane stops
    devices: int = 1  # devices the lane axis is split over (`fmlp.distributed`)
    optimizer: str = "sgd"  # one of OPTIMIZERS: our own SGD, or an optax transformation
    momentum: float | None = None  # of "momentum" and "nesterov"
    eval_chunk: int = EVAL_CHUNK  # rows per evaluation product, so memory stays flat
    rate_decay: float = 1.0  # every lane's rate is multiplied by this after each epoch (fmlp.lanes.train_epoch)
    eval_group: int | None = None  # lanes evaluated together; None: as many as fmlp.memory's budget holds


class EpochMetrics(NamedTuple):
    """What one training epoch measured on the batches it trained on."""

    loss: jax.Array  # mean of the batch losses, each taken before that batch's update
    accuracy: jax.Array  # fraction of the epoch's training examples classified right, same moments


def init_lane(seed: int, architecture: mlp.Architecture) -> tuple[mlp.Params, jax.Array]:
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


Gradients = Callable[[mlp.Architecture, mlp.Params, jax.Array, jax.Array], tuple[jax.Array, mlp.Params, jax.Array]]


def transformation(config: Config, learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """The optax form of config.optimizer at a learning rate, which may be traced (one per lane)."""
    if config.optimizer in ("sgd", "momentum", "nesterov"):
        momentum = None if config.optimizer == "sgd" else config.momentum
        return optax.sgd(learning_rate, momentum=momentum, nesterov=config.optimizer == "nesterov")
    if config.optimizer == "adam":
        return optax.adam(learning_rate)
    if config.optimizer == "rmsprop":
        return optax.rmsprop(learning_rate)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")


def init_optimizer(config: Config, params: mlp.Params) -> optax.OptState | None:
    """The optimizer's state for params (momentum, Adam's moments, ...); None for plain SGD, which has
    none. No state depends on the learning rate, so any rate builds it."""
    return None if config.optimizer == "sgd" else transformation(config, 0.0).init(params)


def train_step(
    config: Config,
    carry: tuple[mlp.Params, optax.OptState | None],
    images: jax.Array,
    labels: jax.Array,
    learning_rate: jax.Array,
    gradients: Gradients | None = None,
) -> tuple[tuple[mlp.Params, optax.OptState | None], tuple[jax.Array, jax.Array]]:
    """One step on a batch: carry (params, optimizer state) -> (new carry, (loss, number right)).

    images (B, D), labels (B,). gradients(architecture, params, images, labels) -> (loss, grads, scores), where only
    the argmax of the scores (probabilities or logits) is used; None is `mlp.loss_grads_and_probs`,
    looked up at trace time. Plain SGD is our own update,
    θ ← θ − η ∂L/∂θ; the other optimizers are optax's transformations fed the same gradients.
    """
    params, state = carry
    loss, grads, scores = (gradients or mlp.loss_grads_and_probs)(config.architecture, params, images, labels)
    correct = jnp.sum(jnp.argmax(scores, axis=-1) == labels)
    if config.optimizer == "sgd":
        return (optim.sgd(params, grads, learning_rate), state), (loss, correct)
    updates, state = transformation(config, learning_rate).update(grads, state, params)
    return (optax.apply_updates(params, updates), state), (loss, correct)


def train_over_batches(
    config: Config,
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
        return train_step(config, carry, images[indices], labels[indices], learning_rate, gradients)

    carry, (losses, correct) = jax.lax.scan(scan_body, carry, batch_indices)
    return carry, EpochMetrics(jnp.mean(losses), jnp.sum(correct) / batch_indices.size)


def lane_epoch(
    config: Config,
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
    batch_indices = epoch_batch_indices(shuffle_key, images.shape[0], config.batch_size)
    (params, state), metrics = train_over_batches(
        config, (params, state), images, labels, batch_indices, learning_rate, gradients
    )
    return params, state, key, metrics


def _loss_and_correct(
    architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Summed cross-entropy and number of right answers over images (B, D), labels (B,)."""
    logits, _ = mlp.forward_logits(architecture, params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return cross_entropy(logits, labels) * images.shape[0], correct


def evaluate(
    architecture: mlp.Architecture,
    params: mlp.Params,
    images: jax.Array,
    labels: jax.Array,
    chunk_size: int = EVAL_CHUNK,
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy over a whole split, chunk by chunk so memory stays flat.

    images: (N, D) float32; labels: (N,) int -> (scalar loss, scalar accuracy in [0, 1]).
    """
    # Weights rounded for quantization-aware training are rounded once here, not once per chunk.
    params, architecture = mlp.weights_run(architecture, params), architecture._replace(weight_bits=None)
    num_examples = images.shape[0]
    chunk_size = min(chunk_size, num_examples)
    num_full = num_examples // chunk_size
    full_end = num_full * chunk_size

    def chunk(totals, chunk_index):
        start = chunk_index * chunk_size
        loss, correct = _loss_and_correct(
            architecture,
            params,
            jax.lax.dynamic_slice_in_dim(images, start, chunk_size),
            jax.lax.dynamic_slice_in_dim(labels, start, chunk_size),
        )
        return (totals[0] + loss, totals[1] + correct), None

    zero = (jnp.zeros((), images.dtype), jnp.zeros((), jnp.int32))
    (loss_sum, correct), _ = jax.lax.scan(chunk, zero, jnp.arange(num_full))
    if full_end < num_examples:
        rest_loss, rest_correct = _loss_and_correct(architecture, params, images[full_end:], labels[full_end:])
        loss_sum, correct = loss_sum + rest_loss, correct + rest_correct
    return loss_sum / num_examples, correct / num_examples
