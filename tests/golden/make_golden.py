"""Regenerate ``tests/golden/hash_vectors.json`` from the pure-Python references.

Golden vectors freeze feature contract v1 (``docs/CONTRACT.md``): if the library and these
vectors ever disagree, the library changed the contract. They are regenerated only on purpose:

    python tests/golden/make_golden.py            # dry run: print what would change, exit 1 if any
    python tests/golden/make_golden.py --write    # write the file (after reviewing the diff)

Every case has a unique ``id``; the diff is reported per id (added / removed / changed fields).
Raw XXH64 values and salts are cross-checked with the ``xxhash`` package when it is installed.
The JSON is written with ``ensure_ascii=True`` so non-ASCII test strings are unambiguous escapes
(and the strings are NFC as written here; the contract does not normalise Unicode).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.golden.kinds_cases import kinds_cases  # noqa: E402
from tests.reference.featurize_reference import layout_reference, reference_featurize  # noqa: E402
from tests.reference.hashing_reference import (  # noqa: E402
    MASK64,
    categorical_key,
    cross_key,
    fmix64,
    holdout,
    holdout_u53,
    missing_key,
    salt,
    value_bytes,
    xxh64,
)

GOLDEN_PATH = HERE / "hash_vectors.json"
SEEDS = [0, 1, MASK64]

try:
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - depends on the environment
    _xxhash = None


def _checked_xxh64(data: bytes, seed: int) -> int:
    """Reference XXH64, asserted equal to the xxhash package when available."""
    h = xxh64(data, seed)
    if _xxhash is not None:
        expected = _xxhash.xxh64_intdigest(data, seed=seed)
        if h != expected:  # pragma: no cover - would mean the reference is wrong
            raise AssertionError(f"reference xxh64({data!r}, {seed}) = {h} != xxhash {expected}")
    return h


# ---------------------------------------------------------------------------------------------
# Hash cases
# ---------------------------------------------------------------------------------------------


def _xxh64_cases() -> list[dict[str, Any]]:
    datas = [b"", b"a", b"abc", b"holdout", bytes(range(31)), bytes(range(32)),
             bytes(range(33)), bytes((7 * k + 3) & 0xFF for k in range(100))]
    cases = []
    for data in datas:
        for seed in SEEDS:
            cases.append({"id": f"xxh64/{data[:8].hex()}-len{len(data)}/seed{seed}",
                          "kind": "xxh64", "data_hex": data.hex(), "seed": seed,
                          "hash": _checked_xxh64(data, seed)})
    return cases


def _fmix64_cases() -> list[dict[str, Any]]:
    xs = [0, 1, 2, 12345, 0x6D697373696E6700, 1 << 63, MASK64]
    return [{"id": f"fmix64/{x}", "kind": "fmix64", "x": x, "result": fmix64(x)} for x in xs]


CATEGORICAL_VALUES: list[Any] = [
    "INLAND", "NEAR BAY", "<1H OCEAN", "", "S\u00e3o Paulo", "\U0001F600", "\u00e9t\u00e9",
    0, 1, -1, 42, 2**63 - 1, -(2**63), True, False, None,
]


def _categorical_cases() -> list[dict[str, Any]]:
    cases = []
    for feature in ["ocean", "site.id"]:
        for seed in SEEDS:
            s = salt(feature, seed)
            assert s == _checked_xxh64(feature.encode("utf-8"), seed)
            for value in CATEGORICAL_VALUES:
                key = categorical_key(feature, value, seed)
                if value is None:
                    assert key == missing_key(feature, seed)
                    vb = None
                else:
                    vb = value_bytes(value).hex()
                    assert key == _checked_xxh64(value_bytes(value), s)
                cases.append({
                    "id": f"categorical/{feature}/{type(value).__name__}:{value!r}/seed{seed}",
                    "kind": "categorical", "feature": feature, "value": value, "seed": seed,
                    "salt": s, "value_bytes_hex": vb, "key": key,
                    "column_bits8": key & 0xFF, "column_bits22": key & ((1 << 22) - 1),
                })
    return cases


def _cross_cases() -> list[dict[str, Any]]:
    cases = []
    for seed in SEEDS:
        components_sets = [
            # ocean (categorical key) x income (bucket local id 2)
            ("ocean*income", [categorical_key("ocean", "INLAND", seed), 2]),
            ("ocean*income", [categorical_key("ocean", None, seed), 5]),  # both missing ids
            ("income*ocean", [2, categorical_key("ocean", "INLAND", seed)]),  # order matters
            ("a*b*c", [0, 1, MASK64]),
            ("cell*site", [233280000, categorical_key("site", 12345, seed)]),
        ]
        for name, keys in components_sets:
            cases.append({"id": f"cross/{name}/{'-'.join(map(str, keys))}/seed{seed}",
                          "kind": "cross", "cross": name, "component_keys": keys,
                          "seed": seed, "name_hash": _checked_xxh64(name.encode(), seed),
                          "key": cross_key(name, keys, seed)})
    return cases


def _holdout_cases() -> list[dict[str, Any]]:
    cases = []
    for seed in [0, 7, MASK64]:
        for r in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1000, 2**40, 2**63]:
            cases.append({"id": f"holdout/r{r}/seed{seed}", "kind": "holdout", "row": r,
                          "seed": seed, "u53": holdout_u53(r, seed), "fraction": 0.2,
                          "in_holdout": holdout(r, 0.2, seed)})
    return cases


# ---------------------------------------------------------------------------------------------
# Featurize cases (spec TOML + rows -> CSR)
# ---------------------------------------------------------------------------------------------

CALIFORNIA_SPEC = """
version = 1

