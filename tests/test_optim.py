"""Our written-out SGD update against optax's."""

import jax
import numpy as np
import optax

from fmlp.nn import mlp, update


def test_sgd_equals_optax_sgd_on_our_grads():
    params = mlp.init(jax.random.key(0), mlp.Architecture((12, 8, 5)))
    images = jax.random.normal(jax.random.key(1), (16, 12))
    labels = jax.random.randint(jax.random.key(2), (16,), 0, 5)
    _, grads = mlp.loss_and_grads(mlp.Architecture((12, 8, 5)), params, images, labels)

    ours = update.sgd(params, grads, 0.3)

    optimizer = optax.sgd(0.3)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    theirs = optax.apply_updates(params, updates)

    for actual, expected in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(ours)[0], jax.tree.leaves(params)[0])
