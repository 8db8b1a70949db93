"""Admission: which features get optimizer state (McMahan et al. 2013, section 4.3).

Most features of a large sparse problem occur once or twice and never earn a nonzero weight,
yet each costs a slot of state.  Two policies keep them out (``../shared/ALGORITHM.md``):

``admit_after = N`` (2..15): a counting Bloom filter counts the sightings of every key that has
    no state yet; the sighting that brings its count to N is the first that trains it.  The
    gradients of the N - 1 earlier sightings are dropped, as in the paper.
``admit_probability = P`` (0 < P < 1): Poisson inclusion; each sighting of a key without
    state admits it with probability P, decided by a seeded hash of (key, epoch, the row's
    position in the epoch's reading order).  A key appears at most once per row, so that
    triple names one sighting; no filter is kept.

Both are off by default (``admit_after = 1``, ``admit_probability = 1``: every feature is
admitted at its first sighting, byte for byte as without admission, and nothing is recorded in
the model).  The two are mutually exclusive.  The bias is always admitted; no other feature is
exempt (an exact block's features go through the same filter).  A feature never leaves the
state once admitted (eviction is the state budget's job).

**The filter.**  ``2 * bytes`` 4-bit saturating counters (two per byte), fixed for the run:
``bytes`` = ``admit_filter_mb`` MiB rounded down to a power of two, or by default sized from
the number of training rows R (known before training starts, so the size, and the results, are
the same for a resumed run): the power of two at or above R bytes, at least 64 KiB and at most
256 MiB (two counters per row; 16 MiB for 10 million rows).  Each key has two counters, at
positions derived from MurmurHash3's fmix64 of the key and the spec's hashing seed, in one
64-byte block (a blocked Bloom filter: counting a sighting costs one cache miss, not two).
Its estimate is the smaller of the two, and a sighting raises only the counters that are below
the new estimate (conservative update).  An estimate is never below the true count, so a
collision can only admit a feature *early*, never late.  Sizing rule: about 4 bytes (8
counters) per distinct feature expected in the data keeps the chance that a never-seen feature
already looks seen once near 5% (``(1 - exp(-2 F / C))**2`` for F features and C counters,
a little more in blocks); the default suits data with up to about one distinct feature for
every two rows.  The filter's bytes count in the state (``nbytes``).

**Determinism.**  The same data in the same order with the same spec seed and parameters
gives the same admissions, the same state and the same model, byte for byte, whatever the
batch size, and a run resumed from a checkpoint (which holds the filter and the counters)
ends exactly as an uninterrupted one.  A different order (another ``shuffle_seed``) admits
differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._values import check_count, is_num
from .errors import ParameterError, shown
from .hashing import fmix64, xxh64

__all__ = ["AdmitPolicy", "Admission", "MAX_ADMIT_AFTER", "policy_of"]

#: The default filter: the power of two at or above the training rows, in bytes, within these.
MIN_AUTO_FILTER_BYTES = 1 << 16
MAX_AUTO_FILTER_BYTES = 1 << 28
#: Counters are 4 bits: they saturate at 15, the largest N a filter can count to.
MAX_ADMIT_AFTER = 15
_MAX_FILTER_BYTES = 1 << 32  # 8 billion counters


@dataclass(frozen=True)
class AdmitPolicy:
    """The admission parameters of a run (validated; see the module docstring).

    Parameters
    ----------
    after : int in [1, 15] (default 1: off)
        Admit a feature at its ``after``-th sighting, counted in a counting Bloom filter.
    probability : float in (0, 1] (default 1.0: off)
        Admit each sighting of a feature without state with this probability.
    filter_mb : float > 0 or None (default None: sized from the rows, see :meth:`sized`)
        Size of the counting filter in MiB (rounded down to a power of two bytes); used with
        ``after`` only.
    """

    after: int = 1
    probability: float = 1.0
    filter_mb: float | None = None

    def __post_init__(self) -> None:
        check_count("admit_after", self.after, 1, MAX_ADMIT_AFTER, "sightings before a feature gets state; "
                    "1 = every feature")
        if not is_num(self.probability) or not 0 < self.probability <= 1:
            raise ParameterError(f"admit_probability must be a number in (0, 1] (1 = every feature), "
                                 f"got {shown(self.probability)}")
        if self.filter_mb is None:
            pass
        elif not is_num(self.filter_mb) or not self.filter_mb * (1 << 20) >= 1:
            raise ParameterError(f"admit_filter_mb must be a number of MiB >= 1 byte (e.g. 16), "
                                 f"got {shown(self.filter_mb)}")
        elif self.filter_mb * (1 << 20) > _MAX_FILTER_BYTES:
            raise ParameterError(f"admit_filter_mb must be at most {_MAX_FILTER_BYTES >> 20:,} MiB, "
                                 f"got {shown(self.filter_mb)}")
        if self.after > 1 and self.probability < 1:
            raise ParameterError("give either admit_after (a counting filter) or admit_probability (Poisson "
                                 "inclusion), not both")

    @property
    def active(self) -> bool:
        return self.after > 1 or self.probability < 1

    def sized(self, rows: int) -> AdmitPolicy:
        """This policy with the default filter size resolved for ``rows`` training rows (the
        power of two at or above ``rows`` bytes, within 64 KiB..256 MiB)."""
        if self.filter_mb is not None or self.after <= 1:
            return self
        size = min(max(1 << max(int(rows) - 1, 1).bit_length(), MIN_AUTO_FILTER_BYTES), MAX_AUTO_FILTER_BYTES)
        return replace(self, filter_mb=size / (1 << 20))

    @property
    def filter_bytes(self) -> int:
        """Bytes of the counting filter: 0 unless ``after > 1``; else ``filter_mb`` MiB rounded
        down to a power of two."""
        if self.after <= 1:
            return 0
        if self.filter_mb is None:
            raise ValueError("the filter size is resolved from the rows: call sized() first")
        return 1 << int(math.floor(math.log2(self.filter_mb * (1 << 20))))

    @property
    def threshold(self) -> int:
        """Poisson mode admits a sighting when its 64-bit hash is below this."""
        return min(int(self.probability * 2.0 ** 64), (1 << 64) - 1)

    def to_dict(self) -> dict[str, Any]:
        """The model's params entries: nothing when off (so the model is the one trained
        without admission, byte for byte)."""
        if self.after > 1:
            return {"admit_after": int(self.after),
                    "admit_filter_mb": None if self.filter_mb is None else float(self.filter_mb)}
        if self.probability < 1:
            return {"admit_probability": float(self.probability)}
        return {}


def policy_of(admit_after: int | None = None, admit_probability: float | None = None,
              admit_filter_mb: float | None = None) -> AdmitPolicy:
    """The policy of the ``train`` arguments (None = default); both admission options at once
    is a :class:`ParameterError`."""
    return AdmitPolicy(1 if admit_after is None else admit_after,
                       1.0 if admit_probability is None else admit_probability, admit_filter_mb)


class Admission:
    """The admission state of one :class:`~sparsecross.state.FTRLState` (``state.admission``):
    the counting filter (``uint8[bytes]``, empty in Poisson mode), the kernel configuration
    ``cfg`` (``uint64[5]``, see ``_kernels/admit.py``) and the counters ``counts``
    (``int64[2]``: features admitted, sightings rejected)."""

    def __init__(self, policy: AdmitPolicy, seed: int) -> None:
        if not policy.active:
            raise ValueError("Admission needs an active policy")
        self.policy = policy
        self.seed = int(seed)
        self.filter = np.zeros(policy.filter_bytes, dtype=np.uint8)
        self.counts = np.zeros(2, dtype=np.int64)
        self.cfg = np.array([policy.after, policy.threshold, fmix64(xxh64(b"admit-filter", self.seed)), 0, 0],
                            dtype=np.uint64)
        self.begin_epoch(0)

    def begin_epoch(self, epoch: int) -> None:
        """Seed the Poisson hash for epoch ``epoch`` (0-based): the same row admits afresh in
        every epoch."""
        self.cfg[3] = np.uint64(xxh64(b"admit-sighting", (self.seed + int(epoch)) & ((1 << 64) - 1)))

    def at_row(self, row0: int) -> np.ndarray:
        """``cfg`` for a chunk whose first row is at position ``row0`` of the epoch's order."""
        self.cfg[4] = np.uint64(row0)
        return self.cfg

    @property
    def admitted(self) -> int:
        return int(self.counts[0])

    @property
    def rejected(self) -> int:
        return int(self.counts[1])

    @property
    def nbytes(self) -> int:
        return int(self.filter.nbytes + self.counts.nbytes + self.cfg.nbytes)

    def copy(self) -> Admission:
        other = Admission.__new__(Admission)
        other.policy, other.seed = self.policy, self.seed
        other.filter, other.counts, other.cfg = self.filter.copy(), self.counts.copy(), self.cfg.copy()
        return other

    def stats(self) -> dict[str, int]:
        """``model.stats`` entries (deterministic: the same for any batch size or resume)."""
        return {"admitted_features": self.admitted, "rejected_sightings": self.rejected,
                "admit_filter_bytes": int(self.filter.nbytes)}

    # ------------------------------------------------------------ checkpoint
    def arrays(self) -> dict[str, np.ndarray]:
        """The members a checkpoint stores."""
        return {"admit_filter": self.filter, "admit_counts": self.counts}

    @classmethod
    def from_arrays(cls, policy: AdmitPolicy, seed: int, filt: np.ndarray, counts: np.ndarray) -> Admission:
        """Rebuild from checkpoint arrays already checked by :func:`check_arrays`."""
        adm = cls(policy, seed)
        adm.filter = np.ascontiguousarray(filt, dtype=np.uint8)
        adm.counts = np.ascontiguousarray(counts, dtype=np.int64)
        return adm


