"""A bounded, seeded sample of a data source, and the label computed on it, for
:func:`sparsecross.suggest.suggest_spec`.

The sample never holds more than ``sample_rows`` rows: the Parquet footers give every row
group's size; a seeded choice of row groups spread over the whole file set is read one batch
at a time, and from each batch a hypergeometric draw decides how many of its rows are kept
(then which, uniformly), so the kept rows are a uniform sample without replacement of the
chosen row groups, and memory holds one batch plus the sample.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._values import check_count
from .errors import NAME_LIMIT, DataError, SchemaError, did_you_mean, shown, shown_path

__all__ = ["Sample", "plan_units", "read_sample", "label_of", "column_type_class", "SAMPLE_BATCH_ROWS"]

#: Rows decoded at a time while sampling (memory: one such batch plus the sample).
SAMPLE_BATCH_ROWS = 65_536
#: Row groups read at least (when there are that many), so the sample spans the file set.
MIN_ROW_GROUPS = 16


@dataclass
class Sample:
    """The sampled rows (``table``, in data order), how many rows the source has, how many
    row groups were read, the source's schema, and each sampled row's global position in the
    source (``positions``, int64: what the holdout rule hashes)."""

    table: pa.Table
    rows_total: int
    row_groups_read: int
    row_groups_total: int
    schema: pa.Schema
    where: str
    positions: np.ndarray


def column_type_class(t: pa.DataType) -> str | None:
    """``number``, ``bool``, ``string``, ``time``, ``list`` (of strings, integers or bools), or
    None when no feature kind can read the type."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        vt = t.value_type
        if pa.types.is_dictionary(vt):
            vt = vt.value_type
        if pa.types.is_integer(vt) or pa.types.is_boolean(vt) or column_type_class(vt) == "string":
            return "list"
    return None


def plan_units(source: Any) -> tuple[list[tuple[Any, int, int]], pa.Schema, str]:
    """(unit, row group, rows) for every row group of ``source`` (a table counts as one), the
    first file's (table's) schema, and how messages name the source."""
    from .inputs import memory_source
    from .read import _open, resolve_files

    mem = None if isinstance(source, (str, Path)) else memory_source(source)
    if mem is not None:
        tables = mem.tables
        return [(t, 0, t.num_rows) for t in tables], tables[0].schema, "the input table"
    files = resolve_files(source)
    units: list[tuple[Any, int, int]] = []
    schema = None
    for path in files:
        pf = _open(path)
        if schema is None:
            schema = pf.schema_arrow
        md = pf.metadata
        units.extend((path, g, md.row_group(g).num_rows) for g in range(md.num_row_groups))
    assert schema is not None
    where = shown_path(files[0]) + (f" (and {len(files) - 1} more files)" if len(files) > 1 else "")
    return units, schema, where


def _batches(unit: Any, group: int, columns: list[str]) -> Any:
    from .read import _open, _short

    if isinstance(unit, pa.Table):
        yield from unit.select(columns).to_batches(max_chunksize=SAMPLE_BATCH_ROWS)
        return
    pf = _open(unit)
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise SchemaError(f"column {shown(missing[0], NAME_LIMIT)} is not in {shown_path(unit)}{did_you_mean(missing[0], pf.schema_arrow.names)}"
                          " (the files of a data set must share their columns)")
    try:
        yield from pf.iter_batches(batch_size=SAMPLE_BATCH_ROWS, row_groups=[group], columns=columns,
                                   use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"cannot read {shown_path(unit)}: {_short(exc)}") from None


def read_sample(planned: tuple[list[tuple[Any, int, int]], pa.Schema, str], columns: list[str],
                sample_rows: int, seed: int) -> Sample:
    """A uniform seeded sample of at most ``sample_rows`` rows of ``columns`` (see the module
    docstring) of the row groups ``planned`` by :func:`plan_units`; ``columns`` must exist in
    the first file (checked by the caller)."""
    check_count("sample_rows", sample_rows, 1)
    check_count("seed", seed, 0, 2**64 - 1)
    units, schema, where = planned
    total = sum(n for _, _, n in units)
    rng = np.random.default_rng(seed)
    if total <= sample_rows:
        chosen = list(range(len(units)))
    else:
        # Row groups in a seeded random order until they hold 4x the sample (and at least
        # MIN_ROW_GROUPS of them), read back in data order.
        chosen, have = [], 0
        for k in rng.permutation(len(units)):
            chosen.append(int(k))
            have += units[k][2]
            if have >= 4 * sample_rows and len(chosen) >= MIN_ROW_GROUPS:
                break
        chosen.sort()
    pool = sum(units[k][2] for k in chosen)
    need = min(sample_rows, pool)
    left = pool
    starts = np.concatenate([[0], np.cumsum([n for _, _, n in units], dtype=np.int64)])
    parts: list[pa.RecordBatch] = []
    positions: list[np.ndarray] = []
    for k in chosen:
        unit, group, _ = units[k]
        at = int(starts[k])  # global position of the batch's first row
        for batch in _batches(unit, group, columns):
            n = batch.num_rows
            if not n:
                continue
            take = n if need >= left else int(rng.hypergeometric(n, left - n, need)) if need else 0
            left -= n
            if take == n:
                parts.append(batch)
                positions.append(np.arange(at, at + n, dtype=np.int64))
            elif take:
                rows = np.sort(rng.choice(n, size=take, replace=False))
                parts.append(batch.take(pa.array(rows)))
                positions.append(at + rows.astype(np.int64))
            need -= take
            at += n
    cols = [schema.field(c) for c in columns]
    for b in parts:
        for f in cols:
            got = b.schema.field(f.name).type
            if got != f.type:
                raise SchemaError(f"column {shown(f.name, NAME_LIMIT)} has type {f.type} in {where.split(' (and')[0]} but {got} in "
                                  "another file; a data set's files must share one schema")
    table = pa.Table.from_batches([b.select(columns) for b in parts], schema=pa.schema(cols)) if parts \
        else pa.schema(cols).empty_table()
    pos = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    return Sample(table, total, len(chosen), len(units), schema, where, pos)


