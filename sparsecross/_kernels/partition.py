"""Kernels of partitioned training (``sparsecross.dask.partitioned``): each key's and each
row's lane from its partition value, the keys the lanes share, and a chunk's rows grouped
by lane.

A partition is described by *owned ranges*: the exact column blocks whose keys contain the
partition feature (its own block, and the exact crosses that include it).  For range ``q``,
a key ``k`` in ``[lo[q], hi[q])`` holds the partition feature's local id
``((k - lo[q]) // stride[q]) % card``, and that id's lane is ``fmix64(id) % lanes``.  Every
kernel is serial and visits its input in order, so results depend on the inputs only.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hash import fmix64

#: Salt of the lane of a row without a partition key (its global row number is hashed).
ROW_SALT = np.uint64(0x9E3779B97F4A7C15)


@kernel
def lane_of_key(k, lo, hi, stride, card, lanes):
    """The lane of column ``k``, or -1 when ``k`` is in no owned range (a shared key)."""
    for q in range(lo.shape[0]):
        if lo[q] <= k < hi[q]:
            pid = ((k - lo[q]) // stride[q]) % card
            return np.int64(fmix64(np.uint64(pid)) % np.uint64(lanes))
    return np.int64(-1)


@kernel
def keys_lanes(keys, lo, hi, stride, card, lanes):
    """``lane_of_key`` of every key (int64; -1 for shared keys)."""
    out = np.empty(keys.shape[0], dtype=np.int64)
    for i in range(keys.shape[0]):
        out[i] = lane_of_key(np.int64(keys[i]), lo, hi, stride, card, lanes)
    return out


@kernel
def row_lanes(indptr, indices, keep, lo, hi, stride, card, lanes, start_row):
    """Each row's lane, and the keys no lane owns: ``(lane, shared, bad)``.

    A row's lane is that of its entries in owned ranges (which hold the row's partition id);
    a row with none goes to ``fmix64((start_row + r) ^ ROW_SALT) % lanes``; -1 for a row
    not kept (``keep``: uint8 per row, 1: train it; length 0: all rows).  ``shared``: the
    keys of the kept rows outside every owned range: each at least once (a key a direct-mapped
    cache of 1,024 slots missed; these are few when the shared keys are few), not sorted.
    ``bad``: the first row whose owned entries name two lanes (a partition feature with
    several values in a row), -1 if none; the lanes after it are not computed."""
    n = indptr.shape[0] - 1
    has_keep = keep.shape[0] > 0
    lane = np.full(n, -1, dtype=np.int64)
    hot = np.full(1024, -1, dtype=np.int64)
    # (a buffer with room for every entry: no array is replaced in the loop, which would cost
    # Numba reference counting at every entry)
    shared = np.empty(indices.shape[0], dtype=np.int64)
    m = 0
    bad = np.int64(-1)
    for r in range(n):
        if has_keep and keep[r] == 0:
            continue
        j = np.int64(-1)
        for e in range(indptr[r], indptr[r + 1]):
            k = np.int64(indices[e])
            je = lane_of_key(k, lo, hi, stride, card, lanes)
            if je < 0:
                if hot[k & 1023] != k:
                    hot[k & 1023] = k
                    shared[m] = k
                    m += 1
            elif j >= 0 and je != j:
                bad = r
            else:
                j = je
        if bad >= 0:
            break
        if j < 0:
            j = np.int64(fmix64(np.uint64(start_row + r) ^ ROW_SALT) % np.uint64(lanes))
        lane[r] = j
    return lane, shared[:m].copy(), bad


@kernel
def group_rows(indptr, indices, data, lane, lanes, idx_like, with_data):
    """The rows with a lane (``lane[r] >= 0``) grouped by lane, in row order within a lane
    (a stable counting sort): ``(order, lane_ptr, out_ptr, out_idx, out_dat)``, where
    ``order`` lists the rows and ``out_*`` are those rows' CSR; lane j's are
    ``lane_ptr[j]:lane_ptr[j + 1]``.  (A lane that trains only its rows costs less than one
    that skips the others' rows by a mask: ``ftrl_pass`` prefetches every row's keys.)

    ``out_idx`` has ``idx_like``'s dtype (the caller checks that every key fits: uint32 keys
    are a third of what int64 keys and float32 values write); ``with_data`` False: no values
    are copied (``out_dat`` has length 0, for values that are all 1)."""
    n = indptr.shape[0] - 1
    rows = np.zeros(lanes + 1, dtype=np.int64)
    ents = np.zeros(lanes + 1, dtype=np.int64)
    for r in range(n):
        j = lane[r]
        if j >= 0:
            rows[j + 1] += 1
            ents[j + 1] += indptr[r + 1] - indptr[r]
    for j in range(lanes):
        rows[j + 1] += rows[j]
        ents[j + 1] += ents[j]
    order = np.empty(rows[lanes], dtype=np.int64)
    out_ptr = np.empty(rows[lanes] + 1, dtype=np.int64)
    out_ptr[0] = 0
    out_idx = np.empty(ents[lanes], dtype=idx_like.dtype)
    out_dat = np.empty(ents[lanes] if with_data else 0, dtype=data.dtype)
    fill = rows[:lanes].copy()
    at = ents[:lanes].copy()
    for r in range(n):
        j = lane[r]
        if j < 0:
            continue
        i = fill[j]
        fill[j] += 1
        order[i] = r
        o = at[j]
        a, b = indptr[r], indptr[r + 1]
        for e in range(a, b):
            out_idx[o + e - a] = indices[e]
        if with_data:
            for e in range(a, b):
                out_dat[o + e - a] = data[e]
        o += b - a
        at[j] = o
        out_ptr[i + 1] = o
    return order, rows, out_ptr, out_idx, out_dat
