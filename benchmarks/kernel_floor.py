"""Is ``ftrl_pass`` waiting on memory or computing?  The kernel on the real keys against the
same rows with their keys folded into a cache-resident range.

    python benchmarks/kernel_floor.py [--sizes 2m,10m] [--repeats 5] [--fold 4096,65536]
        [--json benchmarks/results/kernel_floor.json]

For each size, in one process: the cached featurized rows of ``workloads.csr`` (the benchmark
suite's synthetic training file and ``data/specs/synthetic_bench.toml``), a presized state table
touched before the clock starts (no growth, no first-touch page faults), ``ftrl_pass`` over
chunks of 65,536 rows as training calls it.  Then the same rows with every key replaced by
``key % fold``: the table lookups hit a few thousand slots that stay in the L1/L2 caches, so
that time is the kernel's compute floor (hashing, probing, square roots, exp/log, branches).
A third variant grows the table as training does (``train_batch`` from 1,024 slots with a
``GrowthPlan``; allocation, fills and rehashes timed), in the same warm process: its excess over
the presized pass is what growing costs once the machine's pages are warm.
If the real keys run at the floor's speed, the kernel is compute-bound and prefetching hides
its cache misses; if much slower, it waits on memory.  (Folded rows can repeat a key within a
row; the kernel's work per entry is the same, only the model differs, and no model is kept.)
Variants run interleaved, ``--repeats`` times each, after one untimed warm pass; medians.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import workloads as W  # noqa: E402

CHUNK = 65536
PARAMS = (0.1, 1.0, 1.0, 0.0, 0.0)  # alpha, beta, l1, l2, label smoothing: run_all.PARAMS


def _pass(arrays: tuple[np.ndarray, ...], n_columns: int, cap: int) -> tuple[float, float, str]:
    """One timed pass on a fresh, pre-touched table: (seconds, progressive logloss, table sha1)."""
    from sparsecross._kernels.ftrl import FTRLParams, ftrl_pass
    from sparsecross.state import FTRLState

    indptr, indices, data, y = arrays
    st = FTRLState(n_columns, "float32", capacity=cap)
    tbl = st.table
    tbl[...] = tbl.copy()  # touch every page before the clock starts
    vals = tbl.view(np.float32)
    count, bias, acc = np.zeros(1, np.int64), np.zeros(2), np.zeros(3)
    none_f, none_u8 = np.zeros(0), np.zeros(0, np.uint8)
    admit = (np.zeros(0, np.uint8), np.zeros(0, np.uint64), np.zeros(2, np.int64))
    params = FTRLParams(*PARAMS)
    n = len(y)
    t = time.perf_counter()
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        done = ftrl_pass(indptr[s:e + 1], indices, data, y[s:e], none_f, none_u8, 0, tbl, vals, count, cap,
                         bias, params, acc, *admit)
        if done != e - s:
            raise RuntimeError("the presized table filled up")
    dt = time.perf_counter() - t
    return dt, float(acc[0] / acc[1]), hashlib.sha1(tbl.tobytes()).hexdigest()[:12]


def _growing_pass(arrays: tuple[np.ndarray, ...], n_columns: int) -> tuple[float, float, str, float]:
    """As training runs it: ``train_batch`` from a 1,024-slot table grown by a ``GrowthPlan``
    (allocation, fills and rehashes inside the clock): (seconds, logloss, sha1, growth seconds)."""
    from sparsecross._kernels.ftrl import FTRLParams
    from sparsecross.featurize import Batch
    from sparsecross.state import FTRLState, GrowthPlan
    from sparsecross.train_step import train_batch

    indptr, indices, data, y = arrays
    n = len(y)
    acc = np.zeros(3)
    params = FTRLParams(*PARAMS)
    nomask = np.zeros(0, np.uint8)
    t = time.perf_counter()
    st = FTRLState(n_columns, "float32", capacity=1024)
    plan = GrowthPlan(n)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        train_batch(st, Batch(_CSR(indptr[s:e + 1], indices, data, n_columns), y[s:e], None, s), params, nomask,
                    acc, plan)
    dt = time.perf_counter() - t
    grown = sum(g[4] for g in st.growth_log)
    return dt, float(acc[0] / acc[1]), hashlib.sha1(st.table.tobytes()).hexdigest()[:12], grown


class _CSR:
    """The attributes of a CSR matrix ``train_batch`` reads, over one chunk of the arrays."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_columns: int) -> None:
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (len(indptr) - 1, n_columns)


