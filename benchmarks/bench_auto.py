"""Issue 12's benchmark: ``suggest-spec`` + ``tune`` (auto) against hand-written specs and peers.

    PYTHONPATH=. python benchmarks/bench_auto.py [--only kc_house,...] [--skip auto_x,vw]
                                                 [--out benchmarks/results/auto.json]

For each of california_housing, kc_house, nyc_airbnb_2019, chicago_assaults (labels as in
``bench_suggest.DATASETS``): a fixed split train 70 / valid 15 / test 15 % by a seeded (seed 0)
permutation of the rows, written once to ``benchmarks/cache/auto/<name>/`` (git-ignored), then

- ``auto``: ``suggest_spec`` on the train split (seed 0) -> ``tune`` with the default grids,
  ``valid`` = the valid split, shuffled when the spec's ``[train] shuffle`` says so;
- ``auto_x``: the same through ``search_and_tune(k=2)`` (``tune --search-crosses 2``);
- ``hand``: ``data/specs/<hand>.toml`` tuned with the same default grid (``[train] shuffle`` of the
  hand spec respected the same way);
- ``sklearn``: LogisticRegression (lbfgs, L2) on standardized numeric columns (median-imputed) and
  one-hot categoricals; C picked on the valid split from {0.01, 0.1, 1, 10}, refit on train;
- ``sklearn_bins``: the same with every numeric column (latitude/longitude included) as 20
  quantile bins one-hot instead of standardized (a stronger simple pipeline for geo data);
- ``vw``: Vowpal Wabbit (Python package), logistic loss, raw features (numeric as values,
  categoricals as tokens), ``--passes`` picked on valid from {1, 5, 20} by holdout-less training.

Only the test split gives the reported logloss/AUC; it is never used to choose anything. Times
are wall and CPU (``time.process_time``) seconds of the whole step in this process (Numba
compilation excluded by ``warmup()`` first). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_suggest import DATA, DATASETS  # noqa: E402

CACHE = REPO / "benchmarks" / "cache" / "auto"
NAMES = ("california_housing", "kc_house", "nyc_airbnb_2019", "chicago_assaults")
HAND = {"california_housing": "california_best.toml", "kc_house": "kc_house.toml",
        "nyc_airbnb_2019": "nyc_airbnb.toml", "chicago_assaults": "chicago_assaults.toml"}
#: raw columns for the peers: (numeric, categorical, date column and its format or None)
PEER_COLUMNS: dict[str, tuple[list[str], list[str], tuple[str, str] | None]] = {
    "california_housing": (["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms",
                            "population", "households", "median_income"], ["ocean_proximity"], None),
    "kc_house": (["bedrooms", "bathrooms", "sqft_living", "sqft_lot", "floors", "waterfront", "view", "condition",
                  "grade", "sqft_above", "sqft_basement", "yr_built", "yr_renovated", "lat", "long",
                  "sqft_living15", "sqft_lot15"], ["zipcode"], ("date", "%Y%m%dT%H%M%S")),
    "nyc_airbnb_2019": (["latitude", "longitude", "minimum_nights", "number_of_reviews", "reviews_per_month",
                         "calculated_host_listings_count", "availability_365"],
                        ["neighbourhood_group", "neighbourhood", "room_type"], ("last_review", "%m/%d/%Y")),
    "chicago_assaults": (["latitude", "longitude"], ["district"], ("date", "%Y-%m-%d %H:%M")),
}


def split(name: str, seed: int = 0) -> dict[str, Path]:
    folder = CACHE / name
    paths = {k: folder / f"{k}.parquet" for k in ("train", "valid", "test")}
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(DATA / DATASETS[name][0])
    order = np.random.default_rng(seed).permutation(table.num_rows)
    a, b = int(0.7 * len(order)), int(0.85 * len(order))
    for key, idx in (("train", order[:a]), ("valid", order[a:b]), ("test", order[b:])):
        tmp = paths[key].with_suffix(".tmp")
        pq.write_table(table.take(idx), tmp)
        tmp.rename(paths[key])
    return paths


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _chosen(res: Any) -> Any:
    c = res.chosen
    assert c is not None and c.model is not None
    return c


def _tune_row(res: Any, test: Path) -> dict[str, Any]:
    import sparsecross as sx

    c = _chosen(res)
    return {"alpha": c.alpha, "l1": c.l1, "epochs": c.epochs, "valid_logloss": c.valid_logloss,
            "nonzeros": c.model.nonzeros, "test": sx.evaluate(c.model, test)}


def run_auto(name: str, p: dict[str, Path], crosses: int) -> dict[str, Any]:
    import sparsecross as sx
    from sparsecross.crosssearch import search_and_tune
    from sparsecross.tune import tune

    _, label, kw = DATASETS[name]
    sug, w1, c1 = _timed(lambda: sx.suggest_spec(p["train"], label, seed=0, **kw))
    (CACHE / name / "auto_spec.toml").write_text(sug.toml, encoding="utf-8")
    shuffle = bool(sug.spec.train.get("shuffle", False))
    if crosses:
        out, w2, c2 = _timed(lambda: search_and_tune(p["train"], sug.spec, k=crosses, valid=p["valid"],
                                                      shuffle=shuffle, names=0))
        search, _, res = out
        extra = {"added": [a.to_dict() for a in search.added], "search_seconds": search.seconds}
    else:
        res, w2, c2 = _timed(lambda: tune(p["train"], sug.spec, valid=p["valid"], shuffle=shuffle, names=0))
        extra = {}
    row = _tune_row(res, p["test"])
    row.update(extra, shuffle=shuffle, suggest_wall=w1, suggest_cpu=c1, tune_wall=w2, tune_cpu=c2,
               wall=w1 + w2, cpu=c1 + c2, features=len(sug.spec.features), spec_crosses=len(sug.spec.crosses))
    return row


def run_hand(name: str, p: dict[str, Path], file: str | None = None) -> dict[str, Any]:
    import sparsecross as sx
    from sparsecross.tune import tune

    file = file or HAND[name]
    spec = sx.load_spec(REPO / "data" / "specs" / file)
    shuffle = bool(spec.train.get("shuffle", False))
    res, w, c = _timed(lambda: tune(p["train"], spec, valid=p["valid"], shuffle=shuffle, names=0))
    row = _tune_row(res, p["test"])
    row.update(shuffle=shuffle, wall=w, cpu=c, spec=file)
    return row


# ---------------------------------------------------------------- peers

def _label(name: str, t: pa.Table) -> np.ndarray:
    _, col, kw = DATASETS[name]
    if "threshold" in kw:
        return (t.column(col).to_numpy(zero_copy_only=False) > kw["threshold"]).astype(np.int8)
    return np.isin(t.column(col).to_numpy(zero_copy_only=False).astype(str), kw["positive"]).astype(np.int8)


def _raw(name: str, t: pa.Table) -> tuple[np.ndarray, list[np.ndarray]]:
    """Numeric matrix (NaN for nulls) and categorical string columns (date parts included)."""
    num, cat, date = PEER_COLUMNS[name]
    xs = [t.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False) for c in num]
    cats = [np.asarray(t.column(c).cast(pa.string()).fill_null("NA").to_pylist(), dtype=object) for c in cat]
    if date is not None:
        ts = pc.strptime(t.column(date[0]), format=date[1], unit="s", error_is_null=True)
        for part in ("year", "month", "day_of_week", "hour"):
            v = getattr(pc, part)(ts).cast(pa.string()).fill_null("NA").to_pylist()
            if len(set(v)) > 1:
                cats.append(np.asarray(v, dtype=object))
    return np.column_stack(xs), cats


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    p = np.clip(p, 1e-15, 1 - 1e-15)
    return {"logloss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            "auc": float(roc_auc_score(y, p))}


def run_sklearn(name: str, p: dict[str, Path], bins: bool) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler

    def data(key: str) -> tuple[np.ndarray, np.ndarray]:
        t = pq.read_table(p[key])
        x, cats = _raw(name, t)
        return np.column_stack([x.astype(object)] + [c[:, None] for c in cats]), _label(name, t)

    def fit() -> dict[str, Any]:
        (xt, yt), (xv, yv), (xs, ys) = data("train"), data("valid"), data("test")
        n_num = len(PEER_COLUMNS[name][0])
        num = list(range(n_num))
        cat = list(range(n_num, xt.shape[1]))
        if bins:
            num_pipe = make_pipeline(SimpleImputer(strategy="median"),
                                     KBinsDiscretizer(n_bins=20, encode="onehot", strategy="quantile",
                                                      quantile_method="averaged_inverted_cdf"))
        else:
            num_pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        best = None
        for c in (0.01, 0.1, 1.0, 10.0):
            pre = ColumnTransformer([("num", num_pipe, num),
                                     ("cat", OneHotEncoder(handle_unknown="ignore"), cat)])
            model = make_pipeline(pre, LogisticRegression(C=c, max_iter=2000))
            model.fit(xt, yt)
            v = _metrics(yv, model.predict_proba(xv)[:, 1])["logloss"]
            if best is None or v < best[0]:
                best = (v, c, model)
        assert best is not None
        return {"C": best[1], "valid_logloss": best[0], "test": _metrics(ys, best[2].predict_proba(xs)[:, 1])}

    row, w, c = _timed(fit)
    row.update(wall=w, cpu=c)
    return row


def _vw_lines(name: str, path: Path) -> tuple[list[str], np.ndarray]:
    t = pq.read_table(path)
    x, cats = _raw(name, t)
    y = _label(name, t)
    num = PEER_COLUMNS[name][0]
    mu, sd = np.nanmean(x, axis=0), np.nanstd(x, axis=0) + 1e-12
    lines = []
    for i in range(len(y)):
        nf = " ".join(f"{n}:{(x[i, j] - mu[j]) / sd[j]:.5g}" for j, n in enumerate(num) if not math.isnan(x[i, j]))
        cf = " ".join(f"c{j}={str(c[i]).replace(' ', '_').replace(':', '_').replace('|', '_')}"
                      for j, c in enumerate(cats))
        lines.append(f"{1 if y[i] else -1} |n {nf} |c {cf}")
    return lines, y


def run_vw(name: str, p: dict[str, Path]) -> dict[str, Any]:
    import vowpalwabbit

    def fit() -> dict[str, Any]:
        tr, _ = _vw_lines(name, p["train"])
        va, yv = _vw_lines(name, p["valid"])
        te, ys = _vw_lines(name, p["test"])
        best = None
        for passes in (1, 5, 20):
            ws = vowpalwabbit.Workspace("--loss_function logistic --link logistic -b 22 --quiet -q nc")
            rng = np.random.default_rng(0)
            for _ in range(passes):
                for i in rng.permutation(len(tr)):
                    ws.learn(tr[i])
            pv = np.array([ws.predict(s) for s in va])
            v = _metrics(yv, pv)["logloss"]
            if best is None or v < best[0]:
                best = (v, passes, np.array([ws.predict(s) for s in te]))
            ws.finish()
        assert best is not None
        return {"passes": best[1], "valid_logloss": best[0], "test": _metrics(ys, best[2]),
                "args": "--loss_function logistic --link logistic -b 22 -q nc"}

    row, w, c = _timed(fit)
    row.update(wall=w, cpu=c)
    return row


def _entropy(p: float) -> float:
    return 0.0 if not 0 < p < 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def constant(name: str, p: dict[str, Path]) -> dict[str, float]:
    """Logloss on test of the train split's positive rate (a model without features)."""
    rate = float(_label(name, pq.read_table(p["train"])).mean())
    y = _label(name, pq.read_table(p["test"]))
    return {"train_rate": rate, "test_logloss": float(-np.mean(y * math.log(rate) + (1 - y) * math.log(1 - rate))),
            "test_entropy": _entropy(float(y.mean()))}


