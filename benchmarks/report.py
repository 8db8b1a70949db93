"""Render a results JSON (from ``run_all.py``) as Markdown: ``python benchmarks/report.py results.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _mb(v: Any) -> str:
    return "-" if v is None else f"{v / 2**20:,.0f} MiB"


def _b(v: Any) -> str:
    if v is None:
        return "-"
    if v >= 2**20:
        return f"{v / 2**20:,.2f} MiB"
    if v >= 2**10:
        return f"{v / 2**10:,.1f} KiB"
    return f"{v:,.0f} B"


def _r(v: Any) -> str:
    """rows/s."""
    if v is None:
        return "-"
    return f"{v / 1e6:,.2f}M" if v >= 1e6 else f"{v / 1e3:,.1f}k"


def _f(v: Any, nd: int = 4) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _i(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


def _s(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def _spread(s: dict[str, Any]) -> str:
    a = s.get("rows_per_s_all") or []
    if len(a) < 2:
        return ""
    return f" ({_r(min(a))}-{_r(max(a))})"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render(doc: dict[str, Any]) -> str:
    m, S, D, T = doc["meta"], doc["summary"], doc.get("derived", {}), doc.get("targets", {})
    L: list[str] = []
    v = m.get("versions", {})
    L.append(f"# sparsecross benchmarks{' (quick)' if m.get('quick') else ''}")
    L.append("")
    L.append(f"{m.get('date_utc')} · git {str(m.get('git_sha'))[:10]}{' (library dirty)' if m.get('git_dirty_library') else ''}"
             f" · {m.get('cpu_model')} · {m.get('cpu_count')} CPUs · {m.get('memory_bytes', 0) / 2**30:.0f} GiB · "
             f"THP {m.get('transparent_hugepage')}")
    L.append("")
    for mr in m.get("merged_runs", []):
        L.append(f"Merged later: {mr.get('date_utc')} · git {str(mr.get('git_sha'))[:10]}"
                 f"{' (library dirty)' if mr.get('git_dirty_library') else ''} · {len(mr.get('ids', []))} measurement "
                 f"ids re-run or added ({', '.join(sorted({i.split('/')[0] for i in mr.get('ids', [])}))})"
                 + (f" · {mr['note']}" if mr.get("note") else ""))
        L.append("")
    L.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    L.append("")
    la0, la1 = m.get("loadavg_at_start"), m.get("loadavg_at_end")
    L.append(f"Every measurement: its own process, pinned to one CPU, Numba 1 thread (unless noted). "
             f"sparsecross timings: median of {m.get('repeats')} runs (min-max in brackets); others: 1 run. "
             f"Params alpha={m['params']['alpha']}, beta={m['params']['beta']}, l1={m['params']['l1']}, "
             f"l2={m['params']['l2']}. Suite time {m.get('total_seconds', 0) / 60:.1f} min "
             f"(measurements {m.get('measure_seconds', 0) / 60:.1f} min). Load average at start/end "
             f"{la0[0] if la0 else '-':.2f}/{la1[0] if la1 else '-':.2f} (shared, noisy machine).")
    L.append("")

    # compile
    c, cc = S.get("compile/cold", {}), S.get("compile/cached", {})
    L.append("## Compile")
    L.append("")
    L.append(f"`sparsecross.warmup()`: cold (empty Numba cache) {_s(c.get('sparsecross_warmup_s'))} s, "
             f"from cache {_s(cc.get('sparsecross_warmup_s'))} s; `table.rehash` (not covered by warmup) cold "
             f"{_s(c.get('rehash_warmup_s'))} s, cached {_f(cc.get('rehash_warmup_s'), 3)} s; dense bench kernel cold "
             f"{_s(c.get('dense_kernel_compile_s'))} s. Import sparsecross {_s(cc.get('import_s'))} s. "
             "All timings below exclude compilation.")
    L.append("")

    # a
    L.append("## a. Featurization (Parquet -> CSR, one core, synthetic_bench.toml)")
    L.append("")
    rows = []
    for k, s in S.items():
        if k.startswith(("featurize/", "featurize_prebuffer")) and "rows_per_s" in s:
            rows.append([k.split("/")[0].replace("featurize_", "") + " " + k.split("/")[1], _i(s.get("batch_rows")),
                         _i(s["rows"]), _r(s["rows_per_s"]) + _spread(s), _r(s["nonzeros_per_s"]),
                         _mb(s["peak_rss_bytes"]), _mb(s["base_rss_bytes"]), _mb(s.get("arrow_pool_max_bytes")),
                         _s(s["seconds"]),
                         "yes" if s["rows_per_s"] >= T.get("featurize_rows_per_s", 0) else "**no**"])
    L += _table(["variant / data", "batch rows", "rows", "rows/s", "nonzeros/s", "peak RSS", "RSS before",
                 "Arrow pool peak", "s", ">= 3M rows/s"], rows)
    L.append("")
    if any("prebuffer_off" in k for k in S):  # rows of runs before the experiment was retired
        L.append("`prebuffer_off`: the library's reader monkeypatched in the benchmark process to open files "
                 "with `pq.ParquetFile(..., pre_buffer=False)` (library code unchanged). The library does the same "
                 "since 8e21e80; before it, peak RSS grew with rows (2M 313 MiB -> 10M 464 MiB, Arrow pool 45 -> "
                 "191 MiB).")
    if "featurize_peak_rss_ratio_largest_vs_smallest" in D:
        L.append("")
        L.append(f"Peak RSS largest/smallest file: {D['featurize_peak_rss_ratio_largest_vs_smallest']:.3f}")
    L.append("")

    L += _kinds(S)

    # b
    L.append("## b. Training, end to end (Parquet -> model; VW: its text file -> model), one core")
    L.append("")
    rows = []
    for k, s in S.items():
        if k.startswith("train/") and "rows_per_s" in s:
            _, size, name = k.split("/")
            rows.append([size, name, _r(s["rows_per_s"]) + _spread(s), _s(s["seconds"]), _mb(s.get("peak_rss_bytes")),
                         _i(s.get("touched_features")), _i(s.get("nonzeros")), _f(s.get("test_logloss"), 5),
                         _f(s.get("test_auc"), 4), _f(s.get("progressive_logloss"), 5),
                         _b(s.get("state_bytes")) if s.get("state_bytes") else "-"])
        elif k.startswith("train/"):
            rows.append([k.split("/")[1], k.split("/")[2], "error: " + str(s.get("error"))] + [""] * 8)
    L += _table(["rows", "learner", "rows/s", "s", "peak RSS", "touched", "nonzeros", "test logloss", "test AUC",
                 "progressive logloss", "state"], rows)
    L.append("")
    L.append("`sparsecross_2cores`: no pinning, prefetch thread overlaps reading with training. `dense`: "
             "z, n dense float32[n_columns] from np.zeros (pages faulted in during the run); "
             "`dense_prefaulted`: the same arrays touched before the clock starts. VW: `--ftrl -b 28`, rows/s = "
             "`Workspace('... -d file.vw')` (native parse + learn), model write excluded.")
    L.append("")
    L += _shuffle(D)
    L.append("### Parity with Vowpal Wabbit and the dense kernel")
    L.append("")
    rows = []
    for size, e in D.items():
        if not isinstance(e, dict) or "test_logloss_vw" not in e:
            continue
        rows.append([size, _f(e["test_logloss_sparsecross"], 6), _f(e["test_logloss_vw"], 6),
                     f"{e['test_logloss_diff']:+.2e}", f"{e['test_auc_diff']:+.2e}",
                     f"{_i(e['nonzeros'][0])} / {_i(e['nonzeros'][1])}",
                     f"{_i(e['touched'][0])} / {_i(e['touched'][1])}",
                     f"{e['bias'][0]:.4f} / {_f(e.get('bias_dense_l1_bias_kernel'))} / {e['bias'][1]:.4f}",
                     f"{_i(e.get('nonzero_keys_common'))} (+{_i(e.get('nonzero_keys_only_sparsecross'))} / "
                     f"+{_i(e.get('nonzero_keys_only_vw'))})",
                     f"{e.get('weight_abs_diff_max', 0):.1e} / {e.get('weight_abs_diff_median', 0):.1e}",
                     str(e.get("bit_identical_to_dense")), ])
    L += _table(["rows", "logloss scx", "logloss VW", "VW - scx", "AUC VW - scx", "nonzeros scx / VW",
                 "touched scx / VW", "bias: scx / our kernel with L1 on the bias / VW", "common nonzero keys (+only scx / +only VW)",
                 "|w diff| max / median", "bit-identical to dense"], rows)
    L.append("")
    L.append("VW's constant feature is an ordinary L1/L2-regularized coordinate (our bias is unregularized). "
             "The dense kernel with that one change (`dense_l1_bias`) reproduces VW's bias: the bias and the "
             "one-hot blocks every row has (age, income, device, device x age) are collinear, so the L1 on the "
             "constant early in training moves weight along a direction the predictions do not see (test "
             "logloss identical). Nonzero-key differences are coordinates at |z| = l1 within float32 rounding "
             "(VW computes in float32, sparsecross in float64 with float32 storage).")
    L.append("")
    L.append("### Kernel only (pre-featurized in-memory CSR, chunks of the default batch size)")
    L.append("")
    rows = []
    for k, s in S.items():
        if k.startswith("kernel/") and "rows_per_s" in s and not k.endswith("dense_l1_bias"):
            _, size, impl = k.split("/")
            dense = S.get(f"kernel/{size}/dense_prefaulted", {}).get("rows_per_s")
            rows.append([size, impl, _r(s["rows_per_s"]) + _spread(s), f"{s['nonzeros_per_s'] / 1e6:.1f}M",
                         f"{s['rows_per_s'] / dense:.2f}" if dense else "-", _mb(s["peak_rss_bytes"]),
                         _mb(s.get("base_rss_bytes")), _b(s.get("state_bytes")), _i(s.get("grow_batches"))])
    L += _table(["rows", "impl", "rows/s", "nonzeros/s", "vs dense_prefaulted", "peak RSS", "RSS before",
                 "state bytes", "batches that grew the table"], rows)
    L.append("")
    L.append("RSS before includes the in-memory CSR. `_scrambled`: column ids mapped through a bijective "
             "pseudo-random scramble into [0, 2**28) first (same rows and model up to relabelling): the dense "
             "kernel loses the memory locality of nearby geo cells, the hash table never had it.")
    L.append("")

    # c
    L.append("## c. Artifact (trained on the smaller synthetic file; test = the synthetic test file)")
    L.append("")
    rows = []
    for k, s in S.items():
        if not k.startswith("artifact/") or "encodings" not in s:
            continue
        l1 = k.split("=")[1]
        e = s["encodings"]
        pf = S.get(f"predict/l1={l1}/predict_file", {})
        ev = S.get(f"predict/l1={l1}/evaluate", {})
        vd = S.get(f"artifact_vw/l1={l1}/vw_dense") or (S.get(_default_vw(S, "vw_dense")) if l1 == _default_l1(m) else {})
        vs = S.get(f"artifact_vw/l1={l1}/vw_sparse") or (S.get(_default_vw(S, "vw_sparse")) if l1 == _default_l1(m) else {})
        vd, vs = vd or {}, vs or {}
        rows.append([l1, _i(s["nonzeros"]), _i(s["touched_features"]),
                     " / ".join(_i(e[x]["file_bytes"]) for x in ("float32", "float16", "q2.13")),
                     " / ".join(f"{e[x]['bytes_per_nonzero']:.2f}" for x in ("float32", "float16", "q2.13")),
                     " / ".join(_f(e[x]["test_logloss"], 5) for x in ("float32", "float16", "q2.13")),
                     f"{e['float32']['fraction_of_dense'] * 1000:.3f}",
                     f"{e['float32']['load_s_median'] * 1e3:.1f}",
                     _r(pf.get("rows_per_s")) + _spread(pf), _r(ev.get("rows_per_s")) + _spread(ev),
                     _mb(pf.get("peak_rss_bytes")),
                     f"{_i(vd.get('model_bytes'))} / {_i(vs.get('model_bytes'))}",
                     _i(vs.get("model_bytes_predict_only") or vd.get("model_bytes_predict_only")),
                     _i(vs.get("nonzeros")), _f(vs.get("test_logloss"), 5)])
    L += _table(["l1", "nonzeros", "touched", "file bytes f32 / f16 / q2.13", "bytes/nonzero f32 / f16 / q2.13",
                 "test logloss f32 / f16 / q2.13", "file / dense (x1e-3)", "load ms", "predict_file rows/s",
                 "evaluate rows/s", "predict peak RSS", "VW -f bytes dense / sparse", "VW predict-only bytes",
                 "VW nonzeros", "VW test logloss"], rows)
    dense_bytes = next((s.get("dense_float32_bytes") for k, s in S.items() if k.startswith("artifact/")), None)
    L.append("")
    L.append(f"Dense float32 weight vector: {_i(dense_bytes)} bytes (n_columns x 4). VW `-f` with `--ftrl` stores "
             "the learning state (index + w, z, n) of every touched slot; the predict-only size is that model "
             "re-saved with `--predict_only_model`.")
    L.append("")

    # d
    L.append("## d. Peers (same CSR; test = the same test rows)")
    L.append("")
    rows = []
    for k, s in S.items():
        if not k.startswith("peers/"):
            continue
        _, data, name = k.split("/")
        if "error" in s:
            rows.append([data, name, "error: " + str(s["error"])] + [""] * 8)
            continue
        mb = s.get("model_bytes")
        if s.get("model_bytes_predict_only"):
            mbs = f"{_b(s['model_bytes_predict_only'])} predict-only ({_b(mb)} -f)"
        elif s.get("column_map_bytes"):
            mbs = f"{_b(mb)} + {_b(s['column_map_bytes'])} column map"
        else:
            mbs = _b(mb) if mb else "-"
        rows.append([data, name, _i(s.get("train_rows", s.get("rows"))), str(s.get("epochs", 1)), _r(s.get("rows_per_s")),
                     _mb(s.get("peak_rss_bytes")), _i(s.get("nonzeros")), mbs,
                     _f(s.get("test_logloss"), 5), _f(s.get("test_auc"), 4), _s(s.get("seconds"))])
    L += _table(["data", "learner", "train rows", "epochs", "rows/s (x epochs)", "peak RSS", "nonzeros", "model bytes",
                 "test logloss", "test AUC", "train s"], rows)
    L.append("")
    L.append("sklearn peers: columns compacted to those seen in their training rows (full width = "
             "dense float64 coef of n_columns, infeasible: SGDClassifier at 237M columns passed 16 GB RSS "
             "on 500k rows), compaction time not in rows/s; SGD = one pass of partial_fit over default-size "
             "batches (synthetic) or fit until tol (California); LogisticRegression liblinear, L1, C = 1/l1 on "
             "the first rows. River: LogisticRegression(optimizer=FTRLProximal(same alpha, beta, l1, l2)), "
             "learn_one over dicts (dict building not timed), model bytes = pickle. sklearn/River peak RSS "
             "includes their in-memory training data. sparsecross model bytes: float32 artifact (`save_model`); VW: `--predict_only_model` re-save (and the `-f` file).")
    L.append("")

    # e
    L += _issue14(S, D)

    # targets
    L.append("## Targets")
    L.append("")
    L += _targets(S, D, T)
    L.append("")
    return "\n".join(L)


#: What each featurize_kind row featurizes (benchmarks/workloads.py KIND_FEATURES).
KIND_LABELS = {
    "geo": "geo, 1 arc-minute cell (latitude, longitude)",
    "lat_band": "lat, 60 arc-minute band",
    "bucket_q10": "bucket, income, quantiles = 10",
    "categorical_str": "categorical string (device)",
    "categorical_int": "categorical int64 (user_id)",
    "numeric_log1p": "numeric, log1p(income)",
    "time_hour": "time, hour of `ts` (timestamp, UTC)",
    "time_hour_tz": "time, hour of `ts` in Europe/Paris",
    "categorical_list": "categorical list<string> (`tags`, 1-3 per row)",
    "cross_exact": "exact cross lat band x income bucket (components not standalone)",
    "cross_hashed": "hashed cross, same components (`mode = \"hashed\"`)",
    "cross_hashed_cat": "hashed cross device x user_id (components not standalone)",
}


def _kinds(S: dict[str, Any]) -> list[str]:
    """Issue 11: featurization throughput per feature kind (featurize_kind/<size>/<kind>)."""
    items = [(k, s) for k, s in S.items() if k.startswith("featurize_kind/")]
    if not items:
        return []
    L = ["### Feature kinds (Parquet -> CSR, one feature or one cross alone, one core)", ""]
    rows = []
    for k, s in items:
        _, size, kind = k.split("/")
        if "rows_per_s" not in s:
            rows.append([size, kind, "error: " + str(s.get("error"))] + [""] * 6)
            continue
        rows.append([size, kind, KIND_LABELS.get(kind, ""), _r(s["rows_per_s"]) + _spread(s), _r(s["nonzeros_per_s"]),
                     _f(s.get("nonzeros_per_row"), 2), _mb(s["peak_rss_bytes"]), _mb(s.get("arrow_pool_max_bytes")),
                     _s(s["seconds"])])
    L += _table(["rows", "kind", "feature", "rows/s", "nonzeros/s", "nnz/row", "peak RSS", "Arrow pool peak", "s"],
                rows)
    L.append("")
    L.append("Data: the smaller synthetic training file plus two derived columns (`workloads.kinds_table`): `ts`, "
             "a timestamp whose UTC hour is the generated `hour`, and `tags`, a list<string>. Each row reads only "
             "the columns its spec needs (its rows/s includes reading and decoding them); quantile boundaries "
             "are resolved before the clock starts. Cross rows compute their components too. Each process reads the "
             "file `passes` times (5): rows/s of its median pass, s = that pass; peak RSS over all passes.")
    L.append("")
    return L


def _shuffle(D: dict[str, Any]) -> list[str]:
    """Issue 11: the cost of train(..., shuffle=True) against the files' order."""
    sh = D.get("shuffle") or {}
    if not sh:
        return []
    L = ["### Cost of `--shuffle` (`train(..., shuffle=True)`, default buffer, seed 0)", ""]
    rows = []
    for k, e in sh.items():
        size, name = k.split("/")
        extra = e.get("peak_rss_extra_bytes")
        rows.append([size, name, _i(e.get("shuffle_buffer_rows")), _r(e["rows_per_s"]), _r(e["rows_per_s_no_shuffle"]),
                     f"{e['speed_ratio']:.2f}x", _mb(e.get("peak_rss_bytes")), _mb(e.get("peak_rss_bytes_no_shuffle")),
                     "-" if extra is None else f"{extra / 2**20:+,.0f} MiB", _f(e.get("test_logloss"), 5),
                     _f(e.get("test_logloss_no_shuffle"), 5), _s(e.get("cpu_share"))])
    L += _table(["rows", "variant", "buffer rows", "rows/s", "rows/s no shuffle", "speed ratio", "peak RSS",
                 "peak RSS no shuffle", "extra RSS", "test logloss", "no shuffle", "CPU share"], rows)
    L.append("")
    L.append("No-shuffle reference: `train/<size>/sparsecross` (one core) and `train/<size>/sparsecross_2cores` "
             "for the `_2cores` variant, from the same run. Shuffle path kernels are loaded by an untimed shuffled run on 20k rows "
             "first (`shuffle_warmup_s`). CPU share = process CPU / wall; well below 1 on one core = it waited "
             "for its core.")
    L.append("")
    return L


