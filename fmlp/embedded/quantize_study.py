"""What integer-only inference costs: each trained network's float32 and integer test accuracy at each
weight width, the same after quantization-aware fine-tuning, summaries over seeds paired by seed, and
the bits-against-accuracy figure. Fine-tuning rates are chosen on validation, never on the test set.

Shapes: N test images; pixels (N, 784) uint8, labels (N,) int.
"""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from fmlp.analysis import stats
from fmlp.analysis.plots import PAGE_WIDTH
from fmlp.data import normalize
from fmlp.description import from_config, rate_name
from fmlp.embedded import c_export, integer
from fmlp.nn import mlp, saved


class FineTuned(NamedTuple):
    """The networks of one finetune.py run at its rate chosen on validation, in the order of its inputs."""

    bits: int
    learning_rate: float
    paths: tuple[Path, ...]
    folder: Path
    rate_decay: float
    val_accuracy: float  # the mean over networks of the final validation accuracy at that rate


_forward_logits = jax.jit(mlp.forward_logits, static_argnums=0)


def float_classes(network: saved.Network, pixels: np.ndarray) -> np.ndarray:
    """The float32 network's classes (N,) on raw pixels (N, 784), normalized as in training."""
    architecture = network.architecture._replace(weight_bits=None)  # the float32 network, whatever it trained for
    logits, _ = _forward_logits(architecture, network.params, jnp.asarray(normalize(pixels)))
    return np.asarray(jnp.argmax(logits, axis=-1))


