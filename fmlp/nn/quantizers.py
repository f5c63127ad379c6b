"""Weights on fewer bits: symmetric grids with one scale per output unit, the scale chosen for the
error, and the straight-through form that quantization-aware training runs through.

Shapes: w (I, O), one scale per output unit (column), codes (I, O) integers. A b-bit code lies in
[-q, q] with q = 2^(b-1) - 1 for b >= 2 (b = 2 is ternary: -1, 0, 1); a 1-bit code is the sign, ±1.
The weight a code stands for is scale * code.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

SCALE_STEPS = 12  # a scale is searched among 12 fractions of max |w| / q, then 13 around the best, 1/144 apart


class Quantized(NamedTuple):
    """A weight matrix on a grid: codes (I, O) int8 and scales (O,) float32."""

    codes: jax.Array
    scales: jax.Array


def largest_code(bits: int) -> int:
    """q, the largest code of a b-bit symmetric grid: 2^(b-1) - 1, and 1 for the sign (b = 1)."""
    return max(2 ** (bits - 1) - 1, 1)


def codes_at(w: jax.Array, scales: jax.Array, bits: int) -> jax.Array:
    """Nearest codes of w (I, O) at per-unit scales (O,): round(w / s) clipped to [-q, q]; for b = 1,
    the sign (0 counts as +1)."""
    if bits == 1:
        return jnp.where(w >= 0, 1.0, -1.0).astype(w.dtype)
    q = largest_code(bits)
    return jnp.clip(jnp.round(w / scales), -q, q)


def squared_error(w: jax.Array, scales: jax.Array, bits: int) -> jax.Array:
    """Per unit, sum over i of (w_i - s * code_i)^2. w (I, O), scales (O,) -> (O,)."""
    return jnp.sum((w - scales * codes_at(w, scales, bits)) ** 2, axis=0)


def _least_error(w: jax.Array, top: jax.Array, fractions: jax.Array, bits: int) -> jax.Array:
    """Per unit, the fraction of top (O,) whose scale has the least squared error. fractions (K, O) -> (O,)."""
    errors = jax.lax.map(lambda fraction: squared_error(w, top * fraction, bits), fractions)  # (K, O)
    return jnp.take_along_axis(fractions, jnp.argmin(errors, axis=0)[None], axis=0)[0]


def best_scales(w: jax.Array, bits: int) -> jax.Array:
    """Per unit, the scale of least squared error. w (I, O) -> scales (O,), positive.

    At 1 bit it is mean |w| (the least-squares scale of the signs). Otherwise a scale s = f max |w| / q
    with f in (0, 1], searched coarse (f = 1/12, ..., 1) then fine (the best ± 6/144): clipping the
    largest weights buys a finer grid for the rest, which matters most at 2 and 4 bits, where the
    maximum rule wastes most of the grid.
    """
    magnitude = jnp.abs(w)
    if bits == 1:
        return jnp.maximum(jnp.mean(magnitude, axis=0), jnp.finfo(w.dtype).tiny)
    top = jnp.maximum(jnp.max(magnitude, axis=0), jnp.finfo(w.dtype).tiny) / largest_code(bits)
    steps = jnp.arange(1, SCALE_STEPS + 1, dtype=w.dtype)[:, None] / SCALE_STEPS  # (K, 1)
    coarse = _least_error(w, top, jnp.broadcast_to(steps, (SCALE_STEPS, w.shape[1])), bits)
    offsets = jnp.arange(-(SCALE_STEPS // 2), SCALE_STEPS // 2 + 1, dtype=w.dtype)[:, None] / SCALE_STEPS**2
    fine = jnp.clip(coarse + offsets, 1.0 / SCALE_STEPS**2, 1.0)  # (K + 1, O)
    return top * _least_error(w, top, fine, bits)


def quantize(w: jax.Array, bits: int) -> Quantized:
    """w (I, O) -> its b-bit codes (I, O) int8 and per-unit scales (O,)."""
    scales = best_scales(w, bits)
    return Quantized(codes_at(w, scales, bits).astype(jnp.int8), scales)


def straight_through(w: jax.Array, bits: int) -> jax.Array:
    """The weights a quantization-aware forward pass runs on: scale * code, (I, O), same dtype as w.

    The backward pass treats the rounding as the identity (the straight-through estimator): the
    gradient with respect to these weights is applied to the float32 shadow weights w unchanged.
    """
    scales = best_scales(w, bits)
    return scales * codes_at(w, scales, bits)
