"""Python data in, Python data out (issue 11 item 7).

Every API that takes an Arrow table also takes a pandas or polars DataFrame or anything with
``__arrow_c_stream__`` and gives exactly the same result; ``train`` and
``regularization_path`` take in-memory data and give the same model, byte for byte, as from
the same rows written to Parquet; ``FTRLClassifier(spec=...)`` saves a ``.scx`` model with the
weights ``train`` gives.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sparsecross as sx  # noqa: E402
from sparsecross.errors import (DataError, InputTypeError, NotFittedError, ParameterError,  # noqa: E402
                                SchemaError, SparseCrossError)
from sparsecross.export import load_model, model_bytes  # noqa: E402
from sparsecross.inputs import as_arrow, memory_source  # noqa: E402
from tests.reference.featurize_reference import reference_featurize  # noqa: E402

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

SPEC_DICT = {
    "label": {"column": "y", "weight": "w"},
    "hashing": {"bits": 10, "seed": 7},
    "features": [
        {"name": "city", "kind": "categorical", "column": "city"},
        {"name": "dev", "kind": "categorical", "column": "dev"},
        {"name": "income", "kind": "bucket", "column": "income", "boundaries": [1.0, 2.0, 4.0]},
        {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": 60.0},
    ],
    "crosses": [{"features": ["city", "income"]}],
}
SPEC = sx.parse_spec(SPEC_DICT)
CITIES = ["paris", "lyon", "nice", "brest", "caen", "metz"]


def columns(n: int, seed: int) -> dict[str, list]:
    """Plain Python columns (None = null) with a learnable label."""
    rng = np.random.default_rng(seed)
    city = [CITIES[i] for i in rng.integers(0, len(CITIES), n)]
    city = [None if i % 17 == 3 else c for i, c in enumerate(city)]
    dev = [int(v) for v in rng.integers(0, 40, n)]
    income = [None if i % 13 == 5 else float(v) for i, v in enumerate(rng.gamma(2.0, 1.5, n))]
    lat = [float(v) for v in rng.uniform(42.0, 50.0, n)]
    lon = [float(v) for v in rng.uniform(-4.0, 7.0, n)]
    y = [int((c in ("paris", "nice")) ^ (rng.random() < 0.2)) for c in city]
    w = [float(v) for v in rng.uniform(0.5, 2.0, n)]
    return {"city": city, "dev": dev, "income": income, "lat": lat, "lon": lon, "y": y, "w": w}


def arrow_table(cols: dict[str, list]) -> pa.Table:
    return pa.table({
        "city": pa.array(cols["city"], pa.string()), "dev": pa.array(cols["dev"], pa.int64()),
        "income": pa.array(cols["income"], pa.float64()), "lat": pa.array(cols["lat"], pa.float64()),
        "lon": pa.array(cols["lon"], pa.float64()), "y": pa.array(cols["y"], pa.int8()),
        "w": pa.array(cols["w"], pa.float64()),
    })


def pandas_frame(cols: dict[str, list], index_offset: int = 0):
    """The same rows as a pandas DataFrame built from Python lists (object strings, NaN for a
    missing float), with a non-default index that must not become a column."""
    return pd.DataFrame({
        "city": np.array(cols["city"], dtype=object),
        "dev": np.array(cols["dev"], dtype=np.int64),
        "income": np.array([math.nan if v is None else v for v in cols["income"]], dtype=np.float64),
        "lat": cols["lat"], "lon": cols["lon"], "y": np.array(cols["y"], dtype=np.int8), "w": cols["w"],
    }, index=np.arange(len(cols["y"])) * 3 + 100 + index_offset)


def polars_frame(cols: dict[str, list]):
    return pl.DataFrame({
        "city": pl.Series(cols["city"], dtype=pl.String), "dev": pl.Series(cols["dev"], dtype=pl.Int64),
        "income": pl.Series(cols["income"], dtype=pl.Float64), "lat": cols["lat"], "lon": cols["lon"],
        "y": pl.Series(cols["y"], dtype=pl.Int8), "w": cols["w"],
    })


class StreamOnly:
    """An object that only exports the Arrow C stream (as DuckDB results, Ibis tables... do)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self._table.__arrow_c_stream__(requested_schema)


def all_forms(cols: dict[str, list]) -> dict[str, object]:
    t = arrow_table(cols)
    return {"table": t, "batch": t.combine_chunks().to_batches()[0], "pandas": pandas_frame(cols),
            "polars": polars_frame(cols), "stream": StreamOnly(t)}


