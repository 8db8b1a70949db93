"""Spec validation at scale: ``sparsecross check-spec`` and ``parse_spec`` on many features.

    PYTHONPATH=. python benchmarks/bench_spec.py --features 10000 --crosses 10000

Writes a synthetic spec (lat bands at varied resolutions, buckets and categoricals, crosses of
2-3 of them) to a temporary folder, then times ``check-spec`` in a fresh process (interpreter
start and imports included), ``parse_spec`` in this process, and the layout/identity of the
parsed spec.  The output is one JSON line; nothing is asserted (timings are not tests).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def big_spec(n_features: int, n_crosses: int) -> dict[str, Any]:
    feats: list[dict[str, Any]] = []
    for i in range(n_features):
        k = i % 3
        if k == 0:
            feats.append({"name": f"f{i}", "kind": "lat", "column": "lat",
                          "resolution_arcmin": float(60 + i % 600)})
        elif k == 1:
            feats.append({"name": f"f{i}", "kind": "bucket", "column": f"x{i % 50}",
                          "boundaries": [float(j) for j in range(1 + i % 7)]})
        else:
            feats.append({"name": f"f{i}", "kind": "categorical", "column": f"c{i % 20}"})
    crosses = []
    for j in range(n_crosses):
        a, b, c = (j * 7) % n_features, (j * 13 + 1) % n_features, (j * 31 + 2) % n_features
        comps = [f"f{a}", f"f{b}"] if j % 2 else [f"f{a}", f"f{b}", f"f{c}"]
        comps = list(dict.fromkeys(comps))
        if len(comps) < 2:
            comps = [f"f{a}", f"f{(a + 1) % n_features}"]
        crosses.append({"features": comps, "name": f"x{j}"})
    return {"label": {"column": "y"}, "hashing": {"bits": 20}, "features": feats, "crosses": crosses}


def to_toml(d: dict[str, Any]) -> str:
    out = ['[label]\ncolumn = "y"\n', "[hashing]\nbits = 20\n"]
    for f in d["features"]:
        out.append("[[features]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in f.items()))
    for c in d["crosses"]:
        out.append("[[crosses]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in c.items()))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=10_000)
    ap.add_argument("--crosses", type=int, default=10_000)
    args = ap.parse_args()
    from sparsecross import parse_spec

    d = big_spec(args.features, args.crosses)
    res: dict[str, Any] = {"features": args.features, "crosses": args.crosses}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.toml"
        path.write_text(to_toml(d))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "sparsecross", "check-spec", str(path)],
                              capture_output=True, text=True, env=env)
        res["check_spec_s"] = round(time.perf_counter() - t0, 3)
        res["check_spec_rc"] = proc.returncode
        if proc.returncode:
            res["check_spec_stderr"] = proc.stderr.strip()[-300:]
        t0 = time.perf_counter()
        spec = parse_spec(d)
        res["parse_spec_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        _ = (spec.n_columns, spec.sha256, len(spec.outputs))
        res["layout_and_sha_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        for o in spec.outputs[:: max(1, len(spec.outputs) // 1000)]:
            if o.kind == 0:
                spec.describe_column(o.offset)
        res["describe_1000_columns_s"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
