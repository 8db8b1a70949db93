"""How the command line speaks: progress bars, number formats, strict JSON, escaped untrusted
text, one-line warnings and errors, and a quiet end on a closed pipe."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from .errors import SparseCrossError, shown_path

# ------------------------------------------------------------------- progress
class _Progress:
    """tqdm bar on a terminal (when tqdm is installed); silent otherwise."""

    def __init__(self, total: int | None, desc: str, unit: str = "rows", enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True,
                                leave=False, file=sys.stderr)

    def update_to(self, n: int, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.n = n
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.refresh()

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def reset(self, total: int | None, desc: str) -> None:
        if self.bar is not None:
            self.bar.reset(total=total)
            self.bar.set_description(desc)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4f}"
    return str(x)


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (JSON null), numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # numpy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _print_json(obj: Any) -> None:
    """Strict JSON (RFC 8259): no NaN or Infinity."""
    sys.stdout.write(json.dumps(strict_json(obj), indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")


def safe_text(text: Any) -> str:
    """``text`` with control characters escaped (``\\x1b``...), for untrusted strings (model
    metadata, column names, data values) printed to a terminal."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s)



def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings as one line, ``sparsecross: warning: ...``, without a source path or code line."""
    text = " ".join(str(message).split()) or category.__name__
    try:
        print(f"sparsecross: warning: {safe_text(text)}", file=sys.stderr)
    except OSError:
        pass


def _quiet_closed_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _os_paths(exc: OSError) -> str:
    """``": 'a'"``, or ``": 'a' -> 'b'"`` for an error of two paths (a rename's), each short;
    ``""`` without one."""
    if not exc.filename:
        return ""
    second = f" -> {shown_path(exc.filename2)}" if exc.filename2 else ""
    return f": {shown_path(exc.filename)}{second}"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, SparseCrossError):
        msg = str(exc)
    elif isinstance(exc, MemoryError):
        msg = f"out of memory ({exc}); lower --batch-rows"
    elif isinstance(exc, OSError):
        msg = f"{exc.strerror or exc}" + _os_paths(exc)
    elif isinstance(exc, ImportError):
        msg = str(exc)
    else:
        msg = f"{type(exc).__name__}: {exc} (this is a bug; run with --debug and report it)"
    return safe_text(" ".join(msg.split()) or type(exc).__name__)
