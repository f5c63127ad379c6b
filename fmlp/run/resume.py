"""When and where a run is checkpointed, and from what it resumes: the checkpoint in the output folder,
written every few epochs by process 0, refused unless it is of an experiment with the same identity
(`fmlp.description.identity`)."""

from collections.abc import Callable
from pathlib import Path

from fmlp.description import Experiment, to_config
from fmlp.run import checkpoint
from fmlp.run.plans import Plan
from fmlp.scale import distributed
from fmlp.training import lanes, memory_budget

CHECKPOINT_BYTES = 256 * 2**20  # larger states are checkpointed every few epochs, about this much per epoch


def checkpoint_path(out: Path, plan: Plan) -> Path:
    """Where a plan's checkpoint lives in the output folder `out`."""
    return out / f"{plan.name}.checkpoint.npz"


def resumed(experiment: Experiment, plan: Plan) -> lanes.Progress | None:
    """The checkpoint to go on from with --resume, or None without it; ValueError naming the problem
    when there is none that fits, or when an unfinished run's checkpoint is there and --resume is not
    given. With several processes, process 0 writes the checkpoint, and every process resumes from a
    copy of it in its own output folder. `experiment` has its lanes laid out (devices known)."""
    path = checkpoint_path(experiment.outputs.folder, plan)
    if not experiment.outputs.resume:
        if path.exists():
            raise ValueError(f"{path} holds an unfinished run; add --resume to go on with it, or delete the file "
                             "to start anew")  # fmt: skip
        return None
    if not path.exists():
        raise ValueError(f"no checkpoint at {path}: nothing to resume")
    padding = distributed.padded_lanes(len(plan.seeds), experiment.lanes.devices) - len(plan.seeds)
    template = lanes.init_lanes(experiment, plan.learning_rates, plan.seeds, padding)
    return checkpoint.load(path, template, experiment)


def keeper(
    experiment: Experiment, plan: Plan, writer: bool, warn: Callable[[str], None], elapsed: Callable[[], float]
) -> tuple[Callable, list]:
    """on_progress for `lanes.fit`, which writes the checkpoint every few epochs (every epoch unless the
    state is large; `warn` says when it cannot) with the run's total seconds so far (`elapsed()`), and
    the list in which it keeps the last progress, so that an early end can write it."""
    every = max(1, -(-len(plan.seeds) * memory_budget.bytes_per_lane(experiment) // CHECKPOINT_BYTES))
    path = checkpoint_path(experiment.outputs.folder, plan)
    last: list[lanes.Progress] = []

    def keep(progress: lanes.Progress, force: bool = False) -> None:
        last[:] = [progress]
        if not force and checkpoint.epochs_done(progress) % every:
            return
        on_host = progress._replace(state=distributed.to_host(progress.state))  # every process gathers
        if writer:
            try:
                checkpoint.save(path, on_host, to_config(experiment), elapsed())
            except OSError as error:
                warn(f"warning: cannot write the checkpoint {path} ({error.strerror or error})")

    return keep, last
