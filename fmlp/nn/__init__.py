"""The network's mathematics: layers, the network, its update, quantized weights."""
