"""Writes a trained network as plain C99 (integer only: no floating point, no heap, no dependencies).

python experiments/export_c.py figures/params/quantize/lr_1_seed_1.npz --bits 8 --out build/fmlp_c --check
cc -std=c99 -O2 -Wall -Wextra -Werror build/fmlp_c/*.c -o fmlp_mnist
./fmlp_mnist t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
python experiments/export_c.py figures/params/quantize/lr_1_seed_1.npz --bits 8 --target cortex-m4 --out build/m4 --run

--check compiles it with cc and runs it on the whole test set (written as IDX files into the folder),
comparing each image's class with the JAX integer program's. --target cortex-m4 or cortex-m55 writes
the bare-metal board files too; --run builds them with arm-none-eabi-gcc, checks the ELF holds no
floating point, runs it under QEMU with instructions counted, and compares every image's class and
logits with the JAX integer program's.
"""

import json
import shutil
import subprocess
import sys

from fmlp.run import flags, interrupts

COMPILE = ["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


def test_set(out, args):
    """The first --images test images and labels, written as IDX files into out for the C programs."""
    from fmlp import data

    try:
        mnist, _ = data.load(args.data_source, args.data_dir)
    except data.DataError as error:
        sys.exit(f"error: {error}")
    from fmlp.files import atomic_path

    images, labels = mnist.test_images[: args.images], mnist.test_labels[: args.images]
    for name, array in (("test-images-idx3-ubyte", images), ("test-labels-idx1-ubyte", labels)):
        with atomic_path(out / name) as temporary:  # whole, and never through a link at the name
            data.write_idx(temporary, array)
    return images.reshape(len(images), -1), labels


def check(out, network, args) -> str:
    """Compiles the export, runs it on the test set and compares its classes with the JAX integer
    program's; returns the program's summary line. Exits 1 naming the first difference."""
    import numpy as np

    from fmlp.embedded import c_export, integer
    from fmlp.files import unlink_link

    pixels, _ = test_set(out, args)
    program = out / "fmlp_mnist"
    unlink_link(program)  # the compiler writes a new file, not what a link there points to
    sources = [str(out / name) for name in c_export.C_FILES]  # the export's own, not any other file there
    built = subprocess.run([*COMPILE, *sources, "-o", str(program)], capture_output=True, text=True)
    if built.returncode:
        sys.exit(f"error: cc could not build {out}:\n{built.stderr}")
    images, labels = out / "test-images-idx3-ubyte", out / "test-labels-idx1-ubyte"
    ran = subprocess.run([str(program), "--predictions", str(images), str(labels)], capture_output=True, text=True)
    if ran.returncode:
        sys.exit(f"error: {program} failed: {ran.stderr.strip()}")
    *classes, summary = ran.stdout.splitlines()
    expected = integer.predict(integer.to_device(network), pixels)
    differ = np.flatnonzero(np.asarray(classes, int) != expected)
    if differ.size:
        sys.exit(f"error: the C program and the JAX integer program disagree on {differ.size} images, "
                 f"the first test image {differ[0]}")  # fmt: skip
    return summary


def run_on_core(out, network, args) -> dict:
    """Builds, checks and runs the export on the --target core under QEMU; compares every image's class
    and logits hash with the JAX integer program's. Exits 1 naming what failed or differs."""
    import numpy as np

    from fmlp.embedded import cortex_m, integer

    pixels, labels = test_set(out, args)
    try:
        elf = cortex_m.build(out, args.target)
        floating = cortex_m.floating_point(elf)
        if floating:
            raise ValueError(f"{elf} holds floating point, e.g. {floating[0]!r}")
        measured = cortex_m.run(out, args.target, elf, args.time_limit)
    except ValueError as error:
        sys.exit(f"error: {error}")
    logits = np.asarray(integer.logits(integer.to_device(network), pixels))
    classes = np.argmax(logits, axis=-1)
    differ = np.flatnonzero((measured.classes != classes) | (measured.hashes != cortex_m.logits_hashes(logits)))
    if len(measured.classes) != len(pixels) or differ.size:
        first = differ[0] if differ.size else len(measured.classes)
        sys.exit(f"error: the {args.target} program and the JAX integer program disagree on {differ.size} of "
                 f"{len(pixels)} images, the first test image {first}")  # fmt: skip
    size = cortex_m.sizes(elf)
    return {
        "params": str(args.params), "target": args.target, "machine": cortex_m.TARGETS[args.target].machine,
        "bits": network.weight_bits,
        "images": len(pixels), "agree": len(pixels), "accuracy": float(np.mean(measured.classes == labels)),
        "instructions_per_image": measured.instructions_per_image,
        "instructions_per_tick": measured.instructions_per_tick,
        "flash_bytes": size["text"] + size["data"], "data_bytes": size["data"], "bss_bytes": size["bss"],
        "stack_bytes": measured.stack_bytes, "ram_bytes": size["data"] + size["bss"] + measured.stack_bytes,
    }  # fmt: skip


def report(measured: dict) -> str:
    """What a run on a core measured, in three lines."""
    return (
        f"{measured['target']} (QEMU {measured['machine']}), {measured['bits']}-bit weights: {measured['agree']} of "
        f"{measured['images']} images agree with the JAX integer program (class and logits); accuracy "
        f"{measured['accuracy']:.2%}\ninstructions per image: {measured['instructions_per_image']:,.0f} (SysTick "
        f"under -icount shift=0, {measured['instructions_per_tick']:g} instructions per tick, calibrated in this "
        "run; QEMU counts instructions, not cycles)\n"
        f"flash {measured['flash_bytes']:,} B (code and constants); RAM {measured['ram_bytes']:,} B (data "
        f"{measured['data_bytes']:,} + bss {measured['bss_bytes']:,} + stack high-water mark "
        f"{measured['stack_bytes']:,})"
    )


def main() -> None:
    parser = flags.export_parser(__doc__.splitlines()[0])
    args = parser.parse_args()
    if problem := flags.can_create_folder(args.out):
        parser.error(f"argument --out: cannot write {str(args.out)!r}: {problem}")
    if args.run and args.target == "host":
        parser.error("argument --run: runs a Cortex-M --target (for the host, --check compiles and runs it)")

    from fmlp.embedded import c_export, cortex_m, integer
    from fmlp.files import atomic_path
    from fmlp.nn import saved

    if problem := c_export.folder_problem(args.out):
        parser.error(f"argument --out: {problem}")
    if args.run and (problem := cortex_m.missing_tools()):
        sys.exit(f"error: argument --run: {problem}")
    if args.check and shutil.which(COMPILE[0]) is None:
        sys.exit(f"error: argument --check: {COMPILE[0]} not found: install a C compiler (apt-get install gcc)")
    try:
        network_file = saved.load(args.params)  # its errors name the file
        saved.check_classifier(args.params, network_file.architecture)
    except ValueError as error:
        sys.exit(f"error: {error}")
    try:
        network = integer.from_float(network_file.architecture, network_file.params, args.bits)
        paths = c_export.export(network, args.out, cortex_m.KERNEL.get(args.target, "portable"))
    except ValueError as error:
        sys.exit(f"error: {args.params}: {error}")
    if args.target != "host":
        paths += cortex_m.write_board(args.out, args.target)
    size = c_export.footprint(network)
    names = ", ".join(str(path.relative_to(args.out)) for path in paths)
    print(f"wrote {names} into {args.out}: {size.flash_weights + size.flash_other:,} bytes of constants, "
          f"{size.ram_buffers:,} bytes of buffers, {size.operations:,} operations per image")  # fmt: skip
    if args.check:
        summary = check(args.out, network, args)
        print(f"the C program agrees with the JAX integer program on every test image: {summary}")
    if args.run:
        measured = run_on_core(args.out, network, args)
        with atomic_path(args.out / "cortex_m.json") as temporary:
            temporary.write_text(json.dumps(measured, indent=1) + "\n")
        print(report(measured))


if __name__ == "__main__":
    interrupts.main_or_exit(main, "interrupted")
