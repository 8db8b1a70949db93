"""Spec parsing: TOML text or a mapping -> a validated :class:`~sparsecross.spec.FeatureSpec`.

Every check a user's spec gets lives here, each message naming where it is; the limits
(:data:`~sparsecross.spec.MAX_FEATURES` and friends) are enforced in time linear in the spec.
"""

from __future__ import annotations

import math
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._defaults import MAX_EPOCHS
from ._values import MAX_ROW_WEIGHT, PARAM_RULES
from .errors import SpecError, did_you_mean, shown, shown_path
from .spec import (
    COMPARE_OPS,
    _COMMON_KEYS,
    _NAME_RE,
    MAX_CROSS_COMPONENTS,
    MAX_CROSSES,
    MAX_FEATURES,
    TRAIN_KEYS,
    Cross,
    Feature,
    FeatureSpec,
    HashingSpec,
    LabelSpec,
)
from .kinds import KINDS
from .kinds._base import choice as _choice
from .kinds._base import get as _get
from .kinds._base import is_utf8 as _is_utf8

__all__ = ["parse_spec", "load_spec"]


def _some(names: Any, limit: int = 10, order: bool = True, brackets: bool = True) -> str:
    """Names (sorted unless not ``order``) as a list literal (bare items without ``brackets``),
    at most ``limit`` of them, each :func:`shown` and at most 200 characters in all (an error
    stays one short line), then how many more there are."""
    names = sorted(names) if order else list(names)
    out: list[str] = []
    size = 0
    for n in names[:limit]:
        text = shown(n)
        if out and size + len(text) > 200:
            break
        out.append(text)
        size += len(text)
    body = ", ".join(out)
    more = f" and {len(names) - len(out)} more" if len(names) > len(out) else ""
    return (f"[{body}]" if brackets else body) + more


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(
                f"{where}: unknown key {shown(key)}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def _parse_feature(i: int, t: Any, label: LabelSpec, stored: bool) -> tuple[Feature, ...]:
    where = f"features[{i}]"
    if not isinstance(t, dict):
        raise SpecError(f"{where}: expected a table, got {shown(t)}")
    name = _get(where, t, "name", str)
    where = f"features[{i}] ({shown(name)})"
    if not _NAME_RE.fullmatch(name):
        raise SpecError(f"{where}: name must match [A-Za-z0-9_.-]+, got {shown(name)}")
    kind = KINDS[_choice(f"{where}.kind", _get(where, t, "kind", str), tuple(KINDS))]
    for other in KINDS.values():
        for key, why in other.exclusive.items():
            if key in t and other is not kind:
                raise SpecError(f"{where}.{key}: {why}; this feature is {kind.name!r}")
    _check_keys(where, t, _COMMON_KEYS | kind.keys)
    missing = _choice(f"{where}.missing", _get(where, t, "missing", str, "bucket"), ("bucket", "skip"))
    standalone = _get(where, t, "standalone", bool, True)
    columns = kind.columns(where, t)
    if not stored:
        for col in columns:
            if col == label.column:
                raise SpecError(
                    f"{where}: column {shown(col)} is the label column; a feature must not read the label "
                    "(the model would learn the answer)"
                )
            if col == label.weight:
                raise SpecError(
                    f"{where}: column {shown(col)} is the weight column ([label] weight); a feature must "
                    "not read the sample weights"
                )
    f = Feature(name, kind.name, columns, missing=missing, standalone=standalone, **kind.parse(where, t, stored))
    kind.check_feature(where, f)
    return kind.expand(f, name)


def parse_spec(source: str | Mapping[str, Any], *, stored: bool = False) -> FeatureSpec:
    """Parse a spec from TOML text or an already-loaded mapping.

    A user's spec may not use the label or weight column as a feature column, give a bucket
    both ``boundaries`` and ``quantiles``, or list a feature twice in a cross.

    ``stored=True`` is for a spec read back from a file sparsecross wrote (a model's embedded
    :meth:`FeatureSpec.to_dict`), which was valid when written: it accepts the resolved form of
    a quantile bucket (its ``boundaries`` with the ``quantiles`` count they came from, as
    ``to_dict`` writes it and ``sha256`` hashes it) and what earlier versions accepted (a
    feature crossed with itself, a feature reading the label or weight column), and it is not
    held to :data:`MAX_FEATURES`, :data:`MAX_CROSSES` or :data:`MAX_CROSS_COMPONENTS`.  Types,
    ranges, names and the column space are checked as for a user's spec.

    Raises
    ------
    SpecError
        On any unknown key, wrong type or impossible value, naming where it is.

    Examples
    --------
    >>> spec = parse_spec('''
    ... [label]
    ... column = "y"
    ... [[features]]
    ... name = "cell"
    ... kind = "geo"
    ... lat = "lat"
    ... lon = "lon"
    ... ''')
    >>> spec.outputs[0].cardinality
    233280001
    """
    data = _load(source)
    _check_keys("spec", data, {"version", "label", "hashing", "features", "crosses", "train",
                               "quantile_sample_rows"})
    version = _get("spec", data, "version", int, 1)
    if version != 1:
        raise SpecError(f"spec.version: only version 1 is supported, got {shown(version)}")
    label = _parse_label(_get("spec", data, "label", dict))
    hashing = _parse_hashing(_get("spec", data, "hashing", dict, {}))
    features, index = _parse_features(_get("spec", data, "features", list), label, stored)
    crosses = _parse_crosses(_get("spec", data, "crosses", list, []), features, index, stored)
    train = _parse_train(dict(_get("spec", data, "train", dict, {})))
    qrows = _get("spec", data, "quantile_sample_rows", int, 1_000_000)
    if qrows < 1:
        raise SpecError(f"quantile_sample_rows: expected a positive integer, got {shown(qrows)}")
    if qrows >= 2**63:  # int64, as every integer of the spec's JSON (10**5000 broke its sha256)
        raise SpecError(f"quantile_sample_rows: expected an integer below 2**63, got {shown(qrows)}")
    spec = FeatureSpec(label, hashing, features, crosses, train, qrows, version)
    if (1 << hashing.bits if spec.needs_data else spec.n_columns) >= 2**62:
        raise SpecError("spec: the column space exceeds 2**62 columns; lower resolutions or max_exact")
    if not spec.needs_data and not spec.outputs:
        raise SpecError("spec: no feature is emitted (every feature has standalone = false and there are no crosses)")
    return spec


def _load(source: str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    if not isinstance(source, str):
        raise SpecError(f"spec: expected TOML text or a table (a mapping), got {shown(source)}")
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec is not valid TOML: {exc}") from None
    except ValueError as exc:  # an integer literal past Python's digit limit (4300): Python's own words
        raise SpecError(f"spec is not valid TOML: {str(exc).split(';')[0]}") from None
    except RecursionError:  # tomllib recurses per level of nesting
        raise SpecError("spec is not valid TOML: arrays or tables are nested too deeply") from None


def _parse_label(lab: Mapping[str, Any]) -> LabelSpec:
    _check_keys("label", lab, {"column", "threshold", "compare", "positive", "missing", "weight",
                               "positive_weight"})
    threshold = _get("label", lab, "threshold", float, None)
    if threshold is not None and not math.isfinite(threshold):
        raise SpecError(f"label.threshold: expected a finite number, got {shown(threshold)}")
    compare = None
    if "compare" in lab:
        if threshold is None:
            raise SpecError("label.compare: needs label.threshold (y = column <compare> threshold)")
        compare = _choice("label.compare", _get("label", lab, "compare", str), COMPARE_OPS)
        if compare == ">":
            compare = None  # the default: stored as unset, so the spec keeps its SHA-256
    positive = None
    if "positive" in lab:
        if threshold is not None:
            raise SpecError("label: 'positive' and 'threshold' exclude each other; give a list of positive "
                            "values, or a threshold (with compare)")
        raw = _get("label", lab, "positive", list)
        kinds = {bool if isinstance(v, bool) else int if isinstance(v, int) else str if isinstance(v, str)
                 else None for v in raw}
        if not raw or None in kinds or len(kinds) != 1:
            raise SpecError(f"label.positive: expected a non-empty list of strings, integers or booleans, all of "
                            f"one type, got {shown(raw)}")
        if int in kinds and any(not -2**63 <= v < 2**63 for v in raw):
            raise SpecError(f"label.positive: integers must fit in int64, got {shown(raw)}")
        if str in kinds and not all(_is_utf8(v) for v in raw):
            raise SpecError(f"label.positive: expected UTF-8 text (the label column's strings are), got {shown(raw)}")
        positive = tuple(dict.fromkeys(raw))  # without repeats, in the given order
    missing = _choice("label.missing", _get("label", lab, "missing", str, "error"), ("error", "skip"))
    positive_weight = _get("label", lab, "positive_weight", float, None)
    if positive_weight is not None and not (math.isfinite(positive_weight) and 0 < positive_weight <= MAX_ROW_WEIGHT):
        raise SpecError(f"label.positive_weight: expected a finite number > 0 and at most {MAX_ROW_WEIGHT:g}, "
                        f"got {shown(positive_weight)}")
    return LabelSpec(
        _get("label", lab, "column", str), threshold, _get("label", lab, "weight", str, None),
        positive, compare, missing, positive_weight,
    )


def _parse_hashing(hs: Mapping[str, Any]) -> HashingSpec:
    _check_keys("hashing", hs, {"bits", "seed", "max_exact"})
    hashing = HashingSpec(
        _get("hashing", hs, "bits", int, 22),
        _get("hashing", hs, "seed", int, 0),
        _get("hashing", hs, "max_exact", int, 2**30),
    )
    if not 1 <= hashing.bits <= 40:
        raise SpecError(f"hashing.bits: expected an integer in [1, 40], got {shown(hashing.bits)}")
    if not 0 <= hashing.seed < 2**64:
        raise SpecError(f"hashing.seed: expected an integer in [0, 2**64), got {shown(hashing.seed)}")
    if not 1 <= hashing.max_exact <= 2**50:
        raise SpecError(f"hashing.max_exact: expected an integer in [1, 2**50], got {shown(hashing.max_exact)}")
    return hashing


def _parse_features(raw: list[Any], label: LabelSpec, stored: bool) -> tuple[tuple[Feature, ...], dict[str, int]]:
    if not raw:
        raise SpecError("spec: at least one [[features]] table is required")
    if len(raw) > MAX_FEATURES and not stored:
        raise SpecError(f"spec: {len(raw)} features; at most {MAX_FEATURES} are supported")
    groups = [_parse_feature(i, t, label, stored) for i, t in enumerate(raw)]
    features = tuple(f for g in groups for f in g)
    # the user's names (a pyramid's, not its derived ones, which no user name can equal: '@')
    counts = Counter(_user_name(g[0]) for g in groups)
    if len(counts) != len(groups):
        raise SpecError(f"features: duplicate names {_some(n for n, k in counts.items() if k > 1)}")
    index = {f.name: i for i, f in enumerate(features)}
    return features, index


def _user_name(f: Feature) -> str:
    """The name the user gave the feature ``f`` was expanded from (its own name if none)."""
    group = KINDS[f.kind].group_of(f)
    return f.name if group is None else group


def _parse_crosses(raw: list[Any], features: tuple[Feature, ...], index: dict[str, int],
                   stored: bool) -> tuple[Cross, ...]:
    if len(raw) > MAX_CROSSES and not stored:
        raise SpecError(f"spec: {len(raw)} crosses; at most {MAX_CROSSES} are supported")
    crosses = tuple(_parse_cross(i, t, features, index, stored) for i, t in enumerate(raw))
    counts = Counter(f.name for f in features)
    counts.update({u for f in features if (u := _user_name(f)) != f.name})  # a pyramid's name
    counts.update(c.name for c in crosses)
    dupes = [n for n, k in counts.items() if k > 1]
    if dupes:
        raise SpecError(f"crosses: names {_some(dupes)} are used twice (features and crosses share names)")
    return crosses


def _parse_cross(i: int, t: Any, features: tuple[Feature, ...], index: dict[str, int], stored: bool) -> Cross:
    where = f"crosses[{i}]"
    if not isinstance(t, dict):
        raise SpecError(f"{where}: expected a table, got {shown(t)}")
    _check_keys(where, t, {"features", "name", "mode"})
    fl = _get(where, t, "features", list)
    if len(fl) < 2 or not all(isinstance(x, str) for x in fl):
        raise SpecError(f"{where}.features: expected a list of 2 or more feature names, got {shown(fl)}")
    if len(fl) > MAX_CROSS_COMPONENTS and not stored:
        raise SpecError(f"{where}.features: {len(fl)} features; a cross has at most {MAX_CROSS_COMPONENTS}")
    for n in fl:
        if n not in index:
            levels = [f.name for f in features if KINDS[f.kind].is_level_of(f, n)]
            if levels:
                raise SpecError(f"{where}.features: feature {shown(n)} is a geo pyramid; cross one of its levels "
                                f"by its derived name ({_some(levels, order=False, brackets=False)})")
            raise SpecError(f"{where}.features: no feature named {shown(n)}{did_you_mean(n, index)}")
    if len(set(fl)) != len(fl) and not stored:
        twice = next(n for k, n in enumerate(fl) if n in fl[:k])
        raise SpecError(
            f"{where}.features: feature {shown(twice)} is listed twice; a feature crossed with itself "
            "adds nothing the feature alone does not give"
        )
    name = _get(where, t, "name", str, "*".join(fl))
    if not _is_utf8(name):
        raise SpecError(f"{where}.name: expected UTF-8 text (a hashed cross hashes it), got {shown(name)}")
    if not name.isprintable() and any(unicodedata.category(ch) in _UNPRINTED for ch in name):
        raise SpecError(f"{where}.name: control or format characters (newlines, escapes, bidi overrides) "
                        f"would forge printed output, got {shown(name)}")
    mode = _choice(f"{where}.mode", _get(where, t, "mode", str, "auto"), ("auto", "exact", "hashed"))
    for n in fl:
        if not KINDS[features[index[n]].kind].crossable:
            raise SpecError(f"{where}.features: feature {shown(n)} is {features[index[n]].kind}, which cannot be "
                            "crossed (its value is not a count)")
    if mode == "exact":
        bad = [n for n in fl if not features[index[n]].is_exact]
        if bad:
            raise SpecError(f"{where}: mode 'exact' is impossible with categorical feature(s) "
                            f"{_some(bad, order=False)}")
    return Cross(name, tuple(fl), mode)


#: Unicode categories a cross name may not contain: controls, format characters (bidi overrides,
#: zero-width), surrogates, line and paragraph separators.
_UNPRINTED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _parse_train(train: dict[str, Any]) -> dict[str, Any]:
    _check_keys("train", train, set(TRAIN_KEYS))
    for k, v in train.items():
        _get("train", train, k, TRAIN_KEYS[k])
        if TRAIN_KEYS[k] is int and not -(2**63) <= v < 2**63:  # 10**5000 breaks the spec's JSON
            raise SpecError(f"train.{k}: expected an integer in the int64 range, got {shown(v)}")
        train[k] = TRAIN_KEYS[k](v)
    for k in ("epochs", "early_stop"):  # as the parameters (train_params.check_epochs)
        if not 1 <= train.get(k, 1) <= MAX_EPOCHS:
            raise SpecError(f"train.{k}: expected an integer in [1, {MAX_EPOCHS:,}], got {shown(train[k])}")
    for k, (ok, expected) in PARAM_RULES.items():  # as TrainParams checks them
        if k in train and not (math.isfinite(train[k]) and ok(train[k])):
            raise SpecError(f"train.{k}: expected a finite number {expected}, got {shown(train[k])}")
    if not train.get("max_state_mb", 1.0) > 0 or not math.isfinite(train.get("max_state_mb", 1.0)):
        raise SpecError(f"train.max_state_mb: expected a number of MiB > 0, got {shown(train['max_state_mb'])}")
    if train.get("state_bits", 32) not in (32, 16):
        raise SpecError(f"train.state_bits: expected 32 or 16, got {shown(train['state_bits'])}")
    if any(k.startswith("admit_") for k in train):
        from .admission import policy_of
        from .errors import ParameterError

        try:
            policy_of(train.get("admit_after"), train.get("admit_probability"), train.get("admit_filter_mb"))
        except ParameterError as exc:
            raise SpecError(f"train: {exc}") from None
    return train


def load_spec(path: str | Path) -> FeatureSpec:
    """Read and validate a TOML feature spec from ``path``.

    Raises
    ------
    SpecError
        If the file cannot be read or is not a valid spec (the message names the file).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {shown_path(p)} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SpecError(f"cannot read spec file {shown_path(p)}: {reason}") from None
    try:
        return parse_spec(text)
    except SpecError as exc:
        raise SpecError(f"{shown_path(p)}: {exc}") from None
