"""The multilayer perceptron: dense layers with an activation between them, a softmax output and a loss.

A network is described by its `fmlp.description.Architecture` (layer widths, hidden activation, weight
width, loss), a hashable static value that every function building, running or differentiating a
network takes first.
Params are a tuple of `Dense(w, b)`, one per layer. With sizes (784, 512, 128, 10): w shapes (784, 512),
(512, 128), (128, 10); b shapes (512,), (128,), (10,).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fmlp.description import Architecture
from fmlp.nn import quantizers
from fmlp.nn.layers import ACTIVATIONS, Dense, dense_forward, dense_input_grad, dense_param_grads, softmax
from fmlp.nn.losses import LOSSES

Params = tuple[Dense, ...]
# activations[i] is the input of layer i: (images, h1, ..., h_{L-1}), followed by the output probabilities.
Activations = tuple[jax.Array, ...]

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


def _forward_logits(
    architecture: Architecture, run: Params, images: jax.Array
) -> tuple[jax.Array, Activations]:
    """`forward_logits` on the parameters as they run (`weights_run`)."""
    activate, _ = ACTIVATIONS[architecture.activation]
    layer_inputs = [images]
    for layer in run[:-1]:
        layer_inputs.append(activate(dense_forward(layer, layer_inputs[-1])))
    return dense_forward(run[-1], layer_inputs[-1]), tuple(layer_inputs)


def forward(architecture: Architecture, params: Params, images: jax.Array) -> tuple[jax.Array, Activations]:
    """images: (B, sizes[0]) -> probabilities (B, sizes[-1]) and the activations `backward` needs (with
    weight_bits, the pass runs on `weights_run(params)`, and `backward` takes those)."""
    logits, layer_inputs = forward_logits(architecture, params, images)
    probs = softmax(logits)
    return probs, layer_inputs + (probs,)


def backward(
    architecture: Architecture,
    params: Params,
    activations: Activations,
    labels: jax.Array,
) -> Params:
    """Gradients of the loss with respect to params, by the chain rule from the top layer down.

    params: the parameters the forward pass ran on; activations: its layer inputs and
    probabilities, as returned by `forward`; labels: (B,) int. Returns the same pytree as
    params. The gradient with respect to the images is never formed: training needs none.
    """
    _, step_back = ACTIVATIONS[architecture.activation]
    *layer_inputs, probs = activations
    delta = LOSSES[architecture.loss].backward(probs, labels)  # the last layer's dL/dz (B, C)
    grads = []
    for layer_index in reversed(range(len(params))):
        layer_input = layer_inputs[layer_index]
        grads.append(dense_param_grads(layer_input, delta))
        if layer_index > 0:
            # layer_input is the activation output of the layer below: step delta through it.
            delta = step_back(layer_input, dense_input_grad(params[layer_index], delta))
    return tuple(reversed(grads))


def loss_and_grads(
    architecture: Architecture, params: Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, Params]:
    """The loss over the batch (its mean) and its gradients. images: (B, sizes[0]); labels: (B,) int."""
    loss, grads, _ = loss_grads_and_probs(architecture, params, images, labels)
    return loss, grads


def loss_grads_and_probs(
    architecture: Architecture, params: Params, images: jax.Array, labels: jax.Array
) -> tuple[jax.Array, Params, jax.Array]:
    """`loss_and_grads` that also returns the probabilities (B, C) of the same forward pass.

    With weight_bits both passes run on the rounded weights (`weights_run`, rounded once), and the
    gradients with respect to them are handed to params unchanged: the straight-through estimator.
    """
    run = weights_run(architecture, params)
    logits, layer_inputs = _forward_logits(architecture, run, images)
    loss, probs = LOSSES[architecture.loss].forward(logits, labels)
    return loss, backward(architecture, run, layer_inputs + (probs,), labels), probs
