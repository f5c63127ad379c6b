"""Measures the insides of trained networks on the MNIST test set: saturation, calibration, errors, features.

python experiments/diagnose.py figures/params/lr_0.1_seed_1.npz figures/params/lr_1_seed_1.npz --out figures/diagnose
"""

import argparse
import sys
import time
from pathlib import Path

from fmlp.run import flags, interrupts


def write_set(out: Path, figures: dict, document: dict) -> None:
    """The figures and diagnose.json as one set, the previous set replaced only once the new one is
    whole: the new figures and JSON are written into a folder beside them first, so that one that
    cannot be written leaves the previous set as it was. Then the previous diagnose.json goes (so no
    JSON ever sits beside figures of another run), the new figures take their places, the previous
    run's other figures go, and the JSON comes last (its presence means the set is whole); a signal
    during these renames ends the script only after them."""
    from fmlp.analysis import plots
    from fmlp.files import remove_stale_temporaries, temporary_folder
    from fmlp.run import metrics_json

    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)  # a killed diagnosis's staging folder
    with temporary_folder(".diagnose.", beside=out) as staged:
        for file_name, figure in figures.items():
            plots.save_png(figure, staged / file_name)
        metrics_json.write_json(staged / "diagnose.json", document)
        with interrupts.whole(f"interrupted after the new diagnosis was written whole into {out}"):
            (out / "diagnose.json").unlink(missing_ok=True)
            for stale in out.glob("diagnose_*.png"):
                if stale.name not in figures:
                    stale.unlink()
            for file_name in figures:
                (staged / file_name).replace(out / file_name)
            (staged / "diagnose.json").replace(out / "diagnose.json")


def network_names(paths: list[Path]) -> list[str]:
    """The name each network's figures and entries go by: its file's name ("lr_0.1_seed_1"), or, when two
    files share one, every network's folder and file name ("relu_lr_0.1_seed_1")."""
    stems = [path.stem for path in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{path.resolve().parent.name}_{path.stem}" for path in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", type=Path, nargs="+", help=".npz files written by --save-params (fmlp.nn.saved.save)")
    parser.add_argument("--out", type=flags.folder, default=Path("figures/diagnose"), help="default figures/diagnose")
    parser.add_argument("--data-source", choices=flags.SOURCES, default="auto", help="where MNIST comes from")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder of the IDX files, or TFDS's data_dir")
    args = parser.parse_args()
    problem = flags.can_create_folder(args.out)
    if problem:
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")
    names = network_names(args.params)
    if len(set(names)) != len(names):
        parser.error("argument params: two files share a folder and a name; the figures are named after them")
    started = time.perf_counter()

    # Imported only now, so that --help and refused flags answer without loading JAX.
    import numpy as np

    from fmlp import data
    from fmlp.analysis import diagnostic_figures, diagnostics
    from fmlp.data.splits import device_splits
    from fmlp.nn import saved
    from fmlp.run import metrics_json

    networks = {}
    for name, path in zip(names, args.params):
        try:
            networks[name] = saved.load(path)
            saved.check_classifier(path, networks[name].architecture)
        except ValueError as error:
            sys.exit(f"error: {error}")
    try:
        mnist, origin = data.load(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    splits = device_splits(mnist)
    test_labels = np.asarray(mnist.test_labels, np.int64)
    results = {
        name: diagnostics.diagnose(network.architecture, network.params, splits.test_images, test_labels)
        for name, network in networks.items()
    }

    figures = {
        "diagnose_saturation.png": diagnostic_figures.saturation_figure(results),
        "diagnose_derivative.png": diagnostic_figures.derivative_figure(results),
        "diagnose_reliability.png": diagnostic_figures.reliability_figure(results),
    }
    for name, network in networks.items():
        features, units = diagnostics.strongest_features(np.asarray(network.params[0].w),
                                                         diagnostic_figures.FEATURES_DRAWN)  # fmt: skip
        figures[f"diagnose_confusion_{name}.png"] = diagnostic_figures.confusion_figure(name, results[name])
        figures[f"diagnose_errors_{name}.png"] = diagnostic_figures.errors_figure(
            name, results[name], mnist.test_images
        )
        figures[f"diagnose_features_{name}.png"] = diagnostic_figures.features_figure(name, features, units)
    document = {
        "params": {name: str(path) for name, path in zip(names, args.params)},
        # What each network was, by content: a sweep that trains them anew makes this diagnosis stale.
        "params_sha256": {name: saved.fingerprint(network.params, network.architecture)
                          for name, network in networks.items()},  # fmt: skip
        "out": str(args.out),
        "environment": metrics_json.environment(),
        "data": origin._asdict(),
        "networks": results,
        "seconds": time.perf_counter() - started,
    }
    write_set(args.out, figures, document)
    for name, result in results.items():
        layers = ", ".join(f"{layer['share_saturated']:.0%}" for layer in result["saturation"])
        calibration = result["calibration"]
        right, wrong = (
            "n/a" if value is None else f"{value:.1%}"
            for value in (calibration["mean_confidence_right"], calibration["mean_confidence_wrong"])
        )
        print(
            f"{name}: accuracy {result['accuracy']:.2%}; saturated activations per hidden layer {layers}; "
            f"ECE {calibration['ece']:.2%}; mean confidence right {right}, wrong {wrong}"
        )
    print(f"wrote {args.out / 'diagnose.json'} and {len(figures)} figures in {document['seconds']:.1f} s")


if __name__ == "__main__":
    interrupts.main_or_exit(main, "interrupted; nothing written (the previous diagnosis, if any, is as it was)")
