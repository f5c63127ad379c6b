"""What the hand-in says, as Markdown: the documents in docs/, with every table rebuilt from the metrics
JSON (`fmlp.handin.report.tables`), and the setup and appendix written from the JSON too.

Markers in the documents steer the assembly:
- `<!-- table: NAME -->` before a Markdown table: the report prints the table built from the JSON
  instead (NAME one of tables.TABLES), so no number in a table is copied by hand;
- `<!-- requires: NAME -->` right after a heading: the section is left out unless the result NAME
  was loaded (a path under the results folder, e.g. robustness/lr_sweep.json, or a benchmark's file
  name in the docs folder);
- `<!-- appendix -->` on a line of its own: what follows goes to the report's appendix;
- `<!-- not in the report -->` right after a heading: the section is for readers of docs/ only.

Figures and tables are numbered in the order they appear; the prose refers to them as
`[Figure](#fig-NAME)` (NAME the image's path under figures/ without .png, "/" as "-", e.g.
fig-robustness-lr_sweep_loss) and `[Table](#tab-NAME)`, which become
"Figure 3" and "Table 2". A ```source block lists functions (fmlp.nn.layers.dense_forward) whose source
code is printed in its place. Links to files of the repository become plain text (a PDF cannot follow
them).
"""

import ast
import importlib
import inspect
import json
import math
import re
import textwrap
from pathlib import Path
from urllib.parse import quote

from fmlp.analysis.stats import select
from fmlp.data import MEAN, STD
from fmlp.description import OPTIMIZERS as OPTIMIZER_TITLES
from fmlp.description import from_config, optimizer_title, rate_name
from fmlp.handin import sheet
from fmlp.handin.report.tables import (
    MEASURED,
    OPTIMIZERS,
    PATIENCE,
    TABLES,
    activation_runs,
    caption,
    cortex_m_runs,
)
from fmlp.words import describe, training_images_words

# The results the report needs, and the command that writes each.
REQUIRED = {
    "baseline.json": "python experiments/baseline.py",
    "baseline_loss.png": "python experiments/baseline.py",
    "baseline_accuracy.png": "python experiments/baseline.py",
    "lr_sweep.json": "python experiments/lr_sweep.py",
    "lr_sweep_accuracy.png": "python experiments/lr_sweep.py",
    "lr_sweep_loss.png": "python experiments/lr_sweep.py",
    "gradcheck.json": "python experiments/gradcheck.py",
}
OPTIONAL = (
    {
        "robustness/lr_sweep.json": "python experiments/lr_sweep.py --seeds 5 --validation 10000 "
        "--out figures/robustness",
        "diagnose/diagnose.json": "python experiments/diagnose.py figures/params/lr_0.1_seed_1.npz "
        "figures/params/lr_1_seed_1.npz --out figures/diagnose",
    }
    | {
        f"optimizers/{name}/lr_sweep.json": f"python experiments/lr_sweep.py --optimizer {name} --seeds 5 "
        f"--validation 10000 --out figures/optimizers/{name}"
        for name in OPTIMIZERS
    }
    | {
        f"activations/{name}/lr_sweep.json": f"python experiments/lr_sweep.py --activation {name} --seeds 3 "
        f"--validation 10000 --out figures/activations/{name} --save-params figures/params/activations/{name}"
        for name in ("tanh", "relu")
    }
    | {
        "activations/sigmoid/lr_sweep.json": "python experiments/lr_sweep.py --lrs 1,0.1 --seeds 3 "
        "--validation 10000 --out figures/activations/sigmoid --save-params figures/params/activations/sigmoid",
        "activations/diagnose/diagnose.json": "python experiments/diagnose.py "
        + " ".join(
            f"figures/params/activations/{name}/lr_{rate}_seed_1.npz"
            for name, rate in (
                ("relu", "0.05"),
                ("relu", "0.1"),
                ("sigmoid", "0.1"),
                ("sigmoid", "1"),
                ("tanh", "0.1"),
                ("tanh", "1"),
            )
        )
        + " --out figures/activations/diagnose",
        "quantize/float/lr_sweep.json": "python experiments/lr_sweep.py --lrs 1 --seeds 5 --validation 10000 "
        "--out figures/quantize/float --save-params figures/params/quantize",
        "quantize/quantize.json": "python experiments/quantize.py figures/params/quantize/lr_1_seed_*.npz "
        "--fine-tuned figures/quantize/finetune_* --out figures/quantize",
    }
    | {
        f"quantize/finetune_{bits}bit{suffix}/finetune.json": "python experiments/finetune.py "
        f"figures/params/quantize/lr_1_seed_*.npz --bits {bits}{flag} --validation 10000 "
        f"--out figures/quantize/finetune_{bits}bit{suffix}"
        for bits in (2, 1)
        for suffix, flag in (("", ""), ("_decay", " --rate-decay 0.7"))
    }
)
PRESENTABLE = {"reading": "2.1 Review of the cuDNN paper", "from-scratch": "2.2 The MLP from scratch"}
TABLE_MARKER = re.compile(r"<!-- table: (\w+) -->\n(?:\n*(?:\|.*\n?)+)?")
REQUIRES_MARKER = re.compile(r"<!-- requires: (\S+) -->")
DOCS_ONLY = "<!-- not in the report -->"  # right after a heading: the report's appendix says it already


