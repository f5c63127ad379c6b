"""Figures of training curves: functions that return matplotlib Figures, and an atomic PNG save.

Every figure is drawn at the size it is printed in the hand-in (PAGE_WIDTH inches wide, the A4 text
width), so that its text prints at its own point size, never below 8 pt; panels are stacked, not put
side by side. Uses the object-oriented API only (no pyplot state), so figures can be built anywhere, even in
threads, and nothing is shown or kept alive behind the caller's back. Runs are entries of the metrics
JSON's "runs"; runs that share a learning rate (several seeds) are drawn as their mean over seeds with
the 95% t-interval of the mean as a shaded band.
"""

import os
from collections.abc import Sequence

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from fmlp.analysis.stats import by_rate, half_width
from fmlp.files import atomic_path

PAGE_WIDTH = 6.6  # inches: the report's text width (170 mm) less a margin
DPI = 200


def _style(axes: Axes, title: str | None, ylabel: str) -> None:
    if title:
        axes.set_title(title)
    axes.set_xlabel("epoch")
    # whole epochs only: a run of a few epochs would otherwise get ticks at 1.25, 1.5, ... (the steps are
    # matplotlib's default ones, so longer runs keep their ticks)
    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3, which="both")


def mean_band(group: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch where every run of the group has `key`: (epochs, mean, low, high) over the runs, the
    band being the 95% t-interval of the mean (equal to the mean for a single run), cut where it passes
    what the quantity can be (an accuracy in [0, 1], a loss at least 0): a t interval of two or three
    seeds knows no bounds."""
    length = min(len(run["epochs"]) for run in group)
    rows = [[run["epochs"][i][key] for run in group] for i in range(length)]
    kept = [(i + 1, row) for i, row in enumerate(rows) if all(v is not None for v in row)]
    if not kept:
        return (np.array([]),) * 4
    epochs = np.array([epoch for epoch, _ in kept])
    values = np.array([row for _, row in kept], np.float64)
    mean = values.mean(axis=1)
    if len(group) < 2:
        return epochs, mean, mean, mean
    half = half_width(values.std(axis=1, ddof=1), len(group))
    ceiling = 1.0 if key.endswith("accuracy") else np.inf
    return epochs, mean, np.clip(mean - half, 0.0, ceiling), np.clip(mean + half, 0.0, ceiling)


def _rate_label(rate: float, group: Sequence[dict]) -> str:
    label = f"lr = {rate:g}"
    diverged = [run["diverged_at_epoch"] for run in group if run["diverged_at_epoch"] is not None]
    if diverged and len(group) == 1:
        label += f" (diverged at epoch {diverged[0]})"
    elif diverged:
        label += f" ({len(diverged)} of {len(group)} seeds diverged)"
    return label


def _plot_rates(axes: Axes, runs: Sequence[dict], key: str, scale: float = 1.0, linestyle="-", label=True) -> None:
    """One line per learning rate (the mean over its seeds) with its band, coloured by rate."""
    for index, (rate, group) in enumerate(by_rate(runs).items()):
        epochs, mean, low, high = mean_band(group, key)
        colour = f"C{index}"
        axes.plot(
            epochs, scale * mean, color=colour, linestyle=linestyle, marker="o" if linestyle == "-" else None,
            markersize=3, label=_rate_label(rate, group) if label else None,
        )  # fmt: skip
        if len(group) > 1:
            axes.fill_between(epochs, scale * low, scale * high, color=colour, alpha=0.2, linewidth=0)


def _seeds_note(runs: Sequence[dict]) -> str:
    seeds = max(len(group) for group in by_rate(runs).values())
    return f"\nmean of {seeds} seeds, band: 95% interval of the mean" if seeds > 1 else ""


def loss_figure(runs: Sequence[dict], title: str, loss: str) -> Figure:
    """Train, validation (if measured) and test loss over epochs of one learning rate (mean over seeds)."""
    figure = Figure(figsize=(PAGE_WIDTH, 3.3), layout="constrained")
    axes = figure.add_subplot()
    _style(axes, title + _seeds_note(runs), f"mean {loss}")
    for index, (key, label) in enumerate(
        [("train_loss", "train (mean over the epoch's batches)"), ("val_loss", "validation (after the epoch)"),
         ("test_loss", "test (after the epoch)")]
    ):  # fmt: skip
        epochs, mean, low, high = mean_band(runs, key)
        if len(epochs):
            axes.plot(epochs, mean, marker="o", markersize=3, color=f"C{index}", label=label)
            if len(runs) > 1:
                axes.fill_between(epochs, low, high, color=f"C{index}", alpha=0.2, linewidth=0)
    if axes.get_lines():
        axes.legend()
    return figure


def accuracy_figure(runs: Sequence[dict], title: str) -> Figure:
    """Test accuracy (%) over epochs, one line per learning rate, and below it the test error (%) on a
    log scale, where rates that overlap near 98% accuracy come apart."""
    figure = Figure(figsize=(PAGE_WIDTH, 4.8), layout="constrained")
    accuracy_axes, error_axes = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title + _seeds_note(runs))
    _style(accuracy_axes, "test accuracy", "test accuracy (%)")
    _style(error_axes, "test error, log scale", "test error (%)")
    accuracy_axes.set_xlabel("")  # the panels share the epoch axis, labelled once below
    _plot_rates(accuracy_axes, runs, "test_accuracy", 100.0)
    error_runs = [
        run | {"epochs": [e | {"test_error": None if e["test_accuracy"] is None else 1 - e["test_accuracy"]}
                          for e in run["epochs"]]}
        for run in runs
    ]  # fmt: skip
    _plot_rates(error_axes, error_runs, "test_error", 100.0)
    if any(y > 0 for line in error_axes.get_lines() for y in line.get_ydata()):
        error_axes.set_yscale("log")
        # Label 1, 2, 5, 10, 20, 50: a decade per label is too coarse to read errors near 2%.
        error_axes.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        error_axes.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        error_axes.yaxis.set_minor_formatter(ticker.NullFormatter())
    figure.legend(*accuracy_axes.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize="small")
    return figure


def sweep_loss_figure(runs: Sequence[dict], title: str, loss: str) -> Figure:
    """Test loss (solid) and train loss (dashed) over epochs, one colour per learning rate, log scale."""
    figure = Figure(figsize=(PAGE_WIDTH, 3.6), layout="constrained")
    axes = figure.add_subplot()
    _style(axes, title + _seeds_note(runs), f"mean {loss} (log scale)")
    axes.set_yscale("log")
    _plot_rates(axes, runs, "test_loss")
    _plot_rates(axes, runs, "train_loss", linestyle="--", label=False)
    axes.plot([], [], color="gray", label="test loss (solid)")
    axes.plot([], [], color="gray", linestyle="--", label="train loss (dashed)")
    figure.legend(loc="outside lower center", ncols=5, fontsize="small")  # below the axes: the curves fill them
    return figure


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Writes figure to path as PNG through a temporary file, so a reader never sees half an image."""
    with atomic_path(path) as temp_path:
        figure.savefig(temp_path, format="png", dpi=DPI)
