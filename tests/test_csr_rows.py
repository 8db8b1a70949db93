"""Training batches as CSRRows (``iter_batches(scipy_csr=False)``) against the scipy batches and
the reference featurizer, above all when a batch is featurized in several slices
(``featurize.SLICE_ENTRIES``) whose CSR pieces are concatenated."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from sparsecross import iter_batches, parse_spec
from sparsecross.csr_rows import CSRRows
from tests.test_featurize import reference_csr

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
F = importlib.import_module("sparsecross.featurize")  # the module (the package's name is the function)

#: lists (entries merged after the kernel), a numeric value, a bucket with nulls, a cross.
LISTS_SPEC = {
    "label": {"column": "y"}, "hashing": {"bits": 10, "seed": 3},
    "features": [{"name": "tags", "kind": "categorical", "column": "tags"},
                 {"name": "x", "kind": "numeric", "column": "x"},
                 {"name": "b", "kind": "bucket", "column": "b", "boundaries": [0.0, 1.0]},
                 {"name": "c", "kind": "categorical", "column": "c"}],
    "crosses": [{"features": ["tags", "c"]}],
}


def _lists_table(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "tags": pa.array([None if i % 5 == 0 else [str(t) for t in rng.choice(list("abcdef"), int(rng.integers(0, 5)))]
                          for i in range(n)]),
        "x": pa.array(rng.normal(size=n)),
        "b": pa.array([None if i % 4 == 0 else float(v) for i, v in enumerate(rng.uniform(-1, 2, n))]),
        "c": pa.array(rng.choice(["p", "q", "r", None], n)),
        "y": pa.array(rng.integers(0, 2, n), type=pa.int8())})


def _batches(path: Path, spec, scipy_csr: bool) -> list:
    return [b.X for b in iter_batches(path, spec, batch_rows=300, scipy_csr=scipy_csr)]


def _same(rows: CSRRows, X: sp.csr_array) -> None:
    assert isinstance(rows, CSRRows)
    assert rows.shape == X.shape
    for a, b in ((rows.indptr, X.indptr), (rows.indices, X.indices), (rows.data, X.data)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", ["sample", "lists"])
@pytest.mark.parametrize("slice_entries", [1, 23, 401])
def test_csr_rows_equal_the_scipy_batches_across_slices(tmp_path, monkeypatch, case, slice_entries) -> None:
    if case == "sample":
        spec_dict = tomllib.loads((ROOT / "data" / "specs" / "synthetic.toml").read_text())
        table = pq.read_table(SAMPLE).slice(0, 1000)
    else:
        spec_dict, table = LISTS_SPEC, _lists_table(1000)
    path = tmp_path / "d.parquet"
    pq.write_table(table, path)
    spec = parse_spec(spec_dict)
    whole = _batches(path, spec, scipy_csr=True)  # one slice per batch (SLICE_ENTRIES = 4M)

    slices = []
    real = F._featurize_slice
    monkeypatch.setattr(F, "SLICE_ENTRIES", slice_entries)
    monkeypatch.setattr(F, "_featurize_slice", lambda *a: slices.append(a[2].num_rows) or real(*a))
    rows = _batches(path, spec, scipy_csr=False)
    assert len(slices) > 2 * len(rows)  # the batches came in several slices each
    sliced = _batches(path, spec, scipy_csr=True)
    assert len(rows) == len(whole) == len(sliced) == 4
    for r, X, Y in zip(rows, whole, sliced, strict=True):
        _same(r, X)
        _same(r, Y)
    # and against the reference featurizer
    indptr, indices, data, _, _, width = reference_csr(spec_dict, table.to_pylist())
    got = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(r.indptr) for r in rows]))])
    np.testing.assert_array_equal(got, indptr)
    np.testing.assert_array_equal(np.concatenate([r.indices for r in rows]), indices)
    np.testing.assert_array_equal(np.concatenate([r.data for r in rows]), data)
    assert all(r.shape[1] == width for r in rows)
