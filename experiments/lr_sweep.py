"""Trains the reference MLP at several learning rates and seeds as one compiled program; writes metrics and plots.

python experiments/lr_sweep.py                     # 1.0,0.5,0.1,0.05,0.01,0.005,0.001, 30 epochs -> figures/
python experiments/lr_sweep.py --lrs 1.0,0.1,0.01 --epochs 5
python experiments/lr_sweep.py --seeds 5 --validation 10000 --out figures/robustness
"""

from fmlp.run import flags, interrupts
from fmlp.scale import supervisor


def main() -> None:
    parser = flags.sweep_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    flags.check_args(parser, args)
    if args.save_params_dir is not None and (problem := flags.can_create_folder(args.save_params_dir)):
        parser.error(f"argument --save-params: {problem}")
    if args.seed + args.seeds - 1 > flags.SEED_MAX:
        parser.error(
            f"argument --seeds: --seed {args.seed} + {args.seeds} seeds passes the largest seed {flags.SEED_MAX}"
        )
    experiment = flags.experiment(args, "lr_sweep")

    supervisor.if_several_processes(args.coordinator, args.out / "lr_sweep.checkpoint.npz")
    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp.run import experiment as run

    run.run(experiment)


if __name__ == "__main__":
    # A signal before training starts (while JAX loads) ends the script with one line too.
    interrupts.main_or_exit(main, "interrupted before anything was finished; nothing written")
