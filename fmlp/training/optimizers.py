"""The optimizers by name: plain SGD is our own written-out update (fmlp.nn.update.sgd); the others are
optax's transformations fed our hand-derived gradients. A new optimizer is an entry of OPTIMIZERS and
its name, with its title, in fmlp.description.OPTIMIZERS."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import optax

from fmlp.description import Training
from fmlp.nn.mlp import Params


class Optimizer(NamedTuple):
    """One optimizer: the copies of the parameters its state holds (for the memory estimate), and its
    optax form at a learning rate (for "sgd" only a reference: training runs our own)."""

    slots: int
    transformation: Callable[[jax.Array | float, Training], optax.GradientTransformation]


OPTIMIZERS = {
    "sgd": Optimizer(0, lambda rate, training: optax.sgd(rate)),
    "momentum": Optimizer(1, lambda rate, training: optax.sgd(rate, momentum=training.momentum)),
    "nesterov": Optimizer(1, lambda rate, training: optax.sgd(rate, momentum=training.momentum, nesterov=True)),
    "adam": Optimizer(2, lambda rate, training: optax.adam(rate)),
    "rmsprop": Optimizer(1, lambda rate, training: optax.rmsprop(rate)),
}


def transformation(training: Training, learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """The optax form of training.optimizer at a learning rate, which may be traced (one per lane)."""
    return OPTIMIZERS[training.optimizer].transformation(learning_rate, training)


def init_optimizer(training: Training, params: Params) -> optax.OptState | None:
    """The optimizer's state for params (momentum, Adam's moments, ...); None for plain SGD, which has
    none. No state depends on the learning rate, so any rate builds it."""
    return None if training.optimizer == "sgd" else transformation(training, 0.0).init(params)
