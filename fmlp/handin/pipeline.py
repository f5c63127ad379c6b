"""The hand-in as one pipeline: which results the exercise needs, which of them are already there and
match the requested flags, the commands that write the missing ones, and the bundle of the PDF with
the source.

No network is trained twice: the baseline (lr 0.1, seed 1) is the sweep's lane of that rate and seed,
which starts from the same parameters and sees the same batches, so the baseline's JSON and figures are
written from that lane's records. Nothing here runs a command or prints; experiments/handin.py does.
"""

import json
import shlex
import subprocess
import zipfile
from pathlib import Path
from typing import NamedTuple

from fmlp.analysis import stats
from fmlp.description import (
    Design,
    Experiment,
    defaults,
    differences,
    from_config,
    hidden,
    rate_name,
    to_config,
    updated,
)
from fmlp.files import atomic_path
from fmlp.nn import saved
from fmlp.run import flags, metrics_json, plans

ROOT = Path(__file__).resolve().parents[2]
BASELINE_RATE, BASELINE_SEED = defaults("baseline").design.learning_rates[0], defaults("baseline").design.seed
DIAGNOSED_RATES = (1.0, 0.1, 0.01)
OPTIMIZER_RATES = {  # the rates that bracket each optimizer's optimum (description.OPTIMIZERS but plain SGD)
    "momentum": (0.5, 0.1, 0.05, 0.01, 0.005),
    "nesterov": (0.5, 0.1, 0.05, 0.01, 0.005),
    "adam": (0.01, 0.003, 0.001, 0.0003, 0.0001),
    "rmsprop": (0.01, 0.003, 0.001, 0.0003, 0.0001),
}
SEEDS_OF_EXTRAS = {"robustness": 5, "optimizers": 5, "activations": 3}
EXTRA_VALIDATION = 10000  # the extras choose on the classic 50,000/10,000 split


class Step(NamedTuple):
    """One result of the hand-in: the JSON that shows it is there, the command that writes it, and the
    experiment it must be (None: a result that is not a training experiment)."""

    name: str
    result: Path  # its metrics JSON
    command: list[str]  # arguments after `python`
    expected: Experiment | None  # the training result's experiment, or the design a gradient check is of
    alongside: bool = False  # reads no other step's result and needs little of the machine: runs beside them


def _training(experiment: Experiment) -> list[str]:
    """The arguments after `python` that run `experiment` (the words of `command_words` are shell words,
    a flag with its value)."""
    script = str(ROOT / "experiments" / f"{experiment.design.script}.py")
    return [argument for word in flags.command_words(experiment, script)[1:] for argument in shlex.split(word)]


def _extra(sweep: Experiment, folder: Path, seeds: int, **changes) -> Experiment:
    """The sweep with several seeds chosen on validation, written to folder; `changes` are replacements
    of `fmlp.description.updated`, e.g. training={"optimizer": "adam"}."""
    extra = updated(sweep, design={"seeds": seeds}, data={"validation": EXTRA_VALIDATION},
                    outputs={"folder": folder, "save_params": None})  # fmt: skip
    return updated(extra, **changes)


