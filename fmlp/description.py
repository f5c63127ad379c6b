"""What an experiment is, as one immutable, hashable value: a tree of NamedTuples with every default
written once, here.

    Experiment
      network    Architecture(sizes, activation, weight_bits, loss)       what is trained
      training   Training(epochs, batch_size, optimizer, momentum, ...)  how it is trained
      data       Data(source, folder, download_timeout, train_limit, validation)
      design     Design(script, learning_rates, seed, seeds, networks)  which lanes: rates x seeds, or networks
      outputs    Outputs(folder, save_params, quiet, resume, compile_cache)
      lanes      Lanes(group, devices, eval_group, eval_chunk)         how the lanes share the machine
      processes  Processes(coordinator, num_processes, process_id, ...)

The scripts' flags are built from it and parsed into it once (fmlp.run.flags); the library reads it and
nothing else. The same value is the compiled programs' static argument. `identity` says which fields
define a result; `to_config` writes the description out as the metrics JSON's "config" (today's keys,
so the contract only grows) and `from_config` reads one back, a field an older file lacks taking its
default. Imports nothing of fmlp, so that checking the flags stays instant.
"""

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# The lists of choices, each written once; each name has its implementation in one table of the library.
ACTIVATIONS = ("sigmoid", "tanh", "relu")  # of the hidden layers: fmlp.nn.layers.ACTIVATIONS
LOSSES = ("cross_entropy",)  # of the output: fmlp.nn.losses.LOSSES
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop")  # fmlp.training.optimizers.OPTIMIZERS
WEIGHT_BITS = (1, 2, 4, 8)  # of quantized weights: codes pack whole into bytes; 1 bit is the sign, 2 bits ternary
SOURCES = ("auto", "tfds", "mirror", "idx")  # of MNIST: fmlp.data.load
SCRIPTS = ("baseline", "lr_sweep", "finetune")  # the training scripts, named as their JSON and checkpoint are

# Constants of the method.
INPUTS, CLASSES = 784, 10  # MNIST's pixels and digits
MNIST_TRAIN_SIZE = 60000
EVAL_CHUNK = 2000  # images per evaluation product: large enough to be efficient, small enough for flat memory
SWEEP_RATES = (1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001)  # lr_sweep.py's rates: the sheet's range, 1 to 0.001
FINE_TUNE_RATES = (0.3, 0.1, 0.03)  # finetune.py's rates: below the rate the networks were trained at
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1  # jax.random.key takes a signed 64-bit seed


class Architecture(NamedTuple):
    """What is trained: layer widths (inputs first, classes last), the hidden layers' activation (one of
    ACTIVATIONS), the width of the weights in the forward pass (quantization-aware training; None: float32
    as they are) and the loss the output is trained on (one of LOSSES)."""

    sizes: tuple[int, ...] = (INPUTS, 512, 128, CLASSES)
    activation: str = "sigmoid"
    weight_bits: int | None = None
    loss: str = "cross_entropy"


class Training(NamedTuple):
    """How it is trained: epochs, minibatch size, the optimizer (one of OPTIMIZERS) with its momentum
    (momentum and nesterov only), the factor every rate is multiplied by after each epoch, and the
    patience of early stopping on validation accuracy (None: every epoch is trained)."""

    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    momentum: float | None = None
    rate_decay: float = 1.0
    early_stop: int | None = None


class Data(NamedTuple):
    """Where MNIST comes from (one of SOURCES, with the IDX or TFDS folder and the download's time limit in
    seconds), the first train_limit training images (None: all) and the last `validation` of them held out."""

    source: str = "auto"
    folder: Path | None = None
    download_timeout: float = 60.0
    train_limit: int | None = None
    validation: int = 0


class Design(NamedTuple):
    """Which lanes run: `script` (one of SCRIPTS) trains every learning rate with seeds seed, seed + 1, ...,
    seed + seeds - 1 (rate-major); finetune starts one lane per rate and saved network, the k-th network
    as seed `seed + k - 1`."""

    script: str = "baseline"
    learning_rates: tuple[float, ...] = (0.1,)
    seed: int = 1
    seeds: int = 1
    networks: tuple[str, ...] = ()


