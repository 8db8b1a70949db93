"""16-bit codecs of the compact training state (``state_bits=16``; ``docs/STATE16.md``).

A 16-bit slot is one row ``uint32[2]`` of the state table: word 0 the key (all ones = empty),
word 1 packs

==========  ==========================================================================
bits 0-15   ``v`` code: int16 q2.13 of ``v = z / D(s)`` (``D(s) = (beta + s) / alpha + l2``),
            or, when bit 31 is set, the index of the key's z in ``zbig`` (float32)
bits 16-30  ``s = sqrt(n)`` as a non-negative IEEE half (float16 without its sign bit)
bit 31      promoted: z is ``zbig[bits 0-15]``
==========  ==========================================================================

An all-zero word is z = 0, n = 0: a new key.  Numba has no float16 on the CPU: halves are
decoded by bit operations (exponent and mantissa fields) and encoded from ``math.frexp``.

Every encoder rounds *randomly*: up with probability equal to the fraction of the step, so the
stored value is unbiased (to-nearest rounding loses every increment smaller than half a step).
The uniform numbers come from :func:`rr_uniforms`: a hash of (key, update number, seed) with
MurmurHash3's fmix64, so the same data in the same order give the same state.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import kernel
from .hash import fmix64

#: Largest finite half (0x7BFF = 65504): a larger ``sqrt(n)`` saturates there.
HALF_MAX_BITS = 0x7BFF
#: q2.13: int16 code times 2**-13, so ``v`` in [-4, 4).
Q213_SCALE = 8192.0
Q213_MIN = -32768
Q213_MAX = 32767
#: Bit 31 of word 1: the key's z lives in ``zbig``.
PROMOTED = np.uint32(1 << 31)
#: A key whose stored ``sqrt(n)`` passes this is promoted (its z kept in float32 in ``zbig``).
PROMOTE_SQRT_N = 16.0
#: ``zbig`` holds at most this many promoted z (a 16-bit index).
ZBIG_MAX = 1 << 16

#: 2**(b - 25) for a half's biased exponent b (b = 0, subnormal, uses b = 1's scale).
_POW2 = np.array([2.0 ** (max(b, 1) - 25) for b in range(32)], dtype=np.float64)
_U16 = np.uint32(16)
_LOW16 = np.uint32(0xFFFF)
_HALF15 = np.uint32(0x7FFF)
_INV32 = 1.0 / 4294967296.0  # 2**-32


@intrinsic
def f64_bits(typingctx, x):
    """The IEEE-754 bit pattern of the float64 ``x`` as a uint64 (an LLVM bitcast)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(x), codegen


_MANT52 = np.uint64((1 << 52) - 1)
_REM42 = np.uint64((1 << 42) - 1)
_INV42 = 2.0 ** -42


@kernel
def half_decode(bits):
    """float64 value of the non-negative half with bit pattern ``bits`` (0..0x7BFF)."""
    b = np.int64(bits >> 10) & 31
    m = np.int64(bits) & 1023
    if b == 0:
        return np.float64(m) * _POW2[1]
    return np.float64(m + 1024) * _POW2[b]


@kernel
def half_encode_rr(x, u):
    """Bit pattern (int64, 0..0x7BFF) of a half next to ``x`` (float64, finite, >= 0): the
    half below or the half above, up with probability equal to the fraction of the step
    (``u`` uniform in [0, 1)); saturates at 65504 (0x7BFF).

    From ``x``'s float64 bits: a normal half keeps the exponent and the top 10 of the 52
    mantissa bits (its code is ``(e + 15) << 10 | top``, and code + 1 is the next half, across
    a binade too); the 42 bits dropped are the fraction of the step."""
    if x <= 0.0:
        return np.int64(0)
    if x >= 65504.0:
        return np.int64(HALF_MAX_BITS)
    b = f64_bits(x)
    e = np.int64(b >> np.uint64(52)) - 1023
    if e < -14:  # subnormal half: step 2**-24 (exact scaling)
        q = x * 16777216.0
        lo = math.floor(q)
        c = np.int64(lo)
        if u < q - lo:
            c += 1
        return c
    c = ((e + 15) << 10) | np.int64((b & _MANT52) >> np.uint64(42))
    c += np.int64(u < np.float64(b & _REM42) * _INV42)  # no branch: it would be mispredicted half the time
    if c > HALF_MAX_BITS:
        c = np.int64(HALF_MAX_BITS)
    return c


@kernel
def q213_encode_rr(v, u):
    """int16 q2.13 code (int64 in [-32768, 32767]) next to ``v`` (float64, finite): the code
    below or above ``v * 2**13``, up with probability equal to the fraction; clipped to the
    int16 range.  Returns (code, clipped)."""
    q = v * Q213_SCALE
    lo = math.floor(q)
    if lo >= 32767.0:
        return np.int64(Q213_MAX), q > 32767.0
    if lo < -32768.0:
        return np.int64(Q213_MIN), True
    c = np.int64(lo) + np.int64(u < q - lo)
    return c, False


@kernel
def q213_decode(code16):
    """float64 value of the q2.13 code held in the low 16 bits of ``code16`` (two's complement)."""
    c = np.int64(code16 & _LOW16)
    if c >= 32768:
        c -= 65536
    return np.float64(c) * (1.0 / Q213_SCALE)


@kernel
def denominator(s, alpha, beta, l2):
    """``D(s) = (beta + s) / alpha + l2`` (the weight is ``-(z - sign(z) l1) / D``), computed as
    ``(beta + s) * (1 / alpha) + l2``: ``1 / alpha`` is hoisted out of a kernel's loops, so
    coding ``v = z / D`` and decoding ``z = v D`` cost no division by alpha per entry."""
    return (beta + s) * (1.0 / alpha) + l2


@kernel
def decode_word(word, zbig, alpha, beta, l2):
    """(z, s = sqrt(n)) of a slot's word 1 (uint32); ``zbig`` float32, every promoted index
    below its length (checked by the caller)."""
    s = half_decode((word >> _U16) & _HALF15)
    if word & PROMOTED:
        return np.float64(zbig[np.int64(word & _LOW16)]), s
    return q213_decode(word) * denominator(s, alpha, beta, l2), s


@kernel
def pack_word(low16, s_bits, promoted):
    """Word 1 from its fields (``low16``: q2.13 code or ``zbig`` index; ``s_bits``: half bits)."""
    w = (np.uint32(s_bits) << _U16) | (np.uint32(low16) & _LOW16)
    if promoted:
        w |= PROMOTED
    return w


@kernel
def row_hash(salt, row):
    """Per-row half of the rounding hash: ``fmix64(salt ^ row)`` (``row``: the update number,
    the row's global position; ``salt``: from the seed and the epoch)."""
    return fmix64(np.uint64(salt) ^ np.uint64(row))


@kernel
def rr_uniforms(hrow, key):
    """Two independent uniforms in [0, 1) (for sqrt(n), for z) of one (key, update):
    ``h = fmix64(hrow ^ key)``, its high and low 32 bits times 2**-32."""
    h = fmix64(hrow ^ np.uint64(key))
    return np.float64(h >> np.uint64(32)) * _INV32, np.float64(h & np.uint64(0xFFFFFFFF)) * _INV32
