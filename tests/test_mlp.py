"""The network's hand-written gradients against autodiff and finite differences, in float64."""

import io
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fmlp.description import ACTIVATIONS
from fmlp.nn import mlp, saved
from tests.autodiff import autodiff_loss_and_grads, reference_loss


def random_problem(seed, batch, sizes, dtype=jnp.float64, activation="sigmoid"):
    params_key, images_key, labels_key = jax.random.split(jax.random.key(seed), 3)
    params = mlp.init(params_key, mlp.Architecture(sizes, activation), dtype)
    images = jax.random.normal(images_key, (batch, sizes[0]), dtype)
    labels = jax.random.randint(labels_key, (batch,), 0, sizes[-1])
    return params, images, labels


def test_init_shapes_dtype_and_scale():
    params = mlp.init(jax.random.key(0), mlp.REFERENCE)
    assert [layer.w.shape for layer in params] == [(784, 512), (512, 128), (128, 10)]
    assert [layer.b.shape for layer in params] == [(512,), (128,), (10,)]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    # N(0, 1) * sqrt(1 / fan_in): the first layer's 401408 weights pin the std down to well under 1%.
    np.testing.assert_allclose(np.std(params[0].w), np.sqrt(1 / 784), rtol=0.01)
    np.testing.assert_allclose(np.std(params[1].w), np.sqrt(1 / 512), rtol=0.02)


def test_forward_returns_probabilities_and_layer_inputs():
    params, images, _ = random_problem(0, 5, (6, 4, 3), jnp.float32)
    probs, activations = mlp.forward(mlp.Architecture((6, 4, 3)), params, images)
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-6)
    assert [a.shape for a in activations] == [(5, 6), (5, 4), (5, 3)]
    assert activations[-1] is probs


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_loss_and_grads_match_autodiff(float64, batch, activation):
    architecture = mlp.Architecture((20, 16, 12, 10), activation)
    params, images, labels = random_problem(batch, batch, architecture.sizes, activation=activation)
    loss, grads = mlp.loss_and_grads(architecture, params, images, labels)
    expected_loss, expected_grads = autodiff_loss_and_grads(architecture, params, images, labels)

    assert jax.tree.structure(grads) == jax.tree.structure(params)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    for actual, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        assert actual.shape == expected.shape and actual.dtype == jnp.float64
        error = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
        assert error < 1e-10


def test_loss_and_grads_match_autodiff_on_the_reference_network(float64):
    params, images, labels = random_problem(3, 7, mlp.REFERENCE.sizes)
    _, grads = mlp.loss_and_grads(mlp.REFERENCE, params, images, labels)
    _, expected_grads = autodiff_loss_and_grads(mlp.REFERENCE, params, images, labels)
    for actual, expected in zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads)):
        assert np.max(np.abs(actual - expected)) / np.max(np.abs(expected)) < 1e-10


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_backward_of_forward_equals_loss_and_grads(float64, activation):
    architecture = mlp.Architecture((8, 6, 5), activation)
    params, images, labels = random_problem(4, 9, architecture.sizes, activation=activation)
    _, activations = mlp.forward(architecture, params, images)
    grads = mlp.backward(architecture, params, activations, labels)
    _, expected = mlp.loss_and_grads(architecture, params, images, labels)
    for actual, wanted in zip(jax.tree.leaves(grads), jax.tree.leaves(expected)):
        np.testing.assert_allclose(actual, wanted, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_grads_match_central_finite_differences(float64, activation):
    architecture = mlp.Architecture((5, 4, 3, 3), activation)
    params, images, labels = random_problem(5, 4, architecture.sizes, activation=activation)
    _, grads = mlp.loss_and_grads(architecture, params, images, labels)
    flat_params, unravel = ravel_pytree(params)
    flat_grads, _ = ravel_pytree(grads)

    def loss_at(flat):
        return float(reference_loss(architecture, unravel(flat), images, labels))

    step = 1e-6
    numeric = np.array(
        [
            (loss_at(flat_params.at[i].add(step)) - loss_at(flat_params.at[i].add(-step))) / (2 * step)
            for i in range(flat_params.size)
        ]
    )
    # Central differences are exact to O(step^2) ~ 1e-12 plus rounding ~ 1e-16 / step ~ 1e-10 (no
    # pre-activation of this problem lies within a step of relu's kink at 0).
    np.testing.assert_allclose(flat_grads, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation, std", [("tanh", np.sqrt(2 / (784 + 512))), ("relu", np.sqrt(2 / 784))])
def test_init_scales_per_activation(activation, std):
    params = mlp.init(jax.random.key(0), mlp.Architecture(mlp.REFERENCE.sizes, activation))
    np.testing.assert_allclose(np.std(params[0].w), std, rtol=0.01)
    assert all(np.all(layer.b == 0) for layer in params)


def test_save_and_load_round_trip_with_the_architecture(tmp_path):
    architecture = mlp.Architecture((5, 4, 3), "relu")
    params = mlp.init(jax.random.key(6), architecture)
    path = tmp_path / "params.npz"
    saved.save(path, params, architecture)
    loaded = saved.load(path)
    assert loaded.architecture == architecture
    assert jax.tree.structure(loaded.params) == jax.tree.structure(params)
    for actual, expected in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(actual, expected)
    assert [p.name for p in tmp_path.iterdir()] == ["params.npz"]


def test_a_file_of_the_first_format_loads_as_a_sigmoid_network(tmp_path):
    path = _write_npz(tmp_path / "old.npz", w0=W0, b0=B0, w1=W1, b1=B1)
    assert saved.load(path).architecture == mlp.Architecture((5, 4, 3), "sigmoid")


def _described(path, **entries):
    arrays = {"w0": W0, "b0": B0, "w1": W1, "b1": B1, "format": np.array(saved.FORMAT)}
    return _write_npz(path, **(arrays | entries))


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"architecture": np.frombuffer(b'{"sizes": [5, 4, 3], "activation": "swish"}', np.uint8)}, "'swish'"),
        ({"architecture": np.frombuffer(b'{"sizes": [5, 9, 3], "activation": "relu"}', np.uint8)}, "sizes \\[5, 9"),
        ({"architecture": np.frombuffer(b"not json", np.uint8)}, "not the JSON that save writes"),
        ({"format": np.array(7), "architecture": np.frombuffer(b"{}", np.uint8)}, "format 7"),
        ({}, "only one of the entries"),
    ],
)
def test_a_wrong_description_is_refused_naming_the_file(tmp_path, entries, message):
    path = _described(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match=f"{path}: .*{message}"):
        saved.load(path)


