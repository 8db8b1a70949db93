"""Tests of the plots (sparsecross.plots): the PNGs have the requested size and show what was
asked: the map zooms to the model's cells (rectangles computed here from the grid arithmetic),
its colour scale is symmetric around zero and a positive cell is red at its pixel; the summed
geo effect equals the weights summed by hand (hashed crosses through the reference hash); the
path plot draws l1 = 0 apart and one line per l2 and reports the matched pair; the tune heat map
has the grid's shape and marks the best cell.  Bad requests give one error line.  Skipped
without matplotlib."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402
from matplotlib.image import imread  # noqa: E402

import sparsecross as sx  # noqa: E402
from sparsecross.cli import main  # noqa: E402
from sparsecross.errors import SparseCrossError  # noqa: E402
from sparsecross.path import regularization_path  # noqa: E402
from sparsecross.plots import plot_path, plot_tune, plot_weights_map  # noqa: E402
from sparsecross.plots.path import matched_pair  # noqa: E402
from tests.reference import hashing_reference as HR  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"
MELBOURNE = REPO_ROOT.parent / "shared" / "data" / "melbourne_housing" / "melb_data.parquet"

# A small area (about 30 x 20 km): pyramid 6' and 2' with bands, a geo x non-geo cross (not a
# geo effect), an exact geo x geo cross and a hashed geo x geo cross.
SMALL_SPEC = """
[label]
column = "y"
[hashing]
bits = 16
[[features]]
name = "cell"
kind = "geo"
lat = "la"
lon = "lo"
resolution_arcmin = [6, 2]
bands = true
[[features]]
name = "device"
kind = "categorical"
column = "device"
[[crosses]]
features = ["cell@6", "device"]
[[crosses]]
features = ["cell.lat@6", "cell.lon@2"]
[[crosses]]
features = ["cell@6", "cell.lat@2"]
mode = "hashed"
"""
BOX = (144.8, -38.0, 145.3, -37.7)  # lon0, lat0, lon1, lat1 of the generated points

NO_GEO_SPEC = """
[label]
column = "label"
[hashing]
bits = 12
[[features]]
name = "device"
kind = "categorical"
column = "device"
"""


def small_area_table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(BOX[0], BOX[2], n), rng.uniform(BOX[1], BOX[3], n)
    logit = 2.5 * ((lat > -37.85) & (lon > 145.05)) - 2.5 * ((lat < -37.9) & (lon < 144.95))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pa.table({"la": lat, "lo": lon, "device": rng.choice(["a", "b", "c"], n), "y": y})


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("plots_small")
    (d / "s.toml").write_text(SMALL_SPEC)
    spec = sx.load_spec(d / "s.toml")
    model = sx.train(small_area_table(6000, 0), spec, l1=0.05, epochs=2)
    sx.save_model(model, d / "small.scx")
    return SimpleNamespace(spec=spec, model=model, path=d / "small.scx")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("plots_world")
    train = sx.generate(d / "train.parquet", rows=6000, seed=5)
    valid = sx.generate(d / "valid.parquet", rows=2000, seed=5, first_row=6000)
    (d / "nogeo.toml").write_text(NO_GEO_SPEC)
    no_geo = sx.train(train, sx.load_spec(d / "nogeo.toml"), l1=0.1)
    sx.save_model(no_geo, d / "nogeo.scx")
    return SimpleNamespace(train=train, valid=valid, spec=sx.load_spec(SYNTHETIC_SPEC), no_geo_path=d / "nogeo.scx")


def run(capsys: pytest.CaptureFixture[str], argv: list) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error_line(rc: int, err: str, *fragments: str) -> None:
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparsecross: error:"), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def png_pixels(path: Path) -> np.ndarray:
    """RGBA floats [height, width, 4] of a PNG (matplotlib reads PNG natively)."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


def cells_by_hand(model: sx.SparseModel, name: str) -> tuple[np.ndarray, ...]:
    """(lat0, lat1, lon0, lon1, weight) of the nonzero cells of geo cell block ``name``, from
    the grid arithmetic (cells of r arc-minutes numbered row-major from (-90, -180))."""
    o = next(o for o in model.spec.outputs if o.name == name)
    f = model.spec.features[o.components[0]]
    r = f.resolution_arcmin
    n_lat, n_lon = math.ceil(10800 / r), math.ceil(21600 / r)
    keys = model.keys.astype(np.int64)
    sel = (keys >= o.offset) & (keys < o.offset + n_lat * n_lon)
    lid = keys[sel] - o.offset
    i, j = lid // n_lon, lid % n_lon
    return (-90 + i * r / 60, -90 + (i + 1) * r / 60, -180 + j * r / 60, -180 + (j + 1) * r / 60,
            model.weights[sel].astype(np.float64))


