"""Admission (issue 13): ``admit_after`` (counting Bloom filter) and ``admit_probability``
(Poisson inclusion), the state accounting, checkpoints, ``path`` and the CLI.

The kernels are checked against ``tests/reference/admission_reference.py`` (dict FTRL + exact
sighting counts), on random CSR problems whose filter is large enough to have no collisions;
with a tiny filter, collisions may only admit a feature early, never late.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import CheckpointError, FTRLState, parse_spec
from sparsecross._kernels.admit import counter_positions, sight
from sparsecross._kernels.ftrl import FTRLParams
from sparsecross.admission import Admission, AdmitPolicy
from sparsecross.errors import ParameterError, SpecError
from sparsecross.export import model_bytes
from sparsecross.featurize import Batch
from sparsecross.train import train_batch
from tests.reference.admission_reference import ReferenceAdmission

NO_MASK = np.zeros(0, dtype=np.uint8)
PARAMS = FTRLParams(0.3, 1.0, 0.05, 0.01, 0.0)
SEED = 7


# =========================================================================================
# helpers
# =========================================================================================
def _zipf_csr(seed: int, n_rows: int, n_keys: int, max_len: int):
    """Rows of 1..max_len distinct keys drawn from a Zipf-like law over ``n_keys`` (many keys
    seen once or twice, a few often), values from a small set of nonzero floats."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_keys + 1) ** 1.1
    p /= p.sum()
    perm = rng.permutation(n_keys) * 7919 + 13  # spread keys over a wide column space
    rows = []
    for _ in range(n_rows):
        ln = int(rng.integers(1, max_len + 1))
        rows.append(np.sort(np.unique(perm[rng.choice(n_keys, size=ln, p=p)])))
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int64)
    data = rng.choice(np.array([1.0, 2.0, 0.5, -1.25], np.float32), size=len(indices))
    X = sp.csr_matrix((data, indices, indptr), shape=(n_rows, int(perm.max()) + 1))
    return X, (rng.random(n_rows) < 0.4).astype(np.float64)


def _state(n_columns: int, policy: AdmitPolicy, dtype: str = "float64") -> FTRLState:
    st_ = FTRLState(n_columns, dtype)
    st_.admission = Admission(policy.sized(1), SEED)
    return st_


def _train_kernel(X, y, st_, batch: int, epochs: int = 1) -> np.ndarray:
    acc = np.zeros(3)
    for e in range(epochs):
        st_.admission.begin_epoch(e)
        for a in range(0, X.shape[0], batch):
            b = min(X.shape[0], a + batch)
            train_batch(st_, Batch(X[a:b], y[a:b], None, a), PARAMS, NO_MASK, acc, None, a)
    return acc


def _train_reference(X, y, epochs: int = 1, **policy) -> ReferenceAdmission:
    ref = ReferenceAdmission(*PARAMS[:4], after=policy.get("after", 1), probability=policy.get("probability", 1.0),
                             seed=SEED)
    for e in range(epochs):
        for r in range(X.shape[0]):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            row = [(int(i), float(v)) for i, v in zip(X.indices[lo:hi], X.data[lo:hi])]
            ref.update_at(row, y[r], e, r)
    return ref


def _assert_same_state(st_: FTRLState, ref: ReferenceAdmission) -> None:
    got = st_.as_dict()
    assert set(got) == set(ref.z)  # the same admitted set
    for k, (z, n) in got.items():
        assert z == pytest.approx(ref.z[k], rel=1e-12, abs=1e-12)
        assert n == pytest.approx(ref.n[k], rel=1e-12, abs=1e-12)
    assert st_.bias[0] == pytest.approx(ref.z_b, rel=1e-12, abs=1e-12)
    assert st_.admission.admitted == ref.admitted
    assert st_.admission.rejected == ref.rejected


