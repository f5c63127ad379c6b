"""Every writer of a result leaves the previous file whole, and no temporary file, when its final
rename fails: the metrics JSON, figures, saved networks, checkpoints, the MNIST cache, the C header and
the hand-in bundle."""

import errno
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

from fmlp import data, files
from fmlp.analysis import plots
from fmlp.description import Experiment, to_config
from fmlp.embedded import c_export, integer
from fmlp.handin import pipeline
from fmlp.nn import mlp, saved
from fmlp.run import checkpoint, metrics_json
from fmlp.training import lanes

SMALL = mlp.Architecture((784, 8, 10))


def _checkpoint(path: Path) -> None:
    experiment = Experiment(network=SMALL)
    state = lanes.init_lanes(experiment, [0.1], [1])
    history = lanes.LaneHistory((0.1,), (1,), ((lanes.EpochRecord(1, 0.5, 0.9, None, None, 0.3, 0.7),),), (None,),
                                (None,), 0.0, 0.0, 0.0)  # fmt: skip
    checkpoint.save(path, lanes.Progress(state, history), to_config(experiment))


def _header(path: Path) -> None:
    network = integer.from_float(SMALL, mlp.init(jax.random.key(0), SMALL), 8)
    (path.parent / c_export.MARKER).write_text("")  # the previous header is an earlier export's
    c_export.export(network, path.parent)


def _bundle(path: Path) -> None:
    pdf = path.parent / "report.pdf"
    pdf.write_bytes(b"%PDF")
    pipeline.bundle(path, pdf, path.parent)


def _cache(path: Path) -> None:
    images, labels = np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8)
    data.write_cache(path, data.MNIST(images, labels, images, labels))


WRITERS = {
    "metrics JSON": ("r.json", lambda path: metrics_json.write_json(path, {"new": 1})),
    "figure": ("f.png", lambda path: plots.save_png(Figure(), path)),
    "saved network": ("n.npz", lambda path: saved.save(path, mlp.init(jax.random.key(0), SMALL), SMALL)),
    "checkpoint": ("lr_sweep.checkpoint.npz", _checkpoint),
    "MNIST cache": ("mnist.npz", _cache),
    "C header": ("fmlp_weights.h", _header),
    "hand-in bundle": ("handin.zip", _bundle),
}


@pytest.mark.parametrize("writer", WRITERS, ids=list(WRITERS))
def test_a_failed_rename_leaves_the_previous_file_whole_and_no_temporary_file(writer, tmp_path, monkeypatch):
    name, write = WRITERS[writer]
    target = tmp_path / name
    target.write_bytes(b"the previous result")
    renamed = []

    def failing(source, destination):
        if Path(destination).name == name:
            renamed.append(destination)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(source, destination)

    real = os.replace
    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OSError):
        write(target)
    assert renamed, f"the {writer} was not written through a temporary file and a rename"
    assert target.read_bytes() == b"the previous result"
    assert not list(tmp_path.glob(f".{name}.*.tmp")), "a temporary file was left"
