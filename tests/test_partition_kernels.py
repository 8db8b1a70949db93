"""Partitioned training's kernels (``sparsecross/_kernels/partition.py``), its partition
(``sparsecross/dask/partition.py``), the round-end merge of the shared keys
(``sparsecross/dask/sharing.py``) and its lane tasks run in-process
(``sparsecross/dask/partition_tasks.py``), against independent plain-Python references: the
lane rule written out with the pure-Python ``fmix64`` of ``tests/reference/hashing_reference.py``,
a dict-based merge written from ``sharing.py``'s docstring, the column layout of
``tests/reference/featurize_reference.py``, and single-node ``sparsecross.train``.

No Dask here: the lane tasks are plain functions (a lane's state lives in a module dict of
the process that runs them)."""

from __future__ import annotations

import math
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import FTRLState, load_spec, parse_spec
from sparsecross._kernels.lanes import fill_table
from sparsecross._kernels.partition import ROW_SALT, group_rows, keys_lanes, lane_of_key, row_lanes
from sparsecross.dask.partition import Partition, partition_of
from sparsecross.dask.partition_tasks import (
    _LANES,
    _drop_lanes,
    _put_shared,
    _route,
    _RoutedPart,
    _task_lane,
    _task_lane_init,
)
from sparsecross.dask.plan import _holdout_mask, _plan
from sparsecross.dask.shards import _ShardLost
from sparsecross.dask.sharing import Report, Shared, merge_reports
from sparsecross.errors import SparseCrossError
from sparsecross.hashing import holdout_salt
from sparsecross.train_params import TrainParams
from tests.reference.featurize_reference import _exact_local_id, _parse_spec, reference_featurize
from tests.reference.hashing_reference import MASK64
from tests.reference.hashing_reference import fmix64 as ref_fmix64

ROOT = Path(__file__).resolve().parents[1]

#: The salt of a row without a partition key, written out here (not imported): rows' lanes
#: are part of a partitioned model's identity, so a change of it must show.
SALT = 0x9E3779B97F4A7C15

