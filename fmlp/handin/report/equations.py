"""TeX mathematics as images, without a TeX installation: matplotlib's mathtext typesets each equation
(Computer Modern glyphs) to a PNG whose printed size is its true size.

An equation is one line of a ```math block in the Markdown (the form GitHub renders too).
"""

import hashlib
import re
from pathlib import Path

import matplotlib
from matplotlib import mathtext
from matplotlib.font_manager import FontProperties

DPI = 300
POINT_SIZE = 11
SHRINK = 0.7  # mathtext's factor for a script, a limit or a fraction's parts, at each level of nesting
SMALLEST_POINTS = 7.0  # the smallest glyph an equation may print, so that its scripts can be read


def script_depth(tex: str) -> int:
    """How deeply scripts (_ and ^, a sum's limits) and fractions' parts (\\frac) nest in the TeX: 0 for
    none, 1 for b^{\\top}, 2 for e^{Z_{ij}}; each level prints SHRINK times smaller. The argument of
    another command (\\mathbb{R}) stays at its level."""
    levels, pending, deepest, index, argument = [0], [], 0, 0, False
    while index < len(tex):
        char = tex[index]
        if char in "_^":
            pending.append(levels[-1] + 1)
            index += 1
            if index < len(tex) and tex[index] != "{":  # a one-token script: one character or one command
                deepest = max(deepest, pending.pop())
                index += len(re.match(r"\\[A-Za-z]+|.", tex[index:]).group(0))
            continue
        if char == "\\":
            command = re.match(r"\\([A-Za-z]+|.)", tex[index:]).group(0)
            if command == "\\frac":
                pending += [levels[-1] + 1] * 2
            else:
                argument = tex[index + len(command) : index + len(command) + 1] == "{"
            index += len(command)
            continue
        if char == "{":
            level = levels[-1] if argument or not pending else pending.pop()
            argument = False
            levels.append(level)
            deepest = max(deepest, level)
        elif char == "}" and len(levels) > 1:
            levels.pop()
        index += 1
    return deepest


def smallest_points(tex: str) -> float:
    """The point size of an equation's smallest glyph, as `render` prints it."""
    return POINT_SIZE * SHRINK ** script_depth(tex)


def render(tex: str, folder: Path) -> Path:
    """The PNG of one equation (TeX math without the dollars), cached in folder by its text.

    Raises ValueError naming the equation when mathtext cannot parse it, or when its smallest glyph would
    print below SMALLEST_POINTS (scripts of scripts: write e^{-z} as \\exp(-z), or a fraction as a / b).
    """
    if smallest_points(tex) < SMALLEST_POINTS:
        raise ValueError(f"the equation {tex!r} nests scripts or fractions {script_depth(tex)} deep: its smallest "
                         f"glyph would print at {smallest_points(tex):.1f} pt, below {SMALLEST_POINTS:g} pt")
    path = folder / f"equation-{hashlib.sha256(tex.encode()).hexdigest()[:16]}.png"
    if not path.exists():
        try:
            with matplotlib.rc_context({"mathtext.fontset": "cm"}):
                mathtext.math_to_image(f"${tex}$", path, prop=FontProperties(size=POINT_SIZE), dpi=DPI, format="png")
        except ValueError as error:
            path.unlink(missing_ok=True)
            raise ValueError(f"cannot typeset the equation {tex!r}: {str(error).splitlines()[0]}") from error
    return path
