"""Scale-out on Dask: featurize, train, predict and evaluate over partitioned Parquet.

Optional: ``pip install 'sparsecross[dask]'``.  Nothing here imports dask at module level, and
the single-node code never imports this module unless a Dask ``client`` is given.

Units of work
-------------
A *chunk* is a Parquet row group (or, with ``rows_per_round``, a fixed number of consecutive
rows, which may span row groups and files).  Chunks are numbered in the order the single-node
reader uses: files in :func:`sparsecross.read.resolve_files` order (sorted paths, so hive
partition folders sort by their keys), then row groups in file order.  Workers read chunks
themselves, so every worker must see the data at the same path as the client (a shared file
system or the same local copy).

Training modes
--------------
``mode="exact"``
    Workers read and featurize chunks; the CSR rows stream back to the client, which runs the
    ordinary single-node trainer on them in order, with a bounded number of chunks in flight.
    The model (and the checkpoints) are the same as single-node training, bit for bit.

``mode="data-parallel"`` (default)
    Synchronous rounds.  In each round ``lanes`` (K) lanes each train one chunk, starting
    from the same global state; a key touched by one lane takes that lane's values exactly,
    a key touched by m > 1 lanes moves by the average of the m deltas (in lane order); the
    bias likewise.  K is a training parameter (recorded in the model's ``params``), not the
    number of workers: the same K gives the same model, bit for bit, on any cluster, and
    K = 1 reproduces single-node training exactly.

    The global state lives on the workers, split into one shard per worker by key (the high
    bits of ``fmix64(key)``); the client never holds it during training.  A round: each lane's
    chunk is featurized ahead of time on the lane's worker, with its entries renumbered by the
    chunk's distinct keys; every shard looks up the (z, n) of the lane keys it owns; the lane
    trains on a dense array of its keys (no hashing); every shard merges the lanes' new values
    for its keys.  The client merges only the bias and the loss sums, and submits round r + 1
    while round r merges.  Every task is a pure function of (shard version, chunk); shard
    tasks check the version they expect.

Faults
------
Tasks are submitted with ``retries``.  Exact mode, predict and eval: a worker that dies has
its tasks recomputed elsewhere; the result is unchanged.  Data-parallel: a dead worker takes
its state shard with it, so training restarts from the last snapshot of the shards (taken at
every checkpoint and epoch end; the start of the run at first) on the workers still there,
and the model is unchanged.  An unreadable file fails the call after the retries, naming the
file and row group; nothing is written (predict writes to a temporary file renamed at the
end).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import time
import uuid
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from ._kernels.ftrl import FTRLParams
from ._kernels.lanes import (
    csr_select_rows,
    fill_table,
    ftrl_pass_local,
    gather_zn,
    items_weights,
    local_ids,
    merge_lanes,
    shard_of,
    table_items,
)
from .errors import DataError, SparseCrossError
from .featurize import Batch, _labels, featurize_features, resolve_spec
from .metrics import StreamingMetrics
from .model import SparseModel
from .files import check_outputs
from .predict import check_source, kept_schema, write_parquet_atomically
from .read import DEFAULT_BATCH_ROWS, Source, _open, _short, open_checked, read_columns, resolve_files
from .spec import FeatureSpec
from .state import MAX_LOAD, FTRLState, sorted_nonzero

__all__ = [
    "connect",
    "train_distributed",
    "predict_distributed",
    "evaluate_distributed",
    "DaskNotInstalledError",
    "MODES",
]

log = logging.getLogger(__name__)

#: Training modes.
MODES = ("data-parallel", "exact")
_INSTALL_HINT = "install with pip install 'sparsecross[dask]'"
#: Graph payloads (a lane's starting values, a model's table) are embedded in the task on
#: purpose, so that the scheduler can re-run the task after a worker died; do not warn.
_NO_LARGE_GRAPH_WARNING = {"distributed.admin.large-graph-warning-threshold": "64GiB"}


#: Worker processes of ``local:N`` clusters start without Dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536``: setting it turns off glibc's adaptive mmap threshold, so
#: every array above 128 KiB is fresh memory and page-faults on first touch; data-parallel
#: training allocates tens of MB per chunk and ran 20-35 % slower with it (docs/DASK.md).
#: The nanny keeps this environment when it restarts a worker.
_WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    """Unset environment variable ``name`` in this process for the block (a nanny copies
    this process's environment into its worker, and an earlier Dask cluster in this process
    may have set Dask's default)."""
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


class DaskNotInstalledError(SparseCrossError, ImportError):
    """Dask (``distributed``) is needed but not installed."""


def _require_dask() -> Any:
    """Import and return ``distributed``, or raise :class:`DaskNotInstalledError`."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskNotInstalledError(
            f"sparsecross's Dask support needs dask.distributed ({exc}); {_INSTALL_HINT}"
        ) from None
    return distributed


# ============================================================================ connect
def connect(address: str, *, timeout: float = 10.0) -> tuple[Any, Any]:
    """Connect to a Dask cluster.

    Parameters
    ----------
    address
        ``"local:N"``: start a local cluster of N worker processes with one thread each (the
        only case where sparsecross creates a cluster).  ``"tcp://HOST:PORT"`` (or any other
        address ``distributed.Client`` accepts): connect to a running scheduler.
    timeout
        Seconds to wait for the scheduler.

    Returns
    -------
    (client, cluster)
        ``cluster`` is the :class:`distributed.LocalCluster` for ``local:N``, else ``None``.
        Close both when done (the client first).

    Raises
    ------
    SparseCrossError
        A malformed address, an unreachable scheduler, or a ``local:N`` cluster whose workers
        failed to start LOCAL_START_ATTEMPTS times (each failed start is retried with a fresh
        cluster); one line.
    DaskNotInstalledError
        Dask is not installed.
    """
    if not isinstance(address, str) or not address.strip():
        raise SparseCrossError(f"--dask needs local:N or tcp://HOST:PORT, got {address!r}")
    address = address.strip()
    distributed = _require_dask()
    m = re.fullmatch(r"local(?::(\d+))?", address)
    if m:
        n = int(m.group(1)) if m.group(1) else os.cpu_count() or 1
        if n < 1:
            raise SparseCrossError(f"local:N needs N >= 1 workers, got {address!r}")
        return _start_local(distributed, n)
    if address.startswith("local"):
        raise SparseCrossError(f"--dask {address!r}: write local:N with N the number of workers, e.g. local:2")
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = _short(exc)
        raise SparseCrossError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s ({reason}); "
            "check the address, or start one with `dask scheduler`, or use local:N"
        ) from None
    return client, None


#: ``local:N``: clusters started before giving up.  A worker process that dies while the
#: cluster starts (killed on a loaded or memory-short machine, a start timeout) fails the
#: whole start; a fresh cluster usually works.
LOCAL_START_ATTEMPTS = 3
#: What Dask raises when a cluster, a nanny or its worker process fails to start.
_START_FAILURES = (RuntimeError, TimeoutError, OSError)


def _start_failure(exc: BaseException) -> str:
    """Dask's start errors wrap the reason ("Nanny failed to start." <- "Nanny failed to start
    worker process"): the distinct messages of the chain, outermost first, on one line."""
    parts: list[str] = []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(parts) < 3:
        seen.add(id(e))
        msg = _short(e).rstrip(".")
        if msg not in parts:
            parts.append(msg)
        e = e.__cause__
    return ": ".join(parts)


def _start_local(distributed: Any, n: int) -> tuple[Any, Any]:
    """Start a ``local:N`` cluster and its client; a failed start is retried with a fresh
    cluster, up to LOCAL_START_ATTEMPTS clusters, then a one-line SparseCrossError."""
    import dask

    reason = ""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        cluster = None
        try:
            with (warnings.catch_warnings(), dask.config.set(_WORKER_ENVIRON),
                  _without_env("MALLOC_TRIM_THRESHOLD_")):
                # The scheduler's HTTP endpoints (health, metrics) move to a free port when 8787
                # is taken, e.g. by another local cluster: harmless, and there is no dashboard.
                warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.ERROR)
            return distributed.Client(cluster), cluster
        except _START_FAILURES as exc:
            # (LocalCluster closes itself when a worker fails to start; a client that failed
            # leaves the cluster to close)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            reason = _start_failure(exc)
            if attempt < LOCAL_START_ATTEMPTS:
                log.warning("local:%d: the Dask cluster failed to start (%s); starting a fresh one (attempt %d of %d)",
                            n, reason, attempt + 1, LOCAL_START_ATTEMPTS)
        except BaseException:
            if cluster is not None:
                cluster.close()
            raise
    raise SparseCrossError(
        f"--dask local:{n}: the Dask workers failed to start {LOCAL_START_ATTEMPTS} times ({reason}); "
        "a worker process died or timed out while starting: check free memory and the process "
        "limits (ulimit -u), try fewer workers (e.g. local:1), or start a cluster yourself and "
        "pass tcp://HOST:PORT"
    )


