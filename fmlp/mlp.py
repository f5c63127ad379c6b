"""The multilayer perceptron: dense layers with sigmoid between them and a softmax output.

Params are a tuple of `Dense(w, b)`, one per layer. With sizes (784, 512, 128, 10):
w shapes (784, 512), (512, 128), (128, 10); b shapes (512,), (128,), (10,).
"""

import functools
import os
import zipfile
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp.io import atomic_path
from fmlp.layers import (
    Dense,
    dense_forward,
    dense_input_grad,
    dense_param_grads,
    sigmoid_backward,
    sigmoid_forward,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)

Params = tuple[Dense, ...]
# activations[i] is the input of layer i: (images, h1, ..., h_{L-1}), followed by the output probabilities.
Activations = tuple[jax.Array, ...]

REFERENCE_SIZES = (784, 512, 128, 10)


def init(key: jax.Array, sizes: Sequence[int] = REFERENCE_SIZES, dtype=jnp.float32) -> Params:
    """Draws w (fan_in, fan_out) and b (fan_out,) as N(0, 1) * sqrt(1 / fan_in) for each layer."""
    return _init(key, tuple(sizes), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnames=("sizes", "dtype"))
def _init(key: jax.Array, sizes: tuple[int, ...], dtype: jnp.dtype) -> Params:
    # One normal draw for all parameters, cut into layers: XLA compiles each random.normal call
    # separately (about 0.3 s apiece here), so six draws cost seconds at startup.
    layer_sizes = list(zip(sizes[:-1], sizes[1:]))
    draws = jax.random.normal(key, (sum((fan_in + 1) * fan_out for fan_in, fan_out in layer_sizes),), dtype)
    params, offset = [], 0
    for fan_in, fan_out in layer_sizes:
        scale = np.sqrt(1.0 / fan_in)
        w = draws[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out) * scale
        offset += fan_in * fan_out
        b = draws[offset : offset + fan_out] * scale
        offset += fan_out
        params.append(Dense(w, b))
    return tuple(params)


