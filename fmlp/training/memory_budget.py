"""How much memory a lane program needs, estimated before it starts, against what the device has.

Per lane the program keeps its parameters, its optimizer state (optax's slots: one for momentum and
RMSProp, two for Adam) and with early stopping its best parameters, all float32. Evaluation holds the
pre-activations and activations of one evaluation chunk for each lane of one evaluation group, so its
share is bounded by EVALUATION_BUDGET whatever the lane count. The data, the compiled programs and one
group's training step are shared by all lanes and are left to the margin.
"""

import jax

from fmlp.description import Experiment
from fmlp.training.optimizers import OPTIMIZERS

BYTES = 4  # float32
USABLE_SHARE = 0.8  # of the memory available: the rest is for data, programs, the runtime
# Activations evaluation may hold at once: about 50 reference lanes, so sweeps of up to 50 lanes are
# evaluated as one vmap (their committed numbers), and larger ones in groups with flat memory.
EVALUATION_BUDGET = 512 * 2**20


def parameter_count(sizes: tuple[int, ...]) -> int:
    """Weights and biases of the layers: sum over layers of (fan_in + 1) * fan_out."""
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))


def bytes_per_lane(experiment: Experiment) -> int:
    """The state of one lane (parameters, optimizer slots, best parameters), in bytes."""
    copies = 1 + OPTIMIZERS[experiment.training.optimizer].slots + (experiment.training.early_stop is not None)
    return BYTES * copies * parameter_count(experiment.network.sizes)


def evaluation_bytes_per_lane(experiment: Experiment) -> int:
    """One lane's activations while it is evaluated: z and its activation of every layer, for one chunk."""
    return BYTES * 2 * experiment.lanes.eval_chunk * sum(experiment.network.sizes[1:])


def evaluation_group(experiment: Experiment) -> int:
    """Lanes evaluated together (one vmap), the groups one after another: as many as EVALUATION_BUDGET holds."""
    return max(1, EVALUATION_BUDGET // evaluation_bytes_per_lane(experiment))


def bytes_needed(experiment: Experiment, num_lanes: int) -> int:
    """The lanes' state and one evaluation group's activations, in bytes (over all devices)."""
    evaluated = min(num_lanes, evaluation_group(experiment)) * evaluation_bytes_per_lane(experiment)
    return num_lanes * bytes_per_lane(experiment) + evaluated


def device_stats() -> dict:
    """The default device's memory statistics (bytes_limit, bytes_in_use, peak_bytes_in_use, ...);
    empty where the runtime keeps none, as on the CPU."""
    try:
        return jax.local_devices()[0].memory_stats() or {}
    except jax.errors.JaxRuntimeError:  # some runtimes keep no statistics
        return {}


def peak_device_bytes() -> int | None:
    """The most memory the default device has held so far in this process; None where the runtime
    does not count it (on the CPU the process's peak RSS says it instead)."""
    peak = device_stats().get("peak_bytes_in_use")
    return None if peak is None else int(peak)


def available_bytes() -> int | None:
    """What the default device can still hold: the accelerator's limit, or on a CPU the host's available
    memory (MemAvailable); None where neither is known."""
    stats = device_stats()
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as file:
            fields = dict(line.split(":", 1) for line in file)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: no estimate, no refusal
        return None


def lanes_that_fit(experiment: Experiment, available: int) -> int:
    """How many lanes fit in USABLE_SHARE of `available` bytes (over all devices the lanes are split over)."""
    evaluated = evaluation_group(experiment) * evaluation_bytes_per_lane(experiment)
    room = USABLE_SHARE * available * experiment.lanes.devices - evaluated
    return max(0, int(room // bytes_per_lane(experiment)))
