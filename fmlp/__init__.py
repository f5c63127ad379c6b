"""fmlp: a multilayer perceptron for MNIST with a hand-derived backward pass, in pure-functional JAX."""
