"""Each layer's hand-written backward against jax.vjp of its forward, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fmlp.nn import layers, losses

SHAPES = [(1, 3, 2), (7, 5, 4), (64, 20, 10)]  # (batch, inputs, outputs)


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-300))


def random_dense(key, fan_in, fan_out):
    w_key, b_key = jax.random.split(key)
    return layers.Dense(
        jax.random.normal(w_key, (fan_in, fan_out), jnp.float64),
        jax.random.normal(b_key, (fan_out,), jnp.float64),
    )


@pytest.mark.parametrize("batch,fan_in,fan_out", SHAPES)
def test_dense_backward_matches_vjp(float64, batch, fan_in, fan_out):
    keys = jax.random.split(jax.random.key(0), 3)
    params = random_dense(keys[0], fan_in, fan_out)
    x = jax.random.normal(keys[1], (batch, fan_in), jnp.float64)
    dy = jax.random.normal(keys[2], (batch, fan_out), jnp.float64)

    _, vjp = jax.vjp(layers.dense_forward, params, x)
    expected_params, expected_x = vjp(dy)

    grads = layers.dense_param_grads(x, dy)
    assert relative_error(grads.w, expected_params.w) < 1e-10
    assert relative_error(grads.b, expected_params.b) < 1e-10
    assert relative_error(layers.dense_input_grad(params, dy), expected_x) < 1e-10


@pytest.mark.parametrize("activation", sorted(layers.ACTIVATIONS))
@pytest.mark.parametrize("shape", [(1, 3), (7, 5), (64, 128)])
def test_activation_backward_from_the_output_matches_vjp(float64, shape, activation):
    forward, backward = layers.ACTIVATIONS[activation]
    z_key, ds_key = jax.random.split(jax.random.key(1))
    z = 3.0 * jax.random.normal(z_key, shape, jnp.float64)
    ds = jax.random.normal(ds_key, shape, jnp.float64)
    s, vjp = jax.vjp(forward, z)
    (expected,) = vjp(ds)
    assert relative_error(backward(s, ds), expected) < 1e-10


def test_sigmoid_forward_is_the_logistic_function(float64):
    z = jnp.linspace(-30.0, 30.0, 101, dtype=jnp.float64)
    np.testing.assert_allclose(layers.sigmoid_forward(z), 1.0 / (1.0 + np.exp(-np.asarray(z))), rtol=1e-14)


@pytest.mark.parametrize("batch,num_classes", [(1, 2), (7, 10), (64, 10)])
def test_fused_softmax_cross_entropy_backward_matches_vjp(float64, batch, num_classes):
    logits_key, labels_key = jax.random.split(jax.random.key(2))
    logits = 4.0 * jax.random.normal(logits_key, (batch, num_classes), jnp.float64)
    labels = jax.random.randint(labels_key, (batch,), 0, num_classes)

    _, vjp = jax.vjp(lambda z: losses.cross_entropy(z, labels), logits)
    (expected,) = vjp(jnp.ones((), jnp.float64))
    actual = losses.softmax_cross_entropy_backward(layers.softmax(logits), labels)
    assert relative_error(actual, expected) < 1e-10


def test_cross_entropy_matches_the_definition(float64):
    logits = jnp.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], jnp.float64)
    labels = jnp.array([2, 1])
    probs = np.exp(np.asarray(logits)) / np.exp(np.asarray(logits)).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(probs[[0, 1], [2, 1]]))
    np.testing.assert_allclose(losses.cross_entropy(logits, labels), expected, rtol=1e-14)
    np.testing.assert_allclose(layers.softmax(logits), probs, rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_softmax_and_cross_entropy_stay_finite_for_huge_logits(float64, dtype):
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    labels = jnp.array([1, 0, 2])
    probs = layers.softmax(logits)
    loss = losses.cross_entropy(logits, labels)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, rtol=1e-6)
    # Row losses are 2e4, log 3 and 2e4 + log 2: the exact mean is finite and large, not inf or nan.
    np.testing.assert_allclose(loss, (2e4 + np.log(3.0) + 2e4 + np.log(2.0)) / 3, rtol=1e-6)
    grad = losses.softmax_cross_entropy_backward(probs, labels)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("batch, classes", [(1, 2), (7, 10), (64, 10)])
def test_the_softmax_backward_after_the_cross_entropys_gradient_is_the_fused_gradient(batch, classes, float64):
    """dL/dp of the mean cross-entropy is -onehot(y) / (B p); through the softmax's own backward it is the
    fused (p - onehot(y)) / B that training uses, to float64 rounding."""
    logits = jax.random.normal(jax.random.key(batch), (batch, classes), jnp.float64) * 3
    labels = jax.random.randint(jax.random.key(classes), (batch,), 0, classes)
    probs = layers.softmax(logits)
    dprobs = -jax.nn.one_hot(labels, classes, dtype=jnp.float64) / (batch * probs)
    composed = layers.softmax_backward(probs, dprobs)
    np.testing.assert_allclose(composed, losses.softmax_cross_entropy_backward(probs, labels), rtol=1e-12, atol=1e-16)
    _, vjp = jax.vjp(layers.softmax, logits)
    np.testing.assert_allclose(composed, vjp(dprobs)[0], rtol=1e-12, atol=1e-16)
