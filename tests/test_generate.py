"""Tests of the synthetic data generator (sparsecross.generate)."""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparsecross.generate import generate

generate_module = importlib.import_module("sparsecross.generate")  # the package's ``generate`` is the function

ROWS = 200_000
ROW_GROUP = 60_000
EXPECTED_SCHEMA = [
    ("latitude", pa.float64()),
    ("longitude", pa.float64()),
    ("device", pa.string()),
    ("user_id", pa.int64()),
    ("age", pa.float64()),
    ("income", pa.float64()),
    ("hour", pa.int64()),
    ("label", pa.int8()),
]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """One 200k-row file (seed 7) shared by the statistical tests."""
    path = tmp_path_factory.mktemp("gen") / "big.parquet"
    generate(path, rows=ROWS, seed=7, row_group_size=ROW_GROUP)
    return pq.read_table(path)


# ----------------------------------------------------------------------------------------
# Independent re-derivation of the documented hot-cell effect (pure Python integers).
# ----------------------------------------------------------------------------------------
_M64 = (1 << 64) - 1


def _fmix64(x: int) -> int:
    x &= _M64
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _M64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _M64
    x ^= x >> 33
    return x


def _hot_sign(cell: int, seed: int) -> int:
    """+1 / -1 for a hot cell, 0 for a cold one (module docstring, 'Planted model')."""
    cell_salt = _fmix64(seed ^ int.from_bytes(b"cell\0\0\0\0", "big"))
    h = _fmix64(cell ^ cell_salt)
    if (h >> 11) * 2.0**-53 >= 0.02:
        return 0
    return 1 if (h >> 10) & 1 else -1


def _cells(table: pa.Table) -> np.ndarray:
    """Contract v1 geo id at resolution 1 arc-minute."""
    lat = table["latitude"].to_numpy()
    lon = table["longitude"].to_numpy()
    i = np.clip(np.floor((lat + 90.0) * 60.0), 0, 10799).astype(np.int64)
    j = np.clip(np.floor((lon + 180.0) * 60.0), 0, 21599).astype(np.int64)
    return i * 21600 + j


# ----------------------------------------------------------------------------------------
# Determinism and file layout
# ----------------------------------------------------------------------------------------


def test_byte_identical_and_seed_dependent(tmp_path):
    a = generate(tmp_path / "a.parquet", rows=30_000, seed=3, row_group_size=7_000)
    b = generate(tmp_path / "b.parquet", rows=30_000, seed=3, row_group_size=7_000)
    c = generate(tmp_path / "c.parquet", rows=30_000, seed=4, row_group_size=7_000)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_rows_depend_only_on_seed_and_position(tmp_path):
    def table(name: str, rows: int, row_group_size: int) -> pa.Table:
        return pq.read_table(generate(tmp_path / name, rows, seed=5, row_group_size=row_group_size))

    ref = table("ref.parquet", 70_000, 70_000)
    other_groups = table("rg.parquet", 70_000, 9_999)
    prefix = table("prefix.parquet", 12_345, 1_000)
    assert other_groups.equals(ref)
    assert prefix.equals(ref.slice(0, 12_345))


def test_schema_row_count_and_row_groups(tmp_path):
    path = generate(tmp_path / "s.parquet", rows=10_001, seed=0, row_group_size=2_500)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 10_001
    assert meta.num_row_groups == math.ceil(10_001 / 2_500)
    schema = pq.read_schema(path)
    assert [(f.name, f.type) for f in schema] == EXPECTED_SCHEMA


def test_single_row(tmp_path):
    table = pq.read_table(generate(tmp_path / "one.parquet", rows=1))
    assert table.num_rows == 1


def test_progress_reports_cumulative_rows(tmp_path):
    seen: list[int] = []
    generate(tmp_path / "p.parquet", rows=25_000, row_group_size=10_000, progress=seen.append)
    assert seen == [10_000, 20_000, 25_000]


# ----------------------------------------------------------------------------------------
# Content
# ----------------------------------------------------------------------------------------


def test_null_fractions(big):
    assert 0.04 < big["age"].null_count / ROWS < 0.06
    assert 0.02 < big["income"].null_count / ROWS < 0.04
    for name in ("latitude", "longitude", "device", "user_id", "hour", "label"):
        assert big[name].null_count == 0, name


