"""Worker tasks of one data-parallel lane: prepare a chunk (featurize, renumber by its
distinct keys, split by shard; the chunk stays on its worker, its keys go to the shards'
look-ups), train it on a dense array of its keys (the result split by shard, for the shards'
merges)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels.ftrl import FTRLParams
from .._kernels.lanes import ftrl_pass_local, id_set, renumber, shard_of
from ..featurize import featurize_features
from ..labels import _labels
from ..spec import FeatureSpec
from .plan import _Chunk, _holdout_mask, _read_chunk
from .shards import _dropped, _ShardLost

#: A lane's chunk (a round's rows for one lane: one or several row groups) is read, featurized
#: and renumbered in parts of at most this many rows (or ``batch_rows``, when larger), so that
#: the featurizer's transient arrays are the size of a part whatever the round's size (a
#: 5M-row chunk prepared and trained at once peaked at 1,023 MiB with 152,000 page faults, in
#: parts at 688 MiB with 47,000).
PART_ROWS = 1 << 18


@dataclass
class _LanePart:
    """Consecutive rows of a lane's chunk, featurized: CSR rows with the entries renumbered by
    the chunk's distinct keys (``local``, instead of the column ids), labels, weights and
    holdout mask; ``offset``: its first row in the chunk."""

    indptr: np.ndarray
    local: np.ndarray
    data: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray  # length 0: all ones
    mask: np.ndarray
    offset: int


@dataclass
class _LaneChunk:
    """A featurized chunk kept on a worker for a lane: its parts, in row order, and where each
    shard's keys sit among the chunk's distinct keys (ids by first appearance in the chunk)."""

    parts: list[_LanePart]
    n_keys: int
    positions: list[np.ndarray]  # per shard: indices into the chunk's keys
    keys: list[np.ndarray]  # per shard: those keys


#: Chunks prepared on this worker for the lane that trains them here:
#: (token, epoch, chunk index) -> chunk.  A preparation returns only the chunk's keys (what
#: travels to the shards) and leaves the chunk here for its lane task, which drops it; a chunk
#: lost with its worker is a lost shard (the attempt restarts from the snapshot), and
#: ``_drop_prepared`` forgets a run's chunks (``shards._drop_shards`` calls it).
_PREPARED: dict[tuple[str, int, int], _LaneChunk] = {}


class _Renumbering:
    """The distinct keys of a chunk's parts, numbered by first appearance across the parts
    (``_kernels.lanes.renumber``)."""

    def __init__(self, key_dtype: np.dtype) -> None:
        self.proto = np.full(1, np.iinfo(key_dtype).max, dtype=key_dtype)
        self.tbl: np.ndarray | None = None
        self.out = np.empty(0, dtype=key_dtype)
        self.m = 0

    def add(self, indptr: np.ndarray, indices: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The ids of one more part's entries (int32, -1 in masked rows)."""
        nnz = len(indices)
        if self.tbl is None:  # sized like local_ids' first guess, from the first part
            cap = 1 << 12
            while cap < nnz // 4:
                cap *= 2
            self.tbl, self.hot_key, self.hot_id = id_set(cap, self.proto)
        if self.m + nnz > len(self.out):  # room for every entry to be a new key
            out = np.empty(max(self.m + nnz, 2 * len(self.out)), dtype=self.out.dtype)
            out[:self.m] = self.out[:self.m]
            self.out = out
        local = np.empty(nnz, dtype=np.int32)
        self.tbl, self.m = renumber(indptr, indices, mask, self.tbl, self.out, self.m, self.hot_key, self.hot_id,
                                    local)
        return local

    def keys(self) -> np.ndarray:
        return self.out[:self.m].copy()


def _prepare(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None, salt: int, key_dtype: str,
             n_shards: int) -> _LaneChunk:
    """Featurize a chunk for data-parallel training, part by part (:data:`PART_ROWS`),
    renumber its entries by its distinct keys (as ``key_dtype``, the state table's key
    dtype) and split those by shard."""
    ids = _Renumbering(np.dtype(key_dtype))
    parts = []
    for rb, row in _read_chunk(chunk, spec, batch_rows=max(batch_rows, min(chunk.rows, PART_ROWS))):
        y, w = _labels(spec, rb, row)
        X = featurize_features(spec, rb, row, scipy_csr=False)
        mask = _holdout_mask(row, X.shape[0], holdout, salt)
        local = ids.add(X.indptr, X.indices, mask)
        sw = w if w is not None else np.zeros(0)
        parts.append(_LanePart(X.indptr, local, X.data, y, sw, mask, row - chunk.start_row))
    keys = ids.keys()
    owner = shard_of(keys, n_shards)
    positions = [np.flatnonzero(owner == s) for s in range(n_shards)]
    return _LaneChunk(parts, len(keys), positions, [keys[p] for p in positions])


