"""The hand-in PDF built from small end-to-end results, read back with pypdf; stale numbers; bad input."""

import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from .test_experiments import BASELINE, SWEEP, run_script, tiny

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "experiments" / "report.py"
FIGURES = ["baseline_loss.png", "baseline_accuracy.png", "lr_sweep_accuracy.png", "lr_sweep_loss.png"]


@pytest.fixture(scope="module")
def results(idx_dir, tmp_path_factory) -> Path:
    """baseline.py and lr_sweep.py outputs on tiny IDX data, in one folder as the report expects."""
    folder = tmp_path_factory.mktemp("results")
    assert run_script(BASELINE, *tiny(idx_dir, folder)) == 0
    assert run_script(SWEEP, *tiny(idx_dir, folder, "--lrs", "0.5,0.05")) == 0
    return folder


def text_of(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def test_report_has_the_authors_sections_declaration_and_every_figure(results, tmp_path, capsys):
    out = tmp_path / "hand-in" / "report.pdf"
    flags = ["--results", str(results), "--out", str(out), "--authors", "Ada Lovelace, Alan Turing"]
    assert run_script(REPORT, *flags, "--present", "from-scratch") == 0
    text = text_of(out)
    for expected in ("Ada Lovelace, Alan Turing", "2.3 Willingness to present", "2.1 Review of the cuDNN paper",
                     "2.2 The MLP from scratch", "Setup", "Appendix: how to reproduce",
                     "The group declares itself willing to present: 2.2 The MLP from scratch."):  # fmt: skip
        assert expected in text, expected
    images = sum(len(page.images) for page in PdfReader(out).pages)
    assert images >= len(FIGURES)
    assert [p.name for p in out.parent.iterdir()] == ["report.pdf"]
    assert "wrote" in capsys.readouterr().out


def test_without_present_the_declaration_says_none(results, tmp_path):
    out = tmp_path / "report.pdf"
    assert run_script(REPORT, "--results", str(results), "--out", str(out)) == 0
    assert "does not declare itself willing to present any exercise" in text_of(out)


def test_a_stale_percentage_in_the_discussion_is_named(results, tmp_path, capsys):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    discussion = docs / "results.md"
    discussion.write_text(discussion.read_text() + "\n\nA doctored claim: the network reached 12.34% at best.\n")
    assert run_script(REPORT, "--results", str(results), "--docs", str(docs), "--out", str(tmp_path / "r.pdf")) == 0
    warnings = capsys.readouterr().err
    assert "12.34% in: A doctored claim: the network reached 12.34% at best." in warnings


def test_a_missing_result_names_the_file_and_its_command(results, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(results, partial)
    (partial / "lr_sweep.json").unlink()
    out = tmp_path / "report.pdf"
    assert run_script(REPORT, "--results", str(partial), "--out", str(out)) == 1
    message = capsys.readouterr().err
    assert str(partial / "lr_sweep.json") in message and "python experiments/lr_sweep.py" in message
    assert not out.exists()


def test_an_unknown_present_item_exits_2_listing_the_valid_ones(tmp_path, capsys):
    assert run_script(REPORT, "--present", "reading,singing", "--out", str(tmp_path / "r.pdf")) == 2
    message = capsys.readouterr().err
    assert "argument --present" in message and "'singing'" in message and "reading, from-scratch" in message


def test_an_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run_script(REPORT, "--out", str(blocker / "report.pdf")) == 2
    assert "argument --out" in capsys.readouterr().err
