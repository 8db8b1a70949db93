"""``kind = "categorical"``: strings, integers or booleans, hashed (XXH64, hash contract v1)
into the hashed block.

A list column (``list<string>``, ``list<int64>``, ...) makes one feature per distinct element
of a row (each once, whatever its repeats); a null or empty list is the missing value.  Its
entries do not fit the kernel's one-id-per-feature-and-row layout: they are emitted through
:attr:`Ctx.extra` and merged into the rows.  In a hashed cross, a row's first
:data:`CROSS_LIST_CAP` distinct elements (in list order) are crossed, each with the row's other
components (:attr:`Ctx.lists`, used by :mod:`sparsecross.listcross`, which also crosses two or
more lists: every tuple of their elements, at most :data:`CROSS_LIST_CAP` a row)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import DataError, SchemaError
from ._base import Ctx, Kind, feature_column, is_stringish

np = LazyModule("numpy")
pa = LazyModule("pyarrow")
pc = LazyModule("pyarrow.compute")
K = LazyModule("sparsecross._kernels.crosses")
_hash = LazyModule("sparsecross._kernels.hash")
_lists = LazyModule("sparsecross._kernels.lists")
_an = LazyModule("sparsecross.arrow_numpy")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["CATEGORICAL", "CROSS_LIST_CAP", "hash_dictionary", "categorical_keys"]

#: Most distinct elements of a row's list crossed (the first ones in the list's order); the
#: standalone feature keeps them all.
CROSS_LIST_CAP = 64

# Hashes of recently seen Arrow dictionaries: a row group's dictionary is shared by its
# batches.  Each entry keeps a reference to its dictionary so its buffer address is never
# reused by another dictionary while the entry lives.
_DICT_CACHE: OrderedDict[tuple[int, int, int, int, int], tuple[pa.Array, np.ndarray]] = OrderedDict()
_DICT_CACHE_SIZE = 64


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    bufs = arr.buffers()
    off_dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_dtype)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def hash_dictionary(dictionary: pa.Array, salt: np.uint64) -> np.ndarray:
    """XXH64 of every dictionary value, computed once per distinct dictionary."""
    if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
        dictionary = dictionary.cast(pa.large_string())  # string_view and friends
    bufs = dictionary.buffers()
    # Both buffer addresses: a derived dictionary (e.g. pc.ascii_lower) may share the offsets
    # buffer but not the data.  The entry keeps the dictionary alive, so neither address can
    # be reused by another buffer while the entry exists.
    key = (bufs[1].address if bufs[1] is not None else 0, bufs[2].address if bufs[2] is not None else 0,
           dictionary.offset, len(dictionary), int(salt))
    hit = _DICT_CACHE.get(key)
    if hit is not None:
        _DICT_CACHE.move_to_end(key)
        return hit[1]
    offsets, data = _string_buffers(dictionary)
    keys = _hash.hash_strings(offsets, data, salt)
    _DICT_CACHE[key] = (dictionary, keys)
    while len(_DICT_CACHE) > _DICT_CACHE_SIZE:
        _DICT_CACHE.popitem(last=False)
    return keys


def _valid_mask(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(0, dtype=np.uint8)
    return _an.valid_of(arr).astype(np.uint8)


def categorical_keys(arr: pa.Array, salt: np.uint64, miss: np.uint64, ids: np.ndarray,
                     missing: np.ndarray) -> None:
    """Write the 64-bit keys of a categorical column into ``ids`` and its missing flags."""
    t = arr.type
    if pa.types.is_dictionary(t):
        vt = t.value_type
        if pa.types.is_integer(vt) or pa.types.is_boolean(vt):
            arr = arr.dictionary_decode()
            t = arr.type
        elif arr.dictionary.null_count:
            # A null *inside* the dictionary: re-encode so every null is a row-level null.
            categorical_keys(pc.dictionary_encode(arr.dictionary_decode()), salt, miss, ids, missing)
            return
        else:
            dict_keys = hash_dictionary(arr.dictionary, salt)
            codes = _an.values_of(arr.indices, fill=0)
            K.take_keys(codes, dict_keys, _valid_mask(arr), miss, ids, missing)
            return
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        enc = pc.dictionary_encode(arr)
        categorical_keys(enc, salt, miss, ids, missing)
        return
    if pa.types.is_boolean(t) or pa.types.is_integer(t):
        values = _an.values_of(pc.cast(arr, pa.int64()), fill=0)
        keys = _hash.hash_ints(values, salt)
        codes = np.arange(len(arr), dtype=np.int64)
        K.take_keys(codes, keys, _valid_mask(arr), miss, ids, missing)
        return
    raise SchemaError(f"cannot use type {t} as a categorical")


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _list_elements(ctx: Ctx, arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, keys, rank) of each row's distinct non-null elements, in row then list order
    (an element's first occurrence); ``rank`` is its position among its row's distinct ones."""
    if isinstance(arr.type, pa.FixedSizeListType):
        arr = arr.cast(pa.list_(arr.type.value_type))
    flat = arr.flatten()  # the elements of the valid lists, in row order
    lengths = _an.list_lengths(arr)
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    keys = np.empty(len(flat), dtype=np.uint64)
    miss = np.empty(len(flat), dtype=np.uint8)
    categorical_keys(flat, ctx.salt, ctx.missing_key, keys, miss)
    return _lists.list_distinct(offsets, keys, miss)


