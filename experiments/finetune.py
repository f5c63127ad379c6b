"""Fine-tunes trained networks with their weights quantized in the forward pass (straight-through in
the hand-written backward, float32 shadow weights), every rate with every network as one lane program.

python experiments/finetune.py figures/params/quantize/lr_1_seed_{1,2,3,4,5}.npz --bits 2 --validation 10000 \\
    --out figures/quantize/finetune_2bit --save-params figures/params/quantize/finetune_2bit
"""

import sys

from fmlp.run import flags, interrupts
from fmlp.scale import supervisor


def main() -> None:
    parser = flags.finetune_parser(__doc__.splitlines()[0])
    parser.set_defaults(hidden=None, activation=None)
    args = parser.parse_args()
    for flag in ("hidden", "activation"):
        if getattr(args, flag) is not None:
            parser.error(f"argument --{flag}: the network's shape comes from the params files")
    flags.check_args(parser, args)
    if args.save_params_dir is not None and (problem := flags.can_create_folder(args.save_params_dir)):
        parser.error(f"argument --save-params: {problem}")

    supervisor.if_several_processes(args.coordinator, args.out / "finetune.checkpoint.npz")
    # Imported only now, so that --help and refused flags answer without loading JAX.
    from fmlp.nn import saved
    from fmlp.run import experiment as run
    from fmlp.training import lanes

    try:
        networks = [saved.load(path) for path in args.params]
    except ValueError as error:
        sys.exit(f"error: {error}")
    first = networks[0].architecture
    for path, network in zip(args.params, networks):
        if network.architecture._replace(weight_bits=None) != first._replace(weight_bits=None):
            sys.exit(f"error: {path}: a {network.architecture.sizes} {network.architecture.activation} network, "
                     f"unlike {args.params[0]} ({first.sizes} {first.activation})")  # fmt: skip
    args.hidden, args.activation = list(first.sizes[1:-1]), first.activation
    try:
        saved.check_classifier(args.params[0], first)
    except ValueError as error:
        sys.exit(f"error: {error}")
    experiment = flags.experiment(args, "finetune")

    run.run(experiment, lanes.stack([network.params for network in networks]))


if __name__ == "__main__":
    # A signal before training starts (while JAX loads) ends the script with one line too.
    interrupts.main_or_exit(main, "interrupted before anything was finished; nothing written")
