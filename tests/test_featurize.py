"""Featurization: the Numba kernels against the slow reference, CSR invariants, bad input.

The oracle is ``tests/reference/featurize_reference.py`` (written from docs/CONTRACT.md, no
``sparsecross`` import) and the frozen vectors in ``tests/golden/hash_vectors.json``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import featurize, iter_batches, load_spec, parse_spec, resolve_spec
from sparsecross.errors import DataError, SchemaError, SpecError
from sparsecross.read import iter_record_batches
from tests.reference.featurize_reference import (
    lat_local_id,
    lon_local_id,
    n_lon_cells,
    reference_featurize,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "hash_vectors.json").read_text())
GOLDEN_FEATURIZE = [c for c in GOLDEN["cases"] if c["kind"] == "featurize"]
SAMPLE = ROOT / "data" / "sample.parquet"
SPECS = ROOT / "data" / "specs"
CALIFORNIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "california_housing" / "housing.parquet"
needs_california = pytest.mark.skipif(
    not CALIFORNIA.is_file(), reason=f"real data not available: {CALIFORNIA} is missing")

# SPARSECROSS_HYPOTHESIS_EXAMPLES=2000 for a longer bug hunt
HYPO = settings(max_examples=int(os.environ.get("SPARSECROSS_HYPOTHESIS_EXAMPLES", "60")),
                deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ====================================================================================== helpers
def _categorical_columns(spec_dict: dict[str, Any]) -> set[str]:
    return {f["column"] for f in spec_dict.get("features", []) if f.get("kind") == "categorical"}


def _column_type(values: list[Any], categorical: bool) -> pa.DataType | None:
    """Arrow type for a list of Python values; None when strings and numbers are mixed."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if present and all(isinstance(v, list) for v in present):  # a list column: by its elements' type
        inner = _column_type([e for v in present for e in v], True)
        return None if inner is None else pa.list_(inner)
    if any(isinstance(v, list) for v in present):
        return None
    if not present:
        return pa.string() if categorical else pa.float64()
    if all(isinstance(v, str) for v in present):
        return pa.string()
    if any(isinstance(v, str) for v in present):
        return None
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) for v in present):
        return pa.int64()
    return pa.float64()


def table_from_rows(spec_dict: dict[str, Any], rows: list[dict[str, Any]]) -> pa.Table | None:
    """An Arrow table holding ``rows``; None if a column mixes strings and numbers."""
    cats = _categorical_columns(spec_dict)
    names = list(dict.fromkeys(k for r in rows for k in r))
    arrays = {}
    for name in names:
        values = [r.get(name) for r in rows]
        typ = _column_type(values, name in cats)
        if typ is None:
            return None
        if pa.types.is_list(typ):
            arrays[name] = pa.array(values, type=typ)
            continue
        if name in cats or typ == pa.string():
            # NaN in a categorical column is a missing value (reference: NaN -> missing)
            values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        if typ == pa.int64():
            values = [None if v is None else int(v) for v in values]
        if typ == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays[name] = pa.array(values, type=typ)
    return pa.table(arrays)


