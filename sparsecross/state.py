"""FTRLState: per-coordinate (z, n) for touched coordinates only, in an open-addressing table.

Memory is proportional to the number of *touched* coordinates, never to ``2**bits`` or to the
column space.  A slot is one row ``(key, z, n)`` of a ``(capacity, 3)`` array, so a lookup
touches one cache line: 12 bytes (uint32 key, float32 z and n) in the default compact layout,
24 bytes (uint64, float64) when ``state_dtype="float64"`` or when column ids need more than
32 bits.  The table grows when it is ``MAX_LOAD`` full: it doubles, or (``GrowthPlan``, used by
``train``) grows at once to the key count projected for the rest of the epoch, so it is usually
35-70% full: 17-34 bytes per touched feature in the compact layout (less full, for a while,
after a projected growth).  It grows in place: its buffer is extended (``realloc``, which moves
the pages of a large block without copying them on Linux/glibc) and rehashed within itself, so a
growth holds the new table, not the old and the new one (:func:`realloc_may_copy`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ._kernels.ftrl import FTRLParams, count_nonzero, export_weights, state_margins, weight
from ._kernels.table import empty_table, first_empty, rehash, rehash_in_place
from .errors import CheckpointError, ParameterError, shown_path
from .files import atomic_output

if TYPE_CHECKING:
    from .admission import Admission

__all__ = ["FTRLState", "GrowthPlan", "MAX_LOAD", "REALLOC_MOVES_FROM", "realloc_may_copy"]

MAX_LOAD = 0.7
_MIN_CAPACITY = 1 << 10
#: glibc serves every block of at least 32 MiB (the ceiling of its dynamic ``M_MMAP_THRESHOLD``
#: on 64-bit) with its own ``mmap``, and ``realloc`` of such a block calls ``mremap``: the pages
#: are remapped, never copied.  A smaller block may sit in the heap, where ``realloc`` may copy.
REALLOC_MOVES_FROM = 32 << 20


@functools.lru_cache(maxsize=1)
def _glibc() -> bool:
    return platform.libc_ver()[0] == "glibc"


def realloc_may_copy(nbytes: int) -> bool:
    """Whether growing a numpy buffer of ``nbytes`` may hold the old and the new block at once:
    always, except on Linux with glibc for a block of at least :data:`REALLOC_MOVES_FROM` bytes
    (and the mmap threshold not set through the environment)."""
    if nbytes < REALLOC_MOVES_FROM or not sys.platform.startswith("linux"):
        return True
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return True
    return not _glibc()


#: Tables from this size on are kept on transparent huge pages (numpy's own threshold): a
#: random lookup in a table larger than the TLB's reach with 4 KiB pages walks the page table
#: (measured: 10M rows trained 1.3-1.5x slower, in CPU time, on a grown 96 MiB table of
#: 4 KiB pages).
HUGE_PAGES_FROM = 4 << 20
_MADV_HUGEPAGE = 14


@functools.lru_cache(maxsize=1)
def _madvise() -> Any:
    """libc's ``madvise`` through ctypes (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # pragma: no cover - no libc symbol
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def advise_huge_pages(table: np.ndarray) -> bool:
    """Ask Linux to back ``table`` (C-contiguous, owning its buffer) with transparent huge pages
    (``madvise(MADV_HUGEPAGE)``, what THP's ``madvise`` mode needs) over every page it touches.

    numpy advises only the 2 MiB-aligned middle of a new buffer, which splits its mapping in
    three; ``realloc`` (``mremap``) of such a buffer, or of one never advised (a table that
    outgrew the heap), gives a mapping without the advice, whose new pages are 4 KiB pages.
    Advising whole pages keeps one mapping with the advice, so the pages an in-place growth
    adds come as huge pages.  Advisory only: nothing changes but page sizes.  Returns whether
    the advice was given (Linux, at least :data:`HUGE_PAGES_FROM` bytes)."""
    fn = _madvise()
    if fn is None or table.nbytes < HUGE_PAGES_FROM or not table.flags.c_contiguous:
        return False
    page = 4096
    lo = table.ctypes.data & ~(page - 1)
    hi = (table.ctypes.data + table.nbytes + page - 1) & ~(page - 1)
    return fn(lo, hi - lo, _MADV_HUGEPAGE) == 0


