"""Arrow batch -> ``(X, y, sample_weight)`` with ``X`` a canonical scipy CSR.

Python validates and prepares one array per column (numbers as float64 with NaN for null,
strings hashed once per distinct dictionary value); the kernels in
``sparsecross._kernels.crosses`` compute local ids and assemble the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from ._kernels import crosses as K
from ._kernels.hash import holdout_mask
from ._kernels.lists import merge_entries
from .arrow_numpy import as_array as _as_array, float64_column as _float64, valid_of
from .csr_rows import CSRRows
from .errors import NAME_LIMIT, DataError, SparseCrossError, shown
from .hashing import holdout_salt, missing_key
from .kinds import KINDS, SHIPPED, Ctx
from .kinds.categorical import categorical_keys, hash_dictionary
from .labels import _first_bad, _label_rows, _labels  # noqa: F401  (imported from here by other modules)
from .listcross import list_cross_entries
from .read import DEFAULT_BATCH_ROWS, Source, check_schema, described, iter_record_batches, located
from .spec import FeatureSpec

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["featurize", "iter_batches", "Batch", "resolve_spec"]



@dataclass(frozen=True)
class _Plan:
    """Kernel-ready description of a spec's outputs (arrays only)."""

    out_kind: np.ndarray
    out_offset: np.ndarray
    out_seed: np.ndarray
    comp_ptr: np.ndarray
    comp_feat: np.ndarray
    comp_stride: np.ndarray
    skip: np.ndarray
    mask: np.uint64
    hashed_offset: np.int64
    salts: tuple[np.uint64, ...]
    missing_keys: tuple[np.uint64, ...]
    #: Features that are components of a hashed cross (a categorical list there is crossed
    #: element by element: :func:`_list_cross_entries`).
    hashed_crossed: frozenset[int] = frozenset()


_PLANS: dict[str, _Plan] = {}


def _plan(spec: FeatureSpec) -> _Plan:
    key = spec.sha256
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    outs = spec.outputs
    comp_ptr = np.zeros(len(outs) + 1, dtype=np.int64)
    feats: list[int] = []
    strides: list[int] = []
    for o, out in enumerate(outs):
        feats.extend(out.components)
        strides.extend(out.strides)
        comp_ptr[o + 1] = len(feats)
    plan = _Plan(
        out_kind=np.array([o.kind for o in outs], dtype=np.int8),
        out_offset=np.array([o.offset for o in outs], dtype=np.int64),
        out_seed=np.array([o.seed for o in outs], dtype=np.uint64),
        comp_ptr=comp_ptr,
        comp_feat=np.array(feats, dtype=np.int64),
        comp_stride=np.array(strides, dtype=np.int64),
        skip=np.array([f.missing == "skip" for f in spec.features], dtype=np.uint8),
        mask=np.uint64((1 << spec.hashing.bits) - 1),
        hashed_offset=np.int64(spec.hashed_offset),
        salts=tuple(np.uint64(s) for s in spec.salts),
        missing_keys=tuple(np.uint64(missing_key(s)) for s in spec.salts),
        hashed_crossed=frozenset(c for o in outs if o.kind == 2 for c in o.components),
    )
    _PLANS[key] = plan
    return plan


# The categorical kind hashes strings once per Arrow dictionary (names.py uses it too).
_hash_dictionary = hash_dictionary
_categorical_keys = categorical_keys


def _take_rows(X: sp.csr_array, rows: np.ndarray) -> sp.csr_array:
    """The CSR rows ``rows`` of ``X`` (int64 indices kept, canonical)."""
    import scipy.sparse as sp

    starts = X.indptr[rows]
    lens = X.indptr[rows + 1] - starts
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=indptr[1:])
    idx = np.repeat(starts - indptr[:-1], lens) + np.arange(indptr[-1], dtype=np.int64)
    out = sp.csr_array((X.data[idx], X.indices[idx], indptr), shape=(len(rows), X.shape[1]))
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


#: Most (row, feature) and (row, output) entries featurized at once.  A batch is processed in
#: slices of ``SLICE_ENTRIES // max(features, outputs)`` rows so the per-feature local ids
#: (9 bytes an entry) and the kernel's row scratch (12 bytes an entry) stay around 40-50 MB
#: whatever the number of features; the slices' CSR parts are concatenated.
SLICE_ENTRIES = 1 << 22


