"""Featurization kernels: column values -> local ids / keys -> canonical CSR rows.

See ``docs/CONTRACT.md``.  Every kernel reads its inputs only (Arrow buffers may be
read-only) and returns new arrays.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .hash import fmix64
from .sorting import heapsort


@kernel
def grid_ids(lat, lon, res, n_lat, n_lon, mode, invalid_missing, ids, missing):
    """Local ids of a lat band (mode 0), lon band (mode 1) or geo cell (mode 2).

    ``lat``/``lon``: float64[n] (NaN = null; ``lon`` unused for mode 0, ``lat`` for mode 1);
    ``res``: resolution in arc-minutes; ``n_lat``/``n_lon``: band counts.
    Writes ``ids`` (uint64[n]) and ``missing`` (uint8[n]).  Returns -1, or the first row whose
    coordinate is out of range when ``invalid_missing`` is False (rows after it are not written).
    """
    n = ids.shape[0]
    miss_id = n_lat * n_lon if mode == 2 else (n_lat if mode == 0 else n_lon)
    for r in range(n):
        i = np.int64(0)
        j = np.int64(0)
        miss = False
        if mode != 1:
            a = lat[r]
            if math.isnan(a):
                miss = True
            elif a < -90.0 or a > 90.0:
                if not invalid_missing:
                    return r
                miss = True
            else:
                i = np.int64(math.floor((a + 90.0) * 60.0 / res))
                if i > n_lat - 1:
                    i = n_lat - 1
                if i < 0:
                    i = 0
        if mode != 0:
            b = lon[r]
            if math.isnan(b):
                miss = True
            elif b < -180.0 or b > 180.0:
                if not invalid_missing:
                    return r
                miss = True
            else:
                j = np.int64(math.floor((b + 180.0) * 60.0 / res))
                if j > n_lon - 1:
                    j = n_lon - 1
                if j < 0:
                    j = 0
        if miss:
            ids[r] = np.uint64(miss_id)
            missing[r] = 1
        else:
            if mode == 0:
                ids[r] = np.uint64(i)
            elif mode == 1:
                ids[r] = np.uint64(j)
            else:
                ids[r] = np.uint64(i * n_lon + j)
            missing[r] = 0
    return -1


#: Up to this many bucket boundaries are counted by a linear scan, more by binary search.
SHORT_BOUNDARIES = 16


@kernel
def bucket_ids(x, boundaries, ids, missing):
    """Bucket local ids: the number of boundaries <= x; NaN -> len(boundaries) + 1.

    ``x``: float64[n]; ``boundaries``: float64 sorted strictly increasing.
    Writes ``ids`` (uint64[n]) and ``missing`` (uint8[n]).
    """
    nb = boundaries.shape[0]
    for r in range(x.shape[0]):
        v = x[r]
        if math.isnan(v):
            ids[r] = np.uint64(nb + 1)
            missing[r] = 1
            continue
        lo = 0
        if nb <= SHORT_BOUNDARIES:
            # Few boundaries: count them without branches (the same count as the binary search:
            # the boundaries are sorted).
            for j in range(nb):
                lo += 1 if boundaries[j] <= v else 0
            ids[r] = np.uint64(lo)
            missing[r] = 0
            continue
        hi = nb
        while lo < hi:
            mid = (lo + hi) >> 1
            if boundaries[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        ids[r] = np.uint64(lo)
        missing[r] = 0


@kernel
def take_keys(codes, dict_keys, valid, missing_key, ids, missing):
    """Keys of a dictionary-encoded column: ``dict_keys[codes]``, or ``missing_key`` where
    ``valid`` is 0.  ``codes``: int array; ``valid``: uint8[n] (or length 0 = all valid).
    Writes ``ids`` and ``missing``."""
    has_valid = valid.shape[0] > 0
    for r in range(codes.shape[0]):
        if has_valid and valid[r] == 0:
            ids[r] = missing_key
            missing[r] = 1
        else:
            ids[r] = dict_keys[codes[r]]
            missing[r] = 0


@kernel
def cross_key(ids, comp_feat, a, b, seed, r):
    """Full 64-bit key of a hashed cross on row ``r``: ``h = seed``, then ``h = fmix64(h ^ id)``
    for its components ``comp_feat[a:b]`` in cross order (hash contract v1, "Cross key")."""
    h = seed
    for c in range(a, b):
        h = fmix64(h ^ ids[comp_feat[c], r])
    return h


@kernel
def hashed_cross_rows(ids, missing, skip, comp_feat, a, b, seed):
    """Per row, the full key of one hashed cross output (components ``comp_feat[a:b]``,
    ``seed``) exactly as :func:`build_csr` computes it, and whether the row emits it (0 when a
    component with ``skip`` is missing).  Returns ``(keys uint64[n], emit uint8[n])``."""
    n = ids.shape[1]
    keys = np.empty(n, dtype=np.uint64)
    emit = np.empty(n, dtype=np.uint8)
    for r in range(n):
        e = 1
        for c in range(a, b):
            f = comp_feat[c]
            if skip[f] != 0 and missing[f, r] != 0:
                e = 0
                break
        emit[r] = e
        keys[r] = cross_key(ids, comp_feat, a, b, seed, r)
    return keys, emit


#: Rows of at most this many entries are sorted by insertion sort, longer ones by a heapsort.
SHORT_ROW = 32

#: Rows per block of :func:`build_csr`: the columns of a block are computed output by output
#: (independent rows: the hash chains of a cross overlap), then its rows are assembled.
BLOCK_ROWS = 1024


@kernel
def _block_columns(ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat, comp_stride,
                   mask, hashed_offset, r0, nb, cols):
    """``cols[o, i]``: the column of output ``o`` on row ``r0 + i`` (``i < nb``), or -1 when the
    row does not emit it (a component with ``skip`` is missing).  Every column is >= 0."""
    for o in range(out_kind.shape[0]):
        a = comp_ptr[o]
        b = comp_ptr[o + 1]
        k = out_kind[o]
        co = cols[o]
        if k == 0:
            off = out_offset[o]
            for i in range(nb):
                co[i] = off
            for c in range(a, b):
                fi = ids[comp_feat[c]]
                st = comp_stride[c]
                for i in range(nb):
                    co[i] += np.int64(fi[r0 + i]) * st
        elif k == 1:
            fi = ids[comp_feat[a]]
            for i in range(nb):
                co[i] = hashed_offset + np.int64(fi[r0 + i] & mask)
        else:
            seed = out_seed[o]
            for i in range(nb):
                co[i] = hashed_offset + np.int64(cross_key(ids, comp_feat, a, b, seed, r0 + i) & mask)
        for c in range(a, b):
            f = comp_feat[c]
            if skip[f] != 0:
                mf = missing[f]
                for i in range(nb):
                    if mf[r0 + i] != 0:
                        co[i] = -1


@kernel
def _sort_row(row, a, k, b):
    """Sort ``row[a:b]`` in place, ``row[a:a+k]`` being sorted already: the rest inserted one by
    one into the sorted part when the row is short, a heapsort beyond ``SHORT_ROW`` entries."""
    if b - a > SHORT_ROW:
        if a + k < b:
            heapsort(row, a, b)
        return
    for i in range(a + k, b):
        x = row[i]
        q = i
        while q > a and row[q - 1] > x:
            row[q] = row[q - 1]
            q -= 1
        row[q] = x


@kernel
def build_csr(ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat,
              comp_stride, mask, hashed_offset):
    """Assemble canonical CSR rows from per-feature local ids / keys.

    ``ids``: uint64[F, n] local ids (exact features) or 64-bit keys (categoricals);
    ``missing``: uint8[F, n]; ``skip``: uint8[F] (1: a missing value emits nothing);
    outputs ``o`` are described by ``out_kind`` (0 exact, 1 hashed single, 2 hashed cross),
    ``out_offset``, ``out_seed`` and the components ``comp_feat[comp_ptr[o]:comp_ptr[o+1]]``
    with mixed-radix ``comp_stride``.  ``mask`` = 2**bits - 1.

    Returns ``(indptr int64[n+1], indices int64[nnz], data float32[nnz])``: each row sorted,
    duplicate columns merged into one entry whose value is the count.  Rows are made in
    blocks of ``BLOCK_ROWS`` (:func:`_block_columns`); a row's entries, in output order, are a
    sorted prefix (exact blocks come in column order) and a rest inserted into it
    (:func:`_sort_row`; the prefix is found without branches: the hashed part is in random order).

    Unchecked (a kernel): an exact feature's ids must be below its cardinality (the missing id
    included), so that ``out_offset + sum(id * stride)`` stays inside its output's block; a
    larger id lands in another block or the hashed one, an id >= 2**63 wraps to a negative
    column, and any negative column reads as "not emitted" (-1, :func:`_block_columns`) and is
    dropped.  The built-in kinds give in-range ids by construction: ``bucket_ids`` (0 ..
    len(boundaries) + 1), ``grid_ids`` (coordinates range-checked: an error, or the missing id
    under ``invalid = "missing"``), ``kinds/time.py`` (a part outside its range: an error or the
    missing id), ``kinds/numeric.py`` (ids 0 and 1: present or missing).
    ``featurize._feature_ids`` passes a kind's ids on as they are: a kind added to
    ``kinds.KINDS`` is trusted to honour its ``cardinality``."""
    n_out = out_kind.shape[0]
    n = ids.shape[1]
    indptr = np.empty(n + 1, dtype=np.int64)
    indices = np.empty(n * n_out, dtype=np.int64)
    data = np.empty(n * n_out, dtype=np.float32)
    cols = np.empty((n_out, min(n, BLOCK_ROWS)), dtype=np.int64)
    p = 0
    indptr[0] = 0
    for r0 in range(0, n, BLOCK_ROWS):
        nb = min(BLOCK_ROWS, n - r0)
        _block_columns(ids, missing, skip, out_kind, out_offset, out_seed, comp_ptr, comp_feat, comp_stride,
                       mask, hashed_offset, r0, nb, cols)
        for i in range(nb):
            start = p
            k = 0  # length of the sorted prefix
            prev = np.int64(-1)
            for o in range(n_out):
                col = cols[o, i]
                if col < 0:
                    continue
                k += np.int64((k == p - start) & (prev <= col))
                indices[p] = col
                prev = col
                p += 1
            _sort_row(indices, start, k, p)
            w = start  # duplicates merged in place: one entry, valued by its count
            last = np.int64(-1)
            for q in range(start, p):
                col = indices[q]
                if col == last:
                    data[w - 1] += np.float32(1.0)
                else:
                    indices[w] = col
                    data[w] = np.float32(1.0)
                    w += 1
                    last = col
            p = w
            indptr[r0 + i + 1] = p
    if p == indices.shape[0]:  # every row emitted every output, no duplicates: no copy
        return indptr, indices, data
    return indptr, indices[:p].copy(), data[:p].copy()
