"""Measurements of a trained network's insides: saturation, calibration, errors and features.

One chunked, compiled forward pass (`mlp.forward`) gives every hidden activation and the output
probabilities; everything else is a small numpy function of those arrays. Shapes: N test images,
H_l units in hidden layer l, C = 10 classes.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from fmlp.description import EVAL_CHUNK
from fmlp.nn import mlp

SATURATION = 0.05  # a sigmoid output below this or above 1 minus this is saturated
TANH_SATURATION = 0.9  # a tanh output beyond this in magnitude is saturated
UNIT_SATURATED_SHARE = 0.95  # a unit saturated on at least this share of the images is a saturated unit
CALIBRATION_BINS = 15


class Pass(NamedTuple):
    """What one forward pass over a split yields, on the host."""

    hidden: tuple[np.ndarray, ...]  # the activation's outputs of each hidden layer, (N, H_l)
    probs: np.ndarray  # (N, C)


class Rule(NamedTuple):
    """How saturation shows in one activation's outputs a."""

    saturated: Callable[[np.ndarray], np.ndarray]  # a -> bool, where the unit passes (almost) no gradient
    derivative: Callable[[np.ndarray], np.ndarray]  # a -> the factor by which the backward pass scales the signal
    output_range: tuple[float, float] | None  # None: unbounded above, the histogram spans the outputs
    derivative_range: tuple[float, float]
    text: str


RULES = {
    "sigmoid": Rule(lambda s: (s < SATURATION) | (s > 1 - SATURATION), lambda s: s * (1 - s), (0.0, 1.0), (0.0, 0.25),
                    f"s < {SATURATION} or s > {1 - SATURATION}"),
    "tanh": Rule(lambda t: np.abs(t) > TANH_SATURATION, lambda t: 1 - t * t, (-1.0, 1.0), (0.0, 1.0),
                 f"|t| > {TANH_SATURATION}"),
    "relu": Rule(lambda a: a == 0, lambda a: (a > 0).astype(a.dtype), None, (0.0, 1.0), "a = 0 (inactive)"),
}  # fmt: skip


@functools.partial(jax.jit, static_argnums=0)
def _forward(
    architecture: mlp.Architecture, params: mlp.Params, images: jax.Array
) -> tuple[tuple[jax.Array, ...], jax.Array]:
    probs, activations = mlp.forward(architecture, params, images)
    return activations[1:-1], probs


def forward_pass(
    architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, chunk_size: int = EVAL_CHUNK
) -> Pass:
    """Hidden activations and probabilities of images (N, D), chunk by chunk so memory stays flat."""
    pieces = [_forward(architecture, params, images[start : start + chunk_size])
              for start in range(0, images.shape[0], chunk_size)]  # fmt: skip
    hidden = tuple(np.concatenate([np.asarray(p[0][layer]) for p in pieces]) for layer in range(len(params) - 1))
    return Pass(hidden, np.concatenate([np.asarray(p[1]) for p in pieces]))


