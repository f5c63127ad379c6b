"""One experiment from checked flags: load MNIST, train the lanes with a progress bar, stop cleanly on
a signal, and write the plots, the parameters and the metrics JSON (last, so its presence means the
rest is there). Both scripts are this, with their own lanes and figures."""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
from matplotlib.figure import Figure
from tqdm import tqdm

from fmlp import checkpoint, data, distributed, flags, interrupts, lanes, memory, mlp, outputs, plots, supervise
from fmlp.splits import device_splits
from fmlp.train import Config


class Plan(NamedTuple):
    """What a script trains and draws."""

    name: str  # stem of the JSON file, e.g. "baseline"
    learning_rates: tuple[float, ...]  # per lane
    seeds: tuple[int, ...]  # per lane
    figures: Callable[[list[dict], str], dict[str, Figure]]  # (runs, title) -> {file name: figure}
    title: str
    start: mlp.Params | None = None  # lane-stacked params the lanes begin from; None: their seeds' initial ones


def say(message: str) -> None:
    """One line for the user, on stderr beside the progress bar."""
    print(message, file=sys.stderr, flush=True)


def load(args: argparse.Namespace) -> tuple[data.MNIST, data.Origin]:
    """MNIST from the data flags; exits 1 with the reason on a data failure."""
    try:
        mnist, origin = data.load(args.data_source, args.data_dir, timeout=args.download_timeout, say=say)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    say(f"MNIST from {origin.source}" + (f" ({origin.path})" if origin.path else ""))
    for split, images in (("training", mnist.train_images), ("test", mnist.test_images)):
        if len(images) == 0:
            sys.exit(f"error: the {split} split of {origin.path or origin.source} holds no images")
    num_train = min(args.train_limit or len(mnist.train_images), len(mnist.train_images))
    if args.validation and args.validation + args.batch_size > num_train:
        sys.exit(f"error: --validation {args.validation} leaves {max(num_train - args.validation, 0)} of this data's "
                 f"{num_train} training images to train on, fewer than one batch of {args.batch_size}")  # fmt: skip
    if args.batch_size > num_train:
        sys.exit(f"error: --batch-size {args.batch_size} is larger than this data's {num_train} training images")
    return mnist, origin


def architecture(args: argparse.Namespace) -> mlp.Architecture:
    """The network the flags describe: 784 inputs, the --hidden widths, 10 classes, --activation, and
    the weights' width in training (--bits, of fine-tuning)."""
    return mlp.Architecture(flags.sizes(args), args.activation, getattr(args, "bits", None))