# =========================================================================================
# kernel vs the dict reference
# =========================================================================================
@pytest.mark.parametrize("after", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_counting_filter_equals_exact_counts(after, seed):
    """A filter far larger than the keys (no collision): the same admitted set, counters and
    (z, n) as exact dict counts, over two epochs and batches that split rows arbitrarily."""
    X, y = _zipf_csr(seed, 1500, 3000, 6)
    st_ = _state(X.shape[1], AdmitPolicy(after=after, filter_mb=4.0))
    _train_kernel(X, y, st_, batch=333, epochs=2)
    ref = _train_reference(X, y, epochs=2, after=after)
    assert ref.admitted > 0 and ref.rejected > 0  # the policy matters here
    _assert_same_state(st_, ref)


@pytest.mark.parametrize("filter_bytes", [1, 16, 256, 4096])
@pytest.mark.parametrize("after", [2, 4])
def test_small_filter_equals_reference_filter(filter_bytes, after):
    """With collisions: the kernel's filter is the documented one (positions in one block,
    conservative update, saturation), so the admitted set, (z, n) and every counter equal the
    reference's; and collisions made it reject fewer sightings than exact counts do."""
    X, y = _zipf_csr(5, 1500, 3000, 6)
    st_ = _state(X.shape[1], AdmitPolicy(after=after, filter_mb=filter_bytes / (1 << 20)))
    _train_kernel(X, y, st_, batch=500, epochs=2)
    ref = ReferenceAdmission(*PARAMS[:4], after=after, seed=SEED, filter_bytes=filter_bytes)
    for e in range(2):
        for r in range(X.shape[0]):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            ref.update_at([(int(i), float(v)) for i, v in zip(X.indices[lo:hi], X.data[lo:hi])], y[r], e, r)
    _assert_same_state(st_, ref)
    got = st_.admission.filter
    assert [int(got[i >> 1] >> (4 * (i & 1)) & 15) for i in range(2 * filter_bytes)] == ref.filter.counters
    exact = _train_reference(X, y, epochs=2, after=after)
    assert ref.rejected <= exact.rejected  # collisions only admit early
    if filter_bytes <= 256:
        assert ref.rejected < exact.rejected


@pytest.mark.parametrize("probability", [0.03, 0.3, 0.9])
def test_poisson_equals_reference(probability):
    X, y = _zipf_csr(3, 1500, 3000, 6)
    st_ = _state(X.shape[1], AdmitPolicy(probability=probability))
    assert st_.admission.filter.nbytes == 0  # Poisson inclusion keeps no filter
    _train_kernel(X, y, st_, batch=400, epochs=2)
    ref = _train_reference(X, y, epochs=2, probability=probability)
    _assert_same_state(st_, ref)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), after=st.integers(2, 15), filter_bytes=st.sampled_from([1, 2, 8, 64]))
def test_tiny_filter_admits_early_never_late(seed, after, filter_bytes):
    """With collisions the estimate can only be too high: after every row, every key the exact
    counts admit has state in the kernel too (it may have been admitted earlier)."""
    X, y = _zipf_csr(seed % 1000, 300, 400, 5)
    st_ = _state(X.shape[1], AdmitPolicy(after=after, filter_mb=filter_bytes / (1 << 20)))
    assert st_.admission.filter.nbytes == filter_bytes
    ref = ReferenceAdmission(*PARAMS[:4], after=after, seed=SEED)
    acc = np.zeros(3)
    for r in range(X.shape[0]):
        train_batch(st_, Batch(X[r:r + 1], y[r:r + 1], None, r), PARAMS, NO_MASK, acc, None, r)
        lo, hi = X.indptr[r], X.indptr[r + 1]
        ref.update_at([(int(i), float(v)) for i, v in zip(X.indices[lo:hi], X.data[lo:hi])], y[r], 0, r)
        assert set(ref.z) <= set(st_.as_dict())
    assert st_.admission.admitted >= ref.admitted


def test_sight_is_a_conservative_saturating_update():
    """Two keys forced onto one shared counter: the conservative update raises only the
    minimum; estimates never drop below the true counts; counters saturate at 15."""
    filt = np.zeros(1, np.uint8)  # two counters
    salt = np.uint64(5)
    counts = {1: 0, 2: 0}
    for step in range(40):
        k = 1 if step % 3 else 2
        counts[k] += 1
        est = sight(filt, np.uint64(k), salt)
        assert est >= min(counts[k], 15)
        assert est <= 15
    assert (filt[0] & 15) <= 15 and (filt[0] >> 4) <= 15
    i1, i2 = counter_positions(np.uint64(1), 2, salt)
    assert 0 <= i1 < 2 and 0 <= i2 < 2


