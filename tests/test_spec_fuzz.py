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
#: Seconds one parse may take: a bound for a loaded machine, not a speed check (no test
#: depends on speed: a parse here takes milliseconds, 10,000 features well under a second);
#: what it catches is a superlinear blow-up (a 10**5000-digit value, a quadratic check over
#: 10,000 features), which takes minutes or never ends.
MAX_SECONDS = 60.0

SHIPPED = [tomllib.loads(p.read_text(encoding="utf-8")) for p in SPECS]

BUILT: list[dict[str, Any]] = [
    {
        "version": 1,
        "label": {"column": "y", "threshold": 0.5, "compare": ">=", "weight": "w", "positive_weight": 2.0,
                  "missing": "skip"},
        "hashing": {"bits": 12, "seed": 7, "max_exact": 1000},
        "features": [
            {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": 6.0,
             "invalid": "missing"},
            {"name": "pyr", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": [600, 60, 6],
             "bands": True},
            {"name": "one", "kind": "geo", "lat": "lat", "lon": "lon", "resolution_arcmin": [30]},
            {"name": "la", "kind": "lat", "column": "lat", "resolution_arcmin": 30.0, "standalone": False},
            {"name": "lo", "kind": "lon", "column": "lon", "resolution_arcmin": 60, "invalid": "error"},
            {"name": "inc", "kind": "bucket", "column": "inc", "boundaries": [1, 2.5, 1e6]},
            {"name": "dev", "kind": "categorical", "column": "device", "missing": "skip"},
            {"name": "tags", "kind": "categorical", "column": "tag_list"},
            {"name": "rooms", "kind": "numeric", "column": "rooms", "transform": "log1p", "clip": [0, 1e5]},
            {"name": "slog", "kind": "numeric", "column": "x", "transform": "signed_log1p"},
            {"name": "hour", "kind": "time", "column": "ts", "part": "hour", "timezone": "Europe/Paris"},
            {"name": "yr", "kind": "time", "column": "d", "part": "year", "years": [2000, 2030],
             "format": "%Y-%m-%d", "invalid": "missing"},
        ],
        "crosses": [
            {"features": ["la", "inc"], "mode": "exact"},
            {"features": ["dev", "inc", "hour"], "name": "dih", "mode": "hashed"},
            {"features": ["pyr@60", "dev"]},
            {"features": ["pyr.lat@6", "yr"], "mode": "auto"},
        ],
        "train": {"alpha": 0.1, "beta": 1, "l1": 0.5, "l2": 0.0, "epochs": 3, "holdout": 0.1,
                  "batch_rows": 4096, "shuffle": True, "shuffle_seed": 3, "early_stop": 2,
                  "max_state_mb": 64, "state_bits": 16},
        "quantile_sample_rows": 5000,
    },
    {
        "label": {"column": "kind", "positive": ["a", "b"]},
        "features": [
            {"name": "q", "kind": "bucket", "column": "v", "quantiles": 4},
            {"name": "m", "kind": "time", "column": "ts", "part": "month", "format": "%d/%m/%Y %H:%M"},
            {"name": "c", "kind": "categorical", "column": "c", "standalone": False},
        ],
        "crosses": [{"features": ["q", "c"]}],
        "train": {"admit_after": 2, "admit_filter_mb": 8},
    },
    {
        "label": {"column": "y", "positive": [1, 3]},
        "hashing": {"bits": 1},
        "features": [{"name": "n", "kind": "numeric", "column": "n"},
                     {"name": "dow", "kind": "time", "column": "t", "part": "dow"}],
    },
    {
        "label": {"column": "y", "positive": [True]},
        "features": [{"name": "a", "kind": "categorical", "column": "a", "standalone": False},
                     {"name": "b", "kind": "categorical", "column": "b", "standalone": False}],
        "crosses": [{"features": ["a", "b"]}, {"features": ["b", "a"], "name": "ba"}],
    },
]

#: A resolved quantile bucket, as a model file stores it (``stored=True`` only).
STORED = {
    "version": 1,
    "label": {"column": "y"},
    "hashing": {"bits": 10, "seed": 0, "max_exact": 2**30},
    "features": [{"name": "q", "kind": "bucket", "column": "v", "boundaries": [1.0, 2.0], "quantiles": 3,
                  "missing": "bucket", "standalone": True},
                 {"name": "c", "kind": "categorical", "column": "y", "missing": "bucket", "standalone": True}],
    "crosses": [{"name": "qq", "features": ["q", "q"], "mode": "auto"}],
}

BASES = SHIPPED + BUILT


