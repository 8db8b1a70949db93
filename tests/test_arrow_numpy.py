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


#: 3M values, a third of them null at random: slices of it sit deep in one buffer.
_BIG = pa.array(np.zeros(3_000_200, dtype=np.int8), mask=np.random.default_rng(1).random(3_000_200) < 0.3)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3_000_000), st.integers(0, 200))
def test_validity_at_large_offsets_reads_only_the_slice_bits(start, length) -> None:
    """A zero-copy slice deep into a big table (as read.py's in-memory batches): the same validity
    as pyarrow's, from the slice's own bytes only (not the ``offset + n`` bits before its end)."""
    arr = _BIG.slice(start, length)
    counts = []
    real = np.unpackbits

    def spy(a, *args, **kw):
        counts.append((a.size, kw.get("count")))
        return real(a, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(np, "unpackbits", spy)
        got = valid_of(arr)
    np.testing.assert_array_equal(got, np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
    for size, count in counts:  # at most the 7 bits before the slice and the 7 after
        assert size <= (length + 7) // 8 + 1 and (count is None or count <= length + 7), (size, count, length)


def test_validity_of_a_null_typed_array_is_all_false() -> None:
    for arr in (pa.nulls(5), pa.nulls(9).slice(2, 5), pa.array([None, None])):
        assert arr.type == pa.null()
        want = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        np.testing.assert_array_equal(valid_of(arr), want)
        assert not valid_of(arr).any()
    assert len(valid_of(pa.nulls(0))) == 0
