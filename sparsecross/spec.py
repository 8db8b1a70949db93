"""Feature spec: TOML -> frozen, validated dataclasses, and the global column layout.

The normative description is ``docs/CONTRACT.md``.  A spec describes the *inputs* of a model
(its identity); training hyperparameters may come from an optional ``[train]`` table.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import SpecError, did_you_mean
from .hashing import cross_seed, feature_salt

__all__ = [
    "FeatureSpec",
    "LabelSpec",
    "HashingSpec",
    "Feature",
    "Cross",
    "Output",
    "load_spec",
    "parse_spec",
    "KINDS",
    "TRAIN_KEYS",
    "MAX_FEATURES",
    "MAX_CROSSES",
    "MAX_CROSS_COMPONENTS",
]

KINDS = ("geo", "lat", "lon", "bucket", "categorical")
EXACT_KINDS = ("geo", "lat", "lon", "bucket")
TRAIN_KEYS = {
    "alpha": float,
    "beta": float,
    "l1": float,
    "l2": float,
    "epochs": int,
    "label_smoothing": float,
    "holdout": float,
    "batch_rows": int,
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_FEATURE_KEYS = {
    "name", "kind", "column", "lat", "lon", "resolution_arcmin", "boundaries",
    "quantiles", "missing", "invalid", "standalone",
}
_KIND_KEYS = {
    "geo": {"lat", "lon", "resolution_arcmin", "invalid"},
    "lat": {"column", "resolution_arcmin", "invalid"},
    "lon": {"column", "resolution_arcmin", "invalid"},
    "bucket": {"column", "boundaries", "quantiles"},
    "categorical": {"column"},
}
_COMMON_KEYS = {"name", "kind", "missing", "standalone"}

#: Limits of a user's spec (docs/CONTRACT.md, "Limits").  Featurizing holds one local id per
#: feature and row of a slice, and every row costs work per output and per cross component;
#: these bounds keep a batch's memory and a row's work predictable.  Specs read back from a
#: model file (``parse_spec(..., stored=True)``) are not limited: they were valid when written.
MAX_FEATURES = 10_000
MAX_CROSSES = 10_000
MAX_CROSS_COMPONENTS = 8


def grid_of(resolution_arcmin: float) -> tuple[int, int]:
    """(n_lat, n_lon) bands of a geo grid of ``resolution_arcmin`` minutes."""
    return math.ceil(10800 / resolution_arcmin), math.ceil(21600 / resolution_arcmin)


@dataclass(frozen=True)
class LabelSpec:
    """The label: ``y = column > threshold`` or a 0/1 (bool) column; optional sample weights."""

    column: str
    threshold: float | None = None
    weight: str | None = None


@dataclass(frozen=True)
class HashingSpec:
    """Size and seed of the hashed block, and the exact-cross cardinality limit."""

    bits: int = 22
    seed: int = 0
    max_exact: int = 2**30


@dataclass(frozen=True)
class Feature:
    """One feature: a geo cell, a latitude/longitude band, a numeric bucket or a categorical."""

    name: str
    kind: str
    columns: tuple[str, ...]
    resolution_arcmin: float = 1.0
    boundaries: tuple[float, ...] | None = None
    quantiles: int | None = None
    missing: str = "bucket"
    invalid: str = "error"
    standalone: bool = True

    @property
    def is_exact(self) -> bool:
        return self.kind in EXACT_KINDS

    @property
    def grid(self) -> tuple[int, int]:
        """(n_lat, n_lon) bands of the grid at this resolution."""
        return grid_of(self.resolution_arcmin)

    @property
    def cardinality(self) -> int | None:
        """Number of local ids including the missing one; None for hashed kinds."""
        if self.kind == "geo":
            n_lat, n_lon = self.grid
            return n_lat * n_lon + 1
        if self.kind == "lat":
            return self.grid[0] + 1
        if self.kind == "lon":
            return self.grid[1] + 1
        if self.kind == "bucket":
            if self.boundaries is None:
                return None
            return len(self.boundaries) + 2
        return None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "geo":
            d["lat"], d["lon"] = self.columns
        else:
            d["column"] = self.columns[0]
        if self.kind in ("geo", "lat", "lon"):
            d["resolution_arcmin"] = self.resolution_arcmin
            d["invalid"] = self.invalid
        if self.kind == "bucket":
            if self.boundaries is not None:
                d["boundaries"] = list(self.boundaries)
            if self.quantiles is not None:
                d["quantiles"] = self.quantiles
        d["missing"] = self.missing
        d["standalone"] = self.standalone
        return d


@dataclass(frozen=True)
class Cross:
    """A cross of two or more features; exact (mixed radix) or hashed."""

    name: str
    features: tuple[str, ...]
    mode: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "features": list(self.features), "mode": self.mode}


@dataclass(frozen=True)
class Output:
    """One block of columns that a row may hit (a standalone feature or a cross).

    ``kind`` is 0 for exact (``offset + sum(id_j * stride_j)``), 1 for a hashed single
    feature (``H + (key & mask)``) and 2 for a hashed cross.
    """

    name: str
    kind: int
    offset: int
    cardinality: int | None
    components: tuple[int, ...]
    strides: tuple[int, ...]
    seed: int


@dataclass(frozen=True)
class FeatureSpec:
    """A parsed, validated feature spec. Build with :func:`load_spec` or :func:`parse_spec`."""

    label: LabelSpec
    hashing: HashingSpec
    features: tuple[Feature, ...]
    crosses: tuple[Cross, ...] = ()
    train: Mapping[str, Any] = field(default_factory=dict)
    quantile_sample_rows: int = 1_000_000
    version: int = 1

    # ----------------------------------------------------------------- identity
    def to_dict(self) -> dict[str, Any]:
        """Canonical, JSON-able dict (round-trips through ``parse_spec(d, stored=True)``; a
        resolved quantile bucket keeps both ``boundaries`` and ``quantiles``, which only a
        stored spec may have)."""
        label: dict[str, Any] = {"column": self.label.column}
        if self.label.threshold is not None:
            label["threshold"] = self.label.threshold
        if self.label.weight is not None:
            label["weight"] = self.label.weight
        d: dict[str, Any] = {
            "version": self.version,
            "label": label,
            "hashing": {
                "bits": self.hashing.bits,
                "seed": self.hashing.seed,
                "max_exact": self.hashing.max_exact,
            },
            "features": [f.to_dict() for f in self.features],
            "crosses": [c.to_dict() for c in self.crosses],
        }
        if self.quantile_sample_rows != 1_000_000:
            d["quantile_sample_rows"] = self.quantile_sample_rows
        if self.train:
            d["train"] = dict(sorted(self.train.items()))
        return d

    def canonical_json(self) -> str:
        """The spec as canonical JSON, without the ``[train]`` table (model identity)."""
        d = self.to_dict()
        d.pop("train", None)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of :meth:`canonical_json`: equal specs make equal features."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    # ------------------------------------------------------------------ layout
    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @cached_property
    def feature_index(self) -> dict[str, int]:
        """Feature name -> position in :attr:`features` (names are unique)."""
        return {f.name: i for i, f in enumerate(self.features)}

    def feature(self, name: str) -> Feature:
        i = self.feature_index.get(name)
        if i is None:
            raise SpecError(f"no feature named {name!r}{did_you_mean(name, self.feature_names)}")
        return self.features[i]

    @property
    def needs_data(self) -> bool:
        """True while some bucket feature still has ``quantiles`` but no boundaries."""
        return any(f.kind == "bucket" and f.boundaries is None for f in self.features)

    @cached_property
    def outputs(self) -> tuple[Output, ...]:
        """Column blocks in layout order (see docs/CONTRACT.md, 'Global column layout')."""
        if self.needs_data:
            raise SpecError(
                "the spec has bucket features with 'quantiles' that are not resolved yet; "
                "resolve them from data first (sparsecross.resolve_spec)"
            )
        index = self.feature_index
        exact: list[Output] = []
        hashed: list[Output] = []
        offset = 0
        seed = self.hashing.seed
        for i, f in enumerate(self.features):
            if not f.standalone:
                continue
            if f.is_exact:
                card = f.cardinality
                assert card is not None
                exact.append(Output(f.name, 0, offset, card, (i,), (1,), 0))
                offset += card
            else:
                hashed.append(Output(f.name, 1, -1, None, (i,), (0,), 0))
        for c in self.crosses:
            comps = tuple(index[n] for n in c.features)
            if self._cross_is_exact(c):
                cards = [self.features[j].cardinality for j in comps]
                strides = []
                s = 1
                for card in reversed(cards):
                    strides.append(s)
                    s *= int(card)  # type: ignore[arg-type]
                exact.append(Output(c.name, 0, offset, s, comps, tuple(reversed(strides)), 0))
                offset += s
            else:
                hashed.append(
                    Output(c.name, 2, -1, None, comps, (0,) * len(comps), cross_seed(c.name, seed))
                )
        h = offset
        hashed = [replace(o, offset=h, cardinality=1 << self.hashing.bits) for o in hashed]
        return tuple(exact + hashed)

    def _cross_is_exact(self, c: Cross) -> bool:
        index = self.feature_index
        feats = [self.features[index[n]] for n in c.features]
        if c.mode == "hashed" or any(not f.is_exact for f in feats):
            return False
        if c.mode == "exact":
            return True
        prod = 1
        for f in feats:
            prod *= int(f.cardinality)  # type: ignore[arg-type]
        return prod <= self.hashing.max_exact

    @cached_property
    def hashed_offset(self) -> int:
        """H: first column of the hashed block."""
        return sum(o.cardinality for o in self.outputs if o.kind == 0)  # type: ignore[misc]

    @cached_property
    def n_columns(self) -> int:
        """Width of the CSR rows: H + 2**bits."""
        return self.hashed_offset + (1 << self.hashing.bits)

    @cached_property
    def salts(self) -> tuple[int, ...]:
        """XXH64 salt of every feature (hash contract v1)."""
        return tuple(feature_salt(f.name, self.hashing.seed) for f in self.features)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every data column the spec reads, label and weight included, without repeats."""
        cols: list[str] = [self.label.column]
        if self.label.weight:
            cols.append(self.label.weight)
        for f in self.features:
            cols.extend(f.columns)
        return tuple(dict.fromkeys(cols))

    def describe_column(self, col: int) -> tuple[str, str]:
        """(block name, readable value) of a global column id, for exact blocks.

        Hashed columns return ``("hashed", "bucket k")``: hashing loses the value.
        """
        # exact blocks are contiguous and in offset order: the last one starting at or before col
        k = bisect_right(self._exact_starts, col) - 1
        o = self._exact_outputs[k] if k >= 0 else None
        if o is not None and col < o.offset + int(o.cardinality or 0):
            local = col - o.offset
            parts = []
            for comp, stride in zip(o.components, o.strides):
                lid, local = divmod(local, stride)
                parts.append(describe_local(self.features[comp], lid))
            return o.name, " x ".join(parts)
        if self.hashed_offset <= col < self.n_columns:
            return "hashed", f"bucket {col - self.hashed_offset}"
        raise SpecError(f"column {col} is outside the layout (width {self.n_columns})")

    @cached_property
    def _exact_outputs(self) -> tuple[Output, ...]:
        """The exact blocks, in layout (= offset) order."""
        return tuple(o for o in self.outputs if o.kind == 0)

    @cached_property
    def _exact_starts(self) -> list[int]:
        return [o.offset for o in self._exact_outputs]

    def with_boundaries(self, resolved: Mapping[str, tuple[float, ...]]) -> FeatureSpec:
        """A copy whose quantile buckets carry explicit boundaries."""
        feats = tuple(
            replace(f, boundaries=tuple(resolved[f.name])) if f.name in resolved else f
            for f in self.features
        )
        return replace(self, features=feats)


