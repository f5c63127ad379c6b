"""Lanes over several devices and several processes, and the compilation cache; each in subprocesses,
since the device count and the distributed runtime are fixed when JAX starts."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fmlp.run import checkpoint

from .test_experiments import BASELINE, SWEEP, run_script, tiny

ROOT = Path(__file__).resolve().parent.parent
FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}

SHARDED_FIT = """
import json, sys
import jax, jax.numpy as jnp
from fmlp.data import splits
from fmlp.description import Architecture, Experiment, Lanes, Training
from fmlp.training import lanes

devices = int(sys.argv[1])
images = jax.random.normal(jax.random.key(7), (1200, 20))
labels = jnp.argmax(images @ jax.random.normal(jax.random.key(8), (20, 5)), axis=-1)
data = splits.Splits(images[:800], labels[:800], images[800:1000], labels[800:1000], images[1000:], labels[1000:])
network, training = Architecture((20, 16, 5)), Training(batch_size=32, early_stop=2)
config = Experiment(network=network, training=training, lanes=Lanes(devices=devices))
rates, seeds = lanes.grid([0.5, 0.1, 1e38], [1, 2])  # 6 lanes: 8 with padding over 4 devices
state, history = lanes.fit(config, data, learning_rates=rates, seeds=seeds, epochs=3)
print(json.dumps({
    "records": history.records, "diverged": history.diverged_at_epoch, "stopped": history.stopped_at_epoch,
    "devices": jax.device_count(),
    "shards": [list(shard.data.shape) for shard in state.params[0].w.addressable_shards],
}))
"""


def python(code_or_script: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *code_or_script], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env=os.environ | (env or {}),
    )  # fmt: skip


def test_lanes_split_over_four_devices_give_the_one_device_numbers():
    one = python(["-c", SHARDED_FIT, "1"])
    four = python(["-c", SHARDED_FIT, "4"], FOUR_DEVICES)
    assert one.returncode == 0 and four.returncode == 0, one.stderr + four.stderr
    one, four = json.loads(one.stdout), json.loads(four.stdout)
    assert four["devices"] == 4 and four["shards"] == [[2, 20, 16]] * 4  # 8 lanes (6 + 2 padding), 2 per device
    assert one["shards"] == [[6, 20, 16]]
    assert four["diverged"] == one["diverged"] == [None, None, None, None, 1, 1]
    assert four["stopped"] == one["stopped"]
    for ours, theirs in zip(four["records"], one["records"]):
        np.testing.assert_allclose(
            np.array(ours, dtype=float), np.array(theirs, dtype=float), rtol=1e-5, atol=1e-7, equal_nan=True
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_processes(idx_dir: Path, tmp_path: Path, flags: list[str], **popen) -> list[subprocess.Popen]:
    """lr_sweep.py as processes 0 and 1 of one run on 127.0.0.1, writing to tmp_path/process<i>."""
    port = free_port()
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(SWEEP),
                *tiny(idx_dir, tmp_path / f"process{i}", *flags),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            cwd=ROOT,
            text=True,
            **popen,
        )  # fmt: skip
        for i in range(2)
    ]


def end(children: list[subprocess.Popen]) -> None:
    for child in children:
        child.kill()
        child.wait()


def test_an_unreachable_coordinator_is_named_and_ends_the_run(idx_dir, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    result = python(
        [str(BASELINE), *tiny(idx_dir, tmp_path / "out"), "--coordinator", address, "--num-processes", "2",
         "--process-id", "1", "--coordinator-timeout", "1"],
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"cannot join the coordinator at {address} within 1 s" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--num-processes", "2", "--process-id", "0"], "--num-processes"),
        (["--coordinator", "127.0.0.1:1234", "--num-processes", "2", "--process-id", "2"], "--process-id"),
        (["--coordinator", "no-port", "--num-processes", "2", "--process-id", "0"], "--coordinator"),
        (["--coordinator", "host:99999", "--num-processes", "2", "--process-id", "0"], "--coordinator"),
    ],
)
def test_bad_process_flags_exit_2(tmp_path, capsys, flags, named):
    assert run_script(BASELINE, "--out", str(tmp_path / "out"), *flags) == 2
    assert f"argument {named}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_second_run_compiles_nothing_new(idx_dir, tmp_path):
    cache = tmp_path / "xla"
    env = {"JAX_COMPILATION_CACHE_DIR": str(cache)}
    first = python([str(BASELINE), *tiny(idx_dir, tmp_path / "a")], env)
    assert first.returncode == 0, first.stderr
    entries = sorted(path.name for path in cache.iterdir())
    assert entries, "the first run kept its programs"
    second = python([str(BASELINE), *tiny(idx_dir, tmp_path / "b")], env)
    assert second.returncode == 0, second.stderr
    assert sorted(path.name for path in cache.iterdir()) == entries
    off = python(
        [str(BASELINE), *tiny(idx_dir, tmp_path / "c"), "--no-compile-cache"],
        {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "off")},
    )
    assert off.returncode == 0 and not (tmp_path / "off").exists()


def test_when_one_process_dies_the_other_exits_instead_of_hanging(idx_dir, tmp_path):
    flags = ["--lrs", "0.5,0.1", "--epochs", "100000", "--heartbeat-timeout", "3"]
    children = two_processes(idx_dir, tmp_path, flags, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for child in children:  # both have loaded the data: training has started or is about to
            while "MNIST from" not in child.stderr.readline():
                assert child.poll() is None
        children[1].kill()
        assert children[0].wait(timeout=90) == 1
        message = children[0].stderr.read()
    finally:
        end(children)
    assert not (tmp_path / "process0" / "lr_sweep.json").exists()
    assert "another process of this run died, stopped answering or never joined" in message
    assert "Check failure stack trace" not in message and "coordination_service" not in message


def _listeners(port: int) -> list[str]:
    """The local addresses listening on a TCP port, from /proc/net/tcp and tcp6 (hex, as the kernel writes them)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's socket table")
