"""The flags of the hand-in's content, shared by experiments/report.py and experiments/handin.py: the
authors, the exercises the group will present, the title and the font, checked before any work."""

import argparse
import unicodedata
from pathlib import Path

PRESENTABLE = ("reading", "from-scratch")  # 2.1 and 2.2, as fmlp.handin.report.content.PRESENTABLE names them


NAME_MAX = 60  # characters of one name: with its flag and quotes, it fits a line of the report's commands


def present_list(value: str) -> list[str]:
    """argparse type: comma-separated exercises from PRESENTABLE, each once, or empty for none."""
    items = list(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
    unknown = [item for item in items if item not in PRESENTABLE]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown))}: choose from {', '.join(PRESENTABLE)}")
    return items


def printable(value: str) -> str:
    """argparse type: text with no control characters (which no page can print), stripped; the refusal
    shows them escaped, never raw."""
    controls = sorted({char for char in value if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")})
    if controls:
        shown = ", ".join(ascii(char) for char in controls)
        raise argparse.ArgumentTypeError(f"{ascii(value)[:80]} holds control characters ({shown}); type plain text")
    return value.strip()


def author_list(value: str) -> list[str]:
    """argparse type: comma-separated names, at least one, each of printable text and at most NAME_MAX
    characters."""
    names = [name.strip() for name in printable(value).split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError('names no one; give the group\'s names, e.g. "Name A, Name B"')
    long = [name for name in names if len(name) > NAME_MAX]
    if long:
        raise argparse.ArgumentTypeError(f"{long[0][:30]!r}... is {len(long[0])} characters long; a name of at "
                                         f"most {NAME_MAX} fits a line of the report")  # fmt: skip
    return names


def title_text(value: str) -> str:
    """argparse type: a title of printable text, not empty."""
    title = printable(value)
    if not title:
        raise argparse.ArgumentTypeError("an empty title; give one, or leave the flag out for the default")
    return title


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
    parser.add_argument("--title", type=title_text, default="A multilayer perceptron from scratch on MNIST",
                        help="the title")  # fmt: skip
    parser.add_argument(
        "--font",
        type=Path,
        default=None,
        help="a TTF or OTF font for the characters DejaVu Sans lacks (e.g. Noto Sans CJK for Chinese names)",
    )


def right_to_left(text: str) -> list[str]:
    """The characters of text of a right-to-left script (Hebrew, Arabic, ...), which the report's pages,
    laid out left to right without shaping, would draw reversed and unjoined."""
    return sorted({char for char in text if unicodedata.bidirectional(char) in ("R", "AL")}, key=text.index)


def check_report_flags(parser: argparse.ArgumentParser, authors: list[str], title: str, font: Path | None) -> None:
    """--font must be a font file, and every character of --authors and --title drawable, in a script
    written left to right; exits 2 naming the flag and the characters."""
    if font is not None and not font.is_file():
        parser.error(f"argument --font: {str(font)!r} is not a file")
    from fmlp.handin.report.layout import missing_glyphs  # fontTools, which matplotlib brings, reads the fonts

    for flag, text in (("--authors", ", ".join(authors)), ("--title", title)):
        if reversed_characters := right_to_left(text):
            parser.error(f"argument {flag}: {' '.join(reversed_characters[:8])} are of a right-to-left script, "
                         "which the report cannot draw in order (no --font helps); write it in Latin letters")
        try:
            missing = missing_glyphs(text, font)
        except Exception as error:  # fontTools raises many kinds for a file that is not a font
            parser.error(f"argument --font: cannot read {str(font)!r} as a font ({error})")
        if missing:
            parser.error(
                f"argument {flag}: the report's font (DejaVu Sans{' and ' + str(font) if font else ''}) "
                f"cannot draw {' '.join(missing)}; pass --font PATH with a font that can (e.g. Noto Sans CJK)"
            )
