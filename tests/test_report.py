"""The hand-in PDF: built from small end-to-end results and from the committed ones, read back with
pypdf; no number written into the prose; commands rebuilt from recorded flags; bad input."""

import argparse
import json
import math
import re
import shlex
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from fmlp import description
from fmlp.handin.report import commands, content, layout, prose
from fmlp.run import flags

from .test_experiments import BASELINE, SWEEP, run_script, tiny

# Every test of this module on one worker, so that its module fixture runs once.
pytestmark = pytest.mark.xdist_group("report")

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "experiments" / "report.py"
GRADCHECK = ROOT / "experiments" / "gradcheck.py"
FIGURES = ["baseline_loss.png", "baseline_accuracy.png", "lr_sweep_accuracy.png", "lr_sweep_loss.png"]
AUTHORS = ["--authors", "Ada Lovelace, Alan Turing"]


@pytest.fixture(scope="module")
def results(idx_dir, tmp_path_factory) -> Path:
    """baseline.py, lr_sweep.py and gradcheck.py outputs on tiny IDX data, in one folder as the report expects."""
    folder = tmp_path_factory.mktemp("results")
    assert run_script(BASELINE, *tiny(idx_dir, folder)) == 0
    assert run_script(SWEEP, *tiny(idx_dir, folder, "--lrs", "0.5,0.05")) == 0
    assert run_script(GRADCHECK, "--out", str(folder), "--data-source", "idx", "--data-dir", str(idx_dir),
                      "--hidden", "32,16") == 0  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def committed_report(tmp_path_factory) -> Path:
    """The report of the committed results and documents."""
    out = tmp_path_factory.mktemp("committed") / "report.pdf"
    assert run_script(REPORT, *AUTHORS, "--present", "reading,from-scratch", "--out", str(out)) == 0
    return out


def text_of(pdf: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(pdf).pages)


def test_report_has_the_authors_sections_declaration_and_every_figure(results, tmp_path, capsys):
    out = tmp_path / "hand-in" / "report.pdf"
    assert run_script(REPORT, "--results", str(results), "--out", str(out), *AUTHORS, "--present", "from-scratch") == 0
    text = text_of(out)
    wanted = [
        "Ada Lovelace, Alan Turing",
        "2.3 Willingness to present",
        "2.1 Review of the cuDNN paper",
        "2.2 The MLP from scratch",
        "Setup",
        "Appendix",
        "How to reproduce",
        "Linear layer",
        "def dense_param_grads",
        "The group declares itself willing to present: 2.2 The MLP from scratch.",
    ]
    for expected in wanted:
        assert expected in text, expected
    images = sum(len(page.images) for page in PdfReader(out).pages)
    assert images >= len(FIGURES)
    assert [p.name for p in out.parent.iterdir()] == ["report.pdf"]
    assert "wrote" in capsys.readouterr().out


def test_the_committed_report_numbers_every_figure_and_table_keeps_the_main_part_short_and_has_an_outline(
    committed_report,
):
    reader = PdfReader(committed_report)
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    assert "Figure 1:" in text and "Table 1:" in text and "Table 2" in text
    assert "](#fig-" not in text and "](#tab-" not in text
    appendix_page = next(i for i, page in enumerate(pages) if page.lstrip().startswith("Appendix"))
    # 2.2 shows every component's code at 8 pt: the layer, its update, the sigmoid, the softmax, the loss
    assert appendix_page <= 12, "the main part (cover to discussion) fits in 12 pages"
    outline = [item.title for item in reader.outline if not isinstance(item, list)]
    assert {"2.1 Review of the cuDNN paper", "2.2 The MLP from scratch", "Appendix"} <= set(outline)
    assert "..." not in text.split("How to reproduce")[-1], "no placeholder in the commands"


def test_without_present_the_declaration_says_none(results, tmp_path):
    out = tmp_path / "report.pdf"
    assert run_script(REPORT, "--results", str(results), "--out", str(out), *AUTHORS) == 0
    assert "does not declare itself willing to present any exercise" in text_of(out)