def _with_missing(f: Feature, ctx: Ctx, n: int, rows: np.ndarray, keys: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Add the missing key on the rows without an element (null or empty list), unless
    ``missing = "skip"``."""
    if f.missing == "skip":
        return rows, keys
    has = np.zeros(n, dtype=bool)
    has[rows] = True
    empty = np.flatnonzero(~has)
    return (np.concatenate([rows, empty]),
            np.concatenate([keys, np.full(len(empty), ctx.missing_key, dtype=np.uint64)]))


class CategoricalKind(Kind):
    name = "categorical"
    keys = frozenset({"column"})
    role = "categorical"

    def is_exact(self, f: Feature) -> bool:
        return False

    def check_type(self, f: Feature, col: str, t: pa.DataType, where: str, crossed: bool = False) -> bool:
        if is_list(t):
            vt = t.value_type
            if pa.types.is_dictionary(vt):
                vt = vt.value_type
            if not (is_stringish(vt) or pa.types.is_integer(vt) or pa.types.is_boolean(vt)):
                raise SchemaError(
                    f"{feature_column(f, col)} in {where} has type {t}; a categorical list needs "
                    "strings, integers or bools as elements"
                )
            return False
        if is_stringish(t):
            return True
        if not (pa.types.is_integer(t) or pa.types.is_boolean(t)):
            raise SchemaError(
                f"{feature_column(f, col)} in {where} has type {t}; a categorical "
                "needs strings, integers or bools (use kind = \"bucket\" for real numbers)"
            )
        return False

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> None:
        from ..featurize import _as_array

        arr = _as_array(ctx.table.column(f.columns[0]))
        big = pc.greater(arr, pa.scalar(2**63 - 1, pa.uint64())) if pa.types.is_uint64(arr.type) else None
        if big is not None and pc.any(big).as_py():
            big = np.asarray(pc.fill_null(big, False))
            i = int(np.flatnonzero(big)[0])
            raise DataError(
                f"{feature_column(f, f.columns[0])} has {int(big.sum())} integers >= 2**63 (first "
                f"at row {ctx.start_row + i}); categorical integers are hashed as int64",
                row=ctx.start_row + i,
            )
        if is_list(arr.type):
            # Nothing through the kernel (missing everywhere, skipped); the entries go to extra.
            ids[:] = ctx.missing_key
            missing[:] = 1
            ctx.skip[ctx.feature] = 1
            rows, keys, rank = _list_elements(ctx, arr)
            if f.standalone:
                ctx.extra.append(_with_missing(f, ctx, len(arr), rows, keys))
            if ctx.lists is not None:  # crossed: each row's first CROSS_LIST_CAP distinct elements
                capped = rank < CROSS_LIST_CAP
                rows, keys = _with_missing(f, ctx, len(arr), rows[capped], keys[capped])
                order = np.argsort(rows, kind="stable")  # by row, in list order (the missing key alone)
                ctx.lists[ctx.feature] = (rows[order], keys[order])
            return None
        categorical_keys(arr, ctx.salt, ctx.missing_key, ids, missing)
        return None


    def recorded_values(self, f: Feature, arr: pa.Array, salt: np.uint64, seen: Any
                        ) -> tuple[pa.Array | None, np.ndarray, bool]:
        """The distinct values of ``arr`` (a list column: of its non-null elements) and their
        full keys; a row is missing where its value is null (a list: where it has no non-null
        element)."""
        if not is_list(arr.type):
            values, keys = _distinct(arr, salt, seen)
            return values, keys, bool(arr.null_count)
        if isinstance(arr.type, pa.FixedSizeListType):
            arr = arr.cast(pa.list_(arr.type.value_type))
        flat = arr.flatten()  # the elements of the valid lists, in row order
        lengths = _an.list_lengths(arr)
        parent = np.repeat(np.arange(len(arr), dtype=np.int64), lengths)
        present = np.bincount(parent, weights=_an.valid_of(flat).astype(np.float64), minlength=len(arr))
        values, keys = _distinct(flat, salt, seen)
        return values, keys, bool((present == 0).any())


def _distinct(arr: pa.Array, salt: np.uint64, seen: OrderedDict[tuple[int, int, int, int], pa.Array]
              ) -> tuple[pa.Array | None, np.ndarray]:
    """The distinct non-null values of ``arr`` (or of its dictionary) and their full hashes;
    (None, no keys) for a dictionary already in ``seen`` (which keeps the last 64, each alive so
    that its buffer addresses cannot be reused by another dictionary while its entry exists)."""
    t = arr.type
    if pa.types.is_dictionary(t) and not (pa.types.is_integer(t.value_type) or pa.types.is_boolean(t.value_type)):
        d = arr.dictionary
        bufs = d.buffers()
        ident = (bufs[1].address if bufs[1] is not None else 0, bufs[2].address if bufs[2] is not None else 0,
                 d.offset, len(d))
        if ident in seen:  # a row group's dictionary is shared by its batches
            seen.move_to_end(ident)
            return None, np.zeros(0, dtype=np.uint64)
        seen[ident] = d
        while len(seen) > 64:
            seen.popitem(last=False)
        if d.null_count:
            d = d.drop_null()
        return d.cast(pa.large_string()), hash_dictionary(d, salt)
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        u = pc.unique(arr.drop_null())
        return _distinct(pc.dictionary_encode(u), salt, seen)
    u = pc.unique(arr.drop_null())
    keys = _hash.hash_ints(_an.values_of(pc.cast(u, pa.int64())), salt)  # u has no nulls
    return pc.cast(u, pa.large_string()), keys


CATEGORICAL = CategoricalKind()
