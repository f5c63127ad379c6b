"""The lane program against plain single-lane loops, lane by lane, for any grouping; divergence,
early stopping and the validation split."""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp.data import MNIST, splits
from fmlp.description import Architecture, Experiment, Training, updated
from fmlp.nn import layers, mlp
from fmlp.training import evaluation, lanes, memory_budget, train

SIZES = (20, 16, 12, 5)
ARCH = mlp.Architecture(SIZES)
CONFIG = Experiment(network=ARCH, training=Training(batch_size=32))


@pytest.fixture(scope="module")
def problem() -> splits.Splits:
    """2500 training, 500 validation and 500 test points labelled by a fixed random linear map."""
    images_key, map_key = jax.random.split(jax.random.key(7))
    images = jax.random.normal(images_key, (3500, SIZES[0]))
    labels = jnp.argmax(images @ jax.random.normal(map_key, (SIZES[0], SIZES[-1])), axis=-1)
    return splits.Splits(
        images[:2500], labels[:2500], images[2500:3000], labels[2500:3000], images[3000:], labels[3000:]
    )


@functools.partial(jax.jit, static_argnums=0)
def _epoch(config, params, key, images, labels, learning_rate):
    params, _, key, metrics = train.lane_epoch(config, params, None, key, images, labels, learning_rate)
    return params, key, metrics


def plain_run(problem, learning_rate, seed, epochs=2):
    """The reference: one network, a Python loop of single-lane epochs and evaluations, no lane program."""
    params, key = train.init_lane(seed, ARCH)
    records = []
    for epoch in range(1, epochs + 1):
        params, key, metrics = _epoch(CONFIG, params, key, problem.train_images, problem.train_labels,
                                      jnp.float32(learning_rate))  # fmt: skip
        val = evaluation.evaluate(ARCH, params, problem.val_images, problem.val_labels)
        test = evaluation.evaluate(ARCH, params, problem.test_images, problem.test_labels)
        records.append([epoch, *map(float, (*metrics, *val, *test))])
    return params, records


