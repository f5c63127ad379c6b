"""Markdown -> PDF pages: markdown-it-py parses, fpdf2 lays out, DejaVu (shipped with matplotlib) gives
every glyph the text uses (→, ·, ≤, −, Greek). Nothing here reads results or trains anything.

Blocks are laid out one by one so that page breaks fall where a reader expects them: a heading is
never the last thing on a page, a figure is printed at the size it was drawn for (so its text keeps
its point size), never split, and floats to the top of the next page when this one is full, a table is
kept whole with its caption. Headings become the PDF's
outline; ```math blocks are typeset equations; a code block's lines are never broken.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import matplotlib
from fpdf import FPDF, TextStyle
from markdown_it import MarkdownIt
from markdown_it.token import Token
from PIL import Image

from fmlp.handin.report import equations

FONT = "DejaVu"
MONO = "DejaVuMono"
BODY_SIZE = 10
HEADING_SIZES = {"h1": 17, "h2": 14, "h3": 12, "h4": 11}
KEEP_WITH_HEADING_MM = 45  # a heading needs this much room below it, or it moves to the next page
FIGURE_MAX_HEIGHT_MM = 170
FIGURE_MAX_PIXELS = 40_000_000  # far above any figure the scripts draw, far below a decompression bomb
CODE_SIZES = (8.5, 8.0, 7.5, 7.0, 6.5, 6.0)  # a code block takes the largest size at which its longest line fits
MM_PER_POINT = 25.4 / 72


def _font_files() -> dict[tuple[str, str], Path]:
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return {
        (FONT, ""): folder / "DejaVuSans.ttf",
        (FONT, "B"): folder / "DejaVuSans-Bold.ttf",
        (FONT, "I"): folder / "DejaVuSans-Oblique.ttf",
        (FONT, "BI"): folder / "DejaVuSans-BoldOblique.ttf",
        (MONO, ""): folder / "DejaVuSansMono.ttf",
        (MONO, "B"): folder / "DejaVuSansMono-Bold.ttf",
        (MONO, "I"): folder / "DejaVuSansMono-Oblique.ttf",
        (MONO, "BI"): folder / "DejaVuSansMono-BoldOblique.ttf",
    }


def missing_glyphs(text: str, extra_font: Path | None = None) -> list[str]:
    """The characters of text (letters and signs, not spaces) that neither DejaVu Sans nor extra_font can draw."""
    from fontTools.ttLib import TTFont  # matplotlib's own dependency

    covered = set(TTFont(_font_files()[(FONT, "")], lazy=True).getBestCmap())
    if extra_font is not None:
        covered |= set(TTFont(extra_font, lazy=True, fontNumber=0).getBestCmap())
    return sorted({char for char in text if not char.isspace() and ord(char) not in covered}, key=text.index)


def new_pdf(title: str, author: str, extra_font: Path | None = None, twin: bool = True) -> FPDF:
    """An A4 document with the DejaVu families registered, page numbers in the footer; extra_font, if
    given, draws whatever DejaVu has no glyph for (names in other scripts). With twin, it carries a
    blank document of the same fonts and margins, to try a layout on before drawing it (`fits_here`)."""

    class Pages(FPDF):
        floats: list[tuple[Path, str]] = []  # figures waiting for the top of the next page
        twin: FPDF | None = None

        def header(self):
            _place_floats(self)

        def footer(self):
            self.set_y(-12)
            self.set_font(FONT, "", 8)
            self.cell(0, 8, f"{self.page_no()}", align="C")

    pdf = Pages(format="A4", unit="mm")
    pdf.floats = []
    for (family, style), path in _font_files().items():
        pdf.add_font(family, style, str(path))
    if extra_font is not None:
        pdf.add_font("Extra", "", str(extra_font))
    # DejaVu Sans draws what the monospaced font lacks (a name's ễ in a command), the extra font the rest.
    pdf.set_fallback_fonts([FONT] + ["Extra"] * (extra_font is not None), exact_match=False)
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creator("fmlp experiments/report.py")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.twin = new_pdf(title, author, extra_font, twin=False) if twin else None
    return pdf


def fits_here(pdf: FPDF, draw: Callable[[FPDF], None]) -> bool:
    """Whether draw(pdf) would end on the current page, above its bottom margin.

    Tried on pdf's twin from the same height of a fresh page: fpdf2's own trial (offset_rendering)
    deep-copies the whole document twice per try, which made the tables most of the layout's time.
    """
    twin = pdf.twin
    twin.add_page()
    twin.set_xy(pdf.get_x(), pdf.get_y())
    page = twin.page
    draw(twin)
    return twin.page == page and twin.get_y() <= twin.page_break_trigger


def parser() -> MarkdownIt:
    """CommonMark with tables."""
    return MarkdownIt("commonmark").enable("table")


def room(pdf: FPDF) -> float:
    """Millimetres left on the current page above the bottom margin."""
    return pdf.h - pdf.b_margin - pdf.get_y()


def ensure_room(pdf: FPDF, needed: float) -> None:
    if room(pdf) < needed:
        pdf.add_page()


def _heading(pdf: FPDF, tag: str, text: str) -> None:
    """A heading, moved to the next page unless KEEP_WITH_HEADING_MM fit below it."""
    ensure_room(pdf, KEEP_WITH_HEADING_MM + 12)
    pdf.ln(3 if tag != "h1" else 1)
    pdf.start_section(text, level=int(tag[1]) - 1, strict=False)
    pdf.set_font(FONT, "B", HEADING_SIZES.get(tag, BODY_SIZE))
    pdf.multi_cell(0, HEADING_SIZES.get(tag, BODY_SIZE) * 0.5, text)
    pdf.ln(1.5)
    pdf.set_font(FONT, "", BODY_SIZE)


LINE_HEIGHT = "1.35"  # fpdf2's default of 1.0 sets lines of text too close for reading


def _html(pdf: FPDF, html: str) -> None:
    pdf.set_font(FONT, "", BODY_SIZE)
    html = html.replace("<p>", f'<p line-height="{LINE_HEIGHT}">').replace("<li>", f'<li line-height="{LINE_HEIGHT}">')
    monospace = {tag: TextStyle(font_family=MONO) for tag in ("code", "pre")}
    pdf.write_html(html, font_family=FONT, tag_styles=monospace, li_prefix_color=(0, 0, 0))


def figure_size(pdf: FPDF, path: Path) -> tuple[float, float]:
    """(width, height) in mm of an image at the size it was drawn (its pixels over its dpi), made smaller
    only to fit the text width and FIGURE_MAX_HEIGHT_MM. ValueError naming the file when it is not an
    image, or declares more than FIGURE_MAX_PIXELS."""
    try:
        with Image.open(path) as image:
            pixels_wide, pixels_high = image.size
            dpi = image.info.get("dpi", (72, 72))[0] or 72
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not an image the report can print ({error})") from None
    if pixels_wide * pixels_high > FIGURE_MAX_PIXELS:
        raise ValueError(f"{path}: declares {pixels_wide} x {pixels_high} pixels, more than a figure of the report "
                         f"has ({FIGURE_MAX_PIXELS:,}); draw it again with its command")  # fmt: skip
    width = min(pdf.epw, pixels_wide / dpi * 25.4)
    height = width * pixels_high / pixels_wide
    if height > FIGURE_MAX_HEIGHT_MM:
        width, height = width * FIGURE_MAX_HEIGHT_MM / height, FIGURE_MAX_HEIGHT_MM
    return width, height


def figure(pdf: FPDF, path: Path, caption: str) -> None:
    """An image at its drawn size (see figure_size), on one page, with its caption below it; where the
    page has no room left for it, it floats to the top of the next page and the text goes on here.
    Figures keep their order."""
    if pdf.floats or room(pdf) < figure_size(pdf, path)[1] + 10:
        pdf.floats.append((path, caption))
        return
    _place_figure(pdf, path, caption)


def _place_figure(pdf: FPDF, path: Path, caption: str) -> None:
    width, height = figure_size(pdf, path)
    pdf.image(str(path), x=pdf.l_margin + (pdf.epw - width) / 2, w=width, h=height)
    if caption:
        pdf.set_font(FONT, "I", 8.5)
        pdf.multi_cell(0, 4.2, caption, align="C")
        pdf.set_font(FONT, "", BODY_SIZE)
    pdf.ln(3)


def _place_floats(pdf: FPDF) -> None:
    """At the top of a new page: the waiting figures, in order, as many as fit (the first always does)."""
    placed = False
    while pdf.floats and (not placed or room(pdf) >= figure_size(pdf, pdf.floats[0][0])[1] + 10):
        _place_figure(pdf, *pdf.floats.pop(0))
        placed = True


def flush_floats(pdf: FPDF) -> None:
    """New pages until no figure is waiting: the end of a part keeps its figures."""
    while pdf.floats:
        pdf.add_page()


def _cell_text(inline: Token) -> str:
    """The text of a table cell's inline token, markup dropped."""
    return "".join(child.content for child in inline.children or [] if child.type in ("text", "code_inline"))


