"""Slow, row-at-a-time reference featurizer for feature contract v1.

Written straight from ``docs/CONTRACT.md`` (sections "Spec (TOML)", "Local ids of exact
features", "Hash contract v1", "Global column layout"). It does NOT import ``sparsecross``.

Input is the RAW dict of ``tomllib.loads(spec_text)`` and a list of plain Python dicts, one per
row (column name -> value; ``None`` is null and, for numeric columns, ``float("nan")`` is
missing too). Every number is a Python float (IEEE float64) and every formula is evaluated in
the order the contract writes it, with ``math.floor`` / ``math.ceil``.

Decisions where the contract is silent (also listed in the module's report):

- Unknown spec keys are ignored here (the library validates the spec; this oracle only computes
  outputs for specs the library accepts).
- The cardinality of an exact feature always includes its missing id, also with
  ``missing = "skip"`` (the table in "Local ids of exact features" has no exception for skip).
- geo with ``invalid = "error"``: every *present* coordinate is range-checked, so
  ``lat = None, lon = 500`` raises (it is not silently treated as missing).
- Out-of-range means outside the closed intervals ``[-90, 90]`` / ``[-180, 180]``; +-inf is out
  of range.
- A missing label, or a missing / negative / non-finite weight, raises ``ValueError`` (the
  library may drop or warn instead; keep such rows out of comparisons).
- A categorical column holding a float that is not NaN raises ``TypeError``; NaN is missing.
- numeric: the value is rounded to float32 (``struct``) after clip and transform; a value that is
  not finite in float32, or ``log1p`` of a value <= -1, raises ``ValueError``.
- categorical list: a row's list value gives one key per distinct non-null element; a null or
  empty list is the missing value.  In a hashed cross, each list component's distinct non-null
  elements are numbered in list order; every tuple of elements (one per list component) is
  crossed with the other components, the tuples sorted by (largest number, numbers) and the
  first ``CROSS_LIST_CAP`` kept (one list: its first CAP distinct elements).
- geo pyramid (``resolution_arcmin`` a list): expanded per level, coarsest first, into a geo
  feature ``name@L`` and, with ``bands = true``, a lat feature ``name.lat@L`` and a lon feature
  ``name.lon@L`` (``L``: the level as an integer when whole, else its repr), each with the
  pyramid's columns, ``missing``, ``standalone`` and ``invalid``.
- time: a ``datetime`` without tzinfo (and a parsed string) is a UTC instant; ``date`` values have
  their own calendar fields (no time zone); Python's ``datetime.strptime`` parses strings.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import math
import re
import struct
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .hashing_reference import MASK64, categorical_key, cross_key

__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_SEED",
    "DEFAULT_MAX_EXACT",
    "reference_featurize",
    "layout_reference",
    "lat_local_id",
    "lon_local_id",
    "n_lat_cells",
    "n_lon_cells",
    "bucket_local_id",
]

DEFAULT_BITS = 22
DEFAULT_SEED = 0
DEFAULT_MAX_EXACT = 2**30
DEFAULT_RESOLUTION_ARCMIN = 1.0
EXACT_KINDS = ("geo", "lat", "lon", "bucket", "numeric", "time")
ALL_KINDS = EXACT_KINDS + ("categorical",)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


# ---------------------------------------------------------------------------------------------
# Local ids of exact features (CONTRACT.md, "Local ids of exact features")
# ---------------------------------------------------------------------------------------------


def n_lat_cells(r: float) -> int:
    """``n_lat = ceil(10800 / r)``."""
    return math.ceil(10800.0 / r)


def n_lon_cells(r: float) -> int:
    """``n_lon = ceil(21600 / r)``."""
    return math.ceil(21600.0 / r)


def lat_local_id(lat: float, r: float) -> int:
    """``i = clip(floor((lat + 90) * 60 / r), 0, n_lat - 1)`` for a present, in-range ``lat``."""
    i = math.floor((lat + 90.0) * 60.0 / r)
    return min(max(i, 0), n_lat_cells(r) - 1)


def lon_local_id(lon: float, r: float) -> int:
    """``j = clip(floor((lon + 180) * 60 / r), 0, n_lon - 1)`` for a present, in-range ``lon``."""
    j = math.floor((lon + 180.0) * 60.0 / r)
    return min(max(j, 0), n_lon_cells(r) - 1)


def bucket_local_id(x: float, boundaries: list[float]) -> int:
    """Number of boundaries ``<= x`` (``numpy.searchsorted(b, x, side="right")``)."""
    return bisect.bisect_right(boundaries, x)


# ---------------------------------------------------------------------------------------------
# Spec with the documented defaults applied
# ---------------------------------------------------------------------------------------------


@dataclass
class _Feature:
    name: str
    kind: str
    columns: tuple[str, ...]  # geo: (lat, lon); others: (column,)
    missing: str  # "bucket" | "skip"
    standalone: bool
    resolution_arcmin: float = DEFAULT_RESOLUTION_ARCMIN
    invalid: str = "error"
    boundaries: list[float] = field(default_factory=list)
    cardinality: int | None = None  # None for categoricals (hashed, no exact cardinality)
    # numeric
    transform: str = "none"
    clip: tuple[float, float] | None = None
    # time
    part: str = ""
    format: str | None = None
    timezone: str = "UTC"
    first: int = 0  # value of local id 0 of the part (month 1, dayofyear 1, year: years[0])

    @property
    def exact(self) -> bool:
        return self.kind in EXACT_KINDS

    @property
    def missing_id(self) -> int:
        """Local id of the missing bucket (last id of the block)."""
        assert self.cardinality is not None
        return self.cardinality - 1


@dataclass
class _Cross:
    name: str
    features: list[_Feature]
    mode: str  # resolved: "exact" | "hashed"
    cardinality: int | None  # product of component cardinalities when exact


@dataclass
class _Spec:
    bits: int
    seed: int
    max_exact: int
    label_column: str
    threshold: float | None
    weight_column: str | None
    features: list[_Feature]
    crosses: list[_Cross]
    feature_offsets: dict[str, int]
    cross_offsets: dict[str, int]
    hashed_offset: int
    compare: str = ">"
    positive: list[Any] | None = None
    label_missing: str = "error"
    positive_weight: float | None = None

    @property
    def width(self) -> int:
        return self.hashed_offset + (1 << self.bits)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _level(r: float) -> str:
    return str(int(r)) if float(r) == int(r) else repr(float(r))


def _expand(raw: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    """A raw feature table, or the tables of a geo pyramid's levels ((table, derived))."""
    levels = raw.get("resolution_arcmin")
    if raw.get("kind") != "geo" or not isinstance(levels, list):
        return [(raw, False)]
    common = {k: raw[k] for k in ("missing", "standalone", "invalid") if k in raw}
    out = []
    for r in levels:
        lv = _level(r)
        out.append(({**common, "name": f"{raw['name']}@{lv}", "kind": "geo", "lat": raw["lat"],
                     "lon": raw["lon"], "resolution_arcmin": r}, True))
        if raw.get("bands", False):
            for k in ("lat", "lon"):
                out.append(({**common, "name": f"{raw['name']}.{k}@{lv}", "kind": k, "column": raw[k],
                             "resolution_arcmin": r}, True))
    return out


