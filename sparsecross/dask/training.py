"""``train_distributed``: what :func:`sparsecross.train` does when given a Dask ``client``.

This module checks the parameters, resumes a checkpoint, keeps the run's bookkeeping
(:class:`_Run`: loss sums, history, progress events, checkpoints, validation) and hands the
training itself to exact mode (:mod:`.exact`) or to the data-parallel round loop
(:mod:`.rounds`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from .. import _defaults
from .._defaults import DEFAULT_LANES
from .._kernels.ftrl import FTRLParams
from .._values import check_batch_rows, check_count
from ..errors import SparseCrossError, shown
from ..metrics import StreamingMetrics
from ..read import DEFAULT_BATCH_ROWS, Source
from ..spec import FeatureSpec
from ..state import FTRLState
from .cluster import _check_cluster, _default_window, _require_dask
from .exact import _train_exact
from .plan import _plan, _task_featurize_valid
from .rounds import _train_rounds
from .runner import _ordered, _Runner
from .shards import _RowsState, _set_state

log = logging.getLogger("sparsecross.distributed")

#: Training modes.
MODES = ("data-parallel", "exact", "partitioned")


def _validate(runner: _Runner, state: FTRLState, params: FTRLParams, source: Source, spec: FeatureSpec, *,
              holdout: float | None, salt: int, batch_rows: int, window: int) -> StreamingMetrics:
    """Validation metrics of ``state``: workers featurize (keeping only holdout rows), the
    client scores in row order, exactly as :func:`sparsecross.train.evaluate_state`."""
    chunks, _ = _plan(source, spec)
    metrics = StreamingMetrics()
    results = _ordered(runner, _task_featurize_valid, chunks, (spec, batch_rows, holdout, salt),
                       window=window, name="valid")
    with contextlib.closing(results):
        for _chunk, b in results:
            if b.X.shape[0]:
                metrics.update(state.margins(b.X, params), b.y, b.sample_weight)
    return metrics


#: At most this many lanes (a round submits 2K tasks; with admission each lane is a shard).
MAX_LANES = 65_536


def _check_mode(mode: str, valid: Source | None, holdout: float | None, partition: Any) -> None:
    if mode not in MODES:
        raise SparseCrossError(f"mode must be one of {', '.join(map(repr, MODES))}, got {shown(mode)}")
    if mode == "partitioned" and partition is None:
        raise SparseCrossError("mode 'partitioned' needs partition: the name of the exact feature whose values "
                               "the lanes own (such as a geo cell)")
    if mode != "partitioned" and partition is not None:
        raise SparseCrossError(f"partition applies to mode 'partitioned' only, not to {shown(mode)}")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")


def _check_counts(exact: bool, batch_rows: Any, lanes: Any, rows_per_round: Any,
                  checkpoint_rounds: Any) -> tuple[Any, int | None, int | None]:
    """The counts, checked: (lanes, rows_per_round, checkpoint_rounds)."""
    check_batch_rows(batch_rows)
    if not exact:
        lanes = check_count("lanes", lanes, 1, MAX_LANES)
    if rows_per_round is not None:
        rows_per_round = check_count("rows_per_round", rows_per_round, 1 if exact else lanes)
    if checkpoint_rounds is not None:
        checkpoint_rounds = check_count("checkpoint_rounds", checkpoint_rounds, 1)
    return lanes, rows_per_round, checkpoint_rounds


class _Run:
    """The client's bookkeeping of one training run: state, loss sums, history, progress
    events, checkpoints and validation at epoch ends."""

    def __init__(self, tp: Any, spec: FeatureSpec, source: Source, valid: Source | None, rows_total: int,
                 run_meta: dict[str, Any], on_progress: Callable[[Any], None] | None, t0: float) -> None:
        self.tp, self.params, self.spec, self.source, self.valid = tp, tp.ftrl, spec, source, valid
        self.rows_total, self.run_meta, self.on_progress, self.t0 = rows_total, run_meta, on_progress, t0
        self.acc = np.zeros(3, dtype=np.float64)
        self.history: list[dict[str, Any]] = []
        self.ckpt_path: Any = None
        self.resumed: dict[str, Any] | None = None  # the checkpoint's meta when resumed
        self.nz_cache: list[Any] = [-1.0, None]  # (time, value): an O(capacity) scan, at most twice a second

    def attach(self, state: FTRLState, runner: _Runner, window: int, *, holdout: float | None, salt: int,
               batch_rows: int) -> None:
        self.state, self.runner, self.window = state, runner, window
        self.holdout, self.salt, self.batch_rows = holdout, salt, batch_rows

    def save(self, meta: dict[str, Any]) -> None:
        if self.ckpt_path is not None:
            self.state.save(self.ckpt_path, {**self.run_meta, **meta, "acc": self.acc.tolist(),
                                             "history": self.history})

    def progress(self, ev: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(ev)

    def prog_ll(self) -> float:
        return float(self.acc[0] / max(self.acc[1], 1e-300))

    def event(self, ep: int, rows_seen: int, phase: str = "train", touched: int | None = None, **kw: Any) -> Any:
        """A progress event; ``touched`` given: a data-parallel round (the client's ``state``
        is then the last snapshot, so no nonzero count)."""
        from ..train import ProgressEvent

        now = time.perf_counter()
        if touched is None and self.on_progress is not None:
            if phase != "train" or now - self.nz_cache[0] > 0.5:
                self.nz_cache[:] = [now, self.state.count_nonzero(self.params)]
            kw["nonzeros"] = self.nz_cache[1]
        return ProgressEvent(ep, self.tp.epochs, rows_seen, self.rows_total, self.prog_ll(),
                             self.state.touched if touched is None else touched, now - self.t0, phase=phase, **kw)

    def end_epoch(self, ep: int, extra: dict[str, Any], counts: tuple[int, int] | None = None) -> None:
        """Record epoch ``ep`` (and validate); ``counts``: (touched, nonzeros) when ``state`` is
        not the trained state (data-parallel without a checkpoint folder or validation)."""
        record: dict[str, Any] = {"epoch": ep + 1, "progressive_logloss": self.prog_ll(),
                                  "train_rows": int(self.acc[2]), **extra}
        if self.valid is not None or self.holdout is not None:
            self.progress(self.event(ep, self.rows_total, "validate"))
            m = _validate(self.runner, self.state, self.params, self.valid if self.valid is not None else self.source,
                          self.spec, holdout=self.holdout, salt=self.salt, batch_rows=self.batch_rows,
                          window=self.window)
            record.update(valid_rows=m.rows, valid_logloss=m.logloss, valid_auc=m.auc,
                          valid_positive_rate=m.positive_rate)
        self.history.append(record)
        live = {} if counts is None else {"touched": counts[0], "nonzeros": counts[1]}
        ev = self.event(ep, self.rows_total, "epoch_end", valid_logloss=record.get("valid_logloss"),
                        valid_auc=record.get("valid_auc"), **live)
        self.acc[:] = 0.0
        self.progress(ev)


def train_distributed(
    source: Source,
    spec: FeatureSpec,
    *,
    client: Any,
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
    checkpoint_rounds: int | None = None,
    on_progress: Callable[[Any], None] | None = None,
    init_state: FTRLState | None = None,
    return_state: bool = False,
    mode: str = "data-parallel",
    lanes: int = DEFAULT_LANES,
    rows_per_round: int | None = None,
    retries: int = 2,
    in_flight: int | None = None,
    prefetch_rounds: int | None = None,
    admit_after: int | None = None,
    admit_probability: float | None = None,
    admit_filter_mb: float | None = None,
    max_state_mb: float | None = None,
    partition: str | None = None,
) -> Any:
    """Train on a Dask cluster; what :func:`sparsecross.train` does when given ``client``.

    The common parameters mean what they mean for :func:`sparsecross.train`.

    Parameters
    ----------
    client
        A ``distributed.Client`` (see :func:`connect`).
    mode
        ``"data-parallel"`` (default), ``"exact"`` or ``"partitioned"`` (see
        :mod:`sparsecross.dask`).
    lanes
        Data-parallel: K, the number of chunks trained from the same state in a round;
        partitioned: K, the number of lanes that own the partition's values (a model
        parameter: the same K gives the same model on any cluster; 1 equals single-node).
        Recorded in the model's ``params``.  Ignored in exact mode.
    rows_per_round
        Data-parallel: rows per round over all lanes, each lane training
        ``rows_per_round // lanes`` consecutive rows (default: consecutive whole row groups
        per lane, as near 262,144 rows as they come, a larger row group on its own; recorded
        as ``lane_rows_target`` in the model's ``params``).
        Exact mode: rows per chunk sent to the client (default: one row group).
    checkpoint, checkpoint_every, checkpoint_rounds
        Checkpoint folder (``state.npz``, as single-node).  Exact mode writes the single-node
        format every ``checkpoint_every`` rows (the two resume each other's checkpoints).
        Data-parallel writes after every ``checkpoint_rounds`` rounds (default: about every
        ``checkpoint_every`` rows) and at the end of every epoch; a resumed run equals an
        uninterrupted one.
    retries
        Automatic retries of a failed task (a task lost with a dead worker is re-run anyway).
    in_flight
        Exact mode and validation: chunks in flight at once (default ``max(4, 2 * workers)``).
    prefetch_rounds
        Data-parallel and partitioned: rounds featurized ahead of the one training (memory
        on the workers; default 2, and 0 for partitioned, whose rounds are larger and whose
        next round is queued while the client collects the last one).
    partition
        Partitioned mode: the exact feature (such as a geo cell) whose values the lanes own:
        lane ``fmix64(value) % lanes`` trains every row with that value and keeps every key
        holding it, for the whole run; the other keys are merged at every round's end
        (:mod:`sparsecross.dask.partitioned`).  Recorded in the model's ``params``.
    admit_after, admit_probability, admit_filter_mb, max_state_mb
        Admission and the state budget.  Exact mode: as single-node.  Data-parallel: per shard
        (:mod:`sparsecross.dask.admit`): the state is then split into ``lanes`` shards, each
        with its own filter (``1 / lanes`` of the single-node one) and ``max_state_mb / lanes``;
        checkpoints hold the shards' filters and counters.  Not with ``init_state``.

    Returns
    -------
    SparseModel, or (SparseModel, FTRLState) with ``return_state``.
    """
    from ..admission import policy_of
    from ..budget import check_max_state_mb
    from ..checkpoint import source_fingerprint
    from ..hashing import holdout_salt
    from ..train import TrainParams
    from ..train_eval import prepare_inputs

    _check_mode(mode, valid, holdout, partition)
    admit = policy_of(admit_after, admit_probability, admit_filter_mb)
    max_state_mb = check_max_state_mb(max_state_mb)
    _check_ruled(mode, admit.active, max_state_mb, init_state)
    tp = TrainParams(alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype, admit)
    exact = mode == "exact"
    lanes, rows_per_round, checkpoint_rounds = _check_counts(exact, batch_rows, lanes, rows_per_round,
                                                             checkpoint_rounds)
    if prefetch_rounds is None:  # (partitioned rounds are larger: one in flight keeps the workers busy)
        prefetch_rounds = 0 if mode == "partitioned" else 2
    retries, prefetch_rounds = check_count("retries", retries, 0), check_count("prefetch_rounds", prefetch_rounds, 0)
    check_count("checkpoint_every", checkpoint_every, 1)
    if in_flight is not None:
        in_flight = check_count("in_flight", in_flight, 1)
    _require_dask()
    t0 = time.perf_counter()
    schema, spec, rows_total = prepare_inputs(source, spec, valid, batch_rows, holdout)
    salt = holdout_salt(spec.hashing.seed)
    tp = replace(tp, admit=admit.sized(rows_total))  # the default filter is sized from the rows
    part = None
    if mode == "partitioned":
        from .partition import partition_of

        part = partition_of(spec, partition, lanes)
    book = None if exact or part is not None else _book(tp, max_state_mb, lanes, spec)
    run_params, lane_rows_target = _run_params(tp, mode, lanes, rows_per_round, part, max_state_mb)
    run_meta = {"spec_sha256": spec.sha256, "params": run_params, "data": source_fingerprint(source)}
    job = _Run(tp, spec, source, valid, rows_total, run_meta, on_progress, t0)
    state, epoch, start_row, start_round = _start(job, init_state, checkpoint, state_dtype, exact)
    if book is not None and job.resumed is not None:
        book.restore(state, job.resumed, job.ckpt_path)  # the shards' filters and counters
    if exact:  # the client trains the state itself, as single-node (its filter is the state's)
        from ..budget import apply_budget

        apply_budget(state, max_state_mb)

    n_workers = _check_cluster(client)
    runner = _Runner(client, retries)
    job.attach(state, runner, in_flight or _default_window(n_workers), holdout=holdout, salt=salt,
               batch_rows=batch_rows)
    run: dict[str, Any] = {"mode": mode, "workers": n_workers, "rows_processed": 0}
    if exact:
        _train_exact(job, run, epoch=epoch, start_row=start_row, chunk_rows=rows_per_round,
                     checkpoint_every=checkpoint_every)
        trained: Any = state
    else:
        common = {"holdout": holdout, "salt": salt, "batch_rows": batch_rows, "epoch": epoch,
                  "start_round": start_round, "checkpoint_every": checkpoint_every,
                  "checkpoint_rounds": checkpoint_rounds, "prefetch_rounds": prefetch_rounds, "save": job.save,
                  "progress": job.progress, "event": job.event, "end_epoch": job.end_epoch, "run": run,
                  "history": job.history, "checkpointing": job.ckpt_path is not None,
                  "validating": valid is not None or holdout is not None, "keep_state": return_state}
        trained = _train_lanes(runner, job, state, part, book, common, lanes=lanes, rows_per_round=rows_per_round,
                               rows_target=lane_rows_target, return_state=return_state)
    model = _export(job, run, trained, state, book, schema, run_params, exact=exact,
                    ruled=admit.active or max_state_mb is not None, max_state_mb=max_state_mb,
                    return_state=return_state)
    run["seconds"] = time.perf_counter() - t0
    model.run = run  # facts about this run (never saved with the model)
    if return_state:
        return model, state
    return model


def _train_lanes(runner: _Runner, job: _Run, state: FTRLState, part: Any, book: Any, common: dict[str, Any], *,
                 lanes: int, rows_per_round: int | None, rows_target: int | None, return_state: bool) -> Any:
    """Partitioned (``part`` given) or data-parallel rounds, with the options both take
    (``common``): the trained state (``state`` itself with ``return_state``, else only the
    rows the model needs)."""
    tp = job.tp
    if part is not None:
        from .partitioned import _train_partitioned

        final = _train_partitioned(runner, state, job.acc, job.spec, tp.ftrl, tp, job.source, part=part,
                                   rows_per_round=rows_per_round, chunk_rows_target=rows_target, **common)
    else:
        final = _train_rounds(runner, state, job.acc, job.spec, tp.ftrl, tp, job.source, job.rows_total,
                              lanes=lanes, rows_per_round=rows_per_round, lane_rows_target=rows_target, book=book,
                              admit=tp.admit, **common)
    if final is None:
        return state
    keys, zn, bias, touched = final
    if return_state:
        _set_state(state, keys, zn, bias)
        return state
    return _RowsState(keys, zn, bias, touched)


def _export(job: _Run, run: dict[str, Any], trained: Any, state: FTRLState, book: Any, schema: Any,
            run_params: dict[str, Any], *, exact: bool, ruled: bool, max_state_mb: float | None,
            return_state: bool) -> Any:
    """The model of the trained state, with the run's parameters and (admission, budget) the
    state's counts."""
    from ..train import export_state

    model = export_state(trained, job.spec, job.tp, job.history, job.rows_total, schema=schema)
    model.params = run_params
    if book is not None:
        model.stats.update(book.stats())
        run["state_bytes_peak"] = book.bytes_peak()  # the sum of the shards' peaks
        if return_state and book.extras[0] is not None:
            book.stage(book.extras, state, job.tp.admit)  # the returned state holds the filters too
    elif exact and ruled:
        from ..train import record_budget

        record_budget(model, state, max_state_mb)
        run["state_bytes_peak"] = state.bytes_peak
    return model


def _run_params(tp: Any, mode: str, lanes: int, rows_per_round: int | None, part: Any,
                max_state_mb: float | None) -> tuple[dict[str, Any], int | None]:
    """The run's parameters (recorded in the model and its checkpoints) and the chunks' row
    target (None: ``rows_per_round`` or exact mode): without ``rows_per_round``, data-parallel
    lanes take whole row groups near ``LANE_ROWS_TARGET`` rows, partitioned chunks near
    ``PARTITION_CHUNK_ROWS`` (read here, so that a test may set them)."""
    run_params = tp.to_dict()
    target = None
    if mode != "exact":
        run_params.update(mode=mode, lanes=lanes, rows_per_round=rows_per_round)
        if part is not None:
            run_params["partition"] = part.name
            if rows_per_round is None:
                target = run_params["chunk_rows_target"] = _defaults.PARTITION_CHUNK_ROWS
        elif rows_per_round is None:
            target = run_params["lane_rows_target"] = _defaults.LANE_ROWS_TARGET
    if max_state_mb is not None:
        run_params["max_state_mb"] = max_state_mb
    return run_params, target


def _check_ruled(mode: str, admitting: bool, max_state_mb: float | None, init_state: Any) -> None:
    """Admission and the budget: data-parallel mode without a warm start (exact mode: as
    single-node)."""
    if (not admitting and max_state_mb is None) or mode == "exact":
        return
    what = "admit_after / admit_probability" if admitting else "max_state_mb"
    if mode == "partitioned":
        raise SparseCrossError(f"{what} is not available in mode 'partitioned' yet (its lanes would each need "
                               "their own filter and budget); use mode 'data-parallel' or 'exact' for it")
    if init_state is not None:
        raise SparseCrossError(f"{what} on Dask cannot start from a given state (a warm start) yet; train "
                               "without init_state, or without --dask")


def _book(tp: Any, max_state_mb: float | None, lanes: Any, spec: FeatureSpec) -> Any:
    """The per-shard admission and budget (:class:`.admit.ShardBook`), or None."""
    from .admit import ShardBook, check_budget, shard_rules

    rules = shard_rules(tp.admit, max_state_mb, lanes=lanes, seed=spec.hashing.seed, l1=tp.l1)
    if rules is None:
        return None
    check_budget(rules, max_state_mb, spec.n_columns, tp.state_dtype)
    return ShardBook(rules)


def _start(job: _Run, init_state: FTRLState | None, checkpoint: Any, state_dtype: str,
           exact: bool) -> tuple[FTRLState, int, int, int]:
    """The starting state and position (epoch, row, round): fresh, ``init_state``, or
    resumed from the checkpoint folder (whose loss sums and history ``job`` takes)."""
    from ..admission import AdmitPolicy
    from ..checkpoint import open_checkpoint
    from ..train import start_state

    # data-parallel: the shards hold the filters, not the client's state
    state = start_state(init_state, job.spec, state_dtype, job.tp.admit if exact else AdmitPolicy())
    job.ckpt_path, resumed = open_checkpoint(checkpoint, job.run_meta, n_columns=job.spec.n_columns,
                                             state_dtype=state_dtype, epochs=job.tp.epochs,
                                             rows_total=job.rows_total, position="row" if exact else "round",
                                             admit=job.tp.admit, seed=job.spec.hashing.seed)
    if resumed is None:
        return state, 0, 0, 0
    state, meta = resumed
    job.resumed = meta
    epoch = int(meta["epoch"])
    start_row = int(meta.get("row", 0))
    start_round = int(meta.get("round", 0))
    job.acc[:] = np.array(meta["acc"], dtype=np.float64)
    job.history[:] = list(meta["history"])
    log.info("resuming from %s: epoch %d, %s", job.ckpt_path, epoch + 1,
             f"row {start_row}" if exact else f"round {start_round}")
    return state, epoch, start_row, start_round
