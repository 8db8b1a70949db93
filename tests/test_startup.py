"""A small start: commands import only what they use (issue 14, item 4).

No timings here (the suite runs on busy machines): the tests check *which* modules a command
loads, in a fresh interpreter, and that the lazy package still exposes the same objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparsecross as sx
from sparsecross import hashing
from sparsecross._kernels import leb128

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"

#: Never needed to print help, nor to read a model file.
HEAVY = ("numba", "llvmlite", "scipy", "pyarrow", "dask", "distributed", "matplotlib", "tqdm")

_RUN = """
import json, runpy, sys
out, argv = sys.argv[1], sys.argv[2:]
sys.argv = ["sparsecross", *argv]
code = 0
try:
    runpy.run_module("sparsecross", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _modules_after(tmp_path: Path, *argv: str) -> set[str]:
    """The modules loaded by ``sparsecross ARGV`` in a fresh interpreter."""
    out = tmp_path / "modules.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _RUN, str(out), *argv], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert got["code"] in (0, None), (got["code"], proc.stderr)
    return set(got["modules"])


def _heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in names)


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    mods = _modules_after(tmp_path, "--help")
    assert _heavy(mods, HEAVY + ("numpy",)) == []
    # only the CLI's own light modules
    assert not {"sparsecross.read", "sparsecross.spec", "sparsecross.estimator"} & mods


def test_subcommand_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert _heavy(_modules_after(tmp_path, "train", "--help"), HEAVY + ("numpy",)) == []


def test_version_imports_nothing_heavy(tmp_path: Path) -> None:
    assert _heavy(_modules_after(tmp_path, "--version"), HEAVY + ("numpy",)) == []


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_inspect_imports_no_numba_scipy_pyarrow(tmp_path: Path, extra: list[str]) -> None:
    mods = _modules_after(tmp_path, "inspect", str(GOLDEN / "model_v1_float32.scx"), *extra)
    assert _heavy(mods) == []
    assert "sparsecross.inspect" in mods and "sparsecross.export" in mods
    assert not any(m.startswith("sparsecross._kernels.") and m != "sparsecross._kernels.leb128"
                   for m in mods), sorted(m for m in mods if m.startswith("sparsecross._kernels"))


def _train_modules(tmp_path: Path, spec: Path, data: Path) -> list[set[str]]:
    """The modules loaded by ``sparsecross train`` (names recorded, then not), after checking
    that it trained without importing pandas."""
    out = []
    for extra in ([], ["--names", "0", "-q"]):
        mods = _modules_after(tmp_path, "train", str(spec), str(data), "--out", str(tmp_path / "m.scx"), *extra)
        assert "sparsecross.epochs" in mods  # it trained
        assert _heavy(mods, ("pandas",)) == [], extra
        out.append(mods)
    return out


