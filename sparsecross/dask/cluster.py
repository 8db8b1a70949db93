"""Cluster connection: ``local:N`` clusters and remote schedulers, worker checks.

Nothing here imports Dask at module level (``_require_dask`` imports it on use).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from ..errors import NAME_LIMIT, SparseCrossError, shown
from ..read import _short

log = logging.getLogger("sparsecross.distributed")

_INSTALL_HINT = "install with pip install 'sparsecross[dask]'"


#: Worker processes of ``local:N`` clusters start without Dask's default
#: ``MALLOC_TRIM_THRESHOLD_=65536``: setting it turns off glibc's adaptive mmap threshold, so
#: every array above 128 KiB is fresh memory and page-faults on first touch; data-parallel
#: training allocates tens of MB per chunk and ran 20-35 % slower with it (docs/DASK.md).
#: The nanny keeps this environment when it restarts a worker.
_WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}

#: Dask's background work that costs CPU every wall second and serves nothing on a ``local:N``
#: cluster started for one sparsecross call (idle ``local:2``, measured in docs/DASK.md: 0.19
#: CPU-seconds per second for client + scheduler, workers and nannies with Dask's defaults,
#: 0.03 with these): the workers' sampling profiler (a thread waking every 10 ms, for the
#: dashboard, which ``local:N`` does not start), the system monitor (psutil every 0.5 s in
#: every process, for the dashboard), the GIL monitor, the event-loop health tick (every
#: 20 ms; it only logs a warning after 3 s) and the memory monitor (every 100 ms in workers
#: and nannies; 0.5 s still pauses or restarts a worker near its memory limit).  Heartbeats
#: are left as they are (the scheduler sets their interval; they detect dead workers).  A
#: scheduler the user runs keeps its own configuration: this is applied to ``local:N`` only.
_LOCAL_QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.worker.memory.monitor-interval": "500ms",
}

#: Where a ``local:N`` scheduler serves its HTTP endpoints (health, metrics; there is no
#: dashboard): a free port of the loopback interface it listens on.  Dask's default, 8787,
#: is often taken (another local cluster) and then moved with a "Port 8787 is already in use"
#: warning, which only ``warnings.catch_warnings`` could hide, and that would change the
#: filters of every thread of the process (not thread-local on Python < 3.14).
_SCHEDULER_HTTP = {"dashboard_address": "127.0.0.1:0"}


@contextlib.contextmanager
def _without_env(name: str) -> Iterator[None]:
    """Unset environment variable ``name`` in this process for the block (a nanny copies
    this process's environment into its worker, and an earlier Dask cluster in this process
    may have set Dask's default)."""
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


class DaskNotInstalledError(SparseCrossError, ImportError):
    """Dask (``distributed``) is needed but not installed."""


def _require_dask() -> Any:
    """Import and return ``distributed``, or raise :class:`DaskNotInstalledError`."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskNotInstalledError(
            f"sparsecross's Dask support needs dask.distributed ({exc}); {_INSTALL_HINT}"
        ) from None
    return distributed


# ============================================================================ connect
def connect(address: str, *, timeout: float = 10.0) -> tuple[Any, Any]:
    """Connect to a Dask cluster.

    Parameters
    ----------
    address
        ``"local:N"``: start a local cluster of N worker processes with one thread each (the
        only case where sparsecross creates a cluster).  ``"tcp://HOST:PORT"`` (or any other
        address ``distributed.Client`` accepts): connect to a running scheduler.
    timeout
        Seconds to wait for the scheduler.

    Returns
    -------
    (client, cluster)
        ``cluster`` is the :class:`distributed.LocalCluster` for ``local:N``, else ``None``.
        Close both when done (the client first).

    Raises
    ------
    SparseCrossError
        A malformed address, an unreachable scheduler, or a ``local:N`` cluster whose workers
        failed to start LOCAL_START_ATTEMPTS times (each failed start is retried with a fresh
        cluster); one line.
    DaskNotInstalledError
        Dask is not installed.
    """
    if not isinstance(address, str) or not address.strip():
        raise SparseCrossError(f"--dask needs local:N or tcp://HOST:PORT, got {shown(address, NAME_LIMIT)}")
    address = address.strip()
    distributed = _require_dask()
    m = re.fullmatch(r"local(?::(\d+))?", address)
    if m:
        n = int(m.group(1)) if m.group(1) else os.cpu_count() or 1
        if n < 1:
            raise SparseCrossError(f"local:N needs N >= 1 workers, got {shown(address, NAME_LIMIT)}")
        return _start_local(distributed, n)
    if address.startswith("local"):
        raise SparseCrossError(f"--dask {shown(address, NAME_LIMIT)}: write local:N with N the number of workers, e.g. local:2")
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = _short(exc, 100)  # Dask's own words may quote the address whole: kept short too
        raise SparseCrossError(
            f"cannot reach the Dask scheduler at {shown(address, 100)} within {timeout:g} s ({reason}); "
            "check the address, or start one with `dask scheduler`, or use local:N"
        ) from None
    return client, None


#: ``local:N``: clusters started before giving up.  A worker process that dies while the
#: cluster starts (killed on a loaded or memory-short machine, a start timeout) fails the
#: whole start; a fresh cluster usually works.
LOCAL_START_ATTEMPTS = 3
#: What Dask raises when a cluster, a nanny or its worker process fails to start.
_START_FAILURES = (RuntimeError, TimeoutError, OSError)


def _start_failure(exc: BaseException) -> str:
    """Dask's start errors wrap the reason ("Nanny failed to start." <- "Nanny failed to start
    worker process"): the distinct messages of the chain, outermost first, on one line."""
    parts: list[str] = []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(parts) < 3:
        seen.add(id(e))
        msg = _short(e).rstrip(".")
        if msg not in parts:
            parts.append(msg)
        e = e.__cause__
    return ": ".join(parts)


def _start_local(distributed: Any, n: int) -> tuple[Any, Any]:
    """Start a ``local:N`` cluster and its client; a failed start is retried with a fresh
    cluster, up to LOCAL_START_ATTEMPTS clusters, then a one-line SparseCrossError."""
    import dask

    reason = ""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        cluster = None
        try:
            with dask.config.set({**_WORKER_ENVIRON, **_LOCAL_QUIET}), _without_env("MALLOC_TRIM_THRESHOLD_"):
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, silence_logs=logging.ERROR,
                                                   scheduler_kwargs=dict(_SCHEDULER_HTTP))
            # results (the shards' dumps above all) come straight from the workers, not through
            # the scheduler, which shares this process: 0.1-0.2 CPU-s less per 10M-row run
            return distributed.Client(cluster, direct_to_workers=True), cluster
        except _START_FAILURES as exc:
            # (LocalCluster closes itself when a worker fails to start; a client that failed
            # leaves the cluster to close)
            if cluster is not None:
                with contextlib.suppress(Exception):
                    cluster.close()
            reason = _start_failure(exc)
            if attempt < LOCAL_START_ATTEMPTS:
                log.warning("local:%d: the Dask cluster failed to start (%s); starting a fresh one (attempt %d of %d)",
                            n, reason, attempt + 1, LOCAL_START_ATTEMPTS)
        except BaseException:
            if cluster is not None:
                cluster.close()
            raise
    raise SparseCrossError(
        f"--dask local:{n}: the Dask workers failed to start {LOCAL_START_ATTEMPTS} times ({reason}); "
        "a worker process died or timed out while starting: check free memory and the process "
        "limits (ulimit -u), try fewer workers (e.g. local:1), or start a cluster yourself and "
        "pass tcp://HOST:PORT"
    )


