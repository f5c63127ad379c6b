"""Trains the reference MLP (784-512-128-10, sigmoid, softmax) on MNIST with SGD; writes metrics and plots.

python experiments/baseline.py               # 30 epochs, lr 0.1, batch 64, seed 1 -> figures/
python experiments/baseline.py --epochs 3 --train-limit 5000 --out quick-run
"""

from fmlp import flags, interrupts, supervise


def main() -> None:
    parser = flags.baseline_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    flags.check_args(parser, args)

    supervise.if_several_processes(args, "baseline")
    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp import experiment, plans

    plan = plans.baseline_plan(vars(args))
    experiment.run(args, plan, {} if args.save_params is None else {args.save_params: 0})


if __name__ == "__main__":
    # A signal before training starts (while JAX loads) ends the script with one line too.
    interrupts.main_or_exit(main, "interrupted before anything was finished; nothing written")
