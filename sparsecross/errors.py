"""Exception and warning hierarchy.

Every error the library raises on bad input is a :class:`SparseCrossError`; the CLI turns
it into one line on stderr and a non-zero exit.  Messages follow the template
*what, where, expected, got, hint*.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable

__all__ = [
    "SparseCrossError",
    "SpecError",
    "SchemaError",
    "DataError",
    "ParameterError",
    "InputTypeError",
    "ArtifactError",
    "CheckpointError",
    "OutputError",
    "NotFittedError",
    "SparseCrossWarning",
    "EmptyModelWarning",
    "DataQualityWarning",
    "ClippedWeightsWarning",
    "did_you_mean",
    "shown",
    "shown_path",
    "plain",
]


class SparseCrossError(Exception):
    """Root of every error raised by sparsecross on bad input or bad files."""


class SpecError(SparseCrossError, ValueError):
    """The feature spec is invalid (unknown key, wrong type, impossible value)."""


class SchemaError(SpecError):
    """The data does not match the spec (missing column, wrong type)."""


class DataError(SparseCrossError, ValueError):
    """The data has values the spec cannot take (label not 0/1, latitude out of range...).

    ``row`` is the global row number of the first bad value (rows counted over the whole
    source, in reading order), when there is one; readers add the file and the row within it.
    """

    def __init__(self, message: str = "", *, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


class ParameterError(SparseCrossError, ValueError):
    """A function or command was given an impossible argument (e.g. ``batch_rows=0``)."""


class InputTypeError(ParameterError, TypeError):
    """Data of a type the API does not take (it takes pyarrow tables and batches, pandas and
    polars DataFrames, objects with ``__arrow_c_stream__``, and Parquet paths where it reads
    files)."""


class ArtifactError(SparseCrossError):
    """A model file is not an artifact, is corrupted, or has an unsupported version."""


class CheckpointError(SparseCrossError):
    """A checkpoint cannot be used to resume this run."""


class OutputError(SparseCrossError):
    """An output cannot be written: it would overwrite an input, or the write failed (the
    message names the path)."""


class NotFittedError(SparseCrossError, AttributeError):
    """The estimator was used before ``fit``."""


class SparseCrossWarning(UserWarning):
    """Root of sparsecross warnings."""


class EmptyModelWarning(SparseCrossWarning):
    """L1 regularization removed every weight: the model predicts the base rate only."""


class DataQualityWarning(SparseCrossWarning):
    """Suspicious data that was accepted (e.g. an empty batch)."""


class ClippedWeightsWarning(SparseCrossWarning):
    """A lossy encoding (q2.13, float16) clipped weights beyond its range when a model was saved."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of *choices* (each :func:`shown`), or
    ``""`` (always for a ``name`` that is not a string: a dict's key may be anything)."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(shown(c) for c in close) + "?)"


#: The longest ``repr`` of a user's value that an error message shows whole.
SHOWN_LIMIT = 40

#: The same for a name (a column, a feature): names are longer than values and worth showing.
NAME_LIMIT = 200


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)`` for a one-line error message: whole when at most ``limit`` characters,
    else its start and ``...``, cut before an escape (``\\x1b``, ``\\n``, ``\\u2028``...)
    rather than inside it, as :func:`plain` cuts (an integer adds its number of digits).  An
    integer past Python's digit limit for ``repr`` (4300) is described, not written, and so is
    a container nested too deeply for ``repr``."""
    try:
        r = repr(value)
    except (ValueError, RecursionError):  # an int past the limit, a container of one, or too deep
        if isinstance(value, int):
            return f"an integer of {_digits(abs(value))} digits"
        return f"a {type(value).__name__}" + (f" of {len(value)} items" if hasattr(value, "__len__") else "")
    if len(r) <= limit:
        return r
    cut = _start(_REPR_PIECE.findall(r[: limit + 10]), limit)  # an escape is at most 10 characters
    if isinstance(value, int) and not isinstance(value, bool):
        cut += f" ({len(r.lstrip('-'))} digits)"
    return cut


def shown_path(path: object, limit: int = NAME_LIMIT) -> str:
    """A file's path (text, bytes or ``os.PathLike``) for a one-line error message: its
    ``repr``, whole when at most ``limit`` characters, else ``...`` and its end, which names the
    file (:func:`shown` keeps the start), cut before an escape rather than inside it.  Anything
    else is :func:`shown`."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, (str, bytes)):
        return shown(path, limit)
    r = repr(path)
    return r if len(r) <= limit else _end(r, limit)


def plain(text: object, limit: int = NAME_LIMIT) -> str:
    """``str(text)`` for a one-line message, unquoted (another library's or the system's words,
    which may quote a file's contents): control characters escaped as ``\\x1b``, ``\\n``...;
    whole when that is at most ``limit`` characters, else its start and ``...``, cut before an
    escape rather than inside it."""
    s = str(text)
    if len(s) <= limit and s.isprintable():
        return s
    pieces = [c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in s[: limit + 1]]
    if len(s) <= limit and sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    return _start(pieces, limit)


#: One piece of a ``repr``: an escape (``\\x1b``, ``\\u2028``, ``\\U000e0001``, ``\\n``,
#: ``\\\\``, ``\\'``) or one character.
_REPR_PIECE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)|.", re.DOTALL)


def _start(pieces: Iterable[str], limit: int) -> str:
    """The longest start of whole ``pieces`` (characters, escapes) that leaves room in ``limit``
    characters for the ``...`` that follows it."""
    return "".join(_fitting(pieces, limit - 3)) + "..."


def _end(r: str, limit: int) -> str:
    """``...`` and the longest end of whole pieces of the ``repr`` text ``r`` that fits in
    ``limit`` characters.  Only the end of ``r`` is split into pieces: from ``limit + 10``
    characters before its end (an escape is at most 10), moved back by one when that falls
    between the two backslashes of an escaped backslash (a run of backslashes pairs from its
    first); a start inside a longer escape only splits that escape, which is too far from the
    end to be kept."""
    start = max(0, len(r) - limit - 10)
    run = start - len(r[:start].rstrip("\\"))  # backslashes just before ``start``
    start -= run % 2
    pieces = _REPR_PIECE.findall(r, start)
    return "..." + "".join(reversed(_fitting(reversed(pieces), limit - 3)))


def _fitting(pieces: Iterable[str], room: int) -> list[str]:
    """The first ``pieces``, in order, whose lengths add up to at most ``room``."""
    out, n = [], 0
    for piece in pieces:
        if n + len(piece) > room:
            break
        out.append(piece)
        n += len(piece)
    return out


def _digits(n: int) -> int:
    """Decimal digits of ``n`` > 0, without ``str`` (refused past 4300 digits)."""
    d = int(math.log10(n)) + 1  # may be one off near a power of 10: corrected exactly below
    if 10 ** (d - 1) > n:
        d -= 1
    elif 10**d <= n:
        d += 1
    return d
