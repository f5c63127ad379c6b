"""Times fmlp against the machine's matmul ceiling, against autodiff, and the vmapped sweep against
sequential epochs; prints one table and writes it to docs/ (Markdown and JSON).

    python experiments/benchmark.py                 # real MNIST from the cache, 5 repetitions
    python experiments/benchmark.py --data synthetic --skip-baseline --out-dir bench-out
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.autodiff: autodiff lives under tests/ only

from fmlp import data, experiment, mlp, sweep, train  # noqa: E402
from fmlp.io import atomic_path  # noqa: E402
from tests.autodiff import autodiff_sgd_step  # noqa: E402

SWEEP_RATES = (1.0, 0.5, 0.1, 0.05, 0.01, 0.005, 0.001)


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


def compile_seconds(jitted, *args, **static) -> float:
    start = time.perf_counter()
    jitted.lower(*args, **static).compile()
    return time.perf_counter() - start


def load(source: str, synthetic_examples: int):
    if source == "synthetic":
        keys = jax.random.split(jax.random.key(0), 4)
        return (
            jax.random.normal(keys[0], (synthetic_examples, 784)),
            jax.random.randint(keys[1], (synthetic_examples,), 0, 10),
            jax.random.normal(keys[2], (10000, 784)),
            jax.random.randint(keys[3], (10000,), 0, 10),
        )
    mnist = data.load_mnist()
    return (
        jnp.asarray(data.normalize(mnist.train_images)),
        jnp.asarray(mnist.train_labels.astype(np.int32)),
        jnp.asarray(data.normalize(mnist.test_images)),
        jnp.asarray(mnist.test_labels.astype(np.int32)),
    )


@jax.jit
def autodiff_epoch(state: train.TrainState, images, labels, learning_rate):
    """train.train_epoch with autodiff gradients: the same shuffle, scan and update."""
    key, shuffle_key = jax.random.split(state.key)
    indices = train.epoch_batch_indices(shuffle_key, images.shape[0], 64)
    params, metrics = train.sgd_over_batches(state.params, images, labels, indices, learning_rate, autodiff_sgd_step)
    return train.TrainState(params, state.step + indices.shape[0], key), metrics


def baseline_run(epochs: int) -> tuple[float, float]:
    """Runs experiments/baseline.py (data from the cache) in a child; returns (seconds, peak RSS in MB)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "experiments" / "baseline.py"),
                "--quiet",
                "--epochs",
                str(epochs),
                "--out",
                out,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(args) -> dict:
    sizes = mlp.REFERENCE_SIZES
    images, labels, test_images, test_labels = load(args.data, args.synthetic_examples)
    state = train.init_state(1)
    rate = jnp.float32(0.1)
    rates = jnp.asarray(SWEEP_RATES, jnp.float32)
    lanes = sweep.init_sweep(state, len(SWEEP_RATES))
    steps = images.shape[0] // 64

    size = 2048
    square = jax.random.normal(jax.random.key(1), (size, size))
    matmul = jax.jit(lambda a: a @ a)

    timings = {
        "compile_epoch": compile_seconds(train.train_epoch, state, images, labels, rate),
        "compile_sweep": compile_seconds(sweep.sweep_epoch, lanes, images, labels, rates),
    }
    rounds = round_robin_seconds(
        {
            "matmul": lambda: matmul(square),
            "epoch": lambda: train.train_epoch(state, images, labels, rate),
            "autodiff_epoch": lambda: autodiff_epoch(state, images, labels, rate),
            "sweep_epoch": lambda: sweep.sweep_epoch(lanes, images, labels, rates),
            "eval": lambda: train.evaluate(state.params, test_images, test_labels),
        },
        args.repetitions,
    )
    timings |= {name: statistics.median(values) for name, values in rounds.items()}
    ceiling = 2 * size**3 / timings["matmul"] / 1e9
    epoch_flops = steps * training_flops(sizes, 64)
    result = {
        "machine": {
            "device": jax.devices()[0].device_kind,
            "backend": jax.default_backend(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "python": platform.python_version(),
        },
        "data": f"{'real MNIST' if args.data == 'mnist' else 'synthetic'}: {images.shape[0]} training, "
        f"{test_images.shape[0]} test images of 784 pixels",
        "repetitions": args.repetitions,
        "seconds": timings,
        "matmul_gflops": ceiling,
        "epoch_gflops": epoch_flops / timings["epoch"] / 1e9,
        "epoch_fraction_of_ceiling": epoch_flops / timings["epoch"] / 1e9 / ceiling,
        "hand_over_autodiff": paired_ratio(rounds["epoch"], rounds["autodiff_epoch"]),
        "sweep_over_sequential": paired_ratio(rounds["sweep_epoch"], rounds["epoch"], len(SWEEP_RATES)),
        "eval_over_epoch": paired_ratio(rounds["eval"], rounds["epoch"]),
    }
    if not args.skip_baseline:
        seconds, peak_mb = baseline_run(args.baseline_epochs)
        total_flops = args.baseline_epochs * (epoch_flops + eval_flops(sizes, test_images.shape[0]))
        floor = total_flops / (ceiling * 1e9)
        result["baseline"] = {
            "epochs": args.baseline_epochs,
            "seconds": seconds,
            "floor_seconds": floor,
            "over_floor": seconds / floor,
            "peak_rss_mb": peak_mb,
        }
    return result


def table(result: dict) -> str:
    """The result as a Markdown table with the issue's targets beside the measurements."""
    s = result["seconds"]
    rates = len(SWEEP_RATES)
    epoch_rate = f"{result['epoch_gflops']:.1f} GFLOP/s = {result['epoch_fraction_of_ceiling']:.0%} of the ceiling"
    rows = [
        ("matmul 2048x2048 float32", f"{s['matmul'] * 1e3:.1f} ms",
         f"{result['matmul_gflops']:.1f} GFLOP/s (the ceiling)", ""),
        ("training epoch, hand-written backward", f"{s['epoch']:.3f} s", epoch_rate, ">= 70%"),
        ("training epoch, autodiff gradients", f"{s['autodiff_epoch']:.3f} s",
         f"hand-written / autodiff = {result['hand_over_autodiff']:.3f}", "<= 1.0"),
        (f"sweep epoch, {rates} rates in one vmap", f"{s['sweep_epoch']:.3f} s",
         f"sweep / ({rates} x epoch) = {result['sweep_over_sequential']:.3f}", "<= 0.95"),
        ("evaluation, 10000 test images", f"{s['eval'] * 1e3:.1f} ms",
         f"eval / epoch = {result['eval_over_epoch']:.1%}", "<= 5%"),
        ("compile, epoch function", f"{s['compile_epoch']:.2f} s", "", "<= 3 s"),
        ("compile, sweep function", f"{s['compile_sweep']:.2f} s", "", "<= 6 s"),
    ]  # fmt: skip
    if "baseline" in result:
        b = result["baseline"]
        floor = f"{b['over_floor']:.2f} x the floor of {b['floor_seconds']:.1f} s (its matmul FLOPs at the ceiling)"
        rows += [
            (f"baseline.py end to end ({b['epochs']} epochs)", f"{b['seconds']:.1f} s", floor, "<= 2x"),
            ("baseline.py peak resident memory", f"{b['peak_rss_mb']:.0f} MB", "", "<= 1200 MB"),
        ]  # fmt: skip
    machine = result["machine"]
    lines = [
        f"Device: {machine['device']} ({machine['backend']}, {machine['processor']}, {machine['cpu_count']} cores); "
        f"JAX {machine['jax']}, Python {machine['python']}. Data: {result['data']}. "
        f"Times are medians of {result['repetitions']} rounds, each running every candidate once in turn after "
        "a warm-up; ratios are medians of the ratios within each round.",
        "",
        "| what | time | rate or ratio | target (set for the 2-core CPU) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("mnist", "synthetic"), default="mnist", help="default: real MNIST")
    parser.add_argument("--repetitions", type=experiment.positive_int, default=5)
    parser.add_argument(
        "--synthetic-examples",
        type=experiment.positive_int,
        default=60000,
        help="training set size with --data synthetic",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip the end-to-end baseline run")
    parser.add_argument("--baseline-epochs", type=experiment.positive_int, default=30)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs", help="where benchmark_<backend>.json goes")
    parser.add_argument(
        "--render-only", action="store_true", help="only rebuild benchmarks.md from the JSON files in --out-dir"
    )
    args = parser.parse_args()
    experiment.check_out_dir(parser, args.out_dir, "--out-dir")

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
    with atomic_path(args.out_dir / "benchmarks.md") as temp_path:
        temp_path.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
