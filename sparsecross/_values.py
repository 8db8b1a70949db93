"""What counts as an integer and as a number in a value from outside (an argument, a
checkpoint's meta): the one home of these checks.  A bool is neither (``True`` is an ``int``
to Python, never to a user who typed it); NumPy scalars count like Python ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["is_int", "is_num", "PARAM_RULES"]


def is_int(v: Any) -> bool:
    """True for a Python or NumPy integer, False for a bool and anything else."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_num(v: Any) -> bool:
    """True for a finite Python or NumPy integer or float, False for a bool, NaN, an infinity,
    an integer past float's range (its float would be an infinity) and anything else."""
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, (bool, np.bool_)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int that rounds past the largest float
        return False


#: The FTRL hyperparameters' ranges (beyond being a finite number), checked where they come
#: in: ``TrainParams`` (arguments, flags) and a spec's ``[train]`` table (``check-spec``).
PARAM_RULES: dict[str, tuple[Any, str]] = {
    "alpha": (lambda v: v > 0, "> 0"),
    "beta": (lambda v: v >= 0, ">= 0"),
    "l1": (lambda v: v >= 0, ">= 0"),
    "l2": (lambda v: v >= 0, ">= 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "holdout": (lambda v: 0 < v < 1, "in (0, 1)"),
}


#: The most rows a batch may have (Arrow and the kernels index a batch's rows with 32 bits).
MAX_BATCH_ROWS = 2**31 - 1


def check_batch_rows(batch_rows: Any) -> int:
    """``batch_rows`` as an int in [1, MAX_BATCH_ROWS], else a ParameterError (the one check
    train, predict, evaluate, the readers and Dask training share)."""
    from .errors import ParameterError, shown

    if not is_int(batch_rows) or not 1 <= batch_rows <= MAX_BATCH_ROWS:
        raise ParameterError(f"batch_rows must be between 1 and {MAX_BATCH_ROWS:,}, got {shown(batch_rows)}")
    return int(batch_rows)