def same_csr(a: sp.csr_array, b: sp.csr_array) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


# ---------------------------------------------------------------------------- as_arrow
def test_as_arrow_forms() -> None:
    cols = columns(50, 0)
    t = arrow_table(cols)
    assert as_arrow(t) is t
    b = t.to_batches()[0]
    assert as_arrow(b) is b
    assert as_arrow(pa.RecordBatchReader.from_batches(t.schema, t.to_batches())).equals(t)
    assert as_arrow(StreamOnly(t)).equals(t)
    from_pd = as_arrow(pandas_frame(cols))
    assert from_pd.column_names == t.column_names  # the index is not a column
    assert from_pd.column("city").to_pylist() == cols["city"]
    assert from_pd.column("income").to_pylist() == cols["income"]  # NaN became null
    from_pl = as_arrow(polars_frame(cols))
    assert from_pl.column_names == t.column_names
    assert from_pl.column("city").to_pylist() == cols["city"]


@pytest.mark.parametrize("bad", [{"a": [1]}, [[1, 2]], np.zeros((2, 2)), None, "data.parquet"])
def test_as_arrow_refuses_other_types(bad: object) -> None:
    with pytest.raises(InputTypeError, match=type(bad).__name__) as info:
        as_arrow(bad)
    assert isinstance(info.value, TypeError) and isinstance(info.value, SparseCrossError)
    assert "__arrow_c_stream__" in str(info.value)


