"""One experiment from checked flags: load MNIST, train the lanes with a progress bar, stop cleanly on
a signal, and write the plots, the parameters and the metrics JSON (last, so its presence means the
rest is there). Every training script is this, with its own plan (fmlp.plans); checkpoints and
--resume are fmlp.resume's."""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
from tqdm import tqdm

from fmlp import checkpoint, data, distributed, flags, interrupts, lanes, memory, mlp, outputs, plans, resume
from fmlp.plans import Plan
from fmlp.splits import device_splits
from fmlp.train import Config


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
        rate_decay=args.rate_decay,
    )


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
    """`keep_compiled_programs`, unless --no-compile-cache turns it off."""
    if args.no_compile_cache:
        jax.config.update("jax_enable_compilation_cache", False)  # JAX would read the variable itself
        return
    keep_compiled_programs()


def keep_compiled_programs() -> None:
    """Keeps compiled programs beside the MNIST cache (or in $JAX_COMPILATION_CACHE_DIR), so that a
    second run of the same command skips compilation. Effective only before the process's first
    compilation, which decides whether JAX uses the cache at all."""
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
    plans.draw(plan, runs, args.out)
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


def run(args: argparse.Namespace, plan: Plan, param_files: dict[Path, int]) -> None:
    """Runs the plan, checkpointing as it goes; exits with 128 + the signal number if a signal ended it
    early, leaving the checkpoint for --resume."""
    started = time.perf_counter()
    start_processes(args)
    compile_cache(args)
    writer = distributed.is_writer()
    training = config(args, len(plan.seeds))
    check_memory(training, len(plan.seeds), args)
    try:
        resume_from = resume.resumed(args, plan, training)
    except ValueError as error:
        say(f"error: argument --resume: {error}")
        sys.exit(2)
    if resume_from is not None:
        say(f"resuming from {resume.checkpoint_path(args, plan)} after epoch {checkpoint.epochs_done(resume_from)}")
    keep, last = resume.keeper(args, plan, training, writer, say)

    def work(control: interrupts.Control) -> None:
        mnist, origin = load(args)
        splits = device_splits(mnist, args.train_limit, args.validation)
        data_seconds = time.perf_counter() - started
        done = 0 if resume_from is None else checkpoint.epochs_done(resume_from)
        with tqdm(total=args.epochs, initial=done, desc="epochs", disable=args.quiet or not writer) as bar:
            state, history = lanes.fit(
                training,
                splits,
                learning_rates=plan.learning_rates,
                seeds=plan.seeds,
                epochs=args.epochs,
                on_epoch=_progress(bar, control),
                should_stop=control.stop.is_set,
                resume=resume_from,
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
        # Every process takes part in gathering, and only when parameters are saved: gathered, the lanes'
        # parameters are a second copy of the state.
        on_host = distributed.to_host(state) if param_files else None
        params = {path: lanes.final_params(on_host, lane) for path, lane in param_files.items()}
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
                f"epochs are in {resume.checkpoint_path(args, plan)}: free the space, then add --resume"
            )
            sys.exit(1)
        _report(runs)
        epochs_run = max(len(r) for r in history.records)
        if interrupted:
            say(f"interrupted after {epochs_run} of {args.epochs} epochs; wrote {args.out / (plan.name + '.json')}; "
                "the same command with --resume goes on from there")  # fmt: skip
        else:
            resume.checkpoint_path(args, plan).unlink(missing_ok=True)
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
