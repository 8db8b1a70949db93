"""Cost model of data-parallel training on Dask, fitted on ``bench_distributed.py`` results.

    python benchmarks/dask_cost_model.py RESULTS.json [MORE.json ...] [--rows-per-lane 500000] [--json out.json]

Per round, with K lanes and S = W workers (one shard each), the round loop submits
T = 2K + 2S tasks (a preparation and a training task per lane, a look-up and a merge per
shard).  Fitted on the data-parallel runs of the JSON (1 and 2 workers, K = 2 and 4), each
net of the idle cluster's background CPU over the run's wall time:

* ``c_s``: CPU-seconds of the client process's non-main threads (with ``local:N``: the
  scheduler, the nannies and the comms) per task;
* ``c_w``: CPU-seconds of the workers' event loops (main threads) per task;
* ``w``: CPU-seconds of the workers' task threads per row;
* bytes: per round, K U (S - 1) (kb + 2 vb) between workers (K >= S), U the distinct keys of
  a lane's chunk, kb = 4 bytes per key, vb = 8 per (z, n) value (float32 state): every shard's
  look-up receives the keys of the lanes on other workers, every worker receives every other
  shard's look-up once (all lanes' values: its lanes share it), every merge the whole results
  of the lanes on other workers.  ``U`` is fitted on the 2-worker runs, net of what the same
  K sends on 1 worker (the epoch-end snapshot and the lanes' bias to the client).

Projection for W workers, K = W lanes of R rows (K is a model parameter: the model changes with
it), the distinct keys of a lane's chunk counted on the benchmark's data for R rows:

* CPU per row = w + (c_s + c_w) T / (K R);
* a round takes at least max(c_s T (one scheduler thread), R w + c_w T / W (the lanes in
  parallel), bytes per worker / bandwidth).

Partitioned mode (``mode="partitioned"``, runs ``pt2``, ``pt4``, ``pt2_1worker``,
``pt4_1worker``): per round, C = K chunks are routed (one task each, on the chunk's worker)
and K lanes train (one task each, on the lane's worker); a lane on another worker than a
chunk gets its rows through a pick task, C K (W - 1) / W of them with chunks and lanes spread
round-robin: T = 2K + K^2 (W - 1) / W.  Fitted the same way (``c_s``, ``c_w``, ``w``), and
``b``: the bytes a row moves between workers when routed (``--routed-bytes-per-row``, default
22: a packed pick of the benchmark's data holds a 1-byte row length, five 4-byte keys and a
1-byte label; runs before the sizeof registration of routed parts count no transfer bytes).
Projection for W workers, K = W lanes, R rows per chunk: CPU per row = w + (c_s + c_w) T / (K R); a round takes at least max(c_s T, R w + c_w T / W,
R (W - 1) / W b / bandwidth).  Only the shared keys (58 here) travel between lanes, K^2 of
their reports per round, which is left out.

Prints the fit and the projection as Markdown (docs/DASK.md takes its tables from here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEY_BYTES = 4
VALUE_BYTES = 8
BANDWIDTH = 1.25e9  # bytes/s per worker (10 Gbit/s)
FAST_SCHEDULER_S = 0.0003  # an assumed scheduler CPU per task on an idle core of its own


def tasks_per_round(k: int, s: int) -> int:
    return 2 * k + 2 * s


def bytes_per_round(k: int, s: int, u: float) -> float:
    return k * u * (s - 1) * (KEY_BYTES + 2 * VALUE_BYTES)


def distinct_keys(rows: int, data: Path, spec: Path) -> float:
    """Mean distinct keys of the chunks of ``rows`` rows of ``data``."""
    import sparsecross
    from sparsecross._kernels.lanes import local_ids
    from sparsecross.dask.plan import _featurize_chunk, _plan

    sp = sparsecross.load_spec(spec)
    chunks, _ = _plan(data, sp, chunk_rows=rows)
    counts = []
    for c in chunks[: max(1, min(4, len(chunks) - 1))]:
        b = _featurize_chunk(c, sp, 65536)
        keys, _ = local_ids(b.X.indptr, b.X.indices, np.zeros(0, np.uint8), np.full(1, 2**32 - 1, np.uint32))
        counts.append(len(keys))
    return float(np.mean(counts))


def fit(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Least squares over the data-parallel runs of every results file (run ``name`` of the
    i-th file is ``name#i``)."""
    runs = {f"{n}#{i}": r for i, res in enumerate(results) for n, r in res["results"].items()
            if n.startswith("dp") and r and "error" not in r}
    rows_t, ys, yw, rows, wtask, facts = [], [], [], [], [], {}
    for name, r in sorted(runs.items()):
        k = r["params"]["lanes"]
        s = 1 if name.split("#")[0].endswith("1worker") else 2
        idle = r["idle_cpu_per_second"]
        tc, wt = r["client_thread_cpu_seconds"], r["worker_thread_cpu_seconds"]
        sched = tc["tasks"] + tc["other"] - idle["client"] * r["seconds"]
        loops = sum(wt["main"]) - sum(idle["workers"]) * r["seconds"]
        t = r["tasks"]
        rows_t.append(t)
        ys.append(sched)
        yw.append(loops)
        rows.append(r["rows"])
        wtask.append(sum(wt["tasks"]))
        facts[name] = {"K": k, "S": s, "tasks": t, "tasks_per_round": r["per_round"]["tasks"],
                       "sched_ms_per_task": sched / t * 1e3, "loop_ms_per_task": loops / t * 1e3,
                       "task_us_per_row": sum(wt["tasks"]) / r["rows"] * 1e6,
                       "bytes_per_round": r["per_round"]["worker_sent_bytes"], "bytes": r["worker_sent_bytes"],
                       "rounds": r["rounds"]}
    t = np.array(rows_t, float)
    c_s = float(np.dot(t, ys) / np.dot(t, t))
    c_w = float(np.dot(t, yw) / np.dot(t, t))
    w = float(np.sum(wtask) / np.sum(rows))
    one = {(n.split("#")[1], f["K"]): f["bytes"] for n, f in facts.items() if f["S"] == 1}
    two = [(f["K"], (f["bytes"] - one[(n.split("#")[1], f["K"])]) / f["rounds"]) for n, f in facts.items()
           if f["S"] == 2 and (n.split("#")[1], f["K"]) in one]
    u = float(np.mean([b / bytes_per_round(k, 2, 1.0) for k, b in two])) if two else float("nan")
    return {"c_s": c_s, "c_w": c_w, "w": w, "u_2workers": u, "runs": facts}


