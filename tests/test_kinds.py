"""Feature kinds (issue 11 item 2): the registry, ``kind = "numeric"`` and ``kind = "time"``.

New kinds are checked against the independent reference featurizer on random tables with
nulls, in random chunkings; bad keys are one clean ``SpecError`` line naming feature and key."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecross import parse_spec
from sparsecross.errors import DataError, SchemaError, SpecError
from sparsecross.featurize import featurize, featurize_features
from sparsecross.kinds import KINDS
from sparsecross.read import check_schema
from tests.reference.featurize_reference import reference_featurize

LABEL = {"column": "y"}

#: One example feature per kind (the registry round-trip covers every registered kind).
EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "geo": [{"name": "g", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": 30}],
    "lat": [{"name": "g", "kind": "lat", "column": "la", "invalid": "missing"}],
    "lon": [{"name": "g", "kind": "lon", "column": "lo", "missing": "skip"}],
    "bucket": [{"name": "g", "kind": "bucket", "column": "x", "boundaries": [0, 1.5]},
               {"name": "g", "kind": "bucket", "column": "x", "quantiles": 4}],
    "categorical": [{"name": "g", "kind": "categorical", "column": "c", "standalone": False}],
    "numeric": [{"name": "g", "kind": "numeric", "column": "x"},
                {"name": "g", "kind": "numeric", "column": "x", "transform": "log1p", "clip": [0, 1e6]},
                {"name": "g", "kind": "numeric", "column": "x", "transform": "signed_log1p", "missing": "skip"}],
    "time": [{"name": "g", "kind": "time", "column": "t", "part": "hour"},
             {"name": "g", "kind": "time", "column": "t", "part": "year", "years": [1990, 2030],
              "timezone": "Asia/Kolkata", "invalid": "missing"},
             {"name": "g", "kind": "time", "column": "s", "part": "dow", "format": "%Y-%m-%d %H:%M"}],
}


def _spec(*features: dict[str, Any], crosses: list[dict[str, Any]] | None = None, stored: bool = False):
    d: dict[str, Any] = {"label": LABEL, "features": list(features)}
    if crosses:
        d["crosses"] = crosses
    return parse_spec(d, stored=stored)


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == set(KINDS)


@pytest.mark.parametrize("feature", [f for fs in EXAMPLES.values() for f in fs],
                         ids=[f"{k}-{i}" for k, fs in EXAMPLES.items() for i in range(len(fs))])
def test_registry_round_trip(feature: dict[str, Any]) -> None:
    """Every kind's to_dict parses back (as a stored spec) to the same spec and sha256."""
    extra = [{"name": "other", "kind": "categorical", "column": "o"}]
    spec = _spec(feature, *extra)
    again = parse_spec(spec.to_dict(), stored=True)
    assert again == spec
    assert again.sha256 == spec.sha256
    assert set(spec.to_dict()["features"][0]) <= set(feature) | {"missing", "standalone", "resolution_arcmin",
                                                                  "invalid"}


def test_existing_kinds_keep_their_dict() -> None:
    """Adding fields (options) did not change the dict of existing kinds (their sha256)."""
    spec = _spec(EXAMPLES["bucket"][0])
    assert spec.to_dict()["features"][0] == {"name": "g", "kind": "bucket", "column": "x",
                                             "boundaries": [0.0, 1.5], "missing": "bucket", "standalone": True}


