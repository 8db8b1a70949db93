"""``ftrl_pass``'s dead-zone update (``|z| <= l1``: ``z += g_i``, no square root, no division)
against the kernel as it was (``tests/reference/ftrl_full_update.py``: the full update for every
entry), to the bit: signed zeros in z, n and the values, z exactly at +-l1, n and g_i^2 that overflow,
infinite and NaN state, a tiny alpha (the guards that send an entry to the full update), with
and without admission, weights and masks; and from bias states whose n grows (ftrl_pass carries
the bias's sqrt(n) from row to row) or is negative or NaN (there the values are compared with
NaNs equal: a NaN's sign bit depends on the order of operations)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from sparsecross._kernels.ftrl import DEAD_ALPHA_MIN, FTRLParams, ftrl_pass
from sparsecross._kernels.table import empty_table, slot_of
from tests.reference.ftrl_full_update import full_update_ftrl_pass
from tests.reference.ftrl_plain import plain_ftrl_pass

NO_ADMIT = (np.zeros(0, np.uint8), np.zeros(0, np.uint64))

#: (z, n) presets of the keys: zeros of both signs, the dead-zone edges, n above the dead-zone
#: update's bound (float64 tables: the full update runs) or near float32's largest value.
FINITE = [(0.0, 0.0), (-0.0, 0.0), (-0.0, -0.0), (0.0, -0.0), (0.5, 1.0), (-0.5, 2.0),
          (1.0, 4.0), (-1.0, 4.0), (1.0000001, 3.0), (-0.9999999, 3.0), (0.25, 3e38),
          (3.0, 9.0), (-7.0, 0.5)]
FINITE64 = [(-0.25, 1e300), (0.75, 1.7e308), (0.0, 2e300)]
#: Degenerate states (a corrupted or overflowed table): the whole model turns NaN after them.
DEGENERATE = [(0.0, np.inf), (0.5, np.nan), (np.nan, 1.0), (-0.0, -1.0), (np.inf, 1.0)]
#: Entry values: signed zeros, ordinary, tiny.
VALUES = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 3.0, 1e4], np.float32)


def _state(dtype, rng, presets):
    word = np.uint32 if dtype == np.float32 else np.uint64
    table = empty_table(256, 3, np.dtype(word))
    vals = table.view(dtype)
    keys = np.arange(1, 101, dtype=word)
    for i, k in enumerate(keys):
        s = slot_of(table, k)
        table[s, 0] = k
        if i < len(presets):
            z, n = presets[i]
        else:
            z, n = rng.choice([-1.0, 0.0, -0.0, 1.0]) * rng.uniform(0, 2), rng.uniform(0, 5)
        with np.errstate(over="ignore"):
            vals[s, 1] = z
            vals[s, 2] = n
    return table, keys


def _rows(rng, n_rows):
    lens = rng.integers(1, 8, size=n_rows)
    idx = np.concatenate([np.sort(rng.choice(np.arange(1, 121), size=ln, replace=False)) for ln in lens])
    data = rng.choice(VALUES, size=len(idx), p=None)
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return sp.csr_matrix((data, idx.astype(np.int64), indptr), shape=(n_rows, 200))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [0.1, 2.0, DEAD_ALPHA_MIN, 1e-200])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weighted,masked", [(False, False), (True, True)])
@pytest.mark.parametrize("bias0", [(-0.0, 0.0), (0.3, 2.0), (-0.2, 1e15), (1.0, -1.0), (0.5, math.nan),
                                   (0.1, 1e308)],
                         ids=["zero", "small-n", "large-n", "negative-n", "nan-n", "huge-n"])
def test_dead_zone_update_equals_the_full_update(dtype, alpha, seed, weighted, masked, bias0):
    """Also from bias states whose sqrt(n) is nan or near overflow: ftrl_pass carries the
    bias's sqrt(n) from row to row, the reference recomputes it on every row."""
    rng = np.random.default_rng(seed)
    table, _ = _state(dtype, rng, FINITE + (FINITE64 if dtype == np.float64 else []))
    X = _rows(rng, 300)
    assert X.nnz == len(X.data) and (np.signbit(X.data) & (X.data == 0)).any()  # explicit -0.0 kept
    y = rng.choice(np.array([0.0, 1.0, 0.3]), size=X.shape[0])
    sw = rng.uniform(0, 3, size=X.shape[0]) if weighted else np.zeros(0)
    mask = (rng.random(X.shape[0]) < 0.2).astype(np.uint8) if masked else np.zeros(0, np.uint8)
    params = FTRLParams(alpha, 1.0, 1.0, 0.1, 0.0)
    ref = table.copy()
    count, ref_count = np.array([100], np.int64), np.array([100], np.int64)
    bias, ref_bias = np.array(bias0), np.array(bias0)
    acc, ref_acc = np.zeros(3), np.zeros(3)
    assert full_update_ftrl_pass(X.indptr, X.indices, X.data, y, sw, mask, 0, ref, ref.view(dtype), ref_count,
                                 200, ref_bias, params, ref_acc, *NO_ADMIT, np.zeros(2, np.int64)) == X.shape[0]
    assert ftrl_pass(X.indptr, X.indices, X.data, y, sw, mask, 0, table, table.view(dtype), count, 200, bias,
                     params, acc, *NO_ADMIT, np.zeros(2, np.int64)) == X.shape[0]
    if dtype == np.float64 and bias0 == (-0.0, 0.0):  # float32 z/n may overflow, a nan bias spreads:
        # the byte comparison below covers those
        assert np.isfinite(table.view(dtype)[:, 1:]).all()
    if math.isfinite(math.sqrt(bias0[1]) if bias0[1] >= 0 else math.nan):
        assert table.tobytes() == ref.tobytes()
        assert count[0] == ref_count[0] and bias.tobytes() == ref_bias.tobytes() and acc.tobytes() == ref_acc.tobytes()
    else:  # a nan bias spreads to every value it touches, with a sign bit that depends on the order
        # of operations: the same values and nans in the same places, keys to the bit
        assert np.array_equal(table[:, 0], ref[:, 0]) and count[0] == ref_count[0]
        for got, want in ((table.view(dtype)[:, 1:], ref.view(dtype)[:, 1:]), (bias, ref_bias), (acc, ref_acc)):
            assert np.array_equal(got, want, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_degenerate_states_give_the_same_values(dtype, seed):
    """inf, NaN and negative n in the table: the same keys and the same values, NaN where the
    kernel as it was has NaN (which NaN, its sign and payload, is not defined: LLVM may commute
    the operands of an addition), every other value to the bit."""
    rng = np.random.default_rng(seed)
    table, _ = _state(dtype, rng, FINITE + DEGENERATE)
    X = _rows(rng, 200)
    y = rng.choice(np.array([0.0, 1.0]), size=X.shape[0])
    params = FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)
    ref = table.copy()
    out = []
    for kernel, t in ((ftrl_pass, table), (full_update_ftrl_pass, ref)):
        bias, acc = np.zeros(2), np.zeros(3)
        kernel(X.indptr, X.indices, X.data, y, np.zeros(0), np.zeros(0, np.uint8), 0, t, t.view(dtype),
               np.array([100], np.int64), 200, bias, params, acc, *NO_ADMIT, np.zeros(2, np.int64))
        out.append((t[:, 0].copy(), t.view(dtype)[:, 1:].copy(), bias, acc))
    (k1, v1, b1, a1), (k2, v2, b2, a2) = out
    assert np.array_equal(k1, k2) and np.isnan(v2).any()
    for x1, x2 in ((v1, v2), (b1, b2), (a1, a2)):
        nan = np.isnan(x1)
        assert np.array_equal(nan, np.isnan(x2))
        assert x1[~nan].tobytes() == x2[~nan].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_negative_zero_z_stays_negative_zero(dtype):
    """z = -0.0 (dead zone) plus g_i = -0.0: -0.0 in both kernels (x - sigma * +0.0 keeps the
    sign of a zero x); the case the dead-zone update must not turn into +0.0."""
    word = np.uint32 if dtype == np.float32 else np.uint64
    for kernel in ("plain", "fast"):
        table = empty_table(16, 3, np.dtype(word))
        vals = table.view(dtype)
        s = slot_of(table, word(5))
        table[s, 0] = 5
        vals[s, 1] = -0.0
        vals[s, 2] = 2.0
        X = sp.csr_matrix((np.array([-0.0], np.float32), np.array([5]), np.array([0, 1])), shape=(1, 8))
        y, params = np.array([0.0]), FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)  # p = 0.5 > y: g > 0, g * -0.0 = -0.0
        args = (X.indptr, X.indices, X.data, y, np.zeros(0), np.zeros(0, np.uint8), 0, table, vals,
                np.array([1], np.int64), 8, np.zeros(2), params, np.zeros(3))
        if kernel == "plain":
            plain_ftrl_pass(*args)
        else:
            ftrl_pass(*args, *NO_ADMIT, np.zeros(2, np.int64))
        assert vals[s, 1] == 0 and np.signbit(vals[s, 1]), kernel
        assert vals[s, 2] == 2.0


