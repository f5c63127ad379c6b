"""The multilayer perceptron: dense layers with an activation between them and a softmax output.

A network is described by its `Architecture` (layer widths and the hidden activation), a hashable
static value that every function building, running or differentiating a network takes first. Params
are a tuple of `Dense(w, b)`, one per layer. With sizes (784, 512, 128, 10): w shapes (784, 512),
(512, 128), (128, 10); b shapes (512,), (128,), (10,).
"""

import functools
import json
import os
import zipfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp import quantizers
from fmlp.choices import ACTIVATIONS, WEIGHT_BITS
from fmlp.io import atomic_path
from fmlp.layers import (
    ACTIVATIONS as ACTIVATION_PAIRS,
)
from fmlp.layers import (
    Dense,
    dense_forward,
    dense_input_grad,
    dense_param_grads,
    softmax,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
)

Params = tuple[Dense, ...]
# activations[i] is the input of layer i: (images, h1, ..., h_{L-1}), followed by the output probabilities.
Activations = tuple[jax.Array, ...]

REFERENCE_SIZES = (784, 512, 128, 10)


class Architecture(NamedTuple):
    """What a network is, as one static value: its layer widths (inputs first, classes last) and the
    activation of its hidden layers (one of fmlp.choices.ACTIVATIONS). A new static option of the
    network is a field here, read by the one function that needs it."""

    sizes: tuple[int, ...] = REFERENCE_SIZES
    activation: str = "sigmoid"
    # Quantization-aware training: the forward pass runs on the weights rounded to this many bits
    # (fmlp.quantizers, straight-through in the backward); None runs them as they are, in float32.
    weight_bits: int | None = None


REFERENCE = Architecture()


def init(key: jax.Array, architecture: Architecture, dtype=jnp.float32) -> Params:
    """Draws w (fan_in, fan_out) and b (fan_out,) for each layer, scaled for the activation:
    sigmoid: w and b N(0, 1) * sqrt(1 / fan_in) (the reference exercise's rule); tanh: w Glorot,
    N(0, 1) * sqrt(2 / (fan_in + fan_out)), b = 0; relu: w He, N(0, 1) * sqrt(2 / fan_in), b = 0."""
    return _init(key, Architecture(tuple(architecture.sizes), architecture.activation), jnp.dtype(dtype))


def _scales(activation: str, fan_in: int, fan_out: int) -> tuple[float, float]:
    """(weight scale, bias scale) of a layer: see `init`."""
    if activation == "sigmoid":
        return np.sqrt(1.0 / fan_in), np.sqrt(1.0 / fan_in)
    if activation == "tanh":
        return np.sqrt(2.0 / (fan_in + fan_out)), 0.0
    return np.sqrt(2.0 / fan_in), 0.0


@functools.partial(jax.jit, static_argnames=("architecture", "dtype"))
def _init(key: jax.Array, architecture: Architecture, dtype: jnp.dtype) -> Params:
    # One normal draw for all parameters, cut into layers: XLA compiles each random.normal call
    # separately (about 0.3 s apiece here), so six draws cost seconds at startup.
    layer_sizes = list(zip(architecture.sizes[:-1], architecture.sizes[1:]))
    draws = jax.random.normal(key, (sum((fan_in + 1) * fan_out for fan_in, fan_out in layer_sizes),), dtype)
    params, offset = [], 0
    for fan_in, fan_out in layer_sizes:
        w_scale, b_scale = _scales(architecture.activation, fan_in, fan_out)
        w = draws[offset : offset + fan_in * fan_out].reshape(fan_in, fan_out) * w_scale
        offset += fan_in * fan_out
        b = draws[offset : offset + fan_out] * b_scale
        offset += fan_out
        params.append(Dense(w, b))
    return tuple(params)


def weights_run(architecture: Architecture, params: Params) -> Params:
    """The parameters the forward pass runs on: params themselves, or with every weight matrix on
    architecture.weight_bits bits (`quantizers.straight_through`); biases stay float32."""
    if architecture.weight_bits is None:
        return params
    return tuple(Dense(quantizers.straight_through(layer.w, architecture.weight_bits), layer.b) for layer in params)


