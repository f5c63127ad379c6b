"""One experiment from its description: load MNIST, train the lanes with a progress bar, stop cleanly
on a signal, and write the plots, the parameters and the metrics JSON (last, so its presence means the
rest is there). Every training script is this, with its own plan (fmlp.run.plans); checkpoints and
--resume are fmlp.run.resume's."""

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
from tqdm import tqdm

from fmlp import data, files
from fmlp.data.splits import device_splits
from fmlp.description import Data, Experiment, Processes, lane_count
from fmlp.nn import mlp, saved
from fmlp.run import checkpoint, interrupts, metrics_json, plans, resume, run_lock
from fmlp.run.plans import Plan
from fmlp.scale import distributed
from fmlp.training import lanes, memory_budget
from fmlp.words import describe


def say(message: str) -> None:
    """One line for the user, on stderr beside the progress bar."""
    print(message, file=sys.stderr, flush=True)


def load(described: Data, batch_size: int) -> tuple[data.MNIST, data.Origin]:
    """MNIST as described; exits 1 with the reason on a data failure, or when the split leaves less
    than one batch of batch_size to train on."""
    try:
        mnist, origin = data.load(described.source, described.folder, timeout=described.download_timeout, say=say)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    say(f"MNIST from {origin.source}" + (f" ({origin.path})" if origin.path else ""))
    for split, images in (("training", mnist.train_images), ("test", mnist.test_images)):
        if len(images) == 0:
            sys.exit(f"error: the {split} split of {origin.path or origin.source} holds no images")
    num_train = described.train_limit or len(mnist.train_images)
    if num_train > len(mnist.train_images):  # the JSON would record a limit the run never had
        sys.exit(f"error: --train-limit {num_train} is more than the {len(mnist.train_images):,} training images of "
                 f"{origin.path or origin.source}")  # fmt: skip
    validation = described.validation
    if validation and validation + batch_size > num_train:
        sys.exit(f"error: --validation {validation} leaves {max(num_train - validation, 0)} of this data's "
                 f"{num_train} training images to train on, fewer than one batch of {batch_size}")  # fmt: skip
    if batch_size > num_train:
        sys.exit(f"error: --batch-size {batch_size} is larger than this data's {num_train} training images")
    return mnist, origin


