"""Parquet sources: files, folders, globs and lists, read in a deterministic order, with
start_row skipping and any batch size giving the same rows."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from sparsecross import featurize, iter_batches, load_spec, parse_spec
from sparsecross.errors import DataError, SchemaError
from sparsecross.read import count_rows, iter_record_batches, resolve_files

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"
SPEC = load_spec(ROOT / "data" / "specs" / "synthetic.toml")

# (relative path, first row, last row + 1, row group size); sorted path order == row order
LAYOUT = [
    ("00.parquet", 0, 3000, 1000),
    ("01_empty.parquet", 3000, 3000, 1000),
    ("02/0.parquet", 3000, 10000, 2500),
    ("03.parquet", 10000, 20000, 4096),
]
ROW_GROUP_STARTS = [0, 1000, 2000, 3000, 5500, 8000, 10000, 14096, 18192]


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return pq.read_table(SAMPLE)


@pytest.fixture(scope="module")
def full(table: pa.Table) -> tuple[sp.csr_array, np.ndarray]:
    X, y, _ = featurize(table, SPEC)
    return X, y


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> Path:
    """sample.parquet split over 4 files (one empty, one nested) plus files a folder skips."""
    root = tmp_path_factory.mktemp("dataset")
    for rel, a, b, rg in LAYOUT:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(a, b - a), path, row_group_size=rg)
    # never read from a folder: hidden files, underscore files/folders, other extensions
    (root / ".hidden.parquet").write_text("not parquet")
    (root / "_SUCCESS").write_text("")
    (root / "_tmp").mkdir()
    (root / "_tmp" / "zz.parquet").write_text("not parquet")
    (root / "notes.txt").write_text("not parquet")
    return root


def _stack(batches) -> tuple[sp.csr_array, np.ndarray]:
    batches = list(batches)
    if not batches:
        return sp.csr_array((0, SPEC.n_columns), dtype=np.float32), np.zeros(0)
    return sp.vstack([b.X for b in batches], format="csr"), np.concatenate([b.y for b in batches])


def _assert_rows_equal(A: sp.csr_array, B: sp.csr_array) -> None:
    assert A.shape == B.shape
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_array_equal(A.data, B.data)


def _raw_rows(source, **kw) -> pa.Table:
    """Concatenated record batches with dictionaries decoded."""
    batches = [rb for rb, _ in iter_record_batches(source, SPEC, **kw)]
    cols = {}
    for name in batches[0].schema.names:
        parts = []
        for rb in batches:
            col = rb.column(name)
            if pa.types.is_dictionary(col.type):
                col = col.dictionary_decode()
            parts.append(col)
        cols[name] = pa.chunked_array(parts).combine_chunks()
    return pa.table(cols)


def test_layout_of_the_fixture(dataset: Path) -> None:
    md = [pq.ParquetFile(dataset / rel).metadata for rel, *_ in LAYOUT]
    starts, row = [], 0
    for m in md:
        for g in range(m.num_row_groups):
            if m.row_group(g).num_rows:
                starts.append(row)
            row += m.row_group(g).num_rows
    assert starts == ROW_GROUP_STARTS
    assert row == 20000


def test_resolve_files_sorted_and_skips_hidden(dataset: Path) -> None:
    files = resolve_files(dataset)
    assert [f.relative_to(dataset).as_posix() for f in files] == [rel for rel, *_ in LAYOUT]
    assert count_rows(dataset) == 20000
    assert resolve_files(dataset / "03.parquet") == [dataset / "03.parquet"]


def _sources(dataset: Path) -> dict[str, object]:
    return {
        "folder": dataset,
        "folder-str": str(dataset),
        "glob": str(dataset / "**" / "0*.parquet"),
        "list": [dataset / rel for rel, *_ in LAYOUT],
        "list-mixed": [str(dataset / "00.parquet"), str(dataset / "01_*.parquet"), dataset / "02",
                       os.fspath(dataset / "03.parquet")],
        "tuple": tuple(str(dataset / rel) for rel, *_ in LAYOUT),
    }


@pytest.mark.parametrize("kind", ["folder", "folder-str", "glob", "list", "list-mixed", "tuple"])
def test_sources_give_the_same_rows(dataset: Path, table: pa.Table, full, kind: str) -> None:
    source = _sources(dataset)[kind]
    raw = _raw_rows(source, batch_rows=3333)
    expected = table.select(raw.column_names)
    assert raw.num_rows == 20000
    assert raw.equals(expected)
    X, y = _stack(iter_batches(source, SPEC, batch_rows=3333))
    _assert_rows_equal(X, full[0])
    np.testing.assert_array_equal(y, full[1])


def test_single_file_source(table: pa.Table, full) -> None:
    X, y = _stack(iter_batches(SAMPLE, SPEC, batch_rows=4096))
    _assert_rows_equal(X, full[0])
    X2, _ = _stack(iter_batches(str(SAMPLE), SPEC, batch_rows=4096))
    _assert_rows_equal(X2, full[0])
    assert _raw_rows(SAMPLE).equals(table.select(list(SPEC.columns)))


def test_global_row_numbers_of_batches(dataset: Path) -> None:
    starts = [b.start_row for b in iter_batches(dataset, SPEC, batch_rows=1500)]
    rows = [b.X.shape[0] for b in iter_batches(dataset, SPEC, batch_rows=1500)]
    assert starts[0] == 0
    assert all(s + n == t for s, n, t in zip(starts, rows, starts[1:]))
    assert starts[-1] + rows[-1] == 20000
    assert all(0 < n <= 1500 for n in rows)
    rb_starts = [row for _, row in iter_record_batches(dataset, SPEC, batch_rows=1500)]
    assert rb_starts == starts


START_ROWS = sorted({0, 1, 999, 1000, 1001, 2999, 3000, 3001, 5499, 5500, 5501, 9999, 10000, 10001,
                     14095, 14096, 14097, 18192, 19999, 20000, 20001, 10**9})


@pytest.mark.parametrize("start", START_ROWS)
def test_start_row_equals_slicing(dataset: Path, full, start: int) -> None:
    batches = list(iter_batches(dataset, SPEC, batch_rows=1500, start_row=start))
    X, y = _stack(batches)
    _assert_rows_equal(X, full[0][start:])
    np.testing.assert_array_equal(y, full[1][start:])
    if start < 20000:
        assert batches[0].start_row == start
        assert all(a.start_row + a.X.shape[0] == b.start_row for a, b in zip(batches, batches[1:]))
    else:
        assert batches == []


@pytest.mark.parametrize("start", [0, 1, 2999, 3000, 10001])
def test_start_row_raw_rows_equal_slicing(dataset: Path, table: pa.Table, start: int) -> None:
    raw = _raw_rows(dataset, batch_rows=777, start_row=start)
    assert raw.equals(table.select(raw.column_names).slice(start))


def test_start_row_single_file_row_groups(full) -> None:
    # sample.parquet has 4 row groups of 5,000
    for start in (4999, 5000, 5001, 15000):
        X, _ = _stack(iter_batches(SAMPLE, SPEC, batch_rows=2048, start_row=start))
        _assert_rows_equal(X, full[0][start:])


@pytest.mark.parametrize("batch_rows", [1000, 1024, 4096, 5000, 7001, 1 << 18])
def test_batch_rows_does_not_change_results(dataset: Path, full, batch_rows: int) -> None:
    batches = list(iter_batches(dataset, SPEC, batch_rows=batch_rows))
    assert all(b.X.shape[0] <= batch_rows for b in batches)
    X, y = _stack(batches)
    _assert_rows_equal(X, full[0])
    np.testing.assert_array_equal(y, full[1])


@pytest.mark.parametrize("batch_rows", [1, 7, 999])
def test_tiny_batches(dataset: Path, full, batch_rows: int) -> None:
    first = dataset / "00.parquet"
    batches = list(iter_batches(first, SPEC, batch_rows=batch_rows, start_row=1500))
    assert all(b.X.shape[0] <= batch_rows for b in batches)
    X, _ = _stack(batches)
    _assert_rows_equal(X, full[0][1500:3000])


def test_batch_rows_must_be_positive(dataset: Path) -> None:
    with pytest.raises(ValueError, match="batch_rows must be between 1 and"):
        list(iter_batches(dataset, SPEC, batch_rows=0))


def test_folder_order_ignores_creation_order(tmp_path: Path) -> None:
    spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 4},
                       "features": [{"name": "x", "kind": "bucket", "column": "x",
                                     "boundaries": [0.5]}]})
    names = ["part-b.parquet", "part-c.parquet", "part-a.parquet", "part-10.parquet", "part-2.parquet"]
    rng = np.random.default_rng(5)
    rng.shuffle(names)
    for k, name in enumerate(names):
        pq.write_table(pa.table({"x": [float(k)] * 3, "y": pa.array([0, 1, 0], pa.int8()),
                                 "file": [name] * 3}), tmp_path / name)
        # newer files get older modification times: order must come from the names only
        t = 1_600_000_000 - 1000 * k
        os.utime(tmp_path / name, (t, t))
    expected = sorted(names)  # plain string order: part-10 < part-2 < part-a < ...
    assert [p.name for p in resolve_files(tmp_path)] == expected
    got = [rb.column("file").to_pylist() for rb, _ in
           iter_record_batches(tmp_path, spec, batch_rows=2, extra_columns=["file"])]
    flat = [v for chunk in got for v in chunk]
    assert flat == [n for n in expected for _ in range(3)]
    # glob order is the same
    assert [p.name for p in resolve_files(str(tmp_path / "part-*.parquet"))] == expected


def test_schema_checked_per_file_before_its_rows(tmp_path: Path, table: pa.Table) -> None:
    pq.write_table(table.slice(0, 100), tmp_path / "a.parquet")
    pq.write_table(table.slice(100, 100).drop_columns(["device"]), tmp_path / "b.parquet")
    seen = []
    with pytest.raises(SchemaError, match=r"'device' is not in '.*b\.parquet'"):
        for batch in iter_batches(tmp_path, SPEC, batch_rows=30):
            seen.append(batch.X.shape[0])
    assert sum(seen) == 100


def test_extra_column_must_exist(dataset: Path) -> None:
    with pytest.raises(SchemaError, match=r"column 'devise' is not in .*did you mean 'device'"):
        list(iter_record_batches(dataset, SPEC, extra_columns=["devise"]))


def test_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data path '.*nothing\.parquet' does not exist"):
        resolve_files(tmp_path / "nothing.parquet")
    with pytest.raises(DataError, match=r"no files match"):
        resolve_files(str(tmp_path / "*.parquet"))
    with pytest.raises(DataError, match=r"has no \*\.parquet files"):
        resolve_files(tmp_path)
    with pytest.raises(DataError, match=r"no data files given"):
        resolve_files([])


def test_reading_twice_is_deterministic(dataset: Path) -> None:
    a = [(b.start_row, b.X.indices.tobytes()) for b in iter_batches(dataset, SPEC, batch_rows=4000)]
    b = [(b.start_row, b.X.indices.tobytes()) for b in iter_batches(dataset, SPEC, batch_rows=4000)]
    assert a == b


def test_a_huge_column_name_is_echoed_shortened(tmp_path):
    """A spec may name a 1 MB column (a dict spec, or a generated one): errors that name the
    column stay one short line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sparsecross as sx

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [0, 1]}), path)
    huge = "c" * 1_000_000
    for spec in ({"label": {"column": "y"}, "features": [{"name": "f", "kind": "categorical", "column": huge}]},
                 {"label": {"column": huge}, "features": [{"name": "f", "kind": "categorical", "column": "x"}]},
                 {"label": {"column": "y", "weight": huge},
                  "features": [{"name": "f", "kind": "categorical", "column": "x"}]}):
        with pytest.raises(sx.SchemaError) as info:
            sx.train(path, sx.parse_spec(spec))
        msg = str(info.value)
        assert len(msg) < 1000 and "\n" not in msg, len(msg)
    # a data file whose own column name is huge or holds a newline: the list of available columns
    odd = tmp_path / "odd.parquet"
    pq.write_table(pa.table({huge: [1.0], "a\nb": [2.0], "y": [0]}), odd)
    with pytest.raises(sx.SchemaError) as info:
        sx.train(odd, sx.parse_spec({"label": {"column": "y"},
                                     "features": [{"name": "f", "kind": "categorical", "column": "x"}]}))
    msg = str(info.value)
    assert len(msg) < 1000 and "\n" not in msg and "'a\\nb'" in msg, msg[:300]


