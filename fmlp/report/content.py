"""What the hand-in says, as Markdown: the documents in docs/, with every table rebuilt from the metrics
JSON, and the setup and appendix written from the JSON too. Also the check for stale numbers: a
percentage in the prose that no JSON value rounds to.

Markers in docs/results.md steer the assembly:
- `<!-- table: NAME -->` before a Markdown table: the report prints the table built from the JSON
  instead (NAME one of TABLES), so no number in a table is copied by hand;
- `<!-- requires: PATH -->` right after a heading: the section is left out unless PATH exists under
  the results folder (e.g. the robustness run).
"""

import json
import re
from collections.abc import Callable
from pathlib import Path

from fmlp.stats import epochs_to_reach

# The results the report needs, and the command that writes each.
REQUIRED = {
    "baseline.json": "python experiments/baseline.py",
    "baseline_loss.png": "python experiments/baseline.py",
    "baseline_accuracy.png": "python experiments/baseline.py",
    "lr_sweep.json": "python experiments/lr_sweep.py",
    "lr_sweep_accuracy.png": "python experiments/lr_sweep.py",
    "lr_sweep_loss.png": "python experiments/lr_sweep.py",
}
OPTIMIZERS = ("momentum", "nesterov", "adam", "rmsprop")
OPTIONAL = {
    "robustness/lr_sweep.json": "python experiments/lr_sweep.py --seeds 5 --validation 10000 --out figures/robustness",
    "diagnose/diagnose.json": "python experiments/diagnose.py figures/params/lr_0.1_seed_1.npz "
    "figures/params/lr_1_seed_1.npz --out figures/diagnose",
} | {
    f"optimizers/{name}/lr_sweep.json": f"python experiments/lr_sweep.py --optimizer {name} --seeds 5 "
    f"--validation 10000 --early-stop 5 --out figures/optimizers/{name}"
    for name in OPTIMIZERS
}
PRESENTABLE = {"reading": "2.1 Review of the cuDNN paper", "from-scratch": "2.2 The MLP from scratch"}