MODEST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ============================================================================ references
def ref_lane(k: int, ranges: list[tuple[int, int, int]], card: int, lanes: int) -> int:
    """The lane rule, in Python ints: the first owned range [lo, hi) holding ``k`` gives the
    partition id ((k - lo) // stride) % card, whose lane is fmix64(id) % lanes; -1 outside."""
    for lo, hi, stride in ranges:
        if lo <= k < hi:
            return ref_fmix64(((k - lo) // stride) % card) % lanes
    return -1


def ref_row_lane(row: int, lanes: int) -> int:
    """The lane of global row ``row`` without a partition key."""
    return ref_fmix64((row ^ SALT) & MASK64) % lanes


def ref_row_lanes(rows: list[list[int]], keep: list[int] | None, ranges, card: int, lanes: int,
                  start_row: int) -> tuple[list[int], set[int], int]:
    """Plain-Python ``row_lanes``: (lanes, the non-owned keys of the kept rows, bad row)."""
    out = [-1] * len(rows)
    shared: set[int] = set()
    for r, row in enumerate(rows):
        if keep is not None and not keep[r]:
            continue
        mine = {ref_lane(k, ranges, card, lanes) for k in row} - {-1}
        shared |= {k for k in row if ref_lane(k, ranges, card, lanes) < 0}
        if len(mine) > 1:
            return out, shared, r
        out[r] = mine.pop() if mine else ref_row_lane(start_row + r, lanes)
    return out, shared, -1


def arrays(ranges: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi, stride = (np.array(v, dtype=np.int64) for v in zip(*ranges))
    return lo, hi, stride


def csr(rows: list[list[int]], index_dtype=np.int64, data=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.array([k for r in rows for k in r], dtype=index_dtype)
    if data is None:
        data = np.arange(1, len(indices) + 1, dtype=np.float32)
    return indptr, indices, data


# ============================================================================ strategies
@st.composite
def partitions(draw: st.DrawFn, max_key: int = 1 << 62, regular: bool = True) -> tuple:
    """(card, lanes, ranges): 1-4 disjoint owned ranges (possibly adjacent), in random order.
    ``regular``: each range is ``outer`` blocks of ``card * stride`` keys, as a spec's are;
    else of any length."""
    card = draw(st.integers(1, 40))
    lanes = draw(st.one_of(st.integers(1, 9), st.sampled_from([16, 1000, 65_536])))
    n = draw(st.integers(1, 4))
    at = draw(st.integers(0, max_key // 2))
    ranges = []
    for _ in range(n):
        stride = draw(st.integers(1, 12))
        lo = at + draw(st.sampled_from([0, 1, 7, 1024, 100_000]))
        size = draw(st.integers(1, 3)) * card * stride
        if not regular:
            size = draw(st.integers(1, size + 50))
        if lo + size > max_key:
            break
        ranges.append((lo, lo + size, stride))
        at = lo + size
    if not ranges:
        ranges = [(0, card, 1)]
    order = draw(st.permutations(range(len(ranges))))
    return card, lanes, [ranges[i] for i in order]


def edge_keys(ranges, max_key: int) -> list[int]:
    out = [0, max_key - 1]
    for lo, hi, _ in ranges:
        out += [lo - 1, lo, lo + 1, hi - 2, hi - 1, hi, hi + 1]
    return [k for k in out if 0 <= k < max_key]


# ============================================================================ 1. keys' lanes
@MODEST
@given(data=st.data(), key_dtype=st.sampled_from([np.int64, np.uint64, np.int32, np.uint32]))
def test_keys_lanes_follow_the_rule(data, key_dtype):
    """keys_lanes (and lane_of_key, Partition.lanes_of/owned) = the Python rule, on random
    ranges (regular or not) and keys at every range's edges, inside and outside."""
    max_key = 1 << 62 if np.dtype(key_dtype).itemsize == 8 else (1 << 31) - 1
    card, lanes, ranges = data.draw(partitions(max_key=max_key, regular=data.draw(st.booleans())))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    keys = edge_keys(ranges, max_key)
    for lo, hi, _ in ranges:
        keys += [int(k) for k in rng.integers(lo, hi, 10)]
    keys += [int(k) for k in rng.integers(0, max_key, 10)]
    rng.shuffle(keys)
    keys_a = np.array(keys, dtype=key_dtype)
    expected = [ref_lane(k, ranges, card, lanes) for k in keys]
    lo, hi, stride = arrays(ranges)

    got = keys_lanes(keys_a, lo, hi, stride, card, lanes)
    assert got.dtype == np.int64
    assert got.tolist() == expected
    for k, e in list(zip(keys, expected))[:8]:
        assert int(lane_of_key(np.int64(k), lo, hi, stride, card, lanes)) == e
    part = Partition("p", lanes, lo, hi, stride, card)
    assert part.lanes_of(keys_a).tolist() == expected
    assert part.owned(keys_a).tolist() == [e >= 0 for e in expected]
    assert all(0 <= e < lanes for e in expected if e >= 0)


def test_keys_lanes_known_values():
    """A few lanes worked out by hand from the rule (ids 0..3 of a cross block with stride 5,
    the missing id of a card-3 feature), so that a change of fmix64 or of the rule shows
    even where both the kernel and the reference would change together."""
    lo, hi, stride = arrays([(100, 130, 5), (10, 13, 1)])  # (cross block: 2 x 3 x 5; own block)
    # key 100 + 5*1 = id 1; 100 + 5*3 + 4 = id 3 % 3 = 0; 12 = id 2; 13, 99, 130: shared
    keys = np.array([105, 119, 12, 13, 99, 130, 100, 10], dtype=np.int64)
    fm = {0: 0, 1: 0xB456BCFC34C2CB2C, 2: 0x3ABF2A20650683E7}  # fmix64(0..2), CONTRACT.md's function
    assert all(ref_fmix64(i) == v for i, v in fm.items())
    # lanes 10: ids 0, 1, 2 -> lanes 0, 4, 7
    assert keys_lanes(keys, lo, hi, stride, 3, 10).tolist() == [4, 0, 7, -1, -1, -1, 0, 0]


def test_row_salt_is_the_documented_constant():
    """ROW_SALT (the lane of a row without a partition key) is the golden-ratio constant."""
    assert int(ROW_SALT) == SALT and ROW_SALT.dtype == np.uint64


# ============================================================================ 2. rows' lanes
@st.composite
def routed_rows(draw: st.DrawFn) -> dict:
    """A partition (regular ranges), random rows of sorted distinct keys (owned keys of one
    partition id, sometimes of two; shared keys from a pool with cache collisions: keys
    equal mod 1,024), a keep mask (length 0: all rows) and a start row."""
    card, lanes, ranges = draw(partitions(max_key=1 << 50))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    pool: list[int] = []
    while len(pool) < 12:
        k = int(rng.integers(0, 1 << 50))
        for c in (k, k + 1024, k + 2048 * 1024):  # (the same slot of a 1,024-slot cache)
            if ref_lane(c, ranges, card, 1) < 0:
                pool.append(c)
    pool += [k for k in edge_keys(ranges, 1 << 50) if ref_lane(k, ranges, card, 1) < 0]

    def owned_key(pid: int) -> int:
        lo, hi, stride = ranges[int(rng.integers(len(ranges)))]
        outer = (hi - lo) // (card * stride)
        return lo + (int(rng.integers(outer)) * card + pid) * stride + int(rng.integers(stride))

    n = draw(st.integers(0, 25))
    two = draw(st.sampled_from([0.0, 0.0, 0.15]))
    rows = []
    for _ in range(n):
        row = {int(pool[i]) for i in rng.integers(0, len(pool), int(rng.integers(0, 5)))}
        if rng.random() < 0.7:
            pid = int(rng.integers(card))
            row |= {owned_key(pid) for _ in range(int(rng.integers(1, 4)))}
            if rng.random() < two:
                row.add(owned_key(int(rng.integers(card))))
        rows.append(sorted(row))
    keep = None
    if draw(st.booleans()):
        keep = [int(v) for v in rng.random(n) < 0.7]
    start_row = draw(st.sampled_from([0, 1, 12_345, 1 << 40, (1 << 62) - 100]))
    return {"card": card, "lanes": lanes, "ranges": ranges, "rows": rows, "keep": keep,
            "start_row": start_row, "index_dtype": draw(st.sampled_from([np.int64, np.uint64]))}


@MODEST
@given(c=routed_rows())
def test_row_lanes_follow_the_rule(c):
    """row_lanes = the Python rule: a kept row's lane is its owned keys' lane, else its row
    number's (fmix64((start_row + r) ^ salt) % lanes); -1 when not kept; shared: exactly the
    non-owned keys of the kept rows (each at least once); bad: the first row whose owned keys
    give two lanes (lanes before it computed)."""
    rows, keep, ranges, card, lanes = c["rows"], c["keep"], c["ranges"], c["card"], c["lanes"]
    indptr, indices, _ = csr(rows, c["index_dtype"])
    keep_a = np.zeros(0, np.uint8) if keep is None else np.array(keep, dtype=np.uint8)
    lane, shared, bad = row_lanes(indptr, indices, keep_a, *arrays(ranges), card, lanes, c["start_row"])
    exp_lane, exp_shared, exp_bad = ref_row_lanes(rows, keep, ranges, card, lanes, c["start_row"])
    assert int(bad) == exp_bad
    assert lane.dtype == np.int64 and shared.dtype == np.int64 and len(lane) == len(rows)
    if exp_bad >= 0:
        assert lane[:exp_bad].tolist() == exp_lane[:exp_bad]
        return
    assert lane.tolist() == exp_lane
    assert np.unique(shared).tolist() == sorted(exp_shared)


def test_row_lanes_shared_survive_cache_misses():
    """Thousands of shared keys in one chunk, many of them colliding in the 1,024-slot cache
    and repeated across rows: after np.unique, shared is exactly their set; owned keys never
    appear in it; an empty chunk gives empty arrays."""
    rng = np.random.default_rng(7)
    card, lanes, ranges = 5, 3, [(1 << 33, (1 << 33) + 5 * 4 * 2, 4)]
    base = rng.integers(0, 1 << 32, 3000)
    pool = np.concatenate([base, base + 1024, base + 7 * 1024])  # collisions mod 1,024
    rows = []
    for _ in range(4000):
        row = set(int(k) for k in rng.choice(pool, 6))
        row.add(ranges[0][0] + int(rng.integers(40)))  # one owned key
        rows.append(sorted(row))
    indptr, indices, _ = csr(rows)
    lane, shared, bad = row_lanes(indptr, indices, np.zeros(0, np.uint8), *arrays(ranges), card, lanes, 0)
    exp_lane, exp_shared, exp_bad = ref_row_lanes(rows, None, ranges, card, lanes, 0)
    assert bad == -1 == exp_bad
    assert lane.tolist() == exp_lane
    assert len(shared) >= len(exp_shared)
    assert set(shared.tolist()) == exp_shared
    empty = row_lanes(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8), *arrays(ranges),
                      card, lanes, 0)
    assert len(empty[0]) == 0 and len(empty[1]) == 0 and empty[2] == -1


def test_row_lanes_bad_row_is_the_first_with_two_lanes():
    """Two owned keys of different ids but the same lane are fine; the first row whose ids'
    lanes differ is ``bad``, even when a later row is bad too, and a row not kept is never bad."""
    card, ranges = 64, [(0, 64, 1)]
    lanes = 4
    by_lane: dict[int, list[int]] = {}
    for i in range(card):
        by_lane.setdefault(ref_fmix64(i) % lanes, []).append(i)
    a, b = by_lane[0][:2]
    c = by_lane[1][0]
    rows = [[a, b, 100], [c, 200], [a, c], [b, c]]
    indptr, indices, _ = csr(rows)
    args = (*arrays(ranges), card, lanes, 0)
    lane, shared, bad = row_lanes(indptr, indices, np.zeros(0, np.uint8), *args)
    assert bad == 2 and lane[:2].tolist() == [0, 1]
    lane, shared, bad = row_lanes(indptr, indices, np.array([1, 1, 0, 1], np.uint8), *args)
    assert bad == 3 and lane[:3].tolist() == [0, 1, -1]
    lane, shared, bad = row_lanes(indptr, indices, np.array([1, 1, 0, 0], np.uint8), *args)
    assert bad == -1 and lane.tolist() == [0, 1, -1, -1] and sorted(shared.tolist()) == [100, 200]


# ============================================================================ 3. grouping
@st.composite
def lane_chunks(draw: st.DrawFn) -> dict:
    """Random CSR rows (any indices, of any length), a lane per row in [-1, lanes)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lanes = draw(st.integers(1, 6))
    n = draw(st.integers(0, 30))
    index_dtype = draw(st.sampled_from([np.int32, np.int64, np.uint32, np.uint64]))
    data_dtype = draw(st.sampled_from([np.float32, np.float64]))
    rows = [sorted(int(k) for k in rng.integers(0, 2**31 - 1, int(rng.integers(0, 6)))) for _ in range(n)]
    lane = rng.integers(-1, lanes, n).astype(np.int64)
    if draw(st.booleans()):  # some lanes empty
        lane[lane == lanes - 1] = -1
    data = rng.normal(size=sum(len(r) for r in rows)).astype(data_dtype)
    return {"rows": rows, "lane": lane, "lanes": lanes, "index_dtype": index_dtype, "data": data, "rng": rng}


def ref_grouping(lane: np.ndarray, lanes: int) -> tuple[list[int], list[int]]:
    """The rows of lanes 0, 1, ... each in row order (rows of lane -1 left out), and the
    lanes' boundaries in that list."""
    order = [r for j in range(lanes) for r in range(len(lane)) if lane[r] == j]
    ptr = [0]
    for j in range(lanes):
        ptr.append(ptr[-1] + sum(1 for v in lane if v == j))
    return order, ptr


def row_list(indptr, indices, data, r) -> tuple[list[int], list[float]]:
    a, b = int(indptr[r]), int(indptr[r + 1])
    return indices[a:b].tolist(), data[a:b].tolist()


@MODEST
@given(c=lane_chunks())
def test_group_rows_is_a_stable_grouping_by_lane(c):
    """group_rows: order = the rows grouped by lane, row order within a lane, lane -1 left
    out; lane_ptr = the lanes' counts, cumulated; the output CSR holds those rows (values and
    dtypes kept)."""
    rows, lane, lanes = c["rows"], c["lane"], c["lanes"]
    indptr, indices, data = csr(rows, c["index_dtype"], c["data"])
    order, lane_ptr, out_ptr, out_idx, out_dat = group_rows(indptr, indices, data, lane, lanes, indices[:0], True)
    exp_order, exp_ptr = ref_grouping(lane, lanes)
    assert order.tolist() == exp_order
    assert lane_ptr.tolist() == exp_ptr
    assert out_idx.dtype == indices.dtype and out_dat.dtype == data.dtype
    assert out_ptr[0] == 0 and len(out_ptr) == len(exp_order) + 1
    for i, r in enumerate(exp_order):
        assert row_list(out_ptr, out_idx, out_dat, i) == row_list(indptr, indices, data, r)
    assert out_ptr[-1] == len(out_idx) == sum(len(rows[r]) for r in exp_order)


@MODEST
@given(c=lane_chunks(), key_dtype=st.sampled_from([np.uint32, np.int64]))
def test_group_rows_writes_keys_in_the_given_type_and_values_only_when_asked(c, key_dtype):
    """group_rows with idx_like of another integer type writes the keys in that type (values
    kept: every key of the chunks fits in uint32), and with with_data False writes no values
    (length 0, the input's dtype); the grouping is the same."""
    rows, lane, lanes = c["rows"], c["lane"], c["lanes"]
    indptr, indices, data = csr(rows, c["index_dtype"], c["data"])
    full = group_rows(indptr, indices, data, lane, lanes, indices[:0], True)
    got = group_rows(indptr, indices, data, lane, lanes, np.zeros(0, key_dtype), False)
    for a, b in zip(full[:3], got[:3]):
        assert a.tolist() == b.tolist()
    assert got[3].dtype == key_dtype and got[3].tolist() == full[3].tolist()
    assert len(got[4]) == 0 and got[4].dtype == data.dtype


@MODEST
@given(c=lane_chunks(), weighted=st.booleans())
def test_routed_part_rows_of_and_only(c, weighted):
    """_RoutedPart.rows_of(j) is lane j's rows (CSR, labels, weights) in row order;
    only(j) keeps exactly those (the other lanes empty), with the part's start row and shared
    keys."""
    rows, lane, lanes, rng = c["rows"], c["lane"], c["lanes"], c["rng"]
    indptr, indices, data = csr(rows, c["index_dtype"], c["data"])
    y = rng.integers(0, 2, len(rows)).astype(np.float64)
    w = rng.random(len(rows)) if weighted else None
    order, lane_ptr, out_ptr, out_idx, out_dat = group_rows(indptr, indices, data, lane, lanes, indices[:0], True)
    shared = np.array([3, 9], dtype=np.int64)
    part = _RoutedPart(out_ptr, out_idx, out_dat, y[order], np.zeros(0) if w is None else w[order], lane_ptr,
                       77, shared)
    for j in range(lanes):
        mine = [r for r in range(len(rows)) if lane[r] == j]
        for p in (part, part.only(j)):
            X, yj, wj = p.rows_of(j)
            assert X.shape[0] == len(mine) == len(yj)
            assert [row_list(X.indptr, X.indices, X.data, i) for i in range(len(mine))] == \
                [row_list(indptr, indices, data, r) for r in mine]
            assert yj.tolist() == y[mine].tolist()
            if w is None:
                assert wj is None
            else:  # (a part of no rows has weights of length 0: read as "none")
                assert ([] if wj is None else wj.tolist()) == w[mine].tolist()
        alone = part.only(j)
        assert alone.start_row == 77 and alone.shared.tolist() == [3, 9]
        for i in range(lanes):
            if i != j:
                assert len(alone.rows_of(i)[1]) == 0


@MODEST
@given(c=lane_chunks(), weighted=st.booleans(), ones=st.booleans(), labels=st.sampled_from(["binary", "soft"]),
       wide=st.booleans(), long_row=st.booleans(), routed_narrow=st.booleans())
def test_a_packed_pick_unpacks_to_the_lanes_rows(c, weighted, ones, labels, wide, long_row, routed_narrow):
    """_Packed (what a pick sends to another worker: uint8 row lengths, uint32 keys, no values
    when all are 1, uint8 labels when 0/1) unpacks to only(j), value for value, whichever of
    those packings apply: values all 1 or not, labels 0/1 or not, keys past 2**32, a row of
    256 entries or more; from a routed part as it comes (routed_narrow: as routing stores it,
    uint32 keys when all fit, no values when all are 1, uint8 0/1 labels).  Keys and labels
    stay in their packed types (uint32 when there are keys and every one fits; uint8 when
    every label is 0 or 1), values and row pointers in only(j)'s."""
    from sparsecross.dask.partition_tasks import _Packed

    rows, lane, lanes, rng = c["rows"], c["lane"], c["lanes"], c["rng"]
    if long_row and rows:
        rows[0] = list(range(300))
    if wide and rows and c["index_dtype"] in (np.int64, np.uint64):
        rows[-1] = sorted(set(rows[-1]) | {2**33 + 5})
    data = np.ones(sum(map(len, rows)), c["data"].dtype) if ones else \
        rng.normal(size=sum(map(len, rows))).astype(c["data"].dtype)
    indptr, indices, data = csr(rows, c["index_dtype"], data)
    y = rng.integers(0, 2, len(rows)).astype(np.float64)
    if labels == "soft" and len(y):
        y[0] = 0.25
    w = rng.random(len(rows)) if weighted else None
    fits = not len(indices) or int(indices.max()) < 2**32
    like = np.zeros(0, np.uint32) if routed_narrow and fits else indices[:0]
    keep_data = not (routed_narrow and np.all(data == 1))
    order, lane_ptr, out_ptr, out_idx, out_dat = group_rows(indptr, indices, data, lane, lanes, like, keep_data)
    yo = y[order].astype(np.uint8) if routed_narrow and labels == "binary" else y[order]
    part = _RoutedPart(out_ptr, out_idx, out_dat, yo, np.zeros(0) if w is None else w[order], lane_ptr,
                       77, np.array([3, 9], dtype=np.int64))
    for j in range(lanes):
        want, got = part.only(j), _Packed.of(part, j).unpack()
        mine = [r for r in range(len(rows)) if lane[r] == j]
        X, yj, _ = got.rows_of(j)
        assert [row_list(X.indptr, X.indices, X.data, i) for i in range(len(mine))] == \
            [row_list(indptr, indices, data, r) for r in mine]
        assert yj.tolist() == y[mine].tolist()
        for name in ("indptr", "indices", "y", "lane_ptr", "shared"):
            a, b = getattr(want, name), getattr(got, name)
            assert a.tolist() == b.tolist(), name
            if name not in ("indices", "y"):
                assert a.dtype == b.dtype, name
        assert want.rows_of(j)[0].data.tolist() == X.data.tolist() and X.data.dtype == data.dtype
        narrow = len(want.indices) > 0 and int(want.indices.max()) < 2**32  # (no keys: left as they are)
        assert got.indices.dtype == (np.uint32 if narrow else want.indices.dtype)
        binary = bool(np.all((want.y == 0) | (want.y == 1)))
        assert got.y.dtype == (np.uint8 if binary else want.y.dtype)
        assert want.w.tolist() == got.w.tolist() and got.start_row == 77


# ============================================================================ 4. merge
def ref_merge(g: dict[int, tuple[float, float]], bias: tuple[float, float], reports: list[Report],
              dtype) -> tuple[dict[int, tuple[float, float]], tuple[float, float]]:
    """sharing.py's rule, on dicts and Python floats: a key moved (its (z, n) differs from
    the start, (0, 0) for a key not held) by no lane keeps its value ((0, 0) for a reported
    key not held: only zero values touched it); by one lane: that lane's values; by m > 1: old + (sum in lane order of
    (new - old)) / m in float64, rounded to the state's precision.  The bias: over the lanes
    with rows > 0, the same way (one: its bias; none: unchanged)."""
    moved: dict[int, list[tuple[float, float]]] = {}
    named = set()
    for rep in reports:
        named.update(rep.keys.tolist())
        for k, (z, n) in zip(rep.keys.tolist(), rep.zn.tolist()):
            oz, on = g.get(k, (0.0, 0.0))
            if z != oz or n != on:
                moved.setdefault(k, []).append((z, n))
    out = {}
    for k in sorted(set(g) | named):
        m = moved.get(k, [])
        if not m:
            out[k] = g.get(k, (0.0, 0.0))
        elif len(m) == 1:
            out[k] = m[0]
        else:
            oz, on = g.get(k, (0.0, 0.0))
            dz = dn = 0.0
            for z, n in m:
                dz += z - oz
                dn += n - on
            out[k] = (float(dtype(oz + dz / len(m))), float(dtype(on + dn / len(m))))
    trained = [tuple(rep.bias.tolist()) for rep in reports if rep.rows > 0]
    if len(trained) == 1:
        new_bias = trained[0]
    elif not trained:
        new_bias = bias
    else:
        dz = sum(b[0] - bias[0] for b in trained)
        dn = sum(b[1] - bias[1] for b in trained)
        new_bias = (bias[0] + dz / len(trained), bias[1] + dn / len(trained))
    return out, new_bias


@st.composite
def merges(draw: st.DrawFn) -> dict:
    """A start G (sorted keys, some of 0..59) and 0-5 lane reports over some of the same
    keys: each key unchanged (G's value, or (0, 0) when G lacks it), or z, n or both changed;
    rows 0 (a lane that trained nothing) or more."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    key_dtype = draw(st.sampled_from([np.uint32, np.uint64]))
    scale = draw(st.sampled_from([1.0, 1e-3, 1e6]))

    def values(m: int) -> np.ndarray:
        return np.stack([rng.normal(0, scale, m), rng.random(m) * scale * 10], axis=1).astype(dtype)

    keys = np.sort(rng.choice(60, int(rng.integers(0, 30)), replace=False)).astype(key_dtype)
    g = Shared(keys, values(len(keys)), np.array([rng.normal(), rng.random()]))
    held = dict(zip(keys.tolist(), g.zn.tolist()))
    reports = []
    for _ in range(draw(st.integers(0, 5))):
        rk = np.sort(rng.choice(60, int(rng.integers(0, 30)), replace=False)).astype(key_dtype)
        zn = np.array([held.get(k, (0.0, 0.0)) for k in rk.tolist()], dtype=dtype).reshape(-1, 2)
        how = rng.integers(0, 4, len(rk))  # 0: unchanged, 1: z, 2: n, 3: both
        new = values(len(rk))
        zn[how & 1 == 1, 0] = new[how & 1 == 1, 0]
        zn[how & 2 == 2, 1] = new[how & 2 == 2, 1]
        rows = int(rng.choice([0, 0, 1, 100]))
        bias = np.array([rng.normal(), rng.random()]) if rows else g.bias.copy() + rng.normal()
        reports.append(Report(rk, zn, bias, np.zeros(3), rows, 0))
    return {"g": g, "reports": reports, "dtype": dtype}


def as_dict(s: Shared) -> dict[int, tuple[float, float]]:
    return dict(zip(s.keys.tolist(), map(tuple, s.zn.tolist())))


@MODEST
@given(m=merges())
def test_merge_reports_follows_the_rule(m):
    """merge_reports = the dict-based rule, to the bit (float32 and float64 states, uint32
    and uint64 keys), keys sorted and of G's dtype, values of G's precision."""
    g, reports, dtype = m["g"], m["reports"], m["dtype"]
    start = Shared(g.keys.copy(), g.zn.copy(), g.bias.copy())
    merged = merge_reports(g, reports)
    exp, exp_bias = ref_merge(as_dict(g), tuple(g.bias.tolist()), reports, dtype)
    assert merged.keys.tolist() == list(exp)
    assert merged.keys.dtype == g.keys.dtype and merged.zn.dtype == dtype
    assert merged.zn.shape == (len(exp), 2)
    assert as_dict(merged) == exp
    assert merged.bias.dtype == np.float64 and tuple(merged.bias.tolist()) == exp_bias
    # G is not changed in place
    assert np.array_equal(g.keys, start.keys) and np.array_equal(g.zn, start.zn)
    assert np.array_equal(g.bias, start.bias)


@MODEST
@given(m=merges())
def test_merge_reports_order_matters_only_by_rounding(m):
    """Reversing the lanes gives the same keys, the same values of keys moved by at most one
    lane (to the bit), and the values of the others within float rounding; bias likewise."""
    g, reports, dtype = m["g"], m["reports"], m["dtype"]
    a, b = merge_reports(g, reports), merge_reports(g, reports[::-1])
    assert np.array_equal(a.keys, b.keys)
    held = as_dict(g)
    movers = {k: sum(1 for r in reports for kk, zn in zip(r.keys.tolist(), r.zn.tolist())
                     if kk == k and tuple(zn) != held.get(k, (0.0, 0.0))) for k in a.keys.tolist()}
    single = np.array([movers[k] <= 1 for k in a.keys.tolist()], dtype=bool)
    assert np.array_equal(a.zn[single], b.zn[single])
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-9)
    scale = max([1.0, float(np.abs(g.zn).max(initial=0.0))]
                + [float(np.abs(r.zn).max(initial=0.0)) for r in reports])  # (the terms' size)
    assert np.allclose(a.zn / scale, b.zn / scale, **tol)
    assert np.allclose(a.bias, b.bias, rtol=1e-12, atol=1e-12)


@MODEST
@given(m=merges(), rows=st.integers(1, 5))
def test_one_report_that_moved_everything_is_taken_exactly(m, rows):
    """One lane that moved every key of G (and more): the merge is its report, to the bit,
    and its bias."""
    g, dtype = m["g"], m["dtype"]
    rng = np.random.default_rng(len(g.keys))
    keys = np.union1d(g.keys, np.array([61, 70, 1000], dtype=g.keys.dtype))
    old = np.array([as_dict(g).get(k, (0.0, 0.0)) for k in keys.tolist()], dtype=dtype).reshape(-1, 2)
    zn = np.where(old == 0, 1.0, old * (2 + rng.random((len(keys), 2)))).astype(dtype)  # (never old)
    assert (zn != old).all()
    rep = Report(keys, zn, np.array([0.125, 3.0]), np.zeros(3), rows, 0)
    merged = merge_reports(g, [rep])
    assert np.array_equal(merged.keys, keys) and merged.keys.dtype == keys.dtype
    assert merged.zn.dtype == zn.dtype
    assert np.array_equal(merged.zn.view(np.uint8), zn.view(np.uint8))
    assert merged.bias.tolist() == [0.125, 3.0]


@MODEST
@given(m=merges(), n_lanes=st.integers(0, 4), rows=st.sampled_from([0, 3]))
def test_reports_that_moved_nothing_leave_g_unchanged(m, n_lanes, rows):
    """Lanes that report G's values (any subset of its keys) and (0, 0) for keys G lacks,
    with G's bias: G comes back unchanged (bits, bias), with the keys it lacked at (0, 0) (keys
    only zero values touched: kept, as single-node training keeps them)."""
    g, dtype = m["g"], m["dtype"]
    rng = np.random.default_rng(n_lanes + 10 * len(g.keys))
    held = as_dict(g)
    reports = []
    for _ in range(n_lanes):
        keys = np.sort(rng.choice(80, int(rng.integers(0, 40)), replace=False)).astype(g.keys.dtype)
        zn = np.array([held.get(k, (0.0, 0.0)) for k in keys.tolist()], dtype=dtype).reshape(-1, 2)
        reports.append(Report(keys, zn, g.bias.copy(), np.zeros(3), rows, 0))
    merged = merge_reports(g, reports)
    new = np.setdiff1d(np.concatenate([g.keys] + [r.keys for r in reports]), g.keys)
    assert np.array_equal(merged.keys, np.union1d(g.keys, new)) and merged.keys.dtype == g.keys.dtype
    at = np.searchsorted(merged.keys, g.keys)
    assert np.array_equal(merged.zn[at].view(np.uint8), g.zn.view(np.uint8))
    assert (merged.zn[~np.isin(merged.keys, g.keys)] == 0).all()
    assert merged.bias.tolist() == g.bias.tolist()


def test_merge_bias_counts_only_lanes_that_trained_rows():
    """The bias: lanes with rows == 0 don't count (whatever bias they report); one trained
    lane's bias is taken as is; several: the start plus the mean of their deltas."""
    g = Shared(np.zeros(0, np.uint32), np.zeros((0, 2), np.float32), np.array([1.0, 2.0]))

    def rep(bias, rows):
        return Report(np.zeros(0, np.uint32), np.zeros((0, 2), np.float32), np.array(bias), np.zeros(3), rows, 0)

    assert merge_reports(g, []).bias.tolist() == [1.0, 2.0]
    assert merge_reports(g, [rep([9.0, 9.0], 0)]).bias.tolist() == [1.0, 2.0]
    assert merge_reports(g, [rep([9.0, 9.0], 0), rep([1.5, 2.5], 4)]).bias.tolist() == [1.5, 2.5]
    # two trained lanes: 1 + ((2 - 1) + (4 - 1)) / 2 = 3; 2 + ((3 - 2) + (2 - 2)) / 2 = 2.5
    assert merge_reports(g, [rep([2.0, 3.0], 1), rep([7.0, 7.0], 0), rep([4.0, 2.0], 1)]).bias.tolist() \
        == [3.0, 2.5]


def test_merge_keys_worked_example():
    """A worked example of every case of the rule, in float32, hand-computed: unmoved held,
    unmoved not held (kept at (0, 0): only zero values touched it), moved by one lane (held and
    not), moved by two."""
    g = Shared(np.array([1, 2, 3], np.uint32), np.array([[1, 1], [2, 2], [3, 3]], np.float32),
               np.zeros(2))
    r0 = Report(np.array([1, 2, 4, 5], np.uint32), np.array([[1, 1], [2.5, 2], [0, 0], [7, 1]], np.float32),
                np.zeros(2), np.zeros(3), 1, 0)
    r1 = Report(np.array([2, 3, 6], np.uint32), np.array([[3.5, 4], [3, 3], [0, 0]], np.float32),
                np.zeros(2), np.zeros(3), 1, 0)
    merged = merge_reports(g, [r0, r1])
    # key 1: unmoved; 2: moved by both: 2 + (0.5 + 1.5) / 2 = 3, n 2 + (0 + 2) / 2 = 3;
    # 3: unmoved; 4, 6: (0, 0) not held: kept at (0, 0); 5: r0's
    assert as_dict(merged) == {1: (1.0, 1.0), 2: (3.0, 3.0), 3: (3.0, 3.0), 4: (0.0, 0.0), 5: (7.0, 1.0),
                               6: (0.0, 0.0)}


# ============================================================================ 5. partition_of
SPEC_TOML = """
version = 1
[label]
column = "y"
[hashing]
bits = 12
seed = 5

[[features]]
name = "cell"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = 120.0

[[features]]
name = "age"
kind = "bucket"
column = "age"
boundaries = [20.0, 40.0, 60.0]

[[features]]
name = "dev"
kind = "categorical"
column = "device"

[[features]]
name = "band"
kind = "lat"
column = "lat"
resolution_arcmin = 600.0
standalone = false

[[features]]
name = "lonband"
kind = "lon"
column = "lon"
resolution_arcmin = 600.0
standalone = false

[[crosses]]
features = ["age", "cell"]

[[crosses]]
features = ["cell", "age"]

[[crosses]]
features = ["age", "cell", "band"]

[[crosses]]
features = ["cell", "dev"]

[[crosses]]
features = ["cell", "band"]
mode = "hashed"

[[crosses]]
features = ["lonband", "dev"]
"""


def ref_owned_ranges(text: str, name: str) -> tuple[list[tuple[int, int, int]], int]:
    """From the reference layout: the feature's own block (stride 1) and every exact cross
    that includes it (stride: the product of the cardinalities of the components after it)."""
    s = _parse_spec(tomllib.loads(text))
    f = next(f for f in s.features if f.name == name)
    out = []
    if name in s.feature_offsets:
        out.append((s.feature_offsets[name], s.feature_offsets[name] + f.cardinality, 1))
    for c in s.crosses:
        names = [x.name for x in c.features]
        if c.mode == "exact" and name in names:
            stride = math.prod(x.cardinality for x in c.features[names.index(name) + 1:])
            out.append((s.cross_offsets[c.name], s.cross_offsets[c.name] + c.cardinality, stride))
    return sorted(out), f.cardinality


@pytest.mark.parametrize("name,n_ranges", [("cell", 4), ("age", 4), ("band", 1)])
@pytest.mark.parametrize("lanes", [1, 3, 64])
def test_partition_of_owns_the_features_exact_blocks(name, n_ranges, lanes):
    """partition_of's ranges are the feature's own block and its exact crosses' blocks of
    the spec's layout (by the reference layout: hashed crosses own nothing); card is the
    feature's cardinality, the missing id included."""
    spec = parse_spec(SPEC_TOML)
    part = partition_of(spec, name, lanes)
    exp, card = ref_owned_ranges(SPEC_TOML, name)
    assert len(exp) == n_ranges
    assert sorted(zip(part.lo.tolist(), part.hi.tolist(), part.stride.tolist())) == exp
    assert part.lo.dtype == part.hi.dtype == part.stride.dtype == np.int64
    assert (part.name, part.lanes, part.card) == (name, lanes, card)
    # and from the spec's own outputs: every range is an exact block of the spec
    blocks = {(o.offset, o.offset + o.cardinality) for o in spec.outputs if o.kind == 0}
    assert {(lo, hi) for lo, hi, _ in exp} <= blocks


@pytest.mark.parametrize("name", ["cell", "age", "band"])
def test_a_rows_owned_keys_all_go_to_its_values_lane(name):
    """On rows featurized by the reference featurizer: every owned key of a row (own block and
    exact crosses) has the lane fmix64(the row's local id of the feature) % lanes, so
    row_lanes puts the row there and no row is bad; the row's other keys are shared."""
    spec_dict = tomllib.loads(SPEC_TOML)
    part = partition_of(parse_spec(SPEC_TOML), name, 5)
    feature = next(f for f in _parse_spec(spec_dict).features if f.name == name)
    rng = np.random.default_rng(3)
    raw = []
    for i in range(120):
        missing = i % 10 == 0
        raw.append({"y": int(rng.integers(0, 2)),
                    "lat": None if missing else float(rng.uniform(-90, 90)),
                    "lon": float(rng.uniform(-180, 180)),
                    "age": None if i % 7 == 0 else float(rng.uniform(0, 90)),
                    "device": str(rng.choice(["a", "b", "c"]))})
    csr_rows, _, _, _ = reference_featurize(spec_dict, raw)
    rows = [[col for col, _ in r] for r in csr_rows]
    ranges = list(zip(part.lo.tolist(), part.hi.tolist(), part.stride.tolist()))
    expected = [ref_fmix64(_exact_local_id(feature, row, i)) % 5 for i, row in enumerate(raw)]
    for row, e in zip(rows, expected):
        got = {ref_lane(k, ranges, part.card, 5) for k in row} - {-1}
        assert got == {e}
    indptr, indices, _ = csr(rows)
    lane, shared, bad = row_lanes(indptr, indices, np.zeros(0, np.uint8), *part.args()[:3], part.card, 5, 0)
    assert bad == -1 and lane.tolist() == expected
    assert set(shared.tolist()) == {k for row in rows for k in row if ref_lane(k, ranges, part.card, 5) < 0}


@pytest.mark.parametrize("name,words", [
    ("nope", ["names no feature", "'nope'"]),
    ("dev", ["'dev'", "hashed"]),
    ("lonband", ["'lonband'", "no column of its own nor an exact cross"]),
    (3, ["got 3"]),
    (None, ["got None"]),
    (["cell"], ["got ['cell']"]),
])
def test_partition_of_refuses_what_cannot_own_keys(name, words):
    """SparseCrossError naming the feature (or the value given) for an unknown name, a hashed
    feature, a feature without exact columns, and a value that is not a string; the message
    lists the spec's exact features."""
    with pytest.raises(SparseCrossError) as info:
        partition_of(parse_spec(SPEC_TOML), name, 2)
    msg = str(info.value)
    for w in words:
        assert w in msg
    assert "'cell'" in msg and "'age'" in msg


def test_partition_of_a_spec_without_exact_features():
    """A spec of categoricals only: refused, saying it has no exact feature."""
    spec = parse_spec({"label": {"column": "y"}, "features": [{"name": "c", "kind": "categorical", "column": "x"}]})
    with pytest.raises(SparseCrossError, match="'c' is hashed.*no exact feature"):
        partition_of(spec, "c", 2)


def test_partition_of_the_shipped_synthetic_spec():
    """data/specs/synthetic.toml by its geo cell: one range, the cell block at column 0."""
    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    exp, card = ref_owned_ranges((ROOT / "data" / "specs" / "synthetic.toml").read_text(), "cell")
    part = partition_of(spec, "cell", 4)
    assert list(zip(part.lo.tolist(), part.hi.tolist(), part.stride.tolist())) == exp == [(0, card, 1)]
    assert part.card == card


# ============================================================================ 6. lane tasks
N_ROWS, GROUP = 6_000, 1_000


@pytest.fixture(scope="module")
def parquet(tmp_path_factory) -> Path:
    return sparsecross.generate(tmp_path_factory.mktemp("pkern") / "train.parquet", rows=N_ROWS, seed=0,
                                row_group_size=GROUP)


@pytest.fixture(scope="module")
def spec():
    return load_spec(ROOT / "data" / "specs" / "synthetic.toml")


def new_token() -> str:
    return f"test-pkern-{uuid.uuid4().hex}"


def start_lanes(token: str, spec, part: Partition, dtype: str) -> Shared:
    key_dtype = FTRLState(spec.n_columns, dtype).table.dtype
    shared = Shared.empty(key_dtype, np.dtype(dtype), np.zeros(2))
    for j in range(part.lanes):
        _task_lane_init(token, j, 0, np.zeros(0, key_dtype), np.zeros((0, 2), dtype), shared, spec.n_columns,
                        dtype, np.zeros(3))
    return shared


def run_rounds(path: Path, spec, part: Partition, dtype: str, holdout, epochs: int, per_round: int,
               token: str) -> tuple[Shared, list[Report], int, int]:
    """What partitioned.py's loop does, in-process: route each round's chunks, train every
    lane on them after merging the reports of the round before; the last round dumps the
    lanes' owned rows.  Returns the client's merged shared keys, the last reports, the rows
    trained and the next step."""
    chunks, total = _plan(str(path), spec)
    rounds = [chunks[i:i + per_round] for i in range(0, len(chunks), per_round)]
    params = TrainParams(state_dtype=dtype).ftrl
    salt = holdout_salt(spec.hashing.seed)
    shared = start_lanes(token, spec, part, dtype)
    previous = None
    step, rows = 0, 0
    schedule = [(e, r) for e in range(epochs) for r in rounds]
    for i, (e, rnd) in enumerate(schedule):
        routed = [_route(c, spec, 65_536, holdout, salt, part) for c in rnd]
        dump = -1.0 if i + 1 == len(schedule) else None
        reports = [_task_lane(token, j, step, params, part, dump, (e, rnd[0].start_row, total), previous,
                              *[[p.only(j) for p in r] if j % 2 else r for r in routed])
                   for j in range(part.lanes)]
        shared = merge_reports(shared, reports)
        previous, step = reports, step + 1
        rows += sum(r.rows for r in reports)
    return shared, previous, rows, step


@pytest.mark.parametrize("dtype,holdout,epochs,per_round", [("float32", None, 1, 1), ("float64", 0.25, 2, 2),
                                                            ("float32", 0.1, 1, 4)])
def test_one_lane_equals_single_node_train(parquet, spec, dtype, holdout, epochs, per_round):
    """lanes=1: rounds of _route + _task_lane (merging the reports between rounds as the
    client does) leave the lane's state equal to single-node sparsecross.train's, to the bit
    (keys, z, n, bias, touched); the last round's dump plus the merged shared keys is that
    state too, and the lane trained every training row."""
    ref_model, ref_state = sparsecross.train(parquet, spec, return_state=True, state_dtype=dtype, holdout=holdout,
                                             epochs=epochs)
    part = partition_of(spec, "cell", 1)
    token = new_token()
    try:
        shared, last, rows, _ = run_rounds(parquet, spec, part, dtype, holdout, epochs, per_round, token)
        state = _LANES[(token, 0)].state
        assert state.values.dtype == ref_state.values.dtype
        assert state.as_dict() == ref_state.as_dict()
        assert state.bias.tolist() == ref_state.bias.tolist()
        assert state.touched == ref_state.touched
        keys, zn = last[0].dump
        assert part.owned(keys).all() and not part.owned(shared.keys).any()
        whole = dict(zip(keys.tolist(), map(tuple, zn.tolist()))) | as_dict(shared)
        assert len(whole) == len(keys) + len(shared.keys)
        assert whole == ref_state.as_dict()
        assert shared.bias.tolist() == ref_state.bias.tolist()
        kept = N_ROWS if holdout is None else N_ROWS - int(np.sum(_holdout_rows(spec, holdout)))
        assert rows == kept * epochs
    finally:
        _drop_lanes(token)
    assert not any(k[0] == token for k in _LANES)


def _holdout_rows(spec, holdout) -> np.ndarray:
    return _holdout_mask(0, N_ROWS, holdout, holdout_salt(spec.hashing.seed)) != 0


def test_lanes_own_their_keys_and_cover_the_single_node_keys(parquet, spec):
    """lanes=3 (some lanes given only their rows, others whole chunks): each lane's owned keys
    are of its lane only, no owned key is in two lanes; owned plus shared keys are the
    single-node run's keys; after one more step without rows (merging the last reports),
    every lane holds exactly its owned keys (as dumped) and every shared key with the
    client's merged values and bias."""
    ref_state = sparsecross.train(parquet, spec, return_state=True)[1]
    part = partition_of(spec, "cell", 3)
    token = new_token()
    try:
        shared, last, rows, step = run_rounds(parquet, spec, part, "float32", None, 1, 3, token)
        assert rows == N_ROWS
        owned: set[int] = set()
        for j, rep in enumerate(last):
            keys, _ = rep.dump
            assert (part.lanes_of(keys) == j).all()
            assert owned.isdisjoint(keys.tolist())
            owned |= set(keys.tolist())
            assert rep.owned == len(keys)
        assert owned | set(shared.keys.tolist()) == set(ref_state.as_dict())
        assert len(owned) + len(shared.keys) == ref_state.touched
        params = TrainParams().ftrl
        for j, rep in enumerate(last):
            again = _task_lane(token, j, step, params, part, None, (0, N_ROWS, N_ROWS), last)
            assert again.rows == 0
            lane = _LANES[(token, j)]
            assert lane.state.as_dict() == dict(zip(rep.dump[0].tolist(), map(tuple, rep.dump[1].tolist()))) \
                | as_dict(shared)
            assert lane.state.bias.tolist() == shared.bias.tolist()
    finally:
        _drop_lanes(token)


def test_task_lane_refuses_a_wrong_version_and_a_lost_lane(spec):
    """_task_lane trains only the step its lane expects: a lane at step 0 refuses step 1 (and
    its state is left as it was); a lane that is not here (another token, a dropped run) is
    lost; a dropped run's lane cannot be made again."""
    part = partition_of(spec, "cell", 1)
    params = TrainParams().ftrl
    token = new_token()
    try:
        start_lanes(token, spec, part, "float32")
        with pytest.raises(_ShardLost, match="step 0, not 1"):
            _task_lane(token, 0, 1, params, part, None, (0, 0, N_ROWS), None)
        assert _LANES[(token, 0)].version == 0
        rep = _task_lane(token, 0, 0, params, part, None, (0, 0, N_ROWS), None)  # (no rows: a no-op step)
        assert rep.rows == 0 and _LANES[(token, 0)].version == 1
        with pytest.raises(_ShardLost, match="not on this worker"):
            _task_lane(token + "x", 0, 1, params, part, None, (0, 0, N_ROWS), None)
        with pytest.raises(_ShardLost, match="lane 1"):
            _task_lane(token, 1, 1, params, part, None, (0, 0, N_ROWS), None)
    finally:
        assert _drop_lanes(token) == 1
    with pytest.raises(_ShardLost, match="not on this worker"):
        _task_lane(token, 0, 1, params, part, None, (0, 0, N_ROWS), None)
    with pytest.raises(_ShardLost, match="stopped"):
        start_lanes(token, spec, part, "float32")
    assert (token, 0) not in _LANES


def test_task_lane_failing_half_way_leaves_the_lane_refused(parquet, spec):
    """A lane task that fails after it started training (its second part is broken) leaves
    the lane at version -1: the same step run again is refused (_ShardLost), not trained twice."""
    part = partition_of(spec, "cell", 1)
    params = TrainParams().ftrl
    chunks, total = _plan(str(parquet), spec)
    good = _route(chunks[0], spec, 65_536, None, holdout_salt(spec.hashing.seed), part)
    broken = _RoutedPart(good[0].indptr, good[0].indices, good[0].data, good[0].y, good[0].w,
                         np.zeros(1, np.int64), good[0].start_row, good[0].shared)  # (no lane 0)
    token = new_token()
    try:
        start_lanes(token, spec, part, "float32")
        with pytest.raises(IndexError):
            _task_lane(token, 0, 0, params, part, None, (0, 0, total), None, good, [broken])
        assert _LANES[(token, 0)].version == -1
        assert _LANES[(token, 0)].state.touched > 0  # (it did train the first part)
        with pytest.raises(_ShardLost, match="failed half-way"):
            _task_lane(token, 0, 0, params, part, None, (0, 0, total), None, good)
    finally:
        _drop_lanes(token)


def test_put_shared_writes_merged_keys_into_a_state():
    """_put_shared: keys the state holds get the merged (z, n), absent ones are inserted (the
    table growing as needed), other keys are left alone, and the bias is set."""
    rng = np.random.default_rng(5)
    state = FTRLState(1 << 20, "float64", capacity=512)
    own = (np.arange(0, 200) * 3).astype(state.table.dtype)
    own_zn = rng.normal(size=(200, 2))
    fill_table(state.table, state.values, state.count, own, own_zn)
    before = state.as_dict()
    keys = np.unique(np.concatenate([own[::5], np.arange(1, 3000, 2)])).astype(np.uint32)
    shared = Shared(keys, rng.normal(size=(len(keys), 2)), np.array([0.5, 7.0]))
    _put_shared(state, shared)
    expected = before | {int(k): (float(z), float(n)) for k, (z, n) in zip(keys, shared.zn)}
    assert state.as_dict() == expected
    assert state.touched == len(expected)
    assert state.bias.tolist() == [0.5, 7.0]


def test_dask_counts_the_bytes_of_routed_parts_picks_and_reports():
    """Dask's memory accounting (and its transfer counters) measured a list of routed parts as
    a few hundred bytes whatever their arrays held (its fallback for unknown objects): now
    their arrays' bytes, for routed parts, packed picks and lane reports."""
    sizeof = pytest.importorskip("dask.sizeof").sizeof
    from sparsecross.dask.partition_tasks import _Packed

    n, nnz = 1000, 5000
    part = _RoutedPart(np.arange(n + 1, dtype=np.int64) * 5, np.arange(nnz, dtype=np.int64),
                       np.ones(nnz, np.float32), np.zeros(n), np.zeros(0), np.array([0, n], np.int64), 0,
                       np.zeros(3, np.int64))
    arrays = (n + 1) * 8 + nnz * 8 + nnz * 4 + n * 8 + 2 * 8 + 3 * 8
    assert arrays <= sizeof(part) < arrays + 1024
    assert sizeof([part, part]) >= 2 * arrays
    packed = _Packed.of(part, 0)
    assert n + nnz * 4 + n <= sizeof(packed) < n + nnz * 4 + n + 1024  # uint8 lengths and labels, uint32 keys
    rep = Report(np.zeros(100, np.uint64), np.zeros((100, 2), np.float32), np.zeros(2), np.zeros(3), 1, 1,
                 (np.zeros(1000, np.uint64), np.zeros((1000, 2), np.float32)))
    assert sizeof(rep) >= 100 * 8 + 800 + 1000 * 8 + 8000


def test_a_lane_reports_only_the_shared_keys_it_moved():
    """A lane's report names only the shared keys whose (z, n) it changed in the round and the
    chunks' shared keys new to its table (not a chunk's keys that only other lanes hold, nor
    the merged keys it left alone), so a round's reports are the size of what changed; the
    count of shared keys its table holds covers all of them (the lane's owned count is the
    rest)."""
    from sparsecross._kernels.lanes import fill_table
    from sparsecross.dask.partition_tasks import _moved_shared

    state = FTRLState(1 << 20, "float32")
    kt = state.table.dtype
    g = Shared(np.array([10, 20, 30], dtype=kt), np.array([[1, 1], [2, 2], [3, 3]], np.float32), np.zeros(2))
    fill_table(state.table, state.values, state.count, g.keys, g.zn)
    fill_table(state.table, state.values, state.count, np.array([40, 7], dtype=kt),
               np.array([[4, 4], [0.5, 0.5]], np.float32))  # 40: new shared key; 7: an owned key
    cur = np.empty((1, 2), np.float32)
    slots = np.empty(1, np.int64)
    from sparsecross._kernels.lanes import gather_zn

    gather_zn(state.table, state.values, np.array([20], dtype=kt), cur, slots)
    state.values[slots[0], 1] = 2.5  # the lane moved key 20
    keys, zn, held = _moved_shared(state, g, [np.array([10, 40, 50], dtype=kt)])  # 50: another lane's
    assert keys.tolist() == [20, 40]
    assert zn.tolist() == [[2.5, 2.0], [4.0, 4.0]]
    assert held == 4 and state.touched - held == 1  # 10, 20, 30, 40 shared; 7 owned