def steps(results: Path, sweep: Experiment, extras: bool) -> list[Step]:
    """The results the hand-in needs in pipeline order, under the results folder `results`.

    sweep: the learning-rate sweep's description (its data flags serve every script). With extras, the
    five-seed grid, the optimizers and the activations too.
    """
    sweep = sweep._replace(outputs=sweep.outputs._replace(folder=results, save_params=results / "params"))
    data = ["--data-source", sweep.data.source]
    data += ["--data-dir", str(sweep.data.folder)] if sweep.data.folder else []
    network = ["--hidden", ",".join(map(str, hidden(sweep.network))), "--activation", sweep.network.activation]
    gradcheck = [str(ROOT / "experiments" / "gradcheck.py"), "--out", str(results), *network, *data]
    diagnose = [str(ROOT / "experiments" / "diagnose.py"), *map(str, diagnosed_params(results, sweep)),
                "--out", str(results / "diagnose"), *data]  # fmt: skip
    planned = [Step("learning-rate sweep", results / "lr_sweep.json", _training(sweep), sweep)]
    if BASELINE_RATE not in sweep.design.learning_rates:  # else the baseline is the sweep's lane of its rate
        baseline = baseline_of(sweep)
        planned.append(Step("baseline", results / "baseline.json", _training(baseline), baseline))
    planned += [
        Step("gradient check", results / "gradcheck.json", gradcheck, sweep, alongside=True),
        Step("networks' insides", results / "diagnose" / "diagnose.json", diagnose, None),
    ]
    if not extras:
        return planned
    extra = [("five seeds", _extra(sweep, results / "robustness", SEEDS_OF_EXTRAS["robustness"]))]
    for name, rates in OPTIMIZER_RATES.items():
        momentum = flags.DEFAULT_MOMENTUM if name in ("momentum", "nesterov") else None
        optimizer = {"optimizer": name, "momentum": momentum}
        folder = results / "optimizers" / name
        seeds = SEEDS_OF_EXTRAS["optimizers"]
        extra.append(
            (f"optimizer {name}", _extra(sweep, folder, seeds, training=optimizer, design={"learning_rates": rates}))
        )
    for name in ("tanh", "relu"):
        folder, seeds = results / "activations" / name, SEEDS_OF_EXTRAS["activations"]
        extra.append((f"activation {name}", _extra(sweep, folder, seeds, network={"activation": name})))
    planned += [Step(name, e.outputs.folder / "lr_sweep.json", _training(e), e) for name, e in extra]
    return planned


def diagnosed_rates(sweep: Experiment) -> list[float]:
    """The rates whose networks the diagnosis reads: those of DIAGNOSED_RATES the sweep trains where
    they are two or more, else its largest and smallest."""
    rates = sweep.design.learning_rates
    found = [rate for rate in DIAGNOSED_RATES if rate in rates]
    return found if len(found) > 1 else sorted({max(rates), min(rates)}, reverse=True)


def diagnosed_params(results: Path, sweep: Experiment) -> list[Path]:
    """The saved networks that the diagnosis reads: the sweep's lanes of its first seed at
    `diagnosed_rates`."""
    seed = sweep.design.seed
    return [results / "params" / f"lr_{rate_name(rate)}_seed_{seed}.npz" for rate in diagnosed_rates(sweep)]


def params_of_sweep(results: Path, sweep: Experiment) -> bool:
    """Whether the networks the diagnosis reads are there and are the ones the sweep in the results folder
    wrote (by content): else the sweep runs again to write them."""
    written = set((read_result(results / "lr_sweep.json") or {}).get("params_sha256", {}).values())
    try:
        networks = [saved.load(path) for path in diagnosed_params(results, sweep)]
    except (OSError, ValueError):
        return False
    return all(saved.fingerprint(network.params, network.architecture) in written for network in networks)


def read_result(path: Path) -> dict | None:
    """The metrics JSON at path, or None where there is none to use (missing, unreadable, interrupted)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and not document.get("interrupted", False) else None


def matches(document: dict, expected: Experiment) -> bool:
    """Whether a result is of the expected experiment: their identities are equal
    (`fmlp.description.identity`); a field that a result older than the field did not record has its
    default."""
    try:
        return not differences(from_config(document.get("config", {})), expected)
    except ValueError:  # a config that describes no experiment
        return False


def checks_network_of(document: dict, design: Experiment) -> bool:
    """Whether a gradient check is of the design's network (one older than the "activation" field
    checked a sigmoid network)."""
    checked = (tuple(document.get("sizes", ())), document.get("activation", "sigmoid"))
    return checked == (design.network.sizes, design.network.activation)


def diagnoses_sweep(document: dict, results: Path) -> bool:
    """Whether a diagnosis read networks that the sweep in the results folder wrote, by content."""
    sweep = read_result(results / "lr_sweep.json") or {}
    read, written = document.get("params_sha256") or {}, set(sweep.get("params_sha256", {}).values())
    return bool(read) and set(read.values()) <= written


def is_done(step: Step) -> bool:
    """Whether the step's result is there, complete, and of the design: made with its flags (a training
    result), of its network (the gradient check), of the networks its sweep wrote (the diagnosis)."""
    document = read_result(step.result)
    if document is None:
        return False
    if step.name == "gradient check":
        if not checks_network_of(document, step.expected):
            return False
    elif step.name == "networks' insides":
        if not diagnoses_sweep(document, step.result.parent.parent):
            return False
    elif step.expected is not None and not matches(document, step.expected):
        return False
    figures = {"lr_sweep": ("accuracy", "loss"), "diagnose": ("saturation", "reliability")}.get(step.result.stem, ())
    return all((step.result.parent / f"{step.result.stem}_{kind}.png").is_file() for kind in figures)


def baseline_of(sweep: Experiment) -> Experiment:
    """What `baseline.py` runs to train what the sweep's lane of lr 0.1 and its first seed trains."""
    return sweep._replace(design=Design("baseline", (BASELINE_RATE,), sweep.design.seed),
                          outputs=sweep.outputs._replace(save_params=None))  # fmt: skip


