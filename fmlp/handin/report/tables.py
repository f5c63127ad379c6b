"""The report's tables, each built from the metrics JSON (and the benchmarks' JSON), so that no number
in a table is copied by hand. Each function takes the loaded results, keyed by their path under the
results folder, and returns a Markdown table."""

import math
from collections.abc import Callable

from fmlp import description
from fmlp.analysis.stats import early_stopped, epochs_to_reach, half_width, select, summarize, summary
from fmlp.embedded import cortex_m

OPTIMIZERS = tuple(name for name in description.OPTIMIZERS if name != "sgd")  # beside plain SGD, in the appendix
BENCHMARKS = ("benchmark_cpu.json", "benchmark_gpu.json")  # in the docs folder
CORES = tuple(cortex_m.TARGETS)
WIDTHS = tuple(reversed(description.WEIGHT_BITS))  # widest first, as the tables list them
# export_c.py --run's measurements on QEMU's boards, in the docs folder
CORTEX_M = tuple(f"cortex_m/{core}_{bits}bit.json" for core in CORES for bits in WIDTHS)
MEASURED = BENCHMARKS + CORTEX_M  # the report's results that docs/ holds, not the results folder
PATIENCE = 5  # of the early stopping replayed on the optimizers' full runs


def cell(text) -> str:
    """A recorded text as a Markdown table cell: its | escaped, so that it stays one cell."""
    return str(text).replace("|", "\\|")


def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a percentage; "–" for a value that was not measured or is not a finite number."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f}%".replace("-", "−")  # a minus sign, not a hyphen


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
        interval = _interval(final["ci95"])
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
            + _interval(interval)
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


def _interval(interval: list[float] | None) -> str:
    """A 95% interval of an accuracy as "low – high" in percent, cut at 0 and 100% where the Student t
    interval passes them (marked "cut"); "–" for none (fewer than two seeds)."""
    if interval is None:
        return "–"
    low, high = max(interval[0], 0.0), min(interval[1], 1.0)
    cut = " (cut)" if (low, high) != tuple(interval) else ""
    return f"{percent(low)} – {percent(high)}{cut}"


def _chosen_by_seed(document: dict) -> dict[int, float]:
    """Test accuracy by seed at the document's chosen rate and epoch."""
    selected = document["selected"]
    return {run["seed"]: run["epochs"][selected["epoch"] - 1]["test_accuracy"] for run in document["runs"]
            if run["learning_rate"] == selected["learning_rate"]}  # fmt: skip


