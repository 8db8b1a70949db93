"""Run the whole sparsecross benchmark suite: ``python benchmarks/run_all.py [--quick]``.

Every measurement runs in its own subprocess (``tasks.py``), one after the other, pinned to
one CPU with Numba on one thread, so peak RSS is per measurement and measurements never
compete with each other.  sparsecross timings are repeated (3x by default) and summarized by
their median; peers run once.  Writes ``--out`` (JSON: metadata, every raw result, medians)
and a Markdown report next to it (``results.md`` for ``results.json``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

import workloads as W  # noqa: E402

MARK = "@@RESULT@@"
#: FTRL hyperparameters of every synthetic run (the library defaults).
PARAMS = {"alpha": 0.1, "beta": 1.0, "l1": 1.0, "l2": 0.0}
L1_GRID = [0.1, 0.3, 1.0, 3.0, 10.0]
SGD_ALPHAS = [1e-4, 1e-5]
TASK_TIMEOUT_S = 1200

TARGETS = {
    "featurize_rows_per_s": 3_000_000,
    "predict_rows_per_s": 3_000_000,
    "artifact_max_fraction_of_dense": 1 / 1000,
    "artifact_nonzeros_limit": 200_000,
    "kernel_vs_dense_min_ratio": 1.0,
    # issue 14 (checked at the largest training size of the run; stated for 10M rows)
    "process_vs_vw_sparse_min_ratio": 8.0,   # whole `sparsecross train` process rows/s / VW --sparse_weights
    "train_rows_per_s": 3_000_000,           # train/<size>/sparsecross (featurize + kernel, in process)
    "kernel_nonzeros_per_s": 60_000_000,     # kernel/<size>/sparsecross
    "peak_rss_vs_vw_sparse_max_ratio": 1.0,  # sparsecross peak RSS below VW --sparse_weights (train and process)
}

#: Slots of the FTRL state table after a training run (power of two at load <= 0.7): 10M rows
#: touch 4,335,227 keys -> 2**23 slots, 2M rows 1,178,311 -> 2**21 (derive() checks it against
#: the kernel rows' state_capacity).  machine/rmw uses the 10M table at every size.
RMW_CAPACITY = {"10m": 1 << 23, "2m": 1 << 21}
#: featurize_kind: passes over the file per process (rows/s of the median pass): one feature
#: alone featurizes 2M rows in 0.04-0.6 s, too short for one timing.
KIND_PASSES = 5
#: Presets of --only.
PRESETS = {"issue14": ("process/", "machine/", "kernel/", "train/@BIG@/"),
           # issue 11: featurization per kind; sparsecross (+ _2cores, _shuffle, _shuffle_2cores) at every size
           "issue11": ("featurize_kind/", "train/@EACH@/sparsecross"),
           # issue 13: admission (and the state budget) at the largest size, two specs
           "issue13": ("memory/@BIG@/", "budget/")}
#: issue 13 variants: name -> train() keyword arguments.  The first is the unbounded run the
#: budget fractions refer to.
MEMORY_VARIANTS = {"none": {}, "admit_after_2": {"admit_after": 2}, "admit_after_3": {"admit_after": 3},
                   "admit_probability_0.03": {"admit_probability": 0.03},
                   # item 5: the 16-bit state (goal: test logloss within 0.01% of the float32 state)
                   "state_bits_16": {"state_bits": 16}, "admit_after_2_state_bits_16": {"admit_after": 2, "state_bits": 16}}
#: The variants planned at the smaller training sizes too (the A/B of the 16-bit state).
MEMORY_VARIANTS_EVERY_SIZE = ("none", "state_bits_16")
#: Hook for the state budget (--max-state-mb, branch `membudget`): fractions of the unbounded
#: run's state_bytes_peak, planned only when ``train`` takes ``max_state_mb``.
MEMORY_BUDGET_FRACTIONS = (0.25, 0.10)
MEMORY_SPECS = ("bench", "bench_hashed")


# ------------------------------------------------------------------- metadata
def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def metadata() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions = {}
    for pkg in ("sparsecross", "numpy", "scipy", "numba", "llvmlite", "pyarrow", "scikit-learn", "vowpalwabbit",
                "river", "psutil"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    thp = ""
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        pass
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": _cmd("git", "rev-parse", "HEAD"),
        "git_dirty_library": bool(_cmd("git", "status", "--porcelain", "--", "sparsecross")),
        "git_status_library": _cmd("git", "status", "--porcelain", "--", "sparsecross").splitlines(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_allowed": sorted(os.sched_getaffinity(0)),
        "memory_bytes": mem,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "transparent_hugepage": thp,
        "loadavg_at_start": os.getloadavg(),
        "params": PARAMS,
        "seeds": {"synthetic_world": W.SEED, "test_first_row": W.TEST_FIRST_ROW,
                  "california_split": W.CALIFORNIA_SPLIT_SEED, "sklearn_random_state": 0},
    }


# ------------------------------------------------------------------- plan
def _item(id_: str, group: str, task: str, args: dict[str, Any], repeats: int = 1,
          env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [{"id": id_, "group": group, "task": task, "args": args, "repeat": r, "env": env or {}}
            for r in range(repeats)]


def memory_plan(train: Path, label: str, test: str, reps: int, variants: tuple[str, ...] | None = None
                ) -> list[dict[str, Any]]:
    """Issue 13: state bytes, peak RSS, test logloss and rows/s without and with admission (and,
    once ``train`` has it, the state budget), on each of MEMORY_SPECS, repeats interleaved
    (``variants``: those of MEMORY_VARIANTS to plan; default all)."""
    plan: list[dict[str, Any]] = []
    budget = False  # the budget rows are budget_plan()'s (task "budget", which measures the state itself)
    for spec in MEMORY_SPECS:
        common = {"train": str(train), "test": test, "spec": spec, "params": PARAMS}
        record = f"{label}_{spec}"
        per: list[list[dict[str, Any]]] = []
        for name, opts in MEMORY_VARIANTS.items():
            if variants is not None and name not in variants:
                continue
            extra = {"unbounded_record": record} if not opts else {"admit": opts}
            per.append(_item(f"memory/{label}/{spec}/{name}", "memory", "train_scx", {**common, **extra}, repeats=reps))
        if budget:
            for f in MEMORY_BUDGET_FRACTIONS:
                per.append(_item(f"memory/{label}/{spec}/max_state_{f:g}", "memory", "train_scx",
                                 {**common, "budget_fraction": f, "budget_of": record}, repeats=reps))
        plan += [runs[r] for r in range(reps) for runs in per]
    return plan


#: issue 13, the state budget: ``--max-state-mb`` of the fresh-id stream (MiB).
FRESH_ID_BUDGET_MB = 24.0


def budget_plan(train: Path, label: str, test: str, reps: int) -> list[dict[str, Any]]:
    """Issue 13, the state budget: per spec of MEMORY_SPECS an unbounded run (its peak state is
    the reference) then ``max_state_mb`` at MEMORY_BUDGET_FRACTIONS of it; and the fresh-id
    stream (a new 64-bit id per row) at FRESH_ID_BUDGET_MB, its state bytes sampled over time."""
    plan: list[dict[str, Any]] = []
    for spec in MEMORY_SPECS:
        common = {"train": str(train), "test": test, "spec": spec, "params": PARAMS}
        record = f"{label}_{spec}"
        per = [_item(f"budget/{label}/{spec}/unbounded", "budget", "budget", {**common, "budget_record": record},
                     repeats=reps)]
        for f in MEMORY_BUDGET_FRACTIONS:
            per.append(_item(f"budget/{label}/{spec}/max_state_{f:g}", "budget", "budget",
                             {**common, "budget_fraction": f, "budget_of": record}, repeats=reps))
        plan += [runs[r] for r in range(reps) for runs in per]
    stream = {"train": str(W.fresh_id_stream()), "spec": "fresh_ids", "params": PARAMS, "samples": 40}
    plan += _item(f"budget/{W._label(W.FRESH_ID_ROWS)}/fresh_ids/unbounded", "budget", "budget", stream)
    plan += _item(f"budget/{W._label(W.FRESH_ID_ROWS)}/fresh_ids/max_state_{FRESH_ID_BUDGET_MB:g}mb", "budget",
                  "budget", {**stream, "max_state_mb": FRESH_ID_BUDGET_MB})
    return plan


def build_plan(quick: bool, reps: int, extra: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sizes = W.QUICK if quick else W.FULL
    spec = "bench"
    import sparsecross

    bench_spec = sparsecross.load_spec(W.BENCH_SPEC)
    test = W.synthetic_test(sizes["test"])
    vw_test = W.vw_text(test, bench_spec)
    trains = {rows: W.synthetic_train(rows) for rows in sizes["train"]}
    lab = {rows: W._label(rows) for rows in trains}
    small = min(trains)
    cal_train, cal_test = W.california()
    cal_spec = W.resolved_spec(W.CALIFORNIA_SPEC, cal_train)
    kinds = W.kinds_table(small)
    files = {"test": str(test), "vw_test": str(vw_test), "train": {lab[r]: str(p) for r, p in trains.items()},
             "california": [str(cal_train), str(cal_test)], "kinds": str(kinds)}
    plan: list[dict[str, Any]] = []
    one_rep = 1 if quick else reps

    # -- compile time (cold: empty Numba cache dir; cached: the normal on-disk cache)
    if not quick:
        plan += _item("compile/cold", "compile", "compile", {}, env={"NUMBA_CACHE_DIR": "@TMP@"})
    plan += _item("compile/cached", "compile", "compile", {}, repeats=one_rep)

    # -- a. featurization
    for rows, path in trains.items():
        plan += _item(f"featurize/{lab[rows]}", "featurize", "featurize", {"source": str(path), "spec": spec},
                      repeats=reps)

    # -- a'. featurization per feature kind (issue 11): one feature (or one cross) alone, on the
    # smaller training file plus derived `ts` / `tags` columns (workloads.kinds_table)
    for kind in W.KIND_FEATURES:
        plan += _item(f"featurize_kind/{lab[small]}/{kind}", "featurize_kind", "featurize",
                      {"source": str(kinds), "spec": f"kind:{kind}", "passes": KIND_PASSES,
                       "warm_batch": True}, repeats=reps)

    # -- b. training end to end (--quick: the baselines only on the larger file)
    big = max(trains)
    for rows, path in trains.items():
        common = {"train": str(path), "test": str(test), "spec": spec, "params": PARAMS}
        plan += _item(f"train/{lab[rows]}/sparsecross", "train", "train_scx",
                      {**common, "save_weights": f"train_{lab[rows]}_scx"}, repeats=reps)
        # issue 11: the cost of --shuffle (library default buffer, seed 0)
        plan += _item(f"train/{lab[rows]}/sparsecross_shuffle", "train", "train_scx",
                      {**common, "shuffle": True}, repeats=reps)
        if rows == big and not quick:
            plan += _item(f"train/{lab[rows]}/sparsecross_shuffle_2cores", "train", "train_scx",
                          {**common, "shuffle": True, "cores": 2}, repeats=one_rep)
        if quick and rows != big:
            continue
        if not quick:
            plan += _item(f"train/{lab[rows]}/sparsecross_2cores", "train", "train_scx", {**common, "cores": 2},
                          repeats=one_rep)
        plan += _item(f"train/{lab[rows]}/dense", "train", "train_dense", common)
        plan += _item(f"train/{lab[rows]}/dense_prefaulted", "train", "train_dense", {**common, "prefault": True})
        vw_train = W.vw_text(path, bench_spec)
        for sparse in (False, True):
            name = "vw_sparse" if sparse else "vw_dense"
            plan += _item(f"train/{lab[rows]}/{name}", "train", "train_vw",
                          {**common, "vw_train": str(vw_train), "vw_test": str(vw_test), "rows": rows,
                           "sparse": sparse, "tag": f"train_{lab[rows]}_{name}",
                           "save_weights": True})
    # -- issue 14: whole training commands, timed as processes from start to exit
    for rows, path in trains.items():
        proc = {"train": str(path), "vw_train": str(W.vw_text(path, bench_spec)), "rows": rows, "params": PARAMS}
        # repeats interleaved (scx, default, VW, scx, ...): a drift of the machine's load during the
        # group hits both sides of the sparsecross / VW ratio alike
        per_kind = [_item(f"process/{lab[rows]}/{kind}", "process", "process", {**proc, "kind": kind}, repeats=reps)
                    for kind in ("sparsecross", "sparsecross_default", "vw_sparse")]
        plan += [runs[r] for r in range(reps) for runs in per_kind]
        plan += _item(f"process/{lab[rows]}/dense", "process", "process", {**proc, "kind": "dense"})
        if not quick and rows == big:  # no pinning: VW's parser thread / our prefetch thread get a core
            for kind in ("sparsecross", "vw_sparse"):
                plan += _item(f"process/{lab[rows]}/{kind}_2cores", "process", "process",
                              {**proc, "kind": kind, "cores": 2})
    # -- issue 14: the machine's random read-modify-write rate in a table of the state's shape
    plan += _item("machine/rmw", "machine", "rmw",
                  {"capacity": RMW_CAPACITY["10m"], "ops": 10_000_000 if quick else 50_000_000}, repeats=reps)
    if not quick:
        plan += _item("machine/rmw_2m_table", "machine", "rmw",
                      {"capacity": RMW_CAPACITY["2m"], "ops": 50_000_000}, repeats=reps)

    plan += memory_plan(trains[big], lab[big], str(test), reps)
    for rows in sorted(r for r in trains if r != big):  # `--only memory/2m/`: the 16-bit A/B at 2M rows
        plan += memory_plan(trains[rows], lab[rows], str(test), reps, MEMORY_VARIANTS_EVERY_SIZE)
    plan += budget_plan(trains[big], lab[big], str(test), reps)

    # -- b. kernel only
    for rows, path in trains.items():
        impls = ("sparsecross", "sparsecross_presized", "dense", "dense_prefaulted",
                 "sparsecross_scrambled", "dense_prefaulted_scrambled", "sparsecross_warm")
        for impl in (impls[:1] if quick and rows != big else impls):
            plan += _item(f"kernel/{lab[rows]}/{impl}", "kernel", "kernel",
                          {"train": str(path), "spec": spec, "params": PARAMS, "impl": impl}, repeats=reps)
        if extra:  # prototype table layouts (benchmark-side kernels, see bench_kernels.py)
            for impl in ("proto_record", "proto_record_block3"):
                plan += _item(f"kernel/{lab[rows]}/{impl}", "kernel", "kernel",
                              {"train": str(path), "spec": spec, "params": PARAMS, "impl": impl}, repeats=reps)
        if not quick or rows == big:  # parity experiment: VW-style regularized bias
            plan += _item(f"kernel/{lab[rows]}/dense_l1_bias", "kernel", "kernel",
                          {"train": str(path), "spec": spec, "params": PARAMS, "impl": "dense_l1_bias"})

    # -- c. artifact (on the smaller training file)
    l1s = [1.0, 10.0] if quick else L1_GRID
    for l1 in l1s:
        p = {**PARAMS, "l1": l1}
        tag = f"l1_{l1:g}_{lab[small]}"
        plan += _item(f"artifact/l1={l1:g}", "artifact", "artifact",
                      {"train": str(trains[small]), "test": str(test), "spec": spec, "params": p, "tag": tag})
        for mode in ("predict_file", "evaluate"):
            plan += _item(f"predict/l1={l1:g}/{mode}", "predict", "predict",
                          {"model": str(W.CACHE / "models" / f"{tag}.float32.scx"), "test": str(test),
                           "mode": mode}, repeats=reps)
        if l1 != PARAMS["l1"]:
            vw_train = W.vw_text(trains[small], bench_spec)
            for sparse in (False, True):
                name = "vw_sparse" if sparse else "vw_dense"
                plan += _item(f"artifact_vw/l1={l1:g}/{name}", "artifact_vw", "train_vw",
                              {"train": str(trains[small]), "test": str(test), "spec": spec, "params": p,
                               "vw_train": str(vw_train), "vw_test": str(vw_test), "rows": small,
                               "sparse": sparse, "tag": f"{tag}_{name}"})

    # -- d. peers on the same CSR
    lim = {"rlimit_gb": 16}
    for rows, path in trains.items():
        for a in SGD_ALPHAS:
            plan += _item(f"peers/synthetic_{lab[rows]}/sgd_alpha={a:g}", "peers", "peer",
                          {"train": str(path), "test": str(test), "spec": spec, "peer": "sgd",
                           "params": {"alpha": a}, **lim})
    ll_rows = 50_000 if quick else 200_000
    river_rows = 20_000 if quick else 200_000
    plan += _item(f"peers/synthetic_{lab[small]}/liblinear_first{W._label(ll_rows)}", "peers", "peer",
                  {"train": str(trains[small]), "test": str(test), "spec": spec, "peer": "liblinear", "rows": ll_rows,
                   "params": {"C": 1.0 / PARAMS["l1"]}, **lim})
    plan += _item(f"peers/synthetic_{lab[small]}/river_ftrl_first{W._label(river_rows)}", "peers", "peer",
                  {"train": str(trains[small]), "test": str(test), "spec": spec, "peer": "river", "rows": river_rows,
                   "params": PARAMS, **lim})
    plan += _item(f"peers/synthetic_{lab[small]}/sparsecross_first{W._label(river_rows)}", "peers", "train_scx",
                  {"train": str(W.synthetic_train(river_rows)), "test": str(test), "spec": spec,
                   "params": PARAMS}, repeats=one_rep)
    # California housing (seeded 80/20 split of housing.parquet)
    cal = {"train": str(cal_train), "test": str(cal_test), "spec": "california"}
    cal_vw = {"vw_train": str(W.vw_text(cal_train, cal_spec)), "vw_test": str(W.vw_text(cal_test, cal_spec))}
    import pyarrow.parquet as pq

    cal_rows = pq.ParquetFile(cal_train).metadata.num_rows
    for ep in ((1,) if quick else (1, 10)):
        p = {**PARAMS, "epochs": ep}
        plan += _item(f"peers/california/sparsecross_epochs={ep}", "california", "train_scx", {**cal, "params": p},
                      repeats=one_rep)
        plan += _item(f"peers/california/vw_passes={ep}", "california", "train_vw",
                      {**cal, **cal_vw, "params": p, "rows": cal_rows, "sparse": True, "tag": f"california_e{ep}"})
        plan += _item(f"peers/california/river_ftrl_epochs={ep}", "california", "peer",
                      {**cal, "peer": "river", "params": p, **lim})
    plan += _item("peers/california/sgd_fit_alpha=1e-4", "california", "peer",
                  {**cal, "peer": "sgd", "params": {"alpha": 1e-4, "mode": "fit", "max_iter": 1000}, **lim})
    plan += _item("peers/california/liblinear_C=1", "california", "peer",
                  {**cal, "peer": "liblinear", "params": {"C": 1.0}, **lim})
    return plan, files


# ------------------------------------------------------------------- running
def run_item(item: dict[str, Any], log) -> dict[str, Any]:
    env = dict(os.environ)
    tmpdir = None
    for k, v in item["env"].items():
        if v == "@TMP@":
            tmpdir = tempfile.mkdtemp(prefix="numba-cold-")
            v = tmpdir
        env[k] = v
    cores = int(item["args"].get("cores", 1))
    for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(cores)
    cmd = [sys.executable, str(BENCH / "tasks.py"), item["task"], json.dumps(item["args"])]
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=TASK_TIMEOUT_S, cwd=ROOT)
        wall = time.perf_counter() - t
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
        if proc.returncode != 0 or not lines:
            res = {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
        else:
            res = json.loads(lines[-1][len(MARK):])
    except subprocess.TimeoutExpired:
        wall = time.perf_counter() - t
        res = {"error": f"timeout after {TASK_TIMEOUT_S} s"}
    finally:
        if tmpdir:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
    res["subprocess_wall_s"] = wall
    return {"id": item["id"], "group": item["group"], "task": item["task"], "repeat": item["repeat"],
            "args": item["args"], "result": res}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def summarize(raw: list[dict[str, Any]]) -> dict[str, Any]:
    """Per id: median of every numeric field over the repeats without error, other fields
    from the first run, nested dicts (per encoding) likewise; plus the list of rows/s."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in raw:
        by.setdefault(r["id"], []).append(r)
    out: dict[str, Any] = {}
    for id_, runs in by.items():
        ok = [r["result"] for r in runs if "error" not in r["result"]]
        if not ok:
            out[id_] = {"error": runs[0]["result"].get("error"), "runs": len(runs)}
            continue
        out[id_] = _median_dicts(ok)
        out[id_]["runs"] = len(ok)
        if "rows_per_s" in ok[0]:
            out[id_]["rows_per_s_all"] = [r["rows_per_s"] for r in ok]
        if "rmw_per_s" in ok[0]:
            out[id_]["rmw_per_s_all"] = [r["rmw_per_s"] for r in ok]
    return out


