"""LEB128 delta coding of sorted uint64 keys (the key stream of a model artifact).

The stream holds one unsigned LEB128 varint per key: the first is ``keys[0]`` itself, every
next one is ``keys[i] - keys[i-1]`` (>= 1).  Each varint is 1 to 10 bytes, 7 payload bits per
byte, least significant group first, high bit set on every byte but the last, and of minimal
length (no trailing ``0x00`` group).  See ``docs/ARTIFACT.md``.

Kernels never raise: :func:`decode_deltas` reports a malformed stream through a negative
status code (the ``STATUS_*`` constants below, explained by :data:`STATUS_MESSAGES`) and the
Python caller turns it into an :class:`~sparsecross.errors.ArtifactError`.  Both kernels only
read their input (read-only buffers are fine) and return new arrays.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

__all__ = [
    "encode_deltas",
    "decode_deltas",
    "encoded_size",
    "STATUS_OK",
    "STATUS_TRUNCATED",
    "STATUS_OVERLONG",
    "STATUS_VARINT_OVERFLOW",
    "STATUS_NOT_MINIMAL",
    "STATUS_ZERO_DELTA",
    "STATUS_KEY_OVERFLOW",
    "STATUS_TRAILING",
    "STATUS_BAD_COUNT",
    "STATUS_MESSAGES",
]

from .leb128 import (  # noqa: F401  (the status codes live where no Numba is imported)
    STATUS_BAD_COUNT,
    STATUS_KEY_OVERFLOW,
    STATUS_MESSAGES,
    STATUS_NOT_MINIMAL,
    STATUS_OK,
    STATUS_OVERLONG,
    STATUS_TRAILING,
    STATUS_TRUNCATED,
    STATUS_VARINT_OVERFLOW,
    STATUS_ZERO_DELTA,
)

_SEVEN = np.uint64(7)
_LOW7 = np.uint64(0x7F)
_HIGH = np.uint64(0x80)


@kernel
def encoded_size(keys):
    """Number of bytes :func:`encode_deltas` produces for ``keys``.

    ``keys``: uint64[n], strictly increasing (not checked).  Reads only; returns an int64.
    """
    total = np.int64(0)
    prev = np.uint64(0)
    for i in range(keys.shape[0]):
        d = keys[i] - prev
        prev = keys[i]
        total += 1
        while d >= _HIGH:
            d = d >> _SEVEN
            total += 1
    return total


@kernel
def encode_deltas(keys):
    """LEB128-encode the deltas of sorted keys.

    ``keys``: uint64[n], 1-d, strictly increasing (the caller checks this; a decreasing pair
    would be encoded as a wrapped-around delta that the decoder rejects).  Read-only arrays
    are accepted; nothing is mutated.

    Returns a new uint8[m] array: the varint of ``keys[0]``, then of ``keys[i] - keys[i-1]``
    for i = 1..n-1, each minimal (1 to 10 bytes).  ``n = 0`` gives an empty array.
    """
    n = keys.shape[0]
    out = np.empty(encoded_size(keys), dtype=np.uint8)
    pos = 0
    prev = np.uint64(0)
    for i in range(n):
        d = keys[i] - prev
        prev = keys[i]
        while d >= _HIGH:
            out[pos] = np.uint8((d & _LOW7) | _HIGH)
            pos += 1
            d = d >> _SEVEN
        out[pos] = np.uint8(d)
        pos += 1
    return out


@kernel
def decode_deltas(buf, n):
    """Decode ``n`` keys from a LEB128 delta stream.

    ``buf``: uint8[m], 1-d (read-only is fine; not mutated); ``n``: int64, the number of keys
    the stream must hold.

    Returns ``(keys, status)``: ``keys`` a new uint64 array and ``status`` an int64.  On
    success ``status == STATUS_OK (0)``, ``keys`` has length ``n`` (strictly increasing) and
    the whole of ``buf`` was consumed.  Otherwise ``status`` is one of the negative
    ``STATUS_*`` codes and ``keys`` is meaningless (partly written, or empty for
    ``STATUS_BAD_COUNT``).  Never raises; allocates at most ``len(buf)`` keys.
    """
    m = buf.shape[0]
    if n < 0 or n > m:
        return np.empty(0, dtype=np.uint64), np.int64(STATUS_BAD_COUNT)
    keys = np.empty(n, dtype=np.uint64)
    pos = 0
    acc = np.uint64(0)
    for i in range(n):
        d = np.uint64(0)
        shift = np.uint64(0)
        nbytes = 0
        b = np.uint64(0)
        while True:
            if pos >= m:
                return keys, np.int64(STATUS_TRUNCATED)
            b = np.uint64(buf[pos])
            pos += 1
            nbytes += 1
            if nbytes == 10:
                if b >= _HIGH:
                    return keys, np.int64(STATUS_OVERLONG)
                if b > np.uint64(1):
                    return keys, np.int64(STATUS_VARINT_OVERFLOW)
            d = d | ((b & _LOW7) << shift)
            if b < _HIGH:
                break
            shift = shift + _SEVEN
        if nbytes > 1 and b == np.uint64(0):
            return keys, np.int64(STATUS_NOT_MINIMAL)
        if i == 0:
            acc = d
        else:
            if d == np.uint64(0):
                return keys, np.int64(STATUS_ZERO_DELTA)
            nxt = acc + d
            if nxt < acc:
                return keys, np.int64(STATUS_KEY_OVERFLOW)
            acc = nxt
        keys[i] = acc
    if pos != m:
        return keys, np.int64(STATUS_TRAILING)
    return keys, np.int64(STATUS_OK)