def featurize_rows(spec: sparsecross.FeatureSpec, spec_dict: dict[str, Any], rows: list[dict[str, Any]]):
    """Featurize plain Python rows: as one table, or one row at a time if types are mixed."""
    table = table_from_rows(spec_dict, rows)
    if table is not None:
        return featurize(table, spec)
    parts = [featurize(table_from_rows(spec_dict, [r]), spec) for r in rows]
    X = sp.vstack([p[0] for p in parts], format="csr")
    X = sp.csr_array((X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape)
    y = np.concatenate([p[1] for p in parts])
    w = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return X, y, w


def reference_csr(spec_dict: dict[str, Any], rows: list[dict[str, Any]]):
    """(indptr, indices, data, labels, weights, width) of the reference, as numpy arrays."""
    csr_rows, labels, weights, width = reference_featurize(spec_dict, rows)
    indptr = np.zeros(len(csr_rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in csr_rows])
    indices = np.array([c for r in csr_rows for c, _ in r], dtype=np.int64)
    data = np.array([v for r in csr_rows for _, v in r], dtype=np.float32)
    w = None if weights is None else np.array(weights, dtype=np.float64)
    return indptr, indices, data, np.array(labels, dtype=np.float64), w, width


def assert_canonical(X: sp.csr_array, n_columns: int, counts: bool = True) -> None:
    """Canonical CSR with the documented dtypes, checked from the raw arrays (not the flags);
    ``counts``: every value is a count (no numeric feature)."""
    assert isinstance(X, sp.csr_array)
    assert X.shape[1] == n_columns
    assert X.indptr.dtype == np.int64
    assert X.indices.dtype == np.int64
    assert X.data.dtype == np.float32
    assert X.indptr[0] == 0 and X.indptr[-1] == len(X.indices) == len(X.data)
    assert np.all(np.diff(X.indptr) >= 0)
    if len(X.indices):
        assert X.indices.min() >= 0 and X.indices.max() < n_columns
    for r in range(X.shape[0]):
        row = X.indices[X.indptr[r]:X.indptr[r + 1]]
        assert np.all(np.diff(row) > 0), f"row {r} not strictly increasing: {row}"
    if counts:
        assert np.all(X.data >= 1.0) and np.all(X.data == np.round(X.data))
    # a fresh matrix over copies of the arrays: scipy recomputes the flag from scratch
    fresh = sp.csr_array((X.data.copy(), X.indices.copy(), X.indptr.copy()), shape=X.shape)
    assert fresh.has_canonical_format
    assert fresh.has_sorted_indices


def assert_same(X: sp.csr_array, indptr, indices, data, width: int) -> None:
    assert X.shape == (len(indptr) - 1, width)
    np.testing.assert_array_equal(X.indptr, indptr)
    np.testing.assert_array_equal(X.indices, indices)
    np.testing.assert_array_equal(X.data, data)


def assert_identical(A: sp.csr_array, B: sp.csr_array) -> None:
    assert A.shape == B.shape
    for name in ("indptr", "indices", "data"):
        a, b = getattr(A, name), getattr(B, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


# ================================================================================ golden vectors
def _golden_params():
    return [pytest.param(c, id=c["id"]) for c in GOLDEN_FEATURIZE]


@pytest.mark.parametrize("case", _golden_params())
def test_golden_featurize_cases(case: dict[str, Any]) -> None:
    spec_dict = tomllib.loads(case["spec_toml"])
    # cross_modes_max_exact has a self-cross, frozen when the library accepted it: a user's
    # spec may not have one any more; a stored spec (model file) may and must featurize as then
    stored = case["id"] == "featurize/cross_modes_max_exact"
    spec = parse_spec(case["spec_toml"], stored=stored)
    rows = case["rows"]
    if "expected_error" in case:
        with pytest.raises(DataError, match=r"outside \[-90, 90\] x \[-180, 180\]"):
            featurize_rows(spec, spec_dict, rows)
        return
    exp = case["expected"]
    X, y, w = featurize_rows(spec, spec_dict, rows)
    assert spec.n_columns == exp["width"]
    assert_same(X, np.array(exp["indptr"]), np.array(exp["indices"]), np.array(exp["data"]),
                exp["width"])
    assert_canonical(X, spec.n_columns, counts='kind = "numeric"' not in case["spec_toml"])
    np.testing.assert_array_equal(y, exp["labels"])
    if exp["weights"] is None:
        assert w is None
    else:
        np.testing.assert_array_equal(w, exp["weights"])


def test_golden_cross_modes_against_the_reference() -> None:
    """featurize/cross_modes_max_exact against the reference, and which crosses came out exact
    or hashed.  Its fifth cross (b1 x b1) was frozen when the library accepted a self-cross:
    a user's spec is refused now, a stored one (a model written then) must featurize as then."""
    (case,) = [c for c in GOLDEN_FEATURIZE if c["id"] == "featurize/cross_modes_max_exact"]
    spec_dict = tomllib.loads(case["spec_toml"])
    assert len(spec_dict["crosses"]) == 5 and spec_dict["crosses"][4]["features"] == ["b1", "b1"]
    with pytest.raises(SpecError, match=r"crosses\[4\]\.features: feature 'b1' is listed twice"):
        parse_spec(spec_dict)
    spec = parse_spec(spec_dict, stored=True)
    indptr, indices, data, labels, _, width = reference_csr(spec_dict, case["rows"])
    X, y, _ = featurize_rows(spec, spec_dict, case["rows"])
    assert_same(X, indptr, indices, data, width)
    np.testing.assert_array_equal(y, labels)
    # the forced exact cross is exact, the auto one above max_exact is hashed
    kinds = {o.name: o.kind for o in spec.outputs}
    assert kinds["forced"] == 0 and kinds["b1*cell"] == 2 and kinds["b1*b2"] == 0
    assert kinds["b1*b2 hashed"] == 2


@pytest.mark.parametrize("case", [c for c in GOLDEN_FEATURIZE if "expected_error" in c],
                         ids=lambda c: c["id"])
def test_golden_error_cases_name_row_and_count(case: dict[str, Any]) -> None:
    spec = parse_spec(case["spec_toml"])
    table = table_from_rows(tomllib.loads(case["spec_toml"]), case["rows"])
    bad_row = int(case["expected_error_message"].split()[1])
    with pytest.raises(DataError, match=rf"feature 'cell': 1 rows .*\(first at row {bad_row}: "):
        featurize(table, spec)
    with pytest.raises(DataError, match=rf"first at row {bad_row + 100}:"):
        featurize(table, spec, start_row=100)


# ========================================================================= real-ish data sets
def test_sample_parquet_matches_reference() -> None:
    spec_dict = tomllib.loads((SPECS / "synthetic.toml").read_text())
    spec = load_spec(SPECS / "synthetic.toml")
    table = pq.read_table(SAMPLE).slice(0, 3000)
    rows = table.to_pylist()
    indptr, indices, data, labels, _, width = reference_csr(spec_dict, rows)
    X, y, w = featurize(table, spec)
    assert_same(X, indptr, indices, data, width)
    assert_canonical(X, spec.n_columns)
    np.testing.assert_array_equal(y, labels)
    assert w is None
    # the same rows through the Parquet reader (dictionary-encoded strings, several batches)
    batches = list(iter_batches(SAMPLE, spec, batch_rows=700))
    Xs = sp.vstack([b.X for b in batches], format="csr")[:3000]
    np.testing.assert_array_equal(Xs.indptr, indptr)
    np.testing.assert_array_equal(Xs.indices, indices)
    np.testing.assert_array_equal(Xs.data, data)


def _california_explicit_spec() -> tuple[dict[str, Any], sparsecross.FeatureSpec]:
    d = tomllib.loads((SPECS / "california.toml").read_text())
    for f in d["features"]:
        if f["name"] == "income":
            del f["quantiles"]
            f["boundaries"] = [1.5, 2.5, 3.0, 3.5, 4.0, 4.5, 5.5, 7.0]
    d["features"].append({"name": "bedrooms", "kind": "bucket", "column": "total_bedrooms",
                          "boundaries": [100.0, 300.0, 600.0, 1200.0], "missing": "skip"})
    d["crosses"].append({"features": ["bedrooms", "ocean", "lat"]})
    return d, parse_spec(d)


@needs_california
def test_california_matches_reference() -> None:
    spec_dict, spec = _california_explicit_spec()
    table = pq.read_table(CALIFORNIA)
    rows = table.to_pylist()
    indptr, indices, data, labels, _, width = reference_csr(spec_dict, rows)
    X, y, _ = featurize(table, spec)
    assert_same(X, indptr, indices, data, width)
    assert_canonical(X, spec.n_columns)
    np.testing.assert_array_equal(y, labels)


@needs_california
def test_california_end_to_end_with_quantiles() -> None:
    spec = load_spec(SPECS / "california.toml")
    assert spec.needs_data
    batches = list(iter_batches(CALIFORNIA, spec, batch_rows=3000))
    assert [b.start_row for b in batches] == list(range(0, 20640, 3000))
    X = sp.vstack([b.X for b in batches], format="csr")
    y = np.concatenate([b.y for b in batches])
    assert X.shape[0] == 20_640
    assert int(y.sum()) == 5_147
    assert all(b.sample_weight is None for b in batches)
    resolved = resolve_spec(CALIFORNIA, spec)
    assert X.shape[1] == resolved.n_columns
    for b in batches:
        assert_canonical(b.X, resolved.n_columns)
    # every row emits every output once (no skip features): 6 outputs, collisions counted
    n_outputs = len(resolved.outputs)
    assert n_outputs == 6
    per_row = np.add.reduceat(X.data.astype(np.float64), X.indptr[:-1])
    np.testing.assert_array_equal(per_row, n_outputs)
    nnz = np.diff(X.indptr)
    assert nnz.max() == n_outputs and nnz.min() >= n_outputs - 1
    # labels are median_house_value > 265000
    value = pq.read_table(CALIFORNIA, columns=["median_house_value"]).column(0).to_numpy()
    np.testing.assert_array_equal(y, (value > 265000).astype(np.float64))


@needs_california
def test_california_skip_feature_rows_have_fewer_entries() -> None:
    spec_dict, spec = _california_explicit_spec()
    X = sp.vstack([b.X for b in iter_batches(CALIFORNIA, spec, batch_rows=5000)], format="csr")
    bedrooms = pq.read_table(CALIFORNIA, columns=["total_bedrooms"]).column(0)
    null = ~np.asarray(bedrooms.is_valid())
    assert 0 < null.sum() < 1000
    per_row = np.add.reduceat(X.data.astype(np.float64), X.indptr[:-1])
    n_outputs = len(spec.outputs)  # 6 + the bedrooms bucket + its cross
    assert n_outputs == 8
    np.testing.assert_array_equal(per_row[~null], n_outputs)
    np.testing.assert_array_equal(per_row[null], n_outputs - 2)


# =========================================================================== hypothesis tables
RESOLUTIONS = [0.5, 1.0, 7.0, 13.5, 60.0, 600.0, 1000.0, 21600.0]
LAT_EDGES = [-90.0, 90.0, 0.0, -0.0, 89.99999999999999, -89.99999999999999, 45.0, 1 / 60, -1 / 60]
LON_EDGES = [-180.0, 180.0, 0.0, -0.0, 179.99999999999997, -179.99999999999997, 90.0, 1 / 60]
TEMPLATES = ["geo", "lat", "lon", "bucket_f", "bucket_i", "cat_s", "cat_i", "cat_b"]


def _coord(limit: float, edges: list[float], out_of_range: bool) -> st.SearchStrategy:
    options = [st.none(), st.just(math.nan), st.sampled_from(edges),
               st.floats(-limit, limit, allow_nan=False)]
    if out_of_range:
        options += [st.floats(limit, 1e6, exclude_min=True), st.floats(-1e6, -limit, exclude_max=True),
                    st.sampled_from([math.inf, -math.inf, limit + 1e-9, -limit - 1e-9])]
    return st.one_of(*options)


@st.composite
def spec_and_table(draw) -> tuple[dict[str, Any], pa.Table]:
    out_of_range = draw(st.booleans())
    templates = draw(st.lists(st.sampled_from(TEMPLATES), min_size=1, max_size=5))
    features = []
    for k, tpl in enumerate(templates):
        f: dict[str, Any] = {"name": f"f{k}"}
        if tpl in ("geo", "lat", "lon"):
            f["kind"] = tpl
            if tpl == "geo":
                f["lat"], f["lon"] = "lat", "lon"
            else:
                f["column"] = tpl
            if draw(st.booleans()):
                f["resolution_arcmin"] = draw(st.one_of(st.sampled_from(RESOLUTIONS),
                                                        st.floats(0.5, 21600)))
            if out_of_range:
                f["invalid"] = "missing"
            elif draw(st.booleans()):
                f["invalid"] = draw(st.sampled_from(["error", "missing"]))
        elif tpl.startswith("bucket"):
            f["kind"] = "bucket"
            f["column"] = tpl[-1]
            b = draw(st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False),
                                        st.integers(-60, 60).map(float)),
                              min_size=1, max_size=6, unique=True))
            f["boundaries"] = sorted(b)
        else:
            f["kind"] = "categorical"
            f["column"] = tpl[-1]
        if draw(st.booleans()):
            f["missing"] = draw(st.sampled_from(["bucket", "skip"]))
        if draw(st.integers(0, 3)) == 0:
            f["standalone"] = False
        features.append(f)
    crosses = []
    names: set[str] = {f["name"] for f in features}
    if len(features) >= 2:
        for _ in range(draw(st.integers(0, 3))):
            size = draw(st.integers(2, min(3, len(features))))
            comps = draw(st.permutations(range(len(features))))[:size]
            c: dict[str, Any] = {"features": [features[j]["name"] for j in comps]}
            all_exact = all(features[j]["kind"] != "categorical" for j in comps)
            modes = ["auto", "hashed"] + (["exact"] if all_exact else [])
            mode = draw(st.sampled_from(modes))
            if mode != "auto":
                c["mode"] = mode
            name = "*".join(c["features"])
            if name in names or draw(st.booleans()):
                name = f"c{len(crosses)}"
                c["name"] = name
            names.add(name)
            crosses.append(c)
    if not crosses and not any(f.get("standalone", True) for f in features):
        features[0]["standalone"] = True
    spec_dict: dict[str, Any] = {
        "label": {"column": "y"},
        "hashing": {"bits": draw(st.integers(1, 12)), "seed": draw(st.integers(0, 2**64 - 1)),
                    "max_exact": draw(st.sampled_from([1, 100, 10_000, 2**30]))},
        "features": features,
        "crosses": crosses,
    }
    if draw(st.booleans()):
        spec_dict["label"]["weight"] = "w"

    n = draw(st.integers(0, 25))
    lat_t = draw(st.sampled_from([pa.float64(), pa.float32()]))
    lon_t = draw(st.sampled_from([pa.float64(), pa.float32()]))
    s_t = draw(st.sampled_from(["string", "large_string", "string_view", "dictionary"]))
    i_t = draw(st.sampled_from([pa.int64(), pa.int32(), pa.int8(), pa.uint16()]))
    i_lo, i_hi = {pa.uint16(): (0, 2**16 - 1), pa.int8(): (-128, 127), pa.int32(): (-2**31, 2**31 - 1),
                  pa.int64(): (-2**63, 2**63 - 1)}[i_t]
    strings = st.one_of(st.none(), st.sampled_from(["", "a", "ios", "android", "S\u00e3o Paulo \U0001F600"]),
                        st.text(max_size=8))
    ints = st.one_of(st.none(), st.integers(-3, 3).filter(lambda v: i_lo <= v <= i_hi),
                     st.integers(i_lo, i_hi))
    floats = st.one_of(st.none(), st.just(math.nan), st.sampled_from([math.inf, -math.inf]),
                       st.floats(-2e6, 2e6, allow_nan=False), st.integers(-60, 60).map(float))
    cols = {
        "lat": draw(st.lists(_coord(90.0, LAT_EDGES, out_of_range), min_size=n, max_size=n)),
        "lon": draw(st.lists(_coord(180.0, LON_EDGES, out_of_range), min_size=n, max_size=n)),
        "s": draw(st.lists(strings, min_size=n, max_size=n)),
        "i": draw(st.lists(ints, min_size=n, max_size=n)),
        "f": draw(st.lists(floats, min_size=n, max_size=n)),
        "b": draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)),
        "y": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
        "w": draw(st.lists(st.floats(0, 1e3), min_size=n, max_size=n)),
    }
    s_type = {"string": pa.string(), "large_string": pa.large_string(),
              "string_view": getattr(pa, "string_view", pa.string)(),
              "dictionary": pa.dictionary(pa.int32(), pa.string())}[s_t]
    table = pa.table({
        "lat": pa.array(cols["lat"], type=lat_t),
        "lon": pa.array(cols["lon"], type=lon_t),
        "s": pa.array(cols["s"], type=s_type),
        "i": pa.array(cols["i"], type=i_t),
        "f": pa.array(cols["f"], type=pa.float64()),
        "b": pa.array(cols["b"], type=pa.bool_()),
        "y": pa.array(cols["y"], type=pa.int8()),
        "w": pa.array(cols["w"], type=pa.float64()),
    })
    return spec_dict, table