def label_of(table: pa.Table, label: Any) -> tuple[np.ndarray, np.ndarray]:
    """(y as 0/1 float64, missing flags) of the sample under ``label`` (a LabelSpec), with the
    featurizer's own rules and messages (a non-0/1 label without a threshold is an error)."""
    from dataclasses import replace

    from .featurize import _label_rows

    col = table.column(label.column)
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    cls = column_type_class(t)
    if label.positive is not None:
        from .read import _check_positive

        _check_positive(label.column, label.positive, t, "the data")
    elif cls == "string":
        raise SchemaError(f"label column {shown(label.column, NAME_LIMIT)} holds strings; give the positive values "
                          "(--positive VALUE ..., or positive=[...])")
    elif cls not in ("number", "bool"):
        raise SchemaError(f"label column {shown(label.column, NAME_LIMIT)} has type {t}; expected numbers, bools or strings")
    shim = types.SimpleNamespace(label=replace(label, missing="skip", weight=None, positive_weight=None))
    y, _, skip = _label_rows(shim, table.select([label.column]), 0)  # type: ignore[arg-type]
    missing = skip.astype(bool) if len(skip) else np.zeros(len(y), dtype=bool)
    return np.asarray(y, dtype=np.float64), missing


def float_values(arr: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 numpy array with NaN for nulls."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.float64():
        arr = pc.cast(arr, pa.float64(), safe=False)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def codes_of(arr: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list[Any]]:
    """(int64 codes with -1 for null, the distinct values in first-seen order) of a string,
    integer or bool column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else (arr.chunk(0) if arr.num_chunks else pa.array([]))
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    enc = pc.dictionary_encode(arr)
    idx = enc.indices.to_numpy(zero_copy_only=False)
    codes = np.where(np.asarray(enc.is_valid()), np.nan_to_num(idx, nan=-1), -1).astype(np.int64) \
        if enc.null_count else np.asarray(idx, dtype=np.int64)
    return codes, enc.dictionary.to_pylist()


def singleton_share(codes: np.ndarray) -> float:
    """Share of the valid rows whose value appears once in the sample."""
    valid = codes[codes >= 0]
    if not len(valid):
        return 0.0
    counts = np.bincount(valid)
    return float((counts == 1).sum()) / len(valid)


def mutual_information(codes: np.ndarray, y: np.ndarray) -> float:
    """Mutual information (bits) between a categorical (codes, -1 = missing, its own value)
    and the 0/1 label, minus the Miller-Madow bias ``(k - 1) / (2 n ln 2)`` that every extra
    value adds by chance; so a column with many rare values does not look strong."""
    c = np.where(codes < 0, codes.max(initial=0) + 1, codes)
    n = len(c)
    if n == 0:
        return 0.0
    joint = np.bincount(c * 2 + y.astype(np.int64), minlength=2 * (int(c.max()) + 1)).reshape(-1, 2) / n
    pc_ = joint.sum(axis=1, keepdims=True)
    py = joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (pc_ * py)), 0.0)
    k = int((pc_ > 0).sum())
    return float(terms.sum()) - (k - 1) / (2 * n * math.log(2))


def _entropy_bits(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def residual_entropy_share(codes: np.ndarray, given: np.ndarray) -> float:
    """H(codes | given) / H(codes) on the rows where both are known (1.0 when ``codes`` has no
    entropy there): how much of a categorical is left once ``given`` (e.g. the area) is known."""
    ok = (codes >= 0) & (given >= 0)
    a, b = codes[ok], given[ok]
    if not len(a):
        return 1.0
    h = _entropy_bits(np.bincount(a))
    if h <= 0:
        return 1.0
    _, joint = np.unique(np.stack([b, a]), axis=1, return_counts=True)
    return (_entropy_bits(joint) - _entropy_bits(np.bincount(b))) / h
