"""Seeded, cached benchmark datasets (generated once into ``benchmarks/cache/``).

Everything here is deterministic: the same seed and sizes give the same files.  Files are
written to a temporary name and renamed, so an interrupted run never leaves a half file
behind that a later run would trust.

Datasets
--------
* ``synthetic_train(rows)``: rows ``[0, rows)`` of the synthetic world ``SEED``
  (``sparsecross.generate``); the 2M file is a prefix of the 10M file.
* ``synthetic_test(rows)``: rows ``[TEST_FIRST_ROW, TEST_FIRST_ROW + rows)`` of the *same*
  world (``first_row=``), i.e. disjoint from every training file here (they stop at 10M).
* ``california()``: a seeded 80/20 shuffled split of
  ``../shared/data/california_housing/housing.parquet`` (the mlcc split lacks
  ``ocean_proximity``, which ``california.toml`` uses, and its train file is sorted).
* ``csr(parquet, spec)``: the featurized CSR (int64 indptr/indices, float32 data, float64 y)
  of a Parquet file under a spec, as ``.npy`` files (memory-mappable).
* ``vw_text(parquet, spec)``: the same rows as Vowpal Wabbit text (``1 |f 123 4567``), one
  example per line, global column ids as integer feature names.

Run ``python benchmarks/workloads.py [--quick]`` to build the cache ahead of time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
CACHE = BENCH / "cache"
SPECS = ROOT / "data" / "specs"
BENCH_SPEC = SPECS / "synthetic_bench.toml"
#: issue 13: the bench spec plus a high-cardinality hashed cross (user x hour)
BENCH_HASHED_SPEC = SPECS / "synthetic_bench_hashed.toml"
CALIFORNIA_SPEC = SPECS / "california.toml"
CALIFORNIA_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "california_housing" / "housing.parquet"

SEED = 0
#: First global row of every synthetic test set: after the largest training file.
TEST_FIRST_ROW = 10_000_000
CALIFORNIA_SPLIT_SEED = 0
CALIFORNIA_TEST_FRACTION = 0.2

#: Sizes of the default suite and of the ``--quick`` smoke run.
FULL = {"train": [2_000_000, 10_000_000], "test": 1_000_000}
QUICK = {"train": [200_000, 500_000], "test": 200_000}

if str(ROOT) not in sys.path:  # running from a checkout without installing
    sys.path.insert(0, str(ROOT))


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


# ------------------------------------------------------------------ synthetic
def synthetic_train(rows: int, seed: int = SEED) -> Path:
    """Rows [0, rows) of world ``seed`` (cached)."""
    from sparsecross import generate

    path = CACHE / f"synthetic_train_{_label(rows)}_seed{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        generate(path, rows=rows, seed=seed)
    return path


#: issue 13 (state budget): rows of the fresh-id stream, and its hashing bits (2**31 columns:
#: uint32 keys, 12-byte slots; 2M random ids collide a thousand times at most).
FRESH_ID_ROWS = 2_000_000
FRESH_ID_BITS = 31


def fresh_id_stream(rows: int = FRESH_ID_ROWS, seed: int = SEED) -> Path:
    """The first ``rows`` synthetic training rows plus ``uid``: a new random 64-bit id on every
    row (seeded), so that the state of a model with a ``uid`` feature grows with every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = CACHE / f"synthetic_fresh_ids_{_label(rows)}_seed{seed}.parquet"
    if not path.exists():
        table = pq.read_table(synthetic_train(rows, seed))
        uid = np.random.default_rng(seed + 13).integers(-(1 << 63), (1 << 63) - 1, table.num_rows, dtype=np.int64)
        tmp = _tmp(path)
        pq.write_table(table.append_column("uid", pa.array(uid)), tmp, row_group_size=100_000)
        os.replace(tmp, path)
    return path


def fresh_id_spec() -> Any:
    """The bench spec plus a hashed categorical ``uid`` (FRESH_ID_BITS hashing bits)."""
    import tomllib

    import sparsecross

    d = tomllib.loads(BENCH_SPEC.read_text())
    d["hashing"]["bits"] = FRESH_ID_BITS
    d["features"].append({"name": "uid", "kind": "categorical", "column": "uid"})
    return sparsecross.parse_spec(d)


