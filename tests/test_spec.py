"""Spec parsing, validation messages, canonical identity and the global column layout."""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import sparsecross
from sparsecross import featurize, load_spec, parse_spec
from sparsecross.errors import SchemaError, SpecError
from tests.reference.featurize_reference import layout_reference

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "data" / "specs"
GOLDEN = ROOT / "tests" / "golden" / "hash_vectors.json"


def base() -> dict[str, Any]:
    """A small valid spec as a dict; tests mutate a fresh copy."""
    return {
        "version": 1,
        "label": {"column": "y"},
        "hashing": {"bits": 10, "seed": 3},
        "features": [
            {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon"},
            {"name": "income", "kind": "bucket", "column": "inc", "boundaries": [1.0, 2.0, 3.0]},
            {"name": "dev", "kind": "categorical", "column": "device"},
            {"name": "band", "kind": "lat", "column": "lat", "resolution_arcmin": 60.0,
             "standalone": False},
        ],
        "crosses": [{"features": ["band", "income"]}, {"features": ["dev", "income"]}],
    }


# ============================================================================ valid specs
@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_specs_parse(path: Path) -> None:
    spec = load_spec(path)
    assert spec.features
    assert spec.to_dict()["version"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)


def test_parse_from_toml_text_and_dict_agree() -> None:
    text = (SPECS / "synthetic.toml").read_text()
    assert parse_spec(text).sha256 == parse_spec(tomllib.loads(text)).sha256
    assert parse_spec(text).sha256 == load_spec(SPECS / "synthetic.toml").sha256


def test_defaults_are_applied() -> None:
    spec = parse_spec({"label": {"column": "y"},
                       "features": [{"name": "c", "kind": "categorical", "column": "x"}]})
    assert spec.hashing.bits == 22
    assert spec.hashing.seed == 0
    assert spec.hashing.max_exact == 2**30
    assert spec.quantile_sample_rows == 1_000_000
    f = spec.features[0]
    assert (f.missing, f.standalone) == ("bucket", True)
    assert spec.hashed_offset == 0
    assert spec.n_columns == 2**22


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_to_dict_round_trip_same_sha(path: Path) -> None:
    spec = load_spec(path)
    again = parse_spec(spec.to_dict())
    assert again.sha256 == spec.sha256
    assert again.to_dict() == spec.to_dict()
    assert again == spec


def test_round_trip_with_train_table_and_options() -> None:
    d = base()
    d["train"] = {"alpha": 0.1, "epochs": 2, "l1": 1}
    d["quantile_sample_rows"] = 5000
    d["hashing"]["seed"] = 2**64 - 1
    d["label"].update({"threshold": 3, "weight": "w"})
    d["features"][0].update({"invalid": "missing", "missing": "skip", "resolution_arcmin": 7})
    d["crosses"][1].update({"name": "dev_x_income", "mode": "hashed"})
    spec = parse_spec(d)
    again = parse_spec(spec.to_dict())
    assert again.sha256 == spec.sha256
    assert again.train == {"alpha": 0.1, "epochs": 2, "l1": 1.0}
    assert isinstance(again.train["l1"], float)


def test_train_table_is_not_part_of_identity() -> None:
    d = base()
    with_train = copy.deepcopy(d)
    with_train["train"] = {"alpha": 0.5}
    assert parse_spec(d).sha256 == parse_spec(with_train).sha256


def test_sha_changes_with_anything_that_changes_features() -> None:
    shas = {parse_spec(base()).sha256}
    variants = [
        ("hashing", "bits", 11), ("hashing", "seed", 4), ("hashing", "max_exact", 1000),
    ]
    for table, key, value in variants:
        d = base()
        d[table][key] = value
        shas.add(parse_spec(d).sha256)
    d = base()
    d["features"][1]["boundaries"] = [1.0, 2.0, 3.5]
    shas.add(parse_spec(d).sha256)
    d = base()
    d["crosses"].reverse()
    shas.add(parse_spec(d).sha256)
    assert len(shas) == 6


def test_resolved_spec_round_trips(sample_path: Path) -> None:
    d = base()
    d["features"][1] = {"name": "income", "kind": "bucket", "column": "income", "quantiles": 4}
    d["features"][0].update({"lat": "latitude", "lon": "longitude"})
    d["features"][3]["column"] = "latitude"
    d["features"][2]["column"] = "device"
    d["label"]["column"] = "label"
    spec = sparsecross.resolve_spec(sample_path, parse_spec(d))
    assert spec.features[1].boundaries is not None
    # the resolved form keeps both keys (the identity of models trained on quantiles, so it
    # cannot change); it is read back as a stored spec, a user's spec may not have both
    assert {"boundaries", "quantiles"} <= set(spec.to_dict()["features"][1])
    with pytest.raises(SpecError, match=r"'boundaries' and 'quantiles' exclude each other"):
        parse_spec(spec.to_dict())
    again = parse_spec(spec.to_dict(), stored=True)
    assert again.sha256 == spec.sha256
    assert again.features[1].boundaries == spec.features[1].boundaries
    assert again.features[1].quantiles == 4
    assert not again.needs_data
    assert again.n_columns == spec.n_columns


def test_bucket_with_boundaries_and_quantiles_is_an_error_in_a_users_spec() -> None:
    d = _mutate(("features", 1), {"name": "income", "kind": "bucket", "column": "inc",
                                  "boundaries": [1.0, 2.0], "quantiles": 3})
    with pytest.raises(SpecError, match=r"^features\[1\] \('income'\): 'boundaries' and 'quantiles' "
                                        r"exclude each other; give explicit boundaries, or quantiles = N"):
        parse_spec(d)
    with pytest.raises(SpecError, match=r"exclude each other"):
        parse_spec(tomllib.loads('[label]\ncolumn = "y"\n[[features]]\nname = "b"\nkind = "bucket"\n'
                                 'column = "x"\nboundaries = [1.0]\nquantiles = 4\n'))


def test_stored_bucket_with_boundaries_and_quantiles_is_a_resolved_spec() -> None:
    d = _mutate(("features", 1), {"name": "income", "kind": "bucket", "column": "inc",
                                  "boundaries": [1.0, 2.0], "quantiles": 3})
    spec = parse_spec(d, stored=True)
    assert not spec.needs_data
    assert spec.features[1].boundaries == (1.0, 2.0)
    assert spec.outputs[1].cardinality == 4
    # both keys are still validated
    d["features"][1]["boundaries"] = [2.0, 1.0]
    with pytest.raises(SpecError, match=r"boundaries: must be finite and strictly increasing"):
        parse_spec(d, stored=True)
    d["features"][1]["boundaries"] = [1.0, 2.0]
    d["features"][1]["quantiles"] = 1
    with pytest.raises(SpecError, match=r"quantiles: expected an integer in \[2, 10000\]"):
        parse_spec(d, stored=True)


def test_unresolved_quantiles_have_no_layout() -> None:
    d = base()
    d["features"][1] = {"name": "income", "kind": "bucket", "column": "inc", "quantiles": 4}
    spec = parse_spec(d)
    assert spec.needs_data
    assert parse_spec(spec.to_dict()).sha256 == spec.sha256
    with pytest.raises(SpecError, match="quantiles.*resolve"):
        _ = spec.n_columns


# ========================================================================== invalid specs
def _mutate(path: tuple[Any, ...], value: Any, delete: bool = False) -> dict[str, Any]:
    d = base()
    target: Any = d
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


INVALID: list[tuple[str, dict[str, Any], str]] = [
    # unknown keys, with suggestions
    ("unknown top-level key", {**base(), "feature": []},
     r"spec: unknown key 'feature' \(did you mean 'features'\?\)"),
    ("unknown top-level key 2", {**base(), "hashng": {}},
     r"unknown key 'hashng' \(did you mean 'hashing'\?\)"),
    ("unknown label key", _mutate(("label", "treshold"), 3.0),
     r"label: unknown key 'treshold' \(did you mean 'threshold'\?\)"),
    ("unknown hashing key", _mutate(("hashing", "bit"), 3),
     r"hashing: unknown key 'bit' \(did you mean 'bits'\?\)"),
    ("unknown feature key", _mutate(("features", 1, "boundary"), [1.0]),
     r"features\[1\] \('income'\): unknown key 'boundary' \(did you mean 'boundaries'\?\)"),
    ("unknown geo key", _mutate(("features", 0, "resolution"), 2.0),
     r"features\[0\] \('cell'\): unknown key 'resolution' \(did you mean 'resolution_arcmin'\?\)"),
    ("key of another kind", _mutate(("features", 2, "boundaries"), [1.0]),
     r"features\[2\] \('dev'\): unknown key 'boundaries'"),
    ("unknown cross key", _mutate(("crosses", 0, "feature"), ["a"]),
     r"crosses\[0\]: unknown key 'feature' \(did you mean 'features'\?\)"),
    ("unknown train key", {**base(), "train": {"alhpa": 0.1}},
     r"train: unknown key 'alhpa' \(did you mean 'alpha'\?\)"),
    # wrong types
    ("bits as string", _mutate(("hashing", "bits"), "22"),
     r"hashing\.bits: expected an integer, got '22'"),
    ("bits as float", _mutate(("hashing", "bits"), 22.0), r"hashing\.bits: expected an integer"),
    ("bits as bool", _mutate(("hashing", "bits"), True), r"hashing\.bits: expected an integer, got True"),
    ("seed as float", _mutate(("hashing", "seed"), 1.5), r"hashing\.seed: expected an integer"),
    ("label not a table", {**base(), "label": "y"}, r"spec\.label: expected a table, got 'y'"),
    ("label column int", _mutate(("label", "column"), 3), r"label\.column: expected a string, got 3"),
    ("threshold as string", _mutate(("label", "threshold"), "3"),
     r"label\.threshold: expected a number, got '3'"),
    ("threshold nan", _mutate(("label", "threshold"), math.nan), r"label\.threshold: expected a finite"),
    ("features not a list", {**base(), "features": {"name": "x"}},
     r"spec\.features: expected a list"),
    ("feature not a table", {**base(), "features": ["cell"]}, r"features\[0\]: expected a table"),
    ("standalone as string", _mutate(("features", 2, "standalone"), "yes"),
     r"features\[2\] \('dev'\)\.standalone: expected true/false, got 'yes'"),
    ("resolution as string", _mutate(("features", 0, "resolution_arcmin"), "1"),
     r"resolution_arcmin: expected a number, got '1'"),
    ("column as list", _mutate(("features", 2, "column"), ["device"]),
     r"features\[2\] \('dev'\)\.column: expected a string"),
    ("boundaries with a word", _mutate(("features", 1, "boundaries"), [1.0, "two"]),
     r"boundaries: expected a non-empty list of numbers"),
    ("boundaries with a bool", _mutate(("features", 1, "boundaries"), [1.0, True]),
     r"boundaries: expected a non-empty list of numbers"),
    ("empty boundaries", _mutate(("features", 1, "boundaries"), []),
     r"boundaries: expected a non-empty list of numbers"),
    ("quantiles as float", _mutate(("features", 1), {"name": "income", "kind": "bucket",
                                                      "column": "inc", "quantiles": 4.0}),
     r"quantiles: expected an integer"),
    ("train value type", {**base(), "train": {"epochs": "2"}}, r"train\.epochs: expected an integer"),
    ("missing not a choice", _mutate(("features", 2, "missing"), "skpi"),
     r"missing: expected one of 'bucket', 'skip', got 'skpi' \(did you mean 'skip'\?\)"),
    ("invalid not a choice", _mutate(("features", 0, "invalid"), "ignore"),
     r"invalid: expected one of 'error', 'missing', got 'ignore'"),
    ("cross mode not a choice", _mutate(("crosses", 0, "mode"), "exakt"),
     r"crosses\[0\]\.mode: .*got 'exakt' \(did you mean 'exact'\?\)"),
    # required keys
    ("no label", {k: v for k, v in base().items() if k != "label"}, r"missing required key 'label'"),
    ("no features", {k: v for k, v in base().items() if k != "features"},
     r"missing required key 'features'"),
    ("empty features", {**base(), "features": [], "crosses": []}, r"at least one \[\[features\]\]"),
    ("feature without name", _mutate(("features", 2, "name"), None, delete=True),
     r"features\[2\]: missing required key 'name'"),
    ("feature without kind", _mutate(("features", 2, "kind"), None, delete=True),
     r"features\[2\] \('dev'\): missing required key 'kind'"),
    ("geo without lon", _mutate(("features", 0, "lon"), None, delete=True),
     r"features\[0\] \('cell'\): missing required key 'lon'"),
    ("bad feature name", _mutate(("features", 2, "name"), "dev ice"),
     r"name must match \[A-Za-z0-9_\.-\]\+, got 'dev ice'"),
    # values out of range
    ("bits 0", _mutate(("hashing", "bits"), 0), r"hashing\.bits: expected an integer in \[1, 40\], got 0"),
    ("bits 41", _mutate(("hashing", "bits"), 41), r"hashing\.bits: expected an integer in \[1, 40\], got 41"),
    ("seed negative", _mutate(("hashing", "seed"), -1), r"hashing\.seed: expected an integer in \[0, 2\*\*64\)"),
    ("seed 2**64", _mutate(("hashing", "seed"), 2**64), r"hashing\.seed: expected an integer in \[0, 2\*\*64\)"),
    ("max_exact 0", _mutate(("hashing", "max_exact"), 0), r"hashing\.max_exact: expected an integer in \[1"),
    ("version 2", {**base(), "version": 2}, r"spec\.version: only version 1 is supported, got 2"),
    ("resolution 0", _mutate(("features", 0, "resolution_arcmin"), 0),
     r"resolution_arcmin: expected a number in \(0, 21600\], got 0\.0"),
    ("resolution negative", _mutate(("features", 0, "resolution_arcmin"), -1.0),
     r"resolution_arcmin: expected a number in \(0, 21600\]"),
    ("resolution inf", _mutate(("features", 0, "resolution_arcmin"), math.inf),
     r"resolution_arcmin: expected a number in \(0, 21600\]"),
    ("resolution too fine", _mutate(("features", 0, "resolution_arcmin"), 0.001),
     r"resolution_arcmin: 0\.001 gives \d+ cells; at most 2\*\*40"),
    ("quantiles 1", _mutate(("features", 1), {"name": "income", "kind": "bucket", "column": "inc",
                                               "quantiles": 1}),
     r"quantiles: expected an integer in \[2, 10000\], got 1"),
    ("quantile_sample_rows 0", {**base(), "quantile_sample_rows": 0},
     r"quantile_sample_rows: expected a positive integer, got 0"),
    ("column space too large",
     {**base(), "features": [{"name": "g1", "kind": "geo", "lat": "a", "lon": "b"},
                             {"name": "g2", "kind": "geo", "lat": "a", "lon": "b"},
                             {"name": "g3", "kind": "geo", "lat": "a", "lon": "b"}],
      "crosses": [{"features": ["g1", "g2", "g3"], "mode": "exact"}]},
     r"column space exceeds 2\*\*62"),
    # kinds and buckets
    ("unknown kind", _mutate(("features", 0, "kind"), "gep"),
     r"features\[0\] \('cell'\)\.kind: expected one of 'geo', 'lat', 'lon', 'bucket', 'categorical', "
     r"'numeric', 'time', got 'gep' \(did you mean 'geo'\?\)"),
    ("kind numeric", _mutate(("features", 0, "kind"), "numeric"), r"\('cell'\): unknown key 'lat'"),
    ("bucket without boundaries or quantiles",
     _mutate(("features", 1), {"name": "income", "kind": "bucket", "column": "inc"}),
     r"features\[1\] \('income'\): a bucket feature needs 'boundaries' or 'quantiles'"),
    ("boundaries decreasing", _mutate(("features", 1, "boundaries"), [3.0, 2.0]),
     r"features\[1\] \('income'\)\.boundaries: must be finite and strictly increasing, got \[3\.0, 2\.0\]"),
    ("boundaries repeated", _mutate(("features", 1, "boundaries"), [1.0, 2.0, 2.0]),
     r"boundaries: must be finite and strictly increasing"),
    ("boundaries with nan", _mutate(("features", 1, "boundaries"), [1.0, math.nan]),
     r"boundaries: must be finite and strictly increasing"),
    ("boundaries with inf", _mutate(("features", 1, "boundaries"), [1.0, math.inf]),
     r"boundaries: must be finite and strictly increasing"),
    # names and crosses
    ("duplicate feature names", _mutate(("features", 2, "name"), "cell"),
     r"features: duplicate names \['cell'\]"),
    ("cross named like a feature", _mutate(("crosses", 0, "name"), "income"),
     r"crosses: names \['income'\] are used twice"),
    ("two crosses with one name", _mutate(("crosses", 1, "name"), "band*income"),
     r"crosses: names \['band\*income'\] are used twice"),
    ("cross of an unknown feature", _mutate(("crosses", 0, "features"), ["bnad", "income"]),
     r"crosses\[0\]\.features: no feature named 'bnad' \(did you mean 'band'\?\)"),
    ("cross of an unknown feature 2", _mutate(("crosses", 1, "features"), ["dev", "incme"]),
     r"crosses\[1\]\.features: no feature named 'incme' \(did you mean 'income'\?\)"),
    ("cross of one feature", _mutate(("crosses", 0, "features"), ["band"]),
     r"crosses\[0\]\.features: expected a list of 2 or more feature names"),
    ("cross of non-strings", _mutate(("crosses", 0, "features"), ["band", 1]),
     r"crosses\[0\]\.features: expected a list of 2 or more feature names"),
    ("exact cross over a categorical", _mutate(("crosses", 1, "mode"), "exact"),
     r"crosses\[1\]: mode 'exact' is impossible with categorical feature\(s\) \['dev'\]"),
    ("nothing emitted",
     {**base(), "features": [{"name": "a", "kind": "categorical", "column": "a",
                              "standalone": False}], "crosses": []},
     r"no feature is emitted"),
]


@pytest.mark.parametrize("spec_dict, pattern", [(d, p) for _, d, p in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_spec_raises_spec_error(spec_dict: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as info:
        parse_spec(spec_dict)
    assert not isinstance(info.value, SchemaError)


def test_boundaries_with_numeric_string_rejected() -> None:
    with pytest.raises(SpecError, match=r"boundaries: expected a non-empty list of numbers"):
        parse_spec(_mutate(("features", 1, "boundaries"), [1.0, "2"]))


def test_invalid_toml_text() -> None:
    with pytest.raises(SpecError, match=r"spec is not valid TOML: .*line 3"):
        parse_spec('[label]\ncolumn = "y"\nbits = = 3\n')


def test_invalid_toml_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "broken.toml"
    p.write_text("[label\ncolumn = 'y'\n")
    with pytest.raises(SpecError, match=r"broken\.toml': spec is not valid TOML"):
        load_spec(p)


def test_invalid_spec_file_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('[label]\ncolumn = "y"\n[hashing]\nbits = 99\n[[features]]\nname = "a"\n'
                 'kind = "categorical"\ncolumn = "a"\n')
    with pytest.raises(SpecError, match=r"bad\.toml': hashing\.bits: expected an integer in \[1, 40\]"):
        load_spec(p)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"spec file '.*nope\.toml' does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_spec_file_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"cannot read spec file"):
        load_spec(tmp_path)


def test_spec_file_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "latin1.toml"
    p.write_bytes(b'[label]\ncolumn = "\xe9"\n')
    with pytest.raises(SpecError, match=r"cannot read spec file"):
        load_spec(p)


def test_unknown_feature_lookup_suggests() -> None:
    spec = parse_spec(base())
    with pytest.raises(SpecError, match=r"no feature named 'incom' \(did you mean 'income'\?\)"):
        spec.feature("incom")


def test_describe_column_outside_layout() -> None:
    spec = parse_spec(base())
    with pytest.raises(SpecError, match=r"outside the layout"):
        spec.describe_column(spec.n_columns)


# ================================================================================= layout
def _golden_specs() -> list[tuple[str, str]]:
    import json

    doc = json.loads(GOLDEN.read_text())
    return [(c["id"], c["spec_toml"]) for c in doc["cases"] if c["kind"] == "featurize"]


def _resolved(d: dict[str, Any]) -> dict[str, Any]:
    """Replace quantiles by arbitrary explicit boundaries (the reference only takes those)."""
    d = copy.deepcopy(d)
    for f in d["features"]:
        if "quantiles" in f:
            n = f.pop("quantiles")
            f["boundaries"] = [float(k) for k in range(1, n)]
    return d


def _layout_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = [(p.name, _resolved(tomllib.loads(p.read_text()))) for p in sorted(SPECS.glob("*.toml"))]
    for cid, text in _golden_specs():
        cases.append((cid, tomllib.loads(text)))
    cases.append(("base", base()))
    many = base()
    many["hashing"]["max_exact"] = 5000
    many["features"] += [
        {"name": "lon7", "kind": "lon", "column": "lon", "resolution_arcmin": 7.0},
        {"name": "lat13", "kind": "lat", "column": "lat", "resolution_arcmin": 13.0,
         "missing": "skip"},
        {"name": "b2", "kind": "bucket", "column": "z", "boundaries": [0.0], "standalone": False},
    ]
    many["crosses"] += [
        {"features": ["b2", "band"]},                          # 3 * 181 <= 5000: exact
        {"features": ["lon7", "b2"], "mode": "hashed"},
        {"features": ["lat13", "lon7"]},                       # > 5000: hashed
        {"features": ["lat13", "lon7", "b2"], "mode": "exact", "name": "forced"},
        {"features": ["income", "b2", "band"], "name": "i-b-b"},
    ]
    cases.append(("many", many))
    return cases


@pytest.mark.parametrize("spec_dict", [d for _, d in _layout_cases()],
                         ids=[cid for cid, _ in _layout_cases()])
def test_layout_matches_reference(spec_dict: dict[str, Any]) -> None:
    # featurize/cross_modes_max_exact crosses b1 with itself: frozen when the library accepted
    # that; a user's spec may not any more, a stored spec (a model file) may
    spec = parse_spec(spec_dict, stored=_has_self_cross(spec_dict))
    ref = layout_reference(spec_dict)
    exact = [o for o in spec.outputs if o.kind == 0]
    assert [(o.name, o.offset, o.cardinality) for o in exact] == [
        (b["name"], b["offset"], b["cardinality"]) for b in ref["blocks"]
    ]
    assert spec.hashed_offset == ref["H"]
    assert spec.n_columns == ref["width"]
    assert spec.hashing.bits == ref["bits"]
    exact_names = {o.name for o in exact}
    assert {c.name: ("exact" if c.name in exact_names else "hashed") for c in spec.crosses} \
        == ref["cross_modes"]
    for o in spec.outputs:
        if o.kind != 0:
            assert (o.offset, o.cardinality) == (ref["H"], 2 ** ref["bits"])
    # blocks are contiguous, in order, and end at H
    end = 0
    for o in exact:
        assert o.offset == end
        end += o.cardinality
    assert end == spec.hashed_offset


def _has_self_cross(d: dict[str, Any]) -> bool:
    return any(len(set(c["features"])) < len(c["features"]) for c in d.get("crosses", []))


def test_golden_specs_are_accepted() -> None:
    """Every frozen spec parses, except the self-cross of featurize/cross_modes_max_exact
    (frozen when the library accepted it): a SpecError now, still read as a stored spec so
    models written then keep loading."""
    self_crosses = []
    for cid, text in _golden_specs():
        d = tomllib.loads(text)
        if _has_self_cross(d):
            self_crosses.append(cid)
            with pytest.raises(SpecError, match=r"crosses\[4\]\.features: feature 'b1' is listed twice"):
                parse_spec(text)
            spec = parse_spec(text, stored=True)
        else:
            spec = parse_spec(text)
        assert spec.n_columns == layout_reference(d)["width"]
    assert self_crosses == ["featurize/cross_modes_max_exact"]


def test_arcminute_geo_block_cardinality() -> None:
    spec = parse_spec({"label": {"column": "y"},
                       "features": [{"name": "cell", "kind": "geo", "lat": "a", "lon": "b"}]})
    (out,) = spec.outputs
    assert out.cardinality == 180 * 60 * 360 * 60 + 1 == 233_280_001
    assert spec.hashed_offset == 233_280_001
    assert spec.n_columns == 233_280_001 + 2**22
    assert spec.features[0].grid == (10800, 21600)


@pytest.mark.parametrize("res, n_lat, n_lon", [(1.0, 10800, 21600), (7.0, 1543, 3086),
                                               (60.0, 180, 360), (1000.0, 11, 22),
                                               (0.5, 21600, 43200), (21600.0, 1, 1)])
def test_grid_sizes(res: float, n_lat: int, n_lon: int) -> None:
    spec = parse_spec({"label": {"column": "y"}, "features": [
        {"name": "g", "kind": "geo", "lat": "a", "lon": "b", "resolution_arcmin": res},
        {"name": "la", "kind": "lat", "column": "a", "resolution_arcmin": res},
        {"name": "lo", "kind": "lon", "column": "b", "resolution_arcmin": res}]})
    assert [o.cardinality for o in spec.outputs] == [n_lat * n_lon + 1, n_lat + 1, n_lon + 1]


# ======================================================================== describe_column
_NUM = r"(-?\d+\.\d+)"


def _column_of(spec: sparsecross.FeatureSpec, lat: float, lon: float) -> int:
    X, _, _ = featurize(pa.table({"lat": [lat], "lon": [lon], "y": [0]}), spec)
    (col,) = X.indices.tolist()
    return col


@pytest.mark.parametrize("lat, lon", [
    (37.88, -122.23), (-33.8688, 151.2093), (0.0, 0.0), (-0.0001, -0.0001), (89.999, 179.999),
    (-90.0, -180.0), (90.0, 180.0), (51.4779, -0.0015), (12.345678, 98.765432),
])
@pytest.mark.parametrize("res", [1.0, 7.0, 60.0])
def test_describe_geo_cell_contains_the_point(lat: float, lon: float, res: float) -> None:
    spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 2}, "features": [
        {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": res}]})
    col = _column_of(spec, lat, lon)
    block, text = spec.describe_column(col)
    assert block == "cell"
    m = re.fullmatch(rf"cell=lat\[{_NUM},{_NUM}\) lon\[{_NUM},{_NUM}\)", text)
    assert m, text
    lat0, lat1, lon0, lon1 = map(float, m.groups())
    tol = 0.5e-4  # the text has 4 decimals
    size = res / 60
    assert lat0 - tol <= lat <= lat1 + tol
    assert lon0 - tol <= lon <= lon1 + tol
    # a half-open cell: only the upper edge of the grid may equal the point
    if lat < 90:
        assert lat < lat1 + tol
    assert lat1 - lat0 <= size + 2 * tol
    assert lon1 - lon0 <= size + 2 * tol


def test_describe_other_blocks() -> None:
    spec = parse_spec(base())
    X, _, _ = featurize(pa.table({"lat": [37.5], "lon": [-122.0], "inc": [2.5], "device": ["ios"],
                                  "y": [1]}), spec)
    described = [spec.describe_column(c) for c in X.indices.tolist()]
    names = [b for b, _ in described]
    assert names[:3] == ["cell", "income", "band*income"]
    assert described[1] == ("income", "income=[2.0,3.0)")
    assert described[2] == ("band*income", "band=[37.0000,38.0000) x income=[2.0,3.0)")
    assert all(b == "hashed" and re.fullmatch(r"bucket \d+", t) for b, t in described[3:])
    missing = spec.outputs[1].offset + spec.outputs[1].cardinality - 1
    assert spec.describe_column(missing) == ("income", "income=missing")
    assert spec.describe_column(spec.outputs[1].offset) == ("income", "income=[-inf,1.0)")
    assert spec.describe_column(spec.outputs[1].offset + 3) == ("income", "income=[3.0,inf)")
    assert spec.describe_column(spec.outputs[0].cardinality - 1) == ("cell", "cell=missing")


def test_boundary_beyond_float64_is_a_spec_error():
    with pytest.raises(SpecError, match="beyond the float64 range"):
        parse_spec({"label": {"column": "y"},
                    "features": [{"name": "b", "kind": "bucket", "column": "x", "boundaries": [10**400]}]})


@pytest.mark.parametrize("feature", [
    {"name": "a", "kind": "numeric", "column": "x", "clip": [1.0, 10**400]},
    {"name": "g", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": 10**400},
    {"name": "g", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": -(10**400)},
    {"name": "g", "kind": "geo", "lat": "la", "lon": "lo", "resolution_arcmin": [10**400, 1]},
    {"name": "b", "kind": "bucket", "column": "x", "boundaries": [1, 10**400]},
], ids=["numeric-clip", "geo-resolution", "geo-resolution-negative", "geo-pyramid", "bucket"])
def test_integer_beyond_float64_in_a_dict_spec_is_a_spec_error(feature):
    """An integer past float64 (10**400, in a dict or in TOML): a SpecError naming the key, not OverflowError."""
    with pytest.raises(SpecError, match="beyond the float64 range") as info:
        parse_spec({"label": {"column": "y"}, "features": [feature]})
    assert "features[0]" in str(info.value) and len(str(info.value)) < 300


def test_column_space_beyond_2_62_is_a_spec_error():
    """Two 0.02-arc-minute grids crossed exactly: ~2**70 columns."""
    geo = [{"name": n, "kind": "geo", "lat": n + "_lat", "lon": n + "_lon", "resolution_arcmin": 0.02} for n in "ac"]
    d = {"label": {"column": "y"}, "hashing": {"bits": 20}, "features": geo,
         "crosses": [{"features": ["a", "c"], "mode": "exact"}]}
    with pytest.raises(SpecError, match="exceeds 2\\*\\*62 columns"):
        parse_spec(d)
    d["crosses"][0]["mode"] = "hashed"
    assert parse_spec(d).n_columns < 2**62


# ============================================================== scale: linear time, limits
class _CountingName(str):
    """A feature name that counts its equality comparisons (dicts and sets hash first and
    compare O(1) times per lookup; list.count / list.index / linear scans compare with all)."""

    eq_calls = 0

    def __eq__(self, other: object) -> bool:
        _CountingName.eq_calls += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _wide_spec(n_features: int, n_crosses: int, components: int = 2,
               name: type = str) -> dict[str, Any]:
    feats: list[dict[str, Any]] = []
    for i in range(n_features):
        if i % 2:
            feats.append({"name": name(f"f{i}"), "kind": "bucket", "column": f"x{i % 7}",
                          "boundaries": [0.0, float(1 + i % 5)]})
        else:
            feats.append({"name": name(f"f{i}"), "kind": "categorical", "column": f"c{i % 5}"})
    crosses = [{"name": f"x{j}",
                "features": [name(f"f{(j + k * 7919) % n_features}") for k in range(components)]}
               for j in range(n_crosses)]
    return {"label": {"column": "y"}, "hashing": {"bits": 12}, "features": feats, "crosses": crosses}


def test_validation_and_layout_compare_names_a_linear_number_of_times() -> None:
    """Duplicate checks, cross lookups, the layout and describe_column use dicts: the number
    of name comparisons grows with the size of the spec, not with its square (the old list
    scans made ~n**2 = 9,000,000 comparisons here)."""
    n = 3000
    d = _wide_spec(n, n, name=_CountingName)
    _CountingName.eq_calls = 0
    spec = parse_spec(d)
    assert len(spec.outputs) == 2 * n
    for o in spec.outputs[:: 50]:
        if o.kind == 0:
            assert spec.describe_column(o.offset)[0] == o.name
    assert spec.feature("f1234").name == "f1234"
    assert _CountingName.eq_calls <= 20 * (n + 2 * n)


def test_describe_column_finds_every_exact_block() -> None:
    spec = parse_spec(_wide_spec(300, 300))
    exact = [o for o in spec.outputs if o.kind == 0]
    assert len(exact) > 100
    for o in exact:
        assert spec.describe_column(o.offset)[0] == o.name
        assert spec.describe_column(o.offset + o.cardinality - 1)[0] == o.name
    assert spec.describe_column(spec.hashed_offset) == ("hashed", "bucket 0")
    with pytest.raises(SpecError, match="outside the layout"):
        spec.describe_column(-1)


def test_spec_at_the_limits_parses() -> None:
    from sparsecross.spec import MAX_CROSS_COMPONENTS, MAX_CROSSES, MAX_FEATURES

    d = _wide_spec(MAX_FEATURES, MAX_CROSSES)
    d["crosses"][0]["features"] = [f"f{k}" for k in range(MAX_CROSS_COMPONENTS)]
    spec = parse_spec(d)
    assert (len(spec.features), len(spec.crosses)) == (MAX_FEATURES, MAX_CROSSES)
    assert len(spec.crosses[0].features) == MAX_CROSS_COMPONENTS
    assert len(spec.outputs) == MAX_FEATURES + MAX_CROSSES


@pytest.mark.parametrize("what", ["features", "crosses", "components"])
def test_spec_over_the_limits_is_a_spec_error(what: str) -> None:
    from sparsecross.spec import MAX_CROSS_COMPONENTS, MAX_CROSSES, MAX_FEATURES

    if what == "features":
        d, pattern = _wide_spec(MAX_FEATURES + 1, 1), r"spec: 10001 features; at most 10000"
    elif what == "crosses":
        d, pattern = _wide_spec(20, MAX_CROSSES + 1), r"spec: 10001 crosses; at most 10000"
    else:
        d = _wide_spec(20, 2)
        d["crosses"][1]["features"] = [f"f{k}" for k in range(MAX_CROSS_COMPONENTS + 1)]
        pattern = r"crosses\[1\]\.features: 9 features; a cross has at most 8"
    with pytest.raises(SpecError, match=pattern) as info:
        parse_spec(d)
    assert "\n" not in str(info.value)
    # a spec read back from a model file was valid when written: not limited
    assert len(parse_spec(d, stored=True).features) == len(d["features"])


def test_many_duplicate_names_make_one_short_line() -> None:
    d = _wide_spec(200, 0)
    d["crosses"] = []
    for i, f in enumerate(d["features"]):
        f["name"] = f"f{i % 50}"
    with pytest.raises(SpecError, match=r"features: duplicate names \['f0', .*\] and 40 more$"):
        parse_spec(d)


# ===================================================== the label is never a feature (item 8)
@pytest.mark.parametrize("feature, column", [
    ({"name": "leak", "kind": "bucket", "column": "y", "boundaries": [0.5]}, "y"),
    ({"name": "leak", "kind": "categorical", "column": "y"}, "y"),
    ({"name": "leak", "kind": "geo", "lat": "lat", "lon": "y"}, "y"),
    ({"name": "leak", "kind": "lat", "column": "y", "standalone": False}, "y"),
])
def test_feature_reading_the_label_is_a_spec_error(feature: dict[str, Any], column: str) -> None:
    d = base()
    d["features"].append(feature)
    d["crosses"].append({"features": ["leak", "income"]})
    with pytest.raises(SpecError, match=rf"^features\[4\] \('leak'\): column '{column}' is the label "
                                        r"column; a feature must not read the label") as info:
        parse_spec(d)
    assert "\n" not in str(info.value)


def test_feature_reading_the_weight_is_a_spec_error() -> None:
    d = base()
    d["label"]["weight"] = "w"
    d["features"][2]["column"] = "w"
    with pytest.raises(SpecError, match=r"^features\[2\] \('dev'\): column 'w' is the weight column"):
        parse_spec(d)
    d["label"]["threshold"] = 0.5
    d["features"][2]["column"] = "device"
    d["features"][1]["column"] = "y"  # the label column of a thresholded label
    with pytest.raises(SpecError, match=r"^features\[1\] \('income'\): column 'y' is the label column"):
        parse_spec(d)


def test_label_as_a_feature_in_a_spec_file_names_the_file(tmp_path: Path) -> None:
    d = tomllib.loads((SPECS / "synthetic.toml").read_text())
    label = d["label"]["column"]
    p = tmp_path / "leak.toml"
    p.write_text((SPECS / "synthetic.toml").read_text()
                 + f'\n[[features]]\nname = "leak"\nkind = "categorical"\ncolumn = "{label}"\n')
    with pytest.raises(SpecError, match=rf"leak\.toml': features\[\d+\] \('leak'\): column '{label}' is "
                                        r"the label column"):
        load_spec(p)


@pytest.mark.parametrize("features, twice", [
    (["income", "income"], "income"),
    (["band", "income", "band"], "band"),
    (["dev", "income", "income"], "income"),
])
def test_feature_crossed_with_itself_is_a_spec_error(features: list[str], twice: str) -> None:
    d = base()
    d["crosses"][1]["features"] = features
    with pytest.raises(SpecError, match=rf"^crosses\[1\]\.features: feature '{twice}' is listed twice"):
        parse_spec(d)


def test_stored_specs_keep_what_earlier_versions_accepted() -> None:
    """A model file written before these checks must still load and featurize as it did:
    a stored spec may have a self-cross or a feature on the label column, and the identity
    (sha256 of the canonical JSON) is the one computed from the stored dict."""
    import hashlib
    import json

    d = base()
    d["crosses"].append({"features": ["income", "income"]})
    d["features"][2]["column"] = "y"
    d["features"][1]["quantiles"] = 3  # the resolved form: boundaries and their quantile count
    spec = parse_spec(d, stored=True)
    canon = json.dumps({k: v for k, v in spec.to_dict().items() if k != "train"}, sort_keys=True,
                       separators=(",", ":"))
    assert spec.sha256 == hashlib.sha256(canon.encode()).hexdigest()
    assert spec.to_dict()["features"][1]["quantiles"] == 3
    assert spec.to_dict()["crosses"][-1]["features"] == ["income", "income"]
    assert parse_spec(spec.to_dict(), stored=True) == spec
    with pytest.raises(SpecError):
        parse_spec(spec.to_dict())


@pytest.mark.parametrize("name", ["abc\n", "a\nb", "a b", ""], ids=["trailing-newline", "newline", "space", "empty"])
def test_a_feature_name_is_the_whole_pattern(name):
    """``$`` in ``^[A-Za-z0-9_.-]+$`` also matches before a final newline: "abc\\n" was accepted."""
    with pytest.raises(SpecError, match=r"name must match \[A-Za-z0-9_\.-\]\+"):
        parse_spec({"label": {"column": "y"}, "features": [{"name": name, "kind": "categorical", "column": "x"}]})


@pytest.mark.parametrize("name", ["x\ny", "x\x1b[31my", "a\u202eb", "a\tb", "a\u2028b"],
                         ids=["newline", "escape", "bidi-override", "tab", "line-separator"])
def test_a_cross_name_has_no_control_or_format_characters(name):
    """A cross's name is printed by inspect, in errors and in reports: a newline or an escape
    sequence in it would forge output lines (feature names are held to [A-Za-z0-9_.-])."""
    d = {"label": {"column": "y"},
         "features": [{"name": "a", "kind": "categorical", "column": "x"},
                      {"name": "b", "kind": "categorical", "column": "z"}],
         "crosses": [{"features": ["a", "b"], "name": name}]}
    with pytest.raises(SpecError, match=r"^crosses\[0\]\.name: .*control") as info:
        parse_spec(d)
    assert "\n" not in str(info.value) and "\x1b" not in str(info.value)
    d["crosses"][0]["name"] = "a × b @60 (ünï)"
    assert parse_spec(d).crosses[0].name == "a × b @60 (ünï)"


def test_a_long_list_of_pyramid_levels_in_an_error_is_cut_cleanly():
    """The levels named in 'is a geo pyramid' are cut to ~200 characters: '... and 2 more)',
    not a list literal with its bracket and last letter chopped ('...] and 2 mor)')."""
    long = "g" + "x" * 150
    d = {"label": {"column": "y"},
         "features": [{"name": long, "kind": "geo", "lat": "la", "lon": "lo",
                       "resolution_arcmin": [600, 300, 60, 30, 6, 3, 1]}],
         "crosses": [{"features": [long, "zzz"]}]}
    with pytest.raises(SpecError) as info:
        parse_spec(d)
    msg = str(info.value)
    assert re.search(r"by its derived name \('gx+\.\.\.(, 'gx+\.\.\.)* and \d+ more\)$", msg), msg[-200:]
    assert "] and" not in msg and "mor)" not in msg
