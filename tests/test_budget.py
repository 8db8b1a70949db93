"""The state budget (``--max-state-mb``): eviction kernel, policy, bound, determinism, resume, CLI.

References: ``tests/reference/budget_reference.py`` (the policy on the dict FTRL oracle) and
plain Python dicts / sorted lists for the table operations.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that `tests.reference` imports without a conftest
    sys.path.insert(0, str(ROOT))

import sparsecross  # noqa: E402
from sparsecross import CheckpointError, FTRLState, ParameterError, SpecError, load_spec, parse_spec  # noqa: E402
from sparsecross._kernels.evict import delete_slot, evict_upto, rank_threshold  # noqa: E402
from sparsecross._kernels.ftrl import FTRLParams  # noqa: E402
from sparsecross._kernels.hash import fmix64  # noqa: E402
from sparsecross._kernels.table import empty_table, slot_of  # noqa: E402
from sparsecross.budget import (  # noqa: E402
    GROWTH_PEAK,
    MIB,
    apply_budget,
    capacity_for,
)
from sparsecross.cli import main  # noqa: E402
from sparsecross.export import model_bytes  # noqa: E402
from sparsecross.featurize import Batch  # noqa: E402
from sparsecross.state import MAX_LOAD, GrowthPlan  # noqa: E402
from sparsecross.train import train_batch  # noqa: E402
from tests.reference.budget_reference import BudgetedReferenceFTRL  # noqa: E402
from tests.test_train import make_problem, row_items  # noqa: E402

TRAIN_MODULE = sys.modules["sparsecross.train"]  # `sparsecross.train` is the function
STATE_MODULE = sys.modules["sparsecross.state"]
SAMPLE = ROOT / "data" / "sample.parquet"
SPEC_PATH = ROOT / "data" / "specs" / "synthetic.toml"
NO_MASK = np.zeros(0, dtype=np.uint8)
#: 0.1 MiB: 4,096 slots of 12 bytes (1.5x while growing = 72 KiB), 2,867 keys; the sample
#: touches 29,746.
SMALL_MB = 0.1
ARGS = dict(alpha=0.2, l1=0.5)


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


def _mb_for(capacity: int, slot_bytes: int) -> float:
    """The smallest budget (MiB) whose largest table has ``capacity`` slots (bias: 16 bytes)."""
    return (GROWTH_PEAK * capacity * slot_bytes + 16) / MIB


# =========================================================================================
# sizing
# =========================================================================================
def test_capacity_for_is_the_largest_power_of_two_whose_growth_peak_fits():
    for max_bytes, slot, fixed in [(1e6, 12, 16), (5 * MIB, 24, 4096), (1.5 * 1024 * 12 + 16, 12, 16),
                                   (1.5 * 1024 * 12 + 15, 12, 16), (100, 12, 16)]:
        cap = capacity_for(max_bytes, slot, fixed)
        brute = max((c for c in (1 << i for i in range(40)) if 1.5 * c * slot + fixed <= max_bytes), default=0)
        assert cap == brute, (max_bytes, slot, fixed)


def test_apply_budget_counts_the_admission_filters():
    st_ = FTRLState(1 << 22)
    apply_budget(st_, _mb_for(2048, 12))
    assert st_.max_capacity == 2048

    class Filter:
        nbytes = 10_000

    st_.admission = Filter()
    assert st_.fixed_bytes == st_.bias.nbytes + 10_000 and st_.nbytes == st_.table.nbytes + st_.fixed_bytes
    apply_budget(st_, _mb_for(2048, 12))
    assert st_.max_capacity == 1024  # the filter's bytes come out of the table's share
    with pytest.raises(ParameterError, match="too small"):
        apply_budget(st_, _mb_for(1024, 12))


def test_nbytes_is_the_one_count_of_the_state_the_budget_bounds():
    """FTRLState.nbytes (table, bias, admission filter and counters, a 16-bit state's zbig) is
    what the budget counts (it once had its own sum in budget.state_bytes): sizes written out
    from the layouts, and the largest table whose growth fits exactly is the one granted."""
    from sparsecross.admission import Admission, AdmitPolicy
    from sparsecross.budget import growth_extra
    from sparsecross.state16 import new_state

    plain = FTRLState(1 << 22)  # 1,024 slots of 3 uint32 words, bias 2 float64
    assert (plain.nbytes, plain.fixed_bytes, plain.side_bytes) == (1024 * 12 + 16, 16, 0)
    plain.admission = Admission(AdmitPolicy(after=3, filter_mb=1.0), seed=0)  # filter + counts int64[2] + cfg uint64[5]
    assert plain.fixed_bytes == 16 + (1 << 20) + 16 + 40 and plain.nbytes == 1024 * 12 + plain.fixed_bytes
    half = new_state(1 << 22, state_bits=16)  # 8-byte slots, zbig float32[256]
    assert (half.nbytes, half.side_bytes) == (1024 * 8 + 256 * 4 + 16, 256 * 4)
    for st_, slot in ((plain, 12), (half, 8)):
        reserve = int(getattr(st_, "side_bytes_max", 0))  # a 16-bit state's zbig at its largest
        exact = 4096 * slot + growth_extra(4096, slot) + st_.fixed_bytes + reserve
        apply_budget(st_, exact / MIB)
        assert st_.max_capacity == 4096
        apply_budget(st_, (exact - 1) / MIB)
        assert st_.max_capacity == 2048


# =========================================================================================
# backward-shift deletion and selection, against dicts
# =========================================================================================
_CAP = 16
_POOL = np.arange(1, 4000, dtype=np.uint64)
_HOME = np.array([int(fmix64(np.uint64(k))) & (_CAP - 1) for k in _POOL])
#: keys whose home is one of the last two slots or the first: clusters wrap around the end
_WRAP_KEYS = [int(k) for k, h in zip(_POOL, _HOME) if h in (14, 15, 0)][:40]
_OTHER_KEYS = [int(k) for k, h in zip(_POOL, _HOME) if h not in (14, 15, 0)][:40]
_key = st.one_of(st.sampled_from(_WRAP_KEYS), st.sampled_from(_WRAP_KEYS), st.sampled_from(_OTHER_KEYS))


def _assert_table_is(table, vals, want: dict[int, tuple[float, float]], absent=()) -> None:
    empty = np.iinfo(table.dtype).max
    assert int(np.count_nonzero(table[:, 0] != empty)) == len(want)
    for k, (z, n) in want.items():
        s = slot_of(table, table.dtype.type(k))
        assert int(table[s, 0]) == k, f"key {k} not findable"
        assert (float(vals[s, 1]), float(vals[s, 2])) == (z, n)
    for k in absent:
        if k not in want:
            assert table[slot_of(table, table.dtype.type(k)), 0] == empty


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _key, st.floats(-3, 3, width=32)), max_size=60),
       st.sampled_from([np.uint32, np.uint64]))
def test_backward_shift_deletion_keeps_every_key_findable(ops, word):
    table = empty_table(_CAP, 3, np.dtype(word))
    vals = table.view(np.float32 if word is np.uint32 else np.float64)
    want: dict[int, tuple[float, float]] = {}
    for insert, k, z in ops:
        if insert and k not in want and len(want) < int(_CAP * MAX_LOAD):
            s = slot_of(table, table.dtype.type(k))
            table[s, 0], vals[s, 1], vals[s, 2] = k, z, abs(z)
            want[k] = (float(vals[s, 1]), float(vals[s, 2]))
        elif not insert and k in want:
            delete_slot(table, vals, slot_of(table, table.dtype.type(k)))
            del want[k]
        _assert_table_is(table, vals, want, absent=[k])


def _ref_rank(k: int, z: float, n: float, l1: float) -> tuple[int, float, int]:
    return (0, n, k) if abs(z) <= l1 else (1, abs(z), k)


@settings(max_examples=300, deadline=None)
@given(st.lists(_key, min_size=1, max_size=11, unique=True), st.data(), st.sampled_from([np.uint32, np.uint64]))
def test_eviction_removes_exactly_the_k_lowest_ranks(keys, data, word):
    """Few distinct z / n values (many ties, broken by key), clusters wrapping the end."""
    table = empty_table(_CAP, 3, np.dtype(word))
    vals = table.view(np.float32 if word is np.uint32 else np.float64)
    count = np.zeros(1, dtype=np.int64)
    l1 = 1.0
    values = st.sampled_from([0.0, 0.5, 1.0, -1.0, 1.5, -2.0, 3.0])
    want = {}
    for k in keys:
        z, n = data.draw(values), abs(data.draw(values))
        s = slot_of(table, table.dtype.type(k))
        table[s, 0], vals[s, 1], vals[s, 2] = k, z, n
        want[k] = (float(vals[s, 1]), float(vals[s, 2]))
        count[0] += 1
    k_evict = data.draw(st.integers(1, len(keys)))
    order = sorted(want, key=lambda k: _ref_rank(k, *want[k], l1))
    fbuf = np.zeros(1)
    ubuf = fbuf.view(np.uint64)
    t_score, t_key = rank_threshold(table, vals, l1, np.int64(k_evict), fbuf, ubuf)
    removed = evict_upto(table, vals, count, l1, np.uint64(t_score), np.uint64(t_key), fbuf, ubuf)
    assert removed == k_evict and count[0] == len(keys) - k_evict
    survivors = {k: want[k] for k in order[k_evict:]}
    _assert_table_is(table, vals, survivors, absent=order[:k_evict])


def test_eviction_on_a_large_table_matches_a_sort():
    """Thousands of slots, continuous values, both classes."""
    rng = np.random.default_rng(5)
    st_ = FTRLState(1 << 40, "float64", capacity=1 << 14)
    keys = np.unique(rng.integers(0, 1 << 40, 11_000))
    for k in keys:
        s = slot_of(st_.table, np.uint64(k))
        st_.table[s, 0] = k
        st_.values[s, 1] = rng.normal(0, 1.5)
        st_.values[s, 2] = rng.choice([0.25, 1.0, rng.random()])  # ties in n
        st_.count[0] += 1
    want = st_.as_dict()
    k_evict = 4321
    fbuf = np.zeros(1)
    ubuf = fbuf.view(np.uint64)
    t = rank_threshold(st_.table, st_.values, 1.0, np.int64(k_evict), fbuf, ubuf)
    assert evict_upto(st_.table, st_.values, st_.count, 1.0, np.uint64(t[0]), np.uint64(t[1]), fbuf, ubuf) == k_evict
    order = sorted(want, key=lambda k: _ref_rank(k, *want[k], 1.0))
    assert st_.as_dict() == {k: want[k] for k in order[k_evict:]}
    _assert_table_is(st_.table, st_.values, st_.as_dict())


# =========================================================================================
# the policy in training, against the dict oracle
# =========================================================================================
def _small_state(n_columns: int, dtype: str, max_capacity: int) -> FTRLState:
    """An empty state that starts at 2 slots (so that it grows, then evicts at its budget)."""
    saved = STATE_MODULE._MIN_CAPACITY
    STATE_MODULE._MIN_CAPACITY = 2
    try:
        st_ = FTRLState(n_columns, dtype, capacity=2)
        slot = st_.table.itemsize * 3
        apply_budget(st_, _mb_for(max_capacity, slot))
    finally:
        STATE_MODULE._MIN_CAPACITY = saved
    assert st_.max_capacity == max_capacity
    return st_


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.3, 1.0, 3.0]), st.sampled_from([1, 37, 4000]),
       st.booleans(), st.booleans())
def test_kernel_equals_the_budgeted_oracle(seed, l1, batch, binary, huge):
    """Same surviving set, same (z, n), same eviction counts, at any batch size (float64 state)."""
    X, y, sw = make_problem(seed, 4000, 3000, binary=binary, weighted=False, huge=huge)
    params = FTRLParams(0.3, 1.0, l1, 0.5, 0.0)
    cap = 64
    state = _small_state(X.shape[1], "float64", cap)
    plan = GrowthPlan(X.shape[0])
    acc = np.zeros(3)
    for a in range(0, X.shape[0], batch):
        b = min(a + batch, X.shape[0])
        train_batch(state, Batch(X[a:b], y[a:b], None, a), params, NO_MASK, acc, plan)
        assert state.capacity <= cap and state.touched <= int(cap * MAX_LOAD)
    ref = BudgetedReferenceFTRL(0.3, 1.0, l1, 0.5, max_keys=int(cap * MAX_LOAD))
    for r in range(X.shape[0]):
        ref.update(row_items(X, r), float(y[r]))
    got, exp = state.as_dict(), ref.state()
    assert ref.evictions >= 10
    assert (state.evicted_features, state.evictions) == (ref.evicted_features, ref.evictions)
    assert set(got) == set(exp)
    for k in exp:
        assert got[k] == pytest.approx(exp[k], rel=1e-12, abs=1e-12)
    assert state.bias.tolist() == pytest.approx([ref.z_b, ref.n_b], rel=1e-12, abs=1e-12)


def test_a_row_larger_than_the_budget_is_a_parameter_error():
    X, y, _ = make_problem(1, 3, 5000, binary=True, weighted=False)
    state = _small_state(X.shape[1], "float32", 2)  # 1 key
    with pytest.raises(ParameterError, match="a row has .* features but the state budget holds at most 1"):
        train_batch(state, Batch(X, y, None, 0), FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0), NO_MASK, np.zeros(3))


# =========================================================================================
# the bound, checked after every batch and at every growth
# =========================================================================================
class BudgetWatch:
    """Wraps ``train_batch`` (after every batch) and ``FTRLState.grow`` (old + new table while
    the keys move) to record the state's bytes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, budget_bytes: float) -> None:
        self.budget = budget_bytes
        self.after_batch: list[int] = []
        self.touched: list[int] = []
        self.peak = 0
        orig_batch, orig_grow = TRAIN_MODULE.train_batch, FTRLState.grow
        watch = self

        def batch(state, *a, **k):
            orig_batch(state, *a, **k)
            nbytes = state.nbytes
            assert nbytes <= watch.budget
            watch.after_batch.append(nbytes)
            watch.touched.append(state.touched)
            watch.peak = max(watch.peak, nbytes)

        def grow(self_, needed=0):
            old = self_.table.nbytes
            orig_grow(self_, needed)
            peak = old + self_.nbytes
            assert peak <= watch.budget
            watch.peak = max(watch.peak, peak)

        monkeypatch.setattr(TRAIN_MODULE, "train_batch", batch)
        monkeypatch.setattr(FTRLState, "grow", grow)


@pytest.mark.parametrize("max_mb,dtype", [(SMALL_MB, "float32"), (0.25, "float64"), (0.6, "float32")])
def test_state_never_exceeds_the_budget(spec, monkeypatch, max_mb, dtype):
    watch = BudgetWatch(monkeypatch, max_mb * MIB)
    model, state = sparsecross.train(SAMPLE, spec, batch_rows=500, max_state_mb=max_mb, state_dtype=dtype,
                                     return_state=True, epochs=2, **ARGS)
    assert len(watch.after_batch) == 2 * 40
    assert state.evictions > 0 and model.stats["evicted_features"] == state.evicted_features
    assert model.stats["evictions"] == state.evictions and model.params["max_state_mb"] == max_mb
    assert watch.peak <= max_mb * MIB
    assert watch.peak > 0.5 * max_mb * MIB  # the budget is used, not left idle


def test_fresh_id_stream_stays_flat_at_the_budget(tmp_path, monkeypatch):
    """Every row carries a new random 64-bit id (a hashed categorical): the table reaches its
    budget capacity, then the state's bytes stay flat while the keys keep coming."""
    rng = np.random.default_rng(7)
    rows = 30_000
    ids = rng.integers(-(1 << 63), (1 << 63) - 1, rows, dtype=np.int64)
    assert len(np.unique(ids)) == rows
    hour = rng.integers(0, 24, rows)
    label = (rng.random(rows) < 0.2 + 0.02 * (hour % 5)).astype(np.int8)
    path = tmp_path / "fresh.parquet"
    pq.write_table(pa.table({"id": ids, "hour": hour, "label": label}), path, row_group_size=5000)
    fspec = parse_spec({"version": 1, "label": {"column": "label"}, "hashing": {"bits": 30, "seed": 0},
                        "features": [{"name": "id", "kind": "categorical", "column": "id"},
                                     {"name": "hour", "kind": "categorical", "column": "hour"}]})
    watch = BudgetWatch(monkeypatch, SMALL_MB * MIB)
    model, state = sparsecross.train(path, fspec, batch_rows=1000, max_state_mb=SMALL_MB, return_state=True, l1=0.5)
    top = 4096 * 12 + 16  # the budget's largest table (12-byte slots) and the bias
    first = watch.after_batch.index(top)
    assert first < 5 and all(b == top for b in watch.after_batch[first:])
    assert max(watch.touched) <= int(4096 * MAX_LOAD)
    assert state.evicted_features >= rows - int(4096 * MAX_LOAD)
    assert state.evictions >= (rows - 2867) // 574  # sweeps free (1 - 0.8) of the load limit
    # insertions = held + evicted: every id once (30,000 ids in 2**30 columns: a collision or two at
    # most) plus the hours, re-inserted when an eviction took them
    assert rows - 3 <= state.touched + state.evicted_features <= rows + 24 * (state.evictions + 1)
    assert model.nonzeros > 0  # the hours survive: their weights are nonzero and ranked last


# =========================================================================================
# determinism
# =========================================================================================
@pytest.fixture(scope="module")
def budget_run(spec):
    return sparsecross.train(SAMPLE, spec, batch_rows=20_000, max_state_mb=SMALL_MB, **ARGS)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(st.integers(97, 19_999))
def test_same_model_bytes_at_any_batch_size(spec, budget_run, batch_rows):
    model = sparsecross.train(SAMPLE, spec, batch_rows=batch_rows, max_state_mb=SMALL_MB, **ARGS)
    assert model.stats["evictions"] == budget_run.stats["evictions"] > 10
    assert model_bytes(model) == model_bytes(budget_run)


def test_budget_loses_little_on_the_sample(spec, budget_run):
    """A budget changes the model (and would change it for the worse if the policy evicted
    the wrong features); at a tenth of the sample's state, progressive logloss moves < 1%."""
    full = sparsecross.train(SAMPLE, spec, **ARGS)
    assert "evictions" not in full.stats and "max_state_mb" not in full.params
    assert budget_run.stats["progressive_logloss"] < 1.01 * full.stats["progressive_logloss"]


# =========================================================================================
# checkpoints
# =========================================================================================
CKPT = dict(epochs=2, holdout=0.2, batch_rows=1000, max_state_mb=SMALL_MB, **ARGS)


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", [2, 7])
def test_resume_after_crash_equals_uninterrupted(spec, tmp_path, monkeypatch, crash_after):
    plain = sparsecross.train(SAMPLE, spec, **CKPT)
    ck = tmp_path / "ck"
    saves = []
    orig_save = FTRLState.save

    def crashing_save(self, path, meta):
        orig_save(self, path, meta)
        saves.append(self.evictions)
        if len(saves) == crash_after:
            raise _Crash

    monkeypatch.setattr(FTRLState, "save", crashing_save)
    with pytest.raises(_Crash):
        sparsecross.train(SAMPLE, spec, checkpoint=ck, checkpoint_every=3000, **CKPT)
    monkeypatch.setattr(FTRLState, "save", orig_save)
    saved, _ = FTRLState.load(ck / "state.npz")
    assert saved.evictions == saves[-1] > 0 and saved.evicted_features > 0
    model = sparsecross.train(SAMPLE, spec, checkpoint=ck, checkpoint_every=3000, **CKPT)
    assert 0 < model.run["rows_processed"] < 2 * 20_000
    assert model_bytes(model) == model_bytes(plain)
    assert model.stats == plain.stats


def test_damaged_or_oversized_checkpoint_is_refused(spec, tmp_path):
    ck = tmp_path / "ck"
    sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**CKPT, "epochs": 1})
    path = ck / "state.npz"
    state, meta = FTRLState.load(path)
    meta = {**meta, "epoch": 0, "row": 1000, "history": []}
    # the evicted counts: sweeps > features
    with np.load(path) as f:
        arrays = dict(f)
    arrays["evicted"] = np.array([3, 5], dtype=np.int64)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(CheckpointError, match="evicted counts"):
        sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**CKPT, "epochs": 1})
    # a table larger than the run's budget allows
    state.max_capacity = 0
    state.grow(0)
    state.save(path, meta)
    with pytest.raises(CheckpointError, match="larger than its budget") as info:
        sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**CKPT, "epochs": 1})
    from sparsecross.errors import shown_path

    assert str(info.value).endswith(f"; delete the folder {shown_path(ck)} to start over"), info.value


