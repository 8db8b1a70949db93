"""Speed of the kernels that sort, at realistic sizes: ``unique_first`` (distinct keys of a batch),
``list_distinct`` and ``merge_entries`` (categorical lists), and fused scoring
(``predict_proba`` -> ``score_features``) of rows longer than ``SHORT_ROW``.

Run it against two trees to compare (e.g. before and after a change to the kernels' sorts)::

    NUMBA_CACHE_DIR=/tmp/c1 PYTHONPATH=<tree> python benchmarks/bench_sorts.py [--repeat 7] [--json out.json]

Prints the median (and min, max) wall time of ``--repeat`` runs of each case, after one
untimed run (compilation, or loading from Numba's cache).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa


def _time(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs), "runs_s": runs}


def unique_first_cases(rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    from sparsecross._kernels.distinct import unique_first

    cases = {}
    n = 1_000_000
    for distinct in (1_000, 100_000, 1_000_000):
        pool = rng.integers(0, 2**64, distinct, dtype=np.uint64)
        keys = pool[rng.integers(0, distinct, n)] if distinct < n else rng.permutation(pool)
        cases[f"unique_first n=1M distinct={distinct:,}"] = lambda keys=keys: unique_first(keys)
    return cases


def list_cases(rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    from sparsecross._kernels.lists import list_distinct, merge_entries

    cases = {}
    for rows, length, vocab in ((50_000, 40, 30), (2_000, 1_000, 500)):
        offsets = np.arange(rows + 1, dtype=np.int64) * length
        keys = rng.integers(0, 2**64, vocab, dtype=np.uint64)[rng.integers(0, vocab, rows * length)]
        miss = (rng.random(rows * length) < 0.05).astype(np.uint8)
        cases[f"list_distinct rows={rows:,} len={length}"] = (
            lambda o=offsets, k=keys, m=miss: list_distinct(o, k, m))
    rows, base, extra = 100_000, 10, 40
    indptr = np.arange(rows + 1, dtype=np.int64) * base
    indices = np.sort(rng.integers(0, 1 << 20, (rows, base)), axis=1).ravel().astype(np.int64)
    data = np.ones(rows * base, dtype=np.float32)
    erows = np.repeat(np.arange(rows, dtype=np.int64), extra)
    ecols = rng.integers(0, 1 << 20, rows * extra).astype(np.int64)
    cases[f"merge_entries rows={rows:,} entries/row={base}+{extra}"] = (
        lambda: merge_entries(indptr, indices, data, erows, ecols))
    return cases


def scoring_cases(rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    import sparsecross as sx
    from sparsecross.featurize import featurize_features
    from sparsecross.predict import predict_proba

    cases = {}
    rows = 100_000
    for width in (48, 200):
        spec = sx.parse_spec({
            "label": {"column": "y"}, "hashing": {"bits": 22},
            "features": [{"name": f"c{i}", "kind": "categorical", "column": f"c{i}"} for i in range(width)],
        })
        table = pa.table({"y": rng.integers(0, 2, rows),
                          **{f"c{i}": rng.integers(0, 5_000, rows) for i in range(width)}})
        used = np.unique(featurize_features(spec, table.slice(0, 20_000)).indices).astype(np.uint64)
        model = sx.SparseModel(used, rng.normal(0, 1, len(used)).astype(np.float32), 0.1, spec)
        cases[f"predict_proba rows={rows:,} outputs/row={width}"] = (
            lambda model=model, table=table: predict_proba(model, table))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    for make in (unique_first_cases, list_cases, scoring_cases):
        for name, fn in make(rng).items():
            results[name] = _time(fn, args.repeat)
            r = results[name]
            print(f"{name:55s} median {r['median_s'] * 1e3:9.2f} ms  (min {r['min_s'] * 1e3:.2f}, "
                  f"max {r['max_s'] * 1e3:.2f})", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
