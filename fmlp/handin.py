"""The hand-in as one pipeline: which results the exercise needs, which of them are already there and
match the requested flags, the commands that write the missing ones, and the bundle of the PDF with
the source.

No network is trained twice: the baseline (lr 0.1, seed 1) is the sweep's lane of that rate and seed,
which starts from the same parameters and sees the same batches, so the baseline's JSON and figures are
written from that lane's records. Nothing here runs a command or prints; experiments/handin.py does.
"""

import json
import subprocess
import zipfile
from pathlib import Path
from typing import NamedTuple

from fmlp import flags, outputs, plans, stats
from fmlp.io import atomic_path

ROOT = Path(__file__).resolve().parent.parent
BASELINE_RATE, BASELINE_SEED = 0.1, 1
DIAGNOSED_RATES = (1.0, 0.1, 0.01)
OPTIMIZER_RATES = {  # the rates that bracket each optimizer's optimum (choices.OPTIMIZERS but plain SGD)
    "momentum": "0.5,0.1,0.05,0.01,0.005",
    "nesterov": "0.5,0.1,0.05,0.01,0.005",
    "adam": "0.01,0.003,0.001,0.0003,0.0001",
    "rmsprop": "0.01,0.003,0.001,0.0003,0.0001",
}
# Recorded flags that decide what a result is; the others (output paths, progress, data source) do not.
DEFINING = ("epochs", "batch_size", "seed", "hidden", "activation", "train_limit", "validation", "early_stop",
            "optimizer", "momentum", "lrs", "seeds", "lr")  # fmt: skip


class Step(NamedTuple):
    """One result of the hand-in: the JSON that shows it is there, and the command that writes it."""

    name: str
    result: Path  # its metrics JSON
    command: list[str]  # arguments after `python`
    expected: dict  # recorded flags it must match, by name


def _training(script: str, out: Path, training: list[str], *extra: str) -> list[str]:
    return [str(ROOT / "experiments" / script), "--out", str(out), *extra, *training]


def steps(results: Path, training: list[str], data: list[str], expected: dict, extras: bool) -> list[Step]:
    """The results the hand-in needs in pipeline order, under the results folder `results`.

    training: flags for every training script (e.g. --epochs 3); data: the data flags, for every script
    (e.g. --data-dir D); expected: what the training flags mean in a JSON's recorded config. With extras,
    the five-seed grid and the optimizers too.
    """
    training = training + data
    sweep = _training("lr_sweep.py", results, training, "--save-params", str(results / "params"))
    gradcheck = [str(ROOT / "experiments" / "gradcheck.py"), "--out", str(results), *data]
    diagnose = [str(ROOT / "experiments" / "diagnose.py"), *map(str, diagnosed_params(results)),
                "--out", str(results / "diagnose"), *data]  # fmt: skip
    planned = [
        Step("learning-rate sweep", results / "lr_sweep.json", sweep, expected),
        Step("gradient check", results / "gradcheck.json", gradcheck, {}),
        Step("networks' insides", results / "diagnose" / "diagnose.json", diagnose, {}),
    ]
    if not extras:
        return planned
    five_seeds = expected | {"seeds": 5, "validation": 10000}
    robustness = _training("lr_sweep.py", results / "robustness", training, "--seeds", "5", "--validation", "10000")
    planned.append(Step("five seeds", results / "robustness" / "lr_sweep.json", robustness, five_seeds))
    for name, rates in OPTIMIZER_RATES.items():
        folder = results / "optimizers" / name
        command = _training("lr_sweep.py", folder, training, "--optimizer", name, "--lrs", rates, "--seeds", "5",
                            "--validation", "10000")  # fmt: skip
        same = five_seeds | {"optimizer": name, "lrs": [float(rate) for rate in rates.split(",")]}
        planned.append(Step(f"optimizer {name}", folder / "lr_sweep.json", command, same))
    three_seeds = expected | {"seeds": 3, "validation": 10000}
    for name in ("tanh", "relu"):
        folder = results / "activations" / name
        command = _training("lr_sweep.py", folder, training, "--activation", name, "--seeds", "3",
                            "--validation", "10000")  # fmt: skip
        same = three_seeds | {"activation": name}
        planned.append(Step(f"activation {name}", folder / "lr_sweep.json", command, same))
    return planned


