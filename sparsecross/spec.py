"""Feature spec: TOML -> frozen, validated dataclasses, and the global column layout.

The normative description is ``docs/CONTRACT.md``.  A spec describes the *inputs* of a model
(its identity); training hyperparameters may come from an optional ``[train]`` table.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from ._values import MAX_ROW_WEIGHT, is_num
from .errors import NAME_LIMIT, ParameterError, SpecError, did_you_mean, shown
from .hashing import cross_seed, feature_salt
from .kinds import KINDS as _REGISTRY
from .kinds import grid_of

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

#: The ``kind =`` values (the registry is :data:`sparsecross.kinds.KINDS`).
KINDS = tuple(_REGISTRY)
TRAIN_KEYS = {
    "alpha": float,
    "beta": float,
    "l1": float,
    "l2": float,
    "epochs": int,
    "label_smoothing": float,
    "holdout": float,
    "batch_rows": int,
    "shuffle": bool,
    "shuffle_seed": int,
    "shuffle_buffer_rows": int,
    "early_stop": int,
    "max_state_mb": float,
    "admit_after": int,
    "admit_probability": float,
    "admit_filter_mb": float,
    "state_bits": int,
}
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")  # with fullmatch: "$" would also match before a final newline
_COMMON_KEYS = {"name", "kind", "missing", "standalone"}

#: Limits of a user's spec (docs/CONTRACT.md, "Limits").  Featurizing holds one local id per
#: feature and row of a slice, and every row costs work per output and per cross component;
#: these bounds keep a batch's memory and a row's work predictable.  Specs read back from a
#: model file (``parse_spec(..., stored=True)``) are not limited: they were valid when written.
MAX_FEATURES = 10_000
MAX_CROSSES = 10_000
MAX_CROSS_COMPONENTS = 8


#: Comparison operators of ``[label] compare`` (with ``threshold``).
COMPARE_OPS = (">", ">=", "<", "<=")


@dataclass(frozen=True)
class LabelSpec:
    """The label: a 0/1 (bool) column, ``y = column <compare> threshold`` (compare ``>`` by
    default), or ``y = column in positive``; optional sample weights and a class weight for
    positives; rows with a null label raise (``missing = "error"``) or are skipped.

    Fields that are not set (``positive``, ``compare``, ``positive_weight``, ``missing =
    "error"``) do not appear in :meth:`FeatureSpec.to_dict`, so older specs keep their
    SHA-256; ``compare = ">"`` is stored as unset (it is the default)."""

    column: str
    threshold: float | None = None
    weight: str | None = None
    positive: tuple[str | int | bool, ...] | None = None
    compare: str | None = None
    missing: str = "error"
    positive_weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"column": self.column}
        if self.threshold is not None:
            d["threshold"] = self.threshold
        if self.compare is not None:
            d["compare"] = self.compare
        if self.positive is not None:
            d["positive"] = list(self.positive)
        if self.weight is not None:
            d["weight"] = self.weight
        if self.missing != "error":
            d["missing"] = self.missing
        if self.positive_weight is not None:
            d["positive_weight"] = self.positive_weight
        return d


@dataclass(frozen=True)
class HashingSpec:
    """Size and seed of the hashed block, and the exact-cross cardinality limit."""

    bits: int = 22
    seed: int = 0
    max_exact: int = 2**30


@dataclass(frozen=True)
class Feature:
    """One feature: a geo cell, a latitude/longitude band, a numeric bucket, a categorical, a
    numeric value or a time part.  What a kind means lives in its module of
    :mod:`sparsecross.kinds`; this class asks it.

    ``options`` holds the keys of kinds that have no field of their own (numeric, time), as
    sorted ``(key, value)`` pairs (lists as tuples, so a feature stays hashable).

    ``pyramid`` is set on the features a geo pyramid expands into (``resolution_arcmin = [..]``):
    ``(the user's feature name, its levels, its bands flag)``; :meth:`FeatureSpec.to_dict`
    writes the group back as the user's one feature."""

    name: str
    kind: str
    columns: tuple[str, ...]
    resolution_arcmin: float = 1.0
    boundaries: tuple[float, ...] | None = None
    quantiles: int | None = None
    missing: str = "bucket"
    invalid: str = "error"
    standalone: bool = True
    options: tuple[tuple[str, Any], ...] = ()
    pyramid: tuple[str, tuple[float, ...], bool] | None = None

    def option(self, key: str, default: Any = None) -> Any:
        """The value of option ``key`` (see :attr:`options`), or ``default``."""
        for k, v in self.options:
            if k == key:
                return v
        return default

    @property
    def is_exact(self) -> bool:
        return _REGISTRY[self.kind].is_exact(self)

    @property
    def grid(self) -> tuple[int, int]:
        """(n_lat, n_lon) bands of the grid at this resolution."""
        return grid_of(self.resolution_arcmin)

    @property
    def cardinality(self) -> int | None:
        """Number of local ids including the missing one; None for hashed kinds."""
        return _REGISTRY[self.kind].cardinality(self)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        d.update(_REGISTRY[self.kind].to_dict(self))
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
        label = self.label.to_dict()
        d: dict[str, Any] = {
            "version": self.version,
            "label": label,
            "hashing": {
                "bits": self.hashing.bits,
                "seed": self.hashing.seed,
                "max_exact": self.hashing.max_exact,
            },
            "features": self._feature_dicts(),
            "crosses": [c.to_dict() for c in self.crosses],
        }
        if self.quantile_sample_rows != 1_000_000:
            d["quantile_sample_rows"] = self.quantile_sample_rows
        if self.train:
            d["train"] = dict(sorted(self.train.items()))
        return d

    def _feature_dicts(self) -> list[dict[str, Any]]:
        """Every feature's dict; the features a user's feature expanded into (a geo pyramid's)
        as the user's one feature."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for f in self.features:
            kind = _REGISTRY[f.kind]
            group = kind.group_of(f)
            if group is None:
                out.append(f.to_dict())
            elif group not in seen:  # the group's first feature writes it
                seen.add(group)
                out.append(kind.group_dict(f))
        return out

    def pyramid_levels(self, name: str) -> tuple[Feature, ...]:
        """The geo cell features (coarsest first) of the pyramid feature ``name``; () if
        ``name`` is not a pyramid."""
        return tuple(f for f in self.features if _REGISTRY[f.kind].is_level_of(f, name))

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
            levels = self.pyramid_levels(name)
            if levels:
                raise SpecError(f"feature {shown(name, NAME_LIMIT)} is a geo pyramid; name one of its levels: "
                                f"{', '.join(f.name for f in levels)}")
            raise SpecError(f"no feature named {shown(name, NAME_LIMIT)}{did_you_mean(name, self.feature_names)}")
        return self.features[i]

    @property
    def needs_data(self) -> bool:
        """True while some bucket feature still has ``quantiles`` but no boundaries."""
        return any(_REGISTRY[f.kind].needs_data(f) for f in self.features)

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

    def with_positive_weight(self, positive_weight: float | None) -> FeatureSpec:
        """A copy whose ``[label] positive_weight`` is ``positive_weight`` (e.g. the CLI's
        ``--positive-weight``, which overrides the spec's); None keeps the spec's.

        Raises
        ------
        ParameterError
            Unless ``positive_weight`` is a finite number in (0, MAX_ROW_WEIGHT]."""
        if positive_weight is None:
            return self
        if not is_num(positive_weight) or not 0 < positive_weight <= MAX_ROW_WEIGHT:
            raise ParameterError(f"positive_weight must be a finite number > 0 and at most {MAX_ROW_WEIGHT:g}, "
                                 f"got {shown(positive_weight)}")
        return replace(self, label=replace(self.label, positive_weight=float(positive_weight)))

    def with_features(self, resolved: Mapping[str, Feature]) -> FeatureSpec:
        """A copy whose features named in ``resolved`` are replaced (e.g. quantile buckets
        with their boundaries computed: :func:`sparsecross.featurize.resolve_spec`)."""
        return replace(self, features=tuple(resolved.get(f.name, f) for f in self.features))


def describe_local(f: Feature, lid: int) -> str:
    """Readable text for local id ``lid`` of exact feature ``f`` (its kind describes it)."""
    card = f.cardinality or 0
    if lid == card - 1:
        return f"{f.name}=missing"
    return _REGISTRY[f.kind].describe(f, lid)


# The parser lives in spec_parse.py (TOML/dict -> FeatureSpec, with every check); these names
# stay importable from here, looked up when first asked for: spec_parse imports this module,
# so an import here would find it half made when spec_parse is the first module imported.
_PARSER_NAMES = ("load_spec", "parse_spec")


def __getattr__(name: str) -> Any:
    if name in _PARSER_NAMES:
        from . import spec_parse

        return getattr(spec_parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

