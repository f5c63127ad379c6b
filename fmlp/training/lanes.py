"""The lane program: many training runs, or one, as one compiled call per epoch.

A lane is one network with its own parameters, learning rate and shuffle key; a sweep's lanes are the
pairs (learning rate, seed), and a single run is the one-lane case. Lanes of one seed start from that
seed's parameters and see its batches in the same order, so within a seed they differ only in rate.
Every leaf of the state carries a leading lane axis of size L.

An epoch trains the lanes in groups of `experiment.lanes.group` (None: 1): the lanes of a group run
together under vmap, the groups one after another (`lax.map`). On a CPU one lane at a time is fastest: its 2 MB of
weights stay in cache for the whole epoch, while a vmapped group streams every lane's weights and
gradients through memory at every step. On a GPU one 64-row batch leaves the device mostly idle, so
all lanes run together. The numbers do not depend on the grouping beyond float32 rounding.

A lane whose loss or parameters turn non-finite is frozen at its last finite parameters and marked
diverged. With a patience, a lane whose validation accuracy has not improved for that many epochs is
frozen too (stopped), and keeps its best parameters. Frozen lanes leave the others untouched.
"""

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp.data.splits import Splits
from fmlp.description import Experiment
from fmlp.nn import mlp
from fmlp.scale.distributed import LANES, REPLICATED, any_process, over_devices, padded_lanes, place, to_host
from fmlp.training import memory_budget
from fmlp.training.evaluation import evaluate
from fmlp.training.optimizers import init_optimizer
from fmlp.training.train import EpochMetrics, Gradients, init_lane, lane_epoch


class LaneState(NamedTuple):
    """Everything that changes from epoch to epoch, each leaf with a leading lane axis (L, ...)."""

    params: mlp.Params
    optimizer: object  # each lane's optimizer state (momentum, Adam's moments, ...); None for plain SGD
    keys: jax.Array  # (L, 2) uint32: the raw RNG key from which each lane's next shuffle is drawn
    learning_rates: jax.Array  # (L,) float32
    diverged: jax.Array  # (L,) bool
    stopped: jax.Array  # (L,) bool: out of patience
    best_params: mlp.Params | None  # params at each lane's best validation accuracy; None without patience
    best_val_accuracy: jax.Array  # (L,) float32, -1 before the first evaluation
    best_val_loss: jax.Array  # (L,) float32, the tie-breaker
    epochs_since_best: jax.Array  # (L,) int32


class EvalMetrics(NamedTuple):
    """Evaluation of every lane after an epoch, each (L,); the validation fields are None without one."""

    val_loss: jax.Array | None
    val_accuracy: jax.Array | None
    test_loss: jax.Array
    test_accuracy: jax.Array


class EpochRecord(NamedTuple):
    """One epoch of one lane, as plain Python numbers; None where not measured (no validation split) or
    where the lane was frozen (diverged at or before this epoch, or stopped before it)."""

    epoch: int
    train_loss: float | None
    train_accuracy: float | None
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float | None
    test_accuracy: float | None


class LaneHistory(NamedTuple):
    """Per-lane records and outcomes, and where the time went (seconds, after `block_until_ready`)."""

    learning_rates: tuple[float, ...]  # per lane
    seeds: tuple[int, ...]  # per lane
    records: tuple[tuple[EpochRecord, ...], ...]  # [lane][epoch]
    diverged_at_epoch: tuple[int | None, ...]
    stopped_at_epoch: tuple[int | None, ...]
    compile_seconds: float
    train_seconds: float
    eval_seconds: float


class Progress(NamedTuple):
    """Where a run stands after some epochs: everything needed to go on exactly as if it had not stopped."""

    state: LaneState
    history: LaneHistory  # the records and the seconds so far


def grid(learning_rates: Sequence[float], seeds: Sequence[int]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The lanes of a rates x seeds grid, rate-major: lane r * S + s is (rate r, seed s) -> (rates, seeds)."""
    pairs = [(rate, seed) for rate in learning_rates for seed in seeds]
    return tuple(float(rate) for rate, _ in pairs), tuple(int(seed) for _, seed in pairs)


def stack(trees: Sequence) -> object:
    """Pytrees of equal structure -> one pytree whose leaves gain a leading axis of len(trees)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree, lane: int):
    """The pytree of one lane out of lane-stacked leaves."""
    return jax.tree.map(lambda leaf: leaf[lane], tree)