# ---------------------------------------------------------------------------- bad keys
BAD = [
    ({"kind": "numeric", "column": "x", "transform": "log"}, r"\('f'\)\.transform: expected one of"),
    ({"kind": "numeric", "column": "x", "clip": [3, 1]}, r"\('f'\)\.clip: expected \[lo, hi\]"),
    ({"kind": "numeric", "column": "x", "clip": [1]}, r"\('f'\)\.clip: expected \[lo, hi\]"),
    ({"kind": "numeric", "column": "x", "clip": [-5, 1], "transform": "log1p"}, r"\('f'\)\.clip: lo = -5\.0 is outside"),
    ({"kind": "numeric", "column": "x", "standalone": False}, r"\('f'\)\.standalone: a numeric feature cannot"),
    ({"kind": "numeric", "column": "x", "part": "hour"}, r"\('f'\): unknown key 'part'"),
    ({"kind": "time", "column": "t"}, r"\('f'\): missing required key 'part'"),
    ({"kind": "time", "column": "t", "part": "hours"}, r"\('f'\)\.part: expected one of .*did you mean 'hour'"),
    ({"kind": "time", "column": "t", "part": "hour", "format": "%Y-%Q"}, r"\('f'\)\.format: .*unknown directive %Q"),
    ({"kind": "time", "column": "t", "part": "hour", "format": "date"}, r"\('f'\)\.format: .*no %-directive"),
    ({"kind": "time", "column": "t", "part": "hour", "timezone": "Mars/Olympus"}, r"\('f'\)\.timezone: 'Mars/Olympus'"),
    ({"kind": "time", "column": "t", "part": "hour", "timezone": "../etc"}, r"\('f'\)\.timezone:"),
    # zoneinfo knows these, Arrow (which featurizes) cannot use them: refused at spec load
    ({"kind": "time", "column": "t", "part": "hour", "timezone": "posix/Europe/Paris"}, r"\('f'\)\.timezone: 'posix/"),
    ({"kind": "time", "column": "t", "part": "hour", "timezone": "Factory"}, r"\('f'\)\.timezone: 'Factory'"),
    ({"kind": "time", "column": "t", "part": "hour", "invalid": "skip"}, r"\('f'\)\.invalid: expected one of"),
    ({"kind": "time", "column": "t", "part": "year"}, r"\('f'\)\.years: part = \"year\" needs"),
    ({"kind": "time", "column": "t", "part": "year", "years": [2030, 2000]}, r"\('f'\)\.years:"),
    ({"kind": "time", "column": "t", "part": "hour", "years": [2000, 2001]}, r"\('f'\)\.years: only for part"),
    ({"kind": "time", "column": "t", "part": "hour", "clip": [0, 1]}, r"\('f'\): unknown key 'clip'"),
]


@pytest.mark.parametrize("feature, pattern", BAD, ids=[p for _, p in BAD])
def test_bad_keys_are_one_clean_line(feature: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SpecError) as info:
        _spec({"name": "f", **feature})
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("features[0] ('f')")
    assert re.search(pattern, msg), msg


def test_numeric_cannot_be_crossed() -> None:
    with pytest.raises(SpecError, match=r"crosses\[0\]\.features: feature 'x' is numeric, which cannot be crossed"):
        _spec({"name": "x", "kind": "numeric", "column": "x"}, {"name": "c", "kind": "categorical", "column": "c"},
              crosses=[{"features": ["x", "c"]}])


def test_time_can_be_crossed_exactly() -> None:
    spec = _spec({"name": "h", "kind": "time", "column": "t", "part": "hour"},
                 {"name": "d", "kind": "time", "column": "t", "part": "dow"},
                 crosses=[{"features": ["h", "d"], "mode": "exact"}])
    assert [o.cardinality for o in spec.outputs] == [25, 8, 200]


# ----------------------------------------------------------------------- schema / data errors
def test_schema_errors_name_feature_and_column() -> None:
    t = _spec({"name": "h", "kind": "time", "column": "t", "part": "hour"})
    with pytest.raises(SchemaError, match=r"feature 'h' \(time\): column 't' .* has type double; expected timestamps"):
        check_schema(t, pa.schema([("t", pa.float64()), ("y", pa.int8())]), "x.parquet")
    with pytest.raises(SchemaError, match=r"feature 'h' \(time\): column 't' .* holds strings; set format"):
        check_schema(t, pa.schema([("t", pa.string()), ("y", pa.int8())]), "x.parquet")
    with pytest.raises(SchemaError, match=r"feature 'h' \(time\): column 't' .* is a date .*part = 'hour' needs"):
        check_schema(t, pa.schema([("t", pa.date32()), ("y", pa.int8())]), "x.parquet")
    n = _spec({"name": "n", "kind": "numeric", "column": "x"})
    with pytest.raises(SchemaError, match=r"feature 'n' \(numeric\): column 'x' .* expected numbers"):
        check_schema(n, pa.schema([("x", pa.string()), ("y", pa.int8())]), "x.parquet")


