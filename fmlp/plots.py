"""Figures of training curves: functions that return matplotlib Figures, and an atomic PNG save.

Uses the object-oriented API only (no pyplot state), so figures can be built anywhere, even in
threads, and nothing is shown or kept alive behind the caller's back.
"""

import os
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fmlp.io import atomic_path


def _epochs_axes(title: str, ylabel: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _series(epochs: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(epoch numbers, values) of one metric, leaving out epochs where it is None (diverged)."""
    kept = [e for e in epochs if e[key] is not None]
    return [e["epoch"] for e in kept], [e[key] for e in kept]


def _run_label(run: dict) -> str:
    label = f"lr = {run['learning_rate']:g}"
    if run["diverged_at_epoch"] is not None:
        label += f" (diverged at epoch {run['diverged_at_epoch']})"
    return label


def loss_figure(run: dict, title: str) -> Figure:
    """Train and test loss of one run over epochs. run: an entry of the metrics JSON's "runs"."""
    figure, axes = _epochs_axes(title, "mean cross-entropy")
    axes.plot(
        *_series(run["epochs"], "train_loss"), marker="o", markersize=3, label="train (mean over the epoch's batches)"
    )
    axes.plot(*_series(run["epochs"], "test_loss"), marker="o", markersize=3, label="test (after the epoch)")
    axes.legend()
    return figure


def accuracy_figure(runs: Sequence[dict], title: str) -> Figure:
    """Test accuracy (percent) over epochs, one line per run."""
    figure, axes = _epochs_axes(title, "test accuracy (%)")
    for run in runs:
        epochs, accuracies = _series(run["epochs"], "test_accuracy")
        axes.plot(epochs, [100 * a for a in accuracies], marker="o", markersize=3, label=_run_label(run))
    axes.legend()
    return figure


def sweep_loss_figure(runs: Sequence[dict], title: str) -> Figure:
    """Test loss (solid) and train loss (dashed) over epochs, one colour per run, log scale."""
    figure, axes = _epochs_axes(title, "mean cross-entropy (log scale)")
    axes.set_yscale("log")
    for index, run in enumerate(runs):
        colour = f"C{index}"
        axes.plot(*_series(run["epochs"], "test_loss"), color=colour, label=_run_label(run))
        axes.plot(*_series(run["epochs"], "train_loss"), color=colour, linestyle="--")
    axes.plot([], [], color="gray", label="test loss (solid)")
    axes.plot([], [], color="gray", linestyle="--", label="train loss (dashed)")
    axes.legend(fontsize="small")
    return figure


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Writes figure to path as PNG through a temporary file, so a reader never sees half an image."""
    with atomic_path(path) as temp_path:
        figure.savefig(temp_path, format="png", dpi=120)
