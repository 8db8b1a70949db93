"""Regularization path: many (l1, l2) settings trained in ONE read of the data.

Every batch is read and featurized once and fed, in order, to one FTRL state per setting, so a
path of K points costs one featurization pass plus K kernel passes (no warm start is needed, and
each point is exactly the model ``train`` would give for that setting).  With a size budget
(``max_nonzeros`` or ``max_bytes``), the l1 that lands on the budget is searched by narrowing a
bracket between grid points, a few l1 values per extra pass: the practical stand-in for L0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._values import PARAM_RULES, is_num
from .admission import policy_of
from .budget import check_max_state_mb
from .errors import ParameterError, SparseCrossError, shown
from .hashing import holdout_salt
from .metrics import StreamingMetrics
from .model import SparseModel
from .order import Shuffle
from .read import Source
from .spec import FeatureSpec
from .state import FTRLState
from .multitrain import Lane, epoch_record, train_epoch
from .train import (TrainParams, _epoch_batches, _order_params, _shuffle_of, evaluate_states, export_state,
                    in_memory, prefetch, record_budget)
from .train_eval import prepare_inputs
from .train_options import resolve_train_options

__all__ = ["PathPoint", "PathResult", "regularization_path", "parse_grid"]


@dataclass
class PathPoint:
    """One trained setting of the path."""

    l1: float
    l2: float
    nonzeros: int
    model_bytes: int
    valid_logloss: float
    valid_auc: float
    touched: int
    model: SparseModel | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2, "nonzeros": self.nonzeros, "model_bytes": self.model_bytes,
                "valid_logloss": self.valid_logloss, "valid_auc": self.valid_auc, "touched": self.touched}


@dataclass
class PathResult:
    points: list[PathPoint]
    chosen: PathPoint | None
    budget: dict[str, int] | None
    seconds: float
    rows: int
    passes: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in self.points],
                "chosen": self.chosen.to_dict() if self.chosen else None,
                "budget": self.budget, "seconds": self.seconds, "rows": self.rows, "passes": self.passes,
                "note": self.note}


def parse_grid(text: str, name: str) -> list[float]:
    """'0,0.1,1' -> [0.0, 0.1, 1.0]; must be non-empty, strictly increasing, in range (check_grid)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SparseCrossError(f"--{name}: expected comma-separated numbers, got {shown(text)}") from None
    check_grid(values, name)
    return values


