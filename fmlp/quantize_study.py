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

from fmlp import c_export, integer, mlp, stats
from fmlp.data import normalize
from fmlp.flags import rate_name
from fmlp.plots import PAGE_WIDTH


class FineTuned(NamedTuple):
    """The networks of one finetune.py run at its rate chosen on validation, in the order of its inputs."""

    bits: int
    learning_rate: float
    paths: tuple[Path, ...]


def float_classes(network: mlp.Network, pixels: np.ndarray) -> np.ndarray:
    """The float32 network's classes (N,) on raw pixels (N, 784), normalized as in training."""
    images = jnp.asarray(normalize(pixels.reshape(-1, 28, 28)))
    architecture = network.architecture._replace(weight_bits=None)  # the float32 network, whatever it trained for
    logits, _ = jax.jit(mlp.forward_logits, static_argnums=0)(architecture, network.params, images)
    return np.asarray(jnp.argmax(logits, axis=-1))


def measure(network: mlp.Network, bits: int, pixels: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> dict:
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
    return FineTuned(int(config["bits"]), float(rate), tuple(names))


def summary(rows: Sequence[dict], float_accuracies: Sequence[float]) -> dict:
    """Integer accuracy over seeds and its difference from the same seed's float32 network (points)."""
    accuracies = [row["test_accuracy"] for row in rows]
    differences = [100 * (row["test_accuracy"] - base) for row, base in zip(rows, float_accuracies)]
    return {"test_accuracy": stats.summarize(accuracies), "difference_points": stats.summarize(differences)}


def bits_figure(document: dict) -> Figure:
    """Test accuracy against weight width: post-training and fine-tuned means with their 95% intervals,
    and the float32 networks' mean as a line."""
    figure = Figure(figsize=(PAGE_WIDTH, 3.2), layout="constrained")
    axes = figure.add_subplot()
    float32 = document["float32"]["test_accuracy"]["mean"] * 100
    axes.axhline(float32, color="black", linewidth=1, label=f"float32 ({float32:.2f}%)")
    for key, label, marker in (("post_training", "post-training", "o"), ("fine_tuned", "fine-tuned", "s")):
        rows = document["summary"][key]
        bits = [row["bits"] for row in rows]
        means = np.array([row["test_accuracy"]["mean"] for row in rows]) * 100
        intervals = [row["test_accuracy"]["ci95"] or [row["test_accuracy"]["mean"]] * 2 for row in rows]
        errors = np.abs(np.array(intervals).T * 100 - means)
        axes.errorbar(bits, means, yerr=errors, marker=marker, capsize=3, label=label, linestyle="none")
    axes.set_xscale("log", base=2)
    axes.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
    axes.set_xlabel("weight bits (activations 8 bits)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("Integer-only inference: accuracy against weight width, mean and 95% interval over seeds")
    axes.grid(True, alpha=0.3)
    axes.legend()
    return figure
