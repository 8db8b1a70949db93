"""Streaming FTRL-Proximal training: read -> featurize -> update, batch after batch.

The reader and featurizer run one batch ahead in a background thread (the Numba kernels and
pyarrow release the GIL), so reading overlaps training; the update itself is serial and
deterministic: the same rows in the same order give the same state, bit for bit, whatever the
batch size, and a run resumed from a checkpoint ends with the same model.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from ._kernels.ftrl import FTRLParams, ftrl_pass
from ._kernels.hash import holdout_mask
from .admission import Admission, AdmitPolicy, policy_of
from .budget import apply_budget, check_max_state_mb
from .checkpoint import open_checkpoint, prune_best, read_best, save_best, source_fingerprint
from .errors import CheckpointError, DataError, EmptyModelWarning, ParameterError, SparseCrossError
from .featurize import Batch, iter_batches, resolve_spec
from .hashing import holdout_salt
from .metrics import StreamingMetrics
from .model import SparseModel
from .names import NameRecorder, record_names
from .order import DEFAULT_SHUFFLE_BUFFER_ROWS, OrderCheck, Shuffle, iter_shuffled_batches
from .read import DEFAULT_BATCH_ROWS, Source, count_rows
from .schema import check_compatible, source_schema
from .spec import FeatureSpec
from .state import FTRLState, GrowthPlan

__all__ = ["train", "TrainParams", "ProgressEvent", "evaluate_state", "peak_rss_bytes"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TrainParams:
    """FTRL-Proximal hyperparameters and the training schedule.

    Parameters
    ----------
    alpha : float, > 0, typical 0.05-0.5 (default 0.1)
        Learning-rate *scale*: coordinate i moves at rate ``alpha / (beta + sqrt(n_i))``.
        This is FTRL's alpha (McMahan et al.), NOT scikit-learn's regularization ``alpha``.
    beta : float, >= 0, typical 1.0 (default 1.0)
        Smooths the per-coordinate rate at the start, while ``n_i`` is small.
    l1 : float, >= 0, typical 0.1-10 (default 1.0)
        L1 strength: a weight is exactly 0 while ``|z_i| <= l1``.  Larger -> fewer nonzeros.
    l2 : float, >= 0, typical 0-10 (default 0.0)
        L2 strength: shrinks weights, never makes them exactly zero.
    epochs : int, >= 1 (default 1)
        Passes over the data, in the same order each time.
    label_smoothing : float in [0, 1) (default 0.0)
        Targets become ``y * (1 - eps) + eps / 2``; metrics still use the true labels.
    holdout : float in (0, 1) or None
        Fraction of rows (chosen by a seeded hash of the row number) kept out of training and
        used for validation, when no separate validation data is given.
    state_dtype : "float32" or "float64" (default "float32")
        Precision of the stored z and n (float32: 12 bytes per slot with uint32 keys).
    admit : AdmitPolicy (default: every feature admitted)
        Which features get state: see :mod:`sparsecross.admission`.
    """

    alpha: float = 0.1
    beta: float = 1.0
    l1: float = 1.0
    l2: float = 0.0
    epochs: int = 1
    label_smoothing: float = 0.0
    holdout: float | None = None
    state_dtype: str = "float32"
    admit: AdmitPolicy = AdmitPolicy()

    def __post_init__(self) -> None:
        checks = [
            ("alpha", self.alpha, lambda v: v > 0, "> 0"),
            ("beta", self.beta, lambda v: v >= 0, ">= 0"),
            ("l1", self.l1, lambda v: v >= 0, ">= 0"),
            ("l2", self.l2, lambda v: v >= 0, ">= 0"),
            ("label_smoothing", self.label_smoothing, lambda v: 0 <= v < 1, "in [0, 1)"),
        ]
        for name, value, ok, expected in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ParameterError(f"{name} must be a finite number {expected}, got {value!r}")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ParameterError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.holdout is not None and not (
            isinstance(self.holdout, (int, float)) and math.isfinite(self.holdout) and 0 < self.holdout < 1
        ):
            raise ParameterError(f"holdout must be a fraction in (0, 1), got {self.holdout!r}")
        if self.state_dtype not in ("float32", "float64"):
            raise ParameterError(f"state_dtype must be 'float32' or 'float64', got {self.state_dtype!r}")

    @property
    def ftrl(self) -> FTRLParams:
        return FTRLParams(float(self.alpha), float(self.beta), float(self.l1), float(self.l2),
                          float(self.label_smoothing))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("alpha", "beta", "l1", "l2", "label_smoothing"):
            d[k] = float(d[k])
        del d["admit"]
        d.update(self.admit.to_dict())  # nothing when every feature is admitted
        return d


@dataclass
class ProgressEvent:
    """A progress report: emitted about twice a second and at the end of every epoch."""

    epoch: int
    epochs: int
    rows_seen: int
    rows_total: int | None
    progressive_logloss: float
    touched: int
    elapsed_s: float
    phase: str = "train"  # "train", "validate" or "epoch_end"
    nonzeros: int | None = None  # live nonzero weights (|z| > l1) at the time of the event
    valid_logloss: float | None = None
    valid_auc: float | None = None
    state_bytes: int | None = None  # bytes of the optimizer state (table and filter) at the time
    extra: dict[str, Any] = field(default_factory=dict)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far.

    Linux: ``VmHWM`` from ``/proc/self/status`` (``ru_maxrss`` would report a parent's peak
    in a process started by a large one); elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


# --------------------------------------------------------------------- plumbing
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
        start = ftrl_pass(X.indptr, X.indices, X.data, batch.y, sw, row_mask, start,
                          state.table, state.values, state.count, state.max_count, state.bias, params, acc,
                          filt, cfg, counts)
        if start < n:
            row_nnz = int(X.indptr[start + 1] - X.indptr[start])
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


def evaluate_state(state: FTRLState, params: FTRLParams, source: Source, spec: FeatureSpec, *,
                   batch_rows: int = DEFAULT_BATCH_ROWS, holdout: float | None = None,
                   salt: int = 0) -> StreamingMetrics:
    """Logloss/AUC of the current state on ``source`` (only holdout rows if ``holdout``)."""
    return evaluate_states([(state, params)], source, spec, batch_rows=batch_rows, holdout=holdout, salt=salt)[0]


def evaluate_states(states: Sequence[tuple[FTRLState, FTRLParams]], source: Source, spec: FeatureSpec, *,
                    batch_rows: int = DEFAULT_BATCH_ROWS, holdout: float | None = None,
                    salt: int = 0) -> list[StreamingMetrics]:
    """:func:`evaluate_state` of several states over one read of ``source``."""
    metrics = [StreamingMetrics() for _ in states]
    for batch in prefetch(iter_batches(source, spec, batch_rows=batch_rows)):
        mask, skipped = _score_mask(batch, holdout, salt)
        for (state, params), m in zip(states, metrics):
            m.update(state.margins(batch.X, params), batch.y, batch.sample_weight, mask)
            m.skipped += skipped
    return metrics


def check_inputs(source: Source, spec: FeatureSpec, valid: Source | None) -> dict[str, str]:
    """The training data's schema classes, after checking (from the footers only, before any
    training) that every training file and every validation file would make the same features.

    Raises
    ------
    SchemaError
        A missing column, an unusable type, or files that disagree (naming both)."""
    schema = source_schema(source, spec, role="the training data")
    if valid is not None:
        given = source_schema(valid, spec, role="the validation data")
        check_compatible(spec, schema, given, "the validation data",
                         trained_on="the training data has")
    return schema


def check_values(valid: Source, spec: FeatureSpec, batch_rows: int) -> None:
    """Featurize the validation data once before training, so that a bad value (a latitude of
    200, a label of 2) costs seconds instead of the trained model."""
    for _batch in prefetch(iter_batches(valid, spec, batch_rows=batch_rows)):
        pass


def in_memory(source: Any, valid: Any = None, *, shuffle: bool = False, checkpoint: Any = None,
              client: Any = None) -> tuple[Source, Source | None]:
    """``(source, valid)`` with in-memory data (tables, DataFrames...) as
    :class:`~sparsecross.inputs.MemorySource` s and paths as they are.

    In-memory training data cannot be checkpointed (there is no file to fingerprint, so a
    resumed run could not tell it is the same data), sent to a Dask cluster, nor shuffled
    (the shuffle permutes Parquet row groups): each is refused with a
    :class:`ParameterError` before any work.
    """
    from .inputs import memory_source

    mem = memory_source(source)
    vmem = memory_source(valid) if valid is not None else None
    if mem is not None:
        if checkpoint is not None:
            raise ParameterError("checkpoint needs Parquet files (in-memory data has no file to fingerprint); "
                                 "write the data to Parquet or train without checkpoint")
        if isinstance(shuffle, (bool, np.bool_)) and shuffle:
            raise ParameterError("shuffle needs Parquet files (it permutes row groups); shuffle in-memory data "
                                 "before training, or write it to Parquet")
    if client is not None and (mem is not None or vmem is not None):
        raise ParameterError("a Dask client needs Parquet files the workers can read; write the in-memory data "
                             "to Parquet or train without a client")
    return (source if mem is None else mem), (valid if vmem is None else vmem)


def start_state(init_state: FTRLState | None, spec: FeatureSpec, state_dtype: str,
                admit: AdmitPolicy = AdmitPolicy()) -> FTRLState:
    """A copy of ``init_state`` (a warm start), or a new empty state, with the admission
    filter of ``admit`` (a warm start keeps its own filter and counters if it was trained with
    the same policy; otherwise it gets a new empty filter).  A warm start must have been
    trained on the same column space and precision (its keys are as wide as its space)."""
    if init_state is None:
        state = FTRLState(spec.n_columns, state_dtype)
    else:
        state = _warm_copy(init_state, spec, state_dtype)
    if not admit.active:
        state.admission = None
    elif state.admission is None or state.admission.policy != admit:
        state.admission = Admission(admit, spec.hashing.seed)
    return state


def _warm_copy(init_state: FTRLState, spec: FeatureSpec, state_dtype: str) -> FTRLState:
    if init_state.n_columns != spec.n_columns or init_state.dtype != state_dtype:
        raise ParameterError(
            f"init_state was made for {init_state.n_columns:,} columns and {init_state.dtype} state; this "
            f"spec has {spec.n_columns:,} columns and state_dtype is {state_dtype}: warm-start with a state "
            "trained on the same spec and state_dtype"
        )
    return init_state.copy()


# ------------------------------------------------------------------------ train
def train(
    source: Source,
    spec: FeatureSpec,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    l1: float = 1.0,
    l2: float = 0.0,
    epochs: int = 1,
    label_smoothing: float = 0.0,
    holdout: float | None = None,
    valid: Source | None = None,
    state_dtype: str = "float32",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 5_000_000,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    init_state: FTRLState | None = None,
    return_state: bool = False,
    names: int = 0,
    shuffle: bool | None = None,
    shuffle_seed: int | None = None,
    shuffle_buffer_rows: int | None = None,
    early_stop: int | None = None,
    max_state_mb: float | None = None,
    admit_after: int | None = None,
    admit_probability: float | None = None,
    admit_filter_mb: float | None = None,
    client: Any = None,
    **distributed_options: Any,
) -> Any:
    """Train FTRL-Proximal logistic regression on Parquet data, streaming.

    Parameters
    ----------
    source
        Parquet file, folder, glob or list of them; or in-memory data: a pyarrow Table or
        RecordBatch, a pandas or polars DataFrame, anything with ``__arrow_c_stream__``, or a
        list of them (read in order, as the files of a list; see :func:`in_memory` for what
        it cannot do).  The same rows give the same model, bit for bit, from memory or from
        a Parquet file.
    spec
        The feature spec (``quantiles`` buckets are resolved from ``source`` first).
    alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype
        See :class:`TrainParams`.
    valid
        Validation data (same schema, files or in-memory); scored at the end of every epoch.
    batch_rows
        Rows per Arrow batch (memory scales with it, results do not).
    checkpoint
        Folder for ``state.npz``: written atomically every ``checkpoint_every`` rows and at
        the end of every epoch.  If it already holds a checkpoint of the same run (same spec,
        parameters and data files), training resumes from it.
    on_progress
        Called with :class:`ProgressEvent` s.
    init_state
        Warm start from an existing state (it is copied, never modified).
    return_state
        Also return the final :class:`~sparsecross.state.FTRLState`.
    names
        Record in ``model.stats["names"]`` the values behind the ``names`` largest hashed
        weights, categoricals and hashed crosses (``inspect`` shows them), observed while the first epoch reads the data
        (no second read; a resumed run reads only the rows it skipped).
    shuffle, shuffle_seed, shuffle_buffer_rows
        Read every epoch in a new seeded order: row groups permuted, then rows permuted in
        windows of ``shuffle_buffer_rows`` rows (memory scales with it; see
        :mod:`sparsecross.order`).  Each not given (None) comes from the spec's ``[train]``
        table, as the CLI's flags do, else its default: off (the files' order), seed 0, buffer
        262,144 rows; the seed and buffer are ignored without ``shuffle``.  The holdout rows
        are the same with or without it.
    early_stop
        With validation data (``valid`` or ``holdout``): stop after ``early_stop`` epochs
        without a lower validation logloss and return the best epoch's model
        (``stats["best_epoch"]``).  Keeps a copy of the best state: the state's memory
        doubles.  With ``checkpoint``, the best state is kept in the folder too.
    max_state_mb
        State budget in MiB (see :mod:`sparsecross.budget`): the optimizer state (table, bias
        and admission filters) never exceeds it, growths included; when the table is full at
        its budget, features are evicted (zero weights with the smallest ``n`` first, then the
        smallest ``|z|``).  ``stats["evicted_features"]`` and ``stats["evictions"]`` count them.
        Not with ``early_stop`` (its copy of the best state is a second state) nor a Dask client.
    admit_after, admit_probability, admit_filter_mb
        Admission (see :mod:`sparsecross.admission`): a feature gets state only from its
        ``admit_after``-th sighting (counted in a counting filter of ``admit_filter_mb`` MiB;
        default: one byte per training row as a power of two, 64 KiB..256 MiB), or at each
        sighting with probability ``admit_probability``; not both.
        Default: every feature at its first sighting.  Not available with ``client`` yet.
    client
        A ``dask.distributed.Client``: train on the cluster (see :mod:`sparsecross.dask`).

    Returns
    -------
    SparseModel, or (SparseModel, FTRLState) with ``return_state``.

    Raises
    ------
    SparseCrossError
        Bad parameters, data that does not match the spec, a checkpoint of another run.
    """
    shuffle, shuffle_seed, shuffle_buffer_rows = _order_options(spec, shuffle, shuffle_seed, shuffle_buffer_rows)
    source, valid = in_memory(source, valid, shuffle=shuffle, checkpoint=checkpoint, client=client)
    order = _shuffle_of(shuffle, shuffle_seed, shuffle_buffer_rows)
    admit = policy_of(admit_after, admit_probability, admit_filter_mb)
    _check_early_stop(early_stop, valid, holdout)
    max_state_mb = check_max_state_mb(max_state_mb)
    if max_state_mb is not None and (client is not None or early_stop is not None):
        raise ParameterError("max_state_mb is not available with a Dask client nor with early_stop (which keeps a "
                             "second copy of the state); train without --dask / --early-stop, or without "
                             "--max-state-mb (tune stops early under a budget: each point keeps its best model)")
    if client is not None:
        if order is not None:
            raise ParameterError("shuffle is not available with a Dask client yet; train without --dask or "
                                 "without --shuffle")
        if admit.active:
            raise ParameterError("admit_after and admit_probability are not available with a Dask client yet; "
                                 "train without --dask or admit every feature")
        from ._cluster_entry import train_on

        if early_stop is not None or spec.label.missing == "skip":
            raise ParameterError("early_stop and [label] missing = \"skip\" are not supported with a Dask "
                                 "client yet; train without --dask")

        result = train_on(
            client, source, spec, alpha=alpha, beta=beta, l1=l1, l2=l2, epochs=epochs,
            label_smoothing=label_smoothing, holdout=holdout, valid=valid, state_dtype=state_dtype,
            batch_rows=batch_rows, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            on_progress=on_progress, init_state=init_state, return_state=return_state,
            **distributed_options,
        )
        if names > 0:  # the state lives on the workers: one extra read, on the client
            record_names(result[0] if return_state else result, source, top=names, batch_rows=batch_rows)
        return result
    if distributed_options:
        raise TypeError(f"unexpected options without a Dask client: {sorted(distributed_options)}")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")
    tp = TrainParams(alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype, admit)
    if batch_rows < 1:
        raise ParameterError(f"batch_rows must be >= 1, got {batch_rows!r}")
    if checkpoint_every < 1:
        raise ParameterError(f"checkpoint_every must be >= 1 row, got {checkpoint_every!r}")
    params = tp.ftrl
    t0 = time.perf_counter()

    schema = check_inputs(source, spec, valid)
    spec = resolve_spec(source, spec, batch_rows=batch_rows, holdout=holdout)
    if valid is not None:
        check_values(valid, spec, batch_rows)
    rows_total = count_rows(source)
    if rows_total == 0:
        raise DataError(f"the training data {str(source)!r} has no rows")
    tp = replace(tp, admit=admit.sized(rows_total))  # the default filter is sized from the rows
    salt = holdout_salt(spec.hashing.seed)
    fingerprint = source_fingerprint(source) if checkpoint is not None else None
    run_params = {**tp.to_dict(), **_order_params(order), **_budget_params(max_state_mb)}
    if early_stop is not None:
        run_params["early_stop"] = early_stop
    run_meta = {"spec_sha256": spec.sha256, "params": run_params, "data": fingerprint}
    skipping = spec.label.missing == "skip"

    ckpt_path, run = _resume(checkpoint, run_meta, start_state(init_state, spec, state_dtype, tp.admit), spec, tp,
                             rows_total, early_stop)
    state, epoch, start_row, acc, history, skipped = (run.state, run.epoch, run.row, run.acc, run.history,
                                                      run.skipped)
    best_state, best_epoch = run.best_state, run.best_epoch
    _bound(state, max_state_mb, ckpt_path if run.resumed else None)

    def save_checkpoint(ep: int, row: int) -> None:
        if ckpt_path is not None:
            meta: dict[str, Any] = {**run_meta, "epoch": ep, "row": row, "acc": acc.tolist(), "history": history,
                                    "state_bytes_peak": state.bytes_peak}
            if skipped:
                meta["skipped"] = skipped
            if best_epoch is not None:
                meta["best_epoch"] = best_epoch
            state.save(ckpt_path, meta)

    # Growths sized from the keys' own curve in the first epoch (later epochs see no new keys).
    plan = GrowthPlan(rows_total)
    last_emit = 0.0
    rows_in_run = 0
    trained_in_run = 0
    recorder = NameRecorder(spec) if names > 0 else None
    observe = recorder.observe if recorder is not None and recorder.active else None
    observed_from = None if observe is None else start_row  # rows [observed_from, end) of this run's first epoch
    if order is not None and start_row > 0:
        observe = None  # a resumed shuffled epoch saw no contiguous rows: name from a full read at the end
    check = OrderCheck(rows_total, order) if start_row == 0 and epoch == 0 else None
    stopped = early_stop is not None and best_epoch is not None and len(history) - best_epoch >= early_stop
    while epoch < tp.epochs and not stopped:
        since_ckpt = 0
        row_end = start_row
        if start_row < rows_total:
            if state.admission is not None:
                state.admission.begin_epoch(epoch)
            for batch in prefetch(_epoch_batches(source, spec, order, epoch, batch_rows, start_row, observe)):
                mask = _train_mask(batch, holdout, salt)
                if check is not None:
                    check.update(row_end, batch.y)
                train_batch(state, batch, params, mask, acc, plan if epoch == 0 else None, row_end)
                if batch.skip is not None and len(batch.skip):
                    skipped += int(np.count_nonzero(batch.skip))
                n = batch.X.shape[0]
                rows_in_run += n
                trained_in_run += n - int(np.count_nonzero(mask))
                since_ckpt += n
                row_end += n  # the position in this epoch's order (the global row when not shuffled)
                if since_ckpt >= checkpoint_every:
                    save_checkpoint(epoch, row_end)
                    since_ckpt = 0
                now = time.perf_counter()
                if on_progress is not None and now - last_emit > 0.5:
                    last_emit = now
                    on_progress(ProgressEvent(epoch, tp.epochs, row_end, rows_total,
                                              float(acc[0] / max(acc[1], 1e-300)), state.touched,
                                              now - t0, nonzeros=state.count_nonzero(params),
                                              state_bytes=state.nbytes))
        record: dict[str, Any] = {"epoch": epoch + 1,
                                  "progressive_logloss": float(acc[0] / max(acc[1], 1e-300)),
                                  "train_rows": int(acc[2])}
        if skipping:
            record["skipped_rows"] = skipped
        if valid is not None or holdout is not None:
            if on_progress is not None:
                on_progress(ProgressEvent(epoch, tp.epochs, rows_total, rows_total, record["progressive_logloss"],
                                          state.touched, time.perf_counter() - t0, phase="validate"))
            m = evaluate_state(state, params, valid if valid is not None else source, spec,
                               batch_rows=batch_rows, holdout=holdout, salt=salt)
            record.update(valid_rows=m.rows, valid_logloss=m.logloss, valid_auc=m.auc,
                          valid_positive_rate=m.positive_rate)
            if skipping:
                record["valid_skipped_rows"] = m.skipped
        if check is not None:
            check.finish(record["progressive_logloss"], record.get("valid_logloss"))
            check = None
        history.append(record)
        epoch += 1
        start_row = 0
        observe = None  # one epoch has shown every row
        acc[:] = 0.0
        skipped = 0
        if early_stop is not None:
            if _best_epoch(history) == epoch:  # a new best: keep it (in the folder first)
                best_state, best_epoch = state.copy(), epoch
                if ckpt_path is not None:
                    save_best(ckpt_path, best_state, {**run_meta, "epoch": epoch, "row": 0,
                                                      "acc": [0.0, 0.0, 0.0], "history": history})
            assert best_epoch is not None
            stopped = epoch - best_epoch >= early_stop
        save_checkpoint(epoch, 0)
        if ckpt_path is not None and early_stop is not None:
            prune_best(ckpt_path, best_epoch)
        if on_progress is not None:
            on_progress(ProgressEvent(epoch - 1, tp.epochs, rows_total, rows_total, record["progressive_logloss"],
                                      state.touched, time.perf_counter() - t0, phase="epoch_end",
                                      nonzeros=state.count_nonzero(params), state_bytes=state.nbytes,
                                      valid_logloss=record.get("valid_logloss"),
                                      valid_auc=record.get("valid_auc")))

    if best_state is not None:
        state = best_state  # early stopping: the best epoch's model
    model = export_state(state, spec, tp, history, rows_total, schema=schema, best_epoch=best_epoch,
                         early_stop=early_stop)
    model.params.update(_order_params(order))
    record_budget(model, state, max_state_mb)
    if recorder is not None:
        # a resumed run did not see the rows before its checkpoint (nor any, if it was finished)
        skipped = (0, None) if rows_in_run == 0 or (order is not None and observed_from) else (0, observed_from or 0)
        record_names(model, source, top=names, batch_rows=batch_rows, recorder=recorder, rows=skipped)
    # state_bytes_peak depends on the growth schedule (batch boundaries, a resume), so it is a
    # fact of the run, not of the model (whose file must not depend on them)
    model.run = {"rows_processed": rows_in_run, "rows_trained": trained_in_run,
                 "seconds": time.perf_counter() - t0,
                 "state_bytes_peak": max(state.bytes_peak, 0 if best_state is None else best_state.nbytes + state.nbytes)}
    if return_state:
        return model, state
    return model


def _check_early_stop(early_stop: int | None, valid: Source | None, holdout: float | None) -> None:
    if early_stop is not None and (isinstance(early_stop, bool) or not isinstance(early_stop, int)
                                   or early_stop < 1):
        raise ParameterError(f"early_stop must be an integer >= 1 (epochs without improvement), got {early_stop!r}")
    if early_stop is not None and valid is None and holdout is None:
        raise ParameterError("early_stop needs validation data: give valid data (--valid) or a holdout "
                             "fraction (--holdout)")


@dataclass
class _Run:
    """Where a run starts: a fresh state at epoch 0, row 0, or a checkpoint's."""

    state: FTRLState
    epoch: int = 0
    row: int = 0
    acc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.float64))
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # rows of this epoch skipped so far for a missing label
    best_state: FTRLState | None = None
    best_epoch: int | None = None
    resumed: bool = False


