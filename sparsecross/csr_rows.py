"""The rows of a training batch as plain CSR arrays: what the training loop reads of a batch
(``indptr``, ``indices``, ``data``, ``shape``), without building a scipy matrix, so that training
from Parquet never imports scipy (about 0.2 s of every process)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["CSRRows"]


class CSRRows(NamedTuple):
    """Canonical CSR rows (sorted, duplicate-free): int64 ``indptr``/``indices``, float32 ``data``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])
