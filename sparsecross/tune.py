"""Tune alpha x l1 in one read of the data per epoch, with early stopping per point.

Every point of the grid is a lane of :mod:`sparsecross.multitrain`: each epoch reads and
featurizes the training data once for all live points, then reads the validation data (or the
holdout rows) once to score them all.  A point stops when its validation logloss has not
improved for ``patience`` epochs (or at ``epochs_max``); its best epoch is what it keeps.  The
best point within the budget is chosen and its model is the one already trained: nothing is
retrained, and the model equals, byte for byte, what ``train`` with that alpha, l1 and that
many epochs (and the same validation data) writes.

Memory: one state per live point (as ``path``; each with its own admission filter and its own
state budget when they are given, so a budget of M MiB bounds the states at points x M), plus,
for a point whose best epoch is its last, that epoch's exported model (nonzero weights only: 12
bytes each, at most the state's size; outside the state budget) - it is exported when the point
improves, so that a point that then gets worse still has it (this is why a budget goes with
early stopping here, while ``train`` refuses ``early_stop`` with one: its best copy is a second
state).  A stopped point drops its state at once; of the stopped points only the best model
within the budget so far is kept (the others keep their numbers only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._defaults import TUNE_ALPHA, TUNE_EPOCHS_MAX, TUNE_L1
from ._values import check_count
from .admission import policy_of
from .budget import check_max_state_mb
from .errors import DataError
from .featurize import iter_batches
from .hashing import holdout_salt
from .model import SparseModel
from .multitrain import Lane, run_lanes
from .path import check_grid, check_validation_and_budget
from .read import Source
from .spec import FeatureSpec
from .train import TrainParams, _epoch_batches, _order_params, _shuffle_of, export_state, in_memory, record_budget
from .train_eval import prepare_inputs
from .train_params import check_epochs
from .train_options import resolve_train_options

__all__ = ["TunePoint", "TuneResult", "tune", "DEFAULT_ALPHA", "DEFAULT_L1", "DEFAULT_EPOCHS_MAX"]

#: FTRL's alpha is a learning-rate scale; 0.1 is the library default and 0.05-0.5 the usual
#: range: a factor-2 ladder around the default covers it in five points.
DEFAULT_ALPHA = TUNE_ALPHA
#: l1 from none (every touched weight kept) to strong (most weights zero), as ``path``'s
#: default grid: roughly x3 steps, the scale at which nonzeros visibly change.
DEFAULT_L1 = TUNE_L1
#: Enough for small data sets to reach their best epoch; with patience 1 most points stop
#: after 2-4 epochs, so the cost is set by the slowest point.
DEFAULT_EPOCHS_MAX = TUNE_EPOCHS_MAX


@dataclass
class TunePoint:
    """One grid point: its best epoch's size and validation metrics."""

    alpha: float
    l1: float
    l2: float
    epochs: int  # the best epoch: the model kept has trained this many epochs
    epochs_trained: int  # epochs it ran before stopping
    nonzeros: int
    model_bytes: int
    valid_logloss: float
    valid_auc: float
    logloss_by_epoch: list[float]
    model: SparseModel | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "l1": self.l1, "l2": self.l2, "epochs": self.epochs,
                "epochs_trained": self.epochs_trained, "nonzeros": self.nonzeros,
                "model_bytes": self.model_bytes, "valid_logloss": self.valid_logloss,
                "valid_auc": self.valid_auc, "logloss_by_epoch": list(self.logloss_by_epoch)}


