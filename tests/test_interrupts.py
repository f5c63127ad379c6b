"""SIGINT and SIGTERM end a run cleanly: finished epochs written, nothing half-written, no traceback."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import pytest

from fmlp import files

from .test_experiments import BASELINE, tiny

ROOT = Path(__file__).resolve().parent.parent


class Child:
    """A subprocess whose stderr is collected by a thread, so the test can wait for what it prints."""

    def __init__(self, command: list[str]):
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        while chunk := self.process.stderr.read(1):
            self.stderr += chunk

    def wait_for(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.stderr):
            assert self.process.poll() is None, f"exited early:\n{self.stderr}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.stderr}"
            time.sleep(0.02)

    def finish(self, timeout: float = 60.0) -> int:
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        self.reader.join(5)
        return code


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")] if folder.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_first_epoch_keeps_the_finished_epochs(idx_dir, tmp_path, signum):
    out = tmp_path / "out"
    flags = tiny(idx_dir, out, "--epochs", "100000")
    flags.remove("--quiet")
    child = Child([sys.executable, str(BASELINE), *flags])
    child.wait_for(r"\b[1-9]\d*/100000")
    child.process.send_signal(signum)
    assert child.finish() == 128 + signum
    match = re.search(r"interrupted after (\d+) of 100000 epochs", child.stderr)
    assert match, child.stderr
    assert "Traceback" not in child.stderr
    document = json.loads((out / "baseline.json").read_text())
    assert document["interrupted"] is True
    assert len(document["runs"][0]["epochs"]) == int(match.group(1)) >= 1
    assert (out / "baseline_loss.png").exists() and not leftovers(tmp_path)


def test_a_second_signal_aborts_at_once_and_leaves_no_temporary_file(idx_dir, tmp_path):
    out = tmp_path / "out"
    flags = tiny(idx_dir, out, "--epochs", "100000")
    flags.remove("--quiet")
    child = Child([sys.executable, str(BASELINE), *flags])
    child.wait_for(r"\b[1-9]\d*/100000")
    child.process.send_signal(signal.SIGINT)
    child.wait_for("stopping after the current epoch")
    child.process.send_signal(signal.SIGINT)
    assert child.finish() == 130
    assert "Traceback" not in child.stderr and not leftovers(tmp_path)


def test_a_signal_before_the_first_epoch_ends_at_once_and_writes_nothing(idx_dir, tmp_path):
    out = tmp_path / "out"
    child = Child([sys.executable, str(BASELINE), *tiny(idx_dir, out, "--epochs", "100000")])
    child.wait_for("MNIST from idx")  # data loaded, compiling now
    child.process.send_signal(signal.SIGINT)
    assert child.finish() == 130
    assert "nothing written" in child.stderr and "Traceback" not in child.stderr
    assert not out.exists()


def test_an_abort_removes_the_temporary_file_being_written(tmp_path):
    target = tmp_path / "mnist.npz"
    script = f"""
import time
from pathlib import Path
from fmlp.run import interrupts
from fmlp.files import atomic_path

def work(control):
    with atomic_path(Path({str(target)!r})) as temp_path:
        temp_path.write_bytes(b"half")
        print("writing", flush=True)
        time.sleep(60)

interrupts.run(work)
"""
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        assert len(leftovers(tmp_path)) == 1
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 143
    finally:
        child.kill()
        child.wait()
    assert not leftovers(tmp_path) and not target.exists()


def test_remove_pending_removes_registered_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError):  # the rename that follows finds nothing left to rename
        with files.temporary_folder("fmlp-test-") as folder, files.atomic_path(tmp_path / "a.json") as temp_path:
            temp_path.write_text("{")
            (folder / "x").write_text("y")
            files.remove_pending()
            assert not temp_path.exists() and not folder.exists()
    assert list(tmp_path.iterdir()) == []


# Runs a script with a hook that sends this process SIGINT when a named function is first called, so
# that the signal lands at a known point of the work, whatever the machine's speed.
SIGNAL_AT = """
import importlib, os, runpy, signal, sys
module_name, attribute, script, *args = sys.argv[1:]
owner = importlib.import_module(module_name)
owner_name, _, attribute = attribute.rpartition(".")
owner = getattr(owner, owner_name) if owner_name else owner
original = getattr(owner, attribute)
fired = []