def forward_logits(architecture: Architecture, params: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """Runs the network up to the logits.

    images: (B, sizes[0]) -> logits (B, sizes[-1]) and the layer inputs (images, h1, ..., h_{L-1}).
    """
    return _forward_logits(architecture, weights_run(architecture, params), images)


def _forward_logits(architecture: Architecture, run: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """`forward_logits` on the parameters as they run (`weights_run`)."""
    activate, _ = ACTIVATION_PAIRS[architecture.activation]
    layer_inputs = [images]
    for layer in run[:-1]:
        layer_inputs.append(activate(dense_forward(layer, layer_inputs[-1])))
    return dense_forward(run[-1], layer_inputs[-1]), tuple(layer_inputs)


def forward(architecture: Architecture, params: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """images: (B, sizes[0]) -> probabilities (B, sizes[-1]) and the activations `backward` needs."""
    logits, layer_inputs = forward_logits(architecture, params, images)
    probs = softmax(logits)
    return probs, layer_inputs + (probs,)


def backward(architecture: Architecture, params: Params, activations: Activations, labels: jax.Array) -> Params:
    """Gradients of the mean cross-entropy with respect to params, by the chain rule layer by layer.

    activations: as returned by `forward`; labels: (B,) int. Returns the same pytree as params.
    The gradient with respect to the images is never formed: training does not need it. With
    weight_bits, these are the gradients with respect to the rounded weights, which the
    straight-through estimator hands to params unchanged.
    """
    return _backward(architecture, weights_run(architecture, params), activations, labels)


def _backward(architecture: Architecture, run: Params, activations: Activations, labels: jax.Array) -> Params:
    """`backward` from the parameters as they ran (`weights_run`)."""
    _, step_back = ACTIVATION_PAIRS[architecture.activation]
    *layer_inputs, probs = activations
    delta = softmax_cross_entropy_backward(probs, labels)  # dL/dz of the last layer, (B, C)
    grads = []
    for layer_index in reversed(range(len(run))):
        layer_input = layer_inputs[layer_index]
        grads.append(dense_param_grads(layer_input, delta))
        if layer_index > 0:
            # layer_input is the activation's output of the layer below; step delta back through it.
            delta = step_back(layer_input, dense_input_grad(run[layer_index], delta))
    return tuple(reversed(grads))


def loss_and_grads(
    architecture: Architecture, params: Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, Params]:
    """Mean cross-entropy over the batch and its gradients. images: (B, sizes[0]); labels: (B,) int."""
    loss, grads, _ = loss_grads_and_probs(architecture, params, images, labels)
    return loss, grads


def loss_grads_and_probs(
    architecture: Architecture, params: Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, Params, jax.Array]:
    """`loss_and_grads` that also returns the probabilities (B, C) of the same forward pass."""
    run = weights_run(architecture, params)  # rounded once for the forward and the backward pass
    logits, layer_inputs = _forward_logits(architecture, run, images)
    loss, probs = softmax_cross_entropy(logits, labels)
    return loss, _backward(architecture, run, layer_inputs + (probs,), labels), probs


FORMAT = 2  # of saved networks: 1 held bare arrays (a sigmoid network), 2 adds "architecture" and "format"
DESCRIPTION_KEYS = ("architecture", "format")


class Network(NamedTuple):
    """A saved network: its parameters and its description."""

    params: Params
    architecture: Architecture


def save(path: str | os.PathLike, params: Params, architecture: Architecture) -> None:
    """Writes params to an .npz file as w0, b0, w1, b1, ..., with the architecture as a JSON entry and the
    format version (temporary file, then rename). No pickle: the JSON is stored as bytes."""
    arrays = {}
    for index, layer in enumerate(params):
        arrays[f"w{index}"] = np.asarray(layer.w)
        arrays[f"b{index}"] = np.asarray(layer.b)
    description = {
        "sizes": list(architecture.sizes),
        "activation": architecture.activation,
        "weight_bits": architecture.weight_bits,
    }
    arrays["architecture"] = np.frombuffer(json.dumps(description).encode(), np.uint8)
    arrays["format"] = np.array(FORMAT)
    with atomic_path(path) as temp_path, open(temp_path, "wb") as file:
        np.savez(file, **arrays)


def _check_saved(path: str | os.PathLike, arrays: dict) -> None:
    """Refuses anything `save` would not have written: keys, dtypes, ranks, shapes that chain. The
    description entries (format 2) are checked by `_architecture`."""
    arrays = {name: array for name, array in arrays.items() if name not in DESCRIPTION_KEYS}
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


def _architecture(path: str | os.PathLike, arrays: dict, params: Params) -> Architecture:
    """The saved description, checked against the arrays; a file without one (format 1) is the sigmoid
    network its shapes give."""
    sizes = (params[0].w.shape[0], *(layer.w.shape[1] for layer in params))
    if "architecture" not in arrays and "format" not in arrays:
        return Architecture(sizes, "sigmoid")
    if "architecture" not in arrays or "format" not in arrays or arrays["format"].shape != ():
        raise ValueError(f"{path}: has only one of the entries architecture and format")
    if int(arrays["format"]) != FORMAT:
        raise ValueError(f"{path}: format {int(arrays['format'])}, expected {FORMAT} (or none)")
    try:
        description = json.loads(arrays["architecture"].astype(np.uint8).tobytes())
        saved = Architecture(tuple(int(size) for size in description["sizes"]), str(description["activation"]))
        bits = description.get("weight_bits")  # written since quantization-aware training
        saved = saved._replace(weight_bits=None if bits is None else int(bits))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"{path}: its architecture entry is not the JSON that save writes ({error})") from None
    if saved.weight_bits not in (None, *WEIGHT_BITS):
        raise ValueError(f"{path}: weight_bits {saved.weight_bits}, not one of {', '.join(map(str, WEIGHT_BITS))}")
    if saved.activation not in ACTIVATIONS:
        raise ValueError(f"{path}: activation {saved.activation!r}, not one of {', '.join(ACTIVATIONS)}")
    if saved.sizes != sizes:
        raise ValueError(f"{path}: its architecture says sizes {list(saved.sizes)}, its arrays {list(sizes)}")
    return saved


def load(path: str | os.PathLike) -> Network:
    """Reads a network written by `save` (or by the format before it, as a sigmoid network); anything else
    is a ValueError naming the file and the problem, raised before the arrays are read where their
    headers show it."""
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
    num_layers = len([name for name in arrays if name.startswith("w")])
    params = tuple(Dense(w=jnp.asarray(arrays[f"w{i}"]), b=jnp.asarray(arrays[f"b{i}"])) for i in range(num_layers))
    return Network(params, _architecture(path, arrays, params))
