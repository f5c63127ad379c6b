"""From a clone to the hand-in: runs whatever result is missing, then writes the PDF and the source bundle.

python experiments/handin.py --authors "Name A, Name B" --present reading,from-scratch  # figures/report.pdf, handin.zip
python experiments/handin.py --authors "Name A" --extras   # also the five-seed grid and the optimizers (an hour)

A result that is there, complete and made with the same flags is used as it is, so with the committed
results this takes seconds. No network is trained twice: the baseline is the sweep's lr 0.1 lane.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from fmlp.children import end_with_parent
from fmlp.description import Experiment
from fmlp.handin import report_flags, sheet
from fmlp.run import flags, interrupts

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report_flags.add_report_flags(parser)
    add = parser.add_argument
    add("--results", type=flags.folder, default=ROOT / "figures", help="folder of the results (default figures)")
    add("--extras", action="store_true", help="also run the five-seed grid and the optimizer sweeps if missing")
    flags.add_sweep_design_flags(parser)  # the sweep's design, which the whole hand-in follows
    add("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    report_flags.check_report_flags(parser, args.authors, args.title, args.font)
    flags.check_experiment_args(parser, args)
    if problem := flags.can_create_folder(args.results):
        parser.error(f"argument --results: cannot write {str(args.results)!r}: {problem}")
    return args


def design_of(args: argparse.Namespace) -> Experiment:
    """The sweep that the flags ask for: the description of lr_sweep.py with the same design flags."""
    names = {action.dest for action in flags.sweep_parser()._actions} - {"out", "save_params_dir", "help"}
    return flags.experiment(argparse.Namespace(**{name: getattr(args, name) for name in names if hasattr(args, name)}),
                            "lr_sweep")  # fmt: skip


RUNNING: list[subprocess.Popen] = []  # the steps' processes still running, for SIGTERM to reach them all
INTERRUPTED = "interrupted; what finished is kept: run the same command again to go on"


def on_signal(signum: int, frame) -> None:
    """Ctrl-C or SIGTERM. While steps run, the signal is theirs: Ctrl-C reaches them through the terminal's
    process group, SIGTERM is passed on, and each ends keeping what it finished (`check` says so). Between
    steps (loading, writing the bundle) this process ends at once, with one line and its temporary files
    removed."""
    if not RUNNING:
        interrupts.abort_or_defer(signum, INTERRUPTED)
    if signum == signal.SIGTERM:
        for process in RUNNING:
            process.send_signal(signal.SIGTERM)


def start(command: list[str], output: IO[bytes] | None = None) -> subprocess.Popen:
    """Starts one step's script; `output` takes what it prints (a step that runs beside another), else
    this process's terminal."""
    process = subprocess.Popen([sys.executable, *command], stdout=output, stderr=subprocess.STDOUT if output else None,
                               preexec_fn=end_with_parent)  # a step never outlives the hand-in, even a kill -9
    RUNNING.append(process)
    return process


def wait(process: subprocess.Popen) -> int:
    """The process's exit status, once it has ended."""
    status = process.wait()
    RUNNING.remove(process)
    return status


def check(name: str, command: list[str], status: int) -> None:
    """Exits with a step's status if it failed or was interrupted."""
    if status in (130, 143, -signal.SIGINT, -signal.SIGTERM):
        print(f"interrupted during the {name}; what finished is kept: run the same command again to go on",
              file=sys.stderr)  # fmt: skip
        sys.exit(status if status > 0 else 128 - status)  # 130 or 143, as the scripts end on a signal
    if status != 0:
        sys.exit(f"error: the {name} failed (exit status {status}): python {' '.join(command)}")


def run(name: str, command: list[str]) -> None:
    """Runs one step's script in the foreground; exits with its status if it fails or is interrupted."""
    check(name, command, wait(start(command)))


def run_beside(name: str, command: list[str]) -> Callable[[], None]:
    """Starts a step that runs beside the others, its output kept until it ends; returns the function
    that waits for it, prints its output and exits if it failed."""
    output = tempfile.TemporaryFile()
    process = start(command, output)

    def finished() -> None:
        status = wait(process)
        output.seek(0)
        sys.stdout.write(output.read().decode(errors="replace"))
        sys.stdout.flush()
        output.close()
        check(name, command, status)

    return finished


