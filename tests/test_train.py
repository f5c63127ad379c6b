"""One lane's training epoch and evaluation on a small synthetic problem that a network can separate."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp.description import Experiment, Training, updated
from fmlp.nn import mlp
from fmlp.training import evaluation, train

SIZES = (16, 12, 8, 4)
ARCH = mlp.Architecture(SIZES)
CONFIG = Experiment(network=ARCH, training=Training(batch_size=32))


@pytest.fixture(scope="module")
def separable():
    """1000 points whose labels are the argmax of a fixed random linear map of the inputs."""
    images_key, map_key = jax.random.split(jax.random.key(42))
    images = jax.random.normal(images_key, (1000, SIZES[0]))
    labels = jnp.argmax(images @ jax.random.normal(map_key, (SIZES[0], SIZES[-1])), axis=-1)
    return images, labels


@functools.partial(jax.jit, static_argnums=0)
def epoch(config, params, key, images, labels, learning_rate):
    params, _, key, metrics = train.lane_epoch(config, params, None, key, images, labels, learning_rate)
    return params, key, metrics


def test_epoch_lowers_the_loss(separable):
    images, labels = separable
    params, key = train.init_lane(0, ARCH)
    loss_before, _ = evaluation.evaluate(ARCH, params, images, labels)
    for _ in range(10):
        params, key, metrics = epoch(CONFIG, params, key, images, labels, jnp.float32(1.0))
    loss_after, accuracy_after = evaluation.evaluate(ARCH, params, images, labels)
    assert float(loss_after) < 0.3 * float(loss_before)
    assert float(accuracy_after) > 0.9
    assert 0.0 <= float(metrics.accuracy) <= 1.0 and np.isfinite(float(metrics.loss))


def test_epoch_batches_are_a_permutation_without_the_remainder():
    indices = np.asarray(train.epoch_batch_indices(jax.random.key(3), 100, 16))
    assert indices.shape == (6, 16)
    assert len(set(indices.ravel())) == 96 and indices.max() < 100
    assert not np.array_equal(indices.ravel(), np.arange(96))


def test_same_seed_same_params_other_seed_other_params(separable):
    images, labels = separable

    def run(seed):
        params, key = train.init_lane(seed, ARCH)
        for _ in range(2):
            params, key, _ = epoch(CONFIG, params, key, images, labels, jnp.float32(0.3))
        return jax.tree.leaves(params)

    first, again, other = run(1), run(1), run(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_epoch_metrics_are_the_mean_batch_loss_and_the_fraction_right(separable):
    images, labels = separable
    params, key = train.init_lane(5, ARCH)
    _, _, metrics = epoch(updated(CONFIG, training={"batch_size": 1000}), params, key, images, labels, jnp.float32(0.1))
    # One batch of all 1000 points: its loss and accuracy are those of the initial parameters.
    loss, accuracy = evaluation.evaluate(ARCH, params, images, labels)
    np.testing.assert_allclose(metrics.loss, loss, rtol=1e-5)
    np.testing.assert_allclose(metrics.accuracy, accuracy)


def test_evaluate_equals_a_direct_computation_with_a_partial_chunk(separable):
    images, labels = separable
    params, _ = train.init_lane(3, ARCH)
    loss, accuracy = evaluation.evaluate(ARCH, params, images[:950], labels[:950], chunk_size=200)
    probs, _ = mlp.forward(ARCH, params, images[:950])
    expected_loss = -np.mean(np.log(np.asarray(probs)[np.arange(950), np.asarray(labels[:950])]))
    expected_accuracy = np.mean(np.argmax(probs, axis=1) == np.asarray(labels[:950]))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(accuracy, expected_accuracy, rtol=1e-6)
