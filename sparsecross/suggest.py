"""``suggest-spec``: profile a bounded sample of a data set and write a commented feature spec.

:func:`suggest_spec` reads at most ``sample_rows`` rows (a seeded choice spread over the
files' row groups, :mod:`sparsecross.suggest_profile`), computes the label on them, and
decides per column (:mod:`sparsecross.suggest_columns`): latitude/longitude pairs become a geo
pyramid with bands, its finest level chosen by validation on the sample
(:mod:`sparsecross.suggest_geo`), numbers quantile buckets (and a ``numeric`` feature where a linear effect
is plausible), small integer sets, booleans and strings categoricals, dates time parts, lists
categorical lists.  The label, the weight column and copies of the label are never features;
every skipped column is named with its reason.  A few crosses are proposed: a coarse geo
level with the categoricals that carry the most information about the label.  The result is
the spec's TOML text, commented with the reason for every choice, and the parsed spec.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._values import is_int
from .errors import DataError, NAME_LIMIT, OutputError, SchemaError, did_you_mean, shown, shown_path
from .read import _bare
from .suggest_geo import CROSS_CELL_ROWS, GEO_LADDER, MIN_CELL_ROWS

__all__ = ["Suggestion", "suggest_spec", "GEO_LADDER", "MIN_CELL_ROWS", "CROSS_CELL_ROWS"]

_LAT = ("latitude", "lattitude", "lat")
_LON = ("longitude", "longtitude", "long", "lng", "lon")
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class Suggestion:
    """What :func:`suggest_spec` found: the TOML text, the parsed spec, the columns skipped
    with their reasons, the rows profiled and the rows of the data, and the geo columns."""

    toml: str
    spec: Any
    skipped: tuple[tuple[str, str], ...]
    rows_profiled: int
    rows_total: int
    geo: tuple[tuple[str, str], ...]

    def write(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the TOML atomically; an existing file is kept unless ``force`` (a spec is
        often edited by hand after it was suggested)."""
        from .files import atomic_output

        out = Path(path)
        if out.exists() and not force:
            raise OutputError(f"{shown_path(out)} exists; pass --force (force=True) to replace it")
        with atomic_output(out, "spec") as fh:
            fh.write(self.toml.encode("utf-8"))
        return out


def _stem(name: str, tokens: tuple[str, ...]) -> str | None:
    low = name.lower()
    for tok in tokens:
        i = low.rfind(tok)
        if i >= 0:
            return low[:i] + "\0" + low[i + len(tok):]
    return None


def _geo_pairs(names: list[str], numbers: dict[str, Any]) -> list[tuple[str, str]]:
    """(lat, lon) column pairs: names that differ only by a latitude and a longitude token
    (``lat``/``latitude``/``Lattitude``, ``lon``/``lng``/``long``/``longitude``...), both with
    at least 95 % of their values in range and some spread."""
    import numpy as np

    pairs, used = [], set()
    for a in names:
        sa = _stem(a, _LAT)
        if sa is None or a in used:
            continue
        for b in names:
            if b == a or b in used or _stem(b, _LON) != sa or _stem(b, _LAT) == sa:
                continue
            lat, lon = numbers[a], numbers[b]
            ok = ~np.isnan(lat) & ~np.isnan(lon)
            if ok.sum() < 10:
                continue
            inr = (np.abs(lat[ok]) <= 90) & (np.abs(lon[ok]) <= 180)
            if inr.mean() >= 0.95 and np.ptp(lat[ok]) > 0 and np.ptp(lon[ok]) > 0:
                pairs.append((a, b))
                used.update((a, b))
                break
    return pairs