# ====================================================================== work planning
@dataclass(frozen=True)
class _Piece:
    """Rows ``[offset, offset + rows)`` of row group ``group`` of file ``path``."""

    path: str
    group: int
    offset: int
    rows: int
    group_rows: int


@dataclass(frozen=True)
class _Chunk:
    """A unit of work: consecutive global rows ``[start_row, start_row + rows)``."""

    index: int
    start_row: int
    rows: int
    pieces: tuple[_Piece, ...]

    def describe(self) -> str:
        parts = []
        for p in self.pieces:
            part = f"{p.path!r} row group {p.group}"
            if p.offset or p.rows != p.group_rows:
                part += f" (rows {p.offset}-{p.offset + p.rows - 1} of the group)"
            parts.append(part)
        return ", ".join(parts)


def _plan(source: Source, spec: FeatureSpec, *, chunk_rows: int | None = None, start_row: int = 0,
          label: bool = True, extra_columns: Sequence[str] = ()) -> tuple[list[_Chunk], int]:
    """Chunks of ``source`` (footers and schemas only, checked here on the client).

    One chunk per non-empty row group, or, with ``chunk_rows``, chunks of that many rows
    (boundaries at multiples of ``chunk_rows`` from row 0, whatever ``start_row``); rows
    before ``start_row`` are left out.  Returns (chunks, total rows of the source).
    """
    files = resolve_files(source)
    groups: list[tuple[str, int, int]] = []
    for path in files:
        pf, _strings = open_checked(path, spec, label=label, extra_columns=extra_columns)
        md = pf.metadata
        apath = os.path.abspath(path)
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if n > 0:
                groups.append((apath, g, n))
    total = sum(n for _, _, n in groups)
    chunks: list[_Chunk] = []
    if chunk_rows is None:
        row = 0
        for path, g, n in groups:
            if row + n > start_row:
                off = max(start_row - row, 0)
                chunks.append(_Chunk(len(chunks), row + off, n - off, (_Piece(path, g, off, n - off, n),)))
            row += n
        return chunks, total
    if chunk_rows < 1:
        raise SparseCrossError(f"rows per chunk must be >= 1, got {chunk_rows!r}")
    pieces: list[_Piece] = []
    chunk_start = None
    filled = 0
    row = 0
    for path, g, n in groups:
        pos = 0
        while pos < n:
            gr = row + pos  # global row at pos
            boundary = (gr // chunk_rows + 1) * chunk_rows
            take = min(n - pos, boundary - gr)
            lo, hi = gr, gr + take
            if hi > start_row:
                a = max(lo, start_row)
                if chunk_start is None:
                    chunk_start = a
                pieces.append(_Piece(path, g, pos + (a - lo), hi - a, n))
                filled += hi - a
                if hi == boundary:
                    chunks.append(_Chunk(len(chunks), chunk_start, filled, tuple(pieces)))
                    pieces, chunk_start, filled = [], None, 0
            pos += take
        row += n
    if pieces:
        assert chunk_start is not None
        chunks.append(_Chunk(len(chunks), chunk_start, filled, tuple(pieces)))
    return chunks, total


# ================================================================ worker-side functions
def _read_chunk(chunk: _Chunk, spec: FeatureSpec, *, batch_rows: int, label: bool = True,
                extra_columns: Sequence[str] = ()) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Record batches of one chunk, read exactly as :func:`sparsecross.read.iter_record_batches`
    reads them (same columns, strings as dictionaries); yields (batch, first global row)."""
    columns = read_columns(spec, label=label, extra_columns=extra_columns)
    row = chunk.start_row
    for piece in chunk.pieces:
        path = Path(piece.path)
        where = f"{str(path)!r} row group {piece.group}"
        pf0, strings = open_checked(path, spec, label=label)
        pf = _open(path, strings) if strings else pf0
        pos = 0
        end = piece.offset + piece.rows
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[piece.group], columns=columns,
                                         use_threads=False):
                n = batch.num_rows
                lo = max(piece.offset - pos, 0)
                hi = min(end - pos, n)
                pos += n
                if hi > lo:
                    if lo or hi < n:
                        batch = batch.slice(lo, hi - lo)
                    yield batch, row
                    row += hi - lo
                if pos >= end:
                    break
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {where} (row {row}): {_short(exc)}") from None
        if pos < end:
            raise DataError(f"cannot read {where}: it ended after {pos} rows, the footer says {piece.group_rows}")


def _concat(spec: FeatureSpec, parts: list[Batch], start_row: int) -> Batch:
    """One Batch from consecutive Batches (rows in order)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        X = sp.csr_array((np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(1, np.int64)),
                         shape=(0, spec.n_columns))
        return Batch(X, np.zeros(0), None, start_row)
    offsets = np.cumsum([0] + [p.X.nnz for p in parts])
    indptr = np.concatenate([parts[0].X.indptr[:1]] + [p.X.indptr[1:] + o for p, o in zip(parts, offsets[:-1])])
    indices = np.concatenate([p.X.indices for p in parts])
    data = np.concatenate([p.X.data for p in parts])
    X = sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, spec.n_columns))
    X.has_sorted_indices = True
    X.has_canonical_format = True
    y = np.concatenate([p.y for p in parts])
    w = None if parts[0].sample_weight is None else np.concatenate([p.sample_weight for p in parts])
    return Batch(X, y, w, start_row)


def _featurize_chunk(chunk: _Chunk, spec: FeatureSpec, batch_rows: int) -> Batch:
    """Read and featurize one chunk (labels included) into a single Batch."""
    parts = []
    # One Arrow batch per row group (the chunk is the unit of memory anyway): no CSR copies.
    for rb, row in _read_chunk(chunk, spec, batch_rows=max(batch_rows, chunk.rows)):
        y, w = _labels(spec, rb, row)
        parts.append(Batch(featurize_features(spec, rb, row), y, w, row))
    return _concat(spec, parts, chunk.start_row)


def _holdout_mask(start_row: int, n: int, holdout: float | None, salt: int) -> np.ndarray:
    from ._kernels.hash import holdout_mask

    if holdout is None:
        return np.zeros(0, dtype=np.uint8)
    return holdout_mask(start_row, n, float(holdout), np.uint64(salt))


def _task_featurize(chunk: _Chunk, spec: FeatureSpec, batch_rows: int) -> Batch:
    """Task: a chunk's featurized rows (exact mode: they travel to the client)."""
    return _featurize_chunk(chunk, spec, batch_rows)


def _task_featurize_valid(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None,
                          salt: int) -> Batch:
    """Task: a chunk's rows for validation (with ``holdout``: only the holdout rows)."""
    b = _featurize_chunk(chunk, spec, batch_rows)
    if holdout is None:
        return b
    rows = np.flatnonzero(_holdout_mask(b.start_row, b.X.shape[0], holdout, salt)).astype(np.int64)
    indptr, indices, data = csr_select_rows(b.X.indptr, b.X.indices, b.X.data, rows)
    X = sp.csr_array((data, indices, indptr), shape=(len(rows), spec.n_columns))
    X.has_sorted_indices = True
    X.has_canonical_format = True
    w = None if b.sample_weight is None else b.sample_weight[rows]
    return Batch(X, b.y[rows], w, b.start_row)


