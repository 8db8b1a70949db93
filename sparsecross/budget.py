"""The state budget (``--max-state-mb``): a training state that never holds more than M MiB.

The budget covers the optimizer state: the table of (key, z, n) slots, the bias, and the
admission filters when there are any (``state.admission``): the bytes
:attr:`FTRLState.nbytes <sparsecross.state.FTRLState.nbytes>` counts, the one count of them.  It is
turned into a largest table capacity once, before training:

* the table is a power of two of slots and grows in place (:meth:`FTRLState.grow
  <sparsecross.state.FTRLState.grow>`): its buffer is extended by ``realloc`` and rehashed within
  itself.  What a growth into ``C`` slots holds on top of the new table (:func:`growth_extra`):
  the old table when ``realloc`` may copy it (:func:`~sparsecross.state.realloc_may_copy`: any
  block below 32 MiB, or any block off Linux/glibc; the old table is at most half the new, so
  then the peak is ``GROWTH_PEAK`` = 1.5 times the largest table, as for a copying growth), and
  the keys of the cluster at slot 0 that the rehash sets aside (``STASH_RESERVE`` of the table is
  reserved for them: a cluster of that length does not happen with hashed keys at load <= 0.7;
  ``state_bytes_peak`` reports the real figure);
* :func:`capacity_for` is the largest power-of-two capacity ``C`` with
  ``C * slot_bytes + growth_extra + fixed bytes + filter bytes <= M MiB``: on Linux/glibc a table
  of 32 MiB or more can use the whole budget but the reserve, where a copying growth needed a third
  of it for the old table.

The table grows as without a budget until it has ``C`` slots.  When a row's keys could then push
it past its load limit (``MAX_LOAD``), :func:`make_room` evicts instead of growing: in one sweep,
down to ``LOW_WATER`` of the load limit (or lower if the row needs it), so sweeps are rare (one
per ``(1 - LOW_WATER) * 0.7 * C`` new keys).

Policy (the order of ``_kernels/evict.py``):

1. features whose weight is zero (``|z| <= l1``), smallest ``n`` first.  ``n``, the sum of squared
   gradients FTRL already keeps, grows with every sighting, so a small ``n`` is a feature seen
   rarely or carrying little signal; it needs no per-slot clock (an access time or count would add
   a fourth word to a 3-word slot: 33% more memory per feature, i.e. 25% fewer features within
   the same budget).  A zero weight does not change any prediction: evicting it only forgets its
   history (the features the paper's admission would not have admitted yet);
2. then, if still over, nonzero weights, smallest ``|z|`` first (the weights closest to being
   switched off by L1);
3. ties (same score) by smaller key, so the surviving set depends only on the (key, z, n)
   triples, never on slot positions or batch boundaries.

TorchRec's ``count / (age + 1) ** decay`` score would also weigh recency; it needs a count and a
clock per slot (both absent here), and recency matters most on drifting streams: ``n`` decays
nothing, so a feature that was frequent long ago and is now gone stays until the zero-weight
candidates run out.

Eviction points are row-determined: ``ftrl_pass`` stops at the first row whose keys could pass
the load limit, which depends only on the rows before it, so the model is the same, bit for bit,
at any batch size, and a run resumed from a checkpoint equals an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._values import is_num
from .errors import ParameterError, shown

if TYPE_CHECKING:
    from .state import FTRLState

__all__ = ["MIB", "LOW_WATER", "GROWTH_PEAK", "STASH_RESERVE", "check_max_state_mb", "capacity_for",
           "growth_extra", "apply_budget", "make_room"]

#: ``--max-state-mb`` counts mebibytes.
MIB = 1 << 20
#: A sweep evicts down to this fraction of the table's load limit.
LOW_WATER = 0.8
#: Peak bytes of the table while it grows, in units of the largest table, when ``realloc`` may
#: copy: old (<= half) + new.
GROWTH_PEAK = 1.5
#: Share of the table reserved for the slots the in-place rehash sets aside (the cluster at slot 0).
STASH_RESERVE = 1 / 64


#: The largest state budget: 2**63 bytes, in MiB (a budget past it would be one no byte count reaches).
MAX_STATE_MB = 2**43


def check_max_state_mb(value: Any) -> float | None:
    """``value`` as a float number of MiB (None: no budget).

    Raises
    ------
    ParameterError
        Not a finite number in (0, MAX_STATE_MB]."""
    if value is None:
        return None
    if not is_num(value) or value <= 0:
        raise ParameterError(f"max_state_mb must be a finite number of MiB > 0, got {shown(value)}")
    if value > MAX_STATE_MB:
        raise ParameterError(f"max_state_mb must be at most {MAX_STATE_MB:,} MiB (2**63 bytes: the state's bytes "
                             f"are counted in int64), got {shown(value)}")
    return float(value)


def growth_extra(capacity: int, slot_bytes: int) -> int:
    """Bytes a growth into ``capacity`` slots may hold besides the new table: the largest old table
    (a power of two of slots, at most half) that ``realloc`` may copy, or the rehash's reserve
    (``STASH_RESERVE`` of the table), whichever is more."""
    from .state import realloc_may_copy

    old = capacity // 2
    while old >= 1 and not realloc_may_copy(old * slot_bytes):
        old //= 2
    return max(old * slot_bytes, int(math.ceil(STASH_RESERVE * capacity * slot_bytes)))


def capacity_for(max_bytes: float, slot_bytes: int, fixed_bytes: int) -> int:
    """Largest power-of-two capacity ``C`` whose growth peak fits: ``C * slot_bytes +
    growth_extra(C) + fixed_bytes <= max_bytes`` (0 when not even one slot fits)."""
    best, cap = 0, 1
    while cap * slot_bytes + growth_extra(cap, slot_bytes) + fixed_bytes <= max_bytes:
        best, cap = cap, cap * 2
    return best


def apply_budget(state: FTRLState, max_state_mb: float | None) -> None:
    """Bound ``state``'s table to the largest capacity whose growth peak (:func:`capacity_for`) fits ``max_state_mb``
    MiB (no bound with None).

    Raises
    ------
    ParameterError
        The budget cannot hold the table ``state`` already has (the minimum table, 1,024 slots,
        for a new state)."""
    if max_state_mb is None:
        state.max_capacity = 0
        return
    slot = int(state.table.itemsize * state.table.shape[1])
    fixed = state.fixed_bytes + int(getattr(state, "side_bytes_max", 0))  # a 16-bit state's zbig, at its largest
    cap = capacity_for(max_state_mb * MIB, slot, fixed)
    if cap < state.capacity:
        extra = growth_extra(state.capacity, slot)
        need = (state.capacity * slot + extra + fixed) / MIB
        what = "the minimum table" if state.touched == 0 else "the table of the starting state"
        raise ParameterError(
            f"max_state_mb {max_state_mb!r} is too small: {what} ({state.capacity:,} slots of {slot} bytes, "
            f"{extra:,} more bytes while it grows, plus {fixed:,} bytes of bias, filters and 16-bit zbig) needs {need:.3g} MiB; "
            "give a larger --max-state-mb"
        )
    state.max_capacity = cap


def make_room(state: FTRLState, row_nnz: int, l1: float, vals: Any = None) -> int:
    """Evict (policy of the module docstring) from a table at its budget capacity until a row of
    ``row_nnz`` keys fits below the load limit: down to ``LOW_WATER`` of it, or lower when the
    row needs more.  Returns the number of features evicted.  ``vals``: what the eviction
    kernels read (z, n) through (default ``state.values``; a 16-bit state passes its own).

    Raises
    ------
    ParameterError
        A single row has more keys than the budget's table can hold."""
    from ._kernels.evict import evict_upto, rank_threshold

    limit = state.max_count
    if row_nnz > limit:
        raise ParameterError(
            f"a row has {row_nnz:,} features but the state budget holds at most {limit:,} "
            "(70% of its table): give a larger --max-state-mb"
        )
    target = min(int(LOW_WATER * limit), limit - row_nnz)
    k = state.touched - target
    if k <= 0:  # the row's keys are counted as new: room already (cannot happen from train_batch)
        return 0
    fbuf = np.zeros(1, dtype=np.float64)
    ubuf = fbuf.view(np.uint64)
    vals = state.values if vals is None else vals
    t_score, t_key = rank_threshold(state.table, vals, float(l1), np.int64(k), fbuf, ubuf)
    removed = int(evict_upto(state.table, vals, state.count, float(l1), np.uint64(t_score),
                             np.uint64(t_key), fbuf, ubuf))
    if removed != k:  # the ranks are a total order: exactly k are at or below the k-th
        raise AssertionError(f"evicted {removed} features, expected {k}")
    state.evicted_features += removed
    state.evictions += 1
    return removed