def _column_widths(pdf: FPDF, rows: list[list[str]]) -> list[float]:
    """Column widths in mm for the current font: every column gets its longest word (in bold, as in the
    header) so that no word is split, and the room left goes to the columns whose texts are longer."""
    padding = 3
    pdf.set_font(style="B")
    columns = list(zip(*rows))
    minimum = [max(pdf.get_string_width(w) for text in column for w in text.split() or [""]) + padding
               for column in columns]  # fmt: skip
    wanted = [max(pdf.get_string_width(text) for text in column) + padding for column in columns]
    pdf.set_font(style="")
    extra = [max(w - m, 0) for w, m in zip(wanted, minimum)]
    share = min(1.0, max(pdf.epw - sum(minimum), 0) / sum(extra)) if sum(extra) else 0.0
    return [m + e * share for m, e in zip(minimum, extra)]


def _table(pdf: FPDF, tokens: list[Token], caption: str = "") -> None:
    """A table with its caption above it, both moved to the next page unless the whole table fits here."""
    # On a fresh page a table longer than the page breaks as it must.
    while pdf.get_y() > pdf.t_margin + 1 and not fits_here(
        pdf, lambda document: _draw_table(document, tokens, caption)
    ):
        pdf.add_page()  # which may place waiting figures first: try again below them
    _draw_table(pdf, tokens, caption)