def featurize_features(spec: FeatureSpec, table: pa.Table | pa.RecordBatch, start_row: int = 0, *,
                       scipy_csr: bool = True) -> sp.csr_array | CSRRows:
    """Features only (no label): the CSR rows of ``table`` under ``spec`` (a :class:`CSRRows`
    without ``scipy_csr``)."""
    plan = _plan(spec)
    n = table.num_rows
    width = max(len(spec.features), len(plan.out_kind), 1)
    step = max(1, SLICE_ENTRIES // width)
    if n <= step:
        indptr, indices, data = _featurize_slice(spec, plan, table, start_row)
    else:
        parts = [_featurize_slice(spec, plan, table.slice(a, step), start_row + a)
                 for a in range(0, n, step)]
        indptr = np.empty(n + 1, dtype=np.int64)
        indptr[0] = 0
        r = 0
        base = 0
        for p, _, _ in parts:
            m = len(p) - 1
            indptr[r + 1: r + m + 1] = p[1:] + base
            r += m
            base += int(p[-1])
        indices = np.concatenate([q[1] for q in parts])
        data = np.concatenate([q[2] for q in parts])
    if not scipy_csr:
        return CSRRows(indptr, indices, data, (n, spec.n_columns))
    import scipy.sparse as sp  # here, not at import: ``import sparsecross`` stays light

    X = sp.csr_array((data, indices, indptr), shape=(n, spec.n_columns))
    # The kernel emits sorted, duplicate-free rows: tell scipy so it never re-checks or re-sorts.
    X.has_sorted_indices = True
    X.has_canonical_format = True
    return X


def _featurize_slice(spec: FeatureSpec, plan: _Plan, table: pa.Table | pa.RecordBatch,
                     start_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of the rows of ``table`` (one slice of a batch)."""
    n = table.num_rows
    ids, missing, skip, values, extra = _feature_ids(spec, plan, table, start_row)
    indptr, indices, data = K.build_csr(
        ids, missing, skip, plan.out_kind, plan.out_offset, plan.out_seed, plan.comp_ptr,
        plan.comp_feat, plan.comp_stride, plan.mask, plan.hashed_offset,
    )
    if values:
        # A numeric feature (never crossed) is standalone: its value goes to the first column of
        # its exact block, which no other output can hit.
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        offsets = {o.components[0]: o.offset for o in spec.outputs if o.kind == 0 and len(o.components) == 1}
        for fi, v in values:
            sel = np.flatnonzero(indices == offsets[fi])
            data[sel] = v[rows[sel]]
    if extra:
        indptr, indices, data = _merge_entries(indptr, indices, data, extra, plan, n)
    return indptr, indices, data


def _feature_ids(spec: FeatureSpec, plan: _Plan, table: pa.Table | pa.RecordBatch, start_row: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, np.ndarray]],
                            list[tuple[np.ndarray, np.ndarray]]]:
    """``build_csr``'s inputs for the rows of ``table``: per-feature local ids / keys
    (uint64[F, n]), missing flags (uint8[F, n]) and per-feature skip flags; plus the values of
    the features whose value is not 1.0 (numeric) and the extra hashed entries of list
    categoricals, which ``_featurize_slice`` adds to the CSR."""
    n = table.num_rows
    nf = len(spec.features)
    ids = np.empty((nf, n), dtype=np.uint64)
    missing = np.empty((nf, n), dtype=np.uint8)
    floats: dict[str, np.ndarray] = {}  # float64 of each numeric column, shared by its features

    def numeric(col: str) -> np.ndarray:
        x = floats.get(col)
        if x is None:
            x = floats[col] = _float64(_as_array(table.column(col)))
        return x

    values: list[tuple[int, np.ndarray]] = []  # (feature, float32 values) of kinds whose value is not 1.0
    skip = plan.skip.copy()
    extra: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, keys) hashed entries of list categoricals
    lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # crossed elements of list categoricals
    for fi, f in enumerate(spec.features):
        ctx = Ctx(table, start_row, plan.salts[fi], plan.missing_keys[fi], numeric, fi, skip, extra,
                  lists if fi in plan.hashed_crossed else None)
        kind = KINDS[f.kind]
        v = kind.featurize(f, ctx, ids[fi], missing[fi])
        if id(kind) not in _SHIPPED_IDS:
            _check_local_ids(f, kind, ids[fi], missing[fi] if skip[fi] else None)
        if v is not None:
            values.append((fi, v))
    if lists:
        extra.extend(_list_cross_entries(spec, plan, ids, missing, lists))
    return ids, missing, skip, values, extra


#: The shipped kind objects (not names: a plugin may replace ``KINDS["bucket"]``, or register
#: before this module loads); any other kind has its exact ids checked on every batch.
_SHIPPED_IDS = frozenset(id(k) for k in SHIPPED)


def _check_local_ids(f: Any, kind: Any, ids: np.ndarray, skipped: np.ndarray | None) -> None:
    """An exact feature's local ids must lie in ``[0, cardinality)``: ``build_csr`` adds them to
    the feature's offset without a bounds check, so one past the block would land silently in
    another feature's columns.  ``skipped``: the missing flags when the feature skips its
    missing rows (``build_csr`` ignores their ids), else None."""
    card = f.cardinality
    if card is None or not kind.is_exact(f):
        return
    if skipped is not None:
        ids = ids[skipped == 0]
    if not len(ids):
        return
    top = int(ids.max())
    if top >= card:
        raise SparseCrossError(f"feature {shown(f.name, NAME_LIMIT)}: kind {shown(f.kind)} gave local id {top}, "
                               f"outside its cardinality [0, {card}); a kind's featurize must write ids below it")


def _list_cross_entries(spec: FeatureSpec, plan: _Plan, ids: np.ndarray, missing: np.ndarray,
                        lists: dict[int, tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rows, keys)`` of the hashed crosses with a categorical list component (``build_csr``
    emits nothing for them: the list feature is missing and skipped there), crossed by
    :func:`sparsecross.listcross.list_cross_entries`."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for o in np.flatnonzero(plan.out_kind == 2):
        comps = plan.comp_feat[plan.comp_ptr[o]: plan.comp_ptr[o + 1]]
        listed = {j: lists[int(fi)] for j, fi in enumerate(comps) if int(fi) in lists}
        if listed:
            rows, keys, _ = list_cross_entries(ids[comps], missing[comps], plan.skip[comps], listed, plan.out_seed[o])
            out.append((rows, keys))
    return out


def _merge_entries(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                   extra: list[tuple[np.ndarray, np.ndarray]], plan: _Plan, n: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add hashed entries ``(rows, keys)`` to canonical CSR rows: sorted again, entries on the
    same column summed (a collision's value is its count)."""
    rows = np.concatenate([e[0] for e in extra]).astype(np.int64, copy=False)
    cols = np.concatenate([plan.hashed_offset + (e[1] & plan.mask).astype(np.int64) for e in extra])
    return merge_entries(indptr, indices, data, rows, cols)


def featurize(
    data: Any, spec: FeatureSpec, *, start_row: int = 0
) -> tuple[sp.csr_array, np.ndarray, np.ndarray | None]:
    """Featurize an Arrow table or record batch, a pandas or polars DataFrame, or anything
    with ``__arrow_c_stream__`` (see :func:`sparsecross.inputs.as_arrow`).

    Parameters
    ----------
    data
        The rows, with every column the spec reads.
    spec
        A resolved :class:`~sparsecross.spec.FeatureSpec`.
    start_row
        Global number of the first row, used in error messages.

    Returns
    -------
    X : scipy.sparse.csr_array
        Canonical CSR (sorted, no duplicates), int64 ``indptr``/``indices``, float32 data,
        shape ``(rows, spec.n_columns)``.
    y : numpy.ndarray
        float64 labels in {0, 1}.
    sample_weight : numpy.ndarray or None
        float64 weights when the spec names a weight column or a ``positive_weight`` (which
        multiplies the weight of the positive rows).

    Rows whose label is null or NaN are left out of all three under ``[label] missing =
    "skip"`` (:func:`iter_batches` keeps them and marks them in ``Batch.skip`` instead).

    Raises
    ------
    SchemaError, DataError
        Missing columns, wrong types, labels not 0/1, coordinates out of range.
    InputTypeError
        (a ``TypeError``) ``data`` is none of the types above.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from sparsecross import parse_spec
    >>> spec = parse_spec({"label": {"column": "y"}, "features": [
    ...     {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon"}]})
    >>> X, y, w = featurize(pa.table({"lat": [0.0, 0.01], "lon": [0.0, 0.0], "y": [1, 0]}), spec)
    >>> X.indices.tolist()  # 0.01 degrees is 0.6 arc-minutes: the same cell
    [116650800, 116650800]
    """
    from .inputs import as_arrow

    data = as_arrow(data, what="featurize's data")
    check_schema(spec, data.schema, "the input table")
    y, w, skip = _label_rows(spec, data, start_row)
    X = featurize_features(spec, data, start_row)
    if len(skip):  # [label] missing = "skip": the rows without a label are left out
        keep = np.flatnonzero(skip == 0)
        X, y, w = _take_rows(X, keep), y[keep], None if w is None else w[keep]
    return X, y, w


class Batch(NamedTuple):
    """One featurized batch: CSR rows (a scipy ``csr_array``, or a :class:`CSRRows` from
    ``iter_batches(scipy_csr=False)``), labels, optional weights, first global row number.

    ``rows`` is None when the batch holds the consecutive global rows ``start_row, ...``;
    a shuffled batch (:mod:`sparsecross.order`) gives each row's global number there.
    ``skip``: uint8[n] with 1 on the rows whose label is missing under ``[label] missing =
    "skip"`` (not trained on, not scored), or None / length 0 when no row is skipped."""

    X: sp.csr_array | CSRRows
    y: np.ndarray
    sample_weight: np.ndarray | None
    start_row: int
    rows: np.ndarray | None = None
    skip: np.ndarray | None = None


def iter_batches(
    source: Source, spec: FeatureSpec, *, batch_rows: int = DEFAULT_BATCH_ROWS, start_row: int = 0,
    observe: Callable[[pa.RecordBatch, int], object] | None = None, scipy_csr: bool = True,
) -> Iterator[Batch]:
    """Stream a Parquet source as featurized :class:`Batch` es, in bounded memory.

    ``observe(record_batch, first_row)`` is called with every Arrow batch before it is
    featurized (e.g. to record the values behind hashed columns in the same read).  Without
    ``scipy_csr``, ``Batch.X`` is a :class:`~sparsecross.csr_rows.CSRRows` (the same arrays,
    no scipy matrix: what training reads).

    Raises
    ------
    SchemaError, DataError
        As :func:`featurize`, plus unreadable files and empty sources.
    """
    if spec.needs_data:
        spec = resolve_spec(source, spec)
    any_rows = False
    with located(source):
        for batch, row in iter_record_batches(source, spec, batch_rows=batch_rows, start_row=start_row):
            any_rows = True
            if observe is not None:
                observe(batch, row)
            y, w, skip = _label_rows(spec, batch, row)
            yield Batch(featurize_features(spec, batch, row, scipy_csr=scipy_csr), y, w, row, skip=skip)
    if not any_rows and start_row == 0:
        raise DataError(f"the data {described(source)} has no rows")


def resolve_spec(source: Source, spec: FeatureSpec, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                 holdout: float | None = None) -> FeatureSpec:
    """Compute the settings that come from the data (``quantiles = N`` -> explicit boundaries)
    from ``source``: each such feature's kind (:meth:`Kind.resolve`) gets a sample of its column.

    The sample is the first ``spec.quantile_sample_rows`` non-missing values of each such column, in
    reading order (bounded memory), from the rows that are trained on: with ``holdout``, the
    held-out rows (the same seeded-hash choice as training) are left out, and with ``[label]
    missing = "skip"`` the rows whose label is null or NaN.  A spec with nothing
    to resolve is returned unchanged.
    """
    todo = [f for f in spec.features if KINDS[f.kind].needs_data(f)]
    if not todo:
        return spec
    limit = spec.quantile_sample_rows
    samples: dict[str, list[np.ndarray]] = {f.name: [] for f in todo}
    counts = dict.fromkeys(samples, 0)
    salt = np.uint64(holdout_salt(spec.hashing.seed))
    skipping = spec.label.missing == "skip"  # rows without a label are not trained on: not sampled either
    for batch, row in iter_record_batches(source, spec, batch_rows=batch_rows, label=skipping):
        trained = None if holdout is None else holdout_mask(row, batch.num_rows, float(holdout), salt) == 0
        if skipping:
            lab = _as_array(batch.column(spec.label.column))
            has = valid_of(lab) if lab.null_count else np.ones(len(lab), bool)
            if pa.types.is_floating(lab.type):
                has &= ~np.isnan(_float64(lab))
            trained = has if trained is None else trained & has
        for f in todo:
            if counts[f.name] >= limit:
                continue
            x = _float64(_as_array(batch.column(f.columns[0])))
            if trained is not None:
                x = x[trained]
            x = x[np.isfinite(x)][: limit - counts[f.name]]
            samples[f.name].append(x)
            counts[f.name] += len(x)
        if all(c >= limit for c in counts.values()):
            break
    resolved = {f.name: KINDS[f.kind].resolve(f, np.concatenate(samples[f.name]) if samples[f.name] else np.zeros(0))
                for f in todo}
    return spec.with_features(resolved)