def synthetic_test(rows: int, seed: int = SEED, first_row: int = TEST_FIRST_ROW) -> Path:
    """Rows [first_row, first_row + rows) of world ``seed``: a test set from the same world."""
    from sparsecross import generate

    path = CACHE / f"synthetic_test_{_label(rows)}_from{_label(first_row)}_seed{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        generate(path, rows=rows, seed=seed, first_row=first_row)
    return path


# ------------------------------------------------------------------ feature kinds
#: Start of the derived ``ts`` column (UTC): row i -> KINDS_EPOCH + (i % 365) days + hour_i h
#: + (i * 7919) % 3600 s, so its UTC hour equals the generated ``hour`` column.
KINDS_EPOCH = "2026-01-01T00:00:00"
#: Tags of the derived ``tags`` list<string> column, picked deterministically per row.
KINDS_TAGS = ("sport", "news", "music", "travel", "food", "games", "tech", "auto")

_LAT_BAND = {"kind": "lat", "column": "latitude", "resolution_arcmin": 60.0}
_INCOME_Q10 = {"kind": "bucket", "column": "income", "quantiles": 10}
#: One benchmark spec per feature kind (``featurize_kind/<size>/<kind>``): the feature alone, or
#: for crosses the cross alone (its components ``standalone = false``).
KIND_FEATURES: dict[str, dict[str, Any]] = {
    "geo": {"features": [{"name": "cell", "kind": "geo", "lat": "latitude", "lon": "longitude",
                          "resolution_arcmin": 1.0}]},
    "lat_band": {"features": [{"name": "lat", **_LAT_BAND}]},
    "bucket_q10": {"features": [{"name": "income_q", **_INCOME_Q10}]},
    "categorical_str": {"features": [{"name": "device", "kind": "categorical", "column": "device"}]},
    "categorical_int": {"features": [{"name": "user", "kind": "categorical", "column": "user_id"}]},
    "numeric_log1p": {"features": [{"name": "income_log", "kind": "numeric", "column": "income",
                                    "transform": "log1p"}]},
    "time_hour": {"features": [{"name": "hour", "kind": "time", "column": "ts", "part": "hour"}]},
    "time_hour_tz": {"features": [{"name": "hour_paris", "kind": "time", "column": "ts", "part": "hour",
                                   "timezone": "Europe/Paris"}]},
    "categorical_list": {"features": [{"name": "tags", "kind": "categorical", "column": "tags"}]},
    "cross_exact": {"features": [{"name": "lat", **_LAT_BAND, "standalone": False},
                                 {"name": "income_q", **_INCOME_Q10, "standalone": False}],
                    "crosses": [{"features": ["lat", "income_q"], "mode": "exact"}]},
    "cross_hashed": {"features": [{"name": "lat", **_LAT_BAND, "standalone": False},
                                  {"name": "income_q", **_INCOME_Q10, "standalone": False}],
                     "crosses": [{"features": ["lat", "income_q"], "mode": "hashed"}]},
    "cross_hashed_cat": {"features": [{"name": "device", "kind": "categorical", "column": "device",
                                       "standalone": False},
                                      {"name": "user", "kind": "categorical", "column": "user_id",
                                       "standalone": False}],
                         "crosses": [{"features": ["device", "user"]}]},
}