def test_a_number_written_into_the_prose_stops_the_build_naming_its_file_and_line(tmp_path, capsys):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    discussion = docs / "results.md"
    lines = discussion.read_text().splitlines()
    discussion.write_text("\n".join(lines + ["", "A doctored claim: the sweep took 98765.4 s in all."]) + "\n")
    out = tmp_path / "r.pdf"
    assert run_script(REPORT, "--docs", str(docs), "--out", str(out), *AUTHORS) == 1
    message = capsys.readouterr().err
    assert f"docs/results.md:{len(lines) + 2}: 98765.4 in: A doctored claim" in message
    assert "nothing written" in message and not out.exists()


def test_the_lint_reads_prose_only_and_accepts_declared_constants():
    text = (
        "<!-- constants: 784 0.1307 -->\n"
        "Inputs: 784 pixels, mean 0.1307, {{ 98.4 }} computed, {% if 3 %}x{% endif %}.\n"
        "Code `98.99%`, $x^{2}$ and ![a figure](lr_0.5_seed_1.png) and lr_0.1 and mnist.pkl.gz.\n"
        "```\n7.25 s\n```\n"
        "It scored 98.14%, and 1,234 images.\n"
    )
    assert prose.literal_numbers(text, "d.md") == [
        "d.md:7: 98.14 in: It scored 98.14%, and 1,234 images.",
        "d.md:7: 1,234 in: It scored 98.14%, and 1,234 images.",
    ]


def test_an_expression_that_fails_names_the_document_and_line():
    with pytest.raises(ValueError, match=r"docs/x.md:3: UndefinedError"):
        prose.render("One.\nTwo.\n{{ nothing.here }}\n", "docs/x.md", {})


def test_a_value_that_wraps_to_a_lines_start_opens_no_list_and_code_is_left_alone():
    template = "Accuracy ranges from 95% (lr\n{{ high }}) down to 23% (lr\n{{ low }}). Ends at epoch\n{{ last }}.\n"
    rendered = prose.render(template + "\n```\n1. kept\n```\n", "docs/x.md", {"high": 1, "low": 0.001, "last": 30})
    tokens = layout.parser().parse(rendered)
    assert [token.type for token in tokens if "list" in token.type] == []
    html = layout.parser().render(rendered).replace("\n", " ")
    assert "(lr 1) down" in html and "epoch 30.</p>" in html
    assert "1. kept" in rendered


def _parsed(parser, command: str) -> argparse.Namespace:
    words = shlex.split(command.replace("\\\n", " "))
    args = parser.parse_args(words[2:])
    if getattr(args, "optimizer", None) in ("momentum", "nesterov") and args.momentum is None:  # as check_args does
        args.momentum = flags.DEFAULT_MOMENTUM
    return args


def _defaults(parser) -> dict:
    """Every flag's default, as a JSON records it (the parser may require some flags)."""
    return flags.flag_values(argparse.Namespace(**{a.dest: a.default for a in parser._actions if a.dest != "help"}))


TRAINING_PARSERS = {"baseline": flags.baseline_parser, "lr_sweep": flags.sweep_parser,
                    "finetune": flags.finetune_parser}  # fmt: skip


def test_the_appendix_commands_reproduce_each_committed_results_flags_exactly(monkeypatch):
    # The networks a quantization command names are not committed (figures/params is not tracked): the
    # commands are parsed here for their text, so a named file need not exist.
    monkeypatch.setattr(flags, "params_file", Path)
    results = content.load_results(ROOT / "figures", ROOT / "docs")
    lines = commands.commands(results, ["Zoë O'Neil"], ["reading"])
    checked = 0
    for name, document in results.items():
        stem = name.rsplit("/", 1)[-1]
        recorded = document.get("config")
        if stem in commands.EXPERIMENTS:
            described = description.from_config(recorded)
            command = commands.command_lines(flags.command_words(described))
            script = described.design.script
            rebuilt = flags.experiment(_parsed(TRAINING_PARSERS[script](), command), script)
            assert not description.differences(rebuilt, described), name
            assert rebuilt.outputs[:2] == described.outputs[:2], name  # the folder and the saved networks
        elif stem in commands.PARSERS:
            script, parser = commands.PARSERS[stem]
            command = commands.command_lines(commands.command_words(parser(), script, recorded))
            assert flags.flag_values(_parsed(parser(), command)) == _defaults(parser()) | recorded, name
        else:
            continue
        assert command in lines
        checked += 1
        assert all(len(line) <= commands.LINE_WIDTH for line in command.splitlines())
    assert checked >= 7  # baseline, sweep, gradient check, five seeds, four optimizers
    assert shlex.split(lines[-1])[-3:] == ["Zoë O'Neil", "--present", "reading"]


