"""Probe of a design not built yet: data-parallel lanes that own their rare keys.

    python benchmarks/owned_lanes_probe.py [--lanes 2] [--round-rows 524288] [--rows 10000000]
        [--group-rows 250000] [--json out.json]

Issue 15's data-parallel rounds re-synchronize every key a lane touched in every round (0.79
keys per row at 250,000-row lanes), which alone costs about half of single-node's CPU per row
(docs/DASK.md, "Fifth pass").  This probe simulates, in one process, the design that avoids it:
rows are partitioned by their geo cell (``fmix64(cell) mod K``), so every cell's state lives
in one lane for the whole run; each lane trains its rows of a round, in row order, on its own
single-node state (``train_step.train_batch``: the hash-table pass); at the end of each round
only the keys of the other features (here 51: device, age, income, device x age) and the bias
are averaged over the lanes that touched them (the rule of ``merge_lanes``) and copied back
into every lane.  It answers the two questions that decide whether to build it: the model's
test logloss against single-node's and today's data-parallel K, and the CPU of the lanes'
passes and of the routing per row, timed with ``time.thread_time`` (no Dask: a cluster adds
its per-round tasks and the rows' bytes between workers).  Rows are routed with ``csr_select_rows``.

Not the product: no cluster, no recovery, no checkpoints.  Data: ``bench_distributed.py``'s
cached files; spec ``data/specs/synthetic_bench.toml`` (its first output is the cell).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.bench_distributed import SPEC, data_paths  # noqa: E402


def _lane_of_rows(X: Any, cell_end: int, lanes: int) -> np.ndarray:
    """Each row's lane: ``fmix64(cell) mod lanes`` for its cell key (the row's smallest index,
    below ``cell_end``), lane 0 for a row without a cell."""
    from sparsecross.generate import fmix64

    first = X.indices[X.indptr[:-1].clip(max=max(len(X.indices) - 1, 0))] if len(X.indices) else np.zeros(0)
    has = (np.diff(X.indptr) > 0) & (first < cell_end)
    lane = np.zeros(X.shape[0], dtype=np.int64)
    lane[has] = (fmix64(first[has].astype(np.uint64)) % np.uint64(lanes)).astype(np.int64)
    return lane


def _rows(X: Any, rows: np.ndarray) -> Any:
    """CSR rows ``rows`` of ``X`` (the data-parallel kernel ``csr_select_rows``, not scipy's
    slower row indexing)."""
    import scipy.sparse as sp

    from sparsecross._kernels.lanes import csr_select_rows

    indptr, indices, data = csr_select_rows(X.indptr, X.indices, X.data, rows.astype(np.int64))
    return sp.csr_array((data, indices, indptr), shape=(len(rows), X.shape[1]))


class _Shared:
    """The keys every lane may touch (not cells): global (z, n) and the bias, averaged at
    each round's end over the lanes that touched them, then copied into every lane."""

    def __init__(self, dtype: np.dtype) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.zn = np.zeros((0, 2), dtype=np.float64)
        self.dtype = dtype

    def add(self, indices: np.ndarray, cell_end: int) -> None:
        hot = np.unique(indices[indices >= cell_end]).astype(np.uint64)
        new = np.setdiff1d(hot, self.keys)
        if len(new):
            self.keys = np.concatenate([self.keys, new])
            self.zn = np.concatenate([self.zn, np.zeros((len(new), 2))])

    def sync(self, states: list[Any], bias0: np.ndarray, trained: list[bool]) -> None:
        from sparsecross._kernels.lanes import gather_zn, merge_lanes

        k = len(self.keys)
        seen = []
        for st in states:
            out = np.empty((k, 2), dtype=st.values.dtype)
            gather_zn(st.table, st.values, self.keys.astype(st.table.dtype), out, np.zeros(0, dtype=np.int64))
            seen.append(out.astype(np.float64))
        total = np.zeros((k, 2))
        count = np.zeros(k)
        for out in seen:
            moved = out[:, 1] != self.zn[:, 1]  # touched this round (n grows with every gradient)
            total[moved] += out[moved] - self.zn[moved]
            count += moved
        hit = count > 0
        self.zn[hit] += total[hit] / count[hit, None]
        self.zn = self.zn.astype(self.dtype).astype(np.float64)  # what the lanes hold
        b = [st.bias.astype(np.float64) for st, t in zip(states, trained) if t]
        bias = bias0 + sum(x - bias0 for x in b) / len(b) if b else bias0
        for st, out in zip(states, seen):
            if st.touched + k > st.max_count:
                st.grow(k)
            keys = self.keys.astype(st.table.dtype)
            slots = np.empty(k, dtype=np.int64)
            cur = np.empty((k, 2), dtype=st.values.dtype)
            gather_zn(st.table, st.values, keys, cur, slots)
            cap = 16
            while cap < 2 * k + 2:
                cap *= 2
            merge_lanes(st.table, st.values, st.count, keys, self.zn.astype(st.values.dtype), cur, slots, True,
                        np.empty((cap, 2), dtype=np.int64))
            st.bias[:] = bias


