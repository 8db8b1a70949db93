"""The categorical-list kernels (``sparsecross._kernels.lists``) against plain Python on random
inputs (short and long rows, repeats, nulls), with writable and read-only inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross._kernels.lists import SHORT_LIST, SHORT_ROW, list_distinct, merge_entries


def _read_only(*arrays: np.ndarray) -> list[np.ndarray]:
    out = []
    for a in arrays:
        b = a.copy()
        b.flags.writeable = False
        out.append(b)
    return out


def distinct_reference(rows: list[list[int | None]]) -> tuple[list[int], list[int], list[int]]:
    """Each row's distinct non-null keys by first occurrence, with their rank."""
    r_out, k_out, rank = [], [], []
    for r, row in enumerate(rows):
        seen: list[int] = []
        for k in row:
            if k is not None and k not in seen:
                r_out.append(r)
                k_out.append(k)
                rank.append(len(seen))
                seen.append(k)
    return r_out, k_out, rank


_row = st.one_of(st.lists(st.one_of(st.none(), st.integers(0, 6)), max_size=SHORT_LIST + 4),
                 st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1), st.integers(0, 40)),
                          min_size=SHORT_LIST, max_size=4 * SHORT_LIST))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(_row, max_size=12), read_only=st.booleans())
def test_list_distinct_matches_python(rows, read_only) -> None:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    keys = np.array([0 if k is None else k for r in rows for k in r], dtype=np.uint64)
    miss = np.array([k is None for r in rows for k in r], dtype=np.uint8)
    args = _read_only(offsets, keys, miss) if read_only else [offsets, keys, miss]
    got = list_distinct(*args)
    assert [a.tolist() for a in got] == [list(x) for x in distinct_reference(rows)]
    assert [a.dtype for a in got] == [np.int64, np.uint64, np.int64]


@settings(max_examples=150, deadline=None)
@given(base=st.lists(st.lists(st.integers(0, 60), unique=True, max_size=6), min_size=1, max_size=8),
       extra=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 60)), max_size=3 * SHORT_ROW),
       read_only=st.booleans())
def test_merge_entries_matches_python(base, extra, read_only) -> None:
    n = len(base)
    extra = [(r % n, c) for r, c in extra]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(b) for b in base], out=indptr[1:])
    indices = np.array([c for b in base for c in sorted(b)], dtype=np.int64)
    data = np.array([float(c % 5 + 1) for b in base for c in sorted(b)], dtype=np.float32)
    erows = np.array([r for r, _ in extra], dtype=np.int64)
    ecols = np.array([c for _, c in extra], dtype=np.int64)
    args = [indptr, indices, data, erows, ecols]
    ptr, cols, vals = merge_entries(*(_read_only(*args) if read_only else args))
    for r in range(n):
        want: dict[int, float] = {c: float(c % 5 + 1) for c in base[r]}
        for rr, c in extra:
            if rr == r:
                want[c] = want.get(c, 0.0) + 1.0
        assert cols[ptr[r]:ptr[r + 1]].tolist() == sorted(want)
        assert vals[ptr[r]:ptr[r + 1]].tolist() == [want[c] for c in sorted(want)]
    assert ptr[0] == 0 and ptr[-1] == len(cols) == len(vals)
    assert cols.dtype == np.int64 and vals.dtype == np.float32