@pytest.mark.parametrize("mode", ["count", "poisson"])
def test_dead_zone_with_admission_equals_the_full_update(mode):
    """Admission on (the counting filter, Poisson mode; keys not admitted skipped): the same
    table, filter, counters, bias and loss sums as the kernel as it was, with -0.0 values."""
    rng = np.random.default_rng(5)
    X = _rows(rng, 400)
    X.data[:] = rng.choice(np.array([1.0, -0.0, 0.5, 2.0], np.float32), size=X.nnz)
    y = rng.choice(np.array([0.0, 1.0]), size=X.shape[0])
    params = FTRLParams(0.1, 1.0, 0.5, 0.0, 0.0)
    if mode == "count":
        filt, cfg = np.zeros(64, np.uint8), np.array([2, 0, 12345, 0, 0], np.uint64)
    else:
        filt, cfg = np.zeros(0, np.uint8), np.array([0, 1 << 63, 0, 999, 0], np.uint64)
    runs = []
    for kernel in (ftrl_pass, full_update_ftrl_pass):
        table = empty_table(1024, 3, np.dtype(np.uint32))
        out = (table, np.zeros(1, np.int64), np.zeros(2), np.zeros(3), filt.copy(), np.zeros(2, np.int64))
        assert kernel(X.indptr, X.indices, X.data, y, np.zeros(0), np.zeros(0, np.uint8), 0, table,
                      table.view(np.float32), out[1], 700, out[2], params, out[3], out[4], cfg, out[5]) == X.shape[0]
        runs.append(out)
    assert runs[0][5][1] > 0 and runs[0][1][0] > 0  # some sightings rejected, some keys admitted
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()
