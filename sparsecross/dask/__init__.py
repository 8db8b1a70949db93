"""Scale-out on Dask: featurize, train, predict and evaluate over partitioned Parquet.

Optional: ``pip install 'sparsecross[dask]'``.  Nothing here imports dask at module level, and
the single-node code never imports this package: :func:`sparsecross.train` hands a call with a
Dask ``client`` over through :mod:`sparsecross._cluster_entry`.

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

Modules
-------
:mod:`.cluster` (connect, local clusters, worker checks), :mod:`.runner` (task submission),
:mod:`.plan` (chunks: planning on the client, reading and featurizing on the workers),
:mod:`.shards` (the sharded state on the workers), :mod:`.growth` (how a shard's table grows), :mod:`.admit` (admission and the state
budget per shard), :mod:`.lane_tasks` (a lane's worker tasks), :mod:`.rounds` and :mod:`.waiting` (the data-parallel round loop), :mod:`.exact`
(exact mode), :mod:`.training` (``train_distributed``), :mod:`.scoring` (predict and
evaluate), :mod:`.faults` (naming the chunks that kill workers).  ``sparsecross.distributed``
is the former single module, kept as a thin compatibility face.

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

from .cluster import DaskNotInstalledError, connect
from .scoring import evaluate_distributed, predict_distributed
from .training import MODES, train_distributed

__all__ = [
    "connect",
    "train_distributed",
    "predict_distributed",
    "evaluate_distributed",
    "DaskNotInstalledError",
    "MODES",
]
