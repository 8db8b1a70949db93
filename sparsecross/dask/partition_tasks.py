"""Worker tasks of partitioned training: route a chunk's rows to their lanes, pick one lane's
rows for another worker, and train a lane on its own state, which stays on its worker.

A lane's state lives in ``_LANES[(token, lane)]`` on the worker it is pinned to; a lane task
names the step it expects (``version``), marks the state as in use while it trains (a task
re-run after failing half-way finds it so, and the attempt restarts from the snapshot
instead of training twice), and reports the lane's shared keys (:mod:`.sharing`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from .._kernels.ftrl import FTRLParams
from .._kernels.lanes import fill_table, gather_zn, table_items, table_live_items
from .._kernels.partition import group_rows, row_lanes
from ..csr_rows import CSRRows
from ..errors import DataError, shown
from ..featurize import Batch, featurize_features
from ..labels import _labels
from ..spec import FeatureSpec
from ..state import FTRLState, GrowthPlan
from ..train_step import train_batch
from .partition import Partition
from .plan import _Chunk, _holdout_mask, _read_chunk
from .shards import _DROPPED, _dropped, _ShardLost
from .sharing import Report, Shared, merge_reports, sum_reports


@dataclass
class _RoutedPart:
    """Consecutive rows of a chunk to train, grouped by lane (lane j's rows are
    ``lane_ptr[j]:lane_ptr[j + 1]``, in row order); ``data`` of length 0 (with entries):
    values all 1 (its dtype is theirs); ``w`` of length 0: weights all 1.  Routing stores
    keys as uint32 and 0/1 labels as uint8 when they fit (the FTRL pass reads any integer
    types): a third of the bytes to write, keep and pick."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    y: np.ndarray
    w: np.ndarray
    lane_ptr: np.ndarray
    start_row: int
    shared: np.ndarray  # the distinct keys of the part's rows that no lane owns (int64, sorted)

    def rows_of(self, j: int) -> tuple[CSRRows, np.ndarray, np.ndarray | None]:
        """Lane j's rows: (X, y, sample weights or None)."""
        a, b = int(self.lane_ptr[j]), int(self.lane_ptr[j + 1])
        lo, hi = int(self.indptr[a]), int(self.indptr[b])
        data = self.data[lo:hi] if len(self.data) else _ones(hi - lo, self.data.dtype)
        X = CSRRows(self.indptr[a:b + 1] - lo, self.indices[lo:hi], data, (b - a, 0))
        return X, self.y[a:b], (self.w[a:b] if len(self.w) else None)

    def only(self, j: int) -> _RoutedPart:
        """This part with only lane j's rows (what travels to lane j's worker)."""
        X, y, w = self.rows_of(j)
        n = len(y)
        ptr = np.where(np.arange(len(self.lane_ptr)) > j, n, 0).astype(np.int64)
        data = X.data.copy() if len(self.data) else self.data
        return _RoutedPart(X.indptr, X.indices.copy(), data, y.copy(),
                           np.zeros(0) if w is None else w.copy(), ptr, self.start_row, self.shared)


@dataclass
class _Packed:
    """One lane's rows of a routed part, packed for the trip to the lane's worker (bytes
    between workers cost both ends CPU): row lengths as uint8 when every row has fewer than
    256 entries (else the indptr), keys as uint32 when they fit, no values when all are 1,
    labels as uint8 when all are 0 or 1 (76 -> 22 bytes per row of the benchmark's data).
    :meth:`unpack` gives the part back, array for array."""

    lengths: np.ndarray
    indices: np.ndarray
    data: np.ndarray | None
    y: np.ndarray
    w: np.ndarray
    dtypes: tuple[str, str, str]  # of indices, data and y
    lane: int
    lanes: int
    start_row: int
    shared: np.ndarray

    @staticmethod
    def of(p: _RoutedPart, j: int) -> _Packed:
        X, y, w = p.rows_of(j)
        lengths = np.diff(X.indptr)
        if not len(lengths) or lengths.max() < 256:
            lengths = lengths.astype(np.uint8)
        else:
            lengths = X.indptr.copy()
        idx = X.indices
        if idx.dtype != np.uint32:  # (routing narrowed them already when every key fits)
            idx = idx.astype(np.uint32) if len(idx) and 0 <= idx.min() and idx.max() < 2**32 else idx.copy()
        data = None if not len(p.data) or bool(np.all(X.data == 1)) else X.data.copy()
        dtypes = (X.indices.dtype.str, X.data.dtype.str, y.dtype.str)
        if y.dtype != np.uint8 and bool(np.all((y == 0) | (y == 1))):
            y = y.astype(np.uint8)
        return _Packed(lengths, idx, data, y, np.zeros(0) if w is None else w.copy(), dtypes,
                       j, len(p.lane_ptr) - 1, p.start_row, p.shared)

    def unpack(self) -> _RoutedPart:
        n = len(self.y)
        if self.lengths.dtype == np.uint8:
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(self.lengths, out=indptr[1:])
        else:
            indptr = self.lengths
        data = _ones(len(self.indices), np.dtype(self.dtypes[1])) if self.data is None else self.data
        ptr = np.where(np.arange(self.lanes + 1) > self.lane, n, 0).astype(np.int64)
        # (keys and labels stay narrow: the FTRL pass reads any integer keys and labels, and a
        # copy to the wide types would be fresh memory per row received)
        return _RoutedPart(indptr, self.indices, data, self.y, self.w, ptr, self.start_row, self.shared)