def missing_results(results_dir: Path) -> list[str]:
    """'FILE (write it with: COMMAND)' for each required result that is not there."""
    return [f"{results_dir / name} (write it with: {command})" for name, command in REQUIRED.items()
            if not (results_dir / name).is_file()]  # fmt: skip


def _read_json(path: Path) -> dict:
    """A results file's JSON object, checked by `check_result`; ValueError naming the file when it is
    not one."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON file ({error})") from error
    if not isinstance(document, dict):
        raise ValueError(f"{path}: holds a JSON {type(document).__name__}, not an object of results")
    check_result(path, document)
    return document


def load_results(results_dir: Path, docs_dir: Path) -> dict[str, dict]:
    """Every metrics JSON the report reads, by its path under the results folder, and the benchmarks'
    JSON of the docs folder by file name; ValueError naming the results that were interrupted."""
    names = [name for name in (*REQUIRED, *OPTIONAL) if name.endswith(".json") and (results_dir / name).is_file()]
    results = {name: _read_json(results_dir / name) for name in names}
    cut_short = [name for name, document in results.items() if document.get("interrupted")]
    if cut_short:
        raise ValueError(f"{', '.join(str(results_dir / name) for name in cut_short)}: interrupted before its last "
                         "epoch; a report describes finished runs (run its command again with --resume)")  # fmt: skip
    return results | {name: _read_json(docs_dir / name) for name in MEASURED if (docs_dir / name).is_file()}


APPENDIX_MARKER = "<!-- appendix -->"


def split_appendix(text: str) -> tuple[str, str]:
    """(main part, appendix) of a document at its `<!-- appendix -->` line; no marker: no appendix."""
    main, _, appendix = text.partition(APPENDIX_MARKER)
    return main, appendix


def _sections(text: str) -> list[str]:
    """text cut before every heading line (outside fenced code)."""
    pieces, current, fenced = [], [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#") and current:
            pieces.append("".join(current))
            current = []
        current.append(line)
    return pieces + ["".join(current)]


def kept_sections(text: str, results: dict, docs_only: bool = False) -> str:
    """text without the sections whose `<!-- requires: NAME -->` result is not among the loaded results
    (with their subsections), and without those marked `<!-- not in the report -->` unless docs_only is
    true."""
    kept, skip_level = [], None
    for section in _sections(text):
        level = len(section) - len(section.lstrip("#")) if section.startswith("#") else None
        if skip_level is not None and level is not None and level <= skip_level:
            skip_level = None
        required = REQUIRES_MARKER.search(section)
        if skip_level is None and required and required.group(1) not in results:
            skip_level = level
        if skip_level is None and DOCS_ONLY in section and not docs_only:
            skip_level = level
        if skip_level is None:
            kept.append(section)
    return "".join(kept)


def required_sections(text: str) -> list[tuple[str, str]]:
    """(heading, result) of each section of text that requires a result (`<!-- requires: NAME -->`)."""
    found = []
    for section in _sections(text):
        required = REQUIRES_MARKER.search(section)
        if section.startswith("#") and required:
            found.append((section.splitlines()[0].lstrip("#").strip(), required.group(1)))
    return found


def assemble(text: str, results: dict, results_dir: Path) -> str:
    """Markdown as the report prints it: figures and tables numbered and referred to by number, tables
    rebuilt from the JSON, source blocks filled in, file links as text, figure paths pointed at the
    results folder."""
    text = numbered(kept_sections(text, results), results)
    text = TABLE_MARKER.sub(lambda match: TABLES[match.group(1)](results) + "\n", text)
    text = plain_links(with_sources(text))
    # Percent-encoded, so that a folder's spaces or brackets stay part of the image's path (layout decodes it).
    return text.replace("](../figures/", f"]({quote(results_dir.resolve().as_posix())}/")


def without_title(text: str) -> str:
    """A document without its first line when that is a top-level heading (the report gives its own)."""
    first, _, rest = text.partition("\n")
    return rest if first.startswith("# ") else text


def demote(text: str, levels: int = 1) -> str:
    """Every heading `levels` deeper (outside fenced code), so a document can sit under a report section."""
    lines, fenced = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" * levels + line if not fenced and line.startswith("#") else line)
    return "".join(lines)


def setup_text(results: dict) -> str:
    """The experiment's setup in a few lines: the sweep's design in words (`fmlp.words.describe`), the
    baseline's place in it, the data's normalisation, what is written by hand, and how the design departs
    from the sheet."""
    sweep, baseline = from_config(results["lr_sweep.json"]["config"]), from_config(results["baseline.json"]["config"])
    by_hand = ("Forward pass, backward pass and update are" if sweep.training.optimizer == "sgd"
               else "Forward and backward pass are")  # fmt: skip
    return (
        f"{describe(sweep)} The baseline is the run at learning rate {rate_name(baseline.design.learning_rates[0])} "
        f"and seed {baseline.design.seed}. Pixels are scaled to [0, 1], then (x − {MEAN}) / {STD}. {by_hand} "
        "written out by hand in JAX (the next section derives them and prints their code) and checked against "
        "automatic differentiation on this network. The source code is in handin.zip beside this PDF: the "
        "library in fmlp/, the scripts that wrote every result in experiments/, the tests in tests/."
        + departures_text(sweep)
    )


def sheet_answers(results: dict) -> str:
    """2.2's opening: the sheet's items, each with where the report answers it."""
    sweep = from_config(results["lr_sweep.json"]["config"])
    rates = ", ".join(rate_name(rate) for rate in sweep.design.learning_rates)
    return (
        "| the sheet asks for | where |\n| --- | --- |\n"
        "| forward pass, backward pass and update of the linear layer, the sigmoid, the softmax and the "
        "cross-entropy | *Forward pass, backward pass and update, derived*: each component's equations and code |\n"
        "| the three-layer MLP, its training step | *The network and the update* |\n"
        f"| train for {sweep.training.epochs} epochs; train and test loss, test accuracy | "
        "[Figure](#fig-baseline_loss), [Figure](#fig-baseline_accuracy) (*Baseline*) |\n"
        f"| the same for learning rates {rates} | [Figure](#fig-lr_sweep_accuracy), [Figure](#fig-lr_sweep_loss) "
        "(*Learning-rate sweep*) |\n"
        "| what was expected and what was observed | the **Expected** and **Observed** paragraphs of *Baseline* "
        "and *Learning-rate sweep*, and the *Conclusion* |\n"
    )


def departures_text(sweep) -> str:
    """A sentence saying how the sweep's design departs from the exercise sheet; empty when it does not."""
    found = sheet.departures(sweep)
    return f" **This design departs from the exercise sheet:** {'; '.join(found)}." if found else ""


