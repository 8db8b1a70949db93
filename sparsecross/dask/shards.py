"""The sharded training state: worker-side shards of (key, (z, n)), with versions.

Every function named ``_task_*`` runs on a worker, pinned to the worker that owns the shard.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._kernels.ftrl import FTRLParams
from .._kernels.lanes import fill_table, gather_zn, items_weights, merge_lanes, table_items, table_live_items
from ..errors import SparseCrossError
from ..state import MAX_LOAD, FTRLState, GrowthPlan, sorted_nonzero
from .growth import RoundRows, _observe, _room


# Data-parallel training keeps the global state on the workers, split into shards by key
# (``shard_of``): shard s lives in ``_SHARDS[(token, s)]`` on the worker that owns it, and only
# tasks pinned to that worker touch it.  A shard counts the rounds merged into it
# (``version``); every task that reads or writes it names the version it expects, so a task
# run out of order (which Dask never does on purpose) fails instead of computing garbage, and
# a merge re-run after it was applied is a no-op.
_SHARDS: dict[tuple[str, int], _Shard] = {}
#: Tokens (runs or attempts) whose shards were dropped: a shard-creating task still running
#: when its run was dropped must not put its shard back (it would stay in memory for good).
_DROPPED: set[str] = set()


class _ShardLost(SparseCrossError):
    """A state shard is not where it should be (its worker died or restarted)."""


@dataclass
class _Shard:
    state: FTRLState
    version: int
    slots: dict[int, np.ndarray]  # lane -> table slots found by this version's look-ups
    scratch: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 2), dtype=np.int64))
    plan: GrowthPlan | None = None  # sizes the growths of the first epoch (.growth)


def _shard(token: str, s: int, version: int) -> _Shard:
    sh = _SHARDS.get((token, s))
    if sh is None:
        raise _ShardLost(f"state shard {s} is not on this worker (it was lost with its worker)")
    if sh.version != version:
        raise _ShardLost(f"state shard {s} holds round {sh.version}, not {version}")
    return sh


def _dropped(token: str) -> bool:
    return any(token == d or token.startswith(d + "-") for d in _DROPPED)


def _task_shard_init(token: str, s: int, version: int, keys: np.ndarray, zn: np.ndarray, n_columns: int,
                     state_dtype: str) -> int:
    """Task (pinned): create shard ``s`` holding (keys, zn) at ``version``."""
    if _dropped(token):
        raise _ShardLost(f"training run {token} was stopped")
    st = FTRLState(n_columns, state_dtype, capacity=int(math.ceil((len(keys) + 1) / MAX_LOAD)) + 1)
    fill_table(st.table, st.values, st.count, keys.astype(st.table.dtype, copy=False), zn)
    if _dropped(token):  # dropped while this task was building the table
        raise _ShardLost(f"training run {token} was stopped")
    _SHARDS[(token, s)] = _Shard(st, version, {})
    return version


def _task_lookup(token: str, s: int, version: int, lane_keys: list[list[np.ndarray]], after: Any) -> list[np.ndarray]:
    """Task (pinned): one round's look-ups in shard ``s`` at ``version``, for every lane: the
    (z, n) of ``lane_keys[j][s]`` ((0, 0) where absent), one array per lane j.  ``lane_keys[j]``:
    lane j's keys per shard (``lane_tasks._task_prepare``'s result); ``after``: the previous
    merge's result (an ordering dependency only)."""
    sh = _shard(token, s, version)
    out = []
    for j, per_shard in enumerate(lane_keys):
        keys = per_shard[s]
        zn = np.empty((len(keys), 2), dtype=sh.state.values.dtype)
        slots = np.empty(len(keys), dtype=np.int64)
        gather_zn(sh.state.table, sh.state.values, keys, zn, slots)
        sh.slots[j] = slots
        out.append(zn)
    return out


