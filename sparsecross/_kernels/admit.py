"""Admission of new features: a counting Bloom filter (admit after N sightings) or Poisson
inclusion (admit a sighting with probability P), decided when ``ftrl_pass`` meets a key that
has no state yet.  See :mod:`sparsecross.admission` for the parameters, the sizing rule and
the determinism guarantee.

The configuration is one ``uint64[5]`` array ``cfg`` (length 0: admission off, every key is
admitted, and ``ftrl_pass`` never calls :func:`admit_key`):

====  ===================================================================================
0     ``N``: admit after N sightings (counting mode; 2..15)
1     ``threshold``: Poisson mode admits when ``hash < threshold`` (``P * 2**64``)
2     ``filter_salt``: seeds the filter's two counter positions
3     ``sighting_salt``: seeds the Poisson hash; depends on the epoch (set by the caller)
4     ``row0``: position of the chunk's first row in the epoch's order (set by the caller)
====  ===================================================================================

The filter is ``uint8[m]``, ``m`` a power of two: ``2 m`` 4-bit saturating counters, counter
``i`` in the low (even ``i``) or high (odd ``i``) nibble of byte ``i >> 1``.  Length 0 selects
Poisson mode.

``ftrl_pass`` inlines :func:`admit_key`; its on-disk cache is stamped with the digest of every
file of this folder (``_jit.py``), so an edit here recompiles it.

A key's estimate is :func:`estimate_at`, for :func:`sight` and ``shard_admit.filter_estimates``
alike.  It takes the counter positions, not the key: a helper that takes the filter and has the
branches of :func:`counter_positions` inside costs its caller a reference-count increment and
decrement of the filter at every call, which Numba's pruning leaves (tried: +27% CPU per
``admit_key`` call on a filter in L1, 5M calls, 0.257 -> 0.325 s); this one costs no call.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hash import fmix64

#: Largest value of a 4-bit counter (counts saturate there).
COUNTER_MAX = 15

#: Counters of one block: 64 bytes, one cache line.  Both counters of a key lie in one block,
#: so counting a sighting costs one cache miss, not two (a blocked Bloom filter).
BLOCK_COUNTERS = 128
_U1 = np.uint64(1)
_U4 = np.uint64(4)
_NIBBLE = np.uint64(15)


@kernel
def counter_positions(key, n_counters, filter_salt):
    """The two counter positions (uint64, < ``n_counters``, a power of two) of ``key``, in one
    block of ``b = min(n_counters, 128)`` counters: with ``h = fmix64(key ^ filter_salt)``, the
    block is ``h mod (n_counters / b)`` and the positions in it are bits 32.. and 48.. of ``h``
    mod ``b``."""
    n = np.uint64(n_counters)
    b = np.uint64(BLOCK_COUNTERS) if n > np.uint64(BLOCK_COUNTERS) else n
    h = fmix64(np.uint64(key) ^ filter_salt)
    base = (h & (n // b - _U1)) * b
    return base + ((h >> np.uint64(32)) & (b - _U1)), base + ((h >> np.uint64(48)) & (b - _U1))


@kernel
def _get(filt, i):
    return (np.uint64(filt[i >> _U1]) >> ((i & _U1) * _U4)) & _NIBBLE


@kernel
def _set(filt, i, v):
    shift = (i & _U1) * _U4
    b = np.uint64(filt[i >> _U1]) & ~(_NIBBLE << shift)
    filt[i >> _U1] = np.uint8(b | (v << shift))


@kernel
def estimate_at(filt, i1, i2):
    """The filter's estimate of a key whose counters are ``i1`` and ``i2``
    (:func:`counter_positions`): the smaller of the two (uint64, 0..15).  Reads only."""
    c1 = _get(filt, i1)
    c2 = _get(filt, i2)
    return c1 if c1 < c2 else c2


@kernel
def sight(filt, key, filter_salt):
    """Count one sighting of ``key`` with a conservative update: its estimate ``c``
    (:func:`estimate_at`) becomes ``c + 1`` (saturating at 15) and any counter below that is
    raised to it; a counter already above is left alone.  Mutates ``filt``; returns the new
    estimate (``>=`` the true number of sightings, never below: collisions only overestimate)."""
    i1, i2 = counter_positions(key, filt.shape[0] * 2, filter_salt)
    c = estimate_at(filt, i1, i2)
    if c < _NIBBLE:
        c += _U1
        if _get(filt, i1) < c:
            _set(filt, i1, c)
        if _get(filt, i2) < c:  # after i1's update: i2 may be the same counter, now c
            _set(filt, i2, c)
    return c


@kernel
def poisson_hash(key, row, sighting_salt):
    """The uint64 that decides a Poisson sighting: ``fmix64(fmix64(sighting_salt ^ row) ^ key)``
    (a key occurs at most once per row, so (key, epoch, row) names one sighting)."""
    return fmix64(fmix64(sighting_salt ^ np.uint64(row)) ^ np.uint64(key))


@kernel
def admit_key(key, r, filt, cfg, counts):
    """Decide whether ``key`` (no state yet) gets state at row ``r`` of the chunk.

    Counting mode (``filt`` non-empty): count the sighting, admit when the estimate reaches
    ``cfg[0]``.  Poisson mode: admit when ``poisson_hash(key, cfg[4] + r, cfg[3]) < cfg[1]``.
    Mutates ``filt`` and ``counts`` (int64[2]: admitted features, rejected sightings).
    Returns True when admitted."""
    if filt.shape[0] > 0:
        ok = sight(filt, key, cfg[2]) >= cfg[0]
    else:
        ok = poisson_hash(key, cfg[4] + np.uint64(r), cfg[3]) < cfg[1]
    if ok:
        counts[0] += 1
    else:
        counts[1] += 1
    return ok
