"""The parameter update, written out."""

import jax

from fmlp.nn.mlp import Params


def sgd(params: Params, grads: Params, learning_rate: jax.Array | float) -> Params:
    """Plain stochastic gradient descent: p <- p - learning_rate * g for every leaf of the pytree."""
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
