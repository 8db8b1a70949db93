"""Exact mode: workers read and featurize chunks, the client trains on them in row order
with the single-node trainer (the same model and checkpoints as single-node, bit for bit)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .plan import _holdout_mask, _plan, _task_featurize
from .runner import _ordered

if TYPE_CHECKING:
    from .training import _Run


def _train_exact(job: _Run, run: dict[str, Any], *, epoch: int, start_row: int, chunk_rows: int | None,
                 checkpoint_every: int) -> None:
    """Train ``job.state`` from (``epoch``, ``start_row``) to the end, checkpointing every
    ``checkpoint_every`` rows and at epoch ends; ``run["rows_processed"]`` counts."""
    from ..train import train_batch

    spec, params, holdout, salt = job.spec, job.params, job.holdout, job.salt
    while epoch < job.tp.epochs:
        chunks, _ = _plan(job.source, spec, chunk_rows=chunk_rows, start_row=start_row)
        if job.state.admission is not None:
            job.state.admission.begin_epoch(epoch)
        since_ckpt = 0
        results = _ordered(job.runner, _task_featurize, chunks, (spec, job.batch_rows), window=job.window,
                           name="featurize")
        with contextlib.closing(results):
            for chunk, batch in results:
                mask = _holdout_mask(batch.start_row, batch.X.shape[0], holdout, salt)
                train_batch(job.state, batch, params, mask, job.acc)
                run["rows_processed"] += chunk.rows
                since_ckpt += chunk.rows
                row_end = chunk.start_row + chunk.rows
                if since_ckpt >= checkpoint_every:
                    job.save({"epoch": epoch, "row": row_end})
                    since_ckpt = 0
                job.progress(job.event(epoch, row_end, extra={"chunk": chunk.index + 1}))
        job.end_epoch(epoch, {})
        epoch += 1
        start_row = 0
        job.save({"epoch": epoch, "row": 0})
