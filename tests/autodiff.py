"""Reference gradients by automatic differentiation: for tests and the benchmark only."""

import jax
import jax.numpy as jnp

from fmlp.nn import mlp


def reference_loss(
    architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, labels: jax.Array
) -> jax.Array:
    """Mean cross-entropy written the usual way for autodiff: log-softmax, then the label's entry."""
    logits, _ = mlp.forward_logits(architecture, params, images)
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def autodiff_loss_and_grads(architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, labels: jax.Array):
    """(loss, grads) of `reference_loss` by `jax.value_and_grad`: the opponent of mlp.loss_and_grads."""
    return jax.value_and_grad(reference_loss, argnums=1)(architecture, params, images, labels)


def autodiff_loss_grads_and_logits(
    architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, labels: jax.Array
):
    """`mlp.loss_grads_and_probs` by `jax.value_and_grad`: (loss, grads, logits); the logits have the
    probabilities' argmax, which is all that `train.train_step` reads of them."""

    def loss_and_logits(params):
        logits, _ = mlp.forward_logits(architecture, params, images)
        log_probs = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1)), logits

    (loss, logits), grads = jax.value_and_grad(loss_and_logits, has_aux=True)(params)
    return loss, grads, logits