def init_lanes(
    experiment: Experiment,
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    padding: int = 0,
    start: mlp.Params | None = None,
) -> LaneState:
    """Lane i starts from seed seeds[i]'s parameters and shuffle key, at rate learning_rates[i]; with
    `start` (lane-stacked params, (L, ...) leaves), from start's lane i instead, with the seed's key.

    `padding` more lanes (copies of the first, stopped from the start) fill the last device's share.
    """
    learning_rates = jnp.asarray(list(learning_rates) + [learning_rates[0]] * padding, jnp.float32)
    # int64 on the host, as jax.random.key reads a Python int (narrowed to int32 unless 64-bit is on).
    seeds = jnp.asarray(np.asarray(list(seeds) + [seeds[0]] * padding, np.int64))
    return _init_lanes(experiment, padding, learning_rates, seeds, start)


@partial(jax.jit, static_argnums=(0, 1))
def _init_lanes(
    experiment: Experiment, padding: int, learning_rates: jax.Array, seeds: jax.Array, start: mlp.Params | None
) -> LaneState:
    """`init_lanes` as one compiled program, learning_rates (L,) and seeds (L,) with the padding lanes
    included: run op by op, its few dozen small operations each compiled apart cost about a second
    at every start. The lanes' parameters are drawn one lane at a time straight into their stacked
    arrays (`init_lane` mapped over the seeds: the same numbers), with no second copy of them."""

    def one_lane(seed: jax.Array) -> tuple[mlp.Params, jax.Array]:
        params, key = init_lane(seed, experiment.network)
        return params, jax.random.key_data(key)

    params, keys = jax.lax.map(one_lane, seeds)  # one lane at a time: a vmap would hold every lane's draws
    if start is not None:
        params = jax.tree.map(lambda leaf: jnp.concatenate([leaf, leaf[:1].repeat(padding, 0)]), start)
    num_lanes = seeds.shape[0]
    return LaneState(
        params=params,
        optimizer=jax.vmap(partial(init_optimizer, experiment.training))(params),
        keys=keys,
        learning_rates=learning_rates,
        diverged=jnp.zeros((num_lanes,), bool),
        stopped=jnp.arange(num_lanes) >= num_lanes - padding,
        # a copy, not the same buffers: the compiled epoch takes the state over, leaf by leaf
        best_params=jax.tree.map(jnp.copy, params) if experiment.training.early_stop is not None else None,
        best_val_accuracy=jnp.full((num_lanes,), -1.0, jnp.float32),
        best_val_loss=jnp.full((num_lanes,), jnp.inf, jnp.float32),
        epochs_since_best=jnp.zeros((num_lanes,), jnp.int32),
    )


def map_lanes(function: Callable, lanes, group: int):
    """function over the leading lane axis of every leaf of `lanes`: vmapped in groups of `group`
    lanes, the groups one after another. group 1 is a plain loop; group >= L is one vmap."""
    num_lanes = jax.tree.leaves(lanes)[0].shape[0]
    if num_lanes == 1:  # as itself: under a vmap of one, XLA's CPU products run about 15% slower
        return jax.tree.map(lambda leaf: leaf[None], function(unstack(lanes, 0)))
    if group >= num_lanes:
        return jax.vmap(function)(lanes)
    return jax.lax.map(function, lanes, batch_size=group if group > 1 else None)


def _lane_where(keep: jax.Array, new, old):
    """new where keep (L,) is true, else old, lane by lane, for lane-stacked pytrees."""
    return jax.tree.map(lambda n, o: jnp.where(keep.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def _all_finite(params: mlp.Params) -> jax.Array:
    """Whether every parameter of one lane is finite -> bool scalar."""
    return jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(params)]).all()


def active(state: LaneState) -> jax.Array:
    """Lanes still training: neither diverged nor stopped -> bool (L,)."""
    return ~(state.diverged | state.stopped)