@pytest.mark.parametrize("filter_bytes", [1, 64, 4096])
@pytest.mark.parametrize("key_dtype", [np.uint32, np.uint64])
def test_shard_filter_estimates_equal_the_reference_filter(filter_bytes, key_dtype):
    """The estimates data-parallel admission reads (``shard_admit.filter_estimates``, through
    ``admit.estimate_at``, as ``sight`` does) are the reference filter's smaller counter after
    the same sightings, collisions and saturation included; -1 for keys with state, 0 for every
    key without a filter (Poisson)."""
    from sparsecross._kernels.shard_admit import filter_estimates
    from tests.reference.admission_reference import ReferenceCountingFilter

    rng = np.random.default_rng(filter_bytes)
    ref = ReferenceCountingFilter(filter_bytes, seed=11)
    filt = np.zeros(filter_bytes, np.uint8)
    salt = np.uint64(ref.salt)
    pool = rng.integers(0, np.iinfo(key_dtype).max, 300, dtype=np.uint64).astype(key_dtype)
    for k in rng.choice(pool, 3000):  # many sightings of few keys: counters collide and saturate
        assert sight(filt, k, salt) == ref.sight(int(k))
    keys = np.concatenate([pool, rng.integers(0, np.iinfo(key_dtype).max, 300, dtype=np.uint64).astype(key_dtype)])
    slots = np.where(rng.random(len(keys)) < 0.2, rng.integers(0, 1000, len(keys)), -1).astype(np.int64)
    out = np.full(len(keys), 99, np.int8)
    filter_estimates(filt, salt, keys, slots, out)
    want = [-1 if s >= 0 else min(ref.counters[i] for i in ref.positions(int(k))) for k, s in zip(keys, slots)]
    assert out.tolist() == want
    assert (15 in want) if filter_bytes <= 64 else (0 in want and max(want) > 1)  # saturated / fresh keys seen
    filter_estimates(np.zeros(0, np.uint8), salt, keys, slots, out)
    assert out.tolist() == [-1 if s >= 0 else 0 for s in slots]


def test_poisson_rate_is_close_to_p():
    """200,000 keys seen once each (one per row): the admitted fraction is P within 5 standard
    errors (fixed seed: the same figure every run), and with P = 0.5 as well."""
    n = 200_000
    X = sp.csr_matrix((np.ones(n, np.float32), np.arange(n, dtype=np.int64) * 3 + 1, np.arange(n + 1)),
                      shape=(n, 3 * n + 1))
    y = np.zeros(n)
    for p in (0.03, 0.5):
        st_ = _state(X.shape[1], AdmitPolicy(probability=p))
        _train_kernel(X, y, st_, batch=50_000)
        rate = st_.admission.admitted / n
        assert abs(rate - p) < 5 * math.sqrt(p * (1 - p) / n), (p, rate)
        assert st_.admission.admitted + st_.admission.rejected == n
        assert st_.touched == st_.admission.admitted


def test_poisson_admits_afresh_every_epoch():
    """A key rejected in epoch 1 at row r is decided again (another hash) in epoch 2."""
    n = 20_000
    X = sp.csr_matrix((np.ones(n, np.float32), np.arange(n, dtype=np.int64), np.arange(n + 1)), shape=(n, n))
    st_ = _state(n, AdmitPolicy(probability=0.5))
    _train_kernel(X, np.zeros(n), st_, batch=n)
    first = st_.admission.admitted
    st_.admission.begin_epoch(1)
    _train_kernel_epoch(X, st_, 1)
    # about half of the rejected half is admitted in the second epoch
    assert 0.2 * n < st_.admission.admitted - first < 0.3 * n


def _train_kernel_epoch(X, st_, epoch):
    acc = np.zeros(3)
    st_.admission.begin_epoch(epoch)
    train_batch(st_, Batch(X, np.zeros(X.shape[0]), None, 0), PARAMS, NO_MASK, acc, None, 0)


# =========================================================================================
# through train(): off is off, determinism, chunking, accounting
# =========================================================================================
ROWS = 600
SPEC = parse_spec({
    "version": 1,
    "label": {"column": "label"},
    "hashing": {"bits": 14, "seed": 3},
    "features": [
        {"name": "c", "kind": "categorical", "column": "c"},
        {"name": "x", "kind": "bucket", "column": "x", "boundaries": [-1.0, 0.0, 1.0]},
    ],
    "crosses": [{"features": ["c", "x"]}],
})


