"""Benchmark of Dask scale-out (issue #6): single-node vs a local cluster of 2 workers.

    python benchmarks/bench_distributed.py [--rows 10000000] [--repeats 1] [--only single,dp4]

Data: ``sparsecross.generate(seed=0)``, 10M training rows in row groups of 500,000 (20 units
of work) and a 1M-row test set from the same world (``first_row=10_000_000``), generated
once into ``benchmarks/cache/``.  Spec ``data/specs/synthetic_bench.toml``; library default
hyperparameters, one pass.

Every configuration runs in its own process (``--task NAME``), so peak RSS belongs to it:

* ``single``: ``sparsecross.train`` (no Dask; reader thread + trainer, both cores free);
* ``single_1core``: the same pinned to one core (the per-core yardstick);
* ``dp2`` / ``dp4``: data-parallel, K = 2 / 4 lanes, one row group per lane, 2 workers;
* ``exact``: exact mode, 2 workers featurize, the client trains;
* ``dp2_1worker`` / ``dp4_1worker``: the same K on a single worker (the same model, bit for
  bit): the ratio to ``dp2`` / ``dp4`` is the scaling from 1 to 2 workers;
* ``pt2`` / ``pt4`` (and ``_1worker``): partitioned mode, K = 2 / 4 lanes owning the geo
  cells (``partition="cell"``).

Measured: training rows/s (wall clock around ``train``, kernels compiled and workers warmed
up before), test logloss/AUC (local ``evaluate``), peak RSS of the client and of each worker
(``VmHWM`` of ``/proc/<pid>/status``, reset before the timed phase), rounds and per-round
overhead (CPU-seconds of the client process, which also runs the scheduler, per round; mean
round wall time).  Per round (data-parallel): CPU of the client's main thread (sparsecross's
client code) and of its other threads (with ``local:N``, the scheduler and the comms), worker
CPU, bytes the workers sent (to each other and to the client), bytes of arguments shipped in
the graph, tasks submitted; worker CPU per row; the idle cluster's CPU per wall second (Dask's
background, measured for 5 s before the timed phase) and the CPU per row net of it.  With
``local:N`` the workers' nannies run in the client process (counted there).
``BENCH_DASK_DEFAULTS=1`` starts the clusters with Dask's own background settings (A/B of
``cluster._LOCAL_QUIET``).
``--rows-per-round N`` trains the data-parallel configs with ``rows_per_round=N`` (default:
the library's, one row group per lane).  ``--profile`` adds the top functions of a cProfile
of the client's main thread and of Dask's sampling profile of the workers' task threads.
``--warm-runs N`` trains N times untimed on the same rows in the same processes before the
timed run: the steady state of a long job, whose peak memory is already touched (on a VM
whose page faults cost tens of microseconds, first touch is a fixed cost per process that a
10M-row run would otherwise count as per-row cost); system CPU and page faults are recorded
per process either way.  ``--group-rows`` sets the row-group size of the generated data (more, smaller units: more
rounds).  Writes ``benchmarks/results/distributed.json`` and prints a Markdown table.  The
machine may be shared: the load average at start and end is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
SPEC = ROOT / "data" / "specs" / "synthetic_bench.toml"
GROUP_ROWS = 500_000
TEST_ROWS = 1_000_000
TASKS = ("single", "single_1core", "dp2", "dp4", "exact", "dp2_1worker", "dp4_1worker", "pt2", "pt4",
         "pt2_1worker", "pt4_1worker")
#: The configurations on a Dask cluster.
DASK_TASKS = TASKS[2:]
MARK = "@@RESULT@@"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def data_paths(rows: int, group_rows: int = GROUP_ROWS) -> tuple[Path, Path]:
    """(train, test) Parquet files, generated on first use."""
    import sparsecross

    label = f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"
    train = CACHE / f"dist_train_{label}_rg{group_rows // 1000}k_seed0.parquet"
    test = CACHE / f"dist_test_{TEST_ROWS // 1000}k_from{label}_seed0.parquet"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not train.exists():
        sparsecross.generate(train, rows=rows, seed=0, row_group_size=group_rows)
    if not test.exists():
        sparsecross.generate(test, rows=TEST_ROWS, seed=0, row_group_size=GROUP_ROWS, first_row=rows)
    return train, test


# ---------------------------------------------------------------- memory helpers
def reset_peak() -> None:
    """Reset this process's VmHWM (Linux: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def peak_rss() -> int:
    """This process's VmHWM in bytes (ru_maxrss where /proc is missing)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rusage() -> tuple[float, int]:
    """System CPU seconds and minor page faults of this process so far (on a VM a fault can
    cost tens of microseconds: the first touch of a process's peak memory is a cost of its
    own, paid once per process, not per row)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_stime, ru.ru_minflt


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process so far, by thread role: ``main`` (the main thread: the
    sparsecross client code, or a worker's event loop), ``tasks`` (Dask's task executor
    threads) and ``other`` (the rest: in the client process of a ``local:N`` cluster, the
    scheduler and the comms of its event-loop thread; the difference to the process total, so
    that threads which ended count too)."""
    import threading

    import psutil

    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    out = {"main": 0.0, "tasks": 0.0}
    for th in psutil.Process().threads():
        cpu = th.user_time + th.system_time
        if th.id == main:
            out["main"] += cpu
        elif "Dask-Default-Threads" in names.get(th.id, ""):
            out["tasks"] += cpu
    out["other"] = cpu_seconds() - out["main"] - out["tasks"]
    return out


def _idle_cpu(client: Any, seconds: float = 5.0) -> dict[str, Any]:
    """CPU-seconds per wall second of the idle cluster: the client process (with a ``local:N``
    cluster's scheduler) and each worker.  Dask's heartbeats, system monitors and sampling
    profiler cost CPU per second whatever the work; on a loaded machine a run's wall time, and
    so this background, grows with the load."""
    c0, w0, t0 = cpu_seconds(), client.run(cpu_seconds), time.perf_counter()
    time.sleep(seconds)
    c1, w1, t = cpu_seconds(), client.run(cpu_seconds), time.perf_counter() - t0
    return {"client": (c1 - c0) / t, "workers": sorted((w1[a] - w0[a]) / t for a in w1)}


def _worker_sent_bytes(dask_worker: Any) -> int:
    """Bytes this worker sent (to other workers and to the client) so far."""
    return int(dask_worker.transfer_outgoing_bytes_total)


def _count_shipped(shipped: dict[str, int]) -> None:
    """Count the tasks sparsecross submits and the bytes of their arguments shipped in the
    graph (not futures: those move between workers and are counted there)."""
    import distributed
    from dask.sizeof import sizeof

    from sparsecross.dask import runner

    original = runner._Runner.submit

    def submit(self: Any, fn: Any, *args: Any, **kw: Any) -> Any:
        shipped["tasks"] += 1
        shipped["graph_bytes"] += sum(sizeof(a) for a in args if not isinstance(a, distributed.Future))
        return original(self, fn, *args, **kw)

    runner._Runner.submit = submit  # type: ignore[method-assign]


def _top_self(state: dict[str, Any], n: int = 12) -> list[tuple[str, float]]:
    """The ``n`` functions with the most samples of their own in a ``distributed`` profile
    tree, as (function, share of all samples)."""
    counts: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        kids = node.get("children", {}).values()
        own = node.get("count", 0) - sum(k.get("count", 0) for k in kids)
        d = node.get("description") or {}
        if d.get("name") and own > 0:
            name = f"{d['name']} ({os.path.basename(str(d.get('filename', '')))}:{d.get('line_number', '')})"
            counts[name] = counts.get(name, 0) + own
        for k in kids:
            walk(k)

    walk(state)
    total = sum(counts.values()) or 1
    return [(k, round(v / total, 4)) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def _top_cprofile(prof: Any, n: int = 15) -> list[tuple[str, float]]:
    """The ``n`` functions with the most own time in a cProfile run: (function, seconds)."""
    import pstats

    st = pstats.Stats(prof)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:n]  # type: ignore[attr-defined]
    return [(f"{func} ({os.path.basename(path)}:{line})", round(v[2], 3)) for (path, line, func), v in rows]


def _warm_worker() -> float:
    """Compile/load every kernel in a worker process (run once per worker before timing)."""
    import sparsecross

    t = time.perf_counter()
    sparsecross.warmup()
    return time.perf_counter() - t


# ------------------------------------------------------------------- one task
def _warm_data(spec: Any, **kw: Any) -> None:
    """First use of the kernels / data path (and, with a client, the lane kernels on the
    workers) on a small slice, outside the clock."""
    import sparsecross

    warm = CACHE / "dist_warm_40k.parquet"
    if not warm.exists():
        sparsecross.generate(warm, rows=40_000, seed=1, row_group_size=10_000)
    sparsecross.train(warm, spec, **kw)


def _connect(name: str, profile: bool, rows_per_round: int | None) -> tuple[Any, Any, dict[str, Any]]:
    """A ``local:N`` cluster for a Dask config, its workers warmed up: (client, cluster,
    ``train`` keyword arguments)."""
    from sparsecross.dask import cluster as dask_cluster, connect

    if os.environ.get("BENCH_DASK_DEFAULTS"):  # A/B: Dask's own background settings
        dask_cluster._LOCAL_QUIET = {}
    if profile:  # Dask's sampling profiler of the workers, which local:N turns off
        dask_cluster._LOCAL_QUIET = {**dask_cluster._LOCAL_QUIET, "distributed.worker.profile.enabled": True}
    # what `--dask local:N` gives (workers without Dask's MALLOC_TRIM_THRESHOLD_)
    client, cluster = connect("local:1" if name.endswith("1worker") else "local:2")
    client.run(_warm_worker)
    kw = {"client": client, "mode": "exact"} if name == "exact" else {"client": client, "lanes": int(name[2])}
    if name.startswith("pt"):
        kw.update(mode="partitioned", partition="cell")
    if rows_per_round is not None and name != "exact":
        kw["rows_per_round"] = rows_per_round
    return client, cluster, kw


def _counters(client: Any) -> dict[str, Any]:
    """CPU and bytes counters of the client process and (with a client) of each worker."""
    c: dict[str, Any] = {"cpu": cpu_seconds(), "threads": thread_cpu(), "ru": rusage()}
    if client is not None:
        c.update(wcpu=client.run(cpu_seconds), wthreads=client.run(thread_cpu), sent=client.run(_worker_sent_bytes),
                 wru=client.run(rusage))
    return c


def _cpu_since(out: dict[str, Any], client: Any, c0: dict[str, Any], shipped: dict[str, int]) -> None:
    """Fill ``out`` with the CPU, bytes and tasks spent since the counters ``c0``."""
    out["client_cpu_seconds"] = cpu_seconds() - c0["cpu"]
    threads = thread_cpu()
    out["client_thread_cpu_seconds"] = {k: threads[k] - c0["threads"][k] for k in threads}
    ru = rusage()
    out["client_system_cpu_seconds"], out["client_page_faults"] = ru[0] - c0["ru"][0], ru[1] - c0["ru"][1]
    if client is not None:
        wru = client.run(rusage)
        out["worker_system_cpu_seconds"] = sorted(wru[a][0] - c0["wru"].get(a, (0.0, 0))[0] for a in wru)
        out["worker_page_faults"] = sorted(wru[a][1] - c0["wru"].get(a, (0.0, 0))[1] for a in wru)
        wcpu = client.run(cpu_seconds)
        out["worker_cpu_seconds"] = sorted(wcpu[a] - c0["wcpu"].get(a, 0.0) for a in wcpu)
        wthreads = client.run(thread_cpu)
        out["worker_thread_cpu_seconds"] = {role: sorted(wthreads[a][role] - c0["wthreads"][a][role] for a in wthreads)
                                            for role in ("main", "tasks", "other")}
        sent = client.run(_worker_sent_bytes)
        out["worker_sent_bytes"] = sum(sent[a] - c0["sent"].get(a, 0) for a in sent)
        out["graph_bytes"] = shipped["graph_bytes"]
        out["tasks"] = shipped["tasks"]
        out["worker_cpu_us_per_row"] = sum(out["worker_cpu_seconds"]) / out["rows"] * 1e6
    out["cpu_seconds"] = out["client_cpu_seconds"] + sum(out.get("worker_cpu_seconds", []))
    out["cpu_us_per_row"] = out["cpu_seconds"] / out["rows"] * 1e6


def _per_round(out: dict[str, Any], rounds: list[float]) -> None:
    """Fill ``out`` with the rounds' count, mean wall time and per-round costs."""
    n = len(rounds)
    out["rounds"] = n
    out["round_seconds_mean"] = sum(rounds) / n
    # coordination overhead per round: the client process's CPU (client + scheduler)
    out["client_seconds_per_round"] = out["client_cpu_seconds"] / n
    tc = out["client_thread_cpu_seconds"]
    out["per_round"] = {
        "client_main_cpu_s": tc["main"] / n,  # sparsecross's client code
        "client_loop_cpu_s": (tc["tasks"] + tc["other"]) / n,  # local:N: the scheduler + comms
        "worker_cpu_s": sum(out["worker_cpu_seconds"]) / n,
        "worker_sent_bytes": out["worker_sent_bytes"] / n,
        "graph_bytes": out["graph_bytes"] / n,
        "tasks": out["tasks"] / n,
    }


def _timed_train(out: dict[str, Any], client: Any, train_path: Path, spec: Any, profile: bool,
                 kw: dict[str, Any]) -> tuple[Any, list[float]]:
    """The timed ``train``: fills ``out`` with its wall time and costs; (model, round seconds)."""
    import sparsecross

    rounds: list[float] = []

    def on_progress(ev: Any) -> None:
        if "round_seconds" in ev.extra:
            rounds.append(ev.extra["round_seconds"])

    shipped = {"tasks": 0, "graph_bytes": 0}
    if client is not None:
        _count_shipped(shipped)
        out["idle_cpu_per_second"] = _idle_cpu(client)
    c0 = _counters(client)
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    wall0 = time.time()
    t0 = time.perf_counter()
    model = sparsecross.train(train_path, spec, on_progress=on_progress, **kw)
    out["seconds"] = time.perf_counter() - t0
    if prof is not None:
        prof.disable()
        out["client_main_profile"] = _top_cprofile(prof)
    _cpu_since(out, client, c0, shipped)
    if client is not None:
        if profile:
            out["worker_task_profile"] = _top_self(client.profile(start=wall0))
        idle = out["idle_cpu_per_second"]  # the cluster's background CPU over the run's wall time
        out["idle_cpu_seconds"] = (idle["client"] + sum(idle["workers"])) * out["seconds"]
        out["cpu_us_per_row_net_of_idle"] = (out["cpu_seconds"] - out["idle_cpu_seconds"]) / out["rows"] * 1e6
    return model, rounds


def run_task(name: str, rows: int, group_rows: int = GROUP_ROWS, profile: bool = False,
             rows_per_round: int | None = None, warm_runs: int = 0) -> dict[str, Any]:
    """One configuration, in this process: warm-up, ``warm_runs`` untimed trainings on the
    timed data (the steady state of a long job: memory already touched), the timed
    ``train``, its costs, peak RSS and test metrics."""
    import sparsecross
    from sparsecross.predict import evaluate

    train_path, test_path = data_paths(rows, group_rows)
    spec = sparsecross.load_spec(os.environ.get("BENCH_SPEC") or SPEC)
    if name == "single_1core":
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sparsecross.warmup()
    out: dict[str, Any] = {"task": name, "rows": rows, "warm_runs": warm_runs}
    client = cluster = None
    kw: dict[str, Any] = {}
    if name in DASK_TASKS:
        client, cluster, kw = _connect(name, profile, rows_per_round)
        _warm_data(spec, **kw)
        client.run(reset_peak)
    else:
        _warm_data(spec)
    for _ in range(warm_runs):
        sparsecross.train(train_path, spec, **kw)
    reset_peak()
    model, rounds = _timed_train(out, client, train_path, spec, profile, kw)
    out["client_peak_rss_bytes"] = peak_rss()
    if client is not None:
        out["worker_peak_rss_bytes"] = sorted(client.run(peak_rss).values())
    run = dict(getattr(model, "run", {}) or model.stats.pop("_run", {}))
    m = evaluate(model, test_path)
    out.update(
        rows_per_second=rows / out["seconds"],
        test_logloss=m["logloss"],
        test_auc=m["auc"],
        progressive_logloss=model.stats.get("progressive_logloss"),
        nonzeros=model.nonzeros,
        touched=model.stats["touched_features"],
        params=model.params,
        run=run,
    )
    if rounds:
        _per_round(out, rounds)
    if client is not None:
        client.close()
        cluster.close()
    return out


# --------------------------------------------------------------------- driver
def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def markdown(res: dict[str, Any]) -> str:
    rows = res["results"]
    base = rows.get("single")
    lines = [
        f"Dask scale-out, {res['rows']:,} rows in {res['row_groups']} row groups, "
        f"{res['cpus']} CPUs, load average {res['loadavg_start']} -> {res['loadavg_end']}"
        + (f", after {res['warm_runs']} untimed runs in the same processes" if res.get("warm_runs") else ""),
        "",
        "| config | rows/s | vs single | s | CPU s (client + workers), vs single | test logloss | vs single | AUC "
        "| rounds "
        "| round s (mean) | client CPU s/round | client peak RSS | worker peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in TASKS:
        r = rows.get(name)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} |")
            continue
        sp = f"{r['rows_per_second'] / base['rows_per_second']:.2f}x" if base else "-"
        ll = f"{(r['test_logloss'] / base['test_logloss'] - 1) * 100:+.2f} %" if base else "-"
        workers = ", ".join(_mib(b) for b in r.get("worker_peak_rss_bytes", [])) or "-"
        rs = r.get("round_seconds_mean")
        cs = r.get("client_seconds_per_round")
        cpu = f"{r['cpu_seconds']:.2f}"
        if r.get("worker_cpu_seconds"):
            cpu += f" ({r['client_cpu_seconds']:.2f} + " + " + ".join(f"{c:.2f}" for c in r["worker_cpu_seconds"]) + ")"
        if base and "error" not in base:
            cpu += f", {r['cpu_seconds'] / base['cpu_seconds']:.2f}x"
        cells = [name, f"{r['rows_per_second'] / 1e6:.2f}M", sp, f"{r['seconds']:.2f}", cpu, f"{r['test_logloss']:.5f}",
                 ll, f"{r['test_auc']:.4f}", str(r.get("rounds", "-")), "-" if rs is None else f"{rs:.3f}",
                 "-" if cs is None else f"{cs:.3f}", _mib(r["client_peak_rss_bytes"]), workers]
        lines.append("| " + " | ".join(cells) + " |")
    per = [(name, rows[name]) for name in TASKS if rows.get(name) and "per_round" in rows[name]]
    if per:
        lines += ["", "| config | CPU us/row (all) | net of idle | worker CPU us/row | per round: client main CPU s "
                      "| scheduler + comms CPU s | worker CPU s | worker bytes sent | graph bytes | tasks |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        if base and "error" not in base:
            lines.insert(-2, f"single-node: {base['cpu_us_per_row']:.2f} CPU us/row")
        for name, r in per:
            p = r["per_round"]
            lines.append(f"| {name} | {r['cpu_us_per_row']:.2f} | {r['cpu_us_per_row_net_of_idle']:.2f} "
                         f"| {r['worker_cpu_us_per_row']:.2f} "
                         f"| {p['client_main_cpu_s']:.3f} | {p['client_loop_cpu_s']:.3f} | {p['worker_cpu_s']:.3f} "
                         f"| {p['worker_sent_bytes'] / 2**20:.2f} MiB | {p['graph_bytes'] / 1024:.1f} KiB | {p['tasks']:.0f} |")
    tgt = res.get("target")
    if tgt:
        lines += ["", f"Target (data-parallel >= 1.6x single-node rows/s at <= 1 % worse logloss): "
                      f"{'met' if tgt['met'] else 'missed'} (best: {tgt['best']})"]
    for k, v in sorted(res.get("ratios", {}).items()):
        lines.append(f"- {k}: {v:.2f}x")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=1, help="runs per config (the fastest is kept)")
    ap.add_argument("--only", default=",".join(TASKS), help=f"comma-separated subset of {', '.join(TASKS)}")
    ap.add_argument("--group-rows", type=int, default=GROUP_ROWS, help="rows per row group of the generated data")
    ap.add_argument("--profile", action="store_true",
                    help="also profile: cProfile of the client's main thread, Dask's sampling profiles of the "
                         "workers' task threads, their event loops and the scheduler (top functions)")
    ap.add_argument("--rows-per-round", type=int, default=None,
                    help="data-parallel configs: rows per round over all lanes (default: the library's)")
    ap.add_argument("--chunk-rows-target", type=int, default=None,
                    help="partitioned configs: rows per chunk (the library's PARTITION_CHUNK_ROWS; default: its "
                         "value)")
    ap.add_argument("--spec", default=None,
                    help=f"feature spec (default: {SPEC.relative_to(ROOT)}; "
                         "data/specs/synthetic_bench_hashed.toml adds a hashed user x hour cross)")
    ap.add_argument("--warm-runs", type=int, default=0,
                    help="untimed trainings on the same rows before the timed one, in the same processes: "
                         "the steady state of a long job (its peak memory already touched), not a cold start")
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "distributed.json"))
    return ap


