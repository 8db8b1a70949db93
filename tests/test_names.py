"""Names of hashed columns, recorded in the training pass (issue 'Speed', item 1), against a
brute-force reference over every row."""

from __future__ import annotations

import importlib
import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
import sparsecross.names as names_module
from sparsecross.export import model_bytes
from sparsecross.names import NameRecorder, record_names
from tests.reference.hashing_reference import categorical_key, hashed_column

BITS = 6  # 64 hashed columns: collisions within and across features are certain

SPEC = sx.parse_spec({
    "label": {"column": "y"},
    "hashing": {"bits": BITS, "seed": 3},
    "features": [
        {"name": "city", "kind": "categorical", "column": "city"},
        {"name": "shop", "kind": "categorical", "column": "shop"},
        {"name": "flag", "kind": "categorical", "column": "flag"},
        {"name": "hidden", "kind": "categorical", "column": "hidden", "standalone": False},
        {"name": "x", "kind": "bucket", "column": "x", "boundaries": [0.0]},
    ],
    "crosses": [{"features": ["hidden", "city"]}],
})


def make_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    city = [None if rng.random() < 0.05 else f"c{int(v)}" for v in rng.zipf(1.5, n) % 300]
    shop = [None if rng.random() < 0.05 else int(v) for v in rng.integers(-50, 400, n)]
    flag = [bool(v) for v in rng.integers(0, 2, n)]
    return pa.table({
        "city": pa.array(city, pa.string()), "shop": pa.array(shop, pa.int64()), "flag": flag,
        "hidden": pa.array([f"h{int(v)}" for v in rng.integers(0, 9, n)]),
        "x": rng.normal(size=n), "y": rng.integers(0, 2, n),
    })


def reference_names(table: pa.Table) -> dict[str, str]:
    """Every hashed column hit by a standalone categorical: the smallest (feature index, full
    key) entry names it; two different entries make a collision."""
    seed, H = SPEC.hashing.seed, SPEC.hashed_offset
    entries: dict[int, set[tuple[int, int, str]]] = defaultdict(set)
    for fi, f in enumerate(SPEC.features):
        if f.kind != "categorical" or not f.standalone:
            continue
        for v in table.column(f.columns[0]).to_pylist():
            key = categorical_key(f.name, v, seed)
            text = "missing" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            entries[hashed_column(key, BITS, H)].add((fi, key, f"{f.name}={text}"))
    out = {}
    for col, es in entries.items():
        fi, key, text = min(es)
        out[str(col)] = text + (" (+more: hash collision)" if len({(a, b) for a, b, _ in es}) > 1 else "")
    return out


def all_columns() -> np.ndarray:
    return SPEC.hashed_offset + np.arange(1 << BITS)


@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_names_match_the_reference_whatever_the_batches_and_their_order(batch_rows):
    table = make_table(1500, 1)
    expected = reference_names(table)
    assert any("collision" in v for v in expected.values())
    batches = table.to_batches(max_chunksize=batch_rows)
    for order in (batches, random.Random(batch_rows).sample(batches, len(batches))):
        rec = NameRecorder(SPEC)
        for b in order:
            # strings arrive dictionary-encoded from Parquet, as the reader gives them
            b = b.set_column(0, "city", b.column(0).dictionary_encode())
            rec.observe(b)
        assert rec.names_for(all_columns()) == expected


def test_train_names_weights_in_its_own_pass(tmp_path, monkeypatch):
    pq.write_table(make_table(3000, 2), tmp_path / "d.parquet", row_group_size=700)
    second = sx.train(tmp_path / "d.parquet", SPEC, l1=0.0)
    record_names(second, tmp_path / "d.parquet", top=40)

    def no_second_read(*_a, **_k):
        raise AssertionError("the data were read a second time for names")

    monkeypatch.setattr(names_module, "iter_record_batches", no_second_read)
    model = sx.train(tmp_path / "d.parquet", SPEC, l1=0.0, names=40)
    assert model.stats["names"] == second.stats["names"]
    assert len(model.stats["names"]) == 40
    expected = reference_names(pq.read_table(tmp_path / "d.parquet"))
    assert all(expected[c] == t for c, t in model.stats["names"].items())


@pytest.mark.parametrize("crash_at_batch", [4, 9], ids=["first epoch", "second epoch"])
def test_a_resumed_run_names_as_an_uninterrupted_one(tmp_path, monkeypatch, crash_at_batch):
    """A run resumed mid-epoch reads only the rows before its checkpoint to complete the names,
    and ends with the same model bytes as an uninterrupted run."""
    pq.write_table(make_table(3000, 4), tmp_path / "d.parquet", row_group_size=500)
    opts = dict(l1=0.0, names=30, epochs=2, checkpoint_every=1000, batch_rows=500)
    full = sx.train(tmp_path / "d.parquet", SPEC, **opts)
    train_module = importlib.import_module("sparsecross.train")
    real = train_module.train_batch
    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at_batch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        sx.train(tmp_path / "d.parquet", SPEC, checkpoint=tmp_path / "ckpt", **opts)
    monkeypatch.setattr(train_module, "train_batch", real)
    resumed = sx.train(tmp_path / "d.parquet", SPEC, checkpoint=tmp_path / "ckpt", **opts)
    assert 0 < resumed.run["rows_processed"] < 6000  # it did resume
    assert resumed.stats["names"] == full.stats["names"]
    assert model_bytes(resumed) == model_bytes(full)