def _table() -> pa.Table:
    rng = np.random.default_rng(0)
    c = [f"v{int(k)}" for k in rng.zipf(1.3, ROWS) % 5000]
    x = rng.normal(size=ROWS)
    label = (rng.random(ROWS) < 0.4).astype(np.int8)
    return pa.table({"c": c, "x": x, "label": label})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("admit") / "data.parquet"
    pq.write_table(_table(), path, row_group_size=100)
    return path


ARGS = dict(alpha=0.2, l1=0.1, epochs=2, batch_rows=50)


@pytest.mark.parametrize("off", [dict(admit_after=1), dict(admit_probability=1.0),
                                 dict(admit_after=1, admit_filter_mb=2.0)])
def test_admission_off_is_byte_identical(data, off):
    plain = sparsecross.train(data, SPEC, **ARGS)
    same = sparsecross.train(data, SPEC, **ARGS, **off)
    assert model_bytes(same) == model_bytes(plain)
    assert "admit_after" not in same.params and "admitted_features" not in same.stats


@pytest.mark.parametrize("policy", [dict(admit_after=2), dict(admit_after=3, admit_filter_mb=0.001),
                                    dict(admit_probability=0.2)])
def test_deterministic_and_recorded(data, policy):
    one = {**ARGS, "epochs": 1}  # in a second epoch, every feature seen once is seen twice
    a, sa = sparsecross.train(data, SPEC, **one, **policy, return_state=True)
    b = sparsecross.train(data, SPEC, **one, **policy)
    plain = sparsecross.train(data, SPEC, **one)
    assert model_bytes(a) == model_bytes(b)
    assert model_bytes(a) != model_bytes(plain)
    key = "admit_after" if "admit_after" in policy else "admit_probability"
    assert a.params[key] == policy[key]
    assert a.stats["admitted_features"] == sa.admission.admitted == a.stats["touched_features"]
    assert a.stats["rejected_sightings"] > 0
    assert a.stats["touched_features"] < plain.stats["touched_features"]
    assert a.stats["admit_filter_bytes"] == sa.admission.filter.nbytes
    # the default filter is sized from the rows: 600 rows -> the 64 KiB minimum
    if policy == dict(admit_after=2):
        assert sa.admission.filter.nbytes == 1 << 16 and a.params["admit_filter_mb"] == 0.0625


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(batch_rows=st.integers(1, 700), policy=st.sampled_from([dict(admit_after=2), dict(admit_probability=0.3)]))
def test_batch_size_does_not_change_the_model(data, batch_rows, policy):
    ref = sparsecross.train(data, SPEC, **{**ARGS, "batch_rows": 64}, **policy)
    got = sparsecross.train(data, SPEC, **{**ARGS, "batch_rows": batch_rows}, **policy)
    assert model_bytes(got) == model_bytes(ref)


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """4,000 rows whose categories are mostly seen once an epoch: admit_after=2 admits most
    of them in epoch 2, when their second sighting comes."""
    rng = np.random.default_rng(1)
    c = [f"v{int(k)}" for k in rng.zipf(1.3, 4000) % 50_000]
    path = tmp_path_factory.mktemp("admit-many") / "data.parquet"
    pq.write_table(pa.table({"c": c, "x": rng.normal(size=4000), "label": (rng.random(4000) < 0.4).astype(np.int8)}),
                   path, row_group_size=500)
    return path


def _live_and_best(data, monkeypatch, **kw):
    """A run whose epoch 1 stays the best (early stopping keeps its copy) while admission keeps
    admitting, so the live state grows after the copy; returns (model, live state, best copy)."""
    import sys

    from sparsecross import epochs

    train_module = sys.modules["sparsecross.train"]
    monkeypatch.setattr(epochs, "_best_epoch", lambda history: 1)
    live: list[FTRLState] = []
    step = train_module.train_batch

    def watched(state, *a, **k):
        live.append(state)
        step(state, *a, **k)

    monkeypatch.setattr(train_module, "train_batch", watched)
    model, best = sparsecross.train(data, SPEC, **{**ARGS, "epochs": 3}, admit_after=2, holdout=0.2,
                                    early_stop=1, return_state=True, **kw)
    assert model.stats["best_epoch"] == 1 and len(model.stats["history"]) == 2
    assert live[-1] is not best and live[-1].capacity > best.capacity  # it grew after the copy
    return model, live[-1], best


