"""Tests of scoring (sparsecross.predict, SparseModel.predict_proba/decision_function):
against a dense numpy computation, on Arrow tables, streamed over several files, metrics
against exact numpy/scipy computations, and the demo end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit
from scipy.stats import rankdata

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import SchemaError, SparseCrossError
from sparsecross.predict import decision_function, evaluate, predict_file, predict_proba
from tests.test_featurize import _many_rows, _many_spec, _parse_or_skip, spec_and_table, table_from_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "data" / "sample.parquet"


# ------------------------------------------------------------------ references
def dense_margins(model: sx.SparseModel, X: sp.sparray) -> np.ndarray:
    w = model.dense_weights().astype(np.float64)
    assert w.shape == (model.n_columns,)
    X64 = sp.csr_array(X).astype(np.float64)
    if X64.shape[0] * X64.shape[1] <= 1_000_000:
        return X64.toarray() @ w + model.bias  # really dense
    return np.asarray(X64 @ w) + model.bias  # sparse rows, dense weights


def exact_logloss(p: np.ndarray, y: np.ndarray) -> float:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(np.mean(-(y * np.log(q) + (1 - y) * np.log1p(-q))))


def exact_auc(score: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney U / (n_pos n_neg), ties averaged."""
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    r = rankdata(score)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ------------------------------------------------------------- random models
def small_spec(bits: int) -> sx.FeatureSpec:
    """A spec with a tiny column space: 72 + 1 geo cells, 4 buckets, 2**bits hashed."""
    return sx.parse_spec({
        "label": {"column": "y"},
        "hashing": {"bits": bits},
        "features": [
            {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": 1800.0},
            {"name": "x", "kind": "bucket", "column": "x", "boundaries": [0.0, 1.0]},
            {"name": "c", "kind": "categorical", "column": "c"},
        ],
    })


SPECS = {bits: small_spec(bits) for bits in (1, 3, 6)}
f32 = st.floats(min_value=-8, max_value=8, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def model_and_csr(draw: st.DrawFn) -> tuple[sx.SparseModel, sp.csr_array]:
    spec = SPECS[draw(st.sampled_from(sorted(SPECS)))]
    n = spec.n_columns
    keys = sorted(draw(st.sets(st.integers(0, n - 1), max_size=min(n, 40))))
    weights = [draw(f32.filter(lambda v: v != 0)) for _ in keys]
    bias = draw(st.floats(-5, 5, allow_nan=False))
    model = sx.SparseModel(np.array(keys, dtype=np.uint64), np.array(weights, dtype=np.float32), bias, spec)
    rows = draw(st.integers(0, 12))
    indptr, indices, data = [0], [], []
    for _ in range(rows):
        cols = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=10))  # any order
        indices += cols
        data += [draw(f32) for _ in cols]
        indptr.append(len(indices))
    index_dtype = draw(st.sampled_from([np.int32, np.int64]))
    data_dtype = draw(st.sampled_from([np.float32, np.float64]))  # float64 data holding float32 values
    X = sp.csr_array((np.array(data, dtype=data_dtype), np.array(indices, dtype=index_dtype),
                      np.array(indptr, dtype=index_dtype)), shape=(rows, n))
    return model, X


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_and_csr())
def test_random_models_match_dense_numpy(case: tuple[sx.SparseModel, sp.csr_array]) -> None:
    model, X = case
    ref = dense_margins(model, X)
    m = decision_function(model, X)
    assert m.dtype == np.float64 and m.shape == (X.shape[0],)
    np.testing.assert_allclose(m, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.decision_function(X), ref, rtol=1e-12, atol=1e-12)
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, expit(ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(predict_proba(model, sp.csr_matrix(X)), p, rtol=0, atol=0)
    assert np.all((p >= 0) & (p <= 1))
    # dense_weights is the scatter of (keys, weights)
    w = model.dense_weights()
    assert np.count_nonzero(w) == model.nonzeros
    np.testing.assert_array_equal(w[model.keys.astype(np.int64)], model.weights)


def test_extreme_margins_are_stable() -> None:
    spec = SPECS[1]
    model = sx.SparseModel(np.array([0, 1], np.uint64), np.array([400.0, -400.0], np.float32), 0.0, spec)
    X = sp.csr_array(np.array([[1, 0] + [0] * (spec.n_columns - 2), [0, 1] + [0] * (spec.n_columns - 2)],
                              dtype=np.float32))
    with np.errstate(all="raise"):
        p = model.predict_proba(X)
    assert p[0] == 1.0 and 0 <= p[1] < 1e-170


def test_empty_model_predicts_the_bias() -> None:
    spec = SPECS[3]
    model = sx.SparseModel(np.zeros(0, np.uint64), np.zeros(0, np.float32), -1.25, spec)
    X = sp.random(5, spec.n_columns, density=0.3, format="csr", dtype=np.float32, random_state=0)
    np.testing.assert_array_equal(model.decision_function(X), np.full(5, -1.25))


def test_wrong_width_is_rejected() -> None:
    spec = SPECS[3]
    model = sx.SparseModel(np.array([2, 5], np.uint64), np.array([1.0, -1.0], np.float32), 0.5, spec)
    n = spec.n_columns
    for width in (n - 1, n + 1, 2 * n):
        X = sp.csr_array((3, width), dtype=np.float32)
        with pytest.raises(SparseCrossError, match=rf"X has {width} columns but the model expects {n}"):
            model.decision_function(X)
        with pytest.raises(SparseCrossError, match="featurize with the model's spec"):
            model.predict_proba(X)
    with pytest.raises(SparseCrossError, match="expected a scipy sparse matrix"):
        model.decision_function(np.zeros((2, n)))


# ----------------------------------------------------- a real model, small layout
SMALL_SYNTHETIC_SPEC = """
[label]
column = "label"

[hashing]
bits = 10

[[features]]
name = "cell"
kind = "geo"
lat = "latitude"
lon = "longitude"
resolution_arcmin = 60.0

[[features]]
name = "device"
kind = "categorical"
column = "device"

[[features]]
name = "age"
kind = "bucket"
column = "age"
boundaries = [25.0, 35.0, 45.0, 55.0, 65.0]

[[features]]
name = "income"
kind = "bucket"
column = "income"
boundaries = [15000.0, 30000.0, 50000.0, 85000.0]

[[features]]
name = "hour"
kind = "categorical"
column = "hour"

[[crosses]]
features = ["device", "hour"]
"""


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A model over 65k geo cells + buckets + 2**10 hashed columns, trained on the sample."""
    d = tmp_path_factory.mktemp("predict_small")
    spec = sx.parse_spec(SMALL_SYNTHETIC_SPEC)
    model = sx.train(SAMPLE, spec, l1=0.1, alpha=0.2)
    assert model.nonzeros > 100
    valid = sx.generate(d / "valid.parquet", rows=6000, seed=0, first_row=20_000, row_group_size=2000)
    return SimpleNamespace(dir=d, spec=spec, model=model, valid=valid)


def test_arrow_predictions_equal_featurize_plus_dense(small: SimpleNamespace) -> None:
    table = pq.read_table(small.valid)
    p = small.model.predict_proba(table)
    X, y, w = sx.featurize(table, small.model.spec)
    assert w is None and X.shape == (6000, small.spec.n_columns)
    np.testing.assert_allclose(p, expit(dense_margins(small.model, X)), rtol=1e-12, atol=1e-12)
    # a record batch and a column subset/reordering give the same
    batch = table.select(["hour", "income", "age", "device", "longitude", "latitude"]).to_batches()[0]
    np.testing.assert_array_equal(small.model.predict_proba(batch), p[: batch.num_rows])
    # a missing feature column is a clear error
    with pytest.raises(SchemaError, match="'device'"):
        small.model.predict_proba(table.drop(["device"]))


def test_saved_model_predicts_the_same(small: SimpleNamespace, tmp_path: Path) -> None:
    path = tmp_path / "m.scx"
    sx.save_model(small.model, path)
    loaded = sx.load_model(path)
    table = pq.read_table(small.valid)
    np.testing.assert_array_equal(loaded.predict_proba(table), small.model.predict_proba(table))


def test_predict_file_keeps_row_order_across_files(small: SimpleNamespace, tmp_path: Path) -> None:
    """A folder source: files in sorted path order, rows in file order, whatever the batch size."""
    table = pq.read_table(small.valid)
    table = table.append_column("rid", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    folder = tmp_path / "parts"
    (folder / "sub").mkdir(parents=True)
    # sorted path order: a.parquet < b.parquet < sub/c.parquet; written in another order
    pieces = {"sub/c.parquet": (4500, 6000), "a.parquet": (0, 1700), "b.parquet": (1700, 4500)}
    for name, (lo, hi) in pieces.items():
        pq.write_table(table.slice(lo, hi - lo), folder / name, row_group_size=600)
    (folder / "_ignored.parquet").write_bytes(b"not parquet")  # hidden/underscore files are skipped
    expected = small.model.predict_proba(table)
    for batch_rows in (1 << 18, 1000, 257):
        out = tmp_path / f"pred_{batch_rows}.parquet"
        n = predict_file(small.model, folder, out, keep=["rid", "device"], batch_rows=batch_rows)
        assert n == table.num_rows
        pred = pq.read_table(out)
        assert pred.column_names == ["rid", "device", "probability"]
        np.testing.assert_array_equal(pred.column("rid").to_numpy(), np.arange(table.num_rows))
        assert pred.column("device").to_pylist() == table.column("device").to_pylist()
        np.testing.assert_array_equal(pred.column("probability").to_numpy(), expected)
    # a list source and a glob give the same order as their sorted files
    out = tmp_path / "glob.parquet"
    predict_file(small.model, str(folder / "[a-z].parquet"), out, keep=["rid"])
    np.testing.assert_array_equal(pq.read_table(out).column("rid").to_numpy(), np.arange(4500))
    out = tmp_path / "list.parquet"
    predict_file(small.model, [folder / "sub" / "c.parquet", folder / "a.parquet"], out, keep=["rid"])
    rid = pq.read_table(out).column("rid").to_numpy()
    np.testing.assert_array_equal(rid, np.r_[np.arange(4500, 6000), np.arange(0, 1700)])
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_predict_file_does_not_need_labels(small: SimpleNamespace, tmp_path: Path) -> None:
    table = pq.read_table(small.valid).drop(["label"])
    src = tmp_path / "unlabelled.parquet"
    pq.write_table(table, src)
    out = tmp_path / "p.parquet"
    assert predict_file(small.model, src, out) == table.num_rows
    np.testing.assert_array_equal(pq.read_table(out).column("probability").to_numpy(),
                                  small.model.predict_proba(table))


def test_evaluate_matches_exact_metrics(small: SimpleNamespace) -> None:
    table = pq.read_table(small.valid)
    y = table.column("label").to_numpy().astype(np.float64)
    p = small.model.predict_proba(table)
    for batch_rows in (1 << 18, 999):
        res = evaluate(small.model, small.valid, batch_rows=batch_rows)
        assert res["rows"] == table.num_rows
        assert res["logloss"] == pytest.approx(exact_logloss(p, y), abs=1e-9)
        assert res["auc"] == pytest.approx(exact_auc(p, y), abs=1e-3)
        assert res["positive_rate"] == pytest.approx(y.mean(), abs=1e-12)
    assert 0.55 < res["auc"] < 0.9


def test_evaluate_on_the_training_sample(small: SimpleNamespace) -> None:
    table = pq.read_table(SAMPLE)
    y = table.column("label").to_numpy().astype(np.float64)
    p = small.model.predict_proba(table)
    res = evaluate(small.model, SAMPLE, batch_rows=4096)
    assert res["logloss"] == pytest.approx(exact_logloss(p, y), abs=1e-9)
    assert res["auc"] == pytest.approx(exact_auc(p, y), abs=1e-3)


def test_evaluate_with_sample_weights(small: SimpleNamespace, tmp_path: Path) -> None:
    table = pq.read_table(small.valid)
    rng = np.random.default_rng(0)
    wts = rng.uniform(0, 3, table.num_rows)
    src = tmp_path / "weighted.parquet"
    pq.write_table(table.append_column("w", pa.array(wts)), src)
    spec = sx.parse_spec(SMALL_SYNTHETIC_SPEC.replace('column = "label"\n', 'column = "label"\nweight = "w"\n', 1))
    model = sx.SparseModel(small.model.keys, small.model.weights, small.model.bias, spec)
    y = table.column("label").to_numpy().astype(np.float64)
    p = model.predict_proba(table)
    q = np.clip(p, 1e-15, 1 - 1e-15)
    ref = float(np.average(-(y * np.log(q) + (1 - y) * np.log1p(-q)), weights=wts))
    res = evaluate(model, src, batch_rows=1000)
    assert res["logloss"] == pytest.approx(ref, abs=1e-9)


def test_evaluate_of_an_empty_source_is_an_error_predict_writes_no_rows(small: SimpleNamespace, tmp_path: Path) -> None:
    src = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(small.valid).slice(0, 0), src)
    with pytest.raises(SparseCrossError, match="no rows"):
        evaluate(small.model, src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.parquet"]
    assert predict_file(small.model, src, tmp_path / "p.parquet") == 0
    got = pq.read_table(tmp_path / "p.parquet")
    assert got.num_rows == 0 and got.schema.names == ["probability"]


# --------------------------------------------------------------------------- demo
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["demo", "--rows", "5000", "--valid-rows", "1000", "--cache", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(out)
    assert report["rows"] == 5000 and report["valid_rows"] == 1000
    assert 0 < report["nonzeros"] <= report["touched_features"]
    assert report["model_bytes"] > 0
    assert report["valid_logloss"] < report["baseline_logloss"]
    assert report["possible_features"] > 233e6
    assert report["possible_geo_cells"] == 233_280_000
    model_path = Path(report["model_path"])
    assert model_path.is_file() and model_path.parent == tmp_path
    assert model_path.stat().st_size == report["model_bytes"]
    model = sx.load_model(model_path)
    assert model.nonzeros == report["nonzeros"]
    points = report["path"]["points"]
    assert [p["l1"] for p in points] == [0.0, 0.3, 1.0, 3.0, 10.0, 30.0]
    nz = [p["nonzeros"] for p in points]
    assert nz == sorted(nz, reverse=True)
    # the cached data is reused by a second run
    files = sorted(p.name for p in tmp_path.iterdir())
    rc = main(["demo", "--rows", "5000", "--valid-rows", "1000", "--cache", str(tmp_path), "--json", "--no-path"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    again = json.loads(out)
    assert "path" not in again and again["nonzeros"] == report["nonzeros"]
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    # too small a demo is refused
    assert main(["demo", "--rows", "10", "--cache", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("sparsecross: error:")


# ------------------------------------------- fused featurize + score == featurize, then score_csr
def _masked_sigmoid(m: np.ndarray) -> np.ndarray:
    """The logistic function as predict computed it before the fused path (the reference)."""
    out = np.empty_like(m, dtype=np.float64)
    pos = m >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-m[pos]))
    e = np.exp(m[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _csr_margins(model: sx.SparseModel, table: pa.Table) -> np.ndarray:
    """The two-step path: the CSR rows, then score_csr (what the fused kernel must equal)."""
    from sparsecross._kernels.score import score_csr
    from sparsecross.featurize import featurize_features

    X = featurize_features(model.spec, table)
    tk, tw = model.lookup_table()
    return score_csr(X.indptr, X.indices, X.data, tk, tw, model.bias)


def _random_model(spec: sx.FeatureSpec, table: pa.Table, rng: np.random.Generator, *,
                  frac: float = 0.6, extra: int = 20) -> sx.SparseModel:
    """Weights on a random part of the columns ``table`` uses, plus random other columns."""
    from sparsecross.featurize import featurize_features

    used = np.unique(featurize_features(spec, table).indices)
    keys = used[rng.random(len(used)) < frac]
    keys = np.unique(np.r_[keys, rng.integers(0, spec.n_columns, extra)]).astype(np.uint64)
    weights = rng.normal(0, 2, len(keys)).astype(np.float32)
    weights[weights == 0] = 1.0
    if len(weights) > 3:
        weights[rng.integers(0, len(weights), 2)] = np.float32(300.0)  # saturated probabilities
    return sx.SparseModel(keys, weights, float(rng.normal(0, 1)), spec)


def _assert_fused_equals_csr(model: sx.SparseModel, table: pa.Table) -> None:
    import importlib

    P = importlib.import_module("sparsecross.predict")
    ref = _csr_margins(model, table)
    # default, never dense, and dense for every exact output up to 4M columns (not "always": a
    # drawn spec may hold an exact cross of 1.5e11 columns, whose dense copy would take a TiB)
    for dense in (P.DENSE_OUTPUT_COLUMNS, 0, 1 << 22):
        old = P.DENSE_OUTPUT_COLUMNS
        P.DENSE_OUTPUT_COLUMNS = dense
        try:
            P._SCORERS.pop(model, None)
            got = P._margins(model, table)
        finally:
            P.DENSE_OUTPUT_COLUMNS = old
            P._SCORERS.pop(model, None)
        assert got.dtype == np.float64 and got.shape == (table.num_rows,)
        np.testing.assert_array_equal(got.view(np.uint64), ref.view(np.uint64))
    # batches of one row and of seven rows (with start_row) give the same bits
    for step in (1, 7):
        parts = [P._margins(model, table.slice(a, step), a) for a in range(0, table.num_rows, step)]
        got = np.concatenate(parts) if parts else np.zeros(0)
        np.testing.assert_array_equal(got.view(np.uint64), ref.view(np.uint64))
    p = model.predict_proba(table)
    np.testing.assert_array_equal(p.view(np.uint64), _masked_sigmoid(ref).view(np.uint64))


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_fused_scoring_equals_featurize_then_score_csr(data: st.DataObject) -> None:
    """Random specs (every feature kind, skip/bucket missing values, exact and hashed crosses,
    few hash bits so rows have collisions) and tables (nulls, NaN, out-of-range coordinates
    read as missing, every string type): the fused kernel's margins are bit for bit those of
    the CSR rows through score_csr, as are the probabilities of the masked sigmoid."""
    spec_dict, table = data.draw(spec_and_table())
    spec = _parse_or_skip(spec_dict)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    model = _random_model(spec, table, rng, frac=data.draw(st.sampled_from([0.0, 0.5, 1.0])))
    try:
        _csr_margins(model, table)
    except sx.DataError:  # out-of-range coordinates with invalid = "error": both paths refuse
        with pytest.raises(sx.DataError):
            model.predict_proba(table)
        return
    _assert_fused_equals_csr(model, table)


def test_fused_scoring_long_rows_with_collisions() -> None:
    """~300 outputs a row (past the insertion-sort length, sorted by argsort), duplicate
    columns merged into counts > 1, rows with and without weights in every block."""
    from sparsecross._kernels.crosses import SHORT_ROW

    d = _many_spec()
    spec = sx.parse_spec(d)
    table = table_from_rows(d, _many_rows(60, seed=5))
    X = sx.featurize(table, spec)[0]
    assert np.diff(X.indptr).max() > 4 * SHORT_ROW and X.data.max() > 1
    for frac in (0.0, 0.3, 1.0):
        _assert_fused_equals_csr(_random_model(spec, table, np.random.default_rng(7), frac=frac), table)


@pytest.mark.parametrize("bits", [10, 34])
def test_fused_scoring_many_rows(bits: int) -> None:
    """Thousands of rows (several of the kernel's row blocks, a partial last one), with a
    uint32 table (bits=10) and a uint64 one (a column space beyond 2**32)."""
    spec = sx.parse_spec(SMALL_SYNTHETIC_SPEC.replace("bits = 10", f"bits = {bits}"))
    table = pq.read_table(SAMPLE).slice(0, 5003)
    rng = np.random.default_rng(bits)
    model = _random_model(spec, table, rng, frac=0.5, extra=200)
    assert model.lookup_table()[0].dtype == (np.uint32 if bits == 10 else np.uint64)
    _assert_fused_equals_csr(model, table)
    # and the dense reference
    X = sx.featurize(table, spec)[0]
    if bits == 10:
        np.testing.assert_allclose(model.predict_proba(table), expit(dense_margins(model, X)), rtol=1e-12, atol=1e-12)


def test_sigmoid_is_bit_identical_to_the_masked_form() -> None:
    from sparsecross.predict import sigmoid

    rng = np.random.default_rng(0)
    m = np.concatenate([rng.normal(0, s, 20_001) for s in (0.1, 3, 40, 800)]
                       + [np.array([0.0, -0.0, 1e-300, -1e-300, 745.0, -745.0, 710.0, -710.0, np.inf, -np.inf])])
    with np.errstate(over="ignore"):
        ref = _masked_sigmoid(m)
    got = sigmoid(m)
    np.testing.assert_array_equal(got.view(np.uint64), ref.view(np.uint64))
    np.testing.assert_array_equal(sigmoid(m[::3]).view(np.uint64), ref[::3].view(np.uint64))  # strided
    np.testing.assert_array_equal(sigmoid(m.astype(np.float32)), _masked_sigmoid(m.astype(np.float32)))
    assert sigmoid(np.zeros(0)).shape == (0,)


def test_predict_file_output_schema_and_values(small: SimpleNamespace, tmp_path: Path) -> None:
    """The probability column is float64 (written PLAIN, uncompressed), kept columns keep their
    types and pyarrow reads the file back with the same schema and values."""
    out = tmp_path / "p.parquet"
    predict_file(small.model, small.valid, out, keep=["device", "hour", "age"], batch_rows=1000)
    got = pq.read_table(out)
    src = pq.read_table(small.valid)
    assert got.schema == pa.schema([src.schema.field("device"), src.schema.field("hour"), src.schema.field("age"),
                                    pa.field("probability", pa.float64())])
    np.testing.assert_array_equal(got.column("probability").to_numpy(), small.model.predict_proba(src))
    assert got.column("device").to_pylist() == src.column("device").to_pylist()
    md = pq.ParquetFile(out).metadata.row_group(0)
    assert md.column(3).compression == "UNCOMPRESSED"
    assert "RLE_DICTIONARY" in md.column(0).encodings  # other columns keep the defaults
