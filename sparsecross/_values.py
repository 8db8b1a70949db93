"""What counts as an integer and as a number in a value from outside (an argument, a
checkpoint's meta): the one home of these checks.  A bool is neither (``True`` is an ``int``
to Python, never to a user who typed it); NumPy scalars count like Python ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["is_int", "is_num", "check_count", "PARAM_RULES"]


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


#: The largest alpha, beta, l1 or l2 (as MAX_ROW_WEIGHT bounds a row's weight): a weight is
#: about alpha times its summed gradients over beta + sqrt(n), and at most 1e12 keeps the
#: float32 state, the weights and the float64 margins finite (alpha = 1e300 trained a whole
#: run, then could not save its infinite weights; alpha = 2**64 or l1 = 1e300 trained a
#: useless model).
MAX_FTRL_PARAM = 1e12
_AT_MOST = f"and at most {MAX_FTRL_PARAM:g}"

#: The FTRL hyperparameters' ranges (beyond being a finite number), checked where they come
#: in: ``TrainParams`` (arguments, flags), a spec's ``[train]`` table (``check-spec``) and the
#: grids of ``path`` and ``tune`` (``path.check_grid``).
PARAM_RULES: dict[str, tuple[Any, str]] = {
    "alpha": (lambda v: 0 < v <= MAX_FTRL_PARAM, f"> 0 {_AT_MOST}"),
    "beta": (lambda v: 0 <= v <= MAX_FTRL_PARAM, f">= 0 {_AT_MOST}"),
    "l1": (lambda v: 0 <= v <= MAX_FTRL_PARAM, f">= 0 {_AT_MOST}"),
    "l2": (lambda v: 0 <= v <= MAX_FTRL_PARAM, f">= 0 {_AT_MOST}"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "holdout": (lambda v: 0 < v < 1, "in (0, 1)"),
}


#: The most rows a batch may have (Arrow and the kernels index a batch's rows with 32 bits).
MAX_BATCH_ROWS = 2**31 - 1

#: The most rows a source may have, and the largest count an argument may give where nothing
#: smaller bounds it (lanes, names): Parquet counts rows, NumPy and the kernels count, in int64.
MAX_ROWS = 2**63 - 1
#: The largest weight of a row (the weight column times ``[label] positive_weight``): its
#: squared gradient, up to 1e24, leaves a float32 state's 3.4e38 room for 1e14 such rows
#: (``positive_weight = 2**64`` made the bias NaN in training).
MAX_ROW_WEIGHT = 1e12


def check_count(name: str, value: Any, minimum: int, maximum: int = MAX_ROWS, meaning: str = "") -> int:
    """``value`` as an int in [minimum, maximum], else a ParameterError naming ``name`` (an
    argument, or a command-line flag), the bounds and ``meaning`` (what the count is, when
    given); the value is shown short.  The one wording of every bounded integer."""
    from .errors import ParameterError, shown

    if not is_int(value) or not minimum <= value <= maximum:
        what = f" ({meaning})" if meaning else ""
        raise ParameterError(f"{name} must be between {minimum:,} and {maximum:,}{what}, got {shown(value)}")
    return int(value)


def check_batch_rows(batch_rows: Any) -> int:
    """``batch_rows`` as an int in [1, MAX_BATCH_ROWS], else a ParameterError (the one check
    train, predict, evaluate, the readers and Dask training share)."""
    return check_count("batch_rows", batch_rows, 1, MAX_BATCH_ROWS)
