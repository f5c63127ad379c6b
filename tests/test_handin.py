"""The one command from a clone to the hand-in, on tiny IDX data: what it runs, what it reuses, the
baseline taken from the sweep, the bundle; and its refusals."""

import json
import runpy
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from fmlp.description import defaults, updated
from fmlp.handin import pipeline

from .test_experiments import run_script

# Every test of this module on one worker, so that its module fixture runs once.
pytestmark = pytest.mark.xdist_group("handin")

ROOT = Path(__file__).resolve().parent.parent
HANDIN = ROOT / "experiments" / "handin.py"


def handin_command(idx_dir: Path, results: Path) -> list[str]:
    return [sys.executable, str(HANDIN), "--authors", "Ada Lovelace, Alan Turing", "--present", "reading",
            "--results", str(results), "--epochs", "2", "--data-source", "idx", "--data-dir", str(idx_dir),
            "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def first_run(idx_dir, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    results = tmp_path_factory.mktemp("handin")
    finished = subprocess.run(handin_command(idx_dir, results), capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return results, finished


def test_a_fresh_folder_gets_every_result_the_pdf_and_the_zip(first_run):
    results, finished = first_run
    for name in ("lr_sweep.json", "baseline.json", "gradcheck.json", "diagnose/diagnose.json", "report.pdf",
                 "handin.zip", "baseline_loss.png", "baseline_accuracy.png", "params/lr_0.1_seed_1.npz"):  # fmt: skip
        assert (results / name).is_file(), name
    assert "[1/3] learning-rate sweep: python" in finished.stdout
    assert "wrote" in finished.stdout and "handin.zip" in finished.stdout


def test_the_pdf_quotes_this_runs_results(first_run):
    results, _ = first_run
    sweep = json.loads((results / "lr_sweep.json").read_text())
    text = "\n".join(page.extract_text() for page in PdfReader(results / "report.pdf").pages)
    best = max(sweep["runs"], key=lambda run: run["final"]["test_accuracy"])
    assert f"lr {best['learning_rate']:g} is best at {100 * best['final']['test_accuracy']:.2f}%" in text
    assert "departs from the exercise sheet" in text and "2 epochs, not 30" in text


COMMITTED = ROOT / "figures"
PLANTED = ("robustness", "optimizers/adam", "activations/relu", "quantize/float", "diagnose")  # the default design's


def text_of(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def test_a_design_of_the_groups_own_beside_another_designs_results_quotes_only_its_own(idx_dir, tmp_path):
    """The common path: a clone's results folder holds the committed default design's results, and the
    group runs handin.py with a design of its own (relu, Adam, other widths and rates, 1 epoch)."""
    for folder in PLANTED:
        shutil.copytree(COMMITTED / folder, tmp_path / folder)
    shutil.copy(COMMITTED / "quantize" / "quantize.json", tmp_path / "quantize" / "quantize.json")
    design = ["--lrs", "0.01,0.003", "--epochs", "1", "--hidden", "24", "--activation", "relu", "--optimizer", "adam"]
    finished = subprocess.run(handin_command(idx_dir, tmp_path) + design, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "2 learning rates, not at least 5" in finished.stdout and "1 epoch, not 30" in finished.stdout
    assert "baseline: python" in finished.stdout  # 0.1 is not one of the rates: trained on its own
    sweep = json.loads((tmp_path / "lr_sweep.json").read_text())
    assert sweep["config"]["lrs"] == [0.01, 0.003] and sweep["config"]["hidden"] == [24]
    baseline = json.loads((tmp_path / "baseline.json").read_text())
    assert baseline["config"]["lr"] == 0.1 and baseline["config"]["hidden"] == [24] and "derived_from" not in baseline
    # The checks are of this network: its gradient check, a diagnosis of the networks this sweep wrote.
    gradcheck = json.loads((tmp_path / "gradcheck.json").read_text())
    assert gradcheck["sizes"] == [784, 24, 10] and gradcheck["activation"] == "relu"
    diagnosis = json.loads((tmp_path / "diagnose" / "diagnose.json").read_text())
    assert set(diagnosis["params_sha256"].values()) <= set(sweep["params_sha256"].values())
    text = text_of(tmp_path / "report.pdf")
    setup = " ".join(text.split("Setup", 1)[1].split("Linear layer", 1)[0].split())
    for words in ("784 → 24 → 10, relu hidden layers", "(He's rule), biases 0", "minibatch Adam (optax's update",
                  "learning rates 0.01 and 0.003", "Forward and backward pass are written out by hand"):  # fmt: skip
        assert words in setup, words
    assert "N(0, 1)·√(1/fan_in)" not in setup and "For the sigmoid network" not in text
    # No number of the planted results: the five-seed grid's choice, Adam's, the quantization study's.
    robust = json.loads((COMMITTED / "robustness" / "lr_sweep.json").read_text())
    assert f"{100 * robust['selected']['test_accuracy']:.2f}%" not in text
    for heading in ("How robust are these conclusions?", "Beyond plain SGD", "To a microcontroller"):
        assert heading in text.split("Left out of this report")[1], heading
    assert "made for another design" in text and "--extras" in text
    handin = text.split("How to reproduce")[-1].split("python experiments/handin.py")[1].replace("\\\n", " ")
    assert "--lrs 0.01,0.003" in handin and "--epochs 1" in handin and "--hidden 24" in handin
    assert f"--results {tmp_path}" in " ".join(handin.split())


def test_the_baseline_is_the_sweeps_lr_01_lane_not_a_second_training(first_run):
    results, _ = first_run
    sweep = json.loads((results / "lr_sweep.json").read_text())
    baseline = json.loads((results / "baseline.json").read_text())
    lane = next(run for run in sweep["runs"] if run["learning_rate"] == 0.1)
    assert baseline["runs"] == [lane]
    assert baseline["config"]["lr"] == 0.1 and baseline["config"]["epochs"] == 2 and "lrs" not in baseline["config"]
    assert "lr_sweep.json" in baseline["derived_from"]
    assert baseline["summary"][0]["final_test_accuracy"]["mean"] == lane["final"]["test_accuracy"]


def test_the_zip_holds_the_pdf_the_source_environment_and_metrics(first_run):
    results, _ = first_run
    with zipfile.ZipFile(results / "handin.zip") as archive:
        names = set(archive.namelist())
        pdf = archive.read("fmlp-handin/report.pdf")
    assert pdf == (results / "report.pdf").read_bytes()
    wanted = [
        "fmlp/nn/layers.py",
        "fmlp/nn/mlp.py",
        "experiments/handin.py",
        "environment.yml",
        "pyproject.toml",
        "README.md",
        "figures/lr_sweep.json",
        "figures/baseline.json",
        "figures/diagnose/diagnose.json",
    ]
    for name in wanted:
        assert f"fmlp-handin/{name}" in names, name
    assert not any("__pycache__" in name or name.endswith(".npz") for name in names)


def test_a_second_run_reuses_every_result_and_only_rebuilds_the_pdf(first_run, idx_dir):
    """And a title or a name that starts with a dash reaches the PDF (the probe's 11: --title=-draft and
    --authors=-Anon broke the report step after all the training)."""
    results, _ = first_run
    before = (results / "lr_sweep.json").stat().st_mtime_ns
    command = handin_command(idx_dir, results)
    command[command.index("--authors") : command.index("--authors") + 2] = ["--authors=-Anon", "--title=-draft"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stdout.count("is there") == 3
    assert (results / "lr_sweep.json").stat().st_mtime_ns == before
    cover = PdfReader(results / "report.pdf").pages[0].extract_text()
    assert "-draft" in cover and "-Anon" in cover


def test_a_result_with_other_flags_or_interrupted_does_not_count(first_run, tmp_path):
    results, _ = first_run
    design = updated(defaults("lr_sweep"), training={"epochs": 2})
    sweep, gradcheck, _ = pipeline.steps(results, design, extras=False)
    assert pipeline.is_done(sweep) and pipeline.is_done(gradcheck)
    assert not pipeline.is_done(sweep._replace(expected=updated(design, training={"epochs": 3})))
    # Every defining field counts: a sweep made with a rate decay is not the sweep without one.
    assert not pipeline.is_done(sweep._replace(expected=updated(design, training={"rate_decay": 0.5})))
    (tmp_path / "same.json").write_text(sweep.result.read_text())
    assert pipeline.is_done(sweep._replace(result=tmp_path / "same.json"))
    decayed = json.loads(sweep.result.read_text())
    decayed["config"]["rate_decay"] = 0.5
    (tmp_path / "decayed.json").write_text(json.dumps(decayed))
    assert not pipeline.is_done(sweep._replace(result=tmp_path / "decayed.json"))
    # A result older than a field (here: no "loss" recorded) reads it as its default.
    older = json.loads(sweep.result.read_text())
    del older["config"]["loss"], older["config"]["rate_decay"]
    assert pipeline.matches(older, design)
    document = json.loads(sweep.result.read_text()) | {"interrupted": True}
    (tmp_path / "lr_sweep.json").write_text(json.dumps(document))
    assert pipeline.read_result(tmp_path / "lr_sweep.json") is None
    (tmp_path / "broken.json").write_text("{ not json")
    assert pipeline.read_result(tmp_path / "broken.json") is None


@pytest.mark.parametrize("authors", ["", " , "])
def test_authors_that_name_no_one_exit_2(authors, capsys):
    assert run_script(HANDIN, "--authors", authors) == 2
    assert "argument --authors" in capsys.readouterr().err


def test_without_authors_it_exits_2(capsys):
    assert run_script(HANDIN) == 2
    assert "--authors" in capsys.readouterr().err


def test_a_step_beside_the_others_prints_when_it_ends_and_one_that_fails_ends_those_beside_it(capfd):
    handin = runpy.run_path(str(HANDIN))
    finished = handin["run_beside"]("gradient check", ["-c", "print('from beside', flush=True)"])
    handin["run"]("sweep", ["-c", "print('in front', flush=True)"])
    finished()
    assert capfd.readouterr().out.splitlines() == ["in front", "from beside"]
    handin["run_beside"]("long step", ["-c", "import time; time.sleep(60)"])
    (beside,) = handin["RUNNING"]
    with pytest.raises(SystemExit, match="the sweep failed"):
        try:
            handin["run"]("sweep", ["-c", "raise SystemExit(3)"])
        finally:
            handin["stop_running"]()
    assert beside.returncode == -signal.SIGTERM and handin["RUNNING"] == []


# Runs handin.py with SIGINT sent to it when a named function of fmlp.handin.pipeline is first called:
# a known point outside every step, whatever the machine's speed.
SIGNAL_IN_PIPELINE = """
import errno, os, runpy, signal, sys
from fmlp.handin import pipeline
name, what, *args = sys.argv[1:]
original = getattr(pipeline, name)
def hooked(*positional, **named):
    if what == "full disk":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGINT)
    return original(*positional, **named)
setattr(pipeline, name, hooked)
sys.argv = [args[0], *args[1:]]
runpy.run_path(args[0], run_name="__main__")
"""


@pytest.mark.parametrize("what, where", [("ctrl-c", "steps"), ("full disk", "bundle")])
def test_ctrl_c_or_a_full_disk_outside_a_step_is_one_line_and_leaves_the_previous_pair(
    first_run, idx_dir, what, where
):
    """Issue of the second probe, 10: Ctrl-C while handin.py loaded was a KeyboardInterrupt traceback;
    9: a full disk while it wrote the zip was a traceback, and left the old handin.zip beside a new
    report.pdf."""
    results, _ = first_run
    before = {name: (results / name).read_bytes() for name in ("report.pdf", "handin.zip")}
    command = [sys.executable, "-c", SIGNAL_IN_PIPELINE, where, what, *handin_command(idx_dir, results)[1:]]
    ended = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert ended.returncode == (130 if what == "ctrl-c" else 1), ended.stderr[-2000:]
    last = ended.stderr.strip().splitlines()[-1]
    assert "Traceback" not in ended.stderr
    if what == "ctrl-c":
        assert last.startswith("interrupted")
    else:
        assert "No space left on device" in last and "report.pdf and handin.zip are as they were" in last
    assert {name: (results / name).read_bytes() for name in before} == before
    assert not list(results.glob(".*.tmp"))  # the staging folder went with the process