def forward_logits(params: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """Runs the network up to the logits.

    images: (B, sizes[0]) -> logits (B, sizes[-1]) and the layer inputs (images, h1, ..., h_{L-1}).
    """
    layer_inputs = [images]
    for layer in params[:-1]:
        layer_inputs.append(sigmoid_forward(dense_forward(layer, layer_inputs[-1])))
    return dense_forward(params[-1], layer_inputs[-1]), tuple(layer_inputs)


def forward(params: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """images: (B, sizes[0]) -> probabilities (B, sizes[-1]) and the activations `backward` needs."""
    logits, layer_inputs = forward_logits(params, images)
    probs = softmax(logits)
    return probs, layer_inputs + (probs,)


def backward(params: Params, activations: Activations, labels: jax.Array) -> Params:
    """Gradients of the mean cross-entropy with respect to params, by the chain rule layer by layer.

    activations: as returned by `forward`; labels: (B,) int. Returns the same pytree as params.
    The gradient with respect to the images is never formed: training does not need it.
    """
    *layer_inputs, probs = activations
    delta = softmax_cross_entropy_backward(probs, labels)  # dL/dz of the last layer, (B, C)
    grads = []
    for layer_index in reversed(range(len(params))):
        layer_input = layer_inputs[layer_index]
        grads.append(dense_param_grads(layer_input, delta))
        if layer_index > 0:
            # layer_input is the sigmoid output of the layer below; step delta back through it.
            delta = sigmoid_backward(layer_input, dense_input_grad(params[layer_index], delta))
    return tuple(reversed(grads))


def loss_and_grads(params: Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, Params]:
    """Mean cross-entropy over the batch and its gradients. images: (B, sizes[0]); labels: (B,) int."""
    loss, grads, _ = loss_grads_and_probs(params, images, labels)
    return loss, grads


def loss_grads_and_probs(params: Params, images: jax.Array, labels: jax.Array) -> tuple[jax.Array, Params, jax.Array]:
    """`loss_and_grads` that also returns the probabilities (B, C) of the same forward pass."""
    logits, layer_inputs = forward_logits(params, images)
    loss, probs = softmax_cross_entropy(logits, labels)
    return loss, backward(params, layer_inputs + (probs,), labels), probs


def save(path: str | os.PathLike, params: Params) -> None:
    """Writes params to an .npz file as w0, b0, w1, b1, ... (temporary file, then rename)."""
    arrays = {}
    for index, layer in enumerate(params):
        arrays[f"w{index}"] = np.asarray(layer.w)
        arrays[f"b{index}"] = np.asarray(layer.b)
    with atomic_path(path) as temp_path, open(temp_path, "wb") as file:
        np.savez(file, **arrays)


def _check_saved(path: str | os.PathLike, arrays: dict) -> None:
    """Refuses anything `save` would not have written: keys, dtypes, ranks, shapes that chain."""
    num_layers = len(arrays) // 2
    expected = {f"{kind}{i}" for i in range(num_layers) for kind in "wb"}
    if num_layers == 0 or set(arrays) != expected:
        raise ValueError(
            f"{path}: holds arrays {sorted(arrays) or 'none'}; "
            "expected w0, b0, ..., w(L-1), b(L-1) as written by fmlp.mlp.save"
        )
    for i in range(num_layers):
        w, b = arrays[f"w{i}"], arrays[f"b{i}"]
        if not (np.issubdtype(w.dtype, np.floating) and np.issubdtype(b.dtype, np.floating)):
            raise ValueError(f"{path}: layer {i} has dtypes {w.dtype} and {b.dtype}; expected floats")
        if w.ndim != 2 or b.shape != w.shape[1:]:
            raise ValueError(f"{path}: layer {i} has w{i} {w.shape} and b{i} {b.shape}; expected (I, O) and (O,)")
        if i > 0 and w.shape[0] != arrays[f"w{i - 1}"].shape[1]:
            raise ValueError(
                f"{path}: w{i} {w.shape} does not chain: layer {i - 1} has {arrays[f'w{i - 1}'].shape[1]} outputs"
            )


MAX_PARAMETERS = 100_000_000  # 400 MB of float32: far beyond any MNIST MLP, far below a machine's memory


class ArrayHeader(NamedTuple):
    """What an .npy header declares, read before any of the array's data."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _headers(path: str | os.PathLike) -> dict[str, ArrayHeader]:
    """The declared shape and dtype of every array of an .npz, read from the headers alone, so that a
    file declaring huge arrays is refused before anything is allocated."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            name = member.filename.removesuffix(".npy")
            if member.file_size > 4 * MAX_PARAMETERS * 2:
                raise ValueError(f"{path}: {name} unpacks to {member.file_size:,} bytes, more than any network here")
            with archive.open(member) as file:
                version = np.lib.format.read_magic(file)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(file)
            headers[name] = ArrayHeader(tuple(shape), dtype)
    total = sum(int(np.prod(header.shape, dtype=np.float64)) for header in headers.values())
    if total > MAX_PARAMETERS:
        raise ValueError(f"{path}: declares {total:,} parameters, more than the {MAX_PARAMETERS:,} allowed")
    return headers


def load(path: str | os.PathLike) -> Params:
    """Reads params written by `save`; anything else is a ValueError naming the file and the problem,
    raised before the arrays are read where their headers show it."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: a folder, not an .npz file")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz file (not a zip archive)")
    try:
        _check_saved(path, _headers(path))
        with np.load(path, allow_pickle=False) as file:
            arrays = {name: file[name] for name in file.files}
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: cannot read its arrays ({error})") from error
    except ValueError as error:
        raise error if str(error).startswith(str(path)) else ValueError(f"{path}: cannot read its arrays ({error})")
    _check_saved(path, arrays)
    return tuple(Dense(w=jnp.asarray(arrays[f"w{i}"]), b=jnp.asarray(arrays[f"b{i}"])) for i in range(len(arrays) // 2))
