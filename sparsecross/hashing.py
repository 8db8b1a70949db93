"""The hash contract (v1): constants and the scalar helpers Python code needs.

Strings and integers are hashed with XXH64 (standard, seeded), keys are mixed with
MurmurHash3's ``fmix64``; see ``docs/CONTRACT.md``.  The vectorized versions live in
``sparsecross._kernels.hash``; golden vectors in ``tests/golden`` freeze both.
Python's ``hash()`` is never used.

The scalar helpers here are plain Python on ints, not calls into the Numba kernels: a spec
hashes a handful of short names, and loading Numba (about a second, even from its on-disk
cache) just for that would make ``inspect`` and ``check-spec`` slow to start.
"""

from __future__ import annotations

import struct

__all__ = ["HASH_CONTRACT", "MISSING_TAG", "xxh64", "fmix64", "fmix64_array", "feature_salt",
           "cross_seed", "missing_key", "holdout_salt"]

#: Written into every artifact; bump when anything in the contract changes.
HASH_CONTRACT = "v1"
#: ASCII "missing\\0", XOR-ed into a feature salt to make its missing key.
MISSING_TAG = 0x6D697373696E6700
_MASK64 = (1 << 64) - 1

_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5
_M1 = 0xFF51AFD7ED558CCD
_M2 = 0xC4CEB9FE1A85EC53


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _MASK64
    return (_rotl(acc, 31) * _P1) & _MASK64


def _merge_round(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _MASK64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data`` with ``seed`` as a Python int (the same digest as the kernel
    ``sparsecross._kernels.hash.xxh64``).

    >>> hex(xxh64(b"", 0))
    '0xef46db3751d8e999'
    """
    data = bytes(data)
    seed &= _MASK64
    n = len(data)
    p = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK64
        v2 = (seed + _P2) & _MASK64
        v3 = seed
        v4 = (seed - _P1) & _MASK64
        while p <= n - 32:
            a, b, c, d = struct.unpack_from("<4Q", data, p)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            p += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK64
        for v in (v1, v2, v3, v4):
            h = _merge_round(h, v)
    else:
        h = (seed + _P5) & _MASK64
    h = (h + n) & _MASK64
    while p + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, p)
        h ^= _round(0, k)
        h = (_rotl(h, 27) * _P1 + _P4) & _MASK64
        p += 8
    if p + 4 <= n:
        (k,) = struct.unpack_from("<I", data, p)
        h ^= (k * _P1) & _MASK64
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK64
        p += 4
    while p < n:
        h ^= (data[p] * _P5) & _MASK64
        h = (_rotl(h, 11) * _P1) & _MASK64
        p += 1
    h ^= h >> 33
    h = (h * _P2) & _MASK64
    h ^= h >> 29
    h = (h * _P3) & _MASK64
    h ^= h >> 32
    return h


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finalizer."""
    x &= _MASK64
    x ^= x >> 33
    x = (x * _M1) & _MASK64
    x ^= x >> 33
    x = (x * _M2) & _MASK64
    x ^= x >> 33
    return x


def fmix64_array(x):
    """MurmurHash3's 64-bit finalizer on every element of ``x``: a new uint64 array.

    The NumPy twin of :func:`fmix64` (and of ``_kernels.hash.fmix64``) for Python code that
    mixes whole arrays: row holdouts, shuffles, a checkpoint's home slots, generated data.
    Integer input of any width is reinterpreted modulo ``2**64`` (``astype(uint64)``).
    """
    import numpy as np  # here, not at the top: ``inspect`` and ``check-spec`` load this module

    h = np.asarray(x).astype(np.uint64, copy=True)
    s33 = np.uint64(33)
    h ^= h >> s33
    h *= np.uint64(_M1)  # uint64 array arithmetic wraps silently
    h ^= h >> s33
    h *= np.uint64(_M2)
    h ^= h >> s33
    return h


def feature_salt(name: str, seed: int) -> int:
    """``xxh64(utf8(name), seed)``: the seed a feature's values are hashed with."""
    return xxh64(name.encode("utf-8"), seed)


def cross_seed(name: str, seed: int) -> int:
    """Initial state of a hashed cross: ``xxh64(utf8(cross name), seed)``."""
    return xxh64(name.encode("utf-8"), seed)


def missing_key(salt: int) -> int:
    """Key of a missing categorical value: ``fmix64(salt ^ MISSING_TAG)``."""
    return fmix64(salt ^ MISSING_TAG)


def holdout_salt(seed: int) -> int:
    """Salt of the holdout split: ``xxh64(b"holdout", seed)``."""
    return xxh64(b"holdout", seed)
