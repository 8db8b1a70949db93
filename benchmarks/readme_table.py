"""Render the README's benchmark section from a results JSON (never typed in by hand).

    python benchmarks/readme_table.py [benchmarks/results/results.json] [--readme README.md]

Replaces everything between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` in the README;
with ``--memory results_issue13.json``, the issue 13 table between ``<!-- memory:start -->`` and
``<!-- memory:end -->`` instead.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
MEMORY_START, MEMORY_END = "<!-- memory:start -->", "<!-- memory:end -->"
MEMORY_SPECS = {"bench": "`synthetic_bench.toml` (arc-minute cell, device, age, income, device x age)",
                "bench_hashed": "`synthetic_bench_hashed.toml` (the same plus the hashed cross user x hour, 2^24)"}


def _rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k"


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 2**20:,.0f} MiB"


def _get(S: dict[str, Any], key: str, field: str) -> Any:
    return S.get(key, {}).get(field)


def render(doc: dict[str, Any], dist: dict[str, Any] | None = None) -> str:
    S, M = doc["summary"], doc["meta"]
    out: list[str] = []
    out.append(f"Measured by `python benchmarks/run_all.py` on {M['date_utc'][:10]}: {M['cpu_model']}, "
               f"{M['cpu_count']} CPUs (shared machine), git {M['git_sha'][:10]}; medians of {M.get('repeats', 3)} runs for "
               "sparsecross, one run for peers; one core unless noted; compilation excluded. "
               "Full tables: `benchmarks/results/results.md`."
               + "".join(f" Re-measured on {mr['date_utc'][:10]} at git {str(mr['git_sha'])[:10]}: "
                         + ", ".join(sorted(mr.get("ids", []))) + "." for mr in M.get("merged_runs", [])))
    out.append("")
    out.append("Synthetic geo data (`data/specs/synthetic_bench.toml`: the 233,280,001-column arc-minute cell "
               "plus device, age, income and one cross; 5 nonzeros per row), test = 1M later rows of the same world:")
    out.append("")
    out.append("| rows | learner | rows/s | peak RSS | touched | nonzeros | test logloss | test AUC |")
    out.append("|---|---|---|---|---|---|---|---|")
    names = {"sparsecross": "sparsecross (Parquet -> model)", "sparsecross_2cores": "sparsecross, 2 cores (prefetch)",
             "sparsecross_shuffle": "sparsecross `--shuffle` (default buffer)",
             "sparsecross_shuffle_2cores": "sparsecross `--shuffle`, 2 cores",
             "vw_sparse": "Vowpal Wabbit `--ftrl --sparse_weights` (text)", "vw_dense": "Vowpal Wabbit `--ftrl -b 28` (text)",
             "dense_prefaulted": "dense-array Numba FTRL (yardstick)"}
    for rows in ("2m", "10m"):
        for learner, label in names.items():
            k = f"train/{rows}/{learner}"
            if k not in S:
                continue
            r = S[k]
            out.append(f"| {rows.upper()} | {label} | {_rate(r.get('rows_per_s'))} | {_mib(r.get('peak_rss_bytes'))} | "
                       f"{r.get('touched_features', 0):,} | {r.get('nonzeros', 0):,} | {r.get('test_logloss', float('nan')):.5f} | "
                       f"{r.get('test_auc', float('nan')):.4f} |")
    out.append("")
    out += _issue14(doc)
    f2, f10 = S.get("featurize/2m", {}), S.get("featurize/10m", {})
    if f2 and f10:
        out.append(f"Featurization alone (Parquet -> CSR, one core): {_rate(f2.get('rows_per_s'))} rows/s "
                   f"({_rate(f2.get('nonzeros_per_s'))} nonzeros/s) at 2M rows, {_rate(f10.get('rows_per_s'))} rows/s at 10M; "
                   f"peak RSS {_mib(f2.get('peak_rss_bytes'))} and {_mib(f10.get('peak_rss_bytes'))}: it does not grow with the rows.")
        out.append("")
    out += _kinds_and_shuffle(doc)
    dense = next((v["dense_float32_bytes"] for k, v in S.items()
                  if k.startswith("artifact/") and v.get("dense_float32_bytes")), None)
    out.append("Model files (trained on 2M rows)"
               + (f", against a dense float32 vector of {dense:,} bytes:" if dense else ":"))
    out.append("")
    out.append("| l1 | nonzeros | bytes float32 / q2.13 | bytes per nonzero | test logloss | load | predict rows/s (1 core) | VW `-f` / predict-only bytes |")
    out.append("|---|---|---|---|---|---|---|---|")
    for l1 in ("0.1", "0.3", "1", "3", "10"):
        a = S.get(f"artifact/l1={l1}")
        if not a:
            continue
        enc = a.get("encodings", {})
        f32, q = enc.get("float32", {}), enc.get("q2.13", {})
        vw = _get(S, f"artifact_vw/l1={l1}/vw_sparse", "model_bytes")
        vw_po = _get(S, f"artifact_vw/l1={l1}/vw_sparse", "model_bytes_predict_only")
        load = f32.get("load_s_median")
        load = None if load is None else load * 1e3
        out.append(
            f"| {l1} | {a.get('nonzeros', 0):,} | {f32.get('file_bytes', 0):,} / {q.get('file_bytes', 0):,} | "
            f"{f32.get('bytes_per_nonzero', float('nan')):.2f} / {q.get('bytes_per_nonzero', float('nan')):.2f} | "
            f"{f32.get('test_logloss', float('nan')):.5f} | {'-' if load is None else f'{load:.1f} ms'} | "
            f"{_rate(_get(S, f'predict/l1={l1}/predict_file', 'rows_per_s'))} | "
            f"{'-' if vw is None else f'{vw:,} / {vw_po:,}'} |")
    out.append("")
    ca = [(k.split("/")[-1], v) for k, v in S.items() if k.startswith("peers/california/")]
    if ca:
        out.append("California housing (real data, label `median_house_value > 265000`, seeded 80/20 split, "
                   "`data/specs/california.toml`):")
        out.append("")
        out.append("| learner | nonzeros | test logloss | test AUC |")
        out.append("|---|---|---|---|")
        for name, v in ca:
            out.append(f"| {name} | {v.get('nonzeros', 0):,} | {v.get('test_logloss', float('nan')):.4f} | "
                       f"{v.get('test_auc', float('nan')):.4f} |")
        out.append("")
    if dist:
        res = {k: v for k, v in dist.get("results", {}).items() if v and "error" not in v}
        base = res.get("single")
        out.append(f"Dask (`benchmarks/bench_distributed.py`): {dist['rows']:,} generated rows in "
                   f"{dist['row_groups']} row groups, `local:N` clusters on the same {dist['cpus']}-CPU machine, "
                   "fastest of the runs (details and the per-round figures in docs/DASK.md and "
                   "`benchmarks/results/distributed.json`):")
        out.append("")
        out.append("| config | rows/s | vs single-node | CPU-s (all processes) | vs single-node | test logloss "
                   "| vs single-node | peak RSS per worker |")
        out.append("|---|---|---|---|---|---|---|---|")
        labels = {"single": "single-node (reader thread + trainer)", "single_1core": "single-node, 1 core",
                  "dp2": "data-parallel K=2, 2 workers", "dp4": "data-parallel K=4, 2 workers",
                  "exact": "exact, 2 workers", "dp2_1worker": "data-parallel K=2, 1 worker",
                  "dp4_1worker": "data-parallel K=4, 1 worker", "pt2": "partitioned K=2, 2 workers",
                  "pt4": "partitioned K=4, 2 workers", "pt2_1worker": "partitioned K=2, 1 worker",
                  "pt4_1worker": "partitioned K=4, 1 worker"}
        for name, label in labels.items():
            v = res.get(name)
            if v is None:
                continue
            sp = f"{v['rows_per_second'] / base['rows_per_second']:.2f}x" if base else "-"
            cpu = f"{v['cpu_seconds'] / base['cpu_seconds']:.2f}x" if base and "cpu_seconds" in v else "-"
            ll = f"{(v['test_logloss'] / base['test_logloss'] - 1) * 100:+.2f} %" if base else "-"
            rss = ", ".join(f"{b / 2**20:,.0f} MiB" for b in v.get("worker_peak_rss_bytes", [])) or "-"
            cpu_s = v.get("cpu_seconds", float("nan"))
            out.append(f"| {label} | {v['rows_per_second'] / 1e6:.2f}M | {sp} | {cpu_s:.2f} | {cpu} | "
                       f"{v['test_logloss']:.5f} | {ll} | {rss} |")
        out.append("")
    return "\n".join(out)


KIND_SHORT = {"geo": "geo (arc-minute cell)", "lat_band": "lat band (60')", "bucket_q10": "bucket (quantiles 10)",
              "categorical_str": "categorical string", "categorical_int": "categorical int",
              "numeric_log1p": "numeric (log1p)", "time_hour": "time (hour, UTC)",
              "time_hour_tz": "time (hour, Europe/Paris)", "categorical_list": "categorical list<string>",
              "cross_exact": "exact cross (lat band x bucket)", "cross_hashed": "hashed cross (same)",
              "cross_hashed_cat": "hashed cross (device x user_id)"}


def _kinds_and_shuffle(doc: dict[str, Any]) -> list[str]:
    """Issue 11: featurization rows/s per feature kind; the cost of --shuffle."""
    S, D = doc["summary"], doc.get("derived", {})
    out: list[str] = []
    kinds = [(k.split("/")[1], k.split("/")[2], v) for k, v in S.items()
             if k.startswith("featurize_kind/") and v.get("rows_per_s")]
    if kinds:
        sizes = sorted({s for s, _, _ in kinds})
        out.append(f"Feature kinds: featurization alone (Parquet -> CSR, one core) of one feature (or one cross) "
                   f"on its own, {' / '.join(x.upper() for x in sizes)} synthetic rows "
                   "(details in `benchmarks/results/results.md`):")
        out.append("")
        out.append("| kind | rows | rows/s | nonzeros/s |")
        out.append("|---|---|---|---|")
        for size, kind, v in kinds:
            out.append(f"| {KIND_SHORT.get(kind, kind)} | {size.upper()} | {_rate(v.get('rows_per_s'))} | "
                       f"{_rate(v.get('nonzeros_per_s'))} |")
        out.append("")
    sh = D.get("shuffle") or {}
    parts = []
    for k, e in sh.items():
        size, name = k.split("/")
        if name != "sparsecross_shuffle":
            continue
        extra = e.get("peak_rss_extra_bytes")
        parts.append(f"{size.upper()} rows {_rate(e['rows_per_s'])} rows/s vs {_rate(e['rows_per_s_no_shuffle'])} "
                     f"({e['speed_ratio']:.2f}x), peak RSS {_mib(e.get('peak_rss_bytes'))} vs "
                     f"{_mib(e.get('peak_rss_bytes_no_shuffle'))}"
                     + ("" if extra is None else f" ({extra / 2**20:+,.0f} MiB)")
                     + ("" if e.get("test_logloss_diff") is None else
                        f", test logloss {e['test_logloss']:.5f} ({e['test_logloss_diff']:+.1e})"))
    if parts:
        buf = next(iter(sh.values())).get("shuffle_buffer_rows")
        out.append(f"Cost of `--shuffle` (default buffer{'' if buf is None else f' of {buf:,} rows'}, one core, "
                   "against the files' order): " + "; ".join(parts) + ".")
        out.append("")
    return out


def _issue14(doc: dict[str, Any]) -> list[str]:
    """Whole process vs VW, kernel vs the machine's random RMW rate, and issue 14's goals."""
    S = doc["summary"]
    e = doc.get("derived", {}).get("issue14") or {}
    if not e:
        return []
    size = e["size"]
    out = [(f"Whole training command as a process on {size.upper()} rows, one core, wall clock from process start "
            "to exit (imports, Numba cache load, validation, training and writing the model included):"), "",
           "| command | rows/s | s | vs VW | peak RSS |", "|---|---|---|---|---|"]
    labels = {"sparsecross": "`sparsecross train SPEC DATA --out m.scx --names 0 -q`",
              "sparsecross_default": "`sparsecross train SPEC DATA --out m.scx` (default flags)",
              "vw_sparse": "Vowpal Wabbit `--ftrl --sparse_weights -d data.vw -f m` (Python package, whole process)",
              "dense": "dense-array Numba FTRL yardstick (`benchmarks/proc_dense.py`)",
              "sparsecross_2cores": "`sparsecross train ... --names 0 -q`, 2 cores",
              "vw_sparse_2cores": "Vowpal Wabbit `--ftrl --sparse_weights`, 2 cores"}
    for name, label in labels.items():
        r = S.get(f"process/{size}/{name}")
        if not r or not r.get("rows_per_s"):
            continue
        vw = S.get(f"process/{size}/vw_sparse" + ("_2cores" if name.endswith("_2cores") else ""), {})
        ratio = f"{r['rows_per_s'] / vw['rows_per_s']:.2f}x" if vw.get("rows_per_s") else "-"
        out.append(f"| {label} | {_rate(r['rows_per_s'])} | {r['seconds']:.2f} | {ratio} | "
                   f"{_mib(r.get('peak_rss_bytes'))} |")
    out.append("")
    ker, rmw = e.get("kernel_nonzeros_per_s"), e.get("machine_rmw_per_s")
    if ker or rmw:
        out.append(f"Kernel only ({size.upper()} rows, in-memory CSR): {'-' if ker is None else f'{ker / 1e6:.1f}M'} "
                   f"nonzeros/s; this machine's random read-modify-write rate in a table of the same shape and size "
                   f"(`machine/rmw`, {S.get('machine/rmw', {}).get('capacity', 0):,} slots x 12 bytes, independent "
                   f"random slots): {'-' if rmw is None else f'{rmw / 1e6:.1f}M'} RMW/s.")
        out.append("")
    names = {"process_vs_vw_sparse": "whole process >= 8x VW `--sparse_weights`",
             "train_rows_per_s": "training >= 3M rows/s", "kernel_nonzeros_per_s": "kernel >= 60M nonzeros/s",
             "train_peak_rss_vs_vw_sparse": "peak RSS below VW's (training)",
             "process_peak_rss_vs_vw_sparse": "peak RSS below VW's (whole process)"}
    goals = []
    for c in e.get("checks", []):
        v = c["value"]
        if v is None:
            shown = "-"
        elif c["goal"] == "train_rows_per_s":
            shown = f"{v / 1e6:.2f}M rows/s"
        elif c["goal"] == "kernel_nonzeros_per_s":
            shown = f"{v / 1e6:.1f}M/s"
        else:
            shown = f"{v:.2f}x"
        verdict = "not measured" if c["met"] is None else ("pass" if c["met"] else "**fail**")
        goals.append(f"{names[c['goal']]}: {shown}, {verdict}")
    if goals:
        out.append(f"Goals (issue 14, at {size.upper()} rows{'' if e.get('at_goal_size') else '; stated for 10M'}): "
                   + "; ".join(goals) + "."
                   + (f" Measured on a loaded machine (CPU / wall share of a pinned run down to "
                      f"{e['cpu_share_min']:.2f}): not for quoting." if e.get("loaded_machine") else ""))
        out.append("")
    out.extend(_kernel_floor(doc, size))
    return out


def _kernel_floor(doc: dict[str, Any], size: str) -> list[str]:
    """Why the kernel goal passes or not: ``benchmarks/kernel_floor.py``'s compute floor and
    warm growth, against the fresh process's growth seconds of the run above."""
    path = ROOT / "benchmarks" / "results" / "kernel_floor.json"
    if not path.exists():
        return []
    kf = json.loads(path.read_text(encoding="utf-8"))
    r = kf.get(size)
    if not r:
        return []
    folded = [v["nonzeros_per_s"] for k, v in r.items() if k.startswith("folded_")]
    grow = r["growing"]
    fresh = sorted(m["result"]["growth_seconds"] for m in doc.get("raw", [])
                   if m.get("id") == f"kernel/{size}/sparsecross" and "growth_seconds" in m.get("result", {}))
    meta = kf["meta"]
    text = (f"Where the kernel's time goes (`benchmarks/kernel_floor.py`, {meta['date_utc'][:10]}, git "
            f"{meta['git_sha']}, medians of {meta['repeats']} interleaved passes in one process): on a presized table "
            f"touched before the clock, the real keys run {r['real_keys']['nonzeros_per_s'] / 1e6:.1f}M nonzeros/s and "
            f"the same rows with their keys folded into the caches {min(folded) / 1e6:.1f}-{max(folded) / 1e6:.1f}M: "
            f"the kernel runs at its compute floor, prefetching hides its cache misses.  Grown from 1,024 slots as "
            f"training grows it, in that warm process: {grow['nonzeros_per_s'] / 1e6:.1f}M nonzeros/s (growths "
            f"{min(grow['growth_seconds']):.3f}-{max(grow['growth_seconds']):.3f} s).")
    if fresh:
        text += (f"  The goal's figure above is a fresh process, whose growths took {fresh[0]:.3f}-{fresh[-1]:.3f} s:"
                 f" the last one allocates and fills about 100 MB, fast when the pages come warm, several times "
                 f"slower when this VM first hands them out; the goal is not met there.")
    return [text, ""]


