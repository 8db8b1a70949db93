"""``suggest-spec`` on the public data sets in ``../shared/data``: time to suggest, then a quick
train of the suggested spec with a hash holdout, against the constant-rate baseline.

    PYTHONPATH=. python benchmarks/bench_suggest.py [--repeats 3] [--epochs 1] [--out results/suggest.json]

For every data set present: the median wall time of ``suggest_spec`` over ``--repeats`` runs
(sample of ``--sample-rows``, seed 0), the spec's feature and cross counts, then
``train(..., holdout=0.2)`` with the library defaults (alpha 0.1, l1 1) and ``--epochs``,
shuffled when the suggested spec says so (``[train] shuffle``, from the label's drift):
validation logloss, the constant-rate logloss of the same rows (the entropy of their positive
rate), the relative gain, AUC and nonzeros.  The California hand spec
(``data/specs/california.toml``) is trained the same way for reference, in file order and
shuffled.  Prints a table and
writes JSON; nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

#: name -> (file under DATA, label column, suggest_spec label keywords)
DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "california_housing": ("california_housing/housing.parquet", "median_house_value", {"threshold": 265000}),
    "kc_house": ("kc_house/kc_house_data.parquet", "price", {"threshold": 450000}),
    "nyc_airbnb_2019": ("nyc_airbnb_2019/AB_NYC_2019.parquet", "price", {"threshold": 150}),
    "chicago_assaults": ("chicago_assaults/chicago_aggravated_assaults.parquet", "loc_cat",
                         {"positive": ["residence"]}),
    "meteorite_landings": ("meteorite_landings/Meteorite_Landings.parquet", "fall", {"positive": ["Fell"]}),
    "earthquakes_1965_2016": ("earthquakes_1965_2016/earthquake_database.parquet", "Depth", {"threshold": 70}),
    "melbourne_housing": ("melbourne_housing/melb_data.parquet", "Price", {"threshold": 1000000}),
}


def _entropy(p: float) -> float:
    return 0.0 if not 0 < p < 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _train(path: Path, spec: Any, epochs: int, shuffle: bool | None = None) -> dict[str, Any]:
    import sparsecross as sx

    if shuffle is None:
        shuffle = bool(spec.train.get("shuffle", False))
    t0 = time.perf_counter()
    model = sx.train(path, spec, holdout=0.2, epochs=epochs, shuffle=shuffle)
    st = model.stats
    base = _entropy(st["valid_positive_rate"])
    return {"train_seconds": time.perf_counter() - t0, "valid_logloss": st["valid_logloss"],
            "baseline_logloss": base, "gain": 1 - st["valid_logloss"] / base if base else None,
            "valid_auc": st["valid_auc"], "nonzeros": model.nonzeros, "valid_rows": st["valid_rows"],
            "shuffle": shuffle}


def run(repeats: int, epochs: int, sample_rows: int) -> dict[str, Any]:
    import sparsecross as sx

    sx.warmup()
    results: dict[str, Any] = {"repeats": repeats, "epochs": epochs, "sample_rows": sample_rows,
                               "holdout": 0.2, "datasets": {}}
    for name, (rel, label, kw) in DATASETS.items():
        path = DATA / rel
        if not path.exists():
            results["datasets"][name] = {"skipped": f"{path} is absent"}
            continue
        times, res = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            res = sx.suggest_spec(path, label, sample_rows=sample_rows, seed=0, **kw)
            times.append(time.perf_counter() - t0)
        assert res is not None
        row = {"suggest_seconds_median": statistics.median(times), "suggest_seconds": times,
               "rows": res.rows_total, "rows_profiled": res.rows_profiled,
               "features": len(res.spec.to_dict()["features"]), "crosses": len(res.spec.crosses),
               "geo": [list(g) for g in res.geo],
               "pyramid": [f.resolution_arcmin for f in res.spec.features if f.kind == "geo"],
               "skipped_columns": [c for c, _ in res.skipped]}
        row.update(_train(path, res.spec, epochs))
        results["datasets"][name] = row
    hand = ROOT / "data" / "specs" / "california.toml"
    if (DATA / DATASETS["california_housing"][0]).exists():
        for shuffle in (False, True):
            results[f"california_hand_spec{'_shuffled' if shuffle else ''}"] = _train(
                DATA / DATASETS["california_housing"][0], sx.load_spec(hand), epochs, shuffle)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--sample-rows", type=int, default=100_000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "suggest.json"))
    args = ap.parse_args()
    res = run(args.repeats, args.epochs, args.sample_rows)
    print(f"{'data set':<22} {'rows':>8} {'suggest s':>9} {'feat':>4} {'cross':>5} {'logloss':>8} {'baseline':>8} "
          f"{'gain':>6} {'AUC':>6} shuffled")
    for name, r in res["datasets"].items():
        if "skipped" in r:
            print(f"{name:<22} skipped: {r['skipped']}")
            continue
        print(f"{name:<22} {r['rows']:>8,} {r['suggest_seconds_median']:>9.2f} {r['features']:>4} {r['crosses']:>5} "
              f"{r['valid_logloss']:>8.4f} {r['baseline_logloss']:>8.4f} {r['gain']:>6.1%} {r['valid_auc']:>6.3f} "
              f"{r['shuffle']}")
    for key, label in (("california_hand_spec", "california hand"), ("california_hand_spec_shuffled",
                                                                      "california hand, shuf")):
        if key in res:
            h = res[key]
            print(f"{label:<22} {'':>8} {'':>9} {'':>4} {'':>5} {h['valid_logloss']:>8.4f} "
                  f"{h['baseline_logloss']:>8.4f} {h['gain']:>6.1%} {h['valid_auc']:>6.3f}")
    Path(args.out).write_text(json.dumps(res, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
