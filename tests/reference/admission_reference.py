"""Admission policies on top of the dict FTRL oracle, slow and obvious (``../shared/ALGORITHM.md``,
McMahan et al. 2013, section 4.3 "Probabilistic feature inclusion").

A coordinate without state (not in ``z``) is a *candidate*; each row in which it occurs is one
*sighting*.  On a sighting the policy decides whether it gets state now:

* ``after = N``: exact counts in a dict; admitted on the sighting that makes its count N.
  With ``filter_bytes``, the counts are instead those of the documented counting Bloom filter
  (``sparsecross.admission``): ``2 * filter_bytes`` 4-bit counters, a key's two counters in one
  block of ``b = min(counters, 128)``: ``h = fmix64(key ^ fmix64(xxh64(b"admit-filter", seed)))``,
  block ``h mod (counters / b)``, positions ``(h >> 32) mod b`` and ``(h >> 48) mod b`` in it;
  estimate = the smaller counter; a sighting raises the counters below ``estimate + 1`` to it
  (saturating at 15).
* ``probability = P``: admitted when ``fmix64(fmix64(sighting_salt(epoch) ^ row) ^ key)`` is
  below ``P * 2**64`` (``row``: the row's position in the epoch, ``sighting_salt(e)`` =
  ``xxh64(b"admit-sighting", seed + e)``), the documented contract of
  ``sparsecross.admission``.

A sighting that is not admitted contributes nothing to its row: weight 0 in the prediction,
no gradient, no state.  A coordinate admitted in a row is trained in that row (its weight for
the prediction is 0, from z = n = 0).  The bias is always trained.  Does NOT import sparsecross.
"""

from __future__ import annotations

from tests.reference.ftrl_reference import ReferenceFTRL
from tests.reference.hashing_reference import fmix64, xxh64

__all__ = ["ReferenceAdmission", "ReferenceCountingFilter"]

_MASK = (1 << 64) - 1


class ReferenceCountingFilter:
    """The counting Bloom filter, one Python int per counter."""

    def __init__(self, filter_bytes: int, seed: int) -> None:
        self.counters = [0] * (2 * filter_bytes)
        self.salt = fmix64(xxh64(b"admit-filter", seed))

    def positions(self, key: int) -> tuple[int, int]:
        n = len(self.counters)
        b = min(n, 128)
        h = fmix64(key ^ self.salt)
        base = (h % (n // b)) * b
        return base + (h >> 32) % b, base + (h >> 48) % b

    def sight(self, key: int) -> int:
        """Count one sighting; returns the new estimate."""
        i1, i2 = self.positions(key)
        c = min(min(self.counters[i1], self.counters[i2]) + 1, 15)
        for i in (i1, i2):
            self.counters[i] = max(self.counters[i], c)
        return c


class ReferenceAdmission(ReferenceFTRL):
    """:class:`ReferenceFTRL` whose new coordinates must pass an admission policy first."""

    def __init__(self, alpha: float, beta: float, l1: float, l2: float, label_smoothing: float = 0.0, *,
                 after: int = 1, probability: float = 1.0, seed: int = 0, filter_bytes: int = 0) -> None:
        super().__init__(alpha, beta, l1, l2, label_smoothing)
        self.after = after
        self.probability = probability
        self.seed = seed
        self.sightings: dict[int, int] = {}  # exact counts of candidates
        self.filter = ReferenceCountingFilter(filter_bytes, seed) if filter_bytes else None
        self.admitted = 0
        self.rejected = 0

    def _admit(self, key: int, epoch: int, row: int) -> bool:
        if self.after > 1 and self.filter is not None:
            ok = self.filter.sight(key) >= self.after
        elif self.after > 1:
            self.sightings[key] = self.sightings.get(key, 0) + 1
            ok = self.sightings[key] >= self.after
        else:
            salt = xxh64(b"admit-sighting", (self.seed + epoch) & _MASK)
            h = fmix64(fmix64(salt ^ row) ^ key)
            ok = h < min(int(self.probability * 2.0 ** 64), _MASK)
        if ok:
            self.admitted += 1
        else:
            self.rejected += 1
        return ok

    def update_at(self, row: list[tuple[int, float]], y: float, epoch: int, position: int,
                  sample_weight: float = 1.0) -> float:
        """One step on the row at ``position`` of epoch ``epoch``: drop the candidates that are
        not admitted, give the admitted ones state (z = n = 0), then the plain FTRL step."""
        kept = []
        for i, x in self._active(row):
            if i in self.z or self._admit(i, epoch, position):
                self.z.setdefault(i, 0.0)
                self.n.setdefault(i, 0.0)
                kept.append((i, x))
        return self.update(kept, y, sample_weight)
