"""The 16-bit training state (``state_bits=16``, docs/STATE16.md): codecs against numpy's
float16 and exact arithmetic, the training kernel against a slow pure-Python reference
(tests/reference/state16_reference.py) bit for bit, and everything that reads the state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from sparsecross._kernels.ftrl import FTRLParams
from sparsecross._kernels.half import (HALF_MAX_BITS, PROMOTED, ZBIG_MAX, half_decode, half_encode_rr, q213_decode,
                                       q213_encode_rr, row_hash, rr_uniforms)
from sparsecross.errors import ParameterError
from sparsecross.featurize import Batch
from sparsecross.state import FTRLState
from sparsecross.state16 import State16, check_state_bits, new_state
from sparsecross.train import train_batch
from tests.reference.state16_reference import Reference16, half_round, q213_round, uniforms

PARAMS = FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- codecs
def test_half_decode_matches_numpy_on_every_finite_nonnegative_code() -> None:
    codes = np.arange(HALF_MAX_BITS + 1, dtype=np.uint16)
    want = codes.view(np.float16).astype(np.float64)
    got = np.array([half_decode(np.uint32(c)) for c in codes])
    assert np.array_equal(got, want)


def test_half_encode_of_a_representable_value_is_its_code_whatever_the_uniform() -> None:
    codes = np.arange(0, HALF_MAX_BITS + 1, 7, dtype=np.uint16)
    values = codes.view(np.float16).astype(np.float64)
    for u in (0.0, 0.5, 0.999999):
        got = np.array([half_encode_rr(v, u) for v in values])
        assert np.array_equal(got, codes.astype(np.int64))


def test_half_encode_picks_a_neighbour_as_numpy_float16_brackets_it() -> None:
    rng = np.random.default_rng(1)
    xs = np.concatenate([rng.uniform(0, 1e-6, 200), np.exp(rng.uniform(-20, 11, 2000)), [65503.9, 1e9]])
    for x in xs:
        for u in (0.0, 0.3, 0.7, 0.9999):
            want = half_round(float(x), u)
            got = half_decode(np.uint32(half_encode_rr(float(x), u)))
            assert got == want, (x, u)


def test_half_encode_is_unbiased() -> None:
    """Over a fine grid of uniforms, the mean of the rounded values is x (to the grid's step);
    and over the hashed uniforms of many (key, row) pairs, statistically."""
    grid = (np.arange(4096) + 0.5) / 4096
    for x in (0.1234567, 3.3, 17.01, 1000.7, 3e-6):
        mean = np.mean([half_decode(np.uint32(half_encode_rr(x, u))) for u in grid])
        step = half_decode(np.uint32(half_encode_rr(x, 1.0) + 1)) - half_decode(np.uint32(half_encode_rr(x, 1.0)))
        assert abs(mean - x) <= step / 4096
    x = 17.01
    lo = half_decode(np.uint32(half_encode_rr(x, 1.0)))
    step = half_decode(np.uint32(half_encode_rr(x, 1.0) + 1)) - lo
    ups = [half_encode_rr(x, rr_uniforms(np.uint64(row_hash(np.uint64(99), np.uint64(r))), np.uint32(r % 97))[0])
           for r in range(20000)]
    frac = np.mean(np.array(ups) != half_encode_rr(x, 1.0))
    assert abs(frac - (x - lo) / step) < 4 * math.sqrt(0.25 / 20000)


def test_q213_range_clipping_and_unbiasedness() -> None:
    assert q213_encode_rr(3.9998779296875, 0.9) == (32767, False)  # the largest code, exact
    assert q213_encode_rr(4.5, 0.0) == (32767, True)
    assert q213_encode_rr(4 - 2**-14, 0.99) == (32767, True)  # past 4 - 2**-13: a clip, whatever the rounding
    assert q213_encode_rr(-4.0, 0.5) == (-32768, False)
    assert q213_encode_rr(-4.001, 0.5) == (-32768, True)
    for c in (-32768, -1, 0, 1, 32767):
        assert q213_decode(np.uint32(c & 0xFFFF)) == c / 8192.0
    grid = (np.arange(2048) + 0.5) / 2048
    for v in (0.00001, -1.23456789, 2.5e-5, 3.99):
        codes = [q213_encode_rr(v, u)[0] for u in grid]
        assert abs(np.mean(codes) / 8192 - v) <= 1 / 8192 / 2048
        assert all(c == q213_round(v, u)[0] for c, u in zip(codes[::97], grid[::97]))


def test_uniforms_follow_the_contract() -> None:
    from sparsecross.hashing import xxh64

    salt = np.uint64(xxh64(b"state16-rounding", 5 + 2))
    for row, key in ((0, 0), (12345, 987654321), (2**40, 2**32 - 2)):
        got = rr_uniforms(np.uint64(row_hash(salt, np.uint64(row))), np.uint32(key))
        assert got == uniforms(5, 2, row, key)


def test_state_bits_are_checked() -> None:
    assert check_state_bits(16) == 16
    with pytest.raises(ParameterError, match="state_bits must be 32 or 16"):
        check_state_bits(8)
    with pytest.raises(ParameterError, match="float64"):
        check_state_bits(16, "float64")
    with pytest.raises(ParameterError, match="2\\*\\*32 - 1"):
        State16(1 << 32)
    assert type(new_state(100, "float32", 32)) is FTRLState


# ----------------------------------------------------------------------- kernel vs reference
def _problem(seed: int, n: int = 400, d: int = 60, nnz: int = 6, zipf: float = 1.5):
    """Skewed CSR rows (a few keys are frequent enough to be promoted), labels, weights."""
    rng = np.random.default_rng(seed)
    indptr, idx, vals = [0], [], []
    for _ in range(n):
        k = np.unique(rng.zipf(zipf, size=nnz) % d)
        idx.extend(k.tolist())
        vals.extend(rng.choice([1.0, 0.5, 2.0, 4.0], size=len(k)).tolist())
        indptr.append(len(idx))
    X = sp.csr_array((np.array(vals, np.float32), np.array(idx, np.int64), np.array(indptr, np.int64)), shape=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(np.float64)
    sw = rng.uniform(0.5, 2.0, n)
    return X, y, sw


def _train16(st: FTRLState, X, y, sw, params: FTRLParams, batch_rows: int, epochs: int = 1) -> np.ndarray:
    acc = np.zeros(3)
    for epoch in range(epochs):
        st.begin_epoch(epoch)
        for a in range(0, X.shape[0], batch_rows):
            b = min(X.shape[0], a + batch_rows)
            Xb = X[a:b]
            Xb = sp.csr_array((Xb.data, Xb.indices.astype(np.int64), Xb.indptr.astype(np.int64)), shape=Xb.shape)
            train_batch(st, Batch(Xb, y[a:b], None if sw is None else sw[a:b], a), params,
                        np.zeros(0, np.uint8), acc, None, a)
    return acc


def _reference(X, y, sw, params: FTRLParams, seed: int, epochs: int = 1, promoted: int = 0) -> Reference16:
    ref = Reference16(*params, seed=seed)
    ref.promoted = promoted  # zbig entries already used
    for epoch in range(epochs):
        for r in range(X.shape[0]):
            a, b = X.indptr[r], X.indptr[r + 1]
            ref.fit_row([int(k) for k in X.indices[a:b]], [float(v) for v in X.data[a:b]], float(y[r]), epoch, r,
                        1.0 if sw is None else float(sw[r]))
    return ref


@pytest.mark.parametrize("case", [
    dict(seed=0, params=FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0), weights=False, epochs=1),
    dict(seed=1, params=FTRLParams(0.5, 1.0, 0.2, 0.5, 0.1), weights=True, epochs=2),
    dict(seed=2, params=FTRLParams(2.0, 0.5, 0.0, 0.0, 0.0), weights=False, epochs=3, seen=("clips",)),
    dict(seed=3, params=FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0), weights=False, epochs=1, scale=5000.0,
         seen=("saturations",)),
    # zbig at its largest with 3 entries left: the later keys to pass sqrt(n) > 16 are refused
    dict(seed=0, params=FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0), weights=True, epochs=2, zbig_free=3,
         seen=("refused",)),
])
def test_kernel_equals_the_pure_python_reference_bit_for_bit(case) -> None:
    X, y, sw = _problem(case["seed"], n=1200)
    X.data *= np.float32(case.get("scale", 1.0))  # large values: sqrt(n) saturates, v clips
    sw = sw if case["weights"] else None
    st = State16(X.shape[1], seed=7)
    used = 0
    if "zbig_free" in case:
        used = ZBIG_MAX - case["zbig_free"]
        st.zbig, st.zstats[0] = np.zeros(ZBIG_MAX, np.float32), used
    acc = _train16(st, X, y, sw, case["params"], batch_rows=37, epochs=case["epochs"])
    ref = _reference(X, y, sw, case["params"], seed=7, epochs=case["epochs"], promoted=used)
    got = st.as_dict(case["params"])
    assert got.keys() == ref.state.keys()
    for k in got:
        assert got[k] == ref.z_n(k), k
    assert st.promoted == ref.promoted > used  # the frequent keys were promoted
    assert st.zstats.tolist() == [ref.promoted, ref.refused, ref.clips, ref.saturations]
    assert all(getattr(ref, counter) > 0 for counter in case.get("seen", ()))  # the counters are exercised
    assert (st.bias[0], st.bias[1]) == (ref.zb, ref.nb)
    assert acc[0] == pytest.approx(ref.loss, rel=1e-12) and acc[1] == pytest.approx(ref.weight_sum, rel=1e-12)


def test_state_is_the_same_bytes_at_any_batch_size() -> None:
    X, y, sw = _problem(3, n=600)
    states = []
    for batch_rows in (600, 1, 7, 128):
        st = State16(X.shape[1], seed=1)
        acc = _train16(st, X, y, sw, PARAMS, batch_rows, epochs=2)
        states.append((sorted(st.as_dict(PARAMS).items()), st.bias.tobytes(), acc.tobytes()))
    assert all(s == states[0] for s in states[1:])
    k1, w1 = State16.nonzero_weights(st, PARAMS)
    assert len(k1) > 0


def test_views_agree_with_decoded_state() -> None:
    X, y, sw = _problem(4, n=500, d=3000, zipf=1.2)
    st = State16(X.shape[1])
    _train16(st, X, y, None, PARAMS, 100)
    assert st.growths > 0  # grew in place from 1,024 slots
    keys, z, n = st.decoded(PARAMS)
    live = np.abs(z) > PARAMS.l1
    assert st.count_nonzero(PARAMS) == int(live.sum())
    d = (PARAMS.beta + np.sqrt(n)) / PARAMS.alpha + PARAMS.l2
    w = np.where(live, -(z - np.sign(z) * PARAMS.l1) / d, 0.0)
    kk, ww = st.nonzero_weights(PARAMS)
    order = np.argsort(keys)
    sel = live[order] & (w[order].astype(np.float32) != 0)
    assert np.array_equal(kk, keys[order][sel]) and np.array_equal(ww, w[order][sel].astype(np.float32))
    dense = np.zeros(X.shape[1])
    dense[keys.astype(np.int64)] = w
    wb = st.bias_weight(PARAMS)
    assert np.allclose(st.margins(X, PARAMS), X @ dense + wb, rtol=1e-12, atol=1e-12)
    assert st.nbytes == st.table.nbytes + st.zbig.nbytes + st.bias.nbytes
    assert st.table.shape[1] == 2 and st.table.itemsize == 4  # 8 bytes a slot
    c = st.copy()
    assert type(c) is State16 and c.as_dict(PARAMS) == st.as_dict(PARAMS) and c.zbig is not st.zbig


# ----------------------------------------------------------------------------- checkpoints
def _trained(seed: int = 5, n: int = 1500) -> tuple[State16, tuple]:
    X, y, sw = _problem(seed, n=n, d=400, zipf=1.3)
    st = State16(X.shape[1], seed=3)
    _train16(st, X, y, sw, PARAMS, 256)
    assert st.promoted > 0
    return st, (X, y, sw)


_META = {"epoch": 0, "row": 10, "acc": [1.0, 10.0, 10.0], "history": []}


def _roundtrip(tmp_path, st: FTRLState, arrays: dict | None = None, state_bits: int = 16):
    from sparsecross.checkpoint import read_checkpoint, validate_checkpoint

    path = tmp_path / "state.npz"
    st.save(path, _META)
    if arrays is not None:  # rewrite with some members changed
        with np.load(path) as f:
            members = {k: f[k] for k in f.files}
        members.update(arrays)
        for k in [k for k, v in members.items() if v is None]:
            del members[k]
        with open(path, "wb") as fh:
            np.savez(fh, **members)
    got, meta = read_checkpoint(path)
    validate_checkpoint(path, got, meta, n_columns=st.n_columns, state_dtype="float32", epochs=1, rows_total=100,
                        seed=3, state_bits=state_bits)
    return got


def test_checkpoint_roundtrip_keeps_every_bit(tmp_path) -> None:
    st, (X, y, sw) = _trained()
    got = _roundtrip(tmp_path, st)
    assert type(got) is State16 and got.seed == 3
    assert np.array_equal(got.table, st.table) and np.array_equal(got.zbig, st.zbig)
    assert np.array_equal(got.zstats, st.zstats) and np.array_equal(got.bias, st.bias)
    # training on continues identically from the restored state
    a, b = st.copy(), got
    _train16(a, X, y, sw, PARAMS, 500)
    _train16(b, X, y, sw, PARAMS, 500)
    assert np.array_equal(a.table, b.table) and np.array_equal(a.zbig, b.zbig)


def _words(st: State16) -> tuple[np.ndarray, np.ndarray]:
    occ = np.flatnonzero(st.table[:, 0] != np.uint32(0xFFFFFFFF))
    promoted = occ[(st.table[occ, 1] & PROMOTED) != 0]
    plain = occ[(st.table[occ, 1] & PROMOTED) == 0]
    return promoted, plain


def _corrupt(st: State16, what: str) -> dict:
    promoted, plain = _words(st)
    t = st.table.copy()
    if what == "index out of range":
        t[promoted[0], 1] = (t[promoted[0], 1] & ~np.uint32(0xFFFF)) | np.uint32(st.promoted + 5)
        return {"table": t}
    if what == "index shared":
        t[promoted[1], 1] = (t[promoted[1], 1] & ~np.uint32(0xFFFF)) | (t[promoted[0], 1] & np.uint32(0xFFFF))
        return {"table": t}
    if what == "flag on a small n":
        t[plain[0], 1] = t[plain[0], 1] | PROMOTED
        return {"table": t}
    if what == "infinite sqrt(n)":
        t[plain[0], 1] = (t[plain[0], 1] & np.uint32(0x8000FFFF)) | np.uint32(0x7C00 << 16)
        return {"table": t}
    if what == "zstats past zbig":
        return {"zstats": np.array([len(st.zbig) + 1, 0, 0, 0], dtype=np.int64)}
    if what == "zstats count differs":
        return {"zstats": st.zstats - np.array([1, 0, 0, 0])}
    if what == "negative zstats":
        return {"zstats": np.array([st.promoted, -1, 0, 0], dtype=np.int64)}
    if what == "nan zbig":
        z = st.zbig.copy()
        z[0] = np.nan
        return {"zbig": z}
    if what == "zbig too long":
        return {"zbig": np.zeros((1 << 16) + 1, dtype=np.float32)}
    if what == "zbig 2-d":
        return {"zbig": st.zbig.reshape(1, -1)}
    if what == "zbig float64":
        return {"zbig": st.zbig.astype(np.float64)}
    if what == "missing zbig":
        return {"zbig": None}
    if what == "state_bits 8":
        return {"state_bits": np.array([8], dtype=np.int64)}
    if what == "nan bias":
        return {"bias": np.array([np.nan, 1.0])}
    if what == "32-bit table":
        return {"table": np.zeros((st.capacity, 3), dtype=np.uint32)}
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["index out of range", "index shared", "flag on a small n", "infinite sqrt(n)",
                                  "zstats past zbig", "zstats count differs", "negative zstats", "nan zbig",
                                  "zbig too long", "zbig 2-d", "zbig float64", "missing zbig", "state_bits 8",
                                  "nan bias", "32-bit table"])
def test_corrupted_16bit_checkpoint_is_a_clean_error(tmp_path, what) -> None:
    from sparsecross.errors import CheckpointError

    st, _ = _trained()
    with pytest.raises(CheckpointError, match="damaged"):
        _roundtrip(tmp_path, st, _corrupt(st, what))


def test_checkpoint_of_other_bits_is_refused(tmp_path) -> None:
    from sparsecross.errors import CheckpointError

    st, _ = _trained()
    with pytest.raises(CheckpointError, match="16-bit, this run's is 32-bit"):
        _roundtrip(tmp_path, st, state_bits=32)
    st32 = FTRLState(st.n_columns)
    with pytest.raises(CheckpointError, match="32-bit, this run's is 16-bit"):
        _roundtrip(tmp_path, st32, state_bits=16)


# ------------------------------------------------------------------------- state budget
def test_budget_evicts_by_decoded_rank_and_frees_zbig() -> None:
    """At the budget, eviction ranks by the decoded (z, n) (as the float state does), keeps
    every survivor's values, and gives the evicted promoted keys' zbig entries back."""
    st, _ = _trained(n=3000)
    before = st.as_dict(PARAMS)
    promoted_before = st.promoted
    st.max_capacity = st.capacity
    row_nnz = st.max_count - 12  # room for it: down to 12 keys
    k = st.touched - min(int(0.8 * st.max_count), st.max_count - row_nnz)
    assert k == st.touched - 12
    removed = st.make_room(row_nnz, PARAMS)
    assert removed == k and st.evicted_features == k
    after = st.as_dict(PARAMS)
    assert all(before[key] == v for key, v in after.items())
    # the evicted are the k smallest ranks: zero weights by n, then |z|
    def rank(item):
        key, (z, n) = item
        return (0, n, key) if abs(z) <= PARAMS.l1 else (1, abs(z), key)
    want = sorted(before.items(), key=rank)[k:]
    assert sorted(after) == sorted(key for key, _ in want)
    promoted, _ = _words(st)
    assert 0 < st.promoted < promoted_before, (st.promoted, promoted_before)  # entries renumbered
    assert st.promoted == len(promoted) and set(st.table[promoted, 1] & np.uint32(0xFFFF)) == set(range(st.promoted))
    assert st.nbytes == st.table.nbytes + st.zbig.nbytes + st.bias.nbytes


def test_budget_is_never_exceeded_and_results_do_not_depend_on_batches() -> None:
    from sparsecross.budget import MIB, apply_budget

    X, y, sw = _problem(6, n=4000, d=50000, nnz=8, zipf=1.1)
    budget_mb = 0.45
    results = []
    for batch_rows in (4000, 333):
        st = State16(X.shape[1], seed=2)
        apply_budget(st, budget_mb)
        acc = np.zeros(3)
        for a in range(0, X.shape[0], batch_rows):
            b = min(X.shape[0], a + batch_rows)
            Xb = X[a:b]
            Xb = sp.csr_array((Xb.data, Xb.indices.astype(np.int64), Xb.indptr.astype(np.int64)), shape=Xb.shape)
            train_batch(st, Batch(Xb, y[a:b], None, a), PARAMS, np.zeros(0, np.uint8), acc, None, a)
            assert st.nbytes <= budget_mb * MIB and st.bytes_peak <= budget_mb * MIB
        assert st.evictions > 0 and st.promoted > 0
        results.append((sorted(st.as_dict(PARAMS).items()), acc.tobytes(), st.evicted_features))
    assert results[0] == results[1]


def test_budget_too_small_for_the_16bit_state_is_refused() -> None:
    from sparsecross.budget import apply_budget

    with pytest.raises(ParameterError, match="too small"):
        apply_budget(State16(100), 0.3)  # zbig's reserve (384 KiB) does not fit
