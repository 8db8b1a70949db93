"""Render a suggested spec as commented TOML text (strings escaped for TOML, comments made of
printable characters only, so no column name or value from the data can break the file)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["toml_value", "comment", "render"]


def _toml_string(s: str) -> str:
    out = []
    for c in s:
        o = ord(c)
        if c in '"\\':
            out.append("\\" + c)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    """TOML text of a string, bool, int, finite float or list of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v!r} in TOML")
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} in TOML")


def comment(text: str, width: int = 96) -> list[str]:
    """``# `` lines of ``text``: non-printable characters escaped, wrapped at ``width``."""
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    words = safe.split(" ")
    lines, cur = [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width - 2:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return [f"# {ln}".rstrip() for ln in lines]


def _table(header: str, items: dict[str, Any], why: Iterable[str]) -> list[str]:
    out = []
    for w in why:
        out.extend(comment(w))
    out.append(header)
    out.extend(f"{k} = {toml_value(v)}" for k, v in items.items())
    return out


def render(head: Sequence[str], label: dict[str, Any], label_why: Sequence[str], hashing: dict[str, Any],
           hashing_why: Sequence[str], features: Sequence[tuple[dict[str, Any], Sequence[str]]],
           crosses: Sequence[tuple[dict[str, Any], Sequence[str]]], skipped: Sequence[tuple[str, str]],
           notes: Sequence[str], train: tuple[dict[str, Any], Sequence[str]] | None = None) -> str:
    """The whole spec: a header, [label], [hashing], [train] if given, the features, the crosses, then the
    skipped columns and other notes as comments."""
    lines: list[str] = []
    for h in head:
        lines.extend(comment(h))
    lines.append("version = 1")
    lines.append("")
    lines.extend(_table("[label]", label, label_why))
    lines.append("")
    lines.extend(_table("[hashing]", hashing, hashing_why))
    if train is not None:
        lines.append("")
        lines.extend(_table("[train]", *train))
    for table, why in features:
        lines.append("")
        lines.extend(_table("[[features]]", table, why))
    for table, why in crosses:
        lines.append("")
        lines.extend(_table("[[crosses]]", table, why))
    if skipped:
        lines.append("")
        lines.extend(comment("Columns not used:"))
        for col, reason in skipped:
            lines.extend(comment(f"- {col}: {reason}"))
    if notes:
        lines.append("")
        lines.extend(comment("Notes:"))
        for n in notes:
            lines.extend(comment(f"- {n}"))
    return "\n".join(lines) + "\n"