# Data-parallel training keeps the global state on the workers, split into shards by key
# (``shard_of``): shard s lives in ``_SHARDS[(token, s)]`` on the worker that owns it, and only
# tasks pinned to that worker touch it.  A shard counts the rounds merged into it
# (``version``); every task that reads or writes it names the version it expects, so a task
# run out of order (which Dask never does on purpose) fails instead of computing garbage, and
# a merge re-run after it was applied is a no-op.
_SHARDS: dict[tuple[str, int], _Shard] = {}
#: Tokens (runs or attempts) whose shards were dropped: a shard-creating task still running
#: when its run was dropped must not put its shard back (it would stay in memory for good).
_DROPPED: set[str] = set()

#: Seconds a worker holding a state shard may stay paused (Dask pauses a worker near its
#: memory limit; shards are not spillable, so a paused shard owner never resumes).
PAUSED_LIMIT_S = 30.0
#: Times the same round may lose a worker before training gives up, naming its chunks.
ROUND_FAILURES = 3


class _ShardLost(SparseCrossError):
    """A state shard is not where it should be (its worker died or restarted)."""


@dataclass
class _Shard:
    state: FTRLState
    version: int
    slots: dict[int, np.ndarray]  # lane -> table slots found by this version's look-ups
    scratch: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))


def _shard(token: str, s: int, version: int) -> _Shard:
    sh = _SHARDS.get((token, s))
    if sh is None:
        raise _ShardLost(f"state shard {s} is not on this worker (it was lost with its worker)")
    if sh.version != version:
        raise _ShardLost(f"state shard {s} holds round {sh.version}, not {version}")
    return sh


def _dropped(token: str) -> bool:
    return any(token == d or token.startswith(d + "-") for d in _DROPPED)


def _task_shard_init(token: str, s: int, version: int, keys: np.ndarray, zn: np.ndarray, n_columns: int,
                     state_dtype: str) -> int:
    """Task (pinned): create shard ``s`` holding (keys, zn) at ``version``."""
    if _dropped(token):
        raise _ShardLost(f"training run {token} was stopped")
    st = FTRLState(n_columns, state_dtype, capacity=int(math.ceil((len(keys) + 1) / MAX_LOAD)) + 1)
    fill_table(st.table, st.values, st.count, keys.astype(st.table.dtype, copy=False), zn)
    if _dropped(token):  # dropped while this task was building the table
        raise _ShardLost(f"training run {token} was stopped")
    _SHARDS[(token, s)] = _Shard(st, version, {})
    return version


def _task_lookup(token: str, s: int, version: int, lane: int, keys: np.ndarray, after: Any) -> np.ndarray:
    """Task (pinned): the (z, n) of ``keys`` in shard ``s`` at ``version`` ((0, 0) if absent).
    ``after``: the previous merge's result (an ordering dependency only)."""
    sh = _shard(token, s, version)
    out = np.empty((len(keys), 2), dtype=sh.state.values.dtype)
    slots = np.empty(len(keys), dtype=np.int64)
    gather_zn(sh.state.table, sh.state.values, keys, out, slots)
    sh.slots[lane] = slots
    return out


def _task_merge(token: str, s: int, version: int, keys: list[np.ndarray], old: list[np.ndarray],
                new: list[np.ndarray], after: Any) -> int:
    """Task (pinned): apply one round's lanes (in lane order) to shard ``s``; returns its
    number of keys.  ``keys[j]``, ``old[j]``, ``new[j]``: lane j's keys of this shard, their
    values at the start of the round and after the lane."""
    sh = _SHARDS.get((token, s))
    if sh is not None and sh.version == version + 1:
        return sh.state.touched  # already applied (a re-run)
    sh = _shard(token, s, version)
    st = sh.state
    lanes = len(keys)
    slot_list = [sh.slots.get(j) for j in range(lanes)]
    slots_valid = all(sl is not None and len(sl) == len(k) for sl, k in zip(slot_list, keys))
    absent = sum(int(np.count_nonzero(sl < 0)) for sl in slot_list) if slots_valid else sum(map(len, keys))
    if st.touched + absent > st.max_count:
        st.grow(absent)
        slots_valid = False  # rehashed: the slots found by the look-ups moved

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    lane_keys = cat(keys).astype(st.table.dtype, copy=False)
    cap = 16
    while cap < 2 * len(lane_keys) + 2:
        cap *= 2
    if sh.scratch.shape[0] < cap:  # kept for the next rounds: rounds are alike in size
        sh.scratch = np.empty((cap, 2), dtype=np.int64)
    slots = cat(slot_list) if slots_valid else np.zeros(len(lane_keys), dtype=np.int64)
    merge_lanes(st.table, st.values, st.count, lane_keys, cat(new), cat(old), slots, slots_valid,
                sh.scratch[:cap])
    sh.version = version + 1
    sh.slots = {}
    return st.touched


def _task_dump(token: str, s: int, version: int, after: Any) -> tuple[np.ndarray, np.ndarray]:
    """Task (pinned): every (key, (z, n)) of shard ``s`` at ``version``."""
    sh = _shard(token, s, version)
    return table_items(sh.state.table, sh.state.values)


def _drop_shards(token: str) -> int:
    """Run on every worker: forget the shards of a run or attempt ``token`` (and of the
    attempts of a run), now and if a task still running creates one later."""
    _DROPPED.add(token)
    dropped = [k for k in _SHARDS if k[0] == token or k[0].startswith(token + "-")]
    for k in dropped:
        del _SHARDS[k]
    return len(dropped)


@dataclass
class _LaneChunk:
    """A featurized chunk kept on a worker for a lane: its CSR rows with the entries
    renumbered by the chunk's distinct keys (``local``, instead of the column ids), labels,
    weights, holdout mask, and where each shard's keys sit among the distinct keys."""

    indptr: np.ndarray
    local: np.ndarray
    data: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray  # length 0: all ones
    mask: np.ndarray
    n_keys: int
    positions: list[np.ndarray]  # per shard: indices into the chunk's keys
    keys: list[np.ndarray]  # per shard: those keys


def _task_prepare(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None,
                  salt: int, key_dtype: str, n_shards: int) -> _LaneChunk:
    """Task: featurize a chunk for data-parallel training, renumber its entries by its
    distinct keys (as ``key_dtype``, the state table's key dtype) and split those by shard."""
    b = _featurize_chunk(chunk, spec, batch_rows)
    mask = _holdout_mask(b.start_row, b.X.shape[0], holdout, salt)
    kd = np.dtype(key_dtype)
    proto = np.full(1, np.iinfo(kd).max, dtype=kd)
    keys, local = local_ids(b.X.indptr, b.X.indices, mask, proto)
    owner = shard_of(keys, n_shards)
    positions = [np.flatnonzero(owner == s) for s in range(n_shards)]
    sw = b.sample_weight if b.sample_weight is not None else np.zeros(0)
    return _LaneChunk(b.X.indptr, local, b.X.data, b.y, sw, mask, len(keys), positions, [keys[p] for p in positions])


def _task_shard_keys(prep: _LaneChunk, s: int) -> np.ndarray:
    """Task: the keys of a prepared chunk that shard ``s`` owns (small: they travel)."""
    return prep.keys[s]


