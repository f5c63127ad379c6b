"""Writes a trained network as plain C99 (integer only: no floating point, no heap, no dependencies).

python experiments/export_c.py figures/params/quantize/lr_1_seed_1.npz --bits 8 --out build/fmlp_c --check
cc -std=c99 -O2 -Wall -Wextra -Werror build/fmlp_c/*.c -o fmlp_mnist
./fmlp_mnist t10k-images-idx3-ubyte t10k-labels-idx1-ubyte

--check compiles it with cc and runs it on the whole test set (written as IDX files into the folder),
comparing each image's class with the JAX integer program's.
"""

import subprocess
import sys

from fmlp.run import flags, interrupts

COMPILE = ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


def check(out, network, args) -> str:
    """Compiles the export, runs it on the test set and compares its classes with the JAX integer
    program's; returns the program's summary line. Exits 1 naming the first difference."""
    import numpy as np

    from fmlp import data
    from fmlp.embedded import c_export, integer

    try:
        mnist, _ = data.load(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    images, labels = out / "test-images-idx3-ubyte", out / "test-labels-idx1-ubyte"
    data.write_idx(images, mnist.test_images)
    data.write_idx(labels, mnist.test_labels)
    program = out / "fmlp_mnist"
    sources = [str(out / name) for name in c_export.C_FILES]  # the export's own, not any other file there
    built = subprocess.run([*COMPILE, *sources, "-o", str(program)], capture_output=True, text=True)
    if built.returncode:
        sys.exit(f"error: cc could not build {out}:\n{built.stderr}")
    ran = subprocess.run([str(program), "--predictions", str(images), str(labels)], capture_output=True, text=True)
    if ran.returncode:
        sys.exit(f"error: {program} failed: {ran.stderr.strip()}")
    *classes, summary = ran.stdout.splitlines()
    expected = integer.predict(integer.to_device(network), mnist.test_images.reshape(-1, integer.PIXELS))
    differ = np.flatnonzero(np.asarray(classes, int) != expected)
    if differ.size:
        sys.exit(f"error: the C program and the JAX integer program disagree on {differ.size} images, "
                 f"the first test image {differ[0]}")  # fmt: skip
    return summary


def main() -> None:
    parser = flags.export_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if problem := flags.can_create_folder(args.out):
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")

    from fmlp.embedded import c_export, integer

    if problem := c_export.folder_problem(args.out):
        parser.error(f"argument --out: {problem}")
    from fmlp.nn import saved

    try:
        network_file = saved.load(args.params)  # its errors name the file
        saved.check_classifier(args.params, network_file.architecture)
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        network = integer.from_float(network_file.architecture, network_file.params, args.bits)
        paths = c_export.export(network, args.out)
    except ValueError as error:
        sys.exit(f"error: {args.params}: {error}")
    size = c_export.footprint(network)
    names = ", ".join(path.name for path in paths)
    print(f"wrote {names} into {args.out}: {size.flash_weights + size.flash_other:,} bytes of constants, "
          f"{size.ram_buffers:,} bytes of buffers, {size.operations:,} operations per image")  # fmt: skip
    if args.check:
        summary = check(args.out, network, args)
        print(f"the C program agrees with the JAX integer program on every test image: {summary}")


if __name__ == "__main__":
    interrupts.main_or_exit(main, "interrupted")
