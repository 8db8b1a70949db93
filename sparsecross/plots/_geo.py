"""The numbers behind the weight map (numpy only, no matplotlib): which blocks of a model are
geo-derived, the extent of their nonzero weights, a view in degrees, and the raster drawn: one
geo feature's weights at its own resolution, or the summed geo effect on the finest grid.

What a geo id means (its rectangle, its bands, the id of a point) is asked of the geo kind
(:mod:`sparsecross.kinds.geo`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import SparseCrossError, shown
from ..kinds.geo import band_edges, band_range, id_bands, id_bounds, is_geo, point_ids
from ..model import SparseModel
from ..spec import FeatureSpec, Output

__all__ = ["View", "Raster", "parse_bbox", "geo_outputs", "block_rects", "extent", "feature_raster",
           "geo_effect", "DEFAULT_MAX_CELLS"]

#: Default largest number of grid cells a map evaluates and draws.
DEFAULT_MAX_CELLS = 4_000_000
#: Cells evaluated at once by :func:`geo_effect` (bounds its working memory).
CHUNK = 1 << 18


@dataclass(frozen=True)
class View:
    """A lon/lat rectangle in degrees: ``lon0 < lon1``, ``lat0 < lat1``, inside the world."""

    lon0: float
    lat0: float
    lon1: float
    lat1: float


@dataclass
class Raster:
    """Values on a rectilinear grid: ``values[i, j]`` covers latitudes ``lat_edges[i:i+2]`` and
    longitudes ``lon_edges[j:j+2]`` (NaN: nothing drawn there); ``block`` cells of the grid of
    ``resolution_arcmin`` per drawn cell along each axis (1: the cells themselves)."""

    lat_edges: np.ndarray
    lon_edges: np.ndarray
    values: np.ndarray
    resolution_arcmin: float
    block: int
    outputs: tuple[str, ...]


def parse_bbox(text: str) -> View:
    """``"LON0,LAT0,LON1,LAT1"`` (west, south, east, north in degrees) -> :class:`View`."""
    parts = text.split(",")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 4 or not all(math.isfinite(v) for v in vals):
        raise SparseCrossError(f"--bbox: expected LON0,LAT0,LON1,LAT1 (west,south,east,north in degrees, "
                               f"e.g. 144.5,-38.2,145.5,-37.5), got {shown(text)}")
    lon0, lat0, lon1, lat1 = vals
    if not (-180 <= lon0 < lon1 <= 180):
        raise SparseCrossError(f"--bbox: longitudes must satisfy -180 <= LON0 < LON1 <= 180 (a box across the "
                               f"antimeridian is not supported), got LON0={lon0!r}, LON1={lon1!r}")
    if not (-90 <= lat0 < lat1 <= 90):
        raise SparseCrossError(f"--bbox: latitudes must satisfy -90 <= LAT0 < LAT1 <= 90, got LAT0={lat0!r}, "
                               f"LAT1={lat1!r}")
    return View(lon0, lat0, lon1, lat1)


def geo_outputs(spec: FeatureSpec) -> list[Output]:
    """The blocks whose every component is a geo cell or band: standalone geo features (every
    pyramid level and band) and crosses of geo features only (exact or hashed).  A cross of a geo
    feature with a non-geo feature is not a geo effect (it depends on the other feature)."""
    return [o for o in spec.outputs if all(is_geo(spec.features[c]) for c in o.components)]


def block_rects(model: SparseModel, o: Output) -> tuple[np.ndarray, ...]:
    """``(lat0, lat1, lon0, lon1, weight)`` of the nonzero weights of the exact geo block ``o``:
    each the intersection of its components' rectangles; ids with a missing component left out."""
    spec = model.spec
    keys = model.keys.astype(np.int64)
    lo, hi = np.searchsorted(keys, [o.offset, o.offset + int(o.cardinality or 0)])
    local, w = keys[lo:hi] - o.offset, model.weights[lo:hi].astype(np.float64)
    lat0, lon0 = np.full(len(w), -90.0), np.full(len(w), -180.0)
    lat1, lon1 = np.full(len(w), 90.0), np.full(len(w), 180.0)
    ok = np.ones(len(w), dtype=bool)
    for c, stride in zip(o.components, o.strides):
        f = spec.features[c]
        lid, local = np.divmod(local, stride)
        ok &= lid < int(f.cardinality or 0) - 1  # the last id is the missing one
        a0, a1, b0, b1 = id_bounds(f, np.where(ok, lid, 0))
        lat0, lat1 = np.maximum(lat0, a0), np.minimum(lat1, a1)
        lon0, lon1 = np.maximum(lon0, b0), np.minimum(lon1, b1)
    ok &= (lat0 < lat1) & (lon0 < lon1)  # cells of two levels that do not overlap: no place
    return lat0[ok], lat1[ok], lon0[ok], lon1[ok], w[ok]