def kinds_table(rows: int, seed: int = SEED) -> Path:
    """``synthetic_train(rows)`` plus two derived columns (cached, deterministic per row):
    ``ts`` timestamp[us, UTC-naive] whose hour is the ``hour`` column, and ``tags``
    list<string> of 1-3 distinct tags (a row-hash-picked tag, one from the device and hour,
    a third for a third of the rows).  Same row groups as the source file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = synthetic_train(rows, seed)
    path = CACHE / f"synthetic_kinds_{_label(rows)}_seed{seed}.parquet"
    if path.exists():
        return path
    f = pq.ParquetFile(src)
    tmp = _tmp(path)
    epoch = np.datetime64(KINDS_EPOCH, "us")
    tags = np.array(KINDS_TAGS, dtype=object)
    writer = None
    start = 0
    try:
        for g in range(f.num_row_groups):
            t = f.read_row_group(g)
            n = t.num_rows
            i = np.arange(start, start + n, dtype=np.int64)
            hour = t.column("hour").to_numpy().astype(np.int64)
            sec = (i % 365) * 86_400 + hour * 3600 + (i * 7919) % 3600
            ts = pa.array(epoch + sec.astype("timedelta64[s]").astype("timedelta64[us]"), pa.timestamp("us"))
            h = (i * 0x9E3779B1) % 2**32
            a = h % len(KINDS_TAGS)
            dev = np.asarray(t.column("device").to_pylist(), dtype=object)
            b = (np.where(dev == "ios", 1, np.where(dev == "android", 2, 3)) + hour) % len(KINDS_TAGS)
            c = (h >> 8) % len(KINDS_TAGS)
            third = (h >> 16) % 3 == 0
            lists = []
            for k in range(n):
                row = [tags[a[k]]]
                if b[k] != a[k]:
                    row.append(tags[b[k]])
                if third[k] and c[k] != a[k] and c[k] != b[k]:
                    row.append(tags[c[k]])
                lists.append(row)
            t = t.append_column("ts", ts).append_column("tags", pa.array(lists, pa.list_(pa.string())))
            if writer is None:
                writer = pq.ParquetWriter(tmp, t.schema)
            writer.write_table(t, row_group_size=n)
            start += n
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    return path


def kind_spec(kind: str, train_source: Path | None = None) -> Any:
    """The (resolved: quantile buckets from ``train_source``) spec of one ``KIND_FEATURES`` entry."""
    import sparsecross

    d = {"version": 1, "label": {"column": "label"}, "hashing": {"bits": 22, "seed": 0}, **KIND_FEATURES[kind]}
    spec = sparsecross.parse_spec(d)
    return sparsecross.resolve_spec(train_source, spec) if train_source is not None else spec


def shuffle_warmup_file(seed: int = SEED) -> Path:
    """20k generated rows in 4 row groups: an untimed shuffled training run over it loads the
    shuffle path's kernels before a timed one (``tasks.task_train_scx``)."""
    from sparsecross import generate

    path = CACHE / f"shuffle_warmup_20k_rg5k_seed{seed}.parquet"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = _tmp(path)
        generate(tmp, rows=20_000, seed=seed, row_group_size=5_000)
        os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ California
def california(seed: int = CALIFORNIA_SPLIT_SEED) -> tuple[Path, Path]:
    """(train, test) Parquet files: a seeded shuffle of housing.parquet, 80/20."""
    import pyarrow.parquet as pq

    train = CACHE / f"california_train_seed{seed}.parquet"
    test = CACHE / f"california_test_seed{seed}.parquet"
    if not (train.exists() and test.exists()):
        CACHE.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(CALIFORNIA_SOURCE)
        perm = np.random.default_rng(seed).permutation(table.num_rows)
        n_test = int(round(table.num_rows * CALIFORNIA_TEST_FRACTION))
        for path, idx in ((test, perm[:n_test]), (train, perm[n_test:])):
            tmp = _tmp(path)
            pq.write_table(table.take(idx), tmp)
            os.replace(tmp, path)
    return train, test


# ------------------------------------------------------------------ featurized
def resolved_spec(spec_path: Path, train_source: Path) -> Any:
    """The spec with quantile buckets resolved from the *training* file (as train() does)."""
    import sparsecross

    return sparsecross.resolve_spec(train_source, sparsecross.load_spec(spec_path))


def _csr_dir(parquet: Path, spec: Any) -> Path:
    return CACHE / "csr" / f"{parquet.stem}__{spec.sha256[:12]}"


