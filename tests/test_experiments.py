"""End to end: both scripts on tiny IDX data written by the test; the output contract; bad flags."""

import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmlp.nn import mlp, saved

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "experiments" / "baseline.py"
SWEEP = ROOT / "experiments" / "lr_sweep.py"


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


RUN_KEYS = {"learning_rate", "seed", "diverged_at_epoch", "stopped_at_epoch", "best_epoch", "final", "not_learning",
            "epochs"}  # fmt: skip
EPOCH_KEYS = {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"}


def check_contract(document: dict, num_runs: int, epochs: int) -> None:
    assert set(document) - {"params_sha256"} == {"config", "environment", "data", "interrupted", "runs",
                                                 "summary", "summary_interval", "selected", "seconds",
                                                 "peak_device_bytes"}  # fmt: skip
    assert document["peak_device_bytes"] is None  # the CPU counts no device memory: peak RSS says it
    assert {"jax", "backend", "device_count", "python"} <= set(document["environment"])
    assert set(document["seconds"]) == {"data", "compile", "train", "eval", "total"}
    assert all(value > 0 for value in document["seconds"].values())
    assert document["seconds"]["total"] >= document["seconds"]["train"] + document["seconds"]["eval"]
    assert len(document["runs"]) == num_runs
    for run in document["runs"]:
        assert set(run) == RUN_KEYS
        ran = epochs if run["diverged_at_epoch"] is None or num_runs > 1 else run["diverged_at_epoch"]
        assert [e["epoch"] for e in run["epochs"]] == list(range(1, ran + 1))
        for epoch in run["epochs"]:
            assert set(epoch) == EPOCH_KEYS
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
    network = saved.load(params_path)
    assert network.architecture == mlp.Architecture((784, 32, 16, 10), "sigmoid")
    assert [layer.w.shape for layer in network.params] == [(784, 32), (32, 16), (16, 10)]
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
        keys = sorted(k for k in ours if ours[k] is not None)
        np.testing.assert_allclose([ours[k] for k in keys], [theirs[k] for k in keys], rtol=1e-4)


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
    (BASELINE, ["--lr", "1e39"], "--lr"),  # finite as a double, inf in float32
    (BASELINE, ["--lr", "1e-50"], "--lr"),  # 0 in float32
    (SWEEP, ["--lrs", "0.1,1e39"], "--lrs"),
    (BASELINE, ["--seed", str(2**64)], "--seed"),
    (SWEEP, ["--seed", str(2**63 - 2), "--seeds", "3"], "--seeds"),
    (SWEEP, ["--seeds", "0"], "--seeds"),
    (SWEEP, ["--seeds", "-2"], "--seeds"),
    (BASELINE, ["--validation", "-5"], "--validation"),
    (SWEEP, ["--validation", "990", "--train-limit", "1000"], "--validation"),
    (BASELINE, ["--validation", "60000"], "--validation"),
    (BASELINE, ["--early-stop", "3"], "--early-stop"),
    (SWEEP, ["--early-stop", "-1", "--validation", "100"], "--early-stop"),
    (SWEEP, ["--lane-group", "0"], "--lane-group"),
    (BASELINE, ["--download-timeout", "0"], "--download-timeout"),
    (BASELINE, ["--optimizer", "lion"], "--optimizer"),
    (SWEEP, ["--optimizer", "momentum", "--momentum", "1.0"], "--momentum"),
    (BASELINE, ["--optimizer", "nesterov", "--momentum", "-0.1"], "--momentum"),
    (BASELINE, ["--optimizer", "adam", "--momentum", "0.5"], "--momentum"),
]


@pytest.mark.parametrize("script,flags,named", BAD_FLAGS)
def test_bad_flags_exit_2_naming_the_flag_and_write_nothing(tmp_path, capsys, script, flags, named):
    out = tmp_path / "out"
    assert run_script(script, "--out", str(out), "--quiet", *flags) == 2
    message = capsys.readouterr().err
    assert f"argument {named}" in message
    value = flags[flags.index(named) + 1]
    assert value in ("", "3", "0.5") or repr(value) in message or value in message
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
    assert "--batch-size 650 is larger than this data's 600 training images" in capsys.readouterr().err
    assert not (tmp_path / "out" / "baseline.json").exists()


def test_a_validation_split_larger_than_a_small_idx_set_says_so(idx_dir, tmp_path, capsys):
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "out", "--validation", "1000")) == 1
    message = capsys.readouterr().err
    assert "--validation 1000 leaves 0 of this data's 600 training images to train on" in message
    assert not (tmp_path / "out").exists()


def test_empty_out_is_refused(tmp_path, capsys):
    assert run_script(BASELINE, "--out", "", "--quiet") == 2
    assert "argument --out" in capsys.readouterr().err


