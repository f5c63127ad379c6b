"""Integer-only inference of trained networks: float32 against integer test accuracy at each weight
width, after training (post-training quantization) and after quantization-aware fine-tuning.

python experiments/quantize.py figures/params/quantize/lr_1_seed_{1,2,3,4,5}.npz --bits 8,4,2,1 \\
    --fine-tuned figures/quantize/finetune_2bit figures/quantize/finetune_1bit --out figures/quantize
"""

import sys
import time

from fmlp.run import flags, interrupts


def main() -> None:
    started = time.perf_counter()
    parser = flags.quantize_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if problem := flags.can_create_folder(args.out):
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")

    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp import data
    from fmlp.analysis import plots
    from fmlp.embedded import integer, quantize_study
    from fmlp.nn import saved
    from fmlp.run import metrics_json

    try:
        networks = [saved.load(path) for path in args.params]
        for path, network in zip(args.params, networks):
            saved.check_classifier(path, network.architecture)
            for bits in args.bits:  # the one check of every conversion, before any work
                try:
                    integer.from_float(network.architecture, network.params, bits)
                except ValueError as error:
                    raise ValueError(f"{path}: at {bits} bits: {error}") from None
        candidates = [quantize_study.fine_tuned(folder, args.params) for folder in args.fine_tuned]
        tuned = quantize_study.best_per_width(candidates)
        tuned_networks = [[saved.load(path) for path in run.paths] for run in tuned]
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        mnist, origin = data.load(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    pixels, labels = mnist.test_images.reshape(-1, integer.PIXELS), mnist.test_labels

    references = [quantize_study.float_classes(network, pixels) for network in networks]
    float_accuracies = [float((reference == labels).mean()) for reference in references]
    records = []
    for path, network, reference, accuracy in zip(args.params, networks, references, float_accuracies):
        rows = [quantize_study.measure(network, bits, pixels, labels, reference) for bits in args.bits]
        parameters = sum(layer.w.size + layer.b.size for layer in network.params)
        records.append({"params": str(path), "parameters": parameters, "float32_test_accuracy": accuracy,
                        "post_training": rows})  # fmt: skip
    fine_tuned = []
    for run, run_networks in zip(tuned, tuned_networks):
        rows = [
            quantize_study.measure(network, run.bits, pixels, labels, reference) | {"params": str(path)}
            for path, network, reference in zip(run.paths, run_networks, references)
        ]
        fine_tuned.append({"bits": run.bits, "learning_rate": run.learning_rate, "rate_decay": run.rate_decay,
                           "folder": str(run.folder), "networks": rows})  # fmt: skip
    measured = [row for record in records for row in record["post_training"]]
    measured += [row for run in fine_tuned for row in run["networks"]]
    if not all(row["numpy_equals_jax"] for row in measured):
        sys.exit("error: the NumPy reference and the JAX integer program disagree; nothing written")

    summary = {
        "post_training": [
            {"bits": bits} | quantize_study.summary([r["post_training"][i] for r in records], float_accuracies)
            for i, bits in enumerate(args.bits)
        ],
        "fine_tuned": [
            {"bits": run["bits"], "learning_rate": run["learning_rate"], "rate_decay": run["rate_decay"]}
            | quantize_study.summary(run["networks"], float_accuracies)
            for run in fine_tuned
        ],
    }
    choices = [{"folder": str(run.folder), "bits": run.bits, "learning_rate": run.learning_rate,
                "rate_decay": run.rate_decay, "val_accuracy": run.val_accuracy} for run in candidates]  # fmt: skip
    document = {
        "config": flags.flag_values(args),
        "environment": metrics_json.environment(),
        "data": origin._asdict(),
        "float32": {"test_accuracy": quantize_study.stats.summarize(float_accuracies)},
        "networks": records,
        "fine_tuned": fine_tuned,
        "fine_tuning_choices": choices,  # every run given, with the validation accuracy it was chosen by
        "summary": summary,
        "summary_interval": quantize_study.stats.INTERVAL,
        "seconds": {"total": time.perf_counter() - started},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plots.save_png(quantize_study.bits_figure(document), args.out / "quantize_bits.png")
    metrics_json.write_json(args.out / "quantize.json", document)
    for key in ("post_training", "fine_tuned"):
        for row in summary[key]:
            accuracy, difference = row["test_accuracy"], row["difference_points"]
            print(f"{key.replace('_', '-')} {row['bits']}-bit: {accuracy['mean']:.2%} "
                  f"({difference['mean']:+.2f} points against float32)")  # fmt: skip
    print(f"float32: {document['float32']['test_accuracy']['mean']:.2%}; wrote {args.out / 'quantize.json'}")


if __name__ == "__main__":
    interrupts.main_or_exit(main, "interrupted; nothing written")