def extent(model: SparseModel, outputs: list[Output], pad: float = 0.05) -> View | None:
    """The smallest view holding every nonzero weight of the exact ``outputs``, padded by
    ``pad`` of its span on each side.  Along an axis that no block constrains (only latitude
    bands say nothing of longitude) the whole world; None when no exact block has a weight."""
    spec = model.spec
    lat: list[float] = []
    lon: list[float] = []
    for o in outputs:
        if o.kind != 0:
            continue
        a0, a1, b0, b1, w = block_rects(model, o)
        if not len(w):
            continue
        kinds = {spec.features[c].kind for c in o.components}
        if kinds & {"geo", "lat"}:
            lat += [float(a0.min()), float(a1.max())]
        if kinds & {"geo", "lon"}:
            lon += [float(b0.min()), float(b1.max())]
    if not lat and not lon:
        return None
    la0, la1 = (min(lat), max(lat)) if lat else (-90.0, 90.0)
    lo0, lo1 = (min(lon), max(lon)) if lon else (-180.0, 180.0)
    dla, dlo = (la1 - la0) * pad, (lo1 - lo0) * pad
    return View(max(lo0 - dlo, -180.0), max(la0 - dla, -90.0), min(lo1 + dlo, 180.0), min(la1 + dla, 90.0))


def _axis(f_constrains: bool, res: float, v0: float, v1: float, axis: int) -> tuple[int, int]:
    return band_range(res, v0, v1, axis) if f_constrains else (0, 1)


def _edges(f_constrains: bool, res: float, first: int, stop: int, k: int, v0: float, v1: float,
           axis: int) -> np.ndarray:
    if not f_constrains:
        return np.array([v0, v1])
    e = band_edges(res, first, stop, axis)
    return np.append(e[::k], e[-1]) if (stop - first) % k else e[::k]