def test_the_appendix_commands_run_in_order_each_reading_only_what_one_before_it_wrote(monkeypatch):
    """Every saved network or fine-tuned result a command reads lies in the --save-params or --out folder
    of a command before it; handin.py comes last."""
    monkeypatch.setattr(flags, "params_file", Path)
    results = content.load_results(ROOT / "figures", ROOT / "docs")
    lines = commands.commands(results, ["A"], [])
    saved, written, reads = set(), set(), 0
    for line in lines:
        words = shlex.split(line.replace("\\\n", " "))[2:]  # after "python SCRIPT"
        flag_at = [index for index, word in enumerate(words) if word.startswith("--")] + [len(words)]
        positional = words[: flag_at[0]]  # the commands write their positional arguments first
        options = {words[a]: words[a + 1 : b] for a, b in zip(flag_at, flag_at[1:])}
        for path in positional:  # a saved network, lr_<rate>_seed_<seed>.npz in a --save-params folder
            assert Path(path).parent in saved, (path, line)
        for path in options.get("--fine-tuned", []):  # a fine-tuning's --out folder
            assert Path(path) in written, (path, line)
        reads += len(positional) + len(options.get("--fine-tuned", []))
        saved |= set(map(Path, options.get("--save-params", [])))
        written |= set(map(Path, options.get("--out", [])))
    assert reads >= 20 and lines[-1].startswith("python experiments/handin.py")


def test_a_recorded_path_with_spaces_or_shell_text_is_quoted():
    experiment = description.updated(description.defaults("lr_sweep"), outputs={"folder": Path("my results; rm -rf ~")})
    words = flags.command_words(experiment)
    assert shlex.split(" ".join(words))[-2:] == ["--out", "my results; rm -rf ~"]


