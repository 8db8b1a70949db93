"""``ftrl_pass`` and ``state_margins`` as they were before the slot prefetch (commit b6e74d6):
one lookup at a time, no prefetch, each key hashed once, two square roots of ``n`` per entry,
both logs of the loss for every row (``weight`` and ``_logloss`` copied here as they were).
Kept verbatim (Numba, no cache) so that the tests can check that the prefetching kernels give
the same state, table layout and progressive loss to the bit (the pure-Python oracle in
``ftrl_reference.py`` checks the arithmetic itself)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sparsecross._kernels.ftrl import EPS, _sigmoid
from sparsecross._kernels.table import slot_of


@njit
def weight(z, n, alpha, beta, l1, l2):
    """``ftrl.weight`` as it was (one function, sqrt inside), verbatim."""
    if abs(z) <= l1:
        return 0.0
    sgn = 1.0 if z > 0 else -1.0
    return -(z - sgn * l1) / ((beta + math.sqrt(n)) / alpha + l2)


@njit
def _logloss(p, y):
    """``ftrl._logloss`` as it was (both logs for every label), verbatim."""
    q = min(max(p, EPS), 1.0 - EPS)
    return -(y * math.log(q) + (1.0 - y) * math.log(1.0 - q))


@njit
def plain_ftrl_pass(indptr, indices, data, y, sw, row_mask, start, table, vals, count, max_count,
                    bias, params, acc):
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    max_len = 0
    for r in range(start, n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    slots = np.empty(max_len, dtype=np.int64)
    ws = np.empty(max_len, dtype=np.float64)
    empty = table[0, 0] | ~table[0, 0]
    for r in range(start, n_rows):
        if has_mask and row_mask[r] != 0:
            continue
        a = indptr[r]
        b = indptr[r + 1]
        if count[0] + (b - a) > max_count:
            return r
        zb = bias[0]
        nb = bias[1]
        wb = weight(zb, nb, alpha, beta, 0.0, 0.0)
        margin = wb
        for k in range(a, b):
            key = table.dtype.type(indices[k])
            s = slot_of(table, key)
            if table[s, 0] == empty:
                table[s, 0] = key
                vals[s, 1] = 0.0
                vals[s, 2] = 0.0
                count[0] += 1
            slots[k - a] = s
            w = weight(np.float64(vals[s, 1]), np.float64(vals[s, 2]), alpha, beta, l1, l2)
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
            s = slots[k - a]
            gi = g * np.float64(data[k])
            ni = np.float64(vals[s, 2])
            sigma = (math.sqrt(ni + gi * gi) - math.sqrt(ni)) / alpha
            vals[s, 1] = np.float64(vals[s, 1]) + gi - sigma * ws[k - a]
            vals[s, 2] = ni + gi * gi
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return n_rows


@njit
def plain_state_margins(indptr, indices, data, table, vals, bias, params):
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    out = np.empty(n_rows, dtype=np.float64)
    empty = table[0, 0] | ~table[0, 0]
    wb = weight(bias[0], bias[1], alpha, beta, 0.0, 0.0)
    for r in range(n_rows):
        m = wb
        for k in range(indptr[r], indptr[r + 1]):
            key = table.dtype.type(indices[k])
            s = slot_of(table, key)
            if table[s, 0] != empty:
                m += weight(np.float64(vals[s, 1]), np.float64(vals[s, 2]), alpha, beta, l1, l2) * np.float64(data[k])
        out[r] = m
    return out


@njit
def plain_rehash(old, old_vals, new, new_vals):
    empty = old[0, 0] | ~old[0, 0]
    for s in range(old.shape[0]):
        k = old[s, 0]
        if k != empty:
            t = slot_of(new, k)
            new[t, 0] = k
            for c in range(1, old.shape[1]):
                new_vals[t, c] = old_vals[s, c]
