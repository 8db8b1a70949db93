"""Tests of the training order (``sparsecross.order``, ``train(shuffle=...)``, ``--shuffle``):
the shuffled order against an independent pure-Python reference of the documented order,
invariance to the batch size and the reader's chunking, resume, holdout rows, bounded memory
(the ordered-data warning: tests/test_order_check.py).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import CheckpointError, FTRLState, ParameterError, load_spec, parse_spec
from sparsecross._kernels.hash import holdout_mask
from sparsecross.errors import DataError
from sparsecross.export import model_bytes
from sparsecross.featurize import iter_batches
from sparsecross.hashing import fmix64, holdout_salt, xxh64
from sparsecross.order import Shuffle, iter_shuffled_batches, row_holdout_mask

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"  # 20,000 rows in 4 row groups of 5,000
SPEC_PATH = ROOT / "data" / "specs" / "synthetic.toml"
TINY_SPEC = parse_spec({"label": {"column": "y"},
                        "features": [{"name": "c", "kind": "categorical", "column": "c"},
                                     {"name": "x", "kind": "bucket", "column": "x", "boundaries": [0.5]}]})


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


def _write_tiny(folder: Path, sizes: list[list[int]]) -> list[Path]:
    """One file per entry of ``sizes``, with those row group sizes; column ``g`` = global row."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    row = 0
    for fi, groups in enumerate(sizes):
        n = sum(groups)
        g = np.arange(row, row + n, dtype=np.int64)
        t = pa.table({"y": (g % 3 == 0).astype(np.int8), "c": pa.array([f"v{v % 7}" for v in g], pa.string()),
                      "x": (g % 5) / 5.0, "g": g})
        path = folder / f"part{fi:03d}.parquet"
        writer = pq.ParquetWriter(path, t.schema)
        at = 0
        for k in groups:
            writer.write_table(t.slice(at, k), row_group_size=max(k, 1))
            at += k
        writer.close()
        assert [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(len(groups))] == groups
        paths.append(path)
        row += n
    return paths


def reference_order(sizes: list[list[int]], seed: int, epoch: int, buffer_rows: int) -> list[int]:
    """The documented order, computed independently in pure Python: non-empty row groups
    sorted by fmix64(index ^ unit salt), their rows concatenated, cut into windows of
    ``buffer_rows``, each window sorted by fmix64(global row ^ row salt)."""
    units = []
    row = 0
    for groups in sizes:
        for k in groups:
            if k:
                units.append(list(range(row, row + k)))
            row += k
    usalt = xxh64(f"shuffle/units/{epoch}".encode(), seed)
    rsalt = xxh64(f"shuffle/rows/{epoch}".encode(), seed)
    order = sorted(range(len(units)), key=lambda i: fmix64(i ^ usalt))
    stream = [r for i in order for r in units[i]]
    out: list[int] = []
    for a in range(0, len(stream), buffer_rows):
        out.extend(sorted(stream[a:a + buffer_rows], key=lambda r: fmix64(r ^ rsalt)))
    return out


def _rows(source, spec, shuffle, epoch=0, batch_rows=1000, start=0):
    batches = list(iter_shuffled_batches(source, spec, shuffle, epoch=epoch, batch_rows=batch_rows, start=start))
    assert all(len(b.rows) == b.X.shape[0] == len(b.y) <= batch_rows for b in batches)
    assert all(b.start_row == b.rows[0] for b in batches)
    return np.concatenate([b.rows for b in batches]) if batches else np.zeros(0, np.int64)


# =========================================================================================
# the order
# =========================================================================================
sizes_st = st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=4), min_size=1, max_size=3).filter(
    lambda s: sum(map(sum, s)) > 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=sizes_st, seed=st.integers(0, 2**63 - 1), epoch=st.integers(0, 5), buffer_rows=st.integers(1, 100),
       batch_a=st.integers(1, 60), batch_b=st.integers(1, 60), data=st.data())