def test_train_from_parquet_imports_neither_pandas_nor_scipy_sparse(tmp_path: Path) -> None:
    """pyarrow's own numpy conversions import pandas (0.3 s of every process); training reads
    the Arrow buffers instead (sparsecross.arrow_numpy), names recorded or not; and its batches
    are plain CSR arrays (sparsecross.csr_rows), not scipy matrices."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "d.parquet"
    rng = np.random.default_rng(0)
    n = 500
    pq.write_table(pa.table({"lat": rng.uniform(-60, 60, n), "lon": rng.uniform(-170, 170, n),
                             "device": pa.array(rng.choice(["ios", "android", None], n)),
                             "age": pa.array([None if i % 7 == 0 else float(i % 80) for i in range(n)]),
                             "label": pa.array(rng.integers(0, 2, n), type=pa.int8())}), data)
    spec = tmp_path / "s.toml"
    spec.write_text('[label]\ncolumn = "label"\n[hashing]\nbits = 12\n'
                    '[[features]]\nname = "cell"\nkind = "geo"\nlat = "lat"\nlon = "lon"\n'
                    '[[features]]\nname = "device"\nkind = "categorical"\ncolumn = "device"\n'
                    '[[features]]\nname = "age"\nkind = "bucket"\ncolumn = "age"\nboundaries = [30.0, 50.0]\n'
                    '[[crosses]]\nfeatures = ["device", "age"]\n')
    for mods in _train_modules(tmp_path, spec, data):
        assert "scipy.sparse" not in mods  # the batches are CSRRows, not scipy matrices


def test_train_with_positive_labels_times_and_lists_imports_no_pandas(tmp_path: Path) -> None:
    """The other conversions of the training path: a label with ``positive`` values, time parts
    (of timestamps and of parsed strings), categorical lists and integer categoricals (their
    names recorded), from a table whose batches are slices at non-zero offsets."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "d.parquet"
    rng = np.random.default_rng(5)
    n = 600
    t0 = dt.datetime(2024, 1, 1)
    stamps = [None if i % 11 == 0 else t0 + dt.timedelta(hours=int(h)) for i, h in enumerate(rng.integers(0, 9000, n))]
    pq.write_table(pa.table({
        "y": pa.array([None if i % 13 == 0 else str(v) for i, v in enumerate(rng.choice(["yes", "no"], n))]),
        "ts": pa.array(stamps, type=pa.timestamp("s")),
        "day": pa.array([None if s is None else s.strftime("%Y-%m-%d") for s in stamps]),
        "tags": pa.array([None if i % 9 == 0 else [str(x) for x in rng.choice(list("abcde"), int(rng.integers(0, 4)))]
                          for i in range(n)]),
        "ints": pa.array([None if i % 6 == 0 else [int(x) for x in rng.integers(0, 50, int(rng.integers(0, 3)))]
                          for i in range(n)]),
        "shop": pa.array(rng.integers(0, 30, n), type=pa.int32())}), data, row_group_size=250)
    spec = tmp_path / "s.toml"
    spec.write_text('[label]\ncolumn = "y"\npositive = ["yes"]\nmissing = "skip"\n[hashing]\nbits = 12\n'
                    '[[features]]\nname = "hour"\nkind = "time"\ncolumn = "ts"\npart = "hour"\n'
                    '[[features]]\nname = "month"\nkind = "time"\ncolumn = "day"\npart = "month"\nformat = "%Y-%m-%d"\n'
                    '[[features]]\nname = "tags"\nkind = "categorical"\ncolumn = "tags"\n'
                    '[[features]]\nname = "ints"\nkind = "categorical"\ncolumn = "ints"\n'
                    '[[features]]\nname = "shop"\nkind = "categorical"\ncolumn = "shop"\n'
                    '[[crosses]]\nfeatures = ["tags", "hour"]\n')
    for mods in _train_modules(tmp_path, spec, data):
        assert "sparsecross.labels" in mods and "sparsecross.kinds.time" in mods


def test_import_sparsecross_is_light(tmp_path: Path) -> None:
    code = "import sys, sparsecross; print(sorted(sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    mods = set(eval(out.stdout))  # noqa: S307 - our own output
    assert _heavy(mods, HEAVY + ("numpy",)) == []
    assert [m for m in mods if m.startswith("sparsecross.")] == []


# ------------------------------------------------------------------ the lazy package
EAGER = {
    "errors": ["ArtifactError", "CheckpointError", "DataError", "DataQualityWarning", "EmptyModelWarning",
               "InputTypeError", "NotFittedError", "OutputError", "ParameterError", "SchemaError", "SparseCrossError",
               "SparseCrossWarning", "SpecError"],
    "estimator": ["FTRLClassifier"],
    "export": ["load_model", "save_model"],
    "featurize": ["Batch", "featurize", "iter_batches", "resolve_spec"],
    "generate": ["generate"],
    "model": ["SparseModel"],
    "predict": ["evaluate", "predict_file", "predict_proba"],
    "spec": ["FeatureSpec", "load_spec", "parse_spec"],
    "state": ["FTRLState"],
    "suggest": ["Suggestion", "suggest_spec"],
    "train": ["ProgressEvent", "TrainParams", "train"],
}