def test_data_errors_name_feature_and_row() -> None:
    spec = _spec({"name": "n", "kind": "numeric", "column": "x", "transform": "log1p"})
    with pytest.raises(DataError, match=r"feature 'n': column 'x' has 1 values <= -1, .*first at row 11: -2\.0"):
        featurize(pa.table({"x": [0.0, -2.0], "y": [0, 1]}), spec, start_row=10)
    spec = _spec({"name": "n", "kind": "numeric", "column": "x"})
    with pytest.raises(DataError, match=r"feature 'n': .*infinite or beyond the float32 range .*row 1"):
        featurize(pa.table({"x": [0.0, 1e300], "y": [0, 1]}), spec)
    spec = _spec({"name": "s", "kind": "time", "column": "s", "part": "month", "format": "%Y-%m-%d"})
    with pytest.raises(DataError, match=r"feature 's': column 's' has 1 strings that do not match .*row 1: 'nope'"):
        featurize(pa.table({"s": ["2024-01-02", "nope", None], "y": [0, 1, 0]}), spec)
    spec = _spec({"name": "yr", "kind": "time", "column": "t", "part": "year", "years": [2000, 2010]})
    with pytest.raises(DataError, match=r"feature 'yr': .*outside years = \[2000, 2010\] \(first at row 0: 1999\)"):
        featurize(pa.table({"t": [dt.date(1999, 5, 1)], "y": [0]}), spec)


def test_numeric_layout_and_value() -> None:
    spec = _spec({"name": "n", "kind": "numeric", "column": "x", "clip": [-1, 5]})
    X, _, _ = featurize(pa.table({"x": [2.5, None, 100.0, -7], "y": [0, 1, 0, 1]}), spec)
    assert X.data.dtype == np.float32
    assert X.indices[X.indices < 2].tolist() == [0, 1, 0, 0]
    assert X.data[X.indices < 2].tolist() == [2.5, 1.0, 5.0, -1.0]
    assert spec.describe_column(0) == ("n", "n=value of x (clipped to [-1.0, 5.0])")
    assert spec.describe_column(1) == ("n", "n=missing")


def test_time_zone_shifts_the_hour() -> None:
    t = pa.table({"t": pa.array([dt.datetime(2024, 7, 1, 23, 30)], pa.timestamp("ms")), "y": [1]})
    for tz, hour in (("UTC", 23), ("Europe/Paris", 1), ("America/New_York", 19)):
        spec = _spec({"name": "h", "kind": "time", "column": "t", "part": "hour", "timezone": tz})
        assert featurize(t, spec)[0].indices[0] == hour
    # a zoned timestamp is the same instant
    z = pa.table({"t": pa.array([dt.datetime(2024, 7, 1, 23, 30)], pa.timestamp("ms")).cast(
        pa.timestamp("ms", tz="Asia/Tokyo")), "y": [1]})
    spec = _spec({"name": "h", "kind": "time", "column": "t", "part": "hour", "timezone": "Europe/Paris"})
    assert featurize(z, spec)[0].indices[0] == 1


# ------------------------------------------------------------ against the reference featurizer
def _compare(spec_dict: dict[str, Any], table: pa.Table, rows: list[dict[str, Any]], cuts: list[int]) -> None:
    spec = parse_spec(spec_dict)
    ref, labels, _, width = reference_featurize(spec_dict, rows)
    X, y, _ = featurize(table, spec)
    assert X.shape == (len(rows), width)
    assert y.tolist() == labels
    # chunking invariance: featurizing slices gives the same rows
    bounds = [0, *sorted(set(c % (len(rows) + 1) for c in cuts)), len(rows)]
    parts = [featurize_features(spec, table.slice(a, b - a), a) for a, b in zip(bounds, bounds[1:]) if b > a]
    for r in range(len(rows)):
        got_i = X.indices[X.indptr[r]:X.indptr[r + 1]].tolist()
        got_v = X.data[X.indptr[r]:X.indptr[r + 1]].tolist()
        assert got_i == [c for c, _ in ref[r]], r
        assert got_v == pytest.approx([v for _, v in ref[r]], rel=2e-7), r
    import scipy.sparse as sp
    Y = sp.vstack(parts).tocsr() if parts else None
    if Y is not None:
        assert (Y != X).nnz == 0


