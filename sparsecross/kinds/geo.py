"""``kind = "geo"`` (a cell of a lat x lon grid), ``"lat"`` and ``"lon"`` (bands of it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import DataError, SpecError
from ._base import Ctx, Kind, choice, get

np = LazyModule("numpy")
K = LazyModule("sparsecross._kernels.crosses")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["grid_of", "GeoKind", "GEO", "LAT", "LON"]


def grid_of(resolution_arcmin: float) -> tuple[int, int]:
    """(n_lat, n_lon) bands of a geo grid of ``resolution_arcmin`` minutes."""
    return math.ceil(10800 / resolution_arcmin), math.ceil(21600 / resolution_arcmin)


class GeoKind(Kind):
    """geo (mode 2: lat and lon columns), lat (mode 0) or lon (mode 1)."""

    def __init__(self, name: str, mode: int) -> None:
        self.name = name
        self.mode = mode
        self.keys = frozenset({"resolution_arcmin", "invalid"} | ({"lat", "lon"} if mode == 2 else {"column"}))

    def columns(self, where: str, t: Mapping[str, Any]) -> tuple[str, ...]:
        if self.mode == 2:
            return (get(where, t, "lat", str), get(where, t, "lon", str))
        return (get(where, t, "column", str),)

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        res = get(where, t, "resolution_arcmin", float, 1.0)
        if not (math.isfinite(res) and 0 < res <= 21600):
            raise SpecError(f"{where}.resolution_arcmin: expected a number in (0, 21600], got {res!r}")
        n = math.prod(grid_of(res))
        if n > 2**40:
            raise SpecError(f"{where}.resolution_arcmin: {res!r} gives {n} cells; at most 2**40")
        invalid = choice(f"{where}.invalid", get(where, t, "invalid", str, "error"), ("error", "missing"))
        return {"resolution_arcmin": res, "invalid": invalid}

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
        f"feature {name!r}: {int(bad.sum())} rows have coordinates outside [-90, 90] x [-180, 180] "
        f"(first at row {start_row + i}: {', '.join(vals)}; counted in rows {start_row}-{start_row + len(bad) - 1}); "
        "set invalid = \"missing\" in the spec to treat them as missing",
        row=start_row + i,
    )


GEO = GeoKind("geo", 2)
LAT = GeoKind("lat", 0)
LON = GeoKind("lon", 1)