def optimizers_table(results: dict) -> str:
    """Per optimizer, every run trained for the whole budget: the rate and epoch chosen on the mean
    validation accuracy over seeds, the test accuracy of that choice, its difference from plain SGD's
    choice paired by seed (the same seed starts from the same parameters and sees the same batches), and
    the epochs the chosen rate needs to reach 98% validation accuracy."""
    rows = [
        "| optimizer | rates tried | chosen rate, epoch | mean validation accuracy | its test accuracy (95% interval) "
        "| minus plain SGD, points, paired by seed (95%) | epochs to 98% validation accuracy, mean |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    documents = _optimizer_documents(results)
    baseline = _chosen_by_seed(documents[0][1]) if documents else {}
    for label, document in documents:
        selected = document["selected"]
        rates = ", ".join(f"{row['learning_rate']:g}" for row in document["summary"])
        reached = [epoch for epoch in epochs_to_reach(document["runs"], selected["learning_rate"], 0.98) if epoch]
        reach_text = (
            f"{sum(reached) / len(reached):.1f} ({len(reached)} of {selected['seeds']} seeds)" if reached else "never"
        )
        chosen = _chosen_by_seed(document)
        differences = summarize([chosen[seed] - baseline[seed] for seed in chosen if seed in baseline])
        paired = "–"
        if document is not documents[0][1] and differences["std"] is not None:
            paired = f"{percent(differences['mean'])} ± {percent(half_width(differences['std'], differences['n']))}"
        rows.append(
            f"| {label} | {rates} | {selected['learning_rate']:g}, {selected['epoch']} | "
            f"{percent(selected['val_accuracy'])} | {percent(selected['test_accuracy'])} "
            f"({_interval(selected['test_accuracy_ci95'])}) | {paired} | {reach_text} |"
        )
    return "\n".join(rows)


def _optimizer_documents(results: dict) -> list[tuple[str, dict]]:
    """(label, sweep JSON) of plain SGD and each optimizer whose full-budget sweep is there."""
    sources = [("SGD (ours)", "robustness/lr_sweep.json")] + [
        (name, f"optimizers/{name}/lr_sweep.json") for name in OPTIMIZERS
    ]
    return [(label, results[name]) for label, name in sources
            if name in results and results[name]["config"].get("early_stop") is None]  # fmt: skip


def early_stopping_table(results: dict) -> str:
    """Early stopping replayed on the same full runs at each optimizer's chosen rate: the epochs it
    trains and the test accuracy of the parameters it keeps, against the full budget's chosen epoch."""
    rows = [
        f"| optimizer | chosen rate | epochs trained with patience {PATIENCE}, mean (min – max) | "
        "test accuracy of the kept parameters (95% interval) | at the chosen epoch | kept minus chosen, points (95%) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, document in _optimizer_documents(results):
        selected = document["selected"]
        group = [run for run in document["runs"] if run["learning_rate"] == selected["learning_rate"]]
        replays = [early_stopped(run["epochs"], PATIENCE) for run in group]
        trained = [stop for stop, _ in replays]
        kept = summarize([kept["test_accuracy"] for _, kept in replays])
        at_chosen = [run["epochs"][selected["epoch"] - 1]["test_accuracy"] for run in group]
        differences = summarize([k["test_accuracy"] - c for (_, k), c in zip(replays, at_chosen)])
        spread = "" if differences["std"] is None else f" ± {percent(half_width(differences['std'], len(group)))}"
        rows.append(
            f"| {label} | {selected['learning_rate']:g} | {sum(trained) / len(trained):.1f} ({min(trained)} – "
            f"{max(trained)}) | {percent(kept['mean'])} ({_interval(kept['ci95'])}) | "
            f"{percent(selected['test_accuracy'])} | "
            f"{percent(differences['mean'])}{spread} |"
        )
    return "\n".join(rows)


ACTIVATION_SEEDS = (1, 2, 3)


def activation_runs(results: dict) -> list[tuple[str, list[dict]]]:
    """(activation, runs of seeds 1-3) for sigmoid (from the five-seed grid) and each activation sweep there."""
    sources = [("sigmoid", "robustness/lr_sweep.json")] + [(name, f"activations/{name}/lr_sweep.json")
                                                          for name in ("tanh", "relu")]  # fmt: skip
    return [(name, [run for run in results[path]["runs"] if run["seed"] in ACTIVATION_SEEDS])
            for name, path in sources if path in results]  # fmt: skip


def activations_table(results: dict) -> str:
    """Per activation, the same rates, seeds 1-3 and validation split: the final test accuracy by rate
    (mean over seeds, or how many seeds diverged), and the rate and epoch chosen on validation with the
    test accuracy of that choice."""
    pairs = activation_runs(results)
    rates = [row["learning_rate"] for row in summary(pairs[0][1])] if pairs else []
    rows = [
        "| activation | " + " | ".join(f"lr {rate:g}" for rate in rates) + " | chosen rate, epoch | its test accuracy "
        "(95% interval) |",
        "| --- |" + " --- |" * (len(rates) + 2),
    ]
    for name, runs in pairs:
        cells = []
        for row in summary(runs):
            final, diverged = row["final_test_accuracy"], row.get("diverged", 0)
            cells.append(f"diverged ({diverged} of {diverged + final['n']})" if diverged and not final["n"]
                         else percent(final["mean"]) + (f", {diverged} diverged" if diverged else ""))  # fmt: skip
        selected = select(runs)
        rows.append(
            f"| {name} | " + " | ".join(cells) + f" | {selected['learning_rate']:g}, {selected['epoch']} | "
            f"{percent(selected['test_accuracy'])} ({_interval(selected['test_accuracy_ci95'])}) |"
        )
    return "\n".join(rows)


def gradcheck_table(results: dict) -> str:
    """The hand-written gradients against autodiff and central finite differences (float64)."""
    document = results["gradcheck.json"]
    autodiff, differences = document["autodiff"], document["finite_differences"]
    return "\n".join(
        [
            "| compared with | what is compared | largest relative error |",
            "| --- | --- | --- |",
            f"| autodiff (tests/autodiff.py) | every gradient entry, relative to the largest entry of its "
            f"array | {autodiff['max_relative_error']:.1e} |",
            f"| autodiff | the loss | {autodiff['loss_difference']:.1e} (absolute) |",
            f"| central differences, step {differences['epsilon']:g} | the derivative along "
            f"{differences['directions']} random directions | {differences['max_relative_error']:.1e} |",
        ]
    )


QUANTIZE_TARGETS = {8: ("post-training", 0.05), 4: ("post-training", 0.1), 2: ("fine-tuned", 0.3),
                    1: ("fine-tuned", 0.6)}  # fmt: skip


def _points(summary: dict) -> str:
    """A difference in points, mean and 95% interval: "−0.28 (−0.35 to −0.21)"."""
    mean, interval = summary["mean"], summary["ci95"]
    if mean is None:
        return "–"
    text = f"{mean:+.2f}" + (f" ({interval[0]:+.2f} to {interval[1]:+.2f})" if interval else "")
    return text.replace("-", "−")


def quantize_table(results: dict) -> str:
    """Per weight width: flash bytes of the weights, the integer-only test accuracy after training and
    after quantization-aware fine-tuning (mean over seeds, and the difference from each seed's float32
    network in points with its 95% interval), and the target."""
    document = results["quantize/quantize.json"]
    summary = document["summary"]
    tuned = {row["bits"]: row for row in summary["fine_tuned"]}
    flash = {row["bits"]: row["footprint"]["flash_weights"] for row in document["networks"][0]["post_training"]}
    float32 = document["float32"]["test_accuracy"]
    rows = [
        "| weights | flash of the weights | post-training accuracy | against float32 (points) | fine-tuned accuracy "
        "| against float32 (points) | target (points) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| float32 | {4 * document['networks'][0]['parameters']:,} B | {percent(float32['mean'])} "
        f"({_interval(float32['ci95'])}) | | | | |",
    ]
    for row in summary["post_training"]:
        bits, fine = row["bits"], tuned.get(row["bits"])
        when, target = QUANTIZE_TARGETS.get(bits, ("", None))
        rows.append(
            f"| {bits} bit{'s' * (bits > 1)} | {flash[bits]:,} B | {percent(row['test_accuracy']['mean'])} | "
            f"{_points(row['difference_points'])} | {percent(fine['test_accuracy']['mean']) if fine else '–'} | "
            f"{_points(fine['difference_points']) if fine else '–'} | "
            + (f"within {target:g}, {when}" if target is not None else "")
            + " |"
        )
    return "\n".join(rows)


def speed_table(results: dict) -> str:
    """The benchmark's main ratios, measured on each machine in one run (docs/benchmark_*.json)."""
    rows = [
        "| machine | best float32 matmul | training epoch | epoch over its GEMM-only floor | hand-written over "
        "autodiff epoch | 7-rate sweep over 7 single epochs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in BENCHMARKS:
        if name not in results:
            continue
        document = results[name]
        ceiling = document["best_matmul_gflops"] if "best_matmul_gflops" in document else document["matmul_gflops"]
        floor = document.get("epoch_over_gemm_only")
        rows.append(
            f"| {cell(document['machine']['device'])} ({document['machine']['cpu_count']} cores, JAX "
            f"{document['machine']['jax']}) | {ceiling:,.0f} GFLOP/s | {document['seconds']['epoch']:.3f} s | "
            f"{'–' if floor is None else f'{floor:.2f}'} | {document['hand_over_autodiff']:.2f} | "
            f"{document['sweep_over_sequential']:.2f} |"
        )
    return "\n".join(rows)


def cortex_m_runs(results: dict) -> dict[str, dict[int, dict]]:
    """The Cortex-M measurements loaded, by core and weight width."""
    found: dict[str, dict[int, dict]] = {}
    for core in CORES:
        for bits in WIDTHS:
            document = results.get(f"cortex_m/{core}_{bits}bit.json")
            if document is not None:
                found.setdefault(core, {})[bits] = document
    return found


def _cortex_m_network(results: dict) -> str:
    """The saved network the Cortex-M runs exported, as their JSON names it ("NETWORK" where they differ)."""
    networks = {run["params"] for by_bits in cortex_m_runs(results).values() for run in by_bits.values()}
    return networks.pop() if len(networks) == 1 else "NETWORK"


def cortex_m_table(results: dict) -> str:
    """Per core and width: the images that agree with JAX, instructions per image, flash and RAM (of
    which the stack's peak)."""
    rows = [
        "| core (QEMU board) | weights | agree with JAX | accuracy | instructions per image | flash "
        "| RAM (of which stack) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for core, by_bits in cortex_m_runs(results).items():
        for bits, run in by_bits.items():
            rows.append(
                f"| {core} ({cell(run['machine'])}) | {bits} bit | {run['agree']:,} of {run['images']:,} | "
                f"{percent(run['accuracy'])} | "
                f"{run['instructions_per_image']:,.0f} | {run['flash_bytes']:,} B | {run['ram_bytes']:,} B "
                f"({run['stack_bytes']:,} B) |"
            )
    return "\n".join(rows)


def provenance_table(results: dict) -> str:
    """One row per result: the JAX and Python it ran with, its backend and device, its wall time and, of
    that, its training time."""
    lines = [
        "| result | JAX | Python | backend, device | total wall time | of which training |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, document in results.items():
        if name in MEASURED:
            continue
        environment, seconds = document["environment"], document["seconds"]
        total = seconds["total"] if isinstance(seconds, dict) else seconds
        train = f"{seconds['train']:.1f} s" if isinstance(seconds, dict) and "train" in seconds else "–"
        lines.append(
            f"| {name} | {cell(environment['jax'])} | {cell(environment['python'])} | {cell(environment['backend'])}, "
            f"{cell(environment['device'])} | {total:.1f} s | {train} |"
        )
    return "\n".join(lines)


TABLES = {
    "baseline_epochs": baseline_epochs_table,
    "sweep": sweep_table,
    "robustness": robustness_table,
    "selected": selected_table,
    "diagnose": diagnose_table,
    "optimizers": optimizers_table,
    "early_stopping": early_stopping_table,
    "gradcheck": gradcheck_table,
    "activations": activations_table,
    "speed": speed_table,
    "quantize": quantize_table,
    "provenance": provenance_table,
    "cortex_m": cortex_m_table,
}


def _epochs(document: dict) -> int:
    return document["config"]["epochs"]


def caption(name: str, results: dict) -> str:
    """The caption of table `name`, its numbers read from the results it is built from."""
    sweep, robust = results["lr_sweep.json"], results.get("robustness/lr_sweep.json")
    grad, quantized = results.get("gradcheck.json"), results.get("quantize/quantize.json")
    seeds = f"{robust['config']['seeds']} seeds" if robust else ""
    activation_seeds = sorted({run["seed"] for _, runs in activation_runs(results) for run in runs})
    texts = {
        "baseline_epochs": lambda: "The baseline's test accuracy and loss at a few epochs.",
        "sweep": lambda: f"The learning-rate sweep, one seed: final and best values over {_epochs(sweep)} epochs.",
        "robustness": lambda: (
            f"{seeds.capitalize()} per rate: final test accuracy over seeds and the best validation accuracy."
        ),
        "selected": lambda: "The learning rate and epoch chosen on validation, and the test accuracy of that choice.",
        "diagnose": lambda: "Saturation and calibration of the saved networks on the test set.",
        "provenance": lambda: "Where each result was made: its software and device, and its wall time.",
        "cortex_m": lambda: (
            "The exported integer network bare-metal on QEMU's Cortex-M boards, on every test image: "
            "instructions per image (QEMU counts instructions, not cycles), flash and RAM "
            f"(python experiments/export_c.py {_cortex_m_network(results)} --bits B --target CORE --out DIR --run)."
        ),
        "optimizers": lambda: (
            f"Every optimizer under one protocol: {_epochs(robust)} epochs, rate and epoch chosen "
            f"on mean validation accuracy over {seeds}."
        ),
        "early_stopping": lambda: (
            f"Early stopping (patience {PATIENCE}) replayed on the same runs: what it saves and what it costs."
        ),
        "gradcheck": lambda: (
            f"The hand-written gradients (seed {grad['config']['seed']}, one batch of "
            f"{grad['config']['batch_size']} MNIST images, float64) against two references."
        ),
        "activations": lambda: (
            "Sigmoid, tanh and relu under one protocol: seeds "
            f"{', '.join(map(str, activation_seeds))}, the {robust['config']['validation']:,}-image validation split, "
            f"{_epochs(robust)} epochs; the final test accuracy by rate and the choice on validation."
        ),
        "quantize": lambda: (
            "Integer-only inference (8-bit activations, integer weights of each width), "
            f"{len(quantized['networks'])} networks: test accuracy after training and after quantization-aware "
            "fine-tuning, against each network's float32 accuracy."
        ),
        "speed": lambda: (
            "Speed, each machine against its own matmul ceiling in one run (python experiments/benchmark.py)."
        ),
    }
    return texts[name]()
