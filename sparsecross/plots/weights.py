"""``plot-weights``: a map of a model's geo weights, zoomed to where they are.

Cells are drawn at their true size on their grid (``pcolorfast`` over the cell edges), on a
diverging colour scale symmetric around zero (red positive, blue negative).  Either one geo
feature (a pyramid level, a band) or, with ``geo_effect=True``, the summed effect of every
geo-derived block as one surface on the finest grid of the model within the view."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._values import check_count
from ..errors import NAME_LIMIT, SparseCrossError, shown
from ..kinds.geo import is_geo
from ..model import SparseModel
from ..spec import Output
from . import _common as C
from . import _geo
from ._geo import DEFAULT_MAX_CELLS, Raster, View, extent, feature_raster, geo_outputs, parse_bbox

__all__ = ["plot_weights_map"]

#: Above this many nonzero cells the colour scale ends at the 99.5th percentile of |value|.
ROBUST_FROM = 1000


def _feature_block(model: SparseModel, feature: str | None) -> Output:
    """The standalone geo block to draw: ``feature`` (a geo feature, a pyramid level or band,
    or a pyramid: its finest level), by default the first geo cell feature's finest level."""
    spec = model.spec
    geo = [f for f in spec.features if is_geo(f) and f.standalone]
    names = [f.name for f in geo]
    if feature is None:
        cells = [f for f in geo if f.kind == "geo"] or geo
        if not cells:
            raise SparseCrossError("the model has no standalone geo feature (geo cell, lat or lon band) to map")
        feature = cells[0].pyramid[0] if cells[0].pyramid else cells[0].name
    levels = spec.pyramid_levels(feature)
    if levels:
        feature = levels[-1].name  # the finest level
    if feature not in names:
        raise SparseCrossError(f"the model has no standalone geo feature {shown(feature, NAME_LIMIT)}; geo features: {names}")
    return next(o for o in spec.outputs if o.kind == 0 and len(o.components) == 1 and o.name == feature)


def _norm_limit(values: np.ndarray) -> tuple[float, int]:
    """Symmetric colour limit and how many drawn values lie beyond it."""
    a = np.abs(values[np.isfinite(values) & (values != 0)])
    if not len(a):
        return 0.0, 0
    lim = float(np.quantile(a, 0.995)) if len(a) > ROBUST_FROM else float(a.max())
    return lim, int((a > lim).sum())


def _title(name: str, raster: Raster, view_cells: int, n_model: int, effect: bool) -> str:
    res = f"{raster.resolution_arcmin:g} arc-minute"
    block = f", each drawn cell the mean of {raster.block} x {raster.block} cells" if raster.block > 1 else ""
    if effect:
        parts = ", ".join(raster.outputs)
        return (f"{name}: summed geo effect on the {res} grid ({view_cells:,} cells with a nonzero effect)\n"
                f"sum of {parts} (crosses with non-geo features not included)")
    return (f"{name}: {raster.outputs[0]} weights, {res} cells{block}\n"
            f"{view_cells:,} drawn cells with a weight; {n_model:,} nonzero weights in the block")


