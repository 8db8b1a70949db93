"""Tests of the model artifact (sparsecross.export, sparsecross._kernels.varint).

Format: docs/ARTIFACT.md.  Golden files: tests/golden/make_artifacts.py.
"""

from __future__ import annotations

import json
import os
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecross.errors import ArtifactError, ClippedWeightsWarning, SpecError
from sparsecross.export import (
    ENCODINGS,
    HEADER_SIZE,
    load_model,
    model_bytes,
    read_header,
    save_model,
)
from sparsecross.model import SparseModel
from sparsecross.spec import parse_spec
from sparsecross._kernels import varint
from sparsecross._kernels.varint import decode_deltas, encode_deltas

# Lossy encodings of random test weights clip some of them: that warning is tested on its own
# (test_q213_tolerance_clipping_and_dropped_zeros) and ignored elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore::sparsecross.errors.ClippedWeightsWarning")

GOLDEN = Path(__file__).resolve().parent / "golden"
#: A wall-clock bound for work that must not loop over a hostile size: generous, so that a
#: loaded machine never trips it (no test depends on speed), tight enough that a loop over
#: 2**60 entries would.
HANG_SECONDS = 60.0
U64_MAX = 2**64 - 1


# ======================================================================================
# Slow, obvious pure-Python LEB128 reference (docs/ARTIFACT.md, "Key stream").
# ======================================================================================
def ref_encode(keys: list[int]) -> bytes:
    """Unsigned LEB128 of key[0], then of key[i] - key[i-1]; minimal length."""
    out = bytearray()
    prev = 0
    for k in keys:
        d = k - prev
        prev = k
        assert d >= 0
        while True:
            byte = d & 0x7F
            d >>= 7
            if d:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


