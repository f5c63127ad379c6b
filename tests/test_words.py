"""A design in words: every field that defines a result shows in `describe` when it is not its default,
and the words of the initialisation are what fmlp.nn.mlp.init draws."""

import jax
import numpy as np
import pytest

from fmlp import description, words
from fmlp.description import Experiment, defaults, updated
from fmlp.nn import mlp

# Per DEFINING field: a design with another value, and the words that must then show.
OTHER = {
    "network.sizes": ({"network": {"sizes": (784, 200, 50, 10)}}, "784 → 200 → 50 → 10"),
    "network.activation": ({"network": {"activation": "relu"}}, "relu hidden layers"),
    "network.weight_bits": ({"network": {"weight_bits": 4}}, "rounded to 4 bits"),
    "network.loss": ({}, "mean cross-entropy"),  # the only loss so far: its words show
    "training.epochs": ({"training": {"epochs": 3}}, "3 epochs"),
    "training.batch_size": ({"training": {"batch_size": 32}}, "batch size 32"),
    "training.optimizer": ({"training": {"optimizer": "adam"}}, "minibatch Adam (optax's update"),
    "training.momentum": ({"training": {"optimizer": "momentum", "momentum": 0.8}}, "momentum 0.8"),
    "training.rate_decay": ({"training": {"rate_decay": 0.7}}, "multiplied by 0.7 after each epoch"),
    "training.early_stop": ({"training": {"early_stop": 4}}, "stopped after 4 epochs without a better validation"),
    "data.train_limit": ({"data": {"train_limit": 5000}}, "the first 5,000 training images"),
    "data.validation": ({"data": {"validation": 1000}}, "the last 1,000 of them held out for validation"),
    "design.script": ({"design": {"script": "lr_sweep"}}, "A learning-rate sweep"),
    "design.learning_rates": ({"design": {"learning_rates": (0.5, 0.02)}}, "learning rates 0.5 and 0.02"),
    "design.seed": ({"design": {"seed": 7}}, "seed 7"),
    "design.seeds": ({"design": {"script": "lr_sweep", "seeds": 3}}, "seeds 1 to 3"),
    "design.networks": ({"design": {"script": "finetune", "networks": ("a.npz", "b.npz")}}, "2 saved networks"),
}


def test_every_defining_field_has_words_and_another_value_shows():
    assert set(OTHER) == set(description.DEFINING)
    default = words.describe(defaults("baseline"))
    for path, (parts, shown) in OTHER.items():
        text = words.describe(updated(defaults("baseline"), **parts))
        assert shown in text, (path, text)
        if parts:
            assert text != default, path


def test_the_reference_design_in_words():
    assert words.describe(Experiment()) == (
        "One run of the network 784 → 512 → 128 → 10, sigmoid hidden layers, softmax output (weights and "
        "biases N(0, 1)·√(1/fan_in)), trained on the mean cross-entropy by minibatch SGD (its update written "
        "out by hand), batch size 64, 30 epochs; learning rate 0.1, seed 1; real MNIST: all 60,000 training "
        "images, and the 10,000 test images."
    )


@pytest.mark.parametrize("activation", description.ACTIVATIONS)
def test_the_initialisation_words_are_what_init_draws(activation):
    fan_in, fan_out = 784, 512
    (layer, _) = mlp.init(jax.random.key(0), mlp.Architecture((fan_in, fan_out, 10), activation))
    w, b = np.asarray(layer.w), np.asarray(layer.b)
    rule, variance, biases_drawn = {
        "sigmoid": ("N(0, 1)·√(1/fan_in)", 1 / fan_in, True),
        "tanh": ("N(0, 1)·√(2/(fan_in + fan_out))", 2 / (fan_in + fan_out), False),
        "relu": ("N(0, 1)·√(2/fan_in)", 2 / fan_in, False),
    }[activation]
    said = words.INITIALISATION[activation]
    assert rule in said and abs(w.std() / np.sqrt(variance) - 1) < 0.01
    if biases_drawn:
        assert said.startswith("weights and biases") and abs(b.std() / np.sqrt(variance) - 1) < 0.1
    else:
        assert said.endswith("biases 0") and not b.any()
