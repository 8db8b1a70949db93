"""Hashed crosses with a categorical list component (issue 11): one entry per distinct element
of a row's list (the first CROSS_LIST_CAP in list order), checked against the reference
featurizer on random lists with repeats, nulls, empty lists and lists beyond the cap, in random
chunkings."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecross import parse_spec
from sparsecross.featurize import featurize, featurize_features
from sparsecross.kinds.categorical import CROSS_LIST_CAP
from tests.reference import featurize_reference as R
from tests.test_kinds import _compare

LABEL = {"column": "y"}

# A pool larger than the cap, so long lists have more than CROSS_LIST_CAP distinct elements.
_POOL = [f"v{i}" for i in range(CROSS_LIST_CAP + 30)] + ["", "é"]
_element = st.one_of(st.none(), st.sampled_from(_POOL[:4]), st.sampled_from(_POOL))
# Long lists: repeats and nulls around more than CROSS_LIST_CAP distinct elements.
_long = st.tuples(st.permutations(_POOL), st.integers(CROSS_LIST_CAP - 2, len(_POOL)),
                  st.lists(_element, max_size=10)).map(lambda t: t[2] + list(t[0][:t[1]]) + t[2])
_list = st.one_of(st.none(), st.lists(_element, max_size=6), _long)


def test_cap_is_the_references() -> None:
    assert CROSS_LIST_CAP == R.CROSS_LIST_CAP == 64


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lists=st.lists(_list, min_size=1, max_size=25),
       other=st.lists(st.one_of(st.none(), st.floats(-5, 5)), min_size=25, max_size=25),
       missing=st.sampled_from(["bucket", "skip"]), other_missing=st.sampled_from(["bucket", "skip"]),
       partner=st.sampled_from(["bucket", "categorical"]), first=st.booleans(), standalone=st.booleans(),
       bits=st.integers(1, 8), cuts=st.lists(st.integers(0, 40), max_size=3), ints=st.booleans())
def test_list_cross_matches_reference(lists, other, missing, other_missing, partner, first, standalone, bits,
                                      cuts, ints) -> None:
    n = len(lists)
    if ints:
        lists = [None if v is None else [None if e is None else _POOL.index(e) for e in v] for v in lists]
    other = other[:n]
    if partner == "bucket":
        p: dict[str, Any] = {"name": "p", "kind": "bucket", "column": "x", "boundaries": [-1.0, 0.0, 2.0],
                             "missing": other_missing}
        col = pa.array(other, pa.float64())
        rows_x = other
    else:
        rows_x = [None if v is None else f"c{int(v)}" for v in other]
        p = {"name": "p", "kind": "categorical", "column": "x", "missing": other_missing}
        col = pa.array(rows_x, pa.string())
    tags = {"name": "tags", "kind": "categorical", "column": "tags", "missing": missing, "standalone": standalone}
    spec_dict = {"label": LABEL, "hashing": {"bits": bits}, "features": [tags, p],
                 "crosses": [{"features": ["tags", "p"] if first else ["p", "tags"]}]}
    rows = [{"tags": v, "x": x, "y": i % 2} for i, (v, x) in enumerate(zip(lists, rows_x))]
    table = pa.table({"tags": pa.array(lists, pa.list_(pa.int64() if ints else pa.string())), "x": col,
                      "y": [i % 2 for i in range(n)]})
    _compare(spec_dict, table, rows, cuts)


def _three(bits: int = 20) -> Any:
    return parse_spec({"label": LABEL, "hashing": {"bits": bits}, "features": [
        {"name": "tags", "kind": "categorical", "column": "tags", "standalone": False},
        {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.0]},
        {"name": "c", "kind": "categorical", "column": "c", "standalone": False}],
        "crosses": [{"features": ["tags", "b"]}, {"features": ["c", "tags", "b"]}]})


def test_cross_with_bucket_and_categorical() -> None:
    spec = _three()
    t = pa.table({"tags": pa.array([["a", "b", "a"], [], None, ["z"]], pa.large_list(pa.string())),
                  "x": [1.0, -1.0, None, 3.0], "c": ["u", "v", "w", None], "y": [1, 0, 1, 0]})
    X = featurize(t, spec)[0]
    # b standalone (1 entry) + 2 crosses per distinct element (a null or empty list: the missing key)
    assert [X.indptr[r + 1] - X.indptr[r] for r in range(4)] == [5, 3, 3, 3]
    assert set(X.data.tolist()) == {1.0}
    # a list element crosses as that value in a scalar column would
    for r, tag in ((0, "a"), (0, "b"), (3, "z")):
        s = featurize(pa.table({"tags": pa.array([[tag]], pa.list_(pa.string())), "x": pa.array([t["x"][r].as_py()], pa.float64()),
                                "c": pa.array([t["c"][r].as_py()], pa.string()), "y": [1]}), spec)[0]
        assert set(s.indices.tolist()) <= set(X.indices[X.indptr[r]:X.indptr[r + 1]].tolist())


def test_cap_keeps_the_first_distinct_elements() -> None:
    spec = parse_spec({"label": LABEL, "hashing": {"bits": 24}, "features": [
        {"name": "tags", "kind": "categorical", "column": "tags", "standalone": False},
        {"name": "c", "kind": "categorical", "column": "c"}], "crosses": [{"features": ["tags", "c"]}]})
    long = [f"t{i % 100}" for i in range(300)]  # 100 distinct, repeated
    X = featurize(pa.table({"tags": [long, long[:CROSS_LIST_CAP]], "c": ["u", "u"], "y": [1, 0]}), spec)[0]
    assert X.indptr.tolist() == [0, CROSS_LIST_CAP + 1, 2 * CROSS_LIST_CAP + 2]
    assert X.indices[:CROSS_LIST_CAP + 1].tolist() == X.indices[CROSS_LIST_CAP + 1:].tolist()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(a=st.lists(_list, min_size=1, max_size=12), b=st.lists(_list, min_size=12, max_size=12),
       c=st.lists(st.one_of(st.none(), st.lists(_element, max_size=4)), min_size=12, max_size=12),
       three=st.booleans(), missing=st.sampled_from(["bucket", "skip"]), other=st.sampled_from(["bucket", "skip"]),
       bits=st.integers(1, 10), cuts=st.lists(st.integers(0, 20), max_size=3))
def test_two_and_three_lists_in_one_cross_match_reference(a, b, c, three, missing, other, bits, cuts) -> None:
    """Every tuple of the lists' elements, the first CROSS_LIST_CAP by (largest position,
    positions), as the reference enumerates them; long lists on both sides included."""
    n = len(a)
    b, c = b[:n], c[:n]
    feats = [{"name": "a", "kind": "categorical", "column": "a", "missing": missing},
             {"name": "b", "kind": "categorical", "column": "b", "missing": other, "standalone": False},
             {"name": "c", "kind": "categorical", "column": "c", "missing": other, "standalone": False}]
    crosses = [{"features": ["a", "b"]}, {"features": ["b", "a", "c"] if three else ["c", "a"]}]
    spec_dict = {"label": LABEL, "hashing": {"bits": bits}, "features": feats, "crosses": crosses}
    rows = [{"a": x, "b": y, "c": z, "y": i % 2} for i, (x, y, z) in enumerate(zip(a, b, c))]
    table = pa.table({"a": pa.array(a, pa.list_(pa.string())), "b": pa.array(b, pa.large_list(pa.string())),
                      "c": pa.array(c, pa.list_(pa.string())), "y": [i % 2 for i in range(n)]})
    _compare(spec_dict, table, rows, cuts)


def test_two_long_lists_cross_each_ones_first_elements() -> None:
    """Two lists of 100 distinct elements: the 64 pairs of their first 8 elements each."""
    spec = parse_spec({"label": LABEL, "hashing": {"bits": 30}, "features": [
        {"name": "a", "kind": "categorical", "column": "a", "standalone": False},
        {"name": "b", "kind": "categorical", "column": "b", "standalone": False}],
        "crosses": [{"features": ["a", "b"]}]})
    long = [f"t{i}" for i in range(100)]
    X = featurize(pa.table({"a": [long], "b": [long], "y": [1]}), spec)[0]
    short = featurize(pa.table({"a": [long[:8]], "b": [long[:8]], "y": [1]}), spec)[0]
    assert X.nnz == CROSS_LIST_CAP and X.indices.tolist() == short.indices.tolist()
    # one element against a long list: that element with the other's first 64
    X = featurize(pa.table({"a": [["u"]], "b": [long], "y": [1]}), spec)[0]
    short = featurize(pa.table({"a": [["u"]], "b": [long[:CROSS_LIST_CAP]], "y": [1]}), spec)[0]
    assert X.nnz == CROSS_LIST_CAP and X.indices.tolist() == short.indices.tolist()


def test_train_predict_and_names_with_a_crossed_list(tmp_path) -> None:
    """predict scores a spec whose only list is crossed through the CSR rows (bit for bit a
    dense computation from featurize_features); recording names does not fail."""
    import numpy as np
    import pyarrow.parquet as pq

    import sparsecross as sx
    from sparsecross.names import record_names

    rng = np.random.default_rng(5)
    n = 500
    table = pa.table({
        "tags": pa.array([[f"t{int(k)}" for k in rng.integers(0, 12, int(m))] for m in rng.integers(0, 5, n)]),
        "c": pa.array([f"c{int(v)}" for v in rng.integers(0, 7, n)]),
        "y": rng.integers(0, 2, n),
    })
    spec = parse_spec({"label": LABEL, "hashing": {"bits": 10}, "features": [
        {"name": "tags", "kind": "categorical", "column": "tags", "standalone": False},
        {"name": "c", "kind": "categorical", "column": "c"}], "crosses": [{"features": ["c", "tags"]}]})
    pq.write_table(table, tmp_path / "d.parquet")
    model = sx.train(tmp_path / "d.parquet", spec, l1=0.0, alpha=0.5)
    X = featurize_features(model.spec, table)
    assert X.nnz > n  # the cross's entries are there
    dense = np.asarray(X.todense(), dtype=np.float64) @ model.dense_weights().astype(np.float64) + model.bias
    assert np.allclose(model.predict_proba(table), 1.0 / (1.0 + np.exp(-dense)), rtol=1e-12, atol=1e-15)
    record_names(model, tmp_path / "d.parquet")


_LIST_SPEC = {"label": LABEL, "hashing": {"bits": 9}, "features": [
    {"name": "tags", "kind": "categorical", "column": "tags"},
    {"name": "genre", "kind": "categorical", "column": "genre", "standalone": False, "missing": "skip"},
    {"name": "c", "kind": "categorical", "column": "c"}],
    "crosses": [{"features": ["tags", "c"]}, {"features": ["genre", "tags"]}]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(tags=st.lists(_list, min_size=1, max_size=40), genre=st.lists(_list, min_size=40, max_size=40),
       groups=st.lists(st.integers(1, 15), min_size=1, max_size=4), seed=st.integers(0, 2**63 - 1),
       epoch=st.integers(0, 3), buffer_rows=st.integers(1, 50), batch_a=st.integers(1, 40),
       batch_b=st.integers(1, 40))
def test_shuffled_list_rows_are_the_same_whatever_the_batch_size(tmp_path_factory, tags, genre, groups, seed, epoch,
                                                                 buffer_rows, batch_a, batch_b) -> None:
    """With list columns (standalone, one-list and two-list crosses): the same seed and buffer
    give the same row order for any batch size, and each shuffled row carries exactly the
    columns of that global row featurized in order, in one table."""
    import pyarrow.parquet as pq

    from sparsecross.order import Shuffle, iter_shuffled_batches

    n = len(tags)
    table = pa.table({"tags": pa.array(tags, pa.list_(pa.string())),
                      "genre": pa.array(genre[:n], pa.large_list(pa.string())),
                      "c": pa.array([f"c{i % 3}" for i in range(n)]), "y": [i % 2 for i in range(n)]})
    path = tmp_path_factory.mktemp("lists") / "d.parquet"
    writer = pq.ParquetWriter(path, table.schema)
    at = 0
    for k in groups * (n // sum(groups) + 1):
        if at >= n:
            break
        writer.write_table(table.slice(at, k), row_group_size=k)
        at += k
    writer.close()
    spec = parse_spec(_LIST_SPEC)
    X = featurize(table, spec)[0]
    orders = []
    for batch_rows in (batch_a, batch_b):
        rows = []
        for b in iter_shuffled_batches(path, spec, Shuffle(seed, buffer_rows), epoch=epoch, batch_rows=batch_rows):
            for i, r in enumerate(b.rows.tolist()):
                got = b.X.indices[b.X.indptr[i]:b.X.indptr[i + 1]].tolist(), b.X.data[b.X.indptr[i]:b.X.indptr[i + 1]].tolist()
                assert got == (X.indices[X.indptr[r]:X.indptr[r + 1]].tolist(), X.data[X.indptr[r]:X.indptr[r + 1]].tolist())
                rows.append(r)
        orders.append(rows)
    assert sorted(orders[0]) == list(range(n)) and orders[0] == orders[1]