def _spec_name() -> str:
    path = Path(os.environ.get("BENCH_SPEC") or SPEC)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _run_config(name: str, args: argparse.Namespace) -> dict[str, Any] | None:
    """``args.repeats`` runs of one configuration, each in its own process: the fastest
    result, or the first failure's last stderr line when none succeeded."""
    best = None
    extra = ["--group-rows", str(args.group_rows), "--warm-runs", str(args.warm_runs)]
    extra += ["--profile"] if args.profile else []
    if args.rows_per_round is not None:
        extra += ["--rows-per-round", str(args.rows_per_round)]
    if args.chunk_rows_target is not None:
        extra += ["--chunk-rows-target", str(args.chunk_rows_target)]
    for _ in range(args.repeats):
        proc = subprocess.run([sys.executable, __file__, "--task", name, "--rows", str(args.rows), *extra],
                              capture_output=True, text=True, cwd=ROOT)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
        if proc.returncode != 0 or line is None:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            best = best or {"error": tail[:200]}
            continue
        r = json.loads(line[len(MARK):])
        if best is None or "error" in best or r["seconds"] < best["seconds"]:
            best = r
    return best


def _keep_other_configs(res: dict[str, Any], out: Path) -> None:
    """With ``--only``: keep the configurations of an existing results file not run now."""
    if out.exists() and set(res["results"]) != set(TASKS):
        old = json.loads(out.read_text())
        kept = {k: v for k, v in old.get("results", {}).items() if k not in res["results"]}
        if kept:
            res["results"] = {**kept, **res["results"]}
            prev = old.get("kept_from")  # (configs the old file itself kept from an earlier run)
            if prev and set(kept) <= set(prev.get("configs", ())):
                res["kept_from"] = {**prev, "configs": sorted(kept)}
            else:
                res["kept_from"] = {"started": old.get("started"), "git": old.get("git"), "configs": sorted(kept)}