[label]
column = "median_house_value"
threshold = 265000

[hashing]
bits = 8
seed = 0

[[features]]
name = "cell"
kind = "geo"
lat = "latitude"
lon = "longitude"

[[features]]
name = "income"
kind = "bucket"
column = "median_income"
boundaries = [2.0, 3.0, 4.5, 6.0]

[[features]]
name = "lat"
kind = "lat"
column = "latitude"
resolution_arcmin = 60.0
standalone = false

[[features]]
name = "lon"
kind = "lon"
column = "longitude"
resolution_arcmin = 60.0

[[features]]
name = "ocean"
kind = "categorical"
column = "ocean_proximity"

[[crosses]]
features = ["lat", "income"]

[[crosses]]
features = ["ocean", "income"]
"""

CALIFORNIA_ROWS = [
    {"latitude": 37.88, "longitude": -122.23, "median_income": 8.3252,
     "ocean_proximity": "NEAR BAY", "median_house_value": 452600.0},
    {"latitude": 37.86, "longitude": -122.22, "median_income": 8.3014,
     "ocean_proximity": "NEAR BAY", "median_house_value": 358500.0},
    # same arc-minute cell as row 0 (37.88 -> 37.8833.., -122.23 -> -122.2333..) for geo
    {"latitude": 37.8801, "longitude": -122.2301, "median_income": 3.0,
     "ocean_proximity": "INLAND", "median_house_value": 100000.0},
    # boundary exactly on a bucket edge (3.0 -> id 2) and on a cell edge (lat 34.0, lon -118.0)
    {"latitude": 34.0, "longitude": -118.0, "median_income": 1.5,
     "ocean_proximity": "<1H OCEAN", "median_house_value": 265000.0},
    # missing ocean and missing income -> their missing buckets, crosses use the missing ids
    {"latitude": 36.5, "longitude": -119.5, "median_income": None,
     "ocean_proximity": None, "median_house_value": 265001},
    # missing longitude -> geo and lon missing ids; lat still present
    {"latitude": 38.0, "longitude": None, "median_income": 6.0,
     "ocean_proximity": "ISLAND", "median_house_value": 450000.0},
    # unicode category and an integer coordinate
    {"latitude": 33, "longitude": -117, "median_income": 10.0,
     "ocean_proximity": "S\u00e3o Paulo \U0001F600", "median_house_value": 1.0},
]

CORNERS_SPEC = """
[label]
column = "y"

[hashing]
bits = 4
seed = 1

[[features]]
name = "cell"
kind = "geo"
lat = "lat"
lon = "lon"
invalid = "missing"

[[features]]
name = "cell7"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = 7.0
invalid = "missing"

[[features]]
name = "lat_half"
kind = "lat"
column = "lat"
resolution_arcmin = 0.5
invalid = "missing"

[[features]]
name = "lon_big"
kind = "lon"
column = "lon"
resolution_arcmin = 1000
invalid = "missing"
"""

CORNERS_ROWS = [
    {"lat": -90.0, "lon": -180.0, "y": 0},
    {"lat": 90.0, "lon": 180.0, "y": 1},
    {"lat": -90.0, "lon": 180.0, "y": True},
    {"lat": 90.0, "lon": -180.0, "y": False},
    {"lat": 0.0, "lon": 0.0, "y": 1.0},
    {"lat": -0.0001, "lon": 179.9999, "y": 0.0},
    {"lat": 90.5, "lon": 10.0, "y": 0},  # out of range -> missing (invalid = "missing")
    {"lat": 10.0, "lon": -180.5, "y": 0},
    {"lat": None, "lon": 12.0, "y": 1},
]

SKIP_SPEC = """
[label]
column = "clicked"
weight = "w"

