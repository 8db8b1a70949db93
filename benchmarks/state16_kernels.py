"""Prototype FTRL-Proximal kernels with z and n stored in 16-bit forms (issue 13 item 5).

Used only by ``bench_state16.py``: a measurement, not library code.  The kernels mirror
``sparsecross._kernels.ftrl.ftrl_pass`` (same open-addressing lookup ``table.slot_of`` on a
``uint32`` key table, hence the same hashing of keys; float64 arithmetic; lazy weights; an
unregularized float64 bias; the same operation order), but the table is presized (no growth)
and every stored value goes through an encoder of its variant:

z forms (``Z_*``)
    ``F64`` / ``F32``: the float itself (``F32`` is the library's state: must match it bit for
    bit).  ``F16`` / ``BF16``: IEEE half / bfloat16, saturating.  ``QFIX``: z in int16 fixed
    point with one per-model step (2**-k).  ``W13``: ``v = z / D(n)`` in q2.13 (int16 code
    times 2**-13, clipped to [-4, 4)) with ``D(n) = (beta + sqrt(n)) / alpha + l2``, so that
    ``w = -(v - sign(v) l1 / D)``: the paper's q2.13 *weight* format, but keeping the L1 dead
    zone (``|z| <= l1``) that FTRL needs; ``z = v * D(n)`` is recomputed from the stored n.
    ``W13P``: ``W13`` while ``sqrt(n) <= T`` (``hp[5]``); a key whose stored ``sqrt(n)`` passes
    T is *promoted*: its z is kept as float32 (standing for a small float32 side table of the
    few frequent keys), since a q2.13 step of v is ``2**-13 * D(n)`` in z, coarse when n is large.
n forms (``N_*``)
    ``F64`` / ``F32``; ``F16`` / ``BF16`` (saturating); ``LOG16``: a 16-bit code, 0 -> 0, c ->
    2**((c - 1) / 1024 - 24) (64 octaves, relative step 6.8e-4); ``CNT16`` / ``CNT8``: the
    paper's count-based ``n = P N / (P + N)`` from the counts of positive (P) and negative (N)
    rows that carried the feature, two 16- or 8-bit counters halved together when one would
    overflow (keeps their ratio).  ``SQRTF16``: ``sqrt(n)`` as IEEE half (the quantity the weight
    and the update use; no saturation below n = 4.3e9).

Rounding into a 16-bit form is randomized (``sr=1``: up with probability equal to the
fraction of the step, so unbiased) or to nearest (``sr=0``).  The random number is a hash of
(key, update number, seed, salt), never a global RNG: the same data and seed give the same
state.  With a 16-bit n form the z update uses the *stored* n: ``sigma = (sqrt(n_new) -
sqrt(n_old)) / alpha`` from decoded values, so that ``sum(sigma) = sqrt(n_stored) / alpha``
holds and the weight stays consistent with the stored state (F32/F64 use the library's exact
``n + g*g``, as ``ftrl_pass`` does).

State array ``st`` float64[cap, 3]: column 0 the z form's value (for ``W13``: v), columns 1-2
the n form (its value, its log code, or the two counts).  Every stored value is exactly
representable in its 16-bit form (``bench_state16.check_forms`` verifies it after training).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from sparsecross._kernels.hash import fmix64
from sparsecross._kernels.table import slot_of

Z_F64, Z_F32, Z_F16, Z_BF16, Z_QFIX, Z_W13, Z_W13P = 0, 1, 2, 3, 4, 5, 6
N_F64, N_F32, N_F16, N_BF16, N_LOG16, N_CNT16, N_CNT8, N_SQRTF16 = 0, 1, 2, 3, 4, 5, 6, 7

F16_MAX = 65504.0
BF16_MAX = (2.0 - 2.0 ** -7) * 2.0 ** 127
W13_STEP = 2.0 ** -13
LOG_PER_OCTAVE = 1024.0
LOG_MIN_EXP = -24.0
SALT_Z = 0x5A5A
SALT_N = 0xA5A5

EPS = 1e-15


@njit(cache=True, nogil=True)
def uniform(key, update, seed, salt):
    """Uniform in [0, 1) from a hash of (key, update number, seed, salt)."""
    a = fmix64(np.uint64(update) ^ (np.uint64(seed) << np.uint64(40)) ^ (np.uint64(salt) << np.uint64(56)))
    h = fmix64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) ^ a)
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def pick(q, u, sr):
    """An integer next to ``q``: randomized (up with probability frac(q)) or nearest-even."""
    lo = math.floor(q)
    frac = q - lo
    if sr:
        return lo + 1.0 if u < frac else lo
    if frac > 0.5 or (frac == 0.5 and (lo % 2.0) != 0.0):
        return lo + 1.0
    return lo


@njit(cache=True, nogil=True)
def float_round(x, mant_bits, min_exp, max_val, u, sr, stats, stat_idx):
    """``x`` rounded into a binary float with ``mant_bits`` stored mantissa bits, minimum
    normal exponent ``min_exp`` (subnormals below), saturating at ``max_val``."""
    if x == 0.0:
        return 0.0
    ax = abs(x)
    s = 1.0 if x > 0 else -1.0
    if ax >= max_val:
        stats[stat_idx] += 1
        return s * max_val
    m, e = math.frexp(ax)
    ee = e - 1
    if ee < min_exp:
        ee = min_exp
    ulp = math.ldexp(1.0, ee - mant_bits)
    r = pick(ax / ulp, u, sr) * ulp
    if r > max_val:
        r = max_val
    return s * r


@njit(cache=True, nogil=True)
def fixed_round(x, step, u, sr, stats, stat_idx):
    """``x`` as an int16 code times ``step`` (clipped to [-32768, 32767] codes)."""
    c = pick(x / step, u, sr)
    if c > 32767.0:
        c = 32767.0
        stats[stat_idx] += 1
    elif c < -32768.0:
        c = -32768.0
        stats[stat_idx] += 1
    return c * step


@njit(cache=True, nogil=True)
def log_decode(c):
    if c == 0.0:
        return 0.0
    return 2.0 ** ((c - 1.0) / LOG_PER_OCTAVE + LOG_MIN_EXP)


@njit(cache=True, nogil=True)
def log_encode(n, u, sr, stats):
    """The LOG16 code of ``n >= 0`` (randomized: unbiased in n, not in log n)."""
    if n <= 0.0:
        return 0.0
    t = (math.log2(n) - LOG_MIN_EXP) * LOG_PER_OCTAVE + 1.0
    c = 0.0 if t < 1.0 else math.floor(t)
    if c >= 65535.0:
        stats[2] += 1
        return 65535.0
    while c > 0.0 and log_decode(c) > n:
        c -= 1.0
    while c < 65535.0 and log_decode(c + 1.0) <= n:
        c += 1.0
    if c >= 65535.0:
        return 65535.0
    lo = log_decode(c)
    hi = log_decode(c + 1.0)
    return c + pick((n - lo) / (hi - lo), u, sr)


@njit(cache=True, nogil=True)
def denom(n, alpha, beta, l2):
    return (beta + math.sqrt(n)) / alpha + l2


@njit(cache=True, nogil=True)
def n_of(st, s, nmode):
    """Decoded n of slot ``s``."""
    if nmode == N_LOG16:
        return log_decode(st[s, 1])
    if nmode == N_SQRTF16:
        return st[s, 1] * st[s, 1]
    if nmode == N_CNT16 or nmode == N_CNT8:
        p = st[s, 1]
        q = st[s, 2]
        return p * q / (p + q) if p + q > 0 else 0.0
    return st[s, 1]


@njit(cache=True, nogil=True)
def promoted(n, t):
    return math.sqrt(n) > t


@njit(cache=True, nogil=True)
def z_of(st, s, zmode, n, alpha, beta, l2, hp_t):
    """Decoded z of slot ``s`` given its decoded ``n``."""
    if zmode == Z_W13 or (zmode == Z_W13P and not promoted(n, hp_t)):
        return st[s, 0] * denom(n, alpha, beta, l2)
    return st[s, 0]


@njit(cache=True, nogil=True)
def weight(z, n, alpha, beta, l1, l2):
    if abs(z) <= l1:
        return 0.0
    sgn = 1.0 if z > 0 else -1.0
    return -(z - sgn * l1) / ((beta + math.sqrt(n)) / alpha + l2)


@njit(cache=True, nogil=True)
def store_n(st, s, nmode, n_exact, yr, u, sr, stats):
    """Store the new n (``n_exact`` = old decoded n + g*g; counts use the label ``yr``)."""
    if nmode == N_F64:
        st[s, 1] = n_exact
    elif nmode == N_F32:
        st[s, 1] = np.float64(np.float32(n_exact))
    elif nmode == N_F16:
        st[s, 1] = float_round(n_exact, 10, -14, F16_MAX, u, sr, stats, 2)
    elif nmode == N_BF16:
        st[s, 1] = float_round(n_exact, 7, -126, BF16_MAX, u, sr, stats, 2)
    elif nmode == N_LOG16:
        st[s, 1] = log_encode(n_exact, u, sr, stats)
    elif nmode == N_SQRTF16:
        st[s, 1] = float_round(math.sqrt(n_exact), 10, -14, F16_MAX, u, sr, stats, 2)
    else:
        top = 65535.0 if nmode == N_CNT16 else 255.0
        col = 1 if yr > 0.5 else 2
        if st[s, col] >= top:
            st[s, 1] = math.ceil(st[s, 1] / 2.0)
            st[s, 2] = math.ceil(st[s, 2] / 2.0)
            stats[3] += 1
        st[s, col] += 1.0


@njit(cache=True, nogil=True)
def store_z(st, s, zmode, z, n_new, alpha, beta, l2, zstep, hp_t, u, sr, stats):
    if zmode == Z_F64:
        st[s, 0] = z
    elif zmode == Z_F32:
        st[s, 0] = np.float64(np.float32(z))
    elif zmode == Z_F16:
        st[s, 0] = float_round(z, 10, -14, F16_MAX, u, sr, stats, 1)
    elif zmode == Z_BF16:
        st[s, 0] = float_round(z, 7, -126, BF16_MAX, u, sr, stats, 1)
    elif zmode == Z_QFIX:
        st[s, 0] = fixed_round(z, zstep, u, sr, stats, 1)
    elif zmode == Z_W13P and promoted(n_new, hp_t):
        st[s, 0] = np.float64(np.float32(z))
    else:
        st[s, 0] = fixed_round(z / denom(n_new, alpha, beta, l2), W13_STEP, u, sr, stats, 1)


@njit(cache=True, nogil=True)
def proto_pass(indptr, indices, data, y, keys, st, bias, hp, modes, update0, stats):
    """One pass over every row of a CSR chunk, in order (progressive: score, then update).

    indptr int64[n+1], indices int64[nnz], data float32[nnz], y float64[n].
    keys uint32[cap, 1] (all ones = empty; mutated), st float64[cap, 3] (mutated), bias
    float64[2] (mutated).  hp float64[6]: alpha, beta, l1, l2, zstep,
    promotion threshold T on sqrt(n).  modes int64[4]: zmode,
    nmode, sr, seed.  update0: update number of the first row (epoch * rows).  stats int64[5]:
    (touched, z clipped or saturated, n saturated, count halvings, status) (mutated).
    Returns the progressive logloss sum; stops with stats[4] = 1 if the table passes 90 %.
    """
    alpha, beta, l1, l2, zstep, hp_t = hp[0], hp[1], hp[2], hp[3], hp[4], hp[5]
    zmode, nmode, sr, seed = modes[0], modes[1], modes[2], modes[3]
    n_rows = indptr.shape[0] - 1
    max_len = 1
    for r in range(n_rows):
        ln = indptr[r + 1] - indptr[r]
        if ln > max_len:
            max_len = ln
    slots = np.empty(max_len, dtype=np.int64)
    ws = np.empty(max_len, dtype=np.float64)
    zs = np.empty(max_len, dtype=np.float64)
    ns = np.empty(max_len, dtype=np.float64)
    empty = keys[0, 0] | ~keys[0, 0]
    limit = np.int64(keys.shape[0] * 0.9)
    loss = 0.0
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        if stats[0] + (b - a) > limit:
            stats[4] = 1
            return loss
        zb = bias[0]
        nb = bias[1]
        wb = weight(zb, nb, alpha, beta, 0.0, 0.0)
        margin = wb
        for k in range(a, b):
            key = keys.dtype.type(indices[k])
            s = slot_of(keys, key)
            if keys[s, 0] == empty:
                keys[s, 0] = key
                st[s, 0] = 0.0
                st[s, 1] = 0.0
                st[s, 2] = 0.0
                stats[0] += 1
            slots[k - a] = s
            nk = n_of(st, s, nmode)
            zk = z_of(st, s, zmode, nk, alpha, beta, l2, hp_t)
            w = weight(zk, nk, alpha, beta, l1, l2)
            ns[k - a] = nk
            zs[k - a] = zk
            ws[k - a] = w
            margin += w * np.float64(data[k])
        if margin >= 0:
            p = 1.0 / (1.0 + math.exp(-margin))
        else:
            e = math.exp(margin)
            p = e / (1.0 + e)
        yr = y[r]
        q = min(max(p, EPS), 1.0 - EPS)
        loss += -(yr * math.log(q) + (1.0 - yr) * math.log(1.0 - q))
        g = p - yr
        upd = update0 + r
        for k in range(a, b):
            s = slots[k - a]
            key = keys[s, 0]
            gi = g * np.float64(data[k])
            ni = ns[k - a]
            n_exact = ni + gi * gi
            store_n(st, s, nmode, n_exact, yr, uniform(key, upd, seed, SALT_N), sr, stats)
            n_new = n_exact if nmode <= N_F32 else n_of(st, s, nmode)
            sigma = (math.sqrt(n_new) - math.sqrt(ni)) / alpha
            z_new = zs[k - a] + gi - sigma * ws[k - a]
            store_z(st, s, zmode, z_new, n_new, alpha, beta, l2, zstep, hp_t, uniform(key, upd, seed, SALT_Z), sr, stats)
        sigma = (math.sqrt(nb + g * g) - math.sqrt(nb)) / alpha
        bias[0] = zb + g - sigma * wb
        bias[1] = nb + g * g
    return loss


@njit(cache=True, nogil=True)
def proto_margins(indptr, indices, data, keys, st, bias, hp, modes):
    """Margins of every row under the decoded state (no update).  Returns float64[n]."""
    alpha, beta, l1, l2, hp_t = hp[0], hp[1], hp[2], hp[3], hp[5]
    zmode, nmode = modes[0], modes[1]
    n_rows = indptr.shape[0] - 1
    out = np.empty(n_rows, dtype=np.float64)
    empty = keys[0, 0] | ~keys[0, 0]
    wb = weight(bias[0], bias[1], alpha, beta, 0.0, 0.0)
    for r in range(n_rows):
        m = wb
        for k in range(indptr[r], indptr[r + 1]):
            key = keys.dtype.type(indices[k])
            s = slot_of(keys, key)
            if keys[s, 0] != empty:
                nk = n_of(st, s, nmode)
                m += weight(z_of(st, s, zmode, nk, alpha, beta, l2, hp_t), nk, alpha, beta, l1, l2) * np.float64(data[k])
        out[r] = m
    return out


@njit(cache=True, nogil=True)
def decoded_state(keys, st, hp, modes):
    """(keys uint64[m], z float64[m], n float64[m]) of the occupied slots, in slot order."""
    alpha, beta, l2, hp_t = hp[0], hp[1], hp[3], hp[5]
    zmode, nmode = modes[0], modes[1]
    empty = keys[0, 0] | ~keys[0, 0]
    m = 0
    for s in range(keys.shape[0]):
        if keys[s, 0] != empty:
            m += 1
    ok = np.empty(m, dtype=np.uint64)
    oz = np.empty(m, dtype=np.float64)
    on = np.empty(m, dtype=np.float64)
    j = 0
    for s in range(keys.shape[0]):
        if keys[s, 0] != empty:
            nk = n_of(st, s, nmode)
            ok[j] = np.uint64(keys[s, 0])
            oz[j] = z_of(st, s, zmode, nk, alpha, beta, l2, hp_t)
            on[j] = nk
            j += 1
    return ok, oz, on
