"""Training epochs, evaluation and fit on a small synthetic problem that a network can separate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp import mlp, train

SIZES = (16, 12, 8, 4)


@pytest.fixture(scope="module")
def separable():
    """1000 points whose labels are the argmax of a fixed random linear map of the inputs."""
    images_key, map_key = jax.random.split(jax.random.key(42))
    images = jax.random.normal(images_key, (1000, SIZES[0]))
    labels = jnp.argmax(images @ jax.random.normal(map_key, (SIZES[0], SIZES[-1])), axis=-1)
    return images, labels


def test_epoch_lowers_the_loss(separable):
    images, labels = separable
    state = train.init_state(0, SIZES)
    loss_before, _ = train.evaluate(state.params, images, labels)
    for _ in range(10):
        state, metrics = train.train_epoch(state, images, labels, 1.0, batch_size=32)
    loss_after, accuracy_after = train.evaluate(state.params, images, labels)
    assert float(loss_after) < 0.3 * float(loss_before)
    assert float(accuracy_after) > 0.9
    assert 0.0 <= float(metrics.accuracy) <= 1.0 and np.isfinite(float(metrics.loss))


def test_epoch_counts_steps_and_drops_the_incomplete_batch(separable):
    images, labels = separable
    state, _ = train.train_epoch(train.init_state(0, SIZES), images, labels, 0.1, batch_size=64)
    assert int(state.step) == 1000 // 64


def test_epoch_batches_are_a_permutation_without_the_remainder():
    indices = np.asarray(train.epoch_batch_indices(jax.random.key(3), 100, 16))
    assert indices.shape == (6, 16)
    assert len(set(indices.ravel())) == 96 and indices.max() < 100
    assert not np.array_equal(indices.ravel(), np.arange(96))


def test_same_seed_same_params_other_seed_other_params(separable):
    images, labels = separable

    def run(seed):
        state = train.init_state(seed, SIZES)
        for _ in range(2):
            state, _ = train.train_epoch(state, images, labels, 0.3, batch_size=32)
        return jax.tree.leaves(state.params)

    first, again, other = run(1), run(1), run(2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first[0], other[0])


def test_epoch_compiles_once_for_all_epochs_and_learning_rates(separable, trace_counter):
    images, labels = separable
    train.train_epoch.clear_cache()
    state = train.init_state(0, SIZES)
    for learning_rate in (0.1, 0.1, 0.05, 0.2, 1.0):
        state, _ = train.train_epoch(state, images, labels, learning_rate, batch_size=50)
    assert len(trace_counter) == 1


def test_evaluate_equals_a_direct_computation_with_a_partial_chunk(separable):
    images, labels = separable
    params = train.init_state(3, SIZES).params
    loss, accuracy = train.evaluate(params, images[:950], labels[:950], chunk_size=200)
    probs, _ = mlp.forward(params, images[:950])
    expected_loss = -np.mean(np.log(np.asarray(probs)[np.arange(950), np.asarray(labels[:950])]))
    expected_accuracy = np.mean(np.argmax(probs, axis=1) == np.asarray(labels[:950]))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(accuracy, expected_accuracy, rtol=1e-6)


def test_fit_records_every_epoch(separable):
    images, labels = separable
    seen = []
    state, history = train.fit(
        train.init_state(0, SIZES),
        images[:800],
        labels[:800],
        images[800:],
        labels[800:],
        epochs=3,
        learning_rate=0.5,
        batch_size=32,
        on_epoch=seen.append,
    )
    assert [r.epoch for r in history.records] == [1, 2, 3]
    assert list(history.records) == seen
    assert history.records[-1].test_loss < history.records[0].test_loss
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert int(state.step) == 3 * (800 // 32)
    expected_loss, expected_accuracy = train.evaluate(state.params, images[800:], labels[800:])
    np.testing.assert_allclose(history.records[-1].test_loss, expected_loss, rtol=1e-6)
    np.testing.assert_allclose(history.records[-1].test_accuracy, expected_accuracy)
    assert min(history.compile_seconds, history.train_seconds, history.eval_seconds) > 0