def config(args: argparse.Namespace, num_lanes: int) -> Config:
    """The static training options from the flags: the lanes split over every device; on each device
    they train one at a time on a CPU, all together elsewhere."""
    # Several processes must all hold lanes (padded ones if need be); one process uses no more devices
    # than it has lanes.
    devices = jax.device_count() if jax.process_count() > 1 else min(jax.device_count(), num_lanes)
    default_group = 1 if jax.default_backend() == "cpu" else -(-num_lanes // devices)
    return Config(
        architecture=architecture(args),
        batch_size=args.batch_size,
        lane_group=args.lane_group or default_group,
        patience=args.early_stop,
        devices=devices,
        optimizer=args.optimizer,
        momentum=args.momentum,
    )


def optimizer_name(config: dict) -> str:
    """The optimizer of recorded flags as the figures' titles name it, e.g. "SGD" or "SGD, Nesterov momentum 0.9"."""
    names = {"sgd": "SGD", "momentum": "SGD, momentum", "nesterov": "SGD, Nesterov momentum", "adam": "Adam",
             "rmsprop": "RMSProp"}  # fmt: skip
    momentum = config.get("momentum")
    return names[config.get("optimizer", "sgd")] + (f" {momentum:g}" if momentum is not None else "")


def _network_name(config: dict) -> str:
    """E.g. "MLP 784-512-128-10 (sigmoid)", from recorded flags (older ones recorded no activation)."""
    return "MLP " + "-".join(map(str, (784, *config["hidden"], 10))) + f" ({config.get('activation', 'sigmoid')})"


def baseline_plan(config: dict) -> Plan:
    """What baseline.py trains and draws, from its flags (vars of the parsed arguments, or as recorded)."""

    def figures(runs, title):
        return {
            "baseline_loss.png": plots.loss_figure(runs, title),
            "baseline_accuracy.png": plots.accuracy_figure(runs, title),
        }

    title = f"{_network_name(config)}, {optimizer_name(config)} lr {config['lr']:g}, batch {config['batch_size']}"
    return Plan("baseline", (config["lr"],), (config["seed"],), figures, title)


def sweep_plan(config: dict) -> Plan:
    """What lr_sweep.py trains and draws: every rate with seeds seed, seed + 1, ..., rate-major."""

    def figures(runs, title):
        return {
            "lr_sweep_accuracy.png": plots.accuracy_figure(runs, title),
            "lr_sweep_loss.png": plots.sweep_loss_figure(runs, title),
        }

    rates, seeds = lanes.grid(config["lrs"], range(config["seed"], config["seed"] + config["seeds"]))
    title = f"{_network_name(config)}, {optimizer_name(config)}, batch {config['batch_size']}: learning rates"
    return Plan("lr_sweep", rates, seeds, figures, title)


def finetune_plan(config: dict, start: mlp.Params | None = None) -> Plan:
    """What finetune.py trains and draws: every rate with each given network (seed --seed + k - 1 for the
    k-th), rate-major; `start` holds the networks' params, one lane per network, stacked."""

    def figures(runs, title):
        return {
            "finetune_accuracy.png": plots.accuracy_figure(runs, title),
            "finetune_loss.png": plots.sweep_loss_figure(runs, title),
        }

    seeds = range(config["seed"], config["seed"] + len(config["params"]))
    rates, seeds = lanes.grid(config["lrs"], seeds)
    if start is not None:  # the same networks for every rate
        start = jax.tree.map(lambda leaf: jnp.concatenate([leaf] * len(config["lrs"])), start)
    title = f"{_network_name(config)}, fine-tuned with {config['bits']}-bit weights, {optimizer_name(config)}"
    return Plan("finetune", rates, seeds, figures, title, start)


def draw(plan: Plan, runs: list[dict], folder: Path) -> list[Path]:
    """The plan's figures of these runs, written into folder; returns their paths."""
    paths = []
    for file_name, figure in plan.figures(runs, plan.title).items():
        plots.save_png(figure, folder / file_name)
        paths.append(folder / file_name)
    return paths


def start_processes(args: argparse.Namespace) -> None:
    """Joins the other processes when --coordinator (or JAX_COORDINATOR_ADDRESS) asks for several;
    exits 1 naming the address if the coordinator does not answer in time."""
    address = args.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address is None:
        return
    try:
        distributed.start(
            address, args.num_processes, args.process_id, args.coordinator_timeout, args.heartbeat_timeout
        )
    except ValueError as error:  # process 0 cannot listen where it was asked to
        sys.exit(f"error: argument --coordinator: {error}")
    except Exception as error:  # the runtime raises its own error types; all mean the same to the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        sys.exit(
            f"error: cannot join the coordinator at {address} within {args.coordinator_timeout:g} s "
            f"(--coordinator-timeout): {first_line}"
        )


def compile_cache(args: argparse.Namespace) -> None:
    """Keeps compiled programs beside the MNIST cache (or in $JAX_COMPILATION_CACHE_DIR), so that a
    second run of the same command skips compilation; --no-compile-cache turns it off."""
    if args.no_compile_cache:
        jax.config.update("jax_enable_compilation_cache", False)  # JAX would read the variable itself
        return
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(data.default_cache_dir() / "xla")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _progress(bar: tqdm, control: interrupts.Control) -> Callable:
    def on_epoch(epoch: int, records: tuple[lanes.EpochRecord, ...]) -> None:
        control.keep.set()  # from now on an interrupt keeps the finished epochs
        accuracies = [r.test_accuracy for r in records if r.test_accuracy is not None]
        bar.set_postfix(
            best_test_acc=f"{max(accuracies):.2%}" if accuracies else "n/a", frozen=len(records) - len(accuracies)
        )
        bar.update()

    return on_epoch


def _report(runs: list[dict]) -> None:
    """One line per noteworthy run: diverged, not learning, stopped early."""
    for run in runs:
        name = f"lr {run['learning_rate']:g}, seed {run['seed']}"
        if run["diverged_at_epoch"] is not None:
            say(
                f"{name}: diverged at epoch {run['diverged_at_epoch']} (non-finite loss or parameters); "
                "stopped there, its later values are null"
            )
        elif run["not_learning"]:
            say(f"warning: {name}: not learning (test loss above 10 ln 10 = {outputs.NOT_LEARNING_LOSS:.1f})")