def test_value_ranges(big):
    lat = big["latitude"].to_numpy()
    lon = big["longitude"].to_numpy()
    assert np.isfinite(lat).all() and np.isfinite(lon).all()
    assert lat.min() >= -90.0 and lat.max() <= 90.0
    assert lon.min() >= -180.0 and lon.max() <= 180.0
    age = big["age"].drop_null().to_numpy()
    assert age.min() >= 18.0 and age.max() <= 90.0
    assert (big["income"].drop_null().to_numpy() > 0).all()
    hour = big["hour"].to_numpy()
    assert hour.min() >= 0 and hour.max() <= 23 and len(np.unique(hour)) == 24
    assert set(np.unique(big["label"].to_numpy()).tolist()) == {0, 1}
    devices = set(big["device"].unique().to_pylist())
    assert devices == {"android", "ios", "desktop", "tablet", "other"}
    uid = big["user_id"].to_numpy()
    assert uid.min() >= 0 and uid.max() < 2**24
    assert len(np.unique(uid)) > 10_000  # high cardinality


def test_positive_rate(big):
    assert 0.15 < big["label"].to_numpy().mean() < 0.35


def test_geography_is_clustered_with_background(big):
    cells = _cells(big)
    # Clusters: many rows share arc-minute cells; the busiest cell holds dozens of rows.
    _, counts = np.unique(cells, return_counts=True)
    assert len(counts) < 0.8 * ROWS
    assert counts.max() >= 20
    # Background: both hemispheres and the polar caps are reached.
    lat = big["latitude"].to_numpy()
    assert (lat < -60).any() and (lat > 75).any()


def test_planted_hot_cells_drive_the_label(big):
    cells = _cells(big)
    label = big["label"].to_numpy()
    uniq, inverse = np.unique(cells, return_inverse=True)
    sign = np.array([_hot_sign(int(c), 7) for c in uniq])[inverse]
    hot_pos, hot_neg, cold = sign > 0, sign < 0, sign == 0
    # About 2 % of the (row-weighted) cells are hot.
    assert 0.01 < (hot_pos | hot_neg).mean() < 0.04
    base = label[cold].mean()
    assert label[hot_pos].mean() > base + 0.3
    assert label[hot_neg].mean() < base - 0.12


# ----------------------------------------------------------------------------------------
# File handling and validation
# ----------------------------------------------------------------------------------------


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(path, rows=10)
    assert path.read_bytes() == b"keep me"
    generate(path, rows=10, overwrite=True)
    assert pq.read_table(path).num_rows == 10


def test_atomic_write_leaves_no_temporary(tmp_path):
    path = generate(str(tmp_path / "ok.parquet"), rows=1_000)
    assert path == tmp_path / "ok.parquet"
    assert sorted(os.listdir(tmp_path)) == ["ok.parquet"]


def test_failure_removes_temporary_and_writes_nothing(tmp_path):
    def boom(done: int) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        generate(tmp_path / "fail.parquet", rows=5_000, row_group_size=1_000, progress=boom)
    assert os.listdir(tmp_path) == []


def test_directory_output_rejected(tmp_path):
    with pytest.raises(IsADirectoryError):
        generate(tmp_path, rows=10, overwrite=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": 0},
        {"rows": -5},
        {"rows": 1.5},
        {"rows": True},
        {"rows": "10"},
        {"seed": -1},
        {"seed": 2**64},
        {"seed": 1.0},
        {"row_group_size": 0},
        {"row_group_size": None},
        {"progress": "not callable"},
    ],
)
def test_invalid_arguments(tmp_path, kwargs):
    args = {"rows": 10, **kwargs}
    with pytest.raises(ValueError):
        generate(tmp_path / "bad.parquet", **args)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rows": 10**4000}, r"rows must be in \[1, 9223372036854775807\], got 1000.*\(4001 digits\)"),
        ({"rows": 2**63}, r"rows must be in \[1, 9223372036854775807\]"),
        ({"first_row": 2**63}, r"first_row must be in \[0, 9223372036854775806\]"),
        ({"first_row": 2**63 - 5}, r"first_row \+ rows must be at most 9223372036854775807"),
        ({"row_group_size": 2**31}, r"row_group_size must be in \[1, 2147483647\]"),
        ({"row_group_size": 10**4000}, r"row_group_size must be in \[1, 2147483647\]"),
    ],
    ids=["rows-4001-digits", "rows-2^63", "first_row-2^63", "first_row+rows", "row_group-2^31",
         "row_group-4001-digits"],
)
def test_impossible_row_counts_are_refused_before_any_row(tmp_path, monkeypatch, kwargs, message):
    """A 4,001-digit ``rows`` was taken: generate() began writing rows it could never finish
    (``sparsecross generate --rows <4,000 digits>`` hung).  Row numbers are int64 (Parquet's
    row counts), a row group is one Arrow table of at most 2**31 - 1 rows: past that, refused
    before the first row is made."""

    def no_rows(*args, **kw):
        raise AssertionError("rows were generated for an impossible request")

    monkeypatch.setattr(generate_module, "_rows", no_rows)
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "bad.parquet", **{"rows": 10, **kwargs})
    assert os.listdir(tmp_path) == []