def _task_prepare(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None, salt: int,
                  key_dtype: str, n_shards: int, token: str, epoch: int) -> list[np.ndarray]:
    """Task (pinned to the lane's worker): prepare ``chunk`` (:func:`_prepare`) for epoch
    ``epoch`` of run ``token``, keep it on this worker, return its keys per shard."""
    prep = _prepare(chunk, spec, batch_rows, holdout, salt, key_dtype, n_shards)
    where = (token, epoch, chunk.index)
    _PREPARED[where] = prep
    if _dropped(token):  # the run was stopped while this task ran: keep nothing
        _PREPARED.pop(where, None)
        raise _ShardLost(f"training run {token} was stopped")
    return prep.keys


def _drop_prepared(token: str) -> int:
    """Forget the prepared chunks of a run or attempt ``token`` (and of the attempts of a run)."""
    gone = [k for k in _PREPARED if k[0] == token or k[0].startswith(token + "-")]
    for k in gone:
        del _PREPARED[k]
    return len(gone)


#: A lane's result: the new (z, n) of its keys per shard (in the order of ``_LaneChunk.keys``),
#: the new bias and the new loss sums.
_LaneResult = tuple[list[np.ndarray], np.ndarray, np.ndarray]


def _prepared(token: str, epoch: int, index: int) -> _LaneChunk:
    """The chunk prepared on this worker for lane training (raises _ShardLost if gone)."""
    prep = _PREPARED.get((token, epoch, index))
    if prep is None:
        raise _ShardLost(f"prepared chunk {index} is not on this worker (it was lost with its worker)")
    return prep


def _trained(token: str, epoch: int, index: int) -> None:
    """A lane task's chunk is trained: no longer needed (a task is re-run only after it
    failed, and then the chunk is still here; after a worker loss the attempt restarts with
    fresh preparations)."""
    del _PREPARED[(token, epoch, index)]


def _train_chunk(prep: _LaneChunk, base: list[np.ndarray], bias: np.ndarray, acc: np.ndarray,
                 params: FTRLParams, data: list[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train ``prep`` on a dense array of its keys starting from ``base[s]`` (the (z, n) of its
    keys of shard s); ``data``: the entries' values per part (default the chunk's).  Returns
    that array after the pass over the parts in order (rows by local key), the new bias and
    the new loss sums."""
    zn = np.zeros((prep.n_keys, 2), dtype=base[0].dtype if base else np.float32)
    for pos, values in zip(prep.positions, base):
        zn[pos] = values
    bias = np.array(bias, dtype=np.float64)
    acc = np.array(acc, dtype=np.float64)
    for i, p in enumerate(prep.parts):
        ftrl_pass_local(p.indptr, p.local, p.data if data is None else data[i], p.y, p.sample_weight, p.mask, zn,
                        bias, params, acc)
    return zn, bias, acc


def _task_train_lane(keys: list[np.ndarray], token: str, epoch: int, index: int, bias: np.ndarray,
                     acc: np.ndarray, params: FTRLParams, lane: int, *looked: list[np.ndarray]) -> _LaneResult:
    """Task (pinned where chunk ``index`` was prepared): train lane ``lane`` of a round.

    ``keys``: the chunk's preparation's result (an ordering dependency); ``looked[s]``: shard
    s's look-up of the round (one (z, n) array per lane; this lane's is ``looked[s][lane]``,
    the values of its keys of shard s at the start of the round); ``bias`` the global bias;
    ``acc`` the progressive-loss sums to continue.  Returns the new (z, n) per shard, the new
    bias and the new sums.  A pure function of its inputs and of the prepared chunk.
    """
    prep = _prepared(token, epoch, index)
    zn, bias, acc = _train_chunk(prep, [part[lane] for part in looked], bias, acc, params)
    _trained(token, epoch, index)
    return [zn[pos] for pos in prep.positions], bias, acc
