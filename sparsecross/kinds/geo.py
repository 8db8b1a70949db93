"""``kind = "geo"`` (a cell of a lat x lon grid), ``"lat"`` and ``"lon"`` (bands of it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import NAME_LIMIT, DataError, SpecError, shown
from ._base import Ctx, Kind, as_float, choice, get

np = LazyModule("numpy")
K = LazyModule("sparsecross._kernels.crosses")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["grid_of", "level_tag", "GeoKind", "GEO", "LAT", "LON", "MAX_LEVELS"]

#: Most levels a geo pyramid (``resolution_arcmin = [..]``) may have.
MAX_LEVELS = 8


def grid_of(resolution_arcmin: float) -> tuple[int, int]:
    """(n_lat, n_lon) bands of a geo grid of ``resolution_arcmin`` minutes."""
    return math.ceil(10800 / resolution_arcmin), math.ceil(21600 / resolution_arcmin)


def level_tag(resolution_arcmin: float) -> str:
    """The level's text in a pyramid's derived names: ``60`` for 60.0, ``0.5`` for 0.5."""
    r = float(resolution_arcmin)
    return str(int(r)) if r.is_integer() else repr(r)


def _resolution(where: str, res: float) -> float:
    if not (math.isfinite(res) and 0 < res <= 21600):
        raise SpecError(f"{where}: expected a number in (0, 21600], got {res!r}")
    if 10800 / res > 2**40:  # so fine that its grid is not counted (5e-324's would be infinite)
        raise SpecError(f"{where}: {res!r} gives more than 2**40 cells")
    n = math.prod(grid_of(res))
    if n > 2**40:
        raise SpecError(f"{where}: {res!r} gives {n} cells; at most 2**40")
    return res


def _levels(where: str, raw: list[Any]) -> tuple[float, ...]:
    """The levels of a pyramid's ``resolution_arcmin`` list: 1 to :data:`MAX_LEVELS` numbers,
    strictly decreasing (coarsest first)."""
    key = f"{where}.resolution_arcmin"
    if not raw:
        raise SpecError(f"{key}: expected a non-empty list of levels (e.g. [60, 6, 1]), got []")
    if len(raw) > MAX_LEVELS:
        raise SpecError(f"{key}: {len(raw)} levels; a geo pyramid has at most {MAX_LEVELS}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in raw):
        raise SpecError(f"{key}: expected a list of numbers, got {shown(raw)}")
    levels = tuple(_resolution(key, as_float(key, v)) for v in raw)
    if len(set(levels)) != len(levels):
        twice = next(v for k, v in enumerate(levels) if v in levels[:k])
        raise SpecError(f"{key}: level {twice!r} is listed twice, in {shown(raw)}")
    if any(a <= b for a, b in zip(levels, levels[1:])):
        raise SpecError(f"{key}: levels must be strictly decreasing (coarsest first), got {shown(raw)}")
    if len({level_tag(v) for v in levels}) != len(levels):
        raise SpecError(f"{key}: levels {shown(raw)} give the same derived names")
    return levels


class GeoKind(Kind):
    """geo (mode 2: lat and lon columns), lat (mode 0) or lon (mode 1)."""

    def __init__(self, name: str, mode: int) -> None:
        self.name = name
        self.mode = mode
        self.keys = frozenset({"resolution_arcmin", "invalid"}
                              | ({"lat", "lon", "bands"} if mode == 2 else {"column"}))
        if mode == 2:
            self.exclusive = {"bands": 'only a geo pyramid (kind = "geo") has bands'}

    def columns(self, where: str, t: Mapping[str, Any]) -> tuple[str, ...]:
        if self.mode == 2:
            return (get(where, t, "lat", str), get(where, t, "lon", str))
        return (get(where, t, "column", str),)

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        """A geo feature whose ``resolution_arcmin`` is a list is a pyramid: the result carries
        ``pyramid = ("", levels, bands)`` and the parser expands it (spec_parse)."""
        invalid = choice(f"{where}.invalid", get(where, t, "invalid", str, "error"), ("error", "missing"))
        if self.mode == 2:
            bands = get(where, t, "bands", bool, False)
            if isinstance(t.get("resolution_arcmin"), list):
                levels = _levels(where, t["resolution_arcmin"])
                return {"resolution_arcmin": levels[0], "invalid": invalid, "pyramid": ("", levels, bands)}
            if bands:
                raise SpecError(f"{where}.bands: needs resolution_arcmin as a list of levels "
                                "(e.g. [60, 6, 1]; [r] for one level)")
        res = get(where, t, "resolution_arcmin", float, 1.0)
        _resolution(f"{where}.resolution_arcmin", res)
        return {"resolution_arcmin": res, "invalid": invalid}

    def expand(self, f: Feature, name: str) -> tuple[Feature, ...]:
        """A geo pyramid as ordinary features, per level (coarsest first): the cell
        ``name@level`` and, with bands, ``name.lat@level`` and ``name.lon@level``; all carry
        ``pyramid = (name, levels, bands)``."""
        if f.pyramid is None:
            return (f,)
        _, levels, bands = f.pyramid
        tag = (name, levels, bands)
        out: list[Feature] = []
        for r in levels:
            lv = level_tag(r)
            out.append(replace(f, name=f"{name}@{lv}", resolution_arcmin=r, pyramid=tag))
            if bands:
                for k, col in (("lat", f.columns[0]), ("lon", f.columns[1])):
                    out.append(replace(f, name=f"{name}.{k}@{lv}", kind=k, columns=(col,), resolution_arcmin=r,
                                       pyramid=tag))
        return tuple(out)

    def group_of(self, f: Feature) -> str | None:
        return None if f.pyramid is None else f.pyramid[0]

    def group_dict(self, f: Feature) -> dict[str, Any]:
        """A pyramid's feature as the user wrote it (from its first, coarsest, cell feature)."""
        assert f.pyramid is not None and self.mode == 2
        name, levels, bands = f.pyramid
        d: dict[str, Any] = {"name": name, "kind": "geo", "lat": f.columns[0], "lon": f.columns[1],
                             "resolution_arcmin": list(levels), "invalid": f.invalid}
        if bands:
            d["bands"] = True
        d["missing"] = f.missing
        d["standalone"] = f.standalone
        return d

    def is_level_of(self, f: Feature, name: str) -> bool:
        return self.mode == 2 and f.pyramid is not None and f.pyramid[0] == name

    def to_dict(self, f: Feature) -> dict[str, Any]:
        d: dict[str, Any] = {"lat": f.columns[0], "lon": f.columns[1]} if self.mode == 2 else {"column": f.columns[0]}
        d["resolution_arcmin"] = f.resolution_arcmin
        d["invalid"] = f.invalid
        return d

    def cardinality(self, f: Feature) -> int:
        n_lat, n_lon = grid_of(f.resolution_arcmin)
        return (n_lat, n_lon, n_lat * n_lon)[self.mode] + 1

    def describe(self, f: Feature, lid: int) -> str:
        r = f.resolution_arcmin / 60.0
        if self.mode == 2:
            i, j = divmod(lid, grid_of(f.resolution_arcmin)[1])
            lat0, lon0 = -90 + i * r, -180 + j * r
            return (
                f"{f.name}=lat[{lat0:.4f},{min(lat0 + r, 90):.4f}) "
                f"lon[{lon0:.4f},{min(lon0 + r, 180):.4f})"
            )
        if self.mode == 0:
            return f"{f.name}=[{-90 + lid * r:.4f},{min(-90 + (lid + 1) * r, 90):.4f})"
        return f"{f.name}=[{-180 + lid * r:.4f},{min(-180 + (lid + 1) * r, 180):.4f})"

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> None:
        n_lat, n_lon = grid_of(f.resolution_arcmin)
        empty = np.zeros(0, dtype=np.float64)
        if self.mode == 2:
            lat, lon = ctx.numeric(f.columns[0]), ctx.numeric(f.columns[1])
        elif self.mode == 0:
            lat, lon = ctx.numeric(f.columns[0]), empty
        else:
            lat, lon = empty, ctx.numeric(f.columns[0])
        bad_row = K.grid_ids(lat, lon, f.resolution_arcmin, n_lat, n_lon, self.mode,
                             f.invalid == "missing", ids, missing)
        if bad_row >= 0:
            raise _coordinate_error(f.name, lat, lon, self.mode, ctx.start_row)
        return None


