"""In-place eviction from the open-addressing state table of ``table.py`` (the state budget).

Eviction order (the policy; see ``sparsecross/budget.py``): every occupied slot has a 128-bit
rank ``(score, key)`` compared as unsigned integers, smallest evicted first:

* ``score = bits(n)`` when the weight is zero (``|z| <= l1``): least seen / least informative
  first (``n``, the sum of squared gradients, grows with every sighting);
* ``score = 2**63 | bits(|z|)`` otherwise: every nonzero weight ranks after every zero one,
  smallest ``|z|`` first.

``bits(x)`` is the IEEE-754 bit pattern of the float64 ``x >= 0``, which orders as the
unsigned integer does (the exponent bits are log2 bins, the mantissa bits refine them).  The key
breaks ties, so the order is total and depends only on the (key, z, n) triples, never on where
the keys sit in the table: the surviving set is the same whatever the table's growth history.

:func:`rank_threshold` finds the ``k``-th smallest rank exactly by radix selection, 16 bits per
pass over the table with a histogram of constant size (at most 8 passes, usually 2-3); :func:`evict_upto` then deletes every slot ranked at or below it with
Knuth's backward-shift deletion (TAOCP vol. 3, 6.4, Algorithm R), so no second table is ever
allocated and every surviving key stays findable by linear probing.
"""

from __future__ import annotations

import numpy as np

from numba import types
from numba.extending import overload

from ._jit import kernel
from .half import decode_word
from .hash import fmix64

_TOP = np.uint64(1) << np.uint64(63)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


def _score(vals, s, l1, fbuf, ubuf):
    """The score half of slot ``s``'s rank (uint64; see the module docstring).  ``vals``: the
    float view of a (key, z, n) table, or ``(table, zbig, dparams)`` of a 16-bit state
    (``half.py``; ``dparams`` float64[3] = alpha, beta, l2), whose (z, n) are decoded."""
    raise NotImplementedError("compiled only (numba overload)")


@overload(_score, jit_options={"nogil": True})
def _score_overload(vals, s, l1, fbuf, ubuf):
    if isinstance(vals, types.BaseTuple):  # 16-bit state: decode (z, n)
        def score16(vals, s, l1, fbuf, ubuf):
            table, zbig, dp = vals
            z, sq = decode_word(table[s, 1], zbig, dp[0], dp[1], dp[2])
            return _score_of(z, sq * sq, l1, fbuf, ubuf)
        return score16

    def score(vals, s, l1, fbuf, ubuf):
        return _score_of(np.float64(vals[s, 1]), np.float64(vals[s, 2]), l1, fbuf, ubuf)
    return score


@kernel
def _score_of(z, n, l1, fbuf, ubuf):
    if abs(z) <= l1:
        fbuf[0] = n
        return ubuf[0]
    fbuf[0] = abs(z)
    return ubuf[0] | _TOP


def _words(table, vals):
    """What ``delete_slot`` moves: ``vals``, or the table itself for a 16-bit state."""
    raise NotImplementedError("compiled only (numba overload)")


@overload(_words, jit_options={"nogil": True})
def _words_overload(table, vals):
    if isinstance(vals, types.BaseTuple):
        return lambda table, vals: table
    return lambda table, vals: vals


@kernel
def _rank_le(sc, ky, t_score, t_key):
    return sc < t_score or (sc == t_score and ky <= t_key)


@kernel
def delete_slot(table, vals, i):
    """Empty slot ``i`` of a linear-probing ``table`` (occupied) by backward shift: each later
    key of the cluster whose home slot is not cyclically in ``(hole, its slot]`` moves back
    into the hole, so every remaining key stays reachable from its home without tombstones.

    ``table`` uint32/uint64[cap, W] (key in column 0, all ones = empty), ``vals`` its float
    view; mutated.  Returns None."""
    cap_mask = np.int64(table.shape[0] - 1)
    empty = table[0, 0] | ~table[0, 0]
    w = table.shape[1]
    j = i
    while True:
        j = (j + 1) & cap_mask
        kj = table[j, 0]
        if kj == empty:
            break
        h = np.int64(fmix64(np.uint64(kj))) & cap_mask
        if i <= j:
            stays = i < h and h <= j
        else:
            stays = i < h or h <= j
        if not stays:
            table[i, 0] = kj
            for c in range(1, w):
                vals[i, c] = vals[j, c]
            i = j
    table[i, 0] = empty
    for c in range(1, w):
        vals[i, c] = 0.0