@partial(jax.jit, static_argnums=(0, 4), static_argnames="gradients")
def train_epoch(
    experiment: Experiment,
    state: LaneState,
    images: jax.Array,
    labels: jax.Array,
    gradients: Gradients | None = None,
) -> tuple[LaneState, EpochMetrics]:
    """One epoch of every active lane, as one compiled call. images (N, D), labels (N,).

    Metrics come back per lane, (L,), NaN for frozen lanes. A frozen lane is skipped outright when
    lanes train one at a time (under vmap the skip becomes a select). gradients: the step's gradient
    function (`train.train_step`; None, the hand-written one), a static argument, so that another one
    (the benchmark's autodiff) is another compiled program, never a trace of this one reused.
    """
    training = active(state)
    num_lanes = training.shape[0]

    def local_lanes(params, optimizer, keys, learning_rates, training, images, labels):
        def one_lane(lane):
            params, optimizer, raw_key, learning_rate, is_training = lane

            def train(_):
                new_params, new_optimizer, key, metrics = lane_epoch(
                    experiment, params, optimizer, jax.random.wrap_key_data(raw_key), images, labels, learning_rate,
                    gradients,
                )
                # Kept or undone here, lane by lane: a select over all lanes afterwards would hold a
                # third copy of every lane's parameters.
                finite = _all_finite(new_params) & jnp.isfinite(metrics.loss)
                kept = jax.tree.map(
                    lambda n, o: jnp.where(finite, n, o), (new_params, new_optimizer), (params, optimizer)
                )
                return *kept, jax.random.key_data(key), metrics, finite

            def skip(_):
                nan = jnp.full((), jnp.nan, jnp.float32)
                return params, optimizer, raw_key, EpochMetrics(nan, nan), jnp.ones((), bool)

            if num_lanes == 1:  # a run of one lane ends when its lane freezes: nothing to skip
                return train(None)
            return jax.lax.cond(is_training, train, skip, None)

        return map_lanes(one_lane, (params, optimizer, keys, learning_rates, training), experiment.lanes.group or 1)

    sharded = over_devices(local_lanes, experiment.lanes.devices, (LANES,) * 5 + (REPLICATED,) * 2, LANES)
    params, optimizer, keys, metrics, finite = sharded(
        state.params, state.optimizer, state.keys, state.learning_rates, training, images, labels
    )
    diverged = state.diverged | (training & ~finite)
    state = state._replace(params=params, optimizer=optimizer, keys=keys, diverged=diverged)
    if experiment.training.rate_decay != 1.0:  # a step decay per epoch; the rates of a checkpoint are the decayed ones
        state = state._replace(learning_rates=state.learning_rates * jnp.float32(experiment.training.rate_decay))
    return state, metrics


def _evaluate_all(experiment: Experiment, params: mlp.Params, images: jax.Array, labels: jax.Array):
    """`train.evaluate` for every lane -> loss (L,), accuracy (L,), in groups of experiment.lanes.eval_group
    lanes (by default `memory_budget.evaluation_group`), so that the activations held at once do not grow with L.

    The lanes of a group share the images, so under vmap the first layer is one wide product over the
    group. A run of at most one group's lanes is one vmap: its numbers are those of every earlier
    version; smaller groups change losses only within float32 rounding, accuracies not at all.
    """
    evaluate_lane = partial(evaluate, experiment.network, chunk_size=experiment.lanes.eval_chunk)
    group = experiment.lanes.eval_group or memory_budget.evaluation_group(experiment)

    def local_lanes(params, images, labels):
        if jax.tree.leaves(params)[0].shape[0] <= group:
            return jax.vmap(evaluate_lane, in_axes=(0, None, None))(params, images, labels)
        return jax.lax.map(lambda lane: evaluate_lane(lane, images, labels), params, batch_size=group)

    return over_devices(local_lanes, experiment.lanes.devices, (LANES, REPLICATED, REPLICATED), LANES)(
        params, images, labels
    )


def _track_best(experiment: Experiment, state: LaneState, val_loss: jax.Array, val_accuracy: jax.Array) -> LaneState:
    """Keeps each training lane's best parameters by validation accuracy (ties: lower loss), and stops
    a lane after `experiment.training.early_stop` epochs without improvement."""
    training = active(state)
    improved = training & (
        (val_accuracy > state.best_val_accuracy)
        | ((val_accuracy == state.best_val_accuracy) & (val_loss < state.best_val_loss))
    )
    since = jnp.where(improved, 0, state.epochs_since_best + training.astype(jnp.int32))
    return state._replace(
        best_params=_lane_where(improved, state.params, state.best_params),
        best_val_accuracy=jnp.where(improved, val_accuracy, state.best_val_accuracy),
        best_val_loss=jnp.where(improved, val_loss, state.best_val_loss),
        epochs_since_best=since,
        stopped=state.stopped | (training & (since >= experiment.training.early_stop)),
    )


@partial(jax.jit, static_argnums=0)
def evaluate_epoch(experiment: Experiment, state: LaneState, splits: Splits) -> tuple[LaneState, EvalMetrics]:
    """Validation (if any) and test metrics of every lane, and with a patience the early-stopping
    bookkeeping, as one compiled call."""
    val_loss = val_accuracy = None
    if splits.val_images is not None:
        val_loss, val_accuracy = _evaluate_all(experiment, state.params, splits.val_images, splits.val_labels)
        if experiment.training.early_stop is not None:
            state = _track_best(experiment, state, val_loss, val_accuracy)
    test_loss, test_accuracy = _evaluate_all(experiment, state.params, splits.test_images, splits.test_labels)
    return state, EvalMetrics(val_loss, val_accuracy, test_loss, test_accuracy)


