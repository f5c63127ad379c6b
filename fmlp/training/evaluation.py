"""Evaluation of one network on a whole split: its mean loss and accuracy, chunk by chunk."""

import jax
import jax.numpy as jnp

from fmlp.description import EVAL_CHUNK, Architecture
from fmlp.nn import mlp
from fmlp.nn.losses import LOSSES


def _loss_and_correct(
    architecture: Architecture, params: mlp.Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Summed loss and number of right answers over images (B, D), labels (B,)."""
    logits, _ = mlp.forward_logits(architecture, params, images)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return LOSSES[architecture.loss].forward(logits, labels)[0] * images.shape[0], correct


def evaluate(
    architecture: Architecture,
    params: mlp.Params,
    images: jax.Array,
    labels: jax.Array,
    chunk_size: int = EVAL_CHUNK,
) -> tuple[jax.Array, jax.Array]:
    """Mean loss and accuracy over a whole split, chunk by chunk so memory stays flat.

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