def test_every_public_name_resolves_to_the_eager_object() -> None:
    """In a fresh interpreter: each name of ``__all__`` first through the lazy package, then
    compared with the object its module defines."""
    code = f"""
import importlib, json, sparsecross as sx
lazy = {{name: getattr(sx, name) for name in sx.__all__}}
eager = {{name: getattr(importlib.import_module("sparsecross." + mod), name)
         for mod, names in {EAGER!r}.items() for name in names}}
bad = [name for name in eager if lazy[name] is not eager[name]]
print(json.dumps({{"bad": bad, "all": sorted(sx.__all__), "dir_ok": set(sx.__all__) <= set(dir(sx)),
                  "version": lazy["__version__"], "warmup": callable(lazy["warmup"])}}))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["bad"] == []
    assert got["all"] == sorted({n for names in EAGER.values() for n in names} | {"__version__", "warmup"})
    assert got["dir_ok"] and got["warmup"] and got["version"] == sx.__version__


def test_names_shared_with_a_submodule_stay_the_functions() -> None:
    import sparsecross.featurize
    import sparsecross.generate
    import sparsecross.train  # noqa: F401  (Python then sets the package attribute to the module)

    from sparsecross.train import train as train_fn

    assert callable(sx.train) and sx.train is train_fn
    assert sx.generate is sys.modules["sparsecross.generate"].generate
    assert sx.featurize is sys.modules["sparsecross.featurize"].featurize
    from sparsecross import featurize, generate, train

    assert (train, generate, featurize) == (sx.train, sx.generate, sx.featurize)


def test_names_shared_with_a_submodule_in_a_fresh_interpreter() -> None:
    """Importing the submodule first (as the CLI does) must not hide the function."""
    code = ("import sparsecross, sparsecross.train, sparsecross.generate; from sparsecross.train import train; "
            "assert sparsecross.train is train, sparsecross.train; "
            "assert callable(sparsecross.generate) and not isinstance(sparsecross.generate, type(sparsecross)); "
            "from sparsecross import FTRLClassifier, __version__; print('ok')")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sx.nope  # noqa: B018
    assert not hasattr(sx, "nope")


# ------------------------------------------------- Numba-free scalar hashing and decoding
def _golden_cases(kind: str) -> list[dict]:
    cases = json.loads((GOLDEN / "hash_vectors.json").read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["kind"] == kind]


def test_python_xxh64_and_fmix64_match_the_golden_vectors_and_the_kernels() -> None:
    from sparsecross._kernels import hash as K

    for c in _golden_cases("xxh64"):
        assert hashing.xxh64(bytes.fromhex(c["data_hex"]), c["seed"]) == c["hash"], c["id"]
    for c in _golden_cases("fmix64"):
        assert hashing.fmix64(c["x"]) == c["result"], c["id"]
    rng = np.random.default_rng(14)
    for n in [*range(0, 70), 127, 128, 1000]:
        data = rng.integers(0, 256, n, dtype=np.uint8)
        for seed in (0, 1, 2**64 - 1, int(rng.integers(0, 2**63))):
            assert hashing.xxh64(data.tobytes(), seed) == int(K.xxh64(data, 0, n, np.uint64(seed))), (n, seed)
    for x in rng.integers(0, 2**63, 200, dtype=np.uint64):
        assert hashing.fmix64(int(x) * 2 + 1) == int(K.fmix64(np.uint64(int(x) * 2 + 1)))


def test_numpy_fmix64_array_matches_the_golden_vectors_scalar_and_kernel() -> None:
    """The one NumPy fmix64 (row holdouts, shuffles, checkpoint home slots, generated data)."""
    from sparsecross._kernels import hash as K

    cases = _golden_cases("fmix64")
    got = hashing.fmix64_array(np.array([c["x"] for c in cases], dtype=np.uint64))
    assert got.dtype == np.uint64 and got.tolist() == [c["result"] for c in cases]
    rng = np.random.default_rng(15)
    xs = rng.integers(0, 2**64 - 1, 500, dtype=np.uint64, endpoint=True)
    before = xs.copy()
    got = hashing.fmix64_array(xs)
    assert np.array_equal(xs, before), "the input must not be modified"
    assert [int(h) for h in got] == [hashing.fmix64(int(x)) for x in xs]
    assert [int(h) for h in got[:50]] == [int(K.fmix64(x)) for x in xs[:50]]
    # int64 input is reinterpreted modulo 2**64, as a key's bits are
    signed = np.array([-1, -(2**63), 0, 2**63 - 1], dtype=np.int64)
    assert hashing.fmix64_array(signed).tolist() == [hashing.fmix64(int(v) % 2**64) for v in signed]


def test_numpy_key_decoder_agrees_with_the_kernel() -> None:
    from sparsecross._kernels import varint

    rng = np.random.default_rng(4)
    errors = set()
    for trial in range(1500):
        n = int(rng.integers(0, 30))
        top = [300, 2**30, 2**62][trial % 3]
        keys = np.unique(np.cumsum(rng.integers(1, top, n, dtype=np.uint64), dtype=np.uint64))
        if trial % 50 == 0:
            keys = np.array([0, 2**63, 2**64 - 1], dtype=np.uint64)[: n % 4]
        buf = varint.encode_deltas(keys).copy()
        count = len(keys)
        op = trial % 5
        if op == 1 and len(buf):
            buf[rng.integers(0, len(buf))] = rng.integers(0, 256)
        elif op == 2 and len(buf):
            buf = buf[: rng.integers(0, len(buf))]
        elif op == 3:
            buf = np.concatenate([buf, rng.integers(0, 256, int(rng.integers(1, 12))).astype(np.uint8)])
        elif op == 4:
            count += int(rng.integers(-2, 3))
        want, status = varint.decode_deltas(buf, count)
        got = leb128.decode_deltas_numpy(buf, count)
        keys2, status2 = leb128.decode_deltas(buf, count)
        assert status2 == int(status)
        if status == leb128.STATUS_OK:
            assert got is not None and got.dtype == np.uint64 and np.array_equal(got, want)
            assert np.array_equal(keys2, want)
        else:
            assert got is None, (buf, count, int(status))
            errors.add(int(status))
    assert len(errors) >= 5  # the fuzzing reached most error kinds


def test_large_key_streams_go_to_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsecross._kernels import varint

    keys = np.arange(1, 2000, 3, dtype=np.uint64)
    buf = varint.encode_deltas(keys)
    monkeypatch.delitem(sys.modules, "numba")  # as in a process that has not loaded it
    monkeypatch.setattr(leb128, "NUMPY_MAX_BYTES", 10)
    monkeypatch.setattr(leb128, "decode_deltas_numpy", lambda *a: pytest.fail("numpy path used"))
    got, status = leb128.decode_deltas(buf, len(keys))
    assert status == leb128.STATUS_OK and np.array_equal(got, keys)


def test_small_key_streams_use_numpy_until_numba_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsecross._kernels import varint

    keys = np.arange(1, 2000, 3, dtype=np.uint64)
    buf = varint.encode_deltas(keys)
    calls = []
    real = leb128.decode_deltas_numpy
    monkeypatch.setattr(leb128, "decode_deltas_numpy", lambda *a: calls.append(1) or real(*a))
    assert np.array_equal(leb128.decode_deltas(buf, len(keys))[0], keys) and calls == []  # numba loaded
    monkeypatch.delitem(sys.modules, "numba")
    got, status = leb128.decode_deltas(buf, len(keys))
    assert status == leb128.STATUS_OK and np.array_equal(got, keys) and calls == [1]


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module of the package can be the first one imported (``import sparsecross.X``):
    ``sparsecross.spec_parse`` imported first failed on the import cycle with ``spec``
    (``spec`` re-exported ``load_spec`` from a half-made ``spec_parse``).  One interpreter,
    the package's modules forgotten before each import; a missing optional dependency
    (Dask, matplotlib) is not a failure."""
    code = """
import importlib, pkgutil, sys
import sparsecross
names = sorted(m.name for m in pkgutil.walk_packages(sparsecross.__path__, "sparsecross.")
               if not m.name.endswith("__main__"))  # (runs the command line)
bad = []
for name in names:
    for m in [m for m in sys.modules if m == "sparsecross" or m.startswith("sparsecross.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("sparsecross"):
            continue
        bad.append(f"{name}: {e!r}")
    except Exception as e:
        bad.append(f"{name}: {e!r}")
print(len(names))
print("\\n".join(bad))
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    count, *bad = out.stdout.strip().split("\n")
    assert int(count) > 50
    assert [b for b in bad if b] == []
