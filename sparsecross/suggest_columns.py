"""Per-column decisions of :func:`sparsecross.suggest.suggest_spec`: which feature(s) a column
of the sample becomes, or why it is skipped.  Each decision returns :class:`Planned` features
whose ``why`` lines become the spec's comments.

The rules (each one also written, with its numbers, in the spec it produces):

* a column from which the sample's label follows exactly is a copy of the label (or a leak):
  skipped.  Numbers: one threshold separates the classes; categories: every value (seen on
  5+ rows on average) has a single label; only with 20+ sampled rows of each class;
* numbers with at most :data:`LOW_INT` distinct integers, booleans, and strings that are not
  nearly unique -> ``categorical`` (hashed); a value that appears once in the sample is
  learned from one row, so a column where such values cover over 90 % of the rows is skipped;
* other numbers -> ``bucket``: each distinct value its own bucket when there are at most
  :data:`FEW_VALUES`, else ``quantiles = N`` with about 1,000 training rows per bucket
  (2 <= N <= 20, at most half the distinct values); plus a ``numeric`` feature when a linear
  effect is plausible: the label rate over the sample's deciles moves monotonically with the
  value (Spearman |rho| >= 0.9), clipped to the sample's 0.1-99.9 % quantiles, ``log1p`` (or
  ``signed_log1p``) when they reach beyond 10 (FTRL moves a weight by about alpha per step, so
  ``w * x`` by about ``alpha * |x|``), and not when the values are a large offset with a small
  spread (a second intercept);
* timestamps, dates and strings that parse as dates -> ``time`` parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import plain, shown
from .kinds.time import zone_problem
from .suggest_profile import codes_of, float_values, mutual_information, singleton_share

__all__ = ["Planned", "LOW_INT", "FEW_VALUES", "number_column", "string_column", "time_column",
           "bool_column", "list_column", "leak_reason", "DATE_FORMATS"]

#: Integers with at most this many distinct values are categories (floors, grade, district).
LOW_INT = 32
#: Numbers with at most this many distinct values get one bucket per value.
FEW_VALUES = 20
#: Share of the rows holding a value seen once in the sample above which a column is skipped.
NEARLY_UNIQUE = 0.9
_ID_NAME = re.compile(r"(^|[_\W])(id|ids|uuid|guid|key)$|^id[_\W]|(^|[_\W])(zip|zipcode|postcode|postal_code)$",
                      re.IGNORECASE)

#: strptime formats tried on string columns, most specific first; ``%m/%d`` before ``%d/%m``.
DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y%m%dT%H%M%S",
    "%Y/%m/%d %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M",
    "%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%H:%M:%S", "%H:%M",
)


@dataclass
class Planned:
    """One ``[[features]]`` table (keys in TOML order), the comment lines saying why, and what
    crosses and the hashed-block size need: the label strength (bits of mutual information),
    the sample codes of its values (-1 missing) when it may be crossed, and the estimated
    number of distinct hashed values it adds over the whole data."""

    table: dict[str, Any]
    why: list[str]
    strength: float | None = None
    codes: np.ndarray | None = None
    distinct: int = 0
    hashed: float = 0.0
    extra: list[str] = field(default_factory=list)


def _fmt(v: float) -> str:
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:.4g}"


def _round(v: float) -> float:
    """Six significant digits: readable boundaries that still separate distinct values."""
    return float(f"{v:.6g}")


def estimate_distinct(codes: np.ndarray, scale: float, rows_total: int) -> float:
    """Distinct values expected over the whole data: those of the sample plus, for each row
    not sampled, a new value at the sample's rate of values seen once (Good-Turing)."""
    valid = codes[codes >= 0]
    if not len(valid):
        return 1.0
    counts = np.bincount(valid)
    seen = float((counts > 0).sum())
    once = float((counts == 1).sum())
    return min(float(rows_total), seen + once * max(scale - 1.0, 0.0)) + 1.0


