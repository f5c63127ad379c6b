"""Nothing lost, nothing silently wrong: each defect a probe of hostile files, kills, full disks and bad
flags found, pinned by a test (numbered as the probe numbered them)."""

import argparse
import errno
import json
import os
import runpy
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

from fmlp import data, files
from fmlp.description import defaults, to_config
from fmlp.embedded import c_export, integer
from fmlp.handin import report_flags
from fmlp.handin.report import commands, content
from fmlp.handin.report.tables import cell
from fmlp.nn import mlp, saved
from fmlp.run import checkpoint, flags, metrics_json, run_lock
from fmlp.training import lanes

from .test_experiments import BASELINE, SWEEP, run_script, tiny

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
SMALL = mlp.Architecture((784, 8, 10))


def small_network(path: Path, change=None, architecture: mlp.Architecture = SMALL) -> Path:
    """A saved network of `architecture`, its arrays first passed through change(list of [w, b])."""
    params = [[np.array(layer.w), np.array(layer.b)] for layer in mlp.init(jax.random.key(0), architecture)]
    if change is not None:
        change(params)
    saved.save(path, tuple(mlp.Dense(w, b) for w, b in params), architecture)
    return path


def nan_weight(params):
    params[0][0][3, 4] = np.nan


# 1. diagnose.py deleted the previous results, then crashed on a NaN network.
def test_diagnose_refuses_a_non_finite_network_and_leaves_the_previous_set_whole(script, idx_dir, tmp_path):
    out = tmp_path / "diagnosis"
    out.mkdir()
    previous = {"diagnose.json": '{"networks": {}}\n', "diagnose_saturation.png": "old figure"}
    for name, text in previous.items():
        (out / name).write_text(text)
    refused = script("diagnose.py", small_network(tmp_path / "nan.npz", nan_weight), "--out", out,
                                "--data-source", "idx", "--data-dir", idx_dir)  # fmt: skip
    assert refused.returncode == 1 and "nan.npz" in refused.stderr and "non-finite" in refused.stderr
    assert {path.name: path.read_text() for path in out.iterdir()} == previous


def test_a_diagnosis_that_cannot_be_written_whole_leaves_the_previous_set_as_it_was(tmp_path):
    write_set = runpy.run_path(str(EXPERIMENTS / "diagnose.py"))["write_set"]
    out = tmp_path / "diagnosis"
    out.mkdir()
    (out / "diagnose.json").write_text("{}\n")
    (out / "diagnose_old.png").write_text("old")
    with pytest.raises(ValueError):  # NaN has no JSON
        write_set(out, {"diagnose_new.png": Figure()}, {"broken": float("nan")})
    assert sorted(path.name for path in out.iterdir()) == ["diagnose.json", "diagnose_old.png"]
    write_set(out, {"diagnose_new.png": Figure()}, {"whole": 1})
    assert sorted(path.name for path in out.iterdir()) == ["diagnose.json", "diagnose_new.png"]


# 2. Two runs sharing --out destroyed each other.
def test_a_second_run_on_the_same_result_is_refused_naming_the_first(idx_dir, tmp_path, capsys):
    out = tmp_path / "shared"
    with run_lock.holding(out, "lr_sweep"):
        assert run_script(SWEEP, *tiny(idx_dir, out, "--lrs", "0.5")) == 2
        message = capsys.readouterr().err
        assert "argument --out" in message and f"process {os.getpid()}" in message
        assert not out.exists()  # refused before anything was written
        assert run_script(BASELINE, *tiny(idx_dir, out)) == 0  # another result in the same folder may run


def test_the_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from fmlp.run import run_lock\nwith run_lock.holding(Path(sys.argv[1]), 'baseline'):\n"
                               "    print('held', flush=True)\n    time.sleep(60)\n", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(run_lock.Taken, match=f"process {holder.pid}"), run_lock.holding(tmp_path, "baseline"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock.holding(tmp_path, "baseline"):  # kill -9 left no stale lock
        pass


# 3. "Your epochs are saved" when none were; a folder root cannot write passed the writability check.
def test_writability_is_tried_by_writing(tmp_path):
    assert flags.can_create_folder(Path("/proc/fmlp")) is not None  # os.access says yes to root here
    new = tmp_path / "fmlp-new"
    assert flags.can_create_folder(new / "sub") is None and not new.exists() and not any(tmp_path.iterdir())


def test_a_full_disk_says_the_epochs_are_lost_when_no_checkpoint_could_be_written(
    script, idx_dir, tmp_path, monkeypatch, capsys
):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(metrics_json, "write_json", no_space)
    monkeypatch.setattr(checkpoint, "save", no_space)
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "full")) == 1
    message = capsys.readouterr().err
    assert "no checkpoint could be written either" in message and "the finished epochs are lost" in message
    assert "add --resume" not in message and not (tmp_path / "full" / "baseline.checkpoint.npz").exists()


