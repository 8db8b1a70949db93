"""The label, weight and skipped rows of a batch (``[label]`` of the spec): ``y`` in {0, 1},
the sample weight, and the rows whose label is missing under ``missing = "skip"``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._values import MAX_ROW_WEIGHT
from .arrow_numpy import array_of, as_array, bools_of, float64_column, valid_of
from .errors import NAME_LIMIT, DataError, shown
from .spec import FeatureSpec

#: Nothing public: featurize imports ``_label_rows``, ``_labels`` and ``_first_bad`` by name.
__all__: list[str] = []


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _refuse(bad: np.ndarray, x: np.ndarray, start_row: int, what: str, are: str, hint: str = "") -> None:
    """Raise the :class:`DataError` of the rows ``bad`` of a batch, naming the first one."""
    i = _first_bad(bad)
    raise DataError(f"{what}: {int(bad.sum())} values are {are} (first at row {start_row + i}: {float(x[i])!r}){hint}",
                    row=start_row + i)


_COMPARE = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}


def _holds(t: pa.DataType, v: object) -> bool:
    """Whether a ``positive`` value (str, int or bool) is one of type ``t``: pyarrow's own rule
    (``pa.scalar(v, type=t)`` succeeds) for strings, bools and integers."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return isinstance(v, str)
    if pa.types.is_boolean(t):
        return isinstance(v, bool)
    if isinstance(v, bool) or not isinstance(v, int):
        return False
    info = np.iinfo(np.dtype(str(t)))  # int8 .. uint64: the same names in numpy
    return int(info.min) <= v <= int(info.max)


def _is_positive(arr: pa.Array, positive: tuple[object, ...]) -> np.ndarray:
    """bool[n]: the rows whose value is one of ``positive`` (nulls are not).  The value set is
    built from buffers for the usual label types (``pa.array`` and ``pa.scalar`` import pandas)."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        arr = pc.cast(arr, pa.float64(), safe=False)
        values = array_of([float(v) for v in positive], pa.float64())  # type: ignore[arg-type]
    else:
        if pa.types.is_string_view(t):
            arr = arr.cast(pa.large_string())
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_boolean(arr.type) \
                or pa.types.is_integer(arr.type):
            values = array_of([v for v in positive if _holds(arr.type, v)], arr.type)
        else:  # another type (a date, binary...): pyarrow's conversions
            kept = []
            for v in positive:  # a value the column's type cannot hold matches no row
                try:
                    pa.scalar(v, type=arr.type)
                except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
                    continue
                kept.append(v)
            values = pa.array(kept, type=arr.type)
    return bools_of(pc.is_in(arr, value_set=values), fill=False)


def _label_rows(spec: FeatureSpec, table: pa.Table | pa.RecordBatch, start_row: int
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(y, sample_weight, skip) of a batch.

    ``y`` is 0/1 float64; ``sample_weight`` float64 (the weight column, times ``positive_weight``
    on positive rows) or None; ``skip`` is uint8[n] with 1 on the rows whose label is null or
    NaN under ``[label] missing = "skip"`` (their y and weight are 0), or length 0 when no row
    is skipped."""
    lab = spec.label
    arr = as_array(table.column(lab.column))
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    n = len(arr)
    numeric = lab.positive is None or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
                                           or pa.types.is_string_view(arr.type) or pa.types.is_boolean(arr.type))
    x = float64_column(arr) if numeric else None
    missing = ~valid_of(arr) if arr.null_count else np.zeros(n, dtype=bool)
    if x is not None:
        missing |= np.isnan(x)
    skip = np.zeros(0, dtype=np.uint8)
    if missing.any():
        if lab.missing == "skip":
            skip = missing.astype(np.uint8)
        else:
            what = "null" if arr.null_count else "NaN"
            bad = ~valid_of(arr) if arr.null_count else missing
            raise DataError(
                f"label column {shown(lab.column, NAME_LIMIT)}: {int(bad.sum())} {what} values (first at row "
                f"{start_row + _first_bad(bad)}); set [label] missing = \"skip\" to leave such rows out",
                row=start_row + _first_bad(bad),
            )
    if lab.positive is not None:
        y = _is_positive(arr, lab.positive).astype(np.float64)
    elif lab.threshold is not None:
        assert x is not None
        with np.errstate(invalid="ignore"):
            y = _COMPARE[lab.compare or ">"](x, lab.threshold).astype(np.float64)
    else:
        assert x is not None
        with np.errstate(invalid="ignore"):
            bad = (x != 0.0) & (x != 1.0) & ~missing
        if bad.any():
            _refuse(bad, x, start_row, f"label column {shown(lab.column, NAME_LIMIT)}", "not 0/1",
                    "; set [label] threshold = T to use column > T")
        y = np.ascontiguousarray(x, dtype=np.float64)
    if len(skip):
        y = np.where(missing, 0.0, y)  # a copy: y may be a read-only view of the Arrow column
    w = None
    if lab.weight:
        warr = as_array(table.column(lab.weight))
        w = np.array(float64_column(warr), dtype=np.float64)
        if len(skip):
            w = np.where(missing, 0.0, w)  # not used: a skipped row's weight may be anything
        where = f"weight column {shown(lab.weight, NAME_LIMIT)}"
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            _refuse(bad, w, start_row, where, "null, NaN, infinite or negative")
        _refuse_heavy(w, start_row, where)
    if lab.positive_weight is not None:
        pw = np.where(y == 1.0, lab.positive_weight, 1.0)
        if w is not None:  # (positive_weight alone is at most MAX_ROW_WEIGHT: the spec checks it)
            w = w * pw
            _refuse_heavy(w, start_row, f"{where} times positive_weight {lab.positive_weight:g}")
        else:
            w = pw
    return y, w, skip


def _refuse_heavy(w: np.ndarray, start_row: int, what: str) -> None:
    """Refuse rows weighing more than MAX_ROW_WEIGHT (the state would overflow)."""
    bad = w > MAX_ROW_WEIGHT
    if bad.any():
        _refuse(bad, w, start_row, what, f"above {MAX_ROW_WEIGHT:g}", " (a row weighs at most that: the optimizer's "
                "state would overflow; scale the weights down)")


def _labels(spec: FeatureSpec, table: pa.Table | pa.RecordBatch, start_row: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(y, sample_weight) of a batch, for callers that cannot skip rows: a row whose label is
    missing under ``[label] missing = "skip"`` is a :class:`DataError` here."""
    y, w, skip = _label_rows(spec, table, start_row)
    if len(skip):
        raise DataError(
            f"label column {shown(spec.label.column, NAME_LIMIT)}: {int(skip.sum())} null or NaN values (first at row "
            f"{start_row + _first_bad(skip)}); [label] missing = \"skip\" is not supported here (Dask)",
            row=start_row + _first_bad(skip),
        )
    return y, w
