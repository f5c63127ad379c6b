"""Lanes over every device, on one machine or several: the 1-D lane mesh, the shardings, the start of
JAX's distributed runtime, and bringing lane results back to every process.

The lane axis (the leading axis of every leaf of a lane state) is split over all devices that
`jax.devices()` returns, in that order; the data is replicated. With several processes every process
runs the same program on the same lane layout, each holding its devices' share of the lanes.
"""

import errno
import os
import socket
import time
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LANE_AXIS = "lanes"
LANES = PartitionSpec(LANE_AXIS)  # split the leading (lane) axis over the devices
REPLICATED = PartitionSpec()
HEARTBEAT_SECONDS = 20  # default: a process that stops answering for this long ends the others' runs


def wait_for_coordinator(address: str, timeout: float) -> None:
    """Returns once HOST:PORT accepts a TCP connection; TimeoutError after `timeout` seconds.

    JAX's own client aborts the whole process when the coordinator does not answer in time, so the
    other processes look for it first, to fail with a message instead.
    """
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(1.0, timeout)):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no answer from {address} ({error.strerror or error})") from error
            time.sleep(0.2)


def check_free(address: str) -> None:
    """Raises ValueError naming HOST:PORT when the coordinator could not listen there (in use, or not an
    address of this machine): JAX's runtime would abort with a C++ trace instead."""
    host, _, port = address.rpartition(":")
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host.strip("[]"), int(port)))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else (error.strerror or str(error))
            raise ValueError(f"cannot listen on {address}: {reason}") from None


def start(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    timeout: float,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> None:
    """Joins the distributed runtime (before any other JAX call). coordinator "HOST:PORT" is process 0's
    address, where its coordinator listens and nowhere else; None for all three reads
    JAX_COORDINATOR_ADDRESS and our JAX_NUM_PROCESSES, JAX_PROCESS_ID. A process other than 0 gives up
    after `timeout` seconds if the coordinator does not answer; process 0 refuses an address it cannot
    listen on."""
    address = coordinator or os.environ["JAX_COORDINATOR_ADDRESS"]
    process_id = process_id if process_id is not None else int(os.environ["JAX_PROCESS_ID"])
    started = time.monotonic()
    if process_id != 0:
        wait_for_coordinator(address, timeout)
    else:
        check_free(address)
    # Interrupts are ours (fmlp.run.interrupts keeps the finished epochs); JAX's preemption service would
    # only poll the coordinator, and log a warning past the supervisor's filter when it goes away.
    jax.config.update("jax_enable_preemption_service", False)
    jax.distributed.initialize(
        address,
        num_processes or int(os.environ["JAX_NUM_PROCESSES"]),
        process_id,
        initialization_timeout=max(1, round(timeout - (time.monotonic() - started))),
        heartbeat_timeout_seconds=heartbeat,
        # Only where it was asked to listen: the service is unauthenticated.
        coordinator_bind_address=address if process_id == 0 else None,
    )


def lane_mesh(num_devices: int) -> Mesh:
    """The first num_devices of `jax.devices()` as a 1-D mesh over the lane axis."""
    return Mesh(np.array(jax.devices()[:num_devices]), (LANE_AXIS,))


def padded_lanes(num_lanes: int, num_devices: int) -> int:
    """The lane count rounded up to a multiple of the device count, so every device holds as many."""
    return -(-num_lanes // num_devices) * num_devices


def over_devices(function: Callable, num_devices: int, in_specs: tuple, out_specs) -> Callable:
    """function on each device's share of the lanes (shard_map over the lane mesh); itself on one device.

    The lanes never talk to each other, so there are no collectives whose types need checking: the
    check is off, and plain code (a scan's zero carry, a skipped lane's NaN) needs no annotations.
    """
    if num_devices == 1:
        return function
    mesh = lane_mesh(num_devices)
    return jax.shard_map(function, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def place(tree, num_devices: int, spec: PartitionSpec):
    """Puts a pytree of host-complete arrays (every process holds the whole of each) on the lane mesh."""
    if num_devices == 1:
        return tree
    sharding = NamedSharding(lane_mesh(num_devices), spec)

    def put(leaf):
        if jax.process_count() == 1:
            return jax.device_put(leaf, sharding)
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Every leaf as a whole numpy array on every process (a collective when there are several)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    return jax.tree.map(lambda leaf: np.asarray(multihost_utils.process_allgather(leaf, tiled=True)), tree)


def any_process(flag: bool) -> bool:
    """Whether flag is true on any process (a collective when there are several), so that all
    processes take the same branch."""
    if jax.process_count() == 1:
        return flag
    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def wait_for_all(name: str) -> None:
    """Returns when every process has reached the point of the same name (at once with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def is_writer() -> bool:
    """Only process 0 writes files."""
    return jax.process_index() == 0