def _parse_or_skip(spec_dict: dict[str, Any]) -> sparsecross.FeatureSpec:
    from hypothesis import assume

    try:
        return parse_spec(spec_dict)
    except SpecError as exc:  # only the documented column-space limit may reject a drawn spec
        assert "column space exceeds" in str(exc), exc
        assume(False)
        raise


@HYPO
@given(spec_and_table())
def test_random_tables_match_reference(case) -> None:
    spec_dict, table = case
    spec = _parse_or_skip(spec_dict)
    rows = table.to_pylist()
    indptr, indices, data, labels, weights, width = reference_csr(spec_dict, rows)
    X, y, w = featurize(table, spec)
    assert spec.n_columns == width
    assert_same(X, indptr, indices, data, width)
    assert_canonical(X, spec.n_columns)
    np.testing.assert_array_equal(y, labels)
    if weights is None:
        assert w is None
    else:
        np.testing.assert_array_equal(w, weights)
        assert w.dtype == np.float64
    assert y.dtype == np.float64


@HYPO
@given(spec_and_table(), st.lists(st.integers(0, 25), max_size=4))
def test_chunking_invariance(case, cuts: list[int]) -> None:
    spec_dict, table = case
    spec = _parse_or_skip(spec_dict)
    X, y, w = featurize(table, spec)
    assert_canonical(X, spec.n_columns)
    bounds = [0] + sorted(min(c, table.num_rows) for c in cuts) + [table.num_rows]
    slices = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
    parts = [featurize(s, spec, start_row=a) for s, a in zip(slices, bounds)]
    for P, _, _ in parts:
        assert_canonical(P, spec.n_columns)
    stacked = sp.vstack([p[0] for p in parts], format="csr")
    assert stacked.shape == X.shape
    np.testing.assert_array_equal(stacked.indptr, X.indptr)
    np.testing.assert_array_equal(stacked.indices, X.indices)
    np.testing.assert_array_equal(stacked.data, X.data)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    # the slices as one chunked table, and as record batches
    assert_identical(featurize(pa.concat_tables(slices), spec)[0], X)
    for s, (P, _, _) in zip(slices, parts):
        for rb in s.to_batches():
            assert rb.num_rows == s.num_rows
            assert_identical(featurize(rb, spec)[0], P)


