"""Reports are true and untrusted strings are printed safely (issue 'Trust', items 7 and 9)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
from sparsecross._kernels.hash import holdout_mask
from sparsecross.cli import main
from sparsecross.export import model_bytes
from sparsecross.hashing import holdout_salt

REPO_ROOT = Path(__file__).resolve().parents[1]
SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("reports")
    data = sx.generate(d / "data.parquet", rows=4000, seed=7, row_group_size=1000)
    model = d / "model.scx"
    sx.save_model(sx.train(data, sx.load_spec(SPEC), l1=0.0), model)
    return {"dir": d, "data": data, "model": model}


def run(capsys, argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def strict_loads(text: str):
    def no_constant(name: str):
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=no_constant)


# ----------------------------------------------------------------------- holdout
def test_holdout_reports_the_rows_trained_on(capsys, world, tmp_path):
    rc, out, err = run(capsys, ["train", SPEC, world["data"], "--holdout", "0.25", "--out", tmp_path / "m.scx",
                                "--json", "--names", "0"])
    assert rc == 0, err
    rep = strict_loads(out)
    salt = np.uint64(holdout_salt(sx.load_spec(SPEC).hashing.seed))
    held = int(holdout_mask(0, 4000, 0.25, salt).sum())  # the seeded choice, computed independently of train()
    assert rep["rows"] == 4000
    assert rep["valid_rows"] == held and rep["train_rows"] == 4000 - held
    assert rep["rows_trained"] == 4000 - held
    assert rep["rows_per_second"] == pytest.approx(rep["rows_trained"] / rep["seconds"])
    rc, out, _ = run(capsys, ["inspect", tmp_path / "m.scx"])
    assert f"train_rows: {4000 - held:,}" in out and f"valid_rows: {held:,}" in out
    rc, out, _ = run(capsys, ["train", SPEC, world["data"], "--holdout", "0.25", "--out", tmp_path / "m.scx",
                              "--names", "0"])
    assert f"trained on {4000 - held:,} rows ({held:,} of the 4,000 held out for validation)" in out


def test_quantiles_come_from_the_trained_rows_only(tmp_path):
    n = 4000
    salt = np.uint64(holdout_salt(0))
    held = holdout_mask(0, n, 0.3, salt).astype(bool)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, n)
    x[held] += 1000.0  # the held-out rows are far away: any of them in the sample moves the quantiles
    pq.write_table(pa.table({"x": x, "y": rng.integers(0, 2, n)}), tmp_path / "d.parquet")
    spec = sx.parse_spec({"label": {"column": "y"}, "hashing": {"bits": 8},
                          "features": [{"name": "b", "kind": "bucket", "column": "x", "quantiles": 4}]})
    model = sx.train(tmp_path / "d.parquet", spec, holdout=0.3, l1=0.0)
    expected = np.quantile(x[~held], [0.25, 0.5, 0.75])
    assert np.allclose(model.spec.feature("b").boundaries, expected)


# ------------------------------------------------------------------- strict JSON
def test_eval_json_on_one_class_data_is_strict_json(capsys, world, tmp_path):
    t = pq.read_table(world["data"])
    t = t.set_column(t.schema.get_field_index("label"), "label",
                     pa.array(np.zeros(t.num_rows, dtype=np.int64)).cast(t.schema.field("label").type))
    pq.write_table(t, tmp_path / "one.parquet")
    rc, out, err = run(capsys, ["eval", world["model"], tmp_path / "one.parquet", "--json"])
    assert rc == 0, err
    rep = strict_loads(out)
    assert rep["auc"] is None and rep["rows"] == t.num_rows


# --------------------------------------------------------------- broken pipes
def test_a_closed_pipe_ends_quietly(world):
    exe = shutil.which("sparsecross")
    if exe is None:
        pytest.skip("the sparsecross entry point is not installed")
    # a few hundred kB of output: more than a pipe holds, so the writer meets the closed pipe
    proc = subprocess.run(f"'{exe}' inspect '{world['model']}' --top 5000 | head -c 10",
                          shell=True, capture_output=True, timeout=300)
    assert proc.stderr == b"", proc.stderr.decode()
    assert len(proc.stdout) == 10


def test_a_closed_pipe_in_process(capsys, world, monkeypatch):
    class Closed:
        def write(self, _s):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["inspect", str(world["model"]), "--top", "50"]) == 0
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- warnings
def test_warnings_are_one_line(capsys, world, tmp_path):
    rc, _out, err = run(capsys, ["train", SPEC, world["data"], "--l1", "1e9", "--out", tmp_path / "m.scx", "-q"])
    assert rc == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sparsecross: warning: l1=1000000000.0 removed every weight"), lines[0]


def test_inspect_shows_the_encoding_error(capsys, world, tmp_path):
    sx.save_model(sx.load_model(world["model"]), tmp_path / "q.scx", encoding="q2.13")
    rc, out, _ = run(capsys, ["inspect", tmp_path / "q.scx"])
    assert rc == 0 and "q2.13 encoding: largest weight error" in out
    info = strict_loads(run(capsys, ["inspect", tmp_path / "q.scx", "--json"])[1])
    assert 0 < info["max_abs_error"] <= 2**-13


# ------------------------------------------------------------------ predict --keep
def test_keep_refuses_a_clash_with_the_prediction_column(capsys, world, tmp_path):
    rc, _out, err = run(capsys, ["predict", world["model"], world["data"], "--out", tmp_path / "p.parquet",
                                 "--keep", "probability"])
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "probability" in err
    assert not (tmp_path / "p.parquet").exists()


def test_kept_columns_keep_their_type(capsys, world, tmp_path):
    rc, _out, err = run(capsys, ["predict", world["model"], world["data"], "--out", tmp_path / "p.parquet",
                                 "--keep", "device,user_id,latitude", "-q"])
    assert rc == 0, err
    src = pq.read_schema(world["data"])
    got = pq.read_table(tmp_path / "p.parquet")
    for col in ("device", "user_id", "latitude"):
        assert got.schema.field(col).type == src.field(col).type, col
    assert got.column("device").to_pylist() == pq.read_table(world["data"], columns=["device"]).column(0).to_pylist()


def test_an_empty_input_gives_an_empty_output_with_the_schema(capsys, world, tmp_path):
    empty = pq.read_table(world["data"]).slice(0, 0)
    pq.write_table(empty, tmp_path / "empty.parquet")
    rc, _out, err = run(capsys, ["predict", world["model"], tmp_path / "empty.parquet", "--out",
                                 tmp_path / "p.parquet", "--keep", "device", "-q"])
    assert rc == 0, err
    got = pq.read_table(tmp_path / "p.parquet")
    assert got.num_rows == 0
    assert got.schema.names == ["device", "probability"]
    assert got.schema.field("device").type == empty.schema.field("device").type


# ------------------------------------------------------------------ check-spec --data
@pytest.mark.parametrize("content", [b"", b"a,b\n1,2\n"], ids=["zero-bytes", "csv"])
def test_check_spec_reports_unreadable_files_like_train(capsys, tmp_path, content):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(content)
    rc, _out, err_check = run(capsys, ["check-spec", SPEC, "--data", bad])
    assert rc == 1
    rc2, _out, err_train = run(capsys, ["train", SPEC, bad, "--out", tmp_path / "m.scx"])
    assert rc2 == 1
    assert err_check == err_train
    assert "this is a bug" not in err_check and "cannot read" in err_check


# ------------------------------------------------------------------- untrusted strings
def _with_library_version(data: bytes, version: str) -> bytes:
    """The artifact ``data`` with another library_version in its metadata (sizes and CRC fixed)."""
    (meta_len,) = struct.unpack_from("<Q", data, 24)
    meta = json.loads(data[56:56 + meta_len])
    meta["library_version"] = version
    new_meta = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    head = data[:24] + struct.pack("<Q", len(new_meta)) + data[32:56]
    body = head + new_meta + data[56 + meta_len:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def test_inspect_escapes_control_characters(capsys, world, tmp_path):
    model = sx.load_model(world["model"])
    model.stats["names"] = {str(int(k)): "device=\x1b]0;title\x07" for k in model.keys}
    data = _with_library_version(model_bytes(model), "\x1b[31mevil\x07")
    (tmp_path / "evil.scx").write_bytes(data)
    rc, out, _ = run(capsys, ["inspect", tmp_path / "evil.scx", "--top", "100000"])
    assert rc == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "library \\x1b[31mevil\\x07" in out


def test_a_non_utf8_column_name_is_a_clean_error(capsys, tmp_path):
    path = tmp_path / "nu.parquet"
    pq.write_table(pa.table({"abcXYZ": [1.0, 2.0], "label": [0, 1]}), path, store_schema=False)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"abcXYZ", b"abc\xff\xfeZ"))
    for argv in (["train", SPEC, path, "--out", tmp_path / "m.scx"], ["check-spec", SPEC, "--data", path]):
        rc, _out, err = run(capsys, argv)
        assert rc == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "nu.parquet" in lines[0] and "UTF-8" in lines[0], err
    assert not os.path.exists(tmp_path / "m.scx")


# ------------------------------------------------------------------ where errors are
def test_value_errors_name_the_file_and_the_row_within_it(tmp_path, world, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    t = pq.read_table(world["data"]).slice(0, 300)
    pq.write_table(t.slice(0, 200), folder / "a.parquet")
    lat = t.column("latitude").to_numpy().copy()
    lat[200 + 17] = 200.0  # row 17 of the second file, global row 217
    bad = t.set_column(t.schema.get_field_index("latitude"), "latitude", pa.array(lat)).slice(200)
    pq.write_table(bad, folder / "b.parquet")
    with pytest.raises(sx.DataError, match=r"first at row 217.*b\.parquet', row 17 of that file"):
        sx.train(folder, sx.load_spec(SPEC))
    with pytest.raises(sx.DataError, match=r"b\.parquet', row 17 of that file"):
        sx.evaluate(sx.load_model(world["model"]), folder)
    rc, _out, err = run(capsys, ["predict", world["model"], folder, "--out", tmp_path / "p.parquet"])
    assert rc == 1 and "row 17 of that file" in err and len(err.strip().splitlines()) == 1


def test_a_full_disk_names_the_predictions_path(tmp_path, world, monkeypatch):
    def full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(sx.OutputError, match=r"cannot write predictions .*p\.parquet.*No space left"):
        sx.predict_file(sx.load_model(world["model"]), world["data"], tmp_path / "p.parquet")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
