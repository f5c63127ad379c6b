"""The training curves: whole epochs on the epoch axis, for short runs and long ones."""

import pytest

from fmlp.analysis import plots


def record(epoch: int, rate: float) -> dict:
    """One epoch's record of a run at `rate`, with plausible losses and accuracies and no validation."""
    return {"epoch": epoch, "train_loss": rate / epoch, "test_loss": rate / epoch + 0.01, "val_loss": None,
            "test_accuracy": 1 - rate / (epoch + 1), "train_accuracy": 1 - rate / (epoch + 2),
            "val_accuracy": None}  # fmt: skip


def runs(epochs: int) -> list[dict]:
    """Two rates' run records of `epochs` epochs."""
    return [{"learning_rate": rate, "seed": 1, "diverged_at_epoch": None,
             "epochs": [record(epoch, rate) for epoch in range(1, epochs + 1)]} for rate in (0.5, 0.1)]  # fmt: skip


FIGURES = {
    "accuracy": plots.accuracy_figure,
    "loss of one rate": lambda runs, title: plots.loss_figure(runs[:1], title, "cross-entropy"),
    "loss by rate": lambda runs, title: plots.sweep_loss_figure(runs, title, "cross-entropy"),
}


@pytest.mark.parametrize("figure", FIGURES.values(), ids=FIGURES.keys())
@pytest.mark.parametrize("epochs, step", [(2, 1), (3, 1), (30, 5)])
def test_the_epoch_axis_has_whole_epochs_only(figure, epochs, step):
    for axes in figure(runs(epochs), "title").axes:
        ticks = axes.get_xticks()
        assert all(tick == int(tick) for tick in ticks) and all((b - a) == step for a, b in zip(ticks, ticks[1:]))


def test_a_band_of_two_seeds_stays_within_what_an_accuracy_and_a_loss_can_be():
    """A Student t interval of two seeds is wide (t(0.975, 1) = 12.7): drawn as it is, it left [0, 1]."""
    pairs = ((0.99, 0.01), (0.95, 0.3))
    group = [{"epochs": [{"test_accuracy": accuracy, "test_loss": loss}]} for accuracy, loss in pairs]
    _, mean, low, high = plots.mean_band(group, "test_accuracy")
    assert low[0] >= 0 and high[0] == 1.0 and low[0] < mean[0] < high[0]
    _, mean, low, high = plots.mean_band(group, "test_loss")
    assert low[0] == 0.0 and high[0] > mean[0]
