"""Hashed crosses with multi-valued components (categorical lists): which element tuples a row
crosses, and their cross keys, computed the same way by the featurizer and the name recorder.

A row crosses every tuple of its list components' elements (one element per list component,
the other components as usual), ordered by (largest position of an element in its list's
distinct elements, then the positions in component order), and keeps the first
:data:`~sparsecross.kinds.categorical.CROSS_LIST_CAP` tuples.  With one list this is its first
CAP distinct elements; with two it is the pairs among the first ``m`` elements of each list for
the smallest ``m`` that gives CAP pairs (then the pairs of the next shell, in order), so long
lists on both sides still cross each one's first elements with each other.
"""

from __future__ import annotations

import numpy as np

from ._kernels.crosses import hashed_cross_rows
from .kinds.categorical import CROSS_LIST_CAP

__all__ = ["list_cross_entries"]


def _row_starts(rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first entry, count) per row of entries sorted by row."""
    counts = np.bincount(rows, minlength=n).astype(np.int64)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts, counts


def _tuples(parts: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray, n: int
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """(row, index into each part) of the element tuples each of ``rows`` (sorted, distinct)
    crosses.  ``parts``: ``(rows, keys)`` per list component, sorted by row (list order within
    a row)."""
    bounds = [_row_starts(r, n) for r, _ in parts]
    if len(parts) == 1:  # one list: its elements (already at most CROSS_LIST_CAP a row)
        starts, counts = bounds[0]
        reps = counts[rows]
        out_rows = np.repeat(rows, reps)
        within = np.arange(len(out_rows), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
        return out_rows, [starts[out_rows] + within]
    counts = np.stack([c[rows] for _, c in bounds])  # (parts, rows)
    # m per row: the smallest m whose "first m elements of each list" tuples reach the cap
    # (every kept tuple has all its positions below m), or all elements when they never do
    m = np.full(len(rows), CROSS_LIST_CAP, dtype=np.int64)
    todo = np.flatnonzero(np.prod(np.minimum(counts, CROSS_LIST_CAP), axis=0) >= CROSS_LIST_CAP)
    for k in range(1, CROSS_LIST_CAP + 1):
        if not len(todo):
            break
        reached = np.prod(np.minimum(counts[:, todo], k), axis=0) >= CROSS_LIST_CAP
        m[todo[reached]] = k
        todo = todo[~reached]
    use = np.minimum(counts, m)  # elements of each list a row may cross
    out_rows = rows
    idx: list[np.ndarray] = []
    pos: list[np.ndarray] = []
    at = np.arange(len(rows), dtype=np.int64)  # each tuple's row, as a position in ``rows``
    for p, (starts, _) in enumerate(bounds):
        reps = use[p, at]
        within = np.arange(int(reps.sum()), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
        at = np.repeat(at, reps)
        idx = [np.repeat(i, reps) for i in idx]
        pos = [np.repeat(q, reps) for q in pos]
        out_rows = rows[at]
        idx.append(starts[out_rows] + within)
        pos.append(within)
    largest = np.max(np.stack(pos), axis=0)
    order = np.lexsort((*reversed(pos), largest, out_rows))
    out_rows = out_rows[order]
    first, _ = _row_starts(out_rows, n)
    keep = np.arange(len(out_rows), dtype=np.int64) - first[out_rows] < CROSS_LIST_CAP
    return out_rows[keep], [i[order][keep] for i in idx]


def list_cross_entries(ids: np.ndarray, missing: np.ndarray, skip: np.ndarray,
                       lists: dict[int, tuple[np.ndarray, np.ndarray]], seed: np.uint64
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, keys, components)`` of one hashed cross with list components.

    ``ids``/``missing``: the cross's components' ids or keys and missing flags (uint64/uint8
    ``[k, n]``, as for ``build_csr``), ``skip``: their ``missing = "skip"`` flags; ``lists``:
    component position -> its elements ``(rows, keys)``, sorted by row and in list order
    within a row (a row with no element there crosses nothing).  One entry per crossed tuple,
    with its full cross key and its components' ids (``[k, entries]``, the tuple's element
    keys at the list positions); nothing on a row where a non-list component with ``skip`` is
    missing."""
    k, n = ids.shape
    emit = np.ones(n, dtype=bool)
    for j in range(k):
        if j not in lists and skip[j]:
            emit &= missing[j] == 0
    listed = sorted(lists)
    parts = [lists[j] for j in listed]
    rows, idx = _tuples(parts, np.flatnonzero(emit), n)
    sub = np.ascontiguousarray(ids[:, rows])  # the row's component ids, one column per entry
    for j, (_, keys), i in zip(listed, parts, idx):
        sub[j] = keys[i]
    cross, _ = hashed_cross_rows(sub, np.zeros_like(sub, dtype=np.uint8), np.zeros(k, dtype=np.uint8),
                                 np.arange(k, dtype=np.int64), 0, k, seed)
    return rows, cross, sub