class Outputs(NamedTuple):
    """Where results go: the folder of the JSON, figures and checkpoint; the final parameters' file
    (baseline) or folder (lr_sweep, finetune), None for none; progress bar; --resume; the compilation cache."""

    folder: Path = Path("figures")
    save_params: Path | None = None
    quiet: bool = False
    resume: bool = False
    compile_cache: bool = True


class Lanes(NamedTuple):
    """How the lanes share the machine, which never changes what they compute: lanes trained together by
    vmap (None: 1 on a CPU, all on an accelerator), devices the lanes are split over, lanes evaluated
    together (None: as many as fmlp.training.memory_budget allows) and images per evaluation product."""

    group: int | None = None
    devices: int = 1
    eval_group: int | None = None
    eval_chunk: int = EVAL_CHUNK


class Processes(NamedTuple):
    """Several processes (fmlp.scale.distributed): process 0's HOST:PORT, how many, this one's number, and
    the seconds to wait for the others and for a process that stops answering."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    coordinator_timeout: float = 60.0
    heartbeat_timeout: int = 20


class Experiment(NamedTuple):
    """One experiment, whole. Every default is its parts' defaults: `Experiment()` is baseline.py's run."""

    network: Architecture = Architecture()
    training: Training = Training()
    data: Data = Data()
    design: Design = Design()
    outputs: Outputs = Outputs()
    lanes: Lanes = Lanes()
    processes: Processes = Processes()


def updated(experiment: Experiment, **parts: dict) -> Experiment:
    """The experiment with fields of its parts replaced, e.g. updated(e, training={"epochs": 5})."""
    return experiment._replace(**{part: getattr(experiment, part)._replace(**fields) for part, fields in parts.items()})


def defaults(script: str) -> Experiment:
    """What a script runs with no flags: baseline.py the reference run at lr 0.1; lr_sweep.py every rate of
    SWEEP_RATES; finetune.py 10 epochs at FINE_TUNE_RATES (the networks and their width come from its
    arguments)."""
    if script == "baseline":
        return Experiment()
    if script == "lr_sweep":
        return Experiment(design=Design(script, SWEEP_RATES))
    return Experiment(training=Training(epochs=10), design=Design(script, FINE_TUNE_RATES))


# Which fields define a result: a checkpoint resumes, and the hand-in reuses a result, only where these
# are equal. Every field of Experiment is in exactly one of the two (tests/test_description.py).
DEFINING = (
    "network.sizes", "network.activation", "network.weight_bits", "network.loss",
    "training.epochs", "training.batch_size", "training.optimizer", "training.momentum", "training.rate_decay",
    "training.early_stop",
    "data.train_limit", "data.validation",
    "design.script", "design.learning_rates", "design.seed", "design.seeds", "design.networks",
)  # fmt: skip
NOT_DEFINING = (
    "data.source", "data.folder", "data.download_timeout",  # the same MNIST, checked against its checksum
    "outputs.folder", "outputs.save_params", "outputs.quiet", "outputs.resume", "outputs.compile_cache",
    "lanes.group", "lanes.devices", "lanes.eval_group", "lanes.eval_chunk",
    "processes.coordinator", "processes.num_processes", "processes.process_id", "processes.coordinator_timeout",
    "processes.heartbeat_timeout",
)  # fmt: skip


def field_paths(tree: NamedTuple = Experiment(), prefix: str = "") -> tuple[str, ...]:
    """Every leaf field of the description as a dotted path, e.g. "training.epochs"."""
    paths = []
    for name, value in zip(tree._fields, tree):
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            paths.extend(field_paths(value, f"{prefix}{name}."))
        else:
            paths.append(prefix + name)
    return tuple(paths)


def field(experiment: Experiment, path: str) -> Any:
    """The value at a dotted path of `field_paths`."""
    value = experiment
    for name in path.split("."):
        value = getattr(value, name)
    return value


def identity(experiment: Experiment) -> dict[str, Any]:
    """What defines the experiment's result: the DEFINING fields by path."""
    return {path: field(experiment, path) for path in DEFINING}


def differences(there: Experiment, now: Experiment) -> list[str]:
    """The defining fields in which two experiments differ, each as "path <there's> there, <now's> now"."""
    first, second = identity(there), identity(now)
    return [f"{path} {first[path]!r} there, {second[path]!r} now" for path in DEFINING if first[path] != second[path]]