def _lane_metas(s: int, results: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """What shard ``s``'s merge returns to the client besides its number of keys: every lane's
    (new bias, new loss sums) from shard 0, nothing from the others."""
    return [(r[1], r[2]) for r in results] if s == 0 else []


def _task_merge(token: str, s: int, version: int, lane_keys: list[list[np.ndarray]], old: list[np.ndarray],
                results: list[Any], after: Any,
                rows: RoundRows = None) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Task (pinned): apply one round's lanes (in lane order) to shard ``s``.  ``lane_keys[j][s]``,
    ``old[j]`` (this shard's look-up), ``results[j][0][s]``: lane j's keys of this shard, their
    values at the start of the round and after the lane.  ``rows``: where the round starts in
    the epoch and the epoch's rows (``growth._round_rows``: a growth is sized by the shard's
    plan), or None (the table doubles).  Returns the shard's number of keys and, from shard 0
    only (else empty), every lane's (new bias, new loss sums) for the client."""
    metas = _lane_metas(s, results)
    keys = [k[s] for k in lane_keys]
    new = [r[0][s] for r in results]
    sh = _SHARDS.get((token, s))
    if sh is not None and sh.version == version + 1:
        return sh.state.touched, metas  # already applied (a re-run)
    sh = _shard(token, s, version)
    st = sh.state
    lanes = len(keys)
    slot_list = [sh.slots.get(j) for j in range(lanes)]
    slots_valid = all(sl is not None and len(sl) == len(k) for sl, k in zip(slot_list, keys))
    absent = sum(int(np.count_nonzero(sl < 0)) for sl in slot_list) if slots_valid else sum(map(len, keys))
    _observe(sh, rows)
    if st.touched + absent > st.max_count:
        st.grow(_room(sh, absent, rows))
        slots_valid = False  # rehashed: the slots found by the look-ups moved

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

    lane_keys_s = cat(keys).astype(st.table.dtype, copy=False)
    cap = 16
    while cap < 2 * len(lane_keys_s) + 2:
        cap *= 2
    if sh.scratch.shape[0] < cap:  # kept for the next rounds: rounds are alike in size
        sh.scratch = np.empty((cap, 2), dtype=np.int64)
    slots = cat(slot_list) if slots_valid else np.zeros(len(lane_keys_s), dtype=np.int64)
    merge_lanes(st.table, st.values, st.count, lane_keys_s, cat(new), cat(old), slots, slots_valid,
                sh.scratch[:cap])
    sh.version = version + 1
    sh.slots = {}
    return st.touched, metas


def _task_dump(token: str, s: int, version: int, after: Any, l1: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Task (pinned): every (key, (z, n)) of shard ``s`` at ``version``; with ``l1``, only
    the rows with a weight (``|z| > l1``: what a model needs, not a recovery point)."""
    sh = _shard(token, s, version)
    if l1 is not None:
        return table_live_items(sh.state.table, sh.state.values, l1)
    return table_items(sh.state.table, sh.state.values)


def _drop_shards(token: str) -> int:
    """Run on every worker: forget the shards and prepared chunks of a run or attempt
    ``token`` (and of the attempts of a run), now and if a task still running creates one
    later."""
    from .lane_tasks import _drop_prepared

    _DROPPED.add(token)
    dropped = [k for k in _SHARDS if k[0] == token or k[0].startswith(token + "-")]
    for k in dropped:
        del _SHARDS[k]
    _drop_prepared(token)
    return len(dropped)



def _set_state(state: FTRLState, keys: np.ndarray, zn: np.ndarray, bias: np.ndarray) -> None:
    """Make ``state`` hold the rows (keys, zn) and ``bias``."""
    fresh = FTRLState(state.n_columns, state.dtype, capacity=int(math.ceil((len(keys) + 1) / MAX_LOAD)) + 1)
    fill_table(fresh.table, fresh.values, fresh.count, keys.astype(fresh.table.dtype, copy=False), zn)
    state.table, state.values, state.count = fresh.table, fresh.values, fresh.count
    state.bias[:] = bias


class _RowsState:
    """A trained state as (key, (z, n)) rows: what ``export_state`` reads, without building a
    hash table.  ``touched``: the state's number of keys, when ``keys`` holds only the rows
    with a weight (default: ``len(keys)``)."""

    def __init__(self, keys: np.ndarray, zn: np.ndarray, bias: np.ndarray, touched: int | None = None) -> None:
        self.keys, self.zn, self.bias = keys, zn, bias
        self._touched = len(keys) if touched is None else int(touched)

    @property
    def touched(self) -> int:
        return self._touched

    def nonzero_weights(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray]:
        return sorted_nonzero(*items_weights(self.keys, self.zn, params))

    def bias_weight(self, params: FTRLParams) -> float:
        return FTRLState.bias_weight(self, params)  # type: ignore[arg-type]