# 4. Five or more authors broke the report.
def test_any_number_of_authors_wraps_in_the_appendix():
    authors = ["Maximilian Alexander Schwarzenberger", "Anna-Katharina Müller-Lüdenscheidt", "Jean-Baptiste Poquelin",
               "Zoë O'Neil-Fitzgerald", "Sergei Aleksandrovich Rachmaninov", "Xiaoming Ouyang"]  # fmt: skip
    line = commands.command_lines(["python", "experiments/handin.py", *commands.author_words(authors)])
    assert all(len(part) <= commands.LINE_WIDTH for part in line.splitlines())
    words = shlex.split(line.replace("\\\n", " "))
    parser = argparse.ArgumentParser()
    report_flags.add_report_flags(parser)
    assert parser.parse_args(words[2:]).authors == authors


# 5. --seeds 1000000000 ate memory without limit.
def test_a_billion_seeds_are_refused_by_the_estimate_before_any_lane_exists(script, idx_dir, tmp_path):
    refused = script("lr_sweep.py", *tiny(idx_dir, tmp_path / "huge", "--seeds", "1000000000"))
    assert refused.returncode == 2 and "argument --seeds" in refused.stderr and "runs fit" in refused.stderr


def test_a_network_too_large_for_one_run_names_hidden(idx_dir, tmp_path, capsys):
    assert run_script(SWEEP, *tiny(idx_dir, tmp_path / "wide", "--hidden", "200000,200000", "--lrs", "0.1")) == 2
    assert "argument --hidden" in capsys.readouterr().err


# 6 and 9. A NaN weight gave a silently wrong integer network; a float16 file crashed finetune.
@pytest.mark.parametrize("name", ["quantize.py", "export_c.py", "finetune.py"])
def test_a_non_finite_network_is_refused_by_name(script, name, tmp_path):
    extra = ["--bits", "8"] if name != "quantize.py" else []
    refused = script(name, small_network(tmp_path / "nan.npz", nan_weight), *extra,
                                "--out", tmp_path / "out")  # fmt: skip
    assert refused.returncode == 1 and "nan.npz: w0 holds 1 non-finite value" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "out").exists()


def test_saved_networks_load_as_float32_whatever_they_were_saved_in(tmp_path):
    network = small_network(tmp_path / "half.npz")
    with np.load(network) as file:
        arrays = {name: file[name].astype(np.float16) if name[0] in "wb" else file[name] for name in file.files}
    np.savez(tmp_path / "half.npz", **arrays)
    loaded = saved.load(tmp_path / "half.npz")
    assert {leaf.dtype for leaf in jax.tree.leaves(loaded.params)} == {np.dtype(np.float32)}


# 7. quantize.py crashed where export_c.py refused.
@pytest.mark.parametrize(
    "change",
    [
        lambda p: p[0][0].__imul__(1e30),
        lambda p: p[0][0].__imul__(1e-30),
        lambda p: p[0][0].fill(0),
        lambda p: p[1][0][:, 3].fill(0),
        lambda p: p[1][1].__setitem__(2, 1e38),
    ],
    ids=["huge", "tiny", "zero", "zero-column", "huge-bias"],
)
def test_quantize_refuses_what_cannot_be_converted_with_one_line_naming_the_file(script, change, tmp_path):
    refused = script("quantize.py", small_network(tmp_path / "odd.npz", change), "--out", tmp_path / "q")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "odd.npz: at " in refused.stderr
    assert refused.stderr.count("\n") == 1 and not (tmp_path / "q").exists()