def run(lanes: int, round_rows: int, rows: int, group_rows: int) -> dict[str, Any]:
    import sparsecross
    from sparsecross._kernels.lanes import fill_table, table_items
    from sparsecross.featurize import Batch, iter_batches
    from sparsecross.metrics import StreamingMetrics
    from sparsecross.state import MAX_LOAD, FTRLState
    from sparsecross.train_params import TrainParams
    from sparsecross.train_step import train_batch

    train_path, test_path = data_paths(rows, group_rows)
    spec = sparsecross.load_spec(SPEC)
    cell_end = spec.outputs[0].offset + spec.outputs[0].cardinality
    params = TrainParams().ftrl
    states = [FTRLState(spec.n_columns, "float32") for _ in range(lanes)]
    shared = _Shared(np.dtype(np.float32))
    t = dict.fromkeys(("read_featurize", "shared_keys", "route", "lane_passes", "sync"), 0.0)
    acc = np.zeros(3)
    done = since = 0
    trained = [False] * lanes
    bias0 = states[0].bias.astype(np.float64).copy()
    clock = time.thread_time()
    for b in iter_batches(train_path, spec, batch_rows=1 << 16):
        now = time.thread_time()
        t["read_featurize"] += now - clock
        X = b.X
        shared.add(X.indices, cell_end)  # (the probe's bookkeeping: a real lane knows its shared keys)
        clock = time.thread_time()
        t["shared_keys"] += clock - now
        lane = _lane_of_rows(X, cell_end, lanes)
        parts = [np.flatnonzero(lane == j) for j in range(lanes)]
        subs = [(_rows(X, p), b.y[p]) for p in parts]
        now, clock = clock, time.thread_time()
        t["route"] += clock - now
        for j, (Xj, yj) in enumerate(subs):
            if Xj.shape[0]:
                train_batch(states[j], Batch(Xj, yj, None, b.start_row), params, np.zeros(0, dtype=np.uint8), acc)
                trained[j] = True
        now = time.thread_time()
        t["lane_passes"] += now - clock
        done += X.shape[0]
        since += X.shape[0]
        if since >= round_rows or done == rows:
            since = 0
            shared.sync(states, bias0, trained)
            bias0 = states[0].bias.astype(np.float64).copy()
            trained = [False] * lanes
        clock = time.thread_time()
        t["sync"] += clock - now
    # the model: every lane's cells, the shared keys once
    keys, zn = [], []
    for st in states:
        k, v = table_items(st.table, st.values)
        keep = k < cell_end
        keys.append(k[keep])
        zn.append(v[keep])
    keys.append(shared.keys)
    zn.append(shared.zn.astype(np.float32))
    keys_all, zn_all = np.concatenate(keys), np.concatenate(zn)
    model = FTRLState(spec.n_columns, "float32", capacity=int(np.ceil((len(keys_all) + 1) / MAX_LOAD)) + 1)
    fill_table(model.table, model.values, model.count, keys_all.astype(model.table.dtype), zn_all)
    model.bias[:] = states[0].bias
    metrics = StreamingMetrics()
    for b in iter_batches(test_path, spec, batch_rows=1 << 18):
        metrics.update(model.margins(b.X, params), b.y, b.sample_weight)
    out = {"lanes": lanes, "round_rows": round_rows, "rows": rows, "group_rows": group_rows,
           "keys": len(keys_all), "shared_keys": len(shared.keys),
           "test_logloss": float(metrics.logloss), "test_auc": float(metrics.auc),
           "thread_cpu_seconds": t, "us_per_row": {k: v / rows * 1e6 for k, v in t.items()},
           "lane_rows": [int(st.touched) for st in states]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--round-rows", type=int, default=1 << 19, help="rows per round over all lanes (a multiple "
                    "of the 65,536-row batches)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--group-rows", type=int, default=250_000)
    ap.add_argument("--json", help="also write the result here (atomically)")
    args = ap.parse_args(argv)
    res = run(args.lanes, args.round_rows, args.rows, args.group_rows)
    print(json.dumps(res, indent=1))
    if args.json:
        from sparsecross.files import atomic_output

        with atomic_output(Path(args.json), "results") as fh:
            fh.write(json.dumps(res, indent=2, sort_keys=True).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