def project(m: dict[str, Any], rows_per_lane: int, u_lane: float, workers: list[int]) -> list[dict[str, float]]:
    out = []
    for n in workers:
        k = s = n
        t = tasks_per_round(k, s)
        cpu_row = m["w"] + (m["c_s"] + m["c_w"]) * t / (k * rows_per_lane)
        net = bytes_per_round(k, s, u_lane) / n / BANDWIDTH  # (each worker receives its share)
        work = rows_per_lane * m["w"] + m["c_w"] * t / n
        rnd = max(m["c_s"] * t, work, net)
        rnd_fast = max(FAST_SCHEDULER_S * t, work, net)
        out.append({"workers": n, "tasks": t, "cpu_us_per_row": cpu_row * 1e6,
                    "cpu_us_per_row_fast": (m["w"] + (FAST_SCHEDULER_S + m["c_w"]) * t / (k * rows_per_lane)) * 1e6,
                    "sched_s": m["c_s"] * t, "sched_s_fast": FAST_SCHEDULER_S * t, "worker_s": work,
                    "net_s": net, "mib_per_worker": bytes_per_round(k, s, u_lane) / n / 2**20,
                    "rows_per_s": k * rows_per_lane / rnd, "rows_per_s_fast": k * rows_per_lane / rnd_fast})
    return out


def pt_tasks_per_round(k: int, w: int) -> float:
    return 2 * k + k * k * (w - 1) / w


