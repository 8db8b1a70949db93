"""The state budget's rows of the ``--issue13`` group alone (issue 13, ``--max-state-mb``).

    python benchmarks/bench_budget.py run [--repeats 3] [--out benchmarks/results/results_issue13_budget.json]
    python benchmarks/bench_budget.py table [results JSON]     # the README's Markdown table

``run`` plans :func:`run_all.budget_plan` only (``run_all.py --issue13`` plans it with the
admission rows, after preparing every workload of the suite) and runs each measurement in its
own subprocess as ``run_all.py`` does.  ``table`` renders the figures (never typed in by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run_all as R  # noqa: E402
import workloads as W  # noqa: E402

DEFAULT_OUT = BENCH / "results" / "results_issue13_budget.json"


def run(repeats: int, out: Path) -> None:
    rows = max(W.FULL["train"])
    plan = R.budget_plan(W.synthetic_train(rows), W._label(rows), str(W.synthetic_test(W.FULL["test"])), repeats)
    meta = R.metadata()
    meta["repeats"] = repeats
    raw: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for item in plan:
        r = R.run_item(item, print)
        raw.append(r)
        res = r["result"]
        brief = res.get("error") or ", ".join(f"{k}={R._fmt(res[k])}" for k in (
            "max_state_mb", "state_bytes_peak", "peak_rss_bytes", "test_logloss", "rows_per_s", "evictions")
            if res.get(k) is not None)
        print(f"[{time.perf_counter() - t0:7.1f}s] {item['id']} #{item['repeat']}: {brief}", flush=True)
    meta["loadavg_at_end"] = os.getloadavg()
    doc = {"meta": meta, "summary": R.summarize(raw), "raw": raw}
    out.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {out}")


def _mib(v: float) -> str:
    return f"{v / 2**20:,.1f} MiB"


def table(doc: dict[str, Any]) -> str:
    S, M = doc["summary"], doc["meta"]
    lines = [f"Measured by `python benchmarks/bench_budget.py run` on {M['date_utc'][:10]} (git {M['git_sha'][:10]}, "
             f"shared {M['cpu_count']}-CPU machine, one core, medians of {M.get('repeats', 1)}; bytes, counts and "
             "logloss are exact, rows/s noisy: the load average was "
             f"{M['loadavg_at_start'][0]:.0f} at the start, {M['loadavg_at_end'][0]:.0f} at the end). 10M synthetic rows, test = 1M later rows; `max_state_mb` is a "
             "fraction of the unbounded run's peak state (table growth included):", "",
             "| spec | budget | max_state_mb | state peak | vs unbounded | peak RSS | test logloss | vs unbounded "
             "| rows/s | rows per CPU-s | evicted (sweeps) |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def order(key: str) -> tuple[str, float]:  # per spec: unbounded, then the largest budget first
        variant = key.split("/")[3]
        return key.split("/")[2], -1e300 if variant == "unbounded" else -float(variant.split("_")[-1].rstrip("mb"))

    for key in sorted((k for k in S if k.startswith("budget/") and "fresh_ids" not in k), key=order):
        _, _, spec, variant = key.split("/")
        v, base = S[key], S[f"budget/{key.split('/')[1]}/{spec}/unbounded"]
        mb = "-" if v.get("max_state_mb") is None else f"{v['max_state_mb']:.1f}"
        lines.append(
            f"| {spec} | {variant.replace('max_state_', '')} | {mb} | {_mib(v['state_bytes_peak'])} | "
            f"{v['state_bytes_peak'] / base['state_bytes_peak']:.3f}x | {_mib(v['peak_rss_bytes'])} | "
            f"{v['test_logloss']:.5f} | {100 * (v['test_logloss'] / base['test_logloss'] - 1):+.4f} % | "
            f"{v['rows_per_s'] / 1e3:,.0f}k | {v['rows_per_cpu_s'] / 1e3:,.0f}k | {int(v['evicted_features']):,} ({int(v['evictions'])}) |")
    for key in sorted((k for k in S if "fresh_ids" in k), key=order):
        v = S[key]
        samples = v.get("state_samples") or []
        late = [b for r, b, _ in samples if r >= samples[-1][0] // 10] if samples else []
        lines += ["", f"Fresh-id stream `{key}` (every row a new random 64-bit id, hashed into 2^31 columns; "
                      f"{len(samples)} samples of the state over the rows): state bytes from 10% of the rows to the end "
                      f"{_mib(min(late))}..{_mib(max(late))}, keys held at the end {int(v['touched_features']):,}, "
                      f"evicted {int(v['evicted_features']):,} in {int(v['evictions'])} sweeps, peak state "
                      f"{_mib(v['state_bytes_peak'])}, peak RSS {_mib(v['peak_rss_bytes'])}." if late else ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    t = sub.add_parser("table")
    t.add_argument("results", type=Path, nargs="?", default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        run(args.repeats, args.out)
    else:
        print(table(json.loads(args.results.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
