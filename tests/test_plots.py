"""Tests of the plots (sparsecross.plots): `path --plot` and `plot-weights` write PNG files of
the requested size; bad requests give one clear error line.  Skipped without matplotlib."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("matplotlib")

import sparsecross as sx  # noqa: E402
from sparsecross.cli import main  # noqa: E402
from sparsecross.errors import SparseCrossError  # noqa: E402
from sparsecross.path import regularization_path  # noqa: E402
from sparsecross.plots import plot_path, plot_weights_map  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

NO_GEO_SPEC = """
[label]
column = "label"

[hashing]
bits = 12

[[features]]
name = "device"
kind = "categorical"
column = "device"

[[features]]
name = "age"
kind = "bucket"
column = "age"
boundaries = [25.0, 35.0, 45.0, 55.0, 65.0]
"""


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the signature and the chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG: {data[:8]!r}"
    length, ctype = struct.unpack(">I4s", data[8:16])
    assert ctype == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    (crc,) = struct.unpack(">I", data[16 + length:20 + length])
    assert crc == zlib.crc32(data[12:16 + length])
    assert data[-8:-4] == b"IEND"
    return width, height


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("plots_world")
    train = sx.generate(d / "train.parquet", rows=8000, seed=5)
    valid = sx.generate(d / "valid.parquet", rows=2000, seed=5, first_row=8000)
    spec = sx.load_spec(SYNTHETIC_SPEC)
    model = sx.train(train, spec, l1=0.3)
    model_path = d / "model.scx"
    sx.save_model(model, model_path)
    no_geo_spec = d / "nogeo.toml"
    no_geo_spec.write_text(NO_GEO_SPEC)
    no_geo = sx.train(train, sx.load_spec(no_geo_spec), l1=0.1)
    no_geo_path = d / "nogeo.scx"
    sx.save_model(no_geo, no_geo_path)
    return SimpleNamespace(train=train, valid=valid, spec=spec, model=model, model_path=model_path,
                           no_geo_path=no_geo_path)


def run(capsys: pytest.CaptureFixture[str], argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(rc: int, err: str, *fragments: str) -> None:
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsecross: error:"), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize(("width", "height"), [(333, 257)])
def test_cli_path_plot(width: int, height: int, world: SimpleNamespace, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "path.png"
    rc, stdout, err = run(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,0.3,1,3",
                                   "--plot", out, "--plot-width", width, "--plot-height", height, "-q"])
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    assert png_size(out) == (width, height)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.png"]  # no temporary file left


def test_cli_path_plot_with_budget_and_default_size(world: SimpleNamespace, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "path.PNG"
    rc, _, err = run(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0.3,1,3,10",
                              "--max-nonzeros", 300, "--out", tmp_path / "best.scx", "--plot", out, "-q"])
    assert rc == 0, err
    assert png_size(out) == (1200, 500)
    assert sx.load_model(tmp_path / "best.scx").nonzeros <= 300


@pytest.mark.parametrize(("width", "height"), [(701, 333)])
def test_cli_plot_weights(width: int, height: int, world: SimpleNamespace, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    rc, stdout, err = run(capsys, ["plot-weights", world.model_path, "--out", out, "--width", width,
                                   "--height", height])
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    assert png_size(out) == (width, height)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]
    rc, _, err = run(capsys, ["plot-weights", world.model_path, "--out", out, "--feature", "cell", "-q"])
    assert rc == 0, err
    assert png_size(out) == (1400, 750)


def test_plot_weights_without_geo_feature(world: SimpleNamespace, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, ["plot-weights", world.no_geo_path, "--out", tmp_path / "map.png"])
    assert_one_error_line(rc, err, "no standalone geo feature")
    rc, _, err = run(capsys, ["plot-weights", world.model_path, "--out", tmp_path / "map.png", "--feature", "device"])
    assert_one_error_line(rc, err, "'device'", "cell")
    assert list(tmp_path.iterdir()) == []


def test_non_png_names(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, ["plot-weights", world.model_path, "--out", tmp_path / "map.jpg"])
    assert_one_error_line(rc, err, "PNG", "map.jpg")
    rc, _, err = run(capsys, ["plot-weights", world.model_path, "--out", tmp_path / "map"])
    assert_one_error_line(rc, err, "PNG")
    rc, _, err = run(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,1",
                              "--plot", tmp_path / "path.svg"])
    assert_one_error_line(rc, err, ".png", "path.svg")
    rc, _, err = run(capsys, ["plot-weights", world.model_path, "--out", tmp_path / "nodir" / "map.png"])
    assert_one_error_line(rc, err, "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_python_api(world: SimpleNamespace, tmp_path: Path) -> None:
    res = regularization_path(world.train, world.spec, l1=[0.0, 1.0], valid=world.valid)
    l2 = regularization_path(world.train, world.spec, l1=[0.0], l2=[1.0, 100.0], valid=world.valid)
    out = plot_path(res.points, tmp_path / "p.png", l2_points=l2.points, width=500, height=300)
    assert out == tmp_path / "p.png" and png_size(out) == (500, 300)
    out = plot_path(res.points, tmp_path / "p1.png", chosen=res.points[1], width=300, height=200)
    assert png_size(out) == (300, 200)
    out = plot_weights_map(world.model, tmp_path / "m.png", width=320, height=160)
    assert png_size(out) == (320, 160)
    with pytest.raises(SparseCrossError, match="png"):
        plot_weights_map(world.model, tmp_path / "m.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "p.png", "p1.png"]
