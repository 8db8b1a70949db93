"""Defaults the CLI shows in ``--help``, kept apart so that building the parser imports
nothing heavy (``sparsecross.read`` imports pyarrow)."""

#: Most passes (``epochs``, ``early_stop``, ``epochs_max``, ``patience``) a run may ask for: far
#: past any real use, and an epoch count stays a small integer in the model's JSON and checkpoints.
MAX_EPOCHS = 1_000_000

#: Rows per Arrow batch (memory scales with it; results do not).
DEFAULT_BATCH_ROWS = 1 << 16

#: Rows permuted together by ``--shuffle`` (memory scales with it; the order depends on it).
DEFAULT_SHUFFLE_BUFFER_ROWS = 1 << 18

#: Rows per batch when scoring (predict, eval): larger than training's, about 10% less CPU.
PREDICT_BATCH_ROWS = 1 << 18

#: Data-parallel lanes per round (``--lanes``, ``train(..., lanes=)`` on Dask): a model parameter.
DEFAULT_LANES = 4

#: Data-parallel rounds without ``rows_per_round``: a lane's chunk is consecutive whole row
#: groups, as near this many rows as they come (a larger group is a chunk of its own).  Dask
#: costs ~4 ms of CPU per task here, and a round is 2K + 2S tasks: on 10M rows in 65,536-row
#: groups, K=2 on 1 worker, one group per lane spent 5.6-6.8 CPU-s, chunks of four 4.5-5.2
#: (docs/DASK.md, "Fifth pass"); pairing 250,000-row groups instead cost more (bigger rounds
#: fault in more memory).  Recorded in the run's parameters (``lane_rows_target``).
LANE_ROWS_TARGET = 1 << 18

#: ``tune``'s grids and epochs (see sparsecross.tune for why these values).
TUNE_ALPHA = (0.025, 0.05, 0.1, 0.2, 0.4)
TUNE_L1 = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
TUNE_EPOCHS_MAX = 8

#: ``tune --search-crosses``: relative validation-logloss gain a cross must reach (sparsecross.crosssearch).
CROSS_MIN_GAIN = 0.01

#: Partitioned training (``mode="partitioned"``) without ``rows_per_round``: a chunk is
#: consecutive whole row groups as near this many rows as they come, a round ``lanes``
#: chunks.  Only the shared keys wait for the round's merge, so rounds can be larger than
#: data-parallel's, and Dask's few milliseconds of CPU per task weigh less per row.  Recorded
#: in the run's parameters (``chunk_rows_target``).
PARTITION_CHUNK_ROWS = 1 << 20
