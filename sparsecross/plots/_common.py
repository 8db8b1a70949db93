"""What every plot shares: the lazy matplotlib import, the picture size checks and the atomic
PNG write, and :class:`PlotInfo`, what a plot function returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OutputError, SparseCrossError, shown, shown_path
from ..files import atomic_output

__all__ = ["PlotInfo", "require_matplotlib", "check_size", "new_figure", "save", "MIN_SIDE", "MAX_SIDE"]

#: Smallest and largest width or height of a picture, in pixels.
MIN_SIDE, MAX_SIDE = 100, 8000


@dataclass
class PlotInfo:
    """The written file and what was drawn (axis limits, colour scale, counts, titles...):
    ``info`` is read back from the figure's artists after drawing, for the caller and tests."""

    path: Path
    width: int
    height: int
    info: dict[str, Any] = field(default_factory=dict)


def require_matplotlib() -> Any:
    """Import matplotlib with the Agg backend, or raise a one-line error naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise SparseCrossError(
            "plotting needs matplotlib: pip install 'sparsecross[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def check_size(width: int, height: int) -> None:
    """One line when a side of the picture is outside [MIN_SIDE, MAX_SIDE] pixels."""
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not MIN_SIDE <= v <= MAX_SIDE:
            raise SparseCrossError(f"picture {name}: expected {MIN_SIDE} to {MAX_SIDE} pixels, got {shown(v)}")


def check_png(out: str | os.PathLike[str]) -> Path:
    """``out`` as a PNG file name in a folder that exists (checked before any drawing)."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SparseCrossError(f"plots are written as PNG; give a file name ending in .png, got {shown_path(out)}")
    if not out.parent.exists():
        raise SparseCrossError(f"folder {shown_path(out.parent)} does not exist")
    return out


def new_figure(width: int, height: int, dpi: int, layout: str | None = None) -> Any:
    """A ``width`` x ``height`` pixel figure (size checked first)."""
    check_size(width, height)
    plt = require_matplotlib()
    return plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout=layout)


def save(fig: Any, out: Path, dpi: int) -> None:
    """Write ``fig`` as a PNG of exactly its pixel size, through :func:`atomic_output`."""
    with atomic_output(out, "plot", OutputError) as fh:
        fig.savefig(fh, dpi=dpi, format="png")


def close(fig: Any) -> None:
    require_matplotlib().close(fig)


def axes_pixels(fig: Any, ax: Any) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of the axes' drawing area in the saved image's pixels
    (x to the right, y downwards from the top row), after the figure was drawn."""
    bb = ax.get_window_extent()
    h = fig.bbox.height
    return float(bb.x0), float(h - bb.y1), float(bb.x1), float(h - bb.y0)
