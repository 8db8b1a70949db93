"""Slow pure-Python FTRL-Proximal over the 16-bit state (``state_bits=16``), from
``docs/STATE16.md``.  It does NOT import ``sparsecross``: it is the oracle the Numba kernel
(``_kernels/ftrl16.py``) is checked against, bit for bit.

State per key, in a dict: ``(s, zform)`` with ``s`` the stored sqrt(n) (a float16 value, held
as a Python float) and ``zform`` either ``("v", code)`` (z = code * 2**-13 * D(s), an int16
code) or ``("big", z32)`` (a promoted key's z, a float32 value).  Halves come from numpy's
float16 (rounded both ways, then one neighbour chosen), never from the kernel's bit operations.

The randomized rounding uses the uniforms the contract fixes: with
``salt = xxh64(b"state16-rounding", seed + epoch)``, ``hrow = fmix64(salt ^ row)`` (``row``: the
row's position in the epoch's order) and ``h = fmix64(hrow ^ key)``, the uniform of sqrt(n) is
``(h >> 32) / 2**32`` and that of z is ``(h & (2**32 - 1)) / 2**32``; a value rounds up when
its uniform is below the fraction of the step.
"""

from __future__ import annotations

import math

import numpy as np

from .ftrl_reference import _ftrl_weight, clipped_logloss, sigmoid
from .hashing_reference import fmix64, xxh64

__all__ = ["Reference16", "half_round", "q213_round", "uniforms"]

PROMOTE = 16.0
ZBIG_MAX = 1 << 16
HALF_MAX = 65504.0


def half_round(x: float, u: float) -> float:
    """A float16 value next to ``x >= 0``: the one below, or above when ``u`` < the fraction of
    the step; saturating at 65504."""
    if x <= 0.0:
        return 0.0
    if x >= HALF_MAX:
        return HALF_MAX
    h = np.float16(x)
    if float(h) == x:
        return x
    if float(h) > x:
        lo, hi = np.nextafter(h, np.float16(0)), h
    else:
        lo, hi = h, np.nextafter(h, np.float16(np.inf))
    frac = (x - float(lo)) / (float(hi) - float(lo))
    return min(float(hi) if u < frac else float(lo), HALF_MAX)


def q213_round(v: float, u: float) -> tuple[int, bool]:
    """(int16 code next to ``v * 2**13``, clipped): below, or above when ``u`` < the fraction."""
    q = v * 8192.0
    lo = math.floor(q)
    code = lo + 1 if u < q - lo else lo
    if code > 32767:
        return 32767, True
    if code < -32768:
        return -32768, True
    return code, False


def uniforms(seed: int, epoch: int, row: int, key: int) -> tuple[float, float]:
    salt = xxh64(b"state16-rounding", (seed + epoch) & ((1 << 64) - 1))
    h = fmix64(fmix64(salt ^ row) ^ key)
    return (h >> 32) / 4294967296.0, (h & 0xFFFFFFFF) / 4294967296.0


class Reference16:
    """The 16-bit FTRL state in dicts; :meth:`fit_row` trains one row."""

    def __init__(self, alpha: float, beta: float, l1: float, l2: float, eps: float = 0.0, seed: int = 0) -> None:
        self.alpha, self.beta, self.l1, self.l2, self.eps, self.seed = alpha, beta, l1, l2, eps, seed
        self.state: dict[int, tuple[float, tuple[str, float]]] = {}
        self.promoted = 0
        # the kernel's zstats[1:]: keys that passed T with zbig full, q2.13 clips, sqrt(n) saturations
        self.refused = 0
        self.clips = 0
        self.saturations = 0
        self.zb = 0.0
        self.nb = 0.0
        self.loss = 0.0
        self.weight_sum = 0.0

    def _d(self, s: float) -> float:
        """D(s) = (beta + s) / alpha + l2, computed (as the kernel does) with 1 / alpha."""
        return (self.beta + s) * (1.0 / self.alpha) + self.l2

    def z_n(self, key: int) -> tuple[float, float]:
        """Decoded (z, n) of ``key``."""
        s, (form, val) = self.state[key]
        z = val if form == "big" else val * (1.0 / 8192.0) * self._d(s)
        return z, s * s

    def fit_row(self, keys: list[int], xs: list[float], y: float, epoch: int, row: int, sw: float = 1.0) -> None:
        wb = _ftrl_weight(self.zb, self.nb, self.alpha, self.beta, 0.0, 0.0)
        margin = wb
        cur = []
        for k, x in zip(keys, xs):
            self.state.setdefault(k, (0.0, ("v", 0)))
            s = self.state[k][0]
            z, _ = self.z_n(k)
            w = 0.0 if abs(z) <= self.l1 else -(z - (1.0 if z > 0 else -1.0) * self.l1) / self._d(s)
            cur.append((k, x, s, z, w))
            margin += w * float(np.float32(x))
        p = sigmoid(margin)
        self.loss += clipped_logloss(p, y) * sw
        self.weight_sum += sw
        g = (p - (y * (1.0 - self.eps) + 0.5 * self.eps)) * sw
        for k, x, s, z, w in cur:
            u_n, u_z = uniforms(self.seed, epoch, row, k)
            gi = g * float(np.float32(x))
            root = math.sqrt(s * s + gi * gi)
            self.saturations += root >= HALF_MAX
            s_new = half_round(root, u_n)
            z_new = z + gi - (s_new - s) / self.alpha * w
            form = self.state[k][1][0]
            if form == "big" or (s_new > PROMOTE and self.promoted < ZBIG_MAX):
                if form != "big":
                    self.promoted += 1
                self.state[k] = (s_new, ("big", float(np.float32(z_new))))
            else:
                self.refused += s_new > PROMOTE and s <= PROMOTE  # zbig is full
                v = z_new / self._d(s_new)
                self.clips += not -32768.0 <= v * 8192.0 <= 32767.0  # v outside the codes' range
                self.state[k] = (s_new, ("v", q213_round(v, u_z)[0]))
        sigma = (math.sqrt(self.nb + g * g) - math.sqrt(self.nb)) / self.alpha
        self.zb = self.zb + g - sigma * wb
        self.nb = self.nb + g * g
