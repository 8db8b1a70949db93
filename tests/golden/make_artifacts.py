"""Write the golden model artifacts of format 1.0 (``docs/ARTIFACT.md``).

    python tests/golden/make_artifacts.py            # write missing files, report differing ones
    python tests/golden/make_artifacts.py --force    # overwrite differing files too

Files (next to this script):

- ``model_v1_float32.scx``, ``model_v1_float16.scx``, ``model_v1_q213.scx``: one tiny
  hand-built model (geo + bucket + categorical, an exact geo x bucket cross so the column
  space passes 2**32, bits = 8, bias -0.75) saved in each value encoding;
- ``model_v1_corrupt.scx``: the float32 file with the byte in the middle flipped (``^ 0xFF``);
- ``model_v1_expected.json``: what loading each file must give (keys, exact weights, bias,
  spec hash, params, stats).

The artifacts are frozen: every future sparsecross must keep loading them
(``tests/test_export.py``).  Existing files are never overwritten unless ``--force`` is given
(the bytes legitimately change with the library version written into the metadata, so a
difference alone is reported, not fixed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sparsecross.export import load_model, model_bytes  # noqa: E402
from sparsecross.model import SparseModel  # noqa: E402
from sparsecross.spec import parse_spec  # noqa: E402

FILES = {
    "float32": "model_v1_float32.scx",
    "float16": "model_v1_float16.scx",
    "q2.13": "model_v1_q213.scx",
}
CORRUPT = "model_v1_corrupt.scx"
EXPECTED = "model_v1_expected.json"

SPEC = {
    "label": {"column": "y"},
    "hashing": {"bits": 8, "seed": 17},
    "features": [
        {"name": "cell", "kind": "geo", "lat": "latitude", "lon": "longitude"},
        {
            "name": "income",
            "kind": "bucket",
            "column": "median_income",
            "boundaries": [float(b) for b in range(1, 20)],
        },
        {"name": "device", "kind": "categorical", "column": "device"},
    ],
    "crosses": [{"features": ["cell", "income"], "mode": "exact"}],
}
PARAMS = {"alpha": 0.1, "beta": 1.0, "epochs": 1, "l1": 1.0, "l2": 0.5}
STATS = {"rows": 1000, "progressive_logloss": 0.5123, "touched": 42}


def golden_model() -> SparseModel:
    """The hand-built model.  Layout: cell [0, 233280001), income [233280001, +21),
    cell*income [233280022, +4898880021), hashed [5132160043, +256)."""
    spec = parse_spec(SPEC)
    h = spec.hashed_offset
    assert spec.n_columns > 2**32
    pairs = [
        (0, 0.5),
        (1, -1.25),
        (77_000, 0.3),
        (116_640_000, -0.0625),
        (233_280_000, 2.0),  # cell: missing
        (233_280_001, 1e-9),  # income bucket 0: vanishes in float16 / q2.13
        (233_280_010, -0.7071),
        (233_280_021, 3e-5),  # float16 subnormal
        (233_280_022, 5.5),  # q2.13 clips to 4 - 2**-13
        (1_000_000_007, -4.5),  # q2.13 clips to -4
        (2**31 + 3, 0.123456),
        (2**32 - 1, -0.999),
        (2**32, 1e-4),
        (2**32 + 12_345, 70_000.0),  # float16 clips to 65504
        (4_900_000_000, -0.01),
        (h - 1, 0.25),
        (h, -3.14159),
        (h + 100, 0.0001220703125),  # exactly 2**-13
        (h + 200, -2.5e-5),
        (h + 255, 1.75),
    ]
    keys = np.array([k for k, _ in pairs], dtype=np.uint64)
    weights = np.array([w for _, w in pairs], dtype=np.float32)
    return SparseModel(keys=keys, weights=weights, bias=-0.75, spec=spec, params=PARAMS, stats=STATS)


def expected_entry(name: str, data: bytes) -> dict[str, Any]:
    path = HERE / f".{name}.check"
    path.write_bytes(data)
    try:
        m = load_model(path)
    finally:
        path.unlink()
    return {
        "file": name,
        "file_bytes": len(data),
        "keys": [int(k) for k in m.keys],
        "weights": [float(w) for w in m.weights],
        "weights_float32_hex": [f"{int(b):08x}" for b in m.weights.view(np.uint32)],
    }


def build() -> dict[str, bytes]:
    model = golden_model()
    out: dict[str, bytes] = {}
    expected: dict[str, Any] = {
        "format_version": "1.0",
        "bias": -0.75,
        "spec_sha256": model.spec.sha256,
        "n_columns": model.spec.n_columns,
        "params": PARAMS,
        "stats": STATS,
        "encodings": {},
    }
    for enc, name in FILES.items():
        data = model_bytes(model, enc)
        out[name] = data
        expected["encodings"][enc] = expected_entry(name, data)
    # float32 is lossless: what the writer + reader give back must be the hand-written model,
    # so that a --force rerun cannot freeze an encoder bug into the golden expectations
    f32 = expected["encodings"]["float32"]
    assert f32["keys"] == [int(k) for k in model.keys], "float32 round trip changed the keys"
    assert f32["weights_float32_hex"] == [f"{int(b):08x}" for b in model.weights.view(np.uint32)], \
        "float32 round trip changed the weights"
    good = bytearray(out[FILES["float32"]])
    mid = len(good) // 2
    good[mid] ^= 0xFF
    out[CORRUPT] = bytes(good)
    expected["corrupt"] = {"file": CORRUPT, "flipped_offset": mid}
    out[EXPECTED] = (json.dumps(expected, indent=2, sort_keys=True) + "\n").encode()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="overwrite existing files that differ")
    args = ap.parse_args(argv)
    differing = 0
    for name, data in build().items():
        path = HERE / name
        if path.exists():
            if path.read_bytes() == data:
                print(f"unchanged  {name}")
                continue
            if not args.force:
                print(f"DIFFERS    {name} (kept; use --force to overwrite)")
                differing += 1
                continue
        path.write_bytes(data)
        print(f"wrote      {name} ({len(data)} bytes)")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
