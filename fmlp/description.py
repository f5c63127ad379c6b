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
LOSSES = {"cross_entropy": "cross-entropy"}  # of the output, with its name in prose: fmlp.nn.losses.LOSSES
OPTIMIZERS = {  # with its name in figures and prose: fmlp.training.optimizers.OPTIMIZERS
    "sgd": "SGD",  # our own written-out update; the others are optax's
    "momentum": "SGD, momentum",
    "nesterov": "SGD, Nesterov momentum",
    "adam": "Adam",
    "rmsprop": "RMSProp",
}
WEIGHT_BITS = (1, 2, 4, 8)  # of quantized weights: codes pack whole into bytes; 1 bit is the sign, 2 bits ternary
SOURCES = ("auto", "tfds", "mirror", "idx")  # of MNIST: fmlp.data.load
SCRIPTS = ("baseline", "lr_sweep", "finetune")  # the training scripts, named as their JSON and checkpoint are

# Constants of the method.
INPUTS, CLASSES = 784, 10  # MNIST's pixels and digits
MNIST_TRAIN_SIZE = 60000
MNIST_TEST_SIZE = 10000
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


def lane_count(experiment: Experiment) -> int:
    """How many lanes the design trains: every rate with every seed, or with every given network."""
    design = experiment.design
    per_rate = {"baseline": 1, "lr_sweep": design.seeds, "finetune": len(design.networks)}[design.script]
    return (1 if design.script == "baseline" else len(design.learning_rates)) * per_rate


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


def optimizer_title(training: Training) -> str:
    """The optimizer as figures name it, e.g. "SGD" or "SGD, Nesterov momentum 0.9"."""
    momentum = "" if training.momentum is None else f" {training.momentum:g}"
    return OPTIMIZERS[training.optimizer] + momentum


def hidden(network: Architecture) -> list[int]:
    """The hidden layers' widths, as --hidden takes them."""
    return list(network.sizes[1:-1])


# The written-out description (the metrics JSON's "config"): every field under its flag's name, which is
# the field's own name except where an earlier version named it otherwise (kept: the contract only grows).
KEYS = {
    "network.sizes": "hidden",  # the hidden widths only: inputs and classes are MNIST's
    "network.weight_bits": "bits",
    "data.source": "data_source",
    "data.folder": "data_dir",
    "design.learning_rates": "lrs",
    "design.networks": "params",
    "outputs.folder": "out",
    "outputs.save_params": "save_params_dir",
    "outputs.compile_cache": "no_compile_cache",  # negated
    "lanes.group": "lane_group",
}
BASELINE_KEYS = {"design.learning_rates": "lr", "outputs.save_params": "save_params"}  # one rate, one file
UNRECORDED = ("design.script", "lanes.devices", "lanes.eval_group", "lanes.eval_chunk")  # no flag sets them
NOT_FLAGS = {  # fields a script has no flag for, and so never records
    "baseline": ("design.seeds", "design.networks", "network.weight_bits"),
    "lr_sweep": ("design.networks", "network.weight_bits"),
    "finetune": ("design.seeds",),
}
PATHS = ("data.folder", "outputs.folder", "outputs.save_params")


def recorded_paths(script: str) -> tuple[str, ...]:
    """The fields a script's config records, in the description's order."""
    skipped = set(UNRECORDED) | set(NOT_FLAGS[script])
    return tuple(path for path in field_paths() if path not in skipped)


def key(path: str, script: str) -> str:
    """The config key (and the flag's dest) of a field for a script: e.g. "epochs", "lrs", "lr"."""
    keys = KEYS | BASELINE_KEYS if script == "baseline" else KEYS
    return keys.get(path, path.rpartition(".")[2])


def written(path: str, value: Any, script: str) -> Any:
    """A field's value as the config records it: JSON-ready, under the conventions of the flags."""
    if path == "network.sizes":
        return list(value[1:-1])
    if path == "outputs.compile_cache":
        return not value
    if path == "design.learning_rates" and script == "baseline":
        return value[0]
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, Path) else value


def _read(path: str, value: Any) -> Any:
    """A recorded value as its field holds it: the inverse of `_written`."""
    if path == "network.sizes":
        return (INPUTS, *(int(width) for width in value), CLASSES)
    if path == "outputs.compile_cache":
        return not value
    if path == "design.learning_rates":
        return tuple(float(rate) for rate in (value if isinstance(value, (list, tuple)) else [value]))
    if isinstance(value, list):
        return tuple(value)
    return Path(value) if path in PATHS and value is not None else value


def to_config(experiment: Experiment) -> dict[str, Any]:
    """The description written out as the metrics JSON's "config": every field its script has a flag for,
    under the flag's name (`key`), JSON-ready."""
    script = experiment.design.script
    return {key(path, script): written(path, field(experiment, path), script) for path in recorded_paths(script)}


def script_of(config: dict) -> str:
    """Which script a recorded config comes from, by the keys only that script records."""
    if "params" in config and "bits" in config:
        return "finetune"
    return "lr_sweep" if "lrs" in config else "baseline"


def from_config(config: dict) -> Experiment:
    """The description that a recorded "config" (of any version), or a script's parsed flags, writes out;
    a key it lacks has its field's default (`defaults` of its script), so that an old JSON or checkpoint
    and a new run compare alike. ValueError when it is not a description of an experiment."""
    if not isinstance(config, dict):
        raise ValueError(f"a recorded config is a mapping of flags, not {type(config).__name__}")
    script = script_of(config)
    experiment = defaults(script)
    parts: dict[str, dict] = {}
    try:
        for path in recorded_paths(script):
            name = key(path, script)
            if name in config:
                part, _, leaf = path.partition(".")
                parts.setdefault(part, {})[leaf] = _read(path, config[name])
        return updated(experiment, **parts)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a recorded config that is not a description of an experiment ({error})") from None