def test_many_rows_long_rows_collisions_and_skips_match_reference() -> None:
    """``build_csr`` makes rows in blocks of ``BLOCK_ROWS``: rows across block boundaries, rows
    longer than ``SHORT_ROW`` entries (sorted by ``np.sort``), hashed collisions (counts) and
    skipped outputs, against the reference."""
    from sparsecross._kernels.crosses import BLOCK_ROWS, SHORT_ROW

    rng = np.random.default_rng(7)
    n, k = 2 * BLOCK_ROWS + 77, 8
    cols = {f"c{j}": [None if rng.random() < 0.1 else int(v) for v in rng.integers(0, 5 + j, n)]
            for j in range(k)}
    cols["y"] = [int(v) for v in rng.integers(0, 2, n)]
    features = [{"name": f"c{j}", "kind": "categorical", "column": f"c{j}", **({"missing": "skip"} if j % 3 == 0 else {})}
                for j in range(k)]
    crosses = [{"features": [f"c{a}", f"c{b}"]} for a in range(k) for b in range(a + 1, k)]
    crosses[0]["mode"] = "hashed"
    for bits in (3, 12):  # 3: most hashed columns collide
        spec_dict = {"label": {"column": "y"}, "hashing": {"bits": bits, "seed": 5}, "features": features,
                     "crosses": crosses}
        spec = parse_spec(spec_dict)
        table = pa.table({c: pa.array(v, type=pa.int8()) for c, v in cols.items()})
        indptr, indices, data, labels, _, width = reference_csr(spec_dict, table.to_pylist())
        X, y, _ = featurize(table, spec)
        assert_same(X, indptr, indices, data, width)
        assert_canonical(X, spec.n_columns)
        assert np.diff(indptr).max() > SHORT_ROW or bits == 3
        if bits == 3:
            assert data.max() > 1  # collisions merged into counts


GEO1 = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 4},
                   "features": [{"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon",
                                 "resolution_arcmin": 1.0}]})


def _cell(lat: float, lon: float) -> int:
    return lat_local_id(lat, 1.0) * n_lon_cells(1.0) + lon_local_id(lon, 1.0)


@settings(max_examples=100, deadline=None, database=None)
@given(st.floats(-90, 90), st.floats(-180, 180),
       st.one_of(st.floats(-0.05, 0.05), st.just(0.0), st.sampled_from([1 / 60, -1 / 60, 1e-9])),
       st.one_of(st.floats(-0.05, 0.05), st.just(0.0), st.sampled_from([1 / 60, -1 / 60, 1e-9])))
def test_geo_same_cell_same_column(lat: float, lon: float, dlat: float, dlon: float) -> None:
    lat2 = min(max(lat + dlat, -90.0), 90.0)
    lon2 = min(max(lon + dlon, -180.0), 180.0)
    X, _, _ = featurize(pa.table({"lat": [lat, lat2], "lon": [lon, lon2], "y": [0, 1]}), GEO1)
    c1, c2 = X.indices.tolist()
    assert c1 == _cell(lat, lon) and c2 == _cell(lat2, lon2)
    assert (c1 == c2) == ((lat_local_id(lat, 1.0), lon_local_id(lon, 1.0))
                          == (lat_local_id(lat2, 1.0), lon_local_id(lon2, 1.0)))


def test_geo_cells_hand_checked() -> None:
    lats = [0.0, 0.01, 0.0166, 1 / 60 + 1e-12, -90.0, 90.0, 89.999, -0.0001]
    lons = [0.0, 0.0, 0.0, 0.0, -180.0, 180.0, 179.999, -0.0001]
    X, _, _ = featurize(pa.table({"lat": lats, "lon": lons, "y": [0] * 8}), GEO1)
    cols = X.indices.tolist()
    assert cols[0] == cols[1] == cols[2] == 5400 * 21600 + 10800
    assert cols[3] == 5401 * 21600 + 10800
    assert cols[4] == 0
    assert cols[5] == cols[6] == 10799 * 21600 + 21599  # 90 / 180 clip into the last cell
    assert cols[7] == 5399 * 21600 + 10799


@settings(max_examples=30, deadline=None, database=None)
@given(st.lists(st.text(min_size=1, max_size=10), min_size=3, max_size=10, unique=True),
       st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_seed_changes_categorical_columns(values: list[str], seed1: int, seed2: int) -> None:
    from hypothesis import assume

    assume(seed1 != seed2)

    def cols(seed: int) -> list[int]:
        spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 30, "seed": seed},
                           "features": [{"name": "c", "kind": "categorical", "column": "c"},
                                        {"name": "n", "kind": "categorical", "column": "n"}]})
        X, _, _ = featurize(pa.table({"c": values + [None], "n": list(range(len(values) + 1)),
                                      "y": [0] * (len(values) + 1)}), spec)
        return X.indices.tolist()

    a, b = cols(seed1), cols(seed2)
    assert len(a) == len(b)
    assert a != b
    # with 2**30 buckets, nearly every value moves
    moved = sum(x != y for x, y in zip(a, b))
    assert moved >= len(a) - 2


# ==================================================================== Arrow types of strings
STR_SPEC_DICT = {
    "label": {"column": "y"}, "hashing": {"bits": 12, "seed": 9},
    "features": [{"name": "dev", "kind": "categorical", "column": "device"},
                 {"name": "city", "kind": "categorical", "column": "city", "missing": "skip"},
                 {"name": "age", "kind": "bucket", "column": "age", "boundaries": [30.0, 50.0]}],
    "crosses": [{"features": ["dev", "city"]}, {"features": ["city", "age"]}],
}
STR_SPEC = parse_spec(STR_SPEC_DICT)