def render_memory(doc: dict[str, Any]) -> str:
    """Issue 13's table: state bytes, peak RSS, test logloss and rows/s per admission variant."""
    S, M = doc["summary"], doc["meta"]
    out = [f"Measured with the `--issue13` plan of `benchmarks/run_all.py` on {M['date_utc'][:10]} (git {M['git_sha'][:10]}), "
           f"10M training rows, test = 1M later rows; medians of {M.get('repeats', 1)} interleaved runs on a shared "
           "machine: state bytes, touched features and logloss are exact, rows/s and RSS are noisy.", ""]
    for spec, label in MEMORY_SPECS.items():
        rows = sorted(k for k in S if k.startswith("memory/") and k.split("/")[2] == spec)
        base = S.get(f"memory/10m/{spec}/none", {})
        if not rows or not base:
            continue
        out += [f"{label}:", "",
                "| variant | state_bytes_peak | vs none | with state | peak RSS | test logloss | vs none | rows/s |",
                "|---|---|---|---|---|---|---|---|"]
        order = ["none", "admit_after_2", "admit_after_3", "admit_probability_0.03"]
        names = sorted((k.split("/")[3] for k in rows), key=lambda n: (order.index(n) if n in order else 9, n))
        for name in names:
            r = S[f"memory/10m/{spec}/{name}"]
            ratio = r["state_bytes_peak"] / base["state_bytes_peak"]
            dl = r["test_logloss"] / base["test_logloss"] - 1
            out.append(f"| {name} | {_mib(r['state_bytes_peak'])} | {ratio:.1%} | {r['touched_features']:,} | "
                       f"{_mib(r.get('peak_rss_bytes'))} | {r['test_logloss']:.6f} | {dl:+.4%} | "
                       f"{_rate(r.get('rows_per_s'))} |")
        out.append("")
    return "\n".join(out).rstrip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="?", default=str(ROOT / "benchmarks" / "results" / "results.json"))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--print", action="store_true", help="print instead of editing the README")
    ap.add_argument("--memory", metavar="JSON", help="render issue 13's memory table from this results file")
    args = ap.parse_args(argv)
    if args.memory:
        return _replace(Path(args.readme), render_memory(json.loads(Path(args.memory).read_text())),
                        MEMORY_START, MEMORY_END, args.print)
    doc = json.loads(Path(args.results).read_text())
    dist_path = Path(args.results).with_name("distributed.json")
    dist = json.loads(dist_path.read_text()) if dist_path.exists() else None
    return _replace(Path(args.readme), render(doc, dist), START, END, args.print)


def _replace(readme: Path, text: str, start: str, end: str, show: bool) -> int:
    if show:
        print(text)
        return 0
    src = readme.read_text()
    if start not in src or end not in src:
        raise SystemExit(f"{readme} has no {start} ... {end} markers")
    new = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: f"{start}\n{text}\n{end}", src, flags=re.S)
    readme.write_text(new)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
