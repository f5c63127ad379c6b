"""Trains the reference MLP at several learning rates at once (one vmapped program); writes metrics and plots.

python experiments/lr_sweep.py                     # 1.0,0.5,0.1,0.05,0.01,0.005,0.001, 30 epochs -> figures/
python experiments/lr_sweep.py --lrs 1.0,0.1,0.01 --epochs 5
"""

import time

from tqdm import tqdm

from fmlp import experiment, plots, sweep, train

DEFAULT_RATES = [1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001]


def main() -> None:
    started = time.perf_counter()
    parser = experiment.parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--lrs",
        type=experiment.positive_float_list,
        default=DEFAULT_RATES,
        help="comma-separated learning rates (default 1.0,0.5,0.1,0.05,0.01,0.005,0.001)",
    )
    args = parser.parse_args()
    experiment.check_args(parser, args)

    splits = experiment.load_splits(args)
    data_seconds = time.perf_counter() - started

    with tqdm(total=args.epochs, desc="epochs", disable=args.quiet) as bar:

        def show(epoch: int, records: tuple[train.EpochRecord, ...]) -> None:
            accuracies = [r.test_accuracy for r in records if r.test_accuracy is not None]
            bar.set_postfix(
                best_test_acc=f"{max(accuracies):.2%}" if accuracies else "n/a", diverged=len(records) - len(accuracies)
            )
            bar.update()

        _, history = sweep.fit_sweep(
            train.init_state(args.seed, experiment.sizes(args)),
            *splits,
            epochs=args.epochs,
            learning_rates=args.lrs,
            batch_size=args.batch_size,
            on_epoch=show,
        )

    runs = [
        {
            "learning_rate": rate,
            "diverged_at_epoch": diverged_at,
            "epochs": [record._asdict() for record in records],
        }
        for rate, diverged_at, records in zip(history.learning_rates, history.diverged_at_epoch, history.records)
    ]
    title = f"MLP {'-'.join(map(str, experiment.sizes(args)))}, SGD, batch {args.batch_size}: learning rates"
    plots.save_png(plots.accuracy_figure(runs, title), args.out / "lr_sweep_accuracy.png")
    plots.save_png(plots.sweep_loss_figure(runs, title), args.out / "lr_sweep_loss.png")
    seconds = experiment.seconds(started, data_seconds, history)
    experiment.write_json(args.out / "lr_sweep.json", experiment.metrics_document(args, runs, seconds))
    finals = ", ".join(
        f"{run['learning_rate']:g}: "
        + ("diverged" if run["diverged_at_epoch"] else f"{run['epochs'][-1]['test_accuracy']:.2%}")
        for run in runs
    )
    print(f"final test accuracy by learning rate: {finals}; total {seconds['total']:.1f} s")
    print(f"wrote {args.out / 'lr_sweep.json'}")


if __name__ == "__main__":
    main()