def test_state_bytes_peak_counts_the_best_state_beside_the_live_one(many, monkeypatch):
    """Under early stopping the best epoch's copy is held while training goes on: the peak
    counts both (it once reported the copy's own figures, twice its bytes, below the live
    state after its growth), and no more than the copy beside the live state's own peak."""
    model, live, best = _live_and_best(many, monkeypatch)
    peak = model.run["state_bytes_peak"]
    assert best.nbytes + live.nbytes <= peak <= best.nbytes + live.bytes_peak


def test_state_bytes_peak_under_early_stop_survives_a_resume(many, monkeypatch, tmp_path):
    """The checkpoint keeps the run's peak (copy included): a run resumed from the finished
    checkpoint reports what the uninterrupted one did."""
    whole, _, _ = _live_and_best(many, monkeypatch)
    _live_and_best(many, monkeypatch, checkpoint=tmp_path / "ck")
    resumed = sparsecross.train(many, SPEC, **{**ARGS, "epochs": 3}, admit_after=2, holdout=0.2, early_stop=1,
                                checkpoint=tmp_path / "ck")  # finished: nothing left to train
    assert resumed.run["state_bytes_peak"] == whole.run["state_bytes_peak"]


def test_nbytes_counts_the_filter_and_peak_holds_a_growth():
    st_ = FTRLState(1 << 20, "float32")
    base = st_.nbytes
    st_.admission = Admission(AdmitPolicy(after=2, filter_mb=1.0), 0)
    assert st_.nbytes == base + (1 << 20) + st_.admission.counts.nbytes + st_.admission.cfg.nbytes
    before = st_.nbytes
    table_before = st_.table.nbytes
    st_.grow()
    # during the growth both tables were held, plus the filter
    assert st_.bytes_peak == before + 2 * table_before
    assert st_.bytes_peak > st_.nbytes


def test_state_bytes_peak_reported(data):
    model, state = sparsecross.train(data, SPEC, **ARGS, admit_after=2, return_state=True)
    peak = model.run["state_bytes_peak"]
    assert peak >= state.nbytes >= state.admission.filter.nbytes
    assert "state_bytes_peak" not in model.stats  # the file must not depend on the growth schedule


@pytest.mark.parametrize("bad,match", [
    (dict(admit_after=0), "^admit_after must be between 1 and 15 \\(sightings before a feature gets state; 1 = every feature\\), got 0$"),
    (dict(admit_after=16), "admit_after"),
    (dict(admit_after=2.0), "admit_after"),
    (dict(admit_probability=0.0), "admit_probability must be a number in \\(0, 1\\]"),
    (dict(admit_probability=1.5), "admit_probability"),
    (dict(admit_probability=float("nan")), "admit_probability"),
    (dict(admit_after=2, admit_filter_mb=0.0), "admit_filter_mb"),
    (dict(admit_after=2, admit_probability=0.5), "not both"),
])
def test_bad_parameters(data, bad, match):
    with pytest.raises(ParameterError, match=match):
        sparsecross.train(data, SPEC, **bad)


# =========================================================================================
# checkpoints
# =========================================================================================
class _Crash(Exception):
    pass


def _crash_after(monkeypatch, k: int, fn) -> None:
    orig = FTRLState.save
    saves = []

    def crashing_save(self, path, meta):
        orig(self, path, meta)
        saves.append(1)
        if len(saves) == k:
            raise _Crash

    monkeypatch.setattr(FTRLState, "save", crashing_save)
    try:
        with pytest.raises(_Crash):
            fn()
    finally:
        monkeypatch.setattr(FTRLState, "save", orig)


POLICIES = [dict(admit_after=2), dict(admit_after=4, admit_filter_mb=0.0001), dict(admit_probability=0.25)]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("crash_after", [2, 5, 8])
def test_resume_equals_uninterrupted(data, tmp_path, monkeypatch, policy, crash_after):
    """A run killed after its k-th checkpoint (mid epoch 1, at the epoch end, mid epoch 2)
    and re-run ends with the uninterrupted model, byte for byte."""
    uninterrupted = sparsecross.train(data, SPEC, **ARGS, **policy)
    ck = tmp_path / "ck"
    _crash_after(monkeypatch, crash_after,
                 lambda: sparsecross.train(data, SPEC, **ARGS, **policy, checkpoint=ck, checkpoint_every=150))
    resumed = sparsecross.train(data, SPEC, **ARGS, **policy, checkpoint=ck, checkpoint_every=150)
    assert model_bytes(resumed) == model_bytes(uninterrupted)