def saturation(activations: np.ndarray, activation: str = "sigmoid", bins: int = 20) -> dict:
    """Saturation of one hidden layer from its outputs a (N, H), by the activation's rule (RULES).

    share_saturated: the fraction of all outputs that are saturated (sigmoid: s < 0.05 or s > 0.95; tanh:
    |t| > 0.9; relu: exactly 0, inactive); share_units_saturated: the fraction of units saturated on at
    least 95% of the images; the histogram of a over the activation's whole range (relu's up to its
largest output), and
    the histogram of the derivative, the factor by which the backward pass scales each unit's signal.
    """
    rule = RULES[activation]
    saturated = rule.saturated(activations)
    derivative = rule.derivative(activations)
    # relu's outputs have no upper bound: its histogram spans what the layer gave (and at least [0, 1]).
    output_range = rule.output_range or (0.0, max(float(activations.max(initial=0.0)), 1.0))
    counts, edges = np.histogram(activations, bins=bins, range=output_range)
    derivative_counts, derivative_edges = np.histogram(derivative, bins=bins, range=rule.derivative_range)
    return {
        "units": activations.shape[1],
        "rule": rule.text,
        "share_saturated": float(saturated.mean()),
        "share_units_saturated": float((saturated.mean(axis=0) >= UNIT_SATURATED_SHARE).mean()),
        "mean_derivative": float(derivative.mean()),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        "derivative_histogram": {"edges": derivative_edges.tolist(), "counts": derivative_counts.tolist()},
    }


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Reliability of the confidences p_max = max_k p_k of probs (N, C) against labels (N,).

    ECE = sum over equal-width confidence bins b of (n_b / N) |accuracy_b - confidence_b|.
    """
    confidence = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)  # bin b holds [b/bins, (b+1)/bins)
    rows = []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": count,
                "accuracy": float(right[members].mean()) if count else None,
                "confidence": float(confidence[members].mean()) if count else None,
            }
        )
    ece = sum(r["count"] / len(labels) * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"])
    return {
        "ece": float(ece),
        "bins": rows,
        "mean_confidence_right": float(confidence[right].mean()) if right.any() else None,
        "mean_confidence_wrong": float(confidence[~right].mean()) if (~right).any() else None,
    }


def confusion(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    num_classes = probs.shape[1]
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, probs.argmax(axis=1)), 1)
    return matrix


def confident_errors(probs: np.ndarray, labels: np.ndarray, count: int = 36) -> list[dict]:
    """The `count` wrong answers with the highest predicted probability, most confident first."""
    predictions = probs.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    order = wrong[np.argsort(-probs[wrong, predictions[wrong]], kind="stable")][:count]
    return [
        {
            "index": int(i),
            "label": int(labels[i]),
            "prediction": int(predictions[i]),
            "probability": float(probs[i, predictions[i]]),
        }
        for i in order
    ]


def strongest_features(first_layer_weights: np.ndarray, count: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The first layer's weight vectors w[:, j] (D,) of largest norm, as (count, 28, 28) images, and their units."""
    norms = np.linalg.norm(first_layer_weights, axis=0)
    units = np.argsort(-norms, kind="stable")[:count]
    return first_layer_weights[:, units].T.reshape(-1, 28, 28), units


FRAME = 4  # pixels: MNIST's digits are centred in the middle 20 x 20 of the 28 x 28 image


def first_layer_by_region(first_layer_weights: np.ndarray, frame: int = FRAME) -> dict:
    """Mean |w| of the first layer (784, H) over the pixels of the outer frame of the 28 x 28 image and
    over the rest, the centre where the digits are."""
    magnitude = np.abs(first_layer_weights).reshape(28, 28, -1)
    centre = np.zeros((28, 28), bool)
    centre[frame:-frame, frame:-frame] = True
    return {"frame_pixels": frame, "border_mean_abs": float(magnitude[~centre].mean()),
            "centre_mean_abs": float(magnitude[centre].mean())}  # fmt: skip


def diagnose(architecture: mlp.Architecture, params: mlp.Params, images: jax.Array, labels: np.ndarray) -> dict:
    """Every measurement of one network on one split, JSON-ready (the worst errors by test index)."""
    result = forward_pass(architecture, params, images)
    matrix = confusion(result.probs, labels)
    per_class = np.diag(matrix) / matrix.sum(axis=1)
    return {
        "accuracy": float(np.trace(matrix) / matrix.sum()),
        "activation": architecture.activation,
        "saturation": [saturation(layer, architecture.activation) for layer in result.hidden],
        "calibration": calibration(result.probs, labels),
        "confusion": matrix.tolist(),
        "per_class_accuracy": per_class.tolist(),
        "confident_errors": confident_errors(result.probs, labels),
        "first_layer": first_layer_by_region(np.asarray(params[0].w)),
    }
