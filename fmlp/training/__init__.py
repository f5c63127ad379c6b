"""Training: the step, the epoch, lanes of many networks, evaluation, the memory budget."""
