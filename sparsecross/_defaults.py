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
#: groups holding at least this many rows (one row group when it is that large).  Dask costs a
#: few milliseconds of CPU per task, and a round is 2K + 2S tasks: with 65,536-row groups, one
#: group per lane spent 6.3-6.8 CPU-s on 10M rows at K=2 against 4.8-5.4 in chunks of 262,144
#: rows (docs/DASK.md, "Fifth pass").  Recorded in the run's parameters (``lane_rows_min``).
MIN_LANE_ROWS = 1 << 18

#: ``tune``'s grids and epochs (see sparsecross.tune for why these values).
TUNE_ALPHA = (0.025, 0.05, 0.1, 0.2, 0.4)
TUNE_L1 = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
TUNE_EPOCHS_MAX = 8

#: ``tune --search-crosses``: relative validation-logloss gain a cross must reach (sparsecross.crosssearch).
CROSS_MIN_GAIN = 0.01