def test_a_missing_result_names_the_file_and_its_command(results, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(results, partial)
    (partial / "lr_sweep.json").unlink()
    out = tmp_path / "report.pdf"
    assert run_script(REPORT, "--results", str(partial), "--out", str(out), *AUTHORS) == 1
    message = capsys.readouterr().err
    assert str(partial / "lr_sweep.json") in message and "python experiments/lr_sweep.py" in message
    assert not out.exists()


def test_a_malformed_results_file_is_named(results, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(results, broken)
    (broken / "baseline.json").write_text('{"config": ')
    assert run_script(REPORT, "--results", str(broken), "--out", str(tmp_path / "r.pdf"), *AUTHORS) == 1
    assert f"{broken / 'baseline.json'}: not a readable JSON file" in capsys.readouterr().err


@pytest.mark.parametrize("authors", ["", " ,  , "])
def test_authors_that_name_no_one_exit_2(authors, tmp_path, capsys):
    assert run_script(REPORT, "--authors", authors, "--out", str(tmp_path / "r.pdf")) == 2
    assert "argument --authors" in capsys.readouterr().err


def test_an_unknown_present_item_exits_2_listing_the_valid_ones(tmp_path, capsys):
    assert run_script(REPORT, *AUTHORS, "--present", "reading,singing", "--out", str(tmp_path / "r.pdf")) == 2
    message = capsys.readouterr().err
    assert "argument --present" in message and "'singing'" in message and "reading, from-scratch" in message


def test_an_unwritable_out_exits_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert run_script(REPORT, *AUTHORS, "--out", str(blocker / "report.pdf")) == 2
    assert "argument --out" in capsys.readouterr().err


STIX = Path(__import__("matplotlib").get_data_path()) / "fonts" / "ttf" / "STIXGeneral.ttf"


def test_a_name_the_font_cannot_draw_exits_2_naming_it_and_font_draws_it(results, tmp_path, capsys):
    out = tmp_path / "r.pdf"
    assert run_script(REPORT, "--results", str(results), "--out", str(out), "--authors", "𝔄da, Zoë") == 2
    message = capsys.readouterr().err
    assert "argument --authors" in message and "cannot draw 𝔄" in message and "--font" in message
    assert not out.exists()
    flags = ["--results", str(results), "--out", str(out), "--authors", "𝔄da, Zoë", "--font", str(STIX)]
    assert run_script(REPORT, *flags) == 0
    assert "𝔄da, Zoë" in PdfReader(out).pages[0].extract_text()
    assert run_script(REPORT, *AUTHORS, "--font", str(tmp_path / "none.ttf"), "--out", str(out)) == 2


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda d: d | {"runs": []}, "runs is empty"),
        (lambda d: d | {"runs": "x"}, "runs is str"),
        (lambda d: {k: v for k, v in d.items() if k != "config"}, "config is NoneType"),
        (lambda d: d | {"runs": [d["runs"][0] | {"epochs": [d["runs"][0]["epochs"][0] | {"test_accuracy": "0.9"}]}]},
         "runs[0].epochs[0].test_accuracy is str"),
        # 13. Hand-edited NaN, Infinity or 750% accuracies were accepted and conclusions drawn from them.
        (lambda d: d | {"runs": [d["runs"][0] | {"epochs": [d["runs"][0]["epochs"][0] | {"test_accuracy": 7.5}]}]},
         "runs[0].epochs[0].test_accuracy is 7.5, which no run records"),
        (lambda d: d | {"runs": [d["runs"][0] | {"epochs": [d["runs"][0]["epochs"][0] | {"test_loss": math.nan}]}]},
         "runs[0].epochs[0].test_loss is nan, which no run records"),
        (lambda d: d | {"runs": [d["runs"][0] | {"epochs": [d["runs"][0]["epochs"][0] | {"train_loss": math.inf}]}]},
         "runs[0].epochs[0].train_loss is inf, which no run records"),
        # 13. A malformed result surfaced as "docs/results.md:LINE: IndexError", blaming the document.
        (lambda d: d | {"runs": [d["runs"][0] | {"epochs": []}]}, "runs[0] has no measured epoch"),
    ],
)  # fmt: skip
def test_a_tampered_results_file_is_named_with_its_problem(results, tmp_path, capsys, change, problem):
    tampered = tmp_path / "tampered"
    shutil.copytree(results, tampered)
    document = json.loads((tampered / "lr_sweep.json").read_text())
    (tampered / "lr_sweep.json").write_text(json.dumps(change(document)))
    assert run_script(REPORT, "--results", str(tampered), "--out", str(tmp_path / "r.pdf"), *AUTHORS) == 1
    assert f"{tampered / 'lr_sweep.json'}: {problem}" in capsys.readouterr().err


def test_a_value_that_is_not_a_finite_number_prints_as_a_dash():
    from fmlp.handin.report.tables import percent

    assert [percent(v) for v in (0.98421, None, float("nan"), float("inf"))] == ["98.42%", "–", "–", "–"]


# The second probe (issue of names and documents that ran code), numbered as it numbered them.
HOSTILE_NAMES = ["A <!-- requires: this -->", "<!-- not in the report -->", "[TA](x)", "{{ 7 * 7 }}",
                 "```source fmlp.nn.layers.dense_forward```"]  # fmt: skip


