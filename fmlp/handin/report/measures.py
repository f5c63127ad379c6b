"""The quantities the report's prose quotes and the predicates that choose its sentences, each a small
function of the recorded results (a metrics JSON's run, or a whole JSON), so that every number and
every claim of the text is computed from the result it describes.

A run is one entry of a metrics JSON's "runs": its "learning_rate", "seed", "diverged_at_epoch" and
"epochs", a list of per-epoch records ("epoch", "train_loss", "test_loss", "test_accuracy", ...; null
after a divergence). A sweep is a whole metrics JSON of lr_sweep.py.
"""

import math
from collections.abc import Sequence

from fmlp.analysis import stats

RISE = 0.05  # a test loss "turns up" when it ends more than 5% above its minimum
CLOSE = 0.05  # train and test losses "almost equal" within 5% of the test loss
TAIL = 5  # epochs over which "the last epochs" measure a trend
UNIFORM_LOSS = math.log(10)  # the cross-entropy of a uniform guess over ten classes


def measured(run: dict) -> list[dict]:
    """The run's epoch records up to its divergence (those with a test loss)."""
    return [epoch for epoch in run["epochs"] if epoch["test_loss"] is not None]


def final(run: dict) -> dict:
    """The run's last measured epoch record."""
    return measured(run)[-1]


def at(run: dict, epoch: int) -> dict:
    """The run's record of `epoch` (1-based); IndexError past its last."""
    return run["epochs"][epoch - 1]


def best(run: dict, key: str = "test_accuracy") -> dict:
    """The measured epoch record with the highest `key` (the first such epoch on a tie)."""
    return max(measured(run), key=lambda epoch: epoch[key])


def lowest(run: dict, key: str = "test_loss") -> dict:
    """The measured epoch record with the lowest `key` (the first such epoch on a tie)."""
    return min(measured(run), key=lambda epoch: epoch[key])


def milestones(run: dict) -> list[int]:
    """The epochs a text quotes for a curve: 1, 5, 10, 20 and the last, those the run has."""
    last = final(run)["epoch"]
    return sorted({epoch for epoch in (1, 5, 10, 20, last) if epoch <= last})


def run_of(sweep: dict, rate: float, seed: int | None = None) -> dict:
    """The run of the sweep at `rate` and `seed` (default: the sweep's first seed)."""
    seed = sweep["runs"][0]["seed"] if seed is None else seed
    return next(run for run in sweep["runs"] if run["learning_rate"] == rate and run["seed"] == seed)


def rates(sweep: dict) -> list[float]:
    """The sweep's learning rates, largest first."""
    return sorted({run["learning_rate"] for run in sweep["runs"]}, reverse=True)


def first_seed_runs(sweep: dict) -> list[dict]:
    """One run per rate, of the sweep's first seed, largest rate first."""
    return [run_of(sweep, rate) for rate in rates(sweep)]


def diverged(runs: Sequence[dict]) -> list[dict]:
    """The runs that diverged."""
    return [run for run in runs if run["diverged_at_epoch"] is not None]


def trained(runs: Sequence[dict]) -> list[dict]:
    """The runs that did not diverge."""
    return [run for run in runs if run["diverged_at_epoch"] is None]


def train_below_test_from(run: dict) -> int | None:
    """The first epoch from which the train loss stays below the test loss to the end; None when it is
    not below at the last epoch."""
    epochs = measured(run)
    start = None
    for epoch in epochs:
        if epoch["train_loss"] < epoch["test_loss"]:
            start = epoch["epoch"] if start is None else start
        else:
            start = None
    return start


def slope(run: dict, key: str = "test_accuracy", epochs: int = TAIL) -> float:
    """The mean change of `key` per epoch over the run's last `epochs` epochs (0 for a run of one epoch)."""
    tail = measured(run)[-epochs:]
    return 0.0 if len(tail) < 2 else (tail[-1][key] - tail[0][key]) / (len(tail) - 1)


def turns_up(run: dict, key: str = "test_loss") -> bool:
    """Whether `key` ends more than RISE above its minimum: it turned up after it."""
    return final(run)[key] > (1 + RISE) * lowest(run, key)[key]


def still_falling(run: dict, key: str = "test_loss") -> bool:
    """Whether `key` is lowest at the run's last epoch."""
    return lowest(run, key)["epoch"] == final(run)["epoch"]


def still_rising(run: dict, key: str = "test_accuracy") -> bool:
    """Whether `key` is highest at the run's last epoch."""
    return best(run, key)["epoch"] == final(run)["epoch"]


def losses_close(run: dict) -> bool:
    """Whether the final train and test losses are within CLOSE of the test loss: the run underfits."""
    last = final(run)
    return abs(last["train_loss"] - last["test_loss"]) <= CLOSE * last["test_loss"]