def check_grid(values: Sequence[float], name: str) -> None:
    """A grid of ``name`` (alpha, l1 or l2): not empty, strictly increasing, every value in
    the parameter's range (``_values.PARAM_RULES``, as TrainParams), else a ParameterError."""
    if not values:
        raise ParameterError(f"--{name}: the grid is empty")
    ok, expected = PARAM_RULES[name]
    bad = [v for v in values if not is_num(v) or not ok(v)]
    if bad:
        raise ParameterError(f"--{name}: values must be finite numbers {expected}, got {shown(bad[0])}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ParameterError(f"--{name}: the grid must be strictly increasing, got {shown(list(values))}")


def check_validation_and_budget(what: str, valid: Source | None, holdout: float | None,
                                max_nonzeros: int | None, max_bytes: int | None) -> None:
    """Exactly one source of validation rows, at most one budget, budgets >= 0."""
    if valid is None and holdout is None:
        raise SparseCrossError(f"{what} needs validation data: give valid data or a holdout fraction")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")
    if max_nonzeros is not None and max_bytes is not None:
        raise SparseCrossError("give one budget: max_nonzeros or max_bytes")
    from ._values import check_count

    for name, b in (("max_nonzeros", max_nonzeros), ("max_bytes", max_bytes)):
        if b is not None:
            check_count(name, b, 0)  # a count of weights or bytes: 0 is a budget no model meets


def _train_many(source: Source, spec: FeatureSpec, settings: list[tuple[float, float]], base: TrainParams,
                valid: Source | None, batch_rows: int, rows: int, order: Shuffle | None = None,
                max_state_mb: float | None = None
                ) -> list[tuple[FTRLState, StreamingMetrics, TrainParams, np.ndarray, int]]:
    """Train one state per (l1, l2) over one read of ``source`` per epoch (in ``order``'s
    shuffled order when given, as ``train``), then validate all of them over one read of the
    validation data (or the holdout rows)."""
    # every point has its own state, admission filter and budget: the model `train` would give
    lanes = [Lane.new(TrainParams(base.alpha, base.beta, l1, l2, base.epochs, base.label_smoothing, base.holdout,
                                  base.state_dtype, base.admit, base.state_bits), spec.n_columns, rows, seed=spec.hashing.seed,
                      max_state_mb=max_state_mb)
             for l1, l2 in settings]
    salt = holdout_salt(spec.hashing.seed)
    skipped = 0  # as train(): rows of the last epoch skipped for a missing label
    for epoch in range(base.epochs):
        items = ((b, ()) for b in prefetch(_epoch_batches(source, spec, order, epoch, batch_rows, 0)))
        skipped = train_epoch(lanes, items, holdout=base.holdout, salt=salt, first=epoch == 0, epoch=epoch)
    states = [lane.state for lane in lanes if lane.state is not None]
    metrics = evaluate_states([(st, lane.params.ftrl) for st, lane in zip(states, lanes)],
                              valid if valid is not None else source, spec, batch_rows=batch_rows,
                              holdout=base.holdout if valid is None else None, salt=salt)
    return [(st, m, lane.params, lane.acc, skipped) for st, m, lane in zip(states, metrics, lanes)]


def _points(trained: list[tuple[FTRLState, StreamingMetrics, TrainParams, np.ndarray, int]], spec: FeatureSpec,
            rows: int, encoding: str, schema: dict[str, str], order: Shuffle | None = None,
            max_state_mb: float | None = None) -> list[PathPoint]:
    from .export import model_bytes

    out = []
    for st, m, tp, acc, skipped in trained:
        # The same history record as train() writes for its last epoch, so that with one epoch a
        # path point's artifact is byte-identical to the one `sparsecross train` writes.
        record = epoch_record(tp.epochs, acc, skipped, m, spec.label.missing == "skip")
        model = export_state(st, spec, tp, [record], rows, schema=schema, warn_empty=False)
        model.params.update(_order_params(order))
        record_budget(model, st, max_state_mb)
        size = len(model_bytes(model, encoding=encoding))
        out.append(PathPoint(tp.l1, tp.l2, model.nonzeros, size, m.logloss, m.auc, st.touched, model))
    return out


def regularization_path(
    source: Source,
    spec: FeatureSpec,
    *,
    l1: Sequence[float] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
    l2: Sequence[float] = (0.0,),
    alpha: float | None = None,
    beta: float | None = None,
    epochs: int | None = None,
    label_smoothing: float | None = None,
    valid: Source | None = None,
    holdout: float | None = None,
    max_nonzeros: int | None = None,
    max_bytes: int | None = None,
    search_passes: int = 2,
    search_points: int = 4,
    encoding: str = "float32",
    batch_rows: int | None = None,
    state_dtype: str = "float32",
    on_pass: Callable[[int, int], None] | None = None,
    shuffle: bool | None = None,
    shuffle_seed: int | None = None,
    shuffle_buffer_rows: int | None = None,
    admit_after: int | None = None,
    admit_probability: float | None = None,
    admit_filter_mb: float | None = None,
    max_state_mb: float | None = None,
    state_bits: int | None = None,
) -> PathResult:
    """Train the grid ``l1 x l2`` (one read of the data for all points) and, with a budget,
    pick the best validation logloss among models within it, refining l1 near the budget.
    ``alpha``, ``beta``, ``epochs``, ``label_smoothing``, ``holdout``, ``batch_rows`` and the
    options below: as ``train``'s, the same for every point; each not given (None) comes from the
    spec's ``[train]`` table, else ``train``'s default, as ``train`` and the CLI read them
    (:func:`~sparsecross.train_options.resolve_train_options`).  ``l1`` and ``l2`` are the grid:
    ``[train] l1`` and ``l2`` are not used, nor ``early_stop`` (every point trains ``epochs``).
    ``shuffle``, ``shuffle_seed``, ``shuffle_buffer_rows``: the training order, as ``train``'s
    (every pass reads each epoch once, in that order, for all its points).
    ``admit_after``, ``admit_probability``, ``admit_filter_mb``: admission, as ``train``'s;
    every point has its own state and its own filter (no filter is shared).
    ``max_state_mb``: the state budget, as ``train``'s, of every point (each point's state is
    bounded by it: the points together hold up to points x ``max_state_mb`` MiB).
    ``state_bits``: 32 or 16 (each point's z and n in 16 bits), as ``train``'s.

    Raises
    ------
    SparseCrossError
        Empty or non-increasing grid, no validation data, both budgets given.
    """
    o = resolve_train_options(spec, dict(locals(), l1=None, l2=None), valid=valid)  # arguments > [train] > defaults
    alpha, beta, epochs, label_smoothing, holdout, batch_rows, shuffle, shuffle_seed, shuffle_buffer_rows = (
        o[k] for k in ("alpha", "beta", "epochs", "label_smoothing", "holdout", "batch_rows", "shuffle",
                       "shuffle_seed", "shuffle_buffer_rows"))
    admit_after, admit_probability, admit_filter_mb, max_state_mb, state_bits = (
        o[k] for k in ("admit_after", "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits"))
    source, valid = in_memory(source, valid, shuffle=shuffle)
    check_grid(list(l1), "l1")
    check_grid(list(l2), "l2")
    l1, l2 = [float(v) for v in l1], [float(v) for v in l2]  # Python floats (NumPy ones accepted)
    check_validation_and_budget("the path", valid, holdout, max_nonzeros, max_bytes)
    base = TrainParams(alpha, beta, 0.0, 0.0, epochs, label_smoothing, holdout, state_dtype,
                       policy_of(admit_after, admit_probability, admit_filter_mb), state_bits)
    max_state_mb = check_max_state_mb(max_state_mb)
    order = _shuffle_of(shuffle, shuffle_seed, shuffle_buffer_rows)
    t0 = time.perf_counter()
    schema, spec, rows = prepare_inputs(source, spec, valid, batch_rows, holdout)
    base = replace(base, admit=base.admit.sized(rows))  # as train(): the default filter is sized from the rows
    settings = [(a, b) for b in l2 for a in l1]
    passes = 1
    if on_pass:
        on_pass(passes, len(settings))
    points = _points(_train_many(source, spec, settings, base, valid, batch_rows, rows, order, max_state_mb),
                     spec, rows, encoding, schema, order, max_state_mb)

    def size_of(p: PathPoint) -> int:
        return p.nonzeros if max_nonzeros is not None else p.model_bytes

    budget_value = max_nonzeros if max_nonzeros is not None else max_bytes
    chosen = None
    note = ""
    if budget_value is not None:
        for l2v in l2:
            for _ in range(search_passes):
                line = sorted((p for p in points if p.l2 == l2v), key=lambda p: p.l1)
                over = [p for p in line if size_of(p) > budget_value]
                under = [p for p in line if size_of(p) <= budget_value]
                if not over or not under:
                    break
                lo = max(over, key=lambda p: p.l1).l1  # largest l1 still over budget
                hi_cands = [p.l1 for p in under if p.l1 > lo]
                if not hi_cands:
                    break
                hi = min(hi_cands)
                a = max(lo, 1e-6 * max(hi, 1e-6))
                new = [float(v) for v in np.geomspace(a, hi, search_points + 2)[1:-1]]
                new = [v for v in new if all(abs(v - p.l1) > 1e-12 * max(v, 1) for p in line)]
                if not new:
                    break
                passes += 1
                if on_pass:
                    on_pass(passes, len(new))
                points += _points(_train_many(source, spec, [(v, l2v) for v in new], base, valid, batch_rows,
                                              rows, order, max_state_mb),
                                  spec, rows, encoding, schema, order, max_state_mb)
        ok = [p for p in points if size_of(p) <= budget_value]
        if ok:
            chosen = min(ok, key=lambda p: (p.valid_logloss, size_of(p)))
        else:
            closest = min(points, key=size_of)
            note = (f"no point meets the budget of {budget_value:,} "
                    f"{'nonzeros' if max_nonzeros is not None else 'bytes'}; the smallest model has "
                    f"{size_of(closest):,} (l1={closest.l1:g}, l2={closest.l2:g}); raise l1")
    points.sort(key=lambda p: (p.l2, p.l1))
    budget = None if budget_value is None else (
        {"max_nonzeros": budget_value} if max_nonzeros is not None else {"max_bytes": budget_value})
    return PathResult(points, chosen, budget, time.perf_counter() - t0, rows, passes, note)


def default_cache_dir() -> str:
    return os.environ.get("SPARSECROSS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sparsecross")
