"""Worker tasks of one data-parallel lane: prepare a chunk (featurize, renumber by its
distinct keys, split by shard; the chunk stays on its worker, its keys go to the shards'
look-ups), train it on a dense array of its keys (the result split by shard, for the shards'
merges)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels.ftrl import FTRLParams
from .._kernels.lanes import ftrl_pass_local, local_ids, shard_of
from ..spec import FeatureSpec
from .plan import _Chunk, _featurize_chunk, _holdout_mask
from .shards import _dropped, _ShardLost


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


#: Chunks prepared on this worker for the lane that trains them here:
#: (token, epoch, chunk index) -> chunk.  A preparation returns only the chunk's keys (what
#: travels to the shards) and leaves the chunk here for its lane task, which drops it; a chunk
#: lost with its worker is a lost shard (the attempt restarts from the snapshot), and
#: ``_drop_prepared`` forgets a run's chunks (``shards._drop_shards`` calls it).
_PREPARED: dict[tuple[str, int, int], _LaneChunk] = {}


def _prepare(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None, salt: int, key_dtype: str,
             n_shards: int) -> _LaneChunk:
    """Featurize a chunk for data-parallel training, renumber its entries by its distinct
    keys (as ``key_dtype``, the state table's key dtype) and split those by shard."""
    b = _featurize_chunk(chunk, spec, batch_rows)
    mask = _holdout_mask(b.start_row, b.X.shape[0], holdout, salt)
    kd = np.dtype(key_dtype)
    proto = np.full(1, np.iinfo(kd).max, dtype=kd)
    keys, local = local_ids(b.X.indptr, b.X.indices, mask, proto)
    owner = shard_of(keys, n_shards)
    positions = [np.flatnonzero(owner == s) for s in range(n_shards)]
    sw = b.sample_weight if b.sample_weight is not None else np.zeros(0)
    return _LaneChunk(b.X.indptr, local, b.X.data, b.y, sw, mask, len(keys), positions, [keys[p] for p in positions])


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
                 params: FTRLParams, data: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train ``prep`` on a dense array of its keys starting from ``base[s]`` (the (z, n) of its
    keys of shard s); ``data``: the entries' values (default the chunk's).  Returns that
    array after the pass (rows by local key), the new bias and the new loss sums."""
    zn = np.zeros((prep.n_keys, 2), dtype=base[0].dtype if base else np.float32)
    for pos, values in zip(prep.positions, base):
        zn[pos] = values
    bias = np.array(bias, dtype=np.float64)
    acc = np.array(acc, dtype=np.float64)
    ftrl_pass_local(prep.indptr, prep.local, prep.data if data is None else data, prep.y, prep.sample_weight,
                    prep.mask, zn, bias, params, acc)
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
