"""Fast tests of the reference oracles themselves (``tests/reference/``) and of the goldens.

The references are what the library is checked against, so they are checked here against
independent sources: the ``xxhash`` package, published constants, hand arithmetic, closed-form
FTRL steps, and an algebraically equivalent online-gradient-descent recursion.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import struct
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that `tests.reference` imports without a conftest
    sys.path.insert(0, str(ROOT))

from tests.reference.featurize_reference import (  # noqa: E402
    bucket_local_id,
    lat_local_id,
    layout_reference,
    lon_local_id,
    n_lat_cells,
    n_lon_cells,
    reference_featurize,
)
from tests.reference.ftrl_reference import ReferenceFTRL, sigmoid  # noqa: E402
from tests.reference.hashing_reference import (  # noqa: E402
    MASK64,
    MISSING_TAG,
    categorical_key,
    cross_key,
    fmix64,
    holdout,
    salt,
    value_bytes,
    xxh64,
)

GOLDEN_DIR = ROOT / "tests" / "golden"


# =============================================================================================
# XXH64
# =============================================================================================


def test_xxh64_published_vectors():
    # Reference values of XXH64 with seed 0 (xxHash test suite / spec).
    assert xxh64(b"", 0) == 0xEF46DB3751D8E999
    assert xxh64(b"a", 0) == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc", 0) == 0x44BC2CF5AD770999


def test_xxh64_matches_xxhash_package():
    xxhash = pytest.importorskip("xxhash", reason="xxhash (test extra) is not installed")
    rng = random.Random(20240601)
    for length in list(range(0, 101)) + [127, 128, 129, 255, 256, 1000]:
        data = bytes(rng.randrange(256) for _ in range(length))
        for seed in [0, 1, MASK64, 1 << 63, rng.randrange(1 << 64), rng.randrange(1 << 32)]:
            assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed=seed), (length, seed)


def test_xxh64_rejects_bad_input():
    with pytest.raises(TypeError):
        xxh64("not bytes", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        xxh64(b"", -1)
    with pytest.raises(ValueError):
        xxh64(b"", 1 << 64)


# =============================================================================================
# fmix64
# =============================================================================================


def test_fmix64_zero_is_fixed_point():
    assert fmix64(0) == 0


def test_fmix64_of_one_by_hand():
    # x = 1: the first xor-shift leaves 1, so the first multiply gives the constant itself.
    x = 0xFF51AFD7ED558CCD
    # x >> 33 = 0xff51afd7 >> 1 = 0x7fa8d7eb, and 0xed558ccd ^ 0x7fa8d7eb = 0x92fd5b26.
    assert x >> 33 == 0x7FA8D7EB
    x ^= x >> 33
    assert x == 0xFF51AFD792FD5B26
    x = (x * 0xC4CEB9FE1A85EC53) % 2**64
    x ^= x >> 33
    assert fmix64(1) == x == 0xB456BCFC34C2CB2C  # the well-known MurmurHash3 fmix64(1)


def test_fmix64_is_a_bijection_checked_by_its_inverse():
    inv1 = pow(0xFF51AFD7ED558CCD, -1, 2**64)
    inv2 = pow(0xC4CEB9FE1A85EC53, -1, 2**64)

    def unfmix64(h: int) -> int:
        # x ^= x >> 33 is its own inverse for shifts >= 32.
        h ^= h >> 33
        h = (h * inv2) % 2**64
        h ^= h >> 33
        h = (h * inv1) % 2**64
        h ^= h >> 33
        return h

    rng = random.Random(7)
    for x in [0, 1, 2, MASK64, 1 << 63] + [rng.randrange(1 << 64) for _ in range(200)]:
        h = fmix64(x)
        assert 0 <= h <= MASK64
        assert unfmix64(h) == x


# =============================================================================================
# value bytes, keys, holdout
# =============================================================================================


def test_value_bytes():
    assert value_bytes("INLAND") == b"INLAND"
    assert value_bytes("") == b""
    assert value_bytes("S\u00e3o") == b"S\xc3\xa3o"
    assert value_bytes("\U0001F600") == b"\xf0\x9f\x98\x80"
    assert value_bytes(0) == bytes(8)
    assert value_bytes(-1) == b"\xff" * 8
    assert value_bytes(42) == b"\x2a" + bytes(7)
    assert value_bytes(2**63 - 1) == b"\xff" * 7 + b"\x7f"
    assert value_bytes(-(2**63)) == bytes(7) + b"\x80"
    assert value_bytes(True) == value_bytes(1) == struct.pack("<q", 1)
    assert value_bytes(False) == value_bytes(0)
    with pytest.raises(ValueError):
        value_bytes(2**63)
    with pytest.raises(TypeError):
        value_bytes(1.5)  # type: ignore[arg-type]


def test_keys_follow_the_contract_formulas():
    for seed in [0, 1, MASK64]:
        s = xxh64(b"ocean", seed)
        assert salt("ocean", seed) == s
        assert categorical_key("ocean", "INLAND", seed) == xxh64(b"INLAND", s)
        assert categorical_key("ocean", None, seed) == fmix64(s ^ MISSING_TAG)
        assert MISSING_TAG == int.from_bytes(b"missing\0", "big")
        # string "1" and integer 1 are different values; bool True is integer 1
        assert categorical_key("ocean", "1", seed) != categorical_key("ocean", 1, seed)
        assert categorical_key("ocean", True, seed) == categorical_key("ocean", 1, seed)
        # the feature name salts the key
        assert categorical_key("ocean", "INLAND", seed) != categorical_key("ocean2", "INLAND", seed)

        k1, k2 = categorical_key("ocean", "INLAND", seed), 3
        h = xxh64(b"ocean*income", seed)
        assert cross_key("ocean*income", [k1, k2], seed) == fmix64(fmix64(h ^ k1) ^ k2)
        assert cross_key("ocean*income", [k1, k2], seed) != cross_key("ocean*income", [k2, k1], seed)
    assert categorical_key("ocean", "INLAND", 0) != categorical_key("ocean", "INLAND", 1)


def test_holdout():
    for seed in [0, 5]:
        assert not any(holdout(r, 0.0, seed) for r in range(2000))
        assert all(holdout(r, 1.0, seed) for r in range(2000))
        frac = sum(holdout(r, 0.2, seed) for r in range(20000)) / 20000
        assert 0.18 < frac < 0.22
        u = fmix64(1234 ^ xxh64(b"holdout", seed)) >> 11
        assert holdout(1234, 0.5, seed) == (u * 2**-53 < 0.5)


# =============================================================================================
# Local ids, geo exactness
# =============================================================================================


def test_geo_arcminute_cells_are_exact():
    r = 1.0
    n_lat, n_lon = n_lat_cells(r), n_lon_cells(r)
    assert (n_lat, n_lon) == (10800, 21600)
    rng = random.Random(3)
    seen = {}
    for _ in range(3000):
        i, j = rng.randrange(n_lat), rng.randrange(n_lon)
        lat = -90.0 + (i + 0.5) / 60.0  # cell centre
        lon = -180.0 + (j + 0.5) / 60.0
        local = lat_local_id(lat, r) * n_lon + lon_local_id(lon, r)
        assert local == i * n_lon + j
        seen.setdefault((i, j), local)
    # different cells -> different ids
    assert len(set(seen.values())) == len(seen)
    # two points one arc-minute apart are in different cells
    assert lat_local_id(37.5, r) != lat_local_id(37.5 + 1 / 60, r)
    assert lon_local_id(-122.25, r) != lon_local_id(-122.25 + 1 / 60, r)


def test_geo_corners_map_to_valid_ids():
    spec = tomllib.loads(
        '[label]\ncolumn = "y"\n[hashing]\nbits = 2\n'
        '[[features]]\nname = "cell"\nkind = "geo"\nlat = "lat"\nlon = "lon"\n'
    )
    n_cells = 10800 * 21600
    rows = [{"lat": la, "lon": lo, "y": 0} for la in (-90.0, 90.0) for lo in (-180.0, 180.0)]
    csr, _, _, width = reference_featurize(spec, rows)
    ids = [row[0][0] for row in csr]
    assert all(0 <= i < n_cells for i in ids)  # never the missing id n_cells
    assert ids == [0, 21599, 10799 * 21600, 10799 * 21600 + 21599]
    assert width == n_cells + 1 + 4
    for r in (1.0, 7.0, 0.5, 60.0, 1000.0):
        assert lat_local_id(90.0, r) == n_lat_cells(r) - 1
        assert lat_local_id(-90.0, r) == 0
        assert lon_local_id(180.0, r) == n_lon_cells(r) - 1
        assert lon_local_id(-180.0, r) == 0


def test_bucket_ids_match_searchsorted_right():
    np = pytest.importorskip("numpy")
    b = [2.0, 3.0, 4.5, 6.0]
    for x in [-math.inf, 0.0, 2.0, 2.5, 3.0, 4.5, 5.9, 6.0, 100.0, math.inf]:
        assert bucket_local_id(x, b) == int(np.searchsorted(np.array(b), x, side="right"))


# =============================================================================================
# Featurize
# =============================================================================================

SPEC = """
[label]
column = "value"
threshold = 10