def _write_npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


W0, B0 = np.zeros((5, 4), np.float32), np.zeros(4, np.float32)
W1, B1 = np.zeros((4, 3), np.float32), np.zeros(3, np.float32)
BAD_PARAMS = [
    ("missing", {"w0": W0, "b0": B0, "w1": W1}, "holds arrays \\['b0', 'w0', 'w1'\\]"),
    ("empty", {}, "holds arrays none"),
    ("extra", {"w0": W0, "b0": B0, "w1": W1, "b1": B1, "w2": W1}, "holds arrays .*'w2'\\]; expected w0, b0"),
    ("renamed", {"w0": W0, "b0": B0, "x1": W1, "b1": B1}, "holds arrays .*'x1'\\]; expected w0, b0"),
    ("no chain", {"w0": W0, "b0": B0, "w1": np.zeros((7, 3), np.float32), "b1": B1}, "w1 \\(7, 3\\) does not chain"),
    ("bias", {"w0": W0, "b0": np.zeros(5, np.float32)}, "layer 0 has w0 \\(5, 4\\) and b0 \\(5,\\)"),
    ("ints", {"w0": W0.astype(np.int32), "b0": B0}, "layer 0 has dtypes int32 and float32; expected floats"),
    ("objects", {"w0": W0, "b0": np.array([None], object)}, "layer 0 has dtypes float32 and object; expected floats"),
]


@pytest.mark.parametrize("name,arrays,message", BAD_PARAMS, ids=[case[0] for case in BAD_PARAMS])
def test_load_refuses_what_save_would_not_write(tmp_path, name, arrays, message):
    path = _write_npz(tmp_path / "params.npz", **arrays)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        saved.load(path)


def test_load_refuses_a_text_file_and_a_missing_one(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="notes.npz: not an .npz file \\(not a zip archive\\)"):
        saved.load(text)
    with pytest.raises(ValueError, match="absent.npz: no such file"):
        saved.load(tmp_path / "absent.npz")


def _npz_of_headers(path, **shapes):
    """An .npz whose members declare these shapes (float32) but hold no data: what a hostile file can do."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, shape in shapes.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
            archive.writestr(f"{name}.npy", header.getvalue())
    return path


def test_load_refuses_huge_declared_or_unpacked_sizes_before_allocating(tmp_path, monkeypatch):
    huge = _npz_of_headers(tmp_path / "huge.npz", w0=(10**6, 10**6), b0=(10**6,))
    with pytest.raises(ValueError, match=f"{huge}: declares 1,000,001,000,000 parameters"):
        saved.load(huge)
    monkeypatch.setattr(saved, "MAX_PARAMETERS", 1000)  # a small cap, so the test's bomb stays small
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("w0.npy", b"\0" * (8 * saved.MAX_PARAMETERS + 1))
    with pytest.raises(ValueError, match=f"{bomb}: w0 unpacks to"):
        saved.load(bomb)


def test_load_names_a_folder_as_a_folder(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: a folder, not an .npz file"):
        saved.load(tmp_path)