_floats = st.one_of(st.none(), st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False),
                    st.sampled_from([0.0, -0.0, -1.0, 1.0, 1e30, -1e30]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xs=st.lists(_floats, min_size=1, max_size=30),
       transform=st.sampled_from(["none", "signed_log1p", "log1p"]),
       clip=st.one_of(st.none(), st.tuples(st.floats(-0.5, 10), st.floats(0.0, 1e4)).filter(lambda c: c[0] < c[1])),
       missing=st.sampled_from(["bucket", "skip"]), cuts=st.lists(st.integers(0, 40), max_size=3))
def test_numeric_matches_reference(xs, transform, clip, missing, cuts) -> None:
    f: dict[str, Any] = {"name": "n", "kind": "numeric", "column": "x", "missing": missing}
    if transform != "none":
        f["transform"] = transform
    if clip is not None:
        f["clip"] = list(clip)
    if transform == "log1p" and clip is None:
        xs = [None if x is None or (x == x and x <= -1) else x for x in xs]  # keep log1p's domain
    spec_dict = {"label": LABEL, "hashing": {"bits": 4},
                 "features": [f, {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0, 10]}]}
    rows = [{"x": x, "y": i % 2} for i, x in enumerate(xs)]
    table = pa.table({"x": pa.array(xs, pa.float64()), "y": [i % 2 for i in range(len(xs))]})
    _compare(spec_dict, table, rows, cuts)


_instants = st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2037, 12, 31)))
_ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ts=st.lists(_instants, min_size=1, max_size=30), part=st.sampled_from(["hour", "dow", "month", "year",
                                                                               "dayofyear", "minute"]),
       tz=st.sampled_from(_ZONES), source=st.sampled_from(["naive", "zoned", "date", "string"]),
       junk=st.lists(st.booleans(), min_size=30, max_size=30), cuts=st.lists(st.integers(0, 40), max_size=3),
       missing=st.sampled_from(["bucket", "skip"]))
def test_time_matches_reference(ts, part, tz, source, junk, cuts, missing) -> None:
    if source == "date" and part in ("hour", "minute"):
        part = "month"
    ts = [None if t is None else t.replace(microsecond=0) for t in ts]
    f: dict[str, Any] = {"name": "t", "kind": "time", "column": "t", "part": part, "timezone": tz,
                         "missing": missing}
    if part == "year":
        f["years"] = [1970, 2038]
    if source == "naive":
        col = pa.array(ts, pa.timestamp("us"))
        vals: list[Any] = ts
    elif source == "zoned":
        col = pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", tz="America/Sao_Paulo"))
        vals = [None if t is None else t.replace(tzinfo=dt.timezone.utc) for t in ts]
    elif source == "date":
        vals = [None if t is None else t.date() for t in ts]
        col = pa.array(vals, pa.date32())
    else:
        f["format"] = "%Y-%m-%d %H:%M:%S"
        f["invalid"] = "missing"
        vals = [None if t is None else ("garbage" if j else t.strftime("%Y-%m-%d %H:%M:%S")) for t, j in zip(ts, junk)]
        col = pa.array(vals, pa.string())
    spec_dict = {"label": LABEL, "hashing": {"bits": 4},
                 "features": [f, {"name": "c", "kind": "categorical", "column": "c"}],
                 "crosses": [{"features": ["t", "c"]}]}
    rows = [{"t": v, "c": i % 3, "y": i % 2} for i, v in enumerate(vals)]
    table = pa.table({"t": col, "c": [i % 3 for i in range(len(vals))], "y": [i % 2 for i in range(len(vals))]})
    _compare(spec_dict, table, rows, cuts)