def write(plan: Plan, args, runs: list[dict], document: dict, params: dict) -> None:
    """The PNGs, the parameter files, then the JSON; creates the output folders only now."""
    args.out.mkdir(parents=True, exist_ok=True)
    draw(plan, runs, args.out)
    for path, lane_params in params.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        mlp.save(path, lane_params, architecture(args))
    outputs.write_json(args.out / f"{plan.name}.json", document)


def check_memory(training: Config, num_lanes: int, args: argparse.Namespace) -> None:
    """Exits 2 before any work when the lanes' estimated memory exceeds what the device has, naming the
    lane count that would fit."""
    available = memory.available_bytes()
    if available is None or num_lanes <= memory.lanes_that_fit(training, available):
        return
    each = memory.bytes_per_lane(training)
    fit = memory.lanes_that_fit(training, available)
    flag = "--seeds" if getattr(args, "seeds", 1) > 1 else "--lrs"
    needed = memory.bytes_needed(training, num_lanes)
    print(f"error: argument {flag}: {num_lanes} runs need about {needed / 2**30:.1f} GiB "
          f"({each / 2**20:.1f} MiB each and their evaluation), more than the {available / 2**30:.1f} GiB available; "
          f"at most {fit} runs fit", file=sys.stderr)  # fmt: skip
    sys.exit(2)


# The checkpoint lives in --out, and each process of a run may have its own --out and process flags.
NOT_DEFINING = ("out", "resume", "quiet", "no_compile_cache", "coordinator", "num_processes", "process_id",
                "coordinator_timeout", "heartbeat_timeout", "download_timeout")  # fmt: skip
CHECKPOINT_BYTES = 256 * 2**20  # larger states are checkpointed every few epochs, about this much per epoch


def checkpoint_path(args: argparse.Namespace, plan: Plan) -> Path:
    return args.out / f"{plan.name}.checkpoint.npz"


def defining_flags(args: argparse.Namespace) -> dict:
    """The recorded flags that decide what a run computes: a checkpoint resumes only under the same ones."""
    return {key: value for key, value in outputs.flag_values(args).items() if key not in NOT_DEFINING}


def resumed(args: argparse.Namespace, plan: Plan, training: Config) -> lanes.Progress | None:
    """The checkpoint to go on from with --resume; exits 2 naming the problem when there is none that fits,
    or when an unfinished run's checkpoint is there and --resume is not given. With several processes,
    process 0 writes the checkpoint, and every process resumes from a copy of it in its own --out."""
    path = checkpoint_path(args, plan)
    if not args.resume:
        if path.exists():
            say(f"error: argument --resume: {path} holds an unfinished run; add --resume to go on with it, "
                "or delete the file to start anew")  # fmt: skip
            sys.exit(2)
        return None
    if not path.exists():
        say(f"error: argument --resume: no checkpoint at {path}: nothing to resume")
        sys.exit(2)
    padding = distributed.padded_lanes(len(plan.seeds), training.devices) - len(plan.seeds)
    template = lanes.init_lanes(training, plan.learning_rates, plan.seeds, padding)
    try:
        progress = checkpoint.load(path, template, defining_flags(args))
    except ValueError as error:
        say(f"error: argument --resume: {error}")
        sys.exit(2)
    say(f"resuming from {path} after epoch {checkpoint.epochs_done(progress)}")
    return progress


