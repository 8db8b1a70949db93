"""Kernels of categorical lists: each row's distinct elements, and the merge of extra hashed
entries into canonical CSR rows.  Every kernel reads its inputs only (Arrow buffers may be
read-only) and returns new arrays.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .sorting import argsort_stable, insertion_sort_pairs, sort_pairs

#: Rows with at most this many elements are deduplicated by a linear scan, longer ones by a
#: stable sort of their keys.
SHORT_LIST = 16
#: Rows of at most this many entries are sorted by insertion sort, longer ones by ``sorting.sort_pairs``.
SHORT_ROW = 32


@kernel
def list_distinct(offsets, keys, miss):
    """Each row's distinct non-missing element keys, first occurrences in list order.

    ``offsets``: int64[n+1] (row ``r``'s elements are ``offsets[r]:offsets[r+1]``, within
    ``[0, m]``, non-decreasing); ``keys``: uint64[m]; ``miss``: uint8[m] (1: a null element,
    no feature).  Returns ``(rows int64[k], out uint64[k], rank int64[k])``: row then list
    order, ``rank`` the element's position among its row's distinct ones."""
    n = offsets.shape[0] - 1
    m = keys.shape[0]
    rows = np.empty(m, dtype=np.int64)
    out = np.empty(m, dtype=np.uint64)
    rank = np.empty(m, dtype=np.int64)
    seen = np.zeros(m, dtype=np.uint8)  # long rows: 1 on the first occurrence of each key
    k = 0
    for r in range(n):
        a = offsets[r]
        b = offsets[r + 1]
        start = k
        if b - a <= SHORT_LIST:
            for i in range(a, b):
                if miss[i] != 0:
                    continue
                dup = False
                for j in range(start, k):
                    if out[j] == keys[i]:
                        dup = True
                        break
                if not dup:
                    rows[k] = r
                    out[k] = keys[i]
                    rank[k] = k - start
                    k += 1
            continue
        order = argsort_stable(keys[a:b])  # equal keys by position
        prev_set = False
        prev = np.uint64(0)
        for q in range(b - a):
            i = a + order[q]
            if miss[i] != 0:
                continue
            if not prev_set or keys[i] != prev:
                seen[i] = 1
                prev = keys[i]
                prev_set = True
        for i in range(a, b):
            if seen[i] != 0:
                rows[k] = r
                out[k] = keys[i]
                rank[k] = k - start
                k += 1
    return rows[:k].copy(), out[:k].copy(), rank[:k].copy()


@kernel
def merge_entries(indptr, indices, data, erows, ecols):
    """Add extra entries (value 1.0) to canonical CSR rows, which stay canonical.

    ``indptr`` int64[n+1], ``indices`` int64[nnz], ``data`` float32[nnz]: canonical rows;
    ``erows`` int64[e] (each in ``[0, n)``), ``ecols`` int64[e]: the extra entries, in any
    order.  Returns ``(indptr, indices, data)``: each row sorted, entries on the same column
    merged into one whose value is their sum (a count for hashed columns)."""
    n = indptr.shape[0] - 1
    e = erows.shape[0]
    count = np.zeros(n + 1, dtype=np.int64)
    for i in range(e):
        count[erows[i] + 1] += 1
    start = np.empty(n + 1, dtype=np.int64)  # each row's room: its entries plus its extras
    start[0] = 0
    for r in range(n):
        start[r + 1] = start[r] + (indptr[r + 1] - indptr[r]) + count[r + 1]
    cols = np.empty(start[n], dtype=np.int64)
    vals = np.empty(start[n], dtype=np.float32)
    fill = np.empty(n, dtype=np.int64)
    for r in range(n):
        p = start[r]
        for j in range(indptr[r], indptr[r + 1]):
            cols[p] = indices[j]
            vals[p] = data[j]
            p += 1
        fill[r] = p
    for i in range(e):
        r = erows[i]
        cols[fill[r]] = ecols[i]
        vals[fill[r]] = 1.0
        fill[r] += 1
    out_ptr = np.empty(n + 1, dtype=np.int64)
    out_cols = np.empty(start[n], dtype=np.int64)
    out_vals = np.empty(start[n], dtype=np.float32)
    out_ptr[0] = 0
    p = 0
    for r in range(n):
        a = start[r]
        b = start[r + 1]
        _sort_pairs(cols, vals, a, b)
        for q in range(a, b):
            if p > out_ptr[r] and cols[q] == out_cols[p - 1]:
                out_vals[p - 1] += vals[q]
            else:
                out_cols[p] = cols[q]
                out_vals[p] = vals[q]
                p += 1
        out_ptr[r + 1] = p
    return out_ptr, out_cols[:p].copy(), out_vals[:p].copy()


@kernel
def _sort_pairs(cols, vals, a, b):
    """Sort ``cols[a:b]`` in place, stably, moving ``vals[a:b]`` along: insertion sort up to
    ``SHORT_ROW`` entries, ``sorting.sort_pairs`` (a merge sort) beyond."""
    if b - a > SHORT_ROW:
        sort_pairs(cols, vals, a, b)
    else:
        insertion_sort_pairs(cols, vals, a, b)
