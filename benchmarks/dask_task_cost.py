"""Dask's own CPU per task, measured with tasks that do nothing.

    python benchmarks/dask_task_cost.py [--tasks 400] [--repeats 3] [--json out.json]

The cost model (``dask_cost_model.py``) fits Dask's CPU per task (``c_s``: the client process
with a ``local:N`` cluster's scheduler and comms; ``c_w``: a worker's event loop) on training
runs, where it is mixed with the transfers of real data.  Here it is measured alone: chains
of ``--tasks`` no-op tasks pinned to the one worker of a ``local:1`` cluster (each task depends
on the one before, as a data-parallel round's tasks do; the client waits for every 8th, as the
round loop waits once per round), submitted the way sparsecross submits them (``pure=False``,
``workers=[w]``, ``allow_other_workers=False``), on sparsecross's ``connect("local:1")`` and on a
plain ``distributed.LocalCluster`` (Dask's default background settings).  Reports CPU
milliseconds per task of the client process's main thread (submitting), of its other threads
(scheduler, comms) and of the worker process (event loop and executor), medians of
``--repeats`` chains, and the idle background (CPU per second of the idle cluster) which the
chains' figures include over their wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _noop(i: int, *after: Any) -> int:
    """Task: nothing (``after``: an ordering dependency)."""
    return i


def _chain(client: Any, n: int, tag: str) -> dict[str, float]:
    """CPU ms per task of one chain of ``n`` pinned no-op tasks."""
    from benchmarks.bench_distributed import cpu_seconds, thread_cpu

    w = sorted(client.nthreads())[0]
    c0, w0 = thread_cpu(), client.run(cpu_seconds)
    t0 = time.perf_counter()
    prev = None
    for i in range(n):
        prev = client.submit(_noop, i, *([] if prev is None else [prev]), key=f"{tag}-{i}", pure=False,
                             workers=[w], allow_other_workers=False)
        if i % 8 == 7:
            prev.result()
    prev.result()
    wall = time.perf_counter() - t0
    c1, w1 = thread_cpu(), client.run(cpu_seconds)
    return {"client_main_ms": (c1["main"] - c0["main"]) / n * 1e3,
            "client_other_ms": (c1["other"] + c1["tasks"] - c0["other"] - c0["tasks"]) / n * 1e3,
            "worker_ms": (sum(w1.values()) - sum(w0.values())) / n * 1e3, "wall_ms": wall / n * 1e3}


def measure(kind: str, tasks: int, repeats: int) -> dict[str, Any]:
    """Medians over ``repeats`` chains on a fresh cluster of ``kind`` (``sparsecross`` or ``plain``)."""
    import distributed

    from benchmarks.bench_distributed import _idle_cpu

    if kind == "sparsecross":
        from sparsecross.dask import connect

        client, cluster = connect("local:1")
    else:
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    try:
        _chain(client, 50, f"{kind}-warm")
        runs = [_chain(client, tasks, f"{kind}-{r}") for r in range(repeats)]
        idle = _idle_cpu(client, 3.0)
    finally:
        client.close()
        cluster.close()
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["total_ms"] = out["client_main_ms"] + out["client_other_ms"] + out["worker_ms"]
    out["idle_cpu_per_second"] = idle
    out["runs"] = runs
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=400, help="tasks per chain (default 400)")
    p.add_argument("--repeats", type=int, default=3, help="chains per cluster (default 3)")
    p.add_argument("--json", help="also write the results here (atomically)")
    args = p.parse_args(argv)
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "tasks": args.tasks, "repeats": args.repeats,
           "clusters": {k: measure(k, args.tasks, args.repeats) for k in ("sparsecross", "plain")}}
    print("| cluster | client main ms/task | scheduler + comms ms/task | worker ms/task | total | wall ms/task |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k, r in res["clusters"].items():
        print(f"| {k} | {r['client_main_ms']:.2f} | {r['client_other_ms']:.2f} | {r['worker_ms']:.2f} "
              f"| {r['total_ms']:.2f} | {r['wall_ms']:.2f} |")
    if args.json:
        from sparsecross.files import atomic_output

        with atomic_output(Path(args.json), "results") as fh:
            fh.write(json.dumps(res, indent=1, sort_keys=True, allow_nan=False).encode() + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
