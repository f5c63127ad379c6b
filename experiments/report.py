"""Builds the hand-in PDF from the committed results and documents: top sheet, review, experiments, appendix.

python experiments/report.py                                            # figures/ -> figures/report.pdf
python experiments/report.py --authors "Ada Lovelace, Alan Turing" --present reading,from-scratch
"""

import argparse
import sys
import time
from pathlib import Path

from fmlp import flags

ROOT = Path(__file__).resolve().parent.parent
PRESENTABLE = ("reading", "from-scratch")  # 2.1 and 2.2; checked again against fmlp.report.content


def present_list(value: str) -> list[str]:
    """argparse type: comma-separated exercises from PRESENTABLE, or empty for none."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in PRESENTABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))}: choose from {', '.join(PRESENTABLE)}")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", default="", help='the group, e.g. "Name A, Name B" (default: none given)')
    parser.add_argument(
        "--present",
        type=present_list,
        default=[],
        help=f"exercises the group is willing to present, comma-separated: {', '.join(PRESENTABLE)} (default none)",
    )
    parser.add_argument("--title", default="A multilayer perceptron from scratch on MNIST", help="the title")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "figures", help="folder of the results (default figures)"
    )
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="folder of the review and discussion")
    parser.add_argument("--out", type=Path, default=None, help="the PDF (default RESULTS/report.pdf)")
    args = parser.parse_args()
    out = args.out or args.results / "report.pdf"
    problem = flags.can_create_folder(out.parent) or ("a folder" if out.is_dir() else None)
    if problem:
        parser.error(f"argument --out: cannot write {str(out)!r}: {problem}")
    started = time.perf_counter()

    from fmlp import report  # imported only now: fpdf2 and markdown-it load in about a second
    from fmlp.io import atomic_path

    for document in ("cudnn_review.md", "results.md"):
        if not (args.docs / document).is_file():
            sys.exit(f"error: {args.docs / document} is missing (it is part of the repository)")
    authors = [name.strip() for name in args.authors.split(",") if name.strip()]
    try:
        built = report.build(args.results, args.docs, authors, args.present, args.title)
    except FileNotFoundError as error:
        sys.exit(f"error: {error}")
    for warning in built.warnings:
        print(f"warning: docs/results.md quotes a percentage no result contains: {warning}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as temp_path:
        built.pdf.output(str(temp_path))
    print(f"wrote {out} ({built.pdf.page_no()} pages) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
