"""Admission and the state budget in data-parallel training: every shard admits and evicts on
its own keys, deterministically.

**Shards.**  With admission or a budget, the state is split into ``S = K`` shards (K = lanes),
placed round-robin on the workers, instead of one shard per worker: a shard's filter and
budget then see the same keys on any cluster, so the same K still gives the same model, bit
for bit, on 1 or 100 workers (and across the restarts after a worker loss).

**Admission** (``admit_after`` N / ``admit_probability`` P, :mod:`sparsecross.admission`).
Shard s keeps a counting filter of ``F_s`` bytes (``F`` = the single-node filter size, sized
from the rows or ``admit_filter_mb``; ``F_s`` = the power of two at or below ``F / S``; less
than 64 bytes is an error) over the keys it owns, with the single-node filter's kernels.  A round:

1. the look-up sends a lane, for each of its keys without state, the shard filter's estimate
   of its sightings before the round;
2. the lane counts the sightings of those keys in its rows, in row order, from that
   estimate: a key is admitted at the sighting that brings the count to N (saturating at 15),
   or, Poisson, at a sighting whose seeded hash of (key, epoch, the row's position in the
   epoch) is below ``P * 2**64`` (the single-node rule, sighting for sighting).  A key not
   yet admitted has weight 0 in its rows and gets no update (its entries train with value 0,
   which changes nothing, bit for bit); an admitted key trains from (0, 0) at that row on;
3. the shard merges in lane order: a key without state at the start of the round gets state
   when at least one lane admitted it, from the lanes that admitted it (the average of their
   deltas, as for any key); the lanes' entries of a key that no lane admitted are dropped.
   Then every sighting a lane made of a key while it had no state (the admitting one
   included) is counted into the shard's filter: lanes in lane order, keys in order of first
   appearance in the lane's chunk.

``admitted_features`` counts the keys that gained state at a merge, ``rejected_sightings`` the
lanes' sightings that did not admit; both are summed over the shards.  K = 1 is not bit for
bit single-node admission: the lane counts from the round's starting estimate, where the
single-node filter also sees collisions between keys of the same chunk.

**Budget** (``max_state_mb`` M).  Each shard has ``M / S`` MiB (table, bias and its filter, as
:mod:`sparsecross.budget` counts them; the bias is counted in every shard, a few bytes).  A
shard's table grows as without a budget until its budget capacity.  A merge first applies the
lanes to the keys that had state at the start of the round (in place), then inserts the keys
admitted in the round in order of first appearance (lanes in order), in batches of
``1 - LOW_WATER`` of the shard's key limit when it has a budget; before a batch that would pass
the limit it evicts with the single-node policy (:func:`sparsecross.budget.make_room`: zero
weights with the smallest ``n``, then the smallest ``|z|``, ties by key; over every key the
shard holds, those just merged included) down to ``LOW_WATER`` of the limit.  An evicted key
comes back from (0, 0) (or through the filter) when it is seen again.  ``evicted_features``
and ``evictions`` are summed over the shards; ``state_bytes_peak`` is the sum of the shards'
peaks (they need not peak at the same time: an upper bound of the cluster's state at any
moment).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._kernels.lanes import fill_table, merge_lanes
from .._kernels.shard_admit import filter_estimates, lane_admission, sight_all
from ..admission import Admission, AdmitPolicy
from ..budget import LOW_WATER, MIB, apply_budget, capacity_for, growth_extra, make_room
from ..errors import ParameterError
from ..state import MAX_LOAD, FTRLState
from .lane_tasks import _prepared, _train_chunk, _trained
from .shards import (
    _SHARDS,
    _dropped,
    _lane_metas,
    _Shard,
    _shard,
    _ShardLost,
    _task_dump,
    _task_lookup,
    _task_shard_init,
)

#: Smallest shard filter, in bytes (one block of the blocked filter).
MIN_SHARD_FILTER = 64

#: Test hook: ``fn(s, state, limit_bytes)`` is called on the worker after every merge of a
#: shard with admission or a budget (an in-process cluster lets a test see every merge).
AFTER_MERGE: list[Callable[[int, FTRLState, float | None], None]] = []

_NO_FILTER = np.zeros(0, dtype=np.uint8)


@dataclass(frozen=True)
class ShardRules:
    """What every shard of a data-parallel run with admission or a budget applies."""

    n_shards: int
    policy: AdmitPolicy  # per shard (its filter is the shard's); may be inactive
    seed: int
    shard_mb: float | None  # budget per shard, MiB
    l1: float

    @property
    def admitting(self) -> bool:
        return self.policy.active


def shard_rules(admit: AdmitPolicy, max_state_mb: float | None, *, lanes: int, seed: int,
                l1: float) -> ShardRules | None:
    """The per-shard rules (None when neither admission nor a budget is on): ``lanes``
    shards, each with ``1 / lanes`` of the filter (``admit`` sized already) and of the budget."""
    if not admit.active and max_state_mb is None:
        return None
    policy = admit
    if admit.after > 1:
        per = admit.filter_bytes // lanes
        if per < MIN_SHARD_FILTER:
            raise ParameterError(
                f"admit_filter_mb {admit.filter_mb!r} gives {admit.filter_bytes:,} bytes of filter, less than "
                f"{MIN_SHARD_FILTER} per state shard ({lanes} lanes, one shard each); give at least "
                f"{MIN_SHARD_FILTER * lanes / MIB:.3g} MiB or fewer lanes")
        policy = replace(admit, filter_mb=(1 << (per.bit_length() - 1)) / MIB)
    return ShardRules(lanes, policy, int(seed), None if max_state_mb is None else max_state_mb / lanes, float(l1))


class ShardBook:
    """The client's record of the shards' admission and budget state: ``extras[s]`` of the
    last snapshot (None: fresh), what shards are rebuilt from after a worker loss."""

    def __init__(self, rules: ShardRules) -> None:
        self.rules = rules
        self.extras: list[tuple[Any, ...] | None] = [None] * rules.n_shards
        # the lanes' ``cfg`` (N, threshold, salts, first row): it does not depend on the filter's size
        policy = rules.policy
        self._cfg = Admission(replace(policy, filter_mb=1 / MIB) if policy.after > 1 else policy,
                              rules.seed) if policy.active else None

    def tasks(self) -> dict[str, Callable[..., Any]]:
        """The shard tasks of the round loop, bound to the rules."""
        r = self.rules
        return {"init": functools.partial(_task_init_ruled, r), "lookup": functools.partial(_task_lookup_ruled, r),
                "merge": functools.partial(_task_merge_ruled, r), "dump": _task_dump_ruled}

    def lane_task(self, epoch: int, start_row: int) -> Callable[..., Any]:
        """The training task of a lane whose chunk starts at ``start_row`` of epoch ``epoch``."""
        cfg = None
        if self._cfg is not None:
            self._cfg.begin_epoch(epoch)
            cfg = self._cfg.at_row(start_row).copy()
        return functools.partial(_task_train_lane_ruled, self.rules.admitting and self.rules.policy.after > 1, cfg)

    def stats(self) -> dict[str, int]:
        """``model.stats`` entries, summed over the shards' last snapshot."""
        ex = [e for e in self.extras if e is not None]
        out: dict[str, int] = {}
        if self.rules.admitting:
            out.update(admitted_features=sum(int(e[1][0]) for e in ex),
                       rejected_sightings=sum(int(e[1][1]) for e in ex),
                       admit_filter_bytes=self.rules.n_shards * self.rules.policy.filter_bytes)
        if self.rules.shard_mb is not None:
            out.update(evicted_features=sum(int(e[2]) for e in ex), evictions=sum(int(e[3]) for e in ex))
        return out

    def bytes_peak(self) -> int:
        """The sum of the shards' peak state bytes (0 before any snapshot)."""
        return sum(int(e[4]) for e in self.extras if e is not None)

    # ------------------------------------------------------------ checkpoint
    def stage(self, extras: list[tuple[Any, ...]], state: FTRLState, total: AdmitPolicy) -> dict[str, Any]:
        """Put the shards' ``extras`` into the client's ``state`` before it is written as a
        checkpoint: one filter of the run's size (``total``, the single-node size) holding the
        shards' filters one after the other (zeros after them), the summed counters; returns
        the checkpoint's meta entry with each shard's counters and peak."""
        if self.rules.admitting:
            adm = Admission(total, self.rules.seed)
            per = self.rules.policy.filter_bytes
            for s, e in enumerate(extras):
                adm.filter[s * per:(s + 1) * per] = e[0]
            adm.counts[:] = np.sum([e[1] for e in extras], axis=0)
            state.admission = adm
        state.evicted_features = sum(int(e[2]) for e in extras)
        state.evictions = sum(int(e[3]) for e in extras)
        return {"shards": [[int(e[1][0]), int(e[1][1]), int(e[2]), int(e[3]), int(e[4])] for e in extras]}

    def restore(self, state: FTRLState, meta: dict[str, Any], path: Any) -> None:
        """The shards' extras from the checkpoint file ``path`` written through :meth:`stage`
        (``state`` and ``meta`` read and checked by :func:`sparsecross.checkpoint.open_checkpoint`,
        its filter attached)."""
        from ..checkpoint import start_over
        from ..errors import CheckpointError, shown_path

        rows = meta.get("shards")
        if not (isinstance(rows, list) and len(rows) == self.rules.n_shards
                and all(isinstance(r, list) and len(r) == 5 and all(type(v) is int and v >= 0 for v in r)
                        for r in rows)):
            raise CheckpointError(f"checkpoint {shown_path(path)} does not hold the counters of "
                                  f"{self.rules.n_shards} state shards; {start_over(path)}")
        if sum(r[2] for r in rows) != state.evicted_features or (
                self.rules.admitting and [sum(r[0] for r in rows), sum(r[1] for r in rows)]
                != state.admission.counts.tolist()):
            raise CheckpointError(f"checkpoint {shown_path(path)} holds shard counters that disagree with its totals; "
                                  f"{start_over(path)}")
        per = self.rules.policy.filter_bytes
        full = state.admission.filter if state.admission is not None else None
        self.extras = [(_NO_FILTER if full is None else full[s * per:(s + 1) * per].copy(),
                        np.array(r[:2], dtype=np.int64), r[2], r[3], r[4]) for s, r in enumerate(rows)]