def csr(parquet: Path, spec: Any, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """Featurized rows of ``parquet`` under (resolved) ``spec``: indptr, indices, data, y."""
    import sparsecross

    d = _csr_dir(parquet, spec)
    names = ("indptr", "indices", "data", "y")
    if not (d / "done").exists():
        d.mkdir(parents=True, exist_ok=True)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in names}
        offset = 0
        for b in sparsecross.iter_batches(parquet, spec):
            parts["indptr"].append(b.X.indptr[1:] + offset if parts["indptr"] else b.X.indptr + offset)
            offset += int(b.X.indptr[-1])
            parts["indices"].append(b.X.indices)
            parts["data"].append(b.X.data)
            parts["y"].append(b.y)
        for k in names:
            arr = np.concatenate(parts[k])
            parts[k] = []
            tmp = d / f"{k}.tmp-{os.getpid()}.npy"
            np.save(tmp, arr)
            os.replace(tmp, d / f"{k}.npy")
        (d / "done").write_text(json.dumps({"source": str(parquet), "spec_sha256": spec.sha256}))
    return {k: np.load(d / f"{k}.npy", mmap_mode="r" if mmap else None) for k in names}


def vw_text(parquet: Path, spec: Any) -> Path:
    """The featurized rows as Vowpal Wabbit text (cached): ``1 |f 123 4567`` / ``-1 |f ...``.

    Feature names are our global column ids; a value other than 1 (a merged duplicate) is
    written as ``id:value``.  VW uses an all-digit name as the index itself plus the
    namespace hash, masked to ``-b`` bits (checked in ``tasks.py``)."""
    from bench_kernels import format_vw_chunk

    path = _csr_dir(parquet, spec).with_suffix(".vw")
    if path.exists():
        return path
    X = csr(parquet, spec, mmap=True)
    indptr, indices, data, y = X["indptr"], X["indices"], X["data"], X["y"]
    d = np.asarray(data)
    if not np.array_equal(d, np.round(d)):
        raise ValueError("vw_text expects integer feature values (counts)")
    tmp = _tmp(path)
    n = len(y)
    step = 1 << 20
    with open(tmp, "wb") as fh:
        for a in range(0, n, step):
            b = min(n, a + step)
            ip = np.asarray(indptr[a:b + 1])
            buf = format_vw_chunk(ip - ip[0], np.asarray(indices[ip[0]:ip[-1]]),
                                  np.asarray(data[ip[0]:ip[-1]]), np.asarray(y[a:b]))
            fh.write(buf.tobytes())
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ manifest
def file_digest(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file (for the results metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            h.update(chunk)
    return {"path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
            "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def prepare(quick: bool = False, log: Any = print) -> dict[str, Any]:
    """Build every cached dataset of a suite; returns paths and digests."""
    sizes = QUICK if quick else FULL
    t0 = time.perf_counter()
    out: dict[str, Any] = {"seed": SEED, "test_first_row": TEST_FIRST_ROW,
                           "california_split_seed": CALIFORNIA_SPLIT_SEED}
    train = {rows: synthetic_train(rows) for rows in sizes["train"]}
    test = synthetic_test(sizes["test"])
    cal_train, cal_test = california()
    kinds = kinds_table(min(sizes["train"]))
    log(f"parquet ready ({time.perf_counter() - t0:.1f} s)")
    import sparsecross

    spec = sparsecross.load_spec(BENCH_SPEC)
    for p in [*train.values(), test]:
        csr(p, spec, mmap=True)
        vw_text(p, spec)
    cal_spec = resolved_spec(CALIFORNIA_SPEC, cal_train)
    for p in (cal_train, cal_test):
        csr(p, cal_spec, mmap=True)
        vw_text(p, cal_spec)
    log(f"csr + vw text ready ({time.perf_counter() - t0:.1f} s)")
    out["files"] = {
        **{f"synthetic_train_{_label(r)}": file_digest(p) for r, p in train.items()},
        f"synthetic_test_{_label(sizes['test'])}": file_digest(test),
        "california_train": file_digest(cal_train),
        "california_test": file_digest(cal_test),
        f"synthetic_kinds_{_label(min(sizes['train']))}": file_digest(kinds),
    }
    out["prepare_seconds"] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(BENCH))
    print(json.dumps(prepare(args.quick), indent=1))