def test_order_is_the_documented_permutation_whatever_the_batch_size(tmp_path_factory, sizes, seed, epoch,
                                                                    buffer_rows, batch_a, batch_b, data):
    folder = tmp_path_factory.mktemp("tiny")
    _write_tiny(folder, sizes)
    total = sum(map(sum, sizes))
    sh = Shuffle(seed, buffer_rows)
    # batch_rows also sets the reader's chunk size (min(batch_rows, buffer_rows)): both vary here
    a = _rows(folder, TINY_SPEC, sh, epoch, batch_a)
    b = _rows(folder, TINY_SPEC, sh, epoch, batch_b)
    assert sorted(a.tolist()) == list(range(total))  # a permutation of the global rows
    assert a.tolist() == b.tolist() == reference_order(sizes, seed, epoch, buffer_rows)
    # resuming at any position continues the same order
    start = data.draw(st.integers(0, total))
    assert _rows(folder, TINY_SPEC, sh, epoch, batch_b, start=start).tolist() == a[start:].tolist()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**63 - 1), other=st.integers(0, 2**63 - 1), epoch=st.integers(0, 50))
def test_order_differs_across_epochs_and_seeds(tmp_path_factory, seed, other, epoch):
    folder = tmp_path_factory.mktemp("tiny")
    _write_tiny(folder, [[30, 30], [30]])
    a = _rows(folder, TINY_SPEC, Shuffle(seed, 40), epoch)
    assert _rows(folder, TINY_SPEC, Shuffle(seed, 40), epoch).tolist() == a.tolist()  # same seed, same order
    assert _rows(folder, TINY_SPEC, Shuffle(seed, 40), epoch + 1).tolist() != a.tolist()
    if other != seed:
        assert _rows(folder, TINY_SPEC, Shuffle(other, 40), epoch).tolist() != a.tolist()


def test_shuffled_batches_carry_each_rows_own_features_and_label(spec):
    """Every shuffled row is featurized exactly as the same global row read in order."""
    plain = {}
    for b in iter_batches(SAMPLE, spec, batch_rows=3000):
        for i in range(b.X.shape[0]):
            s = slice(b.X.indptr[i], b.X.indptr[i + 1])
            plain[b.start_row + i] = (b.X.indices[s].tolist(), b.X.data[s].tolist(), float(b.y[i]))
    seen = 0
    for b in iter_shuffled_batches(SAMPLE, spec, Shuffle(5, 3500), epoch=1, batch_rows=777):
        assert b.X.indices.dtype == np.int64 and b.X.has_canonical_format
        for i in range(b.X.shape[0]):
            s = slice(b.X.indptr[i], b.X.indptr[i + 1])
            assert (b.X.indices[s].tolist(), b.X.data[s].tolist(), float(b.y[i])) == plain[int(b.rows[i])]
            seen += 1
    assert seen == len(plain) == 20_000


def test_bad_shuffle_parameters_raise_parameter_error(spec):
    for kw in ({"shuffle_seed": -1}, {"shuffle_seed": 2**63}, {"shuffle_seed": 1.5}, {"shuffle_buffer_rows": 0},
               {"shuffle_buffer_rows": True}):
        with pytest.raises(ParameterError, match="shuffle_"):
            sparsecross.train(SAMPLE, spec, shuffle=True, **kw)
    with pytest.raises(ParameterError, match="shuffle must be"):
        sparsecross.train(SAMPLE, spec, shuffle="yes")


def test_value_errors_name_the_global_row(tmp_path):
    t = pa.table({"y": pa.array([0, 1] * 50, pa.int8()), "c": ["a"] * 100, "x": np.linspace(0, 1, 100)})
    y = t["y"].to_numpy().copy()
    y[73] = 2
    t = t.set_column(0, "y", pa.array(y))
    pq.write_table(t, tmp_path / "bad.parquet", row_group_size=30)
    with pytest.raises(DataError, match="first at row 73") as exc:
        list(iter_shuffled_batches(tmp_path / "bad.parquet", TINY_SPEC, Shuffle(1, 50), epoch=0, batch_rows=7))
    assert exc.value.row == 73


# =========================================================================================
# holdout rows
# =========================================================================================
@settings(max_examples=50, deadline=None)
@given(start=st.integers(0, 2**40), n=st.integers(0, 300), fraction=st.floats(0.01, 0.99),
       seed=st.integers(0, 2**32), perm_seed=st.integers(0, 2**32))