def _string_table(n: int = 3000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    devices = np.array(["android", "ios", "desktop", "", "\u00e9t\u00e9 \U0001F600"], dtype=object)
    dev = devices[rng.integers(0, len(devices), n)].tolist()
    city = [None if k % 7 == 0 else f"city-{k}" for k in rng.integers(0, 400, n)]
    dev = [None if k % 11 == 0 else d for k, d in enumerate(dev)]
    age = rng.uniform(10, 80, n)
    return pa.table({"device": pa.array(dev, pa.string()), "city": pa.array(city, pa.string()), "age": age,
                     "y": pa.array(rng.integers(0, 2, n), type=pa.int8())})


def test_string_table_matches_reference() -> None:
    table = _string_table(500)
    indptr, indices, data, labels, _, width = reference_csr(STR_SPEC_DICT, table.to_pylist())
    X, y, _ = featurize(table, STR_SPEC)
    assert_same(X, indptr, indices, data, width)


@pytest.mark.parametrize("use_dictionary", [True, False])
def test_parquet_dictionary_strings_equal_plain_strings(tmp_path: Path, use_dictionary: bool) -> None:
    table = _string_table()
    path = tmp_path / "strings.parquet"
    pq.write_table(table, path, row_group_size=700, use_dictionary=use_dictionary)
    # the reader hands the kernels dictionary-encoded strings
    rbs = list(iter_record_batches(path, STR_SPEC, batch_rows=256))
    assert pa.types.is_dictionary(rbs[0][0].schema.field("device").type)
    batches = list(iter_batches(path, STR_SPEC, batch_rows=256))
    X = sp.vstack([b.X for b in batches], format="csr")
    expected, y, _ = featurize(table, STR_SPEC)
    np.testing.assert_array_equal(X.indptr, expected.indptr)
    np.testing.assert_array_equal(X.indices, expected.indices)
    np.testing.assert_array_equal(X.data, expected.data)
    np.testing.assert_array_equal(np.concatenate([b.y for b in batches]), y)
    # the same record batches featurized directly
    for rb, row in rbs:
        assert_identical(featurize(rb, STR_SPEC)[0], expected[row:row + rb.num_rows])


STRING_TYPES = [
    pa.string(), pa.large_string(),
    pytest.param("string_view", marks=pytest.mark.skipif(
        not hasattr(pa, "string_view"), reason="pyarrow has no string_view")),
    pa.dictionary(pa.int32(), pa.string()), pa.dictionary(pa.int8(), pa.large_string()),
    pa.dictionary(pa.int64(), pa.string()),
]


@pytest.mark.parametrize("typ", STRING_TYPES, ids=str)
def test_string_arrow_types_equal_plain_strings(typ: Any) -> None:
    if typ == "string_view":
        typ = pa.string_view()
    table = _string_table(400, seed=3)
    expected, _, _ = featurize(table, STR_SPEC)
    cast = pa.table({name: (pa.array(table.column(name).to_pylist(), type=typ)
                            if name in ("device", "city") else table.column(name))
                     for name in table.column_names})
    X, _, _ = featurize(cast, STR_SPEC)
    assert_identical(X, expected)
    # sliced (non-zero array offsets) and chunked
    assert_identical(featurize(cast.slice(37, 200), STR_SPEC)[0], expected[37:237])
    chunked = pa.concat_tables([cast.slice(0, 150), cast.slice(150)])
    assert_identical(featurize(chunked, STR_SPEC)[0], expected)


def test_chunked_dictionaries_with_different_dictionaries() -> None:
    typ = pa.dictionary(pa.int32(), pa.string())
    c1 = pa.array(["ios", "android", None], type=typ)
    c2 = pa.array(["desktop", "ios", "android"], type=typ)
    table = pa.table({"device": pa.chunked_array([c1, c2]), "city": ["x"] * 6,
                      "age": [1.0] * 6, "y": pa.array([0] * 6, type=pa.int8())})
    plain = table.set_column(0, "device", pa.array(["ios", "android", None, "desktop", "ios", "android"]))
    assert_identical(featurize(table, STR_SPEC)[0], featurize(plain, STR_SPEC)[0])


def test_dictionary_hash_cache_is_not_fooled_by_shared_offsets() -> None:
    d1 = pa.array(["Ios", "Android"])
    d2 = pc.ascii_lower(d1)  # same offsets buffer, new data buffer
    assert d2.buffers()[1].address == d1.buffers()[1].address
    idx = pa.array([0, 1, 0], type=pa.int32())
    base = {"city": ["x"] * 3, "age": [1.0] * 3, "y": pa.array([0] * 3, type=pa.int8())}
    first = pa.table({"device": pa.DictionaryArray.from_arrays(idx, d1), **base})
    second = pa.table({"device": pa.DictionaryArray.from_arrays(idx, d2), **base})
    plain = pa.table({"device": ["ios", "android", "ios"], **base})
    featurize(first, STR_SPEC)
    assert_identical(featurize(second, STR_SPEC)[0], featurize(plain, STR_SPEC)[0])


def test_null_inside_dictionary_values_is_missing() -> None:
    encoded = pc.dictionary_encode(pa.array(["ios", None, ""]), null_encoding="encode")
    assert encoded.to_pylist() == ["ios", None, ""] and encoded.null_count == 0
    base = {"city": ["x"] * 3, "age": [1.0] * 3, "y": pa.array([0] * 3, type=pa.int8())}
    X, _, _ = featurize(pa.table({"device": encoded, **base}), STR_SPEC)
    plain = pa.table({"device": pa.array(["ios", None, ""]), **base})
    assert_identical(X, featurize(plain, STR_SPEC)[0])


def test_integer_and_bool_categoricals_of_any_width() -> None:
    spec_dict = {"label": {"column": "y"}, "hashing": {"bits": 20},
                 "features": [{"name": "k", "kind": "categorical", "column": "k"}]}
    spec = parse_spec(spec_dict)
    values = [0, 1, -1, 7, None, 100]
    expected, _, _ = featurize(pa.table({"k": pa.array(values, pa.int64()), "y": [0] * 6}), spec)
    for typ in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint32()):
        unsigned = pa.types.is_unsigned_integer(typ)
        vals = [None if v is not None and unsigned and v < 0 else v for v in values]
        X, _, _ = featurize(pa.table({"k": pa.array(vals, typ), "y": [0] * 6}), spec)
        ref = reference_csr(spec_dict, [{"k": v, "y": 0} for v in vals])
        assert_same(X, *ref[:3], ref[5])
    dict_int = pa.array(values, pa.int64()).dictionary_encode()
    assert_identical(featurize(pa.table({"k": dict_int, "y": [0] * 6}), spec)[0], expected)
    # bool is hashed as the integers 0 / 1
    Xb, _, _ = featurize(pa.table({"k": [True, False, None], "y": [0] * 3}), spec)
    Xi, _, _ = featurize(pa.table({"k": [1, 0, None], "y": [0] * 3}), spec)
    assert_identical(Xb, Xi)


def test_bucket_of_large_int64() -> None:
    spec_dict = {"label": {"column": "y"}, "hashing": {"bits": 4},
                 "features": [{"name": "b", "kind": "bucket", "column": "i",
                               "boundaries": [0.0, 2.0**60]}]}
    values = [2**53 + 1, -(2**63), 2**63 - 1, 5]
    table = pa.table({"i": pa.array(values, pa.int64()), "y": pa.array([0] * 4, pa.int8())})
    X, _, _ = featurize(table, parse_spec(spec_dict))
    ref = reference_csr(spec_dict, table.to_pylist())
    assert_same(X, *ref[:3], ref[5])


def test_read_only_input_arrays() -> None:
    spec_dict = {"label": {"column": "y", "weight": "w"}, "hashing": {"bits": 10},
                 "features": [{"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon"},
                              {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.5]},
                              {"name": "k", "kind": "categorical", "column": "k"}],
                 "crosses": [{"features": ["b", "k"]}]}
    spec = parse_spec(spec_dict)
    rng = np.random.default_rng(1)
    n = 200
    arrays = {"lat": rng.uniform(-90, 90, n), "lon": rng.uniform(-180, 180, n),
              "x": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
              "k": rng.integers(0, 50, n), "y": rng.integers(0, 2, n).astype(np.int8),
              "w": rng.random(n)}
    for a in arrays.values():
        a.setflags(write=False)
    table = pa.table({k: pa.array(v) for k, v in arrays.items()})
    assert not table.column("lat").chunk(0).to_numpy().flags.writeable
    X, y, w = featurize(table, spec)
    ref = reference_csr(spec_dict, table.to_pylist())
    assert_same(X, *ref[:3], ref[5])
    np.testing.assert_array_equal(w, arrays["w"])
    np.testing.assert_array_equal(y, arrays["y"])


def test_empty_table() -> None:
    table = _string_table(0)
    X, y, w = featurize(table, STR_SPEC)
    assert X.shape == (0, STR_SPEC.n_columns)
    assert len(y) == 0 and w is None
    assert X.indptr.tolist() == [0]


def test_featurize_rejects_non_arrow() -> None:
    with pytest.raises(TypeError, match="pyarrow Table or RecordBatch"):
        featurize({"device": ["a"]}, STR_SPEC)  # type: ignore[arg-type]


def test_unresolved_quantiles_in_featurize() -> None:
    d = json.loads(json.dumps(STR_SPEC_DICT))
    d["features"][2] = {"name": "age", "kind": "bucket", "column": "age", "quantiles": 4}
    with pytest.raises(SpecError, match="resolve"):
        featurize(_string_table(10), parse_spec(d))


# =================================================================================== bad input
GEO_SPEC_DICT = {"label": {"column": "y"}, "hashing": {"bits": 6},
                 "features": [{"name": "cell", "kind": "geo", "lat": "latitude", "lon": "longitude"},
                              {"name": "income", "kind": "bucket", "column": "income",
                               "boundaries": [1.0, 2.0]},
                              {"name": "dev", "kind": "categorical", "column": "device"}]}
GEO_SPEC = parse_spec(GEO_SPEC_DICT)


