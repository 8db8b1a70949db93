"""One measurement per process: ``python benchmarks/tasks.py TASK 'JSON-ARGS'``.

``run_all.py`` starts this script once per measurement, so ``ru_maxrss`` (peak RSS) belongs to
that measurement alone.  The last line printed is ``@@RESULT@@ {json}``.

Every task first pins itself to one CPU (``os.sched_setaffinity``) and sets Numba to one
thread (``cores=1``, the default), imports what it needs, compiles (or loads from Numba's
disk cache) its kernels and records that time separately, then measures.  ``peak_rss_bytes``
is read right after the measured phase (before any evaluation on the test set);
``base_rss_bytes`` is the RSS just before it (interpreter + libraries + compiled kernels).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import pickle
import resource
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402

import workloads as W  # noqa: E402

MARK = "@@RESULT@@"
MODELS = W.CACHE / "models"
#: issue 13: the unbounded runs' peak state, read by the budget variants (in the worktree, not the cache)
UNBOUNDED = BENCH / "results" / "issue13_unbounded"
VW_DIR = W.CACHE / "vw"


# ---------------------------------------------------------------- helpers
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _rollup_kb(field: str) -> int:
    try:
        with open("/proc/self/smaps_rollup") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def peak_rss() -> int:
    """Peak RSS of this process image (VmHWM) since the last :func:`mark_base` reset.

    Not ``ru_maxrss``: Linux keeps the high-water mark of the image *before* ``execve`` in it,
    so a child started by a big parent reports at least the parent's RSS."""
    return _status_kb("VmHWM") or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def mark_base(out: dict[str, Any]) -> None:
    """Start of the measured phase: record RSS, then reset the peak-RSS mark to it, so that
    ``peak_rss()`` afterwards is the peak during the measured phase (resident memory included)."""
    gc.collect()
    out["setup_peak_rss_bytes"] = peak_rss()  # imports + warmup (+ data loading for some tasks)
    out["base_rss_bytes"] = cur_rss()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        out["peak_reset"] = True
    except OSError:
        out["peak_reset"] = False


def cur_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _cpu_times() -> dict[int, tuple[int, int]]:
    out = {}
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                f = line.split()
                vals = [int(x) for x in f[1:]]
                out[int(f[0][3:])] = (vals[3] + vals[4], sum(vals))  # idle + iowait, total
    return out


