"""What the experiment scripts share: flags and their checks, loading data, and the metrics JSON."""

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fmlp import data
from fmlp.io import atomic_path

MNIST_TRAIN_SIZE = 60000


def _positive(kind: type, value: str, what: str):
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
    if not number > 0 or number != number or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
    return number


def positive_int(value: str) -> int:
    """argparse type: an integer >= 1."""
    return _positive(int, value, "a positive integer")


def positive_float(value: str) -> float:
    """argparse type: a finite number > 0."""
    return _positive(float, value, "a positive finite number")


def _positive_list(value: str, parse, what: str) -> list:
    try:
        return [parse(part.strip()) for part in value.split(",")]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of {what}: {error}") from None


def positive_float_list(value: str) -> list[float]:
    """argparse type: comma-separated positive numbers, e.g. 1.0,0.1,0.01."""
    return _positive_list(value, positive_float, "positive numbers")


def positive_int_list(value: str) -> list[int]:
    """argparse type: comma-separated positive integers, e.g. 512,128."""
    return _positive_list(value, positive_int, "positive integers")


def parser(description: str) -> argparse.ArgumentParser:
    """The flags both scripts take; each script adds its learning-rate flag."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=positive_int, default=30, help="training epochs (default 30)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="minibatch size (default 64)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the initial weights and the shuffles (default 1)")
    parser.add_argument(
        "--hidden", type=positive_int_list, default=[512, 128], help="hidden layer widths (default 512,128)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("figures"), help="folder for the JSON and PNGs (default figures)"
    )
    parser.add_argument(
        "--train-limit", type=positive_int, default=None, help="train on the first N training images only"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--data-source", choices=data.SOURCES, default="auto", help="where MNIST comes from (default auto)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder of the IDX files, or TFDS's data_dir")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses flag combinations that cannot work, before any work; exits 2 naming the flag."""
    if args.train_limit is not None and args.train_limit > MNIST_TRAIN_SIZE:
        parser.error(f"argument --train-limit: {args.train_limit} is more than the {MNIST_TRAIN_SIZE} training images")
    train_size = args.train_limit or MNIST_TRAIN_SIZE
    if args.batch_size > train_size:
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the training set ({train_size} images)")
    if args.data_source == "idx" and args.data_dir is None:
        parser.error("argument --data-dir: --data-source idx needs the folder of the four IDX files")
    check_out_dir(parser, args.out, "--out")


def check_out_dir(parser: argparse.ArgumentParser, out: Path, flag: str) -> None:
    """Creates the output folder if needed; exits 2 naming the flag if it cannot be written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"argument {flag}: cannot create {str(out)!r}: {error.strerror}")
    if not out.is_dir() or not os.access(out, os.W_OK):
        parser.error(f"argument {flag}: {str(out)!r} is not a writable folder")


class Splits(NamedTuple):
    """Normalized MNIST on the default device: images float32 (N, 784), labels int32 (N,)."""

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array


def load_splits(args: argparse.Namespace) -> Splits:
    """MNIST from the data flags, normalized and put on the device once. Exits 1 on a data failure."""
    try:
        mnist = data.load_mnist(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    train_images, train_labels = mnist.train_images[: args.train_limit], mnist.train_labels[: args.train_limit]
    if args.batch_size > len(train_images):
        sys.exit(f"error: --batch-size {args.batch_size} is larger than the {len(train_images)} training images")
    return Splits(
        jnp.asarray(data.normalize(train_images)),
        jnp.asarray(train_labels.astype(np.int32)),
        jnp.asarray(data.normalize(mnist.test_images)),
        jnp.asarray(mnist.test_labels.astype(np.int32)),
    )


def sizes(args: argparse.Namespace) -> tuple[int, ...]:
    """Layer widths: 784 inputs, the --hidden widths, 10 classes."""
    return (784, *args.hidden, 10)


def environment() -> dict:
    """Versions and the device the run used."""
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "device": jax.devices()[0].device_kind,
        "python": platform.python_version(),
    }


def config(args: argparse.Namespace) -> dict:
    """Every flag's value, JSON-ready."""
    return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}


def write_json(path: Path, document: dict) -> None:
    """Writes document as indented JSON via a temporary file and a rename."""
    with atomic_path(path) as temp_path:
        temp_path.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")


def metrics_document(args, runs: Sequence[dict], seconds: dict) -> dict:
    """The output contract: config, environment, runs, seconds."""
    return {"config": config(args), "environment": environment(), "runs": list(runs), "seconds": seconds}


def seconds(started: float, data_seconds: float, history) -> dict:
    """The JSON's "seconds": data, compile, train, eval, and the total since `started` (perf_counter)."""
    return {
        "data": data_seconds,
        "compile": history.compile_seconds,
        "train": history.train_seconds,
        "eval": history.eval_seconds,
        "total": time.perf_counter() - started,
    }