class RefError(ValueError):
    """The reference decoder's rejection; ``.status`` is the kernel's expected code."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def ref_decode(buf: bytes, n: int) -> list[int]:
    """Decode exactly n keys, consuming the whole buffer, or raise RefError(status)."""
    if n < 0 or n > len(buf):
        raise RefError(varint.STATUS_BAD_COUNT)
    keys: list[int] = []
    pos = 0
    total = 0
    for i in range(n):
        value = 0
        length = 0
        while True:
            if pos >= len(buf):
                raise RefError(varint.STATUS_TRUNCATED)
            byte = buf[pos]
            pos += 1
            length += 1
            if length == 10 and byte & 0x80:
                raise RefError(varint.STATUS_OVERLONG)
            value |= (byte & 0x7F) << (7 * (length - 1))
            if not byte & 0x80:
                break
        if value > U64_MAX:
            raise RefError(varint.STATUS_VARINT_OVERFLOW)
        if length > 1 and byte == 0:
            raise RefError(varint.STATUS_NOT_MINIMAL)
        if i > 0 and value == 0:
            raise RefError(varint.STATUS_ZERO_DELTA)
        total += value
        if total > U64_MAX:
            raise RefError(varint.STATUS_KEY_OVERFLOW)
        keys.append(total)
    if pos != len(buf):
        raise RefError(varint.STATUS_TRAILING)
    return keys


def kernel_decode(buf: bytes, n: int) -> tuple[list[int], int]:
    keys, status = decode_deltas(np.frombuffer(buf, dtype=np.uint8), n)
    return [int(k) for k in keys], int(status)


# ======================================================================================
# Fixtures and helpers
# ======================================================================================
GEO_SPEC = {
    "label": {"column": "y"},
    "hashing": {"bits": 8},
    "features": [
        {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon"},
        {"name": "income", "kind": "bucket", "column": "income", "boundaries": [1.0, 2.0, 4.0]},
        {"name": "device", "kind": "categorical", "column": "device"},
    ],
    "train": {"alpha": 0.05},
}
# Same features plus an exact geo x bucket cross: the column space passes 2**32.
WIDE_SPEC = {
    **GEO_SPEC,
    "features": [
        GEO_SPEC["features"][0],
        {"name": "income", "kind": "bucket", "column": "income",
         "boundaries": [float(b) for b in range(1, 20)]},
        GEO_SPEC["features"][2],
    ],
    "crosses": [{"features": ["cell", "income"], "mode": "exact"}],
}
PARAMS = {"alpha": 0.05, "beta": 1.0, "l1": 0.5, "l2": 0.0, "epochs": 2}
STATS = {"rows": 12345, "progressive_logloss": 0.41, "validation": {"auc": 0.77, "rows": 99}}


@pytest.fixture(scope="module")
def geo_spec():
    return parse_spec(GEO_SPEC)


@pytest.fixture(scope="module")
def wide_spec():
    spec = parse_spec(WIDE_SPEC)
    assert spec.n_columns > 2**32
    return spec


def make_model(spec, keys, weights, bias=-0.75, encoding="float32") -> SparseModel:
    return SparseModel(
        keys=np.asarray(keys, dtype=np.uint64),
        weights=np.asarray(weights, dtype=np.float32),
        bias=bias,
        spec=spec,
        params=dict(PARAMS),
        stats=json.loads(json.dumps(STATS)),
        value_encoding=encoding,
    )


def random_model(spec, n, seed=0, scale=0.5, encoding="float32") -> SparseModel:
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.choice(spec.n_columns, size=n, replace=False)).astype(np.uint64)
    w = rng.normal(0.0, scale, n).astype(np.float32)
    w[w == 0] = np.float32(0.25)
    return make_model(spec, keys, w, encoding=encoding)


@pytest.fixture(scope="module")
def small_model(wide_spec):
    keys = [0, 5, 127, 128, 16_384, 2**31, 2**32 - 1, 2**32, 2**32 + 1, wide_spec.n_columns - 1]
    weights = [0.5, -1.0, 3.25, -0.001, 1e-6, 7.0, -2.5, 0.125, -0.3, 1.5]
    return make_model(wide_spec, keys, weights)


def fields(data: bytes) -> dict:
    magic, major, minor, enc, res, n, ml, kl, vl, bias = struct.unpack_from("<8sHHB3sQQQQd", data)
    return dict(magic=magic, major=major, minor=minor, enc=enc, reserved=res, n=n,
                meta_len=ml, keys_len=kl, values_len=vl, bias=bias)


def rebuild(data: bytes, *, meta: bytes | None = None, keys: bytes | None = None,
            values: bytes | None = None, fix_sizes: bool = True, **header) -> bytes:
    """Reassemble an artifact with some parts replaced and a correct CRC."""
    f = fields(data)
    p0 = HEADER_SIZE
    p1 = p0 + f["meta_len"]
    p2 = p1 + f["keys_len"]
    p3 = p2 + f["values_len"]
    m = data[p0:p1] if meta is None else meta
    k = data[p1:p2] if keys is None else keys
    v = data[p2:p3] if values is None else values
    if fix_sizes:
        f.update(meta_len=len(m), keys_len=len(k), values_len=len(v))
    f.update(header)
    head = struct.pack("<8sHHB3sQQQQd", f["magic"], f["major"], f["minor"], f["enc"], f["reserved"],
                       f["n"], f["meta_len"], f["keys_len"], f["values_len"], f["bias"])
    body = head + m + k + v
    return body + struct.pack("<I", zlib.crc32(body))


def meta_of(data: bytes) -> dict:
    f = fields(data)
    return json.loads(data[HEADER_SIZE:HEADER_SIZE + f["meta_len"]])


def dump_meta(meta: dict) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ======================================================================================
# Varint kernels vs the reference
# ======================================================================================
KEY_EDGES = [0, 1, 127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**32 - 1, 2**32, 2**35,
             2**56 - 1, 2**56, 2**63 - 1, 2**63, U64_MAX - 1, U64_MAX]


def test_varint_edges_match_reference():
    for i in range(len(KEY_EDGES)):
        for j in range(i, len(KEY_EDGES) + 1):
            keys = KEY_EDGES[i:j]
            enc = encode_deltas(np.array(keys, dtype=np.uint64))
            assert enc.dtype == np.uint8 and enc.ndim == 1
            assert enc.tobytes() == ref_encode(keys)
            assert varint.encoded_size(np.array(keys, dtype=np.uint64)) == len(enc)
            got, status = kernel_decode(enc.tobytes(), len(keys))
            assert status == varint.STATUS_OK and got == keys


def test_varint_lengths():
    for value, length in [(0, 1), (127, 1), (128, 2), (2**14, 3), (2**63, 10), (U64_MAX, 10)]:
        assert len(encode_deltas(np.array([value], dtype=np.uint64))) == length


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, U64_MAX), unique=True, max_size=60).map(sorted))
def test_varint_roundtrip_hypothesis(keys):
    arr = np.array(keys, dtype=np.uint64)
    enc = encode_deltas(arr)
    assert enc.tobytes() == ref_encode(keys)
    got, status = kernel_decode(enc.tobytes(), len(keys))
    assert status == 0 and got == keys


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.integers(-2, 45))
def test_varint_decode_arbitrary_bytes_matches_reference(buf, n):
    got, status = kernel_decode(buf, n)
    try:
        want = ref_decode(buf, n)
    except RefError as exc:
        assert status == exc.status
    else:
        assert status == 0 and got == want


@pytest.mark.parametrize(
    ("buf", "n", "status"),
    [
        (b"", 0, varint.STATUS_OK),
        (b"", 1, varint.STATUS_BAD_COUNT),
        (b"\x05", -1, varint.STATUS_BAD_COUNT),
        (b"\x05\x01", 3, varint.STATUS_BAD_COUNT),
        (b"\x85", 1, varint.STATUS_TRUNCATED),
        (b"\x05\x81", 2, varint.STATUS_TRUNCATED),
        (b"\x80" * 10 + b"\x01", 1, varint.STATUS_OVERLONG),
        (b"\xff" * 9 + b"\x02", 1, varint.STATUS_VARINT_OVERFLOW),
        (b"\xff" * 9 + b"\x01", 1, varint.STATUS_OK),
        (b"\x80\x00", 1, varint.STATUS_NOT_MINIMAL),
        (b"\x05\x00", 2, varint.STATUS_ZERO_DELTA),
        (b"\x00\x00", 2, varint.STATUS_ZERO_DELTA),
        (b"\xff" * 9 + b"\x01" + b"\x01", 2, varint.STATUS_KEY_OVERFLOW),
        (b"\x05\x01", 1, varint.STATUS_TRAILING),
        (b"\x05", 0, varint.STATUS_TRAILING),
    ],
)
def test_varint_malformed_streams(buf, n, status):
    got_status = kernel_decode(buf, n)[1]
    assert got_status == status, varint.STATUS_MESSAGES.get(got_status)
    if status == varint.STATUS_OK:
        assert kernel_decode(buf, n)[0] == ref_decode(buf, n)
    else:
        with pytest.raises(RefError) as info:
            ref_decode(buf, n)
        assert info.value.status == status
    assert status in varint.STATUS_MESSAGES


def test_varint_kernels_accept_read_only_inputs():
    keys = np.array([3, 300, 2**40, U64_MAX], dtype=np.uint64)
    keys.setflags(write=False)
    enc = encode_deltas(keys)
    assert enc.flags.writeable
    ro = np.frombuffer(enc.tobytes(), dtype=np.uint8)
    assert not ro.flags.writeable
    out, status = decode_deltas(ro, 4)
    assert status == 0 and np.array_equal(out, keys)
    assert out.flags.writeable and out.dtype == np.uint64
    np.testing.assert_array_equal(ro, enc)  # input untouched


# ======================================================================================
# Round trips
# ======================================================================================
def test_roundtrip_float32_bit_exact(tmp_path, small_model):
    path = tmp_path / "m.scx"
    nbytes = save_model(small_model, path)
    assert nbytes == path.stat().st_size
    m = load_model(path)
    assert m.keys.dtype == np.uint64 and m.weights.dtype == np.float32
    np.testing.assert_array_equal(m.keys, small_model.keys)
    np.testing.assert_array_equal(m.weights.view(np.uint32), small_model.weights.view(np.uint32))
    assert m.bias == -0.75
    assert m.spec.sha256 == small_model.spec.sha256
    assert m.spec.to_dict() == small_model.spec.to_dict()
    assert m.spec.n_columns == small_model.spec.n_columns
    assert m.params == small_model.params
    assert m.stats == small_model.stats
    assert m.value_encoding == "float32"
    from sparsecross import __version__

    assert m.library_version == __version__
    assert m.keys.flags.writeable and m.weights.flags.writeable


def test_layout_matches_the_documented_format(small_model):
    data = model_bytes(small_model)
    f = fields(data)
    assert data[:8] == b"SCXMODEL"
    assert (f["major"], f["minor"], f["enc"], f["reserved"]) == (1, 1, 0, b"\0\0\0")
    assert f["n"] == small_model.nonzeros and f["bias"] == -0.75
    assert len(data) == 56 + f["meta_len"] + f["keys_len"] + f["values_len"] + 4
    assert f["values_len"] == 4 * f["n"]
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])
    meta_raw = data[56:56 + f["meta_len"]]
    meta = json.loads(meta_raw.decode("utf-8"))
    assert set(meta) == {"format_version", "library_version", "hash_contract", "spec",
                         "spec_sha256", "params", "stats", "value_encoding", "schema"}
    assert meta["format_version"] == "1.1" and meta["hash_contract"] == "v1"
    assert meta["value_encoding"] == "float32"
    assert meta["spec"] == small_model.spec.to_dict()
    assert meta["spec_sha256"] == small_model.spec.sha256
    assert meta_raw == json.dumps(meta, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode()
    keys_raw = data[56 + f["meta_len"]:56 + f["meta_len"] + f["keys_len"]]
    assert keys_raw == ref_encode([int(k) for k in small_model.keys])
    values = np.frombuffer(data, "<f4", count=f["n"], offset=56 + f["meta_len"] + f["keys_len"])
    np.testing.assert_array_equal(values, small_model.weights)
    art = meta["stats"]["artifact"]
    assert art["nonzeros"] == f["n"] and art["keys_bytes"] == f["keys_len"]
    assert art["values_bytes"] == f["values_len"] and art["dropped_zeros"] == 0


def test_same_model_same_bytes(tmp_path, wide_spec, small_model):
    twin = make_model(wide_spec, small_model.keys.copy(), small_model.weights.copy())
    for enc in ENCODINGS:
        a = model_bytes(small_model, enc)
        assert a == model_bytes(small_model, enc)
        assert a == model_bytes(twin, enc)
        p1, p2 = tmp_path / f"a_{enc}.scx", tmp_path / f"b_{enc}.scx"
        save_model(small_model, p1, encoding=enc)
        save_model(twin, p2, encoding=enc)
        assert p1.read_bytes() == p2.read_bytes() == a
    source = Path(__file__).resolve().parents[1].joinpath("sparsecross", "export.py").read_text()
    assert "import pickle" not in source and "eval(" not in source


def test_resave_of_loaded_model_is_identical(tmp_path, small_model):
    for enc in ENCODINGS:
        p = tmp_path / f"{enc}.scx"
        save_model(small_model, p, encoding=enc)
        first = p.read_bytes()
        m = load_model(p)
        assert m.value_encoding == enc
        again = model_bytes(m)  # the model's own encoding
        if enc == "float32":
            assert again == first
        else:
            # quantization is idempotent: same keys and values; only the metadata's
            # stats.artifact (input weights, dropped zeros, error) describes the new input
            f1, f2 = fields(first), fields(again)
            assert f1["n"] == f2["n"] and f1["bias"] == f2["bias"]
            tail = f1["keys_len"] + f1["values_len"] + 4
            assert first[-tail:-4] == again[-(f2["keys_len"] + f2["values_len"] + 4):-4]
            assert meta_of(again)["stats"]["artifact"]["dropped_zeros"] == 0
            assert model_bytes(load_model(write(tmp_path / "again.scx", again))) == again


def test_encoding_defaults_to_model_value_encoding(tmp_path, wide_spec, small_model):
    m16 = make_model(wide_spec, small_model.keys, small_model.weights, encoding="float16")
    assert model_bytes(m16) == model_bytes(small_model, "float16")
    assert fields(model_bytes(m16))["enc"] == 1
    assert fields(model_bytes(m16, "q2.13"))["enc"] == 2
    with pytest.raises(ArtifactError, match="unknown value encoding"):
        model_bytes(small_model, "int8")


def test_float16_tolerance_and_dropped_zeros(tmp_path, geo_spec):
    m = random_model(geo_spec, 20_000, seed=3, scale=2.0)
    w = m.weights.copy()
    w[:50] = np.float32(1e-9)  # underflow to 0 in float16: dropped
    w[50:60] = np.float32(3e-6)  # float16 subnormals: kept
    w[60:65] = np.float32(1e5)  # clipped to 65504
    w[65:70] = np.float32(-1e6)  # clipped to -65504
    m = make_model(geo_spec, m.keys, w)
    p = tmp_path / "h.scx"
    n_bytes = save_model(m, p, encoding="float16")
    got = load_model(p)
    assert got.value_encoding == "float16"
    assert got.nonzeros == len(w) - 50
    np.testing.assert_array_equal(got.keys, m.keys[50:])
    ref = w[50:]
    q = got.weights
    assert np.all(q[10:15] == 65504) and np.all(q[15:20] == -65504)
    normal = (np.abs(ref) >= 2.0**-14) & (np.abs(ref) <= 65504)
    rel = np.abs(q[normal].astype(np.float64) - ref[normal]) / np.abs(ref[normal])
    assert rel.max() <= 1e-3
    sub = np.abs(ref) < 2.0**-14
    assert sub.sum() >= 10
    assert np.abs(q[sub].astype(np.float64) - ref[sub]).max() <= 2.0**-25
    np.testing.assert_array_equal(q, np.clip(ref, -65504, 65504).astype(np.float16).astype(np.float32))
    h = read_header(p)
    assert h["value_encoding"] == "float16" and h["n_weights"] == got.nonzeros
    assert h["file_bytes"] == n_bytes and h["values_len"] == 2 * got.nonzeros
    assert h["metadata"]["stats"]["artifact"]["dropped_zeros"] == 50
    assert got.stats == m.stats  # the file's own "artifact" entry is not part of the model


def test_q213_tolerance_clipping_and_dropped_zeros(tmp_path, geo_spec):
    m = random_model(geo_spec, 50_000, seed=4, scale=0.3)
    w = m.weights.copy()
    w[:10] = np.float32(9.0)
    w[10:20] = np.float32(-9.0)
    w[20:2020] = np.float32(2.0**-15)  # kept with probability 1/4
    m = make_model(geo_spec, m.keys, w)
    p = tmp_path / "q.scx"
    with pytest.warns(ClippedWeightsWarning, match=r"clipped 20 weights .* largest weight error is 5"):
        save_model(m, p, encoding="q2.13")
    got = load_model(p)
    assert got.value_encoding == "q2.13"
    assert got.artifact["clipped"] == 20 and got.artifact["max_abs_error"] == pytest.approx(9 - (4 - 2**-13))
    pos = np.searchsorted(m.keys, got.keys)
    assert np.array_equal(m.keys[pos], got.keys)  # a subset of the keys, in order
    ref = w[pos].astype(np.float64)
    q = got.weights.astype(np.float64)
    ints = q * 2**13
    assert np.array_equal(ints, np.round(ints)) and np.all(ints != 0)
    assert np.all(q[:10] == 4 - 2**-13) and np.all(q[10:20] == -4)
    inside = np.abs(ref) < 4 - 2**-13
    assert np.abs(q[inside] - ref[inside]).max() < 2**-13
    # weights with |w| >= 2**-13 are never dropped; the tiny ones mostly are
    big = np.abs(w) >= 2**-13
    assert np.isin(m.keys[big], got.keys).all()
    kept_tiny = np.isin(m.keys[20:2020], got.keys).sum()
    assert 350 < kept_tiny < 650  # ~ 2000 / 4
    assert (np.abs(w[~np.isin(m.keys, got.keys)]) < 2**-13).all()
    # randomized rounding is unbiased
    err = np.clip(q - ref, -1, 1)[inside]
    assert abs(err.mean()) < 5 * (2**-13 / np.sqrt(12)) / np.sqrt(inside.sum()) + 1e-9
    meta = read_header(p)["metadata"]
    assert meta["stats"]["artifact"]["dropped_zeros"] == len(w) - got.nonzeros >= 2000 - kept_tiny


def test_bytes_per_nonzero(tmp_path, geo_spec):
    n = 200_000
    rng = np.random.default_rng(11)
    keys = np.sort(rng.choice(geo_spec.outputs[0].cardinality, size=n, replace=False))
    w = rng.normal(0, 0.5, n).astype(np.float32)
    w = np.where(np.abs(w) < 0.01, np.float32(0.5), w).astype(np.float32)
    m = make_model(geo_spec, keys, w)
    per = {}
    for enc in ENCODINGS:
        p = tmp_path / f"bpn_{enc}.scx"
        size = save_model(m, p, encoding=enc)
        h = read_header(p)
        assert h["n_weights"] == n  # nothing quantized to zero
        per[enc] = size / h["n_weights"]
        assert h["bytes_per_nonzero"] == pytest.approx(per[enc])
    assert per["float32"] <= 6.0
    assert per["float16"] <= 4.0
    assert per["q2.13"] <= 4.0


def test_empty_model_roundtrip(tmp_path, geo_spec):
    m = make_model(geo_spec, [], [], bias=1.5)
    p = tmp_path / "empty.scx"
    for enc in ENCODINGS:
        size = save_model(m, p, encoding=enc)
        got = load_model(p)
        assert got.nonzeros == 0 and got.bias == 1.5
        h = read_header(p)
        assert h["keys_len"] == h["values_len"] == 0 and h["bytes_per_nonzero"] is None
        assert size == h["file_bytes"]


def test_all_weights_quantized_away(tmp_path, geo_spec):
    m = make_model(geo_spec, [1, 2, 3], [1e-9, -1e-10, 2e-9])
    p = tmp_path / "z.scx"
    save_model(m, p, encoding="float16")
    assert load_model(p).nonzeros == 0
    assert read_header(p)["metadata"]["stats"]["artifact"]["dropped_zeros"] == 3


@st.composite
def sparse_models(draw):
    spec = parse_spec(WIDE_SPEC)
    n_columns = spec.n_columns
    keys = sorted(draw(st.lists(
        st.one_of(st.integers(0, n_columns - 1), st.integers(n_columns - 300, n_columns - 1),
                  st.integers(0, 300)),
        unique=True, max_size=80)))
    weights = draw(st.lists(
        st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda x: x != 0),
        min_size=len(keys), max_size=len(keys)))
    bias = draw(st.floats(allow_nan=False, allow_infinity=False))
    return make_model(spec, keys, weights, bias=bias)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sparse_models(), st.sampled_from(sorted(ENCODINGS)))
def test_roundtrip_hypothesis(model, enc):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "h.scx")
        size = save_model(model, p, encoding=enc)
        got = load_model(p)
        assert size == os.path.getsize(p)
        assert os.listdir(d) == ["h.scx"]
    assert got.bias == model.bias
    assert got.spec.sha256 == model.spec.sha256
    assert got.params == model.params and got.stats == model.stats
    if enc == "float32":
        np.testing.assert_array_equal(got.keys, model.keys)
        np.testing.assert_array_equal(got.weights.view(np.uint32), model.weights.view(np.uint32))
        return
    assert np.all(got.weights != 0)
    pos = np.searchsorted(model.keys, got.keys)
    assert np.array_equal(model.keys[pos], got.keys)
    ref = model.weights[pos].astype(np.float64)
    q = got.weights.astype(np.float64)
    if enc == "float16":
        expect = np.clip(model.weights, -65504, 65504).astype(np.float16)
        np.testing.assert_array_equal(got.keys, model.keys[expect != 0])
        np.testing.assert_array_equal(q, expect[expect != 0].astype(np.float64))
    else:
        lo, hi = -4.0, 4.0 - 2**-13
        np.testing.assert_array_less(np.abs(q - np.clip(ref, lo, hi)), 2**-13)
        assert np.isin(model.keys[np.abs(model.weights) >= 2**-13], got.keys).all()


# ======================================================================================
# Golden files (format 1.0 must keep loading forever)
# ======================================================================================
@pytest.fixture(scope="module")
def expected():
    return json.loads((GOLDEN / "model_v1_expected.json").read_text())


@pytest.mark.parametrize("enc", ["float32", "float16", "q2.13"])
def test_golden_files_load(expected, enc):
    e = expected["encodings"][enc]
    path = GOLDEN / e["file"]
    m = load_model(path)
    assert m.value_encoding == enc
    assert [int(k) for k in m.keys] == e["keys"]
    assert [float(w) for w in m.weights] == e["weights"]
    assert [f"{int(b):08x}" for b in m.weights.view(np.uint32)] == e["weights_float32_hex"]
    assert m.bias == expected["bias"]
    assert m.spec.sha256 == expected["spec_sha256"]
    assert m.spec.n_columns == expected["n_columns"]
    assert m.params == expected["params"] and m.stats == expected["stats"]
    assert max(e["keys"]) > 2**32
    h = read_header(path)
    assert h["format_version"] == "1.0" and h["value_encoding"] == enc
    assert h["file_bytes"] == e["file_bytes"] == path.stat().st_size
    assert h["n_weights"] == len(e["keys"])


def test_golden_lossy_files_dropped_zeros(expected):
    n32 = len(expected["encodings"]["float32"]["keys"])
    assert len(expected["encodings"]["float16"]["keys"]) < n32
    assert len(expected["encodings"]["q2.13"]["keys"]) < n32
    assert 65504.0 in expected["encodings"]["float16"]["weights"]
    assert -4.0 in expected["encodings"]["q2.13"]["weights"]


def test_golden_corrupt_raises_checksum(expected):
    path = GOLDEN / expected["corrupt"]["file"]
    with pytest.raises(ArtifactError, match="checksum") as info:
        load_model(path)
    assert "model_v1_corrupt.scx" in str(info.value)
    assert "corrupted" in str(info.value)
    with pytest.raises(ArtifactError, match="checksum"):
        read_header(path)


# ======================================================================================
# Refusing bad files
# ======================================================================================
@pytest.fixture(scope="module")
def tiny_bytes(geo_spec):
    return model_bytes(make_model(geo_spec, [3, 1000, 233_280_100], [0.5, -0.25, 2.0]))


def test_every_truncation_raises(tmp_path, tiny_bytes):
    p = tmp_path / "t.scx"
    for cut in range(len(tiny_bytes)):
        p.write_bytes(tiny_bytes[:cut])
        with pytest.raises(ArtifactError):
            load_model(p)
        with pytest.raises(ArtifactError):
            read_header(p)
    p.write_bytes(tiny_bytes + b"\0")
    with pytest.raises(ArtifactError, match="truncated"):
        load_model(p)
    p.write_bytes(tiny_bytes)
    assert load_model(p).nonzeros == 3


def test_truncated_golden_sample(tmp_path):
    data = (GOLDEN / "model_v1_q213.scx").read_bytes()
    p = tmp_path / "g.scx"
    for cut in list(range(0, 70)) + list(range(70, len(data), 37)) + [len(data) - 1]:
        p.write_bytes(data[:cut])
        with pytest.raises(ArtifactError):
            load_model(p)


def test_every_single_byte_flip_is_caught(tmp_path, tiny_bytes):
    p = tmp_path / "f.scx"
    for i in range(len(tiny_bytes)):
        bad = bytearray(tiny_bytes)
        bad[i] ^= 0x01
        p.write_bytes(bytes(bad))
        with pytest.raises(ArtifactError):
            load_model(p)


def test_bad_magic(tmp_path, tiny_bytes):
    p = write(tmp_path / "bad.scx", b"NOTMODEL" + tiny_bytes[8:])
    with pytest.raises(ArtifactError, match="not a sparsecross model"):
        load_model(p)
    with pytest.raises(ArtifactError, match="not a sparsecross model"):
        read_header(p)
    p = write(tmp_path / "parquet.scx", b"PAR1" + b"\0" * 100)
    with pytest.raises(ArtifactError, match="not a sparsecross model"):
        load_model(p)
    p = write(tmp_path / "empty.scx", b"")
    with pytest.raises(ArtifactError, match="not a sparsecross model"):
        load_model(p)


def test_newer_major_version_is_refused(tmp_path, tiny_bytes):
    data = rebuild(tiny_bytes, major=2, minor=3)
    p = write(tmp_path / "v2.scx", data)
    for fn in (load_model, read_header):
        with pytest.raises(ArtifactError) as info:
            fn(p)
        msg = str(info.value)
        assert "2.3" in msg and "1.1" in msg and "upgrade" in msg


def test_newer_minor_version_is_accepted(tmp_path, tiny_bytes):
    meta = meta_of(tiny_bytes)
    meta["format_version"] = "1.7"
    meta["something_new"] = {"ignored": True}
    p = write(tmp_path / "v17.scx", rebuild(tiny_bytes, meta=dump_meta(meta), minor=7))
    assert load_model(p).nonzeros == 3
    assert read_header(p)["format_version"] == "1.7"


def test_absurd_sizes_are_refused_without_allocating(tmp_path, tiny_bytes):
    f = fields(tiny_bytes)
    cases = {
        "n2^60": rebuild(tiny_bytes, fix_sizes=False, n=2**60),
        "values2^62": rebuild(tiny_bytes, fix_sizes=False, values_len=2**62),
        "all_huge": rebuild(tiny_bytes, fix_sizes=False, n=2**60, keys_len=2**62,
                            values_len=2**63, meta_len=2**63),
        "n_gt_keys": rebuild(tiny_bytes, fix_sizes=False, n=f["keys_len"] + 1,
                             values_len=f["values_len"] + 4,
                             keys_len=f["keys_len"], meta_len=f["meta_len"] - 4),
        "values_mismatch": rebuild(tiny_bytes, fix_sizes=False, n=f["n"] - 1,
                                   values_len=f["values_len"], meta_len=f["meta_len"]),
    }
    tracemalloc.start()
    try:
        for name, data in cases.items():
            p = write(tmp_path / f"{name}.scx", data)
            tracemalloc.reset_peak()
            t0 = time.perf_counter()
            with pytest.raises(ArtifactError) as info:
                load_model(p)
            # a bound for a loaded machine, not a speed check: refused before any loop over the
            # claimed sizes (2**60 entries would never end); milliseconds here
            assert time.perf_counter() - t0 < HANG_SECONDS, name
            assert tracemalloc.get_traced_memory()[1] < 1 << 20, name
            assert "corrupted" in str(info.value), name
            with pytest.raises(ArtifactError):
                read_header(p)
    finally:
        tracemalloc.stop()


def test_unknown_value_encoding_code(tmp_path, tiny_bytes):
    p = write(tmp_path / "enc.scx", rebuild(tiny_bytes, enc=7))
    with pytest.raises(ArtifactError, match="encoding"):
        load_model(p)


def test_malformed_key_stream_with_valid_crc(tmp_path, geo_spec):
    data = model_bytes(make_model(geo_spec, [5, 10], [1.0, 2.0]))
    f = fields(data)
    assert data[HEADER_SIZE + f["meta_len"]:][:2] == b"\x05\x05"
    cases = {
        "delta is 0": b"\x05\x00",
        "not minimally": b"\x05\x85\x00",
        "trailing": b"\x05\x05\x05",
        "ends early": b"\x05\x85",
        "column space": b"\x05\xff\xff\xff\xff\x0f",  # in range of uint64, outside the spec
    }
    for what, keys in cases.items():
        p = write(tmp_path / "k.scx", rebuild(data, keys=keys))
        with pytest.raises(ArtifactError, match=what):
            load_model(p)


def test_bad_metadata_with_valid_crc(tmp_path, tiny_bytes):
    meta = meta_of(tiny_bytes)

    def variant(**changes):
        m = json.loads(json.dumps(meta))
        for k, v in changes.items():
            if v is None:
                m.pop(k)
            else:
                m[k] = v
        return dump_meta(m)

    cases = [
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"x": NaN}', "not valid"),
        (variant(spec_sha256=None), "lacks 'spec_sha256'"),
        (variant(hash_contract="v2"), "hash contract 'v2'"),
        (variant(value_encoding="float16"), "disagrees with the header"),
        (variant(format_version="2.0"), "disagrees with the header"),
        (variant(spec={**meta["spec"], "bogus": 1}), "embedded spec is invalid"),
        (variant(spec_sha256="0" * 64), "hashes to"),
        (variant(params=[1]), "'params' must be a JSON object"),
    ]
    for i, (raw, match) in enumerate(cases):
        p = write(tmp_path / f"meta{i}.scx", rebuild(tiny_bytes, meta=raw))
        with pytest.raises(ArtifactError, match=match):
            load_model(p)
        with pytest.raises(ArtifactError):
            read_header(p)


def test_bad_values_with_valid_crc(tmp_path, tiny_bytes):
    f = fields(tiny_bytes)
    for bad in (0.0, float("nan"), float("inf")):
        values = np.array([0.5, bad, 2.0], dtype="<f4").tobytes()
        p = write(tmp_path / "v.scx", rebuild(tiny_bytes, values=values))
        with pytest.raises(ArtifactError, match="finite and nonzero"):
            load_model(p)
    p = write(tmp_path / "b.scx", rebuild(tiny_bytes, bias=float("nan")))
    with pytest.raises(ArtifactError, match="bias"):
        load_model(p)
    assert f["n"] == 3


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.scx"
    for fn in (load_model, read_header):
        with pytest.raises(ArtifactError, match="nope.scx"):
            fn(missing)
        with pytest.raises(ArtifactError, match=str(tmp_path.name)):
            fn(tmp_path)


def _corrupt_variants(data: bytes) -> dict[str, bytes]:
    """One file per refusal of the reader, each with a valid CRC unless the CRC is the point."""
    f = fields(data)
    flipped = bytearray(data)
    flipped[HEADER_SIZE] ^= 0x01
    keys_at = HEADER_SIZE + f["meta_len"]
    return {
        "magic": b"NOTMODEL" + data[8:],
        "short": data[:HEADER_SIZE - 1],
        "newer": rebuild(data, major=2),
        "major0": rebuild(data, major=0),
        "encoding": rebuild(data, enc=7),
        "sizes": data + b"\0",
        "n_gt_keys": rebuild(data, fix_sizes=False, n=f["keys_len"] + 1),
        "values_len": rebuild(data, fix_sizes=False, values_len=f["values_len"] + 4),
        "crc": bytes(flipped),
        "json": rebuild(data, meta=b"{not json"),
        "object": rebuild(data, meta=b"[1]"),
        "lacks": rebuild(data, meta=b"{}"),
        "keys": rebuild(data, keys=b"\x05\x00" + data[keys_at + 2:keys_at + f["keys_len"]]),
        "values": rebuild(data, values=np.array([0.5, np.nan, 2.0], dtype="<f4").tobytes()),
        "bias": rebuild(data, bias=float("nan")),
    }


def test_a_damaged_model_in_a_hostile_folder_is_named_short(tmp_path, tiny_bytes):
    """A model's path is named short and escaped whatever is wrong with the file (a ~3,500
    character path of control characters made a 3.5 KB message, the terminal's codes raw)."""
    from tests.hostile import assert_short, hostile_folder

    folder = hostile_folder(tmp_path)
    for what, data in _corrupt_variants(tiny_bytes).items():
        p = write(folder / f"{what}.scx", data)
        for fn in (load_model, read_header):
            try:
                fn(p)
            except ArtifactError as exc:
                assert_short(str(exc))
            else:
                assert fn is read_header and what in ("keys", "values", "bias"), what  # not decoded