def check_arrays(policy: AdmitPolicy, filt: np.ndarray | None, counts: np.ndarray | None) -> str | None:
    """What is wrong with a checkpoint's admission arrays for ``policy`` (None: sound).  Checks
    presence, dtype, shape, the filter's size (the kernels mask positions with it) and that the
    counters agree with the counts (each sighting raises at most two counters from zero)."""
    if not policy.active:
        return None if filt is None and counts is None else "it holds an admission filter, this run admits every feature"
    if filt is None or counts is None:
        return "it has no admission filter and counters, this run admits features"
    if filt.dtype != np.uint8 or filt.ndim != 1:
        return f"its admission filter is {filt.dtype} of shape {filt.shape}, expected 1-d uint8"
    if filt.shape[0] != policy.filter_bytes:
        return f"its admission filter has {filt.shape[0]:,} bytes, this run's has {policy.filter_bytes:,}"
    if counts.dtype != np.int64 or counts.shape != (2,):
        return f"its admission counts are {counts.dtype} of shape {counts.shape}, expected int64 (2,)"
    if int(counts.min()) < 0:
        return f"its admission counts {counts.tolist()} are negative"
    if filt.shape[0]:
        nonzero = int(np.count_nonzero(filt & 15)) + int(np.count_nonzero(filt >> 4))
        if nonzero > 2 * (int(counts[0]) + int(counts[1])):
            return (f"its admission filter has {nonzero:,} nonzero counters, more than two per sighting "
                    f"counted ({int(counts[0]) + int(counts[1]):,})")
    return None
