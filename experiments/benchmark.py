"""Times fmlp against the machine's matmul ceiling, against autodiff, and the lane program (sweeps and
seeds x rates grids) against single epochs; prints one table and writes it to docs/ (Markdown and JSON).

    python experiments/benchmark.py                 # real MNIST from the cache, 5 repetitions
    python experiments/benchmark.py --data synthetic --skip-baseline --out-dir bench-out
"""

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.autodiff: autodiff lives under tests/ only

from fmlp import data  # noqa: E402
from fmlp.data.splits import Splits  # noqa: E402
from fmlp.description import SWEEP_RATES, Experiment, Lanes, Training  # noqa: E402
from fmlp.files import atomic_path  # noqa: E402
from fmlp.nn import mlp, saved  # noqa: E402
from fmlp.run import flags  # noqa: E402
from fmlp.training import lanes, train  # noqa: E402
from tests.autodiff import autodiff_loss_grads_and_logits  # noqa: E402

GRID_SEEDS = 5
CEILING_SIZES = (1024, 2048, 3072)

# Lanes split over 4 forced CPU devices against the same lanes on one of them, in one child process
# (the device count is fixed when JAX starts). The same cores serve both: an overhead, not a speedup.
FORCED_DEVICES = """
import json, sys, time
import jax
from fmlp.data import load_mnist, splits
from fmlp.description import Experiment, Lanes
from fmlp.training import lanes

data = splits.device_splits(load_mnist(), train_limit=int(sys.argv[1]))
seconds = {}
for devices in (1, 4):
    config = Experiment(lanes=Lanes(devices=devices))
    state = lanes.init_lanes(config, [0.1] * 8, list(range(8)))
    state = lanes.place(state, devices, lanes.LANES)
    images, labels = lanes.place((data.train_images, data.train_labels), devices, lanes.REPLICATED)
    epoch = lanes.train_epoch.lower(config, state, images, labels).compile()
    jax.block_until_ready(epoch(state, images, labels))
    times = []
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        jax.block_until_ready(epoch(state, images, labels))
        times.append(time.perf_counter() - start)
    seconds[devices] = min(times)
print(json.dumps(seconds))
"""


def training_flops(sizes, batch_size: int) -> int:
    """Matmul FLOPs of one SGD step: forward, dL/dw of every layer, dL/dx of all but the first."""
    products = [fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:])]
    return 2 * batch_size * (2 * sum(products) + sum(products[1:]))


def eval_flops(sizes, num_examples: int) -> int:
    """Matmul FLOPs of the forward pass over num_examples."""
    return 2 * num_examples * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def round_robin_seconds(functions: dict, repetitions: int) -> dict:
    """Wall times of each zero-argument function, `repetitions` rounds, each round running every
    function once in turn, so that drifts in the machine's load hit every candidate alike. Each is
    run once first (warm-up). Returns {name: [seconds per round]}."""
    for function in functions.values():
        jax.block_until_ready(function())
    times = {name: [] for name in functions}
    for _ in range(repetitions):
        for name, function in functions.items():
            start = time.perf_counter()
            jax.block_until_ready(function())
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerators: list, denominators: list, scale: float = 1.0) -> float:
    """Median over rounds of numerator / (scale * denominator) from the same round."""
    return statistics.median(n / (scale * d) for n, d in zip(numerators, denominators))


def abba_rounds(first, second, rounds: int) -> tuple[list[float], list[float]]:
    """Per round, the mean seconds of zero-argument functions `first` and `second`, each round timing them
    in the order first, second, second, first (ABBA), so that a drift of the machine's speed within a
    round hits both alike; each is run once first (warm-up). -> (first's, second's) seconds per round."""
    for function in (first, second):
        jax.block_until_ready(function())
    firsts, seconds = [], []
    for _ in range(rounds):
        taken = {}
        for name, function in (("a", first), ("b", second), ("b2", second), ("a2", first)):
            start = time.perf_counter()
            jax.block_until_ready(function())
            taken[name] = time.perf_counter() - start
        firsts.append((taken["a"] + taken["a2"]) / 2)
        seconds.append((taken["b"] + taken["b2"]) / 2)
    return firsts, seconds


def median_interval(firsts: list[float], seconds: list[float]) -> dict:
    """The median of the per-round ratios first / second with its 95% bootstrap interval (percentile,
    10,000 resamples, a fixed seed), the rounds' ratios, and each side's median seconds over the rounds."""
    ratios = [a / b for a, b in zip(firsts, seconds)]
    interval = scipy.stats.bootstrap((np.asarray(ratios),), np.median, confidence_level=0.95, n_resamples=10000,
                                     method="percentile", random_state=np.random.default_rng(0)).confidence_interval
    return {"median": statistics.median(ratios), "low": float(interval.low), "high": float(interval.high),
            "rounds": ratios, "seconds": [statistics.median(firsts), statistics.median(seconds)]}  # fmt: skip


