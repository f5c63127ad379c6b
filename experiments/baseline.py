"""Trains the reference MLP (784-512-128-10, sigmoid, softmax) on MNIST with SGD; writes metrics and plots.

python experiments/baseline.py               # 30 epochs, lr 0.1, batch 64, seed 1 -> figures/
python experiments/baseline.py --epochs 3 --train-limit 5000 --out quick-run
"""

import time

from tqdm import tqdm

from fmlp import experiment, mlp, plots, train


def main() -> None:
    started = time.perf_counter()
    parser = experiment.parser(__doc__.splitlines()[0])
    parser.add_argument("--lr", type=experiment.positive_float, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument(
        "--save-params", type=experiment.Path, default=None, help="write the final parameters to this .npz"
    )
    args = parser.parse_args()
    experiment.check_args(parser, args)

    splits = experiment.load_splits(args)
    data_seconds = time.perf_counter() - started

    with tqdm(total=args.epochs, desc="epochs", disable=args.quiet) as bar:

        def show(record: train.EpochRecord) -> None:
            bar.set_postfix(
                train_loss=f"{record.train_loss:.4f}",
                test_loss=f"{record.test_loss:.4f}",
                test_acc=f"{record.test_accuracy:.2%}",
            )
            bar.update()

        state, history = train.fit(
            train.init_state(args.seed, experiment.sizes(args)),
            *splits,
            epochs=args.epochs,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            on_epoch=show,
        )

    run = {
        "learning_rate": args.lr,
        "diverged_at_epoch": None,
        "epochs": [record._asdict() for record in history.records],
    }
    title = f"MLP {'-'.join(map(str, experiment.sizes(args)))}, SGD lr {args.lr:g}, batch {args.batch_size}"
    plots.save_png(plots.loss_figure(run, title), args.out / "baseline_loss.png")
    plots.save_png(plots.accuracy_figure([run], title), args.out / "baseline_accuracy.png")
    if args.save_params is not None:
        mlp.save(args.save_params, state.params)
    seconds = experiment.seconds(started, data_seconds, history)
    experiment.write_json(args.out / "baseline.json", experiment.metrics_document(args, [run], seconds))
    final = history.records[-1]
    print(
        f"final test accuracy {final.test_accuracy:.2%}, test loss {final.test_loss:.4f} after {args.epochs} epochs; "
        f"total {seconds['total']:.1f} s (train {seconds['train']:.1f} s); wrote {args.out / 'baseline.json'}"
    )


if __name__ == "__main__":
    main()