def describe_local(f: Feature, lid: int) -> str:
    """Readable text for local id ``lid`` of exact feature ``f``."""
    card = f.cardinality or 0
    if lid == card - 1:
        return f"{f.name}=missing"
    r = f.resolution_arcmin / 60.0
    if f.kind == "geo":
        n_lon = f.grid[1]
        i, j = divmod(lid, n_lon)
        lat0, lon0 = -90 + i * r, -180 + j * r
        return (
            f"{f.name}=lat[{lat0:.4f},{min(lat0 + r, 90):.4f}) "
            f"lon[{lon0:.4f},{min(lon0 + r, 180):.4f})"
        )
    if f.kind == "lat":
        return f"{f.name}=[{-90 + lid * r:.4f},{min(-90 + (lid + 1) * r, 90):.4f})"
    if f.kind == "lon":
        return f"{f.name}=[{-180 + lid * r:.4f},{min(-180 + (lid + 1) * r, 180):.4f})"
    b = f.boundaries or ()
    lo = "-inf" if lid == 0 else repr(b[lid - 1])
    hi = "inf" if lid >= len(b) else repr(b[lid])
    return f"{f.name}=[{lo},{hi})"


# ---------------------------------------------------------------------- parsing
def _some(names: Any, limit: int = 10) -> str:
    """Sorted names as a list literal, at most ``limit`` of them (an error stays one line)."""
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{names[:limit]}{more}"


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(
                f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _get(where: str, table: Mapping[str, Any], key: str, typ: Any, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing required key {key!r}")
        return default
    value = table[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types:
        raise SpecError(f"{where}.{key}: expected {_tname(types)}, got {value!r}")
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, types):
        raise SpecError(f"{where}.{key}: expected {_tname(types)}, got {value!r}")
    return value


def _tname(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _choice(where: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SpecError(
            f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}"
            f"{did_you_mean(value, choices)}"
        )
    return value


def _parse_feature(i: int, t: Any, label: LabelSpec, stored: bool) -> Feature:
    where = f"features[{i}]"
    if not isinstance(t, dict):
        raise SpecError(f"{where}: expected a table, got {t!r}")
    name = _get(where, t, "name", str)
    where = f"features[{i}] ({name!r})"
    if not _NAME_RE.match(name):
        raise SpecError(f"{where}: name must match [A-Za-z0-9_.-]+, got {name!r}")
    kind = _choice(f"{where}.kind", _get(where, t, "kind", str), KINDS)
    _check_keys(where, t, _COMMON_KEYS | _KIND_KEYS[kind])
    missing = _choice(f"{where}.missing", _get(where, t, "missing", str, "bucket"), ("bucket", "skip"))
    standalone = _get(where, t, "standalone", bool, True)
    if kind == "geo":
        columns = (_get(where, t, "lat", str), _get(where, t, "lon", str))
    else:
        columns = (_get(where, t, "column", str),)
    if not stored:
        for col in columns:
            if col == label.column:
                raise SpecError(
                    f"{where}: column {col!r} is the label column; a feature must not read the label "
                    "(the model would learn the answer)"
                )
            if col == label.weight:
                raise SpecError(
                    f"{where}: column {col!r} is the weight column ([label] weight); a feature must "
                    "not read the sample weights"
                )
    res = 1.0
    invalid = "error"
    if kind in ("geo", "lat", "lon"):
        res = _get(where, t, "resolution_arcmin", float, 1.0)
        if not (math.isfinite(res) and 0 < res <= 21600):
            raise SpecError(f"{where}.resolution_arcmin: expected a number in (0, 21600], got {res!r}")
        n = math.prod(grid_of(res))
        if n > 2**40:
            raise SpecError(f"{where}.resolution_arcmin: {res!r} gives {n} cells; at most 2**40")
        invalid = _choice(f"{where}.invalid", _get(where, t, "invalid", str, "error"), ("error", "missing"))
    boundaries = None
    quantiles = None
    if kind == "bucket":
        if "boundaries" not in t and "quantiles" not in t:
            raise SpecError(f"{where}: a bucket feature needs 'boundaries' or 'quantiles'")
        if "boundaries" in t and "quantiles" in t and not stored:
            raise SpecError(
                f"{where}: 'boundaries' and 'quantiles' exclude each other; give explicit boundaries, "
                "or quantiles = N to compute them from the data"
            )
        if "boundaries" in t:
            raw = _get(where, t, "boundaries", list)
            try:
                b = tuple(float(x) for x in raw if isinstance(x, (int, float)) and not isinstance(x, bool))
            except OverflowError:  # an int beyond float64 (possible through the dict API)
                raise SpecError(f"{where}.boundaries: a number is beyond the float64 range") from None
            if len(b) != len(raw) or not b:
                raise SpecError(f"{where}.boundaries: expected a non-empty list of numbers, got {raw!r}")
            if not all(math.isfinite(x) for x in b) or any(b2 <= b1 for b1, b2 in zip(b, b[1:])):
                raise SpecError(f"{where}.boundaries: must be finite and strictly increasing, got {raw!r}")
            boundaries = b
        if "quantiles" in t:
            # With explicit boundaries too (stored specs only), this is a resolved spec: the
            # boundaries are used and the quantile count only records how they were made.
            quantiles = _get(where, t, "quantiles", int)
            if not 2 <= quantiles <= 10000:
                raise SpecError(f"{where}.quantiles: expected an integer in [2, 10000], got {quantiles!r}")
    return Feature(name, kind, columns, res, boundaries, quantiles, missing, invalid, standalone)


def parse_spec(source: str | Mapping[str, Any], *, stored: bool = False) -> FeatureSpec:
    """Parse a spec from TOML text or an already-loaded mapping.

    A user's spec may not use the label or weight column as a feature column, give a bucket
    both ``boundaries`` and ``quantiles``, or list a feature twice in a cross.

    ``stored=True`` is for a spec read back from a file sparsecross wrote (a model's embedded
    :meth:`FeatureSpec.to_dict`), which was valid when written: it accepts the resolved form of
    a quantile bucket (its ``boundaries`` with the ``quantiles`` count they came from, as
    ``to_dict`` writes it and ``sha256`` hashes it) and what earlier versions accepted (a
    feature crossed with itself, a feature reading the label or weight column), and it is not
    held to :data:`MAX_FEATURES`, :data:`MAX_CROSSES` or :data:`MAX_CROSS_COMPONENTS`.  Types,
    ranges, names and the column space are checked as for a user's spec.

    Raises
    ------
    SpecError
        On any unknown key, wrong type or impossible value, naming where it is.

    Examples
    --------
    >>> spec = parse_spec('''
    ... [label]
    ... column = "y"
    ... [[features]]
    ... name = "cell"
    ... kind = "geo"
    ... lat = "lat"
    ... lon = "lon"
    ... ''')
    >>> spec.outputs[0].cardinality
    233280001
    """
    if isinstance(source, str):
        try:
            data: Mapping[str, Any] = tomllib.loads(source)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"spec is not valid TOML: {exc}") from None
    else:
        data = source
    top = {"version", "label", "hashing", "features", "crosses", "train", "quantile_sample_rows"}
    _check_keys("spec", data, top)
    version = _get("spec", data, "version", int, 1)
    if version != 1:
        raise SpecError(f"spec.version: only version 1 is supported, got {version!r}")

    lab = _get("spec", data, "label", dict)
    _check_keys("label", lab, {"column", "threshold", "weight"})
    label = LabelSpec(
        _get("label", lab, "column", str),
        _get("label", lab, "threshold", float, None),
        _get("label", lab, "weight", str, None),
    )
    if label.threshold is not None and not math.isfinite(label.threshold):
        raise SpecError(f"label.threshold: expected a finite number, got {label.threshold!r}")

    hs = _get("spec", data, "hashing", dict, {})
    _check_keys("hashing", hs, {"bits", "seed", "max_exact"})
    hashing = HashingSpec(
        _get("hashing", hs, "bits", int, 22),
        _get("hashing", hs, "seed", int, 0),
        _get("hashing", hs, "max_exact", int, 2**30),
    )
    if not 1 <= hashing.bits <= 40:
        raise SpecError(f"hashing.bits: expected an integer in [1, 40], got {hashing.bits!r}")
    if not 0 <= hashing.seed < 2**64:
        raise SpecError(f"hashing.seed: expected an integer in [0, 2**64), got {hashing.seed!r}")
    if not 1 <= hashing.max_exact <= 2**50:
        raise SpecError(f"hashing.max_exact: expected an integer in [1, 2**50], got {hashing.max_exact!r}")

    raw_features = _get("spec", data, "features", list)
    if not raw_features:
        raise SpecError("spec: at least one [[features]] table is required")
    if len(raw_features) > MAX_FEATURES and not stored:
        raise SpecError(f"spec: {len(raw_features)} features; at most {MAX_FEATURES} are supported")
    features = tuple(_parse_feature(i, t, label, stored) for i, t in enumerate(raw_features))
    index: dict[str, int] = {}
    for i, f in enumerate(features):
        index.setdefault(f.name, i)
    if len(index) != len(features):
        counts = Counter(f.name for f in features)
        raise SpecError(f"features: duplicate names {_some(n for n, k in counts.items() if k > 1)}")

    raw_crosses = _get("spec", data, "crosses", list, [])
    if len(raw_crosses) > MAX_CROSSES and not stored:
        raise SpecError(f"spec: {len(raw_crosses)} crosses; at most {MAX_CROSSES} are supported")
    crosses: list[Cross] = []
    for i, t in enumerate(raw_crosses):
        where = f"crosses[{i}]"
        if not isinstance(t, dict):
            raise SpecError(f"{where}: expected a table, got {t!r}")
        _check_keys(where, t, {"features", "name", "mode"})
        fl = _get(where, t, "features", list)
        if len(fl) < 2 or not all(isinstance(x, str) for x in fl):
            raise SpecError(f"{where}.features: expected a list of 2 or more feature names, got {fl!r}")
        if len(fl) > MAX_CROSS_COMPONENTS and not stored:
            raise SpecError(
                f"{where}.features: {len(fl)} features; a cross has at most {MAX_CROSS_COMPONENTS}"
            )
        for n in fl:
            if n not in index:
                raise SpecError(f"{where}.features: no feature named {n!r}{did_you_mean(n, index)}")
        if len(set(fl)) != len(fl) and not stored:
            twice = next(n for k, n in enumerate(fl) if n in fl[:k])
            raise SpecError(
                f"{where}.features: feature {twice!r} is listed twice; a feature crossed with itself "
                "adds nothing the feature alone does not give"
            )
        name = _get(where, t, "name", str, "*".join(fl))
        mode = _choice(f"{where}.mode", _get(where, t, "mode", str, "auto"), ("auto", "exact", "hashed"))
        if mode == "exact":
            bad = [n for n in fl if features[index[n]].kind == "categorical"]
            if bad:
                raise SpecError(f"{where}: mode 'exact' is impossible with categorical feature(s) {bad}")
        crosses.append(Cross(name, tuple(fl), mode))
    counts = Counter(f.name for f in features)
    counts.update(c.name for c in crosses)
    dupes = [n for n, k in counts.items() if k > 1]
    if dupes:
        raise SpecError(f"crosses: names {_some(dupes)} are used twice (features and crosses share names)")

    train = dict(_get("spec", data, "train", dict, {}))
    _check_keys("train", train, set(TRAIN_KEYS))
    for k, v in train.items():
        _get("train", train, k, TRAIN_KEYS[k])
        train[k] = TRAIN_KEYS[k](v)
    qrows = _get("spec", data, "quantile_sample_rows", int, 1_000_000)
    if qrows < 1:
        raise SpecError(f"quantile_sample_rows: expected a positive integer, got {qrows!r}")
    spec = FeatureSpec(label, hashing, features, tuple(crosses), train, qrows, version)
    if (1 << hashing.bits if spec.needs_data else spec.n_columns) >= 2**62:
        raise SpecError("spec: the column space exceeds 2**62 columns; lower resolutions or max_exact")
    if not spec.needs_data and not spec.outputs:
        raise SpecError("spec: no feature is emitted (every feature has standalone = false and there are no crosses)")
    return spec


def load_spec(path: str | Path) -> FeatureSpec:
    """Read and validate a TOML feature spec from ``path``.

    Raises
    ------
    SpecError
        If the file cannot be read or is not a valid spec (the message names the file).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {str(p)!r}: {exc}") from None
    try:
        return parse_spec(text)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None