def leak_reason(kind: str, values: Any, y: np.ndarray) -> str | None:
    """Why the column is a copy of the label (or a leak), or None."""
    if kind == "number":
        x = values
        ok = ~np.isnan(x)
        x1, x0 = x[ok & (y == 1)], x[ok & (y == 0)]
        # 20+ rows of each class, so a strong column does not separate a handful by chance
        if min(len(x1), len(x0)) >= 20 and (x1.min() > x0.max() or x1.max() < x0.min()):
            t = x0.max() if x1.min() > x0.max() else x1.max()
            return (f"the label is exactly 'column {'>' if x1.min() > x0.max() else '<='} {_fmt(float(t))}' on the "
                    "sample: a copy of the label (or a leak)")
        return None
    codes = values
    ok = codes >= 0
    c, yy = codes[ok], y[ok].astype(np.int64)
    k = len(np.unique(c))
    if k < 2 or len(c) < 5 * k or min(int(yy.sum()), len(yy) - int(yy.sum())) < 20:
        return None
    pos = np.bincount(c, weights=yy, minlength=int(c.max()) + 1)
    cnt = np.bincount(c, minlength=int(c.max()) + 1)
    seen = cnt > 0
    if np.all((pos[seen] == 0) | (pos[seen] == cnt[seen])):
        return f"every one of its {k} values has a single label on the sample: a copy of the label (or a leak)"
    return None


def _categorical(name: str, col: str, codes: np.ndarray, y: np.ndarray, scale: float, rows_total: int,
                 what: str) -> Planned:
    k = int(len(np.unique(codes[codes >= 0])))
    mi = mutual_information(codes, y)
    hashed = estimate_distinct(codes, scale, rows_total)
    why = [f"{col}: {what}, {k:,} distinct values in the sample -> categorical (hashed); "
           f"label information {mi:.4f} bits (mutual information, bias-corrected)"]
    return Planned({"name": name, "kind": "categorical", "column": col}, why, mi, codes, k, hashed)


def bool_column(name: str, col: str, arr: Any, y: np.ndarray, scale: float, rows_total: int) -> list[Planned] | str:
    codes, _ = codes_of(arr)
    if len(np.unique(codes[codes >= 0])) < 2:
        return "constant in the sample"
    return [_categorical(name, col, codes, y, scale, rows_total, "true/false")]


def string_column(name: str, col: str, arr: Any, y: np.ndarray, scale: float, rows_total: int
                  ) -> list[Planned] | str:
    codes, _ = codes_of(arr)
    k = int(len(np.unique(codes[codes >= 0])))
    if k == 0:
        return "no values in the sample"
    if k < 2:
        return "constant in the sample"
    share = singleton_share(codes)
    if share > NEARLY_UNIQUE:
        return (f"nearly unique per row ({share:.0%} of the sampled rows hold a value seen once): an identifier "
                "or free text, nothing to learn per value")
    reason = leak_reason("codes", codes, y)
    if reason:
        return reason
    what = "strings" if k <= 1000 else "high-cardinality strings (an identifier?)"
    return [_categorical(name, col, codes, y, scale, rows_total, what)]


