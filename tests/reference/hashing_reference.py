"""Slow, obviously-correct reference for the hash contract v1.

Written straight from ``docs/CONTRACT.md``, section "Hash contract v1 (categoricals and
hashed crosses)" and section "Holdout split". It does NOT import ``sparsecross``: it is the
independent oracle that the Numba kernels and ``sparsecross.hashing`` are checked against.

All arithmetic is done on Python ints and reduced mod 2**64 explicitly (``& MASK64``), so there
is no silent wrap-around and no numpy dtype surprise anywhere in this file.
"""

from __future__ import annotations

import math
import operator
import struct

__all__ = [
    "MASK64",
    "MISSING_TAG",
    "xxh64",
    "fmix64",
    "value_bytes",
    "salt",
    "categorical_key",
    "missing_key",
    "cross_key",
    "hashed_column",
    "holdout_u53",
    "holdout",
]

MASK64 = (1 << 64) - 1
"""All results are unsigned 64-bit: everything is reduced with ``& MASK64``."""

MISSING_TAG = 0x6D697373696E6700
"""``b"missing\\0"`` read big-endian; CONTRACT.md: missing key = fmix64(salt ^ this)."""

# ---------------------------------------------------------------------------------------------
# XXH64 (Yann Collet, https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md)
# ---------------------------------------------------------------------------------------------

PRIME64_1 = 0x9E3779B185EBCA87  # 11400714785074694791
PRIME64_2 = 0xC2B2AE3D27D4EB4F  # 14029467366897019727
PRIME64_3 = 0x165667B19E3779F9  # 1609587929392839161
PRIME64_4 = 0x85EBCA77C2B2AE63  # 9650029242287828579
PRIME64_5 = 0x27D4EB2F165667C5  # 2870177450012600261


def _rotl64(x: int, r: int) -> int:
    """Rotate the 64-bit value ``x`` left by ``r`` bits."""
    x &= MASK64
    return ((x << r) | (x >> (64 - r))) & MASK64


def _read_u64(data: bytes, pos: int) -> int:
    """Little-endian unsigned 64-bit lane at ``data[pos:pos+8]``."""
    return int.from_bytes(data[pos : pos + 8], "little", signed=False)


def _read_u32(data: bytes, pos: int) -> int:
    """Little-endian unsigned 32-bit lane at ``data[pos:pos+4]``."""
    return int.from_bytes(data[pos : pos + 4], "little", signed=False)


def _xxh64_round(acc: int, lane: int) -> int:
    """XXH64 round: ``acc = rotl(acc + lane * P2, 31) * P1``."""
    acc = (acc + lane * PRIME64_2) & MASK64
    acc = _rotl64(acc, 31)
    return (acc * PRIME64_1) & MASK64


def _xxh64_merge_round(acc: int, val: int) -> int:
    """XXH64 merge of one of the four accumulators into the hash ``acc``."""
    val = _xxh64_round(0, val)
    acc ^= val
    return (acc * PRIME64_1 + PRIME64_4) & MASK64


def xxh64(data: bytes, seed: int = 0) -> int:
    """Standard XXH64 of ``data`` with ``seed``, as an unsigned 64-bit Python int.

    CONTRACT.md, "Hash contract v1": ``xxh64(data, seed)`` is the standard XXH64 (Yann Collet),
    unsigned 64-bit. ``seed`` must be in ``[0, 2**64)``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"xxh64 needs bytes, got {type(data).__name__}: {data!r}")
    data = bytes(data)
    seed = operator.index(seed)
    if not 0 <= seed <= MASK64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed!r}")
    length = len(data)
    pos = 0

    if length >= 32:
        # Four parallel accumulators over 32-byte stripes.
        v1 = (seed + PRIME64_1 + PRIME64_2) & MASK64
        v2 = (seed + PRIME64_2) & MASK64
        v3 = seed
        v4 = (seed - PRIME64_1) & MASK64
        while pos + 32 <= length:
            v1 = _xxh64_round(v1, _read_u64(data, pos))
            v2 = _xxh64_round(v2, _read_u64(data, pos + 8))
            v3 = _xxh64_round(v3, _read_u64(data, pos + 16))
            v4 = _xxh64_round(v4, _read_u64(data, pos + 24))
            pos += 32
        h = (_rotl64(v1, 1) + _rotl64(v2, 7) + _rotl64(v3, 12) + _rotl64(v4, 18)) & MASK64
        h = _xxh64_merge_round(h, v1)
        h = _xxh64_merge_round(h, v2)
        h = _xxh64_merge_round(h, v3)
        h = _xxh64_merge_round(h, v4)
    else:
        h = (seed + PRIME64_5) & MASK64

    h = (h + length) & MASK64

    # Remaining input: 8-byte lanes, then one 4-byte lane, then single bytes.
    while pos + 8 <= length:
        k1 = _xxh64_round(0, _read_u64(data, pos))
        h ^= k1
        h = (_rotl64(h, 27) * PRIME64_1 + PRIME64_4) & MASK64
        pos += 8
    if pos + 4 <= length:
        h ^= (_read_u32(data, pos) * PRIME64_1) & MASK64
        h = (_rotl64(h, 23) * PRIME64_2 + PRIME64_3) & MASK64
        pos += 4
    while pos < length:
        h ^= (data[pos] * PRIME64_5) & MASK64
        h = (_rotl64(h, 11) * PRIME64_1) & MASK64
        pos += 1

    # Avalanche.
    h ^= h >> 33
    h = (h * PRIME64_2) & MASK64
    h ^= h >> 29
    h = (h * PRIME64_3) & MASK64
    h ^= h >> 32
    return h


# ---------------------------------------------------------------------------------------------
# fmix64 (MurmurHash3 finalizer)
# ---------------------------------------------------------------------------------------------


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finalizer, exactly as written in CONTRACT.md::

        x ^= x >> 33; x *= 0xff51afd7ed558ccd; x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53; x ^= x >> 33          (mod 2**64)

    ``x`` must already be an unsigned 64-bit value.
    """
    x = operator.index(x)
    if not 0 <= x <= MASK64:
        raise ValueError(f"fmix64 needs an unsigned 64-bit int, got {x!r}")
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    x ^= x >> 33
    return x


