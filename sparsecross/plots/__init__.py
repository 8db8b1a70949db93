"""Plots (matplotlib is an optional extra: ``pip install 'sparsecross[plot]'``; imported only
when a plot is drawn).

* :func:`plot_weights_map` (``plot-weights``): a map of a model's geo weights zoomed to their
  extent, cells at their true size, a colour scale centred at zero; or the summed geo effect.
* :func:`plot_path` (``path --plot``): validation logloss and size along the l1 path, one line
  per l2, l1 = 0 apart, the budget, and L1 vs L2 weight histograms at matched logloss.
* :func:`plot_tune` (``tune --plot``): validation logloss over the alpha x l1 grid.

Each writes a PNG of the requested pixel size through :func:`sparsecross.files.atomic_output`
and returns a :class:`PlotInfo` (the path and what was drawn).
"""

from __future__ import annotations

from ._common import PlotInfo, require_matplotlib
from .path import plot_path
from .tune import plot_tune
from .weights import plot_weights_map

__all__ = ["PlotInfo", "plot_path", "plot_tune", "plot_weights_map", "require_matplotlib"]
