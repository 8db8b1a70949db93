"""Kernels of data-parallel training (``sparsecross/_kernels/lanes.py``) against independent
references: the hashed single-node FTRL pass (itself checked against the dict-based oracle in
``test_train.py``), plain-Python first-appearance numbering, and the state's own export."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecross import FTRLState
from sparsecross._kernels.ftrl import FTRLParams
from sparsecross._kernels.lanes import (
    fill_table,
    ftrl_pass_local,
    gather_zn,
    items_weights,
    local_ids,
    merge_lanes,
    shard_of,
    table_items,
    table_live_items,
)
from sparsecross.featurize import Batch
from sparsecross.state import sorted_nonzero
from sparsecross.train import train_batch

N_COLUMNS = 1 << 40  # wide enough for uint64 keys when asked


@st.composite
def chunks(draw: st.DrawFn) -> dict:
    """A random CSR chunk (canonical rows), labels, optional weights and mask, and a random
    starting state over some of its columns and others."""
    n_rows = draw(st.integers(1, 40))
    n_cols = draw(st.integers(1, 30))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    dense = rng.random((n_rows, n_cols)) < draw(st.floats(0.05, 0.6))
    values = rng.choice([1.0, 0.5, -2.0, 3.25], size=(n_rows, n_cols)).astype(np.float32)
    X = sp.csr_array(np.where(dense, values, 0).astype(np.float32))
    X.indices = X.indices.astype(np.int64) * draw(st.sampled_from([1, 7919, 1 << 33]))  # spread the ids
    X.indptr = X.indptr.astype(np.int64)
    X.sort_indices()
    y = (rng.random(n_rows) < 0.4).astype(np.float64)
    sw = rng.choice([0.5, 1.0, 2.0], size=n_rows) if draw(st.booleans()) else None
    mask = (rng.random(n_rows) < 0.3).astype(np.uint8) if draw(st.booleans()) else np.zeros(0, np.uint8)
    # a starting state: a few of the chunk's columns and a few others
    cols = np.unique(X.indices)
    start_keys = np.unique(np.concatenate([cols[rng.random(len(cols)) < 0.5], rng.integers(0, 1 << 30, 5)]))
    start_zn = np.stack([rng.normal(0, 2, len(start_keys)), rng.random(len(start_keys)) * 5], axis=1)
    return {"X": X, "y": y, "sw": sw, "mask": mask, "keys": start_keys, "zn": start_zn,
            "bias": np.array([rng.normal(), rng.random()]), "seed": seed}


def state_from(keys: np.ndarray, zn: np.ndarray, bias: np.ndarray, dtype: str, wide: bool) -> FTRLState:
    st_ = FTRLState(N_COLUMNS if wide else 1 << 31, dtype, capacity=4 * len(keys) + 16)
    fill_table(st_.table, st_.values, st_.count, keys.astype(st_.table.dtype), zn.astype(st_.values.dtype))
    st_.bias[:] = bias
    return st_


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=chunks(), dtype=st.sampled_from(["float32", "float64"]),
       params=st.sampled_from([FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0), FTRLParams(0.5, 0.0, 0.2, 0.3, 0.1),
                               FTRLParams(0.05, 2.0, 0.0, 1.0, 0.0)]))
def test_local_pass_equals_hashed_pass_to_the_bit(c, dtype, params):
    """A lane (renumbered entries, dense (z, n)) = ftrl_pass on the hashed table, bit for bit."""
    X = c["X"]
    wide = bool(X.indices.max(initial=0) >= (1 << 31))
    hashed = state_from(c["keys"], c["zn"], c["bias"], dtype, wide)
    start = hashed.copy()
    acc_h = np.array([0.25, 1.0, 1.0])
    train_batch(hashed, Batch(X, c["y"], c["sw"], 0), params, c["mask"], acc_h)

    proto = np.full(1, np.iinfo(hashed.table.dtype).max, dtype=hashed.table.dtype)
    keys, local = local_ids(X.indptr, X.indices, c["mask"], proto)
    zn = np.empty((len(keys), 2), dtype=hashed.values.dtype)
    gather_zn(start.table, start.values, keys, zn, np.zeros(0, np.int64))
    bias = start.bias.copy()
    acc_l = np.array([0.25, 1.0, 1.0])
    sw = c["sw"] if c["sw"] is not None else np.zeros(0)
    ftrl_pass_local(X.indptr, local, X.data, c["y"], sw, c["mask"], zn, bias, params, acc_l)

    after = np.empty_like(zn)
    gather_zn(hashed.table, hashed.values, keys, after, np.zeros(0, np.int64))
    assert np.array_equal(zn.view(np.uint8), after.view(np.uint8))  # bits, not approximate values
    assert np.array_equal(bias, hashed.bias)
    assert np.array_equal(acc_l, acc_h)
    # the lane touched exactly the keys of the unmasked rows
    trained_rows = [r for r in range(X.shape[0]) if not (len(c["mask"]) and c["mask"][r])]
    expected = {int(k) for r in trained_rows for k in X.indices[X.indptr[r]:X.indptr[r + 1]]}
    assert {int(k) for k in keys} == expected
    assert hashed.touched == len(set(map(int, c["keys"])) | expected)


@settings(max_examples=150, deadline=None)
@given(c=chunks(), wide=st.booleans())
def test_local_ids_number_keys_by_first_appearance(c, wide):
    X, mask = c["X"], c["mask"]
    dtype = np.uint64 if wide else np.uint32
    if not wide and X.indices.max(initial=0) >= np.iinfo(np.uint32).max:
        X = X.copy()
        X.indices = X.indices % 4_000_000_000
    proto = np.full(1, np.iinfo(dtype).max, dtype=dtype)
    keys, local = local_ids(X.indptr, X.indices, mask, proto)
    ids: dict[int, int] = {}
    for r in range(X.shape[0]):
        for k in range(X.indptr[r], X.indptr[r + 1]):
            if len(mask) and mask[r]:
                assert local[k] == -1
                continue
            key = int(X.indices[k])
            ids.setdefault(key, len(ids))
            assert local[k] == ids[key]
    assert keys.dtype == dtype
    assert [int(k) for k in keys] == list(ids)


@pytest.mark.parametrize("dtype,scale", [(np.uint32, 1), (np.uint64, 1), (np.uint64, 1 << 33)])
def test_local_ids_grow_their_scratch_set(dtype, scale):
    """More distinct keys than the first guess (a quarter of the entries): still exact, for
    narrow keys and for wide ones above 2^32 (keys x 2^33)."""
    rng = np.random.default_rng(1)
    indices = rng.permutation(50_000).astype(np.int64) * scale
    indptr = np.arange(0, 50_001, 1, dtype=np.int64)
    keys, local = local_ids(indptr, indices, np.zeros(0, np.uint8), np.full(1, np.iinfo(dtype).max, dtype))
    assert keys.dtype == dtype
    assert np.array_equal(keys, indices.astype(dtype))
    assert np.array_equal(local, np.arange(50_000, dtype=np.int32))


def _first_appearance_ids(indptr, indices, mask, dtype):
    """Plain-Python ``local_ids``: keys by first appearance, -1 for masked rows' entries."""
    ids: dict[int, int] = {}
    local = np.full(len(indices), -1, np.int32)
    for r in range(len(indptr) - 1):
        if len(mask) and mask[r]:
            continue
        for k in range(indptr[r], indptr[r + 1]):
            local[k] = ids.setdefault(int(dtype(indices[k])), len(ids))
    return np.array(list(ids), dtype), local