def rate_name(rate: float) -> str:
    """The shortest decimal that gives the rate back in float32, the precision training uses: "0.1", "1",
    "0.0003". Distinct float32 rates get distinct names (parameter files are named with it)."""
    return np.format_float_positional(np.float32(rate), trim="-")


def hidden(network: Architecture) -> list[int]:
    """The hidden layers' widths, as --hidden takes them."""
    return list(network.sizes[1:-1])


def _path(value: Path | None) -> str | None:
    return None if value is None else str(value)


def to_config(experiment: Experiment) -> dict[str, Any]:
    """The description written out as the metrics JSON's "config": the flags' names and values, JSON-ready,
    with the keys of earlier versions (a contract that only grows) and "loss" since the loss table."""
    network, training, data, design, outputs, lanes, processes = experiment
    config = {
        "epochs": training.epochs,
        "batch_size": training.batch_size,
        "seed": design.seed,
        "hidden": hidden(network),
        "activation": network.activation,
        "loss": network.loss,
        "out": str(outputs.folder),
        "train_limit": data.train_limit,
        "validation": data.validation,
        "early_stop": training.early_stop,
        "lane_group": lanes.group,
        "optimizer": training.optimizer,
        "momentum": training.momentum,
        "rate_decay": training.rate_decay,
        "quiet": outputs.quiet,
        "resume": outputs.resume,
        "no_compile_cache": not outputs.compile_cache,
        "coordinator": processes.coordinator,
        "num_processes": processes.num_processes,
        "process_id": processes.process_id,
        "coordinator_timeout": processes.coordinator_timeout,
        "heartbeat_timeout": processes.heartbeat_timeout,
        "data_source": data.source,
        "data_dir": _path(data.folder),
        "download_timeout": data.download_timeout,
    }
    if design.script == "baseline":
        return config | {"lr": design.learning_rates[0], "save_params": _path(outputs.save_params)}
    if design.script == "finetune":
        config |= {"params": list(design.networks), "bits": network.weight_bits}
    else:
        config |= {"seeds": design.seeds}
    return config | {"lrs": list(design.learning_rates), "save_params_dir": _path(outputs.save_params)}


def script_of(config: dict) -> str:
    """Which script a recorded config comes from, by the keys only that script records."""
    if "params" in config and "bits" in config:
        return "finetune"
    return "lr_sweep" if "lrs" in config else "baseline"


def _optional_path(value) -> Path | None:
    return None if value is None else Path(value)


def from_config(config: dict) -> Experiment:
    """The description a recorded "config" (of any version) writes out; a key it lacks has its field's
    default, so that an old JSON or checkpoint and a new run compare alike. ValueError naming the key
    when a value is not of its field's kind."""
    get = config.get
    script = script_of(config)
    design_defaults = Design()
    try:
        hidden_widths = tuple(int(width) for width in get("hidden", hidden(Architecture())))
        network = Architecture(
            (INPUTS, *hidden_widths, CLASSES),
            str(get("activation", Architecture().activation)),
            None if get("bits") is None else int(get("bits")),
            str(get("loss", Architecture().loss)),
        )
        training = Training(*(get(name, default) for name, default in Training._field_defaults.items()))
        data = Data(
            str(get("data_source", Data().source)),
            _optional_path(get("data_dir")),
            float(get("download_timeout", Data().download_timeout)),
            get("train_limit"),
            int(get("validation", 0)),
        )
        rates = (get("lr", design_defaults.learning_rates[0]),) if script == "baseline" else tuple(get("lrs", ()))
        design = Design(
            script,
            tuple(float(rate) for rate in rates),
            int(get("seed", design_defaults.seed)),
            int(get("seeds", 1)),
            tuple(str(path) for path in get("params", ())),
        )
        outputs = Outputs(
            Path(get("out", Outputs().folder)),
            _optional_path(get("save_params" if script == "baseline" else "save_params_dir")),
            bool(get("quiet", False)),
            bool(get("resume", False)),
            not get("no_compile_cache", False),
        )
        lanes = Lanes(get("lane_group"))
        processes = Processes(*(get(name, default) for name, default in Processes._field_defaults.items()))
    except (TypeError, ValueError) as error:
        raise ValueError(f"a recorded config that is not a description of an experiment ({error})") from None
    return Experiment(network, training, data, design, outputs, lanes, processes)