def test_row_holdout_mask_equals_the_kernel_in_any_order(start, n, fraction, seed, perm_seed):
    salt = holdout_salt(seed)
    kernel = holdout_mask(start, n, fraction, np.uint64(salt))
    rows = start + np.arange(n, dtype=np.int64)
    assert row_holdout_mask(rows, fraction, salt).tolist() == kernel.tolist()
    perm = np.random.default_rng(perm_seed).permutation(n)
    assert row_holdout_mask(rows[perm], fraction, salt).tolist() == kernel[perm].tolist()


def test_holdout_rows_are_the_same_with_or_without_shuffle(spec):
    plain = sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5)
    mixed = sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5, shuffle=True, shuffle_seed=4,
                              shuffle_buffer_rows=3000)
    for k in ("rows", "train_rows", "valid_rows", "valid_positive_rate"):
        assert mixed.stats[k] == plain.stats[k]
    # the trained rows are the same rows: label counts of trained rows agree
    assert mixed.stats["train_rows"] == 20_000 - mixed.stats["valid_rows"]


# =========================================================================================
# determinism, artifacts and resume
# =========================================================================================
RUN = dict(alpha=0.2, l1=0.5, epochs=2, holdout=0.2, shuffle=True, shuffle_seed=7, shuffle_buffer_rows=4000)


def _same(a, b):
    assert np.array_equal(a.keys, b.keys)
    assert a.weights.tobytes() == b.weights.tobytes()
    assert a.bias == b.bias


@pytest.fixture(scope="module")
def shuffled(spec):
    return sparsecross.train(SAMPLE, spec, batch_rows=1000, names=20, **RUN)


def test_same_seed_same_model_bytes_whatever_the_batch_size(spec, shuffled):
    from sparsecross.export import model_bytes

    other = sparsecross.train(SAMPLE, spec, batch_rows=333, names=20, **RUN)
    assert model_bytes(other) == model_bytes(shuffled)
    assert shuffled.params["shuffle"] is True and shuffled.params["shuffle_seed"] == 7
    assert shuffled.params["shuffle_buffer_rows"] == 4000
    reseeded = sparsecross.train(SAMPLE, spec, batch_rows=1000, names=20, **{**RUN, "shuffle_seed": 8})
    assert reseeded.weights.tobytes() != shuffled.weights.tobytes()
    plain = sparsecross.train(SAMPLE, spec, batch_rows=1000, names=20, **{**RUN, "shuffle": False})
    assert plain.weights.tobytes() != shuffled.weights.tobytes()
    assert "shuffle" not in plain.params  # an unshuffled model is written as before


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", [1, 2, 4, 6])
def test_resume_after_crash_mid_epoch_equals_uninterrupted_run(spec, shuffled, tmp_path, monkeypatch, crash_after):
    """Checkpoints every 3,000 rows with windows of 4,000: positions fall inside windows, in
    epoch 1, at its end and in epoch 2.  The resumed run ends with the same model bytes."""
    from sparsecross.export import model_bytes

    ck = tmp_path / "ck"
    saves = []
    orig = FTRLState.save

    def crashing_save(self, path, meta):
        orig(self, path, meta)
        saves.append((meta["epoch"], meta["row"]))
        if len(saves) == crash_after:
            raise _Crash

    monkeypatch.setattr(FTRLState, "save", crashing_save)
    with pytest.raises(_Crash):
        sparsecross.train(SAMPLE, spec, batch_rows=1000, names=20, checkpoint=ck, checkpoint_every=3000, **RUN)
    monkeypatch.setattr(FTRLState, "save", orig)
    _, meta = FTRLState.load(ck / "state.npz")
    assert (meta["epoch"], meta["row"]) == saves[-1] != (2, 0)
    model = sparsecross.train(SAMPLE, spec, batch_rows=700, names=20, checkpoint=ck, checkpoint_every=3000, **RUN)
    assert model_bytes(model) == model_bytes(shuffled)
    assert 0 < model.run["rows_processed"] < 2 * 20_000


