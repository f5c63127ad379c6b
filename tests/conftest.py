"""Shared test helpers."""

import jax
import pytest


@pytest.fixture
def float64():
    """Runs a test with 64-bit floats enabled, then restores the previous setting."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
