"""Kernels of admission in data-parallel training (``sparsecross.dask.admit``): a shard's
filter estimates for a lane's keys, a lane's admission decisions, the shard's filter update at
the merge.  The filter and the Poisson rule are those of ``admit.py`` (reused, not copied).

Every kernel is serial and visits its input in order, so results depend on the inputs only.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .admit import COUNTER_MAX, admit_key, counter_positions, estimate_at, sight


@kernel
def filter_estimates(filt, filter_salt, keys, slots, out):
    """``out[i]`` = the filter's estimate of the sightings of ``keys[i]`` (0..15) where
    ``slots[i] < 0`` (the key has no state), -1 where it has state.

    ``filt`` uint8[m] (m a power of two, >= 1) or length 0 (Poisson mode: every estimate 0);
    ``keys`` uint32/uint64; ``slots`` int64, same length; ``out`` int8, same length (mutated).
    Returns None."""
    n_counters = filt.shape[0] * 2
    for i in range(keys.shape[0]):
        if slots[i] >= 0:
            out[i] = -1
        elif n_counters == 0:
            out[i] = 0
        else:
            i1, i2 = counter_positions(keys[i], n_counters, filter_salt)
            out[i] = np.int8(estimate_at(filt, i1, i2))


@kernel
def lane_admission(indptr, local, data, row_mask, keys, est, cfg, counting, counts, data_out, seen):
    """A lane's admission decisions, before it trains: the entries of keys without state that
    are not admitted get ``data_out = 0`` (an FTRL step with a zero value changes neither the
    margin nor ``z`` or ``n``, bit for bit), every other entry keeps its value.

    ``indptr`` int64[n+1], ``local`` int32[nnz] (``local_ids``; -1 in masked rows), ``data``
    float32[nnz], ``row_mask`` uint8[n] or length 0; ``keys`` the chunk's distinct keys (by
    local id); ``est`` int8[U]: -1 for a key with state at the start of the round, else the
    shard filter's estimate of its sightings before the round (mutated: the running estimate,
    -1 once admitted).  ``cfg`` uint64[5] (``admit.py``; ``cfg[4]`` = the chunk's first row in
    the epoch's order); ``counting``: True for admit-after-N (a sighting raises the estimate,
    saturating at 15; admitted when it reaches ``cfg[0]``), False for Poisson (``admit_key``
    with an empty filter).  ``counts`` int64[2] (admitted, rejected sightings; mutated),
    ``data_out`` float32[nnz] (written), ``seen`` int32[U] (mutated: per key, the sightings
    made while it had no state, the admitting one included).  Returns None."""
    n_rows = indptr.shape[0] - 1
    has_mask = row_mask.shape[0] > 0
    no_filter = np.zeros(0, dtype=np.uint8)
    for r in range(n_rows):
        skip = has_mask and row_mask[r] != 0
        for k in range(indptr[r], indptr[r + 1]):
            data_out[k] = data[k]
            if skip:
                continue
            i = local[k]
            if est[i] < 0:
                continue
            seen[i] += 1
            if counting:
                c = est[i] + 1 if est[i] < COUNTER_MAX else COUNTER_MAX
                ok = np.uint64(c) >= cfg[0]
                est[i] = c
                if ok:
                    counts[0] += 1
                else:
                    counts[1] += 1
            else:
                ok = admit_key(keys[i], r, no_filter, cfg, counts)
            if ok:
                est[i] = -1
            else:
                data_out[k] = 0.0


@kernel
def sight_all(filt, filter_salt, keys, times):
    """Count ``times[i]`` sightings of ``keys[i]`` into the filter, keys in order (at most 15
    per key: the counters saturate there).  Mutates ``filt``; returns None."""
    for i in range(keys.shape[0]):
        t = times[i] if times[i] < COUNTER_MAX else COUNTER_MAX
        for _ in range(t):
            sight(filt, keys[i], filter_salt)
