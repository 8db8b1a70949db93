"""What a run leaves: the inference model exported from the state (with its stats, the state
budget, the names) and the facts of the run (rows, seconds, memory)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .errors import EmptyModelWarning
from .model import SparseModel
from .names import record_names
from .spec import FeatureSpec
from .state import FTRLState
from .state16 import State16
from .train_options import _budget_params, _order_params
from .train_params import TrainParams

if TYPE_CHECKING:  # pragma: no cover
    from .epochs import EpochLoop

__all__ = ["export_state", "record_budget", "peak_rss_bytes"]


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


def record_budget(model: SparseModel, state: FTRLState, max_state_mb: float | None) -> None:
    """Record the state budget in an exported model, as ``train`` does (after the order's
    params): the budget in ``params``, the evictions of ``state`` in ``stats`` (nothing without)."""
    if max_state_mb is not None:
        model.params.update(_budget_params(max_state_mb))
        model.stats.update(evicted_features=state.evicted_features, evictions=state.evictions)


def export_state(state: FTRLState, spec: FeatureSpec, tp: TrainParams, history: list[dict[str, Any]],
                 rows_total: int, *, schema: dict[str, str] | None = None, best_epoch: int | None = None,
                 early_stop: int | None = None, warn_empty: bool = True) -> SparseModel:
    """Build the inference model (nonzero weights only) from a training state.

    The top-level stats are those of the last epoch in ``history``, or of ``best_epoch`` (early
    stopping: ``state`` is that epoch's), which ``stats["best_epoch"]`` then records.  An empty
    model is an :class:`EmptyModelWarning` unless ``warn_empty`` is false (a point of a grid,
    where it is a result: a ``catch_warnings`` block around the call would silence every
    thread's warnings, not only this call's)."""
    from . import __version__

    params = tp.ftrl
    keys, weights = state.nonzero_weights(params)
    if len(keys) == 0 and warn_empty:
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
    if isinstance(state, State16):  # what the 16-bit forms lost: clips and saturations
        stats.update(state.stats())
    return SparseModel(keys, weights, state.bias_weight(params), spec, tp.to_dict(), stats,
                       library_version=__version__, schema=dict(schema or {}))



def finish_run(loop: EpochLoop, *, schema: dict[str, str], max_state_mb: float | None,
               names: int) -> tuple[SparseModel, FTRLState]:
    """The model of a finished single-node run (the best epoch's under early stopping) and the
    state it was exported from."""
    cfg = loop.cfg
    state, best_state = loop.state, loop.best_state
    if best_state is not None:
        state = best_state  # early stopping: the best epoch's model
    model = export_state(state, cfg.spec, cfg.tp, loop.history, cfg.rows_total, schema=schema,
                         best_epoch=loop.best_epoch, early_stop=cfg.early_stop)
    model.params.update(_order_params(cfg.order))
    record_budget(model, state, max_state_mb)
    if loop.recorder is not None:
        # a resumed run did not see the rows before its checkpoint (nor any, if it was finished)
        observed_from = loop.observed_from
        skipped = ((0, None) if loop.rows_in_run == 0 or (cfg.order is not None and observed_from)
                   else (0, observed_from or 0))
        record_names(model, cfg.source, top=names, batch_rows=cfg.batch_rows, recorder=loop.recorder, rows=skipped)
    # state_bytes_peak depends on the growth schedule (batch boundaries, a resume), so it is a
    # fact of the run, not of the model (whose file must not depend on them)
    model.run = {"rows_processed": loop.rows_in_run, "rows_trained": loop.trained_in_run,
                 "seconds": loop.clock() - loop.t0,
                 "state_bytes_peak": loop.bytes_peak}
    return model, state
