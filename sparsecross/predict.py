"""Scoring from a :class:`~sparsecross.model.SparseModel`: margins over CSR, probabilities for
Arrow data (featurized with the model's own spec), streaming prediction and evaluation of
Parquet in bounded memory."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from ._defaults import PREDICT_BATCH_ROWS  # noqa: F401  (re-exported: predict.PREDICT_BATCH_ROWS)
from ._kernels.score import finish_sigmoid, score_csr, score_features
from .errors import InputTypeError, OutputError, ParameterError, SparseCrossError, shown_path
from .files import atomic_output, check_outputs
from .featurize import SLICE_ENTRIES, _feature_ids, _label_rows, _plan, featurize_features
from .metrics import StreamingMetrics
from .model import SparseModel
from .read import Source, check_schema, described, iter_record_batches, located, open_checked, resolve_files
from .schema import check_compatible, schema_classes

__all__ = ["decision_function", "predict_proba", "predict_file", "evaluate", "sigmoid", "write_parquet_atomically"]


def sigmoid(m: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (float64)."""
    if isinstance(m, np.ndarray) and m.dtype == np.float64 and m.ndim == 1:
        # exp(-|m|) is exp(-m) where m >= 0 and exp(m) elsewhere, computed by the same numpy
        # exp (bit for bit what the masked form below computes), then one pass for the rest.
        out = np.abs(m)
        np.negative(out, out=out)
        np.exp(out, out=out)
        finish_sigmoid(m, out)
        return out
    out = np.empty_like(m, dtype=np.float64)
    pos = m >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-m[pos]))
    e = np.exp(m[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _canonical(X: Any, n_columns: int) -> sp.csr_array:
    if not sp.issparse(X):
        raise SparseCrossError(f"expected a scipy sparse matrix, got {type(X).__name__}")
    if X.shape[1] != n_columns:
        raise SparseCrossError(
            f"X has {X.shape[1]} columns but the model expects {n_columns}; "
            "featurize with the model's spec"
        )
    X = sp.csr_array(X)
    if X.indices.dtype != np.int64 or X.indptr.dtype != np.int64 or X.data.dtype != np.float32:
        X = sp.csr_array((X.data.astype(np.float32), X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                         shape=X.shape)
    return X


#: Exact outputs (bucket, lat/lon band, geo cell, exact cross) of at most this many columns are
#: scored from a dense copy of their weights instead of the hash table.
DENSE_OUTPUT_COLUMNS = 1 << 16


class _Scorer:
    """What :func:`score_features` needs besides the features: the model's lookup table and
    dense copies of the weights of its small exact outputs."""

    def __init__(self, model: SparseModel) -> None:
        self.table, self.vals = model.lookup_table()
        self.bias = model.bias
        spec = model.spec
        self.plan = _plan(spec)
        keys = model.keys
        base = np.full(len(spec.outputs), -1, dtype=np.int64)
        size = 0
        for o, out in enumerate(spec.outputs):
            if out.kind == 0 and out.cardinality <= DENSE_OUTPUT_COLUMNS:
                base[o] = size
                size += out.cardinality
        self.dense_base = base
        self.dense_w = np.zeros(size, dtype=np.float64)
        self.dense_hit = np.zeros(size, dtype=np.uint8)
        for o, out in enumerate(spec.outputs):
            if base[o] >= 0:
                lo, hi = np.searchsorted(keys, np.array([out.offset, out.offset + out.cardinality], dtype=np.uint64))
                j = base[o] + (keys[lo:hi].astype(np.int64) - out.offset)
                # float64 of the float32 weight: the value the table hands score_csr either way
                self.dense_w[j] = model.weights[lo:hi].astype(np.float64)
                self.dense_hit[j] = 1


_SCORERS: weakref.WeakKeyDictionary[SparseModel, _Scorer] = weakref.WeakKeyDictionary()


def _scorer(model: SparseModel) -> _Scorer:
    sc = _SCORERS.get(model)
    if sc is None or sc.table is not model.lookup_table()[0] or sc.bias != model.bias:
        sc = _SCORERS[model] = _Scorer(model)
    return sc


def _margins(model: SparseModel, data: pa.Table | pa.RecordBatch, start_row: int = 0) -> np.ndarray:
    """Margins of the rows of ``data`` (featurized with ``model.spec``), bit for bit
    ``score_csr`` of ``featurize_features``, without building the CSR rows."""
    sc = _scorer(model)
    plan = sc.plan
    spec = model.spec
    n = data.num_rows
    out = np.empty(n, dtype=np.float64)
    step = max(1, SLICE_ENTRIES // max(len(spec.features), len(plan.out_kind), 1))
    for a in range(0, n, step):
        part = data if n <= step else data.slice(a, step)
        ids, missing, skip, values, extra = _feature_ids(spec, plan, part, start_row + a)
        if values or extra:
            # numeric values and list elements are added to the CSR rows after build_csr: score those
            X = featurize_features(spec, part, start_row + a)
            out[a: a + part.num_rows] = score_csr(X.indptr, X.indices, X.data, sc.table, sc.vals, sc.bias)
            continue
        score_features(ids, missing, skip, plan.out_kind, plan.out_offset, plan.out_seed, plan.comp_ptr,
                       plan.comp_feat, plan.comp_stride, plan.mask, plan.hashed_offset, sc.dense_base,
                       sc.dense_w, sc.dense_hit, sc.table, sc.vals, sc.bias, out[a: a + part.num_rows])
    return out


def decision_function(model: SparseModel, X: Any) -> np.ndarray:
    """Margins ``X @ w + bias`` (float64), computed row-parallel with a hash lookup per entry.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from sparsecross.spec import parse_spec
    >>> spec = parse_spec({"label": {"column": "y"}, "hashing": {"bits": 4},
    ...                    "features": [{"name": "c", "kind": "categorical", "column": "c"}]})
    >>> m = SparseModel(np.array([3], np.uint64), np.array([2.0], np.float32), -1.0, spec)
    >>> decision_function(m, sp.csr_array(np.array([[0, 0, 0, 1.0] + [0] * 12])))
    array([1.])
    """
    X = _canonical(X, model.n_columns)
    tk, tw = model.lookup_table()
    return score_csr(X.indptr, X.indices, X.data, tk, tw, model.bias)


def predict_proba(model: SparseModel, data: Any) -> np.ndarray:
    """P(y = 1) for CSR rows, or for an Arrow table/batch, a pandas or polars DataFrame or
    anything with ``__arrow_c_stream__`` (featurized with ``model.spec``; see
    :func:`sparsecross.inputs.as_arrow`)."""
    if not sp.issparse(data):
        from .inputs import ACCEPTED, as_arrow, is_data

        if not is_data(data):
            raise InputTypeError(f"predict_proba's data must be a scipy sparse matrix (CSR rows), {ACCEPTED}; "
                                 f"got {type(data).__name__}")
        data = as_arrow(data, what="predict_proba's data")
        check_schema(model.spec, data.schema, "the input table", label=False)
        check_compatible(model.spec, model.schema, schema_classes(model.spec, data.schema, label=False),
                         "the input table", label=False)
        return sigmoid(_margins(model, data))
    return sigmoid(decision_function(model, data))


def check_source(model: SparseModel, source: Source, *, label: bool) -> None:
    """Refuse, before scoring, data whose columns would make other features than the data the
    model was trained on (every file's footer is checked; see :mod:`sparsecross.schema`)."""
    for path in resolve_files(source):
        pf, _strings = open_checked(path, model.spec, label=label)
        given = schema_classes(model.spec, pf.schema_arrow, label=label)
        pf.close()
        check_compatible(model.spec, model.schema, given, shown_path(path), label=label)


def _writer_options(schema: pa.Schema) -> dict[str, Any]:
    """Parquet writer options: the ``probability`` column (float64) is written PLAIN and
    uncompressed: a third of the CPU time of pyarrow's default (a dictionary attempt, then
    Snappy), for a larger file (8 bytes a row; the default takes 3.5 on the benchmark's
    test set, whose model has few weights).  Other columns keep the defaults."""
    names = schema.names
    if PREDICTION_COLUMN not in names:
        return {}
    return {"use_dictionary": [n for n in names if n != PREDICTION_COLUMN],
            "compression": {n: ("none" if n == PREDICTION_COLUMN else "snappy") for n in names}}


def write_parquet_atomically(tables: Iterable[pa.Table], out: str | os.PathLike[str], *,
                             on_table: Callable[[int], Any] | None = None,
                             empty_message: str = "no rows to write", schema: pa.Schema | None = None) -> int:
    """Write a stream of Arrow tables (same schema) as one Parquet file: to a temporary name in
    the same folder, renamed to ``out`` only when complete.  Returns the number of rows.

    Raises
    ------
    SparseCrossError
        If the stream is empty and no ``schema`` is given (nothing is written); with a
        ``schema``, an empty stream writes a file without rows.
    """
    rows = 0
    with atomic_output(out, "predictions", OutputError) as fh:
        writer: pq.ParquetWriter | None = None
        try:
            for table in tables:
                if writer is None:
                    writer = pq.ParquetWriter(fh, table.schema, **_writer_options(table.schema))
                writer.write_table(table)
                rows += table.num_rows
                if on_table is not None:
                    on_table(table.num_rows)
            if writer is None:
                if schema is None:
                    raise SparseCrossError(empty_message)
                writer = pq.ParquetWriter(fh, schema, **_writer_options(schema))
        finally:
            if writer is not None:
                writer.close()
    return rows


PREDICTION_COLUMN = "probability"
MARGIN_COLUMN = "margin"



def kept_schema(model: SparseModel, source: Source, keep: Sequence[str], margin: bool = False) -> pa.Schema:
    """The output schema: the ``keep`` columns with their types in the (first) input file,
    then ``probability`` (float64), then ``margin`` (float64) with ``margin``."""
    if len(set(keep)) != len(keep):
        raise ParameterError(f"keep names a column twice: {list(keep)}")
    if PREDICTION_COLUMN in keep:
        raise ParameterError(
            f"cannot keep a column named {PREDICTION_COLUMN!r}: it would clash with the prediction column"
        )
    if margin and MARGIN_COLUMN in keep:
        raise ParameterError(
            f"cannot keep a column named {MARGIN_COLUMN!r} with margin: it would clash with the margin column"
        )
    pf, _ = open_checked(resolve_files(source)[0], model.spec, label=False, extra_columns=keep)
    schema = pf.schema_arrow
    pf.close()
    extra = [pa.field(MARGIN_COLUMN, pa.float64())] if margin else []
    return pa.schema([schema.field(k).remove_metadata() for k in keep] + [pa.field(PREDICTION_COLUMN, pa.float64())]
                     + extra)


def predict_file(model: SparseModel, source: Source, out: str | os.PathLike[str], *,
                 keep: Sequence[str] = (), batch_rows: int = PREDICT_BATCH_ROWS,
                 on_batch: Any = None, margin: bool = False) -> int:
    """Score Parquet ``source`` into Parquet ``out`` (column ``probability``, float64, plus
    the ``keep`` columns with their input types, and with ``margin`` the raw log-odds
    ``X @ w + bias`` as column ``margin``, float64, after ``probability``), streaming.  Written to a temporary file and
    renamed when complete; an input without rows gives an output without rows (same schema).
    Returns the number of rows.

    Raises
    ------
    OutputError
        ``out`` is one of the input files, or cannot be written.
    ParameterError
        A ``keep`` column named ``probability`` (or ``margin`` with ``margin``) or named twice.
    SchemaError
        Missing columns, or a column whose type would change the features (see
        :mod:`sparsecross.schema`).
    """
    keep = list(keep)
    check_outputs({"out": out}, {"an input data file": resolve_files(source)})
    check_source(model, source, label=False)
    schema = kept_schema(model, source, keep, margin)

    def tables() -> Iterator[pa.Table]:
        with located(source):
            for batch, row in iter_record_batches(source, model.spec, batch_rows=batch_rows, label=False,
                                                  extra_columns=keep):
                m = _margins(model, batch, row)
                p = sigmoid(m)
                # string columns the spec reads come back dictionary-encoded: give them their own type back
                cols = [batch.column(k).cast(schema.field(k).type) for k in keep]
                yield pa.Table.from_arrays(cols + [pa.array(p)] + ([pa.array(m)] if margin else []), schema=schema)

    return write_parquet_atomically(tables(), out, on_table=on_batch, schema=schema)


def evaluate(model: SparseModel, source: Source, *, batch_rows: int = PREDICT_BATCH_ROWS,
             on_batch: Any = None) -> dict[str, Any]:
    """Rows, logloss and ROC AUC of ``model`` on labelled Parquet ``source`` (streaming), the
    (weighted) positive rate and ``baseline_logloss``, the logloss of predicting that rate for
    every row; with ``[label] missing = "skip"``, ``skipped_rows``: rows left out for a null or
    NaN label.  Sample weights (the weight column, ``positive_weight``) weight every metric."""
    check_source(model, source, label=True)
    metrics = StreamingMetrics()
    with located(source):
        for batch, row in iter_record_batches(source, model.spec, batch_rows=batch_rows):
            y, w, skip = _label_rows(model.spec, batch, row)
            metrics.update(_margins(model, batch, row), y, w, (skip == 0).astype(np.uint8) if len(skip) else None)
            metrics.skipped += int(np.count_nonzero(skip))
            if on_batch is not None:
                on_batch(len(y))
    if metrics.rows == 0:
        raise SparseCrossError(f"no rows to evaluate in {described(source)}"
                               + (f" ({metrics.skipped:,} skipped for a missing label)" if metrics.skipped else ""))
    res = {"rows": metrics.rows, "logloss": metrics.logloss, "auc": metrics.auc,
           "positive_rate": metrics.positive_rate, "baseline_logloss": metrics.baseline_logloss}
    if model.spec.label.missing == "skip":
        res["skipped_rows"] = metrics.skipped
    return res
