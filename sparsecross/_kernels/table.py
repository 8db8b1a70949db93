"""Open-addressing hash tables on flat arrays (linear probing, power-of-two capacity).

Each slot is one row of a ``(capacity, W)`` unsigned-integer array whose column 0 is the key
(all ones = empty) and whose other columns hold floats of the same width, read and written
through a float *view* of the same buffer (``table.view(float32)`` for ``uint32`` tables,
``float64`` for ``uint64``).  A lookup therefore touches one cache line: the key and its
values sit side by side.

* Training state: ``W = 3`` -> (key, z, n).
* Inference: ``W = 2`` -> (key, weight): uint32/float32 or uint64/float64.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import inline_kernel, kernel
from .hash import fmix64


#: The intrinsic's name is mangled by its pointer type: ``ptr`` (opaque pointers, LLVM >= 16 as
#: llvmlite >= 0.45 uses it) or ``i8*`` (LLVM 14/15 of older llvmlite, typed pointers).
_PREFETCH_NAME = "llvm.prefetch.p0" if llvm_version_info[0] >= 16 else "llvm.prefetch.p0i8"


@intrinsic
def prefetch_slot(typingctx, table, s):
    """Hint the CPU to fetch the cache lines of slot ``s`` (``table[s, 0]`` and the slot's last
    word: a 12- or 24-byte slot may straddle two 64-byte lines) for writing (LLVM
    ``llvm.prefetch``: rw=1, locality=3, data).  A prefetch never faults and changes no value,
    so ``s`` may be any index; it only starts a memory access early, so that a kernel can have
    several cache misses in flight instead of waiting for one at a time."""
    if not (isinstance(table, types.Array) and table.ndim == 2 and isinstance(s, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aryty, sty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        row = context.cast(builder, args[1], sty, types.intp)
        shape = cgutils.unpack_tuple(builder, ary.shape)
        strides = cgutils.unpack_tuple(builder, ary.strides)
        last = builder.sub(shape[1], context.get_constant(types.intp, 1))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            _PREFETCH_NAME)
        for col in (context.get_constant(types.intp, 0), last):
            ptr = cgutils.get_item_pointer2(context, builder, ary.data, shape, strides, aryty.layout, [row, col],
                                            wraparound=False, boundscheck=False)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(table, s), codegen


@inline_kernel
def prefetch_homes(table, indices, a, b, homes, ring_mask):
    """Prefetch the home slots of the keys ``indices[a:b]`` (int64 column ids, converted to the
    table's key dtype as the lookups do) in ``table``, and write each home slot to
    ``homes[k & ring_mask]`` (``homes`` uint64, a ring indexed by entry), so that the lookup
    that follows (``slot_from``) does not hash the key again.  ``a``, ``b`` are >= 0.  Reads
    nothing from ``table``."""
    cap_mask = np.uint64(table.shape[0] - 1)
    for k in range(np.uint64(a), np.uint64(b)):
        h = fmix64(np.uint64(table.dtype.type(indices[k]))) & cap_mask
        homes[k & ring_mask] = h
        prefetch_slot(table, h)


@kernel
def slot_from(table, key, s):
    """``slot_of(table, key)`` given its home slot ``s`` (``fmix64(key) & (capacity - 1)``, as
    uint64).  Returns uint64 (unsigned: the indexing that follows needs no negative-index
    wraparound)."""
    cap_mask = np.uint64(table.shape[0] - 1)
    empty = table[0, 0] | ~table[0, 0]
    while True:
        k = table[s, 0]
        if k == key or k == empty:
            return s
        s = (s + np.uint64(1)) & cap_mask


@kernel
def slot_of(table, key):
    """Slot holding ``key`` in ``table`` (column 0), or the empty slot where it would go.

    ``table`` capacity is a power of two and never full; ``key`` has the table's dtype (all
    ones in it is the empty marker).  Returns int64."""
    cap_mask = np.uint64(table.shape[0] - 1)
    return np.int64(slot_from(table, key, fmix64(np.uint64(key)) & cap_mask))


#: Slots ahead whose destination ``rehash`` prefetches (about 11 keys at load 0.7).
_REHASH_AHEAD = 16


@kernel
def rehash(old, old_vals, new, new_vals):
    """Move every occupied slot of ``old`` into the empty table ``new`` (same width).

    ``new`` must have every key all-ones and enough capacity.  Mutates ``new``/``new_vals``.
    Returns the number of keys moved."""
    empty = old[0, 0] | ~old[0, 0]
    moved = 0
    w = old.shape[1]
    n_old = old.shape[0]
    new_mask = np.int64(new.shape[0] - 1)
    for s in range(n_old):
        ahead = s + _REHASH_AHEAD  # the writes are cache misses: start them early
        if ahead < n_old and old[ahead, 0] != empty:
            prefetch_slot(new, np.int64(fmix64(np.uint64(old[ahead, 0]))) & new_mask)
        k = old[s, 0]
        if k != empty:
            t = slot_of(new, k)
            new[t, 0] = k
            for c in range(1, w):
                new_vals[t, c] = old_vals[s, c]
            moved += 1
    return moved


@kernel
def first_empty(table, n):
    """Index of the first empty slot among ``table[:n]`` (``n`` if there is none)."""
    empty = table[0, 0] | ~table[0, 0]
    for s in range(n):
        if table[s, 0] == empty:
            return s
    return n


@kernel
def _move_to_home(table, vals, s, k, src_vals, src_row):
    """Put key ``k`` (values ``src_vals[src_row, 1:]``) in its probe slot of ``table`` (slot
    ``s`` of ``table`` is empty: it held ``k``, or ``s`` < 0).  Zeroes ``vals[s, 1:]`` when the
    key leaves slot ``s``."""
    t = slot_of(table, k)
    table[t, 0] = k
    if t != s:
        for c in range(1, table.shape[1]):
            vals[t, c] = src_vals[src_row, c]
            if s >= 0:
                vals[s, c] = 0.0


@kernel
def rehash_in_place(table, vals, old_cap, e, stash, stash_vals):
    """Rehash, in place, a linear-probing table whose capacity has just grown from ``old_cap``
    to ``table.shape[0]`` (a power of two, ``old_cap`` times a power of two): slots
    ``[old_cap, cap)`` are empty (values zero), slots ``[0, old_cap)`` hold a valid table of
    capacity ``old_cap`` whose first empty slot is ``e``; ``stash``/``stash_vals`` (``e``
    rows) is a copy of its slots ``[0, e)``.

    1. the slots ``[0, e)`` are emptied (their keys are in the stash);
    2. the old slots ``e+1 .. old_cap-1`` are scanned in order, each key taken out and put back
       at its probe slot of the new capacity.  When a key of slot ``s`` moves, every slot its
       probe passes is final: its new home is its old home ``h`` (``e < h <= s``: the probe runs
       over ``[h, s)``, scanned already, or, when it crosses ``old_cap``, over the upper part)
       or ``h + j * old_cap`` in the upper part, which holds moved keys only, and a probe that
       wraps past the end of the table meets ``[0, e]`` (emptied) and ``(e, s)`` (scanned)
       before the empty slot ``s``.  So no probe passes a slot that is emptied later, and
       every key ends where it would be found (no key lands beyond ``s`` among the slots not
       yet scanned, so none is moved twice);
    3. the stashed keys are inserted into the now valid table.

    The scan prefetches the new home of the key ``_REHASH_AHEAD`` slots ahead (an unscanned
    slot, which holds its old key): a prefetch changes no value, only when the line arrives.

    Mutates ``table``/``vals``.  Returns the number of keys placed."""
    empty = table[0, 0] | ~table[0, 0]
    w = table.shape[1]
    for s in range(e):
        table[s, 0] = empty
        for c in range(1, w):
            vals[s, c] = 0.0
    placed = 0
    cap_mask = np.uint64(table.shape[0] - 1)
    for s in range(e + 1, old_cap):
        ahead = s + _REHASH_AHEAD  # a move writes a slot far away (a cache miss): start it early
        if ahead < old_cap and table[ahead, 0] != empty:
            prefetch_slot(table, fmix64(np.uint64(table[ahead, 0])) & cap_mask)
        k = table[s, 0]
        if k != empty:
            table[s, 0] = empty
            _move_to_home(table, vals, s, k, vals, s)
            placed += 1
    for i in range(e):
        _move_to_home(table, vals, -1, stash[i, 0], stash_vals, i)
        placed += 1
    return placed


@kernel
def build_lookup_kernel(keys, weights, table, vals):
    """Fill the empty inference ``table`` (uint32 or uint64 ``[cap, 2]``, ``vals`` its float
    view of the same width) with sorted unique ``keys`` (uint64, each below the table's empty
    marker) and ``weights`` (float32).  Mutates ``table``/``vals``."""
    for i in range(keys.shape[0]):
        k = table.dtype.type(keys[i])
        s = slot_of(table, k)
        table[s, 0] = k
        vals[s, 1] = weights[i]


def empty_table(capacity: int, width: int, dtype: np.dtype) -> np.ndarray:
    """A ``(capacity, width)`` table of ``dtype`` with every key empty and values zero."""
    t = np.zeros((capacity, width), dtype=dtype)
    t[:, 0] = np.iinfo(dtype).max
    return t


def build_lookup(keys: np.ndarray, weights: np.ndarray, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Inference table at load factor <= 0.5 for a model's sorted keys: (table, float view).

    8-byte slots (uint32 key, float32 weight) when every column id of the model's space fits
    in 32 bits, else 16-byte slots (uint64, float64): a million weights take 16 MiB, not 64.
    """
    cap = 16
    while cap < 2 * len(keys) + 2:
        cap *= 2
    if n_columns < (1 << 32) - 1:
        table = empty_table(cap, 2, np.dtype(np.uint32))
        vals = table.view(np.float32)
    else:
        table = empty_table(cap, 2, np.dtype(np.uint64))
        vals = table.view(np.float64)
    build_lookup_kernel(np.ascontiguousarray(keys, dtype=np.uint64),
                        np.ascontiguousarray(weights, dtype=np.float32), table, vals)
    return table, vals
