"""The kernels' own sorts (``sparsecross._kernels.sorting``) against NumPy's stable sort, bit for
bit: random keys with many ties, the full uint64 range, empty and length-1 ranges, sub-ranges
of a longer array, read-only inputs, and lengths around the insertion-sorted runs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross._kernels.sorting import RUN, argsort_stable, sort_pairs

_U64 = st.integers(0, 2**64 - 1)
_I64 = st.integers(-(2**63), 2**63 - 1)


def _keys(draw: st.DrawFn, dtype: type) -> np.ndarray:
    """Keys from a few values (ties) or from the whole range, of a length around the runs."""
    full = _U64 if dtype is np.uint64 else _I64
    few = st.sampled_from([0, 1, 7, 2**63 - 1] if dtype is np.int64 else [0, 1, 7, 2**63, 2**64 - 1])
    n = draw(st.one_of(st.integers(0, 3), st.integers(0, 4 * RUN + 3), st.integers(0, 600)))
    values = draw(st.lists(draw(st.sampled_from([few, full, st.integers(0, 3)])), min_size=n, max_size=n))
    return np.array(values, dtype=dtype)


@st.composite
def keys_arrays(draw: st.DrawFn) -> np.ndarray:
    return _keys(draw, draw(st.sampled_from([np.int64, np.uint64])))


@settings(max_examples=300, deadline=None)
@given(keys=keys_arrays(), read_only=st.booleans())
def test_argsort_stable_is_numpys_stable_argsort(keys: np.ndarray, read_only: bool) -> None:
    before = keys.copy()
    if read_only:
        keys.flags.writeable = False
    got = argsort_stable(keys)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.argsort(before, kind="stable"))
    np.testing.assert_array_equal(keys, before)  # the input is left alone


@settings(max_examples=300, deadline=None)
@given(data=st.data(), vdtype=st.sampled_from([np.float32, np.float64, np.int64]))
def test_sort_pairs_is_a_stable_sort_of_a_range(data: st.DataObject, vdtype: type) -> None:
    """``keys[a:b]`` sorted stably and ``vals[a:b]`` moved along; outside ``[a, b)`` unchanged."""
    keys = data.draw(keys_arrays())
    n = keys.shape[0]
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    vals = np.arange(n).astype(vdtype) * vdtype(0.5) if vdtype is not np.int64 else np.arange(n) * 3
    k, v = keys.copy(), vals.copy()
    sort_pairs(k, v, a, b)
    order = a + np.argsort(keys[a:b], kind="stable")
    np.testing.assert_array_equal(k[a:b], keys[order])
    np.testing.assert_array_equal(v[a:b], vals[order])
    np.testing.assert_array_equal(np.concatenate([k[:a], k[b:]]), np.concatenate([keys[:a], keys[b:]]))
    np.testing.assert_array_equal(np.concatenate([v[:a], v[b:]]), np.concatenate([vals[:a], vals[b:]]))


def test_long_arrays_with_ties() -> None:
    """Lengths of many merge passes, odd and power-of-two ones, few and many distinct keys."""
    rng = np.random.default_rng(0)
    for n in (RUN * 64, RUN * 64 + 1, 100_003):
        for high in (3, 1000, 2**62):
            keys = rng.integers(0, high, n)
            np.testing.assert_array_equal(argsort_stable(keys), np.argsort(keys, kind="stable"))
            np.testing.assert_array_equal(argsort_stable(keys.astype(np.uint64)), np.argsort(keys, kind="stable"))
            vals = rng.random(n)
            k, v = keys.copy(), vals.copy()
            sort_pairs(k, v, 0, n)
            order = np.argsort(keys, kind="stable")
            assert k.tobytes() == keys[order].tobytes() and v.tobytes() == vals[order].tobytes()
    for keys in (np.zeros(0, np.int64), np.array([5], np.uint64), np.arange(2 * RUN, 0, -1)):
        np.testing.assert_array_equal(argsort_stable(keys), np.argsort(keys, kind="stable"))
