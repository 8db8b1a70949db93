"""The :class:`Kind` interface and the small parsing helpers every kind uses.

A kind owns everything about its features: its TOML keys and their validation, whether it is
exact and its cardinality, the Arrow types its column may have, its schema role, how a batch
of its column becomes local ids (or 64-bit keys) and missing flags, and how a local id reads.
This module imports nothing from the rest of the package but :mod:`sparsecross.errors`, so
``spec.py`` can use the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import NAME_LIMIT, DataError, SchemaError, SpecError, did_you_mean, shown

np = LazyModule("numpy")
pa = LazyModule("pyarrow")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["Kind", "Ctx", "get", "as_float", "choice", "is_utf8", "is_number", "is_stringish"]


def _tname(types: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a table"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def get(where: str, table: Mapping[str, Any], key: str, typ: Any, default: Any = ...) -> Any:
    """``table[key]`` checked against ``typ`` (an int is accepted as a float); ``default`` when
    absent, or a :class:`SpecError` when there is no default."""
    if key not in table:
        if default is ...:
            raise SpecError(f"{where}: missing required key {key!r}")
        return default
    value = table[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types:
        raise SpecError(f"{where}.{key}: expected {_tname(types)}, got {value!r}")
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = as_float(f"{where}.{key}", value)
    if not isinstance(value, types):
        raise SpecError(f"{where}.{key}: expected {_tname(types)}, got {shown(value)}")
    return value


def as_float(where: str, value: int | float) -> float:
    """``float(value)``, or a :class:`SpecError` naming ``where`` for an integer beyond the
    float64 range (``10**400``: a dict spec can hold one, and so can TOML)."""
    try:
        return float(value)
    except OverflowError:
        raise SpecError(f"{where}: {shown(value)} is beyond the float64 range") from None


def choice(where: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a :class:`SpecError` naming ``where``."""
    if value not in choices:
        raise SpecError(
            f"{where}: expected one of {', '.join(map(repr, choices))}, got {shown(value)}"
            f"{did_you_mean(value, choices)}"
        )
    return value


