"""Integer-only inference of a trained sigmoid network, as a microcontroller without a floating-point
unit would run it: raw uint8 pixels in, int8 (or fewer-bit) weights, int32 accumulators, uint8 sigmoid
outputs from a lookup table, int32 logits out.

Layer l computes, with a the layer's input codes (uint8) and c its weight codes:

    acc_j = sum_i a_i c_ij + bias_j                          (int32)
    y_j   = (acc_j * multiplier_j + 2^(shift_j - 1)) >> shift_j  (int64 product, arithmetic shift)

y is the pre-activation in steps of 1/TABLE_STEPS (hidden layers), then h = table[clip(y + TABLE_SIZE/2)]
is round(255 sigmoid(z)), or the logit in steps of 2^-LOGIT_BITS (last layer). The real multiplier
M_j = s_in * s_j / s_out is multiplier_j * 2^-shift_j with multiplier_j in [2^30, 2^31), as TFLite and
CMSIS-NN requantize. No range is calibrated: pixels are 0..255, sigmoid outputs lie in [0, 1] (scale
1/255), the table covers the pre-activations where round(255 sigmoid) changes, and the logits' step is
fixed; only the weights' scales come from the network.

Shapes: N images, I a layer's input width, O its output width, C classes; pixels (N, 784) uint8.
The NumPy reference and the JAX program below are the same integer formulas, equal bit for bit.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp.data.core import MEAN, STD
from fmlp.nn import mlp, quantizers
from fmlp.nn.layers import Dense

TABLE_SIZE = 1024  # entries of the sigmoid table: pre-activations in [-8, 8) in steps of 1/64
TABLE_STEPS = 64  # table entries per unit of pre-activation: round(255 sigmoid) changes by at most 1 per step
LOGIT_BITS = 16  # logits in steps of 2^-16
PIXELS = 784
INPUT_MAX = 255  # every layer's inputs are uint8: pixels, then 255 sigmoid
INT32 = 2**31


class IntegerLayer(NamedTuple):
    """One layer in integers: codes (I, O) int8, and per output unit bias (O,) int32 in accumulator
    steps, multiplier (O,) int32 in [2^30, 2^31) and shift (O,) int32 in [1, 62]."""

    codes: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray


class IntegerNetwork(NamedTuple):
    """A network that reads uint8 pixels (N, 784) and computes int32 logits (N, C) in integers only."""

    layers: tuple[IntegerLayer, ...]
    table: np.ndarray  # (TABLE_SIZE,) uint8: round(255 sigmoid((k - TABLE_SIZE / 2) / TABLE_STEPS))
    weight_bits: int


def sigmoid_table() -> np.ndarray:
    """(TABLE_SIZE,) uint8: entry k is round(255 sigmoid((k - TABLE_SIZE/2) / TABLE_STEPS)); below the
    first entry the output is 0 and above the last 255, the table's end values, within 1/255."""
    z = (np.arange(TABLE_SIZE) - TABLE_SIZE // 2) / TABLE_STEPS
    return np.round(255.0 / (1.0 + np.exp(-z))).astype(np.uint8)


def fixed_point(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive reals (O,) -> (multiplier (O,) int32 in [2^30, 2^31), shift (O,) int32) with
    real ≈ multiplier * 2^-shift, to 31 significant bits."""
    fraction, exponent = np.frexp(np.asarray(real, np.float64))  # real = fraction * 2^exponent, fraction in [0.5, 1)
    multiplier = np.round(fraction * INT32).astype(np.int64)
    shift = 31 - exponent.astype(np.int64)
    carry = multiplier == INT32  # the fraction rounded up to 1
    multiplier, shift = np.where(carry, INT32 // 2, multiplier), np.where(carry, shift - 1, shift)
    if np.any(shift < 1) or np.any(shift > 62):
        raise ValueError(f"requantization factors {real.min():.3g}..{real.max():.3g} lie outside what a 31-bit "
                         "multiplier and a shift of 1 to 62 express")  # fmt: skip
    return multiplier.astype(np.int32), shift.astype(np.int32)


def fold_normalization(layer: Dense) -> Dense:
    """The first layer on raw pixels p in 0..255: x = (p / 255 - MEAN) / STD, so x @ w + b equals
    p @ (w / (255 STD)) + (b - MEAN / STD * sum_i w_i). w (784, O), b (O,) in float64."""
    w, b = np.asarray(layer.w, np.float64), np.asarray(layer.b, np.float64)
    return Dense(w / (255.0 * STD), b - MEAN / STD * w.sum(axis=0))


def integer_layer(codes: np.ndarray, weight_scales: np.ndarray, bias: np.ndarray, input_scale: float,
                  output_scale: float) -> IntegerLayer:  # fmt: skip
    """One layer from its codes (I, O), the real weight each code step stands for (O,), the real bias
    (O,), and the scales of its input and output codes; refuses a layer whose accumulator or
    output could leave int32 for inputs up to INPUT_MAX."""
    accumulator_scale = input_scale * weight_scales
    if not np.all(accumulator_scale > 0):  # an output unit whose weights are all zero has no scale to divide by
        units = np.flatnonzero(~(accumulator_scale > 0))
        raise ValueError(f"output unit(s) {', '.join(map(str, units[:5]))} of a layer have only zero weights, so no "
                         "weight scale; integer inference needs every unit to have a nonzero weight")  # fmt: skip
    bias_codes = np.round(bias / accumulator_scale)
    bound = INPUT_MAX * np.abs(codes.astype(np.int64)).sum(axis=0) + np.abs(bias_codes)
    multiplier, shift = fixed_point(accumulator_scale / output_scale)
    if np.any(bound >= INT32) or np.any(bound * accumulator_scale / output_scale >= INT32):
        raise ValueError("a layer's accumulator or output could leave the int32 range")
    return IntegerLayer(codes.astype(np.int8), bias_codes.astype(np.int32), multiplier, shift)


def check_supported(architecture: mlp.Architecture) -> None:
    """ValueError unless the network is one integer inference runs: 784 pixel inputs, sigmoid hidden
    layers (whose outputs in [0, 1] are exactly uint8 at scale 1/255)."""
    if architecture.activation != "sigmoid" or architecture.sizes[0] != PIXELS:
        raise ValueError(f"integer inference takes {PIXELS}-input sigmoid networks, not {architecture.sizes[0]} "
                         f"inputs with {architecture.activation}")  # fmt: skip


def from_float(architecture: mlp.Architecture, params: mlp.Params, bits: int) -> IntegerNetwork:
    """The integer network of a trained one: weights on `bits` bits per output unit (`quantizers`), the
    normalisation folded into the first layer, biases in accumulator steps. The rounding is the one
    quantization-aware training ran through, so a network fine-tuned at these bits keeps its codes."""
    check_supported(architecture)
    for index, layer in enumerate(params):
        if not (np.isfinite(layer.w).all() and np.isfinite(layer.b).all()):
            raise ValueError(f"layer {index} holds non-finite weights or biases")
    layers = []
    for index, layer in enumerate(params):
        codes, scales = (np.asarray(array) for array in quantizers.quantize(layer.w, bits))
        scales = scales.astype(np.float64)
        real = Dense(codes * scales, np.asarray(layer.b, np.float64))
        if index == 0:  # the codes now multiply pixels: each code step is worth scale / (255 STD)
            real, scales = fold_normalization(real), scales / (255.0 * STD)
        is_last = index == len(params) - 1
        layers.append(
            integer_layer(
                codes,
                scales,
                real.b,
                input_scale=1.0 if index == 0 else 1.0 / 255.0,
                output_scale=2.0**-LOGIT_BITS if is_last else 1.0 / TABLE_STEPS,
            )
        )
    return IntegerNetwork(tuple(layers), sigmoid_table(), bits)


def reference_logits(network: IntegerNetwork, pixels: np.ndarray) -> np.ndarray:
    """The integer formulas in plain NumPy. pixels (N, 784) uint8 -> logits (N, C) int32.

    The accumulators are int32 (`integer_layer` proved they fit), the requantization int64.
    """
    codes = pixels.astype(np.int32)
    for index, layer in enumerate(network.layers):
        accumulator = (codes @ layer.codes.astype(np.int32) + layer.bias).astype(np.int64)
        shift = layer.shift.astype(np.int64)
        y = (accumulator * layer.multiplier.astype(np.int64) + (np.int64(1) << (shift - 1))) >> shift
        if index == len(network.layers) - 1:
            return y.astype(np.int32)
        codes = network.table[np.clip(y + TABLE_SIZE // 2, 0, TABLE_SIZE - 1)].astype(np.int32)
    raise AssertionError("a network has at least one layer")


class DeviceLayer(NamedTuple):
    """An IntegerLayer as the JAX program takes it: codes int8, bias int32 corrected for inputs stored
    as int8 (a - 128), multiplier and shift int64."""

    codes: jax.Array
    bias: jax.Array
    multiplier: jax.Array
    shift: jax.Array


def to_device(network: IntegerNetwork) -> tuple[tuple[DeviceLayer, ...], jax.Array]:
    """The network's arrays for `logits`: XLA multiplies int8 by int8 into int32 directly, so uint8
    inputs a enter as a - 128, and 128 * sum_i c_ij joins the bias (sum_i a_i c_ij, exactly)."""
    with jax.enable_x64(True):
        layers = tuple(
            DeviceLayer(
                jnp.asarray(layer.codes),
                jnp.asarray(layer.bias + 128 * layer.codes.astype(np.int32).sum(axis=0), jnp.int32),
                jnp.asarray(layer.multiplier, jnp.int64),
                jnp.asarray(layer.shift, jnp.int64),
            )
            for layer in network.layers
        )
        return layers, jnp.asarray(network.table)


@jax.jit
def _logits(layers: tuple[DeviceLayer, ...], table: jax.Array, pixels: jax.Array) -> jax.Array:
    """`reference_logits` in JAX, traced with 64-bit integers on. pixels (N, 784) uint8 -> (N, C) int32."""
    codes = pixels
    for index, layer in enumerate(layers):
        centred = (codes.astype(jnp.int16) - 128).astype(jnp.int8)
        accumulator = jax.lax.dot(centred, layer.codes, preferred_element_type=jnp.int32) + layer.bias
        rounding = jnp.left_shift(jnp.int64(1), layer.shift - 1)
        y = jnp.right_shift(accumulator.astype(jnp.int64) * layer.multiplier + rounding, layer.shift)
        if index == len(layers) - 1:
            return y.astype(jnp.int32)
        codes = table[jnp.clip(y + TABLE_SIZE // 2, 0, TABLE_SIZE - 1)]
    raise AssertionError("a network has at least one layer")


def logits(device_network: tuple[tuple[DeviceLayer, ...], jax.Array], pixels: jax.Array) -> jax.Array:
    """The integer network (from `to_device`) on pixels (N, 784) uint8 -> logits (N, C) int32, compiled."""
    with jax.enable_x64(True):
        return _logits(*device_network, jnp.asarray(pixels))


def predict(device_network: tuple[tuple[DeviceLayer, ...], jax.Array], pixels: jax.Array) -> np.ndarray:
    """Classes (N,) int: the argmax of the int32 logits, the first on a tie (as the C code takes it)."""
    return np.asarray(jnp.argmax(logits(device_network, pixels), axis=-1))