[hashing]
bits = 8
seed = 18446744073709551615

[[features]]
name = "site"
kind = "categorical"
column = "site_id"
missing = "skip"

[[features]]
name = "hour"
kind = "bucket"
column = "hour"
boundaries = [6, 12, 18]
missing = "skip"

[[features]]
name = "app"
kind = "categorical"
column = "app_id"
standalone = false

[[features]]
name = "flag"
kind = "categorical"
column = "flag"

[[crosses]]
features = ["site", "hour"]
name = "site_x_hour"

[[crosses]]
features = ["hour", "app"]

[[crosses]]
features = ["app", "flag", "site"]
"""

SKIP_ROWS = [
    {"site_id": "a1b2", "hour": 7, "app_id": 12345, "flag": True, "clicked": 1, "w": 1.0},
    {"site_id": None, "hour": 7, "app_id": 12345, "flag": False, "clicked": 0, "w": 2.5},
    {"site_id": "a1b2", "hour": None, "app_id": None, "flag": None, "clicked": 0, "w": 0.0},
    {"site_id": "", "hour": 23.5, "app_id": -1, "flag": 1, "clicked": True, "w": 1},
    {"site_id": "a1b2", "hour": -3, "app_id": 2**63 - 1, "flag": 0, "clicked": 0, "w": 3},
]

MODES_SPEC = """
[label]
column = "y"

[hashing]
bits = 6
seed = 42
max_exact = 100

[[features]]
name = "b1"
kind = "bucket"
column = "x1"
boundaries = [0.0, 1.0]

[[features]]
name = "b2"
kind = "bucket"
column = "x2"
boundaries = [-1.5, 0.5, 2.5]
standalone = false

[[features]]
name = "cell"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = 600.0

[[crosses]]
features = ["b1", "b2"]                 # 4 * 5 = 20 <= 100 -> exact

[[crosses]]
features = ["b1", "b2"]
name = "b1*b2 hashed"
mode = "hashed"

[[crosses]]
features = ["b1", "cell"]               # 4 * (18 * 36 + 1) > 100 -> hashed under auto

[[crosses]]
features = ["b2", "b1", "cell"]
name = "forced"
mode = "exact"                          # exact although above max_exact

[[crosses]]
features = ["b1", "b1"]                 # a feature crossed with itself
"""

MODES_ROWS = [
    {"x1": -5.0, "x2": -1.5, "lat": 12.3, "lon": 45.6, "y": 0},
    {"x1": 0.0, "x2": 0.5, "lat": -45.0, "lon": -90.0, "y": 1},
    {"x1": 1.0, "x2": 2.5, "lat": 89.99, "lon": 179.99, "y": 1},
    {"x1": None, "x2": None, "lat": None, "lon": None, "y": 0},
    {"x1": 0.999999, "x2": 1e300, "lat": 0.0, "lon": -0.0, "y": 1},
]

BITS1_SPEC = """
[label]
column = "y"

[hashing]
bits = 1

[[features]]
name = "a"
kind = "categorical"
column = "a"

[[features]]
name = "b"
kind = "categorical"
column = "b"

[[features]]
name = "c"
kind = "categorical"
column = "c"

[[crosses]]
features = ["a", "b"]
"""

BITS1_ROWS = [
    {"a": "x", "b": "y", "c": "z", "y": 1},
    {"a": 1, "b": 2, "c": 3, "y": 0},
    {"a": None, "b": None, "c": None, "y": 1},
]

ERROR_SPEC = """
[label]
column = "y"

[hashing]
bits = 8

[[features]]
name = "cell"
kind = "geo"
lat = "lat"
lon = "lon"
"""


def _collision_case_bits8() -> tuple[str, list[dict[str, Any]]]:
    """Two categoricals whose keys collide at bits = 8 in one row (value 2.0 expected)."""
    spec = """
[label]
column = "y"

[hashing]
bits = 8
seed = 3

[[features]]
name = "u"
kind = "categorical"
column = "u"