def pixel_of(info: dict, lon: float, lat: float) -> tuple[int, int]:
    """Image (row, column) of a point, from the axes' pixel box and data limits."""
    left, top, right, bottom = info["axes_pixels"]
    lon0, lat0, lon1, lat1 = info["extent"]
    x = left + (lon - lon0) / (lon1 - lon0) * (right - left)
    y = bottom - (lat - lat0) / (lat1 - lat0) * (bottom - top)
    return int(y), int(x)


# ------------------------------------------------------------------------------- the map


def test_map_zooms_to_the_cells_and_draws_them_in_colour(small: SimpleNamespace, tmp_path: Path) -> None:
    res = plot_weights_map(small.model, tmp_path / "m.png", feature="cell@2", name="small.scx",
                           width=900, height=700)
    px = png_pixels(res.path)
    assert px.shape[:2] == (700, 900)
    lat0, lat1, lon0, lon1, w = cells_by_hand(small.model, "cell@2")
    assert len(w) > 20 and (w > 0).any() and (w < 0).any()
    e0, a0, e1, a1 = res.info["extent"]
    # the view holds every cell, and is no more than the cells' extent padded by 5% + rounding
    assert e0 <= lon0.min() and e1 >= lon1.max() and a0 <= lat0.min() and a1 >= lat1.max()
    span_lon, span_lat = lon1.max() - lon0.min(), lat1.max() - lat0.min()
    assert e1 - e0 <= span_lon * 1.11 and a1 - a0 <= span_lat * 1.11
    assert span_lon < 1 and span_lat < 1  # a small area, not the world
    assert res.info["vmin"] == -res.info["vmax"] > -np.inf and res.info["vmax"] == pytest.approx(np.abs(w).max())
    assert res.info["cells"] == len(w) and res.info["block"] == 1
    assert "small.scx" in res.info["title"] and "cell@2" in res.info["title"] and f"{len(w):,}" in res.info["title"]
    cmap = matplotlib.colormaps["RdBu_r"]
    for k in np.argsort(-np.abs(w))[:5]:  # the strongest cells: their centre pixel has their colour
        row, col = pixel_of(res.info, (lon0[k] + lon1[k]) / 2, (lat0[k] + lat1[k]) / 2)
        r, g, b = px[row, col, :3]
        want = cmap(0.5 + w[k] / (2 * res.info["vmax"]))[:3]
        assert np.abs(np.array([r, g, b]) - want).max() < 0.02, (w[k], (r, g, b), want)
        assert (r > b + 0.2) if w[k] > 0 else (b > r + 0.2)  # red positive, blue negative


def test_map_bbox_and_downsampling(small: SimpleNamespace, tmp_path: Path) -> None:
    res = plot_weights_map(small.model, tmp_path / "b.png", feature="cell@2", bbox="144.9,-37.95,145.2,-37.75",
                           width=400, height=300)
    assert res.info["extent"] == (144.9, -37.95, 145.2, -37.75)
    lat0, lat1, lon0, lon1, w = cells_by_hand(small.model, "cell@2")
    inside = (lon1 > 144.9) & (lon0 < 145.2) & (lat1 > -37.95) & (lat0 < -37.75)
    assert res.info["cells"] == int(inside.sum())
    # a grid larger than max_cells is averaged into k x k blocks: the drawn mean times k*k cells
    # is the sum of the block's weights, and the total is the sum over the view's cells
    full = plot_weights_map(small.model, tmp_path / "f.png", feature="cell@2", max_cells=10, width=400, height=300)
    raster = full.info["raster"]
    k = full.info["block"]
    assert k > 1 and raster.values.size <= 10 and f"{k} x {k}" in full.info["title"]
    ni = len(raster.lat_edges) - 1
    assert ni == raster.values.shape[0]
    assert np.nansum(raster.values * _block_cells(raster, k)) == pytest.approx(w.sum(), rel=1e-6)
    same = plot_weights_map(small.model, tmp_path / "n.png", feature="cell@2", max_cells=np.int64(10), width=400,
                            height=300)  # a NumPy integer is an integer
    assert same.info["block"] == k and np.array_equal(same.info["raster"].values, raster.values, equal_nan=True)
    for bad in (True, 10.0, 0):
        with pytest.raises(SparseCrossError, match="max_cells must be between 1 and"):
            plot_weights_map(small.model, tmp_path / "x.png", feature="cell@2", max_cells=bad)