def _parse_feature(index: int, raw: dict[str, Any], derived: bool = False) -> _Feature:
    where = f"features[{index}]"
    name = raw.get("name")
    if not isinstance(name, str) or not (derived or _NAME_RE.match(name)):
        raise ValueError(f"{where}.name must match [A-Za-z0-9_.-]+, got {name!r}")
    kind = raw.get("kind")
    if kind not in ALL_KINDS:
        raise ValueError(f"{where}.kind must be one of {ALL_KINDS}, got {kind!r}")
    missing = raw.get("missing", "bucket")
    if missing not in ("bucket", "skip"):
        raise ValueError(f"{where}.missing must be 'bucket' or 'skip', got {missing!r}")
    standalone = raw.get("standalone", True)
    if not isinstance(standalone, bool):
        raise ValueError(f"{where}.standalone must be a bool, got {standalone!r}")

    if kind == "geo":
        lat, lon = raw.get("lat"), raw.get("lon")
        if not isinstance(lat, str) or not isinstance(lon, str):
            raise ValueError(f"{where}: geo needs string 'lat' and 'lon' columns")
        columns: tuple[str, ...] = (lat, lon)
    else:
        column = raw.get("column")
        if not isinstance(column, str):
            raise ValueError(f"{where}: kind {kind!r} needs a string 'column', got {column!r}")
        columns = (column,)

    feature = _Feature(name=name, kind=kind, columns=columns, missing=missing,
                       standalone=standalone)

    if kind in ("geo", "lat", "lon"):
        r = raw.get("resolution_arcmin", DEFAULT_RESOLUTION_ARCMIN)
        if not _is_number(r) or not math.isfinite(r) or r <= 0:
            raise ValueError(f"{where}.resolution_arcmin must be finite and > 0, got {r!r}")
        invalid = raw.get("invalid", "error")
        if invalid not in ("error", "missing"):
            raise ValueError(f"{where}.invalid must be 'error' or 'missing', got {invalid!r}")
        feature.resolution_arcmin = float(r)
        feature.invalid = invalid
        n_lat, n_lon = n_lat_cells(feature.resolution_arcmin), n_lon_cells(feature.resolution_arcmin)
        if kind == "lat":
            feature.cardinality = n_lat + 1
        elif kind == "lon":
            feature.cardinality = n_lon + 1
        else:
            feature.cardinality = n_lat * n_lon + 1
    elif kind == "bucket":
        if "quantiles" in raw:
            raise NotImplementedError(
                f"{where}: 'quantiles' must be resolved to explicit 'boundaries' by the library "
                "before featurizing (it needs data); the reference only takes boundaries"
            )
        b = raw.get("boundaries")
        if not isinstance(b, list) or not all(_is_number(v) for v in b):
            raise ValueError(f"{where}.boundaries must be a list of numbers, got {b!r}")
        bf = [float(v) for v in b]
        if not all(math.isfinite(v) for v in bf):
            raise ValueError(f"{where}.boundaries must be finite, got {b!r}")
        if any(bf[k] >= bf[k + 1] for k in range(len(bf) - 1)):
            raise ValueError(f"{where}.boundaries must be strictly increasing, got {b!r}")
        feature.boundaries = bf
        feature.cardinality = len(bf) + 2
    elif kind == "numeric":
        # block of 2: local id 0 carries the value, id 1 is the missing indicator
        feature.transform = raw.get("transform", "none")
        if "clip" in raw:
            feature.clip = (float(raw["clip"][0]), float(raw["clip"][1]))
        feature.cardinality = 2
    elif kind == "time":
        feature.part = raw["part"]
        feature.format = raw.get("format")
        feature.timezone = raw.get("timezone", "UTC")
        feature.invalid = raw.get("invalid", "error")
        counts = {"minute": (0, 60), "hour": (0, 24), "dow": (0, 7), "dayofyear": (1, 366), "month": (1, 12)}
        if feature.part == "year":
            first, last = raw["years"]
            counts["year"] = (first, last - first + 1)
        feature.first, n_values = counts[feature.part]
        feature.cardinality = n_values + 1
    return feature


