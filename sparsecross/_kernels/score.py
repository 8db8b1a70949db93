"""Scoring kernels: CSR rows x sparse model -> margins, and streaming metric accumulation."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel
from .crosses import SHORT_ROW
from .hash import fmix64
from .sorting import insertion_sort_pairs, sort_pairs
from .table import slot_of


@parallel_kernel
def score_csr(indptr, indices, data, table, vals, bias):
    """Margins ``X @ w + bias`` with w in an inference table (``table.build_lookup``).

    ``indptr`` int64[n+1], ``indices`` int64 (each < the model's width), ``data`` float32;
    ``table`` uint32/uint64[cap, 2] and ``vals`` its float view (weight in column 1).  Rows are independent (``prange``); each row sums in index order, so the result does
    not depend on the thread count.  Returns float64[n]."""
    n = indptr.shape[0] - 1
    out = np.empty(n, dtype=np.float64)
    for r in prange(n):
        m = bias
        for k in range(indptr[r], indptr[r + 1]):
            key = table.dtype.type(indices[k])
            s = slot_of(table, key)
            if table[s, 0] == key:
                m += np.float64(vals[s, 1]) * np.float64(data[k])
        out[r] = m
    return out


@kernel
def accumulate_metrics(margins, y, sw, row_mask, pos, neg, acc, limit):
    """Add rows to running metrics (mutates ``pos``, ``neg``, ``acc``).

    ``margins``/``y`` float64[n]; ``sw`` float64[n] or length 0; ``row_mask`` uint8[n] or
    length 0 (use only the rows where it is nonzero).  ``pos``/``neg``: weighted margin
    histograms over [-limit, limit]; ``acc``: (weighted logloss sum, weight sum, rows)."""
    nb = pos.shape[0]
    scale = nb / (2.0 * limit)
    has_sw = sw.shape[0] > 0
    has_mask = row_mask.shape[0] > 0
    for r in range(margins.shape[0]):
        if has_mask and row_mask[r] == 0:
            continue
        m = margins[r]
        w = sw[r] if has_sw else 1.0
        if m >= 0:
            p = 1.0 / (1.0 + math.exp(-m))
        else:
            e = math.exp(m)
            p = e / (1.0 + e)
        q = min(max(p, 1e-15), 1.0 - 1e-15)
        yr = y[r]
        # For a label of exactly 1 or 0 one log is enough: the other term is a zero (+-0.0)
        # added to a nonzero finite log, which leaves it unchanged bit for bit.
        if yr == 1.0:
            ll = math.log(q)
        elif yr == 0.0:
            ll = math.log(1.0 - q)
        else:
            ll = yr * math.log(q) + (1.0 - yr) * math.log(1.0 - q)
        acc[0] += -ll * w
        acc[1] += w
        acc[2] += 1.0
        b = np.int64(math.floor((m + limit) * scale))
        if b < 0:
            b = 0
        if b > nb - 1:
            b = nb - 1
        if yr > 0.5:
            pos[b] += w
        else:
            neg[b] += w


@kernel
def _score_block(r0, r1, ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat,
                 comp_stride, mask, hashed_offset, dense_base, dense_w, dense_hit, table, vals, bias,
                 cols, hs, ws, st, row, wrow, out):
    """Rows ``r0:r1`` of :func:`score_features`.

    First output by output, in tight loops over the rows (their table lookups overlap): each
    row's column of the output as ``build_csr`` makes it, and its weight; ``st`` 0 = not
    emitted, 1 = not in the model, 2 = in the model.  Then row by row: the columns the model
    has, sorted, equal columns merged into a count, summed from ``bias`` in that order."""
    n_out = out_kind.shape[0]
    nr = r1 - r0
    for o in range(n_out):
        a = comp_ptr[o]
        b = comp_ptr[o + 1]
        k = out_kind[o]
        d = dense_base[o]
        off = out_offset[o]
        em = st[o]
        col = cols[o]
        w = ws[o]
        em[:nr] = 1
        for c in range(a, b):
            f = comp_feat[c]
            if skip[f] != 0:
                mf = missing[f, r0:r1]
                for i in range(nr):
                    em[i] &= np.uint8(mf[i] == 0)
        if k == 0:
            col[:nr] = off
            for c in range(a, b):
                x = ids[comp_feat[c], r0:r1]
                stride = comp_stride[c]
                for i in range(nr):
                    col[i] += np.int64(x[i]) * stride
        elif k == 1:
            x = ids[comp_feat[a], r0:r1]
            for i in range(nr):
                col[i] = hashed_offset + np.int64(x[i] & mask)
        else:
            hs[:nr] = out_seed[o]
            for c in range(a, b):
                x = ids[comp_feat[c], r0:r1]
                for i in range(nr):
                    hs[i] = fmix64(hs[i] ^ x[i])
            for i in range(nr):
                col[i] = hashed_offset + np.int64(hs[i] & mask)
        if d >= 0:
            for i in range(nr):
                if em[i] != 0:
                    j = d + (col[i] - off)
                    em[i] = 1 + dense_hit[j]
                    w[i] = dense_w[j]
        else:
            for i in range(nr):
                if em[i] != 0:
                    key = table.dtype.type(col[i])
                    s = slot_of(table, key)
                    if table[s, 0] == key:
                        em[i] = 2
                        w[i] = np.float64(vals[s, 1])
    for i in range(nr):
        # Only the columns the model has add to the sum (score_csr skips the others), and
        # equal columns are all in it or all not.
        m = 0
        for o in range(n_out):
            row[m] = cols[o, i]
            wrow[m] = ws[o, i]
            m += 1 if st[o, i] == 2 else 0
        increasing = True
        for p in range(1, m):
            if row[p - 1] >= row[p]:
                increasing = False
                break
        acc = bias
        if increasing:  # no duplicates: every count is 1, and w * 1 == w
            for p in range(m):
                acc += wrow[p]
            out[r0 + i] = acc
            continue
        # (equal columns have equal weights: any order of them sums alike)
        if m > SHORT_ROW:
            sort_pairs(row, wrow, 0, m)
        else:  # the exact blocks already come in order
            insertion_sort_pairs(row, wrow, 0, m)
        q = 0
        while q < m:
            cq = row[q]
            cnt = 1
            while q + cnt < m and row[q + cnt] == cq:
                cnt += 1
            acc += wrow[q] * np.float64(np.float32(cnt))
            q += cnt
        out[r0 + i] = acc


#: Rows per block of :func:`score_features` (the unit of its row parallelism).
SCORE_BLOCK = 1 << 10


@parallel_kernel
def score_features(ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat,
                   comp_stride, mask, hashed_offset, dense_base, dense_w, dense_hit, table, vals, bias,
                   out):
    """Margins of featurized rows without building them: ``build_csr`` then ``score_csr``, fused.

    Takes ``build_csr``'s inputs (per-feature local ids / keys and the spec's output plan) and
    writes ``out[r]`` (float64[n]) bit for bit equal to ``score_csr`` of ``build_csr``'s rows:
    each row's columns are made, sorted and merged as there, and its weights summed from
    ``bias`` in column order.  ``dense_base[o]`` >= 0 gives the weights of exact output ``o``
    from ``dense_w[dense_base[o] + local id]`` (``dense_hit`` 1 where the model has the
    column) instead of ``table``/``vals``; the values are the same.  Rows are independent
    (``prange`` over blocks of ``SCORE_BLOCK`` rows)."""
    n = ids.shape[1]
    nb = (n + SCORE_BLOCK - 1) // SCORE_BLOCK
    n_out = out_kind.shape[0]
    for blk in prange(nb):
        r0 = blk * SCORE_BLOCK
        r1 = min(n, r0 + SCORE_BLOCK)
        cols = np.empty((n_out, SCORE_BLOCK), dtype=np.int64)
        hs = np.empty(SCORE_BLOCK, dtype=np.uint64)
        ws = np.empty((n_out, SCORE_BLOCK), dtype=np.float64)
        st = np.empty((n_out, SCORE_BLOCK), dtype=np.uint8)
        row = np.empty(n_out, dtype=np.int64)
        wrow = np.empty(n_out, dtype=np.float64)
        _score_block(r0, r1, ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat,
                     comp_stride, mask, hashed_offset, dense_base, dense_w, dense_hit, table, vals, bias,
                     cols, hs, ws, st, row, wrow, out)


@kernel
def finish_sigmoid(m, e):
    """Logistic of ``m`` given ``e = exp(-|m|)`` (float64[n]), in place in ``e``:
    ``1 / (1 + e)`` where ``m >= 0``, ``e / (1 + e)`` elsewhere."""
    for i in range(m.shape[0]):
        if m[i] >= 0:
            e[i] = 1.0 / (1.0 + e[i])
        else:
            e[i] = e[i] / (1.0 + e[i])
