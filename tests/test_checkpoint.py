"""Tests of ``sparsecross.checkpoint``: a checkpoint belongs to exactly one run (the data
fingerprint: resolved path, size, mtime, Parquet footer hash) and is untrusted input (every
damaged, truncated, tampered or hostile ``state.npz`` is a clean ``CheckpointError`` naming
the file, never a hang, a crash or a different exception), plus a hypothesis fuzz of
checkpoint contents through ``train()``.

Every checkpoint here is resumed through the public ``sparsecross.train`` on a small data set
(400 rows, a 2**12 hashed space) so that each resume takes milliseconds.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import CheckpointError, FTRLState, parse_spec
from sparsecross._kernels.hash import fmix64

ROWS = 400
SPEC_DICT = {
    "version": 1,
    "label": {"column": "label"},
    "hashing": {"bits": 12, "seed": 0},
    "features": [
        {"name": "c", "kind": "categorical", "column": "c"},
        {"name": "x", "kind": "bucket", "column": "x", "boundaries": [-1.0, 0.0, 1.0]},
    ],
    "crosses": [{"features": ["c", "x"]}],
}
SPEC = parse_spec(SPEC_DICT)
ARGS = dict(alpha=0.2, l1=0.1, epochs=2, batch_rows=50)
EVERY = 100  # rows between checkpoints: saves at rows 100, 200, 300, 400, then (1, 0), ...


def _table(seed: int, flip: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    c = [f"v{k}" for k in np.random.default_rng(0).integers(0, 150, ROWS)]  # same strings always
    x = rng.normal(size=ROWS)
    label = (np.random.default_rng(1).random(ROWS) < 0.4).astype(np.int8)
    if flip:
        label = 1 - label
    return pa.table({"c": c, "x": x, "label": label})


def _write(table: pa.Table, path: Path) -> Path:
    # plain, uncompressed: the size of the file depends only on the shape of the data
    pq.write_table(table, path, compression="none", use_dictionary=False, row_group_size=100)
    return path


def _same_model(a, b) -> bool:
    return (np.array_equal(a.keys, b.keys) and a.weights.tobytes() == b.weights.tobytes()
            and (a.bias == b.bias or (math.isnan(a.bias) and math.isnan(b.bias))))


class _Crash(Exception):
    pass


def _crash_after(monkeypatch, k: int, fn) -> None:
    """Run ``fn`` with ``FTRLState.save`` raising right after its ``k``-th write."""
    orig = FTRLState.save
    saves = []

    def crashing_save(self, path, meta):
        orig(self, path, meta)
        saves.append(1)
        if len(saves) == k:
            raise _Crash

    monkeypatch.setattr(FTRLState, "save", crashing_save)
    try:
        with pytest.raises(_Crash):
            fn()
    finally:
        monkeypatch.setattr(FTRLState, "save", orig)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _write(_table(0), tmp_path_factory.mktemp("ckdata") / "data.parquet")


@pytest.fixture(scope="module")
def uninterrupted(data):
    return sparsecross.train(data, SPEC, **ARGS)


@pytest.fixture(scope="module")
def genuine(data, tmp_path_factory) -> bytes:
    """The bytes of a real checkpoint written mid epoch 1 (after row 300)."""
    ck = tmp_path_factory.mktemp("genuine")
    mp = pytest.MonkeyPatch()
    try:
        _crash_after(mp, 3, lambda: sparsecross.train(data, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS))
    finally:
        mp.undo()
    raw = (ck / "state.npz").read_bytes()
    _, meta = FTRLState.load(ck / "state.npz")
    assert (meta["epoch"], meta["row"]) == (0, 300)
    return raw


def _arrays(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as f:
        return {k: f[k].copy() for k in f.files}


def _meta(arrays) -> dict:
    return json.loads(arrays["meta"].tobytes().decode())


def _with_meta(arrays, **change) -> dict[str, np.ndarray]:
    meta = {**_meta(arrays), **change}
    return {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}


def _save(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "state.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return folder


def _resume(data, folder: Path):
    return sparsecross.train(data, SPEC, checkpoint=folder, checkpoint_every=EVERY, **ARGS)


def _refused(data, folder: Path, match: str = "") -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        _resume(data, folder)
    msg = str(info.value)
    assert str(folder / "state.npz") in msg and "\n" not in msg
    assert match in msg
    return info.value


# =========================================================================================
# a genuine checkpoint resumes to the uninterrupted model
# =========================================================================================
def test_genuine_checkpoint_resumes_to_same_model(data, genuine, uninterrupted, tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "state.npz").write_bytes(genuine)
    model = _resume(data, folder)
    assert _same_model(model, uninterrupted)
    assert model.stats == uninterrupted.stats
    assert model.run["rows_processed"] == 2 * ROWS - 300


# =========================================================================================
# fingerprint
# =========================================================================================
def test_fingerprint_covers_resolved_path_size_mtime_footer(data, tmp_path, monkeypatch):
    from sparsecross.checkpoint import source_fingerprint

    raw = data.read_bytes()
    (path, size, mtime, digest), = source_fingerprint(data)
    assert path == str(data.resolve()) and size == len(raw) == data.stat().st_size
    assert mtime == data.stat().st_mtime_ns
    footer_len = int.from_bytes(raw[-8:-4], "little")
    import hashlib

    assert digest == hashlib.sha256(raw[-8 - footer_len:-8]).hexdigest()
    monkeypatch.chdir(data.parent)
    assert source_fingerprint("./data.parquet") == source_fingerprint(data.name) == source_fingerprint(data)


def test_same_size_rewrite_is_another_run(tmp_path, monkeypatch):
    """The data file is rewritten in place with other values, the same size and (set back)
    the same mtime: only the footer hash tells the runs apart."""
    path = _write(_table(0), tmp_path / "d.parquet")
    ck = tmp_path / "ck"
    _crash_after(monkeypatch, 3, lambda: sparsecross.train(path, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS))
    before = path.read_bytes()
    st0 = path.stat()
    _write(_table(7, flip=True), path)  # other x values, labels flipped, same layout
    after = path.read_bytes()
    assert len(after) == len(before) == path.stat().st_size
    assert after != before
    os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert path.stat().st_mtime_ns == st0.st_mtime_ns
    ck_bytes = (ck / "state.npz").read_bytes()
    with pytest.raises(CheckpointError, match="belongs to another run .its data differs"):
        sparsecross.train(path, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS)
    assert (ck / "state.npz").read_bytes() == ck_bytes
    # ... and the same file put back resumes
    path.write_bytes(before)
    os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    model = sparsecross.train(path, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS)
    assert _same_model(model, sparsecross.train(path, SPEC, **ARGS))


def test_touched_file_is_another_run(data, genuine, tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(data.read_bytes())
    ck = tmp_path / "ck"
    sparsecross.train(path, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS)
    st0 = path.stat()
    os.utime(path, ns=(st0.st_atime_ns, st0.st_mtime_ns + 1_000_000_000))
    with pytest.raises(CheckpointError, match="another run"):
        sparsecross.train(path, SPEC, checkpoint=ck, checkpoint_every=EVERY, **ARGS)


def test_relative_and_absolute_paths_are_the_same_run(tmp_path, monkeypatch):
    path = _write(_table(0), tmp_path / "x.parquet")
    ck = tmp_path / "ck"
    _crash_after(monkeypatch, 3, lambda: sparsecross.train(path.resolve(), SPEC, checkpoint=ck,
                                                           checkpoint_every=EVERY, **ARGS))
    monkeypatch.chdir(tmp_path)
    model = sparsecross.train("./x.parquet", SPEC, checkpoint="ck", checkpoint_every=EVERY, **ARGS)
    assert model.run["rows_processed"] == 2 * ROWS - 300  # it resumed
    assert _same_model(model, sparsecross.train(path, SPEC, **ARGS))


@pytest.mark.parametrize("tail", [b"", b"PAR1", b"\x00\x00\x00\x00PAR1", b"\xff\xff\xff\x7fPAR1",
                                  b"\x10\x00\x00\x00PAR2"])
def test_absurd_parquet_footer_is_a_clean_error(tmp_path, tail):
    from sparsecross.checkpoint import parquet_footer_sha256

    p = tmp_path / "bad.parquet"
    p.write_bytes(b"PAR1" + b"\x00" * 20 + tail)
    with pytest.raises(sparsecross.DataError, match="bad.parquet"):
        parquet_footer_sha256(p, p.stat().st_size)


# =========================================================================================
# the table: a full table hangs the kernel
# =========================================================================================
_HANG_SCRIPT = textwrap.dedent("""
    import json, sys
    import sparsecross
    spec = sparsecross.parse_spec(json.loads(sys.argv[1]))
    try:
        sparsecross.train(sys.argv[2], spec, checkpoint=sys.argv[3], checkpoint_every=100, **json.loads(sys.argv[4]))
        print("RESUMED")
    except sparsecross.CheckpointError as exc:
        print("CHECKPOINT_ERROR", exc)
