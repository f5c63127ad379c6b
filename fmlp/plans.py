"""What each training script trains and draws: its lanes (rates and seeds, or given networks) and its
figures, from its flags (the parsed arguments, or as a JSON recorded them)."""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure

from fmlp import lanes, mlp, plots
from fmlp.flags import rate_name


class Plan(NamedTuple):
    """What a script trains and draws."""

    name: str  # stem of the JSON file, e.g. "baseline"
    learning_rates: tuple[float, ...]  # per lane
    seeds: tuple[int, ...]  # per lane
    figures: Callable[[list[dict], str], dict[str, Figure]]  # (runs, title) -> {file name: figure}
    title: str
    start: mlp.Params | None = None  # lane-stacked params the lanes begin from; None: their seeds' initial ones


def optimizer_name(config: dict) -> str:
    """The optimizer of recorded flags as the figures' titles name it, e.g. "SGD" or "SGD, Nesterov momentum 0.9"."""
    names = {"sgd": "SGD", "momentum": "SGD, momentum", "nesterov": "SGD, Nesterov momentum", "adam": "Adam",
             "rmsprop": "RMSProp"}  # fmt: skip
    momentum = config.get("momentum")
    return names[config.get("optimizer", "sgd")] + (f" {momentum:g}" if momentum is not None else "")


def _network_name(config: dict) -> str:
    """E.g. "MLP 784-512-128-10 (sigmoid)", from recorded flags (older ones recorded no activation)."""
    return "MLP " + "-".join(map(str, (784, *config["hidden"], 10))) + f" ({config.get('activation', 'sigmoid')})"


def baseline_plan(config: dict) -> Plan:
    """What baseline.py trains and draws, from its flags (vars of the parsed arguments, or as recorded)."""

    def figures(runs, title):
        return {
            "baseline_loss.png": plots.loss_figure(runs, title),
            "baseline_accuracy.png": plots.accuracy_figure(runs, title),
        }

    title = f"{_network_name(config)}, {optimizer_name(config)} lr {config['lr']:g}, batch {config['batch_size']}"
    return Plan("baseline", (config["lr"],), (config["seed"],), figures, title)


def sweep_plan(config: dict) -> Plan:
    """What lr_sweep.py trains and draws: every rate with seeds seed, seed + 1, ..., rate-major."""

    def figures(runs, title):
        return {
            "lr_sweep_accuracy.png": plots.accuracy_figure(runs, title),
            "lr_sweep_loss.png": plots.sweep_loss_figure(runs, title),
        }

    rates, seeds = lanes.grid(config["lrs"], range(config["seed"], config["seed"] + config["seeds"]))
    title = f"{_network_name(config)}, {optimizer_name(config)}, batch {config['batch_size']}: learning rates"
    return Plan("lr_sweep", rates, seeds, figures, title)


def finetune_plan(config: dict, start: mlp.Params | None = None) -> Plan:
    """What finetune.py trains and draws: every rate with each given network (seed --seed + k - 1 for the
    k-th), rate-major; `start` holds the networks' params, one lane per network, stacked."""

    def figures(runs, title):
        return {
            "finetune_accuracy.png": plots.accuracy_figure(runs, title),
            "finetune_loss.png": plots.sweep_loss_figure(runs, title),
        }

    seeds = range(config["seed"], config["seed"] + len(config["params"]))
    rates, seeds = lanes.grid(config["lrs"], seeds)
    if start is not None:  # the same networks for every rate
        start = jax.tree.map(lambda leaf: jnp.concatenate([leaf] * len(config["lrs"])), start)
    title = f"{_network_name(config)}, fine-tuned with {config['bits']}-bit weights, {optimizer_name(config)}"
    return Plan("finetune", rates, seeds, figures, title, start)


def lane_files(folder: Path | None, plan: Plan) -> dict[Path, int]:
    """Where each lane's final parameters go: folder/lr_<rate>_seed_<seed>.npz -> lane; none without a folder."""
    if folder is None:
        return {}
    return {folder / f"lr_{rate_name(rate)}_seed_{seed}.npz": lane
            for lane, (rate, seed) in enumerate(zip(plan.learning_rates, plan.seeds))}  # fmt: skip


def draw(plan: Plan, runs: list[dict], folder: Path) -> list[Path]:
    """The plan's figures of these runs, written into folder; returns their paths."""
    paths = []
    for file_name, figure in plan.figures(runs, plan.title).items():
        plots.save_png(figure, folder / file_name)
        paths.append(folder / file_name)
    return paths
