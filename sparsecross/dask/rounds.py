"""The data-parallel round loop (client side).

The global state lives on the workers, one shard per worker (keys split by ``shard_of``).
Per round, each shard looks up every lane's keys it owns (one task per shard), each lane
trains its chunk where the chunk was prepared (one task per lane), and each shard merges the
lanes' results for its keys (one task per shard): with the preparations (which keep the
chunk on its lane's worker and return its keys), 2K + 2S tasks per round for K lanes and S
shards.  The client only merges the bias and the loss sums and submits the next round while
the current one merges.

At every checkpoint and epoch end the client takes a snapshot of the shards: the point
training restarts from if a worker, and so a shard, is lost.  ``state`` is rebuilt from the
snapshot only where it is needed (``checkpointing``: to write it; ``validating``: to score
the validation rows at an epoch end).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .._kernels.ftrl import FTRLParams
from .._kernels.lanes import shard_of, table_items
from ..errors import SparseCrossError
from ..read import Source, _short
from ..spec import FeatureSpec
from ..state import FTRLState
from .faults import _name_suspects
from .growth import _epoch_rows, _round_rows
from .lane_tasks import _task_prepare, _task_train_lane
from .plan import _plan
from .runner import _Runner
from .shards import (
    _drop_shards,
    _set_state,
    _ShardLost,
    _task_dump,
    _task_lookup,
    _task_merge,
    _task_shard_init,
)
from .sharing import merge_bias
from .waiting import _Waiter

log = logging.getLogger("sparsecross.distributed")

#: Times the same round may lose a worker before training gives up, naming its chunks.
ROUND_FAILURES = 3

#: The recovery point: next schedule step, the state's rows (keys, zn) as parts (one per shard
#: when they come from the shards' dumps), bias, acc, history length, number of keys.
_Snap = tuple[int, list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray, int, int]


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _RoundLoop:
    """One data-parallel training run over the schedule of (epoch, round) steps; see
    :func:`_train_rounds`.  An *attempt* trains from the last snapshot until the end or
    until a shard is lost; :meth:`train` restarts attempts."""

    def __init__(self, runner: _Runner, state: FTRLState, acc: np.ndarray, spec: FeatureSpec,
                 params: FTRLParams, tp: Any, source: Source, rows_total: int, *, lanes: int,
                 rows_per_round: int | None, lane_rows_target: int | None = None, epoch: int,
                 start_round: int, checkpoint_every: int, checkpoint_rounds: int | None,
                 history: list[dict[str, Any]], run: dict[str, Any], **options: Any) -> None:
        self.runner, self.client = runner, runner.client
        self.state, self.acc, self.spec, self.params, self.epochs = state, acc, spec, params, tp.epochs
        self.lanes, self.history, self.run = lanes, history, run
        self.o = options  # holdout, salt, batch_rows, prefetch_rounds, save, progress, event,
        # end_epoch, checkpointing, validating, keep_state, book
        self.book = options.get("book")  # admission / budget per shard (.admit.ShardBook), or None
        self.fn = {"init": _task_shard_init, "lookup": _task_lookup, "merge": _task_merge, "dump": _task_dump}
        if self.book is not None:
            self.fn.update(self.book.tasks())
        chunk_rows = None if rows_per_round is None else rows_per_round // lanes
        self.chunks, _ = _plan(source, spec, chunk_rows=chunk_rows, target_rows=lane_rows_target)
        self.rounds = [self.chunks[i:i + lanes] for i in range(0, len(self.chunks), lanes)]
        self.epoch_rows = _epoch_rows(self.chunks)
        self.n_rounds = n_rounds = len(self.rounds)
        if checkpoint_rounds is None:
            per_round = max(1, rows_total // max(n_rounds, 1))
            checkpoint_rounds = max(1, math.ceil(checkpoint_every / per_round))
        self.checkpoint_rounds = checkpoint_rounds
        self.schedule = [(e, r) for e in range(epoch, tp.epochs)
                         for r in range(start_round if e == epoch else 0, n_rounds)]
        self.key_dtype = state.table.dtype.str
        self.timers = dict.fromkeys(("wait", "snapshot", "submit"), 0.0)
        run.update(lanes=lanes, rounds=0, rounds_per_epoch=n_rounds, recoveries=0)
        keys0, zn0 = table_items(state.table, state.values)
        self.snap: _Snap = (0, [keys0], [zn0], state.bias.copy(), acc.copy(), len(history), len(keys0))
        self.touched = len(keys0)  # keys in the state after the last round collected
        self.live: list[Any] = []  # futures of the current attempt (cancelled on failure)
        self.chunk_of: dict[str, tuple[int, ...]] = {}  # key of a live task -> the chunks it works on
        self.waiter = _Waiter(runner, self.timers)
        # the current attempt's prepared chunks, last round's futures, the step waited for
        self.prep: dict[tuple[int, int], Any] = {}  # (epoch, chunk) -> its preparation (its keys)
        self.round_futs: list[Any] = []
        self.token = ""
        self.waiting: int | None = None
        self.rows_before = [0]
        for _e, r in self.schedule:
            self.rows_before.append(self.rows_before[-1] + sum(c.rows for c in self.rounds[r]))

    # ------------------------------------------------------------------ submitting
    def submit(self, fn: Callable[..., Any], *args: Any, name: str, priority: int = 0, worker: str | None = None,
               on: tuple[int, ...] = ()) -> Any:
        fut = self.runner.submit(fn, *args, name=name, priority=priority,
                                 workers=None if worker is None else [worker])
        self.live.append(fut)
        if on:
            self.chunk_of[fut.key] = on
        return fut

    def wait_all(self, futs: list[Any], what: str) -> list[Any]:
        return self.waiter.wait_all(futs, self.owners, what)

    def home(self, i: int, j: int) -> str:
        """The worker of lane j of schedule step i: its chunk is prepared and trained there
        (never moved); lanes rotate over the workers, so with more workers than lanes every
        worker prepares chunks."""
        return self.workers[(i * self.lanes + j) % len(self.workers)]

    def init_shards(self, i0: int) -> None:
        """Start an attempt at step ``i0``: one shard per worker (K shards round-robin with
        admission or a budget), from the snapshot."""
        self.token = token = f"{self.runner.prefix}-a{self.run['recoveries']}"
        self.waiting = i0
        owners = sorted(self.client.nthreads())
        if not owners:
            self.client.wait_for_workers(1, timeout=60)
            owners = sorted(self.client.nthreads())
        # one shard per worker; with admission or a budget, a fixed number placed round-robin
        self.workers, self.n_shards = owners, len(owners) if self.book is None else self.book.rules.n_shards
        self.owners = [owners[s % len(owners)] for s in range(self.n_shards)]
        owners = self.owners
        o = self.o
        self.prep_args = (self.spec, o["batch_rows"], o["holdout"], o["salt"], self.key_dtype, self.n_shards)
        _, keys_parts, zn_parts, bias, _, _, _ = self.snap
        if len(keys_parts) != self.n_shards:  # split by owner (else: the shards' own dumps)
            keys_all, zn_all = _cat(keys_parts), _cat(zn_parts)
            owner = shard_of(keys_all, self.n_shards)
            keys_parts = [keys_all[owner == s] for s in range(self.n_shards)]
            zn_parts = [zn_all[owner == s] for s in range(self.n_shards)]
        extra = [()] * self.n_shards if self.book is None else [(e,) for e in self.book.extras]
        self.merged = [self.submit(self.fn["init"], token, s, i0, keys_parts[s], zn_parts[s],
                                   self.spec.n_columns, self.state.dtype, *extra[s], name=f"shard-init-{s}",
                                   priority=40, worker=owners[s]) for s in range(self.n_shards)]
        self.bias = bias.copy()
        self.prep = {}
        self.next_prep = i0
        self.t_submit: dict[int, float] = {}

    def prepare_until(self, i: int) -> None:
        """Submit the preparation of the chunks of the steps before ``i``."""
        while self.next_prep < min(i, len(self.schedule)):
            e, r = self.schedule[self.next_prep]
            for j, c in enumerate(self.rounds[r]):
                w = self.home(self.next_prep, j)
                on = (c.index,)
                self.prep[(e, c.index)] = self.submit(_task_prepare, c, *self.prep_args, self.token, e,
                                                      name=f"prep-e{e}-c{c.index}", worker=w, on=on)
            self.next_prep += 1

    def submit_lookups(self, i: int) -> list[Any]:
        """Round ``i``'s look-ups: per shard, the (z, n) of every lane's keys there."""
        e, r = self.schedule[i]
        kfs = [self.prep[(e, c.index)] for c in self.rounds[r]]
        on = tuple(c.index for c in self.rounds[r])
        return [self.submit(self.fn["lookup"], self.token, s, i, kfs, self.merged[s], name=f"look-{i}-s{s}",
                            priority=30, worker=self.owners[s], on=on) for s in range(self.n_shards)]

    def submit_lanes(self, i: int, looked: list[Any]) -> list[np.ndarray]:
        """Round ``i``'s lanes and merges (``self.merged`` becomes this round's: shard 0's
        merge also returns the lanes' bias and loss sums); returns the lanes' starting loss
        sums."""
        e, r = self.schedule[i]
        lane_chunks = self.rounds[r]
        kfs = [self.prep[(e, c.index)] for c in lane_chunks]
        acc_in = [self.acc.copy() if j == 0 else np.zeros(3, dtype=np.float64) for j in range(len(lane_chunks))]
        train = [_task_train_lane if self.book is None else self.book.lane_task(e, c.start_row) for c in lane_chunks]
        trains = [self.submit(train[j], kfs[j], self.token, e, c.index, self.bias.copy(), acc_in[j], self.params, j,
                              *looked, name=f"lane-{i}-l{j}", priority=20, worker=self.home(i, j), on=(c.index,))
                  for j, c in enumerate(lane_chunks)]
        # (the merges of admission / a budget take no plan: their tables double)
        sizing = (_round_rows(e, lane_chunks, self.epoch_rows),) if self.book is None else ()
        self.merged = [self.submit(self.fn["merge"], self.token, s, i, kfs, looked[s], trains, self.merged[s],
                                   *sizing, name=f"merge-{i}-s{s}", priority=30, worker=self.owners[s],
                                   on=tuple(c.index for c in lane_chunks))
                       for s in range(self.n_shards)]
        for c in lane_chunks:
            del self.prep[(e, c.index)]
        return acc_in

    def forget_done(self) -> None:
        """Drop the finished futures (a held future holds its data on the cluster)."""
        self.live[:] = [f for f in self.live if f.status == "pending"]
        pending_keys = {f.key for f in self.live}
        for k in [k for k in self.chunk_of if k not in pending_keys]:
            del self.chunk_of[k]

    def attempt(self, i0: int) -> None:
        """Train schedule steps ``i0..`` from the snapshot (raises _ShardLost)."""
        self.init_shards(i0)
        pending: tuple[int, list[np.ndarray]] | None = None
        for i in range(i0, len(self.schedule)):
            self.t_submit[i] = time.perf_counter()
            self.prepare_until(i + 1 + self.o["prefetch_rounds"])
            looked = self.submit_lookups(i)
            if pending is not None:
                self.finish(*pending)  # round i-1's bias is round i's starting bias
            t = time.perf_counter()
            acc_in = self.submit_lanes(i, looked)
            del looked
            self.timers["submit"] += time.perf_counter() - t
            pending = (i, acc_in)
            self.round_futs = list(self.merged)
            self.forget_done()
        if pending is not None:
            self.finish(*pending)

    # ------------------------------------------------------------------ collecting
    def merge_bias(self, results: list[Any], acc_in: list[np.ndarray]) -> None:
        """The new bias (the average of the deltas of the lanes that trained at least one
        row) and progressive loss sums (lane 0 continued the running sums, the others
        started from zero)."""
        trained = [b for j, (b, a) in enumerate(results) if a[2] > acc_in[j][2]]
        self.bias = merge_bias(self.bias, trained)
        new = results[0][1].copy()
        for _b, a in results[1:]:
            new += a
        self.acc[:] = new

    def finish(self, i: int, acc_in: list[np.ndarray]) -> None:
        """Round ``i`` is submitted: collect its bias and loss sums, report, and take a
        snapshot (checkpoint, epoch end) where due."""
        e, r = self.schedule[i]
        self.waiting = i
        merged = self.wait_all(self.merged, " / ".join(c.describe() for c in self.rounds[r]))
        self.touched = touched = sum(m[0] for m in merged)
        self.merge_bias(merged[0][1], acc_in)
        self.run["rounds"] = max(self.run["rounds"], i + 1)  # (not counting rounds re-run after a loss)
        self.run["rows_processed"] = max(self.run["rows_processed"], self.rows_before[i + 1])
        done = r + 1
        last = self.rounds[r][-1]
        self.o["progress"](self.o["event"](
            e, last.start_row + last.rows, touched=touched,
            extra={"round": done, "rounds": self.n_rounds, "lanes": self.lanes,
                   "round_seconds": time.perf_counter() - self.t_submit.pop(i)}))
        if done == self.n_rounds or done % self.checkpoint_rounds == 0:
            self.snapshot(i, e, done)

    def snapshot(self, i: int, e: int, done: int) -> None:
        """After step ``i`` (round ``done`` of epoch ``e``): dump the shards, refresh
        ``state`` where needed, end the epoch or checkpoint, and keep the recovery point.

        The end of training needs no recovery point: unless the state itself is wanted (a
        checkpoint, validation, ``keep_state``), the shards send only their rows with a weight."""
        t = time.perf_counter()
        last = done == self.n_rounds
        o = self.o
        only_live = (i + 1 == len(self.schedule) and not (o["checkpointing"] or o["validating"] or o["keep_state"]))
        l1 = self.params.l1 if only_live else None
        dumps = self.wait_all([self.submit(self.fn["dump"], self.token, s, i + 1, self.merged[s], l1,
                                           name=f"dump-{i}-{s}", priority=40, worker=self.owners[s])
                               for s in range(self.n_shards)], "the state shards")
        keys_parts, zn_parts = [d[0] for d in dumps], [d[1] for d in dumps]
        extras = [d[2] for d in dumps] if self.book is not None else None  # filters, counters, peaks
        del dumps
        meta: dict[str, Any] = {}
        if extras is not None and o["checkpointing"]:
            meta = self.book.stage(extras, self.state, o["admit"])
        if o["checkpointing"] or (o["validating"] and last):  # the table is needed
            _set_state(self.state, _cat(keys_parts), _cat(zn_parts), self.bias)
        self.timers["snapshot"] += time.perf_counter() - t
        if last:
            nonzeros = sum(map(len, keys_parts)) if only_live else sum(
                int(np.count_nonzero(np.abs(zn[:, 0].astype(np.float64)) > self.params.l1)) for zn in zn_parts)
            o["end_epoch"](e, {"rounds": self.n_rounds}, (self.touched, nonzeros))
            o["save"]({"epoch": e + 1, "round": 0, **meta})
        else:
            o["save"]({"epoch": e, "round": done, **meta})
        self.snap = (i + 1, keys_parts, zn_parts, self.bias.copy(), self.acc.copy(), len(self.history), self.touched)
        if extras is not None:
            self.book.extras = extras  # part of the recovery point

    # ------------------------------------------------------------------ recovery
    def release(self) -> None:
        """Cancel what the current attempt still holds on the cluster (queued tasks, prepared
        chunks, the last round's results): nothing stays in the workers' memory."""
        prep, self.prep = self.prep, {}
        round_futs, self.round_futs = self.round_futs, []
        self.runner.cancel(self.live + list(prep.values()) + round_futs)
        self.live.clear()
        self.chunk_of.clear()

    def recover(self, exc: _ShardLost, losses: dict[int, list[tuple[frozenset[int], frozenset[int]]]]) -> None:
        """A shard was lost: cancel the attempt, record the loss (raise after ROUND_FAILURES
        losses at the same step) and rewind to the snapshot."""
        step = self.snap[0] if self.waiting is None else self.waiting
        # in flight: the round waited for, and chunks whose preparation had not finished (or
        # whose prepared chunk was lost with the worker); of those, the chunks of the tasks on
        # the lost worker are the suspects
        unfinished = {ci for (_e, ci), pf in self.prep.items() if pf.status != "finished"}
        hit = self.waiter.on_lost_workers(self.chunk_of)
        in_flight = frozenset(unfinished | {c.index for c in self.rounds[self.schedule[step][1]]} | hit)
        self.release()
        with contextlib.suppress(Exception):
            self.client.run(_drop_shards, self.token)
        self.run["recoveries"] += 1
        losses.setdefault(step, []).append((hit, in_flight))
        e, r = self.schedule[step]
        if len(losses[step]) >= ROUND_FAILURES:
            raise SparseCrossError(
                f"Dask workers died {len(losses[step])} times during round {r + 1} of epoch {e + 1} "
                f"({_short(exc)}); {_name_suspects(self.chunks, losses[step])}; check the workers' memory "
                "and logs"
            ) from None
        nxt = self.snap[0]
        log.warning("a training state shard was lost (%s); restarting from round %d of epoch %d",
                    _short(exc), self.schedule[nxt][1] + 1 if nxt < len(self.schedule) else self.n_rounds,
                    self.schedule[nxt][0] + 1 if nxt < len(self.schedule) else self.epochs)
        self.acc[:] = self.snap[4]
        del self.history[self.snap[5]:]

    def train(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        """Run attempts until the schedule is done; the final state as (keys, zn, bias, number
        of keys): all its rows, or only those with a weight (see :meth:`snapshot`)."""
        # schedule step being waited for -> per worker loss there: (chunks on the lost
        # worker, chunks in flight)
        losses: dict[int, list[tuple[frozenset[int], frozenset[int]]]] = {}
        try:
            while True:
                try:
                    self.attempt(self.snap[0])
                    break
                except _ShardLost as exc:
                    self.recover(exc, losses)
        finally:
            self.release()
            with contextlib.suppress(Exception):
                self.client.run(_drop_shards, self.runner.prefix)
        self.run.update({f"{k}_seconds": v for k, v in self.timers.items()})
        if not self.schedule:
            return None
        return _cat(self.snap[1]), _cat(self.snap[2]), self.snap[3], self.snap[6]


def _train_rounds(runner: _Runner, state: FTRLState, acc: np.ndarray, spec: FeatureSpec, params: FTRLParams,
                  tp: Any, source: Source, rows_total: int, **kw: Any) -> tuple[np.ndarray, np.ndarray,
                                                                                np.ndarray, int] | None:
    """The data-parallel loop (see the module docstring).

    Keywords: ``holdout, salt, batch_rows, lanes, rows_per_round, lane_rows_target``
    (without ``rows_per_round``: a lane's chunk is whole row groups, as near this many rows as
    they come; None: one row group), ``epoch, start_round,
    checkpoint_every, checkpoint_rounds, prefetch_rounds``; the callbacks ``save(meta)``,
    ``progress(event)``, ``event(...)``, ``end_epoch(epoch, extra, counts)``; ``run`` (facts
    about the run, updated), ``history``, ``checkpointing``, ``validating``, ``keep_state`` (the
    caller wants the whole state back).  Returns the final state as (keys, zn, bias, number of
    keys) (None when there was nothing left to train), its rows all of them with
    ``checkpointing``, ``validating`` or ``keep_state``, else only those with a weight; ``acc``
    holds the final loss sums.
    """
    return _RoundLoop(runner, state, acc, spec, params, tp, source, rows_total, **kw).train()
