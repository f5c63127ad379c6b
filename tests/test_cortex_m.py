"""The exported network bare-metal on a Cortex-M4 and a Cortex-M55 under QEMU: built without floating
point, run on every test image of the test data, equal to the JAX integer program image by image."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fmlp import data
from fmlp.data.splits import device_splits
from fmlp.description import Experiment
from fmlp.embedded import cortex_m
from fmlp.nn import mlp, saved
from fmlp.training import lanes

from .test_experiments import run_script
from .test_reliability import EXPERIMENTS

missing = cortex_m.missing_tools()
needs_tools = pytest.mark.skipif(missing is not None, reason=f"the Cortex-M tests need {cortex_m.PACKAGES}: {missing}")
SMALL = mlp.Architecture((784, 32, 16, 10))


@pytest.fixture(scope="module")
def network(idx_dir, tmp_path_factory):
    """A network trained on the test data, so that its classes mean something."""
    mnist, _ = data.load("idx", idx_dir)
    state, _ = lanes.fit(Experiment(network=SMALL), device_splits(mnist), learning_rates=[0.5], seeds=[3], epochs=4)
    path = tmp_path_factory.mktemp("network") / "net.npz"
    saved.save(path, lanes.final_params(state, 0), SMALL)
    return path


@needs_tools
@pytest.mark.parametrize("bits", [8, 2, 1])
@pytest.mark.parametrize("target", list(cortex_m.TARGETS))
def test_every_image_agrees_with_jax_on_the_core_and_is_measured(
    target, bits, network, idx_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = Path(target)  # relative, as README's commands give it: QEMU runs in the folder, not here
    code = run_script(EXPERIMENTS / "export_c.py", str(network), "--bits", str(bits), "--target", target, "--out",
                      str(out), "--run", "--data-source", "idx", "--data-dir", str(idx_dir))  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    measured = json.loads((out / "cortex_m.json").read_text())
    assert measured["images"] == measured["agree"] == 200 and measured["bits"] == bits
    assert measured["instructions_per_tick"] == {"cortex-m4": 40, "cortex-m55": 31.25}[target]
    assert 0 < measured["instructions_per_image"] < 2_000_000
    assert 0 < measured["stack_bytes"] < 8192 and measured["ram_bytes"] < 16 * 1024
    assert "QEMU counts instructions, not cycles" in printed.out


@needs_tools
def test_the_floating_point_check_finds_floating_point(tmp_path):
    (tmp_path / "float.c").write_text("float scale(float x) { return x * 1.5f; }\n")
    elf = tmp_path / "float.o"
    target = cortex_m.TARGETS["cortex-m4"]
    subprocess.run([cortex_m.COMPILER, *cortex_m.WARNINGS, *target.flags, "-mthumb", "-c", str(tmp_path / "float.c"),
                    "-o", str(elf)], check=True)  # fmt: skip
    assert any("__aeabi_fmul" in line for line in cortex_m.floating_point(elf))


def test_the_logits_hash_is_fnv_1a_of_the_little_endian_bytes():
    logits = np.array([[1, -2] + [0] * 8, [0] * 10], np.int32)
    expected = []
    for row in logits:
        digest = 2166136261
        for byte in row.astype("<i4").tobytes():
            digest = ((digest ^ byte) * 16777619) % 2**32
        expected.append(digest)
    assert cortex_m.logits_hashes(logits).tolist() == expected


def test_without_the_tools_run_is_refused_naming_the_packages(network, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cortex_m, "missing_tools", lambda: f"qemu-system-arm not found: install {cortex_m.PACKAGES}")
    code = run_script(EXPERIMENTS / "export_c.py", str(network), "--target", "cortex-m4", "--out", str(tmp_path / "o"),
                      "--run")  # fmt: skip
    assert code == 1 and "gcc-arm-none-eabi and qemu-system-arm" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@needs_tools
def test_the_board_program_refuses_a_label_that_is_no_digit_as_main_c_does(network, idx_dir, tmp_path, capsys):
    out = tmp_path / "m4"
    code = run_script(EXPERIMENTS / "export_c.py", str(network), "--target", "cortex-m4", "--out", str(out))
    assert code == 0, capsys.readouterr().err
    mnist, _ = data.load("idx", idx_dir)
    data.write_idx(out / "test-images-idx3-ubyte", mnist.test_images[:3])
    data.write_idx(out / "test-labels-idx1-ubyte", np.array([1, 12, 3], np.uint8))
    with pytest.raises(ValueError, match="a label is not a digit 0 to 9"):
        cortex_m.run(out, "cortex-m4", cortex_m.build(out, "cortex-m4"), 60)