def test_time_schema_class_ignores_unit_and_zone() -> None:
    from sparsecross.schema import check_compatible, schema_classes

    spec = _spec({"name": "h", "kind": "time", "column": "t", "part": "hour"})
    a = schema_classes(spec, pa.schema([("t", pa.timestamp("ms")), ("y", pa.int8())]))
    b = schema_classes(spec, pa.schema([("t", pa.timestamp("us", tz="Europe/Paris")), ("y", pa.int8())]))
    assert a == b == {"t": "timestamp", "y": "integer"}
    check_compatible(spec, a, b, "new.parquet")
    c = schema_classes(spec, pa.schema([("t", pa.date32()), ("y", pa.int8())]))
    with pytest.raises(SchemaError, match=r"column 't' \(time\) in new.parquet is date, but the model was trained on "
                                          r"timestamp"):
        check_compatible(spec, a, c, "new.parquet")


# ------------------------------------------------------------------ categorical list columns
_elements = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "", "é"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lists=st.lists(st.one_of(st.none(), st.lists(_elements, max_size=5)), min_size=1, max_size=30),
       missing=st.sampled_from(["bucket", "skip"]), bits=st.integers(1, 6),
       cuts=st.lists(st.integers(0, 40), max_size=3), ints=st.booleans())
def test_categorical_list_matches_reference(lists, missing, bits, cuts, ints) -> None:
    if ints:
        lists = [None if v is None else [None if e is None else len(e) for e in v] for v in lists]
    spec_dict = {"label": LABEL, "hashing": {"bits": bits},
                 "features": [{"name": "tags", "kind": "categorical", "column": "tags", "missing": missing},
                              {"name": "c", "kind": "categorical", "column": "c"},
                              {"name": "n", "kind": "numeric", "column": "x"}]}
    rows = [{"tags": v, "c": i % 3, "x": float(i), "y": i % 2} for i, v in enumerate(lists)]
    table = pa.table({"tags": pa.array(lists, pa.list_(pa.int64() if ints else pa.string())),
                      "c": [i % 3 for i in range(len(lists))], "x": [float(i) for i in range(len(lists))],
                      "y": [i % 2 for i in range(len(lists))]})
    _compare(spec_dict, table, rows, cuts)


def test_categorical_list_element_is_the_scalar_feature() -> None:
    spec = _spec({"name": "tags", "kind": "categorical", "column": "tags"})
    a = featurize(pa.table({"tags": [["x", "y", "x"]], "y": [1]}), spec)[0]
    b = featurize(pa.table({"tags": ["x", "y"], "y": [1, 1]}), spec)[0]
    assert a.indices.tolist() == sorted(set(b.indices.tolist()))
    assert a.data.tolist() == [1.0] * len(a.indices)


def test_categorical_list_schema() -> None:
    from sparsecross.schema import type_class

    spec = _spec({"name": "tags", "kind": "categorical", "column": "tags"},
                 {"name": "c", "kind": "categorical", "column": "c"}, crosses=[{"features": ["tags", "c"]}])
    schema = pa.schema([("tags", pa.list_(pa.string())), ("c", pa.string()), ("y", pa.int8())])
    check_schema(spec, schema, "x.parquet")  # a list may be crossed (tests/test_listcross.py)
    spec = _spec({"name": "tags", "kind": "categorical", "column": "tags"})
    with pytest.raises(SchemaError, match=r"feature 'tags': .*list<item: double>; a categorical list needs"):
        check_schema(spec, pa.schema([("tags", pa.list_(pa.float64())), ("y", pa.int8())]), "x.parquet")
    assert type_class(pa.list_(pa.field("element", pa.string()))) == type_class(pa.large_list(pa.string())) \
        == "list<string>"


def test_time_string_with_offset_is_an_instant() -> None:
    spec = _spec({"name": "h", "kind": "time", "column": "s", "part": "hour", "format": "%Y-%m-%d %H:%M%z"})
    X = featurize(pa.table({"s": ["2024-01-01 10:00+0200"], "y": [1]}), spec)[0]
    assert X.indices.tolist() == [8]