def _summarize(res: dict[str, Any]) -> None:
    """Add the target check (data-parallel vs single-node) and the rows/s ratios to ``res``."""
    base = res["results"].get("single")
    dps = {k: v for k, v in res["results"].items() if k in ("dp2", "dp4") and v and "error" not in v}
    if base and "error" not in base and dps:
        scored = {k: (v["rows_per_second"] / base["rows_per_second"], v["test_logloss"] / base["test_logloss"] - 1)
                  for k, v in dps.items()}
        k = max(scored, key=lambda n: scored[n][0])
        res["target"] = {
            "speedup": {n: round(s, 3) for n, (s, _) in scored.items()},
            "logloss_delta": {n: round(d, 5) for n, (_, d) in scored.items()},
            "met": any(s >= 1.6 and d <= 0.01 for s, d in scored.values()),
            "best": f"{k}: {scored[k][0]:.2f}x, logloss {scored[k][1] * 100:+.2f} %",
        }
    ok = {k: v for k, v in res["results"].items() if v and "error" not in v}
    ratios = {}
    for dp in ("dp2", "dp4"):
        for ref, label in (("single", "single-node"), ("single_1core", "single-node on 1 core"),
                           (f"{dp}_1worker", "the same K on 1 worker")):
            if dp in ok and ref in ok:
                ratios[f"{dp} rows/s vs {label}"] = ok[dp]["rows_per_second"] / ok[ref]["rows_per_second"]
    res["ratios"] = ratios


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.spec:  # (the configs' processes read it from the environment)
        os.environ["BENCH_SPEC"] = str(Path(args.spec).resolve())
    if args.task:
        if args.chunk_rows_target is not None:
            from sparsecross import _defaults

            _defaults.PARTITION_CHUNK_ROWS = args.chunk_rows_target
        print(MARK, json.dumps(run_task(args.task, args.rows, args.group_rows, args.profile,
                                        args.rows_per_round, args.warm_runs)), flush=True)
        return 0
    import pyarrow.parquet as pq

    from sparsecross.files import atomic_output

    names = [t.strip() for t in args.only.split(",") if t.strip()]
    for name in names:
        if name not in TASKS:
            ap.error(f"unknown config {name!r}")
    train, _ = data_paths(args.rows, args.group_rows)
    res: dict[str, Any] = {
        "rows": args.rows,
        "row_groups": pq.ParquetFile(train).metadata.num_row_groups,
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "git": subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT).stdout.strip() or None,
        "rows_per_round": args.rows_per_round,
        "chunk_rows_target": args.chunk_rows_target,
        "spec": _spec_name(),
        "warm_runs": args.warm_runs,
        "results": {},
    }
    for name in names:
        best = res["results"][name] = _run_config(name, args)
        sys.stderr.write(f"{name}: {json.dumps({k: v for k, v in (best or {}).items() if k != 'params'})}\n")
    res["loadavg_end"] = _loadavg()
    out = Path(args.out)
    _keep_other_configs(res, out)
    _summarize(res)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, "results") as fh:  # a later run or readme_table.py never reads a half-written file
        fh.write(json.dumps(res, indent=2, sort_keys=True).encode() + b"\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
