"""The CLI's Dask client (``--dask local:N`` or ``tcp://HOST:PORT``), with quiet Dask logs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["_dask_client", "_quiet_dask_logs"]


def _quiet_dask_logs() -> None:
    """Dask logs every scheduler/worker event at INFO; the CLI shows warnings and errors only."""
    try:
        import distributed  # noqa: F401  (configures its loggers; then we lower them)
    except ImportError:
        return  # connect() raises the error that names the extra

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    """A Dask client for ``local:N`` or ``tcp://HOST:PORT``, closed (with its local cluster) on exit."""
    from .dask import connect

    _quiet_dask_logs()
    client, cluster = connect(address)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