def test_scoring_models_with_numeric_and_list_features_equals_the_csr_path(tmp_path) -> None:
    """predict/eval score most specs without building CSR rows; numeric values and list
    elements are added to the rows after build_csr, so such specs must score through the CSR
    rows: the probabilities equal a dense computation from featurize_features."""
    import pyarrow.parquet as pq

    import sparsecross as sx

    rng = np.random.default_rng(3)
    n = 600
    table = pa.table({
        "x": pa.array([None if v < 0.1 else float(v * 50) for v in rng.random(n)]),
        "tags": pa.array([[f"t{int(k)}" for k in rng.integers(0, 12, int(m))] for m in rng.integers(0, 4, n)]),
        "c": pa.array([f"c{int(v)}" for v in rng.integers(0, 7, n)]),
        "y": rng.integers(0, 2, n),
    })
    spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 8}, "features": [
        {"name": "x", "kind": "numeric", "column": "x", "transform": "log1p"},
        {"name": "tags", "kind": "categorical", "column": "tags"},
        {"name": "c", "kind": "categorical", "column": "c"}]})
    pq.write_table(table, tmp_path / "d.parquet")
    model = sx.train(tmp_path / "d.parquet", spec, l1=0.0, alpha=0.5)
    X = featurize_features(model.spec, table)
    dense = np.asarray(X.todense(), dtype=np.float64) @ model.dense_weights().astype(np.float64) + model.bias
    expected = 1.0 / (1.0 + np.exp(-dense))
    assert np.allclose(model.predict_proba(table), expected, rtol=1e-12, atol=1e-15)
    sx.predict_file(model, tmp_path / "d.parquet", tmp_path / "p.parquet", batch_rows=97)
    got = pq.read_table(tmp_path / "p.parquet").column("probability").to_numpy()
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_hostile_feature_and_column_names_are_named_short():
    """A spec (or a model's embedded spec) may name a 5,000-character feature and a column of
    5,000 characters with control characters, and the data may hold such a value: errors about
    the column's type, its values, the label and the weight name them short and escaped."""
    import sparsecross as sx
    from tests.hostile import assert_short, hostile_name

    name, col = "n" * 5_000, hostile_name()
    value = hostile_name(filler="v")

    def spec(kind: str, **more: Any) -> Any:
        return parse_spec({"label": {"column": "y"},
                           "features": [{"name": name, "kind": kind, "column": col, **more}]})

    cases = [  # (spec, data)
        (spec("categorical"), {col: [1.5, 2.5], "y": [0, 1]}),
        (spec("categorical"), {col: [[1.5], [2.5]], "y": [0, 1]}),
        (spec("numeric"), {col: ["a", "b"], "y": [0, 1]}),
        (spec("numeric", transform="log1p"), {col: [-5.0, 1.0], "y": [0, 1]}),
        (spec("numeric"), {col: [1e300, 1.0], "y": [0, 1]}),
        (spec("bucket", quantiles=4), {col: [math.nan, math.nan], "y": [0, 1]}),
        (spec("categorical"), {col: pa.array([2**63, 1], pa.uint64()), "y": [0, 1]}),
        (parse_spec({"label": {"column": "y"}, "features": [{"name": name, "kind": "geo", "lat": col, "lon": "lon"}]}),
         {col: [100.0, 1.0], "lon": [1.0, 1.0], "y": [0, 1]}),
        (spec("time", part="hour"), {col: [1.0, 2.0], "y": [0, 1]}),
        (spec("time", part="hour"), {col: ["a", "b"], "y": [0, 1]}),
        (spec("time", part="hour"), {col: pa.array([dt.date(2020, 1, 1)] * 2), "y": [0, 1]}),
        (spec("time", part="hour", format="%Y" + "x" * 5_000), {col: [value, "2020"], "y": [0, 1]}),
        (parse_spec({"label": {"column": col}, "features": [{"name": "f", "kind": "categorical", "column": "x"}]}),
         {"x": ["a", "b"], col: [0, 3]}),
        (parse_spec({"label": {"column": "y", "weight": col},
                     "features": [{"name": "f", "kind": "categorical", "column": "x"}]}),
         {"x": ["a", "b"], "y": [0, 1], col: [1.0, -1.0]}),
    ]
    for i, (sp, data) in enumerate(cases):
        with pytest.raises(sx.SparseCrossError) as info:
            sx.train(pa.table(data), sp)
        assert_short(str(info.value))
