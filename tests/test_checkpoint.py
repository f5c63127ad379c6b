"""Checkpoints and --resume: a run cut short by SIGKILL, a signal or a full disk goes on from its last
epoch to the numbers of an uninterrupted run; refusals name the file and the flag."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from fmlp.description import Architecture, Design, Experiment, Training, to_config
from fmlp.run import checkpoint, flags, metrics_json
from fmlp.training import lanes

from .test_experiments import SWEEP, run_script

# Every test of this module on one worker, so that its module fixture runs once.
pytestmark = pytest.mark.xdist_group("checkpoint")

SAME = ("runs", "summary", "selected")


def sweep_flags(idx_dir: Path, out: Path, epochs: int = 3) -> list[str]:
    return ["--epochs", str(epochs), "--hidden", "32,16", "--batch-size", "32", "--data-source", "idx",
            "--data-dir", str(idx_dir), "--quiet", "--lrs", "0.5,0.05", "--seeds", "2", "--optimizer", "adam",
            "--validation", "100", "--out", str(out)]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(idx_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("whole")
    assert run_script(SWEEP, *sweep_flags(idx_dir, out, epochs=40)) == 0
    assert not (out / "lr_sweep.checkpoint.npz").exists(), "a complete run leaves no checkpoint"
    return json.loads((out / "lr_sweep.json").read_text())


def test_resume_after_sigkill_gives_the_uninterrupted_numbers(idx_dir, tmp_path, uninterrupted):
    out = tmp_path / "cut"
    command = [sys.executable, str(SWEEP), *sweep_flags(idx_dir, out, epochs=40)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "lr_sweep.checkpoint.npz").exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL and not (out / "lr_sweep.json").exists()
    assert run_script(SWEEP, *sweep_flags(idx_dir, out, epochs=40), "--resume") == 0
    resumed = json.loads((out / "lr_sweep.json").read_text())
    assert all(resumed[key] == uninterrupted[key] for key in SAME)
    assert resumed["config"]["resume"] is True and not (out / "lr_sweep.checkpoint.npz").exists()


def test_a_full_disk_at_the_end_keeps_the_epochs_for_resume(idx_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "full"
    whole = tmp_path / "whole3"
    assert run_script(SWEEP, *sweep_flags(idx_dir, whole)) == 0
    real_write = metrics_json.write_json

    def no_space(path, document):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(metrics_json, "write_json", no_space)
    assert run_script(SWEEP, *sweep_flags(idx_dir, out)) == 1
    message = capsys.readouterr().err
    assert "No space left on device" in message and "lr_sweep.checkpoint.npz" in message and "--resume" in message
    monkeypatch.setattr(metrics_json, "write_json", real_write)
    assert run_script(SWEEP, *sweep_flags(idx_dir, out), "--resume") == 0
    resumed, expected = (json.loads((folder / "lr_sweep.json").read_text()) for folder in (out, whole))
    assert all(resumed[key] == expected[key] for key in SAME)


def test_resume_refusals_name_the_flag_and_the_file(idx_dir, tmp_path, capsys):
    out = tmp_path / "refusals"
    assert run_script(SWEEP, *sweep_flags(idx_dir, out), "--resume") == 2
    assert f"argument --resume: no checkpoint at {out / 'lr_sweep.checkpoint.npz'}" in capsys.readouterr().err
    progress = lanes.Progress(
        lanes.init_lanes(
            Experiment(network=Architecture((784, 32, 16, 10)), training=Training(optimizer="adam")),
            [0.5, 0.05],
            [1, 2],
        ),
        lanes.LaneHistory((0.5, 0.05), (1, 2), ((), ()), (None, None), (None, None), 0.0, 0.0, 0.0),
    )
    other_epochs = to_config(
        flags.experiment(flags.sweep_parser().parse_args(sweep_flags(idx_dir, out, 99)), "lr_sweep")
    )
    checkpoint.save(out / "lr_sweep.checkpoint.npz", progress, other_epochs)
    assert run_script(SWEEP, *sweep_flags(idx_dir, out)) == 2
    assert "holds an unfinished run; add --resume" in capsys.readouterr().err
    assert run_script(SWEEP, *sweep_flags(idx_dir, out), "--resume") == 2
    message = capsys.readouterr().err
    assert "argument --resume:" in message and "a run with other flags (" in message
    assert "training.epochs 99 there, 3 now" in message and "design" not in message


def test_a_checkpoint_round_trips_and_refuses_what_does_not_fit(tmp_path):
    config = Experiment(
        network=Architecture((784, 8, 10)),
        training=Training(optimizer="momentum", momentum=0.9, early_stop=2),
        design=Design("lr_sweep", (0.1, 0.2)),
    )
    state = lanes.init_lanes(config, [0.1, 0.2], [1, 2])
    history = lanes.LaneHistory((0.1, 0.2), (1, 2), ((lanes.EpochRecord(1, 0.5, 0.9, 0.4, 0.8, 0.3, 0.7),),) * 2,
                                (None, 1), (None, None), 1.0, 2.0, 3.0)  # fmt: skip
    path = tmp_path / "c.npz"
    checkpoint.save(path, lanes.Progress(state, history), to_config(config))
    loaded = checkpoint.load(path, state, config)
    assert loaded.history == history
    for a, b in zip(jax.tree.leaves(loaded.state), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="its arrays do not fit"):
        checkpoint.load(path, lanes.init_lanes(config, [0.1], [1]), config)
    (tmp_path / "text.npz").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a checkpoint file"):
        checkpoint.load(tmp_path / "text.npz", state, config)
