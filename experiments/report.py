"""Builds the hand-in PDF from the committed results and documents: top sheet, review, experiments, appendix.

python experiments/report.py --authors "Ada Lovelace, Alan Turing" --present reading,from-scratch  # figures/report.pdf

experiments/handin.py runs whatever result is missing first, then this, then bundles the source.
"""

import argparse
import sys
import time
from pathlib import Path

from fmlp.handin import report_flags
from fmlp.run import flags, interrupts

ROOT = Path(__file__).resolve().parent.parent


def build(args: argparse.Namespace, out: Path) -> None:
    """Lays out the report from args.results and args.docs and writes it to out; exits 1 naming what is
    missing or unreadable, a number written into the prose, or an expression that fails."""
    from fmlp.files import atomic_path, remove_stale_temporaries
    from fmlp.handin import report  # imported only now: fpdf2 and markdown-it load in about a second

    for document in report.DOCUMENTS:
        if not (args.docs / document).is_file():
            sys.exit(f"error: {args.docs / document} is missing (it is part of the repository)")
    try:
        text = report.draft(args.results, args.docs, args.authors, args.present)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}\nnothing written")
    try:
        pdf = report.lay_out(text.parts, args.docs, args.authors, args.present, args.title, font=args.font)
    except ValueError as error:  # a line of code too long for the page, or an equation that cannot be typeset
        sys.exit(f"error: {error}")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent)  # what a killed build left
    try:
        with atomic_path(out) as temp_path:
            pdf.output(str(temp_path))
    except OSError as error:  # a full disk, say
        sys.exit(f"error: cannot write {out} ({error.strerror or error}); nothing written, the previous PDF kept")
    print(f"wrote {out} ({pdf.page_no()} pages)", end="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    report_flags.add_report_flags(parser)
    parser.add_argument(
        "--results", type=Path, default=ROOT / "figures", help="folder of the results (default figures)"
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="folder of the review and discussion")
    parser.add_argument("--out", type=Path, default=None, help="the PDF (default RESULTS/report.pdf)")
    args = parser.parse_args()
    report_flags.check_report_flags(parser, args.authors, args.title, args.font)
    out = args.out or args.results / "report.pdf"
    problem = flags.can_create_folder(out.parent) or ("a folder" if out.is_dir() else None)
    if problem:
        parser.error(f"argument --out: cannot write {str(out)!r}: {problem}")
    started = time.perf_counter()
    build(args, out)
    print(f" in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    interrupts.main_or_exit(main, "interrupted; no PDF written")