def test_hostile_metadata_is_shown_short(tmp_path, tiny_bytes):
    """Values read from a model's metadata are shown short and escaped (they were echoed whole)."""
    from tests.hostile import assert_short, hostile_name

    meta = meta_of(tiny_bytes)
    huge = hostile_name()
    spec = json.loads(json.dumps(meta["spec"]))
    spec["features"][2]["name"] = "n" * 5_000
    spec["features"][2]["column"] = huge
    spec["features"][1]["kind"] = huge
    bad = [{**meta, "hash_contract": huge}, {**meta, "format_version": "1" + huge},
           {**meta, "value_encoding": huge}, {**meta, "spec_sha256": huge}, {**meta, "spec": spec},
           {**meta, huge: 1, "spec_sha256": None}]
    for i, m in enumerate(bad):
        p = write(tmp_path / f"m{i}.scx", rebuild(tiny_bytes, meta=dump_meta({k: v for k, v in m.items()
                                                                              if v is not None})))
        for fn in (load_model, read_header):
            with pytest.raises(ArtifactError) as info:
                fn(p)
            assert_short(str(info.value))


# ======================================================================================
# Writing
# ======================================================================================
def test_atomic_write_leaves_no_temp_file(tmp_path, small_model):
    p = tmp_path / "m.scx"
    save_model(small_model, p)
    save_model(small_model, str(p), encoding="q2.13")
    assert sorted(os.listdir(tmp_path)) == ["m.scx"]
    assert load_model(p).value_encoding == "q2.13"


