"""Fuzzing the spec parser: every spec is untrusted input (a user's TOML, a dict, the spec
stored in a model file).  ``parse_spec`` either returns a spec that round-trips through its
stored form, or raises :class:`SpecError` with one short line; never another exception, a
long echo of a value, or time beyond linear in the input.

The fuzzed specs start from valid ones (the shipped ``data/specs/*.toml`` and small dicts
covering every kind) and are mutated anywhere in their nested structure: hostile values
(huge and negative integers, NaN and infinities, bools, None, empty and huge strings,
control characters and lone surrogates, empty, huge and nested lists, tables where scalars
are expected), deleted keys, unknown keys, duplicate features, self-referencing or missing
cross components.  The regression tests below the fuzz tests pin the defects it found.
"""

from __future__ import annotations

import copy
import json
import math
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsecross import parse_spec
from sparsecross.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "data" / "specs").glob("*.toml"))

#: The longest message an error may have (values are echoed shortened: ``errors.shown``).
MAX_MESSAGE = 400
#: Seconds one parse may take (the fuzzed specs are small; a slow one is superlinear).
MAX_SECONDS = 2.0

# ------------------------------------------------------------------ regression tests
# Each pins one defect the fuzzing found: another exception than SpecError, a message that
# echoes a value whole, or a parsed spec that cannot be stored.

BIG = "a" * 1_000_000


def _base() -> dict[str, Any]:
    return {"label": {"column": "y"},
            "features": [{"name": "a", "kind": "categorical", "column": "a"},
                         {"name": "b", "kind": "categorical", "column": "b"}]}


def _with(**feature: Any) -> dict[str, Any]:
    d = _base()
    d["features"].append(feature)
    return d


def _short_error(source: Any, match: str | None = None, stored: bool = False) -> str:
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=match) as exc:
        parse_spec(source, stored=stored)
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) <= MAX_MESSAGE, msg[:500]
    assert time.perf_counter() - t0 < MAX_SECONDS
    return msg


@pytest.mark.parametrize("text", ["a = " + "[" * 100_000, "a = " + "{b = " * 100_000], ids=["arrays", "tables"])
def test_toml_nested_too_deeply_is_a_spec_error(text):
    _short_error(text, "not valid TOML")  # tomllib raised RecursionError


def test_a_toml_integer_past_pythons_digit_limit_is_a_spec_error():
    _short_error("version = 1" + "0" * 5000, "not valid TOML")  # tomllib raised ValueError


@pytest.mark.parametrize("source", [5, None, [1], b"[label]", 1.5])
def test_a_spec_that_is_neither_text_nor_a_table_is_a_spec_error(source):
    _short_error(source, "expected TOML text or a table")  # TypeError


@pytest.mark.parametrize("key", [5, None, (1, 2)])
def test_a_non_string_key_is_a_spec_error(key):
    d = _base()
    d["label"][key] = 1
    _short_error(d, "label: unknown key")  # TypeError in difflib
    d = _base()
    d["features"][0][key] = 1
    _short_error(d, r"features\[0\] \('a'\): unknown key")


def test_a_deeply_nested_value_is_echoed_without_recursion_error():
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    _short_error({"label": {"column": deep}, "features": []}, "label.column: expected a string")


@pytest.mark.parametrize("res", [5e-324, 1e-310, 1e-300, [60, 5e-324]])
@pytest.mark.parametrize("kind", ["geo", "lat"])
def test_a_tiny_resolution_is_a_spec_error(kind, res):
    if kind == "lat" and isinstance(res, list):
        return
    cols = {"lat": "la", "lon": "lo"} if kind == "geo" else {"column": "la"}
    _short_error(_with(name="g", kind=kind, resolution_arcmin=res, **cols), "resolution_arcmin")  # OverflowError


@pytest.mark.parametrize("huge", [10**5000, -(10**5000)], ids=["plus", "minus"])
def test_an_integer_past_reprs_limit_is_echoed_as_its_digit_count(huge):
    q = {"name": "q", "kind": "bucket", "column": "v", "quantiles": huge}
    assert _short_error(_with(**q)).endswith("got an integer of 5001 digits")  # ValueError from repr
    years = {"name": "t", "kind": "time", "column": "v", "part": "year", "years": [1, huge]}
    assert _short_error(_with(**years)).endswith("got a list of 2 items")


