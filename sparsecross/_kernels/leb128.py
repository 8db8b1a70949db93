"""Status codes of the key stream decoder and a NumPy decoder for small streams.

Numba-free on purpose: loading a model (``inspect``, ``predict``) should not pay for
Numba's start-up (about a second, even when every kernel comes from the on-disk cache) just
to decode a few thousand keys.  :func:`decode_deltas` decodes streams of up to
:data:`NUMPY_MAX_BYTES` bytes with NumPy (unless Numba is loaded already) and hands larger
ones, and every malformed one, to the kernel :func:`sparsecross._kernels.varint.decode_deltas`,
which alone decides which ``STATUS_*`` error a bad stream gets.  Both return the same keys for a valid stream.
"""

from __future__ import annotations

import sys

import numpy as np

#: The stream decoded into exactly ``n`` keys and was fully consumed.
STATUS_OK = 0
#: The stream ends inside a varint or before ``n`` varints were read.
STATUS_TRUNCATED = -1
#: A varint is longer than 10 bytes (its 10th byte has the continuation bit).
STATUS_OVERLONG = -2
#: A 10-byte varint does not fit in 64 bits (its 10th byte is > 1).
STATUS_VARINT_OVERFLOW = -3
#: A varint of 2+ bytes ends with a 0x00 byte (not the minimal encoding).
STATUS_NOT_MINIMAL = -4
#: A delta after the first key is 0 (keys not strictly increasing).
STATUS_ZERO_DELTA = -5
#: The running sum of the deltas passes 2**64 - 1.
STATUS_KEY_OVERFLOW = -6
#: Bytes remain after ``n`` varints.
STATUS_TRAILING = -7
#: ``n`` is negative or larger than the stream length (every varint has >= 1 byte).
STATUS_BAD_COUNT = -8

STATUS_MESSAGES = {
    STATUS_OK: "ok",
    STATUS_TRUNCATED: "the key stream ends early (truncated varint or too few keys)",
    STATUS_OVERLONG: "a key varint is longer than 10 bytes",
    STATUS_VARINT_OVERFLOW: "a key varint does not fit in 64 bits",
    STATUS_NOT_MINIMAL: "a key varint is not minimally encoded",
    STATUS_ZERO_DELTA: "a key delta is 0 (keys are not strictly increasing)",
    STATUS_KEY_OVERFLOW: "the key deltas add up past 2**64 - 1",
    STATUS_TRAILING: "the key stream has trailing bytes after the last key",
    STATUS_BAD_COUNT: "the key count is impossible for the key stream length",
}

#: Streams up to this many bytes are decoded with NumPy (temporaries: about 20 bytes per
#: stream byte, about 35 ms a MiB); longer ones with the Numba kernel, which needs no
#: temporaries and is about 10 times faster once Numba is loaded.
NUMPY_MAX_BYTES = 1 << 22


def decode_deltas_numpy(buf: np.ndarray, n: int) -> np.ndarray | None:
    """The ``n`` keys of a valid LEB128 delta stream ``buf`` (uint8, 1-d), or None when the
    stream is not valid (the caller then asks the kernel which error it is)."""
    m = buf.shape[0]
    if n < 0 or n > m:
        return None
    if n == 0:
        return np.empty(0, dtype=np.uint64) if m == 0 else None
    ends = np.flatnonzero(buf < 0x80)  # the last byte of every varint
    if len(ends) != n or ends[-1] != m - 1:
        return None  # truncated or trailing bytes
    lengths = np.diff(ends, prepend=-1)
    if int(lengths.max()) > 10:
        return None
    last = buf[ends]
    if bool(np.any((lengths > 1) & (last == 0))) or bool(np.any((lengths == 10) & (last > 1))):
        return None  # not minimal, or past 64 bits
    starts = ends - (lengths - 1)
    shift = (np.arange(m, dtype=np.int64) - np.repeat(starts, lengths)) * 7
    parts = (buf & 0x7F).astype(np.uint64) << shift.astype(np.uint64)
    deltas = np.bitwise_or.reduceat(parts, starts)
    if n > 1 and not bool(np.all(deltas[1:] != 0)):
        return None
    keys = np.cumsum(deltas, dtype=np.uint64)  # wraps on overflow: caught just below
    if n > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        return None
    return keys


def decode_deltas(buf: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """``(keys, status)`` as :func:`sparsecross._kernels.varint.decode_deltas` returns them."""
    if buf.shape[0] <= NUMPY_MAX_BYTES and "numba" not in sys.modules:  # else the kernel is cheaper
        keys = decode_deltas_numpy(buf, n)
        if keys is not None:
            return keys, STATUS_OK
    from .varint import decode_deltas as kernel

    keys, status = kernel(buf, np.int64(n))
    return keys, int(status)