@pytest.mark.parametrize("policy", [dict(admit_after=2), dict(admit_probability=0.25)])
def test_shuffled_resume_and_batch_size(data, tmp_path, monkeypatch, policy):
    """Shuffled epochs: admission follows the position in each epoch's order, so a resumed run
    and another batch size give the same model; another shuffle seed admits differently."""
    shuf = dict(shuffle=True, shuffle_seed=4, shuffle_buffer_rows=128)
    ref = sparsecross.train(data, SPEC, **ARGS, **policy, **shuf)
    other_batch = sparsecross.train(data, SPEC, **{**ARGS, "batch_rows": 37}, **policy, **shuf)
    assert model_bytes(other_batch) == model_bytes(ref)
    ck = tmp_path / "ck"
    _crash_after(monkeypatch, 3, lambda: sparsecross.train(data, SPEC, **ARGS, **policy, **shuf, checkpoint=ck,
                                                           checkpoint_every=150))
    resumed = sparsecross.train(data, SPEC, **ARGS, **policy, **shuf, checkpoint=ck, checkpoint_every=150)
    assert model_bytes(resumed) == model_bytes(ref)
    reseeded = sparsecross.train(data, SPEC, **ARGS, **policy, **{**shuf, "shuffle_seed": 5})
    assert reseeded.stats["rejected_sightings"] != ref.stats["rejected_sightings"] or \
        model_bytes(reseeded) != model_bytes(ref)


@pytest.fixture(scope="module")
def genuine(data, tmp_path_factory) -> bytes:
    """A real checkpoint of an admit_after=2 run, mid epoch 1."""
    ck = tmp_path_factory.mktemp("genuine_admit")
    mp = pytest.MonkeyPatch()
    try:
        _crash_after(mp, 2, lambda: sparsecross.train(data, SPEC, **ARGS, admit_after=2, checkpoint=ck,
                                                      checkpoint_every=150))
    finally:
        mp.undo()
    return (ck / "state.npz").read_bytes()


def _arrays(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        return {k: f[k].copy() for k in f.files}


def _save(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "state.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return folder


def _refused(data, folder: Path, match: str, **policy) -> None:
    with pytest.raises(CheckpointError) as info:
        sparsecross.train(data, SPEC, **ARGS, **(policy or dict(admit_after=2)), checkpoint=folder,
                          checkpoint_every=150)
    msg = str(info.value)
    assert str(folder / "state.npz") in msg and "\n" not in msg
    assert match in msg, msg


def test_genuine_checkpoint_holds_filter_and_counts(genuine):
    a = _arrays(genuine)
    assert a["admit_filter"].dtype == np.uint8 and a["admit_filter"].shape == (1 << 16,)
    assert a["admit_counts"].dtype == np.int64 and a["admit_counts"].shape == (2,)
    assert a["admit_counts"][1] > 0 and np.count_nonzero(a["admit_filter"])
    assert json.loads(a["meta"].tobytes())["state_bytes_peak"] > (1 << 16)


@pytest.mark.parametrize("change,match", [
    (lambda a: a.pop("admit_filter"), "no admission filter"),
    (lambda a: a.pop("admit_counts"), "no admission filter"),
    (lambda a: a.update(admit_filter=a["admit_filter"][: 1 << 15]), "32,768 bytes, this run's has 65,536"),
    (lambda a: a.update(admit_filter=np.zeros(1000, np.uint8)), "1,000 bytes"),
    (lambda a: a.update(admit_filter=a["admit_filter"].view(np.int8)), "'admit_filter' has dtype"),
    (lambda a: a.update(admit_filter=a["admit_filter"].reshape(256, 256)), "'admit_filter' has shape"),
    (lambda a: a.update(admit_counts=np.array([5, -1], np.int64)), "negative"),
    (lambda a: a.update(admit_counts=np.array([5], np.int64)), "'admit_counts' has shape"),
    (lambda a: a.update(admit_counts=a["admit_counts"].astype(np.int32)), "'admit_counts' has dtype"),
    (lambda a: a.update(admit_counts=np.array([0, 3], np.int64)), "nonzero counters, more than two per"),
    (lambda a: a.update(admit_filter=np.full(1 << 16, 255, np.uint8)), "nonzero counters"),
])
def test_corrupted_filter_is_refused(data, genuine, tmp_path, change, match):
    arrays = _arrays(genuine)
    change(arrays)
    _refused(data, _save(tmp_path / "ck", arrays), match)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, (1 << 16) - 1), st.integers(0, 255)), min_size=1, max_size=50),
       counts=st.tuples(st.integers(-3, 1 << 40), st.integers(-3, 1 << 40)))
