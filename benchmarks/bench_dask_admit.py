"""Admission and the state budget on Dask data-parallel training (issue 13 item 4) against
single-node, on the 2M-row synthetic set.

    python benchmarks/bench_dask_admit.py [--rows 2000000] [--rows-per-round 200000] [--budget-share 0.25]

Data: ``workloads.synthetic_train(rows)`` (cached under ``benchmarks/cache``) and the 1M-row
test set of the same world (``workloads.synthetic_test``); spec
``data/specs/synthetic_bench_hashed.toml`` (the issue 13 benchmark spec: the bench spec plus a
hashed user x hour cross); library default hyperparameters, one pass.  Data-parallel runs: K = 2
lanes, ``--rows-per-round`` rows per round (100,000 per lane), a ``local:2`` cluster.

Measured per configuration: touched features (keys with state at the end), state bytes
(``model.run["state_bytes_peak"]``: single-node, the table + filter at their largest; Dask, the
sum of the shards' peaks), test logloss, wall seconds (a shared 2-CPU VM: indicative only).
The data-parallel run without admission reports its state bytes through a budget far above
the state (1e5 MiB: the state is then split into K shards, the model is the same, bit for bit,
as with one shard per worker).  The budget row uses ``--budget-share`` of that run's state.
Writes ``benchmarks/results/dask_admit.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.workloads import BENCH_HASHED_SPEC, synthetic_test, synthetic_train  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "dask_admit.json"
UNBOUNDED_MB = 1e5


def run(name: str, train: Path, test: Path, spec: Any, **kw: Any) -> dict[str, Any]:
    import sparsecross
    from sparsecross.export import model_bytes
    from sparsecross.predict import evaluate

    t = time.perf_counter()
    model = sparsecross.train(train, spec, **kw)
    seconds = time.perf_counter() - t
    keys = ("touched_features", "nonzeros", "admitted_features", "rejected_sightings", "evicted_features",
            "admit_filter_bytes")
    row = {"config": name, "seconds": round(seconds, 2), "state_bytes_peak": model.run.get("state_bytes_peak"),
           "test_logloss": evaluate(model, test)["logloss"], "model_bytes": len(model_bytes(model)),
           **{k: model.stats[k] for k in keys if k in model.stats},
           "params": {k: v for k, v in kw.items() if k != "client"}}
    sys.stderr.write(json.dumps(row) + "\n")
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rows-per-round", type=int, default=200_000)
    ap.add_argument("--budget-share", type=float, default=0.25)
    args = ap.parse_args()

    import sparsecross
    from sparsecross.dask import connect
    from sparsecross.files import atomic_output

    train, test = synthetic_train(args.rows), synthetic_test(1_000_000)
    spec = sparsecross.load_spec(BENCH_HASHED_SPEC)
    rows = [run("single", train, test, spec), run("single, admit-after 2", train, test, spec, admit_after=2)]
    client, cluster = connect("local:2")
    try:
        dp = dict(client=client, lanes=2, rows_per_round=args.rows_per_round)
        rows.append(run("K=2, 2 workers", train, test, spec, max_state_mb=UNBOUNDED_MB, **dp))
        rows.append(run("K=2, 2 workers, admit-after 2", train, test, spec, admit_after=2, **dp))
        budget = round(args.budget_share * rows[2]["state_bytes_peak"] / 2**20, 2)
        rows.append(run(f"K=2, 2 workers, --max-state-mb {budget}", train, test, spec, max_state_mb=budget, **dp))
        rows.append(run(f"K=2, 2 workers, admit-after 2, --max-state-mb {budget}", train, test, spec,
                        max_state_mb=budget, admit_after=2, **dp))
    finally:
        client.close()
        cluster.close()
    base = {r["config"]: r for r in rows}
    result = {"rows": args.rows, "rows_per_round": args.rows_per_round, "spec": BENCH_HASHED_SPEC.name,
              "sparsecross": sparsecross.__version__, "results": rows}
    with atomic_output(RESULTS, "benchmark results") as fh:
        fh.write((json.dumps(result, indent=2) + "\n").encode())
    print("| config | touched features | state bytes (peak) | test logloss | vs its baseline | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ref = base["single"] if r["config"].startswith("single") else base["K=2, 2 workers"]
        print(f"| {r['config']} | {r['touched_features']:,} | {r['state_bytes_peak']:,} "
              f"({r['state_bytes_peak'] / ref['state_bytes_peak']:.0%}) | {r['test_logloss']:.5f} | "
              f"{(r['test_logloss'] / ref['test_logloss'] - 1) * 100:+.3f} % | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
