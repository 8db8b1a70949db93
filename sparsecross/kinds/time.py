"""``kind = "time"``: one calendar part (hour, day of week, month, ...) of a timestamp, date
or formatted string column, computed in a given time zone; an exact block of the part's
values plus the missing id."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._lazy import LazyModule
from ..errors import SchemaError, SpecError, did_you_mean, shown
from ._base import Ctx, Kind, choice, feature_column, get, is_stringish, is_utf8, value_error

np = LazyModule("numpy")
pa = LazyModule("pyarrow")
pc = LazyModule("pyarrow.compute")
_an = LazyModule("sparsecross.arrow_numpy")


if TYPE_CHECKING:
    from ..spec import Feature

__all__ = ["TIME", "PARTS"]

#: part -> (pyarrow.compute function, first value, number of values); ``year`` takes its
#: range from ``years = [first, last]``.
PARTS: dict[str, tuple[str, int, int]] = {
    "minute": ("minute", 0, 60),
    "hour": ("hour", 0, 24),
    "dow": ("day_of_week", 0, 7),  # Monday = 0
    "dayofyear": ("day_of_year", 1, 366),
    "month": ("month", 1, 12),
    "year": ("year", 0, 0),
}
_SUB_DAY = ("minute", "hour")
_DOW = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: strptime directives pyarrow.compute.strptime understands.
_DIRECTIVES = set("aAbBcdDeFfhHIjmMnpRSTtUwWyYzZ%")
MAX_YEARS = 10_000



@functools.lru_cache(maxsize=256)
def zone_problem(tz: str) -> str:
    """Why time zone ``tz`` cannot be used for time parts: ``"not IANA"`` (zoneinfo does not
    know it), ``"not in Arrow"`` (Arrow, which computes the parts, cannot use it: "Factory",
    "posix/...") or ``""`` (usable).  Cached: a spec is parsed whenever a model is loaded."""
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return "not IANA"
    try:
        pc.hour(pa.array([0], pa.timestamp("s", tz=tz)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return "not in Arrow"
    return ""

class TimeKind(Kind):
    name = "time"
    keys = frozenset({"column", "part", "format", "timezone", "invalid", "years"})
    role = "time"

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        part = choice(f"{where}.part", get(where, t, "part", str), tuple(PARTS))
        opts: list[tuple[str, Any]] = [("part", part)]
        if "format" in t:
            fmt = get(where, t, "format", str)
            codes = re.findall(r"%(.)", fmt.replace("%%", ""))
            bad = [c for c in codes if c not in _DIRECTIVES]
            if not is_utf8(fmt):
                raise SpecError(f"{where}.format: expected UTF-8 text, got {shown(fmt)}")
            if not codes or bad or fmt.replace("%%", "").endswith("%"):
                raise SpecError(f"{where}.format: {shown(fmt)} is not a strptime format"
                                + (f" (unknown directive %{bad[0]})" if bad else " (no %-directive)"))
            opts.append(("format", fmt))
        if "timezone" in t:
            tz = get(where, t, "timezone", str)
            problem = zone_problem(tz)
            if problem == "not IANA":
                raise SpecError(f"{where}.timezone: {shown(tz)} is not an IANA time zone (e.g. \"Europe/Paris\", "
                                f"\"UTC\"){did_you_mean(tz, sorted(zoneinfo.available_timezones()))}")
            if problem:
                raise SpecError(f"{where}.timezone: {shown(tz)} is an IANA name that Arrow's time zone "
                                "database cannot use; give its canonical name (e.g. \"Europe/Paris\")")
            opts.append(("timezone", tz))
        invalid = choice(f"{where}.invalid", get(where, t, "invalid", str, "error"), ("error", "missing"))
        if invalid != "error":
            opts.append(("invalid", invalid))
        if part == "year":
            raw = get(where, t, "years", list, None)
            ok = raw is not None and len(raw) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
            if not ok or not (1 <= raw[0] <= raw[1] <= 9999) or raw[1] - raw[0] >= MAX_YEARS:
                raise SpecError(f"{where}.years: part = \"year\" needs years = [first, last], integers with "
                                f"1 <= first <= last <= 9999, got {shown(raw)}")
            opts.append(("years", (int(raw[0]), int(raw[1]))))
        elif "years" in t:
            raise SpecError(f"{where}.years: only for part = \"year\" (part is {part!r})")
        return {"options": tuple(sorted(opts))}

    def to_dict(self, f: Feature) -> dict[str, Any]:
        d: dict[str, Any] = {"column": f.columns[0], "part": f.option("part")}
        for key in ("format", "timezone", "invalid"):
            if f.option(key) is not None:
                d[key] = f.option(key)
        if f.option("years") is not None:
            d["years"] = list(f.option("years"))
        return d

    def _range(self, f: Feature) -> tuple[int, int]:
        """(first value, number of values) of the feature's part."""
        part = f.option("part")
        if part == "year":
            first, last = f.option("years")
            return first, last - first + 1
        return PARTS[part][1], PARTS[part][2]

    def cardinality(self, f: Feature) -> int:
        return self._range(f)[1] + 1

    def describe(self, f: Feature, lid: int) -> str:
        part = f.option("part")
        v = self._range(f)[0] + lid
        text = _DOW[lid] if part == "dow" else _MONTHS[lid] if part == "month" else str(v)
        return f"{f.name}={part} {text}"

    def check_type(self, f: Feature, col: str, t: pa.DataType, where: str, crossed: bool = False) -> bool:
        part = f.option("part")
        if pa.types.is_timestamp(t):
            return False
        if pa.types.is_date(t):
            if part in _SUB_DAY:
                raise SchemaError(f"{feature_column(f, col, 'time')} in {where} is a date ({t}); "
                                  f"part = {part!r} needs timestamps")
            return False
        if is_stringish(t):
            if f.option("format") is None:
                raise SchemaError(f"{feature_column(f, col, 'time')} in {where} holds strings; "
                                  "set format = \"...\" (strptime) to parse them")
            return False
        raise SchemaError(f"{feature_column(f, col, 'time')} in {where} has type {t}; expected "
                          "timestamps, dates or strings")

    def featurize(self, f: Feature, ctx: Ctx, ids: np.ndarray, missing: np.ndarray) -> None:
        from ..featurize import _as_array

        arr = _as_array(ctx.table.column(f.columns[0]))
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        invalid_missing = f.option("invalid") == "missing"
        if is_stringish(arr.type):
            if pa.types.is_string_view(arr.type):
                arr = arr.cast(pa.large_string())
            parsed = pc.strptime(arr, format=f.option("format"), unit="us", error_is_null=True)
            bad = _an.bools_of(pc.and_(pc.is_null(parsed), pc.is_valid(arr)))
            if bad.any() and not invalid_missing:
                raise value_error(f, ctx, bad, f"strings that do not match format {shown(f.option('format'))}",
                                  lambda i: arr[i].as_py(), "set invalid = \"missing\" to treat them as missing")
            arr = parsed
        if pa.types.is_timestamp(arr.type):
            # A timestamp without a zone (and a parsed string) is a UTC instant.
            arr = arr.cast(pa.timestamp(arr.type.unit, tz=f.option("timezone", "UTC")))
        func, first, count = PARTS[f.option("part")]
        if f.option("part") == "year":
            first, count = self._range(f)
        v = getattr(pc, func)(arr)
        valid = _an.valid_of(v)
        local = _an.values_of(pc.cast(v, pa.int64()), fill=first) - first
        out = valid & ((local < 0) | (local >= count))
        if out.any():  # only years outside [first, last] can be
            if not invalid_missing:
                raise value_error(f, ctx, out, f"values outside years = {list(f.option('years'))}",
                                  lambda i: first + int(local[i]), "widen years or set invalid = \"missing\"")
            valid &= ~out
        missing[:] = ~valid
        ids[:] = np.where(valid, local, count).astype(np.uint64)
        return None


TIME = TimeKind()
