"""Numba kernels used only by the benchmarks.

* ``dense_ftrl_pass``: the speed yardstick.  The same FTRL-Proximal update as
  ``sparsecross._kernels.ftrl.ftrl_pass`` (float64 arithmetic, float32 storage, lazy weights,
  unregularized float64 bias, identical operation order), but with ``z`` and ``n`` as dense
  float32 arrays of ``n_columns`` entries indexed by the column id: no hashing, no probing,
  no growth.  Given the same rows it must produce the same state bit for bit.
* ``format_vw_chunk``: CSR rows -> Vowpal Wabbit text bytes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EPS = 1e-15


@njit(cache=True, nogil=True)
def _weight(z, n, alpha, beta, l1, l2):
    if abs(z) <= l1:
        return 0.0
    sgn = 1.0 if z > 0 else -1.0
    return -(z - sgn * l1) / ((beta + math.sqrt(n)) / alpha + l2)


@njit(cache=True, nogil=True)
def dense_ftrl_pass(indptr, indices, data, y, z, n, bias, alpha, beta, l1, l2, acc, bias_l1=0.0, bias_l2=0.0):
    """Train on every row of one CSR chunk.  ``z``/``n``: float32[n_columns] (mutated);
    ``bias`` float64[2] (mutated); ``acc`` float64[3]: (progressive logloss sum, weight sum, rows).

    ``bias_l1``/``bias_l2`` regularize the bias like any coordinate: 0 (default) is
    sparsecross's unregularized bias; ``bias_l1=l1, bias_l2=l2`` is Vowpal Wabbit's constant
    feature (used to explain VW's bias)."""
    n_rows = indptr.shape[0] - 1
    max_len = 0
    for r in range(n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    ws = np.empty(max_len, dtype=np.float64)
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        zb = bias[0]
        nb = bias[1]
        wb = _weight(zb, nb, alpha, beta, bias_l1, bias_l2)
        margin = wb
        for k in range(a, b):
            i = indices[k]
            w = _weight(np.float64(z[i]), np.float64(n[i]), alpha, beta, l1, l2)
            ws[k - a] = w
            margin += w * np.float64(data[k])
        if margin >= 0:
            p = 1.0 / (1.0 + math.exp(-margin))
        else:
            e = math.exp(margin)
            p = e / (1.0 + e)
        yr = y[r]
        q = min(max(p, EPS), 1.0 - EPS)
        acc[0] += -(yr * math.log(q) + (1.0 - yr) * math.log(1.0 - q))
        acc[1] += 1.0
        acc[2] += 1.0
        g = p - yr
        for k in range(a, b):
            i = indices[k]
            gi = g * np.float64(data[k])
            ni = np.float64(n[i])
            sigma = (math.sqrt(ni + gi * gi) - math.sqrt(ni)) / alpha
            z[i] = np.float64(z[i]) + gi - sigma * ws[k - a]
            n[i] = ni + gi * gi
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return n_rows


#: Odd multiplier of the id scramble ``(id * SCRAMBLE) mod 2**28`` (a bijection on [0, 2**28)).
SCRAMBLE = 0x9E3779B1
SCRAMBLE_BITS = 28


def scramble_ids(indices: np.ndarray) -> np.ndarray:
    """Column ids -> a pseudo-random bijective image in [0, 2**28): same rows, same model up to
    relabelling, but no memory locality between nearby geo cells."""
    return (indices.astype(np.int64) * SCRAMBLE) & ((1 << SCRAMBLE_BITS) - 1)


@njit(cache=True, nogil=True)
def dense_export(z, n, alpha, beta, l1, l2):
    """(keys int64, weights float64) of every column with |z| > l1, in column order."""
    m = 0
    for i in range(z.shape[0]):
        if abs(np.float64(z[i])) > l1:
            m += 1
    keys = np.empty(m, dtype=np.int64)
    w = np.empty(m, dtype=np.float64)
    j = 0
    for i in range(z.shape[0]):
        if abs(np.float64(z[i])) > l1:
            keys[j] = i
            w[j] = _weight(np.float64(z[i]), np.float64(n[i]), alpha, beta, l1, l2)
            j += 1
    return keys, w


@njit(cache=True, nogil=True)
def dense_touched(n):
    """Columns whose n is nonzero (an update with a nonzero gradient reached them)."""
    c = 0
    for i in range(n.shape[0]):
        if n[i] != 0:
            c += 1
    return c


@njit(cache=True)
def _put_uint(buf, p, v):
    if v == 0:
        buf[p] = 48
        return p + 1
    q = p
    while v > 0:
        buf[q] = 48 + v % 10
        v //= 10
        q += 1
    # reverse digits
    lo = p
    hi = q - 1
    while lo < hi:
        t = buf[lo]
        buf[lo] = buf[hi]
        buf[hi] = t
        lo += 1
        hi -= 1
    return q


@njit(cache=True)
def format_vw_chunk(indptr, indices, data, y):
    """VW text lines ``"1 |f 12 345:2\\n"`` (label -1 for y == 0) for CSR rows; returns uint8."""
    n = indptr.shape[0] - 1
    nnz = indptr[n] - indptr[0]
    buf = np.empty(n * 8 + nnz * 32, dtype=np.uint8)
    p = 0
    for r in range(n):
        if y[r] > 0.5:
            buf[p] = 49
            p += 1
        else:
            buf[p] = 45
            buf[p + 1] = 49
            p += 2
        buf[p] = 32
        buf[p + 1] = 124
        buf[p + 2] = 102
        p += 3
        for k in range(indptr[r], indptr[r + 1]):
            buf[p] = 32
            p += 1
            p = _put_uint(buf, p, np.int64(indices[k]))
            v = np.int64(data[k])
            if v != 1:
                buf[p] = 58
                p += 1
                p = _put_uint(buf, p, v)
        buf[p] = 10
        p += 1
    return buf[:p]


def sparse_margins(keys: np.ndarray, weights: np.ndarray, bias: float, indptr: np.ndarray,
                   indices: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Margins of CSR rows under a sparse weight vector (any learner's weights), float64."""
    order = np.argsort(keys, kind="stable")
    k = np.asarray(keys, dtype=np.int64)[order]
    w = np.asarray(weights, dtype=np.float64)[order]
    pos = np.searchsorted(k, indices)
    pos_c = np.minimum(pos, max(len(k) - 1, 0))
    hit = (len(k) > 0) & (k[pos_c] == indices) if len(k) else np.zeros(len(indices), bool)
    contrib = np.where(hit, w[pos_c] if len(k) else 0.0, 0.0) * data
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return bias + np.bincount(rows, weights=contrib, minlength=len(indptr) - 1)


# ---------------------------------------------------------------------------------------
# Prototype (benchmark-side only): the same FTRL update on an open-addressing table whose
# slot is one 16-byte record (uint32 key, float32 z, float32 n, unused), so a lookup touches
# one cache line instead of two (sparsecross keeps ``keys`` and ``zn`` in separate arrays).
# ``block_bits`` > 0 hashes ``key >> block_bits`` and keeps the low bits, so 2**block_bits
# neighbouring column ids (nearby geo cells) land in neighbouring slots.  Presized: no growth.
@njit(cache=True, nogil=True)
def _fmix64(k):
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@njit(cache=True, nogil=True)
def _rec_slot(tab, key, block_bits):
    mask = np.int64(tab.shape[0] - 1)
    kk = np.uint64(key)
    if block_bits > 0:
        h = (_fmix64(kk >> np.uint64(block_bits)) << np.uint64(block_bits)) | (kk & np.uint64((1 << block_bits) - 1))
    else:
        h = _fmix64(kk)
    s = np.int64(h & np.uint64(mask))
    empty = np.uint32(0xFFFFFFFF)
    while True:
        k = tab[s, 0]
        if k == np.uint32(key) or k == empty:
            return s
        s = (s + 1) & mask


@njit(cache=True, nogil=True)
def record_ftrl_pass(indptr, indices, data, y, tab, tabf, count, bias, alpha, beta, l1, l2, acc, block_bits):
    """``tab`` uint32[cap, 4] (column 0 = key, 0xFFFFFFFF empty) and ``tabf`` = the same memory
    as float32 (column 1 = z, column 2 = n).  Same arithmetic as ``dense_ftrl_pass``."""
    n_rows = indptr.shape[0] - 1
    ws = np.empty(256, dtype=np.float64)
    sl = np.empty(256, dtype=np.int64)
    empty = np.uint32(0xFFFFFFFF)
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        zb = bias[0]
        nb = bias[1]
        wb = -zb / ((beta + math.sqrt(nb)) / alpha)
        margin = wb
        for k in range(a, b):
            s = _rec_slot(tab, indices[k], block_bits)
            if tab[s, 0] == empty:
                tab[s, 0] = np.uint32(indices[k])
                tabf[s, 1] = 0.0
                tabf[s, 2] = 0.0
                count[0] += 1
            sl[k - a] = s
            w = _weight(np.float64(tabf[s, 1]), np.float64(tabf[s, 2]), alpha, beta, l1, l2)
            ws[k - a] = w
            margin += w * np.float64(data[k])
        if margin >= 0:
            p = 1.0 / (1.0 + math.exp(-margin))
        else:
            e = math.exp(margin)
            p = e / (1.0 + e)
        yr = y[r]
        q = min(max(p, EPS), 1.0 - EPS)
        acc[0] += -(yr * math.log(q) + (1.0 - yr) * math.log(1.0 - q))
        acc[1] += 1.0
        acc[2] += 1.0
        g = p - yr
        for k in range(a, b):
            s = sl[k - a]
            gi = g * np.float64(data[k])
            ni = np.float64(tabf[s, 2])
            sigma = (math.sqrt(ni + gi * gi) - math.sqrt(ni)) / alpha
            tabf[s, 1] = np.float64(tabf[s, 1]) + gi - sigma * ws[k - a]
            tabf[s, 2] = ni + gi * gi
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return n_rows


@njit(cache=True, nogil=True)
def record_export(tab, tabf, alpha, beta, l1, l2):
    """(keys int64 sorted later, weights float64) of records with |z| > l1."""
    empty = np.uint32(0xFFFFFFFF)
    m = 0
    for s in range(tab.shape[0]):
        if tab[s, 0] != empty and abs(np.float64(tabf[s, 1])) > l1:
            m += 1
    keys = np.empty(m, dtype=np.int64)
    w = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(tab.shape[0]):
        if tab[s, 0] != empty and abs(np.float64(tabf[s, 1])) > l1:
            keys[j] = np.int64(tab[s, 0])
            w[j] = _weight(np.float64(tabf[s, 1]), np.float64(tabf[s, 2]), alpha, beta, l1, l2)
            j += 1
    return keys, w


# ---------------------------------------------------------------- machine yardstick
@njit(cache=True, nogil=True)
def rmw_pass(table, values, slots, g):
    """The memory system's random read-modify-write rate, in the shape of the FTRL state table.

    ``table``: uint32[capacity, 3] (key, z, n) with ``values`` its float32 view.  For every
    precomputed slot ``i`` (independent uniform random indices: the loop measures the memory
    system, not an RNG nor a dependency chain): read the key ``table[i, 0]``, read the two
    adjacent float32 ``z``, ``n``, write them back updated (the update depends on the key, so the
    key read cannot be dropped).  Returns a checksum of the keys read."""
    s = np.uint64(0)
    for j in range(slots.shape[0]):
        i = slots[j]
        k = table[i, 0]
        gi = g if (k & 1) == 0 else -g
        values[i, 1] = values[i, 1] + gi
        values[i, 2] = values[i, 2] + gi * gi
        s += np.uint64(k)
    return s