def order_broken_at(runs: Sequence[dict], key: str = "test_accuracy") -> int | None:
    """The first epoch at which a larger rate is not better in `key` than every smaller one; None when
    the order of the rates holds at every epoch. runs: one per rate, not diverged."""
    ordered = sorted(trained(runs), key=lambda run: -run["learning_rate"])
    for index in range(min(len(measured(run)) for run in ordered) if ordered else 0):
        values = [run["epochs"][index][key] for run in ordered]
        if any(larger <= smaller for larger, smaller in zip(values, values[1:])):
            return index + 1
    return None


def ranked(runs: Sequence[dict], key: str = "test_accuracy", epoch: int | None = None) -> list[dict]:
    """The runs that did not diverge, the highest `key` at `epoch` (the final one when None) first."""
    return sorted(trained(runs), key=lambda run: -(final(run) if epoch is None else at(run, epoch))[key])


def row(sweep: dict, rate: float) -> dict:
    """The sweep's summary row of `rate` (its final test accuracy over seeds, ...)."""
    return next(entry for entry in sweep["summary"] if entry["learning_rate"] == rate)


def overlap(first: Sequence[float] | None, second: Sequence[float] | None) -> bool:
    """Whether two intervals [low, high] share a point; False when either is missing."""
    return first is not None and second is not None and first[0] <= second[1] and second[0] <= first[1]


def neighbours_apart(sweep: dict) -> list[tuple[float, float, bool]]:
    """(larger rate, smaller rate, whether their final test accuracy intervals are disjoint) for each
    pair of neighbouring rates that did not diverge in every seed."""
    kept = [rate for rate in rates(sweep) if row(sweep, rate)["final_test_accuracy"]["n"]]
    return [(larger, smaller, not overlap(row(sweep, larger)["final_test_accuracy"]["ci95"],
                                          row(sweep, smaller)["final_test_accuracy"]["ci95"]))
            for larger, smaller in zip(kept, kept[1:])]  # fmt: skip


def spread(sweep: dict) -> list[float]:
    """The standard deviation over seeds of each rate's final test accuracy (rates with two or more)."""
    return [entry["final_test_accuracy"]["std"] for entry in sweep["summary"]
            if entry["final_test_accuracy"]["std"] is not None]  # fmt: skip


def chosen_by_seed(sweep: dict) -> dict[int, float]:
    """Test accuracy by seed at the sweep's rate and epoch chosen on validation."""
    selected = sweep["selected"]
    return {run["seed"]: at(run, selected["epoch"])["test_accuracy"] for run in sweep["runs"]
            if run["learning_rate"] == selected["learning_rate"]}  # fmt: skip


def paired(sweep: dict, reference: dict) -> dict:
    """The chosen test accuracy of `sweep` minus `reference`'s, seed by seed (the same seed starts from
    the same parameters and sees the same batches): `stats.summarize` of the differences, with
    "half_width", the half width of its 95% interval (None below two seeds)."""
    chosen, base = chosen_by_seed(sweep), chosen_by_seed(reference)
    differences = stats.summarize([chosen[seed] - base[seed] for seed in chosen if seed in base])
    half = None if differences["std"] is None else stats.half_width(differences["std"], differences["n"])
    return differences | {"half_width": half}


def separable(difference: dict) -> bool:
    """Whether a paired difference's 95% interval excludes zero."""
    return difference["ci95"] is not None and (difference["ci95"][0] > 0 or difference["ci95"][1] < 0)


def early_stopping(sweep: dict, patience: int) -> dict:
    """Early stopping replayed at the sweep's chosen rate (`stats.early_stopped`): "trained", the epochs
    each seed trains; "kept", `stats.summarize` of the kept parameters' test accuracy; "cost", of the kept
    minus the chosen epoch's test accuracy, with its "half_width"; "saved", the mean epochs not trained."""
    selected = sweep["selected"]
    group = [run for run in sweep["runs"] if run["learning_rate"] == selected["learning_rate"]]
    replays = [stats.early_stopped(run["epochs"], patience) for run in group]
    trained_epochs = [stop for stop, _ in replays]
    cost = stats.summarize([kept["test_accuracy"] - at(run, selected["epoch"])["test_accuracy"]
                            for (_, kept), run in zip(replays, group)])  # fmt: skip
    half = None if cost["std"] is None else stats.half_width(cost["std"], cost["n"])
    budget = len(group[0]["epochs"])
    return {
        "trained": trained_epochs,
        "kept": stats.summarize([kept["test_accuracy"] for _, kept in replays]),
        "cost": cost | {"half_width": half},
        "saved": budget - sum(trained_epochs) / len(trained_epochs),
        "budget": budget,
    }


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)


def epochs_to(sweep: dict, rate: float, threshold: float) -> list[int]:
    """The first epoch at which each seed of `rate` reaches `threshold` validation accuracy; the seeds
    that never do are left out."""
    return [epoch for epoch in stats.epochs_to_reach(sweep["runs"], rate, threshold) if epoch is not None]


