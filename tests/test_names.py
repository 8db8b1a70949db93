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
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsecross as sx
import sparsecross.names as names_module
from sparsecross.export import model_bytes
from sparsecross.names import NameRecorder, record_names
from tests.reference.hashing_reference import categorical_key, cross_key, hashed_column

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


# ------------------------------------------------------------------ hashed crosses (issue 11, 6)
CROSS_BITS = 7
CROSS_SPEC = sx.parse_spec({
    "label": {"column": "y"},
    "hashing": {"bits": CROSS_BITS, "seed": 5},
    "features": [
        {"name": "device", "kind": "categorical", "column": "device"},
        {"name": "hour", "kind": "categorical", "column": "hour", "standalone": False, "missing": "skip"},
        {"name": "type", "kind": "categorical", "column": "type", "standalone": False},
        {"name": "rooms", "kind": "bucket", "column": "rooms", "boundaries": [2.0, 3.0, 4.0]},
        {"name": "floor", "kind": "bucket", "column": "rooms", "boundaries": [1.0], "standalone": False},
    ],
    "crosses": [{"features": ["device", "hour"]}, {"features": ["type", "rooms"]},
                {"features": ["rooms", "floor"]}],  # exact: no name recorded
})


def make_cross_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    device = [None if rng.random() < 0.03 else ["ios", "android", "web", "tv"][int(v)] for v in rng.integers(0, 4, n)]
    hour = [None if rng.random() < 0.05 else int(v) for v in rng.integers(0, 24, n)]
    rooms = [None if rng.random() < 0.05 else float(v) for v in rng.uniform(0, 6, n)]
    return pa.table({
        "device": pa.array(device, pa.string()), "hour": pa.array(hour, pa.int64()),
        "type": pa.array([["h", "flat", "loft"][int(v)] for v in rng.integers(0, 3, n)]),
        "rooms": pa.array(rooms, pa.float64()), "y": rng.integers(0, 2, n),
    })


def reference_cross_names(spec, table: pa.Table) -> dict[str, str]:
    """Brute force over every row: each standalone categorical value and each hashed cross's
    key (hash contract v1) with its readable parts; the smallest (owner, key) names a column,
    owners being the feature index, or len(features) + the output index of a cross."""
    seed, bits, H = spec.hashing.seed, spec.hashing.bits, spec.hashed_offset
    feats = {f.name: (i, f) for i, f in enumerate(spec.features)}
    rows = table.to_pylist()

    def part(f, v):  # (component key, text) of value v of feature f
        if f.kind == "categorical":
            text = "missing" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            return categorical_key(f.name, v, seed), f"{f.name}={text}"
        b = list(f.boundaries)
        if v is None:
            return len(b) + 1, f"{f.name}=missing"
        lid = sum(1 for x in b if x <= v)
        lo = "-inf" if lid == 0 else repr(b[lid - 1])
        hi = "inf" if lid == len(b) else repr(b[lid])
        return lid, f"{f.name}=[{lo},{hi})"

    entries: dict[int, set[tuple[int, int, str]]] = defaultdict(set)
    for r in rows:
        for fi, f in enumerate(spec.features):
            if f.kind == "categorical" and f.standalone:
                k, text = part(f, r[f.columns[0]])
                entries[hashed_column(k, bits, H)].add((fi, k, text))
        for c in spec.crosses:
            o = [out.name for out in spec.outputs].index(c.name)
            if spec.outputs[o].kind != 2:
                continue
            comps = [feats[n] for n in c.features]
            if any(f.missing == "skip" and r[f.columns[0]] is None for _, f in comps):
                continue
            ps = [part(f, r[f.columns[0]]) for _, f in comps]
            k = cross_key(c.name, [p[0] for p in ps], seed)
            entries[hashed_column(k, bits, H)].add((len(spec.features) + o, k, " x ".join(p[1] for p in ps)))
    out = {}
    for col, es in entries.items():
        _, _, text = min(es)
        out[str(col)] = text + (" (+more: hash collision)" if len({(a, b) for a, b, _ in es}) > 1 else "")
    return out


@pytest.mark.parametrize("batch_rows", [1, 13, 5000])
def test_cross_names_match_the_reference_whatever_the_batches_and_their_order(batch_rows):
    table = make_cross_table(900, 3)
    expected = reference_cross_names(CROSS_SPEC, table)
    crossed = [v for v in expected.values() if " x " in v]
    assert any("collision" in v for v in crossed) and any("collision" not in v for v in crossed)
    assert any("hour=" in v for v in crossed) and any("rooms=" in v and "type=" in v for v in crossed)
    assert not any("hour=missing" in v for v in crossed)  # missing = "skip": no cross emitted
    cols = CROSS_SPEC.hashed_offset + np.arange(1 << CROSS_BITS)
    batches = table.to_batches(max_chunksize=batch_rows)
    for order in (batches, random.Random(batch_rows).sample(batches, len(batches))):
        rec = NameRecorder(CROSS_SPEC)
        for b in order:
            rec.observe(b.set_column(0, "device", b.column(0).dictionary_encode()))
        assert rec.names_for(cols) == expected