def _geo_table(n: int = 10, **overrides: Any) -> pa.Table:
    cols: dict[str, Any] = {
        "latitude": pa.array([float(k % 90) for k in range(n)], pa.float64()),
        "longitude": pa.array([float(-(k % 180)) for k in range(n)], pa.float64()),
        "income": pa.array([1.5] * n, pa.float64()), "device": pa.array(["ios"] * n, pa.string()),
        "y": pa.array([k % 2 for k in range(n)], pa.int8()),
    }
    cols.update(overrides)
    return pa.table(cols)


def test_missing_column_suggests_close_names() -> None:
    t = _geo_table().rename_columns(["latitude", "longitud", "income", "device", "y"])
    with pytest.raises(SchemaError, match=r"column 'longitude' is not in the input table "
                                          r"\(did you mean 'longitud'"):
        featurize(t, GEO_SPEC)
    t = _geo_table().rename_columns(["latitude", "longitude", "income", "devices", "y"])
    with pytest.raises(SchemaError, match=r"feature 'dev' column 'device' .*did you mean 'devices'"):
        featurize(t, GEO_SPEC)
    t = _geo_table().rename_columns(["latitude", "longitude", "income", "device", "label"])
    with pytest.raises(SchemaError, match=r"label column 'y' is not in the input table"):
        featurize(t, GEO_SPEC)


def test_missing_column_in_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pq.write_table(_geo_table().rename_columns(["lattitude", "longitude", "income", "device", "y"]), path)
    with pytest.raises(SchemaError, match=r"'latitude' is not in '.*data\.parquet' \(did you mean 'lattitude'"):
        list(iter_batches(path, GEO_SPEC))


def test_wrong_column_types() -> None:
    with pytest.raises(SchemaError, match=r"feature 'income' \(bucket\): column 'income' .* type string; expected numbers"):
        featurize(_geo_table(income=["1.5"] * 10), GEO_SPEC)
    with pytest.raises(SchemaError, match=r"feature 'dev': column 'device' .* type double; a categorical needs"):
        featurize(_geo_table(device=[1.5] * 10), GEO_SPEC)
    with pytest.raises(SchemaError, match=r"feature 'cell' \(geo\): column 'latitude' .* type string"):
        featurize(_geo_table(latitude=["1"] * 10), GEO_SPEC)
    with pytest.raises(SchemaError, match=r"label column 'y' .* type string; expected numbers or bool"):
        featurize(_geo_table(y=["1"] * 10), GEO_SPEC)


def test_label_not_binary_without_threshold() -> None:
    y = pa.array([0, 1, 0, 2, 1, 5, 0, 3, 1, 1], pa.int64())
    with pytest.raises(DataError, match=r"label column 'y': 3 values are not 0/1 \(first at row 3: 2\.0\).*threshold"):
        featurize(_geo_table(y=y), GEO_SPEC)
    with pytest.raises(DataError, match=r"first at row 1003: 2\.0"):
        featurize(_geo_table(y=y), GEO_SPEC, start_row=1000)
    with pytest.raises(DataError, match=r"1 values are not 0/1 \(first at row 0: 0\.5\)"):
        featurize(_geo_table(1, y=[0.5]), GEO_SPEC)


def test_label_threshold_bool_and_float() -> None:
    d = json.loads(json.dumps(GEO_SPEC_DICT))
    d["label"]["threshold"] = 2.5
    t = _geo_table(y=[0.0, 2.5, 2.6, 100.0, -1.0, 3, 2, 2.5000001, 0, 9])
    _, y, _ = featurize(t, parse_spec(d))
    assert y.tolist() == [0, 0, 1, 1, 0, 1, 0, 1, 0, 1]
    _, y, _ = featurize(_geo_table(3, y=[True, False, True]), GEO_SPEC)
    assert y.tolist() == [1.0, 0.0, 1.0] and y.dtype == np.float64
    _, y, _ = featurize(_geo_table(2, y=[1.0, 0.0]), GEO_SPEC)
    assert y.tolist() == [1.0, 0.0]


def test_null_and_nan_labels() -> None:
    with pytest.raises(DataError, match=r"label column 'y': 2 null values \(first at row 2\)"):
        featurize(_geo_table(5, y=pa.array([0, 1, None, 1, None], pa.int8())), GEO_SPEC)
    with pytest.raises(DataError, match=r"label column 'y': 1 NaN values \(first at row 1\)"):
        featurize(_geo_table(3, y=[0.0, math.nan, 1.0]), GEO_SPEC)


@pytest.mark.parametrize("column, values, count, first, text", [
    ("latitude", [0.0, 91.0, 5.0, -95.0, 90.0], 2, 1, "lat=91.0"),
    ("latitude", [0.0, 0.0, -90.0000001, math.nan, None], 1, 2, "lat=-90.0000001"),
    ("latitude", [math.inf, 0.0, 0.0, 0.0, 0.0], 1, 0, "lat=inf"),
    ("longitude", [0.0, 0.0, 0.0, 180.5, -181.0], 2, 3, "lon=180.5"),
    ("longitude", [-math.inf, 0.0, 0.0, 0.0, 0.0], 1, 0, "lon=-inf"),
])
def test_coordinates_out_of_range(column: str, values: list, count: int, first: int, text: str) -> None:
    t = _geo_table(5, **{column: values})
    with pytest.raises(DataError, match=rf"feature 'cell': {count} rows have coordinates outside "
                                        rf"\[-90, 90\] x \[-180, 180\] \(first at row {first}: .*{text}.*"
                                        r"invalid = \"missing\""):
        featurize(t, GEO_SPEC)
    # invalid = "missing": the same rows land in the missing bucket
    d = json.loads(json.dumps(GEO_SPEC_DICT))
    d["features"][0]["invalid"] = "missing"
    spec = parse_spec(d)
    X, _, _ = featurize(t, spec)
    missing_col = spec.outputs[0].cardinality - 1
    cell = np.array([missing_col in X.indices[X.indptr[r]:X.indptr[r + 1]] for r in range(X.shape[0])])
    limit = 90.0 if column == "latitude" else 180.0
    expected_missing = [v is None or math.isnan(v) or not -limit <= v <= limit for v in values]
    np.testing.assert_array_equal(cell == 1, expected_missing)
    ref = reference_csr(d, t.to_pylist())
    assert_same(X, *ref[:3], ref[5])


def test_lat_and_lon_kinds_out_of_range() -> None:
    d = {"label": {"column": "y"}, "hashing": {"bits": 3},
         "features": [{"name": "la", "kind": "lat", "column": "latitude", "resolution_arcmin": 60},
                      {"name": "lo", "kind": "lon", "column": "longitude", "resolution_arcmin": 60}]}
    spec = parse_spec(d)
    with pytest.raises(DataError, match=r"feature 'la': 1 rows .*first at row 2: lat=100\.0"):
        featurize(_geo_table(4, latitude=[0.0, 1.0, 100.0, 2.0]), spec)
    with pytest.raises(DataError, match=r"feature 'lo': 1 rows .*first at row 3: lon=-200\.0"):
        featurize(_geo_table(4, longitude=[0.0, 1.0, 2.0, -200.0]), spec)
    # a latitude of 100 is fine for a lon band (it only reads longitudes) and vice versa
    d2 = {**d, "features": [d["features"][1]]}
    featurize(_geo_table(4, latitude=[0.0, 1.0, 100.0, 2.0]), parse_spec(d2))


