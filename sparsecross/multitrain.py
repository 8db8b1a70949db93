"""Many FTRL states trained side by side: one read of the data per epoch for all of them.

A *lane* is one setting (its own :class:`~sparsecross.train.TrainParams`: alpha, l1, l2...) and
its own state.  Every batch is read and featurized once and fed, in order, to each live lane, so
each lane ends exactly where ``train`` with its parameters would (same rows, same order, same
kernel).  A lane may train on the batch's columns plus one *view* of extra columns (cross
search: the columns of one candidate cross, placed after the base spec's columns).

``path`` trains its grid with :func:`train_epoch` and validates once at the end;
:func:`run_lanes` (``tune``, cross search) validates every live lane after every epoch, in one
read of the validation data, and retires a lane whose validation logloss has not improved for
``patience`` epochs (its best epoch is the one kept, as ``train(early_stop=...)`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .admission import Admission
from .budget import apply_budget
from .featurize import Batch
from .metrics import StreamingMetrics
from .state import FTRLState, GrowthPlan
from .state16 import new_state
from .train import TrainParams, _score_mask, _train_mask, prefetch, train_batch

__all__ = ["Lane", "train_epoch", "validate_lanes", "run_lanes", "epoch_record", "hstack_columns"]

#: What a lane iterator yields: the batch under the base spec and the extra column blocks
#: (one CSR per view, same rows; empty when no lane has a view).
Item = tuple[Batch, Sequence[Any]]


@dataclass
class Lane:
    """One setting being trained.  ``view``: index of the extra column block this lane also
    trains on (-1: the batch's columns only); ``offset``: where those columns start."""

    params: TrainParams
    state: FTRLState | None
    plan: GrowthPlan
    view: int = -1
    offset: int = 0
    acc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_logloss: float = math.nan
    live: bool = True
    max_state_mb: float | None = None

    @classmethod
    def new(cls, params: TrainParams, n_columns: int, rows: int, view: int = -1, offset: int = 0,
            seed: int = 0, max_state_mb: float | None = None) -> Lane:
        """A lane with a new state, its own admission filter when ``params.admit`` admits
        (``seed``: the spec's hashing seed, as ``train`` seeds it) and its own state budget of
        ``max_state_mb`` MiB (None: none), as ``train(max_state_mb=...)`` bounds its state."""
        state = new_state(n_columns, params.state_dtype, params.state_bits, seed)
        if params.admit.active:
            state.admission = Admission(params.admit.sized(rows), seed)
        apply_budget(state, max_state_mb)
        return cls(params, state, GrowthPlan(rows), view, offset, max_state_mb=max_state_mb)


def hstack_columns(A: Any, B: Any, offset: int, n_columns: int) -> Any:
    """CSR rows ``[A | B shifted by offset]`` (canonical when both are and ``offset >= A``'s
    width): the entries of A then those of B, row by row, in vectorized numpy."""
    import scipy.sparse as sp

    la = np.diff(A.indptr)
    lb = np.diff(B.indptr)
    indptr = np.zeros(len(la) + 1, dtype=np.int64)
    np.cumsum(la + lb, out=indptr[1:])
    rows_a = np.repeat(np.arange(len(la)), la)
    rows_b = np.repeat(np.arange(len(lb)), lb)
    pos_a = indptr[:-1][rows_a] + (np.arange(len(A.indices)) - A.indptr[:-1][rows_a])
    pos_b = indptr[:-1][rows_b] + la[rows_b] + (np.arange(len(B.indices)) - B.indptr[:-1][rows_b])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(int(indptr[-1]), dtype=A.data.dtype)
    indices[pos_a] = A.indices
    indices[pos_b] = B.indices.astype(np.int64) + offset
    data[pos_a] = A.data
    data[pos_b] = B.data
    X = sp.csr_array((data, indices, indptr), shape=(len(la), n_columns))
    X.has_sorted_indices = True
    X.has_canonical_format = True
    return X


def _lane_batch(item: Item, lane: Lane, cache: dict[int, Batch]) -> Batch:
    batch, extras = item
    if lane.view < 0:
        return batch
    if lane.view not in cache:
        assert lane.state is not None
        X = hstack_columns(batch.X, extras[lane.view], lane.offset, lane.state.n_columns)
        cache[lane.view] = batch._replace(X=X)
    return cache[lane.view]


def train_epoch(lanes: Sequence[Lane], items: Iterable[Item], *, holdout: float | None, salt: int,
                first: bool, epoch: int = 0) -> int:
    """Train every lane on one epoch of ``items`` (each lane's progressive loss in ``lane.acc``,
    reset here); returns the rows skipped for a missing label.  ``first``: the first epoch,
    whose growths are sized by each lane's plan (as ``train`` does); ``epoch`` (0-based) seeds
    Poisson admission, as in ``train``."""
    for lane in lanes:
        lane.acc[:] = 0.0
        if lane.state is not None and lane.state.admission is not None:
            lane.state.admission.begin_epoch(epoch)
        if lane.state is not None:
            lane.state.begin_epoch(epoch)  # a 16-bit state's rounding seed
    skipped = 0
    position = 0  # in this epoch's reading order (shuffled batches do not start at their start_row)
    for item in items:
        batch = item[0]
        mask = _train_mask(batch, holdout, salt)
        if batch.skip is not None:
            skipped += int(np.count_nonzero(batch.skip))
        cache: dict[int, Batch] = {}
        for lane in lanes:
            assert lane.state is not None
            train_batch(lane.state, _lane_batch(item, lane, cache), lane.params.ftrl, mask, lane.acc,
                        lane.plan if first else None, position)
        position += batch.X.shape[0]
    return skipped


def validate_lanes(lanes: Sequence[Lane], items: Iterable[Item], *, holdout: float | None,
                   salt: int) -> list[StreamingMetrics]:
    """Logloss/AUC of every lane over one read of ``items`` (only the holdout rows with
    ``holdout``), as :func:`sparsecross.train.evaluate_states` computes them."""
    metrics = [StreamingMetrics() for _ in lanes]
    for item in items:
        batch = item[0]
        mask, skipped = _score_mask(batch, holdout, salt)
        cache: dict[int, Batch] = {}
        for lane, m in zip(lanes, metrics):
            assert lane.state is not None
            b = _lane_batch(item, lane, cache)
            m.update(lane.state.margins(b.X, lane.params.ftrl), b.y, b.sample_weight, mask)
            m.skipped += skipped
    return metrics


def epoch_record(epoch: int, acc: np.ndarray, skipped: int, m: StreamingMetrics, skipping: bool) -> dict[str, Any]:
    """The history record ``train`` writes for an epoch (same keys, same order), so that a
    model exported from a lane is byte-identical to ``train``'s."""
    record: dict[str, Any] = {"epoch": epoch, "progressive_logloss": float(acc[0] / max(acc[1], 1e-300)),
                              "train_rows": int(acc[2])}
    if skipping:
        record["skipped_rows"] = skipped
    record.update(valid_rows=m.rows, valid_logloss=m.logloss, valid_auc=m.auc, valid_positive_rate=m.positive_rate)
    if skipping:
        record["valid_skipped_rows"] = m.skipped
    return record


def _improves(v: float, best: float, have_best: bool) -> bool:
    """As ``train``'s best epoch: the first of equals; NaN never improves on a number."""
    return not have_best or (not math.isnan(v) and (math.isnan(best) or v < best))


def run_lanes(
    lanes: Sequence[Lane],
    *,
    epochs_max: int,
    patience: int,
    train_items: Callable[[int], Iterator[Item]],
    valid_items: Callable[[], Iterator[Item]],
    holdout: float | None,
    salt: int,
    skipping: bool,
    on_improve: Callable[[Lane], None] | None = None,
    on_finish: Callable[[Lane], None] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> int:
    """Train ``lanes`` for up to ``epochs_max`` epochs (one read of the training data per epoch
    for all live lanes, then one read of the validation data, ``valid_items()``), and retire each
    lane after ``patience`` epochs without a lower validation logloss, or at ``epochs_max``.

    ``on_improve(lane)`` runs when a lane's last epoch is its best so far (its state is that
    epoch's: export it now, or copy it); ``on_finish(lane)`` when it retires, after which its
    state is dropped.  ``on_epoch(epoch, live_lanes)`` before each epoch.  Returns the number of
    epochs read."""
    reads = 0
    for epoch in range(epochs_max):
        live = [lane for lane in lanes if lane.live]
        if not live:
            break
        if on_epoch is not None:
            on_epoch(epoch + 1, len(live))
        skipped = train_epoch(live, prefetch(train_items(epoch)), holdout=holdout, salt=salt, first=epoch == 0,
                              epoch=epoch)
        reads += 1
        metrics = validate_lanes(live, prefetch(valid_items()), holdout=holdout, salt=salt)
        for lane, m in zip(live, metrics):
            lane.history.append(epoch_record(epoch + 1, lane.acc, skipped, m, skipping))
            if _improves(m.logloss, lane.best_logloss, lane.best_epoch is not None):
                lane.best_epoch, lane.best_logloss = epoch + 1, m.logloss
                if on_improve is not None:
                    on_improve(lane)
            assert lane.best_epoch is not None
            if epoch + 1 - lane.best_epoch >= patience or epoch + 1 == epochs_max:
                lane.live = False
                if on_finish is not None:
                    on_finish(lane)
                lane.state = None  # its memory goes now, not at the end
    return reads
