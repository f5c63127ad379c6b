"""Which results belong to the design a report is about: the learning-rate sweep's. A result quoted for
the design must be of it or extend it (the grid is the sweep with seeds, the optimizer sweeps the grid
with another optimizer, ...); a diagnosis must have read the networks the sweep wrote, by their content.
What does not belong is left out of the report and named, with why, in its closing list.

The required results must belong together: a baseline of another design, a gradient check of another
network, or runs of unequal length that no divergence or early stopping explains stop the report.
"""

from typing import NamedTuple

from fmlp.description import Experiment, differences, from_config, identity
from fmlp.words import is_reference_network

SEEDS_AND_SPLIT = ("design.seeds", "data.validation")
# Each sweep that extends the design, and the defining fields in which it may differ from the design.
EXTENSIONS = {
    "robustness/lr_sweep.json": SEEDS_AND_SPLIT,
    "quantize/float/lr_sweep.json": (*SEEDS_AND_SPLIT, "design.learning_rates"),
} | {
    f"optimizers/{name}/lr_sweep.json": (*SEEDS_AND_SPLIT, "design.learning_rates", "training.optimizer",
                                         "training.momentum")  # fmt: skip
    for name in ("momentum", "nesterov", "adam", "rmsprop")
} | {
    f"activations/{name}/lr_sweep.json": (*SEEDS_AND_SPLIT, "design.learning_rates", "network.activation")
    for name in ("sigmoid", "tanh", "relu")
}
# Fine-tuning starts from the quantization study's networks: it keeps their network and data.
FINE_TUNE_KEEPS = ("network.sizes", "network.activation", "network.loss", "training.batch_size", "data.train_limit")


class LeftOut(NamedTuple):
    """A result that is there but not of the design, and why."""

    name: str  # its path under the results folder (or the docs folder)
    why: str


def other_fields(document: dict, design: Experiment, may_differ: tuple[str, ...]) -> list[str]:
    """The defining fields, other than those in `may_differ`, in which a result differs from the design."""
    return [text for text in differences(from_config(document["config"]), design) if text.split()[0] not in may_differ]


def _kept_differ(document: dict, design: Experiment) -> list[str]:
    """The fields of FINE_TUNE_KEEPS in which a fine-tuning result differs from the design."""
    tuned, wanted = identity(from_config(document["config"])), identity(design)
    return [f"{path} {tuned[path]!r} there, {wanted[path]!r} now" for path in FINE_TUNE_KEEPS
            if tuned[path] != wanted[path]]  # fmt: skip


def _read_networks_of(diagnosis: dict, sweeps: list[dict]) -> bool:
    """Whether every network a diagnosis read is one that one of the sweeps wrote, by content."""
    written = {fingerprint for sweep in sweeps for fingerprint in sweep.get("params_sha256", {}).values()}
    read = diagnosis.get("params_sha256")
    return bool(read) and set(read.values()) <= written


def why_not(name: str, results: dict, design: Experiment) -> str | None:
    """Why the loaded result `name` does not belong to the design; None where it does."""
    document = results[name]
    if name in EXTENSIONS:
        found = other_fields(document, design, EXTENSIONS[name])
        return f"made for another design ({'; '.join(found)})" if found else None
    if name.startswith("quantize/finetune_"):
        found = _kept_differ(document, design)
        return f"fine-tuned networks of another design ({'; '.join(found)})" if found else None
    if name == "quantize/quantize.json" or name.startswith("cortex_m/"):
        float_sweep = "quantize/float/lr_sweep.json"
        if float_sweep not in results or why_not(float_sweep, results, design):
            return f"of the quantization study's networks, and {float_sweep} is not of this design"
        return None
    if name == "diagnose/diagnose.json":
        if not _read_networks_of(document, [results["lr_sweep.json"]]):
            return "a diagnosis of other networks than lr_sweep.json wrote (or of networks it does not record)"
        return None
    if name == "activations/diagnose/diagnose.json":
        sweeps = [results[key] for key in EXTENSIONS if key.startswith("activations/") and key in results
                  and why_not(key, results, design) is None]  # fmt: skip
        if not _read_networks_of(document, sweeps):
            return "a diagnosis of other networks than the activation sweeps of this design wrote"
        return None
    if name.startswith("benchmark_"):
        return None if is_reference_network(design.network) else "measured on the reference network, not this one"
    return None


def sort_out(results: dict) -> tuple[dict, list[LeftOut]]:
    """(the results that belong to the sweep's design, those left out with why). The required ones are
    kept: `check_required` refuses them when they do not belong together."""
    design = from_config(results["lr_sweep.json"]["config"])
    left = [LeftOut(name, why) for name in results if (why := why_not(name, results, design)) is not None]
    out = {entry.name for entry in left}
    return {name: document for name, document in results.items() if name not in out}, left


def check_required(results: dict, results_dir) -> None:
    """ValueError naming the files when the required results do not belong together: a baseline of
    another design than the sweep's (only its rate and seed may differ), a gradient check of another
    network, or runs of unequal length that no divergence or early stopping explains."""
    design = from_config(results["lr_sweep.json"]["config"])
    baseline = from_config(results["baseline.json"]["config"])
    found = other_fields(results["baseline.json"], design,
                         ("design.script", "design.learning_rates", "design.seed", "design.seeds"))  # fmt: skip
    if found:
        raise ValueError(f"{results_dir / 'baseline.json'} is not of the design of {results_dir / 'lr_sweep.json'} "
                         f"({'; '.join(found)}); run baseline.py with the sweep's flags (handin.py does)")  # fmt: skip
    checked = results["gradcheck.json"]
    sizes, activation = checked.get("sizes"), checked.get("activation", "sigmoid")
    if sizes is not None and (tuple(sizes), activation) != (design.network.sizes, design.network.activation):
        raise ValueError(f"{results_dir / 'gradcheck.json'} checks a {'-'.join(map(str, sizes))} {activation} network, "
                         f"not the design's; run gradcheck.py with the sweep's --hidden and --activation")  # fmt: skip
    for name, experiment in (("baseline.json", baseline), ("lr_sweep.json", design)):
        for run in results[name]["runs"]:
            ended = run.get("diverged_at_epoch") or run.get("stopped_at_epoch")
            if len(run["epochs"]) != experiment.training.epochs and ended is None:
                raise ValueError(f"{results_dir / name}: the run of lr {run['learning_rate']:g} has "
                                 f"{len(run['epochs'])} epochs of {experiment.training.epochs}, and neither "
                                 "diverged nor stopped early")  # fmt: skip
