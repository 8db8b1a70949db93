"""The options of :func:`sparsecross.train` checked and normalised before any work: in-memory
inputs, the reading order (arguments > the spec's ``[train]`` table > defaults), early
stopping, and what a Dask client cannot do yet."""

from __future__ import annotations

from typing import Any

import numpy as np

from .admission import AdmitPolicy
from .errors import ParameterError, SparseCrossError
from .order import DEFAULT_SHUFFLE_BUFFER_ROWS, Shuffle
from .read import Source
from .spec import FeatureSpec

__all__ = ["in_memory"]


def in_memory(source: Any, valid: Any = None, *, shuffle: bool = False, checkpoint: Any = None,
              client: Any = None) -> tuple[Source, Source | None]:
    """``(source, valid)`` with in-memory data (tables, DataFrames...) as
    :class:`~sparsecross.inputs.MemorySource` s and paths as they are.

    In-memory training data cannot be checkpointed (there is no file to fingerprint, so a
    resumed run could not tell it is the same data), sent to a Dask cluster, nor shuffled
    (the shuffle permutes Parquet row groups): each is refused with a
    :class:`ParameterError` before any work.
    """
    from .inputs import memory_source

    mem = memory_source(source)
    vmem = memory_source(valid) if valid is not None else None
    if mem is not None:
        if checkpoint is not None:
            raise ParameterError("checkpoint needs Parquet files (in-memory data has no file to fingerprint); "
                                 "write the data to Parquet or train without checkpoint")
        if isinstance(shuffle, (bool, np.bool_)) and shuffle:
            raise ParameterError("shuffle needs Parquet files (it permutes row groups); shuffle in-memory data "
                                 "before training (with shuffle=False if the spec's [train] table asks for "
                                 "shuffle), or write it to Parquet")
    if client is not None and (mem is not None or vmem is not None):
        raise ParameterError("a Dask client needs Parquet files the workers can read; write the in-memory data "
                             "to Parquet or train without a client")
    return (source if mem is None else mem), (valid if vmem is None else vmem)


def _order_options(spec: FeatureSpec, shuffle: bool | None, seed: int | None,
                   buffer_rows: int | None) -> tuple[Any, Any, Any]:
    """``(shuffle, shuffle_seed, shuffle_buffer_rows)``: each argument given, else the spec's
    ``[train]`` value, else the default (as the CLI's ``--shuffle`` flags do)."""
    given = {"shuffle": shuffle, "shuffle_seed": seed, "shuffle_buffer_rows": buffer_rows}
    defaults = {"shuffle": False, "shuffle_seed": 0, "shuffle_buffer_rows": None}
    table = getattr(spec, "train", None) or {}
    return tuple(given[k] if given[k] is not None else table.get(k, defaults[k])  # type: ignore[return-value]
                 for k in given)


def _shuffle_of(shuffle: bool, seed: int, buffer_rows: int | None) -> Shuffle | None:
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ParameterError(f"shuffle must be True or False, got {shuffle!r}")
    if not shuffle:
        return None
    return Shuffle(seed, DEFAULT_SHUFFLE_BUFFER_ROWS if buffer_rows is None else buffer_rows)


def _order_params(order: Shuffle | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the order (nothing when unshuffled)."""
    return {} if order is None else order.to_dict()


def _budget_params(max_state_mb: float | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the state budget (nothing without)."""
    return {} if max_state_mb is None else {"max_state_mb": max_state_mb}


def _check_early_stop(early_stop: int | None, valid: Source | None, holdout: float | None) -> None:
    if early_stop is not None and (isinstance(early_stop, bool) or not isinstance(early_stop, int)
                                   or early_stop < 1):
        raise ParameterError(f"early_stop must be an integer >= 1 (epochs without improvement), got {early_stop!r}")
    if early_stop is not None and valid is None and holdout is None:
        raise ParameterError("early_stop needs validation data: give valid data (--valid) or a holdout "
                             "fraction (--holdout)")



def _check_client_options(client: Any, spec: FeatureSpec, order: Shuffle | None, admit: AdmitPolicy,
                          early_stop: int | None, max_state_mb: float | None) -> None:
    """Refuse what the state budget or a Dask client cannot do (yet)."""
    if max_state_mb is not None and early_stop is not None:
        raise ParameterError("max_state_mb is not available with early_stop (which keeps a "
                             "second copy of the state); train without --early-stop, or without "
                             "--max-state-mb (tune stops early under a budget: each point keeps its best model)")
    if client is not None:
        if order is not None:
            raise ParameterError("shuffle is not available with a Dask client yet; train without --dask or "
                                 "without --shuffle")
        if early_stop is not None or spec.label.missing == "skip":
            raise ParameterError("early_stop and [label] missing = \"skip\" are not supported with a Dask "
                                 "client yet; train without --dask")


def _check_single_node(distributed_options: dict[str, Any], valid: Source | None, holdout: float | None) -> None:
    if distributed_options:
        raise TypeError(f"unexpected options without a Dask client: {sorted(distributed_options)}")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")


def _check_sizes(batch_rows: int, checkpoint_every: int) -> None:
    if batch_rows < 1:
        raise ParameterError(f"batch_rows must be >= 1, got {batch_rows!r}")
    if checkpoint_every < 1:
        raise ParameterError(f"checkpoint_every must be >= 1 row, got {checkpoint_every!r}")
