"""Shared test helpers."""

import jax
import pytest

from fmlp import mlp


@pytest.fixture
def float64():
    """Runs a test with 64-bit floats enabled, then restores the previous setting."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def trace_counter(monkeypatch):
    """A list that grows by one each time a compiled function traces the network's loss and grads.

    The compiled epoch functions look up `mlp.loss_grads_and_probs` only while tracing, so a cached
    program adds nothing to the list.
    """
    traces = []
    original = mlp.loss_grads_and_probs

    def counting(*args):
        traces.append(1)
        return original(*args)

    monkeypatch.setattr(mlp, "loss_grads_and_probs", counting)
    return traces