def list_column(name: str, col: str, arr: Any, y: np.ndarray, scale: float, rows_total: int) -> list[Planned] | str:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if isinstance(arr.type, pa.FixedSizeListType):
        arr = arr.cast(pa.list_(arr.type.value_type))
    codes, _ = codes_of(arr.flatten())
    k = int(len(np.unique(codes[codes >= 0])))
    if k == 0:
        return "no list elements in the sample"
    share = singleton_share(codes)
    if share > NEARLY_UNIQUE:
        return f"list elements nearly unique ({share:.0%} of them seen once in the sample)"
    hashed = estimate_distinct(codes, scale, rows_total)
    why = [f"{col}: lists, {k:,} distinct elements in the sample -> categorical list (one feature per "
           "distinct element of a row; not crossed here)"]
    return [Planned({"name": name, "kind": "categorical", "column": col}, why, None, None, k, hashed)]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def _numeric_feature(name: str, col: str, x: np.ndarray, y: np.ndarray) -> Planned | str:
    """A ``numeric`` feature of ``x`` when a linear effect is plausible, else why not."""
    edges = np.unique(np.quantile(x, np.arange(1, 10) / 10))
    b = np.searchsorted(edges, x, side="right")
    cnt = np.bincount(b, minlength=len(edges) + 1)
    rate = np.bincount(b, weights=y, minlength=len(edges) + 1)
    keep = cnt >= 20
    if keep.sum() < 4:
        return "fewer than 4 well-filled deciles"
    rho = _spearman(np.flatnonzero(keep).astype(float), rate[keep] / cnt[keep])
    if abs(rho) < 0.9:
        return f"label rate over the deciles is not monotone (Spearman rho {rho:+.2f}, needs |rho| >= 0.9)"
    lo, hi = _round(float(np.quantile(x, 0.001))), _round(float(np.quantile(x, 0.999)))
    if not lo < hi:
        return "the central 99.8 % of the values is a single value"
    # FTRL moves a weight by about alpha per step whatever the value's scale, so w * x swings by
    # about alpha * |x|: the values must stay small.  Up to 10 as they are, else log-compressed.
    big = max(abs(lo), abs(hi))
    transform = "none" if big <= 10 else "log1p" if lo >= 0 else "signed_log1p"
    v = np.clip(x, lo, hi)
    v = np.log1p(v) if transform == "log1p" else np.sign(v) * np.log1p(np.abs(v)) if transform == "signed_log1p" else v
    if float(np.max(np.abs(v))) > 15:
        return f"values too large even after {transform} (up to {_fmt(float(np.max(np.abs(v))))}) for one weight"
    iqr = float(np.subtract(*np.quantile(v, [0.75, 0.25])))
    med = float(np.median(v))
    if abs(med) > 5 * max(iqr, 1e-12):
        return (f"values are a large offset with a small spread (median {_fmt(med)}, IQR {_fmt(iqr)}): as a number it "
                "would act as a second intercept; the buckets carry its effect")
    table: dict[str, Any] = {"name": f"{name}_value", "kind": "numeric", "column": col}
    if transform != "none":
        table["transform"] = transform
    table["clip"] = [lo, hi]
    why = [f"{col} as a number too: the label rate rises or falls steadily over its deciles (Spearman rho "
           f"{rho:+.2f} >= 0.9 in size), so one weight for a linear effect helps; clipped to the sample's "
           "0.1-99.9 % quantiles" + (f", {transform} because values beyond 10 would make the weight's "
                                     "steps too large (FTRL moves w by about alpha, so w * x by alpha * |x|)"
                                     if transform != "none" else "")]
    return Planned(table, why)