def percent(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _epoch(run: dict, number: int) -> dict | None:
    return run["epochs"][number - 1] if number <= len(run["epochs"]) else None


def baseline_epochs_table(results: dict) -> str:
    """Test accuracy and loss of the baseline at a few epochs."""
    run = results["baseline.json"]["runs"][0]
    last = len(run["epochs"])
    epochs = sorted({e for e in (1, 5, 10, 20, last) if e <= last})
    rows = [
        "| epoch | " + " | ".join(map(str, epochs)) + " |",
        "| --- |" + " --- |" * len(epochs),
        "| test accuracy | " + " | ".join(percent(_epoch(run, e)["test_accuracy"]) for e in epochs) + " |",
        "| test loss | " + " | ".join(f"{_epoch(run, e)['test_loss']:.4f}" for e in epochs) + " |",
    ]
    return "\n".join(rows)


def _best(run: dict, key: str, better: Callable) -> tuple[float | None, int | None]:
    measured = [e for e in run["epochs"] if e[key] is not None]
    if not measured:
        return None, None
    chosen = better(measured, key=lambda e: e[key])
    return chosen[key], chosen["epoch"]


def sweep_table(results: dict) -> str:
    """Per learning rate: final and best test accuracy, final and lowest test loss, final train loss."""
    rows = [
        "| learning rate | final test accuracy | best test accuracy (epoch) | final test loss | "
        "lowest test loss (epoch) | final train loss |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in results["lr_sweep.json"]["runs"]:
        last = run["epochs"][-1]
        if run["diverged_at_epoch"] is not None:
            rows.append(f"| {run['learning_rate']:g} | diverged at epoch {run['diverged_at_epoch']} | | | | |")
            continue
        best, best_epoch = _best(run, "test_accuracy", max)
        lowest, lowest_epoch = _best(run, "test_loss", min)
        rows.append(
            f"| {run['learning_rate']:g} | {percent(last['test_accuracy'])} | {percent(best)} ({best_epoch}) | "
            f"{last['test_loss']:.4f} | {lowest:.4f} ({lowest_epoch}) | {last['train_loss']:.4f} |"
        )
    return "\n".join(rows)


def robustness_table(results: dict) -> str:
    """Per learning rate over seeds: final test accuracy mean ± std, its 95% interval, min–max, and
    the best validation accuracy."""
    document = results["robustness/lr_sweep.json"]
    rows = [
        "| learning rate | seeds | final test accuracy, mean ± std | 95% interval of the mean | min – max | "
        "best validation accuracy, mean ± std |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in document["summary"]:
        final, val = row["final_test_accuracy"], row["best_val_accuracy"] or {}
        interval = "–" if final["ci95"] is None else f"{percent(final['ci95'][0])} – {percent(final['ci95'][1])}"
        std = "" if final["std"] is None else f" ± {percent(final['std'])}"
        val_text = "–" if not val else f"{percent(val['mean'])} ± {percent(val['std'])}"
        rows.append(
            f"| {row['learning_rate']:g} | {final['n']} | {percent(final['mean'])}{std} | {interval} | "
            f"{percent(final['min'])} – {percent(final['max'])} | {val_text} |"
        )
    return "\n".join(rows)


def selected_table(results: dict) -> str:
    """The learning rate and epoch chosen on validation, and the test accuracy of that choice."""
    selected = results["robustness/lr_sweep.json"]["selected"]
    interval = selected["test_accuracy_ci95"]
    return "\n".join(
        [
            "| chosen learning rate | chosen epoch | mean validation accuracy | its test accuracy | 95% interval |",
            "| --- | --- | --- | --- | --- |",
            f"| {selected['learning_rate']:g} | {selected['epoch']} | {percent(selected['val_accuracy'])} | "
            f"{percent(selected['test_accuracy'])} | "
            + ("–" if interval is None else f"{percent(interval[0])} – {percent(interval[1])}")
            + " |",
        ]
    )


def diagnose_table(results: dict) -> str:
    """Per network: accuracy, saturation per hidden layer, calibration."""
    rows = [
        "| network | test accuracy | saturated outputs, layer 1 / 2 | units saturated on ≥ 95% of images, "
        "layer 1 / 2 | mean s(1 − s), layer 1 / 2 | ECE | confidence right / wrong |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, network in results["diagnose/diagnose.json"]["networks"].items():
        layers = network["saturation"]
        calibration = network["calibration"]
        rows.append(
            f"| {name} | {percent(network['accuracy'])} | "
            + " / ".join(percent(layer["share_saturated"], 1) for layer in layers)
            + " | "
            + " / ".join(percent(layer["share_units_saturated"], 1) for layer in layers)
            + " | "
            + " / ".join(f"{layer['mean_derivative']:.3f}" for layer in layers)
            + f" | {percent(calibration['ece'])} | {percent(calibration['mean_confidence_right'], 1)} / "
            f"{percent(calibration['mean_confidence_wrong'], 1)} |"
        )
    return "\n".join(rows)


def optimizers_table(results: dict) -> str:
    """Per optimizer: the rates tried, the rate and epoch chosen on validation, the test accuracy of
    that choice with its interval, and the epochs the chosen rate needs to reach 98% validation accuracy."""
    rows = [
        "| optimizer | rates tried | chosen rate | chosen epoch | mean validation accuracy | its test accuracy "
        "(95% interval) | epochs to 98% validation accuracy, mean |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    sources = [("SGD (ours)", "robustness/lr_sweep.json")] + [
        (name, f"optimizers/{name}/lr_sweep.json") for name in OPTIMIZERS
    ]
    for label, name in sources:
        if name not in results:
            continue
        document = results[name]
        selected = document["selected"]
        rates = ", ".join(f"{row['learning_rate']:g}" for row in document["summary"])
        reached = [epoch for epoch in epochs_to_reach(document["runs"], selected["learning_rate"], 0.98) if epoch]
        reach_text = (
            f"{sum(reached) / len(reached):.1f} ({len(reached)} of {selected['seeds']} seeds)" if reached else "never"
        )
        chosen_epoch = selected["epoch"] or "each seed's best: " + ", ".join(map(str, selected["epochs"]))
        interval = selected["test_accuracy_ci95"]
        rows.append(
            f"| {label} | {rates} | {selected['learning_rate']:g} | {chosen_epoch} | "
            f"{percent(selected['val_accuracy'])} | {percent(selected['test_accuracy'])} "
            f"({percent(interval[0])} – {percent(interval[1])}) | {reach_text} |"
        )
    return "\n".join(rows)


TABLES = {
    "baseline_epochs": baseline_epochs_table,
    "sweep": sweep_table,
    "robustness": robustness_table,
    "selected": selected_table,
    "diagnose": diagnose_table,
    "optimizers": optimizers_table,
}
TABLE_MARKER = re.compile(r"<!-- table: (\w+) -->\n(?:\n*(?:\|.*\n?)+)?")
REQUIRES_MARKER = re.compile(r"<!-- requires: (\S+) -->")


def missing_results(results_dir: Path) -> list[str]:
    """'FILE (write it with: COMMAND)' for each required result that is not there."""
    return [f"{results_dir / name} (write it with: {command})" for name, command in REQUIRED.items()
            if not (results_dir / name).is_file()]  # fmt: skip


def load_results(results_dir: Path) -> dict[str, dict]:
    """Every metrics JSON the report reads, by its path under the results folder."""
    names = [name for name in (*REQUIRED, *OPTIONAL) if name.endswith(".json") and (results_dir / name).is_file()]
    return {name: json.loads((results_dir / name).read_text()) for name in names}


def _sections(text: str) -> list[str]:
    """text cut before every heading line (outside fenced code)."""
    pieces, current, fenced = [], [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#") and current:
            pieces.append("".join(current))
            current = []
        current.append(line)
    return pieces + ["".join(current)]


def assemble_results(text: str, results: dict, results_dir: Path) -> str:
    """docs/results.md as the report prints it: sections whose results are missing left out (with
    their subsections), tables rebuilt from the JSON, figure paths pointed at the results folder."""
    kept, skip_level = [], None
    for section in _sections(text):
        level = len(section) - len(section.lstrip("#")) if section.startswith("#") else None
        if skip_level is not None and level is not None and level <= skip_level:
            skip_level = None
        required = REQUIRES_MARKER.search(section)
        if skip_level is None and required and not (results_dir / required.group(1)).exists():
            skip_level = level
        if skip_level is None:
            kept.append(section)
    assembled = TABLE_MARKER.sub(lambda match: TABLES[match.group(1)](results) + "\n", "".join(kept))
    return assembled.replace("](../figures/", f"]({results_dir.resolve().as_posix()}/")


def demote(text: str, levels: int = 1) -> str:
    """Every heading `levels` deeper (outside fenced code), so a document can sit under a report section."""
    lines, fenced = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" * levels + line if not fenced and line.startswith("#") else line)
    return "".join(lines)


def _numbers(value) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return []


def stale_percentages(text: str, results: dict) -> list[str]:
    """Sentences of text that quote a percentage with decimals (e.g. 98.42%) that no number in the
    JSON rounds to, as a fraction (0.9842) or as a percentage point (0.25 for a std of 0.25%)."""
    quoted_forms = set()
    for number in (n for document in results.values() for n in _numbers(document)):
        for digits in (1, 2, 3):
            quoted_forms.add(f"{100 * number:.{digits}f}")
            quoted_forms.add(f"{100 * abs(number):.{digits}f}")
    stale = []
    for sentence in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)):
        for quoted in re.findall(r"(\d+\.\d+)\s?%", sentence):
            if quoted not in quoted_forms:
                stale.append(f"{quoted}% in: {sentence.strip()[:200]}")
    return stale


def setup_text(results: dict) -> str:
    """The experiment's setup in a few lines, from the baseline's recorded flags."""
    config = results["baseline.json"]["config"]
    sizes = " → ".join(map(str, (784, *config["hidden"], 10)))
    return (
        f"Network {sizes} (sigmoid hidden layers, softmax output), mean cross-entropy, minibatch SGD with "
        f"batch size {config['batch_size']}, learning rate {config['lr']:g}, {config['epochs']} epochs, seed "
        f"{config['seed']}; weights and biases N(0, 1)·√(1/fan_in); pixels scaled to [0, 1], then "
        "(x − 0.1307) / 0.3081. Forward pass, backward pass and update are written out by hand in JAX and "
        "checked against automatic differentiation in the tests. Real MNIST: 60,000 training and 10,000 "
        "test images."
    )


def commands(results: dict) -> list[str]:
    """The commands that wrote the results, with the flags each JSON recorded."""
    sweep = "python experiments/lr_sweep.py"
    if results["lr_sweep.json"]["config"].get("save_params_dir"):
        sweep += f" --save-params {results['lr_sweep.json']['config']['save_params_dir']}"
    lines = ["python experiments/baseline.py", sweep]
    if "robustness/lr_sweep.json" in results:
        config = results["robustness/lr_sweep.json"]["config"]
        lines.append(
            f"python experiments/lr_sweep.py --seeds {config['seeds']} --validation {config['validation']} "
            f"--out {config['out']}"
        )
    if "diagnose/diagnose.json" in results:
        document = results["diagnose/diagnose.json"]
        lines.append(f"python experiments/diagnose.py {' '.join(document['params'].values())} --out {document['out']}")
    for name in OPTIMIZERS:
        if f"optimizers/{name}/lr_sweep.json" in results:
            config = results[f"optimizers/{name}/lr_sweep.json"]["config"]
            lines.append(
                f"python experiments/lr_sweep.py --optimizer {name} --lrs {','.join(f'{r:g}' for r in config['lrs'])} "
                f"--seeds {config['seeds']} --validation {config['validation']} --early-stop {config['early_stop']} "
                f"--out {config['out']}"
            )
    return lines + ['python experiments/report.py --authors "..." --present ...']


def reproduce_text(results: dict) -> str:
    """The appendix: commands, the software and device each result came from, and its wall times."""
    lines = [
        "Every figure and number in this report comes from these commands, run from the project's root "
        "after `pip install -e .` (or `conda env create -f environment.yml`):",
        "",
        "```",
        *commands(results),
        "```",
        "",
        "| result | JAX | Python | backend, device | total wall time | of which training |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, document in results.items():
        environment, seconds = document["environment"], document["seconds"]
        total = seconds["total"] if isinstance(seconds, dict) else seconds
        train = f"{seconds['train']:.1f} s" if isinstance(seconds, dict) else "–"
        lines.append(
            f"| {name} | {environment['jax']} | {environment['python']} | {environment['backend']}, "
            f"{environment['device']} | {total:.1f} s | {train} |"
        )
    return "\n".join(lines)


def declaration_rows(present: list[str]) -> list[tuple[str, str]]:
    """(exercise, willing to present?) for each exercise of the sheet."""
    return [(title, "yes" if key in present else "no") for key, title in PRESENTABLE.items()]