#: Values of all-ones rows, shared read-only by the unpacked parts of this process (grown
#: when a part needs more): no fresh memory per part.
_ONES: dict[str, np.ndarray] = {}


def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    buf = _ONES.get(dtype.str)
    if buf is None or len(buf) < n:
        buf = np.ones(max(n, 1 << 20), dtype=dtype)
        buf.flags.writeable = False
        _ONES[dtype.str] = buf
    return buf[:n]


def _nbytes(obj: object) -> int:
    """Bytes of the arrays of a routed part, a packed pick or a lane's report."""
    total = 64
    for v in vars(obj).values():
        if isinstance(v, np.ndarray):
            total += v.nbytes
        elif isinstance(v, tuple):
            total += sum(a.nbytes for a in v if isinstance(a, np.ndarray))
    return total


with contextlib.suppress(ImportError):  # Dask's memory accounting: without it, a list of
    # these counted a few hundred bytes (Dask's fallback), whatever their arrays held
    from dask.sizeof import sizeof as _sizeof

    _sizeof.register(_RoutedPart)(_nbytes)
    _sizeof.register(_Packed)(_nbytes)
    _sizeof.register(Report)(_nbytes)


_U32 = np.zeros(0, dtype=np.uint32)


def _route(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None, salt: int,
           part: Partition) -> list[_RoutedPart]:
    """Read and featurize ``chunk`` in batches of ``batch_rows``, as single-node training
    reads (smaller arrays than data-parallel's parts: on 10M rows in 1M-row chunks, in one
    process, 65,536-row batches cost 2.65 CPU-s against 2.86 for 262,144), and group each
    batch's training rows (not the holdout's) by lane, with the keys the lanes share."""
    out = []
    narrow = spec.n_columns <= 2**32  # (every key is below n_columns: uint32 keys when that fits)
    for rb, row in _read_chunk(chunk, spec, batch_rows=batch_rows):
        y, w = _labels(spec, rb, row)
        X = featurize_features(spec, rb, row, scipy_csr=False)
        mask = _holdout_mask(row, X.shape[0], holdout, salt)
        keep = (mask == 0).astype(np.uint8) if len(mask) else mask
        lane, shared, bad = row_lanes(X.indptr, X.indices, keep, part.lo, part.hi, part.stride, part.card,
                                      part.lanes, row)
        if bad >= 0:
            raise DataError(f"row {row + int(bad):,} ({chunk.describe()}) has several values of the partition "
                            f"feature {shown(part.name)}: partition by a feature with one value per row")
        ones = bool(np.all(X.data == 1))
        order, lane_ptr, indptr, indices, data = group_rows(X.indptr, X.indices, X.data, lane, part.lanes,
                                                            _U32 if narrow else X.indices[:0], not ones)
        y = y[order]
        if bool(np.all((y == 0) | (y == 1))):
            y = y.astype(np.uint8)
        out.append(_RoutedPart(indptr, indices, data, y, np.zeros(0) if w is None else w[order], lane_ptr, row,
                               np.unique(shared)))
    return out


def _task_route(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None, salt: int,
                part: Partition) -> list[_RoutedPart]:
    """Task: a chunk's training rows grouped by lane (:func:`_route`)."""
    return _route(chunk, spec, batch_rows, holdout, salt, part)