def verdict(interval: dict, target: float) -> str:
    """Whether a ratio's 95% interval says it is at most `target`: met, not met, or cannot be told apart."""
    if interval["high"] <= target:
        return "met"
    if interval["low"] > target:
        return "not met"
    return f"cannot be told apart from {target:g}"


def matmul_ceiling(repetitions: int) -> tuple[float, int]:
    """The best float32 GFLOP/s of a square product over a few sizes, each timed `repetitions` times:
    the best, not the median, since a shared machine's load only ever slows a run down."""
    best = (0.0, 0)
    for size in CEILING_SIZES:
        square = jax.random.normal(jax.random.key(1), (size, size))
        product = jax.jit(lambda a: a @ a)
        jax.block_until_ready(product(square))
        for _ in range(repetitions):
            start = time.perf_counter()
            jax.block_until_ready(product(square))
            best = max(best, (2 * size**3 / (time.perf_counter() - start) / 1e9, size))
    return best


@functools.partial(jax.jit, static_argnums=0)
def gemm_only_epoch(config: Experiment, params, key, images, labels, learning_rate):
    """The epoch's matrix products alone, a practical floor: the same shuffle, gathers and scan, the
    forward products, dL/dW of every layer and dL/dx of all but the first, and a plain update; no
    sigmoid, softmax or loss. The backward signals are the forward outputs, which have the right shapes."""
    batch_indices = train.epoch_batch_indices(key, images.shape[0], config.training.batch_size)

    def step(params, indices):
        inputs = [images[indices]]
        for layer in params:
            inputs.append(inputs[-1] @ layer.w)
        delta, grads = inputs[-1], []
        for index in reversed(range(len(params))):
            grads.append(inputs[index].T @ delta)
            if index > 0:
                delta = delta @ params[index].w.T
        new = tuple(layer._replace(w=layer.w - learning_rate * g) for layer, g in zip(params, reversed(grads)))
        return new, None

    return jax.lax.scan(step, params, batch_indices)[0]


def lanes_scaling(config: Experiment, images, labels, counts: list[int]) -> dict:
    """Epoch seconds of the lane program at each lane count (one timed run after compiling)."""
    seconds = {}
    for count in counts:
        state = lanes.init_lanes(config, [0.1] * count, list(range(count)))
        epoch = lanes.train_epoch.lower(config, state, images, labels).compile()
        start = time.perf_counter()
        jax.block_until_ready(epoch(state, images, labels))
        seconds[str(count)] = time.perf_counter() - start
    return seconds


def startup(epochs: int) -> dict:
    """A cached-data `baseline.py --epochs N` run twice with a fresh compilation cache: the first
    compiles and fills the cache, the second reads it. Per run: the process's wall seconds and the
    JSON's own "seconds" (data, compile, train, eval, total since the script started)."""
    runs = {}
    with tempfile.TemporaryDirectory() as cache:
        for name in ("first", "second"):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, str(ROOT / "experiments" / "baseline.py"), "--quiet", "--epochs", str(epochs),
                     "--out", out],
                    check=True, stdout=subprocess.DEVNULL, env=os.environ | {"JAX_COMPILATION_CACHE_DIR": cache},
                )  # fmt: skip
                wall = time.perf_counter() - start
                runs[name] = {"wall": wall} | json.loads((Path(out) / "baseline.json").read_text())["seconds"]
    return runs