def _is_rerun(token: str, s: int, version: int) -> bool:
    sh = _SHARDS.get((token, s))
    return sh is not None and sh.version == version + 1


# ----------------------------------------------------------------------------- worker tasks
def _task_init_ruled(rules: ShardRules, token: str, s: int, version: int, keys: np.ndarray, zn: np.ndarray,
                     n_columns: int, state_dtype: str, extra: tuple[Any, ...] | None) -> int:
    """Task (pinned): create shard ``s`` holding (keys, zn) with its filter, counters and
    budget (``extra``: from the last snapshot; None: fresh)."""
    if rules.shard_mb is None:
        _task_shard_init(token, s, version, keys, zn, n_columns, state_dtype)
        st = _SHARDS[(token, s)].state
    else:
        if _dropped(token):
            raise _ShardLost(f"training run {token} was stopped")
        st = FTRLState(n_columns, state_dtype)
        fixed = int(st.bias.nbytes) + (_admission_bytes(rules))
        slot = int(st.table.itemsize * st.table.shape[1])
        cap = max(st.capacity, min(capacity_for(rules.shard_mb * MIB, slot, fixed),
                                   int(math.ceil((len(keys) + 1) / MAX_LOAD)) + 1))
        st = FTRLState(n_columns, state_dtype, capacity=cap)
        fill_table(st.table, st.values, st.count, keys.astype(st.table.dtype, copy=False), zn)
        if _dropped(token):
            raise _ShardLost(f"training run {token} was stopped")
        _SHARDS[(token, s)] = _Shard(st, version, {})
    if rules.admitting:
        st.admission = Admission(rules.policy, rules.seed)
        if extra is not None:
            st.admission.filter = np.array(extra[0], dtype=np.uint8)
            st.admission.counts = np.array(extra[1], dtype=np.int64)
    if extra is not None:
        st.evicted_features, st.evictions = int(extra[2]), int(extra[3])
        st.note_peak(int(extra[4]))
    if rules.shard_mb is not None:
        apply_budget(st, rules.shard_mb)
    return version