def test_checkpoint_of_another_budget_is_refused(spec, tmp_path):
    ck = tmp_path / "ck"
    sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**CKPT, "epochs": 1})
    with pytest.raises(CheckpointError, match="another run"):
        sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**CKPT, "epochs": 1, "max_state_mb": 0.2})


# =========================================================================================
# API and CLI errors
# =========================================================================================
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "1"])
def test_bad_budget_values(spec, bad):
    with pytest.raises(ParameterError, match="max_state_mb must be a finite number of MiB > 0"):
        sparsecross.train(SAMPLE, spec, max_state_mb=bad)


def test_budget_too_small_for_the_minimum_table(spec):
    with pytest.raises(ParameterError, match=r"max_state_mb 0\.01 is too small: the minimum table"):
        sparsecross.train(SAMPLE, spec, max_state_mb=0.01)


def test_budget_with_early_stop_is_refused(spec):
    with pytest.raises(ParameterError, match="max_state_mb is not available with early_stop"):
        sparsecross.train(SAMPLE, spec, max_state_mb=1, early_stop=1, holdout=0.2)


def _cli_error(capsys, argv: list[str], *fragments: str) -> None:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 1, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsecross: error:"), err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "this is a bug" not in lines[0]


@pytest.mark.parametrize("value,fragment", [("0", "max_state_mb must be a finite number of MiB > 0, got 0.0"),
                                            ("-2", "got -2.0"), ("0.01", "is too small: the minimum table")])
