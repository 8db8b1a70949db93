"""Validation around training: the inputs checked before any training (schemas, values), the
state scored on validation or holdout rows at every epoch end, and the best epoch so far."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._kernels.ftrl import FTRLParams
from .errors import DataError
from .featurize import iter_batches, resolve_spec
from .metrics import StreamingMetrics
from .read import DEFAULT_BATCH_ROWS, Source, count_rows, described
from .schema import check_compatible, source_schema
from .spec import FeatureSpec
from .state import FTRLState
from .train_step import _score_mask, prefetch

__all__ = ["evaluate_state", "evaluate_states", "check_inputs", "check_values"]


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


def prepare_inputs(source: Source, spec: FeatureSpec, valid: Source | None, batch_rows: int,
                   holdout: float | None) -> tuple[dict[str, str], FeatureSpec, int]:
    """What every training entry (train, Dask training, tune, the path, the cross search) checks
    before it trains: the schemas (:func:`check_inputs`), the spec's data-derived settings
    resolved, the validation values (:func:`check_values`) and the training rows.  Returns the
    schema classes, the resolved spec and the number of training rows.

    Raises
    ------
    SchemaError, DataError
        As :func:`check_inputs` and :func:`check_values`; a DataError when the training data
        has no rows."""
    schema = check_inputs(source, spec, valid)
    spec = resolve_spec(source, spec, batch_rows=batch_rows, holdout=holdout)
    if valid is not None:
        check_values(valid, spec, batch_rows)
    rows = count_rows(source)
    if rows == 0:
        raise DataError(f"the training data {described(source)} has no rows")
    return schema, spec, rows


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
