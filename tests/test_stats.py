"""Summaries over seeds and the validation choice, against numpy and scipy computed directly."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fmlp.analysis import stats


def run(rate, seed, val_accuracies, test_accuracies, val_losses=None, diverged=None):
    val_losses = val_losses or [1.0] * len(val_accuracies)
    epochs = [
        {"epoch": i + 1, "val_accuracy": va, "val_loss": vl, "test_accuracy": ta, "test_loss": 0.1}
        for i, (va, vl, ta) in enumerate(zip(val_accuracies, val_losses, test_accuracies))
    ]
    final = None if diverged else test_accuracies[-1]
    return {"learning_rate": rate, "seed": seed, "diverged_at_epoch": diverged, "epochs": epochs,
            "final": {"test_accuracy": final}}  # fmt: skip


def test_summarize_matches_numpy_and_scipy():
    values = [0.981, 0.9842, 0.9838, 0.9855, 0.9821]
    summary = stats.summarize(values)
    mean, std = np.mean(values), np.std(values, ddof=1)
    low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=scipy_stats.sem(values))
    assert summary["n"] == 5
    assert summary["mean"] == pytest.approx(mean, rel=1e-12) and summary["std"] == pytest.approx(std, rel=1e-12)
    assert summary["min"] == min(values) and summary["max"] == max(values)
    assert summary["ci95"] == pytest.approx([low, high], rel=1e-12)


def test_summarize_with_one_or_no_value():
    assert stats.summarize([0.5]) == {"n": 1, "mean": 0.5, "std": None, "min": 0.5, "max": 0.5, "ci95": None}
    assert stats.summarize([])["mean"] is None


def test_summary_per_rate_counts_diverged_seeds_apart():
    runs = [
        run(1.0, 1, [0.5, 0.9], [0.5, 0.8]),
        run(1.0, 2, [0.5, 0.7], [0.5, 0.6], diverged=2),
        run(0.1, 1, [0.3, 0.4], [0.3, 0.35]),
        run(0.1, 2, [0.3, 0.6], [0.3, 0.45]),
    ]
    first, second = stats.summary(runs)
    assert first["learning_rate"] == 1.0 and first["seeds"] == [1, 2] and first["diverged"] == 1
    assert first["final_test_accuracy"]["n"] == 1 and first["final_test_accuracy"]["mean"] == 0.8
    assert second["final_test_accuracy"]["mean"] == pytest.approx(0.4)
    assert second["best_val_accuracy"]["mean"] == pytest.approx(0.5)


def test_select_takes_the_best_mean_validation_accuracy_and_reports_its_test_accuracy():
    runs = [
        run(1.0, 1, [0.80, 0.90, 0.85], [0.70, 0.88, 0.99]),
        run(1.0, 2, [0.82, 0.92, 0.95], [0.72, 0.90, 0.99]),
        run(0.1, 1, [0.60, 0.91, 0.91], [0.60, 0.80, 0.81]),
        run(0.1, 2, [0.60, 0.91, 0.91], [0.60, 0.80, 0.81]),
    ]
    selected = stats.select(runs)
    # Means: lr 1 epoch 3 = 0.90, epoch 2 = 0.91; lr 0.1 epochs 2 and 3 = 0.91 (ties broken by the loss).
    assert selected["learning_rate"] in (1.0, 0.1) and selected["val_accuracy"] == pytest.approx(0.91)


def test_select_breaks_ties_by_the_lower_validation_loss():
    runs = [
        run(1.0, 1, [0.9, 0.9], [0.5, 0.6], val_losses=[0.30, 0.20]),
        run(0.1, 1, [0.9, 0.8], [0.7, 0.8], val_losses=[0.25, 0.10]),
    ]
    selected = stats.select(runs)
    assert (selected["learning_rate"], selected["epoch"], selected["test_accuracy"]) == (1.0, 2, 0.6)


def test_select_skips_epochs_some_seed_did_not_measure_and_needs_validation():
    runs = [run(1.0, 1, [0.5, 0.99], [0.5, 0.9]), run(1.0, 2, [0.6, None], [0.6, None])]
    assert stats.select(runs)["epoch"] == 1
    assert stats.select([run(1.0, 1, [None], [0.5])]) is None


def test_epochs_to_reach_is_each_seeds_first_epoch_there():
    runs = [run(1.0, 1, [0.5, 0.97, 0.99], [0.5, 0.9, 0.9]), run(1.0, 2, [0.6, 0.99, None], [0.6, 0.9, None])]
    assert stats.epochs_to_reach(runs, 1.0, 0.98) == [3, 2]
    assert stats.epochs_to_reach(runs, 1.0, 0.995) == [None, None]


def test_select_kept_compares_each_seeds_best_parameters():
    # lr 1: seeds peak at 0.95 and 0.97 (epochs 1 and 2); lr 0.1 peaks at 0.955 for both.
    runs = [
        run(1.0, 1, [0.95, 0.90], [0.94, 0.89]),
        run(1.0, 2, [0.93, 0.97], [0.92, 0.96]),
        run(0.1, 1, [0.90, 0.955], [0.89, 0.95]),
        run(0.1, 2, [0.955, None], [0.97, None]),
    ]
    for r in runs:  # early stopping keeps the best epoch's parameters
        best = max((e for e in r["epochs"] if e["val_accuracy"] is not None), key=lambda e: e["val_accuracy"])
        r["final"] = {"epoch": best["epoch"], "test_accuracy": best["test_accuracy"]}
    selected = stats.select_kept(runs)
    assert selected["learning_rate"] == 1.0 and selected["epochs"] == [1, 2]
    assert selected["val_accuracy"] == pytest.approx(0.96) and selected["test_accuracy"] == pytest.approx(0.95)