@pytest.mark.parametrize("dtype,scale", [(np.uint32, 1), (np.uint64, 1), (np.uint64, 1 << 33)])
def test_local_ids_grow_with_repeats_and_masked_rows(dtype, scale):
    """Growth of the scratch set while keys repeat (the hot cache and set both hit) and rows
    are masked, with and without a mask."""
    rng = np.random.default_rng(5)
    n = 30_000
    indices = rng.integers(0, 20_000, 3 * n).astype(np.int64) * scale
    indptr = np.arange(0, 3 * n + 1, 3, dtype=np.int64)
    mask = (rng.random(n) < 0.2).astype(np.uint8)
    for m in (mask, np.zeros(0, np.uint8)):
        keys, local = local_ids(indptr, indices, m, np.full(1, np.iinfo(dtype).max, dtype))
        want_keys, want_local = _first_appearance_ids(indptr, indices, m, dtype)
        assert keys.dtype == dtype
        assert np.array_equal(keys, want_keys) and np.array_equal(local, want_local)


def test_local_ids_chunks_shorter_than_the_prefetch_window():
    for nnz in range(40):
        indices = np.arange(nnz, dtype=np.int64)[::-1].copy()
        indptr = np.array([0, nnz], np.int64)
        keys, local = local_ids(indptr, indices, np.zeros(0, np.uint8), np.full(1, 2**64 - 1, np.uint64))
        assert list(keys) == list(range(nnz))[::-1] and list(local) == list(range(nnz))


