"""Saturation, calibration and errors against direct numpy computations; diagnose.py end to end."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp.analysis import diagnostics
from fmlp.nn import mlp, saved

from .test_experiments import BASELINE, check_png, run_script, tiny

# Every test of this module on one worker, so that its module fixture runs once.
pytestmark = pytest.mark.xdist_group("diagnostics")

DIAGNOSE = Path(__file__).resolve().parent.parent / "experiments" / "diagnose.py"
ARCH = mlp.Architecture((784, 6, 5, 10))


@pytest.fixture(scope="module")
def network():
    """A small random network 784 -> 6 -> 5 -> 10 with large weights (so some units saturate), 300 images."""
    params = mlp.init(jax.random.key(0), ARCH)
    params = tuple(layer._replace(w=layer.w * 6) for layer in params)
    images = jax.random.normal(jax.random.key(1), (300, 784))
    labels = np.asarray(jax.random.randint(jax.random.key(2), (300,), 0, 10))
    return params, images, labels


def test_saturation_against_a_direct_computation(network):
    params, images, _ = network
    result = diagnostics.forward_pass(ARCH, params, images, chunk_size=128)  # 128 leaves a partial last chunk
    h1 = 1 / (1 + np.exp(-(np.asarray(images, np.float64) @ np.asarray(params[0].w) + np.asarray(params[0].b))))
    np.testing.assert_allclose(result.hidden[0], h1, atol=1e-5)
    for layer in result.hidden:
        measured = diagnostics.saturation(layer)
        outside = [[s < 0.05 or s > 0.95 for s in row] for row in layer.tolist()]
        share = sum(map(sum, outside)) / layer.size
        units = sum(sum(row[u] for row in outside) >= 0.95 * len(outside) for u in range(layer.shape[1]))
        assert measured["share_saturated"] == pytest.approx(share)
        assert measured["share_units_saturated"] == pytest.approx(units / layer.shape[1])
        assert sum(measured["histogram"]["counts"]) == layer.size
        assert measured["mean_derivative"] == pytest.approx(float(np.mean(layer * (1 - layer))), rel=1e-5)
    assert 0 < diagnostics.saturation(result.hidden[0])["share_saturated"] < 1


def test_ece_against_a_direct_computation(network):
    params, images, labels = network
    probs = diagnostics.forward_pass(ARCH, params, images).probs
    calibration = diagnostics.calibration(probs, labels)
    confidence, prediction = probs.max(axis=1), probs.argmax(axis=1)
    ece = 0.0
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        members = [i for i in range(len(labels)) if low <= confidence[i] < high or (b == 14 and confidence[i] == 1)]
        if members:
            accuracy = np.mean([prediction[i] == labels[i] for i in members])
            ece += len(members) / len(labels) * abs(accuracy - np.mean(confidence[members]))
    assert calibration["ece"] == pytest.approx(ece, rel=1e-6)
    assert sum(b["count"] for b in calibration["bins"]) == len(labels)
    right = prediction == labels
    assert calibration["mean_confidence_right"] == pytest.approx(float(confidence[right].mean()))
    assert calibration["mean_confidence_wrong"] == pytest.approx(float(confidence[~right].mean()))


def test_confusion_and_errors_against_numpy():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    labels = np.array([0, 1, 0, 2, 0])
    matrix = diagnostics.confusion(probs, labels)
    expected = np.zeros((3, 3), int)
    for label, prediction in zip(labels, probs.argmax(axis=1)):
        expected[label, prediction] += 1
    np.testing.assert_array_equal(matrix, expected)
    errors = diagnostics.confident_errors(probs, labels, count=2)
    assert [(e["index"], e["label"], e["prediction"]) for e in errors] == [(2, 0, 2), (4, 0, 1)]
    assert errors[0]["probability"] == pytest.approx(0.9)


def test_strongest_features_are_the_largest_weight_vectors():
    weights = np.zeros((784, 5), np.float32)
    weights[:, 3] = 2.0
    weights[:, 1] = 1.0
    images, units = diagnostics.strongest_features(weights, count=2)
    assert units.tolist() == [3, 1] and images.shape == (2, 28, 28) and images[0, 0, 0] == 2.0


def test_the_first_layers_weights_by_region_are_the_frames_and_the_centres_mean_magnitude():
    images = np.zeros((3, 28, 28), np.float32)  # three units, each a 28 x 28 image of its input weights
    images[:, :4, :] = -1.0  # the top 4 rows: frame
    images[:, 4:24, 4:24] = 0.5  # the centre
    images[1, 10, 10] = -3.5
    weights = images.reshape(3, 784).T
    region = diagnostics.first_layer_by_region(weights, frame=4)
    frame_pixels, centre_pixels = 784 - 400, 400
    assert region["border_mean_abs"] == pytest.approx(3 * 4 * 28 / (3 * frame_pixels))
    assert region["centre_mean_abs"] == pytest.approx((3 * 400 * 0.5 + 3.0) / (3 * centre_pixels))
    assert region["frame_pixels"] == 4


def test_diagnose_script_end_to_end(idx_dir, tmp_path):
    paths = []
    for rate in ("0.5", "2"):
        path = tmp_path / f"lr_{rate}.npz"
        assert run_script(BASELINE, *tiny(idx_dir, tmp_path / rate, "--lr", rate, "--save-params", str(path))) == 0
        paths.append(str(path))
    out = tmp_path / "diagnose"
    assert run_script(DIAGNOSE, *paths, "--out", str(out), "--data-source", "idx", "--data-dir", str(idx_dir)) == 0
    document = json.loads((out / "diagnose.json").read_text())
    assert set(document["networks"]) == {"lr_0.5", "lr_2"}
    network = document["networks"]["lr_0.5"]
    assert len(network["saturation"]) == 2 and len(network["confusion"]) == 10
    assert sum(map(sum, network["confusion"])) == 200
    assert set(network["first_layer"]) == {"frame_pixels", "border_mean_abs", "centre_mean_abs"}
    for name in ("saturation", "derivative", "reliability", "confusion_lr_2", "errors_lr_0.5", "features_lr_2"):
        check_png(out / f"diagnose_{name}.png")


def test_diagnose_reads_each_networks_own_description_any_depth_mixed(idx_dir, tmp_path):
    relu = tmp_path / "relu.npz"
    flags = ("--lr", "0.05", "--activation", "relu", "--save-params", str(relu))
    assert run_script(BASELINE, *tiny(idx_dir, tmp_path / "relu", *flags)) == 0
    shallow = tmp_path / "shallow.npz"
    shallow_architecture = mlp.Architecture((784, 10), "tanh")
    saved.save(shallow, mlp.init(jax.random.key(0), shallow_architecture), shallow_architecture)
    out = tmp_path / "diagnose"
    flags = ("--out", str(out), "--data-source", "idx", "--data-dir", str(idx_dir))
    assert run_script(DIAGNOSE, str(relu), str(shallow), *flags) == 0  # the deeper one first
    networks = json.loads((out / "diagnose.json").read_text())["networks"]
    assert networks["relu"]["activation"] == "relu"
    assert [layer["rule"] for layer in networks["relu"]["saturation"]] == ["a = 0 (inactive)"] * 2
    # relu's histogram spans its whole range, not [0, 1]: every (image, unit) output is counted in it.
    first = networks["relu"]["saturation"][0]
    assert first["histogram"]["edges"][-1] > 1 and sum(first["histogram"]["counts"]) == 200 * first["units"]
    assert networks["shallow"]["saturation"] == [] and networks["shallow"]["activation"] == "tanh"
    check_png(out / "diagnose_saturation.png")


def test_a_second_diagnosis_leaves_no_figure_of_the_first(idx_dir, tmp_path):
    out = tmp_path / "diagnose"
    for name in ("first", "second"):
        path = tmp_path / f"{name}.npz"
        assert run_script(BASELINE, *tiny(idx_dir, tmp_path / name, "--save-params", str(path))) == 0
        flags = ("--out", str(out), "--data-source", "idx", "--data-dir", str(idx_dir))
        assert run_script(DIAGNOSE, str(path), *flags) == 0
    assert not list(out.glob("*first*")) and list(out.glob("*second*"))


def test_networks_whose_files_share_a_name_are_named_by_folder_and_file(idx_dir, tmp_path):
    architecture = mlp.Architecture((784, 8, 10))
    paths = [tmp_path / folder / "lr_1_seed_1.npz" for folder in ("tanh", "relu")] + [tmp_path / "lr_2_seed_1.npz"]
    for index, path in enumerate(paths):
        path.parent.mkdir(exist_ok=True)
        saved.save(path, mlp.init(jax.random.key(index), architecture), architecture)
    out = tmp_path / "diagnose"
    flags = ("--out", str(out), "--data-source", "idx", "--data-dir", str(idx_dir))
    assert run_script(DIAGNOSE, *map(str, paths), *flags) == 0
    document = json.loads((out / "diagnose.json").read_text())
    assert list(document["params"]) == ["tanh_lr_1_seed_1", "relu_lr_1_seed_1", f"{tmp_path.name}_lr_2_seed_1"]
    assert (out / "diagnose_features_relu_lr_1_seed_1.png").is_file()


def _npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def test_diagnose_refuses_bad_params_files_with_one_line(tmp_path, capsys):
    good = tmp_path / "good.npz"
    saved.save(good, mlp.init(jax.random.key(0), mlp.Architecture((784, 8, 10))), mlp.Architecture((784, 8, 10)))
    w, b = np.zeros((784, 8), np.float32), np.zeros(8, np.float32)
    bad = {
        "keys": _npz(tmp_path / "keys.npz", w0=w, b0=b, w1=np.zeros((8, 10), np.float32)),
        "chain": _npz(tmp_path / "chain.npz", w0=w, b0=b, w1=np.zeros((9, 10), np.float32), b1=np.zeros(10)),
        "zip": tmp_path / "text.npz",
        "shape": _npz(tmp_path / "shape.npz", w0=np.zeros((5, 10), np.float32), b0=np.zeros(10, np.float32)),
    }
    bad["zip"].write_text("hello")
    for kind, path in bad.items():
        out = tmp_path / f"out_{kind}"
        assert run_script(DIAGNOSE, str(good), str(path), "--out", str(out)) == 1, kind
        message = capsys.readouterr().err
        assert str(path) in message and "Traceback" not in message and len(message.strip().splitlines()) <= 2
        assert not out.exists()


def test_forward_pass_is_the_network_forward(network):
    params, images, _ = network
    probs, _ = mlp.forward(ARCH, params, images)
    np.testing.assert_allclose(diagnostics.forward_pass(ARCH, params, images).probs, jnp.asarray(probs), rtol=1e-6)