def assert_lane_is_plain_run(state, history, lane, problem):
    params, records = plain_run(problem, history.learning_rates[lane], history.seeds[lane])
    np.testing.assert_allclose(np.array(history.records[lane], float), np.array(records), rtol=2e-4, atol=1e-6)
    for ours, theirs in zip(jax.tree.leaves(lanes.final_params(state, lane)), jax.tree.leaves(params)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("group", [1, 3, 4])
def test_every_lane_equals_its_single_run_for_any_grouping(problem, group):
    rates, seeds = lanes.grid([0.5, 0.05], [3, 4])
    assert (rates, seeds) == ((0.5, 0.5, 0.05, 0.05), (3, 4, 3, 4))
    state, history = lanes.fit(
        updated(CONFIG, lanes={"group": group}), problem, learning_rates=rates, seeds=seeds, epochs=2
    )
    assert history.diverged_at_epoch == history.stopped_at_epoch == (None,) * 4
    for lane in range(4):
        assert_lane_is_plain_run(state, history, lane, problem)
    # The lanes really differ, by rate and by seed: a program that mixed them up would fail here.
    assert len({lane_records[-1].test_loss for lane_records in history.records}) == 4


def test_one_lane_is_a_single_run(problem):
    state, history = lanes.fit(CONFIG, problem, learning_rates=[0.2], seeds=[9], epochs=2)
    assert len(history.records) == 1
    assert_lane_is_plain_run(state, history, 0, problem)


def test_diverging_lane_is_frozen_and_leaves_the_others_alone(problem):
    rates, seeds = [0.3, 1e38, 0.05], [3, 3, 3]  # 1e38 * gradient overflows float32 in the first steps
    state, history = lanes.fit(CONFIG, problem, learning_rates=rates, seeds=seeds, epochs=2)
    assert history.diverged_at_epoch == (None, 1, None)
    assert np.asarray(state.diverged).tolist() == [False, True, False]
    assert all(value is None for record in history.records[1] for value in record[1:])
    # Frozen at its last finite parameters: the initial ones.
    initial, _ = train.init_lane(3, ARCH)
    for frozen, start in zip(jax.tree.leaves(lanes.final_params(state, 1)), jax.tree.leaves(initial)):
        np.testing.assert_array_equal(frozen, start)
    for lane in (0, 2):
        assert_lane_is_plain_run(state, history, lane, problem)


def test_a_run_that_diverges_ends_there(problem):
    _, history = lanes.fit(CONFIG, problem, learning_rates=[1e38], seeds=[3], epochs=5)
    assert history.diverged_at_epoch == (1,)
    assert [record.epoch for record in history.records[0]] == [1]


def test_best_parameters_are_kept_and_a_lane_out_of_patience_stops(problem):
    config = updated(CONFIG, training={"early_stop": 2})
    state = lanes.init_lanes(config, [0.1, 0.1], [1, 2])
    # Validation accuracies per epoch for two lanes; lane 0 peaks at epoch 2 (epoch 3 ties it with a
    # higher loss), lane 1 keeps improving.
    accuracies = [[0.5, 0.6, 0.6, 0.55], [0.5, 0.6, 0.7, 0.8]]
    losses = [[1.0, 0.9, 0.95, 0.9], [1.0, 0.9, 0.8, 0.7]]
    for epoch in range(4):
        state = state._replace(params=jax.tree.map(lambda leaf: leaf + 1.0, state.params))  # "training"
        state = lanes._track_best(
            config, state, jnp.asarray([losses[0][epoch], losses[1][epoch]]),
            jnp.asarray([accuracies[0][epoch], accuracies[1][epoch]]),
        )  # fmt: skip
        if epoch == 1:
            expected_best = state.params
    assert np.asarray(state.stopped).tolist() == [True, False]
    assert np.asarray(state.epochs_since_best).tolist() == [2, 0]
    for best, wanted in zip(
        jax.tree.leaves(lanes.final_params(state, 0)), jax.tree.leaves(lanes.unstack(expected_best, 0))
    ):
        np.testing.assert_array_equal(best, wanted)
    for best, last in zip(
        jax.tree.leaves(lanes.final_params(state, 1)), jax.tree.leaves(lanes.unstack(state.params, 1))
    ):
        np.testing.assert_array_equal(best, last)


def test_a_stopped_lane_is_frozen_and_the_run_ends_when_all_have_stopped(problem):
    # A rate of 1e-30 changes nothing: the validation accuracy never improves after the first epoch.
    config = updated(CONFIG, training={"early_stop": 2})
    state, history = lanes.fit(config, problem, learning_rates=[1e-30, 0.5], seeds=[1, 1], epochs=4)
    assert history.stopped_at_epoch[0] == 3
    assert all(value is None for value in history.records[0][3][1:])
    assert len(history.records[1]) == 4 and history.records[1][3].test_accuracy is not None

    _, alone = lanes.fit(config, problem, learning_rates=[1e-30], seeds=[1], epochs=10)
    assert alone.stopped_at_epoch == (3,) and len(alone.records[0]) == 3


def test_should_stop_ends_the_run_after_the_current_epoch(problem):
    calls = []
    _, history = lanes.fit(
        CONFIG,
        problem,
        learning_rates=[0.1],
        seeds=[1],
        epochs=5,
        should_stop=lambda: calls.append(1) or len(calls) >= 2,
    )
    assert len(history.records[0]) == 2


def test_validation_images_are_never_trained_on(monkeypatch):
    rng = np.random.default_rng(0)
    mnist = MNIST(
        rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), rng.integers(0, 10, 300).astype(np.uint8),
        rng.integers(0, 256, (50, 28, 28), dtype=np.uint8), rng.integers(0, 10, 50).astype(np.uint8),
    )  # fmt: skip
    held = splits.device_splits(mnist, train_limit=250, validation=100)
    np.testing.assert_array_equal(held.train_labels, mnist.train_labels[:150])
    np.testing.assert_array_equal(held.val_labels, mnist.train_labels[150:250])
    assert held.train_images.shape == (150, 784) and held.val_images.shape == (100, 784)

    # The epoch draws its batches from a permutation of exactly the training split's rows.
    drawn = []
    original = train.epoch_batch_indices

    def recording(key, num_examples, batch_size):
        drawn.append(num_examples)
        return original(key, num_examples, batch_size)

    monkeypatch.setattr(train, "epoch_batch_indices", recording)
    lanes.train_epoch.clear_cache()
    config = Experiment(network=Architecture((784, 8, 10)), training=Training(batch_size=16))
    lanes.fit(config, held, learning_rates=[0.1], seeds=[1], epochs=1)
    assert drawn == [150]
    indices = np.asarray(original(jax.random.key(0), 150, 16))
    assert indices.max() < 150


def test_train_epoch_compiles_once_for_any_rates(problem, trace_counter):
    lanes.train_epoch.clear_cache()
    for rates in ([0.1, 0.2, 0.3], [1.0, 0.5, 0.01]):
        state = lanes.init_lanes(CONFIG, rates, [0, 0, 1])
        lanes.train_epoch(CONFIG, state, problem.train_images, problem.train_labels)
    assert len(trace_counter) == 1


def test_stack_and_unstack_round_trip():
    params = [mlp.init(jax.random.key(seed), ARCH) for seed in range(3)]
    stacked = lanes.stack(params)
    assert stacked[0].w.shape == (3, SIZES[0], SIZES[1]) and stacked[0].b.shape == (3, SIZES[1])
    for lane in range(3):
        for ours, theirs in zip(jax.tree.leaves(lanes.unstack(stacked, lane)), jax.tree.leaves(params[lane])):
            np.testing.assert_array_equal(ours, theirs)


