"""Saved networks: the parameters as an .npz file with their description, written whole and read back
only after every array has been checked. No pickle: the description is JSON stored as bytes."""

import hashlib
import json
import os
import zipfile
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from fmlp.description import ACTIVATIONS, CLASSES, INPUTS, WEIGHT_BITS, Architecture
from fmlp.files import atomic_path
from fmlp.nn.layers import Dense
from fmlp.nn.mlp import Params

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


def fingerprint(params: Params, architecture: Architecture) -> str:
    """The sha256 of a network's content: its description and every array's dtype, shape and bytes as
    float32. The same trained network gives the same fingerprint in memory, once saved, and once loaded
    (the .npz's own bytes carry the time they were written). A result that read or wrote a network
    records it, so that a report can tell whether a diagnosis is of the networks a sweep trained."""
    digest = hashlib.sha256(json.dumps([list(architecture.sizes), architecture.activation,
                                        architecture.weight_bits]).encode())  # fmt: skip
    for layer in params:
        for array in (np.asarray(layer.w, np.float32), np.asarray(layer.b, np.float32)):
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _check_saved(path: str | os.PathLike, arrays: dict) -> None:
    """Refuses anything `save` would not have written: keys, dtypes, ranks, shapes that chain. The
    description entries (format 2) are checked by `_architecture`."""
    arrays = {name: array for name, array in arrays.items() if name not in DESCRIPTION_KEYS}
    num_layers = len(arrays) // 2
    expected = {f"{kind}{i}" for i in range(num_layers) for kind in "wb"}
    if num_layers == 0 or set(arrays) != expected:
        raise ValueError(
            f"{path}: holds arrays {sorted(arrays) or 'none'}; "
            "expected w0, b0, ..., w(L-1), b(L-1) as written by fmlp.nn.saved.save"
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
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ValueError(f"{path}: its architecture entry is not the JSON that save writes ({error})") from None
    if bits is not None and (type(bits) is not int or bits not in WEIGHT_BITS):  # true and 8.7 are not widths
        raise ValueError(f"{path}: weight_bits {bits!r}, not one of {', '.join(map(str, WEIGHT_BITS))} (or null)")
    saved = saved._replace(weight_bits=bits)
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
    for name in (f"{kind}{i}" for i in range(num_layers) for kind in "wb"):
        if not np.isfinite(arrays[name]).all():
            count = int((~np.isfinite(arrays[name])).sum())
            raise ValueError(f"{path}: {name} holds {count} non-finite value(s) (NaN or infinity); a network must be "
                             "finite")  # fmt: skip
    # Every network is float32, whatever precision it was saved in, as training and inference run it.
    params = tuple(
        Dense(w=jnp.asarray(arrays[f"w{i}"], jnp.float32), b=jnp.asarray(arrays[f"b{i}"], jnp.float32))
        for i in range(num_layers)
    )
    return Network(params, _architecture(path, arrays, params))


def check_classifier(path: str | os.PathLike, architecture: Architecture) -> None:
    """ValueError naming the file unless the network classifies MNIST: INPUTS pixels in, CLASSES out."""
    sizes = architecture.sizes
    if (sizes[0], sizes[-1]) != (INPUTS, CLASSES):
        raise ValueError(f"{path}: a network of {sizes[0]} inputs and {sizes[-1]} outputs, not an MNIST classifier "
                         f"({INPUTS} -> {CLASSES})")  # fmt: skip