def template_context(results: dict) -> dict:
    """The names the documents' templates see (`fmlp.handin.report.prose`): each loaded result under a
    short name (None where it was not made) and a few of their descriptions in words."""
    optimizers = {"sgd": results.get("robustness/lr_sweep.json")} | {
        name: results.get(f"optimizers/{name}/lr_sweep.json") for name in OPTIMIZERS
    }
    sweep = results["lr_sweep.json"]
    sizes = list(from_config(sweep["config"]).network.sizes)
    return {
        "design": from_config(sweep["config"]),
        "baseline": results["baseline.json"],
        "b": results["baseline.json"]["runs"][0],
        "baseline_data": training_images_words(from_config(results["baseline.json"]["config"]).data),
        "sweep": sweep,
        "optimizer_title": optimizer_title(from_config(sweep["config"]).training),
        "sizes": sizes,
        "weight_count": sum(inputs * outputs for inputs, outputs in zip(sizes, sizes[1:])),
        "first_layer_weights": sizes[0] * sizes[1],
        "grad": results.get("gradcheck.json"),
        "robust": results.get("robustness/lr_sweep.json"),
        "diag": results.get("diagnose/diagnose.json"),
        "optim": {name: document for name, document in optimizers.items() if document is not None},
        "activ": {
            name: {"runs": runs, "selected": select(runs), "seeds": sorted({run["seed"] for run in runs})}
            for name, runs in activation_runs(results)
        },  # the seeds every activation has
        "optimizer_titles": OPTIMIZER_TITLES,
        "adiag": results.get("activations/diagnose/diagnose.json"),
        "quant": results.get("quantize/quantize.json"),
        "bench": results.get("benchmark_cpu.json"),
        "gpu": results.get("benchmark_gpu.json"),
        "cortex": cortex_m_runs(results),
        "early_stopping_patience": PATIENCE,
    }