def run_size(size: str, folds: list[int], repeats: int) -> dict[str, Any]:
    import sparsecross
    from sparsecross.spec import load_spec
    from sparsecross.state import MAX_LOAD

    src = W.CACHE / f"synthetic_train_{size}_seed0.parquet"
    if not src.exists():
        raise SystemExit(f"{src} is missing: run python benchmarks/workloads.py first")
    spec = sparsecross.resolve_spec(src, load_spec(ROOT / "data" / "specs" / "synthetic_bench.toml"))
    X = W.csr(src, spec)
    base = tuple(np.ascontiguousarray(X[k]) for k in ("indptr", "indices", "data", "y"))
    variants: dict[str, tuple[np.ndarray, ...]] = {"real_keys": base}
    for f in folds:
        variants[f"folded_{f}"] = (base[0], (base[1] % f).astype(np.int64), base[2], base[3])
    caps = {}
    for name, arr in variants.items():
        cap, uniq = 1024, len(np.unique(arr[1]))
        while cap * MAX_LOAD < uniq:
            cap *= 2
        caps[name] = cap
        _pass(arr, spec.n_columns, cap)  # compile / warm
    _growing_pass(base, spec.n_columns)  # warm
    times: dict[str, list[float]] = {k: [] for k in (*variants, "growing")}
    check: dict[str, set[tuple[float, str]]] = {k: set() for k in times}
    growth_s: list[float] = []
    for _ in range(repeats):
        for name, arr in variants.items():
            dt, ll, digest = _pass(arr, spec.n_columns, caps[name])
            times[name].append(dt)
            check[name].add((ll, digest))
        dt, ll, digest, grown = _growing_pass(base, spec.n_columns)
        times["growing"].append(dt)
        check["growing"].add((ll, "same model" if ll == next(iter(check["real_keys"]))[0] else digest))
        growth_s.append(grown)
    caps["growing"] = None
    nnz = int(base[0][-1])
    out: dict[str, Any] = {"rows": len(base[3]), "nonzeros": nnz}
    for name in times:
        med = float(np.median(times[name]))
        out[name] = {"capacity": caps[name], "seconds": times[name], "median_s": med,
                     "nonzeros_per_s": nnz / med, "rows_per_s": len(base[3]) / med,
                     "deterministic": len(check[name]) == 1}
    out["growing"]["growth_seconds"] = growth_s
    for name in times:
        if name != "real_keys":
            out[name]["real_over_folded"] = out["real_keys"]["nonzeros_per_s"] / out[name]["nonzeros_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2m,10m")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--fold", default="4096,65536", help="cache-resident key ranges (comma-separated)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "kernel_floor.json")
    a = ap.parse_args(argv)
    import sparsecross
    from sparsecross.files import atomic_output

    folds = [int(f) for f in a.fold.split(",") if f]
    res: dict[str, Any] = {"meta": {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                    "git_sha": subprocess.run(["git", "rev-parse", "--short=10", "HEAD"],
                                                              capture_output=True, text=True, cwd=ROOT).stdout.strip(),
                                    "library": sparsecross.__file__, "machine": platform.machine(),
                                    "chunk_rows": CHUNK, "params": PARAMS, "repeats": a.repeats}}
    for size in a.sizes.split(","):
        r = res[size] = run_size(size, folds, a.repeats)
        line = ", ".join(f"{k} {v['nonzeros_per_s'] / 1e6:.1f}M nz/s" for k, v in r.items() if isinstance(v, dict))
        print(f"{size}: {line}", flush=True)
    with atomic_output(a.json, "results") as fh:
        fh.write(json.dumps(res, indent=1).encode())
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
