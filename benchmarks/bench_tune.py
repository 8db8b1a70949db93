"""Time ``tune`` (and ``tune --search-crosses``) on the California housing data.

    python benchmarks/bench_tune.py [--repeats 3] [--out benchmarks/results/tune.json] [--crosses 3]

Data: ../shared/data/california_housing/housing.parquet (20,640 rows; label median_house_value
> 265,000, as data/specs/california.toml says), split by a seeded permutation into train 70%,
validation 15% and test 15% (written to a temporary folder, never into the repository; the
permutation also removes the file's geographic order).

Measured, A/B in the same run (medians of ``--repeats``):
- ``tune`` with the default grids (5 alphas x 6 l1 = 30 points, epochs_max 8, patience 1):
  seconds, reads of the data, the chosen point, its validation and test logloss;
- the same 30 points as 30 separate ``train(..., early_stop=1)`` runs (what a user would do
  without ``tune``): seconds, and a check that they give the same validation losses;
- ``search_and_tune`` with ``--crosses`` K: seconds, crosses added and their gains, test logloss.
Prints a summary and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import sparsecross as sx  # noqa: E402
from sparsecross.crosssearch import search_and_tune  # noqa: E402
from sparsecross.tune import DEFAULT_ALPHA, DEFAULT_EPOCHS_MAX, DEFAULT_L1, tune  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "california_housing" / "housing.parquet"
SPEC = REPO / "data" / "specs" / "california.toml"


def split(folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    table = pq.read_table(DATA)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    a, b = int(0.7 * len(order)), int(0.85 * len(order))
    paths = []
    for name, idx in (("train", order[:a]), ("valid", order[a:b]), ("test", order[b:])):
        p = folder / f"{name}.parquet"
        pq.write_table(table.take(idx), p)  # in permuted order: the file is sorted by geography
        paths.append(p)
    return paths[0], paths[1], paths[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--crosses", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "tune.json"))
    args = ap.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return 0
    spec = sx.load_spec(SPEC)
    sx.warmup()
    report: dict = {"data": str(DATA), "spec": str(SPEC.relative_to(REPO)), "repeats": args.repeats,
                    "grid": {"alpha": list(DEFAULT_ALPHA), "l1": list(DEFAULT_L1), "epochs_max": DEFAULT_EPOCHS_MAX}}
    with tempfile.TemporaryDirectory() as tmp:
        train, valid, test = split(Path(tmp))
        report["rows"] = {"train": pq.read_metadata(train).num_rows, "valid": pq.read_metadata(valid).num_rows,
                          "test": pq.read_metadata(test).num_rows}
        t_tune, t_sep = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = tune(train, spec, valid=valid, names=100)
            t_tune.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            separate = [sx.train(train, spec, alpha=p.alpha, l1=p.l1, epochs=DEFAULT_EPOCHS_MAX, valid=valid,
                                 early_stop=1, names=100) for p in res.points]
            t_sep.append(time.perf_counter() - t0)
        same = all(m.stats["valid_logloss"] == p.valid_logloss and m.stats["best_epoch"] == p.epochs
                   for m, p in zip(separate, res.points))
        c = res.chosen
        assert c is not None and c.model is not None
        report["tune"] = {"seconds_median": statistics.median(t_tune), "seconds": t_tune, "reads": res.reads,
                          "points": len(res.points), "epochs_trained_total": sum(p.epochs_trained for p in res.points),
                          "chosen": c.to_dict(), "test": sx.evaluate(c.model, test)}
        report["separate_trains"] = {"seconds_median": statistics.median(t_sep), "seconds": t_sep,
                                     "same_validation_losses_and_best_epochs": same}
        t0 = time.perf_counter()
        search, first, final = search_and_tune(train, spec, k=args.crosses, valid=valid, names=100)
        seconds = time.perf_counter() - t0
        fc = final.chosen
        assert fc is not None and fc.model is not None
        report["search_crosses"] = {"seconds": seconds, "k": args.crosses, "search_seconds": search.seconds,
                                    "added": [a.to_dict() for a in search.added], "stopped": search.stopped,
                                    "rounds": len(search.rounds), "reads": search.reads,
                                    "chosen": fc.to_dict(), "test": sx.evaluate(fc.model, test)}
    t, s, x = report["tune"], report["separate_trains"], report["search_crosses"]
    print(f"California housing: train {report['rows']['train']:,} / valid {report['rows']['valid']:,} / "
          f"test {report['rows']['test']:,} rows; median of {args.repeats}")
    print(f"tune, {t['points']} points ({t['epochs_trained_total']} point-epochs in {t['reads']} reads): "
          f"{t['seconds_median']:.2f} s; 30 separate train(early_stop=1): {s['seconds_median']:.2f} s "
          f"({s['seconds_median'] / t['seconds_median']:.1f}x); same losses: {s['same_validation_losses_and_best_epochs']}")
    print(f"  chosen alpha={t['chosen']['alpha']:g} l1={t['chosen']['l1']:g} epochs={t['chosen']['epochs']}: "
          f"valid logloss {t['chosen']['valid_logloss']:.4f}, test logloss {t['test']['logloss']:.4f}, "
          f"AUC {t['test']['auc']:.4f}")
    print(f"tune --search-crosses {args.crosses}: {x['seconds']:.1f} s (search {x['search_seconds']:.1f} s, "
          f"{x['rounds']} rounds, {x['reads']} reads); added: "
          + (", ".join(f"{' x '.join(a['features'])} ({a['gain']:.2%})" for a in x["added"]) or "none"))
    print(f"  chosen alpha={x['chosen']['alpha']:g} l1={x['chosen']['l1']:g} epochs={x['chosen']['epochs']}: "
          f"valid logloss {x['chosen']['valid_logloss']:.4f}, test logloss {x['test']['logloss']:.4f}, "
          f"AUC {x['test']['auc']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
