"""Hostile strings for the tests of error messages: every file from outside is untrusted, and
an error names what it read (a path, a feature or column name, a value) short and escaped, in
one line (``errors.shown``).  Shared by the tests of models, checkpoints, specs and data files,
with builders of hostile checkpoint members (``.npy`` headers NumPy cannot parse).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Control characters a terminal acts on: colour, carriage return, new line, bell.
CONTROL = "\x1b[31m\r\n\x07"

#: The longest error message allowed to echo hostile strings (a whole one is thousands).
MESSAGE_LIMIT = 1000


def hostile_name(n: int = 5_000, filler: str = "c") -> str:
    """A name of ``n`` characters with control characters at its start (where a shortened
    name keeps them) and at its end."""
    return (CONTROL + filler * n)[: n - len(CONTROL)] + CONTROL


def hostile_folder(root: Path, depth: int = 16) -> Path:
    """A folder ``depth`` levels below ``root`` (~3,500 characters of path for 16, short of the
    system's 4,096), each level's name 207 characters with control characters; created."""
    folder = root.joinpath(*[CONTROL + "d" * 200 for _ in range(depth)])
    os.makedirs(folder)
    return folder


def assert_short(message: str) -> None:
    """``message`` is one short line of printable characters."""
    assert len(message) < MESSAGE_LIMIT, f"{len(message)} characters: {message[:300]!r}..."
    assert message.isprintable(), f"raw control characters: {message[:300]!r}..."


def npy_header(header: bytes, version: int = 1) -> bytes:
    """The start of a ``.npy`` member whose header is ``header``, padded as NumPy pads it."""
    size = 2 if version == 1 else 4
    header += b" " * (-(len(header) + 7 + size) % 64) + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(header).to_bytes(size, "little") + header


def npz_with_member(arrays: dict[str, Any], member: str, raw: bytes) -> bytes:
    """A checkpoint (stored, as ``np.savez`` writes it) whose member ``member`` is ``raw``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                if name == member:
                    fh.write(raw)
                else:
                    np.save(fh, arr)
    return buf.getvalue()