def _task_train_lane(prep: _LaneChunk, bias: np.ndarray, acc: np.ndarray, params: FTRLParams,
                     *base: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Task: train one lane of a round.

    ``base[s]``: the (z, n) of the chunk's keys of shard s at the start of the round; ``bias``
    the global bias; ``acc`` the progressive-loss sums to continue.  Returns the new (z, n)
    per shard (same order), the new bias and the new sums.  A pure function of its inputs.
    """
    zn = np.zeros((prep.n_keys, 2), dtype=base[0].dtype if base else np.float32)
    for pos, values in zip(prep.positions, base):
        zn[pos] = values
    bias = np.array(bias, dtype=np.float64)
    acc = np.array(acc, dtype=np.float64)
    ftrl_pass_local(prep.indptr, prep.local, prep.data, prep.y, prep.sample_weight, prep.mask, zn, bias, params,
                    acc)
    return [zn[pos] for pos in prep.positions], bias, acc


def _task_lane_part(result: tuple[list[np.ndarray], np.ndarray, np.ndarray], s: int) -> np.ndarray:
    """Task: shard ``s``'s part of a lane's result (only that part travels to the shard)."""
    return result[0][s]


def _task_lane_meta(result: tuple[list[np.ndarray], np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Task: a lane's new bias and loss sums (for the client)."""
    return result[1], result[2]


def _task_predict(chunk: _Chunk, spec: FeatureSpec, table: tuple[np.ndarray, np.ndarray, float],
                  keep: Sequence[str], batch_rows: int, schema: pa.Schema) -> pa.Table:
    """Task: ``probability`` (and the ``keep`` columns) of one chunk, as ``predict_file`` does."""
    from ._kernels.score import score_csr
    from .predict import sigmoid

    tk, tw, bias = table
    out = []
    for rb, row in _read_chunk(chunk, spec, batch_rows=batch_rows, label=False, extra_columns=keep):
        X = featurize_features(spec, rb, row)
        p = sigmoid(score_csr(X.indptr, X.indices, X.data, tk, tw, bias))
        cols = [rb.column(k).cast(schema.field(k).type) for k in keep]  # their own types, as predict_file
        out.append(pa.Table.from_arrays(cols + [pa.array(p)], schema=schema))
    return out[0] if len(out) == 1 else pa.concat_tables(out)


def _task_metrics(chunk: _Chunk, spec: FeatureSpec, table: tuple[np.ndarray, np.ndarray, float],
                  batch_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Task: a chunk's metrics as a sparse histogram: (bins, pos, neg, acc)."""
    from ._kernels.score import score_csr

    tk, tw, bias = table
    m = StreamingMetrics()
    for rb, row in _read_chunk(chunk, spec, batch_rows=batch_rows):
        y, w = _labels(spec, rb, row)
        X = featurize_features(spec, rb, row)
        m.update(score_csr(X.indptr, X.indices, X.data, tk, tw, bias), y, w)
    nz = np.flatnonzero((m.pos != 0) | (m.neg != 0))
    return nz, m.pos[nz], m.neg[nz], m.acc


def _identity(x: Any) -> Any:
    """Task: hold a value shipped in the graph (re-run from the graph if its worker dies)."""
    return x


def _worker_versions() -> dict[str, str]:
    from . import __version__
    from .hashing import HASH_CONTRACT

    return {"sparsecross": __version__, "hash_contract": HASH_CONTRACT}


# ================================================================== client-side helpers
class _Runner:
    """Submits sparsecross tasks with unique keys, retries, and clear errors."""

    def __init__(self, client: Any, retries: int) -> None:
        self.distributed = _require_dask()
        self.client = client
        self.retries = int(retries)
        self.prefix = f"sparsecross-{uuid.uuid4().hex[:12]}"
        self.n = 0

    def submit(self, fn: Callable[..., Any], *args: Any, name: str, priority: int = 0,
               workers: list[str] | None = None) -> Any:
        """Submit ``fn(*args)``; ``workers``: run only there (a task that uses a state shard)."""
        import dask

        self.n += 1
        key = f"{self.prefix}-{name}-{self.n}"
        with dask.config.set(_NO_LARGE_GRAPH_WARNING):
            return self.client.submit(fn, *args, key=key, retries=self.retries, priority=priority, pure=False,
                                      workers=workers, allow_other_workers=False)

    def result(self, fut: Any, what: str) -> Any:
        """The future's result; failures become SparseCrossError naming ``what``."""
        try:
            return fut.result()
        except SparseCrossError:
            raise
        except Exception as exc:
            raise self.error(exc, what) from None

    def error(self, exc: BaseException, what: str) -> SparseCrossError:
        if isinstance(exc, SparseCrossError):
            return exc
        if isinstance(exc, self.distributed.KilledWorker):
            return SparseCrossError(
                f"Dask workers died repeatedly while processing {what}; check the workers' "
                f"memory and logs ({_short(exc)})"
            )
        return SparseCrossError(f"processing {what} failed on the cluster after {self.retries} retries: "
                                f"{type(exc).__name__}: {_short(exc)}")

    def cancel(self, futures: Sequence[Any]) -> None:
        if futures:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))

    def hold(self, value: Any, name: str) -> Any:
        """Ship ``value`` once (in the graph, so it can be recomputed) and return its future."""
        return self.submit(_identity, value, name=name, priority=10)


def _check_cluster(client: Any, wait: float = 60.0) -> int:
    """Number of workers, after checking they run this sparsecross version."""
    from . import __version__
    from .hashing import HASH_CONTRACT

    try:
        if not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError) as exc:
        raise SparseCrossError(f"no Dask worker joined the scheduler within {wait:g} s ({_short(exc)})") from None
    try:
        infos = client.run(_worker_versions, on_error="return")
    except Exception as exc:  # noqa: BLE001 - any failure here means the cluster is unusable
        raise SparseCrossError(f"cannot run sparsecross on the Dask workers: {_short(exc)}") from None
    ours = {"sparsecross": __version__, "hash_contract": HASH_CONTRACT}
    for addr, info in sorted(infos.items()):
        if isinstance(info, BaseException):
            if isinstance(info, ImportError):
                raise SparseCrossError(
                    f"Dask worker {addr} cannot import sparsecross ({_short(info)}); install sparsecross "
                    f"{__version__} on every worker"
                )
            continue  # a worker that is restarting: its replacement is checked by its tasks
        if info != ours:
            raise SparseCrossError(
                f"Dask worker {addr} runs sparsecross {info.get('sparsecross')} (hash contract "
                f"{info.get('hash_contract')}), the client {__version__} ({HASH_CONTRACT}); install "
                "the same version everywhere"
            )
    return len(infos)


def _ordered(runner: _Runner, fn: Callable[..., Any], chunks: Sequence[_Chunk], args: tuple[Any, ...], *,
             window: int, name: str) -> Iterator[tuple[_Chunk, Any]]:
    """Run ``fn(chunk, *args)`` over ``chunks`` with at most ``window`` tasks in flight and
    yield ``(chunk, result)`` in chunk order (bounded memory, deterministic order)."""
    pending: deque[tuple[_Chunk, Any]] = deque()
    todo = iter(chunks)
    try:
        for chunk in todo:
            pending.append((chunk, runner.submit(fn, chunk, *args, name=f"{name}-{chunk.index}")))
            if len(pending) >= window:
                break
        while pending:
            chunk, fut = pending.popleft()
            try:
                res = runner.result(fut, chunk.describe())
            except BaseException:
                runner.cancel([fut])  # the traceback keeps the future (and so the task) alive
                raise
            del fut
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, runner.submit(fn, nxt, *args, name=f"{name}-{nxt.index}")))
            yield chunk, res
    finally:
        runner.cancel([f for _, f in pending])


def _default_window(n_workers: int) -> int:
    return max(4, 2 * n_workers)


def _get_client(client: Any) -> Any:
    distributed = _require_dask()
    if client is None:
        try:
            return distributed.default_client()
        except ValueError:
            raise SparseCrossError(
                "no Dask client: pass client=, or create one with sparsecross.distributed.connect"
            ) from None
    return client


# ===================================================================== predict / eval
def _scoring(model: SparseModel, source: Source, client: Any, retries: int, in_flight: int | None, verb: str,
             **plan: Any) -> tuple[list[_Chunk], _Runner, Any, int]:
    """What scoring ``source`` on the cluster needs: its chunks, a runner, the model's lookup
    table held on the cluster, and the number of chunks in flight."""
    client = _get_client(client)
    chunks, _total = _plan(source, model.spec, **plan)
    if not chunks:
        raise SparseCrossError(f"no rows to {verb} in {str(source)!r}")
    n_workers = _check_cluster(client)
    runner = _Runner(client, retries)
    tk, tw = model.lookup_table()
    return chunks, runner, runner.hold((tk, tw, float(model.bias)), "model"), in_flight or _default_window(n_workers)


