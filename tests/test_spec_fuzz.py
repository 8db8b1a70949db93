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