[[features]]
name = "v"
kind = "categorical"
column = "v"
"""
    target = categorical_key("v", "fixed", 3) & 0xFF
    k = 0
    while categorical_key("u", f"value{k}", 3) & 0xFF != target:
        k += 1
    rows = [{"u": f"value{k}", "v": "fixed", "y": 1}, {"u": "value0", "v": "fixed", "y": 0}]
    return spec, rows


def _featurize_case(case_id: str, spec_toml: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    spec = tomllib.loads(spec_toml)
    case: dict[str, Any] = {"id": f"featurize/{case_id}", "kind": "featurize",
                            "spec_toml": spec_toml, "rows": rows}
    try:
        csr_rows, labels, weights, width = reference_featurize(spec, rows)
    except ValueError as exc:
        case["expected_error"] = type(exc).__name__
        case["expected_error_message"] = str(exc)
        return case
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    for r in csr_rows:
        indices.extend(c for c, _ in r)
        data.extend(v for _, v in r)
        indptr.append(len(indices))
    case["expected"] = {
        "rows": [[[c, v] for c, v in r] for r in csr_rows],
        "indptr": indptr, "indices": indices, "data": data,
        "labels": labels, "weights": weights, "width": width,
        "layout": layout_reference(spec),
    }
    return case


def _featurize_cases() -> list[dict[str, Any]]:
    collision_spec, collision_rows = _collision_case_bits8()
    return [
        _featurize_case("california_bits8", CALIFORNIA_SPEC, CALIFORNIA_ROWS),
        _featurize_case("geo_corners_invalid_missing", CORNERS_SPEC, CORNERS_ROWS),
        _featurize_case("skip_weights_int_bool_seedmax", SKIP_SPEC, SKIP_ROWS),
        _featurize_case("cross_modes_max_exact", MODES_SPEC, MODES_ROWS),
        _featurize_case("collisions_bits1", BITS1_SPEC, BITS1_ROWS),
        _featurize_case("collision_bits8", collision_spec, collision_rows),
        _featurize_case("error_lat_out_of_range", ERROR_SPEC,
                        [{"lat": 10.0, "lon": 10.0, "y": 0}, {"lat": 90.0001, "lon": 0.0, "y": 1}]),
        _featurize_case("error_lon_out_of_range_other_null", ERROR_SPEC,
                        [{"lat": None, "lon": -180.25, "y": 0}]),
        *kinds_cases(_featurize_case),
    ]


def build_golden() -> dict[str, Any]:
    """The full golden document, computed from the references."""
    cases = (_xxh64_cases() + _fmix64_cases() + _categorical_cases() + _cross_cases()
             + _holdout_cases() + _featurize_cases())
    ids = [c["id"] for c in cases]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:  # pragma: no cover
        raise AssertionError(f"duplicate golden ids: {sorted(duplicates)}")
    return {
        "contract": "v1",
        "about": "Golden vectors of docs/CONTRACT.md (hash contract v1). Generated by "
                 "tests/golden/make_golden.py from tests/reference/; never edit by hand.",
        "cases": cases,
    }


def _normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through JSON so that tuples/lists etc. compare as they would on disk."""
    return json.loads(json.dumps(doc))


def diff_golden(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable list of differences between two golden documents, per case id."""
    if old is None:
        return [f"(no existing file) {len(new['cases'])} cases would be created"]
    lines = []
    for key in sorted(set(old) | set(new)):
        if key != "cases" and old.get(key) != new.get(key):
            lines.append(f"top-level {key!r}: {old.get(key)!r} -> {new.get(key)!r}")
    old_cases = {c["id"]: c for c in old.get("cases", [])}
    new_cases = {c["id"]: c for c in new["cases"]}
    for cid in sorted(set(old_cases) - set(new_cases)):
        lines.append(f"removed: {cid}")
    for cid in sorted(set(new_cases) - set(old_cases)):
        lines.append(f"added:   {cid}")
    for cid in sorted(set(old_cases) & set(new_cases)):
        a, b = old_cases[cid], new_cases[cid]
        changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if changed:
            lines.append(f"changed: {cid}: fields {', '.join(changed)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true",
                        help="write the regenerated file (default: dry run, report changes)")
    parser.add_argument("--path", type=Path, default=GOLDEN_PATH)
    args = parser.parse_args(argv)

    new = _normalise(build_golden())
    old = json.loads(args.path.read_text(encoding="utf-8")) if args.path.exists() else None
    changes = diff_golden(old, new)
    if _xxhash is None:
        print("warning: xxhash not installed; raw XXH64 values were not cross-checked")
    if not changes:
        print(f"{args.path}: up to date ({len(new['cases'])} cases)")
        return 0
    print(f"{args.path}: {len(changes)} difference(s)")
    for line in changes:
        print("  " + line)
    if args.write:
        args.path.write_text(json.dumps(new, indent=1, ensure_ascii=True) + "\n",
                             encoding="utf-8")
        print(f"wrote {args.path}")
        return 0
    print("dry run: nothing written (rerun with --write to accept these changes)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
