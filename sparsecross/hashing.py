"""The hash contract (v1): constants and the scalar helpers Python code needs.

Strings and integers are hashed with XXH64 (standard, seeded), keys are mixed with
MurmurHash3's ``fmix64``; see ``docs/CONTRACT.md``.  The vectorized versions live in
``sparsecross._kernels.hash``; golden vectors in ``tests/golden`` freeze both.
Python's ``hash()`` is never used.
"""

from __future__ import annotations

import numpy as np

from ._kernels.hash import fmix64 as _fmix64
from ._kernels.hash import xxh64 as _xxh64

__all__ = ["HASH_CONTRACT", "MISSING_TAG", "xxh64", "fmix64", "feature_salt", "cross_seed",
           "missing_key", "holdout_salt"]

#: Written into every artifact; bump when anything in the contract changes.
HASH_CONTRACT = "v1"
#: ASCII "missing\\0", XOR-ed into a feature salt to make its missing key.
MISSING_TAG = 0x6D697373696E6700
_MASK64 = (1 << 64) - 1


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data`` with ``seed`` as a Python int.

    >>> hex(xxh64(b"", 0))
    '0xef46db3751d8e999'
    """
    buf = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, dtype=np.uint8)
    return int(_xxh64(buf, 0, len(data), np.uint64(seed & _MASK64)))


def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finalizer."""
    return int(_fmix64(np.uint64(x & _MASK64)))


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
