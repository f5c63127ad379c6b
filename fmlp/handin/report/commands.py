"""The commands that wrote each result, rebuilt from the flags its JSON recorded (a training result's
through its description, `fmlp.run.flags.command_words`): the script and every flag whose value
differs from the script's default, quoted for the shell and continued with a
backslash where a line would be too long, so that each can be pasted as it is printed."""

import argparse
import re
import shlex
from pathlib import Path

from fmlp.description import defaults, from_config
from fmlp.run import flags

EXPERIMENTS = ("baseline.json", "lr_sweep.json", "finetune.json")  # commands rebuilt from the description
PARSERS = {  # the other scripts' commands, rebuilt from their parsers' defaults
    "gradcheck.json": ("experiments/gradcheck.py", flags.gradcheck_parser),
    "quantize.json": ("experiments/quantize.py", flags.quantize_parser),
}
LINE_WIDTH = 96  # characters of a command line in the appendix before it continues with a backslash
# When each kind of result's command runs: it reads the saved networks or results of those before it.
STAGES = {"baseline.json": 0, "lr_sweep.json": 0, "gradcheck.json": 0, "finetune.json": 1, "diagnose.json": 2,
          "quantize.json": 2}  # fmt: skip
LAST = 3  # the Cortex-M runs and the benchmark: they read the quantization study's network


def _flag_text(value) -> str:
    """A recorded flag value as the command line writes it: lists comma-separated, floats in full."""
    if isinstance(value, list):
        return ",".join(map(_flag_text, value))
    return repr(value) if isinstance(value, float) else str(value)


def command_words(parser: argparse.ArgumentParser, script: str, config: dict) -> list[str]:
    """The command that gives `config`, a JSON's recorded flags: the script, its positional arguments, and
    every flag whose value differs from the parser's default, each flag beside its value."""
    words = ["python", script]
    for action in parser._actions:  # argparse lists its flags nowhere else
        if not action.option_strings and action.dest in config:
            values = config[action.dest]
            words += [shlex.quote(str(value)) for value in (values if isinstance(values, list) else [values])]
    for action in parser._actions:
        if not action.option_strings or action.dest not in config:
            continue
        default = str(action.default) if isinstance(action.default, Path) else action.default
        value = config[action.dest]
        if value == default:
            continue
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(flag)
        elif action.nargs in ("*", "+"):  # one word per value, as the shell passes them; lines may break between
            quoted = [shlex.quote(_flag_text(item)) for item in value]
            words += [f"{flag} {quoted[0]}", *quoted[1:]] if quoted else [flag]
        else:
            words.append(f"{flag} {shlex.quote(_flag_text(value))}")
    return words


def command_lines(words: list[str]) -> str:
    """Words joined into shell lines of at most LINE_WIDTH characters, continued with a backslash, never
    splitting a flag from its value."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > LINE_WIDTH - 2:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def author_words(authors: list[str]) -> list[str]:
    """--authors words for the names, as many names to a word as fit on a line, so that any number of
    names wraps (the flag may be given several times)."""
    groups: list[list[str]] = [[]]
    for name in authors:
        if groups[-1] and len(shlex.quote(", ".join(groups[-1] + [name]))) > LINE_WIDTH - len("    --authors  \\"):
            groups.append([])
        groups[-1].append(name)
    return [f"--authors {shlex.quote(', '.join(group))}" for group in groups]


def commands(results: dict, authors: list[str], present: list[str]) -> list[str]:
    """The commands that wrote the results, each from its JSON's recorded flags, in an order that runs
    (training from scratch, then fine-tuning the networks it saved, then the scripts that read networks
    and fine-tuned results), and the report's own."""
    lines = []
    ordered = sorted(results.items(), key=lambda item: STAGES.get(item[0].rsplit("/", 1)[-1], LAST))
    for name, document in ordered:
        stem = name.rsplit("/", 1)[-1]
        if stem in EXPERIMENTS:
            lines.append(command_lines(flags.command_words(from_config(document["config"]))))
        elif stem in PARSERS:
            script, parser = PARSERS[stem]
            lines.append(command_lines(command_words(parser(), script, document["config"])))
        elif stem == "diagnose.json":
            params = [shlex.quote(path) for path in document["params"].values()]
            lines.append(
                command_lines(["python", "experiments/diagnose.py", *params, "--out", shlex.quote(document["out"])])
            )
        elif name.startswith("cortex_m/"):  # its JSON records the network, the width and the core
            words = ["python", "experiments/export_c.py", shlex.quote(document["params"]), f"--bits {document['bits']}",
                     f"--target {document['target']}", f"--out build/{shlex.quote(stem.removesuffix('.json'))}",
                     "--run"]  # fmt: skip
            lines.append(command_lines(words))
        elif name.startswith("benchmark_"):
            lines.append(command_lines(["python", "experiments/benchmark.py"]))
    lines.append(command_lines(handin_words(results["lr_sweep.json"], authors, present)))
    return list(dict.fromkeys(lines))  # each once: the CPU's and the GPU's benchmark share their command