def test_a_hostile_data_path_is_named_short(tmp_path):
    """Data files in a ~3,500-character folder of control characters: every error that names
    the file (cannot read, no files, missing column, wrong type, a bad value's file and row, two
    files that differ, no rows) names it short (they were 3.5 to 7 KB)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sparsecross as sx
    from tests.hostile import assert_short, hostile_folder

    d = hostile_folder(tmp_path)
    spec = sx.parse_spec({"label": {"column": "y"},
                          "features": [{"name": "f", "kind": "categorical", "column": "x"}]})
    (d / "bad.parquet").write_bytes(b"garbage" * 10)
    (d / "empty").mkdir()
    pq.write_table(pa.table({"z": [1], "y": [0]}), d / "nocol.parquet")
    pq.write_table(pa.table({"x": [1.5], "y": [0]}), d / "type.parquet")
    pq.write_table(pa.table({"x": ["a", "b"], "y": [0, 3]}), d / "label.parquet")
    pq.write_table(pa.table({"x": pa.array([], pa.string()), "y": pa.array([], pa.int64())}), d / "rows.parquet")
    pq.write_table(pa.table({"x": ["a", "b"], "y": [0, 1]}), d / "ok.parquet")
    pq.write_table(pa.table({"x": [1, 2], "y": [0, 1]}), d / "ok2.parquet")
    sources = [d / "bad.parquet", d / "empty", d / "nope.parquet", str(d / "zz*.parquet"), d / "nocol.parquet",
               d / "type.parquet", d / "label.parquet", d / "rows.parquet", [d / "ok.parquet", d / "ok2.parquet"]]
    for source in sources:
        with pytest.raises(sx.SparseCrossError) as info:
            sx.train(source, spec)
        assert_short(str(info.value))
    model = sx.train(d / "ok.parquet", spec, l1=0.0)
    for fn in (lambda: sx.evaluate(model, d / "rows.parquet"), lambda: sx.evaluate(model, d / "ok2.parquet"),
               lambda: list(sx.iter_batches(d / "rows.parquet", spec)),
               lambda: list(sx.read.iter_record_batches(d / "ok.parquet", spec, extra_columns=["nope"]))):
        with pytest.raises(sx.SparseCrossError) as info:
            fn()
        assert_short(str(info.value))


def test_a_list_source_is_named_by_each_path_short_and_counted(tmp_path):
    """A list of data files with long paths: "has no rows" named the list by the start of the
    ``repr`` of its first three paths, so the first path's folder hid every file's name; each
    path is now named by its end (``shown_path``), with how many there are."""
    import sparsecross as sx
    from sparsecross.read import described
    from tests.hostile import assert_short

    folder = tmp_path.joinpath(*["d" * 120] * 3)
    folder.mkdir(parents=True)
    spec = sx.parse_spec({"label": {"column": "y"},
                          "features": [{"name": "f", "kind": "categorical", "column": "x"}]})
    names = ["first.parquet", "second.parquet", "third.parquet", "fourth.parquet"]
    for name in names:
        pq.write_table(pa.table({"x": pa.array([], pa.string()), "y": pa.array([], pa.int64())}), folder / name)
    paths = [folder / name for name in names]
    with pytest.raises(DataError) as info:
        sx.train(paths[:3], spec)
    msg = str(info.value)
    assert_short(msg)
    assert "[3 paths: " in msg and all(f"/{name}'" in msg for name in names[:3]), msg
    four = described(paths)
    assert four.startswith("[4 paths: ") and four.endswith("/third.parquet', ...]") and "fourth" not in four, four
    one = described([str(paths[0])])
    assert one.startswith("[1 path: ...") and one.endswith("/first.parquet']") and len(one) < 150, one