def test_a_new_activation_is_one_entry_of_the_table_and_reaches_the_compiled_step(problem, monkeypatch):
    """What README's "Adding an option" promises: a network option lives in mlp.Architecture and in the
    one function that reads it; nothing else learns about it."""
    traced = []

    def softsign_forward(z):
        traced.append(z.shape)  # runs only while a compiled function is traced
        return z / (1 + jnp.abs(z))

    def softsign_backward(a, da):
        return da * (1 - jnp.abs(a)) ** 2  # 1 / (1 + |z|)^2 = (1 - |a|)^2, from the saved output

    monkeypatch.setitem(layers.ACTIVATIONS, "softsign", (softsign_forward, softsign_backward))
    config = CONFIG._replace(network=Architecture(SIZES, "softsign"))
    _, history = lanes.fit(config, problem, learning_rates=[0.2], seeds=[9], epochs=1)
    _, sigmoid = lanes.fit(CONFIG, problem, learning_rates=[0.2], seeds=[9], epochs=1)
    assert {shape[-1] for shape in traced} == set(SIZES[1:-1])  # both hidden layers, in training and evaluation
    assert history.records[0][0].test_accuracy != sigmoid.records[0][0].test_accuracy


def test_evaluating_a_35_lane_grid_in_groups_changes_no_accuracy_and_losses_only_by_rounding(problem):
    rates, seeds = lanes.grid([1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001], [1, 2, 3, 4, 5])
    assert memory_budget.evaluation_group(CONFIG) >= 35  # by default the grid is one vmap, as it always was
    together = lanes.fit(CONFIG, problem, learning_rates=rates, seeds=seeds, epochs=2)[1]
    grouped = lanes.fit(updated(CONFIG, lanes={"eval_group": 4}), problem, learning_rates=rates, seeds=seeds, epochs=2)[
        1
    ]
    for ours, theirs in zip(together.records, grouped.records):
        for a, b in zip(ours, theirs):
            assert (a.train_loss, a.train_accuracy) == (b.train_loss, b.train_accuracy)
            assert (a.val_accuracy, a.test_accuracy) == (b.val_accuracy, b.test_accuracy)
            np.testing.assert_allclose([a.val_loss, a.test_loss], [b.val_loss, b.test_loss], rtol=1e-6)


def test_a_rate_decay_multiplies_each_lanes_rate_after_every_epoch(problem):
    decayed = updated(CONFIG, training={"rate_decay": 0.5})
    state, history = lanes.fit(decayed, problem, learning_rates=[0.4, 0.2], seeds=[3, 3], epochs=2)
    np.testing.assert_allclose(state.learning_rates, [0.1, 0.05])
    assert history.learning_rates == (0.4, 0.2)  # the records name the rates the lanes started at
    params, key = train.init_lane(3, ARCH)
    for rate in (0.4, 0.2):  # lane 0 by hand: epoch 1 at 0.4, epoch 2 at 0.2
        params, key, _ = _epoch(CONFIG, params, key, problem.train_images, problem.train_labels, jnp.float32(rate))
    for ours, theirs in zip(jax.tree.leaves(lanes.final_params(state, 0)), jax.tree.leaves(params)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_peak_device_memory_is_the_runtimes_count_where_it_keeps_one(monkeypatch):
    class Device(NamedTuple):
        stats: dict | None

        def memory_stats(self):
            return self.stats

    assert memory_budget.peak_device_bytes() is None  # the CPU keeps no statistics
    monkeypatch.setattr(memory_budget.jax, "local_devices", lambda: [Device({"peak_bytes_in_use": 3 * 2**30})])
    assert memory_budget.peak_device_bytes() == 3 * 2**30
    monkeypatch.setattr(memory_budget.jax, "local_devices", lambda: [Device({"bytes_in_use": 5})])
    assert memory_budget.peak_device_bytes() is None


def test_two_epochs_from_one_key_see_different_batch_orders(problem, monkeypatch):
    """Each epoch draws its shuffle from the key the last one handed on, so no two epochs repeat."""
    orders = []
    original = train.epoch_batch_indices

    def recording(key, num_examples, batch_size):
        orders.append(np.asarray(original(key, num_examples, batch_size)))  # called outside the scan: concrete
        return orders[-1]

    monkeypatch.setattr(train, "epoch_batch_indices", recording)
    params, key = train.init_lane(4, ARCH)
    for _ in range(3):
        params, _, key, _ = train.lane_epoch(CONFIG, params, None, key, problem.train_images, problem.train_labels,
                                             jnp.float32(0.1))  # fmt: skip
    assert len(orders) == 3
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], orders[2])
