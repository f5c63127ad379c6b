"""What the exercise sheet asks of the learning-rate sweep, and how a design departs from it."""

from fmlp.description import Experiment

RATES_AT_LEAST = 5  # "choose at least five learning rates between 1. and 0.001"
RATE_RANGE = (0.001, 1.0)
EPOCHS = 30  # "train it on MNIST for 30 epochs"


def departures(sweep: Experiment) -> list[str]:
    """How the sweep's design departs from the sheet, each as a phrase ("3 epochs, not 30"); none for
    the sheet's own design."""
    rates = sweep.design.learning_rates
    low, high = RATE_RANGE
    found = []
    if len(rates) < RATES_AT_LEAST:
        found.append(f"{len(rates)} learning rate{'s' * (len(rates) != 1)}, not at least {RATES_AT_LEAST}")
    outside = [rate for rate in rates if not low <= rate <= high]
    if outside:
        found.append(f"learning rate{'s' * (len(outside) > 1)} {', '.join(f'{r:g}' for r in outside)} outside "
                     f"[{low:g}, {high:g}]")  # fmt: skip
    if sweep.training.epochs != EPOCHS:
        epochs = sweep.training.epochs
        found.append(f"{epochs} epoch{'s' * (epochs != 1)}, not {EPOCHS}")
    return found