""")


def _full_table(arrays, count: int) -> dict[str, np.ndarray]:
    t = arrays["table"].copy()
    t[:, 0] = np.arange(len(t), dtype=t.dtype)  # every slot holds a key: no empty slot
    return {**arrays, "table": t, "count": np.array([count], dtype=np.int64)}


def test_full_table_with_count_zero_is_refused_not_a_hang(data, genuine, tmp_path):
    """A table with no empty slot and count 0: the kernel would probe forever for a new key.
    Run in a subprocess with a timeout so a regression cannot hang the suite."""
    folder = _save(tmp_path / "ck", _full_table(_arrays(genuine), 0))
    env = {**os.environ, "PYTHONPATH": str(Path(sparsecross.__file__).resolve().parents[1])}
    try:
        out = subprocess.run([sys.executable, "-c", _HANG_SCRIPT, json.dumps(SPEC_DICT), str(data), str(folder),
                              json.dumps(ARGS)], capture_output=True, text=True, timeout=90, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("resuming from a full table hung")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CHECKPOINT_ERROR"), out.stdout
    assert "count 0 differs" in out.stdout and str(folder / "state.npz") in out.stdout


def test_full_table_with_true_count_is_refused(data, genuine, tmp_path):
    arrays = _full_table(_arrays(genuine), 0)
    arrays["count"][0] = len(arrays["table"])
    _refused(data, _save(tmp_path / "ck", arrays), "more than")


# =========================================================================================
# arrays: shapes, dtypes, values
# =========================================================================================
def _float_view(t):
    return t.view(np.float32 if t.dtype == np.uint32 else np.float64)


def _occupied(t):
    return np.flatnonzero(t[:, 0] != np.iinfo(t.dtype).max)


@pytest.mark.parametrize("name,value,match", [
    ("bias", np.zeros(1), "'bias' has shape"),
    ("count", np.zeros(0, dtype=np.int64), "'count' has shape"),
    ("count", np.array([5, 5], dtype=np.int64), "'count' has shape"),
    ("n_columns", np.zeros(0, dtype=np.int64), "'n_columns' has shape"),
    ("count", None, "'count' has dtype"),  # int32 count
    ("bias", np.zeros(2, dtype=np.float32), "'bias' has dtype"),
    ("table", None, "uint64 words"),  # a uint64 table for a float32 state
    ("table", np.zeros((1024, 2), dtype=np.uint32), "shape"),
    ("table", np.full((1000, 3), np.iinfo(np.uint32).max, dtype=np.uint32), "power of two"),
    ("dtype", np.frombuffer(b"float64", dtype=np.uint8), "float64"),
    ("dtype", np.frombuffer(b"float16", dtype=np.uint8), "float16"),
    ("n_columns", np.array([17], dtype=np.int64), "17 columns"),
])
def test_bad_arrays_are_refused(data, genuine, tmp_path, name, value, match):
    arrays = _arrays(genuine)
    if name == "count" and value is None:
        value = arrays["count"].astype(np.int32)
    if name == "table" and value is None:
        t = arrays["table"]
        value = np.empty(t.shape, dtype=np.uint64)
        value[:, 0] = np.where(t[:, 0] == np.iinfo(np.uint32).max, np.iinfo(np.uint64).max, t[:, 0])
        value.view(np.float64)[:, 1:] = t.view(np.float32)[:, 1:]
    arrays[name] = value
    _refused(data, _save(tmp_path / "ck", arrays), match)


@pytest.mark.parametrize("col,value,match", [(1, np.nan, "not finite"), (1, np.inf, "not finite"),
                                             (2, np.nan, "not finite"), (2, -1.0, "negative")])
def test_bad_z_or_n_is_refused(data, genuine, tmp_path, col, value, match):
    arrays = _arrays(genuine)
    t = arrays["table"]
    _float_view(t)[_occupied(t)[3], col] = value
    _refused(data, _save(tmp_path / "ck", arrays), match)


@pytest.mark.parametrize("i,value", [(0, np.nan), (1, -1.0), (1, np.inf)])
def test_bad_bias_is_refused(data, genuine, tmp_path, i, value):
    arrays = _arrays(genuine)
    arrays["bias"][i] = value
    _refused(data, _save(tmp_path / "ck", arrays), "bias")


def test_key_outside_the_column_space_is_refused(data, genuine, tmp_path):
    arrays = _arrays(genuine)
    t = arrays["table"]
    t[_occupied(t)[0], 0] = SPEC.n_columns  # one past the last column
    _refused(data, _save(tmp_path / "ck", arrays), "outside the")


def test_duplicated_key_is_refused(data, genuine, tmp_path):
    arrays = _arrays(genuine)
    t = arrays["table"]
    occ = _occupied(t)
    # a copy of an existing key, in the slot right after it (if free) keeps it reachable
    s = next(s for s in occ if t[(s + 1) % len(t), 0] == np.iinfo(t.dtype).max)
    t[(s + 1) % len(t)] = t[s]
    arrays["count"][0] += 1
    _refused(data, _save(tmp_path / "ck", arrays), "two slots")


def test_unreachable_key_is_refused(data, genuine, tmp_path):
    """A key moved to a slot that linear probing from its home slot cannot reach (an empty
    slot lies between): a lookup would insert it a second time."""
    arrays = _arrays(genuine)
    t = arrays["table"]
    empty = np.iinfo(t.dtype).max
    cap = len(t)
    for s in _occupied(t):
        home = int(fmix64(np.uint64(t[s, 0]))) & (cap - 1)
        if home == s and t[(s + 1) % cap, 0] == empty and t[(s + 2) % cap, 0] == empty:
            t[(s + 2) % cap] = t[s]
            t[s, 0] = empty
            break
    else:  # pragma: no cover - the genuine table is sparse
        pytest.skip("no movable key")
    _refused(data, _save(tmp_path / "ck", arrays), "cannot find it")


# =========================================================================================
# meta
# =========================================================================================
@pytest.mark.parametrize("change,match", [
    ({"epoch": -1}, "epoch -1"),
    ({"epoch": 3}, "epoch 3"),
    ({"epoch": 0.5}, "epoch 0.5"),
    ({"epoch": True}, "epoch True"),
    ({"row": ROWS + 1}, "row 401"),
    ({"row": -1}, "row -1"),
    ({"row": "300"}, "row '300'"),
    ({"row": None}, "row None"),
    ({"acc": [1.0, 2.0]}, "acc"),
    ({"acc": [1.0, 2.0, 3.0, 4.0]}, "acc"),
    ({"acc": [1.0, -2.0, 3.0]}, "acc"),
    ({"acc": [1.0, 2.0, 2.5]}, "acc"),
    ({"acc": [float("nan"), 2.0, 3.0]}, "acc"),
    ({"acc": "abc"}, "acc"),
    ({"history": "abc"}, "history"),
    ({"history": [{"epoch": 1}]}, "history"),  # a record for an epoch not finished
    ({"epoch": 1, "history": ["x"]}, "history record 0"),
    ({"epoch": 1, "history": [{"epoch": 2}]}, "history record 0"),
    ({"round": -3}, "round -3"),
])
def test_bad_meta_is_refused(data, genuine, tmp_path, change, match):
    _refused(data, _save(tmp_path / "ck", _with_meta(_arrays(genuine), **change)), match)


def test_missing_row_is_refused(data, genuine, tmp_path):
    arrays = _arrays(genuine)
    meta = _meta(arrays)
    del meta["row"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    _refused(data, _save(tmp_path / "ck", arrays), "no 'row'")


@pytest.mark.parametrize("payload", [b"[1, 2]", b"\xff\xfe", b"{", b"[" * 100_000 + b"]" * 100_000],
                         ids=["list", "not-utf8", "cut", "deep"])
def test_meta_not_a_json_object_is_refused(data, genuine, tmp_path, payload):
    arrays = {**_arrays(genuine), "meta": np.frombuffer(payload, dtype=np.uint8)}
    _refused(data, _save(tmp_path / "ck", arrays), "meta")


# =========================================================================================
# the archive: truncated, garbage, missing members, pickles, zip bombs
# =========================================================================================
def _put(folder: Path, raw: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.npz").write_bytes(raw)
    return folder


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(data, genuine, tmp_path, keep):
    _refused(data, _put(tmp_path / "ck", genuine[:int(len(genuine) * keep)]))


@pytest.mark.parametrize("raw", [b"garbage", b"PK\x03\x04" + b"\x00" * 100, b"PK\x05\x06" + b"\x00" * 18,
                                 bytes(range(256)) * 10], ids=["text", "local-header", "empty-zip", "bytes"])
def test_garbage_bytes_are_refused(data, tmp_path, raw):
    _refused(data, _put(tmp_path / "ck", raw))


def test_flipped_byte_is_refused(data, genuine, tmp_path):
    raw = bytearray(genuine)
    raw[len(raw) // 2] ^= 0x40  # inside the table's data: the member's CRC no longer matches
    _refused(data, _put(tmp_path / "ck", bytes(raw)))


@pytest.mark.parametrize("name", ["table", "count", "bias", "meta", "n_columns", "dtype"])
def test_missing_member_is_refused(data, genuine, tmp_path, name):
    arrays = _arrays(genuine)
    del arrays[name]
    _refused(data, _save(tmp_path / "ck", arrays), f"{name}.npy")


def test_pickle_member_is_refused(data, genuine, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in _arrays(genuine).items():
            with zf.open(f"{name}.npy", "w") as fh:
                if name == "bias":
                    np.save(fh, np.array([0.0, {"x": 1}], dtype=object), allow_pickle=True)
                else:
                    np.save(fh, arr)
    _refused(data, _put(tmp_path / "ck", buf.getvalue()), "pickle")


#: ``.npy`` headers NumPy cannot parse, each failing inside NumPy with another exception type.
_BAD_HEADERS = {
    # a newline inside a string that is never closed: tokenize.TokenError
    "newline-in-string": b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': '''\n",
    "unclosed-bracket": b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,) \n",  # TokenError
    "unmatched-paren": b"{'descr': '<)8,', 'fortran_order': False, 'shape': (2,), }",  # SyntaxError
    "empty-descr": b"{'descr': (), 'fortran_order': False, 'shape': (2,), }",  # IndexError
    "bytes-key": b"{'descr': '<f8', 'fortranord9r': False,B'shape': (2,), }",  # TypeError
    "python2-long": b"{'descr': '<f8', 'fortran_order': False, 'shape': (2L,), }",  # a UserWarning
    "not-a-dict": b"[1, 2]",  # ValueError
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("what", list(_BAD_HEADERS))
def test_unparsable_member_header_is_refused(data, genuine, tmp_path, what, version):
    """A member's ``.npy`` header that NumPy cannot parse: a CheckpointError naming the member
    (NumPy's tokenizer raised TokenError or SyntaxError through ``read_checkpoint``, which the
    CLI reported as a bug; its dtype parser IndexError or TypeError; a Python 2 header warned)."""
    from tests.hostile import assert_short, npy_header, npz_with_member

    raw = npz_with_member(_arrays(genuine), "bias", npy_header(_BAD_HEADERS[what], version) + bytes(16))
    folder = _put(tmp_path / "ck", raw)
    assert_short(str(_refused(data, folder, "member 'bias'")))


def _damaged(genuine: bytes) -> dict[str, bytes]:
    """Damaged ``state.npz`` files, by what is wrong with them."""
    from tests.hostile import npy_header, npz_with_member

    flipped = bytearray(genuine)
    flipped[len(flipped) // 2] ^= 0x40
    out = {"garbage": b"garbage", "empty": b"", "zip-magic": b"PK\x03\x04" + b"\x00" * 100, "truncated": genuine[: len(genuine) // 2], "flipped": bytes(flipped)}
    for what, header in _BAD_HEADERS.items():
        out[what] = npz_with_member(_arrays(genuine), "bias", npy_header(header) + bytes(16))
    return out


def test_ftrl_state_load_refuses_a_damaged_file(genuine, tmp_path):
    """``FTRLState.load`` of a file that is not a zip, is truncated or flipped, or holds a header
    NumPy cannot parse: a short CheckpointError (it raised zipfile.BadZipFile, tokenize.TokenError,
    SyntaxError...), and the genuine file still loads."""
    from tests.hostile import assert_short

    for what, raw in _damaged(genuine).items():
        path = tmp_path / what / "state.npz"
        path.parent.mkdir()
        path.write_bytes(raw)
        with pytest.raises(CheckpointError) as info:
            FTRLState.load(path)
        assert_short(str(info.value))
        assert str(path) in str(info.value), what
    path = _put(tmp_path / "ck", genuine) / "state.npz"
    state, meta = FTRLState.load(path)
    assert meta == _meta(_arrays(genuine)) and state.table.tobytes() == _arrays(genuine)["table"].tobytes()


def test_a_damaged_saved_state_is_refused_as_one_not_as_a_checkpoint(data, genuine, tmp_path):
    """``FTRLState.load`` of a damaged standalone file names it as a saved state that is not
    valid, without a checkpoint's advice (it said "checkpoint ... delete the folder ... to start
    over" of a file given alone); a damaged checkpoint keeps its wording."""
    arrays = _arrays(genuine)
    cases = {**_damaged(genuine), "capacity": {**arrays, "table": arrays["table"][:3]}}  # not a power of two
    for what, raw in cases.items():
        path = tmp_path / f"saved-{what}.npz"
        if isinstance(raw, dict):
            np.savez(path, **raw)
        else:
            path.write_bytes(raw)
        with pytest.raises(CheckpointError) as info:
            FTRLState.load(path)
        msg = str(info.value)
        assert f"/saved-{what}.npz' is not a valid saved state" in msg, msg
        assert not msg.startswith("checkpoint") and "delete" not in msg and "start over" not in msg, msg
    msg = str(_refused(data, _put(tmp_path / "ck", b"garbage")))
    assert msg.startswith("checkpoint ") and "delete the folder" in msg and msg.endswith("to start over"), msg