def fit_partitioned(results: list[dict[str, Any]], routed_bytes: float) -> dict[str, Any] | None:
    """``c_s``, ``c_w`` and ``w`` of the partitioned runs; ``b`` = ``routed_bytes``."""
    runs = {f"{n}#{i}": r for i, res in enumerate(results) for n, r in res["results"].items()
            if n.startswith("pt") and r and "error" not in r}
    if not runs:
        return None
    tasks, sched, loops, task_cpu, rows, facts = [], [], [], [], [], {}
    for name, r in sorted(runs.items()):
        idle = r["idle_cpu_per_second"]
        tc, wt = r["client_thread_cpu_seconds"], r["worker_thread_cpu_seconds"]
        tasks.append(r["tasks"])
        sched.append(tc["tasks"] + tc["other"] - idle["client"] * r["seconds"])
        loops.append(sum(wt["main"]) - sum(idle["workers"]) * r["seconds"])
        task_cpu.append(sum(wt["tasks"]))
        rows.append(r["rows"])
        facts[name] = {"K": r["params"]["lanes"], "W": 1 if name.split("#")[0].endswith("1worker") else 2,
                       "tasks": r["tasks"], "bytes": r["worker_sent_bytes"], "rows": r["rows"],
                       "task_us_per_row": sum(wt["tasks"]) / r["rows"] * 1e6,
                       "cpu_us_per_row": r["cpu_us_per_row"]}
    t = np.array(tasks, float)
    return {"c_s": float(np.dot(t, sched) / np.dot(t, t)), "c_w": float(np.dot(t, loops) / np.dot(t, t)),
            "w": float(np.sum(task_cpu) / np.sum(rows)), "b": float(routed_bytes), "runs": facts}


def project_partitioned(m: dict[str, Any], chunk_rows: int, workers: list[int]) -> list[dict[str, float]]:
    out = []
    for n in workers:
        k = n
        t = pt_tasks_per_round(k, n)
        cpu_row = m["w"] + (m["c_s"] + m["c_w"]) * t / (k * chunk_rows)
        net = chunk_rows * (n - 1) / n * m["b"] / BANDWIDTH
        work = chunk_rows * m["w"] + m["c_w"] * t / n
        rnd = max(m["c_s"] * t, work, net)
        rnd_fast = max(FAST_SCHEDULER_S * t, work, net)
        out.append({"workers": n, "chunk_rows": chunk_rows, "tasks": t, "cpu_us_per_row": cpu_row * 1e6,
                    "cpu_us_per_row_fast": (m["w"] + (FAST_SCHEDULER_S + m["c_w"]) * t / (k * chunk_rows)) * 1e6,
                    "sched_s": m["c_s"] * t, "sched_s_fast": FAST_SCHEDULER_S * t, "worker_s": work, "net_s": net,
                    "rows_per_s": k * chunk_rows / rnd, "rows_per_s_fast": k * chunk_rows / rnd_fast})
    return out


