"""Learning-rate sweeps: the epoch's SGD scan, vmapped over a learning-rate axis into one program.

Every lane starts from the same parameters and sees the same batches in the same order, so the lanes
differ only in their learning rate. A lane whose loss or parameters turn NaN/inf is frozen at its last
finite parameters and marked diverged; the other lanes carry on untouched.
"""

import functools
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp import mlp
from fmlp.layers import Dense
from fmlp.train import (
    EpochMetrics,
    EpochRecord,
    TrainState,
    epoch_batch_indices,
    evaluate,
    sgd_over_batches,
    sgd_step,
    timed,
)


class SweepState(NamedTuple):
    """A TrainState whose params carry a lane axis (L lanes, see `lane_axes`), plus divergence flags."""

    params: mlp.Params  # each leaf with a lane axis of size L at the position `lane_axes` gives
    step: jax.Array  # int32 scalar, shared by all lanes
    key: jax.Array  # shared: all lanes draw the same shuffle
    diverged: jax.Array  # bool (L,)


class SweepHistory(NamedTuple):
    """Per-lane records, the epoch each lane diverged at (None if never), and timings in seconds."""

    learning_rates: tuple[float, ...]
    records: tuple[tuple[EpochRecord, ...], ...]  # [lane][epoch]
    diverged_at_epoch: tuple[int | None, ...]
    compile_seconds: float
    train_seconds: float
    eval_seconds: float


def lane_axes(params: mlp.Params) -> tuple[Dense, ...]:
    """Where each leaf of lane-stacked params keeps its lane axis.

    The first layer's input (the image batch) is shared by all lanes, so its lanes' weights sit side
    by side as one wide (I, L, O) matrix: x @ w is then a single product with no copy of w. Deeper
    layers see a different input in every lane, so their lanes stack in front, (L, I, O), as batched
    products want them. Biases stack in front, (L, O).
    """
    return tuple(Dense(w=1 if index == 0 else 0, b=0) for index in range(len(params)))


def _map_lanes(function, params: mlp.Params, *rest):
    """jax.tree.map of function(leaf, lane_axis, *rest_leaves) over lane-stacked params."""
    return jax.tree.map(function, params, lane_axes(params), *rest)


def init_sweep(state: TrainState, num_lanes: int) -> SweepState:
    """Copies state's parameters into num_lanes identical lanes."""
    params = _map_lanes(lambda leaf, axis: jnp.repeat(jnp.expand_dims(leaf, axis), num_lanes, axis), state.params)
    return SweepState(params, state.step, state.key, jnp.zeros((num_lanes,), bool))


def lane_params(params: mlp.Params, lane: int) -> mlp.Params:
    """The plain params of one lane."""
    return _map_lanes(lambda leaf, axis: jnp.take(leaf, lane, axis), params)


def _all_finite(params: mlp.Params) -> jax.Array:
    """Per lane: whether every parameter is finite -> bool (L,)."""
    per_leaf = _map_lanes(
        lambda leaf, axis: jnp.all(jnp.isfinite(jnp.moveaxis(leaf, axis, -1)), axis=tuple(range(leaf.ndim - 1))), params
    )
    return jnp.stack(jax.tree.leaves(per_leaf)).all(axis=0)


def _select_lanes(keep: jax.Array, new: mlp.Params, old: mlp.Params) -> mlp.Params:
    """new where keep (L,) is true, else old, lane by lane."""

    def select(new_leaf, axis, old_leaf):
        shape = [1] * new_leaf.ndim
        shape[axis] = -1
        return jnp.where(keep.reshape(shape), new_leaf, old_leaf)

    return _map_lanes(select, new, old)


@functools.partial(jax.jit, static_argnames="batch_size")
def sweep_epoch(
    state: SweepState,
    images: jax.Array,
    labels: jax.Array,
    learning_rates: jax.Array,
    batch_size: int = 64,
) -> tuple[SweepState, EpochMetrics]:
    """One epoch for every lane at once. learning_rates: (L,). Metrics come back with shape (L,).

    The shuffle and every gathered batch are shared by the lanes: only the parameters carry the lane
    axis, so the first layer's products serve all lanes at once.
    """
    key, shuffle_key = jax.random.split(state.key)
    batch_indices = epoch_batch_indices(shuffle_key, images.shape[0], batch_size)
    axes = lane_axes(state.params)
    # vmap inside the scan, not around it: a vmapped scan would move every carry's lane axis to the
    # front, undoing the first layer's side-by-side layout and copying its weights at every step.
    lanes_step = jax.vmap(sgd_step, in_axes=(axes, None, None, 0), out_axes=(axes, 0))
    params, metrics = sgd_over_batches(state.params, images, labels, batch_indices, learning_rates, lanes_step)
    finite = _all_finite(params) & jnp.isfinite(metrics.loss)
    params = _select_lanes(finite & ~state.diverged, params, state.params)
    diverged = state.diverged | ~finite
    return SweepState(params, state.step + batch_indices.shape[0], key, diverged), metrics


@jax.jit
def sweep_evaluate(params: mlp.Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`train.evaluate` for every lane of lane-stacked params -> loss (L,), accuracy (L,)."""
    return jax.vmap(evaluate, in_axes=(lane_axes(params), None, None))(params, images, labels)


def fit_sweep(
    state: TrainState,
    train_images: jax.Array,
    train_labels: jax.Array,
    test_images: jax.Array,
    test_labels: jax.Array,
    *,
    epochs: int,
    learning_rates: Sequence[float],
    batch_size: int = 64,
    on_epoch: Callable[[int, tuple[EpochRecord, ...]], None] | None = None,
) -> tuple[SweepState, SweepHistory]:
    """Trains one lane per learning rate from `state`, evaluating every lane on the test split after
    each epoch; calls on_epoch(epoch, records of all lanes)."""
    rates = jnp.asarray(learning_rates, jnp.float32)
    sweep = init_sweep(state, len(learning_rates))
    start = time.perf_counter()
    epoch_fn = sweep_epoch.lower(sweep, train_images, train_labels, rates, batch_size).compile()
    eval_fn = sweep_evaluate.lower(sweep.params, test_images, test_labels).compile()
    compile_seconds = time.perf_counter() - start

    records = [[] for _ in learning_rates]
    diverged_at: list[int | None] = [None] * len(learning_rates)
    train_seconds = eval_seconds = 0.0
    for epoch in range(1, epochs + 1):
        (sweep, metrics), seconds = timed(epoch_fn, sweep, train_images, train_labels, rates)
        train_seconds += seconds
        (test_loss, test_accuracy), seconds = timed(eval_fn, sweep.params, test_images, test_labels)
        eval_seconds += seconds

        diverged = np.asarray(sweep.diverged)
        columns = [np.asarray(a) for a in (metrics.loss, metrics.accuracy, test_loss, test_accuracy)]
        for lane in range(len(learning_rates)):
            if diverged[lane] and diverged_at[lane] is None:
                diverged_at[lane] = epoch
            values = [None if diverged[lane] else float(column[lane]) for column in columns]
            records[lane].append(EpochRecord(epoch, *values))
        if on_epoch is not None:
            on_epoch(epoch, tuple(lane_records[-1] for lane_records in records))
    history = SweepHistory(
        tuple(float(r) for r in learning_rates),
        tuple(tuple(lane_records) for lane_records in records),
        tuple(diverged_at),
        compile_seconds,
        train_seconds,
        eval_seconds,
    )
    return sweep, history