def predict_distributed(model: SparseModel, source: Source, out: str | os.PathLike[str], client: Any = None, *,
                        keep: Sequence[str] = (), batch_rows: int = DEFAULT_BATCH_ROWS, in_flight: int | None = None,
                        retries: int = 2, on_batch: Callable[[int], Any] | None = None) -> int:
    """Score Parquet ``source`` on the cluster into one Parquet file ``out``.

    Map-only over row groups; the results are written by the client in row order, to a
    temporary file renamed to ``out`` at the end (nothing is left behind on failure).  The
    content equals :func:`sparsecross.predict.predict_file`'s: column ``probability``
    (float64) after the ``keep`` columns.  Returns the number of rows.

    Parameters
    ----------
    client
        A ``distributed.Client`` (default: the current default client).
    in_flight
        Row groups in flight at once (default ``max(4, 2 * workers)``): bounds memory.
    retries
        Automatic retries of a failed task.
    on_batch
        Called with the number of rows of each chunk written.
    """
    out = Path(out)
    if out.is_dir():
        raise SparseCrossError(f"output {str(out)!r} is a folder; give a file name such as pred.parquet")
    keep = list(keep)
    check_outputs({"out": out}, {"an input data file": resolve_files(source)})
    check_source(model, source, label=False)
    schema = kept_schema(model, source, keep)
    chunks, runner, table_ref, window = _scoring(model, source, client, retries, in_flight, "predict",
                                                 label=False, extra_columns=keep)
    try:
        results = _ordered(runner, _task_predict, chunks, (model.spec, table_ref, keep, batch_rows, schema),
                           window=window, name="predict")
        with contextlib.closing(results):
            return write_parquet_atomically((table for _chunk, table in results), out, on_table=on_batch,
                                            schema=schema)
    finally:
        runner.cancel([table_ref])


def evaluate_distributed(model: SparseModel, source: Source, client: Any = None, *,
                         batch_rows: int = DEFAULT_BATCH_ROWS, in_flight: int | None = None,
                         retries: int = 2) -> dict[str, Any]:
    """Rows, logloss, ROC AUC and positive rate of ``model`` on labelled Parquet, on the cluster.

    Map-only: each row group returns its :class:`~sparsecross.metrics.StreamingMetrics`
    histograms (sparse), merged by the client in row-group order.  ``rows``, ``auc`` and
    ``positive_rate`` equal :func:`sparsecross.predict.evaluate`'s exactly (without sample
    weights the histograms hold integer counts); ``logloss`` is a sum taken in another order,
    equal to about 1e-15 relative, and the same on every run and cluster.
    """
    check_source(model, source, label=True)
    chunks, runner, table_ref, window = _scoring(model, source, client, retries, in_flight, "evaluate")
    metrics = StreamingMetrics()
    try:
        results = _ordered(runner, _task_metrics, chunks, (model.spec, table_ref, batch_rows), window=window,
                           name="eval")
        with contextlib.closing(results):
            for _chunk, (nz, pos, neg, acc) in results:
                metrics.pos[nz] += pos
                metrics.neg[nz] += neg
                metrics.acc += acc
    finally:
        runner.cancel([table_ref])
    if metrics.rows == 0:
        raise SparseCrossError(f"no rows to evaluate in {str(source)!r}")
    return {"rows": metrics.rows, "logloss": metrics.logloss, "auc": metrics.auc,
            "positive_rate": metrics.positive_rate}


# ============================================================================ training
def _validate(runner: _Runner, state: FTRLState, params: FTRLParams, source: Source, spec: FeatureSpec, *,
              holdout: float | None, salt: int, batch_rows: int, window: int) -> StreamingMetrics:
    """Validation metrics of ``state``: workers featurize (keeping only holdout rows), the
    client scores in row order, exactly as :func:`sparsecross.train.evaluate_state`."""
    chunks, _ = _plan(source, spec)
    metrics = StreamingMetrics()
    results = _ordered(runner, _task_featurize_valid, chunks, (spec, batch_rows, holdout, salt),
                       window=window, name="valid")
    with contextlib.closing(results):
        for _chunk, b in results:
            if b.X.shape[0]:
                metrics.update(state.margins(b.X, params), b.y, b.sample_weight)
    return metrics