def _parse_spec(spec: dict[str, Any]) -> _Spec:
    """Apply the documented defaults (CONTRACT.md, "Spec (TOML)") and compute the layout."""
    version = spec.get("version", 1)
    if version != 1 or isinstance(version, bool):
        raise ValueError(f"version must be 1, got {version!r}")

    hashing = spec.get("hashing", {})
    bits = hashing.get("bits", DEFAULT_BITS)
    if not _is_int(bits) or not 1 <= bits <= 40:
        raise ValueError(f"hashing.bits must be an int in 1..40, got {bits!r}")
    seed = hashing.get("seed", DEFAULT_SEED)
    if not _is_int(seed) or not 0 <= seed <= MASK64:
        raise ValueError(f"hashing.seed must be an int in [0, 2**64), got {seed!r}")
    max_exact = hashing.get("max_exact", DEFAULT_MAX_EXACT)
    if not _is_int(max_exact) or max_exact < 1:
        raise ValueError(f"hashing.max_exact must be a positive int, got {max_exact!r}")

    label = spec.get("label")
    if not isinstance(label, dict) or not isinstance(label.get("column"), str):
        raise ValueError("[label] with a string 'column' is required")
    threshold = label.get("threshold")
    if threshold is not None and not _is_number(threshold):
        raise ValueError(f"label.threshold must be a number, got {threshold!r}")
    weight_column = label.get("weight")
    if weight_column is not None and not isinstance(weight_column, str):
        raise ValueError(f"label.weight must be a column name, got {weight_column!r}")

    features = [_parse_feature(k, t, derived) for k, raw in enumerate(spec.get("features", []))
                for t, derived in _expand(raw)]
    by_name: dict[str, _Feature] = {}
    for f in features:
        if f.name in by_name:
            raise ValueError(f"feature name {f.name!r} is not unique")
        by_name[f.name] = f

    crosses: list[_Cross] = []
    for k, raw in enumerate(spec.get("crosses", [])):
        where = f"crosses[{k}]"
        names = raw.get("features")
        if not isinstance(names, list) or len(names) < 2:
            raise ValueError(f"{where}.features must list 2+ feature names, got {names!r}")
        for n in names:
            if n not in by_name:
                raise ValueError(f"{where}.features: unknown feature {n!r}")
        comps = [by_name[n] for n in names]
        name = raw.get("name", "*".join(names))
        if not isinstance(name, str):
            raise ValueError(f"{where}.name must be a string, got {name!r}")
        mode = raw.get("mode", "auto")
        if mode not in ("auto", "exact", "hashed"):
            raise ValueError(f"{where}.mode must be auto|exact|hashed, got {mode!r}")
        all_exact = all(c.exact for c in comps)
        product = None
        if all_exact:
            product = 1
            for c in comps:
                assert c.cardinality is not None
                product *= c.cardinality
        if mode == "exact":
            if not all_exact:
                raise ValueError(f"{where}: mode 'exact' but a component is categorical")
            resolved = "exact"
        elif mode == "hashed":
            resolved = "hashed"
        else:  # auto
            resolved = "exact" if (all_exact and product is not None and product <= max_exact) \
                else "hashed"
        crosses.append(_Cross(name=name, features=comps, mode=resolved,
                              cardinality=product if resolved == "exact" else None))

    # Global column layout: standalone exact features, then exact crosses, then hashed block.
    offset = 0
    feature_offsets: dict[str, int] = {}
    for f in features:
        if f.standalone and f.exact:
            assert f.cardinality is not None
            feature_offsets[f.name] = offset
            offset += f.cardinality
    cross_offsets: dict[str, int] = {}
    for c in crosses:
        if c.mode == "exact":
            assert c.cardinality is not None
            if c.name in cross_offsets:
                raise ValueError(f"exact cross name {c.name!r} is not unique")
            cross_offsets[c.name] = offset
            offset += c.cardinality

    return _Spec(bits=bits, seed=seed, max_exact=max_exact, label_column=label["column"],
                 threshold=None if threshold is None else float(threshold),
                 weight_column=weight_column, features=features, crosses=crosses,
                 feature_offsets=feature_offsets, cross_offsets=cross_offsets,
                 hashed_offset=offset, compare=label.get("compare", ">"), positive=label.get("positive"),
                 label_missing=label.get("missing", "error"),
                 positive_weight=None if label.get("positive_weight") is None else float(label["positive_weight"]))


