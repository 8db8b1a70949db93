"""Defaults the CLI shows in ``--help``, kept apart so that building the parser imports
nothing heavy (``sparsecross.read`` imports pyarrow)."""

#: Rows per Arrow batch (memory scales with it; results do not).
DEFAULT_BATCH_ROWS = 1 << 16
