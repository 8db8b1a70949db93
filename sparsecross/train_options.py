"""The options of :func:`sparsecross.train` checked and normalised before any work: the spec's
``[train]`` table (arguments > ``[train]`` > defaults, one rule for the API and the CLI),
in-memory inputs, the reading order, early stopping, and what a Dask client cannot do yet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._defaults import DEFAULT_BATCH_ROWS
from ._values import check_batch_rows, check_count
from .admission import AdmitPolicy
from .errors import ParameterError, SparseCrossError, shown
from .order import DEFAULT_SHUFFLE_BUFFER_ROWS, Shuffle
from .read import Source
from .spec import FeatureSpec
from .train_params import TrainParams, check_epochs

__all__ = ["in_memory", "resolve_train_options", "TRAIN_DEFAULTS"]

_PARAMS = TrainParams()
#: What every key of the spec's ``[train]`` table (:data:`sparsecross.spec.TRAIN_KEYS`) is when
#: neither an argument (a CLI flag) nor the table gives it; None: off.  A new ``[train]`` key
#: goes here too (tests/test_train_table.py checks both lists name the same keys).
TRAIN_DEFAULTS: dict[str, Any] = {
    "alpha": _PARAMS.alpha, "beta": _PARAMS.beta, "l1": _PARAMS.l1, "l2": _PARAMS.l2, "epochs": _PARAMS.epochs,
    "label_smoothing": _PARAMS.label_smoothing, "holdout": _PARAMS.holdout, "batch_rows": DEFAULT_BATCH_ROWS,
    "shuffle": False, "shuffle_seed": 0, "shuffle_buffer_rows": None, "early_stop": None, "max_state_mb": None,
    "admit_after": None, "admit_probability": None, "admit_filter_mb": None, "state_bits": 32,
}


def resolve_train_options(spec: FeatureSpec, given: Mapping[str, Any], *, valid: Any = None) -> dict[str, Any]:
    """Every key of the spec's ``[train]`` table: its value in ``given`` (a function's arguments,
    the CLI's flags) when not None, else the table's, else :data:`TRAIN_DEFAULTS`'.

    The one rule of ``train``, ``path``, ``tune`` and their CLI commands, so that they cannot
    drift.  Other names in ``given`` are ignored.  Two rules tie keys together: validation data
    (``valid``) with no ``holdout`` given replaces the table's holdout, and an admission mode given
    (``admit_after`` or ``admit_probability``) replaces the table's mode (both keys).
    """
    table = getattr(spec, "train", None) or {}
    out = {k: given[k] if given.get(k) is not None else table.get(k, default) for k, default in TRAIN_DEFAULTS.items()}
    if valid is not None and given.get("holdout") is None:
        out["holdout"] = None
    if given.get("admit_after") is not None or given.get("admit_probability") is not None:
        out["admit_after"], out["admit_probability"] = given.get("admit_after"), given.get("admit_probability")
    return out


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


def _shuffle_of(shuffle: bool, seed: int, buffer_rows: int | None) -> Shuffle | None:
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ParameterError(f"shuffle must be True or False, got {shown(shuffle)}")
    if not shuffle:
        return None
    return Shuffle(seed, DEFAULT_SHUFFLE_BUFFER_ROWS if buffer_rows is None else buffer_rows)


def _order_params(order: Shuffle | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the order (nothing when unshuffled)."""
    return {} if order is None else order.to_dict()


def _budget_params(max_state_mb: float | None) -> dict[str, Any]:
    """What a model's params and a checkpoint record of the state budget (nothing without)."""
    return {} if max_state_mb is None else {"max_state_mb": max_state_mb}


def _check_early_stop(early_stop: int | None, valid: Source | None, holdout: float | None) -> int | None:
    """``early_stop`` as a Python int (a NumPy integer is taken; the params are JSON), or None."""
    if early_stop is None:
        return None
    early_stop = check_epochs(early_stop, "early_stop")  # epochs without improvement
    if valid is None and holdout is None:
        raise ParameterError("early_stop needs validation data: give valid data (--valid) or a holdout "
                             "fraction (--holdout)")
    return early_stop



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


def _state_bits_option(state_bits: Any, state_dtype: str, client: Any) -> int:
    """The resolved ``state_bits`` checked (32 or 16; 16 with a float32 state), and 16 refused
    with a Dask client (its lanes exchange float z and n)."""
    from .state16 import check_state_bits

    bits = check_state_bits(state_bits, state_dtype)
    if bits == 16 and client is not None:
        raise ParameterError("--state-bits 16 is not available with --dask (a Dask client) yet; train without "
                             "--dask or with --state-bits 32")
    return bits


def _check_single_node(distributed_options: dict[str, Any], valid: Source | None, holdout: float | None) -> None:
    if distributed_options:
        raise TypeError(f"unexpected options without a Dask client: {sorted(distributed_options)}")
    if valid is not None and holdout is not None:
        raise SparseCrossError("give either valid data or a holdout fraction, not both")


def _check_sizes(batch_rows: int, checkpoint_every: int) -> None:
    check_batch_rows(batch_rows)
    check_count("checkpoint_every", checkpoint_every, 1)  # rows: bounded as a source's rows are
