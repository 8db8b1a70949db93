"""Kernels of data-parallel training (``sparsecross.distributed``): the keys a chunk needs, a
lane's small state table, and the deterministic merge of the lanes' results into the global
state.

State tables are those of ``table.py``: a ``(capacity, 3)`` unsigned array of rows
(key, z, n), ``vals`` its float view, column 0 all ones for an empty slot.  The scratch sets
here (the renumbering's (key, local id) rows, the merge's (key, group) rows) are probed the
same way (``fmix64``, linear probing, power-of-two capacity).
Every kernel is serial and visits its input in order, so results depend on the inputs only.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .ftrl import _logloss, _sigmoid, weight
from .hash import fmix64
from .table import prefetch_slot, slot_from, slot_of

#: Entries ahead whose table (or scratch set, or dense state) row the look-ups, merges,
#: renumbering and lane pass prefetch: those are larger than the caches, so nearly every key
#: is a cache miss; with the prefetch several are in flight at once.  The order of the
#: accesses, and so every result, is unchanged.
_AHEAD = 16
#: ``merge_lanes`` keeps the slots of the entries in flight in a ring indexed by
#: ``entry & _RING``: each key is hashed once, for its prefetch (``_AHEAD`` is a power of two).
_RING = _AHEAD - 1


_HOT_BITS = 10
_HOT = 1 << _HOT_BITS


@kernel
def local_ids(indptr, indices, row_mask, proto):
    """A chunk's distinct column ids and its entries renumbered by them.

    ``indptr`` int64[n+1], ``indices`` int64[nnz]; ``row_mask`` uint8[n] or length 0 (rows with
    mask != 0 are skipped, as ``ftrl_pass`` skips them); ``proto``: a length-1 array of the key
    dtype (the state table's dtype).

    Returns ``(keys, local)``: the distinct ids of the unmasked rows in order of first
    appearance, as ``proto``'s dtype, and int32[nnz] with ``keys[local[k]] == indices[k]``
    for every entry of an unmasked row (-1 for the entries of masked rows).
    """
    nnz = indices.shape[0]
    cap = 1 << 12
    while cap < nnz // 4:  # distinct keys are usually a fraction of the entries
        cap *= 2
    tbl, hot_key, hot_id = id_set(cap, proto)
    out = np.empty(max(nnz, 1), dtype=proto.dtype)
    local = np.empty(nnz, dtype=np.int32)
    tbl, m = renumber(indptr, indices, row_mask, tbl, out, 0, hot_key, hot_id, local)
    return out[:m].copy(), local


@kernel
def id_set(cap, proto):
    """An empty renumbering scratch set of capacity ``cap`` (a power of two) for ``proto``'s
    key dtype: ``(tbl, hot_key, hot_id)``, as :func:`renumber` takes them."""
    empty = proto[0] | ~proto[0]
    # The scratch set: rows (key, local id), all ones for empty; one cache line per probe.
    tbl = np.empty((cap, 2), dtype=proto.dtype)
    tbl[:, 0] = empty
    # A small direct-mapped cache of (key, id) in front of the set: most entries of a row
    # belong to low-cardinality features (buckets, small categoricals) and hit it.
    hot_key = np.empty(_HOT, dtype=proto.dtype)
    hot_key[:] = empty
    hot_id = np.zeros(_HOT, dtype=np.int32)
    return tbl, hot_key, hot_id


@kernel
def renumber(indptr, indices, row_mask, tbl, out, m, hot_key, hot_id, local):
    """Renumber one more part of a chunk by the chunk's distinct keys (:func:`local_ids` over
    several parts, in order, gives the ids it would give the parts concatenated).

    ``tbl``, ``hot_key``, ``hot_id``: the renumbering's scratch set (:func:`id_set`; its
    capacity a power of two, at most half full); ``out[:m]``: the keys met so far, by id
    (``out`` has room for ``m`` plus the part's entries); ``local`` int32[nnz] (written: the
    part's ids, -1 for the entries of masked rows).  The other arguments as ``local_ids``'.
    Returns ``(tbl, m)``: the scratch set (a larger one when it grew) and the keys met.
    """
    empty = tbl[0, 0] | ~tbl[0, 0]
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    has_mask = row_mask.shape[0] > 0
    cap = tbl.shape[0]
    mask = np.uint64(cap - 1)
    for r in range(n_rows):
        if has_mask and row_mask[r] != 0:
            for k in range(indptr[r], indptr[r + 1]):
                local[k] = -1
            continue
        for k in range(indptr[r], indptr[r + 1]):
            if k + _AHEAD < nnz:  # the set is larger than the caches: start the miss early
                prefetch_slot(tbl, fmix64(np.uint64(out.dtype.type(indices[k + _AHEAD]))) & mask)
            key = out.dtype.type(indices[k])
            h = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - _HOT_BITS))
            if hot_key[h] == key:
                local[k] = hot_id[h]
                continue
            s = np.int64(slot_from(tbl, key, fmix64(np.uint64(key)) & mask))
            if tbl[s, 0] == empty:
                tbl[s, 0] = key
                tbl[s, 1] = m
                out[m] = key
                local[k] = m
                m += 1
                if 2 * m > cap:  # keep the scratch set at most half full
                    cap *= 2
                    mask = np.uint64(cap - 1)
                    tbl = np.empty((cap, 2), dtype=out.dtype)
                    tbl[:, 0] = empty
                    for i in range(m):
                        t = slot_from(tbl, out[i], fmix64(np.uint64(out[i])) & mask)
                        tbl[t, 0] = out[i]
                        tbl[t, 1] = i
            else:
                local[k] = np.int32(tbl[s, 1])
            hot_key[h] = key
            hot_id[h] = local[k]
    return tbl, m


@kernel
def ftrl_pass_local(indptr, local, data, y, sw, row_mask, zn, bias, params, acc):
    """``ftrl_pass`` over a chunk whose entries were renumbered by ``local_ids``: the state of
    local id i is ``zn[i] = (z, n)`` (float32 or float64, the state's precision), so there is
    no hashing.  The results are ``ftrl_pass``'s to the bit (``tests/test_lanes.py`` checks
    the bits), though not operation for operation: ``ftrl_pass`` carries ``sqrt(n)`` of the bias
    from row to row, skips the update of a dead weight (``|z| <= l1``, the same bits) and
    prefetches; this one recomputes and updates every entry.  It is a copy on purpose:
    sharing the row update through a helper (even inlined) slowed ``ftrl_pass`` from 4.8M to
    4.1M rows/s, because its probe loop then no longer computes the weights.
    Mutates ``zn``, ``bias`` and ``acc``."""
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    nnz = local.shape[0]
    max_len = 0
    for r in range(n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    ws = np.empty(max_len, dtype=np.float64)
    for r in range(n_rows):
        if has_mask and row_mask[r] != 0:
            continue
        a = indptr[r]
        b = indptr[r + 1]
        zb = bias[0]
        nb = bias[1]
        wb = weight(zb, nb, alpha, beta, 0.0, 0.0)
        margin = wb
        for k in range(a, b):
            if k + _AHEAD < nnz and local[k + _AHEAD] >= 0:  # zn is larger than the L2 cache
                prefetch_slot(zn, local[k + _AHEAD])
            i = local[k]
            w = weight(np.float64(zn[i, 0]), np.float64(zn[i, 1]), alpha, beta, l1, l2)
            ws[k - a] = w
            margin += w * np.float64(data[k])
        p = _sigmoid(margin)
        yr = y[r]
        swr = sw[r] if has_sw else 1.0
        acc[0] += _logloss(p, yr) * swr
        acc[1] += swr
        acc[2] += 1.0
        target = yr * (1.0 - eps) + 0.5 * eps
        g = (p - target) * swr
        for k in range(a, b):
            i = local[k]
            gi = g * np.float64(data[k])
            ni = np.float64(zn[i, 1])
            sigma = (math.sqrt(ni + gi * gi) - math.sqrt(ni)) / alpha
            zn[i, 0] = np.float64(zn[i, 0]) + gi - sigma * ws[k - a]
            zn[i, 1] = ni + gi * gi
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g


@kernel
def shard_of(keys, n_shards):
    """Owner shard of every key: ``(fmix64(key) >> 32) % n_shards`` (int64).  The high bits,
    because a table slot is the low bits of the same hash: a shard's keys still spread over
    all of its table's slots."""
    out = np.empty(keys.shape[0], dtype=np.int64)
    for i in range(keys.shape[0]):
        out[i] = np.int64(fmix64(np.uint64(keys[i])) >> np.uint64(32)) % n_shards
    return out


@kernel
def items_weights(keys, zn, params):
    """``export_weights`` over (key, (z, n)) rows instead of a table: the keys (uint64) and
    float64 weights of the rows with ``|z| > l1``, in row order."""
    alpha, beta, l1, l2, eps = params
    m = 0
    for i in range(keys.shape[0]):
        if abs(np.float64(zn[i, 0])) > l1:
            m += 1
    ok = np.empty(m, dtype=np.uint64)
    ow = np.empty(m, dtype=np.float64)
    j = 0
    for i in range(keys.shape[0]):
        if abs(np.float64(zn[i, 0])) > l1:
            ok[j] = np.uint64(keys[i])
            ow[j] = weight(np.float64(zn[i, 0]), np.float64(zn[i, 1]), alpha, beta, l1, l2)
            j += 1
    return ok, ow


@kernel
def table_items(table, vals):
    """Every occupied slot of a state table: (keys, zn float[m, 2]) in slot order."""
    return _kept_items(table, vals, False, 0.0)


@kernel
def table_live_items(table, vals, l1):
    """``table_items`` of the rows with a weight (``|z| > l1`` in float64, as
    ``items_weights``): what a model needs of a state, without its dead rows."""
    return _kept_items(table, vals, True, l1)


@kernel
def _kept_items(table, vals, live, l1):
    """The occupied slots of a state table (with ``live``, those with ``|z| > l1``) as (keys,
    zn) in slot order: one pass to count, one to copy."""
    empty = table[0, 0] | ~table[0, 0]
    m = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty and (not live or abs(np.float64(vals[s, 1])) > l1):
            m += 1
    keys = np.empty(m, dtype=table.dtype)
    zn = np.empty((m, 2), dtype=vals.dtype)
    j = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty and (not live or abs(np.float64(vals[s, 1])) > l1):
            keys[j] = table[s, 0]
            zn[j, 0] = vals[s, 1]
            zn[j, 1] = vals[s, 2]
            j += 1
    return keys, zn


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
def gather_zn(table, vals, qkeys, out, slots):
    """``out[i] = (z, n)`` of ``qkeys[i]`` in the state table, (0, 0) where absent, and
    ``slots[i]`` its slot (-1 where absent).

    ``out``: shape (len(qkeys), 2), the dtype of ``vals`` (values are copied, not converted);
    ``slots``: int64 of length len(qkeys), or length 0 to skip.  Returns the number of keys
    that were absent.  The home slot of the key ``_AHEAD`` further is prefetched."""
    empty = table[0, 0] | ~table[0, 0]
    want_slots = slots.shape[0] > 0
    absent = 0
    n = qkeys.shape[0]
    cap_mask = np.uint64(table.shape[0] - 1)
    homes = np.empty(_AHEAD, dtype=np.uint64)  # a ring: the home slot of key i at i % _AHEAD
    for i in range(min(n, _AHEAD)):
        homes[i] = fmix64(np.uint64(qkeys[i])) & cap_mask
        prefetch_slot(table, homes[i])
    for i in range(n):
        s = np.int64(slot_from(table, qkeys[i], homes[i % _AHEAD]))
        ahead = i + _AHEAD
        if ahead < n:
            h = fmix64(np.uint64(qkeys[ahead])) & cap_mask
            homes[ahead % _AHEAD] = h
            prefetch_slot(table, h)
        if table[s, 0] == empty:
            out[i, 0] = 0.0
            out[i, 1] = 0.0
            absent += 1
            if want_slots:
                slots[i] = -1
        else:
            out[i, 0] = vals[s, 1]
            out[i, 1] = vals[s, 2]
            if want_slots:
                slots[i] = s
    return absent


@kernel
def merge_lanes(table, vals, count, lane_keys, lane_new, lane_old, lane_slots, slots_valid, scratch):
    """Apply the lanes of one round to the global state table (mutated in place).

    The inputs are the lanes' entries concatenated in lane order: ``lane_keys`` every key a
    lane trained, ``lane_old`` its (z, n) at the start of the round (what the lane started
    from: (0, 0) for keys absent from the table), ``lane_new`` its (z, n) after the lane, and
    ``lane_slots`` its slot in the table at the start of the round (-1: absent), used when
    ``slots_valid`` (the table was not regrown since).  For each key:

    * seen by one lane: the table takes that lane's values, copied exactly (so one lane per
      round reproduces sequential training bit for bit);
    * seen by m > 1 lanes: ``old + (sum over lanes, in lane order, of (new - old)) / m``, in
      float64, then stored in the table's precision.

    ``scratch``: int64 array of shape (cap, 2), cap a power of two >= 2 * len(lane_keys)
    (overwritten).  The table must have room for the new keys.  Returns the number of keys
    added.
    """
    n = lane_keys.shape[0]
    empty = table[0, 0] | ~table[0, 0]
    mask = np.int64(scratch.shape[0] - 1)
    scratch[:, 0] = -1
    gslot = np.empty(n, dtype=np.int64)
    gcnt = np.zeros(n, dtype=np.int64)
    gsum = np.empty((n, 2), dtype=np.float64)
    gfirst = np.empty((n, 2), dtype=lane_new.dtype)
    gkey = np.empty(n, dtype=lane_keys.dtype)
    m = 0
    # Pass 1: group the entries by key, in lane order; only the scratch set is touched.
    homes = np.empty(_AHEAD, dtype=np.int64)  # a ring: the scratch slot of entry i at i & _RING
    for i in range(min(n, _AHEAD)):
        homes[i] = np.int64(fmix64(np.uint64(lane_keys[i]))) & mask
        prefetch_slot(scratch, homes[i])
    for i in range(n):
        t = homes[i & _RING]
        if i + _AHEAD < n:
            h = np.int64(fmix64(np.uint64(lane_keys[i + _AHEAD]))) & mask
            homes[(i + _AHEAD) & _RING] = h
            prefetch_slot(scratch, h)
        key = lane_keys[i]
        ik = np.int64(key)
        while scratch[t, 0] != -1 and scratch[t, 0] != ik:
            t = (t + 1) & mask
        if scratch[t, 0] == -1:
            scratch[t, 0] = ik
            scratch[t, 1] = m
            g = m
            m += 1
            gkey[g] = key
            gslot[g] = lane_slots[i] if slots_valid else -1
            gfirst[g, 0] = lane_new[i, 0]
            gfirst[g, 1] = lane_new[i, 1]
            gsum[g, 0] = 0.0
            gsum[g, 1] = 0.0
        else:
            g = scratch[t, 1]
        gcnt[g] += 1
        gsum[g, 0] += np.float64(lane_new[i, 0]) - np.float64(lane_old[i, 0])
        gsum[g, 1] += np.float64(lane_new[i, 1]) - np.float64(lane_old[i, 1])
    # Pass 2: one write per key, groups in order of first appearance.
    added = 0
    cap_mask = np.int64(table.shape[0] - 1)
    for g in range(min(m, _AHEAD)):  # homes[g & _RING]: the home slot of group g without a slot
        if gslot[g] < 0:
            homes[g] = np.int64(fmix64(np.uint64(gkey[g]))) & cap_mask
    for g in range(m):
        home = homes[g & _RING]  # (read before the entry _AHEAD further takes its place)
        if g + _AHEAD < m:  # the slot found by the look-up, else the key's home slot
            ahead = gslot[g + _AHEAD]
            if ahead < 0:
                ahead = np.int64(fmix64(np.uint64(gkey[g + _AHEAD]))) & cap_mask
                homes[(g + _AHEAD) & _RING] = ahead
            prefetch_slot(table, ahead)
        s = gslot[g]
        if s < 0:
            s = np.int64(slot_from(table, gkey[g], np.uint64(home)))
            if table[s, 0] == empty:
                table[s, 0] = gkey[g]
                vals[s, 1] = 0.0
                vals[s, 2] = 0.0
                added += 1
        c = gcnt[g]
        if c == 1:
            vals[s, 1] = gfirst[g, 0]
            vals[s, 2] = gfirst[g, 1]
        else:
            vals[s, 1] = np.float64(vals[s, 1]) + gsum[g, 0] / c
            vals[s, 2] = np.float64(vals[s, 2]) + gsum[g, 1] / c
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
