"""How the report writes a number: the filters of its templates (`fmlp.handin.report.prose`) and its tables.

Each takes a recorded value and returns its text; a value that was not measured, or is not a finite
number, prints as "–", and a negative one with a minus sign, not a hyphen.
"""

import math

MISSING = "–"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _signed(text: str) -> str:
    return text.replace("-", "−")


def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a percentage: 0.98153 → "98.15%"."""
    return _signed(f"{100 * value:.{digits}f}%") if _finite(value) else MISSING


def points(value: float | None, digits: int = 2) -> str:
    """A difference of two fractions in percentage points, without the unit: 0.0012 → "0.12"."""
    return _signed(f"{100 * value:.{digits}f}") if _finite(value) else MISSING


def fixed(value: float | None, digits: int = 2) -> str:
    """A number with a fixed count of decimals: (0.05974, 4) → "0.0597"."""
    return _signed(f"{value:.{digits}f}") if _finite(value) else MISSING


def count(value: float | None) -> str:
    """A whole number with thousands separated: 10000 → "10,000"."""
    return f"{round(value):,}" if _finite(value) else MISSING


def rate(value: float | None) -> str:
    """A learning rate as the flags write it: 1.0 → "1", 0.0003 → "0.0003"."""
    return f"{value:g}" if _finite(value) else MISSING


def seconds(value: float | None, digits: int = 1) -> str:
    """A duration in seconds: 29.657 → "29.7 s"."""
    return f"{value:.{digits}f} s" if _finite(value) else MISSING


def duration(value: float | None) -> str:
    """A duration as minutes and seconds past a minute, else seconds: 1126.5 → "18 min 46 s"."""
    if not _finite(value):
        return MISSING
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s" if minutes else seconds(value)


def listing(words, conjunction: str = "and") -> str:
    """Words as prose lists them: ["1", "0.5", "0.1"] → "1, 0.5 and 0.1"."""
    words = [str(word) for word in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conjunction} " + words[-1]


FILTERS = {
    "percent": percent,
    "points": points,
    "fixed": fixed,
    "count": count,
    "rate": rate,
    "seconds": seconds,
    "duration": duration,
    "listing": listing,
}
