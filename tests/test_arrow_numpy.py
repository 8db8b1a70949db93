"""Arrow -> numpy from buffers (sparsecross.arrow_numpy) against pyarrow's own conversions."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross.arrow_numpy import (array_of, as_array, bools_of, float64_column, float64_of, int64_array, list_lengths,
                                     valid_of, values_of)

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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.booleans()), max_size=70), st.integers(0, 20), st.integers(0, 70),
       st.booleans())
def test_bools_match_pyarrow(values, start, length, fill) -> None:
    arr = pa.array(values, type=pa.bool_()).slice(start, length)
    want = [fill if v is None else v for v in arr.to_pylist()]
    got = bools_of(arr, fill)
    assert got.dtype == bool
    assert got.tolist() == want


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([pa.list_(pa.int64()), pa.large_list(pa.int64())]),
       st.lists(st.one_of(st.none(), st.lists(st.integers(0, 9), max_size=5)), max_size=40),
       st.integers(0, 15), st.integers(0, 40))
def test_list_lengths_match_pyarrow(typ, values, start, length) -> None:
    arr = pa.array(values, type=typ).slice(start, length)
    want = pc.fill_null(pc.list_value_length(arr), 0).to_pylist()
    got = list_lengths(arr)
    assert got.dtype == np.int64 and got.tolist() == want


def test_list_lengths_of_a_null_list_with_a_range_is_zero() -> None:
    """The offsets of a null list may span elements; its length is still 0 (flatten skips them)."""
    for cls, it in ((pa.ListArray, pa.int32()), (pa.LargeListArray, pa.int64())):
        arr = cls.from_arrays(pa.array([0, 2, 4, 5, 7], it), pa.array(range(7)),
                              mask=pa.array([False, True, False, False]))
        for a in (arr, arr.slice(1)):
            assert list_lengths(a).tolist() == pc.fill_null(pc.list_value_length(a), 0).to_pylist()
            assert int(list_lengths(a).sum()) == len(a.flatten())


def test_bool_and_list_readers_refuse_other_types() -> None:
    with pytest.raises(TypeError):
        bools_of(pa.array([1]))
    with pytest.raises(TypeError):
        list_lengths(pa.array([1]))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_array_of_matches_pa_array(data) -> None:
    typ = data.draw(st.sampled_from([pa.string(), pa.large_string(), pa.bool_(), pa.int8(), pa.uint16(), pa.int64(),
                                     pa.float64()]))
    elem = {pa.string(): st.text(max_size=6), pa.large_string(): st.text(max_size=6), pa.bool_(): st.booleans(),
            pa.int8(): st.integers(-128, 127), pa.uint16(): st.integers(0, 2**16 - 1),
            pa.int64(): st.integers(-2**63, 2**63 - 1), pa.float64(): st.floats(allow_nan=False)}[typ]
    values = data.draw(st.lists(elem, max_size=12))
    got = array_of(values, typ)
    got.validate(full=True)
    assert got.type == typ and got.equals(pa.array(values, type=typ))


def _valid(arr) -> np.ndarray:
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), max_size=40), st.integers(0, 9),
       st.lists(st.one_of(st.none(), st.booleans()), max_size=40), st.integers(0, 9))
def test_validity_of_dictionary_and_bool_arrays(strings, s0, bools, b0) -> None:
    d = pa.array(strings, type=pa.string()).dictionary_encode().slice(s0)
    np.testing.assert_array_equal(valid_of(d), _valid(d))
    b = pa.array(bools, type=pa.bool_()).slice(b0)
    np.testing.assert_array_equal(valid_of(b), _valid(b))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from([1.5, -2.0, 0.25, 7.0])), max_size=40), st.integers(0, 9),
       st.sampled_from(["dictionary", "float16", "int32"]))
def test_float64_column_of_dictionaries_and_narrow_types(values, start, how) -> None:
    """Against pyarrow's own cast to float64 (nulls as NaN)."""
    if how == "dictionary":
        arr = pa.array(values, type=pa.float64()).dictionary_encode()
    elif how == "float16":
        arr = pa.array([None if v is None else np.float16(v) for v in values], type=pa.float16())
    else:
        arr = pa.array([None if v is None else int(v) for v in values], type=pa.int32())
    arr = arr.slice(start)
    plain = arr.dictionary_decode() if how == "dictionary" else arr
    want = [math.nan if v is None else float(v) for v in pc.cast(plain, pa.float64()).to_pylist()]
    got = float64_column(arr)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.array(want, dtype=np.float64))


def test_as_array_of_chunked_arrays() -> None:
    chunks = [pa.array([1.0, None]), pa.array([None, 3.0, 4.0]).slice(1), pa.array([], type=pa.float64())]
    for col, want in ((pa.chunked_array(chunks), [1.0, None, 3.0, 4.0]),
                      (pa.chunked_array(chunks[1:2]), [3.0, 4.0]),
                      (pa.chunked_array([], type=pa.float64()), []),
                      (chunks[0], [1.0, None])):
        got = as_array(col)
        assert isinstance(got, pa.Array) and got.type == pa.float64() and got.to_pylist() == want
    assert as_array(pa.chunked_array(chunks[1:2])) is not None
    np.testing.assert_array_equal(float64_column(as_array(pa.chunked_array(chunks))), [1.0, np.nan, 3.0, 4.0])
