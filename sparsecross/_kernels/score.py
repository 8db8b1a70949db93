"""Scoring kernels: CSR rows x sparse model -> margins, and streaming metric accumulation."""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import kernel, parallel_kernel
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