def test_names_are_text_and_a_results_folder_with_spaces_keeps_its_figures(results, tmp_path, capsys):
    """4. A name was read as Markdown, template and directive (it imported a module, deleted How to reproduce,
    printed a function's source); 5. a results path with a space lost every figure."""
    spaced = tmp_path / "my results [x] (1)"
    shutil.copytree(results, spaced)
    out = tmp_path / "r.pdf"
    authors = ["--authors", ", ".join(HOSTILE_NAMES)]
    assert run_script(REPORT, "--results", str(spaced), "--out", str(out), *authors, "--title", "{{ 6 * 7 }}") == 0
    assert "Beautiful is better than ugly" not in capsys.readouterr().out  # the module `this` never ran
    text = text_of(out)
    assert "How to reproduce" in text and "Where each result was made" in text
    command = text[text.index("experiments/handin.py"):]
    for name in HOSTILE_NAMES:
        assert name.replace("`", "")[:12] in command.replace("`", ""), name
    cover = PdfReader(out).pages[0].extract_text()
    assert "{{ 6 * 7 }}" in cover and "42" not in cover
    assert "def dense_forward" not in command
    images = sum(len(page.images) for page in PdfReader(out).pages)
    assert images >= len(FIGURES)  # every figure, found through the folder's spaces and brackets


def test_a_document_cannot_reach_python_internals(results, tmp_path, capsys):
    """3. A docs/ template ran shell commands while the report built."""
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    proof = tmp_path / "ran"
    derivation = (docs / "derivation.md").read_text().splitlines(keepends=True)
    derivation.insert(2, f"{{{{ cycler.__init__.__globals__.os.popen('id > {proof}').read() }}}}\n")
    (docs / "derivation.md").write_text("".join(derivation))
    out = tmp_path / "r.pdf"
    assert run_script(REPORT, "--results", str(results), "--docs", str(docs), "--out", str(out), *AUTHORS) == 1
    assert "docs/derivation.md:3" in capsys.readouterr().err
    assert not proof.exists() and not out.exists()
    with pytest.raises(ValueError, match="sandbox"):
        prose.render("{{ final.__globals__ }}", "docs/x.md", {})
    with pytest.raises(ValueError, match="sandbox"):
        prose.render("{{ runs.append(1) }}", "docs/x.md", {"runs": []})


@pytest.mark.parametrize("image", ["not a png", "bomb"])
def test_a_results_png_that_is_no_image_or_declares_a_huge_one_is_one_line(results, tmp_path, capsys, image):
    """12. PIL's UnidentifiedImageError and DecompressionBombError were tracebacks."""
    tampered = tmp_path / "tampered"
    shutil.copytree(results, tampered)
    target = tampered / "baseline_loss.png"
    if image == "bomb":  # a PNG header that declares 30000 x 30000 pixels
        header = bytearray(target.read_bytes()[:33])
        header[16:24] = (30000).to_bytes(4, "big") * 2
        target.write_bytes(bytes(header))
    else:
        target.write_text("not a png")
    assert run_script(REPORT, "--results", str(tampered), "--out", str(tmp_path / "r.pdf"), *AUTHORS) == 1
    message = capsys.readouterr().err
    assert f"{target}: " in message and "Traceback" not in message


@pytest.mark.parametrize(
    "flag, value, problem",
    [
        ("--authors", "A" * 61, "at most 60"),  # 13. refused only at layout, after the training
        ("--title", "  ", "an empty title"),  # 13. a cover without a title
        ("--authors", "Ada\x1b[31m", "control characters ('\\x1b')"),  # 13. echoed raw
        ("--authors", "שרה כהן", "right-to-left"),  # 8. drawn reversed and unjoined
    ],
)
def test_a_name_or_title_that_cannot_be_printed_is_refused_before_any_work(tmp_path, capsys, flag, value, problem):
    values = {"--authors": "Ada", "--title": "T"} | {flag: value}
    arguments = [f"{name}={text}" for name, text in values.items()]
    assert run_script(REPORT, *arguments, "--out", str(tmp_path / "r.pdf")) == 2
    message = capsys.readouterr().err
    assert f"argument {flag}" in message and problem in message and "\x1b" not in message


def test_present_lists_each_exercise_once_and_a_name_the_monospace_font_lacks_still_prints(results, tmp_path):
    """13. --present reading,reading listed 2.1 twice; 8. DejaVu Sans Mono lacks ễ: "Nguyn" in the command."""
    out = tmp_path / "r.pdf"
    flags = ["--results", str(results), "--out", str(out), "--authors", "Nguyễn Văn An", "--present", "reading,reading"]
    assert run_script(REPORT, *flags) == 0
    text = text_of(out)
    assert text.count("Nguyễn Văn An") >= 2  # on the cover and in the command
    assert "--present reading" in text and "reading,reading" not in text