def _task_pick(routed: list[_RoutedPart], j: int) -> list[_Packed]:
    """Task (on the worker that routed the chunk): only lane j's rows, packed, to send to
    lane j's worker."""
    return [_Packed.of(p, j) for p in routed]


@dataclass
class _Lane:
    state: FTRLState
    shared: Shared
    version: int  # the schedule step the lane trains next; -1 while a task trains it
    acc: np.ndarray  # the epoch's loss sums at the start of that step (what lane 0 continues)
    epoch: int | None = None  # the epoch of the step the lane trained last
    plan: GrowthPlan | None = None

    def growth(self, epoch: int, position: int) -> tuple[GrowthPlan | None, int]:
        """``train_batch``'s growth plan and position: in the first epoch, growths sized from
        the lane's own distinct-key curve (its share of the epoch: ``1 / lanes``); after it,
        no new keys to size for.  Sizing never changes a result."""
        if epoch != 0:
            return None, position
        return self.plan, position


#: Lanes on this worker: (token, lane) -> lane.
_LANES: dict[tuple[str, int], _Lane] = {}


def _task_lane_init(token: str, j: int, version: int, keys: np.ndarray, zn: np.ndarray, shared: Shared,
                    n_columns: int, dtype: str, acc: np.ndarray) -> int:
    """Task (pinned to lane j's worker): lane j's state from its owned rows and the shared
    keys (``acc``: the loss sums at step ``version``); returns its number of keys."""
    from ..state import MAX_LOAD

    n = len(keys) + len(shared.keys)
    state = FTRLState(n_columns, dtype, capacity=int(np.ceil((n + 1) / MAX_LOAD)) + 1)
    fill_table(state.table, state.values, state.count, keys.astype(state.table.dtype, copy=False), zn)
    fill_table(state.table, state.values, state.count, shared.keys.astype(state.table.dtype, copy=False),
               shared.zn)
    state.bias[:] = shared.bias
    _LANES[(token, j)] = _Lane(state, shared, version, np.array(acc, dtype=np.float64))
    if _dropped(token):  # the run was stopped while this task ran: keep nothing
        _LANES.pop((token, j), None)
        raise _ShardLost(f"training run {token} was stopped")
    return state.touched


def _lane(token: str, j: int, version: int) -> _Lane:
    lane = _LANES.get((token, j))
    if lane is None:
        raise _ShardLost(f"lane {j}'s state is not on this worker (it was lost with its worker)")
    if lane.version != version:
        raise _ShardLost(f"lane {j}'s state is at step {lane.version}, not {version} (a task failed half-way)")
    return lane


def _put_shared(state: FTRLState, shared: Shared) -> None:
    """Write the merged shared keys and bias into a lane's state (inserting absent keys)."""
    keys = shared.keys.astype(state.table.dtype, copy=False)
    cur = np.empty((len(keys), 2), dtype=state.values.dtype)
    slots = np.empty(len(keys), dtype=np.int64)
    gather_zn(state.table, state.values, keys, cur, slots)
    here = slots >= 0
    state.values[slots[here], 1] = shared.zn[here, 0]
    state.values[slots[here], 2] = shared.zn[here, 1]
    absent = np.flatnonzero(~here)
    if len(absent):
        if state.touched + len(absent) > state.max_count:
            state.grow(len(absent))
        fill_table(state.table, state.values, state.count, keys[absent], shared.zn[absent])
    state.bias[:] = shared.bias