def test_the_original_spec_names_its_cross_by_the_reference():
    """The first spec's hidden*city cross (a non-standalone categorical component)."""
    table = make_table(40, 6)
    rec = NameRecorder(SPEC)
    rec.observe(table)
    assert rec.names_for(all_columns()) == reference_cross_names(SPEC, table)


def test_train_names_crosses_in_its_own_pass_and_inspect_prints_them(tmp_path, monkeypatch, capsys):
    from sparsecross.cli import main

    table = make_cross_table(4000, 7)
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=900)

    def no_second_read(*_a, **_k):
        raise AssertionError("the data were read a second time for names")

    monkeypatch.setattr(names_module, "iter_record_batches", no_second_read)
    model = sx.train(tmp_path / "d.parquet", CROSS_SPEC, l1=0.0, names=1000)
    expected = reference_cross_names(CROSS_SPEC, table)
    assert model.stats["names"] and all(expected[c] == t for c, t in model.stats["names"].items())
    crossed = {c: t for c, t in model.stats["names"].items() if " x " in t}
    assert crossed
    sx.save_model(model, tmp_path / "m.scx")
    assert main(["inspect", str(tmp_path / "m.scx"), "--top", "100000"]) in (0, None)
    out = capsys.readouterr().out
    assert all(t in out for t in crossed.values())


def test_a_resumed_run_names_crosses_as_an_uninterrupted_one(tmp_path, monkeypatch):
    pq.write_table(make_cross_table(3000, 8), tmp_path / "d.parquet", row_group_size=500)
    opts = dict(l1=0.0, names=60, epochs=2, checkpoint_every=1000, batch_rows=500)
    full = sx.train(tmp_path / "d.parquet", CROSS_SPEC, **opts)
    assert any(" x " in t for t in full.stats["names"].values())
    train_module = importlib.import_module("sparsecross.train")
    real = train_module.train_batch
    calls = []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        sx.train(tmp_path / "d.parquet", CROSS_SPEC, checkpoint=tmp_path / "ckpt", **opts)
    monkeypatch.setattr(train_module, "train_batch", real)
    resumed = sx.train(tmp_path / "d.parquet", CROSS_SPEC, checkpoint=tmp_path / "ckpt", **opts)
    assert 0 < resumed.run["rows_processed"] < 6000
    assert resumed.stats["names"] == full.stats["names"]
    assert model_bytes(resumed) == model_bytes(full)


# ------------------------------------------------------------ crosses with categorical lists
LIST_BITS = 9
LIST_SPEC = sx.parse_spec({
    "label": {"column": "y"},
    "hashing": {"bits": LIST_BITS, "seed": 5},
    "features": [
        {"name": "tags", "kind": "categorical", "column": "tags"},
        {"name": "genre", "kind": "categorical", "column": "genre", "standalone": False, "missing": "skip"},
        {"name": "device", "kind": "categorical", "column": "device"},
        {"name": "rooms", "kind": "bucket", "column": "rooms", "boundaries": [2.0, 4.0], "standalone": False},
    ],
    "crosses": [{"features": ["tags", "device"]}, {"features": ["rooms", "tags"], "mode": "hashed"},
                {"features": ["genre", "tags"]}],
})


def make_list_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)

    def a_list(pool: int, most: int):
        if rng.random() < 0.05:
            return None
        return [None if rng.random() < 0.05 else f"t{int(v)}" for v in rng.integers(0, pool, int(rng.integers(0, most)))]

    return pa.table({
        "tags": pa.array([a_list(30, 6) for _ in range(n)], pa.list_(pa.string())),
        "genre": pa.array([a_list(5, 4) for _ in range(n)], pa.large_list(pa.string())),
        "device": pa.array([None if rng.random() < 0.05 else ["ios", "web"][int(v)] for v in rng.integers(0, 2, n)]),
        "rooms": pa.array([None if rng.random() < 0.05 else float(v) for v in rng.uniform(0, 6, n)]),
        "y": rng.integers(0, 2, n),
    })


