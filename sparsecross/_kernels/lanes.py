"""Kernels of data-parallel training (``sparsecross.distributed``): the keys a chunk needs, a
lane's small state table, and the deterministic merge of the lanes' results into the global
state.

State tables are those of ``table.py``: a ``(capacity, 3)`` unsigned array of rows
(key, z, n), ``vals`` its float view, column 0 all ones for an empty slot.  Scratch sets here
are flat key arrays probed the same way (``fmix64``, linear probing, power-of-two capacity).
Every kernel is serial and visits its input in order, so results depend on the inputs only.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hash import fmix64
from .table import slot_of


@kernel
def _probe(keys, key):
    """Slot of ``key`` in the flat scratch set ``keys`` (or the empty slot where it goes)."""
    mask = np.int64(keys.shape[0] - 1)
    empty = keys[0] | ~keys[0]
    s = np.int64(fmix64(np.uint64(key))) & mask
    while True:
        k = keys[s]
        if k == key or k == empty:
            return s
        s = (s + 1) & mask


@kernel
def unique_keys(indptr, indices, row_mask, proto):
    """Distinct column ids of the rows of a CSR chunk that are not masked, in order of first
    appearance, as keys of ``proto``'s dtype.

    ``indptr`` int64[n+1], ``indices`` int64[nnz]; ``row_mask`` uint8[n] or length 0 (rows with
    mask != 0 are skipped, as ``ftrl_pass`` skips them); ``proto``: a length-1 array of the key
    dtype (the state table's dtype).  Returns a new key array.
    """
    empty = proto[0] | ~proto[0]
    n_rows = indptr.shape[0] - 1
    has_mask = row_mask.shape[0] > 0
    cap = 1 << 12
    tbl = np.full(cap, empty)
    out = np.full(max(indices.shape[0], 1), empty)
    m = 0
    for r in range(n_rows):
        if has_mask and row_mask[r] != 0:
            continue
        for k in range(indptr[r], indptr[r + 1]):
            key = proto.dtype.type(indices[k])
            s = _probe(tbl, key)
            if tbl[s] == empty:
                tbl[s] = key
                out[m] = key
                m += 1
                if 2 * m > cap:  # keep the scratch set at most half full
                    cap *= 2
                    tbl = np.full(cap, empty)
                    for i in range(m):
                        tbl[_probe(tbl, out[i])] = out[i]
    return out[:m].copy()


@kernel
def fill_table(table, vals, count, qkeys, qzn):
    """Insert distinct ``qkeys`` (absent from the state table) with ``(z, n) = qzn[i]``.

    Mutates ``table``/``vals`` and ``count`` (int64[1]); the caller sizes the table."""
    for i in range(qkeys.shape[0]):
        s = slot_of(table, qkeys[i])
        table[s, 0] = qkeys[i]
        vals[s, 1] = qzn[i, 0]
        vals[s, 2] = qzn[i, 1]
    count[0] += qkeys.shape[0]


@kernel
def gather_zn(table, vals, qkeys, out):
    """``out[i] = (z, n)`` of ``qkeys[i]`` in the state table, (0, 0) where absent.

    ``out``: shape (len(qkeys), 2), the dtype of ``vals`` (values are copied, not converted).
    Returns the number of keys that were absent."""
    empty = table[0, 0] | ~table[0, 0]
    absent = 0
    for i in range(qkeys.shape[0]):
        s = slot_of(table, qkeys[i])
        if table[s, 0] == empty:
            out[i, 0] = 0.0
            out[i, 1] = 0.0
            absent += 1
        else:
            out[i, 0] = vals[s, 1]
            out[i, 1] = vals[s, 2]
    return absent


@kernel
def merge_lanes(table, vals, count, lane_keys, lane_zn):
    """Apply the lanes of one round to the global state table (mutated in place).

    ``lane_keys`` / ``lane_zn`` are the lanes' results concatenated in lane order: every key a
    lane trained and its (z, n) after the lane, which started from the table's current values
    (absent keys from (0, 0)).  For each key:

    * seen by one lane: the table takes that lane's values, copied exactly (so one lane per
      round reproduces sequential training bit for bit);
    * seen by m > 1 lanes: ``old + (sum over lanes, in lane order, of (new - old)) / m``, in
      float64, then stored in the table's precision.

    The table must have room for every new key (``count + new <= 0.7 * capacity`` is the
    caller's job).  Returns the number of keys added.
    """
    n = lane_keys.shape[0]
    empty = table[0, 0] | ~table[0, 0]
    cap = 16
    while cap < 2 * n + 2:
        cap *= 2
    tk = np.full(cap, empty)
    first = np.empty(cap, dtype=np.int64)
    gslot = np.empty(cap, dtype=np.int64)
    cnt = np.zeros(cap, dtype=np.int64)
    sz = np.zeros(cap, dtype=np.float64)
    sn = np.zeros(cap, dtype=np.float64)
    tslot = np.empty(n, dtype=np.int64)
    added = 0
    # Pass 1: group entries by key (lane order kept inside a group) and sum the deltas
    # against the table's values, which are not modified until pass 2.
    for i in range(n):
        key = lane_keys[i]
        g = slot_of(table, key)
        if table[g, 0] == empty:
            table[g, 0] = key
            vals[g, 1] = 0.0
            vals[g, 2] = 0.0
            added += 1
        t = _probe(tk, key)
        if tk[t] == empty:
            tk[t] = key
            first[t] = i
            gslot[t] = g
        tslot[i] = t
        cnt[t] += 1
        sz[t] += np.float64(lane_zn[i, 0]) - np.float64(vals[g, 1])
        sn[t] += np.float64(lane_zn[i, 1]) - np.float64(vals[g, 2])
    # Pass 2: one write per key.
    for i in range(n):
        t = tslot[i]
        if first[t] != i:
            continue
        g = gslot[t]
        c = cnt[t]
        if c == 1:
            vals[g, 1] = lane_zn[i, 0]
            vals[g, 2] = lane_zn[i, 1]
        else:
            vals[g, 1] = np.float64(vals[g, 1]) + sz[t] / c
            vals[g, 2] = np.float64(vals[g, 2]) + sn[t] / c
    count[0] += added
    return added


@kernel
def csr_select_rows(indptr, indices, data, rows):
    """The CSR rows ``rows`` (int64, increasing) of a chunk: new (indptr, indices, data)."""
    m = rows.shape[0]
    out_ptr = np.zeros(m + 1, dtype=np.int64)
    for j in range(m):
        r = rows[j]
        out_ptr[j + 1] = out_ptr[j] + indptr[r + 1] - indptr[r]
    out_idx = np.empty(out_ptr[m], dtype=indices.dtype)
    out_dat = np.empty(out_ptr[m], dtype=data.dtype)
    for j in range(m):
        r = rows[j]
        a = indptr[r]
        o = out_ptr[j]
        for k in range(indptr[r + 1] - a):
            out_idx[o + k] = indices[a + k]
            out_dat[o + k] = data[a + k]
    return out_ptr, out_idx, out_dat