def matching_rate(sweep: dict, value: float) -> float | None:
    """The sweep's learning rate equal to `value` up to float rounding (0.01 / (1 - 0.9) is 0.1), or None."""
    return next((rate for rate in rates(sweep) if math.isclose(rate, value, rel_tol=1e-9)), None)


def units_saturated(diagnosis: dict) -> float:
    """The largest share, over a diagnosis's networks and hidden layers, of units saturated on 95% of
    the images or more (dead units, for a relu)."""
    return max(layer["share_units_saturated"] for network in diagnosis["networks"].values()
               for layer in network["saturation"])  # fmt: skip


def commonest_confusions(confusion: Sequence[Sequence[int]], count: int = 3) -> list[dict]:
    """The `count` largest off-diagonal cells of a confusion matrix (rows the true class), largest first,
    ties in reading order: [{"label": 4, "prediction": 9, "images": 17}, ...]; cells of 0 left out."""
    cells = [{"label": label, "prediction": prediction, "images": images}
             for label, row in enumerate(confusion) for prediction, images in enumerate(row)
             if label != prediction and images]  # fmt: skip
    return sorted(cells, key=lambda cell: -cell["images"])[:count]


def error_pairs(errors: Sequence[dict], count: int = 3) -> list[dict]:
    """The `count` commonest (true, predicted) pairs among a network's listed errors, as
    `commonest_confusions` gives them."""
    classes = 1 + max((max(error["label"], error["prediction"]) for error in errors), default=-1)
    matrix = [[0] * classes for _ in range(classes)]
    for error in errors:
        matrix[error["label"]][error["prediction"]] += 1
    return commonest_confusions(matrix, count)


def instruction_ratio(runs: dict, bits: int, reference: int = 8) -> float:
    """How many times the instructions per image of the `reference`-bit network the `bits`-bit network
    takes on one core; runs: one core's Cortex-M measurements by weight width."""
    return runs[bits]["instructions_per_image"] / runs[reference]["instructions_per_image"]


def widths_fewer(runs: dict, reference: int = 8) -> list[int]:
    """The weight widths, narrowest first, whose network takes fewer instructions per image than the
    `reference`-bit one on this core."""
    return sorted(bits for bits in runs if bits != reference and instruction_ratio(runs, bits, reference) < 1)


def all_agree(cortex: dict) -> bool:
    """Whether every Cortex-M run (by core, then width) gave JAX's class and logits on every image."""
    return all(run["agree"] == run["images"] for runs in cortex.values() for run in runs.values())


def largest_ram(cortex: dict) -> int:
    """The most RAM (data, bss and the stack's peak, in bytes) any Cortex-M run (by core, then width) used."""
    return max(run["ram_bytes"] for runs in cortex.values() for run in runs.values())


def bounded(interval: Sequence[float] | None) -> dict | None:
    """An accuracy interval [low, high] inside [0, 1] as printed and drawn: {"low", "high", "clipped"}
    (clipped: whether a bound of the Student t interval, which knows no bounds, lay outside)."""
    if interval is None:
        return None
    low, high = max(interval[0], 0.0), min(interval[1], 1.0)
    return {"low": low, "high": high, "clipped": (low, high) != (interval[0], interval[1])}


def seeds_of(sweep: dict) -> list[int]:
    """The seeds the sweep trained, in order."""
    return sorted({run["seed"] for run in sweep["runs"]})


def order_broken_by_seed(sweep: dict) -> dict[int, int | None]:
    """Per seed, `order_broken_at` of that seed's runs: the first epoch at which a larger rate is not
    better, or None where the order holds at every epoch."""
    return {seed: order_broken_at([run for run in sweep["runs"] if run["seed"] == seed]) for seed in seeds_of(sweep)}


WIDE_SEEDS = 3  # a Student t interval of the mean over this many seeds or fewer is wide (t(0.975, 2) = 4.3)


def mean_accuracy_at(sweep: dict, rate: float, epoch: int) -> float | None:
    """The mean over seeds of a rate's test accuracy at `epoch`, of the seeds measured then; None if none was."""
    values = [run["epochs"][epoch - 1]["test_accuracy"] for run in sweep["runs"]
              if run["learning_rate"] == rate and run["epochs"][epoch - 1]["test_accuracy"] is not None]  # fmt: skip
    return sum(values) / len(values) if values else None


def ranked_by_mean(sweep: dict) -> list[float]:
    """The rates of which some seed did not diverge, the highest mean final test accuracy over seeds first."""
    kept = [rate for rate in rates(sweep) if row(sweep, rate)["final_test_accuracy"]["n"]]
    return sorted(kept, key=lambda rate: -row(sweep, rate)["final_test_accuracy"]["mean"])