def idlest_cpu(cpus: list[int], window_s: float = 0.25) -> int:
    """The allowed CPU with the most idle time over a short window (the machine is shared)."""
    try:
        a = _cpu_times()
        time.sleep(window_s)
        b = _cpu_times()
        idle = {c: (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in cpus if c in a and c in b}
        return max(idle, key=idle.get) if idle else cpus[-1]
    except (OSError, ValueError, IndexError):
        return cpus[-1]


def setup(args: dict[str, Any]) -> dict[str, Any]:
    cores = int(args.get("cores", 1))
    info: dict[str, Any] = {"cores": cores, "loadavg_1m_at_start": os.getloadavg()[0]}
    if cores == 1:
        cpus = sorted(os.sched_getaffinity(0))
        cpu = int(args["cpu"]) if "cpu" in args else idlest_cpu(cpus)
        os.sched_setaffinity(0, {cpu})
        info["cpu"] = cpu
    if args.get("rlimit_gb"):
        lim = int(float(args["rlimit_gb"]) * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
        info["rlimit_as_gb"] = float(args["rlimit_gb"])
    return info


def numba_one_thread(cores: int) -> None:
    import numba

    if cores == 1:
        numba.set_num_threads(1)


def batch_rows(args: dict[str, Any]) -> int:
    """Rows per batch: ``args["batch_rows"]`` or the library default (what users get)."""
    if "batch_rows" in args:
        return int(args["batch_rows"])
    from sparsecross.read import DEFAULT_BATCH_ROWS

    return int(DEFAULT_BATCH_ROWS)


def save_npz(path: Path, **arrays: Any) -> None:
    """``np.savez`` to a temporary name, renamed when complete (later tasks read it back)."""
    tmp = W._tmp(path)
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def exact_metrics(margins: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Test logloss (p clipped to [1e-15, 1-1e-15]) and exact rank AUC from margins."""
    from scipy.stats import rankdata

    m = np.asarray(margins, dtype=np.float64)
    p = np.where(m >= 0, 1.0 / (1.0 + np.exp(-np.abs(m))), np.exp(-np.abs(m)) / (1.0 + np.exp(-np.abs(m))))
    q = np.clip(p, 1e-15, 1 - 1e-15)
    yy = np.asarray(y, dtype=np.float64)
    ll = float(np.mean(-(yy * np.log(q) + (1 - yy) * np.log(1 - q))))
    pos = yy > 0.5
    n_pos = int(pos.sum())
    n_neg = len(yy) - n_pos
    ranks = rankdata(m)
    auc = float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)) if n_pos and n_neg else float("nan")
    return {"test_logloss": ll, "test_auc": auc, "test_rows": int(len(yy))}


def kernel_signatures() -> int:
    """Total compiled signatures of every sparsecross kernel (to detect compiles in a timed run)."""
    from sparsecross._kernels import crosses, ftrl, hash as khash, score, table, varint

    n = 0
    for mod in (crosses, ftrl, khash, score, table, varint):
        for v in vars(mod).values():
            if hasattr(v, "signatures"):
                n += len(v.signatures)
    return n


def spec_for(name: str, train_source: Path | None = None) -> Any:
    import sparsecross

    if name == "bench":
        return sparsecross.load_spec(W.BENCH_SPEC)
    if name == "bench_hashed":
        return sparsecross.load_spec(W.BENCH_HASHED_SPEC)
    if name.startswith("kind:"):  # featurize_kind: one feature kind alone (quantiles from the file)
        return W.kind_spec(name[len("kind:"):], train_source)
    if name == "california":
        assert train_source is not None
        return W.resolved_spec(W.CALIFORNIA_SPEC, train_source)
    raise ValueError(name)


def model_digest(keys: np.ndarray, weights: np.ndarray, bias: float) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())
    h.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    h.update(np.float64(bias).tobytes())
    return h.hexdigest()[:16]


def _unique_columns(train: Path) -> int:
    """Distinct column ids of a cached CSR, computed in a child process."""
    import subprocess

    code = ("import sys, numpy as np; sys.path[:0] = [%r, %r]; import workloads as W, sparsecross; "
            "X = W.csr(W.Path(%r), sparsecross.load_spec(W.BENCH_SPEC), mmap=True); "
            "print(len(np.unique(np.asarray(X['indices']))))" % (str(ROOT), str(BENCH), str(train)))
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


class _CSR:
    """Duck-typed CSR chunk for train_batch: indptr slice into shared indices/data."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_columns: int) -> None:
        self.indptr, self.indices, self.data = indptr, indices, data
        self.shape = (len(indptr) - 1, n_columns)


def scx_test_metrics(model: Any, test: Path, spec: Any) -> dict[str, float]:
    T = W.csr(test, spec)
    from sparsecross._kernels.score import score_csr

    tk, tw = model.lookup_table()
    m = score_csr(T["indptr"], T["indices"], T["data"], tk, tw, model.bias)
    return exact_metrics(m, T["y"])


# ---------------------------------------------------------------- tasks
def task_compile(args: dict[str, Any]) -> dict[str, Any]:
    """Kernel compile time, cold (empty NUMBA_CACHE_DIR, set by the caller) or cached."""
    out = setup(args)
    t = time.perf_counter()
    import sparsecross

    out["import_s"] = time.perf_counter() - t
    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    out["sparsecross_warmup_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    t = time.perf_counter()
    _warm_dense()
    out["dense_kernel_compile_s"] = time.perf_counter() - t
    out["numba_cache_dir"] = os.environ.get("NUMBA_CACHE_DIR", "")
    return out


def warm_rehash() -> float:
    """sparsecross.warmup() never grows a table, so ``table.rehash`` would otherwise be
    compiled / loaded from cache at the first growth, inside the timed run.  Returns seconds."""
    from sparsecross.state import FTRLState

    t = time.perf_counter()
    for dtype in ("float32", "float64"):
        st = FTRLState(1000, dtype)
        st.grow()
    return time.perf_counter() - t


def _warm_dense() -> None:
    from bench_kernels import dense_export, dense_ftrl_pass, dense_touched

    z = np.zeros(8, np.float32)
    n = np.zeros(8, np.float32)
    ip = np.array([0, 2], np.int64)
    ix = np.array([1, 3], np.int64)
    dt = np.ones(2, np.float32)
    dense_ftrl_pass(ip, ix, dt, np.ones(1), z, n, np.zeros(2), 0.1, 1.0, 0.0, 0.0, np.zeros(3))
    dense_ftrl_pass(ip, ix, dt, np.ones(1), z, n, np.zeros(2), 0.1, 1.0, 0.0, 0.0, np.zeros(3), 0.0, 0.0)
    dense_export(z, n, 0.1, 1.0, 0.0, 0.0)
    dense_touched(n)


def task_featurize(args: dict[str, Any]) -> dict[str, Any]:
    out = setup(args)
    import sparsecross

    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    out["compile_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    src = Path(args["source"])
    spec = spec_for(args["spec"], src)
    if args.get("warm_batch"):  # featurize_kind: kind-specific kernels (not all in warmup()) load before the clock
        t = time.perf_counter()
        for b in sparsecross.iter_batches(src, spec, batch_rows=batch_rows(args)):
            break
        b = None
        out["warm_batch_s"] = time.perf_counter() - t
    sig0 = kernel_signatures()
    mark_base(out)
    # passes > 1 (featurize_kind: one feature alone takes ~0.05 s per 2M rows): read the file that
    # many times, rows/s of the median pass; peak RSS over all passes
    times = []
    for _ in range(max(1, int(args.get("passes", 1)))):
        rows = nnz = batches = 0
        t = time.perf_counter()
        for b in sparsecross.iter_batches(src, spec, batch_rows=batch_rows(args)):
            rows += b.X.shape[0]
            nnz += b.X.nnz
            batches += 1
        times.append(time.perf_counter() - t)
        b = None
    dt = float(np.median(times))
    out["peak_rss_bytes"] = peak_rss()
    if len(times) > 1:
        out.update(passes=len(times), seconds_all_passes=times, rows_per_s_best_pass=rows / min(times))
    import pyarrow as pa

    out.update(batch_rows=batch_rows(args), rows=rows, nonzeros=nnz, batches=batches, seconds=dt, rows_per_s=rows / dt,
               nonzeros_per_s=nnz / dt, nonzeros_per_row=nnz / max(1, rows), n_columns=int(spec.n_columns),
               spec_columns=list(spec.columns), compiles_during_run=kernel_signatures() - sig0,
               arrow_pool_max_bytes=int(pa.default_memory_pool().max_memory()))
    return out


def task_train_scx(args: dict[str, Any]) -> dict[str, Any]:
    """sparsecross.train end to end (Parquet -> model), float32 state."""
    out = setup(args)
    import sparsecross
    from sparsecross.predict import evaluate

    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    out["compile_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    train = Path(args["train"])
    spec = spec_for(args["spec"], train)
    p = args["params"]
    shuffle = {}
    if args.get("shuffle"):  # --shuffle: row groups permuted, rows shuffled in windows (library default buffer)
        from sparsecross.order import DEFAULT_SHUFFLE_BUFFER_ROWS

        shuffle = {"shuffle": True, "shuffle_seed": int(args.get("shuffle_seed", 0))}
        if args.get("shuffle_buffer_rows") is not None:
            shuffle["shuffle_buffer_rows"] = int(args["shuffle_buffer_rows"])
        out["shuffle_buffer_rows"] = int(shuffle.get("shuffle_buffer_rows", DEFAULT_SHUFFLE_BUFFER_ROWS))
        # warmup() does not cover the shuffle path: its kernels would be compiled / loaded from Numba's
        # cache inside the timed run (seen: 2-9 signatures).  Train untimed on a small file of several
        # row groups, with the default buffer and a small one (several windows), before the clock.
        t = time.perf_counter()
        warm = W.shuffle_warmup_file()
        for buf in (None, 4096):
            sparsecross.train(warm, spec, alpha=p["alpha"], beta=p["beta"], l1=p["l1"], l2=p["l2"],
                              batch_rows=min(batch_rows(args), 8192), shuffle=True,
                              state_dtype=args.get("state_dtype", "float32"),
                              **({} if buf is None else {"shuffle_buffer_rows": buf}))
        out["shuffle_warmup_s"] = time.perf_counter() - t
    out["shuffle"] = bool(shuffle)
    memory = _memory_options(args)  # issue 13: admission (and the state budget, when it exists)
    out["memory_options"] = memory
    sig0 = kernel_signatures()
    mark_base(out)
    c = time.process_time()
    t = time.perf_counter()
    model, state = sparsecross.train(train, spec, alpha=p["alpha"], beta=p["beta"], l1=p["l1"], l2=p["l2"],
                                     epochs=int(p.get("epochs", 1)), batch_rows=batch_rows(args),
                                     state_dtype=args.get("state_dtype", "float32"), return_state=True, **shuffle,
                                     **memory)
    dt = time.perf_counter() - t
    out["cpu_share"] = (time.process_time() - c) / dt  # all threads; < 1 on one core: waited for it
    out["peak_rss_bytes"] = peak_rss()
    # read now: model_bytes() below loads the export kernels, which are not part of the timed run
    compiles_during_run = kernel_signatures() - sig0
    rows = int(model.stats["rows"]) * int(p.get("epochs", 1))
    from sparsecross.export import model_bytes

    zb, nb = (float(x) for x in state.bias)
    # What the bias weight would be if it were L1/L2-regularized like any coordinate (as VW's
    # constant feature is): explains most of the bias difference to VW.
    bias_l1 = 0.0 if abs(zb) <= p["l1"] else -(zb - np.sign(zb) * p["l1"]) / ((p["beta"] + np.sqrt(nb)) / p["alpha"] + p["l2"])
    out.update(batch_rows=batch_rows(args), train_rows=int(model.stats["rows"]), epochs=int(p.get("epochs", 1)),
               model_bytes=len(model_bytes(model, "float32")), bias_if_regularized=float(bias_l1))
    out.update(rows=rows, seconds=dt, rows_per_s=rows / dt, touched_features=int(model.stats["touched_features"]),
               nonzeros=model.nonzeros, state_bytes=state.nbytes, state_capacity=state.capacity,
               state_growths=getattr(state, "growths", None),
               progressive_logloss=model.stats.get("progressive_logloss"), bias=model.bias,
               compiles_during_run=compiles_during_run,
               model_digest=model_digest(model.keys, model.weights, model.bias),
               state_bytes_peak=model.run.get("state_bytes_peak"),
               **{k: model.stats[k] for k in ("admitted_features", "rejected_sightings", "admit_filter_bytes",
                                              "evicted_features") if k in model.stats})
    if args.get("unbounded_record"):  # the budget variants are fractions of this run's peak state
        UNBOUNDED.mkdir(parents=True, exist_ok=True)
        (UNBOUNDED / f"{args['unbounded_record']}.json").write_text(json.dumps({"state_bytes_peak": out["state_bytes_peak"]}))
    if args.get("save_weights"):
        MODELS.mkdir(parents=True, exist_ok=True)
        save_npz(MODELS / f"{args['save_weights']}.weights.npz", cols=model.keys.astype(np.int64), w=model.weights,
                 bias=model.bias)
    if args.get("test"):
        test = Path(args["test"])
        out.update(scx_test_metrics(model, test, model.spec))
        t = time.perf_counter()
        ev = evaluate(model, test)
        out["evaluate_s"] = time.perf_counter() - t
        out["evaluate_logloss"] = ev["logloss"]
        out["evaluate_auc_hist"] = ev["auc"]
    return out


def _memory_options(args: dict[str, Any]) -> dict[str, Any]:
    """``train`` keyword arguments of issue 13: ``args["admit"]`` as is; ``args["budget_fraction"]``
    becomes ``max_state_mb`` = that fraction of the unbounded run's ``state_bytes_peak`` (recorded by
    the run with ``unbounded_record`` = ``args["budget_of"]``)."""
    opts = dict(args.get("admit") or {})
    if args.get("budget_fraction") is not None:
        rec = json.loads((UNBOUNDED / f"{args['budget_of']}.json").read_text())
        opts["max_state_mb"] = float(args["budget_fraction"]) * rec["state_bytes_peak"] / (1 << 20)
    return opts


def _dense_state(n_columns: int, prefault: bool, out: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Dense float32 z and n of the yardstick.  ``prefault``: allocate and touch every page
    (time in ``out["prefault_s"]``) so the timed run does not pay page faults; otherwise
    calloc'ed, the pages are faulted in (zeroed by the kernel) at first touch, inside the run."""
    if not prefault:
        return np.zeros(n_columns, np.float32), np.zeros(n_columns, np.float32)
    t = time.perf_counter()
    z = np.ones(n_columns, np.float32)
    n = np.ones(n_columns, np.float32)
    z.fill(0)
    n.fill(0)
    out["prefault_s"] = time.perf_counter() - t
    return z, n


def task_train_dense(args: dict[str, Any]) -> dict[str, Any]:
    """The yardstick end to end: same reader/featurizer/prefetch as train(), dense z/n arrays."""
    out = setup(args)
    import sparsecross
    from sparsecross.model import SparseModel
    from sparsecross.train import prefetch

    from bench_kernels import dense_export, dense_ftrl_pass, dense_touched

    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    _warm_dense()
    out["compile_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    train = Path(args["train"])
    spec = spec_for(args["spec"], train)
    p = args["params"]
    a, b_, l1, l2 = float(p["alpha"]), float(p["beta"]), float(p["l1"]), float(p["l2"])
    mark_base(out)
    nc = spec.n_columns
    z, n = _dense_state(nc, bool(args.get("prefault")), out)
    t = time.perf_counter()
    bias = np.zeros(2)
    acc = np.zeros(3)
    rows = 0
    for batch in prefetch(sparsecross.iter_batches(train, spec, batch_rows=batch_rows(args))):
        X = batch.X
        rows += dense_ftrl_pass(X.indptr, X.indices, X.data, batch.y, z, n, bias, a, b_, l1, l2, acc)
    keys, w = dense_export(z, n, a, b_, l1, l2)
    w32 = w.astype(np.float32)
    keep = w32 != 0
    bias_w = float(-bias[0] / ((b_ + np.sqrt(bias[1])) / a))
    model = SparseModel(keys[keep].astype(np.uint64), w32[keep], bias_w, spec)
    dt = time.perf_counter() - t  # Parquet -> model, as sparsecross.train() is timed
    out["peak_rss_bytes"] = peak_rss()
    out.update(rows=rows, seconds=dt, rows_per_s=rows / dt, touched_features=int(dense_touched(n)),
               nonzeros=model.nonzeros, state_bytes=int(z.nbytes + n.nbytes), dense_table_bytes=int(z.nbytes + n.nbytes),
               progressive_logloss=float(acc[0] / acc[1]), bias=bias_w,
               model_digest=model_digest(model.keys, model.weights, model.bias))
    if args.get("test"):
        out.update(scx_test_metrics(model, Path(args["test"]), spec))
    return out


def task_kernel(args: dict[str, Any]) -> dict[str, Any]:
    """Kernel only, over pre-featurized in-memory CSR, in chunks of batch_rows rows."""
    out = setup(args)
    import sparsecross
    from sparsecross._kernels.ftrl import FTRLParams
    from sparsecross.featurize import Batch
    from sparsecross.state import MAX_LOAD, FTRLState
    from sparsecross.train import train_batch

    from bench_kernels import dense_export, dense_ftrl_pass

    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    _warm_dense()
    out["compile_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    spec = spec_for(args["spec"])
    X = W.csr(Path(args["train"]), spec)  # fully in memory (not timed)
    indptr, indices, data, y = X["indptr"], X["indices"], X["data"], X["y"]
    p = args["params"]
    a, b_, l1, l2 = float(p["alpha"]), float(p["beta"]), float(p["l1"]), float(p["l2"])
    step = batch_rows(args)
    nrows = len(y)
    chunks = [(s, min(nrows, s + step)) for s in range(0, nrows, step)]
    impl = args["impl"]
    n_columns = spec.n_columns
    if impl.endswith("_scrambled"):  # locality experiment: ids through a bijective scramble
        from bench_kernels import SCRAMBLE_BITS, scramble_ids

        indices = scramble_ids(indices)
        n_columns = 1 << SCRAMBLE_BITS
        impl = impl[: -len("_scrambled")]
        out["scrambled_ids"] = True
    cap = 1024
    if impl == "sparsecross_presized":
        uniq = _unique_columns(Path(args["train"]))  # in a child: no allocator residue here
        while cap * MAX_LOAD < uniq:
            cap *= 2
        out["presized_capacity"] = cap
    elif impl == "sparsecross_warm":  # grows as `sparsecross` does, after the same child as presized,
        _unique_columns(Path(args["train"]))  # which touches and frees ~1 GB (warm pages: benchmarks/README)
        out["warmed_by_child"] = True
    mark_base(out)
    acc = np.zeros(3)
    c = time.process_time()
    t = time.perf_counter()
    if impl.startswith("sparsecross"):
        params = FTRLParams(a, b_, l1, l2, 0.0)
        state = FTRLState(n_columns, args.get("state_dtype", "float32"), capacity=cap)
        nomask = np.zeros(0, np.uint8)
        grows = 0
        try:  # growths sized from the key curve, as sparsecross.train does (library >= 9436816)
            from sparsecross.state import GrowthPlan

            plan: tuple[Any, ...] = (GrowthPlan(nrows),)
        except ImportError:
            plan = ()
        for s, e in chunks:
            cap0 = state.capacity
            train_batch(state, Batch(_CSR(indptr[s:e + 1], indices, data, n_columns), y[s:e], None, s),
                        params, nomask, acc, *plan)
            grows += state.capacity != cap0
        dt = time.perf_counter() - t
        out["cpu_share"] = (time.process_time() - c) / dt  # < 1: waited for its core (other load)
        out["peak_rss_bytes"] = peak_rss()
        keys, w32 = state.nonzero_weights(params)
        bias_w = state.bias_weight(params)
        out.update(touched_features=state.touched, state_bytes=state.nbytes, state_capacity=state.capacity,
                   grow_batches=grows, state_growths=getattr(state, "growths", None))
        log = getattr(state, "growth_log", None)  # library >= kern14: (old cap, new cap, keys, how, seconds)
        if log is not None:
            out["growth_log"] = [list(g) for g in log]
            out["growth_seconds"] = sum(g[4] for g in log)
    elif impl.startswith("proto_record"):  # prototype layout, presized like sparsecross_presized
        from bench_kernels import record_export, record_ftrl_pass

        block_bits = int(impl.rsplit("block", 1)[1]) if "block" in impl else 0
        uniq = _unique_columns(Path(args["train"]))
        cap = 1024
        while cap * MAX_LOAD < uniq:
            cap *= 2
        out["presized_capacity"] = cap
        t = time.perf_counter()
        tab = np.full((cap, 4), 0xFFFFFFFF, dtype=np.uint32)
        tabf = tab.view(np.float32)
        count = np.zeros(1, np.int64)
        bias = np.zeros(2)
        for s, e in chunks:
            record_ftrl_pass(indptr[s:e + 1], indices, data, y[s:e], tab, tabf, count, bias, a, b_, l1, l2, acc,
                             block_bits)
        dt = time.perf_counter() - t
        out["peak_rss_bytes"] = peak_rss()
        keys, w = record_export(tab, tabf, a, b_, l1, l2)
        order = np.argsort(keys)
        w32 = w[order].astype(np.float32)
        keep = w32 != 0
        keys, w32 = keys[order][keep].astype(np.uint64), w32[keep]
        bias_w = float(-bias[0] / ((b_ + np.sqrt(bias[1])) / a))
        out.update(touched_features=int(count[0]), state_bytes=int(tab.nbytes), block_bits=block_bits)
    elif impl in ("dense", "dense_prefaulted", "dense_l1_bias"):
        z, n = _dense_state(n_columns, impl != "dense", out)
        t = time.perf_counter()
        bias = np.zeros(2)
        from bench_kernels import _weight

        # dense_l1_bias: the bias regularized like VW's constant feature; otherwise unregularized.
        bias_l1, bias_l2 = (l1, l2) if impl == "dense_l1_bias" else (0.0, 0.0)
        for s, e in chunks:
            dense_ftrl_pass(indptr[s:e + 1], indices, data, y[s:e], z, n, bias, a, b_, l1, l2, acc, bias_l1, bias_l2)
        dt = time.perf_counter() - t
        out["peak_rss_bytes"] = peak_rss()
        keys, w = dense_export(z, n, a, b_, l1, l2)
        w32 = w.astype(np.float32)
        keep = w32 != 0
        keys, w32 = keys[keep].astype(np.uint64), w32[keep]
        bias_w = float(_weight(float(bias[0]), float(bias[1]), a, b_, bias_l1, bias_l2))
        if impl == "dense_l1_bias":
            H = spec.outputs[1].offset  # first exact block after the geo cell (age)
            out["first_bucket_weights"] = [float(_weight(float(z[i]), float(n[i]), a, b_, l1, l2))
                                           for i in range(H, H + 7)]
        out.update(state_bytes=int(z.nbytes + n.nbytes))
    else:
        raise ValueError(impl)
    out["anon_huge_pages_bytes"] = _rollup_kb("AnonHugePages")  # THP backing (dense: TLB reach)
    nnz = int(indptr[-1])
    out.update(impl=impl, batch_rows=step, rows=nrows, nonzeros_in=nnz, seconds=dt, rows_per_s=nrows / dt, nonzeros_per_s=nnz / dt,
               nonzeros=int(len(keys)), progressive_logloss=float(acc[0] / acc[1]), bias=bias_w,
               model_digest=model_digest(keys, w32, bias_w))
    return out


def _vw_args(p: dict[str, Any], bits: int, sparse: bool) -> str:
    s = (f"--quiet -b {bits} --ftrl --ftrl_alpha {p['alpha']!r} --ftrl_beta {p['beta']!r} "
         f"--l1 {p['l1']!r} --l2 {p['l2']!r} --loss_function logistic")
    if sparse:
        s += " --sparse_weights"
    passes = int(p.get("epochs", 1))
    if passes > 1:
        s += f" --passes {passes} --holdout_off"
    return s


def _read_vw_readable(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(indices uint64, values float64[k, m]) of a --readable_model: every line ``i:v1 v2 ..``
    that starts with digits and a colon (ftrl writes ``i:w z n`` for every touched slot)."""
    import re

    pat = re.compile(r"^(\d+):(.*)$")
    idx: list[int] = []
    vals: list[list[float]] = []
    with open(path) as fh:
        for line in fh:
            m = pat.match(line)
            if m is None:
                continue
            idx.append(int(m.group(1)))
            vals.append([float(x) for x in m.group(2).split()])
    if not idx:
        return np.zeros(0, np.uint64), np.zeros((0, 1))
    width = max(len(v) for v in vals)
    arr = np.zeros((len(vals), width))
    for i, v in enumerate(vals):
        arr[i, : len(v)] = v
    return np.array(idx, dtype=np.uint64), arr


def task_train_vw(args: dict[str, Any]) -> dict[str, Any]:
    """Vowpal Wabbit --ftrl reading our VW text natively (Workspace(... -d file) runs the
    driver over the file in C++); model written with -f and --readable_model at finish()."""
    out = setup(args)
    t = time.perf_counter()
    from vowpalwabbit import pyvw

    out["import_s"] = time.perf_counter() - t
    p = args["params"]
    bits = int(args.get("bits", 28))
    sparse = bool(args.get("sparse", False))
    tag = args["tag"]
    VW_DIR.mkdir(parents=True, exist_ok=True)
    model_path = VW_DIR / f"{tag}.model"
    readable = VW_DIR / f"{tag}.readable.txt"
    vw_train = Path(args["vw_train"])
    base = _vw_args(p, bits, sparse)
    extra = ""
    if int(p.get("epochs", 1)) > 1:
        cache = VW_DIR / f"{tag}.cache"
        cache.unlink(missing_ok=True)
        extra = f" --cache_file {cache}"
    cmd = f"{base} -d {vw_train} -f {model_path} --readable_model {readable}{extra}"
    out["vw_args"] = cmd
    mark_base(out)
    t = time.perf_counter()
    ws = pyvw.Workspace(cmd)  # pyvw runs the native parser/learner over -d here
    dt = time.perf_counter() - t
    out["sum_loss"] = ws.get_sum_loss()
    out["weighted_examples"] = ws.get_weighted_examples()
    t = time.perf_counter()
    ws.finish()  # writes -f and --readable_model
    out["finish_s"] = time.perf_counter() - t
    out["peak_rss_bytes"] = peak_rss()
    rows = int(args["rows"]) * max(1, int(p.get("epochs", 1)))
    out.update(train_rows=int(args["rows"]), epochs=max(1, int(p.get("epochs", 1))))
    # -f of --ftrl keeps the whole learning state (index + w, z, n for every touched slot);
    # re-save it with --predict_only_model to get the prediction-only file (nonzero weights).
    po_path = VW_DIR / f"{tag}.predict_only.model"
    t = time.perf_counter()
    pyvw.Workspace(f"--quiet -i {model_path} --predict_only_model -f {po_path}").finish()
    out["predict_only_resave_s"] = time.perf_counter() - t
    out["model_bytes_predict_only"] = po_path.stat().st_size
    po_path.unlink()
    out.update(rows=rows, seconds=dt, rows_per_s=rows / dt, model_bytes=model_path.stat().st_size,
               readable_model_bytes=readable.stat().st_size,
               progressive_logloss=out["sum_loss"] / max(out["weighted_examples"], 1))
    # --- weights, mapped back to our column ids
    ws0 = pyvw.Workspace(f"--quiet -b {bits}")
    h_f = int(ws0.hash_space("f"))
    probe = int(ws0.hash_feature("123", h_f))
    ws0.finish()
    mask = (1 << bits) - 1
    const_idx = 11650396 & mask  # VW's constant feature (constant_hash)
    out["namespace_f_hash"] = h_f
    out["integer_feature_index_check"] = probe == ((123 + h_f) & mask)
    vidx, vals = _read_vw_readable(readable)
    w = vals[:, 0]
    is_const = vidx == const_idx
    out["readable_values_per_line"] = int(vals.shape[1])
    out["touched_features"] = int((~is_const).sum())  # ftrl's readable model lists every touched slot
    nzw = (w != 0) & ~is_const
    out["nonzeros"] = int(nzw.sum())
    out["bias"] = float(w[is_const][0]) if is_const.any() else 0.0
    cols = ((vidx[nzw].astype(np.int64) - h_f) & mask)
    const_col = (const_idx - h_f) & mask
    # --- evaluation (not timed): VW's own predictions, and VW's weights through our scorer
    if args.get("vw_test"):
        preds = VW_DIR / f"{tag}.preds.txt"
        ws2 = pyvw.Workspace(f"--quiet -t -i {model_path} -d {args['vw_test']} -p {preds}")
        ws2.finish()
        margins = np.array(preds.read_text().split(), dtype=np.float64)
        spec = spec_for(args["spec"], Path(args["train"]) if args.get("train") else None)
        T = W.csr(Path(args["test"]), spec, mmap=True)
        out.update(exact_metrics(margins, T["y"]))
        from bench_kernels import sparse_margins

        m2 = sparse_margins(cols, w[nzw], out["bias"], np.asarray(T["indptr"]), np.asarray(T["indices"]),
                            np.asarray(T["data"]))
        chk = exact_metrics(m2, T["y"])
        out["our_scorer_logloss"] = chk["test_logloss"]
        out["max_abs_margin_diff_vs_vw_preds"] = float(np.max(np.abs(m2 - margins)))
        Xtr = W.csr(Path(args["train"]), spec, mmap=True) if args.get("train") else None
        if Xtr is not None:
            out["constant_collides_with_a_train_column"] = bool(np.any(np.asarray(Xtr["indices"]) == const_col))
        preds.unlink()
    if not args.get("keep_readable"):
        readable.unlink()
    if args.get("save_weights"):
        save_npz(VW_DIR / f"{tag}.weights.npz", cols=cols, w=w[nzw], bias=out["bias"])
    out["vw_cols_digest"] = hashlib.sha256(np.sort(cols).astype(np.uint64).tobytes()).hexdigest()[:16]
    return out


def task_artifact(args: dict[str, Any]) -> dict[str, Any]:
    """Train at one l1, save in every encoding; sizes, load time, test logloss per encoding."""
    out = setup(args)
    import sparsecross
    from sparsecross.predict import evaluate

    numba_one_thread(out["cores"])
    sparsecross.warmup()
    warm_rehash()
    train, test = Path(args["train"]), Path(args["test"])
    spec = spec_for(args["spec"], train)
    p = args["params"]
    t = time.perf_counter()
    model = sparsecross.train(train, spec, alpha=p["alpha"], beta=p["beta"], l1=p["l1"], l2=p["l2"])
    out["train_s"] = time.perf_counter() - t
    MODELS.mkdir(parents=True, exist_ok=True)
    out.update(nonzeros=model.nonzeros, touched_features=int(model.stats["touched_features"]),
               n_columns=spec.n_columns, dense_float32_bytes=4 * spec.n_columns)
    enc_out = {}
    for enc in ("float32", "float16", "q2.13"):
        path = MODELS / f"{args['tag']}.{enc}.scx"
        t = time.perf_counter()
        nbytes = sparsecross.save_model(model, path, encoding=enc)
        save_s = time.perf_counter() - t
        size = path.stat().st_size
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            m2 = sparsecross.load_model(path)
            loads.append(time.perf_counter() - t)
        ev = evaluate(m2, test)
        enc_out[enc] = {"path": str(path.relative_to(W.ROOT)), "file_bytes": size, "returned_bytes": nbytes,
                        "bytes_per_nonzero": size / max(model.nonzeros, 1),
                        "fraction_of_dense": size / (4 * spec.n_columns),
                        "save_s": save_s, "load_s_median": float(np.median(loads)), "load_s_first": loads[0],
                        "stored_nonzeros": m2.nonzeros, "test_logloss": ev["logloss"], "test_auc": ev["auc"]}
    out["encodings"] = enc_out
    return out


def task_predict(args: dict[str, Any]) -> dict[str, Any]:
    """load_model, then predict_file or evaluate over the test Parquet on one core."""
    out = setup(args)
    import sparsecross
    from sparsecross.predict import evaluate, predict_file

    numba_one_thread(out["cores"])
    t = time.perf_counter()
    sparsecross.warmup()
    out["compile_s"] = time.perf_counter() - t
    out["rehash_warmup_s"] = warm_rehash()
    path = Path(args["model"])
    t = time.perf_counter()
    model = sparsecross.load_model(path)
    out["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model.lookup_table()
    out["lookup_table_s"] = time.perf_counter() - t
    test = Path(args["test"])
    mark_base(out)
    sig0 = kernel_signatures()
    t = time.perf_counter()
    c = time.process_time()
    if args["mode"] == "predict_file":
        dest = W.CACHE / f"predict_out_{os.getpid()}.parquet"
        rows = predict_file(model, test, dest)
        dt = time.perf_counter() - t
        cpu = time.process_time() - c
        out["output_bytes"] = dest.stat().st_size
        dest.unlink()
    else:
        ev = evaluate(model, test)
        dt = time.perf_counter() - t
        cpu = time.process_time() - c
        rows = ev["rows"]
        out["test_logloss"] = ev["logloss"]
        out["test_auc_hist"] = ev["auc"]
    out["peak_rss_bytes"] = peak_rss()
    # CPU seconds of the process (every thread): on a shared machine, wall time also counts
    # the time other jobs held the core; rows_per_cpu_s is the figure to compare then.
    out.update(mode=args["mode"], rows=rows, seconds=dt, rows_per_s=rows / dt, nonzeros=model.nonzeros,
               cpu_seconds=cpu, rows_per_cpu_s=rows / cpu, compiles_during_run=kernel_signatures() - sig0)
    return out


# ---------------------------------------------------------------- peers
def _compact(train: dict[str, np.ndarray], test: dict[str, np.ndarray], rows: int | None):
    """Columns seen in the (sub)sample -> 0..m-1; test columns never seen are dropped."""
    import scipy.sparse as sp

    indptr = np.asarray(train["indptr"])
    if rows is not None and rows < len(indptr) - 1:
        indptr = indptr[: rows + 1]
    nnz = int(indptr[-1])
    ind = np.asarray(train["indices"][:nnz])
    cols, inv = np.unique(ind, return_inverse=True)
    m = len(cols)
    A = sp.csr_matrix((np.asarray(train["data"][:nnz]), inv.astype(np.int32), indptr.copy()),
                      shape=(len(indptr) - 1, m))
    ti = np.asarray(test["indices"])
    pos = np.minimum(np.searchsorted(cols, ti), m - 1)
    hit = cols[pos] == ti
    B = sp.csr_matrix((np.where(hit, np.asarray(test["data"]), 0).astype(np.float32), np.where(hit, pos, 0).astype(np.int32),
                       np.asarray(test["indptr"]).copy()), shape=(len(test["y"]), m))
    B.eliminate_zeros()
    return A, np.asarray(train["y"][: A.shape[0]]), B, cols


def task_peer(args: dict[str, Any]) -> dict[str, Any]:
    out = setup(args)
    import warnings

    warnings.filterwarnings("ignore")
    train, test = Path(args["train"]), Path(args["test"])
    spec = spec_for(args["spec"], train)
    Xtr = W.csr(train, spec, mmap=True)
    Xte = W.csr(test, spec, mmap=True)
    rows = args.get("rows")
    peer = args["peer"]
    p = args.get("params", {})
    if peer in ("sgd", "liblinear", "saga"):
        from sklearn.linear_model import LogisticRegression, SGDClassifier

        t = time.perf_counter()
        A, y, B, cols = _compact(Xtr, Xte, rows)
        out["prep_s"] = time.perf_counter() - t  # column compaction (not in rows/s, nor in peak RSS: as River's dicts)
        mark_base(out)
        out["compacted_columns"] = int(len(cols))
        t = time.perf_counter()
        if peer == "sgd":
            clf = SGDClassifier(loss="log_loss", penalty="l1", alpha=float(p["alpha"]), random_state=0,
                                **({"max_iter": int(p["max_iter"]), "tol": p.get("tol", 1e-3)} if p.get("mode") == "fit" else {}))
            if p.get("mode") == "fit":
                clf.fit(A, y)
                out["epochs"] = int(clf.n_iter_)
            else:
                step = batch_rows(args)
                for s in range(0, A.shape[0], step):
                    clf.partial_fit(A[s:s + step], y[s:s + step], classes=np.array([0.0, 1.0]))
                out["epochs"] = 1
        else:
            clf = LogisticRegression(l1_ratio=1.0, C=float(p["C"]), solver=peer, max_iter=int(p.get("max_iter", 100)),
                                     random_state=0)
            clf.fit(A, y)
            out["n_iter"] = int(np.max(clf.n_iter_))
        dt = time.perf_counter() - t
        out["peak_rss_bytes"] = peak_rss()
        coef = clf.coef_.ravel()
        out.update(rows=int(A.shape[0]) * int(out.get("epochs", 1)), train_rows=int(A.shape[0]), seconds=dt,
                   rows_per_s=A.shape[0] * int(out.get("epochs", 1)) / dt,
                   nonzeros=int(np.count_nonzero(coef)), model_bytes=len(pickle.dumps(clf)),
                   column_map_bytes=int(cols.nbytes), dense_coef_bytes=int(coef.nbytes),
                   dense_coef_bytes_full_width=8 * spec.n_columns)
        out.update(exact_metrics(clf.decision_function(B), Xte["y"]))
    elif peer == "river":
        from river import linear_model, optim

        from bench_kernels import sparse_margins

        n = int(rows) if rows else len(Xtr["y"])
        ip = np.asarray(Xtr["indptr"][: n + 1])
        ind = np.asarray(Xtr["indices"][: ip[-1]])
        dat = np.asarray(Xtr["data"][: ip[-1]]).astype(float)
        y = np.asarray(Xtr["y"][:n])
        t = time.perf_counter()
        xs = [dict(zip(ind[ip[r]:ip[r + 1]].tolist(), dat[ip[r]:ip[r + 1]].tolist())) for r in range(n)]
        ys = [bool(v > 0.5) for v in y]
        out["prep_s"] = time.perf_counter() - t  # CSR -> dicts (not in rows/s)
        model = linear_model.LogisticRegression(
            optimizer=optim.FTRLProximal(alpha=p["alpha"], beta=p["beta"], l1=p["l1"], l2=p["l2"]))
        mark_base(out)
        t = time.perf_counter()
        for _ in range(int(p.get("epochs", 1))):
            for x, yy in zip(xs, ys):
                model.learn_one(x, yy)
        dt = time.perf_counter() - t
        out["peak_rss_bytes"] = peak_rss()
        wd = dict(model.weights)
        keys = np.fromiter(wd.keys(), dtype=np.int64, count=len(wd))
        vals = np.fromiter(wd.values(), dtype=np.float64, count=len(wd))
        rows_done = n * int(p.get("epochs", 1))
        out["epochs"] = int(p.get("epochs", 1))
        out.update(rows=rows_done, train_rows=n, seconds=dt, rows_per_s=rows_done / dt,
                   touched_features=int(len(wd)), nonzeros=int(np.count_nonzero(vals)),
                   model_bytes=len(pickle.dumps(model)), intercept=float(model.intercept))
        m = sparse_margins(keys, vals, float(model.intercept), np.asarray(Xte["indptr"]), np.asarray(Xte["indices"]),
                           np.asarray(Xte["data"]))
        out.update(exact_metrics(m, Xte["y"]))
    else:
        raise ValueError(peer)
    out["peer"] = peer
    return out


# ---------------------------------------------------------------- whole process (issue 14)
def _child_env() -> dict[str, str]:
    """The environment of a timed command: this worktree first on PYTHONPATH (the installed
    sparsecross may be an editable install of another checkout), thread counts as set by
    run_all (one core: NUMBA_NUM_THREADS=1 ...)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONSTARTUP", None)
    return env


def _sparsecross_exe() -> list[str]:
    """The ``sparsecross`` console script next to this interpreter (what ``pip install`` puts on
    PATH, without a pyenv shim in front of it); ``python -m sparsecross`` if there is none."""
    exe = Path(sys.executable).parent / "sparsecross"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sparsecross"]


def _process_cmd(kind: str, args: dict[str, Any], data: str, out: Path) -> list[str]:
    spec = str(W.BENCH_SPEC)
    if kind == "sparsecross":
        return [*_sparsecross_exe(), "train", spec, data, "--out", str(out), "--names", "0", "-q"]
    if kind == "sparsecross_default":
        return [*_sparsecross_exe(), "train", spec, data, "--out", str(out)]
    if kind == "dense":
        p = args["params"]
        return [sys.executable, str(BENCH / "proc_dense.py"), spec, data, str(out), "--alpha", repr(p["alpha"]),
                "--beta", repr(p["beta"]), "--l1", repr(p["l1"]), "--l2", repr(p["l2"])]
    if kind == "vw_sparse":
        vw = _vw_args(args["params"], int(args.get("bits", 28)), True) + f" -d {data} -f {out}"
        return [sys.executable, "-c", f"from vowpalwabbit import pyvw; pyvw.Workspace({vw!r}).finish()"]
    raise ValueError(kind)


def _proc_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run_timed_child(cmd: list[str], env: dict[str, str], cwd: Path, poll_s: float = 0.05) -> dict[str, Any]:
    """Run ``cmd`` to exit; wall clock from just before the fork to the return of ``wait4``.

    Peak RSS = the child's ``ru_maxrss`` from ``os.wait4``.  Linux copies the high-water mark of
    the image the child replaced at ``execve`` into it (with vfork that is *this* process's
    VmHWM, with fork at most this process's RSS), so ``ru_maxrss`` >= this parent's VmHWM at
    spawn: ``parent_hwm_at_spawn_bytes`` is recorded and ``peak_is_childs_own`` says the
    reported peak is above it, i.e. it is the child's own peak (this parent is a small
    process: numpy and the interpreter, nothing else).  A thread also polls the child's
    ``/proc/PID/status`` VmHWM every ``poll_s`` as a cross-check (a lower bound: it misses the
    last ``poll_s`` before exit)."""
    import subprocess
    import threading

    hwm_parent = peak_rss()
    polled = [0]
    done = threading.Event()
    with open(cwd / "stdout.txt", "wb") as fo, open(cwd / "stderr.txt", "wb") as fe:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)

        def poll() -> None:
            while not done.wait(poll_s):
                polled[0] = max(polled[0], _proc_hwm(proc.pid))

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        done.set()
        th.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    res = {"wall_s": wall, "exit_code": proc.returncode, "peak_rss_bytes": int(ru.ru_maxrss) * 1024,
           "parent_hwm_at_spawn_bytes": hwm_parent, "vmhwm_polled_bytes": polled[0],
           "child_cpu_s": ru.ru_utime + ru.ru_stime, "child_user_s": ru.ru_utime, "child_sys_s": ru.ru_stime,
           "child_minor_faults": ru.ru_minflt, "child_major_faults": ru.ru_majflt,
           "child_involuntary_switches": ru.ru_nivcsw}
    res["peak_is_childs_own"] = res["peak_rss_bytes"] > hwm_parent
    res["cpu_share"] = res["child_cpu_s"] / wall if wall > 0 else None  # < 1: waited (shared core, I/O)
    if proc.returncode != 0:
        res["stderr_tail"] = (cwd / "stderr.txt").read_bytes()[-3000:].decode(errors="replace")
    res["stdout_tail"] = (cwd / "stdout.txt").read_bytes()[-2000:].decode(errors="replace")
    return res


def _run_quiet(cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    import subprocess

    r = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[:4]}... exit {r.returncode}: {r.stderr[-2000:]}")
    return r.stdout


def task_process(args: dict[str, Any]) -> dict[str, Any]:
    """A whole training command as a subprocess: wall clock from process start to exit (imports,
    Numba cache loading, validation, training, export included), peak RSS of the child.

    This process pins itself to one CPU (setup) and the child inherits that affinity, so the
    command and every thread it starts (sparsecross's prefetch thread, VW's parser thread) share
    one core, as the other one-core rows.  Before the timed run an untimed warm-up runs the same
    command on a small generated file (Numba's on-disk cache filled and library files in the page
    cache: the timed run is what a user's second run costs, not a first-ever compile)."""
    import shutil
    import tempfile

    out = setup(args)
    kind = args["kind"]
    rows = int(args["rows"])
    data = str(Path(args["vw_train"] if kind.startswith("vw") else args["train"]).resolve())
    env = _child_env()
    work = Path(tempfile.mkdtemp(prefix="process-", dir=W.CACHE))
    try:
        t = time.perf_counter()
        if kind.startswith("sparsecross") or kind == "dense":
            where = _run_quiet([sys.executable, "-c", "import sparsecross; print(sparsecross.__file__)"], env, work)
            out["sparsecross_imported_from"] = where.strip()
            if not Path(where.strip()).resolve().is_relative_to(ROOT):
                raise RuntimeError(f"the child imports sparsecross from {where.strip()}, not from {ROOT}")
            tiny = work / "warm.parquet"
            _run_quiet([*_sparsecross_exe(), "generate", "--rows", "20000", "--out", str(tiny)], env, work)
            _run_quiet(_process_cmd(kind, args, str(tiny), work / "warm.scx"), env, work)
        else:
            _run_quiet([sys.executable, "-c", "from vowpalwabbit import pyvw"], env, work)
            head = work / "warm.vw"
            with open(data, "rb") as src, open(head, "wb") as dst:
                dst.writelines(line for _, line in zip(range(20000), src))
            _run_quiet(_process_cmd(kind, args, str(head), work / "warm.model"), env, work)
        out["warm_s"] = time.perf_counter() - t
        model = work / ("model.scx" if kind != "vw_sparse" else "model.vw")
        cmd = _process_cmd(kind, args, data, model)
        out["command"] = " ".join(cmd)
        out["loadavg_1m_before"] = os.getloadavg()[0]
        res = run_timed_child(cmd, env, work)
        out["loadavg_1m_after"] = os.getloadavg()[0]
        out.update(res)
        if res["exit_code"] != 0:
            out["error"] = f"command exit {res['exit_code']}"
            return out
        out.update(kind=kind, rows=rows, seconds=res["wall_s"], rows_per_s=rows / res["wall_s"],
                   model_bytes=model.stat().st_size)
        if kind != "vw_sparse":  # untimed check of the result: nonzeros of the written model
            code = ("import sys, sparsecross; m = sparsecross.load_model(sys.argv[1]); "
                    "print(m.nonzeros, m.stats.get('rows'))")
            nz = _run_quiet([sys.executable, "-c", code, str(model)], env, work).split()
            out["nonzeros"] = int(nz[0])
            if nz[1] != "None" and int(nz[1]) != rows:
                out["error"] = f"model trained on {nz[1]} rows, expected {rows}"
        # time to a bare start of the same program (interpreter + imports up to argument parsing)
        start_cmd = ([*_sparsecross_exe(), "--version"] if kind.startswith("sparsecross") else
                     [sys.executable, "-c", "import vowpalwabbit.pyvw"] if kind == "vw_sparse" else
                     [sys.executable, "-c", "import sys; sys.path[:0] = %r; import numpy, sparsecross, "
                      "sparsecross.train, bench_kernels" % [str(ROOT), str(BENCH)]])
        st = run_timed_child(start_cmd, env, work)
        out["startup_wall_s"] = st["wall_s"]
        out["startup_peak_rss_bytes"] = st["peak_rss_bytes"]
        out["startup_command"] = " ".join(start_cmd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def task_rmw(args: dict[str, Any]) -> dict[str, Any]:
    """Machine yardstick: random read-modify-writes in a (capacity, 3) uint32 table (key + two
    float32), the shape and size of the FTRL state table; M RMW/s of ``bench_kernels.rmw_pass``
    over precomputed independent uniform random slots.  The table is pre-faulted (every page
    written) before the clock starts; 3 timed passes over the same slots, median reported."""
    out = setup(args)
    from bench_kernels import rmw_pass

    numba_one_thread(out["cores"])
    cap = int(args.get("capacity", 1 << 23))
    n_ops = int(args.get("ops", 50_000_000))
    t = time.perf_counter()
    rmw_pass(np.zeros((8, 3), np.uint32), np.zeros((8, 3), np.uint32).view(np.float32), np.arange(8, dtype=np.int32),
             np.float32(0.5))
    out["compile_s"] = time.perf_counter() - t
    rng = np.random.default_rng(int(args.get("seed", 0)))
    table = np.empty((cap, 3), np.uint32)
    table[:, 0] = rng.integers(0, 2**32 - 1, cap, dtype=np.uint32)  # every page written: pre-faulted
    table[:, 1:] = 0
    values = table.view(np.float32)
    slots = rng.integers(0, cap, n_ops, dtype=np.int32)
    mark_base(out)
    times, cpu = [], []
    for _ in range(int(args.get("passes", 3))):
        c = time.thread_time()
        t = time.perf_counter()
        chk = rmw_pass(table, values, slots, np.float32(0.5))
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    out["peak_rss_bytes"] = peak_rss()
    dt = float(np.median(times))
    out["cpu_share"] = float(sum(cpu) / sum(times))  # < 1: the pass waited for its core (other load)
    out.update(capacity=cap, table_bytes=int(table.nbytes), ops=n_ops, seconds=dt, seconds_all=times,
               rmw_per_s=n_ops / dt, rmw_per_s_best=n_ops / min(times), checksum=int(chk),
               anon_huge_pages_bytes=_rollup_kb("AnonHugePages"))
    return out


# ------------------------------------------------------------- issue 13: the state budget
#: The unbounded budget-reference runs' peak state (measured by :class:`_StateWatch`).
BUDGET_REFS = BENCH / "results" / "issue13_budget_refs"


class _StateWatch:
    """Measures the training state from outside the library (before and after the admission
    branch's own ``state_bytes_peak``): the peak over every growth (old table + new state when
    realloc may copy the old table, else the new state: in-place growth) and every batch end,
    and the state's bytes after each batch."""

    def __init__(self) -> None:
        import sparsecross
        from sparsecross.state import FTRLState, realloc_may_copy

        self.peak = 0
        self.samples: list[tuple[int, int, int]] = []  # (rows seen, state bytes, keys held)
        self.rows = 0
        T = sys.modules["sparsecross.train"]  # the module (``sparsecross.train`` is the function)
        assert sparsecross.train is not T
        orig_grow, orig_batch = FTRLState.grow, T.train_batch
        watch = self

        def grow(state: Any, needed: int = 0) -> None:
            # The old table is held beside the new one only when realloc may copy it; a larger
            # table grows in place (mremap), so its growth peak is the new state alone.
            old = state.table.nbytes
            orig_grow(state, needed)
            watch.peak = max(watch.peak, (old if realloc_may_copy(old) else 0) + state.nbytes)

        def train_batch(state: Any, batch: Any, *a: Any, **k: Any) -> None:
            orig_batch(state, batch, *a, **k)
            watch.rows += batch.X.shape[0]
            nbytes = state.nbytes
            watch.peak = max(watch.peak, nbytes)
            watch.samples.append((watch.rows, nbytes, state.touched))

        FTRLState.grow = grow
        T.train_batch = train_batch


def task_budget(args: dict[str, Any]) -> dict[str, Any]:
    """sparsecross.train end to end with ``max_state_mb`` (or unbounded, recording its peak state
    as the reference of the budget fractions): state bytes at their peak, peak RSS, test
    logloss, rows/s, features evicted; with ``samples`` the state's bytes over the rows."""
    out = setup(args)
    import sparsecross

    numba_one_thread(out["cores"])
    sparsecross.warmup()
    warm_rehash()
    train = Path(args["train"])
    spec = W.fresh_id_spec() if args["spec"] == "fresh_ids" else spec_for(args["spec"], train)
    p = args["params"]
    budget: dict[str, Any] = {}
    if args.get("budget_fraction") is not None:
        ref = json.loads((BUDGET_REFS / f"{args['budget_of']}.json").read_text())["state_bytes_peak"]
        budget["max_state_mb"] = float(args["budget_fraction"]) * ref / (1 << 20)
        out["unbounded_state_bytes_peak"] = ref
    elif args.get("max_state_mb") is not None:
        budget["max_state_mb"] = float(args["max_state_mb"])
    out["max_state_mb"] = budget.get("max_state_mb")
    # compile the eviction kernels before the clock (a tiny budget on a small file evicts)
    sparsecross.train(W.shuffle_warmup_file(), spec_for("bench"), max_state_mb=0.05, batch_rows=8192)
    watch = _StateWatch()
    mark_base(out)
    c = time.process_time()
    t = time.perf_counter()
    model, state = sparsecross.train(train, spec, alpha=p["alpha"], beta=p["beta"], l1=p["l1"], l2=p["l2"],
                                     batch_rows=batch_rows(args), return_state=True, **budget)
    dt = time.perf_counter() - t
    # CPU seconds of every thread (reader + trainer): less sensitive than the wall clock to a loaded
    # machine, where a process waits for a core
    out["cpu_seconds"] = time.process_time() - c
    out["rows_per_cpu_s"] = int(model.stats["rows"]) / out["cpu_seconds"]
    out["peak_rss_bytes"] = peak_rss()
    rows = int(model.stats["rows"])
    out.update(rows=rows, seconds=dt, rows_per_s=rows / dt, touched_features=state.touched,
               nonzeros=model.nonzeros, state_bytes_peak=watch.peak, state_bytes_final=state.nbytes,
               state_capacity=state.capacity, evicted_features=model.stats.get("evicted_features", 0),
               evictions=model.stats.get("evictions", 0), progressive_logloss=model.stats.get("progressive_logloss"),
               model_digest=model_digest(model.keys, model.weights, model.bias))
    if args.get("budget_record"):
        BUDGET_REFS.mkdir(parents=True, exist_ok=True)
        (BUDGET_REFS / f"{args['budget_record']}.json").write_text(json.dumps({"state_bytes_peak": watch.peak}))
    if args.get("samples"):
        step = max(1, len(watch.samples) // int(args["samples"]))
        out["state_samples"] = [list(x) for x in watch.samples[::step] + watch.samples[-1:]]
    if args.get("test"):
        out.update(scx_test_metrics(model, Path(args["test"]), model.spec))
    return out


TASKS = {
    "compile": task_compile,
    "featurize": task_featurize,
    "train_scx": task_train_scx,
    "budget": task_budget,
    "train_dense": task_train_dense,
    "kernel": task_kernel,
    "train_vw": task_train_vw,
    "artifact": task_artifact,
    "predict": task_predict,
    "peer": task_peer,
    "process": task_process,
    "rmw": task_rmw,
}


def main() -> None:
    name, raw = sys.argv[1], sys.argv[2]
    args = json.loads(raw)
    t = time.perf_counter()
    res = TASKS[name](args)
    res["process_wall_s"] = time.perf_counter() - t
    res["ru_maxrss_bytes"] = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # see peak_rss()
    print(MARK + " " + json.dumps(res, default=float), flush=True)


if __name__ == "__main__":
    main()
