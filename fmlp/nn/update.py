"""The parameter update, written out."""

import jax

from fmlp.nn.layers import Dense
from fmlp.nn.mlp import Params


def dense_sgd(layer: Dense, grads: Dense, learning_rate: jax.Array | float) -> Dense:
    """One Dense layer's step against its gradients.

    w <- w - lr * dL/dw, w and dL/dw (I, O); b <- b - lr * dL/db, b and dL/db (O,).
    """
    return Dense(layer.w - learning_rate * grads.w, layer.b - learning_rate * grads.b)


def sgd(params: Params, grads: Params, learning_rate: jax.Array | float) -> Params:
    """Plain stochastic gradient descent: every layer's `dense_sgd`, with one learning rate."""
    return tuple(dense_sgd(layer, grad, learning_rate) for layer, grad in zip(params, grads))
