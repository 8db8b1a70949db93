"""Geo pyramids (issue 11): ``kind = "geo"`` with ``resolution_arcmin = [..]`` (one cell block per
level) and ``bands = true`` (a latitude and a longitude band per level).

A pyramid is its expanded features (``cell@60``, ``cell.lat@60``, ``cell.lon@60``, ...): it is
checked against the independent reference featurizer (which expands it from the contract) in
random chunkings, and against a spec that writes the expanded features out; its dict is the
user's one feature (round trip, sha256); bad keys are one clean ``SpecError`` line."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross as sx
from sparsecross import parse_spec
from sparsecross.errors import SpecError
from sparsecross.featurize import featurize, featurize_features
from sparsecross.inspect import inspect_model
from tests.reference.featurize_reference import reference_featurize

LABEL = {"column": "y"}


def _pyr(**kw: Any) -> dict[str, Any]:
    return {"name": "cell", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": [60, 6, 1], **kw}


def _spec(*features: dict[str, Any], crosses: list[dict[str, Any]] | None = None, stored: bool = False):
    d: dict[str, Any] = {"label": LABEL, "features": list(features)}
    if crosses:
        d["crosses"] = crosses
    return parse_spec(d, stored=stored)


def test_expanded_names_and_layout() -> None:
    spec = _spec(_pyr(bands=True))
    names = ["cell@60", "cell.lat@60", "cell.lon@60", "cell@6", "cell.lat@6", "cell.lon@6",
             "cell@1", "cell.lat@1", "cell.lon@1"]
    assert [f.name for f in spec.features] == names
    assert [o.name for o in spec.outputs] == names
    assert [o.cardinality for o in spec.outputs[:3]] == [180 * 360 + 1, 181, 361]
    assert [f.name for f in _spec(_pyr()).features] == ["cell@60", "cell@6", "cell@1"]
    assert [f.name for f in _spec(_pyr(resolution_arcmin=[7.5, 0.5])).features] == ["cell@7.5", "cell@0.5"]
    assert [f.name for f in spec.pyramid_levels("cell")] == ["cell@60", "cell@6", "cell@1"]


@pytest.mark.parametrize("kw", [{}, {"bands": True}, {"bands": False}, {"invalid": "missing", "missing": "skip"},
                                {"resolution_arcmin": [30], "bands": True}])
def test_round_trip_keeps_the_users_feature(kw: dict[str, Any]) -> None:
    spec = _spec(_pyr(**kw), {"name": "c", "kind": "categorical", "column": "c"},
                 crosses=[{"features": [spec_name(kw), "c"]}])
    d = spec.to_dict()
    assert len(d["features"]) == 2
    f = d["features"][0]
    assert f["name"] == "cell" and f["kind"] == "geo"
    assert f["resolution_arcmin"] == [float(v) for v in kw.get("resolution_arcmin", [60, 6, 1])]
    assert ("bands" in f) == bool(kw.get("bands"))  # a new key only when set
    again = parse_spec(d, stored=True)
    assert again == spec
    assert again.sha256 == spec.sha256


def spec_name(kw: dict[str, Any]) -> str:
    return "cell@30" if "resolution_arcmin" in kw else "cell@6"


def test_existing_geo_keeps_its_dict_and_sha256() -> None:
    """A scalar resolution (bands absent or false) is the old feature: same dict, same sha256."""
    plain = _spec({"name": "cell", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": 6})
    same = _spec({"name": "cell", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": 6, "bands": False})
    assert plain.to_dict()["features"][0] == {"name": "cell", "kind": "geo", "lat": "la", "lon": "lo",
                                              "resolution_arcmin": 6.0, "invalid": "error", "missing": "bucket",
                                              "standalone": True}
    assert plain.sha256 == same.sha256
    assert [f.name for f in plain.features] == ["cell"]


# ----------------------------------------------------------------------------- bad keys
BAD = [
    ({"resolution_arcmin": []}, r"\('cell'\)\.resolution_arcmin: expected a non-empty list"),
    ({"resolution_arcmin": [6, 60]}, r"\('cell'\)\.resolution_arcmin: levels must be strictly decreasing"),
    ({"resolution_arcmin": [60, 6, 6]}, r"\('cell'\)\.resolution_arcmin: level 6\.0 is listed twice"),
    ({"resolution_arcmin": [9, 8, 7, 6, 5, 4, 3, 2, 1]}, r"\('cell'\)\.resolution_arcmin: 9 levels; .* at most 8"),
    ({"resolution_arcmin": [60, "6"]}, r"\('cell'\)\.resolution_arcmin: expected a list of numbers"),
    ({"resolution_arcmin": [60, True]}, r"\('cell'\)\.resolution_arcmin: expected a list of numbers"),
    ({"resolution_arcmin": [60, 0]}, r"\('cell'\)\.resolution_arcmin: expected a number in \(0, 21600\]"),
    ({"resolution_arcmin": [60, 0.0001]}, r"\('cell'\)\.resolution_arcmin: .* cells; at most 2\*\*40"),
    ({"resolution_arcmin": 6, "bands": True}, r"\('cell'\)\.bands: needs resolution_arcmin as a list"),
    ({"bands": "yes"}, r"\('cell'\)\.bands: expected true/false"),
    ({"kind": "lat", "column": "la", "lat": None, "lon": None, "resolution_arcmin": 6, "bands": True},
     r"\('cell'\)\.bands: only a geo pyramid"),
    ({"kind": "bucket", "column": "x", "boundaries": [1], "lat": None, "lon": None, "resolution_arcmin": None,
      "bands": False}, r"\('cell'\)\.bands: only a geo pyramid"),
    ({"kind": "lon", "column": "lo", "lat": None, "lon": None, "resolution_arcmin": [60, 6]},
     r"\('cell'\)\.resolution_arcmin: expected a number"),
]


@pytest.mark.parametrize("kw, pattern", BAD, ids=[p for _, p in BAD])
def test_bad_keys_are_one_clean_line(kw: dict[str, Any], pattern: str) -> None:
    f = {k: v for k, v in _pyr(**kw).items() if v is not None}
    with pytest.raises(SpecError) as info:
        _spec(f)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("features[0] ('cell')"), msg
    assert re.search(pattern, msg), msg


def test_crossing_the_pyramid_is_refused_and_a_level_is_not() -> None:
    c = {"name": "c", "kind": "categorical", "column": "c"}
    with pytest.raises(SpecError, match=r"^crosses\[0\]\.features: feature 'cell' is a geo pyramid; cross one of "
                                        r"its levels by its derived name \('cell@60', 'cell@6', 'cell@1'\)$"):
        _spec(_pyr(), c, crosses=[{"features": ["cell", "c"]}])
    spec = _spec(_pyr(bands=True), c, crosses=[{"features": ["cell.lat@1", "c"]}])
    assert spec.outputs[-1].name == "cell.lat@1*c"
    with pytest.raises(SpecError, match=r"features: duplicate names \['cell'\]"):
        _spec(_pyr(), {"name": "cell", "kind": "lat", "column": "la"})
    with pytest.raises(SpecError, match=r"names \['cell'\] are used twice"):
        _spec(_pyr(), c, crosses=[{"features": ["cell@6", "c"], "name": "cell"}])
    with pytest.raises(SpecError, match=r"feature 'cell' is a geo pyramid; name one of its levels: cell@60"):
        _spec(_pyr()).feature("cell")


# ------------------------------------------------------------ featurization: the reference
def _explicit(levels: list[float], bands: bool, common: dict[str, Any]) -> list[dict[str, Any]]:
    """The pyramid written out as ordinary features (user names cannot hold '@')."""
    out = []
    for k, r in enumerate(levels):
        out.append({"name": f"cell_{k}", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": r, **common})
        if bands:
            out.append({"name": f"lat_{k}", "kind": "lat", "column": "la", "resolution_arcmin": r, **common})
            out.append({"name": f"lon_{k}", "kind": "lon", "column": "lo", "resolution_arcmin": r, **common})
    return out


_lat = st.one_of(st.none(), st.just(math.nan), st.floats(-90, 90), st.sampled_from([-90.0, 90.0, 0.0, 95.0]))
_lon = st.one_of(st.none(), st.just(math.nan), st.floats(-180, 180), st.sampled_from([-180.0, 180.0, -0.0, 200.0]))
_levels = st.lists(st.sampled_from([600, 60, 7.5, 6, 1, 0.5]), min_size=1, max_size=4, unique=True).map(
    lambda v: sorted(v, reverse=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pts=st.lists(st.tuples(_lat, _lon), min_size=1, max_size=30), levels=_levels, bands=st.booleans(),
       missing=st.sampled_from(["bucket", "skip"]), cuts=st.lists(st.integers(0, 40), max_size=3),
       crossed=st.booleans())
def test_pyramid_matches_reference_and_explicit_spec(pts, levels, bands, missing, cuts, crossed) -> None:
    common = {"missing": missing, "invalid": "missing"}
    feats = [_pyr(resolution_arcmin=levels, bands=bands, **common),
             {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.5]}]
    crosses = [{"features": [f"cell@{levels[-1]:g}", "b"]}] if crossed else []
    spec_dict = {"label": LABEL, "hashing": {"bits": 4}, "features": feats, "crosses": crosses}
    rows = [{"la": a, "lo": o, "x": float(i % 3), "y": i % 2} for i, (a, o) in enumerate(pts)]
    table = pa.table({"la": pa.array([a for a, _ in pts], pa.float64()), "lo": pa.array([o for _, o in pts],
                      pa.float64()), "x": [float(i % 3) for i in range(len(pts))], "y": [i % 2 for i in range(len(pts))]})
    spec = parse_spec(spec_dict)
    ref, labels, _, width = reference_featurize(spec_dict, rows)
    X, y, _ = featurize(table, spec)
    assert X.shape == (len(rows), width)
    assert y.tolist() == labels
    for r in range(len(rows)):
        assert X.indices[X.indptr[r]:X.indptr[r + 1]].tolist() == [c for c, _ in ref[r]], r
        assert X.data[X.indptr[r]:X.indptr[r + 1]].tolist() == [v for _, v in ref[r]], r
    # chunking: featurizing slices gives the same rows
    bounds = [0, *sorted(set(c % (len(rows) + 1) for c in cuts)), len(rows)]
    import scipy.sparse as sp
    parts = [featurize_features(spec, table.slice(a, b - a), a) for a, b in zip(bounds, bounds[1:]) if b > a]
    assert (sp.vstack(parts).tocsr() != X).nnz == 0
    # the same columns as the expanded features written out
    ex_crosses = [{"features": [f"cell_{len(levels) - 1}", "b"]}] if crossed else []
    explicit = parse_spec({"label": LABEL, "hashing": {"bits": 4}, "features": _explicit(levels, bands, common)
                           + feats[1:], "crosses": ex_crosses})
    assert explicit.n_columns == spec.n_columns
    assert [(o.offset, o.cardinality) for o in explicit.outputs] == [(o.offset, o.cardinality) for o in spec.outputs]
    if not crossed:  # a hashed cross's seed is its name
        E, _, _ = featurize(table, explicit)
        assert (E != X).nnz == 0


# -------------------------------------------------------------------- inspect and the map
def test_inspect_names_the_level(tmp_path) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    la, lo = rng.uniform(-60, 60, n), rng.uniform(-170, 170, n)
    y = ((la > 0) ^ (lo > 100)).astype(np.int8)
    spec = _spec(_pyr(resolution_arcmin=[600, 60], bands=True))
    model = sx.train(pa.table({"la": la, "lo": lo, "y": y}), spec, epochs=2)
    path = tmp_path / "m.scx"
    sx.save_model(model, path)
    info = inspect_model(path, top=50)
    assert info["spec"]["features"][0]["resolution_arcmin"] == [600.0, 60.0]
    assert info["spec_sha256"] == spec.sha256
    assert {b["name"] for b in info["blocks"]} == {"cell@600", "cell.lat@600", "cell.lon@600",
                                                   "cell@60", "cell.lat@60", "cell.lon@60"}
    for t in info["top"]:
        assert re.match(r"cell(\.lat|\.lon)?@(600|60)$", t["block"]), t
        assert t["description"].startswith(t["block"] + "="), t
    assert any(t["description"].startswith("cell@600=lat[") for t in info["top"])


def test_weights_map_draws_the_finest_level_or_the_named_one(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from sparsecross import plots
    rng = np.random.default_rng(4)
    n = 2000
    la, lo = rng.uniform(-60, 60, n), rng.uniform(-170, 170, n)
    spec = _spec(_pyr(resolution_arcmin=[600, 60]))
    model = sx.train(pa.table({"la": la, "lo": lo, "y": (la > 0).astype(np.int8)}), spec, epochs=1)
    drawn = [plots.plot_weights_map(model, tmp_path / "m.png", feature=feature, width=320, height=160).info["outputs"]
              for feature in (None, "cell", "cell@600")]
    assert drawn == [("cell@60",), ("cell@60",), ("cell@600",)]
