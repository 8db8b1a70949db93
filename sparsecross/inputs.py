"""Python data in: Arrow tables and batches, pandas and polars DataFrames, anything that
exports an Arrow C stream (``__arrow_c_stream__``) or the dataframe interchange protocol.

:func:`as_arrow` turns one of those into a ``pyarrow.Table`` (a ``RecordBatch`` is kept as
is).  pandas and polars are never imported here: a DataFrame is recognized only when its
library is already loaded (``sys.modules``), then by ``isinstance``.

What is copied
--------------
* a pyarrow Table or RecordBatch: nothing;
* a polars DataFrame: nothing (``DataFrame.to_arrow(compat_level=CompatLevel.newest())``
  shares polars' Arrow buffers; strings come as ``string_view``, which the featurizer
  reads directly; older polars without ``CompatLevel`` export ``large_string``);
* a pandas DataFrame (``pyarrow.Table.from_pandas(df, preserve_index=False)``): numeric
  columns without nulls are shared when possible; ``object`` string columns are copied once
  into Arrow strings (unavoidable: Python strings are not Arrow memory); columns backed by
  Arrow already (``string[pyarrow]``, ``ArrowDtype``) are not copied; ``category`` columns
  become Arrow dictionaries (only the categories are converted).  A NaN in a float column
  becomes a null, which every feature and the label read as missing, as they read a NaN.
* an object with ``__arrow_c_stream__``: its stream is read once into a Table (the
  producer decides whether the buffers are shared).

:class:`MemorySource` is the in-memory counterpart of a Parquet source (a list of tables
read in order, global row numbers counted across them) for :func:`sparsecross.train` and
:func:`sparsecross.path.regularization_path`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pyarrow as pa

from .errors import InputTypeError

__all__ = ["ACCEPTED", "MemorySource", "as_arrow", "is_data", "memory_source"]

ACCEPTED = ("a pyarrow Table or RecordBatch, a pandas or polars DataFrame, or an object with "
             "__arrow_c_stream__")


def _module_type(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    t = getattr(mod, name, None) if mod is not None else None
    return t if isinstance(t, type) else None


def is_data(obj: Any) -> bool:
    """True when :func:`as_arrow` takes ``obj`` (without converting it)."""
    if isinstance(obj, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
        return True
    for module, name in (("polars", "DataFrame"), ("pandas", "DataFrame")):
        t = _module_type(module, name)
        if t is not None and isinstance(obj, t):
            return True
    return hasattr(obj, "__arrow_c_stream__") or hasattr(obj, "__dataframe__")


def as_arrow(data: Any, *, what: str = "data") -> pa.Table | pa.RecordBatch:
    """``data`` as a pyarrow Table (a RecordBatch is returned as is).

    Raises
    ------
    InputTypeError
        (a ``TypeError``) naming the type, for anything else.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"a": [1, 2]})
    >>> as_arrow(t) is t
    True
    >>> as_arrow({"a": [1]})
    Traceback (most recent call last):
    ...
    sparsecross.errors.InputTypeError: data must be a pyarrow Table or RecordBatch, a pandas or polars DataFrame, or an object with __arrow_c_stream__; got dict
    """
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    pl_df = _module_type("polars", "DataFrame")
    if pl_df is not None and isinstance(data, pl_df):
        level = getattr(getattr(sys.modules["polars"], "CompatLevel", None), "newest", None)
        if level is not None:  # string_view: polars' own string buffers (the oldest level copies them)
            return data.to_arrow(compat_level=level())
        return data.to_arrow()
    pd_df = _module_type("pandas", "DataFrame")
    if pd_df is not None and isinstance(data, pd_df):
        # Before __arrow_c_stream__: pandas' own export keeps a non-default index as a column.
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise InputTypeError(f"{what}: cannot convert the pandas DataFrame to Arrow: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
    if hasattr(data, "__arrow_c_stream__"):
        try:
            return pa.RecordBatchReader.from_stream(data).read_all()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
            # e.g. a ChunkedArray: a stream of one column, not of tables
            raise InputTypeError(f"{what}: the Arrow stream of the {type(data).__name__} is not a table: "
                                 f"{str(exc).strip().splitlines()[0]}") from None
    if hasattr(data, "__dataframe__"):
        import pyarrow.interchange

        return pyarrow.interchange.from_dataframe(data)
    raise InputTypeError(f"{what} must be {ACCEPTED}; got {type(data).__name__}")


class MemorySource:
    """In-memory training data: Arrow tables read in the order given, as one source.

    Row ``i`` of the source is its ``i``-th row across the tables (the same global row
    numbers as a Parquet file holding the same rows in the same order), so a holdout split,
    an error message or a trained model are the same as for that file.
    """

    def __init__(self, tables: list[pa.Table]) -> None:
        self.tables = tables
        self.num_rows = sum(t.num_rows for t in tables)

    def __str__(self) -> str:
        n = len(self.tables)
        return f"<in-memory data: {self.num_rows:,} rows{f' in {n} tables' if n > 1 else ''}>"

    __repr__ = __str__


def memory_source(source: Any) -> MemorySource | None:
    """A :class:`MemorySource` when ``source`` is in-memory data (a table, a DataFrame...,
    or a non-empty list of them); None when it names files (a path, a glob, a list of
    paths); an :class:`InputTypeError` for a list that mixes the two or anything else."""
    if isinstance(source, MemorySource):
        return source
    if isinstance(source, (str, bytes, os.PathLike)):
        return None
    if is_data(source):
        return MemorySource([_table(source, "data")])
    if isinstance(source, (list, tuple)) and source and any(is_data(s) for s in source):
        if not all(is_data(s) for s in source):
            bad = next(s for s in source if not is_data(s))
            raise InputTypeError(f"a data list must hold only paths or only in-memory tables; it mixes "
                                 f"{type(source[0]).__name__} and {type(bad).__name__}")
        return MemorySource([_table(s, f"data[{i}]") for i, s in enumerate(source)])
    return None


def _table(data: Any, what: str) -> pa.Table:
    t = as_arrow(data, what=what)
    return pa.Table.from_batches([t]) if isinstance(t, pa.RecordBatch) else t