def _nested(depth: int) -> list[Any]:
    v: list[Any] = []
    for _ in range(depth):
        v = [v]
    return v


HUGE_STR = "a" * 10_000
HOSTILE: list[Any] = [
    10**400, -(10**400), 10**5000, -(2**63), -(2**63) - 1, 2**63, 2**64, 2**62, -1, 0, 1, 2, 3, 7, 10_000, 10_001,
    math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, -1e308, 5e-324, 1e-300, 0.5, 21600.0, 21601, 1e-6,
    True, False, None,
    "", " ", HUGE_STR, "\x00", "a\nb", "\r\n", "\ud800", "x\udfffy", "\u2028", "\x1b[31m", "é", "*", "@", "g@60",
    "%", "%%", "%Q", "%Y" * 3000, "../../etc/passwd", "UTC", "Europe/Paris", "zone.tab", "posixrules", "/",
    "none", "log1p", "hour", "year", "geo", "lat", "bucket", "categorical", "numeric", "time", "exact",
    "hashed", "auto", "skip", "missing", ">=", "error", "y", "w", "lat", "cell", "pyr", "pyr@60",
    [], [[]], [1], [1, 2], [2, 1], [1, 1], [0, 1e5], [-1, 0], [2000, 2030], [60, 6, 1], [60] * 9, [1, 60],
    [math.nan, 1.0], [10**400, 1], [10**5000], ["a", "b"], ["a", 1], [True], [None], [HUGE_STR, 1],
    list(range(10_000)), [HUGE_STR] * 3, _nested(50),
    {}, {"a": 1}, {"name": "x"}, {"column": "y"}, {HUGE_STR: 1}, {5: 1}, {None: None}, b"bytes", (1, 2),
]

#: Plausible values of each key: mutations to them reach the checks past the type checks and
#: make specs that parse (and must round-trip).
PLAUSIBLE: dict[str, list[Any]] = {
    "resolution_arcmin": [60, 6.0, 0.5, 1, 21600, 7.5, 0.05, 0.001, [60, 6, 1], [600.0, 7.5], [30], [21600, 1e-3]],
    "bands": [True, False],
    "boundaries": [[0], [-1e300, 1e300], [1, 2, 3], [-0.0, 1], [0.1, 0.2], list(range(100)), [-(2**63), 2**63]],
    "quantiles": [2, 10_000, 5],
    "clip": [[0, 1], [-1e300, 1e300], [-0.5, 3], [0, 10**10], [-1, 0]],
    "transform": ["none", "log1p", "signed_log1p"],
    "part": ["minute", "hour", "dow", "dayofyear", "month", "year"],
    "years": [[1, 9999], [2000, 2000], [1, 1]],
    "format": ["%Y", "%H:%M", "%%%Y", "%Y-%m-%dT%H:%M:%S%z", "%d %b %Y"],
    "timezone": ["UTC", "Asia/Kolkata", "America/St_Johns", "Etc/GMT+12"],
    "invalid": ["error", "missing"],
    "missing": ["bucket", "skip", "error"],
    "standalone": [True, False],
    "mode": ["auto", "exact", "hashed"],
    "bits": [1, 40, 20],
    "seed": [0, 2**64 - 1, 12345],
    "max_exact": [1, 2**50, 100],
    "threshold": [0, -1e300, 1e300, -0.0, 5],
    "compare": [">", ">=", "<", "<="],
    "positive": [["a"], [0], [-(2**63), 2**63 - 1], [False], ["é", "\x00"], ["a", "a"]],
    "positive_weight": [1e-300, 1e300, 0.5],
    "weight": ["w", "wt", "é"],
    "name": ["x", "A.b-c_9", "-", ".", "n" * 300, "cell", "a*b"],
    "column": ["é", "", " ", "a.b", "\x00", "y", "w", "c" * 300],
    "lat": ["la", "lon"], "lon": ["lo", "lat"],
    "kind": ["geo", "lat", "lon", "bucket", "categorical", "numeric", "time"],
    "version": [1],
    "quantile_sample_rows": [1, 2**63 - 1],
    "epochs": [1, 2**63 - 1], "early_stop": [1, 5], "alpha": [1e-300, 0, 0.5], "max_state_mb": [1e-300, 1e300],
    "state_bits": [16, 32], "admit_after": [1, 3], "admit_probability": [0.5, 1.0], "shuffle": [True, False],
}

