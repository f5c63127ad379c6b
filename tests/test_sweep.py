"""The vmapped sweep against single runs, lane by lane, and its handling of a diverging lane."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp import sweep, train

SIZES = (20, 16, 12, 5)


@pytest.fixture(scope="module")
def problem():
    """3000 training and 500 test points labelled by a fixed random linear map."""
    images_key, map_key = jax.random.split(jax.random.key(7))
    images = jax.random.normal(images_key, (3500, SIZES[0]))
    labels = jnp.argmax(images @ jax.random.normal(map_key, (SIZES[0], SIZES[-1])), axis=-1)
    return images[:3000], labels[:3000], images[3000:], labels[3000:]


def single_run(problem, learning_rate, epochs=2):
    return train.fit(train.init_state(3, SIZES), *problem, epochs=epochs, learning_rate=learning_rate, batch_size=32)


def assert_lane_matches_single_run(sweep_state, history, lane, problem):
    state, single = single_run(problem, history.learning_rates[lane])
    for ours, theirs in zip(history.records[lane], single.records):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    lane_params = sweep.lane_params(sweep_state.params, lane)
    for ours, theirs in zip(jax.tree.leaves(lane_params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_sweep_equals_single_runs_lane_by_lane(problem):
    rates = [0.5, 0.1, 0.02]
    sweep_state, history = sweep.fit_sweep(
        train.init_state(3, SIZES), *problem, epochs=2, learning_rates=rates, batch_size=32
    )
    assert history.learning_rates == tuple(rates)
    assert history.diverged_at_epoch == (None, None, None)
    for lane in range(len(rates)):
        assert_lane_matches_single_run(sweep_state, history, lane, problem)
    # The lanes really differ: a sweep that ignored its rates would fail here.
    finals = [lane_records[-1].test_loss for lane_records in history.records]
    assert len(set(finals)) == 3


def test_diverging_lane_is_flagged_and_leaves_the_others_alone(problem):
    rates = [0.3, 1e38, 0.05]  # 1e38 * gradient overflows float32 in the first steps
    sweep_state, history = sweep.fit_sweep(
        train.init_state(3, SIZES), *problem, epochs=2, learning_rates=rates, batch_size=32
    )
    assert history.diverged_at_epoch == (None, 1, None)
    assert np.asarray(sweep_state.diverged).tolist() == [False, True, False]
    assert all(value is None for record in history.records[1] for value in record[1:])
    # The diverged lane is frozen at its last finite parameters: the initial ones.
    initial = train.init_state(3, SIZES).params
    for frozen, start in zip(jax.tree.leaves(sweep.lane_params(sweep_state.params, 1)), jax.tree.leaves(initial)):
        np.testing.assert_array_equal(frozen, start)
    for lane in (0, 2):
        assert_lane_matches_single_run(sweep_state, history, lane, problem)


def test_lane_layout_round_trips():
    state = train.init_state(0, SIZES)
    stacked = sweep.init_sweep(state, 4)
    assert stacked.params[0].w.shape == (SIZES[0], 4, SIZES[1])  # first layer: lanes side by side
    assert stacked.params[1].w.shape == (4, SIZES[1], SIZES[2])
    assert stacked.params[0].b.shape == (4, SIZES[1])
    for lane in range(4):
        for ours, theirs in zip(
            jax.tree.leaves(sweep.lane_params(stacked.params, lane)), jax.tree.leaves(state.params)
        ):
            np.testing.assert_array_equal(ours, theirs)


def test_sweep_epoch_compiles_once_for_any_rates(problem, trace_counter):
    images, labels = problem[0], problem[1]
    sweep.sweep_epoch.clear_cache()
    state = sweep.init_sweep(train.init_state(0, SIZES), 3)
    for rates in ([0.1, 0.2, 0.3], [1.0, 0.5, 0.01]):
        state, _ = sweep.sweep_epoch(state, images, labels, jnp.asarray(rates, jnp.float32), batch_size=32)
    assert len(trace_counter) == 1