def _zipped(arrays: dict[str, np.ndarray], extra: dict[str, bytes], compression: int = zipfile.ZIP_STORED
            ) -> bytes:
    """``arrays`` as ``np.savez`` writes them (stored, unless ``compression``), then the raw
    members ``extra``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.save(fh, arr)
        for name, raw in extra.items():
            zf.writestr(name, raw)
    return buf.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _reader_refusals(genuine: bytes) -> dict[str, tuple[bytes, str]]:
    """A damaged file for every refusal ``read_checkpoint`` words (its own and
    ``_read_member``'s): what is wrong -> (bytes, a fragment of the refusal)."""
    from tests.hostile import npy_header, npz_with_member

    a = _arrays(genuine)
    with pytest.warns(UserWarning, match="Duplicate name"):
        twice = _zipped(a, {"bias.npy": b"x"})
    lying = io.BytesIO()
    np.lib.format.write_array_header_1_0(lying, {"descr": "<f8", "fortran_order": False, "shape": (2,)})
    return {
        "members": (_zipped(a, {f"x{i}": b"" for i in range(64)}), "members"),
        "twice": (twice, "twice"),
        "missing": (_npz({k: v for k, v in a.items() if k != "count"}), "count.npy missing"),
        "compressed": (_zipped(a, {}, zipfile.ZIP_DEFLATED), "compressed"),
        "claim": (_claiming_a_gib(genuine), "claim"),
        "zip": (b"garbage", "zip archive"),
        "header": (npz_with_member(a, "bias", npy_header(_BAD_HEADERS["not-a-dict"]) + bytes(16)), "not an array"),
        "pickle": (npz_with_member(a, "bias", _npy(np.array([0.0, {"x": 1}], dtype=object))), "pickle"),
        "dtype": (_npz({**a, "bias": a["bias"].astype(np.float32)}), "has dtype <f4"),
        "ndim": (_npz({**a, "table": a["table"].ravel()}), "dimension"),
        "shape": (_npz({**a, "bias": np.zeros(3)}), "expected (2,)"),
        "size": (npz_with_member(a, "bias", lying.getvalue() + bytes(24)), "header says"),
        "meta-json": (_npz({**a, "meta": np.frombuffer(b"{", dtype=np.uint8)}), "meta is not JSON"),
        "meta-object": (_npz({**a, "meta": np.frombuffer(b"[1, 2]", dtype=np.uint8)}), "not a JSON object"),
        "state-dtype": (_npz({**a, "dtype": np.frombuffer(b"float16", dtype=np.uint8)}), "state dtype"),
        "16-bit": (_npz({**a, "state_bits": np.array([16])}), "lacks zbig"),
        "bits": (_npz({**a, "state_bits": np.array([8])}), "state_bits 8"),
        "width": (_npz({**a, "table": np.zeros((4, 4), dtype=a["table"].dtype)}), "(capacity, 3)"),
        "evicted": (_npz({**a, "evicted": np.array([3, 5])}), "evicted counts"),
    }


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


_REFUSALS = ["members", "twice", "missing", "compressed", "claim", "zip", "header", "pickle", "dtype", "ndim",
             "shape", "size", "meta-json", "meta-object", "state-dtype", "16-bit", "bits", "width", "evicted"]


@pytest.mark.parametrize("what", _REFUSALS)
def test_no_refusal_of_a_saved_state_speaks_of_checkpoints(data, genuine, tmp_path, what):
    """Every refusal the reader words, of a saved state given to ``FTRLState.load``: no word of
    checkpoints (a compressed member was refused "(checkpoints are stored)"); the same file as
    a checkpoint keeps a checkpoint's refusal, with the same detail."""
    from sparsecross.errors import shown_path

    cases = _reader_refusals(genuine)
    assert sorted(cases) == sorted(_REFUSALS)
    raw, fragment = cases[what]
    path = tmp_path / "saved.npz"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as info:
        FTRLState.load(path)
    msg = str(info.value)
    assert fragment in msg and msg.startswith(f"{shown_path(path)} is not a valid saved state"), msg
    assert "checkpoint" not in msg.replace(shown_path(path), "").lower(), msg
    msg = str(_refused(data, _put(tmp_path / "ck", raw), fragment))
    assert msg.startswith("checkpoint ") and msg.endswith("to start over"), msg


def test_member_header_lying_about_its_size_is_refused(data, genuine, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in _arrays(genuine).items():
            with zf.open(f"{name}.npy", "w") as fh:
                if name == "table":  # a header for 2**40 slots over the real data
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": "<u4", "fortran_order": False, "shape": (1 << 40, 3)})
                    fh.write(arr.tobytes())
                else:
                    np.save(fh, arr)
    _refused(data, _put(tmp_path / "ck", buf.getvalue()), "header says")


def test_zip_bomb_is_refused_without_inflating(data, genuine, tmp_path):
    """A small archive whose deflated table member inflates to 256 MiB of zeros."""
    slots = (256 << 20) // 12
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in _arrays(genuine).items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                if name == "table":
                    np.lib.format.write_array_header_1_0(
                        fh, {"descr": "<u4", "fortran_order": False, "shape": (slots, 3)})
                    block = bytes(12 << 20)
                    for _ in range(slots * 12 // len(block)):
                        fh.write(block)
                    fh.write(bytes(slots * 12 % len(block)))
                else:
                    np.save(fh, arr)
    raw = buf.getvalue()
    assert len(raw) < 2 << 20
    folder = _put(tmp_path / "ck", raw)
    tracemalloc.start()
    try:
        _refused(data, folder, "compressed")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_stored_members_claiming_more_than_the_file_are_refused(data, genuine, tmp_path):
    """The central directory claims a 1 GiB stored table member in a file of a few KiB."""
    raw = _claiming_a_gib(genuine)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.getinfo("table.npy").file_size == 1 << 30
    _refused(data, _put(tmp_path / "ck", raw), "claim")


def _claiming_a_gib(genuine: bytes) -> bytes:
    """``genuine`` whose central directory claims a 1 GiB stored table member."""
    raw = bytearray(genuine)
    pos = raw.find(b"PK\x01\x02")
    patched = False
    while pos >= 0:
        name_len = int.from_bytes(raw[pos + 28:pos + 30], "little")
        if raw[pos + 46:pos + 46 + name_len] == b"table.npy":
            extra_len = int.from_bytes(raw[pos + 30:pos + 32], "little")
            extra = pos + 46 + name_len
            if raw[pos + 20:pos + 28] == b"\xff" * 8:  # zip64: sizes in the extra field
                assert raw[extra:extra + 2] == b"\x01\x00" and extra_len >= 20
                raw[extra + 4:extra + 20] = (1 << 30).to_bytes(8, "little") * 2
            else:
                raw[pos + 20:pos + 28] = (1 << 30).to_bytes(4, "little") * 2
            patched = True
        pos = raw.find(b"PK\x01\x02", pos + 4)
    assert patched
    return bytes(raw)


def test_checkpoint_folder_holding_a_directory_is_refused(data, tmp_path):
    folder = tmp_path / "ck"
    (folder / "state.npz").mkdir(parents=True)
    _refused(data, folder)


# =========================================================================================
# hostile names: a checkpoint's path and what it holds are named short and escaped
# =========================================================================================
def _hostile_checkpoints(genuine: bytes) -> dict[str, bytes]:
    """Damaged checkpoints whose refusals echo a value read from the file."""
    from tests.hostile import hostile_name

    huge = hostile_name()
    arrays = _arrays(genuine)
    out = {"garbage": b"garbage", "truncated": genuine[: len(genuine) // 2], "other-run": b""}
    for key in ("epoch", "row", "skipped", "state_bytes_peak", "best_epoch"):
        buf = io.BytesIO()
        np.savez(buf, **_with_meta(arrays, **{key: huge}))
        out[key] = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # a member named by the file, compressed
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.save(fh, arr)
        zf.writestr(huge, b"x" * 100, compress_type=zipfile.ZIP_DEFLATED)
    out["member"] = buf.getvalue()
    header = b"{'descr': '" + huge.replace("\n", "").encode() + b"', 'fortran_order': False, 'shape': (3,), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # NumPy quotes a header it cannot parse whole (20 KB here)
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                if name == "bias":
                    fh.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
                else:
                    np.save(fh, arr)
    out["header"] = buf.getvalue()
    buf = io.BytesIO()
    np.savez(buf, **_with_meta(arrays, spec_sha256="0" * 64))
    out["other-run"] = buf.getvalue()
    return out


def test_hostile_checkpoint_is_named_short(data, genuine, tmp_path):
    """A damaged checkpoint in a ~3,500-character folder of control characters, or holding 5,000
    of them in its meta or a member's name: a short CheckpointError (the path was echoed twice
    whole, 7 KB; the meta's values and the member's name whole)."""
    from tests.hostile import assert_short, hostile_folder

    folder = hostile_folder(tmp_path)
    for what, raw in _hostile_checkpoints(genuine).items():
        ck = _put(folder / what, raw)
        with pytest.raises(CheckpointError) as info:
            _resume(data, ck)
        assert_short(str(info.value))
        if what == "header":
            with pytest.raises(CheckpointError) as info:
                FTRLState.load(ck / "state.npz")
            assert_short(str(info.value))
    (folder / "dir" / "state.npz").mkdir(parents=True)  # the system's message names the path too
    with pytest.raises(CheckpointError) as info:
        _resume(data, folder / "dir")
    assert_short(str(info.value))


def test_a_hostile_data_path_is_named_short_in_its_fingerprint(tmp_path):
    from sparsecross.checkpoint import parquet_footer_sha256, source_fingerprint
    from tests.hostile import assert_short, hostile_folder

    p = hostile_folder(tmp_path) / "bad.parquet"
    for tail in (b"", b"PAR1", b"\xff\xff\xff\x7fPAR1"):
        p.write_bytes(b"PAR1" + b"\x00" * 20 + tail)
        with pytest.raises(sparsecross.DataError) as info:
            parquet_footer_sha256(p, p.stat().st_size)
        assert_short(str(info.value))
        with pytest.raises(sparsecross.DataError) as info:
            source_fingerprint(p)
        assert_short(str(info.value))


# =========================================================================================
# fuzz: any checkpoint content gives a clean CheckpointError or a sound resume
# =========================================================================================
_MEMBERS = ["table", "count", "bias", "meta", "n_columns", "dtype"]
_DTYPES = ["<u4", "<u8", "<i8", "<i4", "<f8", "<f4", "|u1", ">u4", ">f8"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=3), c, max_size=3),
    max_leaves=8,
)
_shape = st.one_of(
    st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple),
    st.sampled_from([1, 2, 4, 1000, 1024, 2048]).map(lambda cap: (cap, 3)),
)
_special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e30, -1e30, 3e38, float("nan"), float("inf"), -float("inf")])
_mutation = st.one_of(
    st.tuples(st.just("replace"), st.sampled_from(_MEMBERS), st.sampled_from(_DTYPES), _shape,
              st.integers(0, 2**32 - 1), st.booleans()),
    st.tuples(st.just("drop"), st.sampled_from(_MEMBERS)),
    st.tuples(st.just("key"), st.integers(0, 2**31), st.sampled_from(["in", "edge", "out", "empty", "dup"]),
              st.integers(0, 2**31)),
    st.tuples(st.just("zn"), st.integers(0, 2**31), st.sampled_from([1, 2]), _special),
    st.tuples(st.just("count"), st.integers(-5, 3000)),
    st.tuples(st.just("bias"), st.sampled_from([0, 1]), _special),
    st.tuples(st.just("meta"), st.sampled_from(["epoch", "row", "acc", "history", "round", "spec_sha256", "zz"]),
              _json),
    st.tuples(st.just("meta_small"), st.sampled_from(["epoch", "row"]), st.integers(-2, ROWS + 2)),
    st.tuples(st.just("meta_del"), st.sampled_from(["epoch", "row", "acc", "history"])),
    st.tuples(st.just("byte"), st.integers(0, 2**31), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 2**31)),
)


