"""FTRL-Proximal (McMahan et al. 2013, Algorithm 1) for logistic loss over CSR rows.

State lives in an open-addressing table (see ``table.py``): only touched coordinates have a
slot.  Weights are never stored: ``w = 0`` if ``|z| <= l1`` else
``-(z - sign(z) l1) / ((beta + sqrt(n)) / alpha + l2)``.  The bias is a coordinate that is
always active and never regularized.  See ``../shared/ALGORITHM.md`` / the README.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from numba import types
from numba.extending import overload

from ._jit import kernel
from .admit import admit_key
from .half import decode_word
from .table import prefetch_homes, slot_from

EPS = 1e-15

#: Slot marker (no table has 2**64 slots) of a row's entry whose key was not admitted.
NOT_ADMITTED = np.uint64(0xFFFFFFFFFFFFFFFF)

#: Rows ahead whose slots ``ftrl_pass`` / ``state_margins`` prefetch: a row's lookups are
#: cache misses in a table larger than the caches, and the CPU can have about ten misses in
#: flight; fetching the slots of row ``r + PREFETCH_ROWS`` while row ``r`` is updated overlaps
#: them (the update order and every value stay exactly as without the prefetch).  Each key is
#: hashed once: ``prefetch_homes`` keeps the home slots of the rows in flight in a small ring
#: that the lookups (``slot_from``) read.  8 and 12 rows ahead measured no faster on 10M rows.
PREFETCH_ROWS = 4

#: Bounds of ``ftrl_pass``'s dead-zone update (``z += g_i`` without square roots): taken only
#: when ``0 <= n + g_i^2 <= DEAD_N_MAX`` and ``alpha >= DEAD_ALPHA_MIN``, where the full
#: update's ``sigma`` is finite and >= 0, so that ``sigma * +0.0`` is exactly +0.0.
DEAD_N_MAX = 1e300
DEAD_ALPHA_MIN = 1e-100


class FTRLParams(NamedTuple):
    """Hyperparameters passed to kernels (floats only)."""

    alpha: float
    beta: float
    l1: float
    l2: float
    label_smoothing: float


@kernel
def weight(z, n, alpha, beta, l1, l2):
    """Lazy FTRL-Proximal weight from (z, n); exactly 0 when |z| <= l1."""
    if abs(z) <= l1:
        return 0.0
    return weight_sqrt(z, math.sqrt(n), alpha, beta, l1, l2)


@kernel
def weight_sqrt(z, sqrt_n, alpha, beta, l1, l2):
    """``weight(z, n, ...)`` given ``sqrt_n = math.sqrt(n)``: the same operations, for a caller
    that needs ``sqrt(n)`` again (``ftrl_pass`` computes it once per entry, not twice)."""
    if abs(z) <= l1:
        return 0.0
    sgn = 1.0 if z > 0 else -1.0
    return -(z - sgn * l1) / ((beta + sqrt_n) / alpha + l2)


@kernel
def _logloss(p, y):
    q = min(max(p, EPS), 1.0 - EPS)
    # A label of exactly 1 or 0 needs one log: the other term is a zero (+-0.0) added to a
    # nonzero finite log (eps <= q <= 1 - eps), which leaves it unchanged bit for bit.
    if y == 1.0:
        return -math.log(q)
    if y == 0.0:
        return -math.log(1.0 - q)
    return -(y * math.log(q) + (1.0 - y) * math.log(1.0 - q))


@kernel
def _sigmoid(m):
    if m >= 0:
        return 1.0 / (1.0 + math.exp(-m))
    e = math.exp(m)
    return e / (1.0 + e)


@kernel
def _home_ring(max_len):
    """(homes uint64[ring], ring_mask uint64) for ``prefetch_homes``: a power-of-two ring that
    holds the entries of ``PREFETCH_ROWS + 1`` rows of at most ``max_len`` entries (the rows
    in flight: an entry's home is read before any entry a ring's length later is written)."""
    ring = 1
    while ring < (PREFETCH_ROWS + 1) * max_len:
        ring *= 2
    return np.empty(ring, dtype=np.uint64), np.uint64(ring - 1)


@kernel
def ftrl_pass(indptr, indices, data, y, sw, row_mask, start, table, vals, count, max_count,
              bias, params, acc, admit_filter, admit_cfg, admit_counts):
    """Train on rows ``start..n-1`` of one CSR chunk, in order, one row at a time.

    Parameters (dtypes/shapes)
    --------------------------
    indptr int64[n+1], indices int64[nnz], data float32[nnz]: canonical CSR (read only).
    y float64[n] in {0,1}; sw float64[n] sample weights or length 0 (all 1).
    row_mask uint8[n] or length 0: rows with mask != 0 are skipped (holdout rows).
    table uint32/uint64[cap, 3] (key, z, n) and vals, its float32/float64 view: the state
    table (mutated; z and n are read and written through ``vals``).
    count int64[1]: occupied slots (mutated).  max_count: grow threshold (load factor).
    bias float64[2]: (z, n) of the bias (mutated).  params: FTRLParams.
    acc float64[3]: running (sum of weighted progressive logloss, sum of weights, rows)
    (mutated, row by row, so sums do not depend on the chunking).
    admit_filter uint8[m], admit_cfg uint64[5] or length 0 (admission off), admit_counts
    int64[2]: see ``admit.py``.  A key without state that is not admitted contributes nothing
    to its row (weight 0, no update, no slot); the filter and counts are mutated.

    Returns
    -------
    int64: ``n`` when every row was processed, else the first row NOT processed because
    inserting its coordinates could push the table past ``max_count`` (grow, then call again
    with ``start`` = that row).  Progressive validation: each row is scored before its update.

    A row's keys are distinct (canonical CSR), so its slots are distinct and ``sqrt(n)`` read
    in the scoring loop is still ``sqrt(n)`` in the update loop (kept in ``sqs``).
    """
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    has_admit = admit_cfg.shape[0] > 0
    # An entry whose |z| <= l1 has w = +0.0 and its update is z + g_i - sigma * (+0.0): with
    # 0 <= sigma < inf that is exactly z + g_i (sigma * +0.0 = +0.0, x - +0.0 = x, even for
    # x = -0.0), so the update needs neither sqrt(n + g_i^2) nor the division.  (The scoring
    # loop still takes sqrt(n) of every entry: a branch there on |z| <= l1 measured slower.  On
    # 10M rows, where the kernel waits on memory, the saving is within the timing noise.)
    # sigma is finite and >= 0 when n >= 0, n + g_i^2 <= DEAD_N_MAX and alpha >= DEAD_ALPHA_MIN
    # (sqrt(n + g_i^2) <= 1e150, over alpha: <= 1e250); otherwise (inf, NaN, a tiny alpha) the
    # full update runs.
    dead_n_max = DEAD_N_MAX if alpha >= DEAD_ALPHA_MIN else -1.0
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
    # running sums and the bias in locals (registers), stored back before returning
    used = count[0]
    zb = bias[0]
    nb = bias[1]
    sqb = math.sqrt(nb)  # sqrt(nb), carried from row to row: the update computes the next one
    loss_sum = acc[0]
    weight_sum = acc[1]
    row_sum = acc[2]
    stop = n_rows
    for r in range(start, n_rows):
        rp = r + PREFETCH_ROWS
        if rp < n_rows and not (has_mask and row_mask[rp] != 0):
            prefetch_homes(table, indices, indptr[rp], indptr[rp + 1], homes, ring_mask)
        if has_mask and row_mask[r] != 0:
            continue
        a = indptr[r]
        b = indptr[r + 1]
        if used + (b - a) > max_count:
            stop = r
            break
        wb = weight_sqrt(zb, sqb, alpha, beta, 0.0, 0.0)  # = weight(zb, nb, ...), bit for bit
        margin = wb
        ua = np.uint64(a)  # unsigned entry and slot indices: no negative-index wraparound code
        for k in range(ua, np.uint64(b)):
            key = table.dtype.type(indices[k])
            s = slot_from(table, key, homes[k & ring_mask])
            j = k - ua
            if table[s, 0] == empty:
                if has_admit and not admit_key(key, r, admit_filter, admit_cfg, admit_counts):
                    slots[j] = NOT_ADMITTED  # no slot: the update loop skips it
                    ws[j] = 0.0
                    continue
                table[s, 0] = key
                vals[s, 1] = 0.0
                vals[s, 2] = 0.0
                used += 1
            slots[j] = s
            sq = math.sqrt(np.float64(vals[s, 2]))
            sqs[j] = sq
            w = weight_sqrt(np.float64(vals[s, 1]), sq, alpha, beta, l1, l2)
            ws[j] = w
            margin += w * np.float64(data[k])
        p = _sigmoid(margin)
        yr = y[r]
        swr = sw[r] if has_sw else 1.0
        loss_sum += _logloss(p, yr) * swr
        weight_sum += swr
        row_sum += 1.0
        target = yr * (1.0 - eps) + 0.5 * eps
        g = (p - target) * swr
        for k in range(ua, np.uint64(b)):
            j = k - ua
            s = slots[j]
            if s == NOT_ADMITTED:
                continue
            gi = g * np.float64(data[k])
            ni = np.float64(vals[s, 2])
            zi = np.float64(vals[s, 1])
            nn = ni + gi * gi
            dead = abs(zi) <= l1  # as in the scoring loop (a row's slots are distinct)
            if dead and ni >= 0.0 and nn <= dead_n_max:
                vals[s, 1] = zi + gi  # = zi + gi - sigma * (+0.0), bit for bit (see above)
            else:
                sigma = (math.sqrt(nn) - sqs[j]) / alpha
                vals[s, 1] = zi + gi - sigma * ws[j]
            vals[s, 2] = nn
        nb_next = nb + g * g
        sqb_next = math.sqrt(nb_next)
        sigma = (sqb_next - sqb) / alpha
        zb = zb + g - sigma * wb
        nb = nb_next
        sqb = sqb_next
    count[0] = used
    bias[0] = zb
    bias[1] = nb
    acc[0] = loss_sum
    acc[1] = weight_sum
    acc[2] = row_sum
    return stop


def slot_weight(vals, s, alpha, beta, l1, l2):
    """Weight of occupied slot ``s``.  ``vals``: the float view of a (key, z, n) table, or
    ``(table, zbig)`` of a 16-bit state (``half.py``), whose (z, sqrt(n)) are decoded."""
    raise NotImplementedError("compiled only (numba overload)")


@overload(slot_weight, jit_options={"nogil": True})
def _slot_weight_overload(vals, s, alpha, beta, l1, l2):
    if isinstance(vals, types.BaseTuple):  # 16-bit state
        def weight16(vals, s, alpha, beta, l1, l2):
            table, zbig = vals
            z, sq = decode_word(table[s, 1], zbig, alpha, beta, l2)
            return weight_sqrt(z, sq, alpha, beta, l1, l2)
        return weight16

    def weight32(vals, s, alpha, beta, l1, l2):
        return weight(np.float64(vals[s, 1]), np.float64(vals[s, 2]), alpha, beta, l1, l2)
    return weight32


@kernel
def state_margins(indptr, indices, data, table, vals, bias, params):
    """Margins of every row under the current state (no update).  Returns float64[n].
    ``vals``: as for :func:`slot_weight` (a 32-bit table's float view, or ``(table, zbig)``)."""
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    out = np.empty(n_rows, dtype=np.float64)
    max_len = 0
    for r in range(n_rows):
        max_len = max(max_len, indptr[r + 1] - indptr[r])
    homes, ring_mask = _home_ring(max_len)
    empty = table[0, 0] | ~table[0, 0]
    wb = weight(bias[0], bias[1], alpha, beta, 0.0, 0.0)
    for r in range(min(n_rows, PREFETCH_ROWS)):
        prefetch_homes(table, indices, indptr[r], indptr[r + 1], homes, ring_mask)
    for r in range(n_rows):
        rp = r + PREFETCH_ROWS
        if rp < n_rows:
            prefetch_homes(table, indices, indptr[rp], indptr[rp + 1], homes, ring_mask)
        m = wb
        for k in range(np.uint64(indptr[r]), np.uint64(indptr[r + 1])):
            key = table.dtype.type(indices[k])
            s = slot_from(table, key, homes[k & ring_mask])
            if table[s, 0] != empty:
                m += slot_weight(vals, s, alpha, beta, l1, l2) * np.float64(data[k])
        out[r] = m
    return out


@kernel
def count_nonzero(table, vals, l1):
    """Number of occupied slots with |z| > l1 (the live nonzero weights)."""
    empty = table[0, 0] | ~table[0, 0]
    m = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty and abs(np.float64(vals[s, 1])) > l1:
            m += 1
    return m


@kernel
def export_weights(table, vals, params):
    """Nonzero weights of a state table: (keys uint64[m], weights float64[m]) in slot order
    (unsorted).  Returns new arrays."""
    alpha, beta, l1, l2, eps = params
    empty = table[0, 0] | ~table[0, 0]
    m = count_nonzero(table, vals, l1)
    ok = np.empty(m, dtype=np.uint64)
    ow = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty and abs(np.float64(vals[s, 1])) > l1:
            ok[j] = np.uint64(table[s, 0])
            ow[j] = weight(np.float64(vals[s, 1]), np.float64(vals[s, 2]), alpha, beta, l1, l2)
            j += 1
    return ok, ow
