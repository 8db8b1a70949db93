"""Open-addressing hash tables on flat arrays (linear probing, power-of-two capacity).

Training state: ``keys`` (uint32 or uint64, ``EMPTY`` = all ones) with ``zn`` (float32 or
float64, shape ``(capacity, 2)``: z and n side by side, one cache line per lookup).
Inference: ``(keys uint64, weights float32)`` built once from a model's sorted keys.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hash import fmix64


@kernel
def slot_of(keys, key):
    """Slot holding ``key`` or the empty slot where it would go. ``keys`` capacity is a power
    of two and never full.  Returns int64."""
    cap_mask = np.uint64(keys.shape[0] - 1)
    empty = keys[0] | ~keys[0]  # all ones in the key dtype: the empty marker
    s = np.int64(fmix64(np.uint64(key)) & cap_mask)
    while True:
        k = keys[s]
        if k == key or k == empty:
            return s
        s = (s + 1) & np.int64(cap_mask)


@kernel
def rehash(old_keys, old_zn, new_keys, new_zn):
    """Move every occupied slot of (old_keys, old_zn) into the empty (new_keys, new_zn).

    ``new_keys`` must be all-ones (empty) and large enough.  Mutates ``new_keys``/``new_zn``.
    Returns the number of keys moved."""
    empty = old_keys[0] | ~old_keys[0]
    moved = 0
    for s in range(old_keys.shape[0]):
        k = old_keys[s]
        if k != empty:
            t = slot_of(new_keys, k)
            new_keys[t] = k
            new_zn[t, 0] = old_zn[s, 0]
            new_zn[t, 1] = old_zn[s, 1]
            moved += 1
    return moved


@kernel
def build_lookup_kernel(keys, weights, cap):
    """Inference table of capacity ``cap`` (power of two > len(keys)) from sorted unique
    ``keys`` (uint64) and ``weights`` (float32). Returns new (table_keys, table_weights)."""
    tk = np.full(cap, np.uint64(0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
    tw = np.zeros(cap, dtype=np.float32)
    for i in range(keys.shape[0]):
        s = slot_of(tk, keys[i])
        tk[s] = keys[i]
        tw[s] = weights[i]
    return tk, tw


def build_lookup(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing table at load factor <= 0.5 for a model's sorted keys."""
    cap = 16
    while cap < 2 * len(keys) + 2:
        cap *= 2
    return build_lookup_kernel(np.ascontiguousarray(keys, dtype=np.uint64),
                               np.ascontiguousarray(weights, dtype=np.float32), cap)


@kernel
def lookup_weight(tk, tw, key):
    """Weight of ``key`` in an inference table, 0.0 when absent."""
    s = slot_of(tk, np.uint64(key))
    if tk[s] == np.uint64(key):
        return np.float64(tw[s])
    return 0.0
