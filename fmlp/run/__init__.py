"""Running an experiment: the flags, the run, checkpoints and resume, the metrics JSON, interrupts."""
