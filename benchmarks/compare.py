"""Compare two benchmark results: ``python benchmarks/compare.py base.json head.json``.

Prints, for every measurement id present in both files, the metrics that matter with
``head / base`` ratios, and flags regressions beyond per-metric tolerances (the machine is
shared and noisy: speed tolerances are wide on purpose; quality and size tolerances tight).
Exit status 1 when a regression is flagged and ``--fail`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: metric -> (direction, kind, tolerance).  direction +1: higher is better, -1: lower is better.
#: kind "rel": flag when worse by more than tol (fraction); "abs": by more than tol (absolute).
METRICS: dict[str, tuple[int, str, float]] = {
    "rows_per_s": (+1, "rel", 0.15),
    "nonzeros_per_s": (+1, "rel", 0.15),
    "seconds": (-1, "rel", 0.15),
    "peak_rss_bytes": (-1, "rel", 0.10),
    "state_bytes": (-1, "rel", 0.05),
    "test_logloss": (-1, "abs", 1e-4),
    "test_auc": (+1, "abs", 1e-4),
    "progressive_logloss": (-1, "abs", 1e-4),
    "model_bytes": (-1, "rel", 0.02),
    "model_bytes_predict_only": (-1, "rel", 0.02),
    "compile_s": (-1, "rel", 0.50),
    "sparsecross_warmup_s": (-1, "rel", 0.50),
    "load_s_median": (-1, "rel", 0.50),
    "file_bytes": (-1, "rel", 0.01),
    "bytes_per_nonzero": (-1, "rel", 0.01),
    "rmw_per_s": (+1, "rel", 0.15),       # machine/rmw: a change is the machine's, not the code's
    "startup_wall_s": (-1, "rel", 0.50),  # process/*: bare start of the command
}
#: Reported (changes shown) but never flagged: they depend on the model, not on speed.
INFO = ("nonzeros", "touched_features")


def _flatten(s: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in s.items():
        if isinstance(v, dict):  # per encoding
            for k2, v2 in _flatten(v).items():
                out[f"{k}.{k2}"] = v2
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def _spec(metric: str) -> tuple[int, str, float] | None:
    return METRICS.get(metric.rsplit(".", 1)[-1])


def compare(base: dict[str, Any], head: dict[str, Any], *, speed_tol: float | None = None) -> list[dict[str, Any]]:
    rows = []
    for id_ in head["summary"]:
        if id_ not in base["summary"]:
            continue
        b, h = _flatten(base["summary"][id_]), _flatten(head["summary"][id_])
        for metric in sorted(set(b) & set(h)):
            leaf = metric.rsplit(".", 1)[-1]
            spec = _spec(metric)
            if spec is None and leaf not in INFO:
                continue
            bv, hv = b[metric], h[metric]
            ratio = hv / bv if bv else float("inf") if hv else 1.0
            flag = ""
            if spec is not None:
                direction, kind, tol = spec
                if speed_tol is not None and leaf in ("rows_per_s", "nonzeros_per_s", "seconds"):
                    tol = speed_tol
                worse = (bv - hv) * direction  # > 0: head is worse
                if kind == "rel":
                    if bv and worse / abs(bv) > tol:
                        flag = "REGRESSION"
                    elif bv and -worse / abs(bv) > tol:
                        flag = "improved"
                else:
                    if worse > tol:
                        flag = "REGRESSION"
                    elif -worse > tol:
                        flag = "improved"
            elif bv != hv:
                flag = "changed"
            rows.append({"id": id_, "metric": metric, "base": bv, "head": hv, "ratio": ratio, "flag": flag})
    return rows


def _fmt(v: float) -> str:
    if abs(v) >= 1e5:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:,.3f}"
    return f"{v:.6f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("head")
    ap.add_argument("--all", action="store_true", help="print every compared metric, not only flagged ones")
    ap.add_argument("--speed-tol", type=float, default=None, help="override the relative tolerance of speed metrics")
    ap.add_argument("--fail", action="store_true", help="exit 1 when a regression is flagged")
    args = ap.parse_args(argv)
    base = json.loads(Path(args.base).read_text())
    head = json.loads(Path(args.head).read_text())
    for name, doc in (("base", base), ("head", head)):
        m = doc["meta"]
        print(f"{name}: {m.get('date_utc')} git {str(m.get('git_sha'))[:10]} "
              f"{'(library dirty) ' if m.get('git_dirty_library') else ''}{m.get('cpu_model')} "
              f"quick={m.get('quick')} load {m.get('loadavg_at_start', ['?'])[0]}")
        for mr in m.get("merged_runs", []):
            print(f"      + merged {mr.get('date_utc')} git {str(mr.get('git_sha'))[:10]}: {len(mr.get('ids', []))} ids")
    if base["meta"].get("quick") != head["meta"].get("quick"):
        print("warning: comparing a --quick run with a full run (different sizes)")
    rows = compare(base, head, speed_tol=args.speed_tol)
    shown = [r for r in rows if args.all or r["flag"]]
    w = max([len(r["id"]) for r in shown] + [10])
    wm = max([len(r["metric"]) for r in shown] + [6])
    print(f"{'id':<{w}}  {'metric':<{wm}}  {'base':>16}  {'head':>16}  {'head/base':>9}  flag")
    for r in shown:
        print(f"{r['id']:<{w}}  {r['metric']:<{wm}}  {_fmt(r['base']):>16}  {_fmt(r['head']):>16}  "
              f"{r['ratio']:>9.3f}  {r['flag']}")
    n_reg = sum(r["flag"] == "REGRESSION" for r in rows)
    n_imp = sum(r["flag"] == "improved" for r in rows)
    print(f"\n{len(rows)} metrics compared: {n_reg} regressions, {n_imp} improvements beyond tolerance")
    return 1 if (args.fail and n_reg) else 0


if __name__ == "__main__":
    sys.exit(main())
