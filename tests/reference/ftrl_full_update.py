"""``ftrl_pass`` as it was before the dead-zone update (commit ca5baaa): the slot prefetch of
the row ``PREFETCH_ROWS`` ahead, each key hashed once, ``sqrt(n)`` once per entry, and the full
update ``z += g_i - sigma * w`` (two square roots and a division) for every entry, also where
``|z| <= l1``.  Kept verbatim (Numba, no cache) so that the tests can check that ``ftrl_pass``
gives the same bits, including the signs of zeros and NaNs of degenerate states, where the older
``ftrl_plain`` reference already differs (NaN signs) from both."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sparsecross._kernels.admit import admit_key
from sparsecross._kernels.ftrl import NOT_ADMITTED, _home_ring, _logloss, _sigmoid, weight, weight_sqrt
from sparsecross._kernels.table import prefetch_homes, slot_from

#: The prefetch distance of ``_home_ring`` (whatever ``ftrl.PREFETCH_ROWS`` is now: the ring
#: only needs to hold the rows in flight, so any distance up to it gives the same results).
PREFETCH_ROWS = 4


@njit
def full_update_ftrl_pass(indptr, indices, data, y, sw, row_mask, start, table, vals, count, max_count,
              bias, params, acc, admit_filter, admit_cfg, admit_counts):
    """``ftrl_pass`` at commit ca5baaa, verbatim (the full update for every entry)."""
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    has_admit = admit_cfg.shape[0] > 0
    max_len = 0
    for r in range(start, n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    slots = np.empty(max_len, dtype=np.uint64)
    ws = np.empty(max_len, dtype=np.float64)
    sqs = np.empty(max_len, dtype=np.float64)
    homes, ring_mask = _home_ring(max_len)
    empty = table[0, 0] | ~table[0, 0]
    for r in range(start, min(n_rows, start + PREFETCH_ROWS)):
        if not (has_mask and row_mask[r] != 0):
            prefetch_homes(table, indices, indptr[r], indptr[r + 1], homes, ring_mask)
    for r in range(start, n_rows):
        rp = r + PREFETCH_ROWS
        if rp < n_rows and not (has_mask and row_mask[rp] != 0):
            prefetch_homes(table, indices, indptr[rp], indptr[rp + 1], homes, ring_mask)
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
        ua = np.uint64(a)  # unsigned entry and slot indices: no negative-index wraparound code
        for k in range(ua, np.uint64(b)):
            key = table.dtype.type(indices[k])
            s = slot_from(table, key, homes[k & ring_mask])
            if table[s, 0] == empty:
                if has_admit and not admit_key(key, r, admit_filter, admit_cfg, admit_counts):
                    slots[k - ua] = NOT_ADMITTED  # no slot: the update loop skips it
                    ws[k - ua] = 0.0
                    continue
                table[s, 0] = key
                vals[s, 1] = 0.0
                vals[s, 2] = 0.0
                count[0] += 1
            j = k - ua
            slots[j] = s
            sq = math.sqrt(np.float64(vals[s, 2]))
            sqs[j] = sq
            w = weight_sqrt(np.float64(vals[s, 1]), sq, alpha, beta, l1, l2)
            ws[j] = w
            margin += w * np.float64(data[k])
        p = _sigmoid(margin)
        yr = y[r]
        swr = sw[r] if has_sw else 1.0
        acc[0] += _logloss(p, yr) * swr
        acc[1] += swr
        acc[2] += 1.0
        target = yr * (1.0 - eps) + 0.5 * eps
        g = (p - target) * swr
        for k in range(ua, np.uint64(b)):
            j = k - ua
            s = slots[j]
            if s == NOT_ADMITTED:
                continue
            gi = g * np.float64(data[k])
            ni = np.float64(vals[s, 2])
            sigma = (math.sqrt(ni + gi * gi) - sqs[j]) / alpha
            vals[s, 1] = np.float64(vals[s, 1]) + gi - sigma * ws[j]
            vals[s, 2] = ni + gi * gi
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return n_rows
