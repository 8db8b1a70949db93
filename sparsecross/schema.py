"""The input schema a model was trained on: the type class of every column the spec reads.

A model records ``{column: type class}`` (``"integer"``, ``"floating"``, ``"string"``,
``"boolean"``, ``"timestamp"``, ``"date"``, or the Arrow type's name for any other type).  Scoring data whose column would
make different features is refused, naming the column and both types; a type that cannot
change the features is accepted:

* a categorical hashes strings and integers differently, so ``string`` never matches
  ``integer``; integers and booleans hash alike (a bool is the integer 0 or 1); a list column
  is ``list<class of its elements>`` and never matches a scalar column;
* numeric features (geo, lat, lon, bucket, numeric) read every number as float64, so ``integer``
  and ``floating`` are interchangeable (pandas turns an integer column with nulls into floats);
* a time feature's timestamps may change unit and zone (an instant is an instant), but a
  ``timestamp``, a ``date`` and a ``string`` column are three different classes;
* the label reads numbers and booleans as 0/1 values; sample weights read numbers.

Training checks that every file of the source, and the validation data, agree in this sense
before any training starts.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from .errors import NAME_LIMIT, SchemaError, shown, shown_path
from .kinds import KINDS
from .spec import FeatureSpec

__all__ = ["type_class", "column_roles", "schema_classes", "check_compatible", "source_schema"]

#: Type classes that make the same features, per role a column plays.
_INTERCHANGEABLE = {
    "categorical": ({"integer", "boolean"},),
    "numeric": ({"integer", "floating"},),
    "label": ({"integer", "floating", "boolean"},),
    "weight": ({"integer", "floating"},),
}


def type_class(t: pa.DataType) -> str:
    """The class of an Arrow type (dictionaries by their value type)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "floating"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"  # any unit and zone: the same instants make the same time features
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"list<{type_class(t.value_type)}>"  # whatever the element field's name
    return str(t)


def column_roles(spec: FeatureSpec, *, label: bool = True) -> dict[str, set[str]]:
    """Every column the spec reads -> the roles it plays (label, weight, and each feature kind's
    role: categorical, numeric, time)."""
    roles: dict[str, set[str]] = {}
    if label:
        roles.setdefault(spec.label.column, set()).add("label")
        if spec.label.weight:
            roles.setdefault(spec.label.weight, set()).add("weight")
    for f in spec.features:
        role = KINDS[f.kind].role
        for col in f.columns:
            roles.setdefault(col, set()).add(role)
    return roles


def schema_classes(spec: FeatureSpec, schema: pa.Schema, *, label: bool = True) -> dict[str, str]:
    """``{column: type class}`` of the spec's columns present in ``schema``."""
    names = set(schema.names)
    return {col: type_class(schema.field(col).type) for col in column_roles(spec, label=label) if col in names}


def _same_features(roles: set[str], a: str, b: str) -> bool:
    if a == b:
        return True
    return all(any(a in group and b in group for group in _INTERCHANGEABLE.get(r, ())) for r in roles)


def check_compatible(spec: FeatureSpec, trained: Mapping[str, str], given: Mapping[str, str], where: str, *,
                     label: bool = True, trained_on: str = "the model was trained on") -> None:
    """Raise :class:`SchemaError` if a column of ``given`` would make other features than the
    same column of ``trained`` (columns absent from either are not compared)."""
    for col, roles in column_roles(spec, label=label).items():
        a, b = trained.get(col), given.get(col)
        if a is None or b is None or _same_features(roles, a, b):
            continue
        what = "/".join(sorted(roles))
        raise SchemaError(
            f"column {shown(col, NAME_LIMIT)} ({what}) in {where} is {b}, but {trained_on} {a}: "
            "its features would differ; "
            f"convert the column to {a}"
        )


def source_schema(source: object, spec: FeatureSpec, *, label: bool = True, role: str = "the data"
                  ) -> dict[str, str]:
    """The type classes of ``source`` (every file checked against the spec and against the
    first file, from the Parquet footers only).

    Raises
    ------
    SchemaError
        A missing column, an unusable type, or two files whose columns would make different
        features (naming both files).
    """
    from .inputs import MemorySource
    from .read import check_memory, memory_where, open_checked, resolve_files

    if isinstance(source, MemorySource):  # in-memory tables: their schemas, compared as files are
        check_memory(source, spec, label=label)
        classes = [schema_classes(spec, t.schema, label=label) for t in source.tables]
        for i, c in enumerate(classes[1:], 1):
            check_compatible(spec, classes[0], c, memory_where(source, i), label=label,
                             trained_on=f"in {memory_where(source, 0)} (the first table of {role}) it is")
        return classes[0] if classes else {}
    first: dict[str, str] | None = None
    first_path = ""
    for path in resolve_files(source):  # type: ignore[arg-type]
        pf, _strings = open_checked(path, spec, label=label)
        classes = schema_classes(spec, pf.schema_arrow, label=label)
        pf.close()
        if first is None:
            first, first_path = classes, shown_path(path)
        else:
            check_compatible(spec, first, classes, shown_path(path), label=label,
                             trained_on=f"in {first_path} (the first file of {role}) it is")
    return first or {}