def _task_lane(token: str, j: int, version: int, params: FTRLParams, part: Partition, dump: float | None,
               at: tuple[int, int, int], previous: list[Report] | None,
               *routed: list[_RoutedPart] | list[_Packed]) -> Report:
    """Task (pinned to lane j's worker): train lane j on its rows of one round.

    ``previous``: the lanes' reports of the step before (merged here, as the client merges
    them, then written into the state), None at the first step of an attempt (the state
    then holds the merged values); ``routed``: the round's chunks (each whole, or only this
    lane's rows), in chunk order.  Lane 0's loss sums continue the epoch's (the sum of the
    reports of the step before, as the client sums them; zero at an epoch's start), the
    others' are the round's: so K=1 sums as single-node does, bit for bit.  ``dump``: also
    return the lane's owned rows (a snapshot; None: not; a negative number: all of them;
    else ``l1``: only those with a weight, ``|z| > l1``, the end of a run that needs only
    the model).
    ``at``: (epoch, the round's first row, the epoch's rows), to size the table's growths.
    """
    epoch, first_row, epoch_rows = at
    first_row //= part.lanes  # where the lane's rows are in its share of the epoch, about
    lane = _lane(token, j, version)
    lane.version = -1
    if epoch == 0 and lane.plan is None:
        lane.plan = GrowthPlan(-(-epoch_rows // part.lanes))
    state = lane.state
    if previous is not None:
        lane.shared = merge_reports(lane.shared, previous)
        _put_shared(state, _reported(lane.shared, previous))
        lane.acc = sum_reports(previous)
    if lane.epoch is not None and epoch != lane.epoch:  # (the client starts the epoch's sums at zero)
        lane.acc = np.zeros(3, dtype=np.float64)
    lane.epoch = epoch
    acc = lane.acc.copy() if j == 0 else np.zeros(3, dtype=np.float64)
    rows = 0
    found = []
    for parts in routed:
        for p in parts:
            if isinstance(p, _Packed):
                p = p.unpack()
            X, y, w = p.rows_of(j)
            if len(y):
                train_batch(state, Batch(X, y, w, p.start_row), params, np.zeros(0, dtype=np.uint8), acc,
                            *lane.growth(epoch, first_row + rows))
                rows += len(y)
            found.append(p.shared.astype(state.table.dtype))  # (the chunk's: keys of other lanes too)
    keys, zn, held = _moved_shared(state, lane.shared, found)
    dumped = None
    if dump is not None:
        k, v = table_items(state.table, state.values) if dump < 0 else \
            table_live_items(state.table, state.values, dump)
        own = part.owned(k)
        dumped = (k[own], v[own])
    lane.version = version + 1
    return Report(keys, zn, state.bias.astype(np.float64), acc, rows, state.touched - held, dumped)


def _moved_shared(state: FTRLState, shared: Shared, found: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
    """A lane's report of its shared keys after a round: (keys, their (z, n), the number of
    shared keys its table holds).  Only the keys it moved: those of ``shared`` whose (z, n)
    changed, and the keys of ``found`` (the round's chunks' shared keys) new to its table.  A
    key no report names was moved by no lane, so the merge is the same as if every lane
    reported every key, for a report the size of what changed."""
    key_t = state.table.dtype
    cur = np.empty((len(shared.keys), 2), dtype=state.values.dtype)
    gather_zn(state.table, state.values, shared.keys.astype(key_t, copy=False), cur, np.zeros(0, dtype=np.int64))
    moved = (cur != shared.zn).any(axis=1)
    new = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=key_t)
    new = np.setdiff1d(new, shared.keys.astype(key_t, copy=False), assume_unique=True)
    new_zn = np.empty((len(new), 2), dtype=state.values.dtype)
    slots = np.empty(len(new), dtype=np.int64)
    gather_zn(state.table, state.values, new, new_zn, slots)
    held = slots >= 0  # (a chunk's shared keys include other lanes' keys)
    keys = np.concatenate([shared.keys.astype(key_t, copy=False)[moved], new[held]])
    zn = np.concatenate([cur[moved], new_zn[held]])
    order = np.argsort(keys, kind="stable")
    return keys[order], zn[order], len(shared.keys) + int(np.count_nonzero(held))


def _reported(shared: Shared, reports: list[Report]) -> Shared:
    """The merged keys some lane reported (moved), with the bias: what a lane writes after a
    merge.  A key no lane moved holds its merged value, unchanged, in every lane already."""
    named = np.unique(np.concatenate([r.keys for r in reports])) if reports else shared.keys[:0]
    keep = np.isin(shared.keys, named.astype(shared.keys.dtype, copy=False), assume_unique=True)
    return Shared(shared.keys[keep], shared.zn[keep], shared.bias)


def _drop_lanes(token: str) -> int:
    """Run on every worker: forget the lanes of a run or attempt ``token`` (and of the
    attempts of a run), now and if a task still running creates one later."""
    _DROPPED.add(token)
    gone = [k for k in _LANES if k[0] == token or k[0].startswith(token + "-")]
    for k in gone:
        del _LANES[k]
    return len(gone)
