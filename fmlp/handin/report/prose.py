"""The documents of docs/ as Jinja2 templates over the results, and the lint that keeps literal numbers
out of their prose.

The documents are rendered in Jinja's immutable sandbox: a document given to the report (a docs/ folder
from elsewhere) reaches only the names passed in, never Python's internals, modules or the shell, and
changes nothing it is given.

A document quotes a result as an expression, `{{ final(b).test_accuracy | percent }}`, and chooses a
claim that depends on the run with `{% if turns_up(b) %}...{% else %}...{% endif %}`, each branch a
sentence that is true when it is chosen. The names a template sees are the loaded results (`context`),
the functions of `fmlp.handin.report.measures` and the filters of `fmlp.handin.report.formats`; a name
that is not there fails the build (StrictUndefined), naming the document and the line.

A number written into the prose itself is allowed only as a constant of the method, declared once per
document in a `<!-- constants: 784 0.1307 2014 -->` comment (the input size, the normalisation, a
paper's year or published figure beside its citation); `literal_numbers` lists every other one with
its file and line. Code, mathematics, comments, link targets and the expressions are not prose.
"""

import re
from pathlib import Path

import jinja2
import jinja2.sandbox

from fmlp import words
from fmlp.analysis import diagnostic_figures
from fmlp.handin.report import formats, measures

ENVIRONMENT = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True
)
ENVIRONMENT.globals.clear()  # none of Jinja's own (cycler, joiner, ...): the documents see only what is given
ENVIRONMENT.filters.update(formats.FILTERS)
ENVIRONMENT.globals.update(
    {name: value for name, value in vars(measures).items()
     if callable(value) and not name.startswith("_") and getattr(value, "__module__", None) == measures.__name__}
)  # fmt: skip
ENVIRONMENT.globals.update(
    {"UNIFORM_LOSS": measures.UNIFORM_LOSS, "TAIL": measures.TAIL, "RISE": measures.RISE, "CLOSE": measures.CLOSE,
     "WIDE_SEEDS": measures.WIDE_SEEDS, "ERRORS_DRAWN": diagnostic_figures.ERRORS_DRAWN}
)
# The design in words and its predicates (fmlp.words), for the sentences about the method.
ENVIRONMENT.globals.update({name: getattr(words, name) for name in (
    "describe", "network_words", "optimizer_words", "training_images_words", "is_reference_network", "all_of_mnist")})
# The predicates, as tests too: `runs | select("turns_up")`.
ENVIRONMENT.tests.update(
    {name: getattr(measures, name) for name in ("turns_up", "still_falling", "still_rising", "losses_close")}
)


def render(text: str, name: str, context: dict) -> str:
    """The document `text` (called `name` in errors) with every expression evaluated over `context`.
    ValueError naming the document and line of an expression that fails."""
    try:
        return unlisted(ENVIRONMENT.from_string(text).render(context))
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"{name}:{error.lineno}: {error.message}") from error
    except jinja2.sandbox.SecurityError as error:
        raise ValueError(f"{name}:{_template_line(error)}: refused by the template sandbox: {error}") from error
    except (jinja2.UndefinedError, LookupError, TypeError, ValueError, ZeroDivisionError) as error:
        raise ValueError(f"{name}:{_template_line(error)}: {type(error).__name__}: {error}") from error


LIST_NUMBER = re.compile(r"^(\d+)([.)])(?=\s|$)", re.MULTILINE)


def unlisted(markdown: str) -> str:
    """`markdown` with the delimiter escaped after a number that starts a line outside code ("1) down"
    becomes "1\\) down"): a value that wraps to a line's start would otherwise open an ordered list in
    the middle of a sentence. The documents write their lists with "-"."""
    pieces = re.split(r"(^```.*?^```)", markdown, flags=re.MULTILINE | re.DOTALL)
    return "".join(piece if piece.startswith("```") else LIST_NUMBER.sub(r"\1\\\2", piece) for piece in pieces)


def _template_line(error: Exception) -> str:
    """The line of the template being rendered when `error` was raised, from its traceback."""
    trace, line = error.__traceback__, "?"
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = str(trace.tb_lineno)
        trace = trace.tb_next
    return line


# 12,345.67 or 0.25 or 30; not a digit run inside a word or a file name (lr_0.1_seed_1, mnist.pkl.gz).
NUMBER = re.compile(r"(?<![\w.\-/])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w/])")
CONSTANTS = re.compile(r"<!-- constants: (.*?) -->")
NOT_PROSE = (
    re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S),  # the template's expressions, statements, comments
    re.compile(r"^```.*?^```", re.S | re.M),  # code and mathematics blocks
    re.compile(r"<!--.*?-->", re.S),
    re.compile(r"`[^`\n]*`"),
    re.compile(r"\$[^$\n]*\$"),
    re.compile(r"\]\([^)]*\)"),  # link and image targets
)


def _blank(match: re.Match) -> str:
    """The match's text as spaces, its line breaks kept, so that line numbers stay true."""
    return re.sub(r"[^\n]", " ", match.group(0))


def declared_constants(text: str) -> set[str]:
    """The numbers a document declares as constants of the method, thousands separators dropped."""
    tokens = (token for match in CONSTANTS.finditer(text) for token in match.group(1).split())
    return {token.replace(",", "").rstrip("%") for token in tokens}


def literal_numbers(text: str, name: str) -> list[str]:
    """'NAME:LINE: NUMBER in: LINE TEXT' for each number written into the prose of a document that is not
    one of its declared constants."""
    allowed = declared_constants(text)
    prose = text
    for pattern in NOT_PROSE:
        prose = pattern.sub(_blank, prose)
    found = []
    for number, (line, original) in enumerate(zip(prose.splitlines(), text.splitlines()), 1):
        for match in NUMBER.finditer(line):
            if match.group(0).replace(",", "") not in allowed:
                found.append(f"{name}:{number}: {match.group(0)} in: {original.strip()[:160]}")
    return found


def check_documents(docs_dir: Path, names: tuple[str, ...]) -> list[str]:
    """`literal_numbers` of every document named, with its path under the docs folder's parent."""
    return [problem for name in names
            for problem in literal_numbers((docs_dir / name).read_text(), f"{docs_dir.name}/{name}")]  # fmt: skip
