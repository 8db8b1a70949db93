"""Tests of the command line (sparsecross.cli, sparsecross.cli_extra).

Everything runs in-process through ``sparsecross.cli.main(argv) -> int`` (with capsys), on a
few thousand generated rows; one test runs the installed entry points in a subprocess.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import CheckpointError, DataError, SchemaError, SparseCrossError, SpecError
from sparsecross.export import HEADER_SIZE

REPO_ROOT = Path(__file__).resolve().parents[1]
SPECS = REPO_ROOT / "data" / "specs"
SYNTHETIC_SPEC = SPECS / "synthetic.toml"
CALIFORNIA_SPEC = SPECS / "california.toml"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HOUSING = SHARED_DATA / "california_housing" / "housing.parquet"

TRAIN_ROWS = 5000
VALID_ROWS = 2000


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """5,000 training rows (2 row groups) and 2,000 validation rows of the same world."""
    d = tmp_path_factory.mktemp("cli_world")
    train = sx.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=1, row_group_size=2500)
    valid = sx.generate(d / "valid.parquet", rows=VALID_ROWS, seed=1, first_row=TRAIN_ROWS)
    return SimpleNamespace(dir=d, train=train, valid=valid)


@pytest.fixture(scope="module")
def model_path(world: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the small training file (l1 = 0.3), saved once."""
    spec = sx.load_spec(SYNTHETIC_SPEC)
    model = sx.train(world.train, spec, l1=0.3)
    path = tmp_path_factory.mktemp("cli_model") / "model.scx"
    sx.save_model(model, path)
    return path


def run_ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``main(argv)``, expect exit code 0, return stdout."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, f"exit {rc}; stderr: {err}"
    assert "Traceback" not in err
    return out


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    out = run_ok(capsys, argv)
    return json.loads(out)


