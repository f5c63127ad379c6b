"""The hand-in as one PDF: a top sheet with the declaration, the paper review, the experiments with
their figures and JSON-built tables, and how to reproduce them. Reads results; trains nothing."""

import datetime
from pathlib import Path
from typing import NamedTuple

from fpdf import FPDF

from fmlp.handin.report import belonging, commands, content, layout, prose

COURSE = "Embedded Machine Learning"
EXERCISE = "Exercise 2: a multilayer perceptron from scratch"


class Draft(NamedTuple):
    """The report's parts as Markdown with every result filled in: known before anything is laid out."""

    parts: list[str]  # each starts a page


def _top_sheet(pdf: FPDF, title: str, authors: list[str], present: list[str], date: str) -> None:
    pdf.add_page()
    pdf.ln(40)
    pdf.set_font(layout.FONT, "B", 22)
    pdf.multi_cell(0, 11, title, align="C")
    pdf.ln(6)
    pdf.set_font(layout.FONT, "", 13)
    pdf.multi_cell(0, 7, f"{COURSE}\n{EXERCISE}", align="C")
    pdf.ln(14)
    pdf.set_font(layout.FONT, "", 12)
    pdf.multi_cell(0, 7, ", ".join(authors) if authors else "(authors not given)", align="C")
    pdf.ln(3)
    pdf.multi_cell(0, 7, date, align="C")
    pdf.ln(24)
    pdf.set_font(layout.FONT, "B", 12)
    pdf.multi_cell(0, 7, "2.3 Willingness to present")
    pdf.set_font(layout.FONT, "", 10)
    pdf.ln(1)
    with pdf.table(col_widths=(3, 1), text_align="LEFT", line_height=6) as table:
        for cells in [("exercise", "willing to present"), *content.declaration_rows(present)]:
            row = table.row()
            for text in cells:
                row.cell(text)
    pdf.ln(2)
    summary = (
        "The group declares itself willing to present: " + ", ".join(content.PRESENTABLE[key] for key in present) + "."
        if present
        else "The group does not declare itself willing to present any exercise."
    )
    pdf.multi_cell(0, 6, summary)


PART = "\n\n<!-- part -->\n\n"  # between the parts of the document, each of which starts a page
DOCUMENTS = ("cudnn_review.md", "derivation.md", "results.md")


def draft(results_dir: Path, docs_dir: Path, authors: list[str], present: list[str]) -> Draft:
    """The report's text: the documents rendered over the results (`fmlp.handin.report.prose`), then
    assembled. Raises FileNotFoundError listing missing results (and their commands), and ValueError
    naming a results file that cannot be read, the numbers written into the documents' prose (each with
    its file and line), or a template expression that fails."""
    missing = content.missing_results(results_dir)
    if missing:
        raise FileNotFoundError("missing results: " + "; ".join(missing))
    literal = prose.check_documents(docs_dir, DOCUMENTS)
    if literal:
        raise ValueError(f"{len(literal)} numbers written into the prose, not computed from the results "
                         "(write each as an expression, or declare a constant of the method):\n"
                         + "\n".join(literal))  # fmt: skip
    results = content.load_results(results_dir, docs_dir)
    belonging.check_required(results, results_dir)
    results, others = belonging.sort_out(results)
    lines = commands.commands(results, authors, present)
    context = content.template_context(results)
    texts = {name: (docs_dir / name).read_text() for name in DOCUMENTS}
    review, derivation, discussion = (
        prose.render(content.kept_sections(text, results), f"docs/{name}", context) for name, text in texts.items()
    )
    reproduced = len(lines)  # How to reproduce's commands; the closing list's follow them
    closing, added = closing_list(texts, results, others, authors, present, reproduced)
    lines += added
    main, appendix = content.split_appendix(content.without_title(discussion))
    parts = [
        "# 2.1 Review of the cuDNN paper\n\n" + content.demote(content.without_title(review), 1),
        "# 2.2 The MLP from scratch\n\n"
        + content.sheet_answers(results)
        + "\n## Setup\n\n"
        + content.setup_text(results)
        + "\n\n"
        + content.demote(derivation, 1)
        + "\n\n"
        + content.demote(main, 1),
        "# Appendix\n\n"
        + content.demote(appendix, 1)
        + "\n\n## How to reproduce\n\n"
        + commands.reproduce_text(reproduced, results["baseline.json"])
        + closing,
    ]
    assembled = content.assemble(PART.join(parts), results, results_dir)
    return Draft(commands.with_commands(assembled, lines).split(PART))


def closing_list(
    texts: dict[str, str],
    results: dict,
    others: list[belonging.LeftOut],
    authors: list[str],
    present: list[str],
    first: int,
) -> tuple[str, list[str]]:
    """The report's closing list: each section of the documents left out, because its result was not
    made or is of another design, with what would make it for this design. Returns (its Markdown, its
    commands, which fill its placeholders from number `first` on, after How to reproduce's)."""
    why = {entry.name: entry.why for entry in others}
    missing = [(heading, name) for text in texts.values() for heading, name in content.required_sections(text)
               if name not in results]  # fmt: skip
    if not missing:
        return "", []
    added, items = [], []
    for heading, name in missing:
        reason = f"{name} is {why[name]}" if name in why else f"{name} was not made"
        words, made_by = commands.making(name, results["lr_sweep.json"], authors, present)
        items.append(f"- **{heading}**: {reason}; {words}." + "".join(
            f"\n\n```\n@command {first + len(added) + number}\n```" for number in range(len(made_by))))
        added += made_by
    text = ("\n\n## Left out of this report\n\nThese sections quote only results of this design, and were "
            "left out:\n\n" + "\n".join(items) + "\n")
    return text, added


def lay_out(
    parts: list[str],
    docs_dir: Path,
    authors: list[str],
    present: list[str],
    title: str,
    date: str | None = None,
    font: Path | None = None,
) -> FPDF:
    """The whole document, not yet written: the top sheet, then each part of a draft from a new page."""
    pdf = layout.new_pdf(title, ", ".join(authors), font)
    _top_sheet(pdf, title, authors, present, date or datetime.date.today().isoformat())
    for part in parts:
        pdf.add_page()
        layout.markdown(pdf, part, docs_dir)
    return pdf