def source_code(names: str) -> str:
    """The source of each function named (module.function, one per line), under a comment naming its file.
    ValueError for a name outside fmlp: a document must not make the report import just any module."""
    blocks = []
    for name in names.split():
        if not name.startswith("fmlp.") or name.count(".") < 2:
            raise ValueError(f"a source block names {name!r}; it may name fmlp's functions only (fmlp.module.name)")
        module_name, function_name = name.rsplit(".", 1)
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
        code = without_docstring(inspect.getsource(function)).rstrip()
        blocks.append(f"# {module_name.replace('.', '/')}.py\n{code}")
    return "\n\n".join(blocks)


def without_docstring(source: str) -> str:
    """A function's source without its docstring: the text beside the code gives its equation and shapes,
    and the source in handin.zip keeps it."""
    body = ast.parse(textwrap.dedent(source)).body[0].body
    first = body[0]
    if not (isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str)):
        return source
    lines = source.splitlines(keepends=True)
    return "".join(lines[: first.lineno - 1] + lines[first.end_lineno :])


SOURCE_BLOCK = re.compile(r"^```source\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?!https?:|#)[^)]*\)")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
REFERENCE = re.compile(r"\[(Figure|Table)\]\(#(fig|tab)-([\w.-]+)\)")


def with_sources(text: str) -> str:
    """Each ```source block replaced by a Python code block of the functions it names."""
    return SOURCE_BLOCK.sub(lambda match: f"```python\n{source_code(match.group(1))}\n```\n", text)


def plain_links(text: str) -> str:
    """Links to files of the repository as their text: inside a PDF they would lead nowhere."""
    return LINK.sub(lambda match: match.group(1), text)


def numbered(text: str, results: dict) -> str:
    """Figures and tables numbered in order of appearance, their captions prefixed ("Figure 2: ...",
    "Table 1: ..." above each table built from a marker), and every [Figure](#fig-NAME) and
    [Table](#tab-NAME) reference replaced by its number. ValueError names a reference to nothing."""
    labels: dict[str, int] = {}

    def figure(match):
        label = "fig-" + match.group(2).split("figures/", 1)[-1].removesuffix(".png").replace("/", "-")
        labels[label] = number = sum(key.startswith("fig-") for key in labels) + 1
        return f"![Figure {number}: {match.group(1)}]({match.group(2)})"

    def table(match):
        labels[f"tab-{match.group(1)}"] = number = sum(key.startswith("tab-") for key in labels) + 1
        return f"*Table {number}: {caption(match.group(1), results)}*\n\n<!-- table: {match.group(1)} -->"

    text = IMAGE.sub(figure, text)
    text = re.sub(r"<!-- table: (\w+) -->", table, text)

    def reference(match):
        label = f"{match.group(2)}-{match.group(3)}"
        if label not in labels:
            raise ValueError(f"a reference to {label}, which no figure or table of the report carries")
        return f"{match.group(1)} {labels[label]}"

    return REFERENCE.sub(reference, text)


