"""TeX mathematics as images, without a TeX installation: matplotlib's mathtext typesets each equation
(Computer Modern glyphs) to a PNG whose printed size is its true size.

An equation is one line of a ```math block in the Markdown (the form GitHub renders too).
"""

import hashlib
from pathlib import Path

import matplotlib
from matplotlib import mathtext
from matplotlib.font_manager import FontProperties

DPI = 300
POINT_SIZE = 11


def render(tex: str, folder: Path) -> Path:
    """The PNG of one equation (TeX math without the dollars), cached in folder by its text.

    Raises ValueError naming the equation when mathtext cannot parse it.
    """
    path = folder / f"equation-{hashlib.sha256(tex.encode()).hexdigest()[:16]}.png"
    if not path.exists():
        try:
            with matplotlib.rc_context({"mathtext.fontset": "cm"}):
                mathtext.math_to_image(f"${tex}$", path, prop=FontProperties(size=POINT_SIZE), dpi=DPI, format="png")
        except ValueError as error:
            path.unlink(missing_ok=True)
            raise ValueError(f"cannot typeset the equation {tex!r}: {str(error).splitlines()[0]}") from error
    return path
