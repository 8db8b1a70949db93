"""One training step: the reader running ahead in a thread (:func:`prefetch`), the rows a
batch trains on or scores (holdout and skipped labels), and :func:`train_batch`, the update of
the state by one batch (growing or evicting as needed)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np

from ._kernels.ftrl import FTRLParams, ftrl_pass
from ._kernels.hash import holdout_mask
from .featurize import Batch
from .state import FTRLState, GrowthPlan

__all__ = ["prefetch", "train_batch"]

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(it: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``it`` in a background thread, ``depth`` items ahead, preserving order and errors."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            put(_Failure(exc))

    t = threading.Thread(target=worker, name="sparsecross-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def _mask_for(batch: Batch, fraction: float | None, salt: int) -> np.ndarray:
    if fraction is None:
        return np.zeros(0, dtype=np.uint8)
    if batch.rows is not None:  # a shuffled batch: rows in any order
        from .order import row_holdout_mask

        return row_holdout_mask(batch.rows, float(fraction), salt)
    return holdout_mask(batch.start_row, batch.X.shape[0], float(fraction), np.uint64(salt))


def _train_mask(batch: Batch, fraction: float | None, salt: int) -> np.ndarray:
    """Rows not trained on (nonzero): the holdout rows and the rows whose label is skipped."""
    mask = _mask_for(batch, fraction, salt)
    skip = batch.skip
    if skip is None or len(skip) == 0:
        return mask
    return skip if len(mask) == 0 else mask | skip


def _score_mask(batch: Batch, fraction: float | None, salt: int) -> tuple[np.ndarray, int]:
    """(rows scored -- nonzero, or length 0 for all --, rows among the validation rows
    skipped for a missing label)."""
    mask = _mask_for(batch, fraction, salt)
    skip = batch.skip
    if skip is None or len(skip) == 0:
        return mask, 0
    if len(mask) == 0:
        return (skip == 0).astype(np.uint8), int(np.count_nonzero(skip))
    return mask & (skip == 0), int(np.count_nonzero(mask & skip))



_NO_FILTER = np.zeros(0, dtype=np.uint8)
_NO_ADMIT = np.zeros(0, dtype=np.uint64)
_NO_COUNTS = np.zeros(2, dtype=np.int64)  # never written: admission is off



def train_batch(state: FTRLState, batch: Batch, params: FTRLParams, row_mask: np.ndarray,
                acc: np.ndarray, plan: GrowthPlan | None = None, position: int | None = None) -> None:
    """Update ``state`` with every (unmasked) row of ``batch``, growing the table as needed.

    ``plan``: sizes each growth from the distinct keys seen so far, rows counted from
    ``position`` (the batch's place in the epoch's reading order; default ``batch.start_row``,
    which is that place when the data are not shuffled); without it the table doubles.
    Results do not depend on it."""
    X = batch.X
    sw = batch.sample_weight if batch.sample_weight is not None else np.zeros(0)
    first = batch.start_row if position is None else position
    adm = state.admission
    filt, cfg, counts = (_NO_FILTER, _NO_ADMIT, _NO_COUNTS) if adm is None else (adm.filter, adm.at_row(first),
                                                                                  adm.counts)
    start = 0
    n = X.shape[0]
    while start < n:
        if state.bits == 16:  # the 16-bit state (state16.py): its own kernel
            start = state.train_rows(X, batch.y, sw, row_mask, start, params, acc, filt, cfg, counts, first)
        else:
            start = ftrl_pass(X.indptr, X.indices, X.data, batch.y, sw, row_mask, start,
                              state.table, state.values, state.count, state.max_count, state.bias, params, acc,
                              filt, cfg, counts)
        if start < n:
            row_nnz = int(X.indptr[start + 1] - X.indptr[start])
            if state.grow_side(row_nnz):  # a 16-bit state's zbig
                continue
            if state.at_budget:  # the state budget: evict instead of growing (row-determined)
                state.make_room(row_nnz, params)
                continue
            needed = row_nnz
            if plan is not None:
                row = first + start
                plan.observe(row, state.touched)
                needed = max(needed, plan.projected(row, state.touched) - state.touched)
            state.grow(needed)
    if plan is not None:
        plan.observe(first + n, state.touched)