# ---------------------------------------------------------------------------------------------
# Value bytes, salts, keys
# ---------------------------------------------------------------------------------------------


def value_bytes(value: str | int | bool) -> bytes:
    """Bytes that are hashed for a categorical value (CONTRACT.md, "Value bytes").

    - ``str``: its UTF-8 bytes (no Unicode normalisation: NFC and NFD spellings differ).
    - integer of any width, and ``bool`` as 0/1: 8 bytes little-endian two's-complement int64.
      Integers outside ``[-2**63, 2**63)`` cannot be represented and raise ``ValueError``.

    Floats (and anything else) are not categorical values and raise ``TypeError``.
    """
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, float):
        raise TypeError(f"categorical values are str, int or bool; got float {value!r}")
    try:
        as_int = operator.index(value)  # int, bool (True -> 1) and numpy integers
    except TypeError:
        raise TypeError(
            f"categorical values are str, int or bool; got {type(value).__name__} {value!r}"
        ) from None
    if not -(1 << 63) <= as_int < (1 << 63):
        raise ValueError(f"integer categorical value {as_int!r} does not fit in int64")
    return struct.pack("<q", as_int)


def salt(name: str, seed: int) -> int:
    """Feature salt: ``salt(f) = xxh64(utf8(f.name), seed)`` (CONTRACT.md, "Feature salt")."""
    return xxh64(name.encode("utf-8"), seed)


def missing_key(name: str, seed: int) -> int:
    """Key of a missing categorical: ``fmix64(salt(f) ^ 0x6d697373696e6700)``."""
    return fmix64(salt(name, seed) ^ MISSING_TAG)


def categorical_key(name: str, value: str | int | bool | None, seed: int) -> int:
    """Categorical key: ``xxh64(value_bytes, salt(f))``; ``None`` gives the missing key.

    CONTRACT.md, "Categorical key". Deciding *whether* a value is missing (None, NaN) is the
    featurizer's job; here only ``None`` means missing.
    """
    if value is None:
        return missing_key(name, seed)
    return xxh64(value_bytes(value), salt(name, seed))


def cross_key(cross_name: str, component_keys: list[int] | tuple[int, ...], seed: int) -> int:
    """Key of a hashed cross (CONTRACT.md, "Cross key")::

        h = xxh64(utf8(cross.name), seed)
        for k_j in component_keys:            # in cross order
            h = fmix64(h ^ k_j)

    ``k_j`` is the component's local id (exact features, including the missing id) or its
    64-bit categorical key; each must be in ``[0, 2**64)``.
    """
    h = xxh64(cross_name.encode("utf-8"), seed)
    for k in component_keys:
        k = operator.index(k)
        if not 0 <= k <= MASK64:
            raise ValueError(f"component key must be an unsigned 64-bit int, got {k!r}")
        h = fmix64(h ^ k)
    return h


def hashed_column(key: int, bits: int, hashed_offset: int) -> int:
    """Column of a hashed key: ``H + (key & (2**bits - 1))`` (CONTRACT.md, "Hash contract v1")."""
    return hashed_offset + (key & ((1 << bits) - 1))


# ---------------------------------------------------------------------------------------------
# Holdout split
# ---------------------------------------------------------------------------------------------


def holdout_u53(row_number: int, seed: int) -> int:
    """The 53-bit integer ``fmix64(r ^ xxh64(b"holdout", seed)) >> 11`` of CONTRACT.md."""
    row_number = operator.index(row_number)
    if not 0 <= row_number <= MASK64:
        raise ValueError(f"row_number must be in [0, 2**64), got {row_number!r}")
    return fmix64(row_number ^ xxh64(b"holdout", seed)) >> 11


def holdout(row_number: int, fraction: float, seed: int) -> bool:
    """True when global row ``row_number`` goes to validation (CONTRACT.md, "Holdout split")::

        (fmix64(r ^ xxh64(b"holdout", seed)) >> 11) * 2**-53 < F

    The product is exact in float64 (a 53-bit integer times a power of two).
    """
    if math.isnan(fraction):
        raise ValueError("holdout fraction must not be NaN")
    return holdout_u53(row_number, seed) * 2.0**-53 < fraction