def _apply(arrays: dict[str, np.ndarray], mutations) -> tuple[dict[str, np.ndarray], list]:
    """Apply the array-level mutations; return the arrays and the byte-level ones."""
    raw_ops = []
    for m in mutations:
        kind = m[0]
        t = arrays.get("table")
        is_table = t is not None and t.ndim == 2 and t.shape[1] == 3 and t.dtype in (np.uint32, np.uint64) \
            and len(t) > 0
        if kind == "replace":
            _, name, dt, shape, seed, zeros = m
            dtype = np.dtype(dt)
            n = math.prod(shape) * dtype.itemsize
            rng = np.random.default_rng(seed)
            raw = bytes(n) if zeros else rng.bytes(n)
            arrays[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        elif kind == "drop":
            arrays.pop(m[1], None)
        elif kind == "key" and is_table:
            _, pos, how, val = m
            s = pos % len(t)
            empty = np.iinfo(t.dtype).max
            occ = np.flatnonzero(t[:, 0] != empty)
            if how == "in":
                t[s, 0] = val % SPEC.n_columns
            elif how == "edge":
                t[s, 0] = SPEC.n_columns - 1 + (val % 3)
            elif how == "out":
                t[s, 0] = min(SPEC.n_columns + val, int(empty) - 1)
            elif how == "empty":
                t[s, 0] = empty
            elif len(occ):
                t[s, 0] = t[occ[val % len(occ)], 0]
        elif kind == "zn" and is_table:
            _, pos, col, val = m
            with np.errstate(over="ignore"):
                _float_view(t)[pos % len(t), col] = val
        elif kind == "count" and arrays.get("count") is not None and arrays["count"].size:
            arrays["count"] = arrays["count"].copy()
            arrays["count"].reshape(-1)[0] = m[1]
        elif kind == "bias" and arrays.get("bias") is not None and arrays["bias"].size > m[1]:
            arrays["bias"] = arrays["bias"].astype(np.float64, copy=True).reshape(-1)
            arrays["bias"][m[1]] = m[2]
        elif kind in ("meta", "meta_small", "meta_del") and "meta" in arrays:
            try:
                meta = json.loads(arrays["meta"].tobytes().decode())
            except (ValueError, UnicodeDecodeError):
                continue
            if not isinstance(meta, dict):
                continue
            if kind == "meta_del":
                meta.pop(m[1], None)
            else:
                meta[m[1]] = m[2]
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        elif kind in ("byte", "truncate"):
            raw_ops.append(m)
    return arrays, raw_ops


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(_mutation, max_size=3))
def test_fuzz_checkpoint_contents(data, genuine, uninterrupted, mutations):
    original = _arrays(genuine)
    arrays, raw_ops = _apply(_arrays(genuine), mutations)
    unchanged = not raw_ops and arrays.keys() == original.keys() and all(
        arrays[k].dtype == original[k].dtype and arrays[k].shape == original[k].shape
        and arrays[k].tobytes() == original[k].tobytes() for k in arrays)
    with tempfile.TemporaryDirectory() as d:
        folder = _save(Path(d) / "ck", arrays)
        if raw_ops:
            raw = bytearray((folder / "state.npz").read_bytes())
            for op in raw_ops:
                if op[0] == "byte" and raw:
                    raw[op[1] % len(raw)] ^= op[2]
                elif op[0] == "truncate":
                    raw = raw[:op[1] % (len(raw) + 1)]
            (folder / "state.npz").write_bytes(bytes(raw))
        try:
            model = _resume(data, folder)
        except CheckpointError as exc:
            msg = str(exc)
            assert str(folder / "state.npz") in msg and "\n" not in msg
            assert not unchanged
            event("refused: " + msg.split(": ", 1)[-1].split(" (")[0].split(";")[0][:40])
            return
    event("resumed " + ("unchanged" if unchanged else "mutated"))
    # accepted: a sound model (sorted unique keys inside the column space) ...
    assert np.all(np.diff(model.keys.astype(np.int64)) > 0) if len(model.keys) > 1 else True
    assert len(model.keys) == 0 or int(model.keys[-1]) < SPEC.n_columns
    # ... and exactly the uninterrupted one when nothing was changed
    if unchanged:
        assert _same_model(model, uninterrupted)
        assert model.stats == uninterrupted.stats