def test_shard_of_partitions_keys_stably():
    keys = np.arange(100_000, dtype=np.uint64) * 977
    for n in (1, 2, 3, 8):
        owner = shard_of(keys, n)
        assert owner.min() >= 0 and owner.max() < n
        assert np.array_equal(owner, shard_of(keys.copy(), n))  # a function of the key only
        if n > 1:  # spread evenly (within 3 %)
            counts = np.bincount(owner, minlength=n)
            assert counts.min() > 0.97 * len(keys) / n
    assert np.array_equal(shard_of(keys.astype(np.uint32), 4), shard_of(keys, 4))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_table_items_and_items_weights_match_the_state(dtype):
    rng = np.random.default_rng(2)
    keys = np.unique(rng.integers(0, 1 << 31, 5_000))
    zn = np.stack([rng.normal(0, 3, len(keys)), rng.random(len(keys)) * 10], axis=1)
    state = state_from(keys, zn, np.array([0.5, 2.0]), dtype, wide=False)
    ik, izn = table_items(state.table, state.values)
    assert {int(k): (float(a), float(b)) for k, (a, b) in zip(ik, izn)} == state.as_dict()
    params = FTRLParams(0.1, 1.0, 1.0, 0.5, 0.0)
    got = sorted_nonzero(*items_weights(ik, izn, params))
    want = state.nonzero_weights(params)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert 0 < len(got[0]) < len(keys)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("l1", [0.1, 1.0, 0.0])
def test_table_live_items_are_the_rows_with_a_weight(dtype, l1):
    """The rows ``items_weights`` keeps (|z| > l1 in float64), in slot order, and only those;
    z = float32(l1) is live when float32 rounds l1 up (a float32 comparison would drop it)."""
    rng = np.random.default_rng(3)
    keys = np.unique(rng.integers(0, 1 << 31, 3_000))
    z = rng.normal(0, 2 * max(l1, 0.5), len(keys))
    z[:6] = [l1, -l1, np.float32(l1), -np.float32(l1), np.nextafter(l1, 9), 0.0]
    zn = np.stack([z, rng.random(len(keys)) * 10], axis=1)
    state = state_from(keys, zn, np.array([0.5, 2.0]), dtype, wide=False)
    ik, izn = table_items(state.table, state.values)
    lk, lzn = table_live_items(state.table, state.values, l1)
    keep = np.abs(izn[:, 0].astype(np.float64)) > l1
    assert lk.dtype == ik.dtype and lzn.dtype == izn.dtype
    assert np.array_equal(lk, ik[keep]) and np.array_equal(lzn, izn[keep])
    assert 0 < len(lk) < len(ik)
    got = sorted_nonzero(*items_weights(lk, lzn, FTRLParams(0.1, 1.0, l1, 0.0, 0.0)))
    want = sorted_nonzero(*items_weights(ik, izn, FTRLParams(0.1, 1.0, l1, 0.0, 0.0)))
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), lanes=st.integers(1, 4), per_lane=st.integers(0, 50),
       wide=st.booleans(), f64=st.booleans(), regrown=st.booleans())
