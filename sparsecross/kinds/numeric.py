"""``kind = "numeric"``: the (clipped, transformed) number itself as the feature's value.

An exact block of 2 columns: local id 0 carries the value (the only CSR entry whose value is
not a count), local id 1 is the missing indicator (value 1.0).  A numeric feature cannot be
crossed (a cross's value is a count) and must be standalone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import SpecError, shown
from ._base import Ctx, Kind, as_float, choice, get, value_error

np = LazyModule("numpy")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["NUMERIC", "TRANSFORMS"]

TRANSFORMS = ("none", "log1p", "signed_log1p")


class NumericKind(Kind):
    name = "numeric"
    keys = frozenset({"column", "transform", "clip"})
    crossable = False

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        opts: list[tuple[str, Any]] = []
        transform = choice(f"{where}.transform", get(where, t, "transform", str, "none"), TRANSFORMS)
        if "clip" in t:
            raw = get(where, t, "clip", list)
            ok = len(raw) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
            lo, hi = (as_float(f"{where}.clip", raw[0]), as_float(f"{where}.clip", raw[1])) if ok \
                else (math.nan, math.nan)
            if not (ok and math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise SpecError(f"{where}.clip: expected [lo, hi], two finite numbers with lo < hi, got {shown(raw)}")
            if transform == "log1p" and lo <= -1:
                raise SpecError(f"{where}.clip: lo = {lo!r} is outside the domain of transform = \"log1p\" "
                                "(values must be > -1)")
            opts.append(("clip", (lo, hi)))
        if transform != "none":
            opts.append(("transform", transform))
        return {"options": tuple(sorted(opts))}

    def check_feature(self, where: str, f: Feature) -> None:
        if not f.standalone:
            raise SpecError(f"{where}.standalone: a numeric feature cannot be crossed, so standalone = false "
                            "would emit nothing")

    def to_dict(self, f: Feature) -> dict[str, Any]:
        d: dict[str, Any] = {"column": f.columns[0]}
        if f.option("transform") is not None:
            d["transform"] = f.option("transform")
        if f.option("clip") is not None:
            d["clip"] = list(f.option("clip"))
        return d

    def cardinality(self, f: Feature) -> int:
        return 2

    def describe(self, f: Feature, lid: int) -> str:
        transform = f.option("transform", "none")
        clip = f.option("clip")
        v = f.columns[0] if transform == "none" else f"{transform}({f.columns[0]})"
        if clip is not None:
            v += f" (clipped to [{clip[0]!r}, {clip[1]!r}])"
        return f"{f.name}=value of {v}"

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> np.ndarray:
        x = ctx.numeric(f.columns[0])
        miss = np.isnan(x)
        clip = f.option("clip")
        if clip is not None:
            x = np.clip(x, clip[0], clip[1])
        transform = f.option("transform", "none")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            if transform == "log1p":
                bad = (x <= -1.0) & ~miss
                if bad.any():
                    raise value_error(f, ctx, bad, "values <= -1, outside the domain of transform = \"log1p\"",
                                      lambda i: float(x[i]),
                                      "set clip = [lo, hi] with lo > -1, or use transform = \"signed_log1p\"")
                x = np.log1p(x)
            elif transform == "signed_log1p":
                x = np.sign(x) * np.log1p(np.abs(x))
            values = x.astype(np.float32)
        bad = ~np.isfinite(values) & ~miss
        if bad.any():
            raise value_error(f, ctx, bad, "values that are infinite or beyond the float32 range",
                              lambda i: float(x[i]), "set clip = [lo, hi] or a transform")
        ids[:] = miss
        missing[:] = miss
        return values


NUMERIC = NumericKind()
