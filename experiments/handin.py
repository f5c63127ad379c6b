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
import time
from pathlib import Path

from fmlp.description import defaults, updated
from fmlp.handin import report_flags
from fmlp.run import flags

ROOT = Path(__file__).resolve().parent.parent


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report_flags.add_report_flags(parser)
    add = parser.add_argument
    add("--results", type=flags.folder, default=ROOT / "figures", help="folder of the results (default figures)")
    add("--extras", action="store_true", help="also run the five-seed grid and the optimizer sweeps if missing")
    epochs = defaults("lr_sweep").training.epochs
    add("--epochs", type=flags.positive_int, default=epochs, help=f"training epochs of every run (default {epochs})")
    add("--train-limit", type=flags.positive_int, default=None, help="train on the first N images only")
    flags.add_data_flags(parser)
    add("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args()
    report_flags.check_report_flags(parser, args.authors, args.title, args.font)
    if problem := flags.can_create_folder(args.results):
        parser.error(f"argument --results: cannot write {str(args.results)!r}: {problem}")
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"argument --data-dir: {str(args.data_dir)!r} is not a folder")
    return args


def run(name: str, command: list[str]) -> None:
    """Runs one step's script in the foreground; exits with its status if it fails or is interrupted.

    Ctrl-C reaches the script too (same process group), which keeps its finished epochs; the wait goes on
    until it has written them. SIGTERM to this process is passed on to it.
    """
    process = subprocess.Popen([sys.executable, *command])
    signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM))
    while True:
        try:
            status = process.wait()
            break
        except KeyboardInterrupt:
            continue
    if status in (130, 143, -signal.SIGINT, -signal.SIGTERM):
        print(f"interrupted during the {name}; what finished is kept: run the same command again to go on",
              file=sys.stderr)  # fmt: skip
        sys.exit(status if status > 0 else 128 - status)  # 130 or 143, as the scripts end on a signal
    if status != 0:
        sys.exit(f"error: the {name} failed (exit status {status}): python {' '.join(command)}")


def main() -> None:
    args = parse()
    started = time.perf_counter()
    from fmlp.handin import pipeline  # imported only now: it loads JAX and matplotlib

    design = updated(
        defaults("lr_sweep"),
        training={"epochs": args.epochs},
        data={"source": args.data_source, "folder": args.data_dir, "train_limit": args.train_limit},
        outputs={"quiet": args.quiet},
    )
    steps = pipeline.steps(args.results, design, args.extras)
    sweep, _, diagnosis = steps[:3]
    params_missing = not all(path.is_file() for path in pipeline.diagnosed_params(args.results))
    trained = False
    for number, step in enumerate(steps, 1):
        rerun_for_params = step is sweep and not pipeline.is_done(diagnosis) and params_missing
        if pipeline.is_done(step) and not rerun_for_params:
            print(f"[{number}/{len(steps)}] {step.name}: {step.result} is there", flush=True)
            continue
        command = step.command
        if step.result.with_name(f"{step.result.stem}.checkpoint.npz").exists():
            command = command + ["--resume"]  # an earlier try was cut short: go on from its last epoch
        print(f"[{number}/{len(steps)}] {step.name}: python {' '.join(command)}", flush=True)
        run(step.name, command)
        trained = True
        if step is sweep:
            pipeline.write_baseline(args.results)

    baseline = pipeline.read_result(args.results / "baseline.json")
    if baseline is None or not pipeline.matches(baseline, pipeline.baseline_of(design)):
        if not pipeline.write_baseline(args.results):
            sys.exit(f"error: {args.results / 'lr_sweep.json'} has no lane of lr 0.1 and seed 1 to be the baseline")
        print("baseline: written from the sweep's lr 0.1 lane", flush=True)

    pdf = args.results / "report.pdf"
    report = [str(ROOT / "experiments" / "report.py"), "--results", str(args.results), "--out", str(pdf)]
    report += ["--authors", ", ".join(args.authors), "--present", ",".join(args.present), "--title", args.title]
    if trained and not args.allow_stale:
        # The prose of docs/ describes the committed results: new runs change their timings at least.
        print("note: results were made anew, so numbers of docs/ that differ from them are warnings, not errors")
    report += ["--allow-stale"] if args.allow_stale or trained else []
    report += ["--font", str(args.font)] if args.font else []
    run("report", report)
    count = pipeline.bundle(args.results / "handin.zip", pdf, args.results)
    print(f"wrote {args.results / 'handin.zip'} ({count} files) in {time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