def number_column(name: str, col: str, arr: Any, y: np.ndarray, scale: float, rows_total: int, integer: bool,
                  monotone: bool) -> tuple[list[Planned], list[str]] | str:
    """Features of a number column and notes (why no numeric feature), or why it is skipped."""
    x = float_values(arr)
    ok = np.isfinite(x)
    if not ok.all():
        x = np.where(ok, x, np.nan)  # infinities: clipped by a numeric feature, an edge bucket else
    xv = x[ok]
    if not len(xv):
        return "no finite values in the sample"
    distinct = np.unique(xv)
    k = len(distinct)
    if k < 2:
        return "constant in the sample"
    reason = leak_reason("number", x, y)
    if reason:
        return reason
    if integer:
        codes, _ = codes_of(arr)
        share = singleton_share(codes)
        if share > NEARLY_UNIQUE and (_ID_NAME.search(col) or monotone):
            return (f"an identifier: nearly unique per row ({share:.0%} of the sampled rows hold a value seen once)"
                    + (" and increasing with the row" if monotone else ""))
        if (k <= LOW_INT or _ID_NAME.search(col)) and xv.max() < 2.0**63:  # categoricals hash int64
            reason = leak_reason("codes", codes, y)
            if reason:
                return reason
            what = f"integers, at most {LOW_INT} values" if k <= LOW_INT else "an integer code (by its name)"
            return [_categorical(name, col, codes, y, scale, rows_total, what)], []
    nulls = f"; {int((~ok).sum()):,} nulls in the sample go to the missing bucket" if (~ok).any() else ""
    if k <= FEW_VALUES:
        bounds = [_round(float(a + b) / 2) for a, b in zip(distinct[:-1], distinct[1:])]
        bounds = sorted(set(bounds))
        table: dict[str, Any] = {"name": name, "kind": "bucket", "column": col, "boundaries": bounds}
        why = [f"{col}: numbers with {k} distinct values in the sample -> one bucket per value (boundaries "
               f"halfway between them){nulls}"]
    else:
        q = int(min(20, k // 2, max(2, rows_total // 1000)))
        table = {"name": name, "kind": "bucket", "column": col, "quantiles": q}
        why = [f"{col}: numbers with {k:,} distinct values in the sample -> {q} quantile buckets (about 1,000 "
               f"training rows per bucket, 2 to 20, at most half the distinct values){nulls}"]
    out = [Planned(table, why)]
    num = _numeric_feature(name, col, xv, y[ok])
    notes = []
    if isinstance(num, Planned):
        out.append(num)
    else:
        notes.append(f"{col}: no numeric feature: {num}")
    return out, notes


def _parse_strings(arr: Any) -> tuple[str, Any] | None:
    """(format, parsed timestamps) of the first :data:`DATE_FORMATS` entry that parses at
    least 99 % of the non-null values (and more of them than any later entry), or None."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.large_string())
    n = len(arr) - arr.null_count
    if n == 0:
        return None
    head = arr.drop_null().slice(0, 2000)
    best: tuple[int, str] | None = None
    for fmt in DATE_FORMATS:
        ok = len(head) - pc.strptime(head, format=fmt, unit="us", error_is_null=True).null_count
        if ok >= 0.99 * len(head) and (best is None or ok > best[0]):
            best = (ok, fmt)
    if best is None:
        return None
    parsed = pc.strptime(arr, format=best[1], unit="us", error_is_null=True)
    if len(arr) - parsed.null_count < 0.99 * n:
        return None
    return best[1], parsed


def time_column(name: str, col: str, arr: Any, y: np.ndarray, scale: float, rows_total: int
                ) -> tuple[list[Planned], str | None] | None:
    """Time parts of a timestamp/date column or of a date-like string column (None when the
    strings are not dates) and the format used."""
    fmt = None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    t = arr.type.value_type if pa.types.is_dictionary(arr.type) else arr.type
    tz = None
    utc = ""
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        ts = arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr
        if pa.types.is_timestamp(t) and t.tz:
            if zone_problem(t.tz):  # a zone training cannot use: the spec names none, parts in UTC
                utc = f"; its zone {shown(t.tz)} cannot be used (not an IANA name Arrow knows): parts are taken in UTC"
                ts = ts.cast(pa.timestamp(t.unit))
            else:
                tz = t.tz
                ts = ts.cast(pa.timestamp(t.unit, tz=tz))
        has_date, has_time = True, pa.types.is_timestamp(t)
    else:
        got = _parse_strings(arr)
        if got is None:
            return None
        fmt, ts = got
        has_time = any(d in fmt for d in ("%H", "%I"))
        has_date = "%d" in fmt
    parts: list[Planned] = []
    valid = np.asarray(pc.is_valid(ts))
    candidates = (["hour"] if has_time else []) + (["dow", "month", "year"] if has_date else [])
    for part in candidates:
        func = {"hour": "hour", "dow": "day_of_week", "month": "month", "year": "year"}[part]
        v = np.asarray(getattr(pc, func)(ts).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        k = len(np.unique(v[valid]))
        if k < 2 or (part == "month" and k < 3):
            continue
        table: dict[str, Any] = {"name": f"{name}_{part}", "kind": "time", "column": col, "part": part}
        if fmt:
            table["format"] = fmt
        if tz:
            table["timezone"] = tz
        note = ""
        if part == "year":
            lo, hi = int(v[valid].min()), int(v[valid].max())
            if hi - lo > 200:
                continue
            table["years"] = [lo, hi]
            note = f"; years [{lo}, {hi}] as seen in the sample, later or earlier ones are missing"
        if fmt or part == "year":
            table["invalid"] = "missing"
        codes = np.where(valid, v - v[valid].min(), -1) if valid.any() else v
        mi = mutual_information(codes, y)
        where = f"parsed with format {fmt!r}" if fmt else plain(str(t), 80) + utc
        why = [f"{col}: {where} -> {part} ({k} values in the sample){note}; label information {mi:.4f} bits"]
        if fmt:
            why.append("unparsable strings become missing (invalid = \"missing\"); the strings carry no zone, so the "
                       "part is the wall-clock value as written")
        parts.append(Planned(table, why, mi, codes, k, 0.0))
    return parts, fmt