def test_cli_budget_errors_are_one_line(tmp_path, capsys, value, fragment):
    out = tmp_path / "m.scx"
    _cli_error(capsys, ["train", SPEC_PATH, SAMPLE, "--out", out, "--max-state-mb", value, "-q"], fragment)
    assert not out.exists()


def test_cli_budget_too_small_for_the_dask_shards_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    _cli_error(capsys, ["train", SPEC_PATH, SAMPLE, "--out", tmp_path / "m.scx", "--max-state-mb", "0.05",
                        "--dask", "local:1", "--lanes", "4"], "max_state_mb 0.05 is too small for 4 shards")


def _spec_with_train(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(SPEC_PATH.read_text() + f"\n[train]\n{line}\n")
    return p


def test_cli_reports_evictions_and_reads_the_train_table(tmp_path, capsys):
    out = tmp_path / "m.scx"
    assert main(["train", str(SPEC_PATH), str(SAMPLE), "--out", str(out), "--max-state-mb", "0.1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["evictions"] > 0 and rep["evicted_features"] > rep["evictions"]
    spec_file = _spec_with_train(tmp_path, "max_state_mb = 0.1")
    out2 = tmp_path / "m2.scx"
    assert main(["train", str(spec_file), str(SAMPLE), "--out", str(out2)]) == 0
    text = capsys.readouterr().out
    assert f"state budget 0.1 MiB: evicted {rep['evicted_features']:,} features in {rep['evictions']:,} sweep(s)" \
        in text
    a, b = sparsecross.load_model(out), sparsecross.load_model(out2)  # the specs differ by [train]
    assert np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights)
    assert b.params["max_state_mb"] == 0.1
    # the flag wins over the table
    out3 = tmp_path / "m3.scx"
    assert main(["train", str(spec_file), str(SAMPLE), "--out", str(out3), "--max-state-mb", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evictions"] < rep["evictions"]


def test_train_table_max_state_mb_must_be_positive(tmp_path):
    with pytest.raises(SpecError, match="train.max_state_mb: expected a number of MiB > 0"):
        load_spec(_spec_with_train(tmp_path, "max_state_mb = 0"))