def markdown_partitioned(m: dict[str, Any], proj: list[dict[str, float]], single_us: float | None) -> str:
    lines = ["| config | tasks | task CPU us/row | CPU us/row (all processes) | vs single-node |",
             "| --- | --- | --- | --- | --- |"]
    for name, f in m["runs"].items():
        ratio = f"{f['cpu_us_per_row'] / single_us:.2f}x" if single_us else "-"
        lines.append(f"| {name} | {f['tasks']} | {f['task_us_per_row']:.3f} | {f['cpu_us_per_row']:.3f} | {ratio} |")
    lines += ["", f"Fit (partitioned): c_s = {m['c_s'] * 1e3:.2f} ms/task, c_w = {m['c_w'] * 1e3:.2f} ms/task, "
                  f"w = {m['w'] * 1e6:.3f} us/row, b = {m['b']:.0f} bytes per routed row",
              "", "Projection, K = W lanes, one chunk per lane per round:", "",
              "| workers | rows per chunk | tasks/round | CPU us/row | scheduler s/round | worker s/round "
              "| network s/round | rows/s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in proj:
        lines.append(f"| {p['workers']} | {p['chunk_rows']:,} | {p['tasks']:.0f} | {p['cpu_us_per_row']:.3f} "
                     f"({p['cpu_us_per_row_fast']:.3f}) | {p['sched_s']:.2f} ({p['sched_s_fast']:.2f}) | "
                     f"{p['worker_s']:.2f} | {p['net_s']:.2f} | "
                     f"{p['rows_per_s'] / 1e6:.1f}M ({p['rows_per_s_fast'] / 1e6:.1f}M) |")
    return "\n".join(lines)


def markdown(m: dict[str, Any], proj: list[dict[str, float]], rows_per_lane: int, u_lane: float,
             single_us: float | None) -> str:
    lines = ["| config | tasks/round | scheduler ms/task | worker loop ms/task | task CPU us/row | MiB/round |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, f in m["runs"].items():
        lines.append(f"| {name} | {f['tasks_per_round']:.1f} | {f['sched_ms_per_task']:.2f} | "
                     f"{f['loop_ms_per_task']:.2f} | {f['task_us_per_row']:.2f} | {f['bytes_per_round'] / 2**20:.2f} |")
    lines += ["", f"Fit: c_s = {m['c_s'] * 1e3:.2f} ms/task, c_w = {m['c_w'] * 1e3:.2f} ms/task, "
                  f"w = {m['w'] * 1e6:.2f} us/row, U = {m['u_2workers']:,.0f} distinct keys per lane "
                  "(2-worker runs)" + (f"; single-node {single_us:.2f} us/row" if single_us else ""),
              "", f"Projection, K = W lanes of {rows_per_lane:,} rows ({u_lane:,.0f} distinct keys each):", "",
              "| workers | tasks/round | CPU us/row | scheduler s/round | worker s/round | MiB in per worker/round "
              "| network s/round | rows/s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in proj:
        lines.append(f"| {p['workers']} | {p['tasks']} | {p['cpu_us_per_row']:.2f} ({p['cpu_us_per_row_fast']:.2f}) | "
                     f"{p['sched_s']:.3f} ({p['sched_s_fast']:.3f}) | {p['worker_s']:.2f} | "
                     f"{p['mib_per_worker']:.0f} | {p['net_s']:.2f} | "
                     f"{p['rows_per_s'] / 1e6:.1f}M ({p['rows_per_s_fast'] / 1e6:.1f}M) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+",
                    help="bench_distributed.py JSON files with dp2, dp4, dp2_1worker, dp4_1worker")
    ap.add_argument("--rows-per-lane", type=int, default=500_000)
    ap.add_argument("--workers", default="2,8,32,128")
    ap.add_argument("--routed-bytes-per-row", type=float, default=22.0,
                    help="partitioned: bytes a routed row moves between workers (default 22)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    results = [json.loads(Path(p).read_text()) for p in args.results]
    res = results[0]
    m = fit(results)
    from bench_distributed import SPEC, data_paths  # (benchmarks/ is on the path when run as a script)

    train, _ = data_paths(res["rows"], res["rows"] // res["row_groups"])
    u_lane = distinct_keys(args.rows_per_lane, train, SPEC)
    proj = project(m, args.rows_per_lane, u_lane, [int(x) for x in args.workers.split(",")])
    singles = [r["results"]["single"]["cpu_us_per_row"] for r in results
               if r["results"].get("single") and "error" not in r["results"]["single"]]
    single_us = float(np.mean(singles)) if singles else None
    print(markdown(m, proj, args.rows_per_lane, u_lane, single_us))
    mp = fit_partitioned(results, args.routed_bytes_per_row)
    proj_pt: list[dict[str, float]] = []
    if mp is not None:
        for chunk_rows in (1 << 20, 1 << 23):
            proj_pt += project_partitioned(mp, chunk_rows, [int(x) for x in args.workers.split(",")])
        print()
        print(markdown_partitioned(mp, proj_pt, single_us))
    if args.json:
        from sparsecross.files import atomic_output

        with atomic_output(Path(args.json), "cost model") as fh:  # (mkstemp next to it + rename)
            fh.write(json.dumps({"fit": m, "rows_per_lane": args.rows_per_lane, "u_lane": u_lane,
                                 "projection": proj, "partitioned_fit": mp, "partitioned_projection": proj_pt},
                                indent=2).encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
