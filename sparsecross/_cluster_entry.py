"""The single-node code's one door to the Dask layer.

:func:`sparsecross.train` given a ``client`` calls :func:`train_on` (imported inside the
function, so the single-node path never imports :mod:`sparsecross.dask`, nor Dask).  The
Dask layer is imported here, on use, and nowhere else in the single-node modules.
"""

from __future__ import annotations

from typing import Any


def train_on(client: Any, source: Any, spec: Any, **options: Any) -> Any:
    """Train on the cluster of ``client``: :func:`sparsecross.dask.train_distributed` with
    the same ``options`` (the parameters of :func:`sparsecross.train`, less ``client``)."""
    from .dask.training import train_distributed

    return train_distributed(source, spec, client=client, **options)