def reference_list_names(spec, table: pa.Table) -> dict[str, str]:
    """As reference_cross_names, with list values: a list's distinct non-null elements (a null
    or empty list is missing); a cross takes every tuple of its lists' elements, sorted by
    (largest position, positions), the first 64."""
    import itertools

    seed, bits, H = spec.hashing.seed, spec.hashing.bits, spec.hashed_offset
    feats = {f.name: (i, f) for i, f in enumerate(spec.features)}

    def parts(f, v):  # [(component key, text)] of value v of feature f; [] when skipped
        if f.kind == "categorical":
            if isinstance(v, list):
                v = list(dict.fromkeys(e for e in v if e is not None))
            if v is None or v == []:
                return [] if f.missing == "skip" else [(categorical_key(f.name, None, seed), f"{f.name}=missing")]
            return [(categorical_key(f.name, e, seed), f"{f.name}={e}") for e in (v if isinstance(v, list) else [v])]
        b = list(f.boundaries)
        if v is None:
            return [(len(b) + 1, f"{f.name}=missing")]
        lid = sum(1 for x in b if x <= v)
        lo = "-inf" if lid == 0 else repr(b[lid - 1])
        hi = "inf" if lid == len(b) else repr(b[lid])
        return [(lid, f"{f.name}=[{lo},{hi})")]

    entries: dict[int, set[tuple[int, int, str]]] = defaultdict(set)
    for r in table.to_pylist():
        for fi, f in enumerate(spec.features):
            if f.kind == "categorical" and f.standalone:
                for k, text in parts(f, r[f.columns[0]]):
                    entries[hashed_column(k, bits, H)].add((fi, k, text))
        for c in spec.crosses:
            o = [out.name for out in spec.outputs].index(c.name)
            options = [parts(feats[n][1], r[feats[n][1].columns[0]]) for n in c.features]
            tuples = sorted(itertools.product(*[range(len(p)) for p in options]), key=lambda t: (max(t), t))
            for t in tuples[:64]:
                ps = [p[i] for p, i in zip(options, t)]
                k = cross_key(c.name, [p[0] for p in ps], seed)
                entries[hashed_column(k, bits, H)].add((len(spec.features) + o, k, " x ".join(p[1] for p in ps)))
    out = {}
    for col, es in entries.items():
        _, _, text = min(es)
        out[str(col)] = text + (" (+more: hash collision)" if len({(a, b) for a, b, _ in es}) > 1 else "")
    return out


@pytest.mark.parametrize("batch_rows", [1, 17, 5000])
def test_list_cross_names_match_the_reference_whatever_the_batches(batch_rows):
    """Crosses with a list (and with two lists) are named by their elements, with collisions
    flagged, whatever the batches and their order."""
    table = make_list_table(600, 11)
    expected = reference_list_names(LIST_SPEC, table)
    crossed = [v for v in expected.values() if " x " in v]
    assert any("tags=t" in v and "device=" in v for v in crossed)
    assert any("genre=t" in v and "tags=t" in v for v in crossed)
    assert any("tags=missing" in v for v in crossed) and not any("genre=missing" in v for v in crossed)
    assert any("collision" in v for v in crossed) and any("collision" not in v for v in crossed)
    cols = LIST_SPEC.hashed_offset + np.arange(1 << LIST_BITS)
    batches = table.to_batches(max_chunksize=batch_rows)
    for order in (batches, random.Random(batch_rows).sample(batches, len(batches))):
        rec = NameRecorder(LIST_SPEC)
        for b in order:
            rec.observe(b)
        assert rec.names_for(cols) == expected
    # every named column is one the featurizer hits, and every hashed column hit is named
    X = sx.featurize(table, LIST_SPEC)[0]
    assert {str(c) for c in np.unique(X.indices) if c >= LIST_SPEC.hashed_offset} == set(expected)


@pytest.mark.parametrize("case", ["null element", "skip"])
def test_the_missing_key_is_named_only_where_a_row_emits_it(case):
    """A null element inside a non-empty list is no feature, and a missing value under
    ``missing = "skip"`` emits nothing: neither may name (or collide on) the missing key's
    column.  Here a value shares that column, so a recorded missing key would show as a
    collision (or take the name)."""
    bits, seed = 6, 0
    missing = "skip" if case == "skip" else "bucket"
    spec = sx.parse_spec({"label": {"column": "y"}, "hashing": {"bits": bits, "seed": seed},
                          "features": [{"name": "t", "kind": "categorical", "column": "t", "missing": missing}]})
    target = hashed_column(categorical_key("t", None, seed), bits, spec.hashed_offset)
    v = next(f"v{k}" for k in range(100_000)
             if hashed_column(categorical_key("t", f"v{k}", seed), bits, spec.hashed_offset) == target)
    if case == "null element":
        t = pa.table({"t": pa.array([[v, None], [v]], pa.list_(pa.string())), "y": [1, 0]})
    else:
        t = pa.table({"t": pa.array([v, None], pa.string()), "y": [1, 0]})
    X = sx.featurize(t, spec)[0]
    assert X.indices.tolist() == ([target, target] if case == "null element" else [target])  # the value only
    rec = NameRecorder(spec)
    rec.observe(t)
    assert rec.names_for(np.array([target])) == {str(target): f"t={v}"}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2**64 - 1, 2**63, 12345, 2**32 + 7]) | st.integers(0, 2**64 - 1),
                max_size=300),
       st.integers(1, 400))
def test_unique_first_is_np_unique(pool: list[int], n: int) -> None:
    """The recorder's distinct keys of a batch: ``np.unique(keys, return_index=True)``, on keys
    repeated many times (few distinct) and many distinct ones (the set grows past its start)."""
    from sparsecross._kernels.distinct import unique_first

    rng = np.random.default_rng(n)
    keys = np.array(pool, dtype=np.uint64)[rng.integers(0, len(pool), n)] if pool else np.zeros(0, np.uint64)
    got_keys, got_first = unique_first(keys)
    want_keys, want_first = np.unique(keys, return_index=True)
    assert got_keys.dtype == np.uint64 and got_first.dtype == np.int64
    np.testing.assert_array_equal(got_keys, want_keys)
    np.testing.assert_array_equal(got_first, want_first)