def baseline_from_sweep(sweep: dict) -> dict | None:
    """The baseline's metrics JSON built from the sweep's lane of lr 0.1 and its first seed; None if it
    has no such lane.

    "derived_from" says where it came from; "seconds" are the sweep's, shared evenly over its lanes.
    """
    seed = sweep["config"].get("seed", BASELINE_SEED)
    lane = next((run for run in sweep["runs"] if run["learning_rate"] == BASELINE_RATE and run["seed"] == seed), None)
    if lane is None:
        return None
    share = 1 / len(sweep["runs"])
    seconds = {key: value * share for key, value in sweep["seconds"].items()}
    return {
        "config": to_config(baseline_of(from_config(sweep["config"]))),
        "environment": sweep["environment"],
        "data": sweep["data"],
        "interrupted": sweep["interrupted"],
        "runs": [lane],
        "summary": stats.summary([lane]),
        "summary_interval": sweep["summary_interval"],
        "selected": stats.select([lane]),
        "seconds": seconds,
        "derived_from": f"lr_sweep.json, the lane of learning rate {BASELINE_RATE:g} and seed {seed}; "
        f"seconds: the sweep's divided by its {len(sweep['runs'])} lanes",
    }


def write_baseline(results: Path) -> bool:
    """Writes baseline.json and its figures from the sweep in the results folder; False if it cannot."""
    sweep = read_result(results / "lr_sweep.json")
    document = None if sweep is None else baseline_from_sweep(sweep)
    if document is None:
        return False
    plans.draw(plans.baseline_plan(from_config(document["config"])), document["runs"], results)
    metrics_json.write_json(results / "baseline.json", document)
    return True


def source_files(root: Path = ROOT) -> list[str]:
    """The repository's tracked files (relative paths), as `git ls-files` lists them; without git, the
    project's own folders and top-level files."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, timeout=30)
        return sorted(name for name in listed.stdout.decode().split("\0") if name and (root / name).is_file())
    except (OSError, subprocess.SubprocessError):
        folders = ("fmlp", "experiments", "tests", "docs", "figures", ".ci")
        files = [path for folder in folders for path in (root / folder).rglob("*") if path.is_file()]
        tops = [root / name for name in ("pyproject.toml", "README.md", "environment.yml", ".gitignore")]
        return sorted(str(path.relative_to(root)) for path in files + tops
                      if path.is_file() and "__pycache__" not in path.parts)  # fmt: skip


COMPRESSED = (".png", ".pdf", ".npz", ".gz", ".zip")


def bundle(zip_path: Path, pdf: Path, results: Path, root: Path = ROOT) -> int:
    """The hand-in .zip: the PDF at the top, the repository's tracked source, and every metrics JSON of the
    results folder under figures/ (so a results folder elsewhere travels too). Returns the file count."""
    prefix = "fmlp-handin"
    members = {f"{prefix}/{name}": root / name for name in source_files(root)}
    members = {name: path for name, path in members.items() if not name.endswith(("report.pdf", "handin.zip"))}
    for path in sorted(results.rglob("*.json")):
        members[f"{prefix}/figures/{path.relative_to(results)}"] = path
    members[f"{prefix}/report.pdf"] = pdf
    with atomic_path(zip_path) as temp_path, zipfile.ZipFile(temp_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in sorted(members.items()):
            # PNGs, the PDF and archives are compressed already: deflating them again costs time for nothing.
            stored = path.suffix in COMPRESSED
            archive.write(path, name, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    return len(members)