def _resume(checkpoint: str | os.PathLike[str] | None, run_meta: dict[str, Any], fresh: FTRLState,
            spec: FeatureSpec, tp: TrainParams, rows_total: int, early_stop: int | None
            ) -> tuple[Any, _Run]:
    """(the checkpoint file or None, where the run starts): from ``fresh`` unless the folder
    holds a checkpoint of this run (checked, with its best state under early stopping)."""
    checks = dict(n_columns=spec.n_columns, state_dtype=tp.state_dtype, epochs=tp.epochs, rows_total=rows_total,
                  admit=tp.admit, seed=spec.hashing.seed)
    ckpt_path, resumed = open_checkpoint(checkpoint, run_meta, **checks)
    if resumed is None:
        return ckpt_path, _Run(fresh)
    state, meta = resumed
    history = list(meta["history"])
    run = _Run(state, int(meta["epoch"]), int(meta["row"]), np.array(meta["acc"], dtype=np.float64), history,
               int(meta.get("skipped", 0)), resumed=True)
    if early_stop is not None:
        run.best_epoch = _best_epoch(history)
        if meta.get("best_epoch") != run.best_epoch:
            raise CheckpointError(f"checkpoint {str(ckpt_path)!r} names best epoch {meta.get('best_epoch')!r}, "
                                  f"its history says {run.best_epoch!r}; delete the folder to start over")
        if run.best_epoch is not None:
            assert ckpt_path is not None
            run.best_state = read_best(ckpt_path, run.best_epoch, run_meta, **checks)
    log.info("resuming from %s: epoch %d, row %d", ckpt_path, run.epoch + 1, run.row)
    return ckpt_path, run