#: Keys a mutation may add (every key some kind or table knows, and unknown ones).
KEYS = ["name", "kind", "column", "lat", "lon", "resolution_arcmin", "bands", "invalid", "missing",
        "standalone", "boundaries", "quantiles", "transform", "clip", "part", "format", "timezone", "years",
        "features", "mode", "threshold", "compare", "positive", "weight", "positive_weight", "bits", "seed",
        "max_exact", "label", "hashing", "crosses", "train", "version", "quantile_sample_rows", "alpha",
        "epochs", "early_stop", "max_state_mb", "state_bits", "admit_after", "admit_probability",
        "admit_filter_mb", "shuffle", "resolution", "Name", "", HUGE_STR, "\x00", 5, None]

hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans()), max_size=5),
)


def _items(node: Any, prefix: tuple[Any, ...]) -> Any:
    """The children of ``node`` a mutation may reach (not inside hostile deep or long values)."""
    if len(prefix) > 5 or (isinstance(node, (list, dict)) and len(node) > 100):
        return ()
    return node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indices) to a value inside ``node``."""
    out: list[tuple[Any, ...]] = []
    items = _items(node, prefix)
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,)))
    return out


def _containers(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a dict inside ``node`` (``()`` for ``node`` itself)."""
    out = [prefix] if isinstance(node, dict) else []
    items = _items(node, prefix)
    for k, v in items:
        out.extend(_containers(v, prefix + (k,)))
    return out


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        node = node[k]
    return node


def _names(d: dict[str, Any]) -> list[str]:
    out = []
    for f in d.get("features", []) if isinstance(d.get("features"), list) else []:
        if isinstance(f, dict) and isinstance(f.get("name"), str):
            out.append(f["name"])
            out.append(f["name"] + "@60")
            out.append(f["name"] + ".lat@6")
    return out + ["nope", "", HUGE_STR]


@st.composite
def mutated(draw: Any, bases: list[dict[str, Any]] = BASES) -> dict[str, Any]:
    d = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add", "dup", "cross"]))
        if op in ("replace", "delete"):
            paths = _paths(d)
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            parent = _at(d, path[:-1])
            if op == "delete":
                del parent[path[-1]]
            elif isinstance(path[-1], str) and path[-1] in PLAUSIBLE and draw(st.booleans()):
                parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(PLAUSIBLE[path[-1]])))
            else:
                parent[path[-1]] = copy.deepcopy(draw(hostile))  # a later mutation may change it
        elif op == "add":
            where = _at(d, draw(st.sampled_from(_containers(d))))
            key = draw(st.sampled_from(KEYS))
            plausible = key in PLAUSIBLE and draw(st.booleans())
            where[key] = copy.deepcopy(draw(st.sampled_from(PLAUSIBLE[key]) if plausible else hostile))
        elif op == "dup" and isinstance(d.get("features"), list) and d["features"]:
            f = copy.deepcopy(draw(st.sampled_from(d["features"])))
            if isinstance(f, dict) and draw(st.booleans()):
                f["name"] = draw(st.sampled_from(_names(d)))
            d["features"].append(f)
        elif op == "cross":
            names = _names(d)
            comps = draw(st.lists(st.sampled_from(names), min_size=0, max_size=10))
            cross: dict[str, Any] = {"features": comps}
            if draw(st.booleans()):  # self-referencing or clashing names
                cross["name"] = draw(st.sampled_from(names + ["*".join(comps)]))
            if draw(st.booleans()):
                cross["mode"] = draw(st.sampled_from(["auto", "exact", "hashed", "bogus"]))
            if not isinstance(d.get("crosses"), list):
                d["crosses"] = []
            d["crosses"].append(cross)
    return d


def check(source: Any, stored: bool = False) -> None:
    """The property: a spec that round-trips, or one short line in a SpecError."""
    t0 = time.perf_counter()
    try:
        spec = parse_spec(source, stored=stored)
    except SpecError as exc:
        msg = str(exc)
        assert "\n" not in msg and "\r" not in msg, msg[:1000]
        assert len(msg) <= MAX_MESSAGE, f"{len(msg)} characters: {msg[:1000]}"
        return
    finally:
        assert time.perf_counter() - t0 < MAX_SECONDS
    d = spec.to_dict()
    again = parse_spec(d, stored=True)
    assert again == spec
    assert again.sha256 == spec.sha256
    # a model file stores the dict as JSON
    assert parse_spec(json.loads(json.dumps(d)), stored=True).sha256 == spec.sha256


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large])


def test_the_bases_are_valid_and_round_trip():
    for d in BASES:
        spec = parse_spec(copy.deepcopy(d))
        check(copy.deepcopy(d))
        assert spec.features
    check(copy.deepcopy(STORED), stored=True)