def train_distributed(
    source: Source,
    spec: FeatureSpec,
    *,
    client: Any,
    alpha: float = 0.1,
    beta: float = 1.0,
    l1: float = 1.0,
    l2: float = 0.0,
    epochs: int = 1,
    label_smoothing: float = 0.0,
    holdout: float | None = None,
    valid: Source | None = None,
    state_dtype: str = "float32",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 5_000_000,
    checkpoint_rounds: int | None = None,
    on_progress: Callable[[Any], None] | None = None,
    init_state: FTRLState | None = None,
    return_state: bool = False,
    mode: str = "data-parallel",
    lanes: int = 4,
    rows_per_round: int | None = None,
    retries: int = 2,
    in_flight: int | None = None,
    prefetch_rounds: int = 2,
) -> Any:
    """Train on a Dask cluster; what :func:`sparsecross.train` does when given ``client``.

    The common parameters mean what they mean for :func:`sparsecross.train`.

    Parameters
    ----------
    client
        A ``distributed.Client`` (see :func:`connect`).
    mode
        ``"data-parallel"`` (default) or ``"exact"`` (see the module docstring).
    lanes
        Data-parallel: K, the number of chunks trained from the same state in a round (a model
        parameter: the same K gives the same model on any cluster; 1 equals single-node).
        Recorded in the model's ``params``.  Ignored in exact mode.
    rows_per_round
        Data-parallel: rows per round over all lanes, each lane training
        ``rows_per_round // lanes`` consecutive rows (default: one row group per lane).
        Exact mode: rows per chunk sent to the client (default: one row group).
    checkpoint, checkpoint_every, checkpoint_rounds
        Checkpoint folder (``state.npz``, as single-node).  Exact mode writes the single-node
        format every ``checkpoint_every`` rows (the two resume each other's checkpoints).
        Data-parallel writes after every ``checkpoint_rounds`` rounds (default: about every
        ``checkpoint_every`` rows) and at the end of every epoch; a resumed run equals an
        uninterrupted one.
    retries
        Automatic retries of a failed task (a task lost with a dead worker is re-run anyway).
    in_flight
        Exact mode and validation: chunks in flight at once (default ``max(4, 2 * workers)``).
    prefetch_rounds
        Data-parallel: rounds featurized ahead of the one training (memory on the workers).

    Returns
    -------
    SparseModel, or (SparseModel, FTRLState) with ``return_state``.
    """
    from .hashing import holdout_salt
    from .read import count_rows
    from .checkpoint import open_checkpoint, source_fingerprint
    from .train import (ProgressEvent, TrainParams, check_inputs, check_values, export_state, start_state,
                        train_batch)

    if mode not in MODES:
        raise SparseCrossError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")
    tp = TrainParams(alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype)
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise SparseCrossError(f"batch_rows must be >= 1, got {batch_rows!r}")
    exact = mode == "exact"

    def integer(name: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise SparseCrossError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return int(value)

    if not exact:
        lanes = integer("lanes", lanes, 1)
    if rows_per_round is not None:
        rows_per_round = integer("rows_per_round", rows_per_round, 1 if exact else lanes)
    if checkpoint_rounds is not None:
        checkpoint_rounds = integer("checkpoint_rounds", checkpoint_rounds, 1)
    _require_dask()
    params = tp.ftrl
    t0 = time.perf_counter()
    schema = check_inputs(source, spec, valid)
    spec = resolve_spec(source, spec, batch_rows=batch_rows, holdout=holdout)
    if valid is not None:
        check_values(valid, spec, batch_rows)
    rows_total = count_rows(source)
    if rows_total == 0:
        raise DataError(f"the training data {str(source)!r} has no rows")
    salt = holdout_salt(spec.hashing.seed)
    run_params = tp.to_dict()
    if not exact:
        run_params.update(mode=mode, lanes=lanes, rows_per_round=rows_per_round)
    run_meta = {"spec_sha256": spec.sha256, "params": run_params, "data": source_fingerprint(source)}

    state = start_state(init_state, spec, state_dtype)
    epoch, start_row, start_round = 0, 0, 0
    acc = np.zeros(3, dtype=np.float64)
    history: list[dict[str, Any]] = []
    ckpt_path, resumed = open_checkpoint(checkpoint, run_meta, n_columns=spec.n_columns, state_dtype=state_dtype,
                                         epochs=tp.epochs, rows_total=rows_total, position="row" if exact else "round")
    if resumed is not None:
        state, meta = resumed
        epoch = int(meta["epoch"])
        start_row = int(meta.get("row", 0))
        start_round = int(meta.get("round", 0))
        acc = np.array(meta["acc"], dtype=np.float64)
        history = list(meta["history"])
        log.info("resuming from %s: epoch %d, %s", ckpt_path, epoch + 1,
                 f"row {start_row}" if exact else f"round {start_round}")

    n_workers = _check_cluster(client)
    runner = _Runner(client, retries)
    window = in_flight or _default_window(n_workers)
    run: dict[str, Any] = {"mode": mode, "workers": n_workers, "rows_processed": 0}

    def save(meta: dict[str, Any]) -> None:
        if ckpt_path is not None:
            state.save(ckpt_path, {**run_meta, **meta, "acc": acc.tolist(), "history": history})

    def progress(ev: Any) -> None:
        if on_progress is not None:
            on_progress(ev)

    def prog_ll() -> float:
        return float(acc[0] / max(acc[1], 1e-300))

    nz_cache = [-1.0, None]  # (time, value): an O(capacity) scan, at most twice a second

    def event(ep: int, rows_seen: int, phase: str = "train", touched: int | None = None, **kw: Any) -> Any:
        """A progress event; ``touched`` given: a data-parallel round (the client's ``state``
        is then the last snapshot, so no nonzero count)."""
        now = time.perf_counter()
        if touched is None and on_progress is not None:
            if phase != "train" or now - nz_cache[0] > 0.5:
                nz_cache[:] = [now, state.count_nonzero(params)]
            kw["nonzeros"] = nz_cache[1]
        return ProgressEvent(ep, tp.epochs, rows_seen, rows_total, prog_ll(),
                             state.touched if touched is None else touched, now - t0, phase=phase, **kw)

    def end_epoch(ep: int, extra: dict[str, Any], counts: tuple[int, int] | None = None) -> None:
        """Record epoch ``ep`` (and validate); ``counts``: (touched, nonzeros) when ``state`` is
        not the trained state (data-parallel without a checkpoint folder or validation)."""
        record: dict[str, Any] = {"epoch": ep + 1, "progressive_logloss": prog_ll(), "train_rows": int(acc[2]),
                                  **extra}
        if valid is not None or holdout is not None:
            progress(event(ep, rows_total, "validate"))
            m = _validate(runner, state, params, valid if valid is not None else source, spec,
                          holdout=holdout, salt=salt, batch_rows=batch_rows, window=window)
            record.update(valid_rows=m.rows, valid_logloss=m.logloss, valid_auc=m.auc,
                          valid_positive_rate=m.positive_rate)
        history.append(record)
        live = {} if counts is None else {"touched": counts[0], "nonzeros": counts[1]}
        ev = event(ep, rows_total, "epoch_end", valid_logloss=record.get("valid_logloss"),
                   valid_auc=record.get("valid_auc"), **live)
        acc[:] = 0.0
        progress(ev)

    trained: Any = state
    if exact:
        while epoch < tp.epochs:
            chunks, _ = _plan(source, spec, chunk_rows=rows_per_round, start_row=start_row)
            since_ckpt = 0
            results = _ordered(runner, _task_featurize, chunks, (spec, batch_rows), window=window, name="featurize")
            with contextlib.closing(results):
                for chunk, batch in results:
                    mask = _holdout_mask(batch.start_row, batch.X.shape[0], holdout, salt)
                    train_batch(state, batch, params, mask, acc)
                    run["rows_processed"] += chunk.rows
                    since_ckpt += chunk.rows
                    row_end = chunk.start_row + chunk.rows
                    if since_ckpt >= checkpoint_every:
                        save({"epoch": epoch, "row": row_end})
                        since_ckpt = 0
                    progress(event(epoch, row_end, extra={"chunk": chunk.index + 1}))
            end_epoch(epoch, {})
            epoch += 1
            start_row = 0
            save({"epoch": epoch, "row": 0})
    else:
        final = _train_rounds(
            runner, state, acc, spec, params, tp, source, rows_total, holdout=holdout, salt=salt,
            batch_rows=batch_rows, lanes=lanes, rows_per_round=rows_per_round, epoch=epoch,
            start_round=start_round, checkpoint_every=checkpoint_every, checkpoint_rounds=checkpoint_rounds,
            prefetch_rounds=prefetch_rounds, save=save, progress=progress, event=event, end_epoch=end_epoch,
            run=run, history=history, checkpointing=ckpt_path is not None,
            validating=valid is not None or holdout is not None)
        if final is not None:
            if return_state:
                _set_state(state, *final)
            else:
                trained = _RowsState(*final)

    model = export_state(trained, spec, tp, history, rows_total, schema=schema)
    model.params = run_params
    run["seconds"] = time.perf_counter() - t0
    model.run = run  # facts about this run (never saved with the model)
    if return_state:
        return model, state
    return model


def _train_rounds(runner: _Runner, state: FTRLState, acc: np.ndarray, spec: FeatureSpec, params: FTRLParams,
                  tp: Any, source: Source, rows_total: int, *, holdout: float | None, salt: int, batch_rows: int,
                  lanes: int, rows_per_round: int | None, epoch: int, start_round: int, checkpoint_every: int,
                  checkpoint_rounds: int | None, prefetch_rounds: int, save: Callable[[dict[str, Any]], None],
                  progress: Callable[[Any], None], event: Callable[..., Any],
                  end_epoch: Callable[..., None], run: dict[str, Any],
                  history: list[dict[str, Any]], checkpointing: bool,
                  validating: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The data-parallel loop.

    The global state lives on the workers, one shard per worker (keys split by
    ``shard_of``).  Per round, each lane's keys are looked up on their shards, the lane
    trains its chunk where the chunk was prepared, and each shard merges the lanes' results
    for its keys; the client only merges the bias and the loss sums and submits the next
    round while the current one merges.

    At every checkpoint and epoch end the client takes a snapshot of the shards: the point
    training restarts from if a worker, and so a shard, is lost.  ``state`` is rebuilt from
    the snapshot only where it is needed (``checkpointing``: to write it; ``validating``: to
    score the validation rows at an epoch end).  Returns the final state as (keys, zn, bias)
    rows (None when there was nothing left to train); ``acc`` holds the final loss sums.
    """
    distributed = runner.distributed
    client = runner.client
    chunk_rows = None if rows_per_round is None else rows_per_round // lanes
    chunks, _ = _plan(source, spec, chunk_rows=chunk_rows)
    rounds = [chunks[i:i + lanes] for i in range(0, len(chunks), lanes)]
    n_rounds = len(rounds)
    if checkpoint_rounds is None:
        per_round = max(1, rows_total // max(n_rounds, 1))
        checkpoint_rounds = max(1, math.ceil(checkpoint_every / per_round))
    schedule = [(e, r) for e in range(epoch, tp.epochs) for r in range(start_round if e == epoch else 0, n_rounds)]
    key_dtype = state.table.dtype.str
    timers = dict.fromkeys(("wait", "snapshot", "submit"), 0.0)
    run.update(lanes=lanes, rounds=0, rounds_per_epoch=n_rounds, recoveries=0)
    keys0, zn0 = table_items(state.table, state.values)
    # the recovery point: next schedule step, state rows (keys, zn), bias, acc, history length
    snap: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int] = (
        0, keys0, zn0, state.bias.copy(), acc.copy(), len(history))
    del keys0, zn0
    live: list[Any] = []  # futures of the current attempt (cancelled on failure)
    paused_since: dict[str, float] = {}
    held: dict[str, Any] = {}  # the current attempt's prepared chunks, merges and metas

    chunk_of: dict[str, tuple[int, ...]] = {}  # key of a live task -> the chunks it works on

    def submit(fn: Callable[..., Any], *args: Any, name: str, priority: int = 0, worker: str | None = None,
               on: tuple[int, ...] = ()) -> Any:
        fut = runner.submit(fn, *args, name=name, priority=priority, workers=None if worker is None else [worker])
        live.append(fut)
        if on:
            chunk_of[fut.key] = on
        return fut

    def on_lost_workers() -> frozenset[int]:
        """The chunks of this attempt's tasks that were running (or queued) on a worker when
        it died: the scheduler counts such a worker loss on the task ("suspicious").  Empty
        when the scheduler cannot tell (it refuses to run a function)."""

        def suspicious(dask_scheduler: Any, keys: list[str]) -> list[str]:
            tasks = dask_scheduler.tasks
            return [k for k in keys if k in tasks and tasks[k].suspicious > 0]

        try:
            hit = client.run_on_scheduler(suspicious, keys=list(chunk_of))
        except Exception:  # noqa: BLE001 - only a better error message is at stake
            return frozenset()
        return frozenset(ci for k in hit for ci in chunk_of.get(k, ()))

    def wait_all(futs: list[Any], owners: list[str], what: str) -> list[Any]:
        """Results of ``futs``; raises _ShardLost as soon as a worker holding a shard is gone
        (every data-parallel task is pinned to a worker, so its tasks would wait forever)."""
        t = time.perf_counter()

        def check() -> None:
            workers = client.scheduler_info(n_workers=-1).get("workers", {})
            if not set(owners) <= set(workers):
                raise _ShardLost("a worker holding a state shard left the cluster")
            now = time.monotonic()
            for w in owners:
                if workers[w].get("status") != "paused":
                    paused_since.pop(w, None)
                elif now - paused_since.setdefault(w, now) > PAUSED_LIMIT_S:
                    limit = workers[w].get("memory_limit") or 0
                    raise SparseCrossError(
                        f"Dask worker {w} holds part of the training state and has been paused for "
                        f"{PAUSED_LIMIT_S:g} s because it is near its memory limit"
                        f"{f' ({limit / 2**30:.2f} GiB)' if limit else ''}; the state cannot be spilled: "
                        "give the workers more memory (dask worker --memory-limit) or add workers"
                    )

        while True:
            try:
                with client.as_current():  # (``wait`` would use the default client)
                    distributed.wait(futs, timeout=1.0)
            except TimeoutError:
                pass
            except distributed.client.FuturesCancelledError:
                raise _ShardLost("a task was cancelled (its worker left)") from None
            status = [f.status for f in futs]
            for f, st in zip(futs, status):
                if st == "error":
                    exc = f.exception()
                    if isinstance(exc, _ShardLost):
                        raise exc
                    raise runner.error(exc, what)
            if all(st == "finished" for st in status):
                break
            if any(st in ("lost", "cancelled") for st in status):
                raise _ShardLost("a result was lost with its worker")
            check()
        out = []
        for f in futs:
            while True:
                try:
                    out.append(f.result(timeout=1.0))
                    break
                except TimeoutError:  # its worker died after the task finished
                    check()
                    if f.status != "finished":
                        raise _ShardLost("a result was lost with its worker") from None
        timers["wait"] += time.perf_counter() - t
        return out

    def attempt(i0: int) -> None:
        """Train schedule steps ``i0..`` from ``state``/``acc`` (raises _ShardLost)."""
        token = f"{runner.prefix}-a{run['recoveries']}"
        held["token"] = token
        held["waiting"] = i0
        owners = sorted(client.nthreads())
        if not owners:
            client.wait_for_workers(1, timeout=60)
            owners = sorted(client.nthreads())
        n_shards = len(owners)
        prep_args = (spec, batch_rows, holdout, salt, key_dtype, n_shards)
        _, keys_all, zn_all, bias, _, _ = snap
        owner = shard_of(keys_all, n_shards)
        merged = [submit(_task_shard_init, token, s, i0, keys_all[owner == s], zn_all[owner == s], spec.n_columns,
                         state.dtype, name=f"shard-init-{s}", priority=40, worker=owners[s])
                  for s in range(n_shards)]
        del keys_all, zn_all, owner
        bias = bias.copy()

        def home(i: int, j: int) -> str:
            """The worker of lane j of schedule step i: its chunk is prepared and trained there
            (never moved); lanes rotate over the workers, so with more workers than lanes
            every worker prepares chunks."""
            return owners[(i * lanes + j) % n_shards]

        prep: dict[tuple[int, int], tuple[Any, list[Any]]] = {}
        held["prep"] = prep
        next_prep = i0

        def prepare_until(i: int) -> None:
            nonlocal next_prep
            while next_prep < min(i, len(schedule)):
                e, r = schedule[next_prep]
                for j, c in enumerate(rounds[r]):
                    w = home(next_prep, j)
                    on = (c.index,)
                    pf = submit(_task_prepare, c, *prep_args, name=f"prep-e{e}-c{c.index}", worker=w, on=on)
                    kfs = [submit(_task_shard_keys, pf, s, name=f"keys-e{e}-c{c.index}-s{s}", priority=5, worker=w,
                                  on=on) for s in range(n_shards)]
                    prep[(e, c.index)] = (pf, kfs)
                next_prep += 1

        def finish(i: int, metas: list[Any], acc_in: list[np.ndarray]) -> None:
            """Round ``i`` is submitted: collect its bias and loss sums, report, and refresh
            ``state`` (checkpoint, validation) where due."""
            nonlocal bias
            e, r = schedule[i]
            held["waiting"] = i
            results = wait_all(metas, owners, " / ".join(c.describe() for c in rounds[r]))
            touched = sum(wait_all(merged, owners, "the state shards"))
            # Bias: average of the deltas of the lanes that trained at least one row.
            trained = [j for j, (_b, a) in enumerate(results) if a[2] > acc_in[j][2]]
            if len(trained) == 1:
                bias = results[trained[0]][0].copy()
            elif trained:
                dz = sum(float(results[j][0][0]) - float(bias[0]) for j in trained)
                dn = sum(float(results[j][0][1]) - float(bias[1]) for j in trained)
                bias = np.array([bias[0] + dz / len(trained), bias[1] + dn / len(trained)])
            # Progressive loss: lane 0 continued the running sums, the others started from zero.
            new = results[0][1].copy()
            for _b, a in results[1:]:
                new += a
            acc[:] = new
            run["rounds"] = max(run["rounds"], i + 1)  # (not counting rounds re-run after a loss)
            run["rows_processed"] = max(run["rows_processed"], rows_before[i + 1])
            done = r + 1
            row_end = rounds[r][-1].start_row + rounds[r][-1].rows
            progress(event(e, row_end, touched=touched,
                           extra={"round": done, "rounds": n_rounds, "lanes": lanes,
                                  "round_seconds": time.perf_counter() - t_submit.pop(i)}))
            if done == n_rounds or done % checkpoint_rounds == 0:
                t = time.perf_counter()
                dumps = wait_all([submit(_task_dump, token, s, i + 1, merged[s], name=f"dump-{i}-{s}", priority=40,
                                         worker=owners[s]) for s in range(n_shards)], owners, "the state shards")
                keys_all = np.concatenate([d[0] for d in dumps])
                zn_all = np.concatenate([d[1] for d in dumps])
                del dumps
                if checkpointing or (validating and done == n_rounds):  # the table is needed
                    _set_state(state, keys_all, zn_all, bias)
                timers["snapshot"] += time.perf_counter() - t
                if done == n_rounds:
                    nonzeros = int(np.count_nonzero(np.abs(zn_all[:, 0].astype(np.float64)) > params.l1))
                    end_epoch(e, {"rounds": n_rounds}, (len(keys_all), nonzeros))
                    save({"epoch": e + 1, "round": 0})
                else:
                    save({"epoch": e, "round": done})
                set_snap((i + 1, keys_all, zn_all, bias.copy(), acc.copy(), len(history)))

        t_submit: dict[int, float] = {}
        pending: tuple[int, list[Any], list[np.ndarray]] | None = None
        for i in range(i0, len(schedule)):
            e, r = schedule[i]
            t_submit[i] = time.perf_counter()
            prepare_until(i + 1 + prefetch_rounds)
            lane_chunks = rounds[r]
            kfs = [prep[(e, c.index)][1] for c in lane_chunks]
            ons = [(c.index,) for c in lane_chunks]
            looked = [[submit(_task_lookup, token, s, i, j, kfs[j][s], merged[s], name=f"look-{i}-l{j}-s{s}",
                              priority=30, worker=owners[s], on=ons[j]) for s in range(n_shards)]
                      for j in range(len(lane_chunks))]
            if pending is not None:
                finish(*pending)  # round i-1's bias is round i's starting bias
            t = time.perf_counter()
            acc_in = [acc.copy() if j == 0 else np.zeros(3, dtype=np.float64) for j in range(len(lane_chunks))]
            trains = [submit(_task_train_lane, prep[(e, c.index)][0], bias.copy(), acc_in[j], params, *looked[j],
                             name=f"lane-{i}-l{j}", priority=20, worker=home(i, j), on=ons[j])
                      for j, c in enumerate(lane_chunks)]
            parts = [[submit(_task_lane_part, tr, s, name=f"part-{i}-l{j}-s{s}", priority=25, worker=home(i, j),
                             on=ons[j]) for s in range(n_shards)] for j, tr in enumerate(trains)]
            metas = [submit(_task_lane_meta, tr, name=f"meta-{i}-l{j}", priority=25, worker=home(i, j), on=ons[j])
                     for j, tr in enumerate(trains)]
            merged = [submit(_task_merge, token, s, i, [k[s] for k in kfs], [lk[s] for lk in looked],
                             [p[s] for p in parts], merged[s], name=f"merge-{i}-s{s}", priority=30,
                             worker=owners[s], on=tuple(c.index for c in lane_chunks)) for s in range(n_shards)]
            for c in lane_chunks:
                del prep[(e, c.index)]
            del looked, trains, parts, kfs
            timers["submit"] += time.perf_counter() - t
            pending = (i, metas, acc_in)
            held["round"] = merged + metas
            live[:] = [f for f in live if f.status == "pending"]  # a held future holds its data
            pending_keys = {f.key for f in live}
            for k in [k for k in chunk_of if k not in pending_keys]:
                del chunk_of[k]
        if pending is not None:
            finish(*pending)

    def set_snap(value: tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]) -> None:
        nonlocal snap
        snap = value

    rows_before = [0]
    for _e, r in schedule:
        rows_before.append(rows_before[-1] + sum(c.rows for c in rounds[r]))
    def release() -> None:
        """Cancel what the current attempt still holds on the cluster (queued tasks, prepared
        chunks, the last round's results): nothing stays in the workers' memory."""
        prep = held.pop("prep", {})
        runner.cancel(live + [f for pf, kfs in prep.values() for f in (pf, *kfs)] + held.pop("round", []))
        live.clear()
        chunk_of.clear()

    # schedule step being waited for -> per worker loss there: (chunks on the lost worker,
    # chunks in flight)
    losses: dict[int, list[tuple[frozenset[int], frozenset[int]]]] = {}
    try:
        while True:
            try:
                attempt(snap[0])
                break
            except _ShardLost as exc:
                step = held.get("waiting", snap[0])
                # in flight: the round waited for, and chunks whose preparation had not finished
                # (or whose prepared chunk was lost with the worker); of those, the chunks of the
                # tasks on the lost worker are the suspects
                unfinished = {ci for (_e, ci), (pf, _k) in held.get("prep", {}).items() if pf.status != "finished"}
                hit = on_lost_workers()
                in_flight = frozenset(unfinished | {c.index for c in rounds[schedule[step][1]]} | hit)
                release()
                with contextlib.suppress(Exception):
                    client.run(_drop_shards, held["token"])
                run["recoveries"] += 1
                losses.setdefault(step, []).append((hit, in_flight))
                e, r = schedule[step]
                if len(losses[step]) >= ROUND_FAILURES:
                    raise SparseCrossError(
                        f"Dask workers died {len(losses[step])} times during round {r + 1} of epoch {e + 1} "
                        f"({_short(exc)}); {_name_suspects(chunks, losses[step])}; check the workers' memory "
                        "and logs"
                    ) from None
                log.warning("a training state shard was lost (%s); restarting from round %d of epoch %d",
                            _short(exc), schedule[snap[0]][1] + 1 if snap[0] < len(schedule) else n_rounds,
                            schedule[snap[0]][0] + 1 if snap[0] < len(schedule) else tp.epochs)
                acc[:] = snap[4]
                del history[snap[5]:]
    finally:
        release()
        with contextlib.suppress(Exception):
            client.run(_drop_shards, runner.prefix)
    run.update({f"{k}_seconds": v for k, v in timers.items()})
    if not schedule:
        return None
    return snap[1], snap[2], snap[3]


def _rank_suspects(losses: Sequence[tuple[Set[int], Set[int]]]) -> list[int]:
    """The chunks of repeated worker losses, most suspect first.

    ``losses``: per loss, (chunks of the tasks on the lost worker, chunks in flight).  First
    the chunks on the lost worker at every loss (the intersection), then by how many losses
    they were on the lost worker, then by how many losses they were in flight (again the
    intersection first), then in chunk order."""
    on = Counter(ci for hit, _ in losses for ci in set(hit))
    seen = Counter(ci for hit, fl in losses for ci in set(hit) | set(fl))
    return sorted(seen, key=lambda ci: (-on[ci], -seen[ci], ci))


def _name_suspects(chunks: Sequence[_Chunk], losses: Sequence[tuple[Set[int], Set[int]]], limit: int = 6) -> str:
    """One line naming the chunks of :func:`_rank_suspects` (at most ``limit``), saying which
    ones were on the lost worker at every loss."""
    ranked = _rank_suspects(losses)
    every = [ci for ci in ranked if all(ci in hit for hit, _ in losses)]
    shown = ranked[:limit]
    more = f" and {len(ranked) - len(shown)} more" if len(ranked) > len(shown) else ""
    names = [chunks[ci].describe() for ci in shown]
    if not every:
        return f"chunks in flight: {'; '.join(names)}{more}"
    lead = f"chunks on the lost worker at every loss: {'; '.join(names[:len(every)])}"
    if len(every) >= len(shown):  # (``more``, if any, counts the rest)
        return lead + more
    return f"{lead}; also in flight: {'; '.join(names[len(every):])}{more}"


def _set_state(state: FTRLState, keys: np.ndarray, zn: np.ndarray, bias: np.ndarray) -> None:
    """Make ``state`` hold the rows (keys, zn) and ``bias``."""
    fresh = FTRLState(state.n_columns, state.dtype, capacity=int(math.ceil((len(keys) + 1) / MAX_LOAD)) + 1)
    fill_table(fresh.table, fresh.values, fresh.count, keys.astype(fresh.table.dtype, copy=False), zn)
    state.table, state.values, state.count = fresh.table, fresh.values, fresh.count
    state.bias[:] = bias


class _RowsState:
    """A trained state as (key, (z, n)) rows: what ``export_state`` reads, without building a
    hash table."""

    def __init__(self, keys: np.ndarray, zn: np.ndarray, bias: np.ndarray) -> None:
        self.keys, self.zn, self.bias = keys, zn, bias

    @property
    def touched(self) -> int:
        return len(self.keys)

    def nonzero_weights(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray]:
        return sorted_nonzero(*items_weights(self.keys, self.zn, params))

    def bias_weight(self, params: FTRLParams) -> float:
        return FTRLState.bias_weight(self, params)  # type: ignore[arg-type]
