"""``kind = "bucket"``: a number's interval between sorted boundaries (explicit, or
``quantiles = N`` computed from a sample of the data: :meth:`BucketKind.resolve`, called by
:func:`sparsecross.featurize.resolve_spec`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import DataError, SpecError, shown
from ._base import Ctx, Kind, as_float, feature_column, get

np = LazyModule("numpy")
K = LazyModule("sparsecross._kernels.crosses")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["BUCKET"]


class BucketKind(Kind):
    name = "bucket"
    keys = frozenset({"column", "boundaries", "quantiles"})

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        if "boundaries" not in t and "quantiles" not in t:
            raise SpecError(f"{where}: a bucket feature needs 'boundaries' or 'quantiles'")
        if "boundaries" in t and "quantiles" in t and not stored:
            raise SpecError(
                f"{where}: 'boundaries' and 'quantiles' exclude each other; give explicit boundaries, "
                "or quantiles = N to compute them from the data"
            )
        boundaries = None
        quantiles = None
        if "boundaries" in t:
            raw = get(where, t, "boundaries", list)
            b = tuple(as_float(f"{where}.boundaries", x) for x in raw
                      if isinstance(x, (int, float)) and not isinstance(x, bool))
            if len(b) != len(raw) or not b:
                raise SpecError(f"{where}.boundaries: expected a non-empty list of numbers, got {shown(raw)}")
            if not all(math.isfinite(x) for x in b) or any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
                raise SpecError(f"{where}.boundaries: must be finite and strictly increasing, got {shown(raw)}")
            boundaries = b
        if "quantiles" in t:
            # With explicit boundaries too (stored specs only), this is a resolved spec: the
            # boundaries are used and the quantile count only records how they were made.
            quantiles = get(where, t, "quantiles", int)
            if not 2 <= quantiles <= 10000:
                raise SpecError(f"{where}.quantiles: expected an integer in [2, 10000], got {shown(quantiles)}")
        return {"boundaries": boundaries, "quantiles": quantiles}

    def to_dict(self, f: Feature) -> dict[str, Any]:
        d: dict[str, Any] = {"column": f.columns[0]}
        if f.boundaries is not None:
            d["boundaries"] = list(f.boundaries)
        if f.quantiles is not None:
            d["quantiles"] = f.quantiles
        return d

    def cardinality(self, f: Feature) -> int | None:
        return None if f.boundaries is None else len(f.boundaries) + 2

    def describe(self, f: Feature, lid: int) -> str:
        b = f.boundaries or ()
        lo = "-inf" if lid == 0 else repr(b[lid - 1])
        hi = "inf" if lid >= len(b) else repr(b[lid])
        return f"{f.name}=[{lo},{hi})"

    def needs_data(self, f: Feature) -> bool:
        return f.boundaries is None

    def resolve(self, f: Feature, sample: np.ndarray) -> Feature:
        """The boundaries of ``quantiles = N``: the distinct finite N-quantiles of ``sample``."""
        assert f.quantiles is not None
        if len(sample) == 0:
            raise DataError(f"{feature_column(f, f.columns[0])} has no finite values to compute quantiles")
        qs = np.quantile(sample, np.arange(1, f.quantiles) / f.quantiles)
        b = tuple(float(v) for v in np.unique(qs) if math.isfinite(v))
        if not b:
            raise DataError(f"{feature_column(f, f.columns[0])} has values too large for float64 quantiles")
        return replace(f, boundaries=b)

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> None:
        K.bucket_ids(ctx.numeric(f.columns[0]), np.asarray(f.boundaries, dtype=np.float64), ids, missing)
        return None


BUCKET = BucketKind()