def layout_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Global column layout of a raw spec dict (CONTRACT.md, "Global column layout").

    Returns a dict with:

    - ``"feature_offsets"``: ``{name: offset}`` for every standalone exact feature, spec order;
    - ``"cross_offsets"``: ``{name: offset}`` for every exact cross, spec order;
    - ``"blocks"``: the same as a list of ``{"kind": "feature"|"cross", "name", "offset",
      "cardinality"}`` in column order;
    - ``"cross_modes"``: ``{cross name: "exact"|"hashed"}`` (``auto`` resolved);
    - ``"H"``: offset of the hashed block; ``"bits"``; ``"width"`` = ``H + 2**bits``.
    """
    s = _parse_spec(spec)
    blocks = []
    for f in s.features:
        if f.name in s.feature_offsets:
            blocks.append({"kind": "feature", "name": f.name,
                           "offset": s.feature_offsets[f.name], "cardinality": f.cardinality})
    for c in s.crosses:
        if c.mode == "exact":
            blocks.append({"kind": "cross", "name": c.name,
                           "offset": s.cross_offsets[c.name], "cardinality": c.cardinality})
    return {
        "feature_offsets": dict(s.feature_offsets),
        "cross_offsets": dict(s.cross_offsets),
        "blocks": blocks,
        "cross_modes": {c.name: c.mode for c in s.crosses},
        "H": s.hashed_offset,
        "bits": s.bits,
        "width": s.width,
    }


# ---------------------------------------------------------------------------------------------
# Row values
# ---------------------------------------------------------------------------------------------


def _get(row: dict[str, Any], column: str, row_index: int) -> Any:
    if column not in row:
        raise KeyError(f"row {row_index} has no column {column!r}; has {sorted(row)!r}")
    return row[column]


def _numeric(value: Any, where: str) -> float | None:
    """Float value of a numeric cell, or None when missing (null or NaN)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{where}: expected a number, got {value!r}")
    x = float(value)
    if math.isnan(x):
        return None
    return x