def _worker_versions() -> dict[str, str]:
    from .. import __version__
    from ..hashing import HASH_CONTRACT

    return {"sparsecross": __version__, "hash_contract": HASH_CONTRACT}



def _check_cluster(client: Any, wait: float = 60.0) -> int:
    """Number of workers, after checking they run this sparsecross version."""
    from .. import __version__
    from ..hashing import HASH_CONTRACT

    try:
        if not client.scheduler_info().get("workers"):
            client.wait_for_workers(1, timeout=wait)
    except (TimeoutError, OSError) as exc:
        raise SparseCrossError(f"no Dask worker joined the scheduler within {wait:g} s ({_short(exc)})") from None
    try:
        infos = client.run(_worker_versions, on_error="return")
    except Exception as exc:  # noqa: BLE001 - any failure here means the cluster is unusable
        raise SparseCrossError(f"cannot run sparsecross on the Dask workers: {_short(exc)}") from None
    ours = {"sparsecross": __version__, "hash_contract": HASH_CONTRACT}
    for addr, info in sorted(infos.items()):
        if isinstance(info, BaseException):
            if isinstance(info, ImportError):
                raise SparseCrossError(
                    f"Dask worker {addr} cannot import sparsecross ({_short(info)}); install sparsecross "
                    f"{__version__} on every worker"
                )
            continue  # a worker that is restarting: its replacement is checked by its tasks
        if info != ours:
            raise SparseCrossError(
                f"Dask worker {addr} runs sparsecross {info.get('sparsecross')} (hash contract "
                f"{info.get('hash_contract')}), the client {__version__} ({HASH_CONTRACT}); install "
                "the same version everywhere"
            )
    return len(infos)


def _default_window(n_workers: int) -> int:
    return max(4, 2 * n_workers)


def _get_client(client: Any) -> Any:
    distributed = _require_dask()
    if client is None:
        try:
            return distributed.default_client()
        except ValueError:
            raise SparseCrossError(
                "no Dask client: pass client=, or create one with sparsecross.distributed.connect"
            ) from None
    return client