def test_checkpoint_of_another_order_is_refused(spec, tmp_path):
    ck = tmp_path / "ck"
    sparsecross.train(SAMPLE, spec, checkpoint=ck, **RUN)
    before = (ck / "state.npz").read_bytes()
    for change in ({"shuffle": False}, {"shuffle_seed": 8}, {"shuffle_buffer_rows": 5000}):
        with pytest.raises(CheckpointError, match="another run"):
            sparsecross.train(SAMPLE, spec, checkpoint=ck, **{**RUN, **change})
    assert (ck / "state.npz").read_bytes() == before


def test_path_uses_the_shuffled_order(spec):
    from sparsecross.export import model_bytes
    from sparsecross.path import regularization_path

    kw = dict(alpha=0.2, holdout=0.2, shuffle=True, shuffle_seed=3, shuffle_buffer_rows=6000, batch_rows=2000)
    res = regularization_path(SAMPLE, spec, l1=[0.3, 1.0], **kw)
    for p in res.points:
        alone = sparsecross.train(SAMPLE, spec, l1=p.l1, **kw)
        assert model_bytes(p.model) == model_bytes(alone)


# =========================================================================================
# memory
# =========================================================================================
def _peak(source, spec, buffer_rows: int) -> int:
    tracemalloc.start()
    try:
        for _ in iter_shuffled_batches(source, spec, Shuffle(1, buffer_rows), epoch=0, batch_rows=500):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_grows_with_the_buffer_not_with_the_rows(spec, tmp_path):
    table = pq.read_table(SAMPLE)
    big = tmp_path / "big.parquet"
    pq.write_table(pa.concat_tables([table] * 4), big, row_group_size=5000)  # 80,000 rows
    _peak(SAMPLE, spec, 2000)  # warm the caches (plans, compiled kernels)
    small_data = _peak(SAMPLE, spec, 2000)
    big_data = _peak(big, spec, 2000)
    big_buffer = _peak(big, spec, 32_000)
    assert big_data < 1.5 * small_data, (small_data, big_data)  # 4x the rows: about the same peak
    assert big_buffer > 4 * big_data, (big_data, big_buffer)  # 16x the buffer: a much larger peak


# =========================================================================================
# CLI and spec
# =========================================================================================
def _cli(args, capsys):
    from sparsecross.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr()


def test_cli_flags_and_train_table_give_the_library_model(spec, tmp_path, capsys):
    from sparsecross.export import load_model, model_bytes

    base = ["train", SPEC_PATH, SAMPLE, "--holdout", "0.2", "--l1", "0.5", "-q", "--names", "0"]
    code, _ = _cli([*base, "--out", tmp_path / "a.scx", "--shuffle", "--shuffle-seed", "3",
                    "--shuffle-buffer-rows", "5000"], capsys)
    assert code == 0
    lib = sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5, shuffle=True, shuffle_seed=3,
                            shuffle_buffer_rows=5000)
    assert (tmp_path / "a.scx").read_bytes() == model_bytes(lib)
    toml = SPEC_PATH.read_text() + "\n[train]\nshuffle = true\nshuffle_seed = 3\nshuffle_buffer_rows = 5000\n"
    (tmp_path / "s.toml").write_text(toml)
    code, _ = _cli(["train", tmp_path / "s.toml", SAMPLE, "--holdout", "0.2", "--l1", "0.5", "-q", "--names", "0",
                    "--out", tmp_path / "b.scx"], capsys)
    assert code == 0
    assert load_model(tmp_path / "b.scx").weights.tobytes() == lib.weights.tobytes()
    code, _ = _cli(["train", tmp_path / "s.toml", SAMPLE, "--holdout", "0.2", "--l1", "0.5", "-q", "--names", "0",
                    "--out", tmp_path / "c.scx", "--no-shuffle"], capsys)
    assert code == 0
    assert "shuffle" not in load_model(tmp_path / "c.scx").params


@pytest.mark.parametrize("extra,message", [
    (["--shuffle", "--shuffle-buffer-rows", "0"], "shuffle_buffer_rows must be between 1 and"),
    (["--shuffle", "--shuffle-seed", "-3"], "shuffle_seed must be between 0 and 9,223,372,036,854,775,807, got -3"),
    (["--shuffle-seed", "3"], "need --shuffle"),
])
def test_cli_bad_shuffle_flags_are_one_line(tmp_path, capsys, extra, message):
    code, out = _cli(["train", SPEC_PATH, SAMPLE, "--out", tmp_path / "m.scx", "-q", *extra], capsys)
    assert code == 1
    assert message in out.err and out.err.count("\n") == 1
    assert not (tmp_path / "m.scx").exists()


