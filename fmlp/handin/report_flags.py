"""The flags of the hand-in's content, shared by experiments/report.py and experiments/handin.py: the
authors, the exercises the group will present, the title and the font, checked before any work."""

import argparse
from pathlib import Path

PRESENTABLE = ("reading", "from-scratch")  # 2.1 and 2.2, as fmlp.handin.report.content.PRESENTABLE names them


def present_list(value: str) -> list[str]:
    """argparse type: comma-separated exercises from PRESENTABLE, or empty for none."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    unknown = [item for item in items if item not in PRESENTABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))}: choose from {', '.join(PRESENTABLE)}")
    return items


def author_list(value: str) -> list[str]:
    """argparse type: comma-separated names, at least one."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError('names no one; give the group\'s names, e.g. "Name A, Name B"')
    return names


def add_report_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the hand-in's content: --authors (required), --present, --title, --font."""
    parser.add_argument("--authors", type=author_list, required=True, action="extend",
                        help='the group, e.g. "Name A, Name B" (may be given several times)')  # fmt: skip
    parser.add_argument(
        "--present",
        type=present_list,
        default=[],
        help=f"exercises the group is willing to present, comma-separated: {', '.join(PRESENTABLE)} (default none)",
    )
    parser.add_argument("--title", default="A multilayer perceptron from scratch on MNIST", help="the title")
    parser.add_argument(
        "--font",
        type=Path,
        default=None,
        help="a TTF or OTF font for the characters DejaVu Sans lacks (e.g. Noto Sans CJK for Chinese names)",
    )


def check_report_flags(parser: argparse.ArgumentParser, authors: list[str], title: str, font: Path | None) -> None:
    """--font must be a font file, and every character of --authors and --title drawable; exits 2 naming
    the flag and the characters."""
    if font is not None and not font.is_file():
        parser.error(f"argument --font: {str(font)!r} is not a file")
    from fmlp.handin.report.layout import missing_glyphs  # fontTools, which matplotlib brings, reads the fonts

    for flag, text in (("--authors", ", ".join(authors)), ("--title", title)):
        try:
            missing = missing_glyphs(text, font)
        except Exception as error:  # fontTools raises many kinds for a file that is not a font
            parser.error(f"argument --font: cannot read {str(font)!r} as a font ({error})")
        if missing:
            parser.error(
                f"argument {flag}: the report's font (DejaVu Sans{' and ' + str(font) if font else ''}) "
                f"cannot draw {' '.join(missing)}; pass --font PATH with a font that can (e.g. Noto Sans CJK)"
            )
