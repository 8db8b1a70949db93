"""The epoch loop of a single-node run: every epoch reads the data in its order, trains batch
after batch, checkpoints, reports progress, scores the validation rows, and stops early when
asked.  :func:`sparsecross.train` sets it up (:mod:`sparsecross.train_resume` says where it
starts) and exports its result (:mod:`sparsecross.train_report`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checkpoint import prune_best, save_best
from .featurize import Batch, iter_batches
from .names import NameRecorder
from .order import OrderCheck, Shuffle, iter_shuffled_batches
from .read import Source
from .spec import FeatureSpec
from .state import GrowthPlan
from .train_eval import _best_epoch, evaluate_state
from .train_params import ProgressEvent, TrainParams
from .train_resume import _Run
from .train_step import _train_mask, prefetch

__all__ = ["EpochConfig", "EpochLoop"]


def _epoch_batches(source: Source, spec: FeatureSpec, order: Shuffle | None, epoch: int, batch_rows: int,
                   start: int, observe: Callable[..., object] | None = None, scipy_csr: bool = True
                   ) -> Iterator[Batch]:
    """One epoch's batches from position ``start`` of its order: the files' order, or shuffled
    (``scipy_csr``: see :func:`~sparsecross.featurize.iter_batches`; shuffled batches are scipy's)."""
    if order is None:
        return iter_batches(source, spec, batch_rows=batch_rows, start_row=start, observe=observe,
                            scipy_csr=scipy_csr)
    return iter_shuffled_batches(source, spec, order, epoch=epoch, batch_rows=batch_rows, start=start,
                                 observe=observe)



@dataclass(frozen=True)
class EpochConfig:
    """What stays the same through a run's epochs."""

    source: Source
    spec: FeatureSpec
    tp: TrainParams
    order: Shuffle | None
    valid: Source | None
    batch_rows: int
    rows_total: int
    salt: int  # of the holdout rows
    early_stop: int | None
    checkpoint_every: int
    on_progress: Callable[[ProgressEvent], None] | None


class EpochLoop:
    """The epochs of one run, from where ``run`` starts (a fresh state or a checkpoint's).

    ``step`` updates the state with one batch (:func:`~sparsecross.train_step.train_batch`),
    ``clock`` is ``time.perf_counter``: both are given by the caller (which tests may patch).
    After :meth:`run`: ``state``, ``history``, ``best_state`` and ``best_epoch``, and the facts
    of this run (``rows_in_run``, ``trained_in_run``, the names ``recorder``, ``bytes_peak``).

    ``bytes_peak``: the most state bytes held at once, the live state's and, under early
    stopping, the best epoch's copy held beside it (a resumed run starts from its checkpoint's
    figure).  Seen after each batch: a growth while the copy is held counts at its own peak
    when that is the live state's highest so far (``state.bytes_peak``, restored on a resume
    from the checkpoint's ``live_bytes_peak``, rose in the batch), else only at its end.  A
    table's growth holds more than the one before it (the table doubles), but not necessarily
    more than every earlier transient: a 16-bit state's ``zbig`` doubling after a table growth
    may hold less, and its old ``zbig`` (at most 128 KiB) is then not counted beside the copy."""

    def __init__(self, cfg: EpochConfig, run: _Run, ckpt_path: str | os.PathLike[str] | None,
                 run_meta: dict[str, Any], *, names: int, step: Callable[..., None], clock: Callable[[], float],
                 t0: float) -> None:
        self.cfg, self.ckpt_path, self.run_meta = cfg, ckpt_path, run_meta
        self.step, self.clock, self.t0 = step, clock, t0
        self.state, self.epoch, self.start_row, self.acc, self.history, self.skipped = (
            run.state, run.epoch, run.row, run.acc, run.history, run.skipped)
        self.best_state, self.best_epoch = run.best_state, run.best_epoch
        run.best_state = None  # the loop's own: a replaced best is freed, not kept alive by ``run``
        self._held = 0 if self.best_state is None else self.best_state.nbytes  # bytes of the best copy
        self._live_high = self.state.bytes_peak  # the live state's own (a checkpoint's live_bytes_peak)
        self.bytes_peak = max(run.bytes_peak, self._live_high, self._held + self.state.nbytes)
        # Growths sized from the keys' own curve in the first epoch (later epochs see no new keys).
        self.plan = GrowthPlan(cfg.rows_total)
        self.last_emit = 0.0
        self.rows_in_run = 0
        self.trained_in_run = 0
        self.recorder = NameRecorder(cfg.spec) if names > 0 else None
        observe = self.recorder.observe if self.recorder is not None and self.recorder.active else None
        # rows [observed_from, end) of this run's first epoch are observed
        self.observed_from = None if observe is None else self.start_row
        if cfg.order is not None and self.start_row > 0:
            observe = None  # a resumed shuffled epoch saw no contiguous rows: name from a full read at the end
        self.observe: Callable[..., object] | None = observe
        self.check = OrderCheck(cfg.rows_total, cfg.order) if self.start_row == 0 and self.epoch == 0 else None

    def run(self) -> None:
        """Train until the last epoch, or until early stopping stops."""
        cfg = self.cfg
        stopped = (cfg.early_stop is not None and self.best_epoch is not None
                   and len(self.history) - self.best_epoch >= cfg.early_stop)
        while self.epoch < cfg.tp.epochs and not stopped:
            if self.start_row < cfg.rows_total:
                self._train_epoch()
            stopped = self._end_epoch(self._record())

    def _note_peak(self) -> None:
        """Raise :attr:`bytes_peak` to what the state and the best copy beside it hold now, and
        to the live state's new high (a growth) plus the copy."""
        high = self.state.bytes_peak
        if high > self._live_high:  # reached in the last batch, with the copy held
            self._live_high = high
            self.bytes_peak = max(self.bytes_peak, self._held + high)
        self.bytes_peak = max(self.bytes_peak, self._held + self.state.nbytes)

    def _save(self, ep: int, row: int) -> None:
        """Checkpoint (when asked) at row ``row`` of epoch ``ep``."""
        if self.ckpt_path is not None:
            meta: dict[str, Any] = {**self.run_meta, "epoch": ep, "row": row, "acc": self.acc.tolist(),
                                    "history": self.history, "state_bytes_peak": self.bytes_peak,
                                    "live_bytes_peak": self.state.bytes_peak}
            if self.skipped:
                meta["skipped"] = self.skipped
            if self.best_epoch is not None:
                meta["best_epoch"] = self.best_epoch
            self.state.save(self.ckpt_path, meta)

    def _train_epoch(self) -> None:
        """Train on the rows of this epoch from ``start_row`` on."""
        cfg, state, acc = self.cfg, self.state, self.acc
        params = cfg.tp.ftrl
        since_ckpt = 0
        row_end = self.start_row
        if state.admission is not None:
            state.admission.begin_epoch(self.epoch)
        state.begin_epoch(self.epoch)  # a 16-bit state's rounding seed
        batches = _epoch_batches(cfg.source, cfg.spec, cfg.order, self.epoch, cfg.batch_rows, self.start_row,
                                 self.observe, scipy_csr=False)
        for batch in prefetch(batches):
            mask = _train_mask(batch, cfg.tp.holdout, cfg.salt)
            if self.check is not None:
                self.check.update(row_end, batch.y)
            self.step(state, batch, params, mask, acc, self.plan if self.epoch == 0 else None, row_end)
            self._note_peak()
            if batch.skip is not None and len(batch.skip):
                self.skipped += int(np.count_nonzero(batch.skip))
            n = batch.X.shape[0]
            self.rows_in_run += n
            self.trained_in_run += n - int(np.count_nonzero(mask))
            since_ckpt += n
            row_end += n  # the position in this epoch's order (the global row when not shuffled)
            if since_ckpt >= cfg.checkpoint_every:
                self._save(self.epoch, row_end)
                since_ckpt = 0
            now = self.clock()
            if cfg.on_progress is not None and now - self.last_emit > 0.5:
                self.last_emit = now
                cfg.on_progress(ProgressEvent(self.epoch, cfg.tp.epochs, row_end, cfg.rows_total,
                                              float(acc[0] / max(acc[1], 1e-300)), state.touched,
                                              now - self.t0, nonzeros=state.count_nonzero(params),
                                              state_bytes=state.nbytes))

    def _record(self) -> dict[str, Any]:
        """This epoch's line of the history: progressive logloss, then the validation rows' scores."""
        cfg, state = self.cfg, self.state
        record: dict[str, Any] = {"epoch": self.epoch + 1,
                                  "progressive_logloss": float(self.acc[0] / max(self.acc[1], 1e-300)),
                                  "train_rows": int(self.acc[2])}
        skipping = cfg.spec.label.missing == "skip"
        if skipping:
            record["skipped_rows"] = self.skipped
        if cfg.valid is not None or cfg.tp.holdout is not None:
            if cfg.on_progress is not None:
                cfg.on_progress(ProgressEvent(self.epoch, cfg.tp.epochs, cfg.rows_total, cfg.rows_total,
                                              record["progressive_logloss"], state.touched, self.clock() - self.t0,
                                              phase="validate"))
            m = evaluate_state(state, cfg.tp.ftrl, cfg.valid if cfg.valid is not None else cfg.source, cfg.spec,
                               batch_rows=cfg.batch_rows, holdout=cfg.tp.holdout, salt=cfg.salt)
            record.update(valid_rows=m.rows, valid_logloss=m.logloss, valid_auc=m.auc,
                          valid_positive_rate=m.positive_rate)
            if skipping:
                record["valid_skipped_rows"] = m.skipped
        if self.check is not None:
            self.check.finish(record["progressive_logloss"], record.get("valid_logloss"))
            self.check = None
        return record

    def _end_epoch(self, record: dict[str, Any]) -> bool:
        """Close the epoch (history, best state, checkpoint, event); True when early stopping stops."""
        cfg = self.cfg
        stopped = False
        self.history.append(record)
        self.epoch += 1
        epoch = self.epoch
        self.start_row = 0
        self.observe = None  # one epoch has shown every row
        self.acc[:] = 0.0
        self.skipped = 0
        if cfg.early_stop is not None:
            if _best_epoch(self.history) == epoch:  # a new best: keep it (in the folder first)
                self.best_state = None  # the old copy goes before the new one is made
                self.best_state, self.best_epoch = self.state.copy(), epoch
                self._held = self.best_state.nbytes
                self._note_peak()
                if self.ckpt_path is not None:
                    save_best(self.ckpt_path, self.best_state, {**self.run_meta, "epoch": epoch, "row": 0,
                                                                "acc": [0.0, 0.0, 0.0], "history": self.history})
            assert self.best_epoch is not None
            stopped = epoch - self.best_epoch >= cfg.early_stop
        self._save(epoch, 0)
        if self.ckpt_path is not None and cfg.early_stop is not None:
            prune_best(self.ckpt_path, self.best_epoch)
        if cfg.on_progress is not None:
            state = self.state
            cfg.on_progress(ProgressEvent(epoch - 1, cfg.tp.epochs, cfg.rows_total, cfg.rows_total,
                                          record["progressive_logloss"], state.touched, self.clock() - self.t0,
                                          phase="epoch_end", nonzeros=state.count_nonzero(cfg.tp.ftrl),
                                          state_bytes=state.nbytes, valid_logloss=record.get("valid_logloss"),
                                          valid_auc=record.get("valid_auc")))
        return stopped
