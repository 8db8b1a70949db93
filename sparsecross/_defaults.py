"""Defaults the CLI shows in ``--help``, kept apart so that building the parser imports
nothing heavy (``sparsecross.read`` imports pyarrow)."""

#: Rows per Arrow batch (memory scales with it; results do not).
DEFAULT_BATCH_ROWS = 1 << 16

#: Rows permuted together by ``--shuffle`` (memory scales with it; the order depends on it).
DEFAULT_SHUFFLE_BUFFER_ROWS = 1 << 18

#: Rows per batch when scoring (predict, eval): larger than training's, about 10% less CPU.
PREDICT_BATCH_ROWS = 1 << 18
