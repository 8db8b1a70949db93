"""The partitioned round loop (client side): lanes that own their keys.

Each of the K lanes keeps its own state on its worker for the whole run (:mod:`.partition`:
the keys holding a value of the partition feature belong to one lane; the others are shared).
Per round, one task per chunk reads, featurizes and groups the chunk's rows by lane; one task
per lane trains that lane's rows of the round, in row order, on its state, after merging the
lanes' reports of the round before (:mod:`.sharing`).  Only the shared keys and the bias are
exchanged, so a round costs K + C tasks (C chunks; plus a pick per chunk and lane on another
worker) and no work per owned key.  The client merges the same reports for the loss sums,
the bias and the progress, and takes a snapshot (the union of the lanes' owned rows and the
shared keys) at every checkpoint and epoch end: the point training restarts from if a worker,
and so a lane, is lost.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from typing import Any

import numpy as np

from .._kernels.lanes import table_items
from ..errors import SparseCrossError, SparseCrossWarning, shown
from ..read import _short
from ..state import FTRLState
from .partition import Partition
from .partition_tasks import _drop_lanes, _task_lane, _task_lane_init, _task_pick, _task_route
from .plan import _plan
from .runner import _Runner
from .shards import _set_state, _ShardLost
from .sharing import Report, Shared, merge_reports, sum_reports
from .waiting import _Waiter

log = logging.getLogger("sparsecross.distributed")

#: Times the same round may lose a worker before training gives up.
ROUND_FAILURES = 3

#: Shared keys after the first round past which a run warns (when they are also a tenth of
#: the keys): every lane holds them and every round merges them on every lane and on the
#: client.  With a hashed user x hour cross (2.4M shared keys of 6.8M, 10M rows) partitioned
#: rounds cost 9-10x single-node's CPU, data-parallel ones 1.8x (docs/DASK.md).
SHARED_WARN_KEYS = 100_000


class _Snapshot:
    """A recovery point: the next schedule step, the whole state as rows (keys, zn), the
    shared keys (with the bias), the loss sums, the history's length and the rows each lane
    trained so far in this run."""

    def __init__(self, step: int, keys: np.ndarray, zn: np.ndarray, shared: Shared, acc: np.ndarray,
                 history_len: int, lane_rows: np.ndarray) -> None:
        self.step, self.keys, self.zn, self.shared = step, keys, zn, shared
        self.acc, self.history_len, self.lane_rows = acc.copy(), history_len, lane_rows.copy()


class _PartitionedLoop:
    """One partitioned training run over the schedule of (epoch, round) steps."""

    def __init__(self, runner: _Runner, state: FTRLState, acc: np.ndarray, spec: Any, params: Any, tp: Any,
                 source: Any, *, part: Partition, rows_per_round: int | None, chunk_rows_target: int | None,
                 epoch: int, start_round: int, checkpoint_every: int, checkpoint_rounds: int | None,
                 history: list[dict[str, Any]], run: dict[str, Any], **options: Any) -> None:
        self.runner, self.client = runner, runner.client
        self.state, self.acc, self.spec, self.params, self.epochs = state, acc, spec, params, tp.epochs
        self.part, self.lanes, self.history, self.run, self.o = part, part.lanes, history, run, options
        chunk_rows = None if rows_per_round is None else rows_per_round // self.lanes
        self.chunks, _ = _plan(source, spec, chunk_rows=chunk_rows, target_rows=chunk_rows_target)
        k = self.lanes
        self.rounds = [self.chunks[i:i + k] for i in range(0, len(self.chunks), k)]
        self.n_rounds = len(self.rounds)
        self.epoch_rows = sum(c.rows for c in self.chunks)
        if checkpoint_rounds is None and options["checkpointing"]:
            per_round = max(1, self.epoch_rows // max(self.n_rounds, 1))
            checkpoint_rounds = max(1, math.ceil(checkpoint_every / per_round))
        # Snapshots within an epoch only where asked for (a checkpoint folder, or
        # checkpoint_rounds): each moves every key of the state to the client (on 10M rows,
        # 2.6M keys cost 0.2-0.3 CPU-s), which a run without a checkpoint folder does not pay
        # for: it recovers a lost worker from the last epoch end (or the start).
        self.checkpoint_rounds = checkpoint_rounds
        self.schedule = [(e, r) for e in range(epoch, tp.epochs)
                         for r in range(start_round if e == epoch else 0, self.n_rounds)]
        self.rows_before = [0]  # rows of the schedule before each step
        for _e, r in self.schedule:
            self.rows_before.append(self.rows_before[-1] + sum(c.rows for c in self.rounds[r]))
        self.timers = dict.fromkeys(("wait", "snapshot", "submit"), 0.0)
        run.update(lanes=k, partition=part.name, rounds=0, rounds_per_epoch=self.n_rounds, recoveries=0)
        keys, zn = table_items(state.table, state.values)
        own = part.owned(keys)
        shared = Shared(keys[~own], zn[~own], state.bias.astype(np.float64))
        order = np.argsort(shared.keys, kind="stable")
        shared = Shared(shared.keys[order], shared.zn[order], shared.bias)
        # the rows each lane trained in this run (model.run["lane_rows"]: a skewed partition shows)
        self.lane_rows = np.zeros(k, dtype=np.int64)
        run["lane_rows"] = self.lane_rows.tolist()
        run["shared_keys"] = len(shared.keys)
        self.warned = False  # (about many shared keys: once per run)
        self.snap = _Snapshot(0, keys[own], zn[own], shared, acc, len(history), self.lane_rows)
        self.shared = shared
        self.touched = len(keys)
        self.live: list[Any] = []
        self.waiter = _Waiter(runner, self.timers)

    # ------------------------------------------------------------------ submitting
    def submit(self, fn: Any, *args: Any, name: str, worker: str, priority: int = 0) -> Any:
        fut = self.runner.submit(fn, *args, name=name, priority=priority, workers=[worker])
        self.live.append(fut)
        return fut

    def start(self, i0: int) -> None:
        """Start an attempt at step ``i0``: the lanes' states from the snapshot."""
        self.token = f"{self.runner.prefix}-a{self.run['recoveries']}"
        workers = sorted(self.client.nthreads())
        if not workers:
            self.client.wait_for_workers(1, timeout=60)
            workers = sorted(self.client.nthreads())
        self.workers = workers
        self.lane_worker = [workers[j % len(workers)] for j in range(self.lanes)]
        snap = self.snap
        owner = self.part.lanes_of(snap.keys)
        self.live.clear()
        self.inits = [self.submit(_task_lane_init, self.token, j, i0, snap.keys[owner == j], snap.zn[owner == j],
                                  snap.shared, self.spec.n_columns, self.state.dtype, snap.acc,
                                  name=f"lane-init-{j}", worker=self.lane_worker[j], priority=40)
                      for j in range(self.lanes)]
        self.shared = snap.shared
        self.t_submit: dict[int, float] = {}
        self.routed: dict[tuple[int, int], Any] = {}
        self.next_route = i0

    def home(self, chunk_index: int) -> str:
        return self.workers[chunk_index % len(self.workers)]

    def route_until(self, i: int) -> None:
        """Submit the routing of the chunks of the steps before ``i``."""
        o = self.o
        while self.next_route < min(i, len(self.schedule)):
            e, r = self.schedule[self.next_route]
            for c in self.rounds[r]:
                self.routed[(e, c.index)] = self.submit(
                    _task_route, c, self.spec, o["batch_rows"], o["holdout"], o["salt"], self.part,
                    name=f"route-e{e}-c{c.index}", worker=self.home(c.index))
            self.next_route += 1

    def submit_lanes(self, i: int, previous: list[Any] | None, dump: bool) -> list[Any]:
        """Step ``i``'s lane tasks (and the picks of rows routed on another worker)."""
        e, r = self.schedule[i]
        chunks = self.rounds[r]
        routed = [self.routed.pop((e, c.index)) for c in chunks]
        at = (e, chunks[0].start_row, self.epoch_rows)
        futs = []
        for j in range(self.lanes):
            w = self.lane_worker[j]
            ins = [f if self.home(c.index) == w else
                   self.submit(_task_pick, f, j, name=f"pick-{i}-c{c.index}-l{j}", worker=self.home(c.index))
                   for c, f in zip(chunks, routed)]
            futs.append(self.submit(_task_lane, self.token, j, i, self.params, self.part, dump, at, previous, *ins,
                                    name=f"lane-{i}-l{j}", worker=w, priority=20))
        return futs

    def dump_at(self, i: int) -> float | None:
        """What step ``i``'s lanes dump (``_task_lane``'s ``dump``): their owned rows at a
        snapshot (checkpoint, epoch end), only those with a weight at the end of a run that
        needs only the model, else nothing."""
        r = self.schedule[i][1]
        every = self.checkpoint_rounds
        if r + 1 != self.n_rounds and (every is None or (r + 1) % every != 0):
            return None
        o = self.o
        model_only = i + 1 == len(self.schedule) and not (o["checkpointing"] or o["validating"] or o["keep_state"])
        return float(self.params.l1) if model_only else -1.0

    def attempt(self, i0: int) -> None:
        """Train schedule steps ``i0..`` from the snapshot (raises _ShardLost)."""
        self.start(i0)
        self.waiter.wait_all(self.inits, self.lane_worker, "the lanes' states")
        previous: list[Any] | None = None
        pending: tuple[int, list[Any]] | None = None
        for i in range(i0, len(self.schedule)):
            t = self.t_submit[i] = time.perf_counter()
            self.route_until(i + 1 + self.o["prefetch_rounds"])
            dump = self.dump_at(i)
            futs = self.submit_lanes(i, previous, dump)
            self.timers["submit"] += time.perf_counter() - t
            if pending is not None:
                self.finish(*pending)
            previous, pending = futs, (i, futs)  # (held here until the next step's lanes took them)
            self.live[:] = [f for f in self.live if f.status == "pending"]
        if pending is not None:
            self.finish(*pending)

    # ------------------------------------------------------------------ collecting
    def finish(self, i: int, futs: list[Any]) -> None:
        """Step ``i`` was submitted: merge its reports, report progress, and take a snapshot
        (checkpoint, epoch end) where due."""
        e, r = self.schedule[i]
        reports: list[Report] = self.waiter.wait_all(futs, self.lane_worker,
                                                     " / ".join(c.describe() for c in self.rounds[r]))
        self.shared = merge_reports(self.shared, reports)
        self.acc[:] = sum_reports(reports)
        self.touched = sum(rep.owned for rep in reports) + len(self.shared.keys)
        self.lane_rows += np.array([rep.rows for rep in reports], dtype=np.int64)
        self.run["lane_rows"] = self.lane_rows.tolist()
        self.run["shared_keys"] = len(self.shared.keys)
        if not self.warned and len(self.shared.keys) >= max(SHARED_WARN_KEYS, self.touched / 10):
            self.warned = True
            warnings.warn(f"partitioned training: {len(self.shared.keys):,} of the {self.touched:,} keys after round "
                          f"{r + 1} are shared (their features do not include {shown(self.part.name)}): every lane "
                          "holds them and every round merges them on every lane and the client, which can cost many "
                          "times single-node's CPU; partition by a feature those keys include, or use data-parallel "
                          "rounds", SparseCrossWarning, stacklevel=2)
        self.run["rounds"] = max(self.run["rounds"], i + 1)
        last = self.rounds[r][-1]
        self.run["rows_processed"] = max(self.run["rows_processed"], self.rows_before[i + 1])
        done = r + 1
        self.o["progress"](self.o["event"](e, last.start_row + last.rows, touched=self.touched,
                                           extra={"round": done, "rounds": self.n_rounds, "lanes": self.lanes,
                                                  "round_seconds": time.perf_counter() - self.t_submit.pop(i)}))
        if reports[0].dump is not None:
            self.snapshot(i, e, done, reports, self.dump_at(i))

    def snapshot(self, i: int, e: int, done: int, reports: list[Report], dump: float) -> None:
        """After step ``i``: the union of the lanes' owned rows and the shared keys (only
        those with a weight when ``dump`` is not negative); end the epoch or checkpoint; keep
        the recovery point."""
        t = time.perf_counter()
        o = self.o
        sk, szn = self.shared.keys.astype(reports[0].dump[0].dtype), self.shared.zn
        if dump >= 0:
            live = np.abs(szn[:, 0].astype(np.float64)) > dump
            sk, szn = sk[live], szn[live]
        keys = np.concatenate([rep.dump[0] for rep in reports] + [sk])
        zn = np.concatenate([rep.dump[1] for rep in reports] + [szn])
        owned_keys, owned_zn = keys[:len(keys) - len(sk)], zn[:len(zn) - len(sk)]
        if o["checkpointing"] or o["validating"] or o["keep_state"]:
            _set_state(self.state, keys, zn, self.shared.bias)
        self.timers["snapshot"] += time.perf_counter() - t
        if done == self.n_rounds:
            nonzeros = len(keys) if dump >= 0 else \
                int(np.count_nonzero(np.abs(zn[:, 0].astype(np.float64)) > self.params.l1))
            o["end_epoch"](e, {"rounds": self.n_rounds}, (self.touched, nonzeros))
            o["save"]({"epoch": e + 1, "round": 0})
        else:
            o["save"]({"epoch": e, "round": done})
        self.snap = _Snapshot(i + 1, owned_keys, owned_zn, self.shared, self.acc, len(self.history),
                              self.lane_rows)
        self.final = (keys, zn, self.shared.bias.copy(), self.touched)

    # ------------------------------------------------------------------ recovery
    def release(self) -> None:
        self.runner.cancel(self.live + list(getattr(self, "routed", {}).values()))
        self.live.clear()
        self.routed = {}

    def recover(self, exc: _ShardLost, losses: dict[int, int]) -> None:
        """A lane was lost: cancel the attempt, count the loss, rewind to the snapshot."""
        self.release()
        with contextlib.suppress(Exception):
            self.client.run(_drop_lanes, self.token)
        self.run["recoveries"] += 1
        step = self.snap.step
        losses[step] = losses.get(step, 0) + 1
        e, r = self.schedule[step]
        if losses[step] >= ROUND_FAILURES:
            raise SparseCrossError(f"Dask workers died {losses[step]} times while training from round {r + 1} of "
                                   f"epoch {e + 1} ({_short(exc)}); check the workers' memory and logs") from None
        log.warning("a lane's state was lost (%s); restarting from round %d of epoch %d", _short(exc), r + 1, e + 1)
        self.acc[:] = self.snap.acc
        self.lane_rows[:] = self.snap.lane_rows
        self.run["lane_rows"] = self.lane_rows.tolist()
        del self.history[self.snap.history_len:]

    def train(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
        losses: dict[int, int] = {}
        try:
            while self.snap.step < len(self.schedule):
                try:
                    self.attempt(self.snap.step)
                    break
                except _ShardLost as exc:
                    self.recover(exc, losses)
        finally:
            self.release()
            with contextlib.suppress(Exception):
                self.client.run(_drop_lanes, self.runner.prefix)
        self.run.update({f"{k}_seconds": v for k, v in self.timers.items()})
        if not self.schedule:
            return None
        return self.final


def _train_partitioned(runner: _Runner, state: FTRLState, acc: np.ndarray, spec: Any, params: Any, tp: Any,
                       source: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """The partitioned loop (see the module docstring); returns the final state as (keys,
    zn, bias, number of keys), None when there was nothing left to train."""
    return _PartitionedLoop(runner, state, acc, spec, params, tp, source, **kw).train()