@FUZZ
@given(mutated())
def test_a_mutated_spec_parses_or_raises_one_short_spec_error(d):
    check(d)


@st.composite
def gently_mutated(draw: Any) -> dict[str, Any]:
    """A base with 1 to 3 values replaced by plausible ones (or dropped): most still parse, so
    the round trip is exercised."""
    d = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(d) if isinstance(p[-1], str) and p[-1] in PLAUSIBLE]
        path = draw(st.sampled_from(paths))
        parent = _at(d, path[:-1])
        if draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(PLAUSIBLE[path[-1]])))
    return d


@FUZZ
@given(gently_mutated(), st.booleans())
def test_a_plausibly_mutated_spec_parses_and_round_trips_or_raises_one_short_spec_error(d, stored):
    check(d, stored=stored)


@FUZZ
@given(mutated(), st.booleans())
def test_a_mutated_stored_spec_parses_or_raises_one_short_spec_error(d, via_to_dict):
    if via_to_dict:  # the stored form of a valid spec, then mutated
        try:
            base = parse_spec(copy.deepcopy(d)).to_dict()
        except SpecError:
            return
        d = base
    check(d, stored=True)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(bases=[STORED]))
def test_a_mutated_resolved_stored_spec_parses_or_raises(d):
    check(d, stored=True)


SPEC_TEXTS = [p.read_text(encoding="utf-8") for p in SPECS]


@st.composite
def mutated_text(draw: Any) -> str:
    text = draw(st.sampled_from(SPEC_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(0, 20)))
        text = text[:i] + draw(st.one_of(st.text(max_size=10), st.sampled_from(
            ["[", "[[", "]", "=", '"', "'''", "\\", "\x00", "\ud800", "1" * 5000, "1e400", "nan", "inf", "-0",
             "[[features]]\n", "\n", "true", "{", "}", ",", "[" * 2000]))) + text[j:]
    return text


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 mutated_text()))
def test_any_text_parses_or_raises_one_short_spec_error(text):
    check(text)


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


def test_a_positive_label_value_that_is_not_utf8_is_a_spec_error():
    d = _base()
    d["label"]["positive"] = ["ok", "x\ud800"]
    _short_error(d, "label.positive")  # parsed, then training raised UnicodeEncodeError


def test_a_time_format_that_is_not_utf8_is_a_spec_error():
    feature = {"name": "t", "kind": "time", "column": "ts", "part": "hour", "format": "%Y-%m-%d %H\ud800"}
    _short_error(_with(**feature), "format")  # parsed, then featurizing raised UnicodeEncodeError


@pytest.mark.parametrize("where", ["quantile_sample_rows", "train"])
def test_an_integer_beyond_int64_is_a_spec_error(where):
    # the spec's dict must stay JSON-able (sha256 hashes its JSON): 10**5000 broke json.dumps
    d = _base()
    if where == "train":
        d["train"] = {"epochs": 10**5000}
    else:
        d["quantile_sample_rows"] = 10**5000
    _short_error(d, where)


def test_ten_thousand_features_and_crosses_parse_in_linear_time():
    feats = [{"name": f"f{i}", "kind": "categorical", "column": f"c{i}"} for i in range(10_000)]
    crosses = [{"features": [f"f{i}", f"f{(i + 1) % 10_000}"]} for i in range(10_000)]
    t0 = time.perf_counter()
    spec = parse_spec({"label": {"column": "y"}, "features": feats, "crosses": crosses})
    assert parse_spec(spec.to_dict(), stored=True).sha256 == spec.sha256
    assert time.perf_counter() - t0 < MAX_SECONDS
    # one more is refused, quickly
    _short_error({"label": {"column": "y"}, "features": feats * 2}, "at most 10000")


def test_a_stored_cross_of_many_components_parses_in_linear_time():
    feats = [{"name": f"f{i}", "kind": "lat", "column": "la", "resolution_arcmin": 60} for i in range(5_000)]
    cross = {"features": [f"f{i}" for i in range(5_000)], "mode": "exact"}
    t0 = time.perf_counter()
    _short_error({"label": {"column": "y"}, "features": feats, "crosses": [cross]}, "2\\*\\*62", stored=True)
    assert time.perf_counter() - t0 < MAX_SECONDS


def test_megabyte_strings_are_fast():
    t0 = time.perf_counter()
    d = _with(name="n" * 1_000_000, kind="categorical", column=BIG)
    d["label"]["column"] = "y" * 1_000_000
    spec = parse_spec(d)
    assert parse_spec(spec.to_dict(), stored=True) == spec
    assert time.perf_counter() - t0 < MAX_SECONDS