def measure(network: saved.Network, bits: int, pixels: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict:
    """One network at one width: integer test accuracy, agreement with the float32 classes `reference`
    (N,), whether the NumPy reference equals the JAX program on every image, and the footprint."""
    quantized = integer.from_float(network.architecture, network.params, bits)
    logits = np.asarray(integer.logits(integer.to_device(quantized), pixels))
    classes = np.argmax(logits, axis=-1)
    return {
        "bits": bits,
        "test_accuracy": float(np.mean(classes == labels)),
        "agreement_with_float32": float(np.mean(classes == reference)),
        "numpy_equals_jax": bool(np.array_equal(integer.reference_logits(quantized, pixels), logits)),
        "footprint": c_export.footprint(quantized)._asdict(),
    }


def fine_tuned(folder: Path, sources: Sequence[Path]) -> FineTuned:
    """The fine-tuned networks in a finetune.py output folder, at the rate whose runs end with the best
    mean validation accuracy; ValueError naming the folder if it is not a finished run from `sources`."""
    path = folder / "finetune.json"
    try:
        document = json.loads(path.read_text())
        config, runs = document["config"], document["runs"]
        given = [Path(p).resolve() for p in config["params"]]
        finals = {}
        for run in runs:
            finals.setdefault(run["learning_rate"], []).append(run["epochs"][-1]["val_accuracy"])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise ValueError(f"{path}: not a finished finetune.py result ({error})") from None
    if document.get("interrupted") or config.get("save_params_dir") is None:
        raise ValueError(f"{path}: an interrupted run, or one without --save-params")
    if given != [Path(p).resolve() for p in sources]:
        raise ValueError(f"{path}: fine-tuned {', '.join(config['params'])}, not the networks given here")
    if any(value is None for values in finals.values() for value in values):
        raise ValueError(f"{path}: has runs without a validation accuracy (fine-tune with --validation)")
    rate = max(finals, key=lambda r: np.mean(finals[r]))
    seeds = range(config["seed"], config["seed"] + len(sources))
    names = [Path(config["save_params_dir"]) / f"lr_{rate_name(rate)}_seed_{seed}.npz" for seed in seeds]
    decay = from_config(config).training.rate_decay  # a config from before the rate decay has its default
    return FineTuned(int(config["bits"]), float(rate), tuple(names), folder, decay, float(np.mean(finals[rate])))


def best_per_width(runs: Sequence[FineTuned]) -> list[FineTuned]:
    """Of several fine-tuning runs at one width (say a constant rate and a decaying one), the one with
    the best validation accuracy; one per width, in the order the widths first appear."""
    best: dict[int, FineTuned] = {}
    for run in runs:
        if run.bits not in best or run.val_accuracy > best[run.bits].val_accuracy:
            best[run.bits] = run
    return list(best.values())


def summary(rows: Sequence[dict], float_accuracies: Sequence[float]) -> dict:
    """Integer accuracy over seeds and its difference from the same seed's float32 network (points)."""
    accuracies = [row["test_accuracy"] for row in rows]
    differences = [100 * (row["test_accuracy"] - base) for row, base in zip(rows, float_accuracies)]
    return {"test_accuracy": stats.summarize(accuracies), "difference_points": stats.summarize(differences)}


TARGETS = {8: -0.05, 4: -0.1, 2: -0.3, 1: -0.6}  # points from float32: post-training at 8 and 4, fine-tuned at 2 and 1
ZOOM = (-1.5, 0.3)  # points shown in the lower panel; further differences are written at its foot


def _series(
    rows: Sequence[dict], key: str, scale: float, bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(bits, means, error bars (2, K)) of one summary field, times scale, the intervals cut at `bounds`
    (an accuracy's [0, 100]%: a t interval of a few seeds knows none)."""
    bits = [row["bits"] for row in rows]
    means = np.array([row[key]["mean"] for row in rows]) * scale
    intervals = np.clip(np.array([row[key]["ci95"] or [row[key]["mean"]] * 2 for row in rows]).T * scale, *bounds)
    return bits, means, np.abs(intervals - means)


def bits_figure(document: dict) -> Figure:
    """Above: integer-only test accuracy against weight width, post-training and fine-tuned, mean and 95%
    interval over seeds, with the float32 networks' mean. Below: the difference from each seed's float32
    network in points, near zero, with the targets."""
    figure = Figure(figsize=(PAGE_WIDTH, 5.0), layout="constrained")
    accuracy, difference = figure.subplots(2, 1, sharex=True)
    float32 = document["float32"]["test_accuracy"]["mean"] * 100
    accuracy.axhline(float32, color="black", linewidth=1, label=f"float32 ({float32:.2f}%)")
    difference.axhline(0, color="black", linewidth=1)
    offsets = {"post_training": -0.04, "fine_tuned": 0.04}  # side by side, in log2 units
    for key, label, marker in (("post_training", "post-training", "o"), ("fine_tuned", "fine-tuned", "s")):
        rows = document["summary"][key]
        if not rows:
            continue
        bits, means, errors = _series(rows, "test_accuracy", 100, (0.0, 100.0))
        x = np.array(bits) * 2 ** offsets[key]
        accuracy.errorbar(x, means, yerr=errors, marker=marker, capsize=3, label=label, linestyle="none")
        _, points, point_errors = _series(rows, "difference_points", 1)
        shown = points >= ZOOM[0]
        difference.errorbar(x[shown], points[shown], yerr=point_errors[:, shown], marker=marker, capsize=3,
                            linestyle="none", color=accuracy.lines[-1].get_color())  # fmt: skip
        for where, value in zip(x[~shown], points[~shown]):
            difference.annotate(f"{label} " + f"{value:.1f}".replace("-", "−"), (where, ZOOM[0]), xytext=(0, 4),
                                textcoords="offset points", ha="center", fontsize=8)  # fmt: skip
    for bits, target in TARGETS.items():
        difference.plot([bits * 0.85, bits / 0.85], [target, target], color="red", linewidth=1)
    difference.plot([], [], color="red", linewidth=1, label="target")
    accuracy.axhline(100, color="gray", linestyle=":", linewidth=1, label="100% (intervals cut at 0 and 100%)")
    difference.set_ylim(*ZOOM)
    difference.set_xscale("log", base=2)
    difference.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    difference.set_xlabel("weight bits (activations 8 bits)")
    accuracy.set_ylabel("test accuracy (%)")
    difference.set_ylabel("against float32 (points)")
    accuracy.set_title("Integer-only inference by weight width (mean, 95% interval over seeds)")
    for axes in (accuracy, difference):
        axes.grid(True, alpha=0.3)
    accuracy.legend(loc="lower right")
    difference.legend(loc="lower right")
    return figure