@pytest.mark.parametrize("feature", [
    {"name": "t", "kind": BIG, "column": "v"},
    {"name": BIG, "kind": "categorical", "column": "v", "bogus": 1},
    {"name": BIG + "!", "kind": "categorical", "column": "v"},
    {"name": "t", "kind": "categorical", "column": "v", BIG: 1},
    {"name": "t", "kind": "categorical", "column": "v", "missing": BIG},
    {"name": "t", "kind": "time", "column": "v", "part": BIG},
    {"name": "t", "kind": "time", "column": "v", "part": "hour", "timezone": BIG},
    {"name": "t", "kind": "time", "column": "v", "part": "hour", "format": "%Q" + BIG},
    {"name": "t", "kind": "time", "column": "v", "part": "year", "years": [BIG, 1]},
    {"name": "t", "kind": "time", "column": "v", "part": "year", "years": list(range(10_000))},
    {"name": "t", "kind": "time", "column": "v", "part": "year", "years": [1, 10**400]},
    {"name": "t", "kind": "numeric", "column": "v", "transform": BIG},
    {"name": "t", "kind": "bucket", "column": "v", "boundaries": [BIG]},
    {"name": "t", "kind": "bucket", "column": "v", "boundaries": list(range(10_000, 0, -1))},
    {"name": "t", "kind": "bucket", "column": "v", "quantiles": 10**400},
    {"name": "g", "kind": "geo", "lat": "a", "lon": "b", "resolution_arcmin": [BIG]},
    {"name": "g", "kind": "geo", "lat": "a", "lon": "b", "resolution_arcmin": [10**400, 1]},
    {"name": "g", "kind": "geo", "lat": "a", "lon": "b", "resolution_arcmin": 1e-9},
    {"name": "g", "kind": "lat", "column": "a", "invalid": BIG},
], ids=lambda f: f"{f['kind'][:12]}-{'-'.join(k[:12] for k in f if k not in ('name', 'kind', 'column'))}")
def test_a_huge_value_is_echoed_shortened(feature):
    _short_error(_with(**feature))


@pytest.mark.parametrize("change", ["label_compare", "cross_missing", "cross_mode", "cross_twice",
                                    "duplicate_names", "train_key", "pyramid_named"])
def test_a_huge_name_or_value_elsewhere_is_echoed_shortened(change):
    d = _base()
    long_name = "n" * 100_000  # a valid feature name, however long
    if change == "label_compare":
        d["label"].update(threshold=1, compare=BIG)
    elif change == "cross_missing":
        d["crosses"] = [{"features": ["a", BIG]}]
    elif change == "cross_mode":
        d["crosses"] = [{"features": ["a", "b"], "mode": BIG}]
    elif change == "cross_twice":
        d["features"][0]["name"] = long_name
        d["crosses"] = [{"features": [long_name, long_name]}]
    elif change == "duplicate_names":
        d["features"] = [{"name": f"{k}" + long_name, "kind": "categorical", "column": "c"} for k in range(12)] * 2
    elif change == "train_key":
        d["train"] = {BIG: 1}
    elif change == "pyramid_named":
        d["features"].append({"name": long_name, "kind": "geo", "lat": "la", "lon": "lo",
                              "resolution_arcmin": [60, 6, 1]})
        d["crosses"] = [{"features": ["a", long_name]}]
    _short_error(d)


@pytest.mark.parametrize(("role", "what"), [("column", "label"), ("weight", "weight")])
def test_a_feature_reading_a_long_label_or_weight_column_is_echoed_shortened(role, what):
    d = _base()
    d["label"][role] = d["features"][0]["column"] = "c" * 10_000
    _short_error(d, f"is the {what} column")


def test_a_misspelt_long_name_suggests_shortened_names():
    d = _base()
    long_name = "n" * 10_000
    d["features"][0]["name"] = long_name
    d["crosses"] = [{"features": ["b", long_name + "x"]}]
    assert "did you mean" in _short_error(d)


def test_a_cross_name_that_is_not_utf8_is_a_spec_error():
    d = _base()
    d["crosses"] = [{"features": ["a", "b"], "name": "x\ud800"}]
    _short_error(d, r"crosses\[0\].name")  # UnicodeEncodeError hashing the name


@pytest.mark.parametrize("where", ["quantile_sample_rows", "train"])
def test_an_integer_beyond_int64_is_a_spec_error(where):
    # the spec's dict must stay JSON-able (sha256 hashes its JSON): 10**5000 broke json.dumps
    d = _base()
    if where == "train":
        d["train"] = {"epochs": 10**5000}
    else:
        d["quantile_sample_rows"] = 10**5000
    _short_error(d, where)