def run_error(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> str:
    """Run ``main(argv)``, expect exit code 1 and exactly ONE stderr line
    ``sparsecross: error: ...`` containing every fragment; return that line."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 1, f"expected exit code 1, got {rc}; stdout: {out!r}; stderr: {err!r}"
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    line = lines[0]
    assert line.startswith("sparsecross: error:"), line
    for frag in fragments:
        assert frag in line, f"{frag!r} not in {line!r}"
    assert "this is a bug" not in line, f"an unexpected exception reached the CLI: {line}"
    return line


def replace_column(src: Path, dst: Path, name: str, values: np.ndarray, row_group_size: int = 2500) -> Path:
    t = pq.read_table(src)
    t = t.set_column(t.schema.get_field_index(name), name, pa.array(values))
    pq.write_table(t, dst, row_group_size=row_group_size)
    return dst


def bad_latitude_file(world: SimpleNamespace, dst: Path, rows: list[int], values: list[float]) -> Path:
    lat = pq.read_table(world.train, columns=["latitude"]).column(0).to_numpy().copy()
    lat[rows] = values
    return replace_column(world.train, dst, "latitude", lat)


def listing(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- help/usage
HELP_OPTIONS = {
    "generate": ["--rows", "--seed", "--out", "--overwrite", "--row-group-size"],
    "check-spec": ["spec", "--data", "--json"],
    "train": ["--out", "--valid", "--holdout", "--alpha", "--beta", "--l1", "--l2", "--epochs",
              "--label-smoothing", "--checkpoint", "--encoding", "--json", "--batch-rows"],
    "predict": ["--out", "--keep", "--batch-rows"],
    "eval": ["--json", "--batch-rows"],
    "inspect": ["--top", "--json"],
    "demo": ["--rows", "--valid-rows", "--cache", "--out", "--l1", "--json", "--no-path"],
    "path": ["--l1", "--l2", "--valid", "--holdout", "--max-nonzeros", "--max-bytes", "--out", "--plot",
             "--plot-width", "--plot-height", "--encoding", "--json"],
    "plot-weights": ["--out", "--feature", "--width", "--height"],
    "suggest-spec": ["--label", "--positive", "--threshold", "--compare", "--weight", "--out", "--force",
                     "--sample-rows", "--seed", "--json"],
}


@pytest.mark.parametrize("command", sorted(HELP_OPTIONS))
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sparsecross " + command)
    for opt in HELP_OPTIONS[command] + ["--debug", "--quiet"]:
        assert opt in out, f"{command} --help does not mention {opt}"


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in HELP_OPTIONS:
        assert command in out
    assert "--version" in out and "--debug" in out


def test_no_arguments_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: sparsecross")
    assert "train" in out and "predict" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"sparsecross {sx.__version__}"


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["trian"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# ----------------------------------------------------------------------- the happy path
def test_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """generate -> check-spec --data -> train --valid --json -> eval --json -> predict --keep
    -> inspect --json, all on small data."""
    train_path = tmp_path / "train.parquet"
    out = run_ok(capsys, ["generate", "--rows", TRAIN_ROWS, "--seed", 4, "--row-group-size", 2000,
                          "--out", train_path])
    assert f"{TRAIN_ROWS:,} rows" in out
    assert pq.ParquetFile(train_path).metadata.num_rows == TRAIN_ROWS
    assert pq.ParquetFile(train_path).metadata.num_row_groups == 3
    # The validation rows continue the same world (the CLI has no --first-row).
    valid_path = sx.generate(tmp_path / "valid.parquet", rows=VALID_ROWS, seed=4, first_row=TRAIN_ROWS)

    # generate refuses to overwrite without --overwrite
    run_error(capsys, ["generate", "--rows", 10, "--out", train_path], "--overwrite")

    # check-spec with data: text and JSON
    out = run_ok(capsys, ["check-spec", SYNTHETIC_SPEC, "--data", train_path])
    assert "spec OK" in out and "cell" in out and "hashed" in out
    info = run_json(capsys, ["check-spec", SYNTHETIC_SPEC, "--data", train_path, "--json"])
    spec = sx.load_spec(SYNTHETIC_SPEC)
    assert info["n_columns"] == spec.n_columns
    assert info["sha256"] == spec.sha256
    assert info["blocks"][0] == {"name": "cell", "offset": 0, "cardinality": 233_280_001, "hashed": False}

    # train
    model_path = tmp_path / "model.scx"
    report = run_json(capsys, ["train", SYNTHETIC_SPEC, train_path, "--valid", valid_path, "--l1", "0.3",
                               "--out", model_path, "--json"])
    for key in ("rows", "seconds", "rows_per_second", "nonzeros", "touched_features", "peak_rss_bytes",
                "valid_logloss", "valid_auc"):
        assert key in report, key
    assert report["rows"] == TRAIN_ROWS
    assert report["valid_rows"] == VALID_ROWS
    assert report["seconds"] > 0 and report["rows_per_second"] > 0
    assert 0 < report["nonzeros"] <= report["touched_features"]
    assert report["peak_rss_bytes"] > 10_000_000
    assert 0 < report["valid_logloss"] < 1 and 0.5 < report["valid_auc"] < 1
    assert report["model_bytes"] == model_path.stat().st_size
    assert report["possible_features"] == spec.n_columns
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]

    # eval: the same valid file gives the same logloss as the training report
    ev = run_json(capsys, ["eval", model_path, valid_path, "--json"])
    for key in ("rows", "logloss", "auc"):
        assert key in ev
    assert ev["rows"] == VALID_ROWS
    assert ev["logloss"] == pytest.approx(report["valid_logloss"], abs=1e-9)
    assert ev["auc"] == pytest.approx(report["valid_auc"], abs=1e-4)
    out = run_ok(capsys, ["eval", model_path, valid_path])
    assert "logloss" in out and "AUC" in out

    # predict --keep user_id
    pred_path = tmp_path / "pred.parquet"
    out = run_ok(capsys, ["predict", model_path, valid_path, "--out", pred_path, "--keep", "user_id"])
    assert f"{VALID_ROWS:,} predictions" in out
    pred = pq.read_table(pred_path)
    assert pred.column_names == ["user_id", "probability"]
    assert pred.schema.field("probability").type == pa.float64()
    table = pq.read_table(valid_path)
    model = sx.load_model(model_path)
    assert pred.column("user_id").to_pylist() == table.column("user_id").to_pylist()
    np.testing.assert_array_equal(pred.column("probability").to_numpy(), model.predict_proba(table))
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]

    # inspect --json
    info = run_json(capsys, ["inspect", model_path, "--json", "--top", 100_000])
    assert info["nonzeros"] == report["nonzeros"] == model.nonzeros
    assert info["file_bytes"] == model_path.stat().st_size
    assert info["bytes_per_nonzero"] == pytest.approx(info["file_bytes"] / info["nonzeros"])
    assert info["possible_features"] == spec.n_columns
    assert info["spec_sha256"] == spec.sha256
    assert info["params"]["l1"] == 0.3
    assert sum(b["nonzeros"] for b in info["blocks"]) == info["nonzeros"]
    top = info["top"]
    assert len(top) == info["nonzeros"]
    mags = [abs(t["weight"]) for t in top]
    assert mags == sorted(mags, reverse=True)
    assert all(t["description"] for t in top)
    cells = [t for t in top if t["block"] == "cell"]
    assert cells, "no geo cell among the nonzero weights"
    box = re.compile(r"^cell=lat\[(-?\d+\.\d+),(-?\d+\.\d+)\) lon\[(-?\d+\.\d+),(-?\d+\.\d+)\)$")
    for t in cells[:20]:
        m = box.match(t["description"])
        assert m, t["description"]
        lat0, lat1, lon0, lon1 = map(float, m.groups())
        i, j = divmod(t["key"], 21600)  # 1 arc-minute grid, cell block at offset 0
        assert lat0 == pytest.approx(-90 + i / 60, abs=1e-4)
        assert lon0 == pytest.approx(-180 + j / 60, abs=1e-4)
        assert lat1 - lat0 == pytest.approx(1 / 60, abs=2e-4)
        assert lon1 - lon0 == pytest.approx(1 / 60, abs=2e-4)
    buckets = [t for t in top if t["block"] == "age"]
    assert all(re.match(r"^age=(\[.*\)|missing)$", t["description"]) for t in buckets)
    # the text form works too
    out = run_ok(capsys, ["inspect", model_path, "--top", 3])
    assert "nonzeros" in out and "bytes per nonzero" in out


def test_check_spec_text_and_unresolved_quantiles(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_ok(capsys, ["check-spec", SYNTHETIC_SPEC])
    assert "total columns 237,474,323" in out
    out = run_ok(capsys, ["check-spec", CALIFORNIA_SPEC])
    assert "quantiles" in out


def test_check_spec_json_is_json_for_quantile_spec(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_ok(capsys, ["check-spec", CALIFORNIA_SPEC, "--json"])
    json.loads(out)


def test_train_text_report(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--holdout", "0.2", "--out",
                          tmp_path / "m.scx"])
    # the rows actually trained on (the holdout rows are not), and how many were held out
    m = re.search(r"trained on ([\d,]+) rows \(([\d,]+) of the 5,000 held out for validation\)", out)
    assert m is not None, out
    trained, held = (int(g.replace(",", "")) for g in m.groups())
    assert trained + held == 5000 and 700 < held < 1300
    assert f"validation ({held:,} rows)" in out
    assert "nonzero weights" in out
    out = run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", "-q"])
    assert out == ""


@pytest.mark.parametrize("encoding", ["float16", "q2.13"])
def test_train_encoding(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        encoding: str) -> None:
    path = tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", path, "--encoding", encoding, "-q"])
    info = run_json(capsys, ["inspect", path, "--json"])
    assert info["value_encoding"] == encoding
    ref = tmp_path / "m32.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", ref, "-q"])
    ref_info = run_json(capsys, ["inspect", ref, "--json"])
    assert ref_info["value_encoding"] == "float32"
    # 2 bytes saved per weight (a few bytes of metadata differ)
    saved = ref_info["file_bytes"] - info["file_bytes"]
    assert abs(saved - 2 * info["nonzeros"]) < 64 and info["nonzeros"] >= ref_info["nonzeros"] - 5


# ----------------------------------------------------------------------------- [train]
def _spec_with_train_table(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "with_train.toml"
    path.write_text(SYNTHETIC_SPEC.read_text() + "\n[train]\n" + table)
    return path


def test_train_table_used_and_flags_override(world: SimpleNamespace, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec_with_train_table(tmp_path, "alpha = 0.2\nl1 = 0.5\nl2 = 0.25\nepochs = 2\nbeta = 0.5\n")
    m1 = tmp_path / "from_table.scx"
    run_ok(capsys, ["train", spec, world.train, "--out", m1, "-q"])
    params = run_json(capsys, ["inspect", m1, "--json"])["params"]
    assert params["alpha"] == 0.2
    assert params["l1"] == 0.5
    assert params["l2"] == 0.25
    assert params["epochs"] == 2
    assert params["beta"] == 0.5

    m2 = tmp_path / "flags.scx"
    run_ok(capsys, ["train", spec, world.train, "--out", m2, "-q", "--l1", "2", "--epochs", "1", "--beta", "1"])
    params = run_json(capsys, ["inspect", m2, "--json"])["params"]
    assert params["l1"] == 2.0 and params["epochs"] == 1 and params["beta"] == 1.0  # flags win
    assert params["alpha"] == 0.2 and params["l2"] == 0.25  # the rest still from [train]

    # without a [train] table: library defaults
    m3 = tmp_path / "defaults.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", m3, "-q"])
    params = run_json(capsys, ["inspect", m3, "--json"])["params"]
    assert (params["alpha"], params["beta"], params["l1"], params["l2"], params["epochs"]) == (0.1, 1.0, 1.0, 0.0, 1)

    # the table's holdout is used when no --valid/--holdout flag is given
    spec_h = _spec_with_train_table(tmp_path, "holdout = 0.2\n")
    report = run_json(capsys, ["train", spec_h, world.train, "--out", m3, "--json"])
    assert 0 < report["valid_rows"] < TRAIN_ROWS
    report2 = run_json(capsys, ["train", spec_h, world.train, "--out", m3, "--json", "--holdout", "0.5"])
    assert report2["valid_rows"] > report["valid_rows"]


def test_valid_flag_overrides_train_table_holdout(world: SimpleNamespace, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec_h = _spec_with_train_table(tmp_path, "holdout = 0.2\n")
    report = run_json(capsys, ["train", spec_h, world.train, "--valid", world.valid, "--out",
                               tmp_path / "m.scx", "--json"])
    assert report["valid_rows"] == VALID_ROWS


# --------------------------------------------------------------- bucket quantile specs
def _quantile_spec(tmp_path: Path) -> Path:
    text = SYNTHETIC_SPEC.read_text()
    old = "boundaries = [15000.0, 22000.0, 30000.0, 40000.0, 50000.0, 65000.0, 85000.0, 115000.0, 160000.0]"
    assert old in text
    path = tmp_path / "quantiles.toml"
    path.write_text(text.replace(old, "quantiles = 5"))
    return path


def test_train_cli_with_quantile_spec(world: SimpleNamespace, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, ["train", _quantile_spec(tmp_path), world.train, "--out", tmp_path / "q.scx",
                               "--json"])
    assert report["nonzeros"] > 0


def test_model_trained_with_quantiles_loads(world: SimpleNamespace, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = sx.train(world.train, sx.load_spec(_quantile_spec(tmp_path)))
    path = tmp_path / "q.scx"
    sx.save_model(model, path)
    info = run_json(capsys, ["inspect", path, "--json"])
    assert info["nonzeros"] == model.nonzeros


def test_real_data_california(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real California housing data through the CLI (quantiles replaced by explicit
    boundaries resolved by check-spec --data, see the quantile bugs above)."""
    if not HOUSING.is_file():
        pytest.skip(f"real data not available: {HOUSING} is missing")
    info = run_json(capsys, ["check-spec", CALIFORNIA_SPEC, "--data", HOUSING, "--json"])
    income = next(f for f in info["spec"]["features"] if f["name"] == "income")
    bounds = income["boundaries"]
    assert len(bounds) == 9 and bounds == sorted(bounds)
    text = CALIFORNIA_SPEC.read_text().replace("quantiles = 10", f"boundaries = {bounds!r}")
    spec_path = tmp_path / "california_resolved.toml"
    spec_path.write_text(text)
    model_path = tmp_path / "ca.scx"
    report = run_json(capsys, ["train", spec_path, HOUSING, "--holdout", "0.2", "--epochs", "3", "--out",
                               model_path, "--json"])
    assert report["rows"] == 20640
    assert 0 < report["nonzeros"] <= report["touched_features"]
    assert report["valid_auc"] > 0.8  # location and income predict expensive block groups well
    ev = run_json(capsys, ["eval", model_path, HOUSING, "--json"])
    assert ev["rows"] == 20640
    assert 0.2 < ev["positive_rate"] < 0.3
    info = run_json(capsys, ["inspect", model_path, "--json", "--top", 100_000])
    cells = [t for t in info["top"] if t["block"] == "cell"]
    assert cells
    for t in cells:  # California: 32..42 N, 125..114 W
        m = re.match(r"^cell=lat\[(-?[\d.]+),(-?[\d.]+)\) lon\[(-?[\d.]+),(-?[\d.]+)\)$", t["description"])
        assert m, t["description"]
        lat0, lat1, lon0, lon1 = map(float, m.groups())
        assert 32 <= lat0 < lat1 <= 42.1 and -124.5 <= lon0 < lon1 <= -114
        assert lat1 - lat0 == pytest.approx(0.1, abs=1e-4)


# --------------------------------------------------------------------------- bad input
def test_missing_spec_file(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_error(capsys, ["train", tmp_path / "nope.toml", world.train, "--out", tmp_path / "m.scx"],
              "nope.toml", "does not exist")
    run_error(capsys, ["check-spec", tmp_path / "nope.toml"], "does not exist")


def test_invalid_spec_unknown_key(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SYNTHETIC_SPEC.read_text().replace("resolution_arcmin = 1.0", "resoluton_arcmin = 1.0"))
    line = run_error(capsys, ["train", bad, world.train, "--out", tmp_path / "m.scx"],
                     "resoluton_arcmin", "did you mean 'resolution_arcmin'")
    assert "bad.toml" in line
    run_error(capsys, ["check-spec", bad], "did you mean 'resolution_arcmin'")
    bad.write_text(SYNTHETIC_SPEC.read_text() + "\n[trian]\nl1 = 1.0\n")
    run_error(capsys, ["check-spec", bad], "'trian'", "did you mean 'train'")
    bad.write_text("[label\ncolumn = 'y'\n")
    run_error(capsys, ["check-spec", bad], "TOML")


def test_data_path_does_not_exist(tmp_path: Path, model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.parquet"
    run_error(capsys, ["train", SYNTHETIC_SPEC, missing, "--out", tmp_path / "m.scx"], "missing.parquet",
              "does not exist")
    run_error(capsys, ["eval", model_path, missing], "does not exist")
    run_error(capsys, ["predict", model_path, missing, "--out", tmp_path / "p.parquet"], "does not exist")
    run_error(capsys, ["check-spec", SYNTHETIC_SPEC, "--data", missing], "does not exist")
    run_error(capsys, ["train", SYNTHETIC_SPEC, str(tmp_path / "*.parquet"), "--out", tmp_path / "m.scx"],
              "no files match")
    (tmp_path / "empty").mkdir()
    run_error(capsys, ["train", SYNTHETIC_SPEC, tmp_path / "empty", "--out", tmp_path / "m.scx"],
              "no *.parquet files")
    assert not (tmp_path / "m.scx").exists()


def test_missing_column_suggests_close_match(world: SimpleNamespace, tmp_path: Path, model_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    t = pq.read_table(world.train)
    path = tmp_path / "renamed.parquet"
    pq.write_table(t.rename_columns(["devise" if c == "device" else c for c in t.column_names]), path)
    for argv in (["train", SYNTHETIC_SPEC, path, "--out", tmp_path / "m.scx"],
                 ["check-spec", SYNTHETIC_SPEC, "--data", path],
                 ["eval", model_path, path],
                 ["predict", model_path, path, "--out", tmp_path / "p.parquet"]):
        run_error(capsys, argv, "'device'", "did you mean 'devise'", "renamed.parquet")
    run_error(capsys, ["predict", model_path, world.valid, "--out", tmp_path / "p.parquet", "--keep", "user_idd"],
              "'user_idd'", "did you mean 'user_id'")
    assert not (tmp_path / "p.parquet").exists()


def test_label_not_0_1(world: SimpleNamespace, tmp_path: Path, model_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    y = pq.read_table(world.train, columns=["label"]).column(0).to_numpy().astype(np.int8).copy()
    y[[2503, 2600, 4321]] = [2, -1, 7]  # all in the second row group
    path = replace_column(world.train, tmp_path / "badlabel.parquet", "label", y)
    for argv in (["train", SYNTHETIC_SPEC, path, "--out", tmp_path / "m.scx", "-q"], ["eval", model_path, path]):
        run_error(capsys, argv, "'label'", "0/1", "3 values", "row 2503", "threshold")
    assert not (tmp_path / "m.scx").exists()


def test_latitude_out_of_range(world: SimpleNamespace, tmp_path: Path, model_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = bad_latitude_file(world, tmp_path / "badlat.parquet", [2600, 3000, 4999], [91.0, -95.0, 120.0])
    for argv in (["train", SYNTHETIC_SPEC, path, "--out", tmp_path / "m.scx", "-q"],
                 ["eval", model_path, path],
                 ["predict", model_path, path, "--out", tmp_path / "p.parquet"]):
        line = run_error(capsys, argv, "'cell'", "3 rows", "row 2600", "91", "invalid")
        assert "[-90, 90]" in line
    assert not (tmp_path / "m.scx").exists() and not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("command", ["eval", "inspect", "predict"])
def test_not_a_model_file(command: str, world: SimpleNamespace, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fake.scx"
    fake.write_bytes(b"PAR1 this is not a model" * 20)
    argv = {"eval": ["eval", fake, world.valid], "inspect": ["inspect", fake],
            "predict": ["predict", fake, world.valid, "--out", tmp_path / "p.parquet"]}[command]
    run_error(capsys, argv, "fake.scx", "not a sparsecross model")
    # a Parquet file given as the model
    argv[1] = world.valid
    run_error(capsys, argv, "not a sparsecross model")
    # an empty file and a missing file
    empty = tmp_path / "empty.scx"
    empty.write_bytes(b"")
    argv[1] = empty
    run_error(capsys, argv, "empty.scx")
    argv[1] = tmp_path / "nothere.scx"
    run_error(capsys, argv, "nothere.scx")
    assert not (tmp_path / "p.parquet").exists()


@pytest.mark.parametrize("where", ["middle", "last"])
@pytest.mark.parametrize("command", ["eval", "inspect", "predict"])
def test_corrupted_model(command: str, where: str, world: SimpleNamespace, model_path: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(model_path.read_bytes())
    pos = len(data) // 2 if where == "middle" else len(data) - 1
    assert pos > HEADER_SIZE
    data[pos] ^= 0x5A
    bad = tmp_path / "corrupt.scx"
    bad.write_bytes(bytes(data))
    argv = {"eval": ["eval", bad, world.valid], "inspect": ["inspect", bad],
            "predict": ["predict", bad, world.valid, "--out", tmp_path / "p.parquet"]}[command]
    line = run_error(capsys, argv, "corrupt.scx")
    assert "checksum" in line.lower()
    # truncated
    bad.write_bytes(bytes(model_path.read_bytes()[:-10]))
    run_error(capsys, argv, "corrupt.scx", "truncated")


def test_out_into_missing_folder(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = tmp_path / "no" / "such"
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", nowhere / "m.scx"], "does not exist")
    run_error(capsys, ["predict", model_path, world.valid, "--out", nowhere / "p.parquet"])
    run_error(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0.3,1",
                       "--max-nonzeros", 100_000, "--out", nowhere / "best.scx", "-q"], "--out", "does not exist")
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path], "folder")
    assert not (tmp_path / "no").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("flag", "value", "name"), [
    ("--alpha", "nan", "alpha"),
    ("--alpha", "0", "alpha"),
    ("--alpha", "1e400", "alpha"),  # float() makes it inf: one line, as a huge integer gets from the API
    ("--l2", "-1e400", "l2"),
    ("--beta", "-inf", "beta"),
    ("--l1", "inf", "l1"),
    ("--l2", "nan", "l2"),
    ("--label-smoothing", "1.0", "label_smoothing"),
    ("--epochs", "0", "epochs"),
])
def test_bad_hyperparameter(flag: str, value: str, name: str, world: SimpleNamespace, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", f"{flag}={value}"],
              name)
    assert not (tmp_path / "m.scx").exists()


@pytest.mark.parametrize("value", ["1.5", "0", "1", "nan", "-0.1"])
def test_bad_holdout(value: str, world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", f"--holdout={value}"],
              "holdout", "(0, 1)")
    run_error(capsys, ["path", SYNTHETIC_SPEC, world.train, f"--holdout={value}", "-q"], "holdout")


def test_bad_batch_and_checkpoint_sizes(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """0 is not silently replaced by a default: every command refuses it in one line."""
    out = tmp_path / "m.scx"
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--batch-rows", "0"], "batch_rows", "between 1 and")
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint-every", "0"],
              "checkpoint_every")
    run_error(capsys, ["path", SYNTHETIC_SPEC, world.train, "--holdout", "0.2", "--batch-rows", "0", "-q"],
              "batch_rows")
    run_error(capsys, ["predict", model_path, world.train, "--out", tmp_path / "p.parquet", "--batch-rows", "0"],
              "batch_rows")
    run_error(capsys, ["eval", model_path, world.train, "--batch-rows", "-3"], "batch_rows")
    assert list(tmp_path.iterdir()) == []


def test_a_huge_refused_number_is_shortened(world: SimpleNamespace, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A 401-digit --batch-rows or --admit-after was echoed whole in the error line."""
    huge = "1" + "0" * 400
    for flag, value in (("--batch-rows", "-" + huge), ("--admit-after", huge)):
        line = run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", f"{flag}={value}"],
                         flag[2:].replace("-", "_"), "... (401 digits)")
        assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


def test_bad_generate_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_error(capsys, ["generate", "--rows", "0", "--out", tmp_path / "g.parquet"], "--rows")
    run_error(capsys, ["generate", "--rows", "10", "--out", tmp_path], "directory")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def no_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """generate() makes no row: a refusal that does not come fails the test at once (an
    impossible count would otherwise run for ever)."""

    def fail(*args: object, **kw: object) -> None:
        raise AssertionError("rows were generated for an impossible request")

    monkeypatch.setattr(importlib.import_module("sparsecross.generate"), "_rows", fail)


@pytest.mark.parametrize("flag, value, fragment", [
    ("--rows", "9" * 4000, "--rows must be between 1 and 9,223,372,036,854,775,807, got 999"),
    ("--rows", str(2**63), "--rows must be between 1 and 9,223,372,036,854,775,807"),
    ("--row-group-size", "9" * 4000, "row_group_size must be in [1, 2147483647], got 999"),
    ("--seed", "9" * 4000, "seed must be in [0, 18446744073709551615], got 999"),
    ("--seed", "-1", "seed must be in [0, 18446744073709551615], got -1"),
], ids=["rows-4000-digits", "rows-2^63", "row-group-size-4000-digits", "seed-4000-digits", "seed-negative"])
def test_generate_refuses_an_impossible_count_at_once(flag: str, value: str, fragment: str, tmp_path: Path,
                                                      no_rows: None, capsys: pytest.CaptureFixture[str]) -> None:
    """`generate --rows <4,000 digits>` did not finish in 25 s: it began writing rows it could
    never finish.  Every count is refused in one short line, exit 1, before any row is made."""
    argv = ["generate", "--out", tmp_path / "g.parquet", flag, value]
    line = run_error(capsys, argv + (["--rows", "10"] if flag != "--rows" else []), fragment)
    assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


_MAX = "9,223,372,036,854,775,807"


@pytest.mark.parametrize("argv, fragment", [
    (["--rows", "9" * 4000], f"--rows must be between 1,000 and {_MAX}, got 999"),
    (["--rows", "999"], f"--rows must be between 1,000 and {_MAX}, got 999"),
    (["--valid-rows", "9" * 4000], f"--valid-rows must be between 100 and {_MAX}, got 999"),
    (["--valid-rows", "-5"], "--valid-rows must be between 100 and"),
    (["--rows", str(2**62), "--valid-rows", str(2**62)], f"--rows + --valid-rows must be at most {_MAX}"),
    (["--seed", "-1"], "--seed must be between 0 and 18,446,744,073,709,551,615, got -1"),
    (["--seed", "9" * 4000], "--seed must be between 0 and 18,446,744,073,709,551,615, got 999"),
], ids=["rows-4000-digits", "rows-999", "valid-rows-4000-digits", "valid-rows-negative", "rows+valid-rows",
        "seed-negative", "seed-4000-digits"])
def test_demo_checks_its_numbers_before_the_cache(argv: list[str], fragment: str, tmp_path: Path, no_rows: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """demo put --rows, --valid-rows and --seed in its cache's file names before checking them: a
    4,000-digit --rows was "File name too long" echoing the path, --seed -1 was generate's
    ValueError reported as a bug, after the cache folder (and a training file) were made."""
    cache = tmp_path / "cache"
    line = run_error(capsys, ["demo", "--cache", cache, "--no-path", "-q", *argv], fragment)
    assert len(line) < 200, line
    assert not cache.exists()


_LOCAL = ["--dask", "local:1"]


@pytest.mark.parametrize("flags, fragment", [
    (["--names", "-1"], f"--names must be between 0 and {_MAX}, got -1"),
    (["--names", "9" * 4000], f"--names must be between 0 and {_MAX}, got 999"),
    (["--names", str(2**63)], f"--names must be between 0 and {_MAX}"),
    (["--lanes", "2"], "--lanes needs --dask"),
    (["--lanes", "-3"], "--lanes needs --dask"),
    (["--rows-per-round", "9" * 4000], "--rows-per-round needs --dask"),
    (["--mode", "exact", "--lanes", "2", "--rows-per-round", "8"], "--mode, --lanes and --rows-per-round need --dask"),
    ([*_LOCAL, "--lanes", "0"], "--lanes must be between 1 and 65,536, got 0"),
    ([*_LOCAL, "--lanes", "9" * 4000], "--lanes must be between 1 and 65,536, got 999"),
    ([*_LOCAL, "--lanes", "65537"], "--lanes must be between 1 and 65,536, got 65537"),
    ([*_LOCAL, "--rows-per-round", "-5"], f"--rows-per-round must be between 1 and {_MAX}, got -5"),
    ([*_LOCAL, "--rows-per-round", "9" * 4000], f"--rows-per-round must be between 1 and {_MAX}, got 999"),
    ([*_LOCAL, "--rows-per-round", "3"], "--rows-per-round must be at least --lanes (4)"),
    ([*_LOCAL, "--mode", "exact", "--lanes", "2"], "--lanes does not apply to --mode exact"),
    (["--partition", "cell"], "--partition needs --dask"),
    ([*_LOCAL, "--mode", "partitioned"], "--mode partitioned needs --partition FEATURE"),
    ([*_LOCAL, "--partition", "cell"], "--partition applies to --mode partitioned only, not to data-parallel"),
    ([*_LOCAL, "--mode", "exact", "--partition", "cell"], "--partition applies to --mode partitioned only"),
    ([*_LOCAL, "--mode", "partitioned", "--partition", "device"], "partition feature 'device' is hashed"),
    ([*_LOCAL, "--mode", "partitioned", "--partition", "nope\x1b[2J"],
     "partition names no feature of the spec: 'nope\\x1b[2J'"),
    ([*_LOCAL, "--mode", "partitioned", "--partition", "cell", "--admit-after", "2"],
     "admit_after / admit_probability is not available in mode 'partitioned'"),
    ([*_LOCAL, "--mode", "partitioned", "--partition", "cell", "--max-state-mb", "10"],
     "max_state_mb is not available in mode 'partitioned'"),
], ids=["names-negative", "names-4000-digits", "names-2^63", "lanes-without-dask", "negative-lanes-without-dask",
        "rows-per-round-without-dask", "three-without-dask", "lanes-0", "lanes-4000-digits", "lanes-65537",
        "rows-per-round-negative",
        "rows-per-round-4000-digits", "rows-per-round-below-lanes", "lanes-in-exact-mode",
        "partition-without-dask", "partitioned-without-partition", "partition-in-data-parallel",
        "partition-in-exact", "partition-hashed", "partition-unknown", "partitioned-admission",
        "partitioned-budget"])
def test_train_refuses_bad_names_and_dask_counts_before_any_work(flags: list[str], fragment: str,
                                                                 world: SimpleNamespace, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--names -1 (silently no names) and a 4,000-digit --names were taken; --lanes and
    --rows-per-round were ignored without --dask whatever their value, and with --dask checked
    (without an upper bound) only once the cluster had started.  Now one line, exit 1, before
    a cluster or any training; an option that does not apply says so."""

    def no_cluster(address: str) -> None:
        raise AssertionError("a cluster was started before the flags were checked")

    monkeypatch.setattr(sys.modules["sparsecross.cli_train"], "_dask_client", no_cluster)
    out = tmp_path / "m.scx"
    line = run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "-q", *flags], fragment)
    assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.dask
def test_train_partitioned_on_the_cli_is_the_api_model(world: SimpleNamespace, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``--mode partitioned --partition cell --lanes 2`` trains the model that
    ``train(..., mode="partitioned", partition="cell", lanes=2)`` trains on another cluster
    (the partition and K are model parameters, recorded in the model), and reports it."""
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "m.scx"
    report = json.loads(run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--json", *_LOCAL,
                                        "--mode", "partitioned", "--partition", "cell", "--lanes", "2"]))
    assert report["nonzeros"] > 0
    cli = sx.load_model(out)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        api = sx.train(world.train, sx.load_spec(SYNTHETIC_SPEC), client=client, mode="partitioned",
                       partition="cell", lanes=2)
    assert np.array_equal(cli.keys, api.keys) and cli.bias == api.bias
    assert np.array_equal(cli.weights, api.weights.astype(cli.weights.dtype))
    assert cli.params["mode"] == "partitioned" and cli.params["partition"] == "cell" and cli.params["lanes"] == 2
    assert report["lane_rows"] == api.run["lane_rows"] and sum(report["lane_rows"]) == report["rows_trained"]
    assert min(report["lane_rows"]) > 0
    assert report["shared_keys"] == api.run["shared_keys"] > 0


def test_the_lanes_line_shows_the_spread_and_flags_a_skewed_partition() -> None:
    """train's summary line on a partitioned run's lanes: the range and the busiest lane's
    share (more than twice an even share is flagged), the shared keys; nothing for one lane
    or no rows."""
    from sparsecross.cli_train import lanes_line

    even = lanes_line([4_990, 5_010])
    assert even == "lanes: 2 trained 4,990 to 5,010 rows each; the busiest (lane 1) 50.1% of them"
    skewed = lanes_line([100, 7_000, 200, 100])
    assert skewed.startswith("lanes: 4 trained 100 to 7,000 rows each; the busiest (lane 1) 94.6% of them - skewed")
    assert "an even share is 25.0%" in skewed
    assert "skewed" not in lanes_line([100, 290, 100, 100])  # 49.2%: under twice 25%
    assert lanes_line([10]) == lanes_line([0, 0]) == lanes_line([]) == ""
    assert lanes_line([4_990, 5_010], 58) == even + "; 58 keys shared by the lanes"


def test_train_api_refuses_a_negative_names(world: SimpleNamespace) -> None:
    """names=-1 was taken as 0 (no names), silently."""
    with pytest.raises(sx.ParameterError, match=r"^names must be between 0 and"):
        sx.train(world.train, sx.load_spec(SYNTHETIC_SPEC), names=-1)


@pytest.mark.parametrize("value", ["-3", "-1", "9" * 4000])
def test_inspect_refuses_a_negative_or_huge_top(value: str, model_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """inspect --top -3 was taken as --top 0 (no weights listed), silently.  0 still lists none."""
    line = run_error(capsys, ["inspect", model_path, f"--top={value}"], f"--top must be between 0 and {_MAX}, got")
    assert len(line) < 200, line
    from sparsecross.inspect import inspect_model

    with pytest.raises(sx.ParameterError, match=r"^top must be between 0 and"):
        inspect_model(model_path, top=int(value))
    assert "top 0 weights" not in run_ok(capsys, ["inspect", model_path, "--top", "0"])
    assert run_json(capsys, ["inspect", model_path, "--top", "0", "--json"])["top"] == []


_BIG = "9" * 4000  # a 4,000-digit number: int() takes it, float() makes it inf
_2_64 = str(2**64)  # huge but parseable: past int64, a finite float
_PAST_BOUND = "1.0000001e12"  # just past alpha's, beta's, l1's and l2's bound (_values.MAX_FTRL_PARAM)


def _flag_cases() -> list[tuple[str, list[str], str, str]]:
    """(command, extra flags, flag=value, fragment of the one error line)."""
    cases = []
    for v in ("-1", "0", _BIG, _2_64):
        cases.append(("train", ["--checkpoint", "{d}/ck"], f"--checkpoint-every={v}",
                      f"checkpoint_every must be between 1 and {_MAX}"))
        cases.append(("train", ["--shuffle"], f"--shuffle-buffer-rows={v}",
                      f"shuffle_buffer_rows must be between 1 and {_MAX}"))
        if v != "-1":
            cases.append(("tune", [], f"--search-crosses={'-1' if v == '0' else v}",
                          f"--search-crosses must be between 1 and {_MAX}"))
            cases.append(("plot-weights", [], f"--max-cells={'-1' if v == '0' else v}",
                          f"--max-cells must be between 1 and {_MAX}"))
            cases.append(("suggest-spec", [], f"--sample-rows={'-1' if v == '0' else v}",
                          f"--sample-rows must be between 1 and {_MAX}"))
        if v != "0":  # 0 is a budget (no point meets it: refused after the run, naming the smallest model)
            for command in ("path", "tune"):
                for flag in ("--max-nonzeros", "--max-bytes"):
                    cases.append((command, [], f"{flag}={v}", f"{flag} must be between 0 and {_MAX}"))
    for command in ("train", "path", "tune"):
        cases.append((command, [], f"--max-state-mb={_2_64}", "max_state_mb must be at most 8,796,093,022,208 MiB"))
    return cases


_CLI_BASE = {
    "train": ["train", SYNTHETIC_SPEC, "{train}", "--out", "{d}/m.scx"],
    "path": ["path", SYNTHETIC_SPEC, "{train}", "--valid", "{valid}", "--l1", "0.3,1"],
    "tune": ["tune", SYNTHETIC_SPEC, "{train}", "--valid", "{valid}", "--out", "{d}/b.scx", "--alpha", "0.1",
             "--l1", "1"],
    "plot-weights": ["plot-weights", "{model}", "--out", "{d}/w.png"],
    "suggest-spec": ["suggest-spec", "{train}", "--label", "label", "--out", "{d}/s.toml"],
}


@pytest.mark.parametrize("command, extra, flag, fragment", _flag_cases(),
                         ids=lambda v: v[:30] if isinstance(v, str) else None)
def test_numeric_flags_refuse_impossible_values_before_any_work(command: str, extra: list[str], flag: str,
                                                                 fragment: str, world: SimpleNamespace,
                                                                 model_path: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Counts without an upper bound were taken whatever their size: train --checkpoint-every and
    --shuffle-buffer-rows of 4,000 digits (trained, wrote a checkpoint), path/tune --max-nonzeros
    and --max-bytes (a budget past any model), tune --search-crosses, plot-weights --max-cells,
    suggest-spec --sample-rows; --max-state-mb 2**64 MiB (2**84 bytes, past the int64 byte counts).
    Now one short line, exit 1, nothing written."""
    names = {"d": str(tmp_path), "train": str(world.train), "valid": str(world.valid), "model": str(model_path)}
    argv = [str(a).format(**names) for a in [*_CLI_BASE[command], *extra]] + [flag, "-q"]
    line = run_error(capsys, argv, fragment)
    assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, value, fragment", [
    *[("--l1", v, "l1 must be a finite number >= 0") for v in ("-1", "nan", "inf", "-inf", _BIG)],
    *[("--alpha", v, "alpha must be a finite number > 0") for v in ("-1", "0", "nan", "inf", _BIG)],
    *[(f, v, f"{f[2:]} must be a finite number {op} 0 and at most 1e+12")
      for f, op in (("--l1", ">="), ("--alpha", ">")) for v in (_PAST_BOUND, _2_64)],
], ids=lambda v: v[:12])
def test_demo_checks_its_training_parameters_before_generating(flag: str, value: str, fragment: str, tmp_path: Path,
                                                               no_rows: None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """demo --l1 -1 or --alpha nan were checked by train only, after the demo data (and the cache
    folder) had been generated.  Now one line before the cache is made."""
    cache = tmp_path / "cache"
    line = run_error(capsys, ["demo", "--cache", cache, "--no-path", "-q", f"{flag}={value}"], fragment)
    assert len(line) < 200, line
    assert not cache.exists()


def _ftrl_bound_cases() -> list[tuple[str, str, str]]:
    """(command, flag=value, fragment) for alpha, beta, l1 and l2 past their bound; a grid
    (path's --l1 and --l2, tune's --alpha and --l1) ends past it."""
    grids = {("path", "--l1"), ("path", "--l2"), ("tune", "--alpha"), ("tune", "--l1")}
    cases = []
    for command in ("train", "path", "tune"):
        for flag in ("--alpha", "--beta", "--l1", "--l2"):
            for v in (_PAST_BOUND, _2_64):
                value = f"0.5,{v}" if (command, flag) in grids else v
                cases.append((command, f"{flag}={value}", f"{flag[2:]}"))
    return cases


@pytest.mark.parametrize("command, flag, name", _ftrl_bound_cases(), ids=lambda v: v[:24])
def test_ftrl_flags_past_their_bound_are_one_line_before_any_work(command: str, flag: str, name: str,
                                                                  world: SimpleNamespace, model_path: Path,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """train --alpha 2**64 (or --l1 1e300) trained the whole run into a useless model (1e300
    into infinite weights, refused when saving).  alpha, beta, l1 and l2 are at most 1e12:
    one line naming the parameter and the bound, exit 1, nothing written."""
    names = {"d": str(tmp_path), "train": str(world.train), "valid": str(world.valid), "model": str(model_path)}
    argv = [str(a).format(**names) for a in _CLI_BASE[command]] + [flag, "-q"]
    line = run_error(capsys, argv, name, "at most 1e+12, got ")
    assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--alpha", "--beta", "--l1", "--l2"])
def test_train_dask_refuses_an_ftrl_flag_past_its_bound_before_a_cluster(flag: str, world: SimpleNamespace,
                                                                        tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With --dask the hyperparameters were checked by train_distributed, once a cluster had
    started: now before it."""

    def no_cluster(address: str) -> None:
        raise AssertionError("a cluster was started before the flags were checked")

    monkeypatch.setattr(sys.modules["sparsecross.cli_train"], "_dask_client", no_cluster)
    argv = ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", "-q", *_LOCAL, f"{flag}={_2_64}"]
    line = run_error(capsys, argv, f"{flag[2:]} must be a finite number", "at most 1e+12")
    assert len(line) < 200, line
    assert list(tmp_path.iterdir()) == []


def test_a_specs_ftrl_values_past_their_bound_are_refused_and_the_bound_is_taken(world: SimpleNamespace,
                                                                                tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]
                                                                                ) -> None:
    """[train] l1 = 1e13 is refused by check-spec and train alike (one line, nothing written);
    alpha = beta = l1 = l2 = 1e12, the bound, trains and saves a model."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SYNTHETIC_SPEC.read_text() + "\n[train]\nl1 = 1e13\n")
    run_error(capsys, ["check-spec", spec], "train.l1", "at most 1e+12")
    run_error(capsys, ["train", spec, world.train, "--out", tmp_path / "m.scx", "-q"], "train.l1", "at most 1e+12")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]
    out = tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "-q",
                    *[f"--{k}=1e12" for k in ("alpha", "beta", "l1", "l2")]])
    assert sx.load_model(out).params["l1"] == 1e12


def _api_calls(world: SimpleNamespace, model_path: Path, tmp_path: Path) -> dict[str, object]:
    from sparsecross.crosssearch import search_and_tune
    from sparsecross.path import regularization_path
    from sparsecross.plots import plot_weights_map
    from sparsecross.suggest import suggest_spec
    from sparsecross.tune import tune

    spec = sx.load_spec(SYNTHETIC_SPEC)
    t, v = world.train, world.valid
    return {
        "checkpoint_every": lambda x: sx.train(t, spec, checkpoint=tmp_path / "ck", checkpoint_every=x),
        "shuffle_buffer_rows": lambda x: sx.train(t, spec, shuffle=True, shuffle_buffer_rows=x),
        "max_state_mb": lambda x: sx.train(t, spec, max_state_mb=x),
        "max_nonzeros": lambda x: regularization_path(t, spec, l1=[1.0], valid=v, max_nonzeros=x),
        "max_bytes": lambda x: tune(t, spec, alpha=[0.1], l1=[1.0], valid=v, max_bytes=x),
        "k": lambda x: search_and_tune(t, spec, k=x, valid=v, alpha=[0.1], l1=[1.0]),
        "max_cells": lambda x: plot_weights_map(sx.load_model(model_path), tmp_path / "w.png", max_cells=x),
        "sample_rows": lambda x: suggest_spec(t, "label", sample_rows=x),
    }


@pytest.mark.parametrize("name", ["checkpoint_every", "shuffle_buffer_rows", "max_state_mb", "max_nonzeros",
                                  "max_bytes", "k", "max_cells", "sample_rows"])
@pytest.mark.parametrize("value", [-1, 10**4000, 2**64, "7", 2.5], ids=["-1", "4000-digits", "2^64", "str", "float"])
def test_api_refuses_the_same_values_with_a_parameter_error(name: str, value: object, world: SimpleNamespace,
                                                            model_path: Path, tmp_path: Path) -> None:
    """The Python API behind those flags: a ParameterError naming the parameter, before any work
    (a string or a float was a TypeError from a comparison, or taken)."""
    if name == "max_state_mb" and value in (-1, 2.5):
        value = 2**64 if value == 2.5 else -1  # a float number of MiB is a budget
    call = _api_calls(world, model_path, tmp_path)[name]
    with pytest.raises(sx.ParameterError, match=rf"^{name} must be "):
        call(value)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_of_another_run(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "1", "-q"])
    first = out.read_bytes()
    assert (ckpt / "state.npz").is_file()
    # the same command again resumes from the finished checkpoint: same model, byte for byte
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "1", "-q"])
    assert out.read_bytes() == first
    # another l1 with the same checkpoint folder: refused, and --out untouched
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "2"],
              "checkpoint", "another run", "params")
    assert out.read_bytes() == first
    # other data with the same folder: refused too
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.valid, "--out", out, "--checkpoint", ckpt, "--l1", "1"],
              "another run", "data")
    assert out.read_bytes() == first
    assert sorted(p.name for p in ckpt.iterdir()) == ["state.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "m.scx"]


def test_path_bad_grids(world: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid]
    run_error(capsys, base + ["--l1", "1,0.1"], "--l1", "increasing")
    run_error(capsys, base + ["--l1", "0.1,0.1"], "--l1", "increasing")
    run_error(capsys, base + ["--l1", ""], "--l1", "empty")
    run_error(capsys, base + ["--l1", ","], "--l1", "empty")
    run_error(capsys, base + ["--l1", "a,b"], "--l1", "numbers")
    run_error(capsys, base + ["--l1=-1,0"], "--l1", ">= 0")
    run_error(capsys, base + ["--l1", "0,inf"], "--l1", "finite")
    run_error(capsys, base + ["--l2", "1,0"], "--l2", "increasing")
    run_error(capsys, base + ["--out", "best.scx"], "budget")
    run_error(capsys, ["path", SYNTHETIC_SPEC, world.train, "--l1", "0,1", "-q"], "validation")


def test_path_budget_no_point_can_meet(world: SimpleNamespace, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,1", "-q"]
    line = run_error(capsys, base + ["--max-bytes", "100"], "no point meets the budget of 100 bytes",
                     "smallest model has")
    # the closest (smallest) model is named with its size and l1
    m = re.search(r"smallest model has ([\d,]+) \(l1=([\d.]+)", line)
    assert m and int(m.group(1).replace(",", "")) > 100 and float(m.group(2)) == 1.0
    line = run_error(capsys, base + ["--max-nonzeros", "3", "--out", tmp_path / "best.scx"],
                     "no point meets the budget of 3 nonzeros", "l1=1")
    m = re.search(r"smallest model has ([\d,]+)", line)
    spec = sx.load_spec(SYNTHETIC_SPEC)
    assert int(m.group(1).replace(",", "")) == sx.train(world.train, spec, l1=1.0).nonzeros
    assert not (tmp_path / "best.scx").exists()


def test_plot_without_matplotlib(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` -> ImportError
    with pytest.raises(ImportError):
        import matplotlib  # noqa: F401
    run_error(capsys, ["plot-weights", model_path, "--out", tmp_path / "map.png"], "matplotlib",
              "sparsecross[plot]")
    run_error(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,1",
                       "--plot", tmp_path / "path.png"], "matplotlib", "sparsecross[plot]")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ --debug
def test_debug_propagates_the_exception(world: SimpleNamespace, tmp_path: Path, model_path: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        main(["--debug", "train", str(tmp_path / "nope.toml"), str(world.train), "--out", str(tmp_path / "m.scx")])
    with pytest.raises(SpecError, match="does not exist"):  # --debug after the subcommand
        main(["train", str(tmp_path / "nope.toml"), str(world.train), "--out", str(tmp_path / "m.scx"), "--debug"])
    with pytest.raises(DataError, match="does not exist"):
        main(["--debug", "eval", str(model_path), str(tmp_path / "none.parquet")])
    with pytest.raises(sx.ArtifactError, match="not a sparsecross model"):
        main(["--debug", "inspect", str(world.valid)])
    with pytest.raises(SparseCrossError, match="alpha"):
        main(["--debug", "train", str(SYNTHETIC_SPEC), str(world.train), "--out", str(tmp_path / "m.scx"),
              "--alpha", "nan"])
    ckpt = tmp_path / "ck"
    assert main(["train", str(SYNTHETIC_SPEC), str(world.train), "--out", str(tmp_path / "m.scx"),
                 "--checkpoint", str(ckpt), "-q"]) == 0
    with pytest.raises(CheckpointError):
        main(["--debug", "train", str(SYNTHETIC_SPEC), str(world.train), "--out", str(tmp_path / "m.scx"),
              "--checkpoint", str(ckpt), "--l1", "3"])
    # the environment variable does the same
    monkeypatch.setenv("SPARSECROSS_DEBUG", "1")
    with pytest.raises(SchemaError):
        main(["predict", str(model_path), str(world.valid), "--out", str(tmp_path / "p.parquet"), "--keep", "nope"])
    capsys.readouterr()


# ------------------------------------------------------------------------ nothing lost
def test_failing_train_leaves_nothing(world: SimpleNamespace, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A train that fails after training on part of the data writes no --out and no temp file;
    an existing --out is left byte for byte."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(world.train, data / "a.parquet")
    bad_latitude_file(world, data / "b.parquet", [1234], [-91.5])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = listing(tmp_path)
    run_error(capsys, ["train", SYNTHETIC_SPEC, data, "--out", out_dir / "m.scx", "-q"],
              "'cell'", f"row {TRAIN_ROWS + 1234}")
    assert listing(tmp_path) == before

    # an existing model survives a failing train
    existing = out_dir / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", existing, "-q"])
    before = listing(tmp_path)
    run_error(capsys, ["train", SYNTHETIC_SPEC, data, "--out", existing, "-q"], "coordinates")
    assert listing(tmp_path) == before

    # ... and a failing predict leaves an existing prediction file alone
    pred = out_dir / "p.parquet"
    run_ok(capsys, ["predict", existing, world.valid, "--out", pred, "-q"])
    before = listing(tmp_path)
    run_error(capsys, ["predict", existing, data, "--out", pred, "--batch-rows", "1000"], "coordinates")
    assert listing(tmp_path) == before


def test_failing_save_leaves_nothing(world: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "-q", "--l1", "3"])
    before = listing(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    import sparsecross.export as export

    monkeypatch.setattr(export.os, "fsync", broken_fsync)
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "-q", "--l1", "0.3"],
              "cannot write model file", "m.scx", "No space left")
    monkeypatch.undo()
    assert listing(tmp_path) == before


def test_an_os_error_of_two_paths_names_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A failing rename names its source and its target (the line named the source alone)."""
    import sparsecross.cli_commands as commands
    from sparsecross.errors import shown_path

    source, target = tmp_path / "missing.scx", tmp_path / "no-such-folder" / "m.scx"
    monkeypatch.setattr(commands, "cmd_inspect", lambda args: os.rename(source, target))
    line = run_error(capsys, ["inspect", "m.scx"])
    assert line.endswith(f"No such file or directory: {shown_path(str(source))} -> {shown_path(str(target))}"), line


def test_an_os_error_of_two_hostile_paths_names_both_short() -> None:
    from sparsecross.cli_output import _one_line
    from tests.hostile import assert_short, hostile_name

    first, second = hostile_name(filler="a") + "first.scx", hostile_name(filler="b") + "second.scx"
    line = _one_line(OSError(18, "Invalid cross-device link", first, None, second))
    assert_short(line)
    assert line.startswith("Invalid cross-device link: ...") and "first.scx' -> ..." in line, line
    assert line.endswith("second.scx'"), line


# ----------------------------------------------------------------------- JSON validity
def _strict_json(text: str) -> dict:
    def reject(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=reject)


def test_json_outputs_are_strict_json(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _strict_json(run_ok(capsys, ["eval", model_path, world.valid, "--json"]))
    _strict_json(run_ok(capsys, ["inspect", model_path, "--json"]))
    _strict_json(run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", tmp_path / "m.scx", "--json",
                                 "--valid", world.valid]))
    _strict_json(run_ok(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "1,3",
                                 "--json"]))


def test_inspect_json_of_empty_model_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = sx.load_spec(SYNTHETIC_SPEC)
    empty = sx.SparseModel(np.zeros(0, np.uint64), np.zeros(0, np.float32), -1.0, spec)
    path = tmp_path / "empty.scx"
    sx.save_model(empty, path)
    info = _strict_json(run_ok(capsys, ["inspect", path, "--json"]))
    assert info["nonzeros"] == 0


# -------------------------------------------------------------------- installed scripts
def test_installed_entry_points(world: SimpleNamespace, tmp_path: Path) -> None:
    """`python -m sparsecross` and the `sparsecross` console script, in a subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "SPARSECROSS_DEBUG"}
    r = subprocess.run([sys.executable, "-m", "sparsecross", "--version"], capture_output=True, text=True,
                       env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"sparsecross {sx.__version__}"

    script = Path(sys.executable).with_name("sparsecross")
    exe = str(script) if script.is_file() else shutil.which("sparsecross")
    if exe is None:
        pytest.skip("the sparsecross console script is not installed")
    out = tmp_path / "m.scx"
    r = subprocess.run([exe, "train", str(SYNTHETIC_SPEC), str(world.train), "--valid", str(world.valid),
                        "--out", str(out), "--json"], capture_output=True, text=True, env=env, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["rows"] == TRAIN_ROWS and report["nonzeros"] > 0 and math.isfinite(report["valid_logloss"])
    assert out.stat().st_size == report["model_bytes"]
    # a usage error exits 2, a bad-input error 1 with one line
    r = subprocess.run([exe, "eval", str(world.valid), str(world.valid)], capture_output=True, text=True,
                       env=env, timeout=120, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("sparsecross: error:") and "Traceback" not in r.stderr


def test_inspect_text_of_empty_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = sx.load_spec(SYNTHETIC_SPEC)
    path = tmp_path / "empty.scx"
    sx.save_model(sx.SparseModel(np.zeros(0, np.uint64), np.zeros(0, np.float32), -1.0, spec), path)
    out = run_ok(capsys, ["inspect", path])
    assert "nonzeros 0 of" in out and "n/a bytes per nonzero" in out
    assert "format 1.1" in out  # the version read from the file's header


def test_output_checks_come_before_the_work(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """`path` checks --out and --plot before training; `predict` never overwrites its input."""
    import sparsecross.path as path_module

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained before checking the output")

    monkeypatch.setattr(path_module, "_train_many", no_training)
    base = ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--max-nonzeros", "100"]
    run_error(capsys, base + ["--out", tmp_path / "nodir" / "b.scx"], "nodir", "does not exist")
    copy = tmp_path / "input.parquet"
    copy.write_bytes(Path(world.train).read_bytes())
    before = copy.read_bytes()
    run_error(capsys, ["predict", model_path, copy, "--out", copy], "is an input data file")
    assert copy.read_bytes() == before


# a value argparse itself refuses (a number that is not one, a choice that is not offered, an
# unknown argument) is echoed short and escaped, on argparse's one error line, exit 2
_HUGE = "9" * 5_000
_NASTY = "1\x1b[31m\nforged line\r\x07"


@pytest.mark.parametrize("argv", [
    ["train", "spec.toml", "data.parquet", "--epochs", _HUGE],
    ["train", "spec.toml", "data.parquet", "--epochs", "x" * 1_000_000],
    ["train", "spec.toml", "data.parquet", "--alpha", _NASTY],
    ["train", "spec.toml", "data.parquet", "--state-bits", "9" * 4_000],
    ["generate", "out.parquet", "--rows", _NASTY],
    ["predict", "m.sxm", "d.parquet", "--batch-rows", "1" + "0" * 9_000],
    ["tune", "spec.toml", "data.parquet", "--min-gain", "e" * 100_000],
    ["train", "spec.toml", "data.parquet", "--no-such-flag", "x" * 100_000],
    ["train", "spec.toml", "data.parquet", "--mode", _NASTY * 1_000],
])
def test_refused_arguments_are_echoed_short_and_escaped(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and len(error_lines[0]) < 400, error_lines
    assert not any(ch in err for ch in "\x1b\r\x07")  # control characters escaped, not written


# a path, address or name typed on the command line is named short in the error line, whatever
# refuses it (our own checks, or the operating system: "File name too long" quotes it whole)
_LONG = "x" * 1_000_000
_DEEP = "nodir" + "d" * 5_000 + "/f.parquet"  # a folder name the system refuses as too long


@pytest.mark.parametrize("argv", [
    ["predict", _LONG, "{train}", "--out", "{tmp}/p.parquet"],
    ["predict", "{model}", _LONG, "--out", "{tmp}/p.parquet"],
    ["predict", "{model}", "{train}", "--out", _DEEP],
    ["inspect", _DEEP],
    ["check-spec", _LONG],
    ["train", "{spec}", "{train}", "--valid", _DEEP, "--out", "{tmp}/m.scx"],
    ["train", "{spec}", "zz*" + "q" * 5_000, "--out", "{tmp}/m.scx"],
    ["train", "{spec}", "{train}", "--dask", _LONG, "--out", "{tmp}/m.scx"],
    ["generate", "--out", _DEEP, "--rows", "10"],
    ["path", "{spec}", "{train}", "--holdout", "0.2", "--plot", _LONG],
    ["plot-weights", "{model}", "--out", _LONG],
    ["plot-weights", "{model}", "--out", "{tmp}/p.png", "--feature", _LONG],
    ["suggest-spec", "{train}", "--label", "label", "--out", _DEEP],
])
def test_long_paths_and_names_are_named_short(argv, world: SimpleNamespace, model_path: Path,
                                              tmp_path: Path, capsys) -> None:
    where = {"train": world.train, "model": model_path, "spec": SYNTHETIC_SPEC, "tmp": tmp_path}
    line = run_error(capsys, [a.format(**where) if len(a) < 100 else a for a in argv])
    assert len(line) < 400, line[:500]


@pytest.mark.parametrize("command", ["train", "predict", "eval"])
def test_a_huge_batch_rows_is_refused_in_one_line(world, command, capsys):
    """--batch-rows past 2**31 - 1 (a batch that large cannot be read) was an OverflowError
    reported as a bug; now one line naming the flag's bounds."""
    huge = str(10**20)
    if command == "train":
        argv = ["train", str(SYNTHETIC_SPEC), str(world.train), "--out", str(world.dir / "huge.sxm")]
    else:
        model = world.dir / "for-huge.sxm"
        if not model.exists():
            assert main(["train", str(SYNTHETIC_SPEC), str(world.train), "--out", str(model), "-q"]) == 0
        argv = [command, str(model), str(world.valid)] + (["--out", str(world.dir / "huge.parquet")]
                                                         if command == "predict" else [])
    assert main(argv + ["--batch-rows", huge, "-q"]) == 1
    err = capsys.readouterr().err
    assert "batch_rows must be between 1 and 2,147,483,647" in err and "bug" not in err
    assert len(err.strip().splitlines()) == 1


def test_batch_rows_bounds_in_the_api(world):
    for bad in (0, 2**31, 10**20):
        with pytest.raises(sx.ParameterError, match="batch_rows must be between 1 and 2,147,483,647"):
            sx.train(world.train, sx.load_spec(SYNTHETIC_SPEC), batch_rows=bad)


def test_a_hostile_model_file_is_named_short(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                            capsys) -> None:
    """A damaged model in a ~3,500-character folder of control characters, or one whose metadata
    holds 5,000 characters of them: one short error line, exit 1 (it was 3.5 KB, 5 KB)."""
    from tests.hostile import assert_short, hostile_folder, hostile_name
    from tests.test_export import dump_meta, meta_of, rebuild

    data = model_path.read_bytes()
    damaged = hostile_folder(tmp_path) / "m.scx"
    damaged.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    meta = meta_of(data)
    contract = tmp_path / "contract.scx"
    contract.write_bytes(rebuild(data, meta=dump_meta({**meta, "hash_contract": hostile_name()})))
    for model in (damaged, contract):
        for argv in (["inspect", model], ["predict", model, world.train, "--out", tmp_path / "p.parquet"]):
            assert_short(run_error(capsys, argv))


@pytest.mark.parametrize("lead", range(12))
def test_a_cut_argparse_message_never_splits_an_escape(lead, capsys):
    """argparse's message is cut to ~300 characters after its control characters are escaped:
    the cut falls before or after an escape (``\\x1b``), never inside it (wherever it falls)."""
    with pytest.raises(SystemExit):
        main(["train", "spec.toml", "data.parquet", "--out", "m.scx", "--no-such-flag", "a" * lead + "\x1b" * 200])
    line = next(line for line in capsys.readouterr().err.splitlines() if "error:" in line)
    assert line.endswith("...") and len(line) < 400, line
    assert "\\" not in re.sub(r"\\x1b", "", line[:-3]), line[-40:]  # only whole escapes


def test_a_hostile_checkpoint_is_named_short(world: SimpleNamespace, tmp_path: Path, capsys) -> None:
    """A damaged or foreign checkpoint in a ~3,500-character folder of control characters: one
    short error line, exit 1 (the path was written twice whole: 7 KB)."""
    from tests.hostile import assert_short, hostile_folder

    ckpt = hostile_folder(tmp_path) / "ck"
    out = tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "1", "-q"])
    assert_short(run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt,
                                    "--l1", "2"]))
    (ckpt / "state.npz").write_bytes(b"garbage")
    assert_short(run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt,
                                    "--l1", "1"]))


def test_a_checkpoint_member_header_numpy_cannot_tokenize(world: SimpleNamespace, tmp_path: Path, capsys) -> None:
    """A checkpoint member whose ``.npy`` header has a newline inside an unclosed string: one
    error line naming the member, exit 1 (NumPy's tokenize.TokenError was reported as a bug)."""
    from tests.hostile import npy_header, npz_with_member

    ckpt, out = tmp_path / "ck", tmp_path / "m.scx"
    run_ok(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "1", "-q"])
    with np.load(ckpt / "state.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = npy_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': \"\"\"\n")
    (ckpt / "state.npz").write_bytes(npz_with_member(arrays, "bias", header + bytes(16)))
    run_error(capsys, ["train", SYNTHETIC_SPEC, world.train, "--out", out, "--checkpoint", ckpt, "--l1", "1"],
              "checkpoint", "member 'bias'")


def test_hostile_data_paths_are_named_short(world: SimpleNamespace, model_path: Path, tmp_path: Path,
                                            capsys) -> None:
    """Data files in a ~3,500-character folder of control characters: one short error line."""
    from tests.hostile import assert_short, hostile_folder

    d = hostile_folder(tmp_path)
    (d / "bad.parquet").write_bytes(b"garbage" * 10)
    pq.write_table(pa.table({"zzz": [1]}), d / "nocol.parquet")
    for data in (d / "bad.parquet", d / "nocol.parquet", d / "empty"):
        assert_short(run_error(capsys, ["train", SYNTHETIC_SPEC, data, "--out", tmp_path / "m.scx"]))
        assert_short(run_error(capsys, ["predict", model_path, data, "--out", tmp_path / "p.parquet"]))


def test_a_missing_file_in_a_hostile_folder_is_named_by_its_file_name(tmp_path: Path, capsys) -> None:
    """A spec, model or data file missing from a ~3,500-character folder of control characters:
    one short line that names the file (the folder's start was shown, the file name cut off)."""
    from tests.hostile import assert_short, hostile_folder

    d = hostile_folder(tmp_path)
    for argv, name in ((["check-spec", d / "my-spec.toml"], "my-spec.toml"),
                       (["inspect", d / "my-model.scx"], "my-model.scx"),
                       (["train", SYNTHETIC_SPEC, d / "my-data.parquet", "--out", tmp_path / "m.scx"], "my-data.parquet")):
        assert_short(run_error(capsys, argv, f"/{name}'"))


def test_an_invalid_spec_in_a_hostile_folder_is_named_short(tmp_path: Path, capsys) -> None:
    """An invalid spec file in a ~3,500-character folder of control characters: one short line
    that names the file (its path was written whole, raw control characters included)."""
    from tests.hostile import assert_short, hostile_folder

    spec = hostile_folder(tmp_path) / "bad-spec.toml"
    spec.write_text("[hashing]\nbits = 99\n")
    assert_short(run_error(capsys, ["check-spec", spec], "/bad-spec.toml': spec: "))


def test_hostile_feature_and_column_names_are_named_short(tmp_path: Path, capsys) -> None:
    """A spec naming a 5,000-character feature and a column of 5,000 characters with control
    characters, over data whose column has the wrong type: one short error line."""
    from tests.hostile import CONTROL, assert_short

    col = CONTROL + "c" * 5_000
    escaped = "".join(f"\\u{ord(c):04x}" if not c.isprintable() else c for c in col)
    spec = tmp_path / "s.toml"
    spec.write_text(f'[label]\ncolumn = "y"\n\n[[features]]\nname = "{"n" * 5_000}"\nkind = "categorical"\n'
                    f'column = "{escaped}"\n')
    pq.write_table(pa.table({col: [1.5, 2.5], "y": [0, 1]}), tmp_path / "d.parquet")
    assert_short(run_error(capsys, ["train", spec, tmp_path / "d.parquet", "--out", tmp_path / "m.scx"]))