@dataclass
class TuneResult:
    points: list[TunePoint]  # in grid order: alpha-major, then l1
    chosen: TunePoint | None
    budget: dict[str, int] | None
    seconds: float
    rows: int
    reads: int  # epochs read (each: one read of the training and one of the validation data)
    epochs_max: int
    patience: int
    note: str = ""
    hints: list[str] = field(default_factory=list)  # the chosen point is at an edge of the search

    def to_dict(self) -> dict[str, Any]:
        return {"points": [p.to_dict() for p in self.points], "hints": list(self.hints),
                "chosen": self.chosen.to_dict() if self.chosen else None, "budget": self.budget,
                "seconds": self.seconds, "rows": self.rows, "reads": self.reads, "epochs_max": self.epochs_max,
                "patience": self.patience, "note": self.note}


def _rank(p: TunePoint, size: int, index: int) -> tuple[bool, float, int, int]:
    """Lower is better: a number before NaN, then logloss, then the smaller model, then grid order."""
    return (math.isnan(p.valid_logloss), 0.0 if math.isnan(p.valid_logloss) else p.valid_logloss, size, index)


class _Keeper:
    """Exports a lane's model when it improves and, when it stops, turns it into a
    :class:`TunePoint`, keeping only the best model within the budget so far."""

    def __init__(self, lanes: Sequence[Lane], *, spec: FeatureSpec, rows: int, schema: dict[str, str],
                 order_params: dict[str, Any], encoding: str, by_nonzeros: bool, budget: int | None,
                 name_options: tuple[Source, int, int, Any] | None) -> None:
        self.index = {id(lane): i for i, lane in enumerate(lanes)}
        self.spec, self.rows, self.schema, self.order_params = spec, rows, schema, order_params
        self.encoding, self.by_nonzeros, self.budget, self.name_options = encoding, by_nonzeros, budget, name_options
        self.best_models: dict[int, SparseModel] = {}
        self.points: list[TunePoint | None] = [None] * len(lanes)
        self.kept: tuple[tuple[bool, float, int, int], TunePoint] | None = None

    def size_of(self, p: TunePoint) -> int:
        return p.nonzeros if self.by_nonzeros else p.model_bytes

    def improve(self, lane: Lane) -> None:
        assert lane.state is not None and lane.best_epoch is not None
        tp = replace(lane.params, epochs=lane.best_epoch)  # as train(epochs=best): its history, its params
        model = export_state(lane.state, self.spec, tp, list(lane.history), self.rows, schema=self.schema,
                             warn_empty=False)
        model.params.update(self.order_params)
        record_budget(model, lane.state, lane.max_state_mb)
        self.best_models[id(lane)] = model

    def finish(self, lane: Lane) -> None:
        from .export import model_bytes
        from .names import record_names

        i = self.index[id(lane)]
        model = self.best_models.pop(id(lane))
        if self.name_options is not None:  # as train(): the first epoch observed every row, no extra read
            source, top, batch_rows, recorder = self.name_options
            record_names(model, source, top=top, batch_rows=batch_rows, recorder=recorder, rows=(0, 0))
        assert lane.best_epoch is not None
        best = lane.history[lane.best_epoch - 1]
        p = TunePoint(lane.params.alpha, lane.params.l1, lane.params.l2, lane.best_epoch, len(lane.history),
                      model.nonzeros, len(model_bytes(model, encoding=self.encoding)), best["valid_logloss"],
                      best["valid_auc"], [r["valid_logloss"] for r in lane.history], model)
        self.points[i] = p
        rank = _rank(p, self.size_of(p), i)
        if (self.budget is not None and self.size_of(p) > self.budget) or (self.kept is not None
                                                                           and rank >= self.kept[0]):
            p.model = None  # it cannot be chosen: only its numbers are kept
            return
        if self.kept is not None:
            self.kept[1].model = None  # the previous best within the budget is not needed any more
        self.kept = (rank, p)