def test_out_of_range_row_is_global_in_iter_batches(tmp_path: Path) -> None:
    lat = [10.0] * 1000
    lat[777] = 95.0
    lat[900] = -95.0
    path = tmp_path / "bad.parquet"
    pq.write_table(_geo_table(1000, latitude=lat), path, row_group_size=300)
    with pytest.raises(DataError, match=r"1 rows .*first at row 777: lat=95\.0"):
        list(iter_batches(path, GEO_SPEC, batch_rows=128))
    labels = pa.array([0] * 1000, pa.int8()).to_pylist()
    labels[650] = 7
    pq.write_table(_geo_table(1000, y=pa.array(labels, pa.int8())), path, row_group_size=300)
    with pytest.raises(DataError, match=r"1 values are not 0/1 \(first at row 650: 7\.0\)"):
        list(iter_batches(path, GEO_SPEC, batch_rows=100))


@pytest.mark.parametrize("weights, text", [
    ([1.0, math.nan, 2.0, math.nan], r"2 values are null, NaN, infinite or negative \(first at row 1: nan\)"),
    ([1.0, 1.0, None, 2.0], r"1 values .*\(first at row 2: nan\)"),
    ([1.0, -0.5, 1.0, 2.0], r"1 values .*\(first at row 1: -0\.5\)"),
    ([1.0, 1.0, 1.0, math.inf], r"1 values .*\(first at row 3: inf\)"),
])
def test_bad_weights(weights: list, text: str) -> None:
    d = json.loads(json.dumps(GEO_SPEC_DICT))
    d["label"]["weight"] = "w"
    spec = parse_spec(d)
    with pytest.raises(DataError, match=r"weight column 'w': " + text):
        featurize(_geo_table(4, w=pa.array(weights, pa.float64())), spec)
    _, _, w = featurize(_geo_table(4, w=[0.0, 1.0, 2.5, 3]), spec)
    assert w.tolist() == [0.0, 1.0, 2.5, 3.0] and w.dtype == np.float64


def test_weight_column_must_exist_and_be_numeric() -> None:
    d = json.loads(json.dumps(GEO_SPEC_DICT))
    d["label"]["weight"] = "weight"
    with pytest.raises(SchemaError, match=r"weight column 'weight' is not in the input table"):
        featurize(_geo_table(2), parse_spec(d))
    with pytest.raises(SchemaError, match=r"weight column 'weight' .* type string"):
        featurize(_geo_table(2, weight=["a", "b"]), parse_spec(d))


def test_empty_dataset_through_iter_batches(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(_geo_table(0), path)
    with pytest.raises(DataError, match=r"has no rows"):
        list(iter_batches(path, GEO_SPEC))
    folder = tmp_path / "emptyfolder"
    folder.mkdir()
    pq.write_table(_geo_table(0), folder / "a.parquet")
    pq.write_table(_geo_table(0), folder / "b.parquet")
    with pytest.raises(DataError, match=r"has no rows"):
        list(iter_batches(folder, GEO_SPEC))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.parquet"
    path.write_text("this is not a parquet file\n" * 10)
    with pytest.raises(DataError, match=r"cannot read '.*notes\.parquet' as Parquet"):
        list(iter_batches(path, GEO_SPEC))
    with pytest.raises(DataError, match=r"cannot read"):
        resolve_spec(path, parse_spec({**GEO_SPEC_DICT, "features": [
            {"name": "i", "kind": "bucket", "column": "income", "quantiles": 3}]}))


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    pq.write_table(_geo_table(1000), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read '.*cut\.parquet'"):
        list(iter_batches(path, GEO_SPEC))


def test_folder_without_parquet_and_glob_without_match(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no data here")
    with pytest.raises(DataError, match=r"folder '.*' has no \*\.parquet files"):
        list(iter_batches(tmp_path, GEO_SPEC))
    with pytest.raises(DataError, match=r"no files match '.*\*\.parquet'"):
        list(iter_batches(str(tmp_path / "part-*.parquet"), GEO_SPEC))
    with pytest.raises(DataError, match=r"data path '.*missing\.parquet' does not exist"):
        list(iter_batches(tmp_path / "missing.parquet", GEO_SPEC))


# =================================================================================== quantiles
def test_resolve_spec_quantiles_on_sample() -> None:
    d = {"label": {"column": "label"},
         "features": [{"name": "income", "kind": "bucket", "column": "income", "quantiles": 10},
                      {"name": "age", "kind": "bucket", "column": "age", "quantiles": 4},
                      {"name": "hour", "kind": "bucket", "column": "hour", "quantiles": 24},
                      {"name": "fixed", "kind": "bucket", "column": "age", "boundaries": [50.0]}]}
    spec = parse_spec(d)
    assert spec.needs_data
    resolved = resolve_spec(SAMPLE, spec)
    assert not resolved.needs_data
    assert resolved.feature("fixed").boundaries == (50.0,)
    table = pq.read_table(SAMPLE, columns=["income", "age", "hour"])
    for name, column, q in [("income", "income", 10), ("age", "age", 4), ("hour", "hour", 24)]:
        b = np.array(resolved.feature(name).boundaries)
        assert len(b) >= 1 and np.all(np.diff(b) > 0), name
        x = table.column(column).drop_null().to_numpy().astype(np.float64)
        expected = np.unique(np.quantile(x, np.arange(1, q) / q))
        np.testing.assert_allclose(b, expected, rtol=1e-12, err_msg=name)
    # the income deciles of a log-normal with median ~45,000
    income = np.array(resolved.feature("income").boundaries)
    assert len(income) == 9 and 35_000 < income[4] < 55_000
    # the resolved spec featurizes
    X, _, _ = featurize(pq.read_table(SAMPLE).slice(0, 100), resolved)
    assert_canonical(X, resolved.n_columns)
    # resolving is idempotent
    assert resolve_spec(SAMPLE, resolved) is resolved


def test_resolve_spec_uses_the_first_sample_rows() -> None:
    d = {"label": {"column": "label"}, "quantile_sample_rows": 1000,
         "features": [{"name": "age", "kind": "bucket", "column": "age", "quantiles": 5}]}
    resolved = resolve_spec(SAMPLE, parse_spec(d), batch_rows=300)
    x = pq.read_table(SAMPLE, columns=["age"]).column(0).drop_null().to_numpy()[:1000]
    expected = np.unique(np.quantile(x, [0.2, 0.4, 0.6, 0.8]))
    np.testing.assert_allclose(resolved.feature("age").boundaries, expected, rtol=1e-12)


def test_resolve_spec_constant_column(tmp_path: Path) -> None:
    path = tmp_path / "const.parquet"
    pq.write_table(_geo_table(50, income=[3.0] * 50), path)
    spec = parse_spec({**GEO_SPEC_DICT, "features": [
        {"name": "i", "kind": "bucket", "column": "income", "quantiles": 4}]})
    resolved = resolve_spec(path, spec)
    assert resolved.feature("i").boundaries == (3.0,)
    pq.write_table(_geo_table(50, income=pa.array([None] * 50, pa.float64())), path)
    with pytest.raises(DataError, match=r"feature 'i': column 'income' has no finite values"):
        resolve_spec(path, spec)


def test_uint64_categorical_beyond_int64_is_a_data_error():
    """Categorical integers are hashed as int64 (the contract): uint64 values >= 2**63 are
    refused with the feature, column and row named; smaller ones hash as before."""
    spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 4},
                       "features": [{"name": "c", "kind": "categorical", "column": "c"}]})
    small = featurize(pa.table({"c": pa.array([1, 2**63 - 1], pa.uint64()), "y": [1, 0]}), spec)[0]
    as_int64 = featurize(pa.table({"c": pa.array([1, 2**63 - 1], pa.int64()), "y": [1, 0]}), spec)[0]
    assert np.array_equal(small.indices, as_int64.indices)
    with pytest.raises(DataError, match=r"feature 'c': column 'c' has 1 integers >= 2\*\*63 \(first at row 12\)"):
        featurize(pa.table({"c": pa.array([1, None, 2**64 - 1], pa.uint64()), "y": [1, 0, 1]}), spec, start_row=10)