def _coordinate(value: Any, limit: float, feature: _Feature, where: str) -> float | None:
    """A lat (limit 90) or lon (limit 180) value; None if missing (or invalid -> missing)."""
    x = _numeric(value, where)
    if x is None:
        return None
    if not -limit <= x <= limit:  # closed interval; +-inf is out of range
        if feature.invalid == "error":
            raise ValueError(
                f"{where}: coordinate {x!r} is outside [{-limit:g}, {limit:g}] "
                f"(feature {feature.name!r} has invalid = 'error')"
            )
        return None
    return x


def _exact_local_id(f: _Feature, row: dict[str, Any], row_index: int) -> int | None:
    """Local id of an exact feature in this row; the missing id, or None for ``skip``."""
    r = f.resolution_arcmin
    local: int | None
    if f.kind == "geo":
        lat_col, lon_col = f.columns
        # Range-check every present coordinate first (error mode raises even if the other is null).
        lat = _coordinate(_get(row, lat_col, row_index), 90.0, f, f"row {row_index} {lat_col!r}")
        lon = _coordinate(_get(row, lon_col, row_index), 180.0, f, f"row {row_index} {lon_col!r}")
        if lat is None or lon is None:
            local = None
        else:
            local = lat_local_id(lat, r) * n_lon_cells(r) + lon_local_id(lon, r)
    elif f.kind == "lat":
        lat = _coordinate(_get(row, f.columns[0], row_index), 90.0, f,
                          f"row {row_index} {f.columns[0]!r}")
        local = None if lat is None else lat_local_id(lat, r)
    elif f.kind == "lon":
        lon = _coordinate(_get(row, f.columns[0], row_index), 180.0, f,
                          f"row {row_index} {f.columns[0]!r}")
        local = None if lon is None else lon_local_id(lon, r)
    elif f.kind == "bucket":
        x = _numeric(_get(row, f.columns[0], row_index), f"row {row_index} {f.columns[0]!r}")
        local = None if x is None else bucket_local_id(x, f.boundaries)
    elif f.kind == "numeric":
        x = _numeric(_get(row, f.columns[0], row_index), f"row {row_index} {f.columns[0]!r}")
        local = None if x is None else 0
    elif f.kind == "time":
        local = _time_local_id(f, _get(row, f.columns[0], row_index), row_index)
    else:  # pragma: no cover - guarded by callers
        raise AssertionError(f.kind)
    if local is None:
        return None if f.missing == "skip" else f.missing_id
    return local


def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0] if abs(x) < 3.5e38 else math.copysign(math.inf, x)


def numeric_value(f: _Feature, x: float, row_index: int) -> float:
    """The CSR value of a present numeric cell: clip, then transform, then float32."""
    if f.clip is not None:
        x = min(max(x, f.clip[0]), f.clip[1])
    if f.transform == "log1p":
        if x <= -1:
            raise ValueError(f"row {row_index}: log1p of {x!r} (feature {f.name!r})")
        x = math.log1p(x)
    elif f.transform == "signed_log1p":
        sign = 1.0 if x > 0 else -1.0 if x < 0 else 0.0
        x = sign * math.log1p(abs(x)) if math.isfinite(x) else x
    v = _float32(x)
    if not math.isfinite(v):
        raise ValueError(f"row {row_index}: value {x!r} of feature {f.name!r} is not finite in float32")
    return v


def _time_local_id(f: _Feature, value: Any, row_index: int) -> int | None:
    """Local id of a time part, None when missing (null, or invalid with invalid = "missing")."""
    if value is None:
        return None
    if isinstance(value, str):
        assert f.format is not None
        try:
            value = datetime.datetime.strptime(value, f.format)
        except ValueError:
            if f.invalid == "error":
                raise ValueError(f"row {row_index}: {value!r} does not match {f.format!r}") from None
            return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        value = value.astimezone(zoneinfo.ZoneInfo(f.timezone))
    parts = {"minute": lambda d: d.minute, "hour": lambda d: d.hour, "dow": lambda d: d.weekday(),
             "month": lambda d: d.month, "year": lambda d: d.year, "dayofyear": lambda d: d.timetuple().tm_yday}
    local = parts[f.part](value) - f.first
    assert f.cardinality is not None
    if not 0 <= local < f.cardinality - 1:  # only a year outside years = [first, last]
        if f.invalid == "error":
            raise ValueError(f"row {row_index}: {value!r} is outside the years of feature {f.name!r}")
        return None
    return local


