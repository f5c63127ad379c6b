"""Trains the reference MLP (784-512-128-10, sigmoid, softmax) on MNIST with SGD; writes metrics and plots.

python experiments/baseline.py               # 30 epochs, lr 0.1, batch 64, seed 1 -> figures/
python experiments/baseline.py --epochs 3 --train-limit 5000 --out quick-run
"""

from pathlib import Path

from fmlp import flags


def main() -> None:
    parser = flags.parser(__doc__.splitlines()[0])
    parser.add_argument("--lr", type=flags.learning_rate, default=0.1, help="learning rate (default 0.1)")
    parser.add_argument("--save-params", type=Path, default=None, help="write the final parameters to this .npz")
    args = parser.parse_args()
    flags.check_args(parser, args)

    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp import experiment, lanes, plots

    def figures(runs, title):
        return {
            "baseline_loss.png": plots.loss_figure(runs, title),
            "baseline_accuracy.png": plots.accuracy_figure(runs, title),
        }

    sizes = "-".join(map(str, flags.sizes(args)))
    plan = experiment.Plan(
        "baseline",
        (args.lr,),
        (args.seed,),
        figures,
        f"MLP {sizes}, {experiment.optimizer_name(args)} lr {args.lr:g}, batch {args.batch_size}",
    )
    experiment.run(
        args,
        plan,
        lambda state: {} if args.save_params is None else {args.save_params: lanes.final_params(state, 0)},
    )


if __name__ == "__main__":
    main()
