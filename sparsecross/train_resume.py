"""Where a run starts: a fresh or warm-started state, or a checkpoint of the same run (checked,
with its best state under early stopping), bounded by the state budget."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .admission import Admission, AdmitPolicy
from .budget import apply_budget
from .checkpoint import open_checkpoint, read_best, source_fingerprint, start_over
from .errors import CheckpointError, ParameterError, shown_path
from .order import Shuffle
from .read import Source
from .spec import FeatureSpec
from .state import FTRLState
from .state16 import new_state
from .train_eval import _best_epoch
from .train_options import _budget_params, _order_params
from .train_params import TrainParams

__all__ = ["start_state"]

log = logging.getLogger("sparsecross.train")


def start_state(init_state: FTRLState | None, spec: FeatureSpec, state_dtype: str,
                admit: AdmitPolicy = AdmitPolicy(), state_bits: int = 32) -> FTRLState:
    """A copy of ``init_state`` (a warm start), or a new empty state, with the admission
    filter of ``admit`` (a warm start keeps its own filter and counters if it was trained with
    the same policy; otherwise it gets a new empty filter).  A warm start must have been
    trained on the same column space and precision (its keys are as wide as its space) and
    ``state_bits`` (a 16-bit state's rounding is seeded by the spec's hashing seed)."""
    if init_state is None:
        state = new_state(spec.n_columns, state_dtype, state_bits, spec.hashing.seed)
    else:
        state = _warm_copy(init_state, spec, state_dtype, state_bits)
    if not admit.active:
        state.admission = None
    elif state.admission is None or state.admission.policy != admit:
        state.admission = Admission(admit, spec.hashing.seed)
    return state


def _warm_copy(init_state: FTRLState, spec: FeatureSpec, state_dtype: str, state_bits: int = 32) -> FTRLState:
    if init_state.n_columns != spec.n_columns or init_state.dtype != state_dtype or init_state.bits != state_bits:
        raise ParameterError(
            f"init_state was made for {init_state.n_columns:,} columns and {init_state.bits}-bit {init_state.dtype} "
            f"state; this spec has {spec.n_columns:,} columns and state_dtype is {state_dtype}, state_bits "
            f"{state_bits}: warm-start with a state trained on the same spec, state_dtype and state_bits"
        )
    return init_state.copy()


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
    bytes_peak: int = 0  # the run's state bytes peak so far (a best copy included)



def _run_meta(source: Source, spec: FeatureSpec, tp: TrainParams, order: Shuffle | None,
              max_state_mb: float | None, early_stop: int | None, checkpoint: Any) -> dict[str, Any]:
    """What identifies a run in its checkpoint: the spec, the parameters and the data files."""
    fingerprint = source_fingerprint(source) if checkpoint is not None else None
    run_params = {**tp.to_dict(), **_order_params(order), **_budget_params(max_state_mb)}
    if early_stop is not None:
        run_params["early_stop"] = early_stop
    return {"spec_sha256": spec.sha256, "params": run_params, "data": fingerprint}


def _resume(checkpoint: str | os.PathLike[str] | None, run_meta: dict[str, Any], fresh: FTRLState,
            spec: FeatureSpec, tp: TrainParams, rows_total: int, early_stop: int | None
            ) -> tuple[Any, _Run]:
    """(the checkpoint file or None, where the run starts): from ``fresh`` unless the folder
    holds a checkpoint of this run (checked, with its best state under early stopping)."""
    checks = dict(n_columns=spec.n_columns, state_dtype=tp.state_dtype, epochs=tp.epochs, rows_total=rows_total,
                  admit=tp.admit, seed=spec.hashing.seed, state_bits=tp.state_bits)
    ckpt_path, resumed = open_checkpoint(checkpoint, run_meta, **checks)
    if resumed is None:
        return ckpt_path, _Run(fresh)
    state, meta = resumed
    history = list(meta["history"])
    run = _Run(state, int(meta["epoch"]), int(meta["row"]), np.array(meta["acc"], dtype=np.float64), history,
               int(meta.get("skipped", 0)), resumed=True, bytes_peak=int(meta.get("state_bytes_peak", 0)))
    if early_stop is not None:
        run.best_epoch = _best_epoch(history)
        if meta.get("best_epoch") != run.best_epoch:
            raise CheckpointError(f"checkpoint {shown_path(ckpt_path)} names best epoch "
                                  f"{meta.get('best_epoch')!r}, its history says {run.best_epoch!r}; "
                                  f"{start_over(ckpt_path)}")
        if run.best_epoch is not None:
            assert ckpt_path is not None
            run.best_state = read_best(ckpt_path, run.best_epoch, run_meta, **checks)
    log.info("resuming from %s: epoch %d, row %d", ckpt_path, run.epoch + 1, run.row)
    return ckpt_path, run


def _bound(state: FTRLState, max_state_mb: float | None, resumed_from: Any) -> None:
    """Apply the state budget to the starting state; a resumed table larger than the budget
    allows is a damaged checkpoint (its run had the same budget)."""
    try:
        apply_budget(state, max_state_mb)
    except ParameterError as exc:
        if resumed_from is None:
            raise
        raise CheckpointError(f"checkpoint {shown_path(resumed_from)} holds a table larger than its "
                              f"budget allows ({exc}); {start_over(resumed_from)}") from None
