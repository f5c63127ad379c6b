"""Measures how closely the hand-written gradients agree with autodiff and finite differences, in float64.

python experiments/gradcheck.py     # the reference network at seed 1, 64 MNIST images -> figures/gradcheck.json
python experiments/gradcheck.py --hidden 200,50 --activation relu   # the network of another design
"""

import argparse
import sys
import time
from pathlib import Path

from fmlp.run import flags

ROOT = Path(__file__).resolve().parent.parent
DIRECTIONS = 16
EPSILON = 1e-5


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser, started: float) -> dict:
    """The gradient check's JSON document, computed in float64 (the caller enables it)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(ROOT))  # tests.autodiff: autodiff lives under tests/ only
    from fmlp import data
    from fmlp.nn import mlp
    from fmlp.run import metrics_json
    from tests.autodiff import autodiff_loss_and_grads

    try:
        mnist, origin = data.load(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    if args.batch_size > len(mnist.train_images):
        parser.error(f"argument --batch-size: {args.batch_size} is more than the {len(mnist.train_images)} images")
    images = jnp.asarray(data.normalize(mnist.train_images[: args.batch_size]), jnp.float64)
    labels = jnp.asarray(mnist.train_labels[: args.batch_size], jnp.int32)
    network = mlp.Architecture((mlp.REFERENCE.sizes[0], *args.hidden, mlp.REFERENCE.sizes[-1]), args.activation)
    params = jax.tree.map(lambda leaf: leaf.astype(jnp.float64), mlp.init(jax.random.key(args.seed), network))

    loss, grads = jax.jit(mlp.loss_and_grads, static_argnums=0)(network, params, images, labels)
    reference_loss, reference = jax.jit(autodiff_loss_and_grads, static_argnums=0)(network, params, images, labels)
    leaf_errors = [
        float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference))
    ]

    loss_at = jax.jit(lambda p: mlp.loss_and_grads(network, p, images, labels)[0])
    rng = np.random.default_rng(args.seed % 2**64)  # --seed is signed, as jax.random.key takes it; NumPy's is not
    directional_errors = []
    for _ in range(DIRECTIONS):
        direction = jax.tree.map(lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape)), params)
        norm = jnp.sqrt(sum(jnp.sum(d * d) for d in jax.tree.leaves(direction)))
        direction = jax.tree.map(lambda d: d / norm, direction)
        step = lambda sign: jax.tree.map(lambda p, d: p + sign * EPSILON * d, params, direction)  # noqa: E731
        numeric = (loss_at(step(1.0)) - loss_at(step(-1.0))) / (2 * EPSILON)
        analytic = sum(jnp.sum(g * d) for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
        directional_errors.append(float(jnp.abs(numeric - analytic) / jnp.abs(analytic)))

    return {
        "config": flags.flag_values(args),
        "environment": metrics_json.environment(),
        "data": origin._asdict(),
        "sizes": list(network.sizes),
        "activation": network.activation,
        "dtype": "float64",
        "loss": float(loss),
        "autodiff": {
            "loss_difference": float(abs(loss - reference_loss)),
            "max_relative_error": max(leaf_errors),
            "relative_error_per_leaf": leaf_errors,
        },
        "finite_differences": {
            "directions": DIRECTIONS,
            "epsilon": EPSILON,
            "max_relative_error": max(directional_errors),
            "median_relative_error": float(np.median(directional_errors)),
        },
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = flags.gradcheck_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if problem := flags.can_create_folder(args.out):
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")
    started = time.perf_counter()

    # Imported only now, so that --help and refused flags answer without loading JAX.
    import jax

    with jax.enable_x64(True):  # for this measurement only, not for whatever runs after it in the process
        document = measure(args, parser, started)
    from fmlp.run import metrics_json

    args.out.mkdir(parents=True, exist_ok=True)
    metrics_json.write_json(args.out / "gradcheck.json", document)
    print(
        f"hand-written against autodiff: largest error {document['autodiff']['max_relative_error']:.1e} of the "
        f"largest gradient entry; against central differences along {DIRECTIONS} directions: at most "
        f"{document['finite_differences']['max_relative_error']:.1e}; wrote {args.out / 'gradcheck.json'}"
    )


if __name__ == "__main__":
    main()
