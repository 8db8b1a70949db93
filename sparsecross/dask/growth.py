"""How a state shard's table grows: like a single-node table (:class:`~sparsecross.state.GrowthPlan`).

A shard holds a fixed share of the keys (``shard_of``), so its distinct-key count follows
Heaps' law in the run's global row count as the whole state does.  In the first epoch each
merge is told where its round starts in the epoch and how many rows the epoch has
(:func:`_round_rows`, on the client); the shard observes (row, keys held) at every merge and,
when it must grow, grows at once to the keys projected for the rest of the epoch
(:func:`_room`), so it grows a handful of times instead of doubling a dozen times.  Later
epochs see no new keys (the table doubles if it must, as single-node: ``epochs.py``).  A shard
built from a snapshot (a recovery, a resumed run) starts a plan of its own.  Sizing never
changes a result: the merged values are the same bits whatever the capacity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..state import GrowthPlan

if TYPE_CHECKING:
    from .plan import _Chunk
    from .shards import _Shard

#: (rows of the epoch before the round, rows of the epoch), or None: no plan (the table doubles).
RoundRows = tuple[int, int] | None


def _epoch_rows(chunks: Sequence[_Chunk]) -> int:
    """The rows of an epoch made of ``chunks`` (computed once per run, not per round)."""
    return sum(c.rows for c in chunks)


def _round_rows(epoch: int, round_chunks: Sequence[_Chunk], epoch_rows: int) -> RoundRows:
    """What the merges of a round of ``epoch`` made of ``round_chunks`` (consecutive chunks of
    an epoch of ``epoch_rows`` rows, :func:`_epoch_rows`) need to size a growth: in the first
    epoch (the one that meets new keys), where the round starts in the epoch and the rows of
    the epoch; None after."""
    if epoch != 0 or not round_chunks:
        return None
    return round_chunks[0].start_row, epoch_rows


def _observe(sh: _Shard, rows: RoundRows) -> GrowthPlan | None:
    """Record shard ``sh``'s keys at the start of a round (``rows``: :func:`_round_rows`) in
    its plan (a new plan for a new epoch size); the plan, or None without ``rows``.  Every
    merge observes, only a growth projects (``projected`` scans the points: projecting at
    every merge would cost rounds squared)."""
    if rows is None:
        return None
    row, epoch_rows = rows
    if sh.plan is None or sh.plan.rows_total != epoch_rows:
        sh.plan = GrowthPlan(epoch_rows)
    sh.plan.observe(row, sh.state.touched)
    return sh.plan


def _room(sh: _Shard, absent: int, rows: RoundRows) -> int:
    """How many more keys shard ``sh`` should make room for if it must grow before a merge
    that adds at most ``absent`` keys: ``absent``, or with ``rows`` (:func:`_round_rows`) the
    keys its plan (:func:`_observe`, called first) projects beyond those it holds, if more."""
    if rows is None or sh.plan is None:
        return absent
    touched = sh.state.touched
    return max(absent, sh.plan.projected(rows[0], touched) - touched)