@pytest.mark.parametrize("fail", ["replace", "fsync"])
def test_failed_write_keeps_old_file(tmp_path, monkeypatch, small_model, geo_spec, fail):
    p = tmp_path / "m.scx"
    save_model(small_model, p)
    old = p.read_bytes()
    other = make_model(geo_spec, [1, 2], [3.0, 4.0])

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, fail, boom)
    with pytest.raises(ArtifactError, match="No space left") as info:
        save_model(other, p)
    assert "m.scx" in str(info.value)
    monkeypatch.undo()
    assert p.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.scx"]
    assert load_model(p).nonzeros == small_model.nonzeros


def test_write_into_missing_folder(tmp_path, small_model):
    with pytest.raises(ArtifactError, match="cannot write"):
        save_model(small_model, tmp_path / "no" / "such" / "m.scx")
    assert os.listdir(tmp_path) == []


def test_unsavable_models(geo_spec):
    with pytest.raises(ArtifactError, match="finite"):
        model_bytes(make_model(geo_spec, [1, 2], [1.0, np.nan]))
    with pytest.raises(ArtifactError, match="finite"):
        model_bytes(make_model(geo_spec, [1, 2], [1.0, 2.0], bias=float("inf")))
    m = make_model(geo_spec, [1, 2], [1.0, 2.0])
    m.stats = {"obj": object()}
    with pytest.raises(ArtifactError, match="JSON"):
        model_bytes(m)
    m.stats = {1: 2}
    with pytest.raises(ArtifactError, match="non-string key"):
        model_bytes(m)
    m.stats = {}
    m.keys = np.array([2, 1], dtype=np.uint64)
    with pytest.raises(ArtifactError, match="strictly increasing"):
        model_bytes(m)


