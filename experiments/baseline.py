"""Trains the reference MLP (784-512-128-10, sigmoid, softmax) on MNIST with SGD; writes metrics and plots.

python experiments/baseline.py               # 30 epochs, lr 0.1, batch 64, seed 1 -> figures/
python experiments/baseline.py --epochs 3 --train-limit 5000 --out quick-run
"""

from fmlp.run import flags, interrupts
from fmlp.scale import supervisor


def main() -> None:
    parser = flags.baseline_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    flags.check_args(parser, args)
    experiment = flags.experiment(args, "baseline")

    supervisor.if_several_processes(args.coordinator, args.out / "baseline.checkpoint.npz")
    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp.run import experiment as run

    run.run(experiment)


if __name__ == "__main__":
    # A signal before training starts (while JAX loads) ends the script with one line too.
    interrupts.main_or_exit(main, "interrupted before anything was finished; nothing written")