def hooked(*positional, **named):
    if not fired:
        fired.append(1)
        os.kill(os.getpid(), signal.SIGINT)
    return original(*positional, **named)

setattr(owner, attribute, hooked)
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


def _signalled_at(function: str, script: str, *args) -> subprocess.CompletedProcess:
    module_name, _, attribute = function.partition(":")
    command = [sys.executable, "-c", SIGNAL_AT, module_name, attribute, str(ROOT / "experiments" / script), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def diagnosable(tmp_path_factory) -> Path:
    from fmlp.nn import mlp, saved

    network = mlp.Architecture((784, 16, 10))
    path = tmp_path_factory.mktemp("net") / "net.npz"
    saved.save(path, mlp.init(jax.random.key(0), network), network)
    return path


def _diagnosis(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in out.iterdir()} if out.exists() else {}


@pytest.mark.parametrize("point", ["fmlp.analysis.plots:save_png", "pathlib:Path.replace"], ids=["staging", "swap"])
def test_ctrl_c_in_diagnose_leaves_the_previous_set_or_the_whole_new_one(point, diagnosable, idx_dir, tmp_path):
    """A diagnosis is written as a whole set or not at all: Ctrl-C while the new set is staged leaves the
    previous one as it was; Ctrl-C while the new set takes the old one's place ends the script when the
    new set is whole."""
    out = tmp_path / "diagnose"
    out.mkdir()
    previous = {"diagnose.json": b'{"networks": {}}', "diagnose_old.png": b"old figure"}
    for name, content in previous.items():
        (out / name).write_bytes(content)
    ended = _signalled_at(point, "diagnose.py", str(diagnosable), "--out", str(out), "--data-source", "idx",
                          "--data-dir", str(idx_dir))  # fmt: skip
    assert ended.returncode == 130, ended.stderr
    assert "Traceback" not in ended.stderr and ended.stderr.strip().splitlines()[-1].startswith("interrupted")
    found = _diagnosis(out)
    if point.endswith("save_png"):
        assert found == previous
    else:
        figures = {name for name in found if name.endswith(".png")}
        assert "diagnose.json" in found and "diagnose_old.png" not in found
        assert figures == {
            "diagnose_saturation.png",
            "diagnose_derivative.png",
            "diagnose_reliability.png",
            "diagnose_confusion_net.png",
            "diagnose_errors_net.png",
            "diagnose_features_net.png",
        }
        assert json.loads(found["diagnose.json"])["params"] == {"net": str(diagnosable)}


def test_ctrl_c_in_report_ends_with_one_line_and_writes_no_pdf(tmp_path):
    ended = _signalled_at("fmlp.handin.report:lay_out", "report.py", "--authors", "A. Student", "--results",
                          str(ROOT / "figures"), "--out", str(tmp_path / "report" / "report.pdf"))  # fmt: skip
    assert ended.returncode == 130, ended.stderr
    assert "Traceback" not in ended.stderr and ended.stderr.strip().splitlines()[-1].startswith("interrupted")
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())


STOP_WRITING = """
import sys, threading
from pathlib import Path
from fmlp import files

inside, go = threading.Event(), threading.Event()

def write():
    with files.atomic_path(Path(sys.argv[1]) / "figure.png") as temp_path:
        inside.set()
        go.wait()
        temp_path.write_bytes(b"complete")  # by name, as savefig does: re-creates a removed file

writer = threading.Thread(target=write)
writer.start()
inside.wait()
threading.Timer(0.3, go.set).start()
files.stop_writing()  # in the main thread, as the signal handler does
print("the abort waited" if go.is_set() and not writer.is_alive() else "the abort did not wait")
files.remove_pending()
second = threading.Thread(target=lambda: files.atomic_path(Path(sys.argv[1]) / "next.png").__enter__(), daemon=True)
second.start()
second.join(0.3)
print("no new file" if second.is_alive() else "a new file")
"""


def test_an_abort_waits_for_the_file_being_written_and_lets_no_other_start(tmp_path):
    result = subprocess.run([sys.executable, "-c", STOP_WRITING, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout.split("\n")[:2] == ["the abort waited", "no new file"], result.stderr
    assert not leftovers(tmp_path) and (tmp_path / "figure.png").read_bytes() == b"complete"
