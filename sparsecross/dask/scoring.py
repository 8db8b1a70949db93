"""Distributed scoring: predict and evaluate over partitioned Parquet (map-only)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import SparseCrossError, shown_path
from ..featurize import _labels, featurize_features
from ..files import check_outputs
from ..metrics import StreamingMetrics
from ..model import SparseModel
from ..predict import check_source, kept_schema, write_parquet_atomically
from ..read import DEFAULT_BATCH_ROWS, Source, described, resolve_files
from ..spec import FeatureSpec
from .cluster import _check_cluster, _default_window, _get_client
from .plan import _Chunk, _plan, _read_chunk
from .runner import _ordered, _Runner


def _task_predict(chunk: _Chunk, spec: FeatureSpec, table: tuple[np.ndarray, np.ndarray, float],
                  keep: Sequence[str], batch_rows: int, schema: pa.Schema) -> pa.Table:
    """Task: ``probability`` (and the ``keep`` columns) of one chunk, as ``predict_file`` does."""
    from .._kernels.score import score_csr
    from ..predict import sigmoid

    tk, tw, bias = table
    out = []
    for rb, row in _read_chunk(chunk, spec, batch_rows=batch_rows, label=False, extra_columns=keep):
        X = featurize_features(spec, rb, row)
        p = sigmoid(score_csr(X.indptr, X.indices, X.data, tk, tw, bias))
        cols = [rb.column(k).cast(schema.field(k).type) for k in keep]  # their own types, as predict_file
        out.append(pa.Table.from_arrays(cols + [pa.array(p)], schema=schema))
    return out[0] if len(out) == 1 else pa.concat_tables(out)


def _task_metrics(chunk: _Chunk, spec: FeatureSpec, table: tuple[np.ndarray, np.ndarray, float],
                  batch_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Task: a chunk's metrics as a sparse histogram: (bins, pos, neg, acc)."""
    from .._kernels.score import score_csr

    tk, tw, bias = table
    m = StreamingMetrics()
    for rb, row in _read_chunk(chunk, spec, batch_rows=batch_rows):
        y, w = _labels(spec, rb, row)
        X = featurize_features(spec, rb, row)
        m.update(score_csr(X.indptr, X.indices, X.data, tk, tw, bias), y, w)
    nz = np.flatnonzero((m.pos != 0) | (m.neg != 0))
    return nz, m.pos[nz], m.neg[nz], m.acc


def _scoring(model: SparseModel, source: Source, client: Any, retries: int, in_flight: int | None, verb: str,
             **plan: Any) -> tuple[list[_Chunk], _Runner, Any, int]:
    """What scoring ``source`` on the cluster needs: its chunks, a runner, the model's lookup
    table held on the cluster, and the number of chunks in flight."""
    client = _get_client(client)
    chunks, _total = _plan(source, model.spec, **plan)
    if not chunks:
        raise SparseCrossError(f"no rows to {verb} in {described(source)}")
    n_workers = _check_cluster(client)
    runner = _Runner(client, retries)
    tk, tw = model.lookup_table()
    return chunks, runner, runner.hold((tk, tw, float(model.bias)), "model"), in_flight or _default_window(n_workers)


def predict_distributed(model: SparseModel, source: Source, out: str | os.PathLike[str], client: Any = None, *,
                        keep: Sequence[str] = (), batch_rows: int = DEFAULT_BATCH_ROWS, in_flight: int | None = None,
                        retries: int = 2, on_batch: Callable[[int], Any] | None = None) -> int:
    """Score Parquet ``source`` on the cluster into one Parquet file ``out``.

    Map-only over row groups; the results are written by the client in row order, to a
    temporary file renamed to ``out`` at the end (nothing is left behind on failure).  The
    content equals :func:`sparsecross.predict.predict_file`'s: column ``probability``
    (float64) after the ``keep`` columns.  Returns the number of rows.

    Parameters
    ----------
    client
        A ``distributed.Client`` (default: the current default client).
    in_flight
        Row groups in flight at once (default ``max(4, 2 * workers)``): bounds memory.
    retries
        Automatic retries of a failed task.
    on_batch
        Called with the number of rows of each chunk written.
    """
    out = Path(out)
    if out.is_dir():
        raise SparseCrossError(f"output {shown_path(out)} is a folder; give a file name such as pred.parquet")
    keep = list(keep)
    check_outputs({"out": out}, {"an input data file": resolve_files(source)})
    check_source(model, source, label=False)
    schema = kept_schema(model, source, keep)
    chunks, runner, table_ref, window = _scoring(model, source, client, retries, in_flight, "predict",
                                                 label=False, extra_columns=keep)
    try:
        results = _ordered(runner, _task_predict, chunks, (model.spec, table_ref, keep, batch_rows, schema),
                           window=window, name="predict")
        with contextlib.closing(results):
            return write_parquet_atomically((table for _chunk, table in results), out, on_table=on_batch,
                                            schema=schema)
    finally:
        runner.cancel([table_ref])


def evaluate_distributed(model: SparseModel, source: Source, client: Any = None, *,
                         batch_rows: int = DEFAULT_BATCH_ROWS, in_flight: int | None = None,
                         retries: int = 2) -> dict[str, Any]:
    """Rows, logloss, ROC AUC and positive rate of ``model`` on labelled Parquet, on the cluster.

    Map-only: each row group returns its :class:`~sparsecross.metrics.StreamingMetrics`
    histograms (sparse), merged by the client in row-group order.  ``rows``, ``auc`` and
    ``positive_rate`` equal :func:`sparsecross.predict.evaluate`'s exactly (without sample
    weights the histograms hold integer counts); ``logloss`` is a sum taken in another order,
    equal to about 1e-15 relative, and the same on every run and cluster.
    """
    check_source(model, source, label=True)
    chunks, runner, table_ref, window = _scoring(model, source, client, retries, in_flight, "evaluate")
    metrics = StreamingMetrics()
    try:
        results = _ordered(runner, _task_metrics, chunks, (model.spec, table_ref, batch_rows), window=window,
                           name="eval")
        with contextlib.closing(results):
            for _chunk, (nz, pos, neg, acc) in results:
                metrics.pos[nz] += pos
                metrics.neg[nz] += neg
                metrics.acc += acc
    finally:
        runner.cancel([table_ref])
    if metrics.rows == 0:
        raise SparseCrossError(f"no rows to evaluate in {described(source)}")
    return {"rows": metrics.rows, "logloss": metrics.logloss, "auc": metrics.auc,
            "positive_rate": metrics.positive_rate}
