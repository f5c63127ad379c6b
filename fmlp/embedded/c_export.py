"""An integer network as plain C99: fmlp_weights.h (generated const arrays) beside the fixed sources
fmlp.h, fmlp.c (`int fmlp_predict(const uint8_t pixels[784])`) and main.c (an MNIST IDX runner), so that
`cc -std=c99 -O2 DIR/*.c -o fmlp_mnist` builds it.

Each unit's codes are one packed row: 8 / bits codes per byte, the first in the lowest bits; a 1-bit
code is stored as 1 for +1 and 0 for -1, a wider one as its two's complement. Shapes as in fmlp.embedded.integer.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from fmlp.embedded.integer import TABLE_SIZE, IntegerNetwork
from fmlp.files import copy_whole, write_whole

SOURCES = Path(__file__).parent / "c"
STACK_LIMIT = 4096  # bytes fmlp_predict may use for its buffers: a small microcontroller's stack


class Footprint(NamedTuple):
    """What the exported network needs on a device, in bytes, and its work per image."""

    flash_weights: int  # packed codes
    flash_other: int  # biases, multipliers, shifts and the sigmoid table
    ram_buffers: int  # fmlp_predict's activation buffers, one layer's sums and the logits, on the stack
    operations: int  # integer multiply-accumulates per image, plus one requantization per unit


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes (I, O) in [-q, q] (±1 at one bit) -> packed rows (O, ceil(I bits / 8)) uint8, unit by unit."""
    fields = (codes.T > 0).astype(np.uint8) if bits == 1 else (codes.T.astype(np.int16) & (2**bits - 1))
    per_byte = 8 // bits
    padded = np.zeros((fields.shape[0], -(-fields.shape[1] // per_byte) * per_byte), np.uint16)
    padded[:, : fields.shape[1]] = fields
    groups = padded.reshape(fields.shape[0], -1, per_byte)
    return np.sum(groups << (np.arange(per_byte) * bits), axis=-1).astype(np.uint8)


def unpack(rows: np.ndarray, inputs: int, bits: int) -> np.ndarray:
    """The inverse of `pack`: rows (O, bytes) uint8 -> codes (inputs, O) int8."""
    per_byte = 8 // bits
    fields = (rows[:, :, None] >> (np.arange(per_byte) * bits)) & (2**bits - 1)
    fields = fields.reshape(rows.shape[0], -1)[:, :inputs].astype(np.int16)
    codes = fields * 2 - 1 if bits == 1 else (fields ^ 2 ** (bits - 1)) - 2 ** (bits - 1)
    return codes.T.astype(np.int8)


def footprint(network: IntegerNetwork) -> Footprint:
    """Flash, RAM and operations of the network as fmlp.c runs it."""
    weights = sum(pack(layer.codes, network.weight_bits).size for layer in network.layers)
    other = sum(layer.bias.size * 4 + layer.multiplier.size * 4 + layer.shift.size for layer in network.layers)
    hidden = max([layer.codes.shape[1] for layer in network.layers[:-1]], default=1)
    classes = network.layers[-1].codes.shape[1]
    operations = sum(layer.codes.size + layer.codes.shape[1] for layer in network.layers)
    sums = 4 * max(hidden, classes)  # the int32 sums of one layer's units
    return Footprint(weights, other + TABLE_SIZE, 2 * hidden + 4 * classes + sums, operations)


def _array(c_type: str, name: str, values: np.ndarray) -> str:
    """A `static const` C array of the values, twenty to a line."""
    numbers = [str(int(value)) for value in values.ravel()]
    lines = [", ".join(numbers[start : start + 20]) for start in range(0, len(numbers), 20)]
    return f"static const {c_type} {name}[{len(numbers)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


def centred_bias(layer) -> np.ndarray:
    """The bias of inputs stored centred, a - 128: bias + 128 * sum_i code_i per unit (O,) int32, so that
    sum_i (a_i - 128) code_i + centred bias is the layer's sum (the MVE kernel of fmlp.c)."""
    return (layer.bias.astype(np.int64) + 128 * layer.codes.astype(np.int64).sum(axis=0)).astype(np.int32)


def interleaved(rows: np.ndarray, units: int = 4) -> np.ndarray:
    """Packed 8-bit rows (O, I) with each group of `units` rows interleaved word by word: the first word
    (4 codes) of each of the group's units, then their second words, ... as little-endian uint32; the
    rows after the last whole group as they are. So the SMLAD kernel reads one group's next four words
    with one load. Every row's length must be a multiple of 4. -> (O * I / 4,) uint32."""
    groups = rows.shape[0] // units * units
    head = rows[:groups].reshape(-1, units, rows.shape[1] // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([head.ravel(), rows[groups:].ravel()]).view("<u4")


def bit_planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """1- or 2-bit codes (I, O) as the words of fmlp.c's subset-table kernel: (ceil(I / 32), O, bits)
    uint32, block k, unit u, plane p, whose bit i is plane p of the code of input 32 k + i (0 past I). At
    1 bit the plane is 1 for +1; at 2 bits the planes are the two's complement's low and high bits
    (c = b0 - 2 b1)."""
    inputs, outputs = codes.shape
    padded = np.zeros((-(-inputs // 32) * 32, outputs), np.int16)
    padded[:inputs] = codes
    planes = [padded > 0] if bits == 1 else [padded & 1, padded >> 1 & 1]
    fields = np.stack(planes, axis=-1).astype(np.uint64).reshape(-1, 32, outputs, bits)
    return np.sum(fields << np.arange(32, dtype=np.uint64)[:, None, None], axis=1).astype("<u4")


# What each kernel of fmlp.c needs from the header: at 8 bits the M55's MVE kernel the centred biases
# and the M4's SMLAD kernel the rows interleaved in fours; at 1 and 2 bits either the bit planes.
KERNELS = ("portable", "dsp", "mve")


def weights_header(network: IntegerNetwork, kernel: str = "portable") -> str:
    """fmlp_weights.h: the constants and arrays fmlp.c reads, laid out for the kernel that will read
    them (KERNELS): with "mve" each layer's centred bias too (`centred_bias`), with "dsp" the codes
    interleaved by four units (`interleaved`), where the weights are 8-bit (and for "dsp" every layer's
    inputs a multiple of 4); with either, 1- and 2-bit weights as bit planes (`bit_planes`), summed
    through tables of subset sums (FMLP_SUBSET_TABLES)."""
    centred = kernel == "mve" and network.weight_bits == 8
    tables = kernel != "portable" and network.weight_bits <= 2
    words = (
        kernel == "dsp" and network.weight_bits == 8 and all(layer.codes.shape[0] % 4 == 0 for layer in network.layers)
    )
    hidden = max([layer.codes.shape[1] for layer in network.layers[:-1]], default=1)
    parts = [
        "/* Generated by experiments/export_c.py from a trained network: do not edit. */\n",
        "#ifndef FMLP_WEIGHTS_H\n#define FMLP_WEIGHTS_H\n\n#include <stdint.h>\n\n",
        f"#define FMLP_WEIGHT_BITS {network.weight_bits}\n#define FMLP_LAYERS {len(network.layers)}\n",
        f"#define FMLP_CLASSES {network.layers[-1].codes.shape[1]}\n#define FMLP_WIDEST_HIDDEN {hidden}\n",
        f"#define FMLP_TABLE_SIZE {TABLE_SIZE}\n"
        + ("#define FMLP_CENTRED_BIAS 1\n" if centred else "")
        + ("#define FMLP_INTERLEAVED_UNITS 4\n" if words else "")
        + ("#define FMLP_SUBSET_TABLES 1\n" if tables else "")
        + "\n",
        "struct fmlp_layer {\n    int inputs, outputs;\n    const uint8_t *codes;\n"
        "    const int32_t *bias, *multiplier;\n    const uint8_t *shift;\n    const int32_t *centred_bias;\n};\n\n",
        _array("uint8_t", "fmlp_sigmoid", network.table),
    ]
    for index, layer in enumerate(network.layers):
        if words:
            codes = _array("uint32_t", f"fmlp_codes{index}", interleaved(pack(layer.codes, 8)))
        elif tables:
            codes = _array("uint32_t", f"fmlp_codes{index}", bit_planes(layer.codes, network.weight_bits))
        else:
            codes = _array("uint8_t", f"fmlp_codes{index}", pack(layer.codes, network.weight_bits))
        parts += [
            codes,
            _array("int32_t", f"fmlp_bias{index}", layer.bias),
            _array("int32_t", f"fmlp_multiplier{index}", layer.multiplier),
            _array("uint8_t", f"fmlp_shift{index}", layer.shift),
        ]
        if centred:
            parts.append(_array("int32_t", f"fmlp_centred_bias{index}", centred_bias(layer)))
    cast = "(const uint8_t *)" if words or tables else ""  # words of codes, read by the kernel as such
    entries = [
        f"    {{{layer.codes.shape[0]}, {layer.codes.shape[1]}, {cast}fmlp_codes{i}, "
        f"fmlp_bias{i}, fmlp_multiplier{i}, "
        f"fmlp_shift{i}, {f'fmlp_centred_bias{i}' if centred else '0'}}}"
        for i, layer in enumerate(network.layers)
    ]
    parts.append("static const struct fmlp_layer fmlp_layers[FMLP_LAYERS] = {\n" + ",\n".join(entries) + "\n};\n")
    return "\n".join(parts) + "\n#endif\n"


C_FILES = ("fmlp.c", "main.c")  # what a program of the export compiles, and nothing else in its folder
MARKER = ".fmlp_export"  # in a folder an export wrote: the next export may write over its files


def folder_problem(folder: Path) -> str | None:
    """Why an export must not write into folder, or None: it is a file, or it holds files that no export
    wrote (a user's main.c would be overwritten)."""
    if folder.exists() and not folder.is_dir():
        return f"{str(folder)!r} is not a folder"
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARKER).is_file():
        return f"{str(folder)!r} holds files that no export wrote; export into an empty or new folder"
    return None


def export(network: IntegerNetwork, folder: Path, kernel: str = "portable") -> list[Path]:
    """Writes the four C files into folder (created if need be), marked as an export's; returns their
    paths; the header is laid out for `kernel` (`weights_header`). Refuses a
    network whose buffers would pass STACK_LIMIT, or a folder of other files (`folder_problem`), before
    writing anything."""
    needed = footprint(network).ram_buffers
    if needed > STACK_LIMIT:
        raise ValueError(f"fmlp_predict would need {needed} bytes of stack, more than {STACK_LIMIT}")
    if problem := folder_problem(folder):
        raise ValueError(problem)
    folder.mkdir(parents=True, exist_ok=True)
    # Every file whole and never through a link that stands at its name: the folder may hold earlier ones.
    write_whole(folder / MARKER, "written by experiments/export_c.py; its files may be written over\n")
    header = write_whole(folder / "fmlp_weights.h", weights_header(network, kernel))
    return [header, *(copy_whole(SOURCES / name, folder / name) for name in ("fmlp.h", "fmlp.c", "main.c"))]