#: Bits of the rank resolved per pass of :func:`rank_threshold` (a 2**16-bin histogram: 512 KiB,
#: whatever the table; 4 passes per 64-bit half instead of 8 with 8-bit digits).
DIGIT_BITS = 16
_DIGITS_PER_HALF = 64 // DIGIT_BITS
_UD = np.uint64(DIGIT_BITS)
_TOP_SHIFT = np.uint64(64 - DIGIT_BITS)
_DIGIT_MASK = np.uint64((1 << DIGIT_BITS) - 1)


@kernel
def rank_threshold(table, vals, l1, k, fbuf, ubuf):
    """The rank ``(t_score, t_key)`` such that exactly ``k`` occupied slots rank at or below it.

    ``table``/``vals``: the state table (key, z, n) and its float view (read only).  ``l1``:
    float64.  ``k``: int64 in ``[1, occupied slots]`` (checked by the caller).  ``fbuf``
    float64[1] and ``ubuf`` its uint64 view: scratch for the float bit patterns (mutated).
    Returns (uint64, uint64).  At most 8 passes over the table (``DIGIT_BITS`` bits of the rank
    each, most significant first), usually 2-3: a pass stops the search when the bin holding
    the ``k``-th rank holds exactly the ranks still needed."""
    empty = table[0, 0] | ~table[0, 0]
    counts = np.zeros(1 << DIGIT_BITS, dtype=np.int64)
    p_score = np.uint64(0)
    p_key = np.uint64(0)
    need = k
    for level in range(2 * _DIGITS_PER_HALF):
        counts[:] = 0
        half = level // _DIGITS_PER_HALF  # 0: digits of the score, 1: digits of the key
        shift = _TOP_SHIFT - _UD * np.uint64(level % _DIGITS_PER_HALF)
        for s in range(table.shape[0]):
            if table[s, 0] == empty:
                continue
            sc = _score(vals, s, l1, fbuf, ubuf)
            if half == 0:
                if shift < _TOP_SHIFT and (sc >> (shift + _UD)) != (p_score >> (shift + _UD)):
                    continue
                d = (sc >> shift) & _DIGIT_MASK
            else:
                ky = np.uint64(table[s, 0])
                if sc != p_score:
                    continue
                if shift < _TOP_SHIFT and (ky >> (shift + _UD)) != (p_key >> (shift + _UD)):
                    continue
                d = (ky >> shift) & _DIGIT_MASK
            counts[np.int64(d)] += 1
        below = 0
        digit = 0
        while below + counts[digit] < need:
            below += counts[digit]
            digit += 1
        need -= below
        low = (np.uint64(1) << shift) - np.uint64(1)  # the bits after this digit
        if half == 0:
            p_score |= np.uint64(digit) << shift
            if counts[digit] == need:  # the whole bin: every rank with this prefix
                return p_score | low, _ONES
        else:
            p_key |= np.uint64(digit) << shift
            if counts[digit] == need:
                return p_score, p_key | low
    return p_score, p_key


@kernel
def evict_upto(table, vals, count, l1, t_score, t_key, fbuf, ubuf):
    """Delete (backward shift) every occupied slot whose rank is ``<= (t_score, t_key)``.

    A deletion may move a later key into the slot just examined, so that slot is examined
    again; a key moved forward across the end of the table (from a wrapped cluster at its
    start) is examined twice, with the same answer.  Mutates ``table``, ``vals`` and ``count``
    (int64[1], decreased by the number deleted).  Returns the number deleted (int64)."""
    empty = table[0, 0] | ~table[0, 0]
    removed = 0
    for s in range(table.shape[0]):
        while table[s, 0] != empty and _rank_le(_score(vals, s, l1, fbuf, ubuf), np.uint64(table[s, 0]),
                                                t_score, t_key):
            delete_slot(table, _words(table, vals), s)
            removed += 1
    count[0] -= removed
    return removed
