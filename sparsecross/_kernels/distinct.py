"""Distinct values of a key array in one pass: a small open-addressing set that grows with the
distinct keys (not with the rows), instead of sorting every row's key."""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hash import fmix64
from .sorting import sort_pairs


@kernel
def _insert(tkeys, tfirst, key, first):
    """Put ``key`` (first seen at row ``first``) into the set; its slot's row if already there."""
    m = np.uint64(tkeys.shape[0] - 1)
    s = np.int64(fmix64(key) & m)
    while tfirst[s] >= 0:
        if tkeys[s] == key:
            return tfirst[s]
        s = np.int64((np.uint64(s) + np.uint64(1)) & m)
    tkeys[s] = key
    tfirst[s] = first
    return first


@kernel
def unique_first(keys):
    """``(unique keys sorted ascending, index of each one's first occurrence)`` of uint64
    ``keys``: what ``np.unique(keys, return_index=True)`` returns, in time linear in the rows
    (the sort is over the distinct keys only)."""
    n = keys.shape[0]
    cap = 64
    tkeys = np.empty(cap, dtype=np.uint64)
    tfirst = np.full(cap, -1, dtype=np.int64)
    order = np.empty(16, dtype=np.int64)  # the rows of the distinct keys, in first-seen order
    count = 0
    for r in range(n):
        if _insert(tkeys, tfirst, keys[r], r) != r:
            continue
        if count == order.shape[0]:
            grown = np.empty(2 * count, dtype=np.int64)
            grown[:count] = order
            order = grown
        order[count] = r
        count += 1
        if 2 * count > cap:  # load above 1/2: double the set and reinsert
            cap *= 2
            tkeys = np.empty(cap, dtype=np.uint64)
            tfirst = np.full(cap, -1, dtype=np.int64)
            for i in range(count):
                _insert(tkeys, tfirst, keys[order[i]], order[i])
    first = order[:count].copy()
    dkeys = keys[first]
    sort_pairs(dkeys, first, 0, count)  # the keys are distinct: any sort gives the same order
    return dkeys, first