def design_report(idx_dir: Path, folder: Path, *design: str) -> str:
    """A design of one's own end to end, in this process: its sweep, its baseline (lr 0.1), the gradient
    check of its network, then the report (its diagnosis left out); the PDF's text."""
    hidden = design[design.index("--hidden") + 1] if "--hidden" in design else "32,16"
    activation = design[design.index("--activation") + 1] if "--activation" in design else "sigmoid"
    assert run_script(SWEEP, *tiny(idx_dir, folder, *design)) == 0
    sweep_only = {"--lrs", "--seeds"}  # the baseline is one run: lr 0.1, the first seed
    baseline_design = [word for index, word in enumerate(design)
                       if not sweep_only & set(design[max(index - 1, 0) : index + 1])]  # fmt: skip
    assert run_script(BASELINE, *tiny(idx_dir, folder, *baseline_design)) == 0
    assert run_script(GRADCHECK, "--out", str(folder), "--data-source", "idx", "--data-dir", str(idx_dir), "--hidden",
                      hidden, "--activation", activation, "--batch-size", "8") == 0  # fmt: skip
    assert run_script(REPORT, "--results", str(folder), "--out", str(folder / "report.pdf"), *AUTHORS) == 0
    return " ".join(text_of(folder / "report.pdf").split())


def test_a_design_with_seeds_and_validation_speaks_of_means_intervals_and_the_choice_on_validation(idx_dir, tmp_path):
    text = design_report(idx_dir, tmp_path, "--lrs", "0.5,0.05", "--seeds", "2", "--validation", "100")
    assert "Over the 2 seeds, the best two by their mean final test accuracy are lr" in text
    assert "With 2 seeds these Student t intervals are wide" in text
    assert "Chosen on the validation split, by the mean over the seeds" in text
    assert "One seed cannot say" not in text and "for seed 1" in text
    percentages = [float(value) for value in re.findall(r"(-?\d+\.\d+)%", text)]
    assert percentages and all(0 <= value <= 100 for value in percentages)
    assert "Left out of this report" in text and "Inside the trained networks" in text  # no diagnosis made


def test_a_rate_that_diverges_is_named_and_left_out_of_every_order(idx_dir, tmp_path):
    text = design_report(idx_dir, tmp_path, "--activation", "relu", "--lrs", "1000,0.5,0.05")
    assert "At lr 1000 the run diverged for seed 1" in text
    assert "among the rates that did not diverge" in text and "from 0.5 to 0.05, rank" in text
    assert "For the ReLU network" in text and "He's rule" in text


def test_a_design_whose_every_rate_diverges_gets_a_pdf_that_says_so(idx_dir, tmp_path):
    text = design_report(idx_dir, tmp_path, "--activation", "relu", "--lrs", "1000,200")
    assert "Every rate diverged for seed 1" in text and "every rate diverged within 2 epochs" in text


def test_every_equation_of_the_documents_prints_its_smallest_glyph_at_7_pt_or_more(tmp_path):
    """A script of a script printed at 4 to 5 pt (e^{Z_ij} inside a fraction); the typesetter refuses one."""
    from fmlp.handin.report import equations

    found = [line.strip() for name in ("derivation.md", "results.md", "cudnn_review.md")
             for block in re.findall(r"^```math\n(.*?)^```", (ROOT / "docs" / name).read_text(), re.S | re.M)
             for line in block.splitlines() if line.strip()]  # fmt: skip
    assert len(found) >= 10 and all(equations.smallest_points(line) >= 7 for line in found)
    assert equations.script_depth(r"\frac{e^{Z_{ij}}}{2}") == 3 and equations.script_depth(r"\mathbb{R}^{B}") == 1
    with pytest.raises(ValueError, match="nests scripts or fractions 2 deep"):
        equations.render(r"e^{Z_{ij}}", tmp_path)