def _order_options(spec: FeatureSpec, shuffle: bool | None, seed: int | None,
                   buffer_rows: int | None) -> tuple[Any, Any, Any]:
    """``(shuffle, shuffle_seed, shuffle_buffer_rows)``: each argument given, else the spec's
    ``[train]`` value, else the default (as the CLI's ``--shuffle`` flags do)."""
    given = {"shuffle": shuffle, "shuffle_seed": seed, "shuffle_buffer_rows": buffer_rows}
    defaults = {"shuffle": False, "shuffle_seed": 0, "shuffle_buffer_rows": None}
    table = getattr(spec, "train", None) or {}
    return tuple(given[k] if given[k] is not None else table.get(k, defaults[k])  # type: ignore[return-value]
                 for k in given)


def _shuffle_of(shuffle: bool, seed: int, buffer_rows: int | None) -> Shuffle | None:
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ParameterError(f"shuffle must be True or False, got {shuffle!r}")
    if not shuffle:
        return None
    return Shuffle(seed, DEFAULT_SHUFFLE_BUFFER_ROWS if buffer_rows is None else buffer_rows)


def _order_params(order: Shuffle | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the order (nothing when unshuffled)."""
    return {} if order is None else order.to_dict()


def _epoch_batches(source: Source, spec: FeatureSpec, order: Shuffle | None, epoch: int, batch_rows: int,
                   start: int, observe: Callable[..., object] | None = None) -> Iterator[Batch]:
    """One epoch's batches from position ``start`` of its order: the files' order, or shuffled."""
    if order is None:
        return iter_batches(source, spec, batch_rows=batch_rows, start_row=start, observe=observe)
    return iter_shuffled_batches(source, spec, order, epoch=epoch, batch_rows=batch_rows, start=start,
                                 observe=observe)


def _budget_params(max_state_mb: float | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the state budget (nothing without)."""
    return {} if max_state_mb is None else {"max_state_mb": max_state_mb}


def record_budget(model: SparseModel, state: FTRLState, max_state_mb: float | None) -> None:
    """Record the state budget in an exported model, as ``train`` does (after the order's
    params): the budget in ``params``, the evictions of ``state`` in ``stats`` (nothing without)."""
    if max_state_mb is not None:
        model.params.update(_budget_params(max_state_mb))
        model.stats.update(evicted_features=state.evicted_features, evictions=state.evictions)


def _bound(state: FTRLState, max_state_mb: float | None, resumed_from: Any) -> None:
    """Apply the state budget to the starting state; a resumed table larger than the budget
    allows is a damaged checkpoint (its run had the same budget)."""
    try:
        apply_budget(state, max_state_mb)
    except ParameterError as exc:
        if resumed_from is None:
            raise
        raise CheckpointError(f"checkpoint {str(resumed_from)!r} holds a table larger than its budget allows "
                              f"({exc}); delete the folder to start over") from None


def _best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch (1-based) with the lowest validation logloss, the first of equals; NaN (no
    validation row) never improves on a number."""
    best: int | None = None
    best_loss = math.nan
    for rec in history:
        v = rec.get("valid_logloss", math.nan)
        if best is None or (not math.isnan(v) and (math.isnan(best_loss) or v < best_loss)):
            best, best_loss = int(rec["epoch"]), v
    return best


def export_state(state: FTRLState, spec: FeatureSpec, tp: TrainParams, history: list[dict[str, Any]],
                 rows_total: int, *, schema: dict[str, str] | None = None, best_epoch: int | None = None,
                 early_stop: int | None = None) -> SparseModel:
    """Build the inference model (nonzero weights only) from a training state.

    The top-level stats are those of the last epoch in ``history``, or of ``best_epoch`` (early
    stopping: ``state`` is that epoch's), which ``stats["best_epoch"]`` then records."""
    from . import __version__

    params = tp.ftrl
    keys, weights = state.nonzero_weights(params)
    if len(keys) == 0:
        warnings.warn(
            f"l1={tp.l1!r} removed every weight ({state.touched} features were touched); the model "
            "predicts the base rate only. Lower l1.",
            EmptyModelWarning,
            stacklevel=3,
        )
    stats: dict[str, Any] = {
        "rows": int(rows_total),
        "touched_features": state.touched,
        "nonzeros": int(len(keys)),
        "possible_features": spec.n_columns,
        "history": history,
    }
    if history:
        last = history[-1] if best_epoch is None else history[best_epoch - 1]
        stats.update({k: v for k, v in last.items() if k != "epoch"})
    if early_stop is not None:
        stats["early_stop"] = early_stop
        stats["best_epoch"] = best_epoch
    admission = getattr(state, "admission", None)  # a Dask run's rows state has none
    if admission is not None:
        stats.update(admission.stats())
    return SparseModel(keys, weights, state.bias_weight(params), spec, tp.to_dict(), stats,
                       library_version=__version__, schema=dict(schema or {}))
