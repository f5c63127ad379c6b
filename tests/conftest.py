"""Shared test helpers."""

from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest

from fmlp import data
from fmlp.nn import mlp
from fmlp.run import experiment

from .test_experiments import run_script

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"

# Before the first compilation: the tests keep their compiled programs where the scripts keep theirs,
# and share them between the workers and with the next run of the suite.
experiment.keep_compiled_programs()


@pytest.fixture
def float64():
    """Runs a test with 64-bit floats enabled, then restores the previous setting."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def trace_counter(monkeypatch):
    """A list that grows by one each time a compiled function traces the network's loss and grads.

    The compiled epoch functions look up `mlp.loss_grads_and_probs` only while tracing, so a cached
    program adds nothing to the list.
    """
    traces = []
    original = mlp.loss_grads_and_probs

    def counting(*args):
        traces.append(1)
        return original(*args)

    monkeypatch.setattr(mlp, "loss_grads_and_probs", counting)
    return traces


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory) -> Path:
    """600 training and 200 test images in IDX files: class k is a bright k-th horizontal band plus noise."""
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("idx")

    def split(count):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            image[2 + 2 * label : 4 + 2 * label] = 255
        return images, labels

    arrays = dict(zip(("train_images", "train_labels"), split(600))) | dict(
        zip(("test_images", "test_labels"), split(200))
    )
    for field, name in data.IDX_FILES.items():
        data.write_idx(directory / name, arrays[field])
    return directory


class Ran(NamedTuple):
    returncode: int
    stderr: str


@pytest.fixture
def script(capsys):
    """Runs experiments/NAME in this process (`run_script`): its exit code and what it wrote to stderr."""

    def run(name: str, *args) -> Ran:
        capsys.readouterr()
        code = run_script(EXPERIMENTS / name, *map(str, args))
        return Ran(code, capsys.readouterr().err)

    return run
