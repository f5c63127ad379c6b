"""The exported network bare-metal on Cortex-M cores under QEMU: the board files beside the export, the
build with arm-none-eabi-gcc, the check that it holds no floating point, the run with instructions
counted, and what it measured.

QEMU's `-icount shift=0` makes virtual time count instructions, and the SysTick timer runs at a fixed
number of instructions per tick, which board.c measures in the same run with a loop of known length.
So the numbers here are instructions, not cycles: a real core's cycles per instruction (memory wait
states, multiply latencies, pipeline stalls) are not modelled.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fmlp.children import end_with_parent
from fmlp.files import copy_whole, unlink_link

SOURCES = Path(__file__).parent / "c" / "cortex_m"
BOARD_FILES = ("board.c", "startup.c", "semihost.c", "semihost.h")
PACKAGES = "the Debian packages gcc-arm-none-eabi and qemu-system-arm"
COMPILER, SIZE, OBJDUMP, EMULATOR = (
    "arm-none-eabi-gcc",
    "arm-none-eabi-size",
    "arm-none-eabi-objdump",
    "qemu-system-arm",
)
WARNINGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
# Bare metal: no C library, no startup files, loops never turned into memcpy/memset calls; libgcc
# for the 64-bit shifts of the requantization.
BARE = ("-mthumb", "-ffreestanding", "-fno-tree-loop-distribute-patterns", "-nostdlib")


class Target(NamedTuple):
    """A core and the QEMU board it runs on."""

    machine: str  # QEMU's -M
    flags: tuple[str, ...]  # the core, with no floating-point unit the compiler may use
    linker_script: str


TARGETS = {
    "cortex-m4": Target("mps2-an386", ("-mcpu=cortex-m4", "-mfloat-abi=soft"), "mps2_an386.ld"),
    # MVE's integer instructions use the FP register file, so the float ABI is softfp, and +nofp keeps
    # every floating-point instruction out.
    "cortex-m55": Target("mps3-an547", ("-mcpu=cortex-m55+nofp", "-mfloat-abi=softfp"), "mps3_an547.ld"),
}
KERNEL = {"cortex-m4": "dsp", "cortex-m55": "mve"}  # the layout of the header each core's kernel reads
# A floating-point instruction (a .f16/.f32/.f64 form or a conversion) or a call into libgcc's
# software floating point: any of them in the ELF means the network is not integer-only there.
FLOATING = re.compile(r"\t(v\w*\.f(16|32|64)|vcvt\w*)\b|<__aeabi_[fd]\w*>|<__(add|sub|mul|div)[sd]f3>")


class Measured(NamedTuple):
    """One run of the board program on a set of images."""

    classes: np.ndarray  # (N,) int
    hashes: np.ndarray  # (N,) uint32: FNV-1a of each image's int32 logits, little-endian
    correct: int
    ticks: int  # SysTick ticks spent in fmlp_logits over all images
    instructions_per_tick: float  # from the calibration loop of the same run
    stack_bytes: int  # the stack's high-water mark, from the painted stack

    @property
    def instructions_per_image(self) -> float:
        return self.ticks * self.instructions_per_tick / len(self.classes)


def missing_tools() -> str | None:
    """Why a Cortex-M build cannot run here, naming what to install; None when it can."""
    missing = [tool for tool in (COMPILER, SIZE, OBJDUMP, EMULATOR) if shutil.which(tool) is None]
    return f"{', '.join(missing)} not found: install {PACKAGES} (apt-get install)" if missing else None


def write_board(folder: Path, target: str) -> list[Path]:
    """Copies the board files and the target's linker script into folder/cortex_m; returns their paths."""
    board = folder / "cortex_m"
    board.mkdir(parents=True, exist_ok=True)
    return [copy_whole(SOURCES / name, board / name) for name in (*BOARD_FILES, TARGETS[target].linker_script)]


def build(folder: Path, target: str) -> Path:
    """Compiles the export in folder for the target into folder/fmlp_<target>.elf; ValueError with the
    compiler's messages if it fails."""
    board, elf = folder / "cortex_m", folder / f"fmlp_{target}.elf"
    sources = [board / "startup.c", board / "semihost.c", board / "board.c", folder / "fmlp.c"]
    command = [COMPILER, *WARNINGS, *TARGETS[target].flags, *BARE, "-T", str(board / TARGETS[target].linker_script),
               *map(str, sources), "-lgcc", "-o", str(elf)]  # fmt: skip
    unlink_link(elf)
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode:
        raise ValueError(f"{COMPILER} could not build {folder} for {target}:\n{built.stderr}")
    return elf


def floating_point(elf: Path) -> list[str]:
    """The disassembled lines of the ELF that use floating point (none in an integer-only build)."""
    listing = subprocess.run([OBJDUMP, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in listing.splitlines() if FLOATING.search(line)]


def sizes(elf: Path) -> dict[str, int]:
    """The bytes of the ELF's sections that `arm-none-eabi-size -A` lists: .text (code and constants),
    .data, .bss and .stack (the reserved stack, not its use)."""
    listing = subprocess.run([SIZE, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            found[parts[0].lstrip(".")] = int(parts[1])
    return {name: found.get(name, 0) for name in ("text", "data", "bss", "stack")}


def run(folder: Path, target: str, elf: Path, timeout: float) -> Measured:
    """Runs the ELF on the board with instructions counted; it reads folder's test-images-idx3-ubyte and
    test-labels-idx1-ubyte. ValueError naming what went wrong (a fault, a time-out, no summary line)."""
    # QEMU runs in folder, where the board program opens the IDX files: the ELF's path must not be relative.
    kernel = str(elf.resolve())
    command = [EMULATOR, "-M", TARGETS[target].machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", kernel]  # fmt: skip
    try:
        ran = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=timeout,
                             preexec_fn=end_with_parent)  # QEMU ends with this process, however it ends
    except subprocess.TimeoutExpired:
        raise ValueError(f"{EMULATOR} -M {TARGETS[target].machine} ran past {timeout:g} s") from None
    lines = ran.stderr.splitlines()  # semihosting's SYS_WRITE0 goes to QEMU's stderr
    if ran.returncode or not lines or not lines[-1].startswith("images "):
        raise ValueError(f"the {target} program ended with status {ran.returncode}: {' | '.join(lines[-3:])}")
    totals = dict(zip(lines[-1].split()[::2], map(int, lines[-1].split()[1::2])))
    per_image = [line.split() for line in lines[:-1]]
    return Measured(
        np.array([int(cls) for cls, _ in per_image]),
        np.array([int(digest, 16) for _, digest in per_image], np.uint32),
        totals["correct"],
        totals["ticks"],
        totals["calibration_instructions"] / totals["calibration_ticks"],
        totals["stack_bytes"],
    )


def logits_hashes(logits: np.ndarray) -> np.ndarray:
    """FNV-1a over each row's int32 logits as little-endian bytes, as board.c hashes them. (N, C) -> (N,)."""
    data = np.ascontiguousarray(logits, dtype="<i4").view(np.uint8).reshape(len(logits), -1)
    hashes = np.full(len(logits), 2166136261, np.uint64)
    for column in data.T:
        hashes = ((hashes ^ column) * 16777619) & 0xFFFFFFFF
    return hashes.astype(np.uint32)
