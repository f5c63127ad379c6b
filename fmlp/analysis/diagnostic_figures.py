"""Figures of the measurements in `fmlp.analysis.diagnostics`: functions of its JSON-ready results that return
matplotlib Figures (object-oriented API, as in `fmlp.analysis.plots`). `results` maps a network's name to its
`diagnostics.diagnose` dict. Each is drawn at its printed size, at most `plots.PAGE_WIDTH` wide."""

import numpy as np
from matplotlib.figure import Figure

from fmlp.analysis.plots import PAGE_WIDTH
from fmlp.description import Architecture


def _layer_histograms(results: dict[str, dict], key: str, xlabel: str, title: str) -> Figure:
    """One panel per hidden layer (as many as the deepest network has); each network that has the layer
    drawn as a step line of its histogram of `key`."""
    num_layers = max(len(result["saturation"]) for result in results.values())
    # Below each panel, a legend line per network: the histograms fill the panels.
    figure = Figure(figsize=(PAGE_WIDTH, 3.2 + 0.16 * len(results)), layout="constrained")
    figure.suptitle(title)
    if num_layers == 0:
        figure.text(0.5, 0.5, "no hidden layers: the networks are 784 → 10", ha="center", va="center")
        return figure
    for layer, axes in enumerate(np.atleast_1d(figure.subplots(1, num_layers))):
        for index, (name, result) in enumerate(results.items()):
            if layer >= len(result["saturation"]):
                continue
            measured = result["saturation"][layer]
            histogram = measured[key]
            share = np.asarray(histogram["counts"]) / max(sum(histogram["counts"]), 1)
            word = "inactive" if result.get("activation") == "relu" else "saturated"  # relu's outputs of 0
            axes.stairs(share, histogram["edges"], color=f"C{index}",
                        label=f"{name}: {measured['share_saturated']:.0%} {word}")  # fmt: skip
            axes.set_title(f"hidden layer {layer + 1} ({measured['units']} units)")
        axes.set_yscale("log")
        axes.set_xlabel(xlabel)
        axes.set_ylabel("share of all (image, unit) pairs")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return figure


def _activations(results: dict[str, dict]) -> set[str]:
    return {result.get("activation", Architecture().activation) for result in results.values()}


def saturation_figure(results: dict[str, dict]) -> Figure:
    """Histograms of the hidden outputs of each hidden layer over the test set."""
    if _activations(results) == {"sigmoid"}:
        return _layer_histograms(results, "histogram", "sigmoid output s",
                                 "Hidden activations on the test set (saturated: s < 0.05 or s > 0.95)")  # fmt: skip
    rules = "; ".join(sorted({f"{r.get('activation', 'sigmoid')}: {r['saturation'][0]['rule']}"
                              for r in results.values() if r["saturation"]}))  # fmt: skip
    return _layer_histograms(results, "histogram", "hidden output", f"Hidden activations (saturated: {rules})")


def derivative_figure(results: dict[str, dict]) -> Figure:
    """Histograms of the activation's derivative, the factor by which the backward pass scales each signal."""
    if _activations(results) == {"sigmoid"}:
        return _layer_histograms(results, "derivative_histogram", "s (1 - s)",
                                 "Sigmoid derivative on the test set (0.25 at most)")  # fmt: skip
    return _layer_histograms(results, "derivative_histogram", "derivative of the activation at its output",
                             "Derivative of the hidden activations on the test set")  # fmt: skip


def reliability_figure(results: dict[str, dict]) -> Figure:
    """Accuracy against mean confidence per confidence bin (the diagonal is perfect calibration)."""
    figure = Figure(figsize=(5.0, 4.4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfect calibration")
    for name, result in results.items():
        bins = [b for b in result["calibration"]["bins"] if b["count"]]
        axes.plot(
            [b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", markersize=4,
            label=f"{name}: ECE {result['calibration']['ece']:.2%}",
        )  # fmt: skip
    axes.set_xlabel("mean confidence in the bin (max probability)")
    axes.set_ylabel("accuracy in the bin")
    axes.set_title("Reliability on the test set, 15 equal-width bins")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def confusion_figure(name: str, result: dict) -> Figure:
    """The confusion matrix (counts, log colour scale) with every non-zero count written in its cell."""
    from matplotlib.colors import LogNorm

    matrix = np.asarray(result["confusion"])
    figure = Figure(figsize=(5.2, 4.5), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(np.maximum(matrix, 0.5), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=matrix.max()))
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if count > matrix.max() ** 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8, color=colour)
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title(f"{name}: confusion on the test set ({result['accuracy']:.2%} right)")
    figure.colorbar(image, ax=axes, label="images")
    return figure


def _image_grid(
    images: np.ndarray, captions: list[str], title: str, columns: int, cmap: str, symmetric: bool, scale: str = ""
) -> Figure:
    """Images in a grid of `columns`, each captioned; `scale`, a line under the title saying how colours
    read (a symmetric map scales each image to its own largest magnitude)."""
    rows = max(1, -(-len(images) // columns))
    cell, caption, heading, margin = PAGE_WIDTH / columns, 0.36, 0.4 + 0.2 * bool(scale), 0.05  # inches
    height = (cell + caption) * rows + heading
    figure = Figure(figsize=(PAGE_WIDTH, height))
    figure.suptitle(title if len(images) else f"{title}: none", y=1 - margin / height, va="top")
    if scale:
        figure.text(0.5, 1 - (margin + 0.3) / height, scale, ha="center", va="top", fontsize=8)
    # A regular grid of images without ticks has its layout known in advance: placed directly, not by the
    # constrained layout engine, which measures every axes' text and took most of a diagnosis's time.
    grid = {"left": margin / PAGE_WIDTH, "right": 1 - margin / PAGE_WIDTH, "bottom": margin / height,
            "top": 1 - (heading + caption) / height, "wspace": 2 * margin / cell, "hspace": caption / cell}  # fmt: skip
    for index, axes in enumerate(np.ravel(figure.subplots(rows, columns, gridspec_kw=grid))):
        axes.axis("off")
        if index < len(images):
            limit = np.abs(images[index]).max() if symmetric else None
            axes.imshow(images[index], cmap=cmap, vmin=-limit if symmetric else None, vmax=limit)
            axes.set_title(captions[index], fontsize=8)
    return figure


ERRORS_DRAWN = 18  # of the most confident errors diagnose.json lists: two rows of the figure
FEATURES_DRAWN = 16  # first-layer units of largest norm: two rows


def errors_figure(name: str, result: dict, test_images: np.ndarray) -> Figure:
    """The ERRORS_DRAWN test digits the network is most confidently wrong on; test_images uint8 (N, 28, 28)."""
    errors = result["confident_errors"][:ERRORS_DRAWN]
    captions = [f"{e['label']} → {e['prediction']}\n{e['probability']:.2%}" for e in errors]
    images = np.stack([test_images[e["index"]] for e in errors]) if errors else np.zeros((0, 28, 28))
    return _image_grid(
        images, captions, f"{name}: most confident errors (true → predicted, probability)", 9, "gray_r", False
    )


def features_figure(name: str, features: np.ndarray, units: np.ndarray) -> Figure:
    """First-layer weight vectors as 28 × 28 images (red positive, blue negative)."""
    captions = [f"unit {u}" for u in units]
    scale = "colour: red positive, white 0, blue negative; each unit scaled to its own largest |w|"
    return _image_grid(features, captions, f"{name}: first-layer weights of largest norm", 8, "RdBu_r", True, scale)
