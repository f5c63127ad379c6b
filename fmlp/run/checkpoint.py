"""Checkpoints of a lane program: where a run stands after an epoch, written atomically, read back into
the tree of a freshly initialised state.

A checkpoint is one .npz: every leaf of the lane state (`jax.tree.leaves` order: parameters, optimizer
state, raw keys, flags, best parameters) as leaf_0, leaf_1, ..., and a JSON entry with the format
version, the description of the run written out (`fmlp.description.to_config`; older checkpoints hold
only the flags that define it), the records so far and the seconds spent. No pickle: the JSON is stored
as bytes.
"""

import json
import os
import zipfile
from pathlib import Path

import jax
import numpy as np

from fmlp.description import Experiment, differences, from_config
from fmlp.files import atomic_path
from fmlp.training.lanes import EpochRecord, LaneHistory, LaneState, Progress

FORMAT = 1


def save(path: Path, progress: Progress, flags: dict) -> None:
    """Writes progress (its state already on the host) and the run's description, written out, to path,
    atomically."""
    history = progress.history
    meta = {
        "format": FORMAT,
        "flags": flags,
        "history": {
            "learning_rates": list(history.learning_rates),
            "seeds": list(history.seeds),
            "records": [[list(record) for record in lane] for lane in history.records],
            "diverged_at_epoch": list(history.diverged_at_epoch),
            "stopped_at_epoch": list(history.stopped_at_epoch),
            "compile_seconds": history.compile_seconds,
            "train_seconds": history.train_seconds,
            "eval_seconds": history.eval_seconds,
        },
    }
    arrays = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(progress.state))}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp_path, open(temp_path, "wb") as file:
        np.savez(file, **arrays)


def epochs_done(progress: Progress) -> int:
    """The epochs a checkpoint holds."""
    return len(progress.history.records[0])


def epochs_saved(path: Path) -> int:
    """The epochs the checkpoint at path holds, from its JSON entry alone (no template state needed)."""
    with np.load(path, allow_pickle=False) as file:
        return len(json.loads(file["meta"].tobytes())["history"]["records"][0])


def load(path: Path, template: LaneState, experiment: Experiment) -> Progress:
    """The progress saved at path, in the tree of `template` (a fresh state of the same lanes).

    ValueError naming the file when it is not a checkpoint of this format, or of an experiment of another
    identity (the differing fields named), or when its arrays do not fit the template's.
    """
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as file:
            meta = json.loads(file["meta"].tobytes())
            leaves = [file[f"leaf_{i}"] for i in range(len(file.files) - 1)]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    differing = differences(from_config(meta["flags"]), experiment)
    if differing:
        raise ValueError(f"{path}: a run with other flags ({'; '.join(differing)}); rerun with its flags or delete it")
    expected, treedef = jax.tree.flatten(template)
    if len(leaves) != len(expected) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(leaves, expected)):
        raise ValueError(f"{path}: its arrays do not fit this run's lanes")
    history = meta["history"]
    records = tuple(tuple(EpochRecord(*record) for record in lane) for lane in history["records"])
    return Progress(
        jax.tree.unflatten(treedef, leaves),
        LaneHistory(
            tuple(history["learning_rates"]),
            tuple(history["seeds"]),
            records,
            tuple(history["diverged_at_epoch"]),
            tuple(history["stopped_at_epoch"]),
            history["compile_seconds"],
            history["train_seconds"],
            history["eval_seconds"],
        ),
    )
