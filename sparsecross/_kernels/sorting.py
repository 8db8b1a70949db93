"""The kernels' own sorts (a stable bottom-up merge sort of keys with values moved along, and a
heapsort of keys alone for the featurizer's rows), so that no kernel sorts with Numba's
``ndarray.sort`` / ``np.argsort`` / ``np.sort`` / ``np.unique``.

Numba makes its sorts with closure factories (``numba.misc.quicksort.make_quicksort_impl``,
``mergesort.make_mergesort_impl``) and names each function they make by its qualified name,
its argument types and a per-process counter, not by the closure: the in-place sort and the
argsort of an int64 array get the same name when two processes happen to compile as many
functions before them.  A process that loads the code two processes cached (ours, or ours
and a user's) then links one to the other: on 2026-12-03 ``score_features``' argsort ran
``build_csr``'s in-place sort (``tests/test_jit_cache.py``).  Functions of this folder are
named after their own module and code, and the folder's digest stamps their cache (``_jit.py``).
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

#: Runs of this many entries are sorted by insertion sort before the merge passes.
RUN = 16


@kernel
def sort_pairs(keys, vals, a, b):
    """Sort ``keys[a:b]`` ascending in place, stably (equal keys keep their order), moving
    ``vals[a:b]`` along: ``np.argsort(keys[a:b], kind="stable")`` applied to both.  Ranges of
    up to ``RUN`` entries are sorted without allocating; longer ones use two buffers of
    ``b - a`` entries."""
    n = b - a
    if n < 2:
        return
    k = keys[a:b]
    v = vals[a:b]
    for s in range(0, n, RUN):
        insertion_sort_pairs(k, v, s, min(s + RUN, n))
    if n <= RUN:
        return
    src_k = k
    src_v = v
    dst_k = np.empty(n, dtype=keys.dtype)
    dst_v = np.empty(n, dtype=vals.dtype)
    width = RUN
    in_buffers = False
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            _merge(src_k, src_v, dst_k, dst_v, lo, mid, hi)
        src_k, dst_k = dst_k, src_k
        src_v, dst_v = dst_v, src_v
        in_buffers = not in_buffers
        width *= 2
    if in_buffers:  # the last pass wrote the buffers
        k[:] = src_k
        v[:] = src_v


@kernel
def insertion_sort_pairs(keys, vals, a, b):
    """:func:`sort_pairs` by insertion (stable, no allocation): for short ranges, or ranges
    made of a sorted prefix and a few more entries."""
    for i in range(a + 1, b):
        x = keys[i]
        y = vals[i]
        q = i
        while q > a and keys[q - 1] > x:
            keys[q] = keys[q - 1]
            vals[q] = vals[q - 1]
            q -= 1
        keys[q] = x
        vals[q] = y


@kernel
def _merge(sk, sv, dk, dv, lo, mid, hi):
    """Merge the sorted ``sk[lo:mid]`` and ``sk[mid:hi]`` into ``dk[lo:hi]`` (``sv`` into ``dv``
    alike), the left one first among equal keys."""
    i = lo
    j = mid
    o = lo
    if mid == hi or sk[mid - 1] <= sk[mid]:  # already in order (a sorted input): a copy
        dk[lo:hi] = sk[lo:hi]
        dv[lo:hi] = sv[lo:hi]
        return
    while i < mid and j < hi:
        if sk[j] < sk[i]:
            dk[o] = sk[j]
            dv[o] = sv[j]
            j += 1
        else:
            dk[o] = sk[i]
            dv[o] = sv[i]
            i += 1
        o += 1
    while i < mid:
        dk[o] = sk[i]
        dv[o] = sv[i]
        i += 1
        o += 1
    while j < hi:
        dk[o] = sk[j]
        dv[o] = sv[j]
        j += 1
        o += 1


@kernel
def argsort_stable(keys):
    """``np.argsort(keys, kind="stable")`` of a 1-d array (int64 indices); ``keys`` is only read."""
    n = keys.shape[0]
    k = np.empty(n, dtype=keys.dtype)
    k[:] = keys
    order = np.arange(n)
    sort_pairs(k, order, 0, n)
    return order


@kernel
def heapsort(row, a, b):
    """Sort ``row[a:b]`` in place, keys alone (a heapsort: not stable, no allocation): for
    keys that are distinct or carry nothing, as the featurizer's column ids."""
    n = b - a
    for start in range(n // 2 - 1, -1, -1):
        _sift_down(row, a, start, n)
    for end in range(n - 1, 0, -1):
        t = row[a]
        row[a] = row[a + end]
        row[a + end] = t
        _sift_down(row, a, 0, end)


@kernel
def _sift_down(row, a, i, n):
    """Move ``row[a + i]`` down the max-heap ``row[a:a+n]`` to its place."""
    x = row[a + i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and row[a + c + 1] > row[a + c]:
            c += 1
        if row[a + c] <= x:
            break
        row[a + i] = row[a + c]
        i = c
    row[a + i] = x