def _block_cells(raster, k: int) -> np.ndarray:
    r = raster.resolution_arcmin / 60
    rows = np.round(np.diff(raster.lat_edges) / r)
    cols = np.round(np.diff(raster.lon_edges) / r)
    assert rows.max() == k and cols.max() == k
    return rows[:, None] * cols[None, :]


def _hand_effect(model: sx.SparseModel, lat: float, lon: float) -> float:
    """The weights of every geo block at (lat, lon) summed by hand: exact blocks by the mixed
    radix layout, the hashed cross by the reference hash; the geo x device cross left out."""
    spec = model.spec
    table = dict(zip(model.keys.astype(np.int64).tolist(), model.weights.astype(np.float64).tolist()))

    def lid(name: str) -> int:
        f = spec.features[spec.feature_index[name]]
        r = f.resolution_arcmin / 60
        i, j = math.floor((lat + 90) / r), math.floor((lon + 180) / r)
        n_lon = math.ceil(21600 / f.resolution_arcmin)
        return {"geo": i * n_lon + j, "lat": i, "lon": j}[f.kind]

    def card(name: str) -> int:
        return int(spec.features[spec.feature_index[name]].cardinality)

    total = 0.0
    offsets = {o.name: o.offset for o in spec.outputs if o.kind == 0}
    for name in ("cell@6", "cell.lat@6", "cell.lon@6", "cell@2", "cell.lat@2", "cell.lon@2"):
        total += table.get(offsets[name] + lid(name), 0.0)
    total += table.get(offsets["cell.lat@6*cell.lon@2"] + lid("cell.lat@6") * card("cell.lon@2") + lid("cell.lon@2"),
                       0.0)
    key = HR.cross_key("cell@6*cell.lat@2", [lid("cell@6"), lid("cell.lat@2")], spec.hashing.seed)
    total += table.get(HR.hashed_column(key, spec.hashing.bits, spec.hashed_offset), 0.0)
    return total


def test_summed_geo_effect_equals_the_hand_sum(small: SimpleNamespace, tmp_path: Path) -> None:
    model = small.model
    blocks = {o.name: o for o in model.spec.outputs}
    keys = model.keys.astype(np.int64)
    o = blocks["cell@6*device"]  # the geo x non-geo cross has weights, which must stay out
    assert o.kind == 2 and len(model.keys) > 0
    assert ((keys >= blocks["cell.lat@6*cell.lon@2"].offset)
            & (keys < blocks["cell.lat@6*cell.lon@2"].offset + blocks["cell.lat@6*cell.lon@2"].cardinality)).any()
    res = plot_weights_map(model, tmp_path / "e.png", geo_effect=True, name="small.scx", width=500, height=400)
    raster = res.info["raster"]
    assert raster.resolution_arcmin == 2.0 and "cell@6*device" not in res.info["outputs"]
    assert set(res.info["outputs"]) == {"cell@6", "cell.lat@6", "cell.lon@6", "cell@2", "cell.lat@2", "cell.lon@2",
                                        "cell.lat@6*cell.lon@2", "cell@6*cell.lat@2"}
    assert "crosses with non-geo features not included" in res.info["title"]
    lat_c = (raster.lat_edges[:-1] + raster.lat_edges[1:]) / 2
    lon_c = (raster.lon_edges[:-1] + raster.lon_edges[1:]) / 2
    assert np.allclose(np.diff(raster.lat_edges), 2 / 60) and np.allclose(np.diff(raster.lon_edges), 2 / 60)
    rng = np.random.default_rng(1)
    for _ in range(60):
        i, j = rng.integers(len(lat_c)), rng.integers(len(lon_c))
        assert raster.values[i, j] == pytest.approx(_hand_effect(model, lat_c[i], lon_c[j]), abs=1e-9)
    assert res.info["vmax"] == -res.info["vmin"] == pytest.approx(np.abs(raster.values).max())
    # the planted effect: positive in the north-east, negative in the south-west
    assert raster.values[lat_c > -37.8][:, lon_c > 145.1].mean() > 0.5
    assert raster.values[lat_c < -37.92][:, lon_c < 144.93].mean() < -0.5