def _name(col: str, taken: set[str]) -> str:
    base = re.sub("_+", "_", _NAME_BAD.sub("_", col)).strip("_") or "col"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _label_table(label: str, positive: Any, threshold: Any, compare: Any, weight: Any, schema: Any) -> dict[str, Any]:
    """The [label] table, validated by the spec parser (its messages), with ``positive``
    values converted to the label column's type (the CLI gives strings)."""
    import pyarrow as pa

    from . import spec as _spec  # noqa: F401  (spec_parse is imported through spec)
    from .spec_parse import _parse_label

    names = schema.names
    if label not in names:
        raise SchemaError(f"label column {shown(label, NAME_LIMIT)} is not in the data{did_you_mean(label, names)}; "
                          f"available: {', '.join(map(_bare, names[:20]))}{' ...' if len(names) > 20 else ''}")
    t = schema.field(label).type
    t = t.value_type if pa.types.is_dictionary(t) else t
    lab: dict[str, Any] = {"column": label}
    if threshold is not None:
        lab["threshold"] = threshold
    if compare is not None:
        lab["compare"] = compare
    if positive is not None:
        vals = list(positive) if isinstance(positive, (list, tuple)) else [positive]
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            try:  # integers as they are (through float, 2^60 + 1 was 2^60 and 10^400 an OverflowError)
                nums = [int(v) if is_int(v) else float(v) for v in vals]
            except (TypeError, ValueError, OverflowError):
                nums = [math.nan]
            if not all(is_int(f) or (math.isfinite(f) and f.is_integer()) for f in nums):
                raise SchemaError(f"label.positive: label column {shown(label, NAME_LIMIT)} holds numbers; "
                                  f"{shown(vals)} are not "
                                  "integers")
            vals = [int(f) for f in nums]
        elif pa.types.is_boolean(t):
            m = {"true": True, "false": False, "1": True, "0": False}
            if any(str(v).lower() not in m for v in vals):
                raise SchemaError(f"label.positive: label column {shown(label, NAME_LIMIT)} holds true/false; "
                                  f"got {shown(vals)}")
            vals = [v if isinstance(v, bool) else m[str(v).lower()] for v in vals]
        lab["positive"] = vals
    if weight is not None:
        if weight not in names:
            raise SchemaError(f"weight column {shown(weight, NAME_LIMIT)} is not in the data"
                              f"{did_you_mean(weight, names)}")
        if weight == label:
            raise SchemaError(f"the weight column {shown(weight, NAME_LIMIT)} is the label column")
        lab["weight"] = weight
    _parse_label(lab)  # same checks and messages as a spec's [label]
    return lab


def suggest_spec(source: Any, label: str, *, positive: Any = None, threshold: float | None = None,
                 compare: str | None = None, weight: str | None = None, sample_rows: int = 100_000,
                 seed: int = 0) -> Suggestion:
    """Profile a bounded sample of ``source`` and suggest a commented feature spec.

    Parameters
    ----------
    source
        Parquet file, folder, glob or list of them (as :func:`sparsecross.train` reads them),
        or an in-memory table.
    label
        The label column; with ``threshold`` (and ``compare``) or ``positive`` as in a
        spec's ``[label]`` table.
    weight
        Optional sample-weight column (never a feature).
    sample_rows, seed
        At most this many rows are read into memory, chosen with this seed: the same data,
        arguments and seed give the same TOML, byte for byte.

    Returns
    -------
    Suggestion
        ``.toml`` (text), ``.spec`` (parsed), ``.skipped`` ((column, reason), ...),
        ``.rows_profiled``, ``.rows_total``, ``.geo``.

    Raises
    ------
    SchemaError, SpecError, DataError, ParameterError
        A label or weight column that is not in the data, inconsistent label options, a
        label that is constant in the sample, no usable column.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"price": [100.0, 250.0, 180.0, 90.0] * 50,
    ...               "room": ["whole", "private", "whole", "shared"] * 50,
    ...               "listing_id": list(range(200))})
    >>> s = suggest_spec(t, "price", threshold=150)
    >>> [(f.name, f.kind) for f in s.spec.features]
    [('room', 'categorical')]
    >>> s.skipped[1:]
    (('listing_id', 'an identifier: nearly unique per row (100% of the sampled rows hold a value seen once) and increasing with the row'),)
    >>> s.rows_profiled, s.rows_total
    (200, 200)
    """
    from .suggest_plan import plan

    return plan(source, label, positive=positive, threshold=threshold, compare=compare, weight=weight,
                sample_rows=sample_rows, seed=seed)


def no_columns_error(skipped: list[tuple[str, str]], weight: str | None = None) -> DataError:
    shown = "; ".join(f"{c}: {r}" for c, r in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
    return DataError(f"no usable feature column in the data besides the label{' and weight' if weight else ''}"
                     + (f" ({shown})" if shown else ""))


def bits_for(hashed: float) -> tuple[int, str]:
    """``hashing.bits`` for ``hashed`` expected distinct hashed values, and why."""
    bits = int(min(26, max(16, math.ceil(math.log2(max(hashed, 1.0) * 8)))))
    return bits, (f"about {hashed:,.0f} distinct hashed values expected over the whole data (categoricals and "
                  f"hashed crosses, extrapolated from the sample); 2**{bits} columns give each about 8 "
                  "slots, so few collide (16 to 26 bits)")
