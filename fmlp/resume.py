"""When and where a run is checkpointed, and from what it resumes: the checkpoint in --out, written
every few epochs by process 0, refused unless the flags that decide what a run computes are the same."""

import argparse
from collections.abc import Callable
from pathlib import Path

from fmlp import checkpoint, distributed, lanes, memory, outputs
from fmlp.plans import Plan
from fmlp.train import Config

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
    """The checkpoint to go on from with --resume, or None without it; ValueError naming the problem
    when there is none that fits, or when an unfinished run's checkpoint is there and --resume is not
    given. With several processes, process 0 writes the checkpoint, and every process resumes from a
    copy of it in its own --out."""
    path = checkpoint_path(args, plan)
    if not args.resume:
        if path.exists():
            raise ValueError(f"{path} holds an unfinished run; add --resume to go on with it, or delete the file "
                             "to start anew")  # fmt: skip
        return None
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}: nothing to resume")
    padding = distributed.padded_lanes(len(plan.seeds), training.devices) - len(plan.seeds)
    template = lanes.init_lanes(training, plan.learning_rates, plan.seeds, padding)
    return checkpoint.load(path, template, defining_flags(args))


def keeper(
    args: argparse.Namespace, plan: Plan, training: Config, writer: bool, warn: Callable[[str], None]
) -> tuple[Callable, list]:
    """on_progress for `lanes.fit`, which writes the checkpoint every few epochs (every epoch unless the
    state is large; `warn` says when it cannot), and the list in which it keeps the last progress, so
    that an early end can write it."""
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
                warn(f"warning: cannot write the checkpoint {checkpoint_path(args, plan)} ({error.strerror or error})")

    return keep, last
