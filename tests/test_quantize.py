"""Quantized weights, integer-only inference, the C export and the scripts that drive them."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp import data
from fmlp.data.splits import device_splits
from fmlp.description import Experiment
from fmlp.embedded import c_export, integer, quantize_study
from fmlp.nn import mlp, quantizers, saved
from fmlp.nn.layers import Dense
from fmlp.training import lanes
from tests.autodiff import reference_loss

# Every test of this module on one worker, so that its module fixture runs once.
pytestmark = pytest.mark.xdist_group("quantize")

ROOT = Path(__file__).resolve().parent.parent
SMALL = mlp.Architecture((784, 32, 16, 10))
COMPILE = ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def trained(idx_dir) -> tuple[saved.Network, np.ndarray, np.ndarray]:
    """A 784-32-16-10 sigmoid network trained for 8 epochs on the banded IDX images, with the raw test
    pixels (200, 784) uint8 and labels (200,)."""
    mnist = data.load_idx(idx_dir)
    state, _ = lanes.fit(Experiment(network=SMALL), device_splits(mnist), learning_rates=[0.5], seeds=[3], epochs=8)
    return saved.Network(lanes.final_params(state, 0), SMALL), mnist.test_images.reshape(-1, 784), mnist.test_labels


def float_classes(network: saved.Network, pixels: np.ndarray) -> np.ndarray:
    logits, _ = mlp.forward_logits(network.architecture, network.params, jnp.asarray(data.normalize(pixels)))
    return np.asarray(jnp.argmax(logits, axis=-1))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_codes_lie_on_the_grid_and_the_chosen_scale_beats_the_maximum_rule(bits):
    w = jax.random.normal(jax.random.key(0), (300, 7)) * jnp.linspace(0.1, 2.0, 7)
    codes, scales = quantizers.quantize(w, bits)
    q = quantizers.largest_code(bits)
    assert codes.dtype == jnp.int8 and scales.shape == (7,) and bool(jnp.all(scales > 0))
    assert set(np.unique(codes)) <= ({-1, 1} if bits == 1 else set(range(-q, q + 1)))
    chosen = quantizers.squared_error(w, scales, bits)
    maximum_rule = quantizers.squared_error(w, jnp.max(jnp.abs(w), axis=0) / q, bits)
    assert bool(jnp.all(chosen <= maximum_rule * (1 + 1e-6)))
    if bits == 1:  # the least-squares scale of the signs is the mean magnitude
        np.testing.assert_allclose(scales, jnp.mean(jnp.abs(w), axis=0), rtol=1e-6)
    np.testing.assert_allclose(quantizers.straight_through(w, bits), codes * scales, rtol=1e-6)


def test_two_bits_is_ternary_and_a_zero_column_stays_finite():
    w = jnp.zeros((10, 2)).at[:, 0].set(jnp.arange(-5.0, 5.0))
    codes, scales = quantizers.quantize(w, 2)
    assert set(np.unique(codes[:, 0])) == {-1, 0, 1} and bool(jnp.all(codes[:, 1] == 0))
    assert bool(jnp.all(jnp.isfinite(scales)))


def test_quantization_aware_gradients_equal_autodiff_through_a_straight_through_estimator(float64):
    architecture = mlp.Architecture((20, 12, 8, 5), "sigmoid", weight_bits=2)
    params = mlp.init(jax.random.key(1), architecture, jnp.float64)
    images = jax.random.normal(jax.random.key(2), (9, 20), jnp.float64)
    labels = jax.random.randint(jax.random.key(3), (9,), 0, 5)

    def straight_through_loss(params):
        rounded = tuple(
            Dense(layer.w + jax.lax.stop_gradient(quantizers.straight_through(layer.w, 2) - layer.w), layer.b)
            for layer in params
        )
        return reference_loss(architecture._replace(weight_bits=None), rounded, images, labels)

    loss, grads = jax.jit(mlp.loss_and_grads, static_argnums=0)(architecture, params, images, labels)
    expected_loss, expected = jax.jit(jax.value_and_grad(straight_through_loss))(params)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-14)
    # and the rounding matters: the float32 network's gradients are different
    _, plain = mlp.loss_and_grads(architecture._replace(weight_bits=None), params, images, labels)
    assert not np.allclose(plain[0].w, grads[0].w)


def test_a_network_saved_for_some_bits_says_so(tmp_path):
    architecture = mlp.Architecture((784, 8, 10), "sigmoid", weight_bits=4)
    saved.save(tmp_path / "n.npz", mlp.init(jax.random.key(0), architecture), architecture)
    assert saved.load(tmp_path / "n.npz").architecture == architecture


def test_fixed_point_multipliers_are_31_bit_and_close():
    reals = np.array([1e-9, 3.7e-4, 0.5, 0.999999999, 1.0, 257.3])
    multiplier, shift = integer.fixed_point(reals)
    assert multiplier.dtype == np.int32 and np.all(multiplier >= 2**30)
    np.testing.assert_allclose(multiplier * 2.0 ** -shift.astype(np.float64), reals, rtol=2**-30)
    with pytest.raises(ValueError, match="outside"):
        integer.fixed_point(np.array([2.0**40]))


def test_folding_the_normalisation_gives_the_same_first_layer():
    layer = Dense(np.random.default_rng(0).standard_normal((784, 5)), np.arange(5.0))
    pixels = np.random.default_rng(1).integers(0, 256, (4, 784)).astype(np.uint8)
    folded = integer.fold_normalization(layer)
    x = data.normalize(pixels).astype(np.float64)
    np.testing.assert_allclose(pixels @ folded.w + folded.b, x @ layer.w + layer.b, rtol=1e-5, atol=1e-4)


def test_the_sigmoid_table_is_255_sigmoid_and_reaches_both_ends():
    table = integer.sigmoid_table()
    z = (np.arange(integer.TABLE_SIZE) - integer.TABLE_SIZE // 2) / integer.TABLE_STEPS
    assert table.dtype == np.uint8 and table[0] == 0 and table[-1] == 255
    assert np.max(np.abs(table - 255 / (1 + np.exp(-z)))) <= 0.5 and np.all(np.diff(table.astype(int)) >= 0)


@pytest.mark.parametrize("bits", [8, 4, 2, 1])
def test_jax_and_numpy_compute_the_same_integers_on_every_image(trained, bits):
    network, pixels, _ = trained
    quantized = integer.from_float(network.architecture, network.params, bits)
    for layer in quantized.layers:
        assert layer.codes.dtype == np.int8 and layer.bias.dtype == np.int32 and layer.multiplier.dtype == np.int32
    got = np.asarray(integer.logits(integer.to_device(quantized), pixels))
    assert got.dtype == np.int32 and got.shape == (200, 10)
    np.testing.assert_array_equal(got, integer.reference_logits(quantized, pixels))


def test_eight_bit_integers_agree_with_the_float32_network(trained):
    network, pixels, labels = trained
    quantized = integer.from_float(network.architecture, network.params, 8)
    classes = integer.predict(integer.to_device(quantized), pixels)
    reference = float_classes(network, pixels)
    assert np.mean(reference == labels) > 0.9  # a network that learned, or agreement would mean nothing
    assert np.mean(classes == reference) >= 0.99
    # the int32 logits are the float32 logits in steps of 2^-16, to within the quantization
    logits, _ = mlp.forward_logits(network.architecture, network.params, jnp.asarray(data.normalize(pixels)))
    scaled = np.asarray(integer.logits(integer.to_device(quantized), pixels)) / 2**integer.LOGIT_BITS
    assert np.max(np.abs(scaled - np.asarray(logits))) < 0.1


def test_integer_inference_refuses_other_networks():
    relu = mlp.Architecture((784, 8, 10), "relu")
    with pytest.raises(ValueError, match="sigmoid"):
        integer.from_float(relu, mlp.init(jax.random.key(0), relu), 8)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_packing_round_trips_including_a_part_byte(bits):
    q = quantizers.largest_code(bits)
    codes = np.random.default_rng(bits).integers(-q, q + 1, (13, 3)).astype(np.int8)
    if bits == 1:
        codes = np.where(codes >= 0, 1, -1).astype(np.int8)
    rows = c_export.pack(codes, bits)
    assert rows.shape == (3, -(-13 * bits // 8))
    np.testing.assert_array_equal(c_export.unpack(rows, 13, bits), codes)


@pytest.mark.parametrize("bits", [8, 1])
def test_the_compiled_c_program_predicts_what_jax_does(trained, tmp_path, bits):
    network, pixels, labels = trained
    quantized = integer.from_float(network.architecture, network.params, bits)
    c_export.export(quantized, tmp_path)
    data.write_idx(tmp_path / "images", pixels.reshape(-1, 28, 28))
    data.write_idx(tmp_path / "labels", labels)
    subprocess.run([*COMPILE, *map(str, tmp_path.glob("*.c")), "-o", str(tmp_path / "fmlp_mnist")], check=True)
    ran = subprocess.run([tmp_path / "fmlp_mnist", "--predictions", tmp_path / "images", tmp_path / "labels"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    *classes, summary = ran.stdout.splitlines()
    expected = integer.predict(integer.to_device(quantized), pixels)
    np.testing.assert_array_equal(np.asarray(classes, int), expected)
    correct = int(np.sum(expected == labels))
    assert summary.startswith(f"accuracy {100 * correct / 200:.2f}% ({correct} of 200 images), ")
    assert summary.endswith(" us per image")
    bad = subprocess.run([tmp_path / "fmlp_mnist", tmp_path / "labels", tmp_path / "labels"], capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 1 and "not an IDX file" in bad.stderr


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "experiments" / name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip


def test_the_scripts_refuse_bad_input_with_one_line_and_write_nothing(trained, tmp_path):
    network, _, _ = trained
    relu = mlp.Architecture((784, 8, 10), "relu")
    saved.save(tmp_path / "relu.npz", mlp.init(jax.random.key(0), relu), relu)
    saved.save(tmp_path / "net.npz", network.params, network.architecture)
    out = tmp_path / "out"
    for script in ("quantize.py", "export_c.py"):
        refused = run_script(script, tmp_path / "net.npz", "--bits", "3", "--out", out)
        assert refused.returncode == 2 and "argument --bits:" in refused.stderr
        assert "3 bits is not one of 1, 2, 4, 8" in refused.stderr
        refused = run_script(script, tmp_path / "relu.npz", "--out", out)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "relu.npz" in refused.stderr
        assert "relu" in refused.stderr.split("relu.npz")[1]
        refused = run_script(script, tmp_path / "net.npz", "--out", tmp_path / "net.npz" / "sub")
        assert refused.returncode == 2 and "argument --out" in refused.stderr
    refused = run_script("finetune.py", tmp_path / "net.npz", "--bits", "0", "--out", out)
    assert refused.returncode == 2 and "argument --bits" in refused.stderr
    assert not out.exists()


def test_fine_tune_then_quantize_then_export_end_to_end(trained, idx_dir, tmp_path):
    network, _, _ = trained
    sources = []
    for seed in (1, 2):
        saved.save(tmp_path / f"seed_{seed}.npz", network.params, network.architecture)
        sources.append(tmp_path / f"seed_{seed}.npz")
    idx = ["--data-source", "idx", "--data-dir", idx_dir]
    tuned = run_script("finetune.py", *sources, "--bits", "1", "--lrs", "0.1,0.01", "--epochs", "1", "--validation",
                       "100", "--out", tmp_path / "ft", "--save-params", tmp_path / "ftp", "--quiet", *idx)  # fmt: skip
    assert tuned.returncode == 0, tuned.stderr
    tuned_network = saved.load(tmp_path / "ftp" / "lr_0.1_seed_1.npz")
    assert tuned_network.architecture == SMALL._replace(weight_bits=1)

    measured = run_script("quantize.py", *sources, "--bits", "8,1", "--fine-tuned", tmp_path / "ft", "--out",
                          tmp_path / "q", *idx)  # fmt: skip
    assert measured.returncode == 0, measured.stderr
    document = json.loads((tmp_path / "q" / "quantize.json").read_text())
    assert (tmp_path / "q" / "quantize_bits.png").stat().st_size > 0
    assert [row["bits"] for row in document["summary"]["post_training"]] == [8, 1]
    (tuned_run,) = document["fine_tuned"]
    assert tuned_run["bits"] == 1 and tuned_run["learning_rate"] in (0.1, 0.01)
    assert all(row["numpy_equals_jax"] for row in tuned_run["networks"])
    eight = document["networks"][0]["post_training"][0]
    assert eight["agreement_with_float32"] >= 0.99 and eight["footprint"]["flash_weights"] == 784 * 32 + 32 * 16 + 160
    with pytest.raises(ValueError, match="not the networks given here"):
        quantize_study.fine_tuned(tmp_path / "ft", sources[:1])

    exported = run_script("export_c.py", tmp_path / "ftp" / "lr_0.1_seed_2.npz", "--bits", "1", "--out",
                          tmp_path / "c", "--check", *idx)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "agrees with the JAX integer program on every test image: accuracy" in exported.stdout


def test_ties_go_to_the_first_largest_class_in_c_jax_and_numpy(tmp_path):
    """Two output units with the same weights and bias, and a bias that makes them the largest: every
    image ties, and the C program, the JAX and the NumPy integer programs all answer the first of them."""
    architecture = mlp.Architecture((784, 8, 10))
    params = [Dense(np.array(layer.w), np.array(layer.b)) for layer in mlp.init(jax.random.key(3), architecture)]
    last = params[-1]
    last.w[:, 7] = last.w[:, 2]
    last.b[2] = last.b[7] = 40.0
    network = integer.from_float(architecture, tuple(Dense(jnp.asarray(p.w), jnp.asarray(p.b)) for p in params), 8)
    pixels = np.random.default_rng(0).integers(0, 256, (50, 784), dtype=np.uint8)
    logits = integer.reference_logits(network, pixels)
    assert np.array_equal(logits[:, 2], logits[:, 7]) and np.all(logits[:, 2] == logits.max(axis=1))
    assert np.all(np.argmax(logits, axis=1) == 2)  # NumPy's rule: the first largest
    assert np.all(integer.predict(integer.to_device(network), pixels) == 2)
    c_export.export(network, tmp_path / "c")
    sources = [str(tmp_path / "c" / name) for name in c_export.C_FILES]
    subprocess.run([*COMPILE, *sources, "-o", str(tmp_path / "fmlp_mnist")], check=True)
    data.write_idx(tmp_path / "images", pixels.reshape(-1, 28, 28))
    data.write_idx(tmp_path / "labels", np.zeros(50, np.uint8))
    ran = subprocess.run([tmp_path / "fmlp_mnist", "--predictions", tmp_path / "images", tmp_path / "labels"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout.splitlines()[:-1] == ["2"] * 50


@pytest.mark.parametrize("bits", [1, 2])
def test_bit_planes_hold_every_code_by_block_unit_and_plane(bits):
    q = quantizers.largest_code(bits)
    codes = np.random.default_rng(bits).integers(-q, q + 1, (45, 3)).astype(np.int8)  # a part block of 13
    if bits == 1:
        codes = np.where(codes >= 0, 1, -1).astype(np.int8)
    words = c_export.bit_planes(codes, bits)
    assert words.shape == (2, 3, bits) and words.dtype == np.dtype("<u4")
    planes = (words[:, None, :, :] >> np.arange(32, dtype=np.uint32)[None, :, None, None]) & 1  # (2, 32, 3, P)
    planes = planes.reshape(64, 3, bits).astype(np.int16)
    rebuilt = 2 * planes[..., 0] - 1 if bits == 1 else planes[..., 0] - 2 * planes[..., 1]
    np.testing.assert_array_equal(rebuilt[:45], codes)
    assert not planes[45:].any()  # the inputs past the layer's: zero bits


# A program that prints the int32 logits of each raw 784-byte image it reads on standard input.
LOGITS_DRIVER = r"""
#include <stdio.h>
#include "fmlp.h"
int main(void)
{
    uint8_t pixels[FMLP_PIXELS];
    int32_t logits[FMLP_CLASSES];
    int k;
    while (fread(pixels, 1, FMLP_PIXELS, stdin) == FMLP_PIXELS) {
        fmlp_logits(pixels, logits);
        for (k = 0; k < FMLP_CLASSES; k++)
            printf("%ld ", (long)logits[k]);
        printf("\n");
    }
    return 0;
}
"""


@pytest.mark.parametrize("bits", [1, 2])
@pytest.mark.parametrize("sizes", [(784, 64, 32, 10), (784, 37, 13, 10)])
def test_the_subset_table_kernel_gives_jaxs_logits_at_one_and_two_bits(tmp_path, bits, sizes):
    """The kernel the Cortex-M headers ask for at 1 and 2 bits (tables of subset sums over bit planes) is
    portable C: on this machine too it must give the JAX integer program's logits, bit for bit, with
    layers whose widths are not multiples of 8 or 32 (a part block, units after the last eight)."""
    architecture = mlp.Architecture(sizes)
    network = integer.from_float(architecture, mlp.init(jax.random.key(bits), architecture), bits)
    pixels = np.random.default_rng(0).integers(0, 256, (40, 784), dtype=np.uint8)
    pixels[:5] = 0
    pixels[5:10] = 255
    c_export.export(network, tmp_path, kernel="dsp")
    assert "#define FMLP_SUBSET_TABLES 1" in (tmp_path / "fmlp_weights.h").read_text()
    (tmp_path / "driver.c").write_text(LOGITS_DRIVER)
    program = tmp_path / "logits"
    subprocess.run([*COMPILE, str(tmp_path / "fmlp.c"), str(tmp_path / "driver.c"), "-o", str(program)], check=True)
    ran = subprocess.run([program], input=pixels.tobytes(), capture_output=True, check=True)
    printed = np.array([line.split() for line in ran.stdout.decode().splitlines()], np.int64)
    np.testing.assert_array_equal(printed, np.asarray(integer.logits(integer.to_device(network), pixels)))
