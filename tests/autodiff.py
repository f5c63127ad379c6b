"""Reference gradients by automatic differentiation: for tests and the benchmark only."""

import jax
import jax.numpy as jnp

from fmlp import mlp


def reference_loss(params: mlp.Params, images: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy written the usual way for autodiff: log-softmax, then the label's entry."""
    logits, _ = mlp.forward_logits(params, images)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def autodiff_loss_and_grads(params: mlp.Params, images: jax.Array, labels: jax.Array):
    """(loss, grads) of `reference_loss` by `jax.value_and_grad`: the opponent of mlp.loss_and_grads."""
    return jax.value_and_grad(reference_loss)(params, images, labels)


def autodiff_sgd_step(params: mlp.Params, images: jax.Array, labels: jax.Array, learning_rate: jax.Array):
    """`train.sgd_step` with gradients from `jax.value_and_grad`: same outputs, same update."""

    def loss_and_logits(params):
        logits, _ = mlp.forward_logits(params, images)
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1)), logits

    (loss, logits), grads = jax.value_and_grad(loss_and_logits, has_aux=True)(params)
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), (loss, correct)