#: Most distinct elements of a row's list crossed (CONTRACT.md, categorical lists).
CROSS_LIST_CAP = 64


def _crossed_list_keys(f: _Feature, row: dict[str, Any], row_index: int, seed: int) -> list[int] | None:
    """For a list value: the keys of its first CROSS_LIST_CAP distinct non-null elements, in
    list order ([missing key] for a null or empty list, None under ``skip``); None for a scalar."""
    value = _get(row, f.columns[0], row_index)
    if not isinstance(value, list):
        return None
    distinct: list[Any] = []
    for v in value:
        if v is not None and v not in distinct:
            distinct.append(v)
    if not distinct:
        return None if f.missing == "skip" else [categorical_key(f.name, None, seed)]
    return [categorical_key(f.name, v, seed) for v in distinct[:CROSS_LIST_CAP]]


def _categorical_key(f: _Feature, row: dict[str, Any], row_index: int, seed: int) -> int | None:
    """64-bit key of a categorical in this row; the missing key, or None for ``skip``; the
    sorted list of its distinct element keys for a list value."""
    value = _get(row, f.columns[0], row_index)
    if isinstance(value, list):  # a list column: one key per distinct non-null element
        keys = sorted({categorical_key(f.name, v, seed) for v in value if v is not None})
        if not keys:  # a null or empty list is the missing value
            return None if f.missing == "skip" else categorical_key(f.name, None, seed)
        return keys  # type: ignore[return-value]
    if isinstance(value, float) and math.isnan(value):
        value = None
    if value is None:
        return None if f.missing == "skip" else categorical_key(f.name, None, seed)
    return categorical_key(f.name, value, seed)


def _label_missing(s: _Spec, row: dict[str, Any], row_index: int) -> bool:
    value = _get(row, s.label_column, row_index)
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label(s: _Spec, row: dict[str, Any], row_index: int) -> float:
    value = _get(row, s.label_column, row_index)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError(f"row {row_index}: label {s.label_column!r} is missing")
    if s.positive is not None:
        # equality in the column's type: a bool matches only bools, an int an int or an equal float
        for v in s.positive:
            if isinstance(v, bool) or isinstance(value, bool):
                if isinstance(v, bool) and isinstance(value, bool) and v == value:
                    return 1.0
            elif type(v) is type(value) or (isinstance(v, int) and isinstance(value, float)):
                if v == value:
                    return 1.0
        return 0.0
    if s.threshold is not None:
        x = _numeric(value, f"row {row_index} label {s.label_column!r}")
        assert x is not None
        t = s.threshold
        return 1.0 if {">": x > t, ">=": x >= t, "<": x < t, "<=": x <= t}[s.compare] else 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if _is_number(value) and value in (0, 1):
        return float(value)
    raise ValueError(f"row {row_index}: label {s.label_column!r} must be 0/1 or bool "
                     f"(no threshold set), got {value!r}")


def _weight(s: _Spec, row: dict[str, Any], row_index: int) -> float:
    assert s.weight_column is not None
    x = _numeric(_get(row, s.weight_column, row_index), f"row {row_index} weight")
    if x is None or not math.isfinite(x) or x < 0:
        raise ValueError(f"row {row_index}: weight {s.weight_column!r} must be finite and >= 0, "
                         f"got {row[s.weight_column]!r}")
    return x


# ---------------------------------------------------------------------------------------------
# The featurizer
# ---------------------------------------------------------------------------------------------