def stop_running() -> None:
    """Ends the steps still running beside one that failed or was interrupted, and waits for them."""
    for process in list(RUNNING):
        process.send_signal(signal.SIGTERM)
        wait(process)


def main() -> None:
    args = parse()
    started = time.perf_counter()
    from fmlp.handin import pipeline  # imported only now: it loads JAX and matplotlib

    design = design_of(args)
    for departure in sheet.departures(design):
        print(f"warning: the design departs from the exercise sheet: {departure}; the PDF says so", flush=True)
    steps = pipeline.steps(args.results, design, args.extras)
    by_name = {step.name: step for step in steps}
    sweep, diagnosis = by_name["learning-rate sweep"], by_name["networks' insides"]
    params_missing = not pipeline.params_of_sweep(args.results, design)
    to_run = []
    for number, step in enumerate(steps, 1):
        rerun_for_params = step is sweep and not pipeline.is_done(diagnosis) and params_missing
        if pipeline.is_done(step) and not rerun_for_params:
            print(f"[{number}/{len(steps)}] {step.name}: {step.result} is there", flush=True)
            continue
        command = step.command
        if step.result.with_name(f"{step.result.stem}.checkpoint.npz").exists():
            command = command + ["--resume"]  # an earlier try was cut short: go on from its last epoch
        to_run.append((f"[{number}/{len(steps)}] {step.name}", step, command))
    try:
        beside = []  # started first, so that they run while the others do
        for title, step, command in to_run:
            if step.alongside:
                print(f"{title} (beside the other steps): python {' '.join(command)}", flush=True)
                beside.append(run_beside(step.name, command))
        for title, step, command in to_run:
            if not step.alongside:
                print(f"{title}: python {' '.join(command)}", flush=True)
                run(step.name, command)
                if step is sweep:
                    pipeline.write_baseline(args.results)
        for finished in beside:
            finished()
    finally:
        stop_running()

    baseline = pipeline.read_result(args.results / "baseline.json")
    derived = pipeline.BASELINE_RATE in design.design.learning_rates
    if derived and (baseline is None or not pipeline.matches(baseline, pipeline.baseline_of(design))):
        if not pipeline.write_baseline(args.results):
            sys.exit(f"error: {args.results / 'lr_sweep.json'} has no lane of lr {pipeline.BASELINE_RATE:g} to be "
                     "the baseline")  # fmt: skip
        print(f"baseline: written from the sweep's lr {pipeline.BASELINE_RATE:g} lane", flush=True)

    count = write_pair(args, pipeline)
    print(f"wrote {args.results / 'report.pdf'} and {args.results / 'handin.zip'} ({count} files) in "
          f"{time.perf_counter() - started:.1f} s in all")  # fmt: skip


def write_pair(args: argparse.Namespace, pipeline) -> int:
    """Builds the PDF and the zip into a staging folder beside them, then renames both into place, so that
    the pair is always of one build: a failure (a full disk) is one line, and the previous pair stays as
    it was. Returns the zip's file count."""
    from fmlp.files import remove_stale_temporaries, temporary_folder

    remove_stale_temporaries(args.results)  # what a killed hand-in left
    try:
        with temporary_folder(".handin", beside=args.results) as staged:
            pdf, bundle = staged / "report.pdf", staged / "handin.zip"
            # Each value joined to its flag, so that one starting with "-" is still the flag's value.
            report = [str(ROOT / "experiments" / "report.py"), f"--results={args.results}", f"--out={pdf}",
                      f"--authors={', '.join(args.authors)}", f"--present={','.join(args.present)}",
                      f"--title={args.title}"]  # fmt: skip
            report += [f"--font={args.font}"] if args.font else []
            run("report", report)
            count = pipeline.bundle(bundle, pdf, args.results)
            with interrupts.whole("interrupted after report.pdf and handin.zip were both replaced"):
                pdf.replace(args.results / "report.pdf")
                bundle.replace(args.results / "handin.zip")
    except OSError as error:
        sys.exit(f"error: cannot write the hand-in into {args.results} ({error.strerror or error}); report.pdf "
                 "and handin.zip are as they were")  # fmt: skip
    return count


if __name__ == "__main__":
    for number in interrupts.SIGNALS:
        signal.signal(number, on_signal)
    main()
