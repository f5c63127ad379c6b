"""The check that every number in the prose comes from a result.

A number in a sentence of the documents is accepted when some number of the results (the metrics JSON
and docs/benchmark_*.json) rounds to it in one of the forms prose quotes: as it is (98.42 from
98.4213), as a percentage of a fraction (98.42% from 0.98421), in minutes and seconds (18 min 46 s from
1126.5), in minutes, or as megabytes and gigabytes of a count of megabytes. Numbers that are facts of
the method rather than results (784 inputs, the normalisation constants, a year) are declared once per
document in a `<!-- constants: 784 0.1307 2014 -->` comment; integers up to 10 are counted words, not
measurements, and pass. Tables, code and link targets are not prose and are not read.
"""

import re
from collections.abc import Iterable

# 12,345.67 or 0.25 or 30; not a digit run inside a word or a file name (lr_0.1_seed_1).
NUMBER = re.compile(r"(?<![\w.\-/])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w/])")
MINUTES_SECONDS = re.compile(r"(\d+) min (\d+) s\b")
CONSTANTS = re.compile(r"<!-- constants: (.*?) -->")
SMALL_COUNT = 10


def _leaves(tree, path: str = "") -> Iterable[tuple[str, float]]:
    """(key path, number) for every number in a JSON tree (bools excluded); the path in lower case."""
    if isinstance(tree, bool) or tree is None:
        return
    if isinstance(tree, (int, float)):
        yield path, float(tree)
    elif isinstance(tree, dict):
        for key, item in tree.items():
            yield from _leaves(item, f"{path}/{key}".lower())
    elif isinstance(tree, list):
        for item in tree:
            yield from _leaves(item, path)


def _roundings(value: float, digits: int) -> set[str]:
    return {f"{value:.{d}f}" for d in range(digits + 1)}


def quoted_forms(sources: Iterable) -> dict[str, set[str]]:
    """By unit, every text form in which prose may quote a number of the sources (JSON trees): a
    quoted time must round a number recorded under a key that names seconds, a rate one under a key
    that names GFLOP/s, and so on; a number without a unit may round any number."""
    units = ("", "%", "points", "s", "min", "GFLOP/s", "TFLOP/s", "MB", "GB")
    forms: dict[str, set[str]] = {unit: set() for unit in units}
    for path, value in {(path, abs(v)) for source in sources for path, v in _leaves(source)}:
        forms[""].update(_roundings(value, 4) | _roundings(100 * value, 3))
        if value.is_integer():
            forms[""].add(str(int(value)))
        forms["%"].update(_roundings(100 * value, 3))
        # points: a difference of fractions in percentage points, or one recorded in points already
        forms["points"].update(_roundings(100 * value, 3) | (_roundings(value, 3) if "points" in path else set()))
        if "second" in path or path.rsplit("/", 1)[-1] in ("data", "compile", "train", "eval", "total", "wall"):
            forms["s"].update(_roundings(value, 4))
            forms["min"].update(_roundings(value / 60, 1))
            minutes, seconds = divmod(round(value), 60)
            forms["min"].add(f"{minutes} min {seconds} s")
        if "gflops" in path:
            forms["GFLOP/s"].update(_roundings(value, 1))
            forms["TFLOP/s"].update(_roundings(value / 1000, 2))
        if path.endswith("_mb"):
            forms["MB"].update(_roundings(value, 1))
            forms["GB"].update(_roundings(value / 1024, 2) | _roundings(value / 1000, 2))
    return forms


def _prose(markdown: str) -> str:
    """The running text of Markdown: fenced code, inline code, tables, headings, comments and link or
    image targets removed."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("|", "#")))
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # figures: their captions are titles, not claims
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"\$[^$]*\$", "", text)  # inline mathematics: symbols, not results
    return re.sub(r"\s+", " ", text)


def _declared(markdown: str) -> set[str]:
    return {
        token.rstrip("%").replace(",", "") for match in CONSTANTS.finditer(markdown) for token in match.group(1).split()
    }


UNIT = re.compile(r"\s?(%|s\b|min\b|minutes\b|GFLOP/s|TFLOP/s|MB\b|GB\b|points\b)")
UNIT_NAMES = {"minutes": "min"}


def unsupported(markdown: str, forms: dict[str, set[str]]) -> list[str]:
    """'NUMBER in: SENTENCE' for each number of the prose that the forms of its unit and the
    document's declared constants do not contain."""
    declared = _declared(markdown)
    found = []
    for sentence in re.split(r"(?<=[.!?;:])\s+(?=[A-Z(*])", _prose(markdown)):
        rest = sentence
        for match in MINUTES_SECONDS.finditer(sentence):
            if match.group(0) not in forms["min"]:
                found.append(f"{match.group(0)} in: {sentence.strip()[:240]}")
            rest = rest.replace(match.group(0), " ")
        for match in NUMBER.finditer(rest):
            whole = match.group(1).replace(",", "")
            quoted = whole + ("." + match.group(2) if match.group(2) else "")
            unit_match = UNIT.match(rest, match.end())
            unit = unit_match.group(1) if unit_match else ""
            unit = UNIT_NAMES.get(unit, unit)
            if unit == "" and match.group(2) is None and int(whole) <= SMALL_COUNT:
                continue
            if quoted not in forms[unit] and quoted not in declared:
                found.append(
                    f"{match.group(0)}{unit_match.group(0) if unit_match else ''} in: {sentence.strip()[:240]}"
                )
    return found
