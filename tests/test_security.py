"""Nothing lets a file or a name do more than it should: each defect of the second probe (locks, templates,
names, hostile files) pinned by a test that fails without its fix, numbered as the probe numbered them."""

import gzip
import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fmlp import data, files
from fmlp.description import Architecture, Design, Experiment, to_config
from fmlp.run import checkpoint, run_lock
from fmlp.training import lanes

from .test_experiments import tiny
from .test_reliability import small_network

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def locks(tmp_path, monkeypatch) -> Path:
    """A fresh temporary folder for the lock folder, so that each test starts from none."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    return tmp_path / "tmp" / f"fmlp-locks-{os.getuid()}"


# 1. The run lock wrote its pid through a link planted in a shared folder.
def test_the_lock_folder_is_the_users_own_and_a_planted_link_is_refused_not_followed(locks, tmp_path):
    assert run_lock.lock_folder() == locks
    with run_lock.holding(tmp_path / "out", "baseline"):
        assert locks.is_dir() and locks.stat().st_mode & 0o777 == 0o700
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = run_lock.lock_path(tmp_path / "out", "baseline").with_suffix(".pid")
    pid_file.unlink()
    pid_file.symlink_to(victim)
    with pytest.raises(run_lock.Taken, match="symbolic link"), run_lock.holding(tmp_path / "out", "baseline"):
        pass
    assert victim.read_text() == "precious\n"
    pid_file.unlink()
    lock_file = run_lock.lock_path(tmp_path / "out", "baseline")
    lock_file.unlink()
    lock_file.symlink_to(victim)
    with pytest.raises(run_lock.Taken, match="symbolic link"), run_lock.holding(tmp_path / "out", "baseline"):
        pass
    assert victim.read_text() == "precious\n"


# 2. Once one user had run fmlp, the shared lock folder was theirs and every other user's run died.
@pytest.mark.parametrize("problem", ["another user", "others may write", "a link"])
def test_a_lock_folder_that_is_not_the_users_own_is_one_line_naming_it(locks, tmp_path, problem):
    if problem == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        locks.symlink_to(tmp_path / "elsewhere")
    else:
        locks.mkdir(mode=0o700)
    if problem == "another user":
        if os.getuid() != 0:
            pytest.skip("only root can give a folder to another user")
        os.chown(locks, 12345, 12345)
    if problem == "others may write":
        locks.chmod(0o777)
    with pytest.raises(run_lock.Taken, match=f"lock folder {locks} is") as refused:
        with run_lock.holding(tmp_path / "out", "baseline"):
            pass
    assert "\n" not in str(refused.value)


# 6. A gzip bomb in --data-dir was inflated whole (4.4 GB) before its size was checked.
@pytest.mark.parametrize("declared", [(10**6, 28, 28), (60000, 28, 28)], ids=["shape", "payload"])
def test_an_idx_file_is_checked_by_its_header_and_inflated_no_further_than_it_declares(tmp_path, declared):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + np.array(declared, ">u4").tobytes()
    with gzip.open(path, "wb", compresslevel=1) as file:  # 200 MB of zeros behind the header, about 200 kB packed
        file.write(header)
        for _ in range(200):
            file.write(bytes(2**20))
    tracemalloc.start()
    try:
        with pytest.raises(data.DataError, match="declares shape" if declared[0] > 60000 else "payload of more than"):
            data.read_idx(path, 3)
        assert tracemalloc.get_traced_memory()[1] < 60 * 2**20  # at most the 47 MB MNIST declares, not 200 MB
    finally:
        tracemalloc.stop()


# 7. export_c.py wrote through links in its output folder on a second export.
def test_a_second_export_replaces_links_in_its_folder_and_never_writes_through_them(idx_dir, tmp_path, script):
    network, out = small_network(tmp_path / "net.npz"), tmp_path / "export"
    assert script("export_c.py", network, "--bits", 8, "--out", out, "--target", "cortex-m4").returncode == 0
    names = [".fmlp_export", "fmlp_weights.h", "fmlp.h", "fmlp.c", "main.c", "cortex_m/board.c",
             "test-images-idx3-ubyte", "test-labels-idx1-ubyte", "fmlp_mnist"]  # fmt: skip
    for name in names:
        victim = tmp_path / f"victim-{name.replace('/', '-')}"
        victim.write_text("precious\n")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(victim)
    assert script("export_c.py", network, "--bits", 8, "--out", out, "--target", "cortex-m4").returncode == 0
    assert script("export_c.py", network, "--bits", 8, "--out", out, "--check", "--images", 50, "--data-source",
                  "idx", "--data-dir", idx_dir).returncode == 0  # fmt: skip
    for name in names:
        assert (tmp_path / f"victim-{name.replace('/', '-')}").read_text() == "precious\n", name
        assert not (out / name).is_symlink(), name


# 12. export_c.py --check without cc on PATH: FileNotFoundError after writing the export.
def test_check_without_a_compiler_is_one_line_before_any_export(tmp_path, script, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    ran = script("export_c.py", small_network(tmp_path / "net.npz"), "--out", tmp_path / "export", "--check")
    assert ran.returncode == 1 and "argument --check: cc not found" in ran.stderr and "Traceback" not in ran.stderr
    assert not (tmp_path / "export").exists()


# 12. gradcheck.py --seed -5: the flag admits jax.random.key's signed range, but NumPy's seed is not signed.
def test_gradcheck_takes_a_negative_seed(idx_dir, tmp_path, script):
    ran = script("gradcheck.py", "--seed", -5, "--batch-size", 8, "--out", tmp_path, "--data-source", "idx",
                 "--data-dir", idx_dir)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert json.loads((tmp_path / "gradcheck.json").read_text())["autodiff"]["max_relative_error"] < 1e-12


# 13. --train-limit 2000 on 600 images was clamped silently, and the JSON said 2000; FMLP_DATA_DIR a file.
def test_a_train_limit_beyond_the_data_and_a_data_dir_variable_naming_a_file_are_one_line(
    idx_dir, tmp_path, script, monkeypatch
):
    ran = script("baseline.py", *tiny(idx_dir, tmp_path / "out", "--train-limit", "2000"))
    assert ran.returncode == 1 and "--train-limit 2000 is more than the 600 training images" in ran.stderr
    assert not (tmp_path / "out" / "baseline.json").exists()
    (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("FMLP_DATA_DIR", str(tmp_path / "a_file"))
    with pytest.raises(data.DataError, match=f"FMLP_DATA_DIR={tmp_path / 'a_file'} is not a folder"):
        data.default_cache_dir()


# 13. A --save-params file that is a folder was found only after training, and blamed on --out.
def test_a_save_params_path_that_is_a_folder_is_refused_before_training(idx_dir, tmp_path, script):
    (tmp_path / "params" / "lr_0.5_seed_1.npz").mkdir(parents=True)
    ran = script("lr_sweep.py", *tiny(idx_dir, tmp_path / "out", "--lrs", "0.5", "--save-params", tmp_path / "params"))
    assert ran.returncode == 2 and "argument --save-params" in ran.stderr and "is a folder" in ran.stderr
    assert not (tmp_path / "out" / "lr_sweep.json").exists()


# 13. A checkpoint with NaN records or a non-numeric total was accepted; one declaring huge arrays inflated.
def test_a_checkpoint_is_checked_before_its_arrays_are_inflated_and_its_numbers_are_finite(tmp_path):
    config = Experiment(network=Architecture((784, 8, 10)), design=Design("lr_sweep", (0.1,)))
    state = lanes.init_lanes(config, [0.1], [1])
    record = lanes.EpochRecord(1, 0.5, 0.9, None, None, 0.3, 0.7)
    history = lanes.LaneHistory((0.1,), (1,), ((record,),), (None,), (None,), 1.0, 2.0, 3.0)
    path = tmp_path / "c.npz"
    checkpoint.save(path, lanes.Progress(state, history), to_config(config), total_seconds="soon")
    with pytest.raises(ValueError, match="total_seconds 'soon'"):
        checkpoint.load(path, state, config)
    checkpoint.save(path, lanes.Progress(state, history._replace(records=((record._replace(test_loss=math.nan),),))),
                    to_config(config))  # fmt: skip
    with pytest.raises(ValueError, match="epoch 1 of a lane is not"):
        checkpoint.load(path, state, config)
    checkpoint.save(tmp_path / "whole.npz", lanes.Progress(state, history), to_config(config))
    with zipfile.ZipFile(tmp_path / "whole.npz") as whole, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for name in whole.namelist():
            with bomb.open(name, "w") as entry:  # leaf_0 300 MB unpacked, about 300 kB packed
                entry.write(b"\x93NUMPY" + bytes(300 * 2**20) if name == "leaf_0.npy" else whole.read(name))
    with pytest.raises(ValueError, match="leaf_0.npy unpacks to 314,572,806 bytes"):
        checkpoint.load(path, state, config)


# 13. kill -9 of handin.py left its running step orphaned; SIGTERM to export_c.py during --run left QEMU.
def test_a_child_started_to_end_with_its_parent_ends_when_the_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                               "from fmlp.children import end_with_parent\n"
                               "child = subprocess.Popen(['sleep', '60'], preexec_fn=end_with_parent)\n"
                               "print(child.pid, flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# 13. main.c called a truncated header "not 28 x 28"; the board program counted labels >= 10.
def test_the_c_programs_say_what_is_wrong_with_an_idx_file(tmp_path, script):
    out = tmp_path / "export"
    assert script("export_c.py", small_network(tmp_path / "net.npz"), "--out", out).returncode == 0
    program = out / "fmlp_mnist"
    subprocess.run(["cc", "-std=c99", "-O2", *map(str, out.glob("*.c")), "-o", str(program)], check=True)
    labels = tmp_path / "labels"
    data.write_idx(labels, np.zeros(1, np.uint8))
    (tmp_path / "truncated").write_bytes(bytes([0, 0, 8, 3]) + np.array([1, 28], ">u4").tobytes())
    ran = subprocess.run([str(program), str(tmp_path / "truncated"), str(labels)], capture_output=True, text=True)
    assert ran.returncode == 1 and "the header ends before the image size" in ran.stderr
    data.write_idx(tmp_path / "wide", np.zeros((1, 28, 30), np.uint8))
    ran = subprocess.run([str(program), str(tmp_path / "wide"), str(labels)], capture_output=True, text=True)
    assert "images are 28 x 30, not 28 x 28" in ran.stderr  # the board program: tests/test_cortex_m.py


# 13. After kill -9, report.py's and handin.py's temporary files and diagnose's staging folder stayed.
def test_what_a_killed_writer_left_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    left = [tmp_path / f".report.pdf.{dead.pid}.k2j4.tmp", tmp_path / f".handin.zip.{dead.pid}.x8d.tmp"]
    for path in left:
        path.write_text("half")
    staging = tmp_path / f".diagnose.{dead.pid}.q1w2.tmp"
    (staging / "inner").mkdir(parents=True)
    live = tmp_path / f".handin.{os.getpid()}.a1.tmp"
    live.mkdir()
    with files.temporary_folder(".diagnose", beside=tmp_path) as ours:
        assert ours.name.startswith(f".diagnose.{os.getpid()}.") and ours.name.endswith(".tmp")
        assert sorted(files.remove_stale_temporaries(tmp_path)) == sorted([*left, staging])
        assert ours.is_dir() and live.is_dir()
