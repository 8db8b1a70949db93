"""64-bit hashing kernels: XXH64, MurmurHash3's fmix64, and their vectorized uses.

See ``docs/CONTRACT.md`` (hash contract v1).  All arithmetic is on ``uint64`` and wraps
mod 2**64; every constant and shift amount is an explicit ``np.uint64`` so Numba never
promotes to float.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel

P1 = np.uint64(0x9E3779B185EBCA87)
P2 = np.uint64(0xC2B2AE3D27D4EB4F)
P3 = np.uint64(0x165667B19E3779F9)
P4 = np.uint64(0x85EBCA77C2B2AE63)
P5 = np.uint64(0x27D4EB2F165667C5)
M1 = np.uint64(0xFF51AFD7ED558CCD)
M2 = np.uint64(0xC4CEB9FE1A85EC53)
U0 = np.uint64(0)
U1 = np.uint64(1)
U8 = np.uint64(8)
S33 = np.uint64(33)


@kernel
def fmix64(x):
    """MurmurHash3 64-bit finalizer. ``x``: uint64. Returns uint64."""
    x ^= x >> S33
    x *= M1
    x ^= x >> S33
    x *= M2
    x ^= x >> S33
    return x


@kernel
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@kernel
def _round(acc, lane):
    acc += lane * P2
    acc = _rotl(acc, 31)
    acc *= P1
    return acc


@kernel
def _merge_round(acc, val):
    val = _round(U0, val)
    acc ^= val
    acc = acc * P1 + P4
    return acc


@kernel
def _avalanche(h):
    h ^= h >> np.uint64(33)
    h *= P2
    h ^= h >> np.uint64(29)
    h *= P3
    h ^= h >> np.uint64(32)
    return h


@kernel
def _read64(data, p):
    v = U0
    for k in range(8):
        v |= np.uint64(data[p + k]) << np.uint64(8 * k)
    return v


@kernel
def _read32(data, p):
    v = U0
    for k in range(4):
        v |= np.uint64(data[p + k]) << np.uint64(8 * k)
    return v


@kernel
def xxh64(data, start, end, seed):
    """XXH64 of ``data[start:end]``.

    ``data``: uint8 array (read only); ``start``/``end``: int64; ``seed``: uint64.
    Returns the uint64 digest.  Mutates nothing.
    """
    length = end - start
    p = start
    if length >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        limit = end - 32
        while p <= limit:
            v1 = _round(v1, _read64(data, p))
            v2 = _round(v2, _read64(data, p + 8))
            v3 = _round(v3, _read64(data, p + 16))
            v4 = _round(v4, _read64(data, p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge_round(h, v1)
        h = _merge_round(h, v2)
        h = _merge_round(h, v3)
        h = _merge_round(h, v4)
    else:
        h = seed + P5
    h += np.uint64(length)
    while p + 8 <= end:
        k1 = _round(U0, _read64(data, p))
        h ^= k1
        h = _rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h ^= _read32(data, p) * P1
        h = _rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h ^= np.uint64(data[p]) * P5
        h = _rotl(h, 11) * P1
        p += 1
    return _avalanche(h)


@kernel
def xxh64_u64(value, seed):
    """XXH64 of the 8 little-endian bytes of ``value`` (uint64) with ``seed`` (uint64)."""
    h = seed + P5 + U8
    h ^= _round(U0, value)
    h = _rotl(h, 27) * P1 + P4
    return _avalanche(h)


@kernel
def hash_strings(offsets, data, seed):
    """XXH64 of every string of an Arrow string array.

    ``offsets``: int32 or int64, length n + 1 (already shifted for the array offset);
    ``data``: uint8 value buffer; ``seed``: uint64.  Returns a new uint64 array of length n.
    """
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = xxh64(data, np.int64(offsets[i]), np.int64(offsets[i + 1]), seed)
    return out


@kernel
def hash_ints(values, seed):
    """XXH64 of every int64 value (as 8 little-endian bytes). Returns a new uint64 array."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = xxh64_u64(np.uint64(values[i]), seed)
    return out


@kernel
def holdout_mask(start_row, n, fraction, salt):
    """uint8 mask of length n: 1 where global row ``start_row + i`` is in the holdout set."""
    out = np.zeros(n, dtype=np.uint8)
    scale = 1.0 / 9007199254740992.0  # 2**-53
    for i in range(n):
        h = fmix64(np.uint64(start_row + i) ^ salt)
        if np.float64(h >> np.uint64(11)) * scale < fraction:
            out[i] = 1
    return out