class InterchangeOnly:
    """An object that only speaks the dataframe interchange protocol."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __dataframe__(self, nan_as_null=False, allow_copy=True):
        return self._table.__dataframe__(nan_as_null, allow_copy)


def test_interchange_protocol_featurizes_as_the_table() -> None:
    t = arrow_table(columns(120, 32))
    X, y, w = sx.featurize(InterchangeOnly(t), SPEC)
    X0, y0, w0 = sx.featurize(t, SPEC)
    same_csr(X, X0)
    assert np.array_equal(y, y0) and np.array_equal(w, w0)


def test_as_arrow_refuses_a_stream_of_one_column() -> None:
    with pytest.raises(InputTypeError, match="ChunkedArray is not a table"):
        as_arrow(pa.chunked_array([[1, 2]]))


def test_file_apis_refuse_in_memory_data(tmp_path: Path) -> None:
    model = sx.train(arrow_table(columns(300, 30)), SPEC, l1=0.0)
    df = pandas_frame(columns(20, 31))
    with pytest.raises(InputTypeError, match=r"reads Parquet files .* got in-memory data \(DataFrame\)"):
        sx.evaluate(model, df)
    with pytest.raises(InputTypeError, match="reads Parquet files"):
        sx.predict_file(model, [arrow_table(columns(20, 31))], tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


def test_as_arrow_names_a_pandas_column_it_cannot_convert() -> None:
    df = pd.DataFrame({"mixed": pd.Series(["a", 1.5], dtype=object)})
    with pytest.raises(InputTypeError, match="pandas DataFrame"):
        as_arrow(df)


def test_polars_strings_not_copied() -> None:
    df = polars_frame(columns(200, 1))
    t = as_arrow(df)
    # a second export shares the same buffers: polars hands over its own memory
    again = as_arrow(df)
    a = t.column("city").chunk(0).buffers()
    b = again.column("city").chunk(0).buffers()
    assert [x.address for x in a if x is not None] == [x.address for x in b if x is not None]


def test_pandas_arrow_strings_not_copied() -> None:
    ser = pd.Series(["paris", None, "lyon"] * 50, dtype="string[pyarrow]")
    t = as_arrow(pd.DataFrame({"city": ser}))
    want = pa.chunked_array(ser.array.__arrow_array__()).chunk(0).buffers()
    got = t.column("city").chunk(0).buffers()
    assert [x.address for x in got if x is not None] == [x.address for x in want if x is not None]


# ---------------------------------------------------------------------------- featurize
def reference_rows(cols: dict[str, list]) -> list[dict]:
    n = len(cols["y"])
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def test_featurize_every_form_equals_reference() -> None:
    cols = columns(400, 2)
    ref_rows, ref_y, ref_w, width = reference_featurize(SPEC_DICT, reference_rows(cols))
    assert width == SPEC.n_columns
    want = None
    for name, data in all_forms(cols).items():
        X, y, w = sx.featurize(data, SPEC)
        got = [list(zip(X.indices[X.indptr[r]:X.indptr[r + 1]].tolist(),
                        X.data[X.indptr[r]:X.indptr[r + 1]].tolist())) for r in range(X.shape[0])]
        assert got == ref_rows, name
        assert y.tolist() == ref_y and w is not None and w.tolist() == ref_w, name
        if want is None:
            want = (X, y, w)
        else:  # exactly the same as the Arrow table's
            same_csr(X, want[0])
            assert np.array_equal(y, want[1]) and np.array_equal(w, want[2])


def test_featurize_refuses_other_types() -> None:
    with pytest.raises(InputTypeError, match="featurize's data must be a pyarrow Table or RecordBatch.*got dict"):
        sx.featurize({"city": ["a"]}, SPEC)


def test_featurize_schema_error_from_dataframe() -> None:
    df = pandas_frame(columns(10, 3)).drop(columns=["lat"])
    with pytest.raises(SchemaError, match="'lat'"):
        sx.featurize(df, SPEC)


# ---------------------------------------------------------------------------- train in memory
def write(table: pa.Table, path: Path, row_group_size: int = 700) -> Path:
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


PARAMS = dict(alpha=0.2, l1=0.5, l2=0.1, epochs=2, batch_rows=256)


def test_train_in_memory_equals_parquet_byte_for_byte(tmp_path: Path) -> None:
    cols = columns(1500, 4)
    t = arrow_table(cols)
    f = write(t, tmp_path / "d.parquet")
    want = model_bytes(sx.train(f, SPEC, holdout=0.2, **PARAMS))
    forms = all_forms(cols)
    forms["chunked"] = pa.Table.from_batches(t.to_batches(max_chunksize=333))
    for name, data in forms.items():
        assert model_bytes(sx.train(data, SPEC, holdout=0.2, **PARAMS)) == want, name


def test_train_list_of_tables_equals_list_of_files(tmp_path: Path) -> None:
    a, b = columns(900, 5), columns(700, 6)
    fa, fb = write(arrow_table(a), tmp_path / "a.parquet"), write(arrow_table(b), tmp_path / "b.parquet")
    vcols = columns(300, 7)
    fv = write(arrow_table(vcols), tmp_path / "v.parquet")
    want = model_bytes(sx.train([fa, fb], SPEC, valid=fv, **PARAMS))
    got = sx.train([pandas_frame(a), polars_frame(b)], SPEC, valid=polars_frame(vcols), **PARAMS)
    assert model_bytes(got) == want
    assert got.stats["rows"] == 1600 and got.stats["valid_rows"] == 300
    # in-memory validation data with Parquet training data too
    assert model_bytes(sx.train([fa, fb], SPEC, valid=arrow_table(vcols), **PARAMS)) == want


def test_train_in_memory_resolves_quantiles_and_names_as_parquet(tmp_path: Path) -> None:
    spec_dict = {**SPEC_DICT, "features": [dict(f) for f in SPEC_DICT["features"]]}
    spec_dict["features"][2] = {"name": "income", "kind": "bucket", "column": "income", "quantiles": 4}
    spec = sx.parse_spec(spec_dict)
    cols = columns(1200, 8)
    f = write(arrow_table(cols), tmp_path / "d.parquet")
    want = sx.train(f, spec, names=20, **PARAMS)
    got = sx.train(pandas_frame(cols), spec, names=20, **PARAMS)
    assert model_bytes(got) == model_bytes(want)
    assert got.spec == want.spec and got.stats["names"] == want.stats["names"]


def test_train_in_memory_data_error_names_global_row() -> None:
    a, b = columns(300, 9), columns(300, 10)
    b["y"][123] = 2
    with pytest.raises(DataError, match="first at row 423") as info:
        sx.train([arrow_table(a), polars_frame(b)], SPEC, **PARAMS)
    assert info.value.row == 423


def test_train_in_memory_schema_error_names_table() -> None:
    a = arrow_table(columns(50, 11))
    b = arrow_table(columns(50, 12)).drop_columns(["dev"])
    with pytest.raises(SchemaError, match="'dev' is not in in-memory table 1"):
        sx.train([a, b], SPEC)
    c = arrow_table(columns(50, 13))
    c = c.set_column(c.schema.get_field_index("dev"), "dev", c.column("dev").cast(pa.string()))
    with pytest.raises(SchemaError, match="column 'dev'.*in-memory table 1 is string"):
        sx.train([a, c], SPEC)


def test_train_in_memory_refusals(tmp_path: Path) -> None:
    t = arrow_table(columns(50, 14))
    with pytest.raises(ParameterError, match="checkpoint needs Parquet files"):
        sx.train(t, SPEC, checkpoint=tmp_path / "ck")
    with pytest.raises(ParameterError, match="shuffle needs Parquet files"):
        sx.train(pandas_frame(columns(50, 14)), SPEC, shuffle=True)
    with pytest.raises(ParameterError, match="Dask client needs Parquet files"):
        sx.train(t, SPEC, client=object())
    with pytest.raises(InputTypeError, match="mixes"):
        sx.train([t, tmp_path / "x.parquet"], SPEC)
    with pytest.raises(DataError, match="has no rows"):
        sx.train(t.slice(0, 0), SPEC)
    assert not (tmp_path / "ck").exists()


def test_train_in_memory_with_a_train_table_asking_for_shuffle() -> None:
    """``[train] shuffle = true`` is honoured by the API: refused for in-memory data (as
    ``shuffle=True``), and an explicit ``shuffle=False`` wins and trains in the given order."""
    t = arrow_table(columns(200, 18))
    shuffled_spec = sx.parse_spec({**SPEC_DICT, "train": {"shuffle": True}})
    with pytest.raises(ParameterError, match="shuffle needs Parquet files.*shuffle=False"):
        sx.train(t, shuffled_spec)
    got = sx.train(t, shuffled_spec, shuffle=False)
    want = sx.train(t, SPEC)
    assert got.weights.tobytes() == want.weights.tobytes() and np.array_equal(got.keys, want.keys)


def test_regularization_path_in_memory_equals_parquet(tmp_path: Path) -> None:
    from sparsecross.path import regularization_path

    cols = columns(1000, 15)
    f = write(arrow_table(cols), tmp_path / "d.parquet")
    kw = dict(l1=(0.1, 1.0), holdout=0.25, batch_rows=300)
    want = regularization_path(f, SPEC, **kw)
    got = regularization_path(polars_frame(cols), SPEC, **kw)
    assert [(p.l1, p.nonzeros, p.valid_logloss, p.valid_auc) for p in got.points] == \
        [(p.l1, p.nonzeros, p.valid_logloss, p.valid_auc) for p in want.points]
    with pytest.raises(ParameterError, match="shuffle needs Parquet files"):
        regularization_path(arrow_table(cols), SPEC, shuffle=True, **kw)


def test_memory_source_leaves_paths_alone(tmp_path: Path) -> None:
    assert memory_source("a.parquet") is None
    assert memory_source([tmp_path / "a.parquet", "b/*.parquet"]) is None
    assert memory_source([]) is None
    m = memory_source([arrow_table(columns(10, 16)), StreamOnly(arrow_table(columns(5, 17)))])
    assert m is not None and m.num_rows == 15 and "15 rows in 2 tables" in str(m)


# ---------------------------------------------------------------------------- predict
def dense_proba(model: sx.SparseModel, X: sp.csr_array) -> np.ndarray:
    m = X.toarray().astype(np.float64) @ model.dense_weights().astype(np.float64) + model.bias
    return 1.0 / (1.0 + np.exp(-m))


def test_predict_proba_every_form(tmp_path: Path) -> None:
    model = sx.train(arrow_table(columns(1200, 18)), SPEC, **PARAMS)
    cols = columns(300, 19)
    X, _, _ = sx.featurize(arrow_table(cols), SPEC)
    ref = dense_proba(model, X)
    want = sx.predict_proba(model, arrow_table(cols))
    np.testing.assert_allclose(want, ref, rtol=1e-12, atol=0)
    for name, data in all_forms(cols).items():
        assert np.array_equal(sx.predict_proba(model, data), want), name
        assert np.array_equal(model.predict_proba(data), want), name
    # without the label columns
    assert np.array_equal(model.predict_proba(polars_frame(cols).drop(["y", "w"])), want)
    with pytest.raises(InputTypeError, match="scipy sparse matrix.*got list"):
        model.predict_proba([[1, 2]])


# ---------------------------------------------------------------------------- estimator
def test_estimator_with_spec_saves_what_train_gives(tmp_path: Path) -> None:
    cols = columns(1500, 20)
    t = arrow_table(cols)
    X, y, w = sx.featurize(pandas_frame(cols), SPEC)
    clf = sx.FTRLClassifier(alpha=0.2, l1=0.5, l2=0.1, epochs=2, state_dtype="float32", spec=SPEC)
    clf.fit(X, y, sample_weight=w)
    trained = sx.train(t, SPEC, **PARAMS)
    m = clf.to_model()
    assert np.array_equal(m.keys, trained.keys) and np.array_equal(m.weights, trained.weights)
    assert m.bias == trained.bias and len(m.keys) > 10
    assert m.params == trained.params and m.spec == SPEC
    out = tmp_path / "clf.scx"
    assert clf.save(out) == out.stat().st_size
    loaded = load_model(out)
    assert np.array_equal(loaded.keys, trained.keys) and np.array_equal(loaded.weights, trained.weights)
    new = columns(200, 21)
    p = loaded.predict_proba(polars_frame(new))
    assert np.array_equal(p, trained.predict_proba(arrow_table(new)))
    Xn, _, _ = sx.featurize(arrow_table(new), SPEC)
    np.testing.assert_allclose(p, clf.predict_proba(Xn)[:, 1], rtol=1e-6)
    np.testing.assert_allclose(p, dense_proba(trained, Xn), rtol=1e-12, atol=0)


def test_estimator_partial_fit_with_spec_equals_fit() -> None:
    X, y, w = sx.featurize(arrow_table(columns(600, 22)), SPEC)
    a = sx.FTRLClassifier(l1=0.2, spec=SPEC).fit(X, y, sample_weight=w).to_model()
    b = sx.FTRLClassifier(l1=0.2, spec=SPEC)
    b.partial_fit(X[:250], y[:250], classes=[0.0, 1.0], sample_weight=w[:250])
    b.partial_fit(X[250:], y[250:], sample_weight=w[250:])
    mb = b.to_model()
    assert np.array_equal(a.keys, mb.keys) and np.array_equal(a.weights, mb.weights) and a.bias == mb.bias


def test_estimator_model_errors(tmp_path: Path) -> None:
    X, y, _ = sx.featurize(arrow_table(columns(200, 23)), SPEC)
    with pytest.raises(NotFittedError):
        sx.FTRLClassifier(spec=SPEC).to_model()
    plain = sx.FTRLClassifier().fit(X, y)
    with pytest.raises(ParameterError, match="need the spec"):
        plain.to_model()
    with pytest.raises(ParameterError, match="need the spec"):
        plain.save(tmp_path / "m.scx")
    assert not (tmp_path / "m.scx").exists()
    narrow = sp.csr_array(X)[:, : SPEC.n_columns - 1]
    with pytest.raises(ParameterError, match=f"X has {SPEC.n_columns - 1} columns but spec makes"):
        sx.FTRLClassifier(spec=SPEC).fit(narrow, y)
    with pytest.raises(ParameterError, match="spec must be a FeatureSpec"):
        sx.FTRLClassifier(spec=SPEC_DICT).fit(X, y)  # type: ignore[arg-type]
    labels = np.where(y == 1, "yes", "no")
    with pytest.raises(ParameterError, match="0/1 labels"):
        sx.FTRLClassifier(spec=SPEC).fit(X, labels).to_model()
    assert "spec" in sx.FTRLClassifier(spec=SPEC).get_params()


def test_library_never_imports_pandas_or_polars() -> None:
    """Featurizing, training and predicting Arrow data works with pandas and polars
    impossible to import (pyarrow itself may look for pandas: ``pa.table(dict)`` does)."""
    import subprocess

    code = """
import sys
class Block:  # any import of pandas or polars fails, as where they are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "polars"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
import pyarrow as pa, sparsecross as sx
spec = sx.parse_spec({"label": {"column": "y"}, "hashing": {"bits": 4},
                      "features": [{"name": "c", "kind": "categorical", "column": "c"}]})
t = pa.table({"c": ["a", "b", "a", "c"], "y": [1, 0, 1, 0]})
sx.featurize(t, spec)
m = sx.train(t, spec, l1=0.0)
m.predict_proba(t)
sx.FTRLClassifier(spec=spec, l1=0.0).fit(*sx.featurize(t, spec)[:2]).to_model()
print(sorted(m for m in ("pandas", "polars") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
