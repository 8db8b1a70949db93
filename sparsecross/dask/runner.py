"""Task submission: unique keys, retries, one-line errors, ordered bounded streams."""

from __future__ import annotations

import contextlib
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import SparseCrossError
from ..read import _short
from .cluster import _require_dask
from .plan import _Chunk

#: Graph payloads (a lane's starting values, a model's table) are embedded in the task on
#: purpose, so that the scheduler can re-run the task after a worker died; do not warn.
_NO_LARGE_GRAPH_WARNING = {"distributed.admin.large-graph-warning-threshold": "64GiB"}


class _Runner:
    """Submits sparsecross tasks with unique keys, retries, and clear errors."""

    def __init__(self, client: Any, retries: int) -> None:
        self.distributed = _require_dask()
        self.client = client
        self.retries = int(retries)
        self.prefix = f"sparsecross-{uuid.uuid4().hex[:12]}"
        self.n = 0

    def submit(self, fn: Callable[..., Any], *args: Any, name: str, priority: int = 0,
               workers: list[str] | None = None) -> Any:
        """Submit ``fn(*args)``; ``workers``: run only there (a task that uses a state shard)."""
        import dask

        self.n += 1
        key = f"{self.prefix}-{name}-{self.n}"
        with dask.config.set(_NO_LARGE_GRAPH_WARNING):
            return self.client.submit(fn, *args, key=key, retries=self.retries, priority=priority, pure=False,
                                      workers=workers, allow_other_workers=False)

    def result(self, fut: Any, what: str) -> Any:
        """The future's result; failures become SparseCrossError naming ``what``."""
        try:
            return fut.result()
        except SparseCrossError:
            raise
        except Exception as exc:
            raise self.error(exc, what) from None

    def error(self, exc: BaseException, what: str) -> SparseCrossError:
        if isinstance(exc, SparseCrossError):
            return exc
        if isinstance(exc, self.distributed.KilledWorker):
            return SparseCrossError(
                f"Dask workers died repeatedly while processing {what}; check the workers' "
                f"memory and logs ({_short(exc)})"
            )
        return SparseCrossError(f"processing {what} failed on the cluster after {self.retries} retries: "
                                f"{type(exc).__name__}: {_short(exc)}")

    def cancel(self, futures: Sequence[Any]) -> None:
        if futures:
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))

    def hold(self, value: Any, name: str) -> Any:
        """Ship ``value`` once (in the graph, so it can be recomputed) and return its future."""
        return self.submit(_identity, value, name=name, priority=10)


def _identity(x: Any) -> Any:
    """Task: hold a value shipped in the graph (re-run from the graph if its worker dies)."""
    return x


def _ordered(runner: _Runner, fn: Callable[..., Any], chunks: Sequence[_Chunk], args: tuple[Any, ...], *,
             window: int, name: str) -> Iterator[tuple[_Chunk, Any]]:
    """Run ``fn(chunk, *args)`` over ``chunks`` with at most ``window`` tasks in flight and
    yield ``(chunk, result)`` in chunk order (bounded memory, deterministic order)."""
    pending: deque[tuple[_Chunk, Any]] = deque()
    todo = iter(chunks)
    try:
        for chunk in todo:
            pending.append((chunk, runner.submit(fn, chunk, *args, name=f"{name}-{chunk.index}")))
            if len(pending) >= window:
                break
        while pending:
            chunk, fut = pending.popleft()
            try:
                res = runner.result(fut, chunk.describe())
            except BaseException:
                runner.cancel([fut])  # the traceback keeps the future (and so the task) alive
                raise
            del fut
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, runner.submit(fn, nxt, *args, name=f"{name}-{nxt.index}")))
            yield chunk, res
    finally:
        runner.cancel([f for _, f in pending])