def is_utf8(text: str) -> bool:
    """False for a string UTF-8 cannot encode (a lone surrogate: a dict spec's string may have one,
    and Arrow, the hashes and the files then fail on it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def is_stringish(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def feature_column(f: Feature, col: str, kind: str = "") -> str:
    """``feature NAME (KIND): column COL`` as errors name them: short and escaped
    (:func:`~sparsecross.errors.shown`; a spec or a model file may hold any name)."""
    kind = f" ({kind})" if kind else ""
    return f"feature {shown(f.name, NAME_LIMIT)}{kind}: column {shown(col, NAME_LIMIT)}"


def value_error(f: Feature, ctx: Ctx, bad: np.ndarray, what: str, value_at: Callable[[int], Any],
                hint: str) -> DataError:
    """The one-line error for the rows ``bad`` of feature ``f``'s column: how many, ``what`` they
    are, the first one's global row and ``value_at(i)`` (its value, shown short), and what to do
    (``hint``)."""
    i = int(np.flatnonzero(bad)[0])
    return DataError(
        f"{feature_column(f, f.columns[0])} has {int(bad.sum())} {what} "
        f"(first at row {ctx.start_row + i}: {shown(value_at(i))}); {hint}",
        row=ctx.start_row + i,
    )


@dataclass
class Ctx:
    """What a kind's :meth:`Kind.featurize` gets besides its feature: the batch slice, the
    global number of its first row, the feature's hash salt and missing key, and the slice's
    float64 columns (NaN for null), shared by the features that read the same column."""

    table: Any
    start_row: int
    salt: np.uint64
    missing_key: np.uint64
    numeric: Callable[[str], np.ndarray]
    #: The feature's position, the slice's per-feature skip flags (a copy a kind may set) and
    #: extra ``(rows, keys)`` entries for the hashed block (a categorical list's elements).
    feature: int = 0
    skip: np.ndarray | None = None
    extra: list[tuple[np.ndarray, np.ndarray]] | None = None
    #: For a feature in a hashed cross: where a categorical list puts its crossed ``(rows,
    #: keys)`` by feature position (None: the feature is not crossed, or not by featurize).
    lists: dict[int, tuple[np.ndarray, np.ndarray]] | None = None


class Kind:
    """One feature kind.  Subclasses set :attr:`name`, :attr:`keys` and override the methods."""

    #: The value of ``kind =`` in the spec.
    name: str = ""
    #: The TOML keys of this kind, besides ``name``, ``kind``, ``missing`` and ``standalone``.
    keys: frozenset[str] = frozenset()
    #: The role of the kind's columns in :mod:`sparsecross.schema` (which type classes make the
    #: same features).
    role: str = "numeric"
    #: False if the kind's features may not be crossed (its CSR value is not 1.0).
    crossable: bool = True
    #: Keys only this kind has, with the reason shown when a feature of another kind uses one.
    exclusive: Mapping[str, str] = {}

    # ------------------------------------------------------------------ parsing
    def columns(self, where: str, t: Mapping[str, Any]) -> tuple[str, ...]:
        """The data columns a feature reads (default: its ``column`` key)."""
        return (get(where, t, "column", str),)

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        """The kind's :class:`~sparsecross.spec.Feature` fields from its TOML table (already
        checked to hold only known keys); raises :class:`SpecError` naming ``where.key``."""
        return {}

    def check_feature(self, where: str, f: Feature) -> None:
        """Checks that need the whole feature (e.g. ``standalone``); raise :class:`SpecError`."""

    def to_dict(self, f: Feature) -> dict[str, Any]:
        """The kind's keys of :meth:`Feature.to_dict` (columns included), in order."""
        return {"column": f.columns[0]}

    # ------------------------------------------------------------------- layout
    def is_exact(self, f: Feature) -> bool:
        return True

    def cardinality(self, f: Feature) -> int | None:
        """Number of local ids including the missing one; None when hashed."""
        return None

    def describe(self, f: Feature, lid: int) -> str:
        """Readable text of local id ``lid`` (not the missing id) of exact feature ``f``."""
        return f"{f.name}={lid}"

    # --------------------------------------------------------------------- data
    def check_type(self, f: Feature, col: str, t: pa.DataType, where: str, crossed: bool = False) -> bool:
        """Raise :class:`SchemaError` if ``t`` (a dictionary's value type) cannot feed ``f``
        (``crossed``: ``f`` is in a cross); return True if the column should be read
        dictionary-encoded."""
        if not is_number(t):
            raise SchemaError(
                f"{feature_column(f, col, f.kind)} in {where} has type {t}; expected numbers"
            )
        return False

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> np.ndarray | None:
        """Write the local ids (exact) or keys (hashed) of a batch into ``ids`` (uint64[n]) and
        the missing flags into ``missing`` (uint8[n]).  A kind whose CSR value is not 1.0
        returns float32[n] values (used at its first column), else None."""
        raise NotImplementedError

    def recorded_values(self, f: Feature, arr: pa.Array, salt: np.uint64, seen: Any
                        ) -> tuple[pa.Array | None, np.ndarray, bool]:
        """For a hashed kind (names of hashed columns, :mod:`sparsecross.names`): the distinct
        present values of a batch's column ``arr`` as a ``large_string`` array (None when
        nothing is new), their full 64-bit keys, and whether some row is missing.  ``seen`` is
        the recorder's cache of already recorded dictionaries (an ``OrderedDict``) the kind may
        use.  Exact kinds are named by :meth:`describe` and never asked."""
        raise NotImplementedError(f"kind {self.name!r} is exact: its local ids are named by describe()")

    # ---------------------------------------------------- settings computed from data
    def needs_data(self, f: Feature) -> bool:
        """True while ``f`` has a setting to compute from the data (a quantile bucket's
        boundaries): :func:`sparsecross.featurize.resolve_spec` then gives :meth:`resolve` a
        sample of its first column's finite values, from the rows that are trained on."""
        return False

    def resolve(self, f: Feature, sample: np.ndarray) -> Feature:
        """``f`` with its data-derived settings computed from ``sample`` (float64, finite, in
        reading order); raise :class:`DataError` when they cannot be."""
        return f

    # ------------------------------------------ features a user's one feature expands into
    def expand(self, f: Feature, name: str) -> tuple[Feature, ...]:
        """The features the user's feature ``f`` (named ``name``) stands for (default: itself)."""
        return (f,)

    def group_of(self, f: Feature) -> str | None:
        """For a feature :meth:`expand` made: the user's feature name; None for a feature of
        its own."""
        return None

    def group_dict(self, f: Feature) -> dict[str, Any]:
        """The user's feature as :meth:`FeatureSpec.to_dict` writes it, from the first feature
        :meth:`expand` made of it."""
        raise NotImplementedError

    def is_level_of(self, f: Feature, name: str) -> bool:
        """True if ``f`` is one of the crossable levels the user's feature ``name`` expanded
        into (so a cross naming ``name`` is told to name a level)."""
        return False