def _mrate(v: Any) -> str:
    return "-" if v is None else f"{v / 1e6:,.1f}M"


def _x(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _issue14(S: dict[str, Any], D: dict[str, Any]) -> list[str]:
    """Section e: whole training processes, the machine's random RMW rate, issue 14's goals."""
    procs = [(k, s) for k, s in S.items() if k.startswith("process/")]
    machine = [(k, s) for k, s in S.items() if k.startswith("machine/")]
    if not procs and not machine:
        return []
    L = ["## e. Whole process and the machine's memory rate (issue 14)", ""]
    if procs:
        rows = []
        for k, s in procs:
            _, size, name = k.split("/")
            if "error" in s:
                rows.append([size, name, "error: " + str(s.get("error"))] + [""] * 9)
                continue
            vw = S.get(f"process/{size}/vw_sparse" + ("_2cores" if name.endswith("_2cores") else ""), {})
            cpu_rate = s["rows"] / s["child_cpu_s"] if s.get("child_cpu_s") else None
            rows.append([size, name, _r(s.get("rows_per_s")) + _spread(s), _s(s.get("seconds")),
                         _x(s["rows_per_s"] / vw["rows_per_s"]) if vw.get("rows_per_s") and s.get("rows_per_s") else "-",
                         _mb(s.get("peak_rss_bytes")), _s(s.get("child_cpu_s")), _r(cpu_rate),
                         f"{s['cpu_share']:.2f}" if s.get("cpu_share") is not None else "-",
                         _s(s.get("startup_wall_s")), _i(s.get("nonzeros")), _i(s.get("model_bytes"))])
        L += _table(["rows", "command", "rows/s (wall)", "wall s", "vs VW sparse", "peak RSS", "CPU s",
                     "rows per CPU s", "CPU / wall", "bare start s", "nonzeros", "model bytes"], rows)
        L.append("")
        cmds = {k.split("/")[2]: s.get("command", "") for k, s in procs if k.split("/")[1] == procs[-1][0].split("/")[1]}
        L.append("Each row is one command run as a child process, wall clock from just before the fork to the "
                 "return of `wait4` (interpreter start, imports, Numba's on-disk cache, input validation, reading, "
                 "training, writing the model). One core: the child inherits the task's CPU pinning, so its threads "
                 "share one core (`_2cores`: no pinning). An untimed warm-up of the same command on 20k generated rows "
                 "runs first (Numba cache filled). Peak RSS = the child's `ru_maxrss` from `wait4` (with a fresh "
                 "exec this is the child's own peak as long as it is above the launching task's VmHWM, about 35 MiB, "
                 "checked per run: `peak_is_childs_own`; a 50 ms poll of `/proc/PID/status` VmHWM agrees). CPU s = "
                 "the child's user + system time; CPU / wall < 1 means the child waited for its core (other load "
                 "on the machine): quote wall figures only from runs where it is close to 1. `bare start s`: "
                 "`sparsecross --version` / `import vowpalwabbit.pyvw` / the dense script's imports as a process.")
        L.append("")
        for name, c in cmds.items():
            L.append(f"* `{name}`: `{c}`")
        L.append("")
    if machine:
        rows = []
        for k, s in machine:
            if "error" in s:
                rows.append([k, "error: " + str(s.get("error"))] + [""] * 4)
                continue
            a = s.get("rmw_per_s_all") or []
            spread = f" ({_mrate(min(a))}-{_mrate(max(a))})" if len(a) > 1 else ""
            rows.append([k, _i(s.get("capacity")), _b(s.get("table_bytes")), _mrate(s.get("rmw_per_s")) + spread,
                         _mrate(s.get("rmw_per_s_best")), _i(s.get("ops"))])
        L += _table(["id", "slots", "table", "RMW/s (median of 3 passes)", "best pass", "RMWs per pass"], rows)
        L.append("")
        L.append("`bench_kernels.rmw_pass`: for each of N precomputed independent uniform random slots of a "
                 "(capacity, 3) uint32 table (key, z, n as float32; the state table's layout and the 10M run's "
                 "capacity), read the key and the two floats and write the floats back. Table pre-faulted. "
                 "Independent slots let the core overlap cache misses: this is the memory system's throughput for "
                 "the kernel's access shape, not its latency. The kernel's real accesses are skewed (popular geo "
                 "cells stay in cache), so it can exceed this rate.")
        L.append("")
    e = D.get("issue14") or {}
    if e.get("loaded_machine"):
        L.append(f"**The machine was loaded during this run**: median CPU / wall share down to "
                 f"{e['cpu_share_min']:.2f} (`{e['cpu_share_min_id']}`); the one-core measurements waited for their "
                 "core, so wall-clock figures and the goal verdicts below are not reliable.")
        L.append("")
    if e:
        L.append(f"At {e['size']} rows: whole process sparsecross / VW --sparse_weights "
                 f"{_x(e.get('process_speedup_vs_vw_sparse'))} (default flags "
                 f"{_x(e.get('process_speedup_vs_vw_sparse_default_flags'))}; 2 cores "
                 f"{_x(e.get('process_speedup_vs_vw_sparse_2cores'))}; by CPU time "
                 f"{_x(e.get('process_cpu_time_ratio_vw_over_sparsecross'))}); kernel "
                 f"{_mrate(e.get('kernel_nonzeros_per_s'))} nonzeros/s vs the machine's "
                 f"{_mrate(e.get('machine_rmw_per_s'))} random RMW/s = "
                 f"{'-' if e.get('kernel_nonzeros_per_rmw') is None else format(e['kernel_nonzeros_per_rmw'], '.2f')} "
                 f"nonzero updates per machine RMW; whole-process model has the in-process model's nonzeros: "
                 f"{e.get('process_nonzeros_equal_train')}"
                 + ("" if e.get("rmw_table_matches_10m_state") in (None, True) else
                    "; **the RMW table size differs from the 10M kernel's state capacity**") + ".")
        L.append("")
    return L


def _issue14_targets(D: dict[str, Any]) -> list[str]:
    e = D.get("issue14") or {}
    out = []
    fmt = {"process_vs_vw_sparse": lambda v: f"{v:.2f}x", "train_rows_per_s": _r,
           "kernel_nonzeros_per_s": _mrate, "train_peak_rss_vs_vw_sparse": lambda v: f"{v:.2f}x",
           "process_peak_rss_vs_vw_sparse": lambda v: f"{v:.2f}x"}
    tgt = {"process_vs_vw_sparse": lambda t: f">= {t:g}x", "train_rows_per_s": lambda t: f">= {_r(t)}",
           "kernel_nonzeros_per_s": lambda t: f">= {_mrate(t)}", "train_peak_rss_vs_vw_sparse": lambda t: "< 1x",
           "process_peak_rss_vs_vw_sparse": lambda t: "< 1x"}
    where = "" if e.get("at_goal_size") else f" (measured at {e.get('size')}; the goal is stated for 10M rows)"
    loaded = (f" (loaded machine: CPU / wall share down to {e.get('cpu_share_min', 0):.2f}, see section e)"
              if e.get("loaded_machine") else "")
    for c in e.get("checks", []):
        v = "-" if c["value"] is None else fmt[c["goal"]](c["value"])
        verdict = "not measured" if c["met"] is None else ("**PASS**" if c["met"] else "**FAIL**")
        out.append(f"- issue 14, {c['what']} at {e['size']}: {v} (goal {tgt[c['goal']](c['target'])}): "
                   f"{verdict}{where}{'' if 'peak_rss' in c['goal'] else loaded}")
    return out


def _default_l1(m: dict[str, Any]) -> str:
    return f"{m['params']['l1']:g}"


def _default_vw(S: dict[str, Any], name: str) -> str:
    sizes = sorted({k.split("/")[1] for k in S if k.startswith("train/")},
                   key=lambda s: float(s[:-1]) * (1e6 if s.endswith("m") else 1e3))
    return f"train/{sizes[0]}/{name}" if sizes else ""


def _targets(S: dict[str, Any], D: dict[str, Any], T: dict[str, Any]) -> list[str]:
    out = _issue14_targets(D)
    for k, s in S.items():
        if k.startswith("featurize/") and "rows_per_s" in s:
            ok = s["rows_per_s"] >= T["featurize_rows_per_s"]
            out.append(f"- featurize {k.split('/')[1]}: {_r(s['rows_per_s'])} rows/s (target >= 3M): "
                       f"{'met' if ok else '**missed**'}")
    if "featurize_peak_rss_ratio_largest_vs_smallest" in D:
        r = D["featurize_peak_rss_ratio_largest_vs_smallest"]
        out.append(f"- featurize peak RSS largest/smallest file: {r:.3f} (target: does not grow): "
                   f"{'met' if r < 1.05 else '**missed**'}")
    for size, e in D.items():
        if isinstance(e, dict) and "kernel_speed_ratio_vs_dense_prefaulted" in e:
            r = e["kernel_speed_ratio_vs_dense_prefaulted"]
            out.append(f"- kernel {size}: sparsecross / dense_prefaulted = {r:.2f} (vs calloc'ed dense "
                       f"{e.get('kernel_speed_ratio_vs_dense', float('nan')):.2f}) (target >= 1): "
                       f"{'met' if r >= 1 else '**missed**'}")
        if isinstance(e, dict) and "test_logloss_diff" in e:
            dd = abs(e["test_logloss_diff"])
            out.append(f"- VW parity {size}: |logloss diff| = {dd:.1e} (target ~1e-4): {'met' if dd < 1e-4 else '**missed**'}")
    for k, s in S.items():
        if k.startswith("predict/") and "rows_per_s" in s:
            ok = s["rows_per_s"] >= T["predict_rows_per_s"]
            out.append(f"- {k}: {_r(s['rows_per_s'])} rows/s (target >= 3M): {'met' if ok else '**missed**'}")
    for k, s in S.items():
        if k.startswith("artifact/") and "encodings" in s:
            f = s["encodings"]["float32"]["fraction_of_dense"]
            nz = s["nonzeros"]
            if nz <= T["artifact_nonzeros_limit"]:
                ok = f <= T["artifact_max_fraction_of_dense"]
                out.append(f"- {k}: {nz:,} nonzeros, float32 file = {f * 1000:.3f}/1000 of dense "
                           f"(target <= 1/1000 at <= 200k nonzeros): {'met' if ok else '**missed**'}")
            else:
                out.append(f"- {k}: {nz:,} nonzeros (> 200k: outside the size target), float32 file = "
                           f"{f * 1000:.3f}/1000 of dense")
    return out


if __name__ == "__main__":
    doc = json.loads(Path(sys.argv[1]).read_text())
    print(render(doc))