def forced_devices(train_limit: int, repetitions: int) -> dict:
    """Epoch seconds of 8 lanes on 1 and on 4 forced CPU devices, in a child process."""
    result = subprocess.run(
        [sys.executable, "-c", FORCED_DEVICES, str(train_limit), str(repetitions)],
        check=True, capture_output=True, text=True, cwd=ROOT,
        env=os.environ | {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def compile_seconds(jitted, *args, **static) -> float:
    start = time.perf_counter()
    jitted.lower(*args, **static).compile()
    return time.perf_counter() - start


def load(source: str, synthetic_examples: int) -> Splits:
    """Training, validation (the last 10,000 training images) and test splits on the device. Synthetic
    data has `synthetic_examples` training images and as many held-out ones (at most 10,000), which
    serve as both validation and test set."""
    if source == "synthetic":
        held_out = min(synthetic_examples, 10000)
        keys = jax.random.split(jax.random.key(0), 6)
        images = jax.random.normal(keys[0], (synthetic_examples, 784))
        labels = jax.random.randint(keys[1], (synthetic_examples,), 0, 10)
        test_images = jax.random.normal(keys[2], (held_out, 784))
        test_labels = jax.random.randint(keys[3], (held_out,), 0, 10)
        return Splits(images, labels, test_images, test_labels, test_images, test_labels)
    from fmlp.data.splits import device_splits

    return device_splits(data.load_mnist(), validation=10000)


@functools.partial(jax.jit, static_argnums=0)
def bare_epoch(config: Experiment, params, key, images, labels, learning_rate):
    """One lane's epoch with the hand-written gradients outside the lane program: no lane axis, no
    keep-or-undo of a diverged lane; what the lane program's own cost is measured against."""
    return train.lane_epoch(config, params, None, key, images, labels, learning_rate)


def like_with_like(config: Experiment, single, params, key, images, labels, rate, rounds: int) -> dict:
    """The ratios that carry a target, each from `rounds` ABBA rounds with its 95% interval: the
    hand-written gradients against autodiff's, both through the same driver (the lane program, the
    gradient function passed in), and the lane program's own cost, a one-lane epoch through it against
    the bare epoch of the same gradients."""
    hand = functools.partial(lanes.train_epoch, config, single, images, labels)
    autodiff = functools.partial(hand, gradients=autodiff_loss_grads_and_logits)
    bare = functools.partial(bare_epoch, config, params, key, images, labels, rate)
    return {"hand_over_autodiff": median_interval(*abba_rounds(hand, autodiff, rounds)),
            "lane_program_over_bare": median_interval(*abba_rounds(hand, bare, rounds))}  # fmt: skip


# Runs a command and prints its peak resident memory (MB). The benchmark's own process holds gigabytes,
# and a child forked from it counts those pages as its own until it execs: this small middleman is what
# forks the script, so the peak it reports is the script's.
PEAK_MEMORY = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def script_run(script: str, *flags: str) -> tuple[float, float]:
    """Runs an experiment script (data from the cache) in a child; returns (seconds, peak RSS in MB)."""
    seconds, peak_mb, _ = script_document(script, *flags)
    return seconds, peak_mb


def script_document(script: str, *flags: str) -> tuple[float, float, dict]:
    """`script_run`, and the metrics JSON it wrote (its "seconds": data, compile, train, eval, total)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, sys.executable, str(ROOT / "experiments" / script), "--quiet",
             "--out", out, *flags],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        document = json.loads(next(Path(out).glob("*.json")).read_text())
    return seconds, float(result.stdout.strip().splitlines()[-1]), document


# Images of the lane-memory runs (--train-limit 2000 --validation 1000): the 1,001-lane run takes minutes.
MEMORY_TRAIN, MEMORY_VALIDATION = 1000, 1000


def lane_memory(counts: list[int]) -> dict:
    """Per lane count, one epoch of `lr_sweep.py --lrs 0.1 --seeds N` on MEMORY_TRAIN training and
    MEMORY_VALIDATION validation images (and the 10,000 test images) in a child: its wall and recorded
    seconds, peak RSS (and peak device memory where the device counts it), and the FLOP rates of its
    training and its evaluation."""
    rows = {}
    for count in counts:
        wall, peak_mb, document = script_document(
            "lr_sweep.py", "--lrs", "0.1", "--seeds", str(count), "--epochs", "1",
            "--train-limit", str(MEMORY_TRAIN + MEMORY_VALIDATION), "--validation", str(MEMORY_VALIDATION),
        )  # fmt: skip
        train_flops = count * (MEMORY_TRAIN // 64) * training_flops(mlp.REFERENCE.sizes, 64)
        evaluated_flops = count * eval_flops(mlp.REFERENCE.sizes, MEMORY_VALIDATION + 10000)
        recorded, device_bytes = document["seconds"], document.get("peak_device_bytes")
        rows[str(count)] = {
            "wall": wall, "peak_rss_mb": peak_mb, "train": recorded["train"], "eval": recorded["eval"],
            "train_gflops": train_flops / recorded["train"] / 1e9,
            "eval_gflops": evaluated_flops / recorded["eval"] / 1e9,
            "peak_device_mb": None if device_bytes is None else device_bytes / 2**20,
        }  # fmt: skip
    return rows


def inference(network_path: Path, repetitions: int) -> dict:
    """Batched inference on the 10,000 test images in JAX, float32 against the integer program at 8-bit
    weights (images per second, round robin), and the exported C program's time per image."""
    from fmlp.embedded import integer

    network = saved.load(network_path)
    mnist = data.load("auto", None)[0]
    pixels = mnist.test_images.reshape(-1, integer.PIXELS)
    images = jnp.asarray(data.normalize(mnist.test_images))
    float_logits = jax.jit(mlp.forward_logits, static_argnums=0)
    device = integer.to_device(integer.from_float(network.architecture, network.params, 8))
    rounds = round_robin_seconds(
        {
            "float32": lambda: float_logits(network.architecture, network.params, images),
            "int8": lambda: integer.logits(device, pixels),
        },
        repetitions,
    )
    result = {f"{name}_images_per_second": len(pixels) / statistics.median(values) for name, values in rounds.items()}
    with tempfile.TemporaryDirectory() as folder:
        run = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "export_c.py"), str(network_path), "--bits", "8", "--out",
             folder, "--check"], check=True, capture_output=True, text=True,
        )  # fmt: skip
    result["c_summary"] = run.stdout.strip().splitlines()[-1].split(": ", 1)[1]
    path = network_path.resolve()  # recorded relative to the project, as the results name their files
    result["network"] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return result


