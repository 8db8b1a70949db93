"""State16: the FTRL training state in 16-bit forms (``state_bits=16``; ``docs/STATE16.md``).

A slot is ``uint32[2]``: the key, and one word packing ``v = z / D(n)`` in q2.13 (or an index
into ``zbig``) with ``sqrt(n)`` as a half (layout: ``_kernels/half.py``): 8 bytes instead of
12.  A key whose stored ``sqrt(n)`` passes 16 is *promoted*: its z is kept in float32 in the
side array ``zbig`` (at most 65,536 keys: the frequent few; past that, keys stay in q2.13 and
``zstats[1]`` counts them).  ``zbig`` grows by doubling from 256 entries, at row boundaries.

Every stored value is rounded randomly (unbiased) with uniforms hashed from (key, the row's
position in the epoch's order, a salt of the spec's seed and the epoch), so the state is the
same, bit for bit, at any batch size and after a resume.  Measured cost: test logloss within
0.01% of the float32 state (``docs/STATE16.md``).

Everything that reads a state works on it (margins, nonzero counts, export, growth in place,
checkpoints, admission, the state budget's eviction); the exported model is unchanged (float32
weights).  Not available: float64 state, column spaces of 2**32 - 1 columns or more, Dask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._kernels.ftrl import FTRLParams, state_margins
from ._kernels.ftrl16 import compact_zbig, count_nonzero16, decode_state, export_weights16, ftrl16_pass
from ._kernels.half import HALF_MAX_BITS, PROMOTE_SQRT_N, ZBIG_MAX
from ._kernels.table import empty_table
from .errors import ParameterError, shown
from .hashing import xxh64
from .state import _MIN_CAPACITY, FTRLState, sorted_nonzero

__all__ = ["State16", "STATE_BITS", "check_state_bits", "new_state", "problems16", "ZBIG_START"]

#: The values ``state_bits`` takes.
STATE_BITS = (32, 16)
#: First length of ``zbig`` (1 KiB); it doubles up to ``ZBIG_MAX``.
ZBIG_START = 256
#: Most bytes ``zbig`` holds at once: its largest length, plus the half-length copy a growth holds.
ZBIG_PEAK_BYTES = (ZBIG_MAX + ZBIG_MAX // 2) * 4


def check_state_bits(state_bits: Any, state_dtype: str = "float32") -> int:
    """``state_bits`` (32 or 16) after checking it, and that 16 goes with a float32 state.

    Raises
    ------
    ParameterError
        Another value, or 16 with ``state_dtype="float64"``."""
    if isinstance(state_bits, bool) or state_bits not in STATE_BITS:
        raise ParameterError(f"state_bits must be 32 or 16, got {shown(state_bits)}")
    if state_bits == 16 and state_dtype != "float32":
        raise ParameterError(f"state_bits=16 stores z and n in 16 bits; it does not go with state_dtype "
                             f"{state_dtype!r}: use state_dtype='float32'")
    return int(state_bits)


def new_state(n_columns: int, state_dtype: str = "float32", state_bits: int = 32, seed: int = 0) -> FTRLState:
    """An empty state: :class:`FTRLState` (32 bits) or :class:`State16` (16 bits, rounding
    seeded by ``seed``, the spec's hashing seed)."""
    if check_state_bits(state_bits, state_dtype) == 16:
        return State16(n_columns, seed=seed)
    return FTRLState(n_columns, state_dtype)


class State16(FTRLState):
    """FTRL state with z and n in 16 bits (see the module docstring).

    Parameters
    ----------
    n_columns
        Width of the column space: below ``2**32 - 1`` (uint32 keys).
    capacity
        Initial number of slots (rounded up to a power of two).
    seed
        Seeds the randomized rounding (with the epoch: :meth:`begin_epoch`).
    """

    bits = 16

    def __init__(self, n_columns: int, capacity: int = _MIN_CAPACITY, seed: int = 0) -> None:
        if int(n_columns) >= (1 << 32) - 1:
            raise ParameterError(f"state_bits=16 needs column ids below 2**32 - 1 (uint32 keys); this spec has "
                                 f"{int(n_columns):,} columns: use state_bits=32")
        self.n_columns = int(n_columns)
        self.dtype = "float32"
        cap = _MIN_CAPACITY
        while cap < capacity:
            cap *= 2
        self.table = empty_table(cap, 2, np.dtype(np.uint32))
        self.values = self.table
        self.count = np.zeros(1, dtype=np.int64)
        self.bias = np.zeros(2, dtype=np.float64)
        self.zbig = np.zeros(ZBIG_START, dtype=np.float32)
        self.zstats = np.zeros(4, dtype=np.int64)
        self.seed = int(seed)
        self.rr_cfg = np.zeros(2, dtype=np.uint64)
        self.begin_epoch(0)

    def _view(self, table: np.ndarray) -> np.ndarray:
        return table  # the kernels read and write the packed words themselves

    def begin_epoch(self, epoch: int) -> None:
        """Seed the rounding for epoch ``epoch`` (0-based): a row's update numbers repeat in
        every epoch, the salt does not."""
        self.rr_cfg[0] = np.uint64(xxh64(b"state16-rounding", (self.seed + int(epoch)) & ((1 << 64) - 1)))

    # ---------------------------------------------------------------- sizing
    @property
    def side_bytes(self) -> int:
        """Bytes of ``zbig`` now (counted in :attr:`nbytes`, so by the budget, with the table)."""
        return int(self.zbig.nbytes)

    #: What the budget reserves for ``zbig``: its most bytes at once (:data:`ZBIG_PEAK_BYTES`).
    side_bytes_max = ZBIG_PEAK_BYTES

    @property
    def promoted(self) -> int:
        """Keys whose z is in ``zbig``."""
        return int(self.zstats[0])

    def stats(self) -> dict[str, int]:
        """``model.stats`` entries of the 16-bit state, from ``zstats`` (the same at any batch
        size and after a resume): features whose z is held in float32 (``zbig``), features that
        passed sqrt(n) > 16 while ``zbig`` was full (their z stays in q2.13), updates whose
        ``v = z / D(n)`` fell outside the int16 codes' range [-4, 4 - 2**-13] and was clipped,
        and updates whose sqrt(n) reached the half's largest value (65504) and saturated."""
        promoted, refused, clips, saturations = (int(v) for v in self.zstats)
        return {"promoted_features": promoted, "refused_promotions": refused, "q213_clips": clips,
                "sqrt_n_saturations": saturations}

    def grow_side(self, row_nnz: int) -> bool:
        """Double ``zbig`` (up to ``ZBIG_MAX``) when a row of ``row_nnz`` keys could promote
        past its length (the kernel stops before such a row).  True if it grew."""
        n = len(self.zbig)
        if n >= ZBIG_MAX or self.zstats[0] + row_nnz <= n:
            return False
        m = n
        while m < ZBIG_MAX and self.zstats[0] + row_nnz > m:
            m *= 2
        self.note_peak(self.nbytes + 4 * min(m, ZBIG_MAX))
        zbig = np.zeros(min(m, ZBIG_MAX), dtype=np.float32)
        zbig[:n] = self.zbig
        self.zbig = zbig
        return True

    # ---------------------------------------------------------------- training
    def train_rows(self, X: Any, y: np.ndarray, sw: np.ndarray, row_mask: np.ndarray, start: int,
                   params: FTRLParams, acc: np.ndarray, filt: np.ndarray, cfg: np.ndarray, counts: np.ndarray,
                   position: int) -> int:
        """``ftrl16_pass`` over rows ``start..`` of CSR ``X`` whose row 0 is at ``position`` of
        the epoch's order.  Returns the first row not processed (see the kernel)."""
        self.rr_cfg[1] = np.uint64(position)
        return int(ftrl16_pass(X.indptr, X.indices, X.data, y, sw, row_mask, start, self.table, self.count,
                               self.max_count, self.bias, params, acc, filt, cfg, counts, self.zbig, self.zstats,
                               self.rr_cfg))

    def make_room(self, row_nnz: int, params: FTRLParams) -> int:
        """At the budget: evict as :meth:`FTRLState.make_room` (ranks from the decoded z and
        n), then give the evicted keys' ``zbig`` entries back."""
        from .budget import make_room

        dp = np.array([params.alpha, params.beta, params.l2], dtype=np.float64)
        removed = make_room(self, row_nnz, params.l1, vals=(self.table, self.zbig, dp))
        compact_zbig(self.table, self.zbig, self.zstats)
        return removed

    # ---------------------------------------------------------------- views
    @property
    def zn(self) -> np.ndarray:
        raise AttributeError("a 16-bit state has no (z, n) array: use decoded(params)")

    def decoded(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(keys uint64, z float64, n float64) of every touched coordinate, in slot order."""
        return decode_state(self.table, self.zbig, params)

    def as_dict(self, params: FTRLParams | None = None) -> dict[int, tuple[float, float]]:  # type: ignore[override]
        """key -> (z, n) for every touched coordinate (decoding z needs the run's ``params``)."""
        if params is None:
            raise ParameterError("a 16-bit state decodes z with alpha, beta and l2: as_dict(params)")
        keys, z, n = self.decoded(params)
        return {int(k): (float(a), float(b)) for k, a, b in zip(keys, z, n)}

    def margins(self, X: Any, params: FTRLParams) -> np.ndarray:
        return state_margins(X.indptr, X.indices, X.data, self.table, (self.table, self.zbig), self.bias, params)

    def nonzero_weights(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray]:
        return sorted_nonzero(*export_weights16(self.table, self.zbig, params))

    def count_nonzero(self, params: FTRLParams) -> int:
        return int(count_nonzero16(self.table, self.zbig, params))

    def _copy_side(self, other: FTRLState) -> None:
        assert isinstance(other, State16)
        other.zbig, other.zstats = self.zbig.copy(), self.zstats.copy()
        other.seed, other.rr_cfg = self.seed, self.rr_cfg.copy()

    # ------------------------------------------------------------ checkpoint
    def _side_arrays(self) -> dict[str, np.ndarray]:
        return {"state_bits": np.array([16], dtype=np.int64), "zbig": self.zbig, "zstats": self.zstats}

    @classmethod
    def load(cls, path: Any) -> tuple[FTRLState, dict[str, Any]]:
        raise NotImplementedError("read a 16-bit state with sparsecross.checkpoint.read_checkpoint")

    @classmethod
    def from_arrays(cls, n_columns: int, table: np.ndarray, count: np.ndarray, bias: np.ndarray,
                    zbig: np.ndarray, zstats: np.ndarray) -> State16:
        """A state over arrays read from a checkpoint (checked by ``checkpoint.validate_checkpoint``;
        the rounding seed is attached there)."""
        st = cls.__new__(cls)
        st.n_columns, st.dtype = int(n_columns), "float32"
        st.table = st.values = table
        st.count, st.bias = count, bias
        st.zbig, st.zstats = zbig, zstats
        st.seed = 0
        st.rr_cfg = np.zeros(2, dtype=np.uint64)
        st.begin_epoch(0)
        return st


def problems16(st: State16, slots: np.ndarray) -> str | None:
    """What is wrong with a 16-bit state read from a checkpoint (None: sound), given its occupied
    ``slots``: every ``sqrt(n)`` a finite half; ``zbig`` of 1..``ZBIG_MAX`` entries, ``zstats``
    non-negative with ``zstats[0]`` (entries used) <= its length; the promoted slots exactly
    ``zstats[0]``, with distinct indices below it and ``sqrt(n)`` past the threshold; the used
    entries finite.  (The kernels index ``zbig`` with the stored indices unchecked.)"""
    zbig, zs = st.zbig, st.zstats
    if not 1 <= len(zbig) <= ZBIG_MAX:
        return f"its zbig has {len(zbig):,} entries, expected 1 to {ZBIG_MAX:,}"
    if bool(np.any(zs < 0)) or int(zs[0]) > len(zbig):
        return f"its zstats {zs.tolist()} are not counts with zstats[0] <= {len(zbig):,} (zbig's length)"
    words = st.table[slots, 1]
    sbits = ((words >> np.uint32(16)) & np.uint32(0x7FFF)).astype(np.uint16)
    if bool(np.any(sbits > HALF_MAX_BITS)):
        return "a sqrt(n) is not a finite half"
    promoted = (words >> np.uint32(31)) == 1
    used = int(zs[0])
    idx = (words[promoted] & np.uint32(0xFFFF)).astype(np.int64)
    if len(idx) != used:
        return f"it has {len(idx):,} promoted keys, its zstats say {used:,}"
    if len(idx) and (int(idx.max()) >= used or len(np.unique(idx)) != len(idx)):
        return "a promoted key's zbig index is out of range or shared"
    if bool(np.any(sbits[promoted].view(np.float16) <= PROMOTE_SQRT_N)):
        return f"a promoted key has sqrt(n) <= {PROMOTE_SQRT_N:g}"
    if not bool(np.all(np.isfinite(zbig[:used]))):
        return "a promoted z is not finite"
    return None  # the bias is checked with the float state's