def feature_raster(model: SparseModel, o: Output, view: View, max_cells: int) -> Raster:
    """The weights of the standalone geo block ``o`` over ``view`` on its own grid; when that
    grid has more than ``max_cells`` cells, each drawn cell is the mean weight of a block of
    k x k cells (k the smallest that fits).  NaN where no cell has a weight."""
    f = model.spec.features[o.components[0]]
    res = f.resolution_arcmin
    has_lat, has_lon = f.kind in ("geo", "lat"), f.kind in ("geo", "lon")
    i0, i1 = _axis(has_lat, res, view.lat0, view.lat1, 0)
    j0, j1 = _axis(has_lon, res, view.lon0, view.lon1, 1)
    ni, nj = i1 - i0, j1 - j0
    k = max(1, math.ceil(math.sqrt(ni * nj / max_cells)))
    while math.ceil(ni / k) * math.ceil(nj / k) > max_cells:
        k += 1
    bi, bj = math.ceil(ni / k), math.ceil(nj / k)
    keys = model.keys.astype(np.int64)
    lo, hi = np.searchsorted(keys, [o.offset, o.offset + int(o.cardinality or 0) - 1])
    lid, w = keys[lo:hi] - o.offset, model.weights[lo:hi].astype(np.float64)
    bands_i, bands_j = id_bands(f, lid)
    i = bands_i - i0 if bands_i is not None else np.zeros(len(lid), dtype=np.int64)
    j = bands_j - j0 if bands_j is not None else np.zeros(len(lid), dtype=np.int64)
    inside = (i >= 0) & (i < ni) & (j >= 0) & (j < nj)
    total = np.zeros((bi, bj))
    count = np.zeros((bi, bj))
    np.add.at(total, (i[inside] // k, j[inside] // k), w[inside])
    np.add.at(count, (i[inside] // k, j[inside] // k), 1)
    # cells per drawn block (the last row / column of blocks may be short)
    rows = np.minimum(k, ni - np.arange(bi) * k)[:, None]
    cols = np.minimum(k, nj - np.arange(bj) * k)[None, :]
    values = np.where(count > 0, total / (rows * cols), np.nan)
    return Raster(_edges(has_lat, res, i0, i1, k, view.lat0, view.lat1, 0),
                  _edges(has_lon, res, j0, j1, k, view.lon0, view.lon1, 1), values, res, k, (o.name,))


def geo_effect(model: SparseModel, view: View, max_cells: int) -> Raster:
    """The summed geo effect over ``view``: at the centre of every cell of the finest geo grid
    of the model, the sum of the weights of every geo block (:func:`geo_outputs`) the point hits,
    computed as the featurizer computes columns (exact and hashed blocks alike), every non-geo
    feature missing and skipped.  More than ``max_cells`` cells: a :class:`SparseCrossError`."""
    from .._kernels import crosses as K
    from ..featurize import _plan

    spec = model.spec
    outs = geo_outputs(spec)
    geo = [fi for fi, f in enumerate(spec.features) if is_geo(f)]
    used = sorted({c for o in outs for c in o.components})
    if not used:
        raise SparseCrossError("the model has no geo feature (geo cell, lat or lon band) to map")
    res = min(spec.features[c].resolution_arcmin for c in used)
    i0, i1 = band_range(res, view.lat0, view.lat1, 0)
    j0, j1 = band_range(res, view.lon0, view.lon1, 1)
    n = (i1 - i0) * (j1 - j0)
    if n > max_cells:
        raise SparseCrossError(
            f"the summed geo effect over this view is {i1 - i0:,} x {j1 - j0:,} = {n:,} cells of "
            f"{res:g} arc-minutes, more than the limit of {max_cells:,}; give a smaller --bbox "
            "or raise --max-cells")
    lat_e, lon_e = band_edges(res, i0, i1, 0), band_edges(res, j0, j1, 1)
    lat_c, lon_c = (lat_e[:-1] + lat_e[1:]) / 2, (lon_e[:-1] + lon_e[1:]) / 2
    plan = _plan(spec)
    skip = np.ones(len(spec.features), dtype=np.uint8)
    skip[geo] = plan.skip[geo]
    keys = model.keys.astype(np.int64)
    weights = model.weights.astype(np.float64)
    values = np.empty(n)
    for s in range(0, n, CHUNK):
        idx = np.arange(s, min(s + CHUNK, n))
        lat, lon = lat_c[idx // len(lon_c)], lon_c[idx % len(lon_c)]
        ids = np.zeros((len(spec.features), len(idx)), dtype=np.uint64)
        missing = np.ones((len(spec.features), len(idx)), dtype=np.uint8)
        for fi in geo:
            ids[fi], missing[fi] = point_ids(spec.features[fi], lat, lon)
        indptr, cols, data = K.build_csr(ids, missing, skip, plan.out_kind, plan.out_offset, plan.out_seed,
                                         plan.comp_ptr, plan.comp_feat, plan.comp_stride, plan.mask,
                                         plan.hashed_offset)
        pos = np.minimum(np.searchsorted(keys, cols), max(len(keys) - 1, 0))
        hit = keys[pos] == cols if len(keys) else np.zeros(len(cols), dtype=bool)
        contrib = np.where(hit, weights[pos] * data, 0.0) if len(keys) else np.zeros(len(cols))
        rows = np.repeat(np.arange(len(idx)), np.diff(indptr))
        values[idx] = np.bincount(rows, weights=contrib, minlength=len(idx))
    return Raster(lat_e, lon_e, values.reshape(i1 - i0, j1 - j0), res, 1, tuple(o.name for o in outs))
