"""Streaming FTRL-Proximal training: read -> featurize -> update, batch after batch.

The reader and featurizer run one batch ahead in a background thread (the Numba kernels and
pyarrow release the GIL), so reading overlaps training; the update itself is serial and
deterministic: the same rows in the same order give the same state, bit for bit, whatever the
batch size, and a run resumed from a checkpoint ends with the same model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ._values import check_count
from .admission import policy_of
from .budget import check_max_state_mb
from .epochs import EpochConfig, EpochLoop, _epoch_batches  # noqa: F401  (re-exported, as the ones below)
from .hashing import holdout_salt
from .names import record_names
from .read import Source
from .spec import FeatureSpec
from .state import FTRLState
from .train_eval import check_inputs, check_values, evaluate_state, evaluate_states, prepare_inputs  # noqa: F401
from .train_options import (_check_client_options, _check_early_stop, _check_single_node,  # noqa: F401
                            _check_sizes, _order_params, _shuffle_of, _state_bits_option, in_memory,
                            resolve_train_options)
from .train_params import ProgressEvent, TrainParams
from .train_report import export_state, finish_run, peak_rss_bytes, record_budget  # noqa: F401
from .train_resume import _bound, _resume, _run_meta, start_state
# ``train_batch`` and ``time`` are looked up here at every call of train(): tests patch them here
from .train_step import _score_mask, _train_mask, prefetch, train_batch  # noqa: F401

# The parts of training live in their own modules (train_params, train_options, train_step,
# train_eval, train_resume, epochs, train_report); the names that other modules, tests and
# benchmarks import from ``sparsecross.train`` stay importable here.
__all__ = ["train", "TrainParams", "ProgressEvent", "evaluate_state", "peak_rss_bytes"]


# ------------------------------------------------------------------------ train
def train(
    source: Source,
    spec: FeatureSpec,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    l1: float | None = None,
    l2: float | None = None,
    epochs: int | None = None,
    label_smoothing: float | None = None,
    holdout: float | None = None,
    valid: Source | None = None,
    state_dtype: str = "float32",
    batch_rows: int | None = None,
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
    state_bits: int | None = None,
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
        The feature spec (``quantiles`` buckets are resolved from ``source`` first).  Every
        argument that is also a key of its ``[train]`` table (alpha, beta, l1, l2, epochs,
        label_smoothing, holdout, batch_rows, shuffle, shuffle_seed, shuffle_buffer_rows,
        early_stop, max_state_mb, admit_after, admit_probability, admit_filter_mb, state_bits) takes, when
        not given (None), the table's value, else its default: as the CLI's flags do (see
        :func:`~sparsecross.train_options.resolve_train_options`).  Passing a value, the default
        included, wins over the table.  ``valid`` replaces a ``[train] holdout``; an
        ``admit_after`` or ``admit_probability`` argument replaces the table's admission mode.
    alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype
        See :class:`TrainParams` (defaults 0.1, 1.0, 1.0, 0.0, 1, 0.0, none, "float32").
    valid
        Validation data (same schema, files or in-memory); scored at the end of every epoch.
    batch_rows
        Rows per Arrow batch (memory scales with it, results do not; default 65,536).
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
        :mod:`sparsecross.order`).  Defaults: off (the files' order), seed 0, buffer
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
        Not with ``early_stop`` (its copy of the best state is a second state).  With a Dask
        client: ``max_state_mb / lanes`` per shard (:mod:`sparsecross.dask.admit`).
    admit_after, admit_probability, admit_filter_mb
        Admission (see :mod:`sparsecross.admission`): a feature gets state only from its
        ``admit_after``-th sighting (counted in a counting filter of ``admit_filter_mb`` MiB;
        default: one byte per training row as a power of two, 64 KiB..256 MiB), or at each
        sighting with probability ``admit_probability``; not both.
        Default: every feature at its first sighting.  With a Dask client: per shard
        (:mod:`sparsecross.dask.admit`).
    state_bits
        32 (default) or 16: z and n stored in 16 bits each, 8 bytes a slot instead of 12
        (:mod:`sparsecross.state16`; test logloss within 0.01% of 32 bits where measured).  Only
        with ``state_dtype`` float32; not with ``client`` yet.
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
    o = resolve_train_options(spec, locals(), valid=valid)  # the arguments > the spec's [train] table > defaults
    names = check_count("names", names, 0)
    _check_sizes(o["batch_rows"], checkpoint_every)  # before a client is used, too
    alpha, beta, l1, l2, epochs, label_smoothing, holdout, batch_rows = (
        o[k] for k in ("alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "holdout", "batch_rows"))
    shuffle, shuffle_seed, shuffle_buffer_rows, early_stop, max_state_mb = (
        o[k] for k in ("shuffle", "shuffle_seed", "shuffle_buffer_rows", "early_stop", "max_state_mb"))
    admit_after, admit_probability, admit_filter_mb = (o[k] for k in ("admit_after", "admit_probability",
                                                                      "admit_filter_mb"))
    source, valid = in_memory(source, valid, shuffle=shuffle, checkpoint=checkpoint, client=client)
    order = _shuffle_of(shuffle, shuffle_seed, shuffle_buffer_rows)
    admit = policy_of(admit_after, admit_probability, admit_filter_mb)
    early_stop = _check_early_stop(early_stop, valid, holdout)
    max_state_mb = check_max_state_mb(max_state_mb)
    _check_client_options(client, spec, order, admit, early_stop, max_state_mb)
    state_bits = _state_bits_option(o["state_bits"], state_dtype, client)
    if client is not None:
        from ._cluster_entry import train_on

        result = train_on(
            client, source, spec, alpha=alpha, beta=beta, l1=l1, l2=l2, epochs=epochs,
            label_smoothing=label_smoothing, holdout=holdout, valid=valid, state_dtype=state_dtype,
            batch_rows=batch_rows, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
            on_progress=on_progress, init_state=init_state, return_state=return_state,
            admit_after=admit_after, admit_probability=admit_probability, admit_filter_mb=admit_filter_mb,
            max_state_mb=max_state_mb, **distributed_options,
        )
        if names > 0:  # the state lives on the workers: one extra read, on the client
            record_names(result[0] if return_state else result, source, top=names, batch_rows=batch_rows)
        return result
    _check_single_node(distributed_options, valid, holdout)
    tp = TrainParams(alpha, beta, l1, l2, epochs, label_smoothing, holdout, state_dtype, admit, state_bits)
    t0 = time.perf_counter()

    schema, spec, rows_total = prepare_inputs(source, spec, valid, batch_rows, holdout)
    tp = replace(tp, admit=admit.sized(rows_total))  # the default filter is sized from the rows
    salt = holdout_salt(spec.hashing.seed)
    run_meta = _run_meta(source, spec, tp, order, max_state_mb, early_stop, checkpoint)
    ckpt_path, run = _resume(checkpoint, run_meta, start_state(init_state, spec, state_dtype, tp.admit, state_bits), spec, tp,
                             rows_total, early_stop)
    _bound(run.state, max_state_mb, ckpt_path if run.resumed else None)

    cfg = EpochConfig(source, spec, tp, order, valid, batch_rows, rows_total, salt, early_stop, checkpoint_every,
                      on_progress)
    loop = EpochLoop(cfg, run, ckpt_path, run_meta, names=names, step=train_batch, clock=time.perf_counter, t0=t0)
    loop.run()
    model, state = finish_run(loop, schema=schema, max_state_mb=max_state_mb, names=names)
    if return_state:
        return model, state
    return model
