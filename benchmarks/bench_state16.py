"""16-bit FTRL state: does it pay?  (issue 13 item 5; a measurement, the library is unchanged)

For each dataset, trains the library (``sparsecross.train``, float32 state: 12-byte slots of
uint32 key, float32 z, float32 n) and the prototype kernels of ``state16_kernels.py`` on the
same rows in the same order with the same alpha/beta/l1/l2/epochs, then compares test logloss
and AUC (``sparsecross.metrics.StreamingMetrics``) and state bytes.  The prototype with float32
z and n must reproduce the library's state bit for bit (checked: ``f32_matches_library``), so
every difference is the storage form's.  Randomized-rounding variants run with several seeds:
their spread is the noise level of the comparison itself.  Keep criterion: relative test
logloss *cost* (increase) < 0.01 % (1e-4) on every dataset and every seed; decreases of the
same size are rounding noise too (the min..max over seeds shows it), not gains.

    python benchmarks/bench_state16.py                 # all datasets; 3 seeds, 8 on California (~50 min on 2 busy cores)
    python benchmarks/bench_state16.py --quick         # 200k-row synthetic + California (~1-2 min)
    python benchmarks/bench_state16.py --only california_e1 --small-seeds 16 --variants w13p16:sqrtf16
    python benchmarks/bench_state16.py --variants w13p16:sqrtf16 --out x.json   # then:
    python benchmarks/bench_state16.py --merge-from x.json                      # into state16.json
    python benchmarks/bench_state16.py --count-alpha-sweep                      # -> state16_count_alpha.json

Writes ``benchmarks/results/state16.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import state16_kernels as K  # noqa: E402
import workloads as W  # noqa: E402

PARAMS = {"alpha": 0.1, "beta": 1.0, "l1": 1.0, "l2": 0.0}
CRITERION = 1e-4  # relative test logloss change: 0.01 %
KEY_BYTES = 4

Z_FORMS = {"f64": (K.Z_F64, 8), "f32": (K.Z_F32, 4), "f16": (K.Z_F16, 2), "bf16": (K.Z_BF16, 2),
           "qfix": (K.Z_QFIX, 2), "w13": (K.Z_W13, 2), "w13p16": (K.Z_W13P, 2), "w13p64": (K.Z_W13P, 2)}
#: Promotion threshold T on sqrt(n) of the ``w13pT`` forms (z of promoted keys in float32).
PROMOTE = {"w13p16": 16.0, "w13p64": 64.0}
N_FORMS = {"f64": (K.N_F64, 8), "f32": (K.N_F32, 4), "f16": (K.N_F16, 2), "bf16": (K.N_BF16, 2),
           "log16": (K.N_LOG16, 2), "cnt16": (K.N_CNT16, 4), "cnt8": (K.N_CNT8, 2),
           "sqrtf16": (K.N_SQRTF16, 2)}

#: (z form, n form, randomized rounding).  f64/f64 is the exact reference (how far the
#: library's float32 itself is from exact), f32/f32 the library mirror.
VARIANTS: list[tuple[str, str, bool]] = [
    ("f64", "f64", False), ("f32", "f32", False),
    # n alone in 16 bits (z float32)
    ("f32", "f16", True), ("f32", "bf16", True), ("f32", "log16", True), ("f32", "cnt16", False),
    ("f32", "cnt8", False), ("f32", "sqrtf16", True), ("f32", "log16", False),
    # z alone in 16 bits (n float32)
    ("f16", "f32", True), ("f16", "f32", False), ("bf16", "f32", True), ("qfix", "f32", True),
    ("w13", "f32", True), ("w13", "f32", False),
    # 8-byte slots: uint32 key + 16-bit z + 16-bit n
    ("w13", "log16", True), ("w13", "sqrtf16", True), ("w13", "f16", True), ("w13", "bf16", True), ("w13", "cnt8", True),
    ("f16", "f16", True), ("f16", "log16", True), ("bf16", "bf16", True),
    # q2.13 v with the few frequent keys' z promoted to float32
    ("w13p16", "sqrtf16", True), ("w13p64", "sqrtf16", True),
]


def variant_name(z: str, n: str, sr: bool) -> str:
    rounding = "rr" if sr else "nearest"
    return f"z={z} n={n} {rounding}" if (z, n) not in (("f64", "f64"), ("f32", "f32")) else f"z={z} n={n}"


def slot_bytes(z: str, n: str) -> int:
    return KEY_BYTES + Z_FORMS[z][1] + N_FORMS[n][1]


# ------------------------------------------------------------------ data
def datasets(quick: bool) -> dict[str, dict[str, Any]]:
    """name -> train CSR (row-sliced), test CSR, parquet, spec, epochs (lazy loaders)."""
    import sparsecross

    spec = sparsecross.load_spec(W.BENCH_SPEC)
    cal_train, cal_test = W.california()
    cal_spec = W.resolved_spec(W.CALIFORNIA_SPEC, cal_train)
    out: dict[str, dict[str, Any]] = {}
    sizes = [200_000] if quick else [2_000_000, 10_000_000]
    test_rows = 200_000 if quick else 1_000_000
    for rows in sizes:
        out[f"synthetic_{W._label(rows)}"] = {"parquet": W.synthetic_train(rows), "spec": spec, "epochs": 1,
                                              "source": W.synthetic_train(max(sizes)), "rows": rows,
                                              "test": W.synthetic_test(test_rows)}
    for ep in (1, 10):
        out[f"california_e{ep}"] = {"parquet": cal_train, "spec": cal_spec, "epochs": ep, "source": cal_train,
                                    "rows": None, "test": cal_test}
    return out


def row_slice(X: dict[str, np.ndarray], rows: int | None) -> dict[str, np.ndarray]:
    """The first ``rows`` rows of a cached CSR (the 2M file is a prefix of the 10M file)."""
    ip = np.asarray(X["indptr"])
    r = len(ip) - 1 if rows is None else rows
    end = int(ip[r])
    return {"indptr": np.ascontiguousarray(ip[:r + 1]), "indices": np.ascontiguousarray(X["indices"][:end]),
            "data": np.ascontiguousarray(X["data"][:end]), "y": np.ascontiguousarray(X["y"][:r])}


def metrics(margins: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sparsecross.metrics import StreamingMetrics

    m = StreamingMetrics()
    m.update(margins, y)
    return {"logloss": m.logloss, "auc": m.auc}


# ------------------------------------------------------------------ encoder checks
def self_check() -> dict[str, bool]:
    """The prototype's encoders against independent ones: nearest f16 / bf16 rounding equals
    numpy's float16 cast / float32 round-half-even truncation; randomized rounding is unbiased
    (its mean over an even grid of u equals x, to the grid's resolution); LOG16 to nearest is within half a step."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20_000) * np.exp(rng.uniform(-20, 11, 20_000))
    x = x[np.abs(x) < 65504.0]
    st = np.zeros(5, dtype=np.int64)
    f16 = np.array([K.float_round(v, 10, -14, K.F16_MAX, 0.0, False, st, 1) for v in x])
    b32 = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bf = ((b32 + 0x7FFF + ((b32 >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32).astype(np.float64)
    bf16 = np.array([K.float_round(float(v), 7, -126, K.BF16_MAX, 0.0, False, st, 1) for v in x.astype(np.float32)])
    u = (np.arange(4096) + 0.5) / 4096
    unbiased = True
    for v in (0.3, -1234.567, 3.3e-6, 70.000001):
        cases = [(lambda uu: K.float_round(v, 10, -14, K.F16_MAX, uu, True, st, 1), v),
                 (lambda uu: K.float_round(v, 7, -126, K.BF16_MAX, uu, True, st, 1), v),
                 (lambda uu: K.fixed_round(v / 1e3, K.W13_STEP, uu, True, st, 1), v / 1e3),
                 (lambda uu: K.log_decode(K.log_encode(abs(v), uu, True, st)), abs(v))]
        for fn, target in cases:
            mean = float(np.mean([fn(uu) for uu in u]))
            step = abs(fn(0.0) - fn(1.0 - 1e-12))  # the two neighbours of the target
            unbiased &= abs(mean - target) <= step / len(u) + 1e-15 * abs(target)
    n = np.exp(rng.uniform(-15, 25, 5000))
    dec = np.array([K.log_decode(K.log_encode(v, 0.0, False, st)) for v in n])
    return {"f16_nearest_matches_numpy": bool(np.array_equal(f16, x.astype(np.float16).astype(np.float64))),
            "bf16_nearest_matches_bit_rounding": bool(np.array_equal(bf16, bf)),
            "randomized_rounding_unbiased": unbiased,
            "log16_nearest_within_half_step": bool(np.max(np.abs(dec / n - 1)) <= 2 ** (1 / 2048) - 1 + 1e-12)}


# ------------------------------------------------------------------ runs
def library_baseline(d: dict[str, Any], test: dict[str, np.ndarray]) -> dict[str, Any]:
    """sparsecross.train on the Parquet file (float32 state) and its test metrics."""
    import sparsecross
    from sparsecross._kernels.ftrl import FTRLParams, state_margins

    t0 = time.perf_counter()
    _, state = sparsecross.train(d["parquet"], d["spec"], epochs=d["epochs"], return_state=True, **PARAMS)
    seconds = time.perf_counter() - t0
    params = FTRLParams(PARAMS["alpha"], PARAMS["beta"], PARAMS["l1"], PARAMS["l2"], 0.0)
    margins = state_margins(test["indptr"], test["indices"], test["data"], state.table, state.values,
                            state.bias, params)
    occupied = state.table[:, 0] != np.iinfo(state.table.dtype).max
    order = np.argsort(state.table[occupied, 0], kind="stable")
    return {"state": state, "train_seconds": seconds, "touched": state.touched, "capacity": state.capacity,
            "state_bytes": state.nbytes, "slot_bytes": state.table.itemsize * state.table.shape[1],
            "keys": state.table[occupied, 0].astype(np.uint64)[order],
            "z": state.values[occupied, 1].astype(np.float64)[order],
            "n": state.values[occupied, 2].astype(np.float64)[order],
            "bias": state.bias.copy(), **metrics(margins, test["y"])}


def proto_train(X: dict[str, np.ndarray], epochs: int, capacity: int, z: str, n: str, sr: bool, seed: int,
                zstep: float) -> dict[str, Any]:
    from sparsecross._kernels.table import empty_table

    keys = empty_table(capacity, 1, np.dtype(np.uint32))
    st = np.zeros((capacity, 3), dtype=np.float64)
    bias = np.zeros(2, dtype=np.float64)
    hp = np.array([PARAMS["alpha"], PARAMS["beta"], PARAMS["l1"], PARAMS["l2"], zstep, PROMOTE.get(z, np.inf)],
                  dtype=np.float64)
    modes = np.array([Z_FORMS[z][0], N_FORMS[n][0], int(sr), seed], dtype=np.int64)
    stats = np.zeros(5, dtype=np.int64)
    rows = len(X["y"])
    t0 = time.perf_counter()
    for ep in range(epochs):
        K.proto_pass(X["indptr"], X["indices"], X["data"], X["y"], keys, st, bias, hp, modes, ep * rows, stats)
        if stats[4]:
            raise RuntimeError("prototype table too small")
    return {"keys": keys, "st": st, "bias": bias, "hp": hp, "modes": modes, "stats": stats,
            "train_seconds": time.perf_counter() - t0}


def check_forms(run: dict[str, Any], z: str, n: str) -> bool:
    """Every stored value is exactly representable in its variant's form."""
    occ = run["keys"][:, 0] != np.iinfo(np.uint32).max
    zc = run["st"][occ, 0]
    nc = run["st"][occ, 1:3]
    ok = True
    if z == "f32":
        ok &= bool(np.array_equal(zc.astype(np.float32).astype(np.float64), zc))
    elif z == "f16":
        ok &= bool(np.array_equal(zc.astype(np.float16).astype(np.float64), zc))
    elif z == "bf16":
        b = zc.astype(np.float32)
        ok &= bool(np.array_equal(b.astype(np.float64), zc) and not np.any(b.view(np.uint32) & 0xFFFF))
    elif z in ("qfix", "w13", "w13p16", "w13p64"):
        if z in PROMOTE:  # promoted keys hold float32 z, the others q2.13 v
            prom = np.sqrt(n_decoded(run)) > PROMOTE[z]
            ok &= bool(np.array_equal(zc[prom].astype(np.float32).astype(np.float64), zc[prom]))
            zc = zc[~prom]
        code = zc / (2.0 ** -13 if z != "qfix" else run["hp"][4])
        ok &= bool(np.array_equal(code, np.round(code)) and code.min(initial=0) >= -32768 and code.max(initial=0) <= 32767)
    if n == "f32":
        ok &= bool(np.array_equal(nc[:, 0].astype(np.float32).astype(np.float64), nc[:, 0]))
    elif n in ("f16", "sqrtf16"):
        ok &= bool(np.array_equal(nc[:, 0].astype(np.float16).astype(np.float64), nc[:, 0]))
    elif n == "bf16":
        b = nc[:, 0].astype(np.float32)
        ok &= bool(np.array_equal(b.astype(np.float64), nc[:, 0]) and not np.any(b.view(np.uint32) & 0xFFFF))
    elif n in ("log16", "cnt16", "cnt8"):
        top = {"log16": 65535, "cnt16": 65535, "cnt8": 255}[n]
        cols = nc[:, :1] if n == "log16" else nc
        ok &= bool(np.array_equal(cols, np.round(cols)) and cols.min(initial=0) >= 0 and cols.max(initial=0) <= top)
    return ok


def n_decoded(run: dict[str, Any]) -> np.ndarray:
    """Decoded n of the occupied slots, in slot order."""
    return K.decoded_state(run["keys"], run["st"], run["hp"], run["modes"])[2]


def matches_library(run: dict[str, Any], base: dict[str, Any]) -> bool:
    k, zz, nn = K.decoded_state(run["keys"], run["st"], run["hp"], run["modes"])
    order = np.argsort(k, kind="stable")
    return bool(np.array_equal(k[order], base["keys"]) and np.array_equal(zz[order], base["z"])
                and np.array_equal(nn[order], base["n"]) and np.array_equal(run["bias"], base["bias"]))


def qfix_step(base: dict[str, Any]) -> float:
    """Per-model step 2**-k for int16 z: the finest that holds the library run's max |z|
    (an oracle: a real implementation would have to guess the range before training)."""
    zmax = float(np.abs(base["z"]).max())
    k = int(np.floor(np.log2(32767.0 / zmax)))
    return 2.0 ** -k


# ------------------------------------------------------------------ one dataset
def run_dataset(name: str, d: dict[str, Any], seeds: list[int], log: Any,
                variants: list[tuple[str, str, bool]]) -> dict[str, Any]:
    import sparsecross

    test = row_slice(W.csr(d["test"], d["spec"], mmap=True), None)
    train = row_slice(W.csr(d["source"], d["spec"], mmap=True), d["rows"])
    base = library_baseline(d, test)
    log(f"[{name}] library: logloss {base['logloss']:.6f} auc {base['auc']:.5f} touched {base['touched']:,} "
        f"({base['train_seconds']:.1f} s)")
    capacity = 1 << int(np.ceil(np.log2(base["touched"] / 0.5 + 16)))
    zstep = qfix_step(base)
    out: dict[str, Any] = {
        "train_rows": len(train["y"]), "test_rows": len(test["y"]), "epochs": d["epochs"],
        "parquet": str(d["parquet"]), "spec_sha256": d["spec"].sha256, "sparsecross_version": sparsecross.__version__,
        "library": {k: base[k] for k in ("logloss", "auc", "touched", "capacity", "state_bytes", "slot_bytes",
                                         "train_seconds")},
        "qfix_step": zstep, "max_abs_z": float(np.abs(base["z"]).max()), "max_n": float(base["n"].max()),
        "variants": [],
    }
    for z, n, sr in variants:
        runs = []
        for seed in (seeds if sr else seeds[:1]):
            run = proto_train(train, d["epochs"], capacity, z, n, sr, seed, zstep)
            margins = K.proto_margins(test["indptr"], test["indices"], test["data"], run["keys"], run["st"],
                                      run["bias"], run["hp"], run["modes"])
            m = metrics(margins, test["y"])
            rec = {"seed": seed, **m, "rel_logloss": m["logloss"] / base["logloss"] - 1.0,
                   "d_auc": m["auc"] - base["auc"], "touched": int(run["stats"][0]),
                   "z_clipped": int(run["stats"][1]), "n_saturated": int(run["stats"][2]),
                   "count_halvings": int(run["stats"][3]), "forms_exact": check_forms(run, z, n),
                   "promoted": int(np.sum(np.sqrt(n_decoded(run)) > PROMOTE[z])) if z in PROMOTE else 0,
                   "train_seconds": run["train_seconds"]}
            if (z, n) == ("f32", "f32"):
                rec["f32_matches_library"] = matches_library(run, base)
            runs.append(rec)
        rel = [r["rel_logloss"] for r in runs]
        promoted = max(r["promoted"] for r in runs)
        v = {"name": variant_name(z, n, sr), "z": z, "n": n, "randomized_rounding": sr,
             "slot_bytes": slot_bytes(z, n), "state_bytes": capacity_bytes(base, z, n) + 4 * promoted,
             "rel_logloss_mean": float(np.mean(rel)), "rel_logloss_min": float(np.min(rel)),
             "rel_logloss_max": float(np.max(rel)), "worst_abs_rel_logloss": float(np.max(np.abs(rel))),
             "d_auc_mean": float(np.mean([r["d_auc"] for r in runs])),
             "meets_criterion": bool(np.max(rel) < CRITERION), "runs": runs}
        out["variants"].append(v)
        log(f"[{name}] {v['name']:<28} rel logloss {v['rel_logloss_mean']:+.3e} "
            f"[{v['rel_logloss_min']:+.2e}, {v['rel_logloss_max']:+.2e}] dAUC {v['d_auc_mean']:+.2e} "
            f"{v['slot_bytes']} B/slot  ({np.mean([r['train_seconds'] for r in runs]):.1f} s/run)"
            + ("" if all(r["forms_exact"] for r in runs) else "  FORMS NOT EXACT"))
    for v in out["variants"]:
        if (v["z"], v["n"]) == ("f32", "f32") and not v["runs"][0]["f32_matches_library"]:
            log(f"[{name}] WARNING: the float32 prototype does not reproduce the library's state")
    return out


def capacity_bytes(base: dict[str, Any], z: str, n: str) -> int:
    """The variant's table at the library run's capacity (same load factor) + the float64 bias."""
    return int(base["capacity"] * slot_bytes(z, n) + 16)


# ------------------------------------------------------------------ report
def table(results: dict[str, Any]) -> str:
    names = list(results["datasets"])
    lines = ["| variant | bytes/slot | " + " | ".join(f"{d} rel logloss mean (min..max) / dAUC" for d in names)
             + " | cost < 0.01% everywhere | abs change < 0.01% everywhere |",
             "| --- | ---: | " + " | ".join("---" for _ in names) + " | --- | --- |"]
    by_name = {d: {v["name"]: v for v in results["datasets"][d]["variants"]} for d in names}
    seen: list[str] = []
    for d in names:
        seen += [k for k in by_name[d] if k not in seen]
    for vname in seen:
        cells = []
        ok = both = True
        for d in names:
            w = by_name[d].get(vname)
            if w is None:
                ok = both = False
                cells.append("-")
                continue
            ok &= w["meets_criterion"]
            both &= max(abs(w["rel_logloss_min"]), abs(w["rel_logloss_max"])) < CRITERION
            cells.append(f"{100 * w['rel_logloss_mean']:+.4f}% ({100 * w['rel_logloss_min']:+.4f}.."
                         f"{100 * w['rel_logloss_max']:+.4f}) / {w['d_auc_mean']:+.1e}")
        slot = next(by_name[d][vname]["slot_bytes"] for d in names if vname in by_name[d])
        flags = f" | {'yes' if ok else 'no'} | {'yes' if both else 'no'} |"
        lines.append(f"| {vname} | {slot} | " + " | ".join(cells) + flags)
    lib = " ".join(f"{d}: logloss {results['datasets'][d]['library']['logloss']:.6f}, "
                   f"{results['datasets'][d]['library']['touched']:,} keys, "
                   f"{results['datasets'][d]['library']['state_bytes'] / 2**20:.1f} MiB;"
                   for d in names)
    return "\n".join(lines) + f"\n\nLibrary float32 state (12 bytes/slot): {lib}"


def count_alpha_sweep(log: Any) -> dict[str, Any]:
    """California: float64 n = sum(g*g) vs the count-based n = P N / (P + N) (16-bit counters)
    over a grid of alpha: is the count-based n's difference a learning-rate effect?"""
    out: dict[str, Any] = {}
    saved = PARAMS["alpha"]
    try:
        for name, d in datasets(True).items():
            if not name.startswith("california"):
                continue
            test = row_slice(W.csr(d["test"], d["spec"], mmap=True), None)
            train = row_slice(W.csr(d["source"], d["spec"], mmap=True), None)
            rows = []
            for alpha in (0.03, 0.1, 0.2, 0.3, 0.5, 1.0):
                PARAMS["alpha"] = alpha
                row: dict[str, Any] = {"alpha": alpha}
                for z, n in (("f64", "f64"), ("f64", "cnt16")):
                    run = proto_train(train, d["epochs"], 1 << 13, z, n, False, 0, 1.0)
                    row[f"n={n}"] = metrics(K.proto_margins(test["indptr"], test["indices"], test["data"], run["keys"],
                                                            run["st"], run["bias"], run["hp"], run["modes"]), test["y"])
                log(f"[{name}] alpha {alpha}: logloss n=f64 {row['n=f64']['logloss']:.5f}, "
                    f"n=cnt16 {row['n=cnt16']['logloss']:.5f}")
                rows.append(row)
            out[name] = rows
    finally:
        PARAMS["alpha"] = saved
    return out


def merge(results: dict[str, Any], old: dict[str, Any]) -> None:
    """Add to ``results`` the datasets and variants of ``old`` that it does not have (a
    variant's runs and its dataset's library baseline must come from the same data)."""
    order = {variant_name(*v): i for i, v in enumerate(VARIANTS)}
    for name, d in old["datasets"].items():
        d.setdefault("git_sha", old.get("git_sha"))
        for v in d["variants"]:
            v.setdefault("git_sha", d["git_sha"])
        new = results["datasets"].get(name)
        if new is None:
            results["datasets"][name] = d
            continue
        if new["library"]["logloss"] != d["library"]["logloss"]:
            raise SystemExit(f"{name}: the library baseline differs from the merged file's; not merging")
        have = {v["name"] for v in new["variants"]}
        new["variants"] = sorted(new["variants"] + [v for v in d["variants"] if v["name"] not in have],
                                 key=lambda v: order.get(v["name"], len(order)))
    results["datasets"] = {k: results["datasets"][k] for k in [*old["datasets"], *results["datasets"]]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k synthetic rows + California")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the randomized rounding (default 3)")
    ap.add_argument("--small-seeds", type=int, default=8, help="seeds on California (default 8)")
    ap.add_argument("--only", default="", help="comma-separated dataset names")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--variants", default="", help="comma-separated z:n pairs (default: all)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the datasets and variants of an existing --out file that this run does not redo")
    ap.add_argument("--merge-from", type=Path, default=None,
                    help="run nothing: merge the results of this file into --out (its entries win)")
    ap.add_argument("--count-alpha-sweep", action="store_true",
                    help="only the California alpha sweep of the count-based n -> results/state16_count_alpha.json")
    args = ap.parse_args(argv)
    from sparsecross.files import atomic_output

    if args.count_alpha_sweep:
        sweep = {"benchmark": "state16_count_alpha", "params": PARAMS, "datasets": count_alpha_sweep(print)}
        path = args.out or BENCH / "results" / "state16_count_alpha.json"
        with atomic_output(path, "results") as fh:
            fh.write(json.dumps(sweep, indent=1, allow_nan=False).encode())
        print(f"wrote {path}")
        return 0
    out = args.out or BENCH / "results" / ("state16_quick.json" if args.quick else "state16.json")
    if args.merge_from is not None:
        results = json.loads(args.merge_from.read_text())
        if out.exists():
            merge(results, json.loads(out.read_text()))
        with atomic_output(out, "results") as fh:
            fh.write(json.dumps(results, indent=1, allow_nan=False).encode())
        print(table(results))
        return 0
    ds = datasets(args.quick)
    if args.only:
        ds = {k: v for k, v in ds.items() if k in args.only.split(",")}
    pairs = [tuple(p.split(":")) for p in args.variants.split(",") if p]
    variants = [v for v in VARIANTS if not pairs or (v[0], v[1]) in pairs]
    sha = subprocess.run(["git", "-C", str(BENCH), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {"benchmark": "state16", "git_sha": sha, "params": PARAMS, "criterion": CRITERION,
                               "seeds": args.seeds, "california_seeds": args.small_seeds,
                               "python": platform.python_version(), "datasets": {}}
    results["self_check"] = self_check()
    print(f"encoder self-check: {results['self_check']}")
    t0 = time.perf_counter()
    for name, d in ds.items():
        n_seeds = args.small_seeds if name.startswith("california") else args.seeds
        results["datasets"][name] = run_dataset(name, d, list(range(n_seeds)), lambda s: print(s, flush=True),
                                                variants)
        results["datasets"][name]["git_sha"] = sha
    results["seconds"] = time.perf_counter() - t0
    if args.merge and out.exists():
        merge(results, json.loads(out.read_text()))

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, "results") as fh:
        fh.write(json.dumps(results, indent=1, allow_nan=False).encode())
    print(table(results))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
