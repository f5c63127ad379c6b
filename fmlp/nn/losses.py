"""The losses the output is trained on, each a forward and its hand-derived backward, in one table.

A loss takes the logits z (B, C) and the labels (B,) int in [0, C), and returns the mean loss over the
batch with the softmax probabilities p (B, C) of the same pass; its backward takes p and the labels and
returns dL/dz (B, C). A new loss is a pair of functions here, its entry in LOSSES, its name (with its
name in prose) in fmlp.description.LOSSES, and a test against autodiff.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fmlp.nn.layers import shifted_exponentials


def softmax_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and softmax probabilities from one pass over the logits.

    loss = mean over the batch of log(sum_k exp(z_k - m)) - (z_label - m), m the row maximum:
    the log-sum-exp form, never log of a softmax (which underflows to log 0).
    logits: (B, C) float; labels: (B,) int in [0, C) -> (scalar loss, probs (B, C)).
    """
    shifted, exponentials, total = shifted_exponentials(logits)
    label_shifted = jnp.take_along_axis(shifted, labels[:, None], axis=-1)[:, 0]
    return jnp.mean(jnp.log(total) - label_shifted), exponentials / total[:, None]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy over the batch. logits: (B, C); labels: (B,) int -> scalar."""
    return softmax_cross_entropy(logits, labels)[0]


def softmax_cross_entropy_backward(probs: jax.Array, labels: jax.Array) -> jax.Array:
    """dL/dlogits of the mean cross-entropy, fused through the softmax: (p - onehot(y)) / B.

    probs: (B, C); labels: (B,) int -> (B, C).
    """
    num_classes = probs.shape[-1]
    is_label = labels[:, None] == jnp.arange(num_classes)
    return (probs - is_label.astype(probs.dtype)) / probs.shape[0]


class Loss(NamedTuple):
    """One loss: forward (logits, labels) -> (mean loss, probs), and backward (probs, labels) -> dL/dlogits."""

    forward: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    backward: Callable[[jax.Array, jax.Array], jax.Array]


# The losses by name (fmlp.description.LOSSES).
LOSSES = {"cross_entropy": Loss(softmax_cross_entropy, softmax_cross_entropy_backward)}
