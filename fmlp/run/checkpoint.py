"""Checkpoints of a lane program: where a run stands after an epoch, written atomically, read back into
the tree of a freshly initialised state.

A checkpoint is one .npz: every leaf of the lane state (`jax.tree.leaves` order: parameters, optimizer
state, raw keys, flags, best parameters) as leaf_0, leaf_1, ..., and a JSON entry with the format
version, the description of the run written out (`fmlp.description.to_config`; older checkpoints hold
only the flags that define it), the records so far and the seconds spent. No pickle: the JSON is stored
as bytes.
"""

import json
import math
import os
import zipfile
from pathlib import Path

import jax
import numpy as np

from fmlp.description import Experiment, differences, from_config, lane_count
from fmlp.files import atomic_path
from fmlp.training.lanes import EpochRecord, LaneHistory, LaneState, Progress

FORMAT = 1


def save(path: Path, progress: Progress, flags: dict, total_seconds: float = 0.0) -> None:
    """Writes progress (its state already on the host), the run's description written out and its total
    seconds so far (over every process of the run) to path, atomically."""
    history = progress.history
    meta = {
        "format": FORMAT,
        "flags": flags,
        "total_seconds": total_seconds,
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


def seconds_saved(path: Path) -> float:
    """The run's total seconds up to the checkpoint at path; for a checkpoint from before they were
    saved, the seconds its lanes spent compiling, training and evaluating."""
    with np.load(path, allow_pickle=False) as file:
        meta = json.loads(file["meta"].tobytes())
    history = meta["history"]
    spent = history["compile_seconds"] + history["train_seconds"] + history["eval_seconds"]
    return float(meta.get("total_seconds", spent))


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
    expected, treedef = jax.tree.flatten(template)
    limits = size_limits(expected, lane_count(experiment) * experiment.training.epochs)
    try:
        check_sizes(path, {"meta.npy": limits["meta.npy"]})
        with np.load(path, allow_pickle=False) as file:
            meta = json.loads(file["meta"].tobytes())
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: checkpoint format {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                         f"expected {FORMAT}")  # fmt: skip
    if not isinstance(meta.get("flags"), dict):
        raise ValueError(f"{path}: its flags are missing or not a mapping")
    try:
        differing = differences(from_config(meta["flags"]), experiment)
    except ValueError as error:
        raise ValueError(f"{path}: its flags: {error}") from None
    if differing:
        raise ValueError(f"{path}: a run with other flags ({'; '.join(differing)}); rerun with its flags or delete it")
    try:
        check_sizes(path, limits)
        with np.load(path, allow_pickle=False) as file:
            if len(file.files) - 1 != len(expected):
                raise ValueError(f"{len(file.files) - 1} arrays, where this run's lanes have {len(expected)}")
            leaves = [file[f"leaf_{i}"] for i in range(len(expected))]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: its arrays do not fit this run's lanes ({error})") from error
    if len(leaves) != len(expected) or any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(leaves, expected)):
        raise ValueError(f"{path}: its arrays do not fit this run's lanes")
    total = meta.get("total_seconds", 0.0)
    if not _number(total) or total < 0:
        raise ValueError(f"{path}: total_seconds {total!r} is not a number of seconds")
    history = meta.get("history")
    check_history(path, history, lane_count(experiment), experiment.training.epochs)
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


HEADER_BYTES = 4096  # room for an .npy entry's header beside its array's bytes
META_BYTES_PER_RECORD = 512  # far more than a lane's epoch record takes in the JSON entry


def size_limits(leaves: list, records: int) -> dict[str, int]:
    """The most bytes each entry of a checkpoint can hold for a state of these `leaves` (the template's)
    after `records` epoch records in all. A larger entry, of another run, has to be refused too: the
    file's arrays would not fit this run's lanes."""
    limits = {f"leaf_{i}.npy": np.asarray(leaf).nbytes + HEADER_BYTES for i, leaf in enumerate(leaves)}
    return limits | {"meta.npy": HEADER_BYTES + 2**20 + records * META_BYTES_PER_RECORD}


def check_sizes(path: Path, limits: dict[str, int]) -> None:
    """ValueError naming the entry of the checkpoint at path whose declared size passes its limit: read
    from the zip's directory before anything is inflated, so that a small file declaring huge arrays is
    refused at once."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if member.filename in limits and member.file_size > limits[member.filename]:
                raise ValueError(f"{member.filename} unpacks to {member.file_size:,} bytes, more than a checkpoint "
                                 f"of this run holds ({limits[member.filename]:,})")  # fmt: skip


SECONDS = ("compile_seconds", "train_seconds", "eval_seconds")
LANE_FIELDS = ("learning_rates", "seeds", "records", "diverged_at_epoch", "stopped_at_epoch")


def _number(value) -> bool:
    """A finite JSON number (NaN and Infinity parse as floats)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _epoch_or_none(value, epochs: int) -> bool:
    return value is None or (type(value) is int and 1 <= value <= epochs)


def check_history(path: Path, history, lanes: int, epochs: int) -> None:
    """ValueError naming the file and the field unless a checkpoint's history is one that `save` writes
    for `lanes` lanes after 1 to `epochs` epochs: a list per lane of every lane field, as many records in
    every lane, epochs numbered 1, 2, ..., records of seven numbers (or null), ends within the records."""
    if not isinstance(history, dict):
        raise ValueError(f"{path}: its history is missing or not a mapping")
    for name in LANE_FIELDS + SECONDS:
        if name not in history:
            raise ValueError(f"{path}: its history lacks {name}")
    for name in LANE_FIELDS:
        if not isinstance(history[name], list) or len(history[name]) != lanes:
            raise ValueError(f"{path}: history {name} is not a list of this run's {lanes} lanes")
    for name in SECONDS:
        if not _number(history[name]) or history[name] < 0:
            raise ValueError(f"{path}: history {name} {history[name]!r} is not a number of seconds")
    records = history["records"]
    done = len(records[0]) if isinstance(records[0], list) else -1
    if not 1 <= done <= epochs or any(not isinstance(lane, list) or len(lane) != done for lane in records):
        raise ValueError(f"{path}: history records: every lane needs the same 1 to {epochs} epochs (--epochs)")
    for lane in records:
        for number, record in enumerate(lane, 1):
            fits = isinstance(record, list) and len(record) == len(EpochRecord._fields) and record[0] == number
            if not fits or not all(value is None or _number(value) for value in record[1:]):
                raise ValueError(f"{path}: history records: epoch {number} of a lane is not [{number}, six numbers]")
    for name in ("diverged_at_epoch", "stopped_at_epoch"):
        if not all(_epoch_or_none(value, done) for value in history[name]):
            raise ValueError(f"{path}: history {name}: each is null or an epoch from 1 to {done}")
