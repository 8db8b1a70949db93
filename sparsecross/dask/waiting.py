"""Waiting for pinned tasks: every data-parallel task runs on the worker that holds its shard
or its prepared chunk, so a lost or paused worker must be noticed, not waited for."""

from __future__ import annotations

import time
from typing import Any

from ..errors import SparseCrossError
from .runner import _Runner
from .shards import _ShardLost

#: Seconds a worker holding a state shard may stay paused (Dask pauses a worker near its
#: memory limit; shards are not spillable, so a paused shard owner never resumes).
PAUSED_LIMIT_S = 30.0


class _Waiter:
    """Waits for futures of a data-parallel run, watching the workers that hold shards."""

    def __init__(self, runner: _Runner, timers: dict[str, float]) -> None:
        self.runner, self.client, self.distributed = runner, runner.client, runner.distributed
        self.timers = timers
        self.paused_since: dict[str, float] = {}

    def check(self, owners: list[str]) -> None:
        """Raise _ShardLost if a shard owner left; a clear error if one stayed paused."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        if not set(owners) <= set(workers):
            raise _ShardLost("a worker holding a state shard left the cluster")
        now = time.monotonic()
        for w in owners:
            if workers[w].get("status") != "paused":
                self.paused_since.pop(w, None)
            elif now - self.paused_since.setdefault(w, now) > PAUSED_LIMIT_S:
                limit = workers[w].get("memory_limit") or 0
                raise SparseCrossError(
                    f"Dask worker {w} holds part of the training state and has been paused for "
                    f"{PAUSED_LIMIT_S:g} s because it is near its memory limit"
                    f"{f' ({limit / 2**30:.2f} GiB)' if limit else ''}; the state cannot be spilled: "
                    "give the workers more memory (dask worker --memory-limit) or add workers"
                )

    def wait_all(self, futs: list[Any], owners: list[str], what: str) -> list[Any]:
        """Results of ``futs``; raises _ShardLost as soon as a worker holding a shard is gone
        (every data-parallel task is pinned to a worker, so its tasks would wait forever)."""
        t = time.perf_counter()
        self.wait_done(futs, owners, what)
        out = []
        for f in futs:
            while True:
                try:
                    out.append(f.result(timeout=1.0))
                    break
                except TimeoutError:  # its worker died after the task finished
                    self.check(owners)
                    if f.status != "finished":
                        raise _ShardLost("a result was lost with its worker") from None
        self.timers["wait"] += time.perf_counter() - t
        return out

    def wait_done(self, futs: list[Any], owners: list[str], what: str) -> None:
        """Wait until every future finished; task errors raise (a _ShardLost as such)."""
        distributed = self.distributed
        while True:
            try:
                with self.client.as_current():  # (``wait`` would use the default client)
                    distributed.wait(futs, timeout=1.0)
            except TimeoutError:
                pass
            except distributed.client.FuturesCancelledError:
                raise _ShardLost("a task was cancelled (its worker left)") from None
            status = [f.status for f in futs]
            for f, st in zip(futs, status):
                if st == "error":
                    exc = f.exception()
                    if isinstance(exc, _ShardLost):
                        raise exc
                    raise self.runner.error(exc, what)
            if all(st == "finished" for st in status):
                return
            if any(st in ("lost", "cancelled") for st in status):
                raise _ShardLost("a result was lost with its worker")
            self.check(owners)

    def on_lost_workers(self, chunk_of: dict[str, tuple[int, ...]]) -> frozenset[int]:
        """The chunks of this attempt's tasks that were running (or queued) on a worker when
        it died: the scheduler counts such a worker loss on the task ("suspicious").  Empty
        when the scheduler cannot tell (it refuses to run a function)."""

        def suspicious(dask_scheduler: Any, keys: list[str]) -> list[str]:
            tasks = dask_scheduler.tasks
            return [k for k in keys if k in tasks and tasks[k].suspicious > 0]

        try:
            hit = self.client.run_on_scheduler(suspicious, keys=list(chunk_of))
        except Exception:  # noqa: BLE001 - only a better error message is at stake
            return frozenset()
        return frozenset(ci for k in hit for ci in chunk_of.get(k, ()))