def test_fuzzed_filter_and_counts_resume_or_refuse(data, genuine, tmp_path_factory, flips, counts):
    """Any filter bytes and counts: a clean one-line CheckpointError, or a run that completes."""
    arrays = _arrays(genuine)
    f = arrays["admit_filter"]
    for i, v in flips:
        f[i] = v
    arrays["admit_counts"] = np.array(counts, np.int64)
    folder = _save(tmp_path_factory.mktemp("fuzz") / "ck", arrays)
    try:
        model = sparsecross.train(data, SPEC, **ARGS, admit_after=2, checkpoint=folder, checkpoint_every=150)
    except CheckpointError as exc:
        assert "\n" not in str(exc) and str(folder / "state.npz") in str(exc)
    else:
        assert model.stats["admitted_features"] >= 0


def test_filter_in_a_run_without_admission_is_refused(data, tmp_path):
    """A checkpoint of a run without admission, given a filter: refused (and the params of an
    admission run differ from a plain run's, so the plain run never takes its checkpoint)."""
    ck = tmp_path / "plain"
    mp = pytest.MonkeyPatch()
    try:
        _crash_after(mp, 2, lambda: sparsecross.train(data, SPEC, **ARGS, checkpoint=ck, checkpoint_every=150))
    finally:
        mp.undo()
    arrays = _arrays((ck / "state.npz").read_bytes())
    arrays["admit_filter"] = np.zeros(1 << 16, np.uint8)
    arrays["admit_counts"] = np.zeros(2, np.int64)
    folder = _save(tmp_path / "ck2", arrays)
    with pytest.raises(CheckpointError, match="holds an admission filter"):
        sparsecross.train(data, SPEC, **ARGS, checkpoint=folder, checkpoint_every=150)


def test_another_policy_is_another_run(data, genuine, tmp_path):
    folder = _save(tmp_path / "ck", _arrays(genuine))
    with pytest.raises(CheckpointError, match="belongs to another run"):
        sparsecross.train(data, SPEC, **ARGS, admit_after=3, checkpoint=folder, checkpoint_every=150)


@pytest.mark.parametrize("key", ["state_bytes_peak", "live_bytes_peak"])
@pytest.mark.parametrize("value", [-3, 2.5, "7", None])
def test_bad_state_bytes_peak_is_refused(data, genuine, tmp_path, key, value):
    arrays = _arrays(genuine)
    meta = json.loads(arrays["meta"].tobytes())
    assert meta[key] > 0  # the checkpoint has both: the run's peak and the live state's own
    meta[key] = value
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _refused(data, _save(tmp_path / "ck", arrays), f"{key} {value!r}")


# =========================================================================================
# path, spec keys, CLI
# =========================================================================================
def test_path_points_equal_separate_trains(data):
    from sparsecross.path import regularization_path

    res = regularization_path(data, SPEC, l1=[0.05, 0.5], alpha=0.2, holdout=0.25, admit_after=2,
                                          batch_rows=128)
    for p in res.points:
        m = sparsecross.train(data, SPEC, alpha=0.2, l1=p.l1, holdout=0.25, admit_after=2, batch_rows=128)
        assert model_bytes(m) == model_bytes(p.model)
        assert p.model.params["admit_after"] == 2


def test_train_table_keys(tmp_path):
    from sparsecross.spec import load_spec

    base = 'version = 1\n[label]\ncolumn = "label"\n[hashing]\nbits = 12\n' \
           '[[features]]\nname = "c"\nkind = "categorical"\ncolumn = "c"\n'
    ok = tmp_path / "ok.toml"
    ok.write_text(base + "[train]\nadmit_after = 2\nadmit_filter_mb = 1\n")
    assert load_spec(ok).train["admit_after"] == 2
    both = tmp_path / "both.toml"
    both.write_text(base + "[train]\nadmit_after = 2\nadmit_probability = 0.5\n")
    with pytest.raises(SpecError, match="not both"):
        load_spec(both)
    zero = tmp_path / "zero.toml"
    zero.write_text(base + "[train]\nadmit_probability = 0\n")
    with pytest.raises(SpecError, match="admit_probability"):
        load_spec(zero)


