"""optax optimizers driven by the hand-derived gradients: against our SGD, against independent optax
loops on autodiff gradients, state carried across epochs, divergence."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fmlp import description
from fmlp.data import splits
from fmlp.description import Experiment, Training, updated
from fmlp.nn import mlp
from fmlp.run import flags
from fmlp.training import evaluation, lanes, optimizers, train

from .autodiff import autodiff_loss_and_grads

SIZES = (20, 16, 12, 5)
ARCH = mlp.Architecture(SIZES)
CONFIG = Experiment(network=ARCH, training=Training(batch_size=50))


@pytest.fixture(scope="module")
def problem() -> splits.Splits:
    """1000 training and 300 test points labelled by a fixed random linear map."""
    images = jax.random.normal(jax.random.key(11), (1300, SIZES[0]))
    labels = jnp.argmax(images @ jax.random.normal(jax.random.key(12), (SIZES[0], SIZES[-1])), axis=-1)
    return splits.Splits(images[:1000], labels[:1000], None, None, images[1000:], labels[1000:])


def test_every_optimizer_choice_is_a_flag_and_builds_a_transformation():
    action = next(a for a in flags.sweep_parser()._actions if a.dest == "optimizer")
    assert tuple(action.choices) == tuple(description.OPTIMIZERS) == tuple(optimizers.OPTIMIZERS)
    for name in description.OPTIMIZERS:
        training = Training(optimizer=name, momentum=0.9 if name in ("momentum", "nesterov") else None)
        assert optimizers.transformation(training, 0.1) is not None


def test_optax_sgd_on_our_gradients_equals_our_sgd(problem):
    params, key = train.init_lane(0, ARCH)
    indices = train.epoch_batch_indices(key, 1000, 50)
    rate = jnp.float32(0.3)
    (ours, _), _ = jax.jit(functools.partial(train.train_over_batches, CONFIG))(
        (params, None), problem.train_images, problem.train_labels, indices, rate
    )
    transform = optimizers.transformation(CONFIG.training, rate)
    theirs, state = params, transform.init(params)
    for batch in indices:
        _, grads, _ = mlp.loss_grads_and_probs(ARCH, theirs, problem.train_images[batch], problem.train_labels[batch])
        updates, state = transform.update(grads, state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


REFERENCES = {
    "adam": optax.adam,
    "rmsprop": optax.rmsprop,
    "momentum": lambda rate: optax.sgd(rate, momentum=0.9),
    "nesterov": lambda rate: optax.sgd(rate, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_a_lane_equals_an_independent_optax_loop_over_two_epochs(problem, name):
    config = updated(
        CONFIG, training={"optimizer": name, "momentum": 0.9 if name in ("momentum", "nesterov") else None}
    )
    rate = 0.01 if name in ("adam", "rmsprop") else 0.1
    state, history = lanes.fit(config, problem, learning_rates=[rate], seeds=[3], epochs=2)

    # The reference: optax on autodiff gradients, the same batches, its state carried from epoch to epoch.
    params, key = train.init_lane(3, ARCH)
    transform = REFERENCES[name](rate)
    optimizer_state = transform.init(params)
    for _ in range(2):
        key, shuffle_key = jax.random.split(key)
        for batch in train.epoch_batch_indices(shuffle_key, 1000, 50):
            _, grads = autodiff_loss_and_grads(ARCH, params, problem.train_images[batch], problem.train_labels[batch])
            updates, optimizer_state = transform.update(grads, optimizer_state, params)
            params = optax.apply_updates(params, updates)
    for ours, theirs in zip(jax.tree.leaves(lanes.final_params(state, 0)), jax.tree.leaves(params)):
        np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=2e-5)
    loss, accuracy = evaluation.evaluate(ARCH, params, problem.test_images, problem.test_labels)
    np.testing.assert_allclose(history.records[0][-1].test_loss, loss, rtol=1e-3)
    # The state went on across the epoch boundary: Adam's step count is that of both epochs.
    counts = [leaf for leaf in jax.tree.leaves(state.optimizer) if leaf.dtype == jnp.int32]
    if name in ("adam",):
        assert int(counts[0][0]) == 2 * (1000 // 50)


def test_a_diverging_adam_lane_is_frozen_and_leaves_the_others_alone(problem):
    config = updated(CONFIG, training={"optimizer": "adam"})
    state, history = lanes.fit(config, problem, learning_rates=[0.01, 1e38], seeds=[3, 3], epochs=2)
    assert history.diverged_at_epoch == (None, 1)
    initial, _ = train.init_lane(3, ARCH)
    for frozen, start in zip(jax.tree.leaves(lanes.final_params(state, 1)), jax.tree.leaves(initial)):
        np.testing.assert_array_equal(frozen, start)
    alone_state, alone = lanes.fit(config, problem, learning_rates=[0.01], seeds=[3], epochs=2)
    np.testing.assert_allclose(
        np.array(history.records[0], float), np.array(alone.records[0], float), rtol=1e-5, equal_nan=True
    )