def _keeper(args: argparse.Namespace, plan: Plan, training: Config, writer: bool) -> tuple[Callable, list]:
    """on_progress for `lanes.fit`, which writes the checkpoint every few epochs (every epoch unless the
    state is large), and the list in which it keeps the last progress, so that an early end can write it."""
    every = max(1, -(-len(plan.seeds) * memory.bytes_per_lane(training) // CHECKPOINT_BYTES))
    last: list[lanes.Progress] = []

    def keep(progress: lanes.Progress, force: bool = False) -> None:
        last[:] = [progress]
        if not force and checkpoint.epochs_done(progress) % every:
            return
        on_host = progress._replace(state=distributed.to_host(progress.state))  # every process gathers
        if writer:
            try:
                checkpoint.save(checkpoint_path(args, plan), on_host, defining_flags(args))
            except OSError as error:
                say(f"warning: cannot write the checkpoint {checkpoint_path(args, plan)} ({error.strerror or error})")

    return keep, last


def _runtime_ended(args: argparse.Namespace, plan: Plan) -> str:
    """What to say when the distributed runtime ended this process because another one failed."""
    path = checkpoint_path(args, plan)
    kept = (f"the finished epochs are in {path}: give every process a copy and start them all again with --resume"
            if path.exists() else "no epoch had finished: start them all again")  # fmt: skip
    return ("another process of this run died, stopped answering or never joined (check that they all agree on "
            f"--num-processes, and that --coordinator {args.coordinator} is process 0 of this run, not some other "
            f"service), and the distributed runtime ended this one; {kept}")  # fmt: skip


def run(args: argparse.Namespace, plan: Plan, save_params: Callable[[lanes.LaneState], dict]) -> None:
    """Runs the plan, checkpointing as it goes; exits with 128 + the signal number if a signal ended it
    early, leaving the checkpoint for --resume."""
    started = time.perf_counter()
    if args.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        supervise.run_supervised(lambda: _runtime_ended(args, plan))
    start_processes(args)
    compile_cache(args)
    writer = distributed.is_writer()
    training = config(args, len(plan.seeds))
    check_memory(training, len(plan.seeds), args)
    resume = resumed(args, plan, training)
    keep, last = _keeper(args, plan, training, writer)

    def work(control: interrupts.Control) -> None:
        mnist, origin = load(args)
        splits = device_splits(mnist, args.train_limit, args.validation)
        data_seconds = time.perf_counter() - started
        done = 0 if resume is None else checkpoint.epochs_done(resume)
        with tqdm(total=args.epochs, initial=done, desc="epochs", disable=args.quiet or not writer) as bar:
            state, history = lanes.fit(
                training,
                splits,
                learning_rates=plan.learning_rates,
                seeds=plan.seeds,
                epochs=args.epochs,
                on_epoch=_progress(bar, control),
                should_stop=control.stop.is_set,
                resume=resume,
                on_progress=keep,
                start=plan.start,
            )
        # A signal to another process stops this one too: a run that ended early with lanes still
        # training was interrupted somewhere, whichever process saw the signal.
        ends = zip(history.records, history.diverged_at_epoch, history.stopped_at_epoch)
        cut_short = any(len(records) < args.epochs and d is None and s is None for records, d, s in ends)
        interrupted = control.stop.is_set() or cut_short
        if interrupted and last:
            keep(last[0], force=True)
        runs = outputs.runs(history, args.early_stop is not None)
        seconds = outputs.seconds(started, data_seconds, history)
        document = outputs.document(args, runs, seconds, origin, interrupted)
        params = save_params(distributed.to_host(state))  # every process takes part in gathering
        failure = None
        if writer:
            try:
                write(plan, args, runs, document, params)
            except OSError as error:
                failure = error
        # The others wait until process 0 has written: a process that left earlier would make the
        # distributed runtime end process 0 before its results are on disk.
        distributed.wait_for_all("results written")
        if not writer:
            return
        if failure is not None:
            say(
                f"error: cannot write the results in {args.out} ({failure.strerror or failure}); the finished "
                f"epochs are in {checkpoint_path(args, plan)}: free the space, then add --resume"
            )
            sys.exit(1)
        _report(runs)
        epochs_run = max(len(r) for r in history.records)
        if interrupted:
            say(f"interrupted after {epochs_run} of {args.epochs} epochs; wrote {args.out / (plan.name + '.json')}; "
                "the same command with --resume goes on from there")  # fmt: skip
        else:
            checkpoint_path(args, plan).unlink(missing_ok=True)
            print(summary_line(document, epochs_run, args))

    status = interrupts.exit_status(interrupts.run(work))
    if status is not None:
        sys.exit(status)


def summary_line(document: dict, epochs_run: int, args: argparse.Namespace) -> str:
    """What the run found, in one or two lines."""
    parts = []
    for row in document["summary"]:
        final = row["final_test_accuracy"]
        if final["n"] == 0:
            parts.append(f"{row['learning_rate']:g}: diverged")
        elif final["std"] is None:
            parts.append(f"{row['learning_rate']:g}: {final['mean']:.2%}")
        else:
            parts.append(f"{row['learning_rate']:g}: {final['mean']:.2%} ± {final['std']:.2%}")
    line = f"final test accuracy by learning rate after {epochs_run} epochs: " + ", ".join(parts)
    selected = document["selected"]
    if selected is not None:
        when = (
            f"epoch {selected['epoch']}"
            if selected["epoch"] is not None
            else "each seed's best epoch (" + ", ".join(map(str, selected["epochs"])) + ")"
        )
        line += (
            f"\nselected on validation: lr {selected['learning_rate']:g} at {when} (validation accuracy "
            f"{selected['val_accuracy']:.2%}); its test accuracy {selected['test_accuracy']:.2%}"
        )
    seconds = document["seconds"]
    return line + f"\ntotal {seconds['total']:.1f} s (train {seconds['train']:.1f} s); wrote {args.out}"