def _coordinate_error(name: str, lat: np.ndarray, lon: np.ndarray, mode: int, start_row: int) -> DataError:
    with np.errstate(invalid="ignore"):
        bad = np.zeros(max(len(lat), len(lon)), dtype=bool)
        if mode != 1:
            bad |= (lat < -90) | (lat > 90)
        if mode != 0:
            bad |= (lon < -180) | (lon > 180)
    i = int(np.flatnonzero(bad)[0])
    vals = []
    if mode != 1:
        vals.append(f"lat={float(lat[i])!r}")
    if mode != 0:
        vals.append(f"lon={float(lon[i])!r}")
    return DataError(
        f"feature {shown(name, NAME_LIMIT)}: {int(bad.sum())} rows have coordinates outside "
        f"[-90, 90] x [-180, 180] (first at row {start_row + i}: {', '.join(vals)}; counted in rows {start_row}-{start_row + len(bad) - 1}); "
        "set invalid = \"missing\" in the spec to treat them as missing",
        row=start_row + i,
    )


GEO = GeoKind("geo", 2)
LAT = GeoKind("lat", 0)
LON = GeoKind("lon", 1)


# --- Geometry of geo ids, for the weight maps (sparsecross.plots asks the kind) -------------

#: The kinds whose local ids are places on the lat x lon grid, by ``kind =`` value.
GEO_KINDS: dict[str, GeoKind] = {k.name: k for k in (GEO, LAT, LON)}


