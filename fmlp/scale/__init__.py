"""Scale: the lanes over devices and processes, and the supervisor of several processes."""