def tune(
    source: Source,
    spec: FeatureSpec,
    *,
    alpha: Sequence[float] = DEFAULT_ALPHA,
    l1: Sequence[float] = DEFAULT_L1,
    l2: float | None = None,
    beta: float | None = None,
    epochs_max: int = DEFAULT_EPOCHS_MAX,
    patience: int | None = None,
    label_smoothing: float | None = None,
    valid: Source | None = None,
    holdout: float | None = None,
    max_nonzeros: int | None = None,
    max_bytes: int | None = None,
    encoding: str = "float32",
    batch_rows: int | None = None,
    state_dtype: str = "float32",
    shuffle: bool | None = None,
    shuffle_seed: int | None = None,
    shuffle_buffer_rows: int | None = None,
    names: int = 0,
    on_epoch: Callable[[int, int], None] | None = None,
    admit_after: int | None = None,
    admit_probability: float | None = None,
    admit_filter_mb: float | None = None,
    max_state_mb: float | None = None,
    state_bits: int | None = None,
) -> TuneResult:
    """Train the grid ``alpha x l1``, stopping each point early on its validation logloss, and
    choose the point with the lowest validation logloss whose model fits the budget (nonzero
    weights, or artifact bytes in ``encoding``).

    The chosen point's ``model`` is the one written by ``train(source, spec, alpha=a, l1=b,
    epochs=point.epochs, valid=valid, holdout=holdout, names=names, ...)``, byte for byte.
    ``names``: as ``train``'s (the CLI's default is 100), recorded during the first epoch.
    ``on_epoch(epoch, live_points)`` is called before each epoch.
    ``l2``, ``beta``, ``label_smoothing``, ``holdout``, ``batch_rows``, the order and the memory
    options below: as ``train``'s, the same for every point; each not given (None) comes from the
    spec's ``[train]`` table, else ``train``'s default, as ``train`` and the CLI read them
    (:func:`~sparsecross.train_options.resolve_train_options`).  ``patience`` not given is
    ``[train] early_stop`` (the same rule: epochs without a lower validation logloss), else 1.
    ``alpha``, ``l1`` and the epochs are what ``tune`` searches: ``[train] alpha``, ``l1`` and
    ``epochs`` are not used (the grids and ``epochs_max`` are).
    ``admit_after``, ``admit_probability``, ``admit_filter_mb``, ``max_state_mb``: admission and
    the state budget, as ``train``'s, for every point: each point has its own filter and its own
    budget (the points' states together hold up to points x ``max_state_mb`` MiB).  A point keeps
    its best epoch as an exported model (nonzero weights), not as a copy of its state, so the
    budget goes with early stopping here (``train`` refuses ``early_stop`` with a budget).

    Returns a :class:`TuneResult` whose ``chosen`` is None (and ``note`` says why, naming the
    smallest model) when no point meets the budget.

    Raises
    ------
    SparseCrossError
        An empty or non-increasing grid, no validation data (or no validation rows), both
        budgets, bad parameters or data that do not match the spec.
    """
    o = resolve_train_options(spec, dict(locals(), alpha=None, l1=None, early_stop=patience), valid=valid)
    l2, beta, label_smoothing, holdout, batch_rows, shuffle, shuffle_seed, shuffle_buffer_rows = (
        o[k] for k in ("l2", "beta", "label_smoothing", "holdout", "batch_rows", "shuffle", "shuffle_seed",
                       "shuffle_buffer_rows"))
    admit_after, admit_probability, admit_filter_mb, max_state_mb, state_bits = (
        o[k] for k in ("admit_after", "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits"))
    patience = 1 if o["early_stop"] is None else o["early_stop"]
    source, valid = in_memory(source, valid, shuffle=shuffle)
    alpha, l1 = list(alpha), list(l1)
    check_grid(alpha, "alpha")
    check_grid(l1, "l1")
    alpha, l1 = [float(a) for a in alpha], [float(b) for b in l1]
    epochs_max, patience = check_epochs(epochs_max, "epochs_max"), check_epochs(patience, "patience")
    names = check_count("names", names, 0)
    check_validation_and_budget("tune", valid, holdout, max_nonzeros, max_bytes)
    admit = policy_of(admit_after, admit_probability, admit_filter_mb)
    max_state_mb = check_max_state_mb(max_state_mb)
    TrainParams(alpha[0], beta, l1[0], l2, epochs_max, label_smoothing, holdout, state_dtype, admit,
                state_bits)  # validates
    order = _shuffle_of(shuffle, shuffle_seed, shuffle_buffer_rows)
    t0 = time.perf_counter()
    schema, spec, rows = prepare_inputs(source, spec, valid, batch_rows, holdout)
    from .names import NameRecorder

    recorder = NameRecorder(spec) if names > 0 else None
    observe = recorder.observe if recorder is not None and recorder.active else None
    admit = admit.sized(rows)  # as train(): the default filter is sized from the rows
    lanes = [Lane.new(TrainParams(a, beta, b, l2, epochs_max, label_smoothing, holdout, state_dtype, admit,
                                  state_bits),
                      spec.n_columns, rows, seed=spec.hashing.seed, max_state_mb=max_state_mb)
             for a in alpha for b in l1]
    budget_value = max_nonzeros if max_nonzeros is not None else max_bytes
    keeper = _Keeper(lanes, spec=spec, rows=rows, schema=schema, order_params=_order_params(order),
                     encoding=encoding, by_nonzeros=max_nonzeros is not None, budget=budget_value,
                     name_options=None if recorder is None else (source, names, batch_rows, recorder))
    salt = holdout_salt(spec.hashing.seed)
    reads = run_lanes(
        lanes, epochs_max=epochs_max, patience=patience,
        train_items=lambda epoch: ((b, ()) for b in _epoch_batches(source, spec, order, epoch, batch_rows, 0,
                                                                  observe if epoch == 0 else None)),
        valid_items=lambda: ((b, ()) for b in iter_batches(valid if valid is not None else source, spec,
                                                            batch_rows=batch_rows)),
        holdout=holdout, salt=salt, skipping=spec.label.missing == "skip",
        on_improve=keeper.improve, on_finish=keeper.finish, on_epoch=on_epoch,
    )
    done = [p for p in keeper.points if p is not None]
    assert len(done) == len(lanes)
    if all(math.isnan(p.valid_logloss) for p in done):
        raise DataError("tune: no validation rows were scored (empty validation data, or a holdout fraction "
                        "too small for these rows); give more validation data")
    chosen = keeper.kept[1] if keeper.kept is not None else None
    note = ""
    budget = None
    if budget_value is not None:
        unit = "nonzeros" if max_nonzeros is not None else "bytes"
        budget = {"max_nonzeros" if max_nonzeros is not None else "max_bytes": budget_value}
        if chosen is None:
            closest = min(done, key=keeper.size_of)
            note = (f"no point meets the budget of {budget_value:,} {unit}; the smallest model has "
                    f"{keeper.size_of(closest):,} (alpha={closest.alpha:g}, l1={closest.l1:g}); raise l1 (--l1 grid)")
    return TuneResult(done, chosen, budget, time.perf_counter() - t0, rows, reads, epochs_max, patience, note,
                      _hints(chosen, alpha, epochs_max))


def _hints(chosen: TunePoint | None, alpha: Sequence[float], epochs_max: int) -> list[str]:
    """Say when the chosen point sits at an edge of the search (a better one may lie beyond)."""
    if chosen is None:
        return []
    out = []
    if len(alpha) > 1 and chosen.alpha == alpha[-1]:
        out.append(f"the chosen alpha {chosen.alpha:g} is the grid's largest: a larger one may be better (--alpha)")
    elif len(alpha) > 1 and chosen.alpha == alpha[0]:
        out.append(f"the chosen alpha {chosen.alpha:g} is the grid's smallest: a smaller one may be better (--alpha)")
    if chosen.epochs == epochs_max:
        out.append(f"the chosen point was still improving at its last epoch: raise --epochs-max ({epochs_max})")
    return out
