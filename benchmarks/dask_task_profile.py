"""In-process profile of the data-parallel task functions: thread CPU per part, us per row.

    python benchmarks/dask_task_profile.py [--lanes 4] [--shards 2] [--rounds 6] [--dtype float32]
        [--rows 10000000 --group-rows 250000] [--chunk-rows N] [--json out.json]

Runs one training run's rounds the way the Dask round loop does (``sparsecross.dask``'s
task functions, called in this process, no cluster): per lane the preparation
(featurize, renumber, split by shard), per shard the look-ups, per lane the copies into
its dense array, the lane pass (``ftrl_pass_local``) and the copies out, per shard the
merge.  Each part is timed with ``time.thread_time`` (this thread's CPU, so the load of a
shared machine inflates it only through the caches).  Featurizing is timed on its own
(``_featurize_chunk``) and subtracted from the preparation, which featurizes again: the
difference is the renumbering and split by shard.  The first round (compilation, first
growths) is left out.  Data: ``bench_distributed.py``'s cached training file for
``--rows``/``--group-rows`` (one row group per lane); spec ``data/specs/synthetic_bench.toml``.
Prints one line per part and the CPU share (thread CPU / wall) of the timed rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.bench_distributed import SPEC, data_paths  # noqa: E402

PARTS = ("featurize", "renumber+split", "lookup", "copy_in", "lane_pass", "copy_out", "merge")


def _round(chunks: list[Any], spec: Any, dtype: str, kd: str, after: list[Any], i: int, n_shards: int,
           params: Any, t: dict[str, float], rows_at: Any) -> tuple[list[Any], int, int]:
    """One round's tasks in process; adds each part's thread CPU to ``t``: (merges' results,
    rows, keys).  ``rows_at``: what the round loop tells the merges (``growth._round_rows``)."""
    import numpy as np

    from sparsecross._kernels.lanes import ftrl_pass_local
    from sparsecross.dask import lane_tasks, shards
    from sparsecross.dask.plan import _featurize_chunk

    token, keys, rows = "profile", [], 0

    def tick(name: str, t0: float) -> float:
        now = time.thread_time()
        t[name] = t.get(name, 0.0) + now - t0
        return now

    for c in chunks:
        t0 = time.thread_time()
        rows += _featurize_chunk(c, spec, 65536).X.shape[0]
        t0 = tick("featurize", t0)
        keys.append(lane_tasks._task_prepare(c, spec, 65536, None, 0, kd, n_shards, token, 0))
        tick("prepare", t0)
    t0 = time.thread_time()
    looked = [shards._task_lookup(token, s, i, keys, after[s]) for s in range(n_shards)]
    tick("lookup", t0)
    results = []
    for j, c in enumerate(chunks):
        prep = lane_tasks._prepared(token, 0, c.index)
        t0 = time.thread_time()
        zn = np.zeros((prep.n_keys, 2), dtype=dtype)
        for pos, values in zip(prep.positions, [per_lane[j] for per_lane in looked]):
            zn[pos] = values
        t0 = tick("copy_in", t0)
        bias, acc = np.zeros(2), np.zeros(3)
        for part in prep.parts:
            ftrl_pass_local(part.indptr, part.local, part.data, part.y, part.sample_weight, part.mask, zn, bias,
                            params, acc)
        t0 = tick("lane_pass", t0)
        out = [zn[pos] for pos in prep.positions]
        tick("copy_out", t0)
        lane_tasks._trained(token, 0, c.index)
        results.append((out, bias, acc))
    t0 = time.thread_time()
    merged = [shards._task_merge(token, s, i, keys, looked[s], results, after[s], rows_at) for s in range(n_shards)]
    tick("merge", t0)
    return [m[0] for m in merged], rows, sum(sum(len(x) for x in k) for k in keys)


def profile(train: Path, lanes: int, n_shards: int, rounds: int, dtype: str,
            chunk_rows: int | None = None) -> dict[str, Any]:
    """Thread CPU per part over ``rounds`` rounds after a first, untimed one; ``chunk_rows``:
    rows per lane and round (default one row group)."""
    import numpy as np

    from sparsecross._kernels.ftrl import FTRLParams
    from sparsecross.dask import shards
    from sparsecross.dask.growth import _epoch_rows, _round_rows
    from sparsecross.dask.plan import _plan
    from sparsecross.spec import load_spec

    spec = load_spec(SPEC)
    chunks, _ = _plan(train, spec, chunk_rows=chunk_rows)
    if (rounds + 1) * lanes > len(chunks):
        raise SystemExit(f"{len(chunks)} row groups: at most {len(chunks) // lanes - 1} timed rounds at K = {lanes}")
    params = FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)
    kd = np.dtype(np.uint32 if dtype == "float32" else np.uint64).str
    after = [shards._task_shard_init("profile", s, 0, np.zeros(0, kd), np.zeros((0, 2), dtype), spec.n_columns, dtype)
             for s in range(n_shards)]
    t: dict[str, float] = {}
    rows = keys = 0
    cpu0 = wall0 = 0.0
    for i in range(rounds + 1):
        if i == 1:  # round 0 compiled the kernels and grew the tables first
            t.clear()
            cpu0, wall0 = time.thread_time(), time.perf_counter()
        round_chunks = chunks[i * lanes:(i + 1) * lanes]
        after, r, k = _round(round_chunks, spec, dtype, kd, after, i, n_shards, params, t,
                             _round_rows(0, round_chunks, _epoch_rows(chunks)))
        if i:
            rows, keys = rows + r, keys + k
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    shards._drop_shards("profile")
    t["renumber+split"] = t.pop("prepare") - t["featurize"]
    us = {p: 1e6 * t[p] / rows for p in PARTS}
    return {"lanes": lanes, "shards": n_shards, "rounds": rounds, "dtype": dtype, "chunk_rows": chunk_rows,
            "rows": rows,
            "keys_per_row": keys / rows, "us_per_row": us, "all_us_per_row": sum(us.values()),
            "cpu_share": cpu / wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6, help="timed rounds (after one untimed round)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--group-rows", type=int, default=250_000)
    ap.add_argument("--chunk-rows", type=int, help="rows per lane and round (default: one row group), as "
                    "rows_per_round / lanes")
    ap.add_argument("--json", help="also write the result here (atomically)")
    args = ap.parse_args(argv)
    train, _ = data_paths(args.rows, args.group_rows)
    res = profile(train, args.lanes, args.shards, args.rounds, args.dtype, args.chunk_rows)
    print(f"K={args.lanes} S={args.shards} rounds={args.rounds} rows={res['rows']:,} "
          f"keys per row and lane={res['keys_per_row']:.3f} cpu_share={res['cpu_share']:.2f}")
    for p in PARTS:
        print(f"{p:16s} {res['us_per_row'][p]:6.3f} us/row")
    print(f"{'all':16s} {res['all_us_per_row']:6.3f} us/row")
    if args.json:
        from sparsecross.files import atomic_output

        with atomic_output(Path(args.json), "task profile") as fh:
            fh.write(json.dumps(res, indent=2).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
