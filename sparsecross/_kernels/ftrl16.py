"""FTRL-Proximal over the 16-bit training state (``state_bits=16``, ``docs/STATE16.md``).

The algorithm is ``ftrl.ftrl_pass``'s (lazy weights, float64 arithmetic, unregularized float64
bias, progressive logloss, admission), with every stored value passed through the codecs of
``half.py``: a slot is ``uint32[2]`` (key, packed word), i.e. 8 bytes instead of 12.

Per entry of a row, with ``s`` the stored ``sqrt(n)`` and ``D(s) = (beta + s) / alpha + l2``:

* decode: ``z = v D(s)`` (``v`` the q2.13 code times 2**-13) or ``zbig[idx]`` when promoted;
  ``w = 0`` if ``|z| <= l1`` else ``-(z - sign(z) l1) / D(s)``;
* update: ``s' = rr_half(sqrt(s**2 + g_i**2))``, ``sigma = (s' - s) / alpha`` (from the stored
  values, so the sum of the sigmas is ``s' / alpha`` and the weight stays consistent with the
  state), ``z' = z + g_i - sigma w``; then, if the key is promoted, or ``s' > PROMOTE_SQRT_N``
  and ``zbig`` has room, ``zbig[idx] = float32(z')``; else ``v' = rr_q213(z' / D(s'))``.

The rounding's uniforms are a hash of (key, update number, salt) (``half.rr_uniforms``): the
update number is the row's position in the epoch's order (``rr_cfg[1]`` + row in chunk), the
salt is derived from the seed and the epoch, so results do not depend on the chunking and a
resumed run continues exactly.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .admit import admit_key
from .ftrl import NOT_ADMITTED, PREFETCH_ROWS, _home_ring, _logloss, _sigmoid, weight, weight_sqrt
from .half import (PROMOTE_SQRT_N, PROMOTED, ZBIG_MAX, decode_word, denominator, half_decode, half_encode_rr,
                   pack_word, q213_encode_rr, row_hash, rr_uniforms)
from .table import prefetch_homes, slot_from

_LOW16 = np.uint32(0xFFFF)


@kernel
def ftrl16_pass(indptr, indices, data, y, sw, row_mask, start, table, count, max_count,
                bias, params, acc, admit_filter, admit_cfg, admit_counts, zbig, zstats, rr_cfg):
    """Train on rows ``start..n-1`` of one CSR chunk, in order: ``ftrl.ftrl_pass`` over the
    16-bit state.

    Parameters as ``ftrl_pass``'s, except: ``table`` uint32[cap, 2] (key, packed word; mutated),
    no float view; ``zbig`` float32[m] (m <= ``ZBIG_MAX``; mutated), ``zstats`` int64[4]:
    (zbig entries used, keys that crossed the threshold with zbig full, q2.13 clips, sqrt(n)
    saturations) (mutated); ``rr_cfg`` uint64[2]: (rounding salt, update number of row 0 of
    the chunk).

    Returns
    -------
    int64: ``n`` when every row was processed, else the first row NOT processed because its
    keys could push the table past ``max_count``, or ``zbig`` past its length while it is
    shorter than ``ZBIG_MAX`` (the caller grows what is needed and calls again from there).
    """
    alpha, beta, l1, l2, eps = params
    n_rows = indptr.shape[0] - 1
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    has_admit = admit_cfg.shape[0] > 0
    zroom = zbig.shape[0] < ZBIG_MAX
    max_len = 0
    for r in range(start, n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    slots = np.empty(max_len, dtype=np.uint64)
    ws = np.empty(max_len, dtype=np.float64)
    zs = np.empty(max_len, dtype=np.float64)
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
        if count[0] + (b - a) > max_count or (zroom and zstats[0] + (b - a) > zbig.shape[0]):
            return r
        zb = bias[0]
        nb = bias[1]
        wb = weight(zb, nb, alpha, beta, 0.0, 0.0)
        margin = wb
        ua = np.uint64(a)
        for k in range(ua, np.uint64(b)):
            key = table.dtype.type(indices[k])
            s = slot_from(table, key, homes[k & ring_mask])
            if table[s, 0] == empty:
                if has_admit and not admit_key(key, r, admit_filter, admit_cfg, admit_counts):
                    slots[k - ua] = NOT_ADMITTED
                    ws[k - ua] = 0.0
                    continue
                table[s, 0] = key
                table[s, 1] = 0
                count[0] += 1
            j = k - ua
            slots[j] = s
            z, sq = decode_word(table[s, 1], zbig, alpha, beta, l2)
            zs[j] = z
            sqs[j] = sq
            w = weight_sqrt(z, sq, alpha, beta, l1, l2)
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
        hrow = row_hash(rr_cfg[0], rr_cfg[1] + np.uint64(r))
        # the store is written out here, not in a helper: a call per entry (its array arguments
        # passed field by field) cost as much as the rest of the update
        for k in range(ua, np.uint64(b)):
            j = k - ua
            s = slots[j]
            if s == NOT_ADMITTED:
                continue
            u_n, u_z = rr_uniforms(hrow, table[s, 0])
            gi = g * np.float64(data[k])
            sq = sqs[j]
            root = math.sqrt(sq * sq + gi * gi)
            if root >= 65504.0:
                zstats[3] += 1
            s_bits = half_encode_rr(root, u_n)
            s_new = half_decode(s_bits)
            sigma = (s_new - sq) / alpha
            z_new = zs[j] + gi - sigma * ws[j]
            word = table[s, 1]
            if word & PROMOTED:
                idx = np.int64(word & _LOW16)
                zbig[idx] = z_new
                table[s, 1] = pack_word(idx, s_bits, True)
                continue
            if s_new > PROMOTE_SQRT_N:
                if zstats[0] < zbig.shape[0]:
                    idx = zstats[0]
                    zstats[0] += 1
                    zbig[idx] = z_new
                    table[s, 1] = pack_word(idx, s_bits, True)
                    continue
                if sq <= PROMOTE_SQRT_N:
                    zstats[1] += 1
            code, clipped = q213_encode_rr(z_new / denominator(s_new, alpha, beta, l2), u_z)
            if clipped:
                zstats[2] += 1
            table[s, 1] = pack_word(code, s_bits, False)
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return n_rows


@kernel
def decode_state(table, zbig, params):
    """(keys uint64[m], z float64[m], n float64[m]) of the occupied slots, in slot order."""
    alpha, beta, l1, l2, eps = params
    empty = table[0, 0] | ~table[0, 0]
    m = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty:
            m += 1
    ok = np.empty(m, dtype=np.uint64)
    oz = np.empty(m, dtype=np.float64)
    on = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty:
            z, sq = decode_word(table[s, 1], zbig, alpha, beta, l2)
            ok[j] = np.uint64(table[s, 0])
            oz[j] = z
            on[j] = sq * sq
            j += 1
    return ok, oz, on


@kernel
def compact_zbig(table, zbig, zstats):
    """Renumber the promoted slots' ``zbig`` entries 0, 1, ... in slot order (after an
    eviction deleted some), moving their z along.  Mutates ``table``, ``zbig`` and
    ``zstats[0]`` (the entries used).  Returns the entries freed."""
    empty = table[0, 0] | ~table[0, 0]
    old = zbig[:zstats[0]].copy()
    j = 0
    for s in range(table.shape[0]):
        w = table[s, 1]
        if table[s, 0] != empty and w & PROMOTED:
            zbig[j] = old[np.int64(w & _LOW16)]
            table[s, 1] = (w & ~_LOW16) | np.uint32(j)
            j += 1
    freed = zstats[0] - j
    zbig[j:zstats[0]] = 0.0
    zstats[0] = j
    return freed


@kernel
def count_nonzero16(table, zbig, params):
    """Number of occupied slots with |z| > l1 (the live nonzero weights)."""
    alpha, beta, l1, l2, eps = params
    empty = table[0, 0] | ~table[0, 0]
    m = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty:
            z, sq = decode_word(table[s, 1], zbig, alpha, beta, l2)
            if abs(z) > l1:
                m += 1
    return m


@kernel
def export_weights16(table, zbig, params):
    """Nonzero weights of a 16-bit state table: (keys uint64[m], weights float64[m]) in slot
    order (unsorted), as ``ftrl.export_weights``.  Returns new arrays."""
    alpha, beta, l1, l2, eps = params
    empty = table[0, 0] | ~table[0, 0]
    m = count_nonzero16(table, zbig, params)
    ok = np.empty(m, dtype=np.uint64)
    ow = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(table.shape[0]):
        if table[s, 0] != empty:
            z, sq = decode_word(table[s, 1], zbig, alpha, beta, l2)
            if abs(z) > l1:
                ok[j] = np.uint64(table[s, 0])
                ow[j] = weight_sqrt(z, sq, alpha, beta, l1, l2)
                j += 1
    return ok, ow