def test_geo_effect_grid_limit(small: SimpleNamespace, tmp_path: Path) -> None:
    with pytest.raises(SparseCrossError, match="more than the limit of 100"):
        plot_weights_map(small.model, tmp_path / "e.png", geo_effect=True, max_cells=100)
    with pytest.raises(SparseCrossError, match="more than the limit"):  # never a world raster
        plot_weights_map(small.model, tmp_path / "e.png", geo_effect=True, bbox="-180,-90,180,90")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not MELBOURNE.exists(), reason=f"{MELBOURNE} absent")
def test_melbourne_map_is_zoomed_on_melbourne(tmp_path: Path) -> None:
    t = pq.read_table(MELBOURNE, columns=["Lattitude", "Longtitude", "Price", "Rooms"])
    price = t.column("Price").to_numpy()
    t = t.append_column("y", pa.array((price > np.median(price)).astype(np.int8)))
    (tmp_path / "m.toml").write_text("""
[label]
column = "y"
[[features]]
name = "place"
kind = "geo"
lat = "Lattitude"
lon = "Longtitude"
resolution_arcmin = [10, 2]
bands = true
invalid = "missing"
""")
    model = sx.train(t, sx.load_spec(tmp_path / "m.toml"), l1=0.1)
    res = plot_weights_map(model, tmp_path / "melb.png", name="melb.scx", width=600, height=500)
    lon0, lat0, lon1, lat1 = res.info["extent"]
    assert 144 < lon0 < lon1 < 146.5 and -39 < lat0 < lat1 < -37, res.info["extent"]
    assert res.info["cells"] > 100
    assert png_pixels(res.path).shape[:2] == (500, 600)
    eff = plot_weights_map(model, tmp_path / "eff.png", geo_effect=True, width=600, height=500)
    assert eff.info["resolution_arcmin"] == 2.0 and eff.info["cells"] > res.info["cells"] / 2


def test_cli_plot_weights(small: SimpleNamespace, world: SimpleNamespace, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "map.png"
    rc, stdout, err = run(capsys, ["plot-weights", small.path, "--out", out, "--width", 701, "--height", 333,
                                   "--geo-effect"])
    assert rc == 0, err
    assert stdout.startswith(f"wrote {out} (")
    assert png_pixels(out).shape[:2] == (333, 701)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", out, "--feature", "cell.lat@6", "-q",
                              "--bbox", "144.9,-38,145.1,-37.8"])
    assert rc == 0, err
    for bad, frag in (("1,2,3", "LON0,LAT0,LON1,LAT1"), ("145,-37,144,-36", "LON0 < LON1"),
                      ("144,-37,145,-95", "LAT0 < LAT1"), ("a,b,c,d", "got 'a,b,c,d'")):
        rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.png", "--bbox", bad])
        assert_one_error_line(rc, err, "--bbox", frag)
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.png", "--bbox", "0,0,1,1"])
    assert_one_error_line(rc, err, "no nonzero geo weight inside the view 0,0,1,1")
    rc, _, err = run(capsys, ["plot-weights", world.no_geo_path, "--out", tmp_path / "x.png"])
    assert_one_error_line(rc, err, "no standalone geo feature")
    rc, _, err = run(capsys, ["plot-weights", world.no_geo_path, "--out", tmp_path / "x.png", "--geo-effect"])
    assert_one_error_line(rc, err, "no geo feature")
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.png", "--feature", "device"])
    assert_one_error_line(rc, err, "'device'", "cell@2")
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.png", "--width", 20])
    assert_one_error_line(rc, err, "width", "20")
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.jpg"])
    assert_one_error_line(rc, err, "PNG", "x.jpg")
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "nodir" / "x.png"])
    assert_one_error_line(rc, err, "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.png"]