def _row_columns(s: _Spec, row: dict[str, Any], row_index: int) -> list[tuple[int, float]]:
    """Sorted ``(column, count)`` pairs of one row, collisions summed."""
    mask = (1 << s.bits) - 1
    H = s.hashed_offset

    # Per feature: its local id (exact) or 64-bit key (categorical); None = emits nothing.
    component: dict[str, int | None] = {}
    for f in s.features:
        if f.exact:
            component[f.name] = _exact_local_id(f, row, row_index)
        else:
            component[f.name] = _categorical_key(f, row, row_index, s.seed)

    outputs: list[int] = []
    values: dict[int, float] = {}  # column -> value, for the value column of a numeric feature
    # 1. standalone features
    for f in s.features:
        value = component[f.name]
        if not f.standalone or value is None:
            continue
        if f.exact:
            outputs.append(s.feature_offsets[f.name] + value)
            if f.kind == "numeric" and value == 0:
                x = _numeric(row[f.columns[0]], f"row {row_index} {f.columns[0]!r}")
                assert x is not None
                values[s.feature_offsets[f.name]] = numeric_value(f, x, row_index)
        elif isinstance(value, list):
            outputs.extend(H + (k & mask) for k in value)
        else:
            outputs.append(H + (value & mask))
    # 2. crosses (nothing if any component emitted nothing: missing = "skip")
    for c in s.crosses:
        parts = [component[f.name] for f in c.features]
        lists = [i for i, f in enumerate(c.features)
                 if not f.exact and isinstance(_get(row, f.columns[0], row_index), list)]
        if lists:
            if any(p is None for j, p in enumerate(parts) if j not in lists):
                continue
            elements = [_crossed_list_keys(c.features[i], row, row_index, s.seed) for i in lists]
            if any(e is None for e in elements):  # a null or empty list with missing = "skip"
                continue
            # every tuple of elements (one per list), by (largest position, positions): the first CAP
            tuples = sorted(itertools.product(*[range(len(e)) for e in elements]), key=lambda t: (max(t), t))
            for t in tuples[:CROSS_LIST_CAP]:
                comp = list(parts)
                for i, e, at in zip(lists, elements, t):
                    comp[i] = e[at]
                key = cross_key(c.name, comp, s.seed)
                outputs.append(H + (key & mask))
            continue
        if any(p is None for p in parts):
            continue
        if c.mode == "exact":
            local = 0
            for f, p in zip(c.features, parts):  # mixed radix, first component most significant
                assert f.cardinality is not None and p is not None
                local = local * f.cardinality + p
            outputs.append(s.cross_offsets[c.name] + local)
        else:
            key = cross_key(c.name, [p for p in parts if p is not None], s.seed)
            outputs.append(H + (key & mask))

    counts = Counter(outputs)
    return [(col, values.get(col, float(counts[col]))) for col in sorted(counts)]


def reference_featurize(
    spec: dict[str, Any], rows: list[dict[str, Any]]
) -> tuple[list[list[tuple[int, float]]], list[float], list[float] | None, int]:
    """Featurize ``rows`` under the raw ``spec`` dict, one row at a time.

    Parameters
    ----------
    spec
        ``tomllib.loads(spec_text)``; defaults of CONTRACT.md "Spec (TOML)" are applied here.
    rows
        One dict per row: column -> value (``None`` = null; NaN = missing for numbers).

    Returns
    -------
    (csr_rows, labels, weights, width)
        ``csr_rows[k]`` is the sorted list of ``(column_id, value)`` of row k, a collision being
        one entry whose value is the count (CONTRACT.md "Global column layout"); ``labels`` are
        0.0/1.0 (``positive`` list: the value is one of them; ``threshold``: ``value <compare>
        threshold``, compare ``>`` by default); ``weights`` is None unless ``[label].weight`` or
        ``positive_weight`` is set (positive rows' weights are multiplied by it); with
        ``[label] missing = "skip"`` rows whose label is null or NaN are left out of all three;
        ``width = H + 2**bits``.

    Raises
    ------
    ValueError
        invalid spec; coordinate out of range with ``invalid = "error"``; bad label or weight.
    NotImplementedError
        a bucket feature with ``quantiles`` (resolved by the library from data).
    """
    s = _parse_spec(spec)
    csr_rows: list[list[tuple[int, float]]] = []
    labels: list[float] = []
    weights: list[float] | None = [] if s.weight_column is not None else None
    if weights is None and s.positive_weight is not None:
        weights = []
    for k, row in enumerate(rows):
        if s.label_missing == "skip" and _label_missing(s, row, k):
            continue  # [label] missing = "skip": the row is left out
        csr_rows.append(_row_columns(s, row, k))
        y = _label(s, row, k)
        labels.append(y)
        if weights is not None:
            w = _weight(s, row, k) if s.weight_column is not None else 1.0
            if s.positive_weight is not None and y == 1.0:
                w *= s.positive_weight
            weights.append(w)
    return csr_rows, labels, weights, s.width