def _cli(capsys, argv):
    from sparsecross.cli import main

    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "spec.toml"
    p.write_text('version = 1\n[label]\ncolumn = "label"\n[hashing]\nbits = 14\nseed = 3\n'
                 '[[features]]\nname = "c"\nkind = "categorical"\ncolumn = "c"\n'
                 '[[features]]\nname = "x"\nkind = "bucket"\ncolumn = "x"\nboundaries = [-1.0, 0.0, 1.0]\n'
                 '[[crosses]]\nfeatures = ["c", "x"]\n')
    return p


def test_cli_json_reports_admission_and_state_bytes(capsys, tmp_path, data, spec_file):
    rc, out, _ = _cli(capsys, ["train", spec_file, data, "--out", tmp_path / "m.scx", "--admit-after", "2",
                               "--json"])
    assert rc == 0
    rep = json.loads(out)
    assert rep["state_bytes_peak"] >= rep["admit_filter_bytes"] == 1 << 16
    assert rep["admitted_features"] == rep["touched_features"] > 0
    assert rep["rejected_sightings"] > 0
    assert rep["peak_rss_bytes"] > rep["state_bytes_peak"]
    rc, out, _ = _cli(capsys, ["train", spec_file, data, "--out", tmp_path / "p.scx", "--admit-probability",
                               "0.1"])
    assert rc == 0 and "optimizer state at most" in out and "sightings of features without state dropped" in out
    rc, out, _ = _cli(capsys, ["inspect", tmp_path / "m.scx"])
    assert rc == 0 and "admit_after=2" in out and "admitted_features" in out


@pytest.mark.parametrize("flags,match", [
    (["--admit-after", "2", "--admit-probability", "0.5"], "not both"),
    (["--admit-after", "0"], "admit_after must be between 1 and 15 (sightings before a feature gets state; 1 = every feature), got 0"),
    (["--admit-probability", "0"], "admit_probability must be a number in (0, 1]"),
    (["--admit-probability", "1.5"], "admit_probability"),
    (["--admit-after", "2", "--admit-filter-mb", "-1"], "admit_filter_mb"),
])
def test_cli_errors(capsys, tmp_path, data, spec_file, flags, match):
    rc, out, err = _cli(capsys, ["train", spec_file, data, "--out", tmp_path / "m.scx", *flags])
    assert rc == 1
    assert match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.scx").exists()


def test_cli_flag_replaces_the_train_tables_mode(capsys, tmp_path, data, spec_file):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_file.read_text() + "[train]\nadmit_probability = 0.5\n")
    rc, out, err = _cli(capsys, ["train", spec, data, "--out", tmp_path / "m.scx", "--admit-after", "2", "--json"])
    assert rc == 0, err
    rc, out, err = _cli(capsys, ["inspect", tmp_path / "m.scx", "--json"])
    params = json.loads(out)["params"]
    assert params["admit_after"] == 2 and "admit_probability" not in params
    rc, out, err = _cli(capsys, ["train", spec, data, "--out", tmp_path / "p.scx", "--json"])
    assert rc == 0 and json.loads(out)["admit_filter_bytes"] == 0  # the table's Poisson mode


def test_cli_path_takes_admission(capsys, tmp_path, data, spec_file):
    rc, out, err = _cli(capsys, ["path", spec_file, data, "--l1", "0.05,0.5", "--holdout", "0.25",
                                 "--admit-after", "2", "--json"])
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["points"]


def test_cli_tune_takes_admission_from_the_spec(capsys, tmp_path, data, spec_file):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_file.read_text() + "[train]\nadmit_after = 2\n")
    rc, out, err = _cli(capsys, ["tune", spec, data, "--holdout", "0.25", "--out", tmp_path / "t.scx",
                                 "--alpha", "0.1", "--l1", "0.5", "--epochs-max", "1", "--names", "0"])
    assert rc == 0, err
    rc, _, err = _cli(capsys, ["train", spec, data, "--holdout", "0.25", "--out", tmp_path / "m.scx",
                               "--alpha", "0.1", "--l1", "0.5", "--names", "0", "-q"])
    assert rc == 0, err
    assert (tmp_path / "t.scx").read_bytes() == (tmp_path / "m.scx").read_bytes()
    assert sparsecross.load_model(tmp_path / "t.scx").params["admit_after"] == 2