[hashing]
bits = 8
seed = 5

[[features]]
name = "cell"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = 60.0

[[features]]
name = "income"
kind = "bucket"
column = "income"
boundaries = [2.0, 3.0]

[[features]]
name = "ocean"
kind = "categorical"
column = "ocean"

[[crosses]]
features = ["cell", "income"]

[[crosses]]
features = ["ocean", "income"]
"""


def _spec(**hashing):
    spec = tomllib.loads(SPEC)
    spec["hashing"].update(hashing)
    return spec


def test_layout_and_row_by_hand():
    spec = _spec()
    layout = layout_reference(spec)
    geo_card = 180 * 360 + 1
    assert layout["feature_offsets"] == {"cell": 0, "income": geo_card}
    assert layout["cross_offsets"] == {"cell*income": geo_card + 4}
    assert layout["cross_modes"] == {"cell*income": "exact", "ocean*income": "hashed"}
    H = geo_card + 4 + geo_card * 4
    assert layout["H"] == H and layout["width"] == H + 256

    row = {"lat": 0.5, "lon": -0.5, "income": 2.0, "ocean": "INLAND", "value": 11}
    csr, labels, weights, width = reference_featurize(spec, [row])
    cell = 90 * 360 + 179
    ocean_col = H + (categorical_key("ocean", "INLAND", 5) & 255)
    cross_col = H + (cross_key("ocean*income", [categorical_key("ocean", "INLAND", 5), 1], 5) & 255)
    expected = sorted([cell, geo_card + 1, geo_card + 4 + cell * 4 + 1, ocean_col, cross_col])
    assert [c for c, _ in csr[0]] == sorted(set(expected))
    assert labels == [1.0] and weights is None and width == H + 256


def test_missing_values_nan_equals_none_and_skip():
    spec = _spec()
    base = {"lat": 10.0, "lon": 10.0, "income": 5.0, "ocean": "X", "value": 0}
    a = reference_featurize(spec, [{**base, "income": None, "lat": None, "ocean": None}])[0]
    b = reference_featurize(spec, [{**base, "income": math.nan, "lat": math.nan,
                                    "ocean": math.nan}])[0]
    assert a == b and len(a[0]) == 5  # missing buckets still emit, crosses use missing ids
    layout = layout_reference(spec)
    assert (layout["feature_offsets"]["income"] + 3, 1.0) in a[0]  # income missing id = len(b)+1
    assert (180 * 360, 1.0) in a[0]  # geo missing id = n_lat * n_lon

    for f in spec["features"]:
        f["missing"] = "skip"
    c = reference_featurize(spec, [{**base, "income": None}])[0][0]
    # income, cell*income and ocean*income disappear; cell and ocean stay
    assert len(c) == 2


def test_collisions_are_summed():
    spec = tomllib.loads(
        '[label]\ncolumn = "y"\n[hashing]\nbits = 1\n'
        '[[features]]\nname = "a"\nkind = "categorical"\ncolumn = "a"\n'
        '[[features]]\nname = "b"\nkind = "categorical"\ncolumn = "b"\n'
        '[[features]]\nname = "c"\nkind = "categorical"\ncolumn = "c"\n'
    )
    csr, _, _, width = reference_featurize(spec, [{"a": "x", "b": "y", "c": "z", "y": 1}])
    assert width == 2
    assert sum(v for _, v in csr[0]) == 3.0  # 3 outputs in 2 columns: at least one count of 2+
    assert max(v for _, v in csr[0]) >= 2.0
    assert [c for c, _ in csr[0]] == sorted({c for c, _ in csr[0]})


def test_featurize_errors_and_unsupported():
    spec = _spec()
    with pytest.raises(ValueError, match="outside"):
        reference_featurize(spec, [{"lat": 91.0, "lon": 0.0, "income": 1, "ocean": "a",
                                    "value": 1}])
    spec["features"][0]["invalid"] = "missing"
    csr = reference_featurize(spec, [{"lat": 91.0, "lon": 0.0, "income": 1, "ocean": "a",
                                      "value": 1}])[0]
    assert (180 * 360, 1.0) in csr[0]

    q = _spec()
    del q["features"][1]["boundaries"]
    q["features"][1]["quantiles"] = 4
    with pytest.raises(NotImplementedError):
        reference_featurize(q, [])

    e = _spec()
    e["crosses"][1]["mode"] = "exact"
    with pytest.raises(ValueError, match="categorical"):
        layout_reference(e)


def test_labels_weights_and_defaults():
    spec = tomllib.loads(
        '[label]\ncolumn = "y"\nweight = "w"\n'
        '[[features]]\nname = "b"\nkind = "bucket"\ncolumn = "x"\nboundaries = [0]\n'
        '[[features]]\nname = "c"\nkind = "categorical"\ncolumn = "x2"\nstandalone = false\n'
        '[[crosses]]\nfeatures = ["c", "b"]\nmode = "hashed"\n'
    )
    layout = layout_reference(spec)
    assert layout["bits"] == 22 and layout["H"] == 3 and layout["width"] == 3 + 2**22
    assert layout["cross_modes"] == {"c*b": "hashed"}
    rows = [{"x": 1.0, "x2": 7, "y": True, "w": 2.0}, {"x": -1.0, "x2": "7", "y": 0, "w": 0}]
    csr, labels, weights, _ = reference_featurize(spec, rows)
    assert labels == [1.0, 0.0] and weights == [2.0, 0.0]
    key = cross_key("c*b", [categorical_key("c", 7, 0), 1], 0)
    assert csr[0] == sorted([(1, 1.0), (3 + (key & (2**22 - 1)), 1.0)])
    with pytest.raises(ValueError, match="0/1"):
        reference_featurize(spec, [{"x": 1.0, "x2": 7, "y": 2, "w": 1.0}])
    with pytest.raises(ValueError, match="weight"):
        reference_featurize(spec, [{"x": 1.0, "x2": 7, "y": 1, "w": -1.0}])


# =============================================================================================
# Goldens
# =============================================================================================


def _load_make_golden():
    path = GOLDEN_DIR / "make_golden.py"
    module_spec = importlib.util.spec_from_file_location("_make_golden", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_golden_file_is_up_to_date():
    make_golden = _load_make_golden()
    on_disk = json.loads((GOLDEN_DIR / "hash_vectors.json").read_text(encoding="utf-8"))
    fresh = make_golden._normalise(make_golden.build_golden())
    assert make_golden.diff_golden(on_disk, fresh) == []
    kinds = {c["kind"] for c in on_disk["cases"]}
    assert {"xxh64", "fmix64", "categorical", "cross", "holdout", "featurize"} <= kinds


def test_golden_featurize_cases_cover_the_contract():
    on_disk = json.loads((GOLDEN_DIR / "hash_vectors.json").read_text(encoding="utf-8"))
    cases = [c for c in on_disk["cases"] if c["kind"] == "featurize"]
    values = [v for c in cases if "expected" in c for r in c["expected"]["rows"] for _, v in r]
    assert any(v >= 2.0 for v in values)  # a collision is frozen
    assert any("expected_error" in c for c in cases)
    # (that the reference reproduces these cases is test_golden_file_is_up_to_date's job)
    modes = {m for c in cases if "expected" in c for m in c["expected"]["layout"]["cross_modes"].values()}
    assert modes == {"exact", "hashed"}


# =============================================================================================
# FTRL-Proximal
# =============================================================================================


@pytest.mark.parametrize("alpha,beta", [(0.1, 1.0), (0.5, 0.0), (2.0, 3.0)])
def test_ftrl_first_step_closed_form(alpha, beta):
    m = ReferenceFTRL(alpha=alpha, beta=beta, l1=0.0, l2=0.0)
    loss = m.update([(7, 1.0)], 1.0)
    assert loss == pytest.approx(math.log(2.0), abs=1e-15)  # p = 0.5 before the update
    # g = p - y = -0.5, n = 0.25, sigma = 0.5 / alpha, z = g - sigma * 0 = -0.5
    assert m.n[7] == 0.25 and m.z[7] == -0.5
    assert m.n_b == 0.25 and m.z_b == -0.5
    expected_w = 0.5 * alpha / (beta + 0.5)
    assert m.weight(7) == pytest.approx(expected_w, rel=1e-15)
    assert m.bias() == pytest.approx(expected_w, rel=1e-15)
    assert m.weights() == {7: m.weight(7)}
    assert m.predict_margin([(7, 1.0)]) == pytest.approx(2 * expected_w, rel=1e-15)


def test_ftrl_second_step_uses_old_n_and_old_w():
    alpha, beta = 0.3, 1.0
    m = ReferenceFTRL(alpha=alpha, beta=beta, l1=0.0, l2=0.0)
    m.update([(1, 2.0)], 0.0)
    z, n = m.z[1], m.n[1]
    w_old = m.weight(1)
    p = sigmoid(w_old * 2.0 + m.bias())
    g = p * 2.0 * 1.5  # y = 0, x = 2, sample weight 1.5
    sigma = (math.sqrt(n + g * g) - math.sqrt(n)) / alpha
    loss = m.update([(1, 2.0)], 0.0, sample_weight=1.5)
    assert loss == pytest.approx(-math.log(1 - p) * 1.5, rel=1e-14)
    assert m.z[1] == pytest.approx(z + g - sigma * w_old, rel=1e-14)
    assert m.n[1] == pytest.approx(n + g * g, rel=1e-14)


def test_ftrl_without_regularisation_is_per_coordinate_ogd():
    # With l1 = l2 = 0, FTRL-Proximal's weights satisfy w_{t+1} = w_t - alpha/(beta+sqrt(n_t)) g_t.
    alpha, beta = 0.2, 0.7
    m = ReferenceFTRL(alpha=alpha, beta=beta, l1=0.0, l2=0.0)
    w: dict[int, float] = {}
    n: dict[int, float] = {}
    wb, nb = 0.0, 0.0
    rng = random.Random(11)
    for _ in range(300):
        cols = rng.sample(range(20), rng.randint(1, 5))
        row = [(c, rng.choice([1.0, 0.5, 2.0])) for c in cols]
        y = float(rng.random() < 0.3)
        p = sigmoid(sum(w.get(c, 0.0) * x for c, x in row) + wb)
        m.update(row, y)
        for c, x in row:
            g = (p - y) * x
            n[c] = n.get(c, 0.0) + g * g
            w[c] = w.get(c, 0.0) - alpha / (beta + math.sqrt(n[c])) * g
        gb = p - y
        nb += gb * gb
        wb -= alpha / (beta + math.sqrt(nb)) * gb
    for c in w:
        assert m.weight(c) == pytest.approx(w[c], rel=1e-9, abs=1e-12)
    assert m.bias() == pytest.approx(wb, rel=1e-9, abs=1e-12)


def test_ftrl_large_l1_gives_empty_weights_but_bias_learns():
    m = ReferenceFTRL(alpha=0.1, beta=1.0, l1=1e6, l2=0.0)
    rng = random.Random(2)
    for _ in range(200):
        m.update([(rng.randrange(10), 1.0)], float(rng.random() < 0.8))
    assert m.weights() == {}
    assert m.z  # state exists, only the weights are zero
    assert m.bias() > 0  # the bias is unregularized


def test_ftrl_exact_zero_when_abs_z_at_most_l1():
    m = ReferenceFTRL(alpha=0.1, beta=1.0, l1=1.0, l2=0.5)
    m.z[3], m.n[3] = 1.0, 4.0
    assert m.weight(3) == 0.0
    m.z[3] = -1.0
    assert m.weight(3) == 0.0
    m.z[3] = 0.999
    assert m.weight(3) == 0.0
    m.z[3] = 1.5
    assert m.weight(3) == pytest.approx(-(1.5 - 1.0) / ((1.0 + 2.0) / 0.1 + 0.5))
    m.z[3] = -1.5
    assert m.weight(3) == pytest.approx((1.5 - 1.0) / ((1.0 + 2.0) / 0.1 + 0.5))
    assert m.weights() == {3: m.weight(3)}


def test_ftrl_label_smoothing_and_zero_weight():
    m = ReferenceFTRL(alpha=0.1, beta=1.0, l1=0.0, l2=0.0, label_smoothing=1.0)
    loss = m.update([(1, 1.0)], 1.0)  # y' = 0.5 = p: zero gradient
    assert loss == pytest.approx(math.log(2.0))
    assert m.z[1] == 0.0 and m.n[1] == 0.0 and m.z_b == 0.0

    m = ReferenceFTRL(alpha=0.1, beta=1.0, l1=0.0, l2=0.0, label_smoothing=0.2)
    m.update([(1, 1.0)], 1.0)
    assert m.z[1] == pytest.approx(0.5 - 0.9)  # g = p - (1 * 0.8 + 0.1)

    m = ReferenceFTRL(alpha=0.1, beta=1.0, l1=0.0, l2=0.0)
    assert m.update([(1, 1.0)], 1.0, sample_weight=0.0) == 0.0
    assert m.weights() == {} and m.bias() == 0.0


def test_ftrl_logloss_is_clipped():
    m = ReferenceFTRL(alpha=1.0, beta=1.0, l1=0.0, l2=0.0)
    m.z_b = -1e6  # huge positive bias -> p == 1.0 in float64
    assert m.bias() > 1e4
    loss = m.update([], 0.0)
    # 1 - 1e-15 rounds in float64, so the clipped loss is -log(1 - (1 - 1e-15)), not -log(1e-15)
    assert loss == -math.log(1.0 - (1.0 - 1e-15))
    assert math.isfinite(loss)