# =========================================================================================
# the data-parallel (distributed) checkpoint shape passes the same validation
# =========================================================================================
@pytest.mark.parametrize("n_keys", [0, 1, 700, 3000])
def test_data_parallel_snapshot_state_and_meta_validate(tmp_path, n_keys):
    """``distributed._set_state`` rebuilds the table from shard dumps and saves meta with a
    ``round`` instead of a ``row``: such a checkpoint passes, and a bad round does not."""
    from sparsecross.checkpoint import read_checkpoint, validate_checkpoint
    from sparsecross.distributed import _set_state

    rng = np.random.default_rng(n_keys)
    keys = rng.choice(SPEC.n_columns, size=n_keys, replace=False).astype(np.uint64)
    zn = rng.normal(size=(n_keys, 2)).astype(np.float32)
    zn[:, 1] = np.abs(zn[:, 1])
    state = FTRLState(SPEC.n_columns, "float32")
    _set_state(state, keys, zn, np.array([0.5, 2.0]))
    meta = {"epoch": 1, "round": 3, "acc": [12.5, 30.0, 30.0], "history": [{"epoch": 1, "rounds": 7}]}
    state.save(tmp_path / "state.npz", meta)
    st_, meta_ = read_checkpoint(tmp_path / "state.npz")
    kw = dict(n_columns=SPEC.n_columns, state_dtype="float32", epochs=2, rows_total=ROWS)
    validate_checkpoint(tmp_path / "state.npz", st_, meta_, position="round", **kw)
    assert st_.as_dict() == state.as_dict()
    with pytest.raises(CheckpointError, match="no 'row'"):
        validate_checkpoint(tmp_path / "state.npz", st_, meta_, position="row", **kw)
    with pytest.raises(CheckpointError, match="round 401"):
        validate_checkpoint(tmp_path / "state.npz", st_, {**meta_, "round": ROWS + 1}, position="round", **kw)