# 8. Checkpoint metadata was trusted.
@pytest.fixture
def saved_checkpoint(tmp_path):
    experiment = defaults("lr_sweep")._replace(network=SMALL)
    experiment = experiment._replace(design=experiment.design._replace(learning_rates=(0.1, 0.2)))
    state = lanes.init_lanes(experiment, [0.1, 0.2], [1, 1])
    record = lanes.EpochRecord(1, 0.5, 0.9, None, None, 0.3, 0.7)
    history = lanes.LaneHistory((0.1, 0.2), (1, 1), ((record,),) * 2, (None, None), (None, None), 1.0, 2.0, 3.0)
    path = tmp_path / "lr_sweep.checkpoint.npz"
    checkpoint.save(path, lanes.Progress(state, history), to_config(experiment))
    return path, state, experiment


def _rewrite_meta(path: Path, change) -> None:
    with np.load(path) as file:
        arrays = {name: file[name] for name in file.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta = change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(meta):
        target = meta
        for key in keys[:-1]:
            target = target[key]
        if value is KeyError:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
        return meta

    return change


record = [1, 0.5, 0.9, None, None, 0.3, 0.7]
BAD_META = {
    "a list": (lambda meta: [meta], "format"),
    "no flags": (_set("flags", KeyError), "flags"),
    "no history": (_set("history", KeyError), "history"),
    "short records": (_set("history", "records", [[record]]), "records is not a list"),
    "a string record": (_set("history", "records", [["epoch one"], [record]]), "epoch 1"),
    "records beyond the epochs": (_set("history", "records", [[[n, *record[1:]] for n in range(1, 32)]] * 2), "epochs"),
    "emptied records": (_set("history", "records", [[], []]), "epochs"),
    "unequal lanes": (_set("history", "records", [[record], [record, [2, *record[1:]]]]), "same"),
    "short diverged_at_epoch": (_set("history", "diverged_at_epoch", [None]), "diverged_at_epoch"),
    "a diverged epoch past the records": (_set("history", "diverged_at_epoch", [None, 5]), "diverged_at_epoch"),
    "no seconds": (_set("history", "train_seconds", KeyError), "train_seconds"),
}


@pytest.mark.parametrize("case", BAD_META, ids=list(BAD_META))
def test_checkpoint_metadata_is_checked_field_by_field(saved_checkpoint, case):
    path, state, experiment = saved_checkpoint
    assert checkpoint.load(path, state, experiment).history.records[0][0].epoch == 1  # the intact one loads
    change, named = BAD_META[case]
    _rewrite_meta(path, change)
    with pytest.raises(ValueError, match=named) as refused:
        checkpoint.load(path, state, experiment)
    assert str(refused.value).startswith(str(path))


# 10. kill -9 during a checkpoint write left a temporary file that was never removed.
def test_a_run_removes_the_temporary_files_of_dead_processes(idx_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".baseline.checkpoint.npz.{dead.pid}.abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    live = out / f".baseline.json.{os.getppid()}.efgh.tmp"  # a process that is still there
    live.write_bytes(b"")
    assert run_script(BASELINE, *tiny(idx_dir, out)) == 0
    assert not stale.exists() and live.exists()
    assert files.remove_stale_temporaries(out) == []


# 11. After a resume, seconds.total was less than seconds.train.
def test_a_resumed_runs_total_seconds_count_every_process(idx_dir, tmp_path):
    out = tmp_path / "resumed"
    child = subprocess.Popen([sys.executable, str(SWEEP), *tiny(idx_dir, out, "--epochs", "30")], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while not (out / "lr_sweep.checkpoint.npz").exists() and child.poll() is None:
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    saved_total = checkpoint.seconds_saved(out / "lr_sweep.checkpoint.npz")
    assert run_script(SWEEP, *tiny(idx_dir, out, "--epochs", "30"), "--resume") == 0
    seconds = json.loads((out / "lr_sweep.json").read_text())["seconds"]
    assert seconds["total"] >= seconds["train"] + seconds["eval"] and seconds["total"] > saved_total > 0


# 12. Smaller ones.
def test_handin_ends_with_130_when_a_step_is_interrupted(capsys):
    step = runpy.run_path(str(EXPERIMENTS / "handin.py"))["run"]
    with pytest.raises(SystemExit) as ended:
        step("sweep", ["-c", "import os, signal\nos.kill(os.getpid(), signal.SIGINT)"])
    assert ended.value.code == 130 and "interrupted during the sweep" in capsys.readouterr().err


def test_export_refuses_a_folder_of_other_files_and_compiles_only_its_own(script, tmp_path):
    network = small_network(tmp_path / "net.npz")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "main.c").write_text("int main(void) { return 0; }\n")
    refused = script("export_c.py", network, "--out", theirs)
    assert refused.returncode == 2 and "argument --out" in refused.stderr and "no export wrote" in refused.stderr
    assert (theirs / "main.c").read_text() == "int main(void) { return 0; }\n"
    ours = tmp_path / "ours"
    assert script("export_c.py", network, "--out", ours).returncode == 0
    (ours / "extra.c").write_text("this is not C\n")  # a file beside the export is not compiled
    assert script("export_c.py", network, "--out", ours).returncode == 0
    assert c_export.C_FILES == ("fmlp.c", "main.c")


@pytest.fixture(scope="module")
def c_program(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("c")
    params = mlp.init(jax.random.key(0), SMALL)
    c_export.export(integer.from_float(SMALL, params, 8), folder / "export")
    sources = [str(folder / "export" / name) for name in c_export.C_FILES]
    subprocess.run(["cc", "-std=c99", "-O2", *sources, "-o", str(folder / "fmlp_mnist")], check=True)
    return folder / "fmlp_mnist"


def test_the_c_program_refuses_images_that_are_not_28_by_28_and_labels_that_are_not_digits(c_program, tmp_path):
    data.write_idx(tmp_path / "flat", np.zeros((3, 784, 1), np.uint8))
    data.write_idx(tmp_path / "images", np.zeros((3, 28, 28), np.uint8))
    data.write_idx(tmp_path / "labels", np.array([1, 200, 3], np.uint8))
    data.write_idx(tmp_path / "digits", np.array([1, 2, 3], np.uint8))
    flat = subprocess.run([c_program, tmp_path / "flat", tmp_path / "digits"], capture_output=True, text=True)
    assert flat.returncode == 1 and "not 28 x 28" in flat.stderr
    labels = subprocess.run([c_program, tmp_path / "images", tmp_path / "labels"], capture_output=True, text=True)
    assert labels.returncode == 1 and "label 200 of image 1 is not a digit" in labels.stderr
    fine = subprocess.run([c_program, tmp_path / "images", tmp_path / "digits"], capture_output=True, text=True)
    assert fine.returncode == 0, fine.stderr


@pytest.mark.parametrize("bits", [True, 8.7, "8"])
def test_a_saved_width_that_is_not_an_integer_is_refused(bits, tmp_path):
    path = small_network(tmp_path / "net.npz")
    with np.load(path) as file:
        arrays = {name: file[name] for name in file.files}
    description = json.loads(arrays["architecture"].tobytes()) | {"weight_bits": bits}
    arrays["architecture"] = np.frombuffer(json.dumps(description).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="weight_bits"):
        saved.load(path)


@pytest.mark.parametrize("name", ["quantize.py", "diagnose.py", "export_c.py"])
def test_one_rule_for_what_is_an_mnist_classifier(script, name, tmp_path):
    network = small_network(tmp_path / "five.npz", architecture=mlp.Architecture((784, 8, 5)))
    refused = script(name, network, "--out", tmp_path / "out")
    assert refused.returncode == 1 and "five.npz: a network of 784 inputs and 5 outputs, not an MNIST" in refused.stderr


def test_a_bar_in_a_recorded_device_name_stays_in_its_cell():
    from markdown_it import MarkdownIt

    row = f"| a | {cell('GPU | 80GB')} |"
    tokens = MarkdownIt("commonmark").enable("table").parse(f"| x | y |\n| --- | --- |\n{row}\n")
    cells = [token.content for token in tokens if token.type == "inline"]
    assert cells == ["x", "y", "a", "GPU | 80GB"]


def test_the_report_refuses_an_interrupted_result_naming_it(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    document = json.loads((ROOT / "figures" / "baseline.json").read_text()) | {"interrupted": True}
    (results / "baseline.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match="baseline.json: interrupted"):
        content.load_results(results, ROOT / "docs")