def test_numpy_and_nonfinite_stats_are_stored_as_json(tmp_path, geo_spec):
    m = make_model(geo_spec, [1, 2], [1.0, 2.0])
    m.stats = {"n": np.int64(5), "x": np.float32(0.5), "arr": np.arange(3), "t": (1, 2),
               "nan": float("nan"), "flag": np.bool_(True)}
    p = tmp_path / "s.scx"
    save_model(m, p)
    assert load_model(p).stats == {"n": 5, "x": 0.5, "arr": [0, 1, 2], "t": [1, 2],
                                   "nan": None, "flag": True}


def test_float32_zero_weights_are_dropped(tmp_path, geo_spec):
    m = make_model(geo_spec, [1, 2, 3], [1.0, 0.0, -0.0])
    p = tmp_path / "z.scx"
    save_model(m, p)
    got = load_model(p)
    assert [int(k) for k in got.keys] == [1]


def test_load_one_million(tmp_path, geo_spec):
    """A million weights round-trip (their load time is measured in benchmarks/, not here:
    no test depends on the machine's speed)."""
    m = random_model(geo_spec, 1_000_000, seed=5)
    p = tmp_path / "big.scx"
    save_model(m, p)
    got = load_model(p)
    assert got.nonzeros == 1_000_000
    np.testing.assert_array_equal(got.keys, m.keys)
    np.testing.assert_array_equal(got.weights, m.weights)


