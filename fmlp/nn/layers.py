"""Pure layer primitives, each a forward function and its hand-derived backward.

Shapes: B is the batch size, I a layer's input width, O its output width, C the number of classes.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Dense(NamedTuple):
    """Parameters of an affine layer y = x @ w + b: w (I, O), b (O,)."""

    w: jax.Array
    b: jax.Array


def dense_forward(params: Dense, x: jax.Array) -> jax.Array:
    """y = x @ w + b. x: (B, I) -> y: (B, O)."""
    return x @ params.w + params.b


def dense_param_grads(x: jax.Array, dy: jax.Array) -> Dense:
    """Gradients of the parameters from the layer input x (B, I) and dL/dy (B, O).

    dL/dw = x^T dy (I, O); dL/db = sum over the batch of dy (O,).
    """
    return Dense(w=x.T @ dy, b=jnp.sum(dy, axis=0))


def dense_input_grad(params: Dense, dy: jax.Array) -> jax.Array:
    """dL/dx = dy @ w^T. dy: (B, O) -> (B, I)."""
    return dy @ params.w.T


def sigmoid_forward(z: jax.Array) -> jax.Array:
    """s = 1 / (1 + exp(-z)), elementwise; any shape."""
    # lax.logistic is the numerically safe form of the same formula (no overflow for large -z).
    return jax.lax.logistic(z)


def sigmoid_backward(s: jax.Array, ds: jax.Array) -> jax.Array:
    """dL/dz = dL/ds * s * (1 - s), from the saved output s; any shape, s and ds alike."""
    return ds * s * (1.0 - s)


def tanh_forward(z: jax.Array) -> jax.Array:
    """t = tanh(z), elementwise; any shape."""
    return jnp.tanh(z)


def tanh_backward(t: jax.Array, dt: jax.Array) -> jax.Array:
    """dL/dz = dL/dt * (1 - t^2), from the saved output t, since tanh'(z) = 1 - tanh(z)^2; any shape."""
    return dt * (1.0 - t * t)


def relu_forward(z: jax.Array) -> jax.Array:
    """a = max(z, 0), elementwise; any shape."""
    return jnp.maximum(z, 0.0)


def relu_backward(a: jax.Array, da: jax.Array) -> jax.Array:
    """dL/dz = dL/da where a > 0, else 0, from the saved output a (a > 0 exactly where z > 0; at z = 0 the
    derivative is taken as 0); any shape."""
    return jnp.where(a > 0, da, 0.0)


# The hidden activations by name (fmlp.description.ACTIVATIONS): (forward, backward from the saved output).
ACTIVATIONS = {
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
}


def shifted_exponentials(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """z - max(z), exp(z - max(z)) and their row sums. logits: (B, C) -> (B, C), (B, C), (B,).

    Shifting by the row maximum keeps every exponential in (0, 1] (no overflow), and the sum is at
    least 1 (its log never sees 0), whatever the magnitude of the logits.
    """
    shifted = logits - jnp.max(logits, axis=-1, keepdims=True)
    exponentials = jnp.exp(shifted)
    return shifted, exponentials, jnp.sum(exponentials, axis=-1)


def softmax(logits: jax.Array) -> jax.Array:
    """p_j = exp(z_j) / sum_k exp(z_k), row by row.

    logits: (B, C) -> probabilities (B, C), each row summing to 1.
    """
    _, exponentials, total = shifted_exponentials(logits)
    return exponentials / total[:, None]


def softmax_backward(probs: jax.Array, dprobs: jax.Array) -> jax.Array:
    """dL/dz = p * (g - <g, p>) row by row, with g = dL/dp: the Jacobian diag(p) - p p^T
    applied to g without forming it. probs, dprobs: (B, C) -> (B, C).

    Training never calls it: composed with the cross-entropy's dL/dp = -onehot(y) / (B p),
    it is the fused (p - onehot(y)) / B of fmlp.nn.losses (tests/test_layers.py checks that
    in float64).
    """
    return probs * (dprobs - jnp.sum(dprobs * probs, axis=-1, keepdims=True))
