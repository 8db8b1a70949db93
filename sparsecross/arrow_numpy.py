"""Arrow arrays -> numpy from their buffers.

pyarrow's own conversions (``Array.to_numpy``, ``np.asarray(array)``) import pandas when it is
installed (pyarrow's pandas shim): about 0.3 s of every process that featurizes.  These read the
buffers instead, for the fixed-width arrays the featurizer converts: the same values (NaN at the
nulls of a float64 array), read-only views where no copy is needed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["array_of", "as_array", "bools_of", "float64_column", "float64_of", "int64_array", "list_lengths",
           "valid_of", "values_of"]

#: numpy dtypes of the fixed-width Arrow types, by ``str(type)``.
_NUMPY = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1", "uint16": "u2",
          "uint32": "u4", "uint64": "u8", "halffloat": "f2", "float": "f4", "double": "f8"}


def valid_of(arr: pa.Array) -> np.ndarray:
    """bool[n]: True where ``arr`` is not null (from its validity bitmap; all False for an
    array of type null, which has no bitmap but is all nulls).  Reads only the bytes of the
    slice's own bits, so a slice deep into a big buffer costs what its length does, not its
    offset."""
    n = len(arr)
    if pa.types.is_null(arr.type):
        return np.zeros(n, dtype=bool)
    bitmap = arr.buffers()[0]
    if arr.null_count == 0 or bitmap is None:
        return np.ones(n, dtype=bool)
    return _bits(bitmap, arr.offset, n)


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """bool[n]: the bits ``offset .. offset + n`` of a bitmap buffer (least significant first),
    reading only their bytes."""
    skip = offset % 8
    bits = np.frombuffer(buf, dtype=np.uint8, offset=offset // 8, count=(skip + n + 7) // 8)
    return np.unpackbits(bits, count=skip + n, bitorder="little")[skip:].view(bool)


def bools_of(arr: pa.Array, fill: bool = False) -> np.ndarray:
    """bool[n]: the values of a boolean array (from its bit-packed data buffer), ``fill`` at its
    nulls."""
    if not pa.types.is_boolean(arr.type):
        raise TypeError(f"bools_of: {arr.type} is not bool")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    out = _bits(arr.buffers()[1], arr.offset, n)
    if arr.null_count:
        out = np.where(valid_of(arr), out, fill)
    return out


def list_lengths(arr: pa.Array) -> np.ndarray:
    """int64[n]: the length of each list of a list or large-list array (from its offsets
    buffer), 0 at a null list (as ``fill_null(list_value_length(arr), 0)``)."""
    if pa.types.is_list(arr.type):
        dtype = np.dtype(np.int32)
    elif pa.types.is_large_list(arr.type):
        dtype = np.dtype(np.int64)
    else:
        raise TypeError(f"list_lengths: {arr.type} is not a list or large list")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.frombuffer(arr.buffers()[1], dtype=dtype, count=n + 1, offset=arr.offset * dtype.itemsize)
    lengths = np.diff(offsets).astype(np.int64)
    if arr.null_count:
        lengths[~valid_of(arr)] = 0  # a null list may have a non-empty range in the offsets
    return lengths


def values_of(arr: pa.Array, fill: float | None = None) -> np.ndarray:
    """The values of an integer or floating array: a read-only view of its data buffer or,
    with ``fill`` when it has nulls, a copy holding ``fill`` at the nulls (without ``fill``,
    a null's slot holds any value)."""
    name = _NUMPY.get(str(arr.type))
    if name is None:
        raise TypeError(f"values_of: {arr.type} is not a fixed-width number type")
    dtype = np.dtype(name)
    if len(arr) == 0:
        return np.zeros(0, dtype=dtype)
    out = np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    if fill is not None and arr.null_count:
        out = out.copy()
        out[~valid_of(arr)] = fill
        return out
    out.flags.writeable = False  # never write through to Arrow's memory (as pyarrow's own views)
    return out


def float64_of(arr: pa.Array) -> np.ndarray:
    """A float64 array's values with NaN at its nulls (what ``to_numpy(zero_copy_only=False)``
    returns)."""
    if arr.type != pa.float64():
        raise TypeError(f"float64_of: {arr.type} is not float64")
    return values_of(arr, np.nan)


def int64_array(values: np.ndarray) -> pa.Array:
    """An Arrow int64 array of numpy ``values`` (no nulls), sharing their buffer when it can."""
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def array_of(values: list, typ: pa.DataType) -> pa.Array:
    """An Arrow array (no nulls) of the Python ``values``, of a string, large string, bool or
    fixed-width number type, built from buffers (``pa.array`` imports pandas); the values must
    fit ``typ`` (str for strings, bool for bool, numbers in the type's range)."""
    n = len(values)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        data = [v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32 if pa.types.is_string(typ) else np.int64)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])
    if pa.types.is_boolean(typ):
        bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(bits)])
    name = _NUMPY.get(str(typ))
    if name is None:
        raise TypeError(f"array_of: {typ} is not a string, bool or fixed-width number type")
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(np.array(values, dtype=name))])


def as_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One Arrow array of a column (its chunks combined when there are several)."""
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            return col.chunk(0)
        if col.num_chunks == 0:
            return pa.array([], type=col.type)
        return col.combine_chunks()
    return col


def float64_column(arr: pa.Array) -> np.ndarray:
    """A number column as float64 with NaN for nulls (dictionaries decoded; a view when the
    column is float64 without nulls)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.float64():
        # Unsafe on purpose: int64 beyond 2**53 rounds to the nearest float64, as the contract says.
        arr = pc.cast(arr, pa.float64(), safe=False)
    return float64_of(arr)
