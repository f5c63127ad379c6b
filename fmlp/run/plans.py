"""What each training script trains and draws: its lanes (rates and seeds, or given networks) and its
figures, from the experiment's description."""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure

from fmlp.analysis import plots
from fmlp.description import LOSSES, Experiment, optimizer_title, rate_name
from fmlp.nn import mlp
from fmlp.training import lanes


class Plan(NamedTuple):
    """What a script trains and draws."""

    name: str  # stem of the JSON file, e.g. "baseline"
    learning_rates: tuple[float, ...]  # per lane
    seeds: tuple[int, ...]  # per lane
    figures: Callable[[list[dict], str], dict[str, Figure]]  # (runs, title) -> {file name: figure}
    title: str
    start: mlp.Params | None = None  # lane-stacked params the lanes begin from; None: their seeds' initial ones


def _network_name(experiment: Experiment) -> str:
    """E.g. "MLP 784-512-128-10 (sigmoid)"."""
    network = experiment.network
    return "MLP " + "-".join(map(str, network.sizes)) + f" ({network.activation})"


def _curves(name: str, experiment: Experiment) -> Callable[[list[dict], str], dict[str, Figure]]:
    """The figures of a script named `name`: its accuracy and its loss curves, the loss as the network's
    loss names it; a sweep's loss on a log scale."""
    loss = LOSSES[experiment.network.loss]
    loss_figure = plots.loss_figure if name == "baseline" else plots.sweep_loss_figure

    def figures(runs, title):
        return {
            f"{name}_loss.png": loss_figure(runs, title, loss),
            f"{name}_accuracy.png": plots.accuracy_figure(runs, title),
        }

    return figures


def baseline_plan(experiment: Experiment, start: mlp.Params | None = None) -> Plan:
    """What baseline.py trains and draws: one lane, of the design's first rate and its seed (from its
    seed's initial parameters: `start` is for finetune)."""
    design, training = experiment.design, experiment.training
    rate = design.learning_rates[0]
    title = f"{_network_name(experiment)}, {optimizer_title(training)} lr {rate:g}, batch {training.batch_size}"
    return Plan("baseline", (rate,), (design.seed,), _curves("baseline", experiment), title)


def sweep_plan(experiment: Experiment, start: mlp.Params | None = None) -> Plan:
    """What lr_sweep.py trains and draws: every rate with seeds seed, seed + 1, ..., rate-major (each from
    its seed's initial parameters: `start` is for finetune)."""
    design, training = experiment.design, experiment.training
    rates, seeds = lanes.grid(design.learning_rates, range(design.seed, design.seed + design.seeds))
    title = f"{_network_name(experiment)}, {optimizer_title(training)}, batch {training.batch_size}: learning rates"
    return Plan("lr_sweep", rates, seeds, _curves("lr_sweep", experiment), title)


def finetune_plan(experiment: Experiment, start: mlp.Params | None = None) -> Plan:
    """What finetune.py trains and draws: every rate with each given network (seed `seed + k - 1` for the
    k-th), rate-major; `start` holds the networks' params, one lane per network, stacked."""
    design = experiment.design
    rates, seeds = lanes.grid(design.learning_rates, range(design.seed, design.seed + len(design.networks)))
    if start is not None:  # the same networks for every rate
        start = jax.tree.map(lambda leaf: jnp.concatenate([leaf] * len(design.learning_rates)), start)
    title = (f"{_network_name(experiment)}, fine-tuned with {experiment.network.weight_bits}-bit weights, "
             f"{optimizer_title(experiment.training)}")  # fmt: skip
    return Plan("finetune", rates, seeds, _curves("finetune", experiment), title, start)


PLANS = {"baseline": baseline_plan, "lr_sweep": sweep_plan, "finetune": finetune_plan}


def param_files(experiment: Experiment, plan: Plan) -> dict[Path, int]:
    """Where each lane's final parameters go, path -> lane: baseline's --save-params file, or a sweep's
    and finetune's folder/lr_<rate>_seed_<seed>.npz; none without --save-params."""
    folder = experiment.outputs.save_params
    if folder is None:
        return {}
    if experiment.design.script == "baseline":
        return {folder: 0}
    return {folder / f"lr_{rate_name(rate)}_seed_{seed}.npz": lane
            for lane, (rate, seed) in enumerate(zip(plan.learning_rates, plan.seeds))}  # fmt: skip


def draw(plan: Plan, runs: list[dict], folder: Path) -> list[Path]:
    """The plan's figures of these runs, written into folder; returns their paths."""
    paths = []
    for file_name, figure in plan.figures(runs, plan.title).items():
        plots.save_png(figure, folder / file_name)
        paths.append(folder / file_name)
    return paths