def test_the_coordinator_listens_only_on_the_address_it_was_given(idx_dir, tmp_path):
    port = free_port()
    flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0",
             "--coordinator-timeout", "30"]  # fmt: skip
    child = subprocess.Popen([sys.executable, str(SWEEP), *tiny(idx_dir, tmp_path / "out"), *flags], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _listeners(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        listeners = _listeners(port)
        loopback = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, also IPv4-mapped in IPv6
        assert listeners and set(listeners) <= loopback, f"bound to 127.0.0.1 only, not {listeners}"
    finally:
        child.kill()
        child.wait()


def test_a_coordinator_port_in_use_is_named(idx_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        flags = ["--coordinator", address, "--num-processes", "2", "--process-id", "0"]
        result = python([str(SWEEP), *tiny(idx_dir, tmp_path / "out"), *flags])
    assert result.returncode == 1
    assert f"error: argument --coordinator: cannot listen on {address}: in use" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def checkpointed_epochs(path: Path) -> int:
    """The epochs in a run's checkpoint; 0 while there is none."""
    try:
        return checkpoint.epochs_saved(path)
    except FileNotFoundError:
        return 0


def _assert_close_to(runs: list[dict], single: list[dict]) -> None:
    """Every lane's recorded numbers equal the one-process run's within float32 rounding."""
    for ours, theirs in zip(runs, single, strict=True):
        assert (ours["learning_rate"], ours["seed"]) == (theirs["learning_rate"], theirs["seed"])
        for a, b in zip(ours["epochs"], theirs["epochs"], strict=True):
            keys = sorted(k for k in a if a[k] is not None)
            np.testing.assert_allclose([a[k] for k in keys], [b[k] for k in keys], rtol=1e-5)


def test_two_processes_give_the_one_process_runs_and_a_signal_to_one_resumes_to_the_same_numbers(idx_dir, tmp_path):
    # One uninterrupted two-process run serves both claims: it matches the one-process run, and a run
    # cut short by a signal to process 1 resumes to exactly its numbers.
    flags = ["--lrs", "1,0.1", "--seeds", "2", "--epochs", "10"]
    assert run_script(SWEEP, *tiny(idx_dir, tmp_path / "single", *flags)) == 0
    single = json.loads((tmp_path / "single" / "lr_sweep.json").read_text())

    whole = two_processes(idx_dir, tmp_path / "whole", flags, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        outputs = [child.communicate(timeout=120) for child in whole]
    finally:
        end(whole)
    assert [child.returncode for child in whole] == [0, 0], outputs
    assert not (tmp_path / "whole" / "process1").exists()  # only process 0 writes
    expected = json.loads((tmp_path / "whole" / "process0" / "lr_sweep.json").read_text())
    assert expected["environment"]["device_count"] == 2
    _assert_close_to(expected["runs"], single["runs"])

    cut = tmp_path / "cut"
    children = two_processes(idx_dir, cut, flags, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        # Epoch 2 done on process 0: process 1 has finished epoch 1 too (epoch 2 needed it), so it
        # has something to keep, and the signal asks it to stop rather than ending it at once.
        while checkpointed_epochs(cut / "process0" / "lr_sweep.checkpoint.npz") < 2:
            assert time.monotonic() < deadline and children[0].poll() is None
            time.sleep(0.005)
        children[1].send_signal(signal.SIGTERM)
        codes = [child.wait(timeout=60) for child in children]
        message = children[0].stderr.read()
    finally:
        end(children)
    assert codes[1] == 143 and "interrupted after" in message, message
    document = json.loads((cut / "process0" / "lr_sweep.json").read_text())
    assert document["interrupted"] is True and document["config"]["epochs"] == 10
    assert len(document["runs"][0]["epochs"]) < 10
    (cut / "process1").mkdir(exist_ok=True)  # every process resumes from its own copy of process 0's checkpoint
    shutil.copy(cut / "process0" / "lr_sweep.checkpoint.npz", cut / "process1" / "lr_sweep.checkpoint.npz")
    (cut / "process0" / "lr_sweep.json").unlink()
    resumed = two_processes(idx_dir, cut, [*flags, "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        codes = [child.wait(timeout=120) for child in resumed]
        errors = [child.stderr.read() for child in resumed]
    finally:
        end(resumed)
    assert codes == [0, 0], errors
    document = json.loads((cut / "process0" / "lr_sweep.json").read_text())
    assert document["runs"] == expected["runs"] and document["interrupted"] is False


def test_process_0_alone_past_its_timeout_ends_with_one_line(idx_dir, tmp_path):
    flags = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id", "0",
             "--coordinator-timeout", "1"]  # fmt: skip
    result = python([str(SWEEP), *tiny(idx_dir, tmp_path / "out"), *flags])
    assert result.returncode == 1
    assert "never joined" in result.stderr and "Check failure stack trace" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_a_foreign_listener_at_the_coordinator_address_ends_with_one_line(idx_dir, tmp_path):
    with socket.socket() as foreign:  # something else listens there: it accepts and answers nonsense
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]

        def answer_nonsense():
            while True:
                try:
                    connection, _ = foreign.accept()
                except OSError:
                    return
                with connection:
                    connection.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")

        threading.Thread(target=answer_nonsense, daemon=True).start()
        flags = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "1",
                 "--coordinator-timeout", "1"]  # fmt: skip
        result = python([str(SWEEP), *tiny(idx_dir, tmp_path / "out"), *flags])
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"--coordinator 127.0.0.1:{port} is process 0 of this run" in result.stderr
    assert not (tmp_path / "out" / "lr_sweep.json").exists()


def test_ctrl_c_to_process_0_before_epoch_1_ends_both_processes_without_a_trace(idx_dir, tmp_path):
    flags = ["--lrs", "1,0.1", "--epochs", "100000", "--no-compile-cache", "--coordinator-timeout", "5"]
    children = two_processes(idx_dir, tmp_path, flags, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(2)  # both are starting (loading JAX, joining, compiling): no epoch has finished
        assert not (tmp_path / "process0" / "lr_sweep.checkpoint.npz").exists()
        children[0].send_signal(signal.SIGINT)
        codes = [child.wait(timeout=60) for child in children]
        messages = [child.stderr.read() for child in children]
    finally:
        end(children)
    assert codes[0] == 130 and codes[1] != 0
    for message in messages:
        assert "Traceback" not in message and "Check failure stack trace" not in message
        said = [line for line in message.splitlines()
                if line.strip() and not line.startswith(("MNIST from", "A learning-rate sweep of"))]  # fmt: skip
        assert len(said) == 1 and said[0].startswith(("interrupted", "error:")), message
    assert not (tmp_path / "process0" / "lr_sweep.json").exists()