def word_dtype_for(n_columns: int, dtype: str) -> np.dtype:
    """uint32 words (float32 z, n) when the state is float32 and every column id fits below
    the all-ones marker; uint64 words (float64 z, n) otherwise."""
    if dtype == "float32" and n_columns < (1 << 32) - 1:
        return np.dtype(np.uint32)
    return np.dtype(np.uint64)


def _float_of(word: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if word == np.dtype(np.uint32) else np.dtype(np.float64)


def sorted_nonzero(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, float64 weights) of the coordinates with ``|z| > l1``, in any order -> sorted
    uint64 keys and float32 weights, without the weights that round to 0 in float32."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    w32 = weights[order].astype(np.float32)
    keep = w32 != 0
    return keys[keep], w32[keep]


def evicted_counts(arr: np.ndarray) -> tuple[int, int]:
    """(features evicted, eviction sweeps) from a saved ``evicted`` array; (-1, -1) when it is
    not two integers with ``0 <= sweeps <= features``."""
    if arr.shape != (2,) or arr.dtype.kind not in "iu":
        return -1, -1
    features, sweeps = int(arr[0]), int(arr[1])
    if not 0 <= sweeps <= features:
        return -1, -1
    return features, sweeps


class FTRLState:
    """Training state of FTRL-Proximal over the touched coordinates.

    Parameters
    ----------
    n_columns
        Width of the column space (only used to choose the key width).
    dtype
        ``"float32"`` (default: 12 bytes per slot with uint32 keys) or ``"float64"`` (exact
        agreement with a float64 reference implementation).  float32 falls back to float64
        when column ids need more than 32 bits.
    capacity
        Initial number of slots (rounded up to a power of two).
    """

    def __init__(self, n_columns: int, dtype: str = "float32", capacity: int = _MIN_CAPACITY) -> None:
        if dtype not in ("float32", "float64"):
            raise ParameterError(f"state dtype must be 'float32' or 'float64', got {dtype!r}")
        self.n_columns = int(n_columns)
        self.dtype = dtype
        cap = _MIN_CAPACITY
        while cap < capacity:
            cap *= 2
        self.table = empty_table(cap, 3, word_dtype_for(self.n_columns, dtype))
        advise_huge_pages(self.table)
        self.values = self._view(self.table)
        self.count = np.zeros(1, dtype=np.int64)
        self.bias = np.zeros(2, dtype=np.float64)

    #: Bits of a stored z and n: 32 (this class), 16 (:class:`~sparsecross.state16.State16`).
    bits = 32

    def _view(self, table: np.ndarray) -> np.ndarray:
        """The array the kernels read and write the values of ``table`` through: its float view."""
        return table.view(_float_of(table.dtype))

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based); nothing for a float state."""

    def grow_side(self, row_nnz: int) -> bool:
        """Grow a side array the next row needs (True if one grew); a float state has none."""
        return False

    def _side_arrays(self) -> dict[str, np.ndarray]:
        """Arrays a checkpoint holds besides the table (none for a float state)."""
        return {}

    def _copy_side(self, other: FTRLState) -> None:
        """Copy into ``other`` what :meth:`copy` does not (nothing for a float state)."""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without ``values`` (a view of ``table``: pickle would store a second copy
        that no longer shares memory with the table) and without ``growth_log`` (timings: two
        equal states must pickle to the same bytes)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("values", "growth_log")}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        if not self.table.flags.owndata:  # unpickled data live in the pickle's bytes: resizable copy
            self.table = np.array(self.table, order="C")
        advise_huge_pages(self.table)
        self.values = self._view(self.table)

    # ---------------------------------------------------------------- sizing
    @property
    def capacity(self) -> int:
        return int(self.table.shape[0])

    @property
    def keys(self) -> np.ndarray:
        """Key of every slot (a strided view; all ones = empty)."""
        return self.table[:, 0]

    @property
    def zn(self) -> np.ndarray:
        """(z, n) of every slot (a strided float view)."""
        return self.values[:, 1:3]

    @property
    def touched(self) -> int:
        """Number of coordinates that have state (were seen at least once)."""
        return int(self.count[0])

    @property
    def max_count(self) -> int:
        return int(self.capacity * MAX_LOAD)

    @property
    def nbytes(self) -> int:
        """Bytes held by the state, the one count of them (the state budget bounds it): the
        table (keys + z + n, empty slots included), :attr:`fixed_bytes` and :attr:`side_bytes`."""
        return int(self.table.nbytes) + self.fixed_bytes + self.side_bytes

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the table: the bias and the admission filter."""
        adm = 0 if self.admission is None else self.admission.nbytes
        return int(self.bias.nbytes) + int(adm)

    @property
    def side_bytes(self) -> int:
        """Bytes of side arrays that grow apart from the table (a 16-bit state's ``zbig``; none here)."""
        return 0

    @property
    def bytes_peak(self) -> int:
        """The most bytes this state held at once (:attr:`nbytes`, and what a growth holds: the
        new table plus the old one when ``realloc`` may copy, or plus the few slots the in-place
        rehash sets aside), since it was made or restored from a checkpoint."""
        return max(self._peak, self.nbytes)

    def note_peak(self, nbytes: int) -> None:
        """Raise :attr:`bytes_peak` to ``nbytes`` (a restored checkpoint's peak, a growth's)."""
        self._peak = max(self._peak, int(nbytes))

    #: Number of times :meth:`grow` ran on this state (diagnostics; not saved).
    growths = 0
    #: One ``(old capacity, new capacity, keys, how, seconds)`` per growth (diagnostics; not
    #: in checkpoints or pickles): ``how`` is ``"realloc"`` (the buffer resized by realloc, which
    #: may move it), ``"new_block"`` (a new
    #: block, the old slots copied to its start, where realloc might copy anyway) or ``"copy"``
    #: (the copying fallback); ``seconds`` the wall time of the growth, rehash included.
    growth_log: tuple[tuple[int, int, int, str, float], ...] = ()
    #: State budget (:mod:`sparsecross.budget`): the table never grows past this many slots
    #: (0: no limit); at it, :meth:`make_room` evicts instead.
    max_capacity = 0
    #: Features evicted by the budget, and eviction sweeps, over the state's life (saved).
    evicted_features = 0
    evictions = 0

    @property
    def at_budget(self) -> bool:
        """True when the table has its budget's largest capacity (it cannot grow)."""
        return 0 < self.max_capacity <= self.capacity
    #: Admission filter and counters (:class:`~sparsecross.admission.Admission`), or None:
    #: every feature is admitted.
    admission: Admission | None = None
    _peak = 0

    def grow(self, needed: int = 0) -> None:
        """Double the capacity (or more, to fit ``needed`` more keys) and rehash; never past
        ``max_capacity`` when there is a budget.

        In place (:meth:`_grow_in_place`): the table's buffer is extended (``realloc``) and the
        keys rehashed within it, so the old and the new table are not both held (see
        :func:`realloc_may_copy` for when ``realloc`` itself still copies)."""
        cap = self.capacity * 2
        while int(cap * MAX_LOAD) < self.touched + needed:
            cap *= 2
        if self.max_capacity:
            assert self.capacity < self.max_capacity, "grow() at the budget: make_room() instead"
            cap = min(cap, self.max_capacity)
        t0, old_cap = time.perf_counter(), self.capacity
        how = self._grow_in_place(cap)
        if not how:
            how = "copy"
            table = empty_table(cap, self.table.shape[1], self.table.dtype)
            advise_huge_pages(table)
            values = table.view(self.values.dtype)
            self.note_peak(self.nbytes + table.nbytes)
            moved = rehash(self.table, self.values, table, values)
            assert moved == self.touched
            self.table, self.values = table, values
        self.growths += 1
        self.growth_log += ((old_cap, cap, self.touched, how, time.perf_counter() - t0),)

    def _grow_in_place(self, cap: int) -> str:
        """Extend the table to ``cap`` slots within its own buffer and rehash it there
        (:func:`~sparsecross._kernels.table.rehash_in_place`).  Returns how (``"new_block"`` or
        ``"realloc"``, see :attr:`growth_log`), or ``""``, with nothing changed, when the buffer
        cannot be resized (it is a view, or another array views it).

        Held at once: the new table, the copy of the cluster at slot 0 that the rehash sets
        aside (a few slots), and the old table too when ``realloc`` may copy."""
        old_cap, old_bytes = self.capacity, self.table.nbytes
        table = self.table
        if not (table.flags.owndata and table.flags.c_contiguous):
            return ""
        fixed = self.nbytes - old_bytes
        if realloc_may_copy(old_bytes) and cap * table.shape[1] * table.itemsize >= HUGE_PAGES_FROM:
            # realloc may copy the block anyway, into pages faulted before any advice (4 KiB
            # pages): take a new numpy block instead (huge pages from the first touch), holding
            # the old slots at its start as a realloc would.  Same rehash, same slots.
            table = np.zeros((cap, table.shape[1]), dtype=table.dtype)
            advise_huge_pages(table)
            table[:old_cap] = self.table
            how = "new_block"
        else:
            how = "realloc"
            advise_huge_pages(table)  # before the resize: the grown mapping keeps the advice
            # numpy refuses (refcheck) to resize an array referenced more than by the caller:
            # drop our own references (the float view counts as one) and keep only ``table``.
            self.table = self.values = None  # type: ignore[assignment]
            try:
                table.resize((cap, table.shape[1]), refcheck=True)  # new slots: zeros
            except ValueError:  # someone else holds a view (or a weak reference) of the table
                self.table, self.values = table, self._view(table)
                return ""
            advise_huge_pages(table)
        self.table, self.values = table, self._view(table)
        e = int(first_empty(table, old_cap))  # realloc kept the old slots: a valid old table
        stash = table[:e].copy()  # after the resize: never held with a copying realloc's old block
        self.note_peak(fixed + table.nbytes + max(old_bytes if realloc_may_copy(old_bytes) else 0, stash.nbytes))
        table[old_cap:, 0] = np.iinfo(table.dtype).max
        placed = rehash_in_place(table, self.values, old_cap, e, stash, stash.view(self.values.dtype))
        assert placed == self.touched
        return how

    def make_room(self, row_nnz: int, params: FTRLParams) -> int:
        """At the budget: evict features so that a row of ``row_nnz`` keys fits (see
        :func:`sparsecross.budget.make_room`).  Returns the number evicted."""
        from .budget import make_room

        return make_room(self, row_nnz, params.l1)

    # ---------------------------------------------------------------- views
    def as_dict(self) -> dict[int, tuple[float, float]]:
        """key -> (z, n) for every touched coordinate (for tests and debugging)."""
        occ = self.keys != np.iinfo(self.table.dtype).max
        return {int(k): (float(z), float(n)) for k, (z, n) in zip(self.keys[occ], self.zn[occ])}

    def margins(self, X: Any, params: FTRLParams) -> np.ndarray:
        """Margins of CSR rows ``X`` under the current weights (no update)."""
        return state_margins(X.indptr, X.indices, X.data, self.table, self.values, self.bias, params)

    def nonzero_weights(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray]:
        """(sorted uint64 keys, float32 weights) of the coordinates with ``|z| > l1`` whose
        weight is nonzero in float32."""
        return sorted_nonzero(*export_weights(self.table, self.values, params))

    def count_nonzero(self, params: FTRLParams) -> int:
        """Live nonzero weights (touched coordinates with |z| > l1); O(capacity)."""
        return int(count_nonzero(self.table, self.values, params.l1))

    def bias_weight(self, params: FTRLParams) -> float:
        z, n = self.bias
        return float(weight(float(z), float(n), params.alpha, params.beta, 0.0, 0.0))

    def copy(self) -> FTRLState:
        other = type(self).__new__(type(self))
        other.n_columns, other.dtype = self.n_columns, self.dtype
        other.table = self.table.copy()
        advise_huge_pages(other.table)
        other.values = other._view(other.table)
        self._copy_side(other)
        other.count, other.bias = self.count.copy(), self.bias.copy()
        other.max_capacity = self.max_capacity
        other.evicted_features, other.evictions = self.evicted_features, self.evictions
        if self.admission is not None:
            other.admission = self.admission.copy()
        return other

    # ------------------------------------------------------------ checkpoint
    def save(self, path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
        """Write the state and ``meta`` (JSON-able) atomically to ``path`` (an ``.npz``)."""
        meta_bytes = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        extra = {} if self.admission is None else self.admission.arrays()
        extra.update(self._side_arrays())
        with atomic_output(path, "checkpoint", CheckpointError) as fh:
            np.savez(fh, table=self.table, count=self.count, bias=self.bias, meta=meta_bytes,
                     evicted=np.array([self.evicted_features, self.evictions], dtype=np.int64),
                     n_columns=np.array([self.n_columns], dtype=np.int64),
                     dtype=np.frombuffer(self.dtype.encode(), dtype=np.uint8), **extra)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[FTRLState, dict[str, Any]]:
        """Read a state written by :meth:`save` as untrusted input, with the checks of
        :func:`sparsecross.checkpoint.read_checkpoint` (no pickle, no decompression, every
        ``.npy`` header checked; a damaged file is a :class:`CheckpointError`). Returns
        (state, meta), without the admission filter (its policy is the run's: resuming reads,
        checks and attaches it).  The values are not checked (see ``validate_checkpoint``)."""
        from .checkpoint import read_checkpoint  # it builds on this module

        st, meta = read_checkpoint(path, refuse=_not_a_saved_state)
        vars(st).pop("admission_arrays", None)
        cap = st.capacity
        if st.bits != 32:
            raise CheckpointError(f"{shown_path(path)} holds a {st.bits}-bit state, which FTRLState.load does not "
                                  "read (sparsecross.checkpoint.read_checkpoint does)")
        if cap < 1 or cap & (cap - 1):
            raise _not_a_saved_state(path, f"its table capacity {cap:,} is not a power of two")
        advise_huge_pages(st.table)
        return st, meta


def _not_a_saved_state(path: str | os.PathLike[str], what: str) -> CheckpointError:
    """The refusal of a file given to :meth:`FTRLState.load` (a checkpoint's says to delete its
    folder)."""
    return CheckpointError(f"{shown_path(path)} is not a valid saved state (damaged, or not from this version "
                           f"of sparsecross): {what}")


class GrowthPlan:
    """How much a growing table should grow, from the run's own distinct-key curve.

    Doubling from 1,024 slots takes 13 growths to reach 8M slots (4.3M keys after 10M rows of
    the benchmark data), each holding the old and the new table at once.  Instead, at each
    growth the number of distinct keys is projected from the exact ``(row, touched)`` points
    seen so far (the end of every batch and every growth) with Heaps' law ``touched ~ rows**b``:
    the exponent over the last doubling of rows, declining as fast as it declined over the
    doubling before (never rising), out to at most ``HORIZON`` times the rows seen and never past
    the end of the epoch.  The table then grows once to hold that many keys (always at least
    doubling), so a run grows a handful of times and its last growth holds the final table plus
    a much smaller old one.  Sizing never changes a result: the state, the progressive loss and
    the model are the same bits whatever the capacity (slot positions differ, values do not).

    The projection cannot foresee a key space that stops growing abruptly; ``HORIZON`` bounds
    the over-allocation then to one growth of at most ``HORIZON`` times the rows' keys.
    """

    HORIZON = 8.0

    def __init__(self, rows_total: int) -> None:
        self.rows_total = int(rows_total)
        self.points: list[tuple[int, int]] = []

    def observe(self, row: int, touched: int) -> None:
        """``touched`` distinct keys after the first ``row`` rows (in row order)."""
        if row > 0 and touched > 0 and (not self.points or row > self.points[-1][0]):
            self.points.append((int(row), int(touched)))

    def _before(self, row: int) -> tuple[int, int] | None:
        """The latest point at or before half of ``row``."""
        for p in reversed(self.points):
            if 2 * p[0] <= row:
                return p
        return None

    def projected(self, row: int, touched: int) -> int:
        """Projected distinct keys at ``min(rows_total, HORIZON * row)`` rows (``touched`` when
        the history is too short to tell)."""
        target = min(float(self.rows_total), self.HORIZON * row)
        a = self._before(row)
        if a is None or target <= row or touched <= a[1]:
            return touched
        la, lt = math.log(row / a[0]), math.log(touched / a[1])
        slope = min(1.0, lt / la)  # Heaps' exponent over the last doubling of rows
        curve = 0.0
        b = self._before(a[0])
        if b is not None and a[1] > b[1]:
            prev = min(1.0, math.log(a[1] / b[1]) / math.log(a[0] / b[0]))
            # change of the exponent per unit of log(rows), between the middles of the intervals
            curve = min(0.0, (slope - prev) / (0.5 * (la + math.log(a[0] / b[0]))))
        d = math.log(target / row)
        slope_now = max(0.0, slope + curve * 0.5 * la)  # the exponent at `row`
        if curve < 0:
            d = min(d, -slope_now / curve)  # no further than where the exponent reaches 0
        growth = max(0.0, slope_now * d + 0.5 * curve * d * d)
        return int(math.ceil(touched * math.exp(growth)))