def declaration_rows(present: list[str]) -> list[tuple[str, str]]:
    """(exercise, willing to present?) for each exercise of the sheet."""
    return [(title, "yes" if key in present else "no") for key, title in PRESENTABLE.items()]


NUMBER_OR_NONE = (int, float, type(None))
EPOCH_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")


def _expect(path: Path, where: str, value, kinds: tuple, what: str) -> None:
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ValueError(f"{path}: {where} is {type(value).__name__} {str(value)[:40]!r}, expected {what}")


def check_result(path: Path, document: dict) -> None:
    """Refuses a results file whose fields the report reads are missing or of the wrong kind, with one
    line naming the file and the field; the numbers themselves may be null (not measured)."""
    if path.name == "diagnose.json":
        _expect(path, "networks", document.get("networks"), (dict,), "an object of networks")
        return
    if path.name == "gradcheck.json":
        for key in ("autodiff", "finite_differences"):
            _expect(path, key, document.get(key), (dict,), "an object")
            _expect(
                path, f"{key}.max_relative_error", document[key].get("max_relative_error"), (int, float), "a number"
            )
        return
    if "machine" in document:  # a benchmark
        return
    if path.name == "quantize.json":
        _expect(path, "summary", document.get("summary"), (dict,), "an object")
        for key in ("post_training", "fine_tuned"):
            _expect(path, f"summary.{key}", document["summary"].get(key), (list,), "an array")
        _expect(path, "networks", document.get("networks"), (list,), "an array of networks")
        if not document["networks"]:
            raise ValueError(f"{path}: networks is empty: nothing to report")
        return
    for key, kind in (("config", dict), ("environment", dict), ("runs", list), ("summary", list)):
        _expect(path, key, document.get(key), (kind,), f"a JSON {'object' if kind is dict else 'array'}")
    if not document["runs"]:
        raise ValueError(f"{path}: runs is empty: no run to report")
    _expect(path, "seconds", document.get("seconds"), (dict, int, float), "an object of seconds")
    for index, run in enumerate(document["runs"]):
        where = f"runs[{index}]"
        _expect(path, where, run, (dict,), "an object")
        _expect(path, f"{where}.learning_rate", run.get("learning_rate"), (int, float), "a number")
        _expect(path, f"{where}.epochs", run.get("epochs"), (list,), "an array of epochs")
        for number, epoch in enumerate(run["epochs"]):
            _expect(path, f"{where}.epochs[{number}]", epoch, (dict,), "an object")
            for field in EPOCH_FIELDS:
                _expect(path, f"{where}.epochs[{number}].{field}", epoch.get(field), NUMBER_OR_NONE, "a number or null")
                _check_value(path, f"{where}.epochs[{number}].{field}", epoch[field])
        if not run["epochs"] or run["epochs"][0]["test_loss"] is None and not run.get("diverged_at_epoch"):
            raise ValueError(f"{path}: {where} has no measured epoch and did not diverge: no run to report")


def _check_value(path: Path, where: str, value: float | None) -> None:
    """Refuses a recorded loss or accuracy that no run can give: not finite, a negative loss, an
    accuracy outside [0, 1] (NaN, Infinity and 7.5 parse as JSON numbers)."""
    if value is None:
        return
    low, high = (0.0, 1.0) if where.endswith("accuracy") else (0.0, math.inf)
    if not (math.isfinite(value) and low <= value <= high):
        bounds = "in [0, 1]" if high == 1.0 else "finite and not negative"
        raise ValueError(f"{path}: {where} is {value!r}, which no run records (expected a number {bounds})")
