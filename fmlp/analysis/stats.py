"""Summaries over seeds and the choice of learning rate and epoch on the validation split.

Pure functions over the "runs" of the metrics JSON (plain dicts), so the same code reads a fresh run
and a committed file. A run: {"learning_rate", "seed", "diverged_at_epoch", "final", "epochs": [...]},
each epoch {"epoch", "val_loss", "val_accuracy", "test_loss", "test_accuracy", ...}, None where not measured.
"""

import math
from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95


def t_quantile(n: int) -> float:
    """t(0.975, n - 1): the factor of std / √n in the 95% interval of a mean of n >= 2 values."""
    # scipy.special, not scipy.stats: the same quantile (stats.t.ppf calls stdtrit) at a third of the
    # import time; imported here, since a single run never needs it.
    from scipy import special

    return float(special.stdtrit(n - 1, 0.5 + CONFIDENCE / 2))


def half_width(std, n: int):
    """Half the 95% t-interval of a mean of n >= 2 values with sample std `std` (a number or an array)."""
    return t_quantile(n) * std / math.sqrt(n)


INTERVAL = "95% Student t interval of the mean over seeds: mean ± t(0.975, n − 1) · std / √n, std with n − 1"


def summarize(values: Sequence[float]) -> dict:
    """n, mean, std (ddof 1), min, max and the 95% t-interval of the mean of n values.

    std and the interval need n >= 2 and are None below; everything is None for n = 0.
    """
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "ci95": None}
    array = np.asarray(values, np.float64)
    mean = float(array.mean())
    std = float(array.std(ddof=1)) if n > 1 else None
    interval = None
    if std is not None:
        half = half_width(std, n)
        interval = [mean - half, mean + half]
    return {"n": n, "mean": mean, "std": std, "min": float(array.min()), "max": float(array.max()), "ci95": interval}


def by_rate(runs: Sequence[dict]) -> dict[float, list[dict]]:
    """Runs grouped by learning rate, in their first-seen order."""
    groups: dict[float, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["learning_rate"], []).append(run)
    return groups


def best_epoch(epochs: Sequence[dict]) -> dict | None:
    """The epoch record of the highest validation accuracy (ties: lower validation loss); None without
    validation. The same rule picks the parameters that early stopping keeps."""
    measured = [e for e in epochs if e["val_accuracy"] is not None]
    return max(measured, key=lambda e: (e["val_accuracy"], -e["val_loss"])) if measured else None


def early_stopped(epochs: Sequence[dict], patience: int) -> tuple[int, dict]:
    """Early stopping replayed on a run's recorded epochs, by the rule the lanes apply while training:
    an epoch improves on the best when its validation accuracy is higher (ties: lower validation loss);
    the run stops after `patience` epochs without improvement and keeps its best epoch's parameters.
    -> (the epoch it stops after, the kept epoch's record). A run that never runs out of patience ends at
    its last epoch. Exact for a run trained without stopping, since a lane's epochs do not depend on
    when it would have stopped."""
    best, since = None, 0
    for epoch in epochs:
        if best is None or (epoch["val_accuracy"], -epoch["val_loss"]) > (best["val_accuracy"], -best["val_loss"]):
            best, since = epoch, 0
        else:
            since += 1
            if since >= patience:
                return epoch["epoch"], best
    return epochs[-1]["epoch"], best


def best_val_accuracy(run: dict) -> float | None:
    """The run's highest validation accuracy over its epochs; None without validation."""
    best = best_epoch(run["epochs"])
    return None if best is None else best["val_accuracy"]


def summary(runs: Sequence[dict]) -> list[dict]:
    """Per learning rate, over its seeds: the final test accuracy and the best validation accuracy.

    Diverged runs are counted, not averaged: they have no final accuracy.
    """
    rows = []
    for rate, group in by_rate(runs).items():
        finals = [run["final"]["test_accuracy"] for run in group if run["final"]["test_accuracy"] is not None]
        best_vals = [value for value in map(best_val_accuracy, group) if value is not None]
        rows.append(
            {
                "learning_rate": rate,
                "seeds": [run["seed"] for run in group],
                "diverged": sum(run["diverged_at_epoch"] is not None for run in group),
                "final_test_accuracy": summarize(finals),
                "best_val_accuracy": summarize(best_vals) if best_vals else None,
            }
        )
    return rows


def _epoch_means(group: Sequence[dict], epoch: int) -> tuple[float, float, list[float]] | None:
    """Mean validation accuracy and loss over the group's seeds at one epoch, and the test accuracies;
    None unless every seed has a validation measurement at that epoch."""
    records = [run["epochs"][epoch - 1] if epoch <= len(run["epochs"]) else None for run in group]
    if any(r is None or r["val_accuracy"] is None or r["test_accuracy"] is None for r in records):
        return None
    return (
        float(np.mean([r["val_accuracy"] for r in records])),
        float(np.mean([r["val_loss"] for r in records])),
        [r["test_accuracy"] for r in records],
    )


def epochs_to_reach(runs: Sequence[dict], rate: float, threshold: float) -> list[int | None]:
    """For each seed of `rate`, the first epoch whose validation accuracy reaches `threshold`; None
    for a seed that never does."""
    return [
        next((e["epoch"] for e in run["epochs"] if (e["val_accuracy"] or 0.0) >= threshold), None)
        for run in by_rate(runs)[rate]
    ]


def select_kept(runs: Sequence[dict]) -> dict | None:
    """With early stopping: the learning rate whose seeds' kept (best-by-validation) parameters have the
    highest mean validation accuracy (ties: lower mean validation loss), and the mean test accuracy of
    those parameters. Each seed keeps its own epoch, listed in "epochs"."""
    best = None
    for rate, group in by_rate(runs).items():
        kept = [best_epoch(run["epochs"]) for run in group]
        if any(k is None for k in kept) or any(run["final"]["test_accuracy"] is None for run in group):
            continue
        rank = (float(np.mean([k["val_accuracy"] for k in kept])), -float(np.mean([k["val_loss"] for k in kept])))
        if best is None or rank > best[0]:
            best = (rank, rate, group)
    if best is None:
        return None
    (val_accuracy, negative_loss), rate, group = best
    test = summarize([run["final"]["test_accuracy"] for run in group])
    return {
        "learning_rate": rate,
        "epoch": None,
        "epochs": [run["final"]["epoch"] for run in group],
        "val_accuracy": val_accuracy,
        "val_loss": -negative_loss,
        "test_accuracy": test["mean"],
        "test_accuracy_ci95": test["ci95"],
        "seeds": test["n"],
    }


def select(runs: Sequence[dict]) -> dict | None:
    """The learning rate and epoch with the highest mean validation accuracy over seeds (ties: lower mean
    validation loss), and the test accuracy of that one choice. None without validation measurements."""
    best = None
    for rate, group in by_rate(runs).items():
        for epoch in range(1, max(len(run["epochs"]) for run in group) + 1):
            means = _epoch_means(group, epoch)
            if means is None:
                continue
            rank = (means[0], -means[1])
            if best is None or rank > best[0]:
                best = (rank, rate, epoch, means)
    if best is None:
        return None
    _, rate, epoch, (val_accuracy, val_loss, test_accuracies) = best
    test = summarize(test_accuracies)
    return {
        "learning_rate": rate,
        "epoch": epoch,
        "val_accuracy": val_accuracy,
        "val_loss": val_loss,
        "test_accuracy": test["mean"],
        "test_accuracy_ci95": test["ci95"],
        "seeds": test["n"],
    }