# ============================================================= many features: slices, long rows
def _many_spec(n_features: int = 200, n_crosses: int = 100, bits: int = 6) -> dict[str, Any]:
    """Every kind, shared columns, skip and bucket missing values, exact and hashed crosses of
    2-3 distinct features; few hash bits so rows have collisions (entries with value > 1)."""
    feats: list[dict[str, Any]] = []
    for i in range(n_features):
        k = i % 5
        f: dict[str, Any] = {"name": f"f{i}"}
        if k == 0:
            f.update(kind="bucket", column=f"x{i % 7}", boundaries=[float(b) for b in range(-2, i % 6)])
        elif k == 1:
            f.update(kind="categorical", column=f"c{i % 4}")
        elif k == 2:
            f.update(kind="lat", column="lat", resolution_arcmin=float(60 * (1 + i % 9)))
        elif k == 3:
            f.update(kind="lon", column="lon", resolution_arcmin=float(120 * (1 + i % 5)), invalid="missing")
        else:
            f.update(kind="geo", lat="lat", lon="lon", resolution_arcmin=float(600 * (1 + i % 4)),
                     invalid="missing")
        if i % 3 == 0:
            f["missing"] = "skip"
        if i % 4 == 0:
            f["standalone"] = False
        feats.append(f)
    crosses = []
    for j in range(n_crosses):
        picks = [j % n_features, (j * 7 + 1) % n_features, (j * 31 + 2) % n_features][: 2 + j % 2]
        if picks[1] == picks[0]:
            picks[1] = (picks[0] + 1) % n_features
        comps = list(dict.fromkeys(f"f{k}" for k in picks))
        c: dict[str, Any] = {"features": comps, "name": f"x{j}"}
        if j % 5 == 0:
            c["mode"] = "hashed"
        crosses.append(c)
    return {"label": {"column": "y"}, "hashing": {"bits": bits, "seed": 11, "max_exact": 50_000},
            "features": feats, "crosses": crosses}


def _many_rows(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n):
        row: dict[str, Any] = {"y": int(rng.integers(0, 2))}
        for c in range(7):
            row[f"x{c}"] = None if rng.random() < 0.1 else float(np.round(rng.normal(0, 3), 2))
        for c in range(4):
            v = None if rng.random() < 0.1 else int(rng.integers(0, 6))
            row[f"c{c}"] = v if c % 2 or v is None else f"v{v}"
        row["lat"] = None if rng.random() < 0.1 else float(np.round(rng.uniform(-90, 90), 3))
        row["lon"] = float(np.round(rng.uniform(-200, 200), 3))  # some out of range: invalid=missing
        rows.append(row)
    return rows


def test_many_features_long_rows_match_the_reference() -> None:
    """~300 outputs a row (far past the insertion-sort length) with collisions, against the
    reference; then in slices of 7 rows, identical to the batch in one piece."""
    F = importlib.import_module("sparsecross.featurize")
    from sparsecross._kernels.crosses import SHORT_ROW

    d = _many_spec()
    spec = parse_spec(d)
    rows = _many_rows(40)
    table = table_from_rows(d, rows)
    assert len(spec.features) + len(spec.crosses) == 300
    indptr, indices, data, labels, _, width = reference_csr(d, rows)
    X, y, _ = featurize(table, spec)
    assert np.diff(X.indptr).max() > 4 * SHORT_ROW
    assert X.data.max() > 1  # collisions merged into counts
    assert_same(X, indptr, indices, data, width)
    assert_canonical(X, spec.n_columns)
    np.testing.assert_array_equal(y, labels)

    old = F.SLICE_ENTRIES
    try:
        F.SLICE_ENTRIES = 7 * len(spec.outputs)  # outputs outnumber features: 7-row slices
        X7, _, _ = featurize(table, spec)
    finally:
        F.SLICE_ENTRIES = old
    assert_identical(X7, X)


@pytest.mark.parametrize("entries", [1, 250, 1000, 1 << 22])
def test_sliced_batches_are_bit_identical(monkeypatch: pytest.MonkeyPatch, entries: int) -> None:
    """Slice sizes from one row to the whole batch give the same CSR (rows are independent)."""
    F = importlib.import_module("sparsecross.featurize")

    d = _many_spec(40, 20, bits=8)
    spec = parse_spec(d)
    table = table_from_rows(d, _many_rows(60, seed=3))
    whole = F.featurize_features(spec, table)
    monkeypatch.setattr(F, "SLICE_ENTRIES", entries)
    assert_identical(F.featurize_features(spec, table), whole)
    assert_identical(F.featurize_features(spec, table.slice(5, 31)),
                     whole[5:36])


def test_many_features_featurize_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """500 features (only one cross emitted) x 4,000 rows: the per-feature local ids of the
    whole batch are 500 * 4,000 * 9 bytes = 18 MB; in slices of SLICE_ENTRIES = 2**16 entries
    the traced peak stays a few MB (sizes, not time)."""
    import tracemalloc

    F = importlib.import_module("sparsecross.featurize")

    n_features, n = 500, 4000
    feats = [{"name": f"b{i}", "kind": "bucket", "column": f"x{i % 10}",
              "boundaries": [0.0, float(1 + i % 3)], "standalone": False} for i in range(n_features)]
    spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 8}, "features": feats,
                       "crosses": [{"features": ["b0", "b1"]}]})
    rng = np.random.default_rng(0)
    table = pa.table({f"x{c}": rng.normal(0, 2, n) for c in range(10)} | {"y": np.zeros(n)})
    monkeypatch.setattr(F, "SLICE_ENTRIES", 1 << 16)
    F.featurize_features(spec, table.slice(0, 10))  # plan and kernels ready
    tracemalloc.start()
    try:
        X = F.featurize_features(spec, table)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert X.shape[0] == n and X.nnz == n
    full_ids = n_features * n * 9
    assert peak < full_ids / 4, (peak, full_ids)


@pytest.mark.parametrize("n_out", [5, 40, 300])
def test_build_csr_sorts_rows_in_any_output_order(n_out: int) -> None:
    """The kernel on its own, outputs in no particular column order (exact blocks out of
    layout order, hashed ones in between): each row is the sorted, merged multiset of its
    columns, computed here with Python's sorted() and a Counter."""
    from collections import Counter

    from sparsecross._kernels import crosses as K

    rng = np.random.default_rng(n_out)
    n, nf = 25, 3
    ids = rng.integers(0, 4, size=(nf, n)).astype(np.uint64)
    missing = np.zeros((nf, n), dtype=np.uint8)
    kinds = rng.integers(0, 2, n_out).astype(np.int8)  # 0 exact, 1 hashed single
    offsets = rng.permutation(n_out).astype(np.int64) * 2  # exact blocks of 2 columns, shuffled
    comp_feat = rng.integers(0, nf, n_out).astype(np.int64)
    comp_ptr = np.arange(n_out + 1, dtype=np.int64)
    indptr, indices, data = K.build_csr(
        ids % np.uint64(2), missing, np.zeros(nf, np.uint8), kinds, offsets, np.zeros(n_out, np.uint64),
        comp_ptr, comp_feat, np.ones(n_out, np.int64), np.uint64(7), np.int64(2 * n_out))
    for r in range(n):
        cols = []
        for o in range(n_out):
            v = int(ids[comp_feat[o], r] % 2)
            cols.append(int(offsets[o]) + v if kinds[o] == 0 else 2 * n_out + (v & 7))
        want = sorted(Counter(cols).items())
        got = list(zip(indices[indptr[r]:indptr[r + 1]].tolist(), data[indptr[r]:indptr[r + 1]].tolist()))
        assert got == [(c, float(k)) for c, k in want]