def _draw_table(pdf: FPDF, tokens: list[Token], caption: str) -> None:
    if caption:
        pdf.ln(2)
        pdf.set_font(FONT, "I", 8.5)
        pdf.multi_cell(0, 4.2, caption)
    rows, row = [], []
    for token in tokens:
        if token.type == "tr_open":
            row = []
        elif token.type == "inline":
            row.append(_cell_text(token))
        elif token.type == "tr_close":
            rows.append(row)
    columns = max(len(r) for r in rows)
    rows = [r + [""] * (columns - len(r)) for r in rows]
    size = 9 if columns <= 5 else 8  # 8 pt at the least, however many columns
    pdf.ln(1)
    pdf.set_font(FONT, "", size)
    options = {"text_align": "LEFT", "line_height": size * 0.5, "first_row_as_headings": True}
    with pdf.table(col_widths=_column_widths(pdf, rows), **options) as table:
        for cells in rows:
            table_row = table.row()
            for text in cells:
                table_row.cell(text)
    pdf.ln(2)
    pdf.set_font(FONT, "", BODY_SIZE)


def _images_only(inline: Token) -> list[Token] | None:
    """The image tokens of a paragraph that holds nothing but images; None otherwise."""
    children = [
        c
        for c in inline.children or []
        if not (c.type in ("softbreak", "hardbreak") or c.content.strip() == "" and c.type == "text")
    ]
    if children and all(c.type == "image" for c in children):
        return children
    return None