def test_empty_model_is_an_error_not_a_blank_map(small: SimpleNamespace, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(sx.EmptyModelWarning):
        empty = sx.train(small_area_table(500, 3), small.spec, l1=1e9)  # L1 removes every weight
    assert len(empty.keys) == 0
    sx.save_model(empty, tmp_path / "empty.scx")
    rc, _, err = run(capsys, ["plot-weights", tmp_path / "empty.scx", "--out", tmp_path / "e.png"])
    assert_one_error_line(rc, err, "no nonzero weight in geo feature 'cell@2'", "nothing to map")
    rc, _, err = run(capsys, ["plot-weights", tmp_path / "empty.scx", "--out", tmp_path / "e.png", "--geo-effect"])
    assert_one_error_line(rc, err, "no nonzero weight", "nothing to map")
    rc, _, err = run(capsys, ["plot-weights", tmp_path / "empty.scx", "--out", tmp_path / "e.png", "--geo-effect",
                              "--bbox", ",".join(map(str, BOX))])
    assert_one_error_line(rc, err, "no nonzero geo weight inside the view")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.scx"]


def test_output_never_overwrites_the_model(small: SimpleNamespace, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.png"  # a model file whose name ends in .png
    model.write_bytes(small.path.read_bytes())
    before = model.read_bytes()
    rc, _, err = run(capsys, ["plot-weights", model, "--out", model])
    assert rc == 1 and "model" in err and len(err.strip().splitlines()) == 1
    assert model.read_bytes() == before


def test_matplotlib_missing_names_the_extra(small: SimpleNamespace, tmp_path: Path, monkeypatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rc, _, err = run(capsys, ["plot-weights", small.path, "--out", tmp_path / "x.png"])
    assert_one_error_line(rc, err, "pip install 'sparsecross[plot]'")
    assert list(tmp_path.iterdir()) == []


def test_world_model_map_is_averaged_not_a_world_raster(world: SimpleNamespace, tmp_path: Path) -> None:
    model = sx.train(world.train, world.spec, l1=0.3)
    res = plot_weights_map(model, tmp_path / "w.png", width=400, height=250, max_cells=200_000)
    assert res.info["block"] > 1 and res.info["raster"].values.size <= 200_000


# ------------------------------------------------------------------------------- the path


@pytest.fixture(scope="module")
def path_runs(world: SimpleNamespace) -> SimpleNamespace:
    res = regularization_path(world.train, world.spec, l1=[0.0, 0.3, 1.0, 3.0], l2=[0.0, 10.0], valid=world.valid,
                              max_nonzeros=2000)
    l2 = regularization_path(world.train, world.spec, l1=[0.0], l2=[1.0, 100.0, 1000.0], valid=world.valid)
    return SimpleNamespace(res=res, l2=l2)


def test_path_plot_content(path_runs: SimpleNamespace, tmp_path: Path) -> None:
    res, l2 = path_runs.res, path_runs.l2
    out = plot_path(res.points, tmp_path / "p.png", l2_points=l2.points, chosen=res.chosen, budget=res.budget,
                    title="synthetic on train.parquet", width=900, height=450)
    assert png_pixels(out.path).shape[:2] == (450, 900)
    info = out.info
    # one line per l2, holding exactly that row's l1 > 0 values; l1 = 0 only in the left panel
    assert set(info["lines"]) == {"l2=0.0", "l2=10.0"}
    for v in (0.0, 10.0):
        assert info["lines"][f"l2={v!r}"] == sorted(p.l1 for p in res.points if p.l2 == v and p.l1 > 0)
        assert info["zero_points"][f"l2={v!r}"] == [p.valid_logloss for p in res.points if p.l2 == v and p.l1 == 0]
    assert info["budget_line"] == 2000
    # the matched pair: the closest validation loglosses over every (L1, L2) pair, by brute force here
    pairs = [(abs(a.valid_logloss - b.valid_logloss), a, b) for a in res.points if a.l1 > 0 for b in l2.points]
    best = min(pairs, key=lambda t: t[0])
    assert info["matched"]["difference"] == pytest.approx(best[0])
    assert info["matched"]["l1_point"][2] == best[1].valid_logloss
    assert info["matched"]["l2_point"][2] == best[2].valid_logloss
    assert info["title"] == "synthetic on train.parquet"
    # histograms cover every weight (no clipping): the bins span the extreme weights
    lo, hi = info["matched"]["bins"]
    assert lo <= min(best[1].model.weights.min(), best[2].model.weights.min())
    assert hi >= max(best[1].model.weights.max(), best[2].model.weights.max())


def test_matched_pair_prefers_the_closest_logloss() -> None:
    def pt(l1: float, l2: float, loss: float, nz: int) -> SimpleNamespace:
        return SimpleNamespace(l1=l1, l2=l2, valid_logloss=loss, nonzeros=nz, model=object())

    ones = [pt(0.0, 0.0, 0.50, 9), pt(1.0, 0.0, 0.52, 5), pt(3.0, 0.0, 0.60, 2)]
    twos = [pt(0.0, 1.0, 0.501, 9), pt(0.0, 10.0, 0.59, 9)]
    a, b = matched_pair(ones, twos)
    assert (a.l1, b.l2) == (3.0, 10.0)  # |0.60 - 0.59| = 0.01 beats |0.52 - 0.501|; l1 = 0 is not an L1 model


def test_path_plot_edges(tmp_path: Path) -> None:
    """Grids of l1 = 0 only and without l1 = 0, zero nonzeros, a bytes budget: drawn, no warning."""
    def pt(l1: float, l2: float, loss: float, nz: int) -> SimpleNamespace:
        return SimpleNamespace(l1=l1, l2=l2, valid_logloss=loss, nonzeros=nz, model_bytes=40 + 6 * nz, touched=99,
                               model=None)

    zero_only = [pt(0.0, 0.0, 0.50, 90), pt(0.0, 1.0, 0.51, 90)]
    res = plot_path(zero_only, tmp_path / "z.png", chosen=zero_only[0], budget={"max_nonzeros": 50})
    assert res.info["lines"] == {} and res.info["zero_points"] == {"l2=0.0": [0.50], "l2=1.0": [0.51]}
    assert res.info["budget_line"] == 50 and "matched" not in res.info
    positive = [pt(0.1, 0.0, 0.50, 90), pt(1.0, 0.0, 0.52, 0)]
    res = plot_path(positive, tmp_path / "p.png", budget={"max_bytes": 300})
    assert res.info["lines"] == {"l2=0.0": [0.1, 1.0]} and res.info["zero_points"] == {}
    assert res.info["budget_line"] == 300


def test_cli_path_plot(world: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "path.png"
    rc, stdout, err = run(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,0.3,1,3",
                                   "--plot", out, "--plot-width", 733, "--plot-height", 357, "-q"])
    assert rc == 0, err
    assert f"wrote {out}" in stdout
    assert png_pixels(out).shape[:2] == (357, 733)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["path.png"]
    rc, _, err = run(capsys, ["path", SYNTHETIC_SPEC, world.train, "--valid", world.valid, "--l1", "0,1",
                              "--plot", tmp_path / "path.svg"])
    assert_one_error_line(rc, err, ".png", "path.svg")


# ------------------------------------------------------------------------------- tune


def tune_points() -> list[dict]:
    pts = []
    for a in (0.03, 0.1, 0.3):
        for l1 in (0.0, 0.1, 1.0, 3.0):
            if (a, l1) == (0.3, 3.0):
                continue  # a grid cell without a point
            pts.append({"alpha": a, "l1": l1, "valid_logloss": 0.5 + abs(a - 0.1) + 0.01 * abs(l1 - 1.0),
                        "nonzeros": int(1000 / (1 + l1) + 10 * a), "epochs": 3, "auc": 0.7})
    return pts


def test_tune_heat_map(tmp_path: Path) -> None:
    pts = tune_points()
    res = plot_tune(pts, tmp_path / "t.png", title="tune of synthetic", width=640, height=480)
    assert png_pixels(res.path).shape[:2] == (480, 640)
    info = res.info
    assert info["shape"] == (3, 4) and info["alphas"] == [0.03, 0.1, 0.3] and info["l1s"] == [0.0, 0.1, 1.0, 3.0]
    best = min(pts, key=lambda p: p["valid_logloss"])
    assert info["best"] == (best["alpha"], best["l1"], best["valid_logloss"]) == (0.1, 1.0, 0.5)
    assert info["best_outline"] == (1, 2)  # the outline drawn: row alpha = 0.1, column l1 = 1
    assert info["title"] == "tune of synthetic"
    for p in pts:
        text = info["cell_texts"][info["alphas"].index(p["alpha"])][info["l1s"].index(p["l1"])]
        assert f"{p['nonzeros']:,} nz" in text and f"{p['valid_logloss']:.4f}" in text
    assert info["cell_texts"][2][3] == "" and len(info["drawn_texts"]) == len(pts)
    # TuneResult.points (objects) draw the same grid as their dicts
    from sparsecross.tune import TunePoint

    objs = [TunePoint(alpha=p["alpha"], l1=p["l1"], l2=0.0, epochs=3, epochs_trained=4, nonzeros=p["nonzeros"],
                      model_bytes=9, valid_logloss=p["valid_logloss"], valid_auc=0.7, logloss_by_epoch=[])
            for p in pts]
    again = plot_tune(objs, tmp_path / "t2.png", title="tune of synthetic", width=640, height=480).info
    assert again["cell_texts"] == info["cell_texts"] and again["best_outline"] == (1, 2)
    with pytest.raises(SparseCrossError, match="no nonzeros"):
        plot_tune([{"alpha": 1, "l1": 0, "valid_logloss": 0.5}], tmp_path / "x.png")
    with pytest.raises(SparseCrossError, match="no tune points"):
        plot_tune([], tmp_path / "x.png")