def is_geo(f: Feature) -> bool:
    """True for a geo cell, latitude band or longitude band feature."""
    return f.kind in GEO_KINDS


def id_bounds(f: Feature, lids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lat0, lat1, lon0, lon1)`` float64 arrays: the rectangle of each local id of the geo
    feature ``f`` (a cell, or a band spanning all longitudes / latitudes), its edges clipped to
    the world as the featurizer clips coordinates.  The missing id is not a place: the caller
    leaves it out (``lids < cardinality - 1``)."""
    lids = np.asarray(lids, dtype=np.int64)
    r = f.resolution_arcmin / 60.0
    n_lon = grid_of(f.resolution_arcmin)[1]
    i = lids // n_lon if f.kind == "geo" else lids
    j = lids % n_lon if f.kind == "geo" else lids
    lat0, lat1 = -90.0 + i * r, np.minimum(-90.0 + (i + 1) * r, 90.0)
    lon0, lon1 = -180.0 + j * r, np.minimum(-180.0 + (j + 1) * r, 180.0)
    if f.kind == "lon":
        lat0, lat1 = np.full(len(lids), -90.0), np.full(len(lids), 90.0)
    if f.kind == "lat":
        lon0, lon1 = np.full(len(lids), -180.0), np.full(len(lids), 180.0)
    return lat0, lat1, lon0, lon1


def band_range(resolution_arcmin: float, lo: float, hi: float, axis: int) -> tuple[int, int]:
    """``(first, stop)``: the bands of latitude (``axis`` 0) or longitude (1) of a grid of
    ``resolution_arcmin`` that meet ``[lo, hi]`` (degrees), as the featurizer numbers them."""
    r = resolution_arcmin / 60.0
    origin = -90.0 if axis == 0 else -180.0
    n = grid_of(resolution_arcmin)[axis]
    first = min(max(math.floor((lo - origin) / r), 0), n - 1)
    last = min(max(math.ceil((hi - origin) / r), first + 1), n)
    return first, last


def band_edges(resolution_arcmin: float, first: int, stop: int, axis: int) -> np.ndarray:
    """The ``stop - first + 1`` edges (degrees, clipped to the world) of bands
    ``first..stop-1`` of latitude (``axis`` 0) or longitude (1)."""
    r = resolution_arcmin / 60.0
    origin, end = (-90.0, 90.0) if axis == 0 else (-180.0, 180.0)
    return np.minimum(origin + np.arange(first, stop + 1, dtype=np.float64) * r, end)


def point_ids(f: Feature, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids uint64[n], missing uint8[n])`` of the geo feature ``f`` at the points
    ``lat``/``lon`` (float64 degrees), computed by the featurizer's kernel (out-of-range
    points are missing)."""
    n_lat, n_lon = grid_of(f.resolution_arcmin)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    ids = np.empty(len(lat), dtype=np.uint64)
    missing = np.empty(len(lat), dtype=np.uint8)
    K.grid_ids(lat, lon, f.resolution_arcmin, n_lat, n_lon, GEO_KINDS[f.kind].mode, True, ids, missing)
    return ids, missing


def id_bands(f: Feature, lids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(lat band, lon band)`` int64 arrays of each local id of the geo feature ``f``; None for
    the axis a band feature does not constrain (a ``lat`` band spans every longitude)."""
    lids = np.asarray(lids, dtype=np.int64)
    if f.kind == "lat":
        return lids, None
    if f.kind == "lon":
        return None, lids
    n_lon = grid_of(f.resolution_arcmin)[1]
    return lids // n_lon, lids % n_lon