STEPS: dict[str, Callable[[str, dict[str, Path]], dict[str, Any]]] = {
    "hand": run_hand,
    "hand_small": lambda n, p: run_hand(n, p, "california.toml"),
    "auto": lambda n, p: run_auto(n, p, 0),
    "auto_x": lambda n, p: run_auto(n, p, 2),
    "sklearn": lambda n, p: run_sklearn(n, p, False),
    "sklearn_bins": lambda n, p: run_sklearn(n, p, True),
    "vw": run_vw,
}


def table(res: dict[str, Any]) -> str:
    cols = ["const", *STEPS]
    out = [f"{'data set':<18} " + " ".join(f"{c:>12}" for c in cols) + "  auto/hand-1  autox/hand-1"]
    for name, r in res["datasets"].items():
        vals = [r["constant"]["test_logloss"]] + [r[s]["test"]["logloss"] if s in r else float("nan") for s in STEPS]
        gap = [f"{r[a]['test']['logloss'] / r['hand']['test']['logloss'] - 1:+.1%}" if a in r and "hand" in r
               else "-" for a in ("auto", "auto_x")]
        out.append(f"{name:<18} " + " ".join(f"{v:>12.4f}" for v in vals) + f"  {gap[0]:>11}  {gap[1]:>12}")
    out.append(f"{'wall s (cpu s)':<18} " + " " * 13)
    for name, r in res["datasets"].items():
        out.append(f"{name:<18} {'':>12} " + " ".join(
            f"{r[s]['wall']:>5.1f}({r[s]['cpu']:>5.1f})" if s in r else f"{'-':>12}" for s in STEPS))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(NAMES))
    ap.add_argument("--skip", default="", help="steps to leave out (hand,auto,auto_x,sklearn,sklearn_bins,vw)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "auto.json"))
    ap.add_argument("--merge", nargs="*", default=None,
                    help="only merge these result files' data sets into --out and print the table")
    args = ap.parse_args()
    if args.merge is not None:
        out = Path(args.out)
        res = json.loads(out.read_text()) if out.exists() else {"datasets": {}}
        for f in args.merge:
            other = json.loads(Path(f).read_text())
            for name, r in other["datasets"].items():
                res["datasets"].setdefault(name, {}).update(r)
            res["split"] = other["split"]
        out.write_text(json.dumps(res, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        print(table(res))
        return 0
    import sparsecross as sx

    sx.warmup()
    out = Path(args.out)
    res: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    res.setdefault("datasets", {})
    res["split"] = "seeded (seed 0) permutation, train 70% / valid 15% / test 15%, benchmarks/cache/auto/"
    skip = set(filter(None, args.skip.split(",")))
    for name in args.only.split(","):
        if not (DATA / DATASETS[name][0]).exists():
            res["datasets"][name] = {"skipped": "data absent"}
            continue
        p = split(name)
        r = res["datasets"].setdefault(name, {})
        r["rows"] = {k: pq.read_metadata(v).num_rows for k, v in p.items()}
        r["constant"] = constant(name, p)
        for step, fn in STEPS.items():
            if step in skip or (step == "hand_small" and name != "california_housing"):
                continue
            r[step] = fn(name, p)
            print(f"{name} {step}: test logloss {r[step]['test']['logloss']:.4f} auc {r[step]['test']['auc']:.4f} "
                  f"wall {r[step]['wall']:.1f} s", flush=True)
            out.write_text(json.dumps(res, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