def plot_weights_map(model: SparseModel, out: str | os.PathLike[str], *, feature: str | None = None,
                     geo_effect: bool = False, bbox: str | View | None = None,
                     max_cells: int = DEFAULT_MAX_CELLS, name: str = "model", width: int = 1400,
                     height: int = 750, dpi: int = 100) -> C.PlotInfo:
    """Map of a model's geo weights (PNG of ``width`` x ``height`` pixels).

    By default the view is the extent of the drawn weights (padded by 5%); ``bbox`` (a
    :class:`View` or ``"LON0,LAT0,LON1,LAT1"``) sets it.  ``feature`` picks a standalone geo
    feature (see :func:`_feature_block`); ``geo_effect=True`` draws the summed geo effect of
    every geo-derived block instead (see :func:`sparsecross.plots._geo.geo_effect`).  A
    feature's grid of more than ``max_cells`` cells, or more cells than the picture has pixels,
    over the view is averaged into blocks; a summed effect over more than ``max_cells`` is
    refused.  A model without a geo weight in view is an error.
    ``name`` (the model's file name) heads the title.  ``info`` of the result, read back from
    the drawn figure where it can be: ``extent`` (lon0, lat0, lon1, lat1: the axes' limits),
    ``vmin``/``vmax`` (the image's colour norm), ``clipped``, ``cells``,
    ``resolution_arcmin``, ``block``, ``outputs``, ``title``, ``axes_pixels``, ``raster``.
    """
    out = C.check_png(out)
    C.check_size(width, height)
    max_cells = check_count("max_cells", max_cells, 1)
    view = parse_bbox(bbox) if isinstance(bbox, str) else bbox
    if geo_effect:
        if feature is not None:
            raise SparseCrossError("give a feature or the summed geo effect, not both")
        outs = geo_outputs(model.spec)
        if not outs:
            raise SparseCrossError("the model has no geo feature (geo cell, lat or lon band) to map")
        n_model = 0
    else:
        outs = [_feature_block(model, feature)]
        n_model = len(extent_weights(model, outs[0]))
    if view is None:
        view = extent(model, outs)
        if view is None:
            raise SparseCrossError(
                "the model has no nonzero weight in any exact geo block: nothing to map (the weights of "
                "hashed geo crosses have no place of their own: give --bbox)" if geo_effect else
                f"the model has no nonzero weight in geo feature {outs[0].name!r}: nothing to map")
    raster = (_geo.geo_effect(model, view, max_cells) if geo_effect
              else feature_raster(model, outs[0], view, min(max_cells, width * height)))
    lim, clipped = _norm_limit(raster.values)
    cells = int((np.isfinite(raster.values) & (raster.values != 0)).sum())
    if lim == 0.0:
        raise SparseCrossError(f"no nonzero geo weight inside the view {_view_text(view)}: nothing to map")
    title = _title(name, raster, cells, n_model, geo_effect)
    fig = C.new_figure(width, height, dpi)
    try:
        ax = fig.add_subplot()
        im = _draw(fig, ax, raster, view, lim, clipped, title, geo_effect)
        C.save(fig, out, dpi)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        vmin, vmax = im.norm.vmin, im.norm.vmax
        info = dict(extent=(x0, y0, x1, y1), vmin=vmin, vmax=vmax, clipped=clipped, cells=cells,
                    resolution_arcmin=raster.resolution_arcmin, block=raster.block, outputs=raster.outputs,
                    title=ax.get_title(), axes_pixels=C.axes_pixels(fig, ax), raster=raster)
    finally:
        C.close(fig)
    return C.PlotInfo(Path(out), width, height, info)


def extent_weights(model: SparseModel, o: Output) -> np.ndarray:
    """The nonzero weights of block ``o`` (its missing id included)."""
    keys = model.keys.astype(np.int64)
    lo, hi = np.searchsorted(keys, [o.offset, o.offset + int(o.cardinality or 0)])
    return model.weights[lo:hi]


def _view_text(v: View) -> str:
    return f"{v.lon0:g},{v.lat0:g},{v.lon1:g},{v.lat1:g}"


def _draw(fig: Any, ax: Any, raster: Raster, view: View, lim: float, clipped: int, title: str,
          effect: bool) -> Any:
    """Draw ``raster`` on ``ax``; returns the image artist (its norm is the colour scale)."""
    from matplotlib.colors import Normalize

    norm = Normalize(vmin=-lim, vmax=lim)  # symmetric: zero is the middle (white) of RdBu_r
    im = ax.pcolorfast(raster.lon_edges, raster.lat_edges, np.ma.masked_invalid(raster.values),
                       cmap="RdBu_r", norm=norm)
    im.set_interpolation("nearest")  # one colour per cell, never blended across cell edges
    ax.set_xlim(view.lon0, view.lon1)
    ax.set_ylim(view.lat0, view.lat1)
    mid = math.radians((view.lat0 + view.lat1) / 2)
    ax.set_aspect(1 / max(math.cos(mid), 0.1))  # a degree of longitude is cos(lat) of one of latitude
    ax.set_facecolor("#d9d9d9")
    ax.set_xlabel("longitude (degrees)" + ("" if effect else "; grey: no weight"))
    ax.set_ylabel("latitude (degrees)")
    ax.set_title(title, fontsize=9)
    label = "summed geo effect (logit)" if effect else "weight (logit)"
    fig.colorbar(im, ax=ax, shrink=0.8, label=label, extend="both" if clipped else "neither")
    fig.tight_layout()
    return im
