"""The metrics JSON: its run records, the environment, the seconds, and writing it atomically.

The contract only grows: "config", "environment", "runs" and "seconds" as before; each run also has
"seed", "stopped_at_epoch", "best_epoch", "final" and "not_learning"; each epoch "val_loss" and
"val_accuracy" (None without validation); and at the top "data", "interrupted", "summary",
"summary_interval", "selected" and "peak_device_bytes" (None on the CPU).
"""

import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from fmlp.analysis import stats
from fmlp.data import Origin
from fmlp.description import Experiment, to_config
from fmlp.files import atomic_path
from fmlp.training import memory_budget
from fmlp.training.lanes import LaneHistory

# A network that guesses uniformly over 10 classes has a cross-entropy of ln 10.
NOT_LEARNING_LOSS = 10 * math.log(10)


def environment() -> dict:
    """Versions and the device the run used."""
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "device": jax.devices()[0].device_kind,
        "python": platform.python_version(),
    }


NO_FINAL = {"epoch": None, "test_loss": None, "test_accuracy": None}


def _final(epochs: Sequence[dict], epoch: int | None) -> dict:
    """The test numbers of the parameters a run ends with: those of `epoch`, else of its last measured epoch."""
    measured = [e for e in epochs if e["test_accuracy"] is not None]
    chosen = next((e for e in measured if e["epoch"] == epoch), measured[-1] if measured else None)
    if chosen is None:
        return NO_FINAL
    return {"epoch": chosen["epoch"], "test_loss": chosen["test_loss"], "test_accuracy": chosen["test_accuracy"]}


def runs(history: LaneHistory, early_stop: bool) -> list[dict]:
    """One record per lane. "final" is the last epoch's test numbers, or with early stopping those of
    the best epoch by validation (whose parameters the lane keeps); None for a diverged lane."""
    records = []
    for lane, lane_records in enumerate(history.records):
        epochs = [record._asdict() for record in lane_records]
        best_record = stats.best_epoch(epochs)
        best = None if best_record is None else best_record["epoch"]
        diverged = history.diverged_at_epoch[lane]
        final = NO_FINAL if diverged is not None else _final(epochs, best if early_stop else None)
        records.append(
            {
                "learning_rate": history.learning_rates[lane],
                "seed": history.seeds[lane],
                "diverged_at_epoch": diverged,
                "stopped_at_epoch": history.stopped_at_epoch[lane],
                "best_epoch": best,
                "final": final,
                "not_learning": any(e["test_loss"] is not None and e["test_loss"] > NOT_LEARNING_LOSS for e in epochs),
                "epochs": epochs,
            }
        )
    return records


def seconds(started: float, data_seconds: float, history: LaneHistory, earlier: float = 0.0) -> dict:
    """The JSON's "seconds": compile, train, eval and the total over every process of the run (a resumed
    run's total adds the `earlier` processes' total up to their checkpoint to this one's since
    `started`, a perf_counter time), and this process's data loading."""
    return {
        "data": data_seconds,
        "compile": history.compile_seconds,
        "train": history.train_seconds,
        "eval": history.eval_seconds,
        "total": earlier + time.perf_counter() - started,
    }


def document(experiment: Experiment, run_records: list[dict], seconds: dict, origin: Origin, interrupted: bool) -> dict:
    """The whole metrics JSON; its "config" is the experiment's description written out."""
    early_stop = experiment.training.early_stop is not None
    return {
        "config": to_config(experiment),
        "environment": environment(),
        "data": origin._asdict(),
        "interrupted": interrupted,
        "runs": run_records,
        "summary": stats.summary(run_records),
        "summary_interval": stats.INTERVAL,
        "selected": stats.select_kept(run_records) if early_stop else stats.select(run_records),
        "seconds": seconds,
        "peak_device_bytes": memory_budget.peak_device_bytes(),
    }


def write_json(path: Path, document: dict) -> None:
    """Writes document as indented JSON via a temporary file and a rename; refuses NaN and infinities."""
    with atomic_path(path) as temp_path:
        temp_path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