def _median_dicts(ds: list[dict[str, Any]]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for k, v in ds[0].items():
        if _num(v):
            vals = [d[k] for d in ds if _num(d.get(k))]
            res[k] = statistics.median(vals)
        elif isinstance(v, dict) and all(isinstance(d.get(k), dict) for d in ds):
            res[k] = _median_dicts([d[k] for d in ds])
        else:
            res[k] = v
    return res


def derive(summary: dict[str, Any]) -> dict[str, Any]:
    """Cross-measurement figures: ratios, parity, target checks."""
    d: dict[str, Any] = {}
    sizes = sorted({k.split("/")[1] for k in summary if k.startswith("train/")},
                   key=lambda s: float(s[:-1]) * (1e6 if s.endswith("m") else 1e3))
    for s in sizes:
        g = lambda name: summary.get(f"train/{s}/{name}", {})  # noqa: E731
        k = lambda name: summary.get(f"kernel/{s}/{name}", {})  # noqa: E731
        scx, vw = g("sparsecross"), g("vw_sparse")
        entry: dict[str, Any] = {}
        if scx.get("test_logloss") is not None and vw.get("test_logloss") is not None:
            entry["test_logloss_sparsecross"] = scx["test_logloss"]
            entry["test_logloss_vw"] = vw["test_logloss"]
            entry["test_logloss_diff"] = vw["test_logloss"] - scx["test_logloss"]
            entry["test_auc_diff"] = vw["test_auc"] - scx["test_auc"]
            entry["nonzeros"] = [scx.get("nonzeros"), vw.get("nonzeros")]
            entry["touched"] = [scx.get("touched_features"), vw.get("touched_features")]
            entry["bias"] = [scx.get("bias"), vw.get("bias")]
            entry["bias_if_regularized"] = scx.get("bias_if_regularized")
            entry["bias_dense_l1_bias_kernel"] = k("dense_l1_bias").get("bias")
            entry["test_logloss_vw_our_scorer"] = vw.get("our_scorer_logloss")
            entry.update(_overlap(f"train_{s}_scx", f"train_{s}_vw_sparse"))
        for name in ("dense", "dense_prefaulted"):
            if g(name).get("model_digest"):
                entry[f"bit_identical_to_{name}"] = g(name)["model_digest"] == scx.get("model_digest")
        for name in ("dense", "dense_prefaulted", "vw_dense", "vw_sparse"):
            if g(name).get("rows_per_s") and scx.get("rows_per_s"):
                entry[f"e2e_speedup_vs_{name}"] = scx["rows_per_s"] / g(name)["rows_per_s"]
        for name in ("dense", "dense_prefaulted"):
            if k(name).get("rows_per_s") and k("sparsecross").get("rows_per_s"):
                entry[f"kernel_speed_ratio_vs_{name}"] = k("sparsecross")["rows_per_s"] / k(name)["rows_per_s"]
        d[s] = entry
    d["issue14"] = issue14(summary)
    d["issue13"] = issue13(summary)
    d["shuffle"] = shuffle_cost(summary, sizes)
    # featurization RSS growth
    feats = [summary[k] for k in summary if k.startswith("featurize/") and "peak_rss_bytes" in summary[k]]
    if len(feats) >= 2:
        d["featurize_peak_rss_ratio_largest_vs_smallest"] = feats[-1]["peak_rss_bytes"] / feats[0]["peak_rss_bytes"]
    return d


def shuffle_cost(summary: dict[str, Any], sizes: list[str]) -> dict[str, Any]:
    """Issue 11: ``train(..., shuffle=True)`` (default buffer) against the files' order, per size."""
    out: dict[str, Any] = {}
    for s in sizes:
        for name, ref in (("sparsecross_shuffle", "sparsecross"), ("sparsecross_shuffle_2cores", "sparsecross_2cores")):
            base = summary.get(f"train/{s}/{ref}") or {}
            sh = summary.get(f"train/{s}/{name}") or {}
            if not (base.get("rows_per_s") and sh.get("rows_per_s")):
                continue
            e = {"no_shuffle_id": f"train/{s}/{ref}",
                 "rows_per_s": sh["rows_per_s"], "rows_per_s_no_shuffle": base["rows_per_s"],
                 "speed_ratio": sh["rows_per_s"] / base["rows_per_s"],
                 "peak_rss_bytes": sh.get("peak_rss_bytes"), "peak_rss_bytes_no_shuffle": base.get("peak_rss_bytes"),
                 "shuffle_buffer_rows": sh.get("shuffle_buffer_rows"),
                 "cpu_share": sh.get("cpu_share"), "cpu_share_no_shuffle": base.get("cpu_share")}
            if sh.get("peak_rss_bytes") and base.get("peak_rss_bytes"):
                e["peak_rss_extra_bytes"] = sh["peak_rss_bytes"] - base["peak_rss_bytes"]
                e["peak_rss_ratio"] = sh["peak_rss_bytes"] / base["peak_rss_bytes"]
            if sh.get("test_logloss") is not None and base.get("test_logloss") is not None:
                e["test_logloss"] = sh["test_logloss"]
                e["test_logloss_no_shuffle"] = base["test_logloss"]
                e["test_logloss_diff"] = sh["test_logloss"] - base["test_logloss"]
            out[f"{s}/{name}"] = e
    return out


def issue13(summary: dict[str, Any]) -> dict[str, Any]:
    """Issue 13: per size and spec, each variant's state and logloss against the unbounded run
    (goal: admit_after_2 at or under half the state for at most 0.05% worse test logloss)."""
    out: dict[str, Any] = {}
    for key, v in summary.items():
        parts = key.split("/")
        if len(parts) != 4 or parts[0] != "memory" or parts[3] == "none":
            continue
        base = summary.get(f"memory/{parts[1]}/{parts[2]}/none") or {}
        if not (base.get("state_bytes_peak") and v.get("state_bytes_peak")):
            continue
        e = {"state_bytes_peak": v["state_bytes_peak"], "state_bytes_peak_unbounded": base["state_bytes_peak"],
             "state_ratio": v["state_bytes_peak"] / base["state_bytes_peak"]}
        if v.get("test_logloss") is not None and base.get("test_logloss"):
            e["test_logloss"] = v["test_logloss"]
            e["test_logloss_unbounded"] = base["test_logloss"]
            e["test_logloss_rel_change"] = v["test_logloss"] / base["test_logloss"] - 1
        for k in ("peak_rss_bytes", "rows_per_s", "touched_features", "admitted_features", "rejected_sightings"):
            if v.get(k) is not None:
                e[k] = v[k]
            if base.get(k) is not None:
                e[f"{k}_unbounded"] = base[k]
        if parts[3] == "admit_after_2" and "test_logloss_rel_change" in e:
            e["goal_met"] = e["state_ratio"] <= 0.5 and e["test_logloss_rel_change"] <= 0.0005
        if parts[3] == "state_bits_16" and "test_logloss_rel_change" in e:  # item 5: logloss cost < 0.01%
            e["goal_met"] = e["test_logloss_rel_change"] < 0.0001
        out[f"{parts[1]}/{parts[2]}/{parts[3]}"] = e
    return out


def _size_key(s: str) -> float:
    return float(s[:-1]) * (1e6 if s.endswith("m") else 1e3)


def issue14(summary: dict[str, Any], targets: dict[str, Any] = TARGETS) -> dict[str, Any]:
    """Issue 14's figures at the largest training size that has process rows: whole-process
    rows/s vs VW --sparse_weights, training rows/s, kernel nonzeros/s next to the machine's random
    RMW rate, peak RSS vs VW; and the goal checks (the goals are stated for 10M rows)."""
    sizes = sorted({k.split("/")[1] for k in summary if k.startswith("process/")}, key=_size_key)
    if not sizes:
        return {}
    size = sizes[-1]
    g = lambda k: summary.get(k) or {}  # noqa: E731
    P = {name: g(f"process/{size}/{name}") for name in ("sparsecross", "sparsecross_default", "vw_sparse", "dense",
                                                          "sparsecross_2cores", "vw_sparse_2cores")}
    tr, tv = g(f"train/{size}/sparsecross"), g(f"train/{size}/vw_sparse")
    ker, rmw = g(f"kernel/{size}/sparsecross"), g("machine/rmw")
    e: dict[str, Any] = {"size": size, "goal_size": "10m", "at_goal_size": size == "10m"}

    def ratio(a: Any, b: Any) -> float | None:
        return a / b if a and b else None

    vw = P["vw_sparse"]
    for name, s in P.items():
        if s.get("rows_per_s"):
            e[f"process_rows_per_s_{name}"] = s["rows_per_s"]
            e[f"process_peak_rss_{name}"] = s.get("peak_rss_bytes")
            if s.get("child_cpu_s"):
                e[f"process_cpu_rows_per_s_{name}"] = s["rows"] / s["child_cpu_s"]
    e["process_speedup_vs_vw_sparse"] = ratio(P["sparsecross"].get("rows_per_s"), vw.get("rows_per_s"))
    e["process_speedup_vs_vw_sparse_default_flags"] = ratio(P["sparsecross_default"].get("rows_per_s"),
                                                            vw.get("rows_per_s"))
    e["process_speedup_vs_vw_sparse_2cores"] = ratio(P["sparsecross_2cores"].get("rows_per_s"),
                                                     P["vw_sparse_2cores"].get("rows_per_s"))
    e["process_cpu_time_ratio_vw_over_sparsecross"] = ratio(vw.get("child_cpu_s"), P["sparsecross"].get("child_cpu_s"))
    e["process_peak_rss_ratio_vs_vw_sparse"] = ratio(P["sparsecross"].get("peak_rss_bytes"), vw.get("peak_rss_bytes"))
    e["process_nonzeros_equal_train"] = (P["sparsecross"].get("nonzeros") == tr.get("nonzeros")
                                         if P["sparsecross"].get("nonzeros") and tr.get("nonzeros") else None)
    e["train_rows_per_s"] = tr.get("rows_per_s")
    e["train_peak_rss_ratio_vs_vw_sparse"] = ratio(tr.get("peak_rss_bytes"), tv.get("peak_rss_bytes"))
    e["kernel_nonzeros_per_s"] = ker.get("nonzeros_per_s")
    e["machine_rmw_per_s"] = rmw.get("rmw_per_s")
    e["kernel_nonzeros_per_rmw"] = ratio(ker.get("nonzeros_per_s"), rmw.get("rmw_per_s"))
    shares = {k: v["cpu_share"] for k, v in summary.items()
              if (k.startswith((f"process/{size}/", "machine/")) or k in (f"train/{size}/sparsecross",
                                                                           f"kernel/{size}/sparsecross"))
              and v.get("cpu_share") is not None}
    if shares:  # CPU time / wall of the pinned measurements: well below 1 = they waited for their core
        e["cpu_share_min"] = min(shares.values())
        e["cpu_share_min_id"] = min(shares, key=shares.get)
        e["loaded_machine"] = e["cpu_share_min"] < 0.9
    k10 = g("kernel/10m/sparsecross").get("state_capacity")
    if k10 and rmw.get("capacity"):
        e["rmw_table_matches_10m_state"] = k10 == rmw["capacity"]
    checks = []

    def check(name: str, value: Any, target: float, ok: Any, what: str) -> None:
        checks.append({"goal": name, "value": value, "target": target, "met": None if ok is None else bool(ok),
                       "what": what})

    r = e["process_speedup_vs_vw_sparse"]
    check("process_vs_vw_sparse", r, targets["process_vs_vw_sparse_min_ratio"],
          None if r is None else r >= targets["process_vs_vw_sparse_min_ratio"],
          "whole `sparsecross train --names 0 -q` process rows/s / whole VW --ftrl --sparse_weights process rows/s")
    v = e["train_rows_per_s"]
    check("train_rows_per_s", v, targets["train_rows_per_s"], None if v is None else v >= targets["train_rows_per_s"],
          "training rows/s in process (featurize + kernel)")
    v = e["kernel_nonzeros_per_s"]
    check("kernel_nonzeros_per_s", v, targets["kernel_nonzeros_per_s"],
          None if v is None else v >= targets["kernel_nonzeros_per_s"], "kernel-only nonzeros/s")
    for name, rr in (("train_peak_rss_vs_vw_sparse", e["train_peak_rss_ratio_vs_vw_sparse"]),
                     ("process_peak_rss_vs_vw_sparse", e["process_peak_rss_ratio_vs_vw_sparse"])):
        check(name, rr, targets["peak_rss_vs_vw_sparse_max_ratio"],
              None if rr is None else rr < targets["peak_rss_vs_vw_sparse_max_ratio"],
              "peak RSS sparsecross / VW --sparse_weights (" + name.split("_")[0] + ")")
    e["checks"] = checks
    return e


def _overlap(a_tag: str, b_tag: str) -> dict[str, Any]:
    import numpy as np

    fa = W.CACHE / "models" / f"{a_tag}.weights.npz"
    fb = W.CACHE / "vw" / f"{b_tag}.weights.npz"
    if not (fa.exists() and fb.exists()):
        return {}
    a, b = np.load(fa), np.load(fb)
    ka, kb = a["cols"].astype(np.int64), b["cols"].astype(np.int64)
    common, ia, ib = np.intersect1d(ka, kb, return_indices=True)
    wd = np.abs(a["w"][ia].astype(np.float64) - b["w"][ib].astype(np.float64))
    return {"nonzero_keys_common": int(len(common)), "nonzero_keys_only_sparsecross": int(len(ka) - len(common)),
            "nonzero_keys_only_vw": int(len(kb) - len(common)),
            "weight_abs_diff_max": float(wd.max()) if len(wd) else 0.0,
            "weight_abs_diff_median": float(np.median(wd)) if len(wd) else 0.0}


# ------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 repeat: a smoke run")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/results.json, "
                                                  "or results_quick.json with --quick)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the sparsecross timings")
    ap.add_argument("--only", default="", help="comma-separated id prefixes to run (default: all)")
    ap.add_argument("--issue14", action="store_true",
                    help="preset: --only process/,machine/,kernel/,train/<largest size>/ (10m; 500k with --quick)")
    ap.add_argument("--issue11", action="store_true",
                    help="preset: --only featurize_kind/,train/<each size>/sparsecross (featurization per feature "
                         "kind; --shuffle against the files' order)")
    ap.add_argument("--issue13", action="store_true",
                    help="preset: --only memory/<largest size>/ (admission and state budget: state bytes, peak RSS, "
                         "test logloss, rows/s; 10m, 500k with --quick)")
    ap.add_argument("--merge", action="store_true",
                    help="update --out in place: replace/add only the measurements run now")
    ap.add_argument("--extra", action="store_true",
                    help="also plan the experimental prototype kernels (table layout)")
    args = ap.parse_args(argv)
    reps = 1 if args.quick else args.repeats
    default = "results_quick.json" if args.quick else "results.json"
    for name in ("issue14", "issue11", "issue13"):
        if getattr(args, name) and not args.merge:  # a partial run never replaces the full suite's file by default
            default = f"results_{name}_quick.json" if args.quick else f"results_{name}.json"
    out = Path(args.out) if args.out else BENCH / "results" / default
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

    meta = metadata()
    meta["quick"] = args.quick
    meta["repeats"] = reps
    log("preparing data (cached in benchmarks/cache/)")
    meta["data"] = W.prepare(args.quick, log=log)
    plan, files = build_plan(args.quick, reps, extra=args.extra)
    meta["files"] = files
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    if args.issue14:
        big = W._label(max((W.QUICK if args.quick else W.FULL)["train"]))
        only += [p.replace("@BIG@", big) for p in PRESETS["issue14"]]
    if args.issue13:
        big = W._label(max((W.QUICK if args.quick else W.FULL)["train"]))
        only += [p.replace("@BIG@", big) for p in PRESETS["issue13"]]
    if args.issue11:
        for p in PRESETS["issue11"]:
            only += ([p.replace("@EACH@", W._label(r)) for r in (W.QUICK if args.quick else W.FULL)["train"]]
                     if "@EACH@" in p else [p])
    if only:
        plan = [p for p in plan if p["id"].startswith(tuple(only))]
        meta["only"] = only
    # page-cache warm: every measurement reads hot files
    for p in {Path(x) for x in _all_paths(files)}:
        if p.exists():
            with open(p, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    log(f"{len(plan)} measurements")
    raw: list[dict[str, Any]] = []
    t_meas = time.perf_counter()
    for i, item in enumerate(plan):
        r = run_item(item, log)
        raw.append(r)
        res = r["result"]
        brief = res.get("error") or ", ".join(
            f"{k}={_fmt(res[k])}" for k in ("rows_per_s", "rmw_per_s", "peak_rss_bytes", "test_logloss", "nonzeros",
                                            "seconds", "cpu_share")
            if k in res)
        log(f"{i + 1}/{len(plan)} {item['id']} #{item['repeat']}: {brief}")
    meta["measure_seconds"] = time.perf_counter() - t_meas
    meta["total_seconds"] = time.perf_counter() - t0
    meta["loadavg_at_end"] = os.getloadavg()
    if args.merge and out.exists():
        old = json.loads(out.read_text())
        ids = {r["id"] for r in raw}
        raw = _merge_raw(old["raw"], raw)
        merged = old["meta"].get("merged_runs", [])
        merged.append({k: meta[k] for k in ("date_utc", "git_sha", "git_dirty_library", "loadavg_at_start",
                                            "loadavg_at_end", "measure_seconds")} | {"ids": sorted(ids)})
        meta = old["meta"]
        meta["merged_runs"] = merged
    summary = summarize(raw)
    doc = {"meta": meta, "targets": TARGETS, "summary": summary, "derived": derive(summary), "raw": raw}
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, out)  # --merge, compare.py and readme_table.py read it back
    from report import render

    md = out.with_suffix(".md")
    md.write_text(render(doc))
    log(f"wrote {out} and {md} (total {meta['total_seconds']:.0f} s)")
    return 0


def _merge_raw(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Old results with every id that was re-run replaced, in place, by its new runs; new ids
    go at the end."""
    by_new: dict[str, list[dict[str, Any]]] = {}
    for r in new:
        by_new.setdefault(r["id"], []).append(r)
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    for r in old:
        if r["id"] in by_new:
            if r["id"] not in done:
                out.extend(by_new[r["id"]])
                done.add(r["id"])
        else:
            out.append(r)
    out.extend(r for r in new if r["id"] not in done)
    return out


def _all_paths(files: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for v in files.values():
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            out.extend(v.values())
        elif isinstance(v, list):
            out.extend(v)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and v > 10**6:
        return f"{v / 1e6:.1f}M"
    return str(v)


if __name__ == "__main__":
    raise SystemExit(main())