# ======================================================================================
# Embedded specs: stored forms that a user's spec may not have
# ======================================================================================
def _legacy_spec_dict(n_extra: int = 0) -> dict:
    """What a model written by an earlier version may embed: a resolved quantile bucket
    (boundaries with their quantile count), a feature crossed with itself, a feature on the
    label column; ``n_extra`` more categoricals (over the user limit of features if large)."""
    feats = [
        {"name": "inc", "kind": "bucket", "column": "income", "boundaries": [1.5, 3.0], "quantiles": 3},
        {"name": "leak", "kind": "categorical", "column": "y"},
    ] + [{"name": f"c{i}", "kind": "categorical", "column": f"c{i % 10}"} for i in range(n_extra)]
    return {"label": {"column": "y"}, "hashing": {"bits": 6},
            "features": feats, "crosses": [{"features": ["inc", "inc"]}]}


def test_legacy_stored_spec_loads_with_its_identity(tmp_path):
    import hashlib

    d = _legacy_spec_dict()
    spec = parse_spec(d, stored=True)
    path = tmp_path / "legacy.scx"
    save_model(random_model(spec, 5), path)
    meta = read_header(path)["metadata"]
    # the embedded form and its hash are what the earlier version wrote (independent recomputation)
    assert meta["spec"]["features"][0]["quantiles"] == 3
    assert meta["spec"]["features"][0]["boundaries"] == [1.5, 3.0]
    canon = json.dumps(meta["spec"], sort_keys=True, separators=(",", ":"))
    assert meta["spec_sha256"] == hashlib.sha256(canon.encode()).hexdigest()
    m = load_model(path)
    assert m.spec.sha256 == meta["spec_sha256"] and m.spec == spec
    assert "inc*inc" in {o.name for o in m.spec.outputs}


def test_stored_spec_over_the_user_limits_loads(tmp_path):
    from sparsecross.spec import MAX_FEATURES

    d = _legacy_spec_dict(MAX_FEATURES)
    with pytest.raises(SpecError, match="at most 10000"):
        parse_spec(d)
    spec = parse_spec(d, stored=True)
    path = tmp_path / "wide.scx"
    save_model(random_model(spec, 50), path)
    m = load_model(path)
    assert len(m.spec.features) == MAX_FEATURES + 2
    assert m.spec.sha256 == spec.sha256