def _admission_bytes(rules: ShardRules) -> int:
    if not rules.admitting:
        return 0
    return Admission(rules.policy, rules.seed).nbytes


def _task_lookup_ruled(rules: ShardRules, token: str, s: int, version: int, lane_keys: list[list[np.ndarray]],
                       after: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Task (pinned): one round's look-ups in shard ``s`` for every lane j: the (z, n) of
    ``lane_keys[j][s]`` (``_task_lookup``) and, per key, -1 if it has state, else the filter's
    estimate of its sightings (int8)."""
    zns = _task_lookup(token, s, version, lane_keys, after)
    sh = _SHARDS[(token, s)]
    adm = sh.state.admission
    filt, salt = (_NO_FILTER, np.uint64(0)) if adm is None else (adm.filter, np.uint64(adm.cfg[2]))
    out = []
    for j, zn in enumerate(zns):
        keys = lane_keys[j][s]
        est = np.empty(len(keys), dtype=np.int8)
        filter_estimates(filt, salt, keys, sh.slots[j], est)
        out.append((zn, est))
    return out


def _task_train_lane_ruled(counting: bool, cfg: np.ndarray | None, keys_dep: Any, token: str, epoch: int,
                           index: int, bias: np.ndarray, acc: np.ndarray, params: Any, lane: int,
                           *looked: list[tuple[np.ndarray, np.ndarray]]
                           ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    """Task (pinned where chunk ``index`` was prepared): train lane ``lane`` with admission
    (``cfg``; None: every key admitted); ``looked[s][lane]``: the (z, n) and estimates of the
    lane's keys of shard s (``_task_lookup_ruled``); the other arguments as
    ``lane_tasks._task_train_lane``.  Returns, per shard, the keys' new (z, n) and ``flags``
    (int32: ``2 * sightings without state + admitted``; 0 for a key that had state), the new
    bias and the loss sums."""
    prep = _prepared(token, epoch, index)
    base = [part[lane] for part in looked]
    if cfg is None:
        zn, bias, acc = _train_chunk(prep, [b[0] for b in base], bias, acc, params)
        _trained(token, epoch, index)
        return [(zn[pos], (b[1] >= 0).astype(np.int32) * 3) for pos, b in zip(prep.positions, base)], bias, acc
    u = prep.n_keys
    keys = np.zeros(u, dtype=np.uint64)
    est = np.full(u, -1, dtype=np.int8)
    for pos, k, (_values, e) in zip(prep.positions, prep.keys, base):
        keys[pos] = k
        est[pos] = e
    was_new = est >= 0
    seen = np.zeros(u, dtype=np.int32)
    counts = np.zeros(2, dtype=np.int64)
    data = []
    for p in prep.parts:  # in row order: the estimates run on from part to part
        part_cfg = cfg.copy()
        part_cfg[4] += np.uint64(p.offset)  # the part's first row in the epoch's order
        data.append(np.empty_like(p.data))
        lane_admission(p.indptr, p.local, p.data, p.mask, keys, est, part_cfg, counting, counts, data[-1], seen)
    zn, bias, acc = _train_chunk(prep, [b[0] for b in base], bias, acc, params, data)
    _trained(token, epoch, index)
    flags = seen * 2 + (was_new & (est < 0)).astype(np.int32)
    return [(zn[pos], flags[pos]) for pos in prep.positions], bias, acc


def _task_merge_ruled(rules: ShardRules, token: str, s: int, version: int, lane_keys: list[list[np.ndarray]],
                      old: list[tuple[np.ndarray, np.ndarray]], results: list[Any],
                      after: Any) -> tuple[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Task (pinned): merge one round into shard ``s`` with admission and the budget (see the
    module docstring).  ``lane_keys[j][s]``, ``old[j]`` (this shard's look-up: (z, n) and
    estimates), ``results[j][0][s]`` (new (z, n) and flags): lane j's keys of this shard.
    Returns its number of keys and, from shard 0, the lanes' bias and loss sums
    (``shards._task_merge``)."""
    metas = _lane_metas(s, results)
    if _is_rerun(token, s, version):
        return _SHARDS[(token, s)].state.touched, metas
    sh = _shard(token, s, version)
    st = sh.state
    cat = np.concatenate
    lane_keys_s = cat([k[s] for k in lane_keys]).astype(st.table.dtype, copy=False)
    new = [r[0][s] for r in results]
    est, flags = cat([o[1] for o in old]), cat([n[1] for n in new])
    lane_old, lane_new = cat([o[0] for o in old]), cat([n[0] for n in new])
    stateless = est >= 0
    adm = st.admission
    if adm is not None:  # the lanes' sightings of keys without state, lanes in order
        sightings = flags[stateless] >> 1
        if rules.policy.after > 1:
            sight_all(adm.filter, adm.cfg[2], lane_keys_s[stateless], sightings)
        adm.counts[1] += int(sightings.sum()) - int((flags[stateless] & 1).sum())
    cap = 16
    while cap < 2 * len(lane_keys_s) + 2:
        cap *= 2
    if sh.scratch.shape[0] < cap:
        sh.scratch = np.empty((cap, 2), dtype=np.int64)
    scratch = sh.scratch[:cap]
    # keys with state at the start of the round: in place (nothing moved since the look-ups)
    held = ~stateless
    merge_lanes(st.table, st.values, st.count, lane_keys_s[held], lane_new[held], lane_old[held],
                cat([sh.slots[j] for j in range(len(lane_keys))])[held], True, scratch)
    # keys admitted in the round (by at least one lane), in order of first appearance
    fresh = stateless & ((flags & 1) == 1)
    added = _insert_new(st, rules.l1, lane_keys_s[fresh], lane_new[fresh], lane_old[fresh], scratch)
    if adm is not None:
        adm.counts[0] += added
    sh.version = version + 1
    sh.slots = {}
    for hook in AFTER_MERGE:
        hook(s, st, None if rules.shard_mb is None else rules.shard_mb * MIB)
    return st.touched, metas


def _insert_new(st: FTRLState, l1: float, keys: np.ndarray, new: np.ndarray, old: np.ndarray,
                scratch: np.ndarray) -> int:
    """Insert the keys of a round that had no state (entries in lane order) with their merged
    values, growing the table; at its budget, in batches of ``1 - LOW_WATER`` of its key limit,
    evicting before each batch that would pass the limit (``make_room``: the single-node
    policy, over every key held, those of earlier batches included).  Returns the keys added."""
    if len(keys) == 0:
        return 0
    uniq, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
    key_rank = rank[inv.reshape(-1)]
    order = np.argsort(key_rank, kind="stable")  # by key (first appearance), lanes in order
    keys, new, old, key_rank = keys[order], new[order], old[order], key_rank[order]
    step = len(uniq)
    if st.max_capacity:
        limit = int(st.max_capacity * MAX_LOAD)
        step = max(1, limit - int(LOW_WATER * limit))
    added = 0
    for b0 in range(0, len(uniq), step):
        nb = min(step, len(uniq) - b0)
        while st.touched + nb > st.max_count:
            if st.at_budget:
                make_room(st, nb, l1)
                break
            st.grow(nb)
        lo, hi = np.searchsorted(key_rank, [b0, b0 + nb])
        added += int(merge_lanes(st.table, st.values, st.count, keys[lo:hi], new[lo:hi], old[lo:hi],
                                 np.full(hi - lo, -1, dtype=np.int64), True, scratch))
    return added


def _task_dump_ruled(token: str, s: int, version: int, after: Any,
                     l1: float | None = None) -> tuple[np.ndarray, np.ndarray, tuple[Any, ...]]:
    """Task (pinned): shard ``s``'s rows (``_task_dump``, all or with ``l1`` those with a
    weight) and its extras: (filter, counts, evicted features, evictions, peak state bytes)."""
    keys, zn = _task_dump(token, s, version, after, l1)
    st = _shard(token, s, version).state
    adm = st.admission
    filt = _NO_FILTER if adm is None else adm.filter.copy()
    counts = np.zeros(2, dtype=np.int64) if adm is None else adm.counts.copy()
    return keys, zn, (filt, counts, st.evicted_features, st.evictions, st.bytes_peak)


# ------------------------------------------------------------------------------ client side
def check_budget(rules: ShardRules, max_state_mb: float | None, n_columns: int, state_dtype: str) -> None:
    """A one-line error before training when a shard's budget cannot hold its minimum table."""
    if rules.shard_mb is None:
        return
    st = FTRLState(n_columns, state_dtype)
    if rules.admitting:
        st.admission = Admission(rules.policy, rules.seed)
    try:
        apply_budget(st, rules.shard_mb)
    except ParameterError:
        slot = int(st.table.itemsize * st.table.shape[1])
        need = (st.capacity * slot + growth_extra(st.capacity, slot) + int(st.bias.nbytes) + _admission_bytes(rules))
        raise ParameterError(
            f"max_state_mb {max_state_mb!r} is too small for {rules.n_shards} shards (one per "
            f"lane, each with 1/{rules.n_shards} of it): a shard's minimum table and filter need "
            f"{need / MIB:.3g} MiB; give at least {need * rules.n_shards / MIB:.3g} MiB or fewer lanes") from None