def cpu_model() -> str | None:
    """The CPU's model name as Linux reports it (e.g. "AMD EPYC 9B14"); None elsewhere."""
    try:
        with open("/proc/cpuinfo") as file:
            return next((line.split(":", 1)[1].strip() for line in file if line.startswith("model name")), None)
    except OSError:
        return None


def measure(args) -> dict:
    sizes = mlp.REFERENCE.sizes
    splits = load(args.data, args.synthetic_examples)
    images, labels = splits.train_images, splits.train_labels
    config = Experiment(lanes=Lanes(group=1))
    single = lanes.init_lanes(config, [0.1], [1])
    momentum = config._replace(training=Training(optimizer="momentum", momentum=0.9))
    adam = config._replace(training=Training(optimizer="adam"))
    single_momentum = lanes.init_lanes(momentum, [0.01], [1])
    single_adam = lanes.init_lanes(adam, [0.001], [1])
    sweep = lanes.init_lanes(config, SWEEP_RATES, [1] * len(SWEEP_RATES))
    grid_rates, grid_seeds = lanes.grid(SWEEP_RATES, range(1, GRID_SEEDS + 1))
    grid = lanes.init_lanes(config, grid_rates, grid_seeds)
    all_at_once = config._replace(lanes=Lanes(group=len(SWEEP_RATES)))
    params, key = train.init_lane(1, mlp.REFERENCE)
    rate = jnp.float32(0.1)
    test = splits._replace(val_images=None, val_labels=None)
    steps = images.shape[0] // 64

    size = 2048
    square = jax.random.normal(jax.random.key(1), (size, size))
    matmul = jax.jit(lambda a: a @ a)
    best_gflops, best_size = matmul_ceiling(args.repetitions)

    timings = {
        "compile_epoch": compile_seconds(lanes.train_epoch, config, single, images, labels),
        "compile_sweep": compile_seconds(lanes.train_epoch, config, sweep, images, labels),
        "compile_grid": compile_seconds(lanes.train_epoch, config, grid, images, labels),
    }
    rounds = round_robin_seconds(
        {
            "matmul": lambda: matmul(square),
            "epoch": lambda: lanes.train_epoch(config, single, images, labels),
            "autodiff_epoch": lambda: lanes.train_epoch(config, single, images, labels, autodiff_loss_grads_and_logits),
            "bare_epoch": lambda: bare_epoch(config, params, key, images, labels, rate),
            "gemm_only_epoch": lambda: gemm_only_epoch(config, params, key, images, labels, rate),
            "momentum_epoch": lambda: lanes.train_epoch(momentum, single_momentum, images, labels),
            "adam_epoch": lambda: lanes.train_epoch(adam, single_adam, images, labels),
            "sweep_epoch": lambda: lanes.train_epoch(config, sweep, images, labels),
            "sweep_epoch_vmap": lambda: lanes.train_epoch(all_at_once, sweep, images, labels),
            "grid_epoch": lambda: lanes.train_epoch(config, grid, images, labels),
            "eval": lambda: lanes.evaluate_epoch(config, single, test),
            "grid_eval": lambda: lanes.evaluate_epoch(config, grid, splits),
        },
        args.repetitions,
    )
    timings |= {name: statistics.median(values) for name, values in rounds.items()}
    paired = like_with_like(config, single, params, key, images, labels, rate, args.abba_rounds)
    ceiling = 2 * size**3 / timings["matmul"] / 1e9
    epoch_flops = steps * training_flops(sizes, 64)
    if args.scaling:
        timings["lanes_scaling"] = lanes_scaling(config, images, labels, args.scaling)
    result = {
        "machine": {
            "device": jax.devices()[0].device_kind,
            "backend": jax.default_backend(),
            "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "data": f"{'real MNIST' if args.data == 'mnist' else 'synthetic'}: {images.shape[0]} training, "
        f"{splits.val_images.shape[0]} validation, {splits.test_images.shape[0]} test images of 784 pixels",
        "repetitions": args.repetitions,
        "lane_group": config.lanes.group,
        "seconds": timings,
        "matmul_gflops": ceiling,
        "best_matmul_gflops": best_gflops,
        "best_matmul_size": best_size,
        "big_matmul_floor_seconds": epoch_flops / (best_gflops * 1e9),
        "epoch_over_gemm_only": paired_ratio(rounds["epoch"], rounds["gemm_only_epoch"]),
        "epoch_gflops": epoch_flops / timings["epoch"] / 1e9,
        "epoch_fraction_of_ceiling": epoch_flops / timings["epoch"] / 1e9 / ceiling,
        "hand_over_autodiff": paired["hand_over_autodiff"]["median"],  # through the same lane program
        "intervals": paired | {"abba_rounds": args.abba_rounds},
        "lane_program_over_bare": paired["lane_program_over_bare"]["median"],
        "momentum_over_sgd": paired_ratio(rounds["momentum_epoch"], rounds["epoch"]),
        "adam_over_sgd": paired_ratio(rounds["adam_epoch"], rounds["epoch"]),
        "sweep_over_sequential": paired_ratio(rounds["sweep_epoch"], rounds["epoch"], len(SWEEP_RATES)),
        "sweep_vmap_over_sequential": paired_ratio(rounds["sweep_epoch_vmap"], rounds["epoch"], len(SWEEP_RATES)),
        "grid_over_sequential": paired_ratio(rounds["grid_epoch"], rounds["epoch"], len(grid_seeds)),
        "eval_over_epoch": paired_ratio(rounds["eval"], rounds["epoch"]),
        "grid_eval_over_grid_epoch": paired_ratio(rounds["grid_eval"], rounds["grid_epoch"]),
    }
    if not args.skip_baseline:
        seconds, peak_mb = script_run("baseline.py", "--epochs", str(args.baseline_epochs))
        total_flops = args.baseline_epochs * (epoch_flops + eval_flops(sizes, splits.test_images.shape[0]))
        floor = total_flops / (ceiling * 1e9)
        result["baseline"] = {
            "epochs": args.baseline_epochs,
            "seconds": seconds,
            "floor_seconds": floor,
            "over_floor": seconds / floor,
            "peak_rss_mb": peak_mb,
        }
        seconds, peak_mb = script_run(
            "lr_sweep.py", "--epochs", "1", "--seeds", str(GRID_SEEDS), "--validation", "10000"
        )
        result["grid_run"] = {"epochs": 1, "seconds": seconds, "peak_rss_mb": peak_mb}
        result["startup"] = startup(1)
        if args.memory_lanes:
            result["lane_memory"] = lane_memory(args.memory_lanes)
    if args.inference is not None:
        result["inference"] = inference(args.inference, args.repetitions)
    if jax.default_backend() == "cpu" and args.forced_devices:
        result["forced_devices"] = forced_devices(images.shape[0], args.repetitions)
    return result


def table(result: dict) -> str:
    """The result as a Markdown table with the issue's targets beside the measurements."""
    s = result["seconds"]
    rates = len(SWEEP_RATES)
    epoch_rate = f"{result['epoch_gflops']:.1f} GFLOP/s = {result['epoch_fraction_of_ceiling']:.0%} of the ceiling"
    candidates = [
        lambda: ("matmul 2048x2048 float32", f"{s['matmul'] * 1e3:.1f} ms",
         f"{result['matmul_gflops']:.1f} GFLOP/s (the ceiling)", ""),
        lambda: (f"best square matmul of {', '.join(map(str, CEILING_SIZES))}", f"{result['best_matmul_size']}²",
         f"{result['best_matmul_gflops']:.1f} GFLOP/s (best of {result['repetitions']} runs each)", ""),
        lambda: ("big-matmul floor of an epoch", f"{result['big_matmul_floor_seconds']:.3f} s",
         "the epoch's matmul FLOPs at the best rate", ""),
        lambda: ("GEMM-only epoch (the epoch's products and a plain update)", f"{s['gemm_only_epoch']:.3f} s",
         f"training epoch / GEMM-only = {result['epoch_over_gemm_only']:.3f}", ""),
        lambda: ("training epoch, hand-written backward", f"{s['epoch']:.3f} s", epoch_rate, ">= 70%"),
        lambda: ("training epoch, autodiff gradients through the same lane program",
         paired_seconds(result['intervals']['hand_over_autodiff'], "hand-written"),
         f"hand-written / autodiff = {interval_text(result['intervals']['hand_over_autodiff'])}",
         f"<= 1.0: {verdict(result['intervals']['hand_over_autodiff'], 1.0)}"),
        lambda: ("one-lane epoch outside the lane program (no lane axis, no keep-or-undo)",
         paired_seconds(result['intervals']['lane_program_over_bare'], "lane program"),
         f"lane program / bare = {interval_text(result['intervals']['lane_program_over_bare'])}", ""),
        lambda: ("training epoch, optax SGD with momentum 0.9", f"{s['momentum_epoch']:.3f} s",
         f"momentum / plain SGD = {result['momentum_over_sgd']:.3f}", "<= 1.05"),
        lambda: ("training epoch, optax Adam", f"{s['adam_epoch']:.3f} s",
         f"Adam / plain SGD = {result['adam_over_sgd']:.3f}", "<= 1.2"),
        lambda: (f"sweep epoch, {rates} rates, lanes in groups of {result.get('lane_group', rates)}",
         f"{s['sweep_epoch']:.3f} s",
         f"sweep / ({rates} x epoch) = {result['sweep_over_sequential']:.3f}", "<= 1.0"),
        lambda: (f"sweep epoch, {rates} rates, all in one vmap", f"{s['sweep_epoch_vmap']:.3f} s",
         f"sweep / ({rates} x epoch) = {result['sweep_vmap_over_sequential']:.3f}", ""),
        lambda: (f"grid epoch, {rates} rates x {GRID_SEEDS} seeds", f"{s['grid_epoch']:.3f} s",
         f"grid / ({rates * GRID_SEEDS} x epoch) = {result['grid_over_sequential']:.3f}", "<= 1.0 (CPU), <= 0.1 (GPU)"),
        lambda: ("evaluation, 10000 test images, one lane", f"{s['eval'] * 1e3:.1f} ms",
         f"eval / epoch = {result['eval_over_epoch']:.1%}", "<= 5%"),
        lambda: (f"evaluation, validation and test, {rates * GRID_SEEDS} lanes", f"{s['grid_eval']:.3f} s",
         f"eval / grid epoch = {result['grid_eval_over_grid_epoch']:.1%}", "<= 10%"),
        lambda: ("compile, one-lane epoch", f"{s['compile_epoch']:.2f} s", "", "<= 3 s"),
        lambda: (f"compile, {rates}-lane epoch", f"{s['compile_sweep']:.2f} s", "", "<= 6 s"),
        lambda: (f"compile, {rates * GRID_SEEDS}-lane epoch", f"{s['compile_grid']:.2f} s", "", "<= 6 s"),
    ]  # fmt: skip
    rows = []
    for build in candidates:
        try:
            rows.append(build())
        except KeyError:  # a measurement that an earlier version of this script did not make
            continue
    missing = len(candidates) - len(rows)
    if "baseline" in result:
        b = result["baseline"]
        floor = f"{b['over_floor']:.2f} x the floor of {b['floor_seconds']:.1f} s (its matmul FLOPs at the ceiling)"
        rows += [
            (f"baseline.py end to end ({b['epochs']} epochs)", f"{b['seconds']:.1f} s", floor, "<= 2x"),
            ("baseline.py peak resident memory", f"{b['peak_rss_mb']:.0f} MB", "", "<= 1200 MB"),
        ]  # fmt: skip
    if "grid_run" in result:
        g = result["grid_run"]
        rows += [
            (f"lr_sweep.py --seeds {GRID_SEEDS} --validation 10000, {g['epochs']} epoch", f"{g['seconds']:.1f} s",
             "", ""),
            ("its peak resident memory", f"{g['peak_rss_mb']:.0f} MB", "", "<= 2000 MB"),
        ]  # fmt: skip
    if "forced_devices" in result:
        forced = result["forced_devices"]
        seconds = f"{forced['4']:.3f} s vs {forced['1']:.3f} s"
        overhead = f"overhead {forced['4'] / forced['1']:.3f}"
        rows.append(("8 lanes over 4 forced CPU devices vs 1 (same cores)", seconds, overhead, "<= 1.3"))
    machine = result["machine"]
    lines = [
        f"Device: {machine['device']} ({machine['backend']}, {machine.get('cpu_model') or machine['processor']}, "
        f"{machine['cpu_count']} cores); "
        f"JAX {machine['jax']}, Python {machine['python']}. Data: {result['data']}. "
        f"Times are medians of {result['repetitions']} rounds, each running every candidate once in turn after "
        "a warm-up; ratios are medians of the ratios within each round"
        + (
            f", except the two that compare gradients and drivers: medians of {result['intervals']['abba_rounds']} "
            "rounds in ABBA order, with 95% bootstrap intervals in brackets (a target is met when the whole "
            "interval meets it)."
            if "intervals" in result
            else "."
        )
        + (
            f" Written by an earlier version of this script: {missing} of the {len(candidates)} rows it writes "
            "now, and the tables it did not make yet, are missing; run it again on this backend for them."
            if missing
            else ""
        ),
        "",
        "| what | time | rate or ratio | target (set for the 2-core CPU) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    extra = scaling_table(result) + lane_memory_table(result) + inference_table(result) + startup_table(result)
    return "\n".join(lines + extra) + "\n"


def paired_seconds(interval: dict, first: str) -> str:
    """The second side's median seconds over the ABBA rounds, beside the first's from the same rounds."""
    if "seconds" not in interval:  # an earlier version of this script timed them apart
        return ""
    mine, theirs = interval["seconds"]
    return f"{theirs:.3f} s ({first}: {mine:.3f} s in the same rounds)"


def interval_text(interval: dict) -> str:
    """A median ratio with its 95% interval: "1.004 [0.991, 1.017]"."""
    return f"{interval['median']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def scaling_table(result: dict) -> list[str]:
    """Epoch time against the number of lanes, with the time per lane-epoch."""
    scaling = result["seconds"].get("lanes_scaling")
    if not scaling:
        return []
    lines = ["", f"Lanes in one program (groups of {result.get('lane_group')}), one epoch each:", "",
             "| lanes | epoch | per lane-epoch | against 1 lane |", "| --- | --- | --- | --- |"]  # fmt: skip
    one = scaling.get("1")
    for count, seconds in scaling.items():
        ratio = f"{seconds / one:.2f}x" if one else ""
        lines.append(f"| {count} | {seconds:.2f} s | {seconds / int(count):.3f} s | {ratio} |")
    return lines


def lane_memory_table(result: dict) -> list[str]:
    """Peak memory and time per lane count, and the FLOP rates of training and evaluation. Where the
    device counted its memory (a GPU), its peak is a column too, and the share per lane is of it."""
    rows = result.get("lane_memory")
    if not rows:
        return []
    on_device = any(row.get("peak_device_mb") is not None for row in rows.values())
    lines = ["", f"`lr_sweep.py --lrs 0.1 --seeds N --epochs 1` on {MEMORY_TRAIN:,} training and {MEMORY_VALIDATION:,} "
             "validation images (and the 10,000 test images), each in its own process:", "",
             "| lanes | peak RSS | " + ("peak device memory | " * on_device) + "per lane | train per lane-epoch | "
             "eval per lane-epoch | train GFLOP/s | eval GFLOP/s |",
             "| --- " * (7 + on_device) + "|"]  # fmt: skip
    for count, row in rows.items():
        peak_mb = row["peak_device_mb"] if on_device else row["peak_rss_mb"]
        device = f"{row['peak_device_mb'] / 1024:.2f} GB | " if on_device else ""
        lines.append(
            f"| {int(count):,} | {row['peak_rss_mb'] / 1024:.2f} GB | {device}{peak_mb / int(count):.1f} MB | "
            f"{row['train'] / int(count) * 1e3:.1f} ms | {row['eval'] / int(count) * 1e3:.1f} ms | "
            f"{row['train_gflops']:.0f} | {row['eval_gflops']:.0f} |"
        )
    return lines


def inference_table(result: dict) -> list[str]:
    """Batched inference, float32 against int8, and the C program."""
    row = result.get("inference")
    if not row:
        return []
    return ["", f"Inference of `{Path(row['network']).name}` on the 10,000 test images:", "",
            "| program | throughput |", "| --- | --- |",
            f"| JAX, float32, batch 10,000 | {row['float32_images_per_second']:,.0f} images/s |",
            f"| JAX, integers only (8-bit weights), batch 10,000 | {row['int8_images_per_second']:,.0f} images/s |",
            f"| C99, integers only (8-bit weights), one image at a time, `cc -O2` | {row['c_summary']} |"]  # fmt: skip


def startup_table(result: dict) -> list[str]:
    """Where a cached-data 1-epoch baseline run spends its time, compiling and from the cache."""
    runs = result.get("startup")
    if not runs:
        return []
    lines = ["", "`baseline.py --epochs 1`, data from the cache; the second run reads the compilation cache:", "",
             "| run | process wall | imports and start-up | data | compile | train | eval | rest (plots, JSON) | "
             "wall − train − eval |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, run in runs.items():
        rest = run["total"] - run["data"] - run["compile"] - run["train"] - run["eval"]
        lines.append(
            f"| {name} | {run['wall']:.2f} s | {run['wall'] - run['total']:.2f} s | {run['data']:.2f} s | "
            f"{run['compile']:.2f} s | {run['train']:.2f} s | {run['eval']:.2f} s | {rest:.2f} s | "
            f"{run['wall'] - run['train'] - run['eval']:.2f} s |"
        )
    return lines


def cortex_m_tables(runs: list[dict]) -> str:
    """A table per core of the runs `export_c.py --target CORE --run` recorded (OUT/cortex_m.json, copied
    into docs/cortex_m/), one row per weight width."""
    lines = ["Each row is one `python experiments/export_c.py NETWORK --bits B --target CORE --run` on the 10,000 "
             "test images. QEMU counts instructions, not cycles (SysTick under `-icount shift=0`, calibrated in "
             "the same run); flash is code and constants, RAM data, bss and the stack's peak use.\n"]  # fmt: skip
    for target in sorted({run["target"] for run in runs}):
        networks = sorted({run.get("params", "not recorded") for run in runs if run["target"] == target})
        lines += [f"### {target} (QEMU {next(r['machine'] for r in runs if r['target'] == target)})\n",
                  f"Network: {', '.join(f'`{name}`' for name in networks)}.\n",
                  "| weights | agree with JAX | accuracy | instructions per image | flash | RAM (stack) |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for run in sorted((r for r in runs if r["target"] == target), key=lambda r: -r["bits"]):
            lines.append(
                f"| {run['bits']} bit | {run['agree']:,} of {run['images']:,} | {run['accuracy']:.2%} | "
                f"{run['instructions_per_image']:,.0f} | {run['flash_bytes']:,} B | {run['ram_bytes']:,} B "
                f"({run['stack_bytes']:,} B) |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist", "synthetic"), default="mnist", help="default: real MNIST")
    parser.add_argument("--repetitions", type=flags.positive_int, default=5)
    parser.add_argument("--abba-rounds", type=flags.positive_int, default=20,
                        help="ABBA rounds of the ratios that compare gradients and drivers (default 20)")  # fmt: skip
    parser.add_argument(
        "--synthetic-examples",
        type=flags.positive_int,
        default=60000,
        help="training set size with --data synthetic (as many held-out images, at most 10,000)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip the end-to-end script runs")
    parser.add_argument(
        "--scaling",
        type=flags.positive_int_list,
        default=[1, 7, 35, 143],
        help="lane counts of the scaling table (default 1,7,35,143)",
    )
    parser.add_argument("--no-scaling", dest="scaling", action="store_const", const=[], help="skip the scaling table")
    parser.add_argument(
        "--no-forced-devices", dest="forced_devices", action="store_false", help="skip the 4-device overhead"
    )
    parser.add_argument("--baseline-epochs", type=flags.positive_int, default=30)
    parser.add_argument(
        "--memory-lanes",
        type=flags.positive_int_list,
        default=[1, 7, 35, 143, 1001],
        help="lane counts of the memory table, one epoch on 1,000 training images each (default 1,7,35,143,1001)",
    )
    parser.add_argument("--no-memory-lanes", dest="memory_lanes", action="store_const", const=[])
    study_network = ROOT / "figures/params/quantize/lr_1_seed_1.npz"  # written by the README's quantization steps
    parser.add_argument(
        "--inference",
        type=flags.params_file,
        default=study_network if study_network.is_file() else None,
        help="network of the inference table, float32 against integers (default: the quantization study's "
        "seed 1, if it is there)",
    )
    parser.add_argument("--no-inference", dest="inference", action="store_const", const=None)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs", help="where benchmark_<backend>.json goes")
    parser.add_argument(
        "--render-only", action="store_true", help="only rebuild benchmarks.md from the JSON files in --out-dir"
    )
    args = parser.parse_args()
    problem = flags.can_create_folder(args.out_dir)
    if problem:
        parser.error(f"argument --out-dir: {problem}")
    args.out_dir.mkdir(parents=True, exist_ok=True)

    if not args.render_only:
        result = measure(args)
        print(table(result))
        with atomic_path(args.out_dir / f"benchmark_{result['machine']['backend']}.json") as temp_path:
            temp_path.write_text(json.dumps(result, indent=1) + "\n")
    sections = [
        "# Benchmarks\n",
        "Written by `python experiments/benchmark.py`; one section per backend it was run on.\n",
    ]
    for path in sorted(args.out_dir.glob("benchmark_*.json")):
        sections += [f"## {path.stem.removeprefix('benchmark_').upper()}\n", table(json.loads(path.read_text()))]
    runs = [json.loads(path.read_text()) for path in sorted((args.out_dir / "cortex_m").glob("*.json"))]
    if runs:
        sections += ["## Cortex-M under QEMU\n", cortex_m_tables(runs)]
    with atomic_path(args.out_dir / "benchmarks.md") as temp_path:
        temp_path.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