def test_save_params_that_cannot_be_written_is_refused_before_training(idx_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    flags = tiny(idx_dir, tmp_path / "out", "--save-params", str(blocker / "p.npz"))
    assert run_script(BASELINE, *flags) == 2
    assert "argument --save-params" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_save_params_creates_its_missing_folder(idx_dir, tmp_path):
    path = tmp_path / "missing" / "dir" / "p.npz"
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "out", "--save-params", str(path))) == 0
    assert len(saved.load(path).params) == 3


def test_a_data_failure_leaves_no_output_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert run_script(BASELINE, "--quiet", "--data-source", "idx", "--data-dir", str(empty), "--out", str(out)) == 1
    assert "train-images-idx3-ubyte" in capsys.readouterr().err
    assert not out.exists()


def test_data_dir_with_auto_uses_the_idx_files_and_says_so(idx_dir, tmp_path):
    flags = tiny(idx_dir, tmp_path / "out")
    flags[flags.index("--data-source") + 1] = "auto"
    assert run_script(BASELINE, *flags) == 0
    document = json.loads((tmp_path / "out" / "baseline.json").read_text())
    assert document["data"] == {"source": "idx", "path": str(idx_dir)}


def test_data_dir_with_auto_and_no_data_is_refused_with_a_hint(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_script(BASELINE, "--quiet", "--data-dir", str(empty), "--out", str(tmp_path / "out")) == 1
    assert "--data-source idx" in capsys.readouterr().err


def test_a_diverging_baseline_stops_there_and_writes_valid_json(idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_script(BASELINE, *tiny(idx_dir, out, "--lr", "1e38", "--epochs", "5")) == 0
    assert "diverged at epoch 1" in capsys.readouterr().err
    document = json.loads((out / "baseline.json").read_text())
    check_contract(document, num_runs=1, epochs=5)
    run = document["runs"][0]
    assert run["diverged_at_epoch"] == 1 and len(run["epochs"]) == 1
    assert run["epochs"][0]["test_loss"] is None and run["final"]["test_accuracy"] is None
    for name in ("baseline_loss.png", "baseline_accuracy.png"):
        check_png(out / name)


def test_seeds_validation_and_early_stop_grow_the_contract(idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    flags = tiny(idx_dir, out, "--lrs", "0.5,0.05", "--seeds", "3", "--validation", "100", "--early-stop", "1",
                 "--epochs", "3")  # fmt: skip
    assert run_script(SWEEP, *flags) == 0
    document = json.loads((out / "lr_sweep.json").read_text())
    runs = document["runs"]
    assert [(run["learning_rate"], run["seed"]) for run in runs] == [(r, s) for r in (0.5, 0.05) for s in (1, 2, 3)]
    assert all(e["val_accuracy"] is not None for run in runs for e in run["epochs"] if e["test_accuracy"] is not None)
    summary = document["summary"]
    assert [row["learning_rate"] for row in summary] == [0.5, 0.05]
    finals = [run["final"]["test_accuracy"] for run in runs[:3]]
    assert summary[0]["final_test_accuracy"]["mean"] == pytest.approx(np.mean(finals))
    assert document["selected"]["learning_rate"] in (0.5, 0.05)
    assert "selected on validation" in capsys.readouterr().out
    # With early stopping, "final" is the run's best epoch by validation.
    for run in runs:
        assert run["final"]["epoch"] == run["best_epoch"]
    # The 0.5 lane of seed 2 is the baseline at 0.5, seed 2, with the same validation split.
    single = tmp_path / "single"
    assert run_script(BASELINE, *tiny(idx_dir, single, "--lr", "0.5", "--seed", "2", "--validation", "100",
                                      "--early-stop", "1", "--epochs", "3")) == 0  # fmt: skip
    theirs = json.loads((single / "baseline.json").read_text())["runs"][0]
    assert len(theirs["epochs"]) == len(runs[1]["epochs"]) or runs[1]["stopped_at_epoch"] is not None
    for ours, reference in zip(runs[1]["epochs"], theirs["epochs"]):
        keys = sorted(k for k in ours if ours[k] is not None)
        np.testing.assert_allclose([ours[k] for k in keys], [reference[k] for k in keys], rtol=1e-4)


def test_more_runs_than_memory_holds_are_refused_before_any_work(tmp_path, capsys):
    assert run_script(SWEEP, "--seeds", "1000000", "--out", str(tmp_path / "out"), "--quiet") == 2
    message = capsys.readouterr().err
    assert "argument --seeds: 7000000 runs need about" in message and "at most" in message and "runs fit" in message
    assert not (tmp_path / "out").exists()


def test_an_idx_test_set_of_no_images_is_named(idx_dir, tmp_path, capsys):
    empty = tmp_path / "idx"
    shutil.copytree(idx_dir, empty)
    for name, header in (("t10k-images-idx3-ubyte", [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28]),
                         ("t10k-labels-idx1-ubyte", [0, 0, 8, 1, 0, 0, 0, 0])):  # fmt: skip
        (empty / name).write_bytes(bytes(header))
    assert run_script(BASELINE, *tiny(empty, tmp_path / "out")) == 1
    assert f"the test split of {empty} holds no images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
