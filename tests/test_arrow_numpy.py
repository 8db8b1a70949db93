"""Arrow -> numpy from buffers (sparsecross.arrow_numpy) against pyarrow's own conversions."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross.arrow_numpy import float64_of, int64_array, valid_of, values_of

TYPES = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
         pa.float32(), pa.float64()]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(TYPES), st.lists(st.one_of(st.none(), st.integers(0, 100)), max_size=70),
       st.integers(0, 20), st.integers(0, 70))
def test_values_and_validity_match_pyarrow(typ, values, start, length) -> None:
    """Slices at any offset (bitmaps not byte-aligned), with and without nulls."""
    arr = pa.array(values, type=typ).slice(start, length)
    want_valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    np.testing.assert_array_equal(valid_of(arr), want_valid)
    got = values_of(arr, fill=0)
    want = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False) if len(arr) else np.zeros(0, got.dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    if arr.null_count == 0 and len(arr):
        assert not got.flags.writeable  # a view of the Arrow buffer, not a copy
    if typ == pa.float64():
        f = float64_of(arr)
        ref = arr.to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(np.isnan(f), np.isnan(ref))
        np.testing.assert_array_equal(f[~np.isnan(f)], ref[~np.isnan(ref)])


def test_wrong_types_are_refused() -> None:
    with pytest.raises(TypeError):
        values_of(pa.array(["a"]))
    with pytest.raises(TypeError):
        float64_of(pa.array([1], type=pa.int64()))


def test_int64_array_round_trip() -> None:
    x = np.array([3, -1, 2**62], dtype=np.int64)
    a = int64_array(x[::-1])  # not contiguous: copied
    assert a.type == pa.int64() and a.to_pylist() == [2**62, -1, 3]
    assert pa.array(["a", "b", "c", "d"]).take(int64_array(np.array([3, 0]))).to_pylist() == ["d", "a"]