def handin_words(sweep: dict, authors: list[str], present: list[str]) -> list[str]:
    """handin.py for the sweep's design: those of the sweep's flags that handin.py takes
    (`flags.add_sweep_design_flags`), its results folder unless it is the default, and the report's own."""
    parser = argparse.ArgumentParser()
    flags.add_sweep_design_flags(parser)
    experiment = from_config(sweep["config"])
    words = [word for word in flags.command_words(experiment)[2:] if not parser.parse_known_args(shlex.split(word))[1]]
    if experiment.outputs.folder != defaults("lr_sweep").outputs.folder:
        words.append(f"--results {shlex.quote(str(experiment.outputs.folder))}")
    words += author_words(authors)
    if present:
        words.append(f"--present {shlex.quote(','.join(present))}")
    return ["python", "experiments/handin.py", *words]


def handin_runs(baseline: dict) -> str:
    """What handin.py ran of the commands, by whether the baseline is the sweep's lane (`derived_from`)."""
    trained = "" if "derived_from" in baseline else " baseline.py (the sweep has no lane of the baseline's rate),"
    return (
        f"The last one, `handin.py`, runs of these only the learning-rate sweep,{trained} the gradient check and "
        "the diagnosis of the sweep's networks, and only where their results are missing or of another design "
        "(with `--extras` also the five-seed grid, the optimizers and the activations); "
        + ("it writes the baseline from the sweep's lane of the baseline's rate and seed, " if not trained else "")
        + "then builds this PDF and the source bundle."
    )


def making(name: str, sweep: dict, authors: list[str], present: list[str]) -> tuple[str, list[str]]:
    """How to make the result `name` for the sweep's design: (words, commands). handin.py makes the
    diagnosis, and with --extras the grid, the optimizers and the activations, for any design; the
    quantization study and the Cortex-M runs follow README's commands, the benchmark measures the reference
    network."""
    handin = handin_words(sweep, authors, present)
    if name.startswith(("robustness/", "optimizers/", "activations/")):
        return "handin.py with --extras makes it for this design", [command_lines([*handin, "--extras"])]
    if name.startswith("diagnose/"):
        return "handin.py makes it for this design", [command_lines(handin)]
    if name.startswith("benchmark_"):
        return "benchmark.py measures the reference network", [command_lines(["python", "experiments/benchmark.py"])]
    return "README.md's quantization and Cortex-M commands make it, with this design's flags added to lr_sweep.py", []


PLACEHOLDER = re.compile(r"^```\n@command (\d+)\n```$", re.MULTILINE)


def reproduce_text(count: int, baseline: dict) -> str:
    """The appendix: `count` commands, each a block of its own that holds only a placeholder, then the table
    of the software, device and wall times each result came from. The commands themselves, which carry
    the user's words (names, folders), go in with `with_commands` once every pass over the Markdown is
    done, so that no marker, link or template in them is ever read as one."""
    lines = [
        "Every figure and number in this report comes from these commands, run one after another from "
        "the project's root after `pip install -e .` (or `conda env create -f environment.yml`). "
        + handin_runs(baseline),
        "",
    ]
    for number in range(count):
        lines += ["```", f"@command {number}", "```", ""]
    return "\n".join([*lines, "<!-- table: provenance -->", ""])


def fenced(text: str) -> str:
    """text as a fenced code block whose fence is longer than any run of backticks in it: Markdown reads
    nothing inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def with_commands(markdown: str, lines: list[str]) -> str:
    """The Markdown with each placeholder block of `reproduce_text` holding its command of `lines`."""
    return PLACEHOLDER.sub(lambda match: fenced(lines[int(match.group(1))]), markdown)