def test_look_ups_and_merge_equal_the_plain_definition(seed, lanes, per_lane, wide, f64, regrown):
    """``gather_zn`` then ``merge_lanes`` (the shard's look-up and merge of one round, both
    prefetching 16 keys ahead: lane sizes around that window, 0 keys included) against the
    merge rule in plain Python: a key of one lane takes that lane's values bit for bit, a key
    of m lanes ``old + (sum of the lanes' deltas, in lane order) / m`` in float64, stored in
    the state's precision; absent keys start from (0, 0) and are added; the other keys keep
    their values.  ``regrown``: the slots found by the look-ups are not used (the merge finds
    the keys again, as after the table grew)."""
    rng = np.random.default_rng(seed)
    dtype = np.float64 if f64 else np.float32
    pool = rng.choice(1 << 20, size=3 * per_lane + 8, replace=False).astype(np.uint64) * (1 << 19 if wide else 1)
    held = pool[rng.random(len(pool)) < 0.5]
    held_zn = np.stack([rng.normal(0, 2, len(held)), rng.random(len(held)) * 5], axis=1).astype(dtype)
    st_ = state_from(held, held_zn, np.zeros(2), "float64" if f64 else "float32", wide)
    kd = st_.table.dtype
    before = {int(k): (z, n) for k, (z, n) in zip(*table_items(st_.table, st_.values))}
    keys, old, new, slots = [], [], [], []
    for _ in range(lanes):
        k = rng.choice(pool, size=min(per_lane, len(pool)), replace=False).astype(kd)
        zn = np.empty((len(k), 2), dtype=dtype)
        sl = np.empty(len(k), dtype=np.int64)
        absent = gather_zn(st_.table, st_.values, k, zn, sl)
        assert absent == sum(int(x) not in before for x in k)
        for x, (z, n) in zip(k, zn):  # the look-up: the held values, (0, 0) where absent
            assert (z, n) == before.get(int(x), (0.0, 0.0))
        keys.append(k), old.append(zn), slots.append(sl)
        new.append((zn + rng.normal(0, 1, zn.shape) * (rng.random((len(k), 1)) < 0.8)).astype(dtype))
    want = dict(before)
    for key in dict.fromkeys(int(x) for k in keys for x in k):
        mine = [(o[list(k).index(key)], nw[list(k).index(key)]) for k, o, nw in zip(keys, old, new) if key in set(map(int, k))]
        if len(mine) == 1:
            want[key] = tuple(mine[0][1])
        else:
            z0, n0 = before.get(key, (0.0, 0.0))
            dz = dn = 0.0
            for o, nw in mine:
                dz += float(nw[0]) - float(o[0])
                dn += float(nw[1]) - float(o[1])
            want[key] = (dtype(float(z0) + dz / len(mine)), dtype(float(n0) + dn / len(mine)))
    cat = np.concatenate
    cap = 16
    while cap < 2 * lanes * per_lane + 2:  # (the scratch set: a power of two, at least twice the entries)
        cap *= 2
    added = merge_lanes(st_.table, st_.values, st_.count, cat(keys), cat(new), cat(old), cat(slots), not regrown,
                        np.empty((cap, 2), np.int64))
    assert added == len(want) - len(before) and st_.touched == len(want)
    got = {int(k): (z, n) for k, (z, n) in zip(*table_items(st_.table, st_.values))}
    assert got.keys() == want.keys()
    for key, (z, n) in want.items():
        assert np.array([z, n], dtype).tobytes() == np.array(got[key], dtype).tobytes(), key
