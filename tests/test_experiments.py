"""End to end: both scripts on tiny IDX data written by the test; the output contract; bad flags."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmlp import data, mlp

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "experiments" / "baseline.py"
SWEEP = ROOT / "experiments" / "lr_sweep.py"


@pytest.fixture(scope="module")
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
        array = arrays[field]
        header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes()
        (directory / name).write_bytes(header + array.tobytes())
    return directory


def run_script(script: Path, *flags: str) -> int:
    """Runs a script's main as `python script flags` would, in this process; returns the exit code."""
    argv = sys.argv
    sys.argv = [str(script), *flags]
    try:
        runpy.run_path(str(script), run_name="__main__")
        return 0
    except SystemExit as exit:
        if isinstance(exit.code, int):
            return exit.code
        print(exit.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
        return 1
    finally:
        sys.argv = argv


def tiny(idx_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--epochs", "2", "--batch-size", "32", "--hidden", "32,16", "--quiet", "--data-source", "idx",
            "--data-dir", str(idx_dir), "--out", str(out), *extra]  # fmt: skip


def check_contract(document: dict, num_runs: int, epochs: int) -> None:
    assert set(document) == {"config", "environment", "runs", "seconds"}
    assert {"jax", "backend", "device_count", "python"} <= set(document["environment"])
    assert set(document["seconds"]) == {"data", "compile", "train", "eval", "total"}
    assert all(value > 0 for value in document["seconds"].values())
    assert document["seconds"]["total"] >= document["seconds"]["train"] + document["seconds"]["eval"]
    assert len(document["runs"]) == num_runs
    for run in document["runs"]:
        assert set(run) == {"learning_rate", "diverged_at_epoch", "epochs"}
        assert [e["epoch"] for e in run["epochs"]] == list(range(1, epochs + 1))
        for epoch in run["epochs"]:
            assert set(epoch) == {"epoch", "train_loss", "test_loss", "test_accuracy", "train_accuracy"}
            if run["diverged_at_epoch"] is None or epoch["epoch"] < run["diverged_at_epoch"]:
                assert 0 <= epoch["test_accuracy"] <= 1 and 0 <= epoch["train_accuracy"] <= 1


def check_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200


def metrics(document: dict) -> list:
    return [run["epochs"] for run in document["runs"]]


def test_baseline_writes_the_contract_plots_and_params(idx_dir, tmp_path):
    out = tmp_path / "out"
    params_path = tmp_path / "params.npz"
    assert run_script(BASELINE, *tiny(idx_dir, out, "--lr", "0.5", "--save-params", str(params_path))) == 0
    document = json.loads((out / "baseline.json").read_text())
    check_contract(document, num_runs=1, epochs=2)
    assert document["config"]["lr"] == 0.5 and document["config"]["hidden"] == [32, 16]
    assert document["runs"][0]["learning_rate"] == 0.5
    for name in ("baseline_loss.png", "baseline_accuracy.png"):
        check_png(out / name)
    params = mlp.load(params_path)
    assert [layer.w.shape for layer in params] == [(784, 32), (32, 16), (16, 10)]
    assert sorted(p.name for p in out.iterdir()) == ["baseline.json", "baseline_accuracy.png", "baseline_loss.png"]


def test_baseline_same_seed_same_metrics(idx_dir, tmp_path):
    for name in ("a", "b", "c"):
        seed = "2" if name == "c" else "1"
        assert run_script(BASELINE, *tiny(idx_dir, tmp_path / name, "--seed", seed)) == 0
    first, again, other = (json.loads((tmp_path / n / "baseline.json").read_text()) for n in "abc")
    assert metrics(first) == metrics(again)
    assert metrics(first) != metrics(other)


def test_sweep_writes_the_contract_and_flags_divergence(idx_dir, tmp_path):
    out = tmp_path / "out"
    assert run_script(SWEEP, *tiny(idx_dir, out, "--lrs", "0.5,1e38,0.05")) == 0
    document = json.loads((out / "lr_sweep.json").read_text())
    check_contract(document, num_runs=3, epochs=2)
    assert [run["learning_rate"] for run in document["runs"]] == [0.5, 1e38, 0.05]
    assert [run["diverged_at_epoch"] for run in document["runs"]] == [None, 1, None]
    assert all(e["test_accuracy"] is None for e in document["runs"][1]["epochs"])
    for name in ("lr_sweep_accuracy.png", "lr_sweep_loss.png"):
        check_png(out / name)

    # The sweep's lane for 0.5 is the baseline at 0.5: same start, same batches, same metrics.
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "single", "--lr", "0.5")) == 0
    single = json.loads((tmp_path / "single" / "baseline.json").read_text())["runs"][0]["epochs"]
    for ours, theirs in zip(document["runs"][0]["epochs"], single):
        np.testing.assert_allclose([ours[k] for k in sorted(ours)], [theirs[k] for k in sorted(theirs)], rtol=1e-4)


BAD_FLAGS = [
    (BASELINE, ["--lr", "-1"], "--lr"),
    (BASELINE, ["--lr", "0"], "--lr"),
    (BASELINE, ["--lr", "abc"], "--lr"),
    (BASELINE, ["--lr", "nan"], "--lr"),
    (SWEEP, ["--lrs", "0.1,,0.2"], "--lrs"),
    (SWEEP, ["--lrs", "0.1,-0.5"], "--lrs"),
    (BASELINE, ["--batch-size", "0"], "--batch-size"),
    (BASELINE, ["--batch-size", "70000"], "--batch-size"),
    (SWEEP, ["--batch-size", "101", "--train-limit", "100"], "--batch-size"),
    (BASELINE, ["--epochs", "0"], "--epochs"),
    (SWEEP, ["--epochs", "two"], "--epochs"),
    (BASELINE, ["--hidden", "512,x"], "--hidden"),
    (SWEEP, ["--hidden", ""], "--hidden"),
]


@pytest.mark.parametrize("script,flags,named", BAD_FLAGS)
def test_bad_flags_exit_2_naming_the_flag_and_write_nothing(tmp_path, capsys, script, flags, named):
    out = tmp_path / "out"
    assert run_script(script, "--out", str(out), "--quiet", *flags) == 2
    message = capsys.readouterr().err
    assert f"argument {named}" in message
    value = flags[flags.index(named) + 1]
    assert value == "" or repr(value) in message or value in message
    assert not out.exists()


def test_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert run_script(BASELINE, "--out", str(blocker / "figures"), "--quiet") == 2
    assert "argument --out" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_batch_larger_than_a_small_idx_set_is_refused_after_loading(idx_dir, tmp_path, capsys):
    # 650 passes the flag checks (MNIST has 60000 images); the IDX folder holds only 600.
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "out", "--batch-size", "650")) == 1
    assert "--batch-size 650 is larger than the 600 training images" in capsys.readouterr().err
    assert not (tmp_path / "out" / "baseline.json").exists()