def timed(function: Callable, *args):
    """(function(*args), wall seconds), waiting for the device to finish the result."""
    start = time.perf_counter()
    result = jax.block_until_ready(function(*args))
    return result, time.perf_counter() - start


def _finite_or_none(column: np.ndarray | None, lane: int) -> float | None:
    """column[lane] as a Python float; None if not measured or not finite (JSON has no NaN)."""
    if column is None or not np.isfinite(column[lane]):
        return None
    return float(column[lane])


def fit(
    experiment: Experiment,
    splits: Splits,
    *,
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    epochs: int,
    on_epoch: Callable[[int, tuple[EpochRecord, ...]], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    resume: Progress | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    start: mlp.Params | None = None,
) -> tuple[LaneState, LaneHistory]:
    """Trains lane i at learning_rates[i] from seeds[i] for up to `epochs` epochs, evaluating after each;
    calls on_epoch(epoch, the epoch's record of every lane) and on_progress(where the run stands). Ends
    early when no lane is training any more, or when should_stop() turns true after an epoch. With
    `resume` (a Progress of the same lanes), goes on from its last epoch with its state and records, to
    the numbers an uninterrupted run gives. With `start` (lane-stacked params, (L, ...) leaves), the lanes
    begin from those parameters instead of their seeds' initial ones (fine-tuning trained networks)."""
    num_lanes = len(seeds)
    padding = padded_lanes(num_lanes, experiment.lanes.devices) - num_lanes
    initial = init_lanes(experiment, learning_rates, seeds, padding, start) if resume is None else resume.state
    state = place(initial, experiment.lanes.devices, LANES)
    splits = place(splits, experiment.lanes.devices, REPLICATED)
    start = time.perf_counter()
    # Both take the state over (donated): the new state reuses its buffers, so a run holds one copy of
    # every lane's parameters at a time, not one per call. The state passed in is gone afterwards.
    in_place = partial(jax.jit, static_argnums=0, donate_argnums=1)
    epoch_fn = in_place(train_epoch.__wrapped__).lower(experiment, state, splits.train_images, splits.train_labels)
    epoch_fn = epoch_fn.compile()
    eval_fn = in_place(evaluate_epoch.__wrapped__).lower(experiment, state, splits).compile()
    compile_seconds = time.perf_counter() - start

    before = resume.history if resume is not None else None
    records = [list(lane) for lane in before.records] if before else [[] for _ in range(num_lanes)]
    diverged_at: list[int | None] = list(before.diverged_at_epoch) if before else [None] * num_lanes
    stopped_at: list[int | None] = list(before.stopped_at_epoch) if before else [None] * num_lanes
    train_seconds, eval_seconds = (before.train_seconds, before.eval_seconds) if before else (0.0, 0.0)
    compile_seconds += before.compile_seconds if before else 0.0

    def history() -> LaneHistory:
        return LaneHistory(
            tuple(learning_rates),
            tuple(seeds),
            tuple(tuple(lane_records) for lane_records in records),
            tuple(diverged_at),
            tuple(stopped_at),
            compile_seconds,
            train_seconds,
            eval_seconds,
        )

    trained = to_host(active(state))
    for epoch in range(len(records[0]) + 1, epochs + 1):
        if not trained.any():  # padding lanes never train
            break
        (state, metrics), seconds = timed(epoch_fn, state, splits.train_images, splits.train_labels)
        train_seconds += seconds
        (state, evaluation), seconds = timed(eval_fn, state, splits)
        eval_seconds += seconds

        # One transfer per epoch brings everything the host reads back.
        diverged, stopped, metrics, evaluation = to_host((state.diverged, state.stopped, metrics, evaluation))
        columns = [*metrics, *evaluation]
        for lane in range(num_lanes):
            measured = trained[lane] and not diverged[lane]
            if trained[lane] and diverged[lane]:
                diverged_at[lane] = epoch
            if trained[lane] and stopped[lane]:
                stopped_at[lane] = epoch
            values = [_finite_or_none(column, lane) if measured else None for column in columns]
            records[lane].append(EpochRecord(epoch, *values))
        if on_progress is not None:
            on_progress(Progress(state, history()))
        if on_epoch is not None:
            on_epoch(epoch, tuple(lane_records[-1] for lane_records in records))
        trained = ~(diverged | stopped)  # the lanes the next epoch trains: `active`, on the host
        if any_process(should_stop()):
            break
    return state, history()


def final_params(state: LaneState, lane: int) -> mlp.Params:
    """The parameters a lane ends with: its best by validation with a patience, else its last."""
    return unstack(state.best_params if state.best_params is not None else state.params, lane)
