"""The lists of choices and the shared constants that the flags, the library and the report all name,
each written once. Imports nothing, so that checking the flags stays instant."""

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "rmsprop")  # sgd is our own update; the rest are optax's
ACTIVATIONS = ("sigmoid", "tanh", "relu")  # of the hidden layers; each is a forward/backward pair in fmlp.layers
EVAL_CHUNK = 2000  # images per evaluation product: large enough to be efficient, small enough for flat memory
WEIGHT_BITS = (1, 2, 4, 8)  # of quantized weights: codes pack whole into bytes; 1 bit is the sign, 2 bits ternary