def laid_out(experiment: Experiment, num_lanes: int) -> Experiment:
    """The experiment with its lanes laid out on this machine: split over every device; on each device
    one at a time on a CPU, all together elsewhere (unless its lane group says otherwise)."""
    # Several processes must all hold lanes (padded ones if need be); one process uses no more devices
    # than it has lanes.
    devices = jax.device_count() if jax.process_count() > 1 else min(jax.device_count(), num_lanes)
    default_group = 1 if jax.default_backend() == "cpu" else -(-num_lanes // devices)
    lanes = experiment.lanes._replace(group=experiment.lanes.group or default_group, devices=devices)
    return experiment._replace(lanes=lanes)


def start_processes(processes: Processes) -> None:
    """Joins the other processes when --coordinator (or JAX_COORDINATOR_ADDRESS) asks for several;
    exits 1 naming the address if the coordinator does not answer in time."""
    address = processes.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if address is None:
        return
    try:
        distributed.start(address, processes.num_processes, processes.process_id, processes.coordinator_timeout,
                          processes.heartbeat_timeout)  # fmt: skip
    except ValueError as error:  # process 0 cannot listen where it was asked to
        sys.exit(f"error: argument --coordinator: {error}")
    except Exception as error:  # the runtime raises its own error types; all mean the same to the user
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        sys.exit(
            f"error: cannot join the coordinator at {address} within {processes.coordinator_timeout:g} s "
            f"(--coordinator-timeout): {first_line}"
        )


def compile_cache(keep: bool) -> None:
    """`keep_compiled_programs`, unless --no-compile-cache turned `keep` off."""
    if not keep:
        jax.config.update("jax_enable_compilation_cache", False)  # JAX would read the variable itself
        return
    try:
        keep_compiled_programs()
    except data.DataError as error:  # FMLP_DATA_DIR names a file
        sys.exit(f"error: {error}")


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
            say(f"warning: {name}: not learning (test loss above 10 ln 10 = {metrics_json.NOT_LEARNING_LOSS:.1f})")


def write(plan: Plan, experiment: Experiment, runs: list[dict], document: dict, params: dict) -> None:
    """The PNGs, the parameter files, then the JSON; creates the output folders only now."""
    out = experiment.outputs.folder
    out.mkdir(parents=True, exist_ok=True)
    plans.draw(plan, runs, out)
    for path, lane_params in params.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        saved.save(path, lane_params, experiment.network)
    if params:  # which networks this result wrote, by content: a diagnosis of them can be told from another
        document = document | {"params_sha256": {path.name: saved.fingerprint(lane_params, experiment.network)
                                                 for path, lane_params in params.items()}}  # fmt: skip
    metrics_json.write_json(out / f"{plan.name}.json", document)


def check_memory(training: Experiment, num_lanes: int) -> None:
    """Exits 2 before any work (before even the lanes' list is built) when the lanes' estimated memory
    exceeds what the device has, naming the flag to change and the lane count that would fit."""
    available = memory_budget.available_bytes()
    if available is None or num_lanes <= memory_budget.lanes_that_fit(training, available):
        return
    each = memory_budget.bytes_per_lane(training)
    fit = memory_budget.lanes_that_fit(training, available)
    flag = "--hidden" if fit == 0 else "--seeds" if training.design.seeds > 1 else "--lrs"
    needed = memory_budget.bytes_needed(training, num_lanes)
    print(f"error: argument {flag}: {num_lanes} runs need about {needed / 2**30:.1f} GiB "
          f"({each / 2**20:.1f} MiB each and their evaluation), more than the {available / 2**30:.1f} GiB available; "
          f"at most {fit} runs fit", file=sys.stderr)  # fmt: skip
    sys.exit(2)


def kept(checkpoint_path: Path) -> str:
    """What is true of the finished epochs on disk: where they are, or that none could be kept."""
    if checkpoint_path.is_file():
        return f"the finished epochs ({checkpoint.epochs_saved(checkpoint_path)}) are in {checkpoint_path}"
    return f"no checkpoint could be written either ({checkpoint_path}), so the finished epochs are lost"


def run(experiment: Experiment, start: mlp.Params | None = None) -> None:
    """Runs the experiment's plan (`start`: the lane-stacked networks finetune begins from), holding the
    lock on its result and checkpointing as it goes; exits with 128 + the signal number if a signal
    ended it early, leaving the checkpoint for --resume, and with 2 when another run writes the same
    result."""
    started = time.perf_counter()
    if experiment.processes.process_id in (None, 0):
        say(describe(experiment))
    start_processes(experiment.processes)
    compile_cache(experiment.outputs.compile_cache)
    writer = distributed.is_writer()
    num_lanes = lane_count(experiment)
    training = laid_out(experiment, num_lanes)
    check_memory(training, num_lanes)
    plan = plans.PLANS[experiment.design.script](experiment, start)
    out = experiment.outputs.folder
    try:
        with run_lock.holding(out, plan.name) if writer else contextlib.nullcontext():
            files.remove_stale_temporaries(out)
            _train_and_write(experiment, training, plan, writer, started)
    except run_lock.Taken as error:
        say(f"error: argument --out: {error}")
        sys.exit(2)


def _train_and_write(experiment: Experiment, training: Experiment, plan: Plan, writer: bool, started: float) -> None:
    """`run` once its lanes are laid out (`training`) and its result locked."""
    epochs, out = experiment.training.epochs, experiment.outputs.folder
    param_files = plans.param_files(experiment, plan)
    if folders := [path for path in param_files if path.is_dir()]:  # found before training, not after it
        say(f"error: argument --save-params: {folders[0]} is a folder, where a network's file goes; move it away")
        sys.exit(2)
    checkpoint_path = resume.checkpoint_path(out, plan)
    try:
        resume_from = resume.resumed(training, plan)
    except ValueError as error:
        say(f"error: argument --resume: {error}")
        sys.exit(2)
    earlier = 0.0 if resume_from is None else checkpoint.seconds_saved(checkpoint_path)
    if resume_from is not None:
        say(f"resuming from {checkpoint_path} after epoch {checkpoint.epochs_done(resume_from)}")
    keep, last = resume.keeper(training, plan, writer, say, lambda: earlier + time.perf_counter() - started)

    def work(control: interrupts.Control) -> None:
        mnist, origin = load(experiment.data, experiment.training.batch_size)
        splits = device_splits(mnist, experiment.data.train_limit, experiment.data.validation)
        data_seconds = time.perf_counter() - started
        done = 0 if resume_from is None else checkpoint.epochs_done(resume_from)
        quiet = experiment.outputs.quiet or not writer
        with tqdm(total=epochs, initial=done, desc="epochs", disable=quiet) as bar:
            state, history = lanes.fit(
                training,
                splits,
                learning_rates=plan.learning_rates,
                seeds=plan.seeds,
                epochs=epochs,
                on_epoch=_progress(bar, control),
                should_stop=control.stop.is_set,
                resume=resume_from,
                on_progress=keep,
                start=plan.start,
            )
        # A signal to another process stops this one too: a run that ended early with lanes still
        # training was interrupted somewhere, whichever process saw the signal.
        ends = zip(history.records, history.diverged_at_epoch, history.stopped_at_epoch)
        cut_short = any(len(records) < epochs and d is None and s is None for records, d, s in ends)
        interrupted = control.stop.is_set() or cut_short
        if interrupted and last:
            keep(last[0], force=True)
        runs = metrics_json.runs(history, experiment.training.early_stop is not None)
        seconds = metrics_json.seconds(started, data_seconds, history, earlier)
        document = metrics_json.document(experiment, runs, seconds, origin, interrupted)
        # Every process takes part in gathering, and only when parameters are saved: gathered, the lanes'
        # parameters are a second copy of the state.
        on_host = distributed.to_host(state) if param_files else None
        params = {path: lanes.final_params(on_host, lane) for path, lane in param_files.items()}
        failure = None
        if writer:
            try:
                write(plan, experiment, runs, document, params)
            except OSError as error:
                failure = error
        # The others wait until process 0 has written: a process that left earlier would make the
        # distributed runtime end process 0 before its results are on disk.
        distributed.wait_for_all("results written")
        if not writer:
            return
        if failure is not None:
            fix = (
                "free the space, then add --resume" if checkpoint_path.is_file() else "free the space and run it again"
            )
            say(f"error: cannot write the results in {out} ({failure.strerror or failure}); {kept(checkpoint_path)}: "
                f"{fix}")  # fmt: skip
            sys.exit(1)
        _report(runs)
        epochs_run = max(len(r) for r in history.records)
        if interrupted:
            then = ("the same command with --resume goes on from there" if checkpoint_path.is_file()
                    else kept(checkpoint_path))  # fmt: skip
            say(f"interrupted after {epochs_run} of {epochs} epochs; wrote {out / (plan.name + '.json')}; {then}")
        else:
            checkpoint_path.unlink(missing_ok=True)
            print(summary_line(document, epochs_run, out))

    status = interrupts.exit_status(interrupts.run(work))
    if status is not None:
        sys.exit(status)


def summary_line(document: dict, epochs_run: int, out: Path) -> str:
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
    return line + f"\ntotal {seconds['total']:.1f} s (train {seconds['train']:.1f} s); wrote {out}"
