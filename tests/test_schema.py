"""The schema is part of the model, and bad validation data costs seconds (issue 'Trust',
items 3 and 10)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
from sparsecross.path import regularization_path
from sparsecross.cli import main
from sparsecross.errors import DataError, SchemaError
from sparsecross.schema import check_compatible, type_class

train_module = importlib.import_module("sparsecross.train")

GOLDEN = Path(__file__).resolve().parent / "golden"

SPEC = sx.parse_spec({
    "label": {"column": "y"},
    "hashing": {"bits": 12},
    "features": [
        {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": 60},
        {"name": "store", "kind": "categorical", "column": "store"},
        {"name": "age", "kind": "bucket", "column": "age", "boundaries": [20, 40, 60]},
    ],
})


def table(n: int, seed: int, *, store_as: str = "int", age_as: str = "int", lat_shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    store = rng.integers(0, 50, n)
    age = rng.integers(0, 90, n)
    lat = rng.uniform(-60, 60, n) + lat_shift
    lon = rng.uniform(-170, 170, n)
    logit = np.where(store % 3 == 0, 1.5, -1.0) + (age > 40) * 0.8
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    cols = {
        "lat": lat, "lon": lon, "y": y,
        "store": [str(s) for s in store] if store_as == "str" else (store.astype(bool) if store_as == "bool" else store),
        "age": age.astype(np.float64) if age_as == "float" else age,
    }
    return pa.table(cols)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("schema")
    pq.write_table(table(4000, 1), d / "train.parquet")
    model = sx.train(d / "train.parquet", SPEC, l1=0.1)
    path = d / "model.scx"
    sx.save_model(model, path)
    return d, path


def test_the_model_records_the_type_class_of_every_column(trained):
    _d, path = trained
    model = sx.load_model(path)
    assert model.schema == {"y": "integer", "lat": "floating", "lon": "floating", "store": "integer",
                            "age": "integer"}


def test_strings_for_an_integer_categorical_are_refused_by_predict_and_eval(trained, tmp_path):
    d, path = trained
    pq.write_table(table(500, 2, store_as="str"), tmp_path / "s.parquet")
    model = sx.load_model(path)
    for call in (lambda: sx.predict_file(model, tmp_path / "s.parquet", tmp_path / "p.parquet"),
                 lambda: sx.evaluate(model, tmp_path / "s.parquet"),
                 lambda: model.predict_proba(table(5, 2, store_as="str"))):
        with pytest.raises(SchemaError, match=r"'store'.* is string.*integer"):
            call()
    assert not (tmp_path / "p.parquet").exists()


def test_the_cli_refuses_with_one_line(trained, tmp_path, capsys):
    _d, path = trained
    pq.write_table(table(500, 2, store_as="str"), tmp_path / "s.parquet")
    assert main(["eval", str(path), str(tmp_path / "s.parquet")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'store'" in err[0] and "string" in err[0] and "integer" in err[0]


def test_types_that_make_the_same_features_are_accepted(trained, tmp_path):
    """Integers arriving as floats for a bucket (pandas with nulls), booleans for an integer
    categorical: the features cannot differ, so the predictions are the same."""
    _d, path = trained
    model = sx.load_model(path)
    base = table(500, 3)
    as_float = table(500, 3, age_as="float")
    assert np.array_equal(model.predict_proba(base), model.predict_proba(as_float))
    pq.write_table(as_float, tmp_path / "f.parquet")
    assert sx.evaluate(model, tmp_path / "f.parquet")["rows"] == 500
    check_compatible(SPEC, {"store": "integer"}, {"store": "boolean"}, "x")
    with pytest.raises(SchemaError):
        check_compatible(SPEC, {"store": "integer"}, {"store": "floating"}, "x")


def test_a_folder_whose_files_disagree_is_refused_before_training(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(table(300, 4), folder / "a.parquet")
    pq.write_table(table(300, 5, store_as="str"), folder / "b.parquet")

    def no_training(*_a, **_k):
        raise AssertionError("trained before checking the schema")

    monkeypatch.setattr(train_module, "train_batch", no_training)
    with pytest.raises(SchemaError, match=r"'store'.*b\.parquet.*string.*a\.parquet.*integer"):
        sx.train(folder, SPEC)


def test_a_valid_file_of_another_schema_is_refused_before_training(tmp_path, monkeypatch):
    pq.write_table(table(300, 4), tmp_path / "t.parquet")
    pq.write_table(table(300, 5, store_as="str"), tmp_path / "v.parquet")
    monkeypatch.setattr(train_module, "train_batch", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    with pytest.raises(SchemaError, match=r"'store'.*validation data.*string"):
        sx.train(tmp_path / "t.parquet", SPEC, valid=tmp_path / "v.parquet")


def test_a_bad_value_in_the_valid_file_fails_before_training(tmp_path, monkeypatch):
    """Item 10: a latitude of 200 in the validation file used to fail after the training pass."""
    pq.write_table(table(300, 4), tmp_path / "t.parquet")
    pq.write_table(table(300, 5, lat_shift=150), tmp_path / "v.parquet")
    monkeypatch.setattr(train_module, "train_batch", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    with pytest.raises(DataError, match="coordinates outside"):
        sx.train(tmp_path / "t.parquet", SPEC, valid=tmp_path / "v.parquet")
    with pytest.raises(DataError, match="coordinates outside"):
        regularization_path(tmp_path / "t.parquet", SPEC, l1=[0.0, 1.0], valid=tmp_path / "v.parquet")


def test_format_1_0_models_have_no_schema_and_are_not_checked():
    model = sx.load_model(GOLDEN / "model_v1_float32.scx")
    assert model.format_version == "1.0" and model.schema == {}


def test_type_classes():
    assert type_class(pa.dictionary(pa.int32(), pa.string())) == "string"
    assert type_class(pa.large_string()) == "string"
    assert type_class(pa.uint8()) == "integer"
    assert type_class(pa.float16()) == "floating"
    assert type_class(pa.decimal128(10, 2)) == "floating"
    assert type_class(pa.bool_()) == "boolean"
    assert type_class(pa.timestamp("s")) == "timestamp"  # time features: any unit and zone
    assert type_class(pa.date64()) == "date"
    assert type_class(pa.binary()) == "binary"  # any other type: its Arrow name