def test_train_table_keys_are_typed():
    from sparsecross.errors import SpecError

    base = {"label": {"column": "y"}, "features": [{"name": "c", "kind": "categorical", "column": "c"}]}
    assert parse_spec({**base, "train": {"shuffle": True, "shuffle_seed": 2}}).train["shuffle"] is True
    for bad in ({"shuffle": 1}, {"shuffle_seed": "2"}, {"shuffle_buffer_rows": 1.5}):
        with pytest.raises(SpecError, match="train.shuffle"):
            parse_spec({**base, "train": bad})


def test_shuffle_with_a_dask_client_is_refused_before_any_work(spec):
    class NoClient:  # any use of it would fail differently
        def __getattr__(self, name):
            raise AssertionError(f"client.{name} used")

    with pytest.raises(ParameterError, match="shuffle is not available with a Dask client"):
        sparsecross.train(SAMPLE, spec, shuffle=True, client=NoClient())


def test_shuffle_with_skipped_labels_trains_the_same_rows_whatever_the_batches(tmp_path):
    """Rows whose label is missing (``[label] missing = "skip"``) keep their skip flag through
    the shuffle: the same rows are trained on as without it, and the model does not depend on
    the batch size."""
    rng = np.random.default_rng(5)
    n = 3000
    y = rng.integers(0, 2, n).astype(float)
    y[rng.random(n) < 0.1] = np.nan
    pq.write_table(pa.table({"c": [f"v{int(v)}" for v in rng.integers(0, 40, n)], "y": y}),
                   tmp_path / "d.parquet", row_group_size=400)
    spec = sparsecross.parse_spec({"label": {"column": "y", "missing": "skip"}, "hashing": {"bits": 10},
                                   "features": [{"name": "c", "kind": "categorical", "column": "c"}]})
    plain = sparsecross.train(tmp_path / "d.parquet", spec, l1=0.0)
    a = sparsecross.train(tmp_path / "d.parquet", spec, l1=0.0, shuffle=True, shuffle_buffer_rows=700,
                          batch_rows=128)
    b = sparsecross.train(tmp_path / "d.parquet", spec, l1=0.0, shuffle=True, shuffle_buffer_rows=700,
                          batch_rows=1000)
    assert model_bytes(a) == model_bytes(b)
    skipped = int(np.isnan(y).sum())
    assert a.stats["skipped_rows"] == plain.stats["skipped_rows"] == skipped
    assert a.stats["train_rows"] == plain.stats["train_rows"] == n - skipped


def test_api_reads_the_spec_train_table_shuffle_as_the_cli_does(spec):
    """``sparsecross.train`` honours ``[train] shuffle``, ``shuffle_seed`` and
    ``shuffle_buffer_rows`` (arguments > the spec's [train] table > defaults), as ``--shuffle`` does."""
    toml = SPEC_PATH.read_text() + "\n[train]\nshuffle = true\nshuffle_seed = 3\nshuffle_buffer_rows = 5000\n"
    tspec = parse_spec(toml)
    explicit = sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5, shuffle=True, shuffle_seed=3,
                                 shuffle_buffer_rows=5000)
    plain = sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5)
    assert explicit.weights.tobytes() != plain.weights.tobytes()  # the order matters on this data
    from_table = sparsecross.train(SAMPLE, tspec, holdout=0.2, l1=0.5)
    _same(from_table, explicit)
    assert {k: from_table.params[k] for k in explicit.params} == explicit.params
    # an explicit argument wins over the table
    off = sparsecross.train(SAMPLE, tspec, holdout=0.2, l1=0.5, shuffle=False)
    _same(off, plain)
    assert "shuffle" not in off.params
    other_seed = sparsecross.train(SAMPLE, tspec, holdout=0.2, l1=0.5, shuffle_seed=4)
    _same(other_seed, sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5, shuffle=True, shuffle_seed=4,
                                        shuffle_buffer_rows=5000))