def diagnosed_params(results: Path) -> list[Path]:
    """The saved networks that the diagnosis reads: the sweep's seed-1 lanes at lr 1, 0.1 and 0.01."""
    return [results / "params" / f"lr_{flags.rate_name(rate)}_seed_{BASELINE_SEED}.npz" for rate in DIAGNOSED_RATES]


def read_result(path: Path) -> dict | None:
    """The metrics JSON at path, or None where there is none to use (missing, unreadable, interrupted)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and not document.get("interrupted", False) else None


def matches(document: dict, expected: dict) -> bool:
    """Whether a result's recorded flags are the expected ones (those not named are free); a flag that
    a result older than the flag did not record has its default."""
    defaults = vars(flags.sweep_parser().parse_args([])) | vars(flags.baseline_parser().parse_args([]))
    config = defaults | document.get("config", {})
    return all(config.get(key) == value for key, value in expected.items() if key in DEFINING)


def is_done(step: Step) -> bool:
    """Whether the step's result is there, complete, and made with the flags it should have."""
    document = read_result(step.result)
    if document is None or not matches(document, step.expected):
        return False
    figures = {"lr_sweep": ("accuracy", "loss"), "diagnose": ("saturation", "reliability")}.get(step.result.stem, ())
    return all((step.result.parent / f"{step.result.stem}_{kind}.png").is_file() for kind in figures)


def baseline_config(sweep_config: dict) -> dict:
    """The flags of `baseline.py` that train what the sweep's (0.1, seed 1) lane trained."""
    shared = {key: value for key, value in sweep_config.items() if key not in ("lrs", "seeds", "save_params_dir")}
    return shared | {"lr": BASELINE_RATE, "seed": BASELINE_SEED, "save_params": None}


def baseline_from_sweep(sweep: dict) -> dict | None:
    """The baseline's metrics JSON built from the sweep's lr 0.1, seed 1 lane; None if it has no such lane.

    "derived_from" says where it came from; "seconds" are the sweep's, shared evenly over its lanes.
    """
    lane = next((run for run in sweep["runs"] if run["learning_rate"] == BASELINE_RATE
                 and run["seed"] == BASELINE_SEED), None)  # fmt: skip
    if lane is None or sweep["config"].get("seed") != BASELINE_SEED:
        return None
    share = 1 / len(sweep["runs"])
    seconds = {key: value * share for key, value in sweep["seconds"].items()}
    return {
        "config": baseline_config(sweep["config"]),
        "environment": sweep["environment"],
        "data": sweep["data"],
        "interrupted": sweep["interrupted"],
        "runs": [lane],
        "summary": stats.summary([lane]),
        "summary_interval": sweep["summary_interval"],
        "selected": stats.select([lane]),
        "seconds": seconds,
        "derived_from": f"lr_sweep.json, the lane of learning rate {BASELINE_RATE:g} and seed {BASELINE_SEED}; "
        f"seconds: the sweep's divided by its {len(sweep['runs'])} lanes",
    }


def write_baseline(results: Path) -> bool:
    """Writes baseline.json and its figures from the sweep in the results folder; False if it cannot."""
    sweep = read_result(results / "lr_sweep.json")
    document = None if sweep is None else baseline_from_sweep(sweep)
    if document is None:
        return False
    plans.draw(plans.baseline_plan(document["config"]), document["runs"], results)
    outputs.write_json(results / "baseline.json", document)
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
            archive.write(path, name)
    return len(members)