def _block_end(tokens: list[Token], start: int) -> int:
    """Index just past the block that opens at tokens[start] (nesting counted)."""
    depth, index = 0, start
    while True:
        depth += tokens[index].nesting
        index += 1
        if depth <= 0:
            return index


def code_size(pdf: FPDF, code: str) -> float:
    """The largest of CODE_SIZES at which every line of code fits the text width; ValueError naming the
    line when none does (a broken line of a command would no longer paste)."""
    longest = max(code.splitlines() or [""], key=len)
    for size in CODE_SIZES:
        pdf.set_font(MONO, "", size)
        if pdf.get_string_width(longest) <= pdf.epw - 2:
            return size
    raise ValueError(f"a code line is too long for the page at {CODE_SIZES[-1]} pt: {longest!r}")


def _code(pdf: FPDF, code: str) -> None:
    """A code block in monospace on grey, each line whole; moved whole to the next page unless it fits
    here (one longer than a page breaks as it must)."""
    size = code_size(pdf, code)
    height = size * 0.5 * (code.count("\n") + 1) + 3
    if room(pdf) < height and pdf.get_y() > pdf.t_margin + 1 and height <= pdf.h - pdf.t_margin - pdf.b_margin:
        pdf.add_page()
    pdf.ln(1)
    pdf.set_font(MONO, "", size)
    pdf.set_fill_color(245, 245, 245)
    pdf.multi_cell(0, size * 0.5, code, fill=True, align="L")
    pdf.ln(2)
    pdf.set_font(FONT, "", BODY_SIZE)


def _equations(pdf: FPDF, tex: str, folder: Path) -> None:
    """Each line of a ```math block as a typeset equation, centred, at its true size."""
    pdf.ln(1)
    for line in filter(None, map(str.strip, tex.splitlines())):
        path = equations.render(line, folder)
        width, height = figure_size(pdf, path)
        ensure_room(pdf, height + 2)
        pdf.image(str(path), x=pdf.l_margin + (pdf.epw - width) / 2, w=width, h=height)
        pdf.ln(2)


def _caption_of_table(tokens: list[Token], index: int) -> str | None:
    """The text of a paragraph that is a table's caption ("Table N: ...", emphasised) followed by the table."""
    inline = tokens[index + 1]
    text = inline.content.strip("*_ ")
    following = _block_end(tokens, index)
    if text.startswith("Table ") and following < len(tokens) and tokens[following].type == "table_open":
        return text
    return None


def markdown(pdf: FPDF, text: str, base: Path) -> None:
    """Lays out Markdown text; image paths are relative to `base`."""
    md = parser()
    tokens = md.parse(text)
    index = 0
    with tempfile.TemporaryDirectory(prefix="fmlp-equations-") as folder:
        while index < len(tokens):
            index = _block(pdf, md, tokens, index, base, Path(folder))
    flush_floats(pdf)


def _block(pdf: FPDF, md: MarkdownIt, tokens: list[Token], index: int, base: Path, folder: Path) -> int:
    """Lays out the block that starts at tokens[index]; returns the index of the next block."""
    token = tokens[index]
    end = _block_end(tokens, index)
    if token.type == "heading_open":
        _heading(pdf, token.tag, tokens[index + 1].content)
    elif token.type == "paragraph_open" and (images := _images_only(tokens[index + 1])) is not None:
        for image in images:
            figure(pdf, (base / unquote(image.attrs["src"])).resolve(), image.content)
    elif token.type == "paragraph_open" and (caption := _caption_of_table(tokens, index)) is not None:
        table_end = _block_end(tokens, end)
        _table(pdf, tokens[end:table_end], caption)
        return table_end
    elif token.type == "table_open":
        _table(pdf, tokens[index:end])
    elif token.type == "fence" and token.info.strip() == "math":
        _equations(pdf, token.content, folder)
    elif token.type in ("fence", "code_block"):
        _code(pdf, token.content.rstrip("\n"))
    elif token.type == "hr":
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(3)
    elif token.type != "html_block":
        _html(pdf, md.renderer.render(tokens[index:end], md.options, {}))
    return end
