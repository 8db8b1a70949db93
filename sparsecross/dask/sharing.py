"""The shared keys of partitioned training, and their merge at the end of every round.

Every lane holds a copy of every shared key (the keys no lane owns, :mod:`.partition`) and
of the bias.  At the end of a round each lane reports the (z, n) of its shared keys; the
merge (:func:`merge_reports`) is the rule of data-parallel rounds (``merge_lanes``), applied
to the lanes that *moved* a key (its (z, n) differs from the round's start):

* moved by no lane: unchanged (a new key a lane reports without moving it, one only zero
  values touched, joins at (0, 0), as single-node training keeps it);
* moved by one lane: that lane's values, exactly;
* moved by m > 1 lanes: ``old + (sum over lanes, in lane order, of (new - old)) / m`` in
  float64, stored in the state's precision.

The bias is merged the same way over the lanes that trained at least one row.  A lane
reports only the keys it moved (``partition_tasks._moved_shared``): a key no report names was
moved by no lane, so the merge is the one of full reports.  Every lane and the client compute
the same merge from the same reports, so they agree without another exchange.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Shared:
    """The merged shared keys (sorted, the state table's key dtype), their (z, n) (the
    state's precision) and the bias (float64[2])."""

    keys: np.ndarray
    zn: np.ndarray
    bias: np.ndarray

    @staticmethod
    def empty(key_dtype: np.dtype, dtype: np.dtype, bias: np.ndarray) -> Shared:
        return Shared(np.zeros(0, dtype=key_dtype), np.zeros((0, 2), dtype=dtype), np.array(bias, dtype=np.float64))


@dataclass
class Report:
    """A lane's round: its shared keys (sorted) and their (z, n), its bias, its loss sums (lane
    0: the epoch's, continued; the others: the round's; see :func:`sum_reports`), the rows it
    trained, the keys it owns, and (at a snapshot) its owned rows."""

    keys: np.ndarray
    zn: np.ndarray
    bias: np.ndarray
    acc: np.ndarray
    rows: int
    owned: int
    dump: tuple[np.ndarray, np.ndarray] | None = None


def sum_reports(reports: list[Report]) -> np.ndarray:
    """The epoch's loss sums after a round: lane 0's (which continued them) plus the other
    lanes' in lane order (the same sums on the client and in lane 0)."""
    acc = np.array(reports[0].acc, dtype=np.float64)
    for r in reports[1:]:
        acc += r.acc
    return acc


def merge_reports(shared: Shared, reports: list[Report]) -> Shared:
    """The shared keys after a round whose lanes reported ``reports`` (in lane order),
    starting from ``shared`` (see the module docstring)."""
    keys = shared.keys
    for r in reports:
        if len(r.keys) and not np.array_equal(r.keys, keys):
            # (in the state's key dtype: uint64 and int64 together would make floats)
            keys = np.union1d(keys, r.keys.astype(keys.dtype, copy=False))
    dtype = shared.zn.dtype
    old = np.zeros((len(keys), 2), dtype=np.float64)
    old[np.searchsorted(keys, shared.keys)] = shared.zn
    total = np.zeros((len(keys), 2), dtype=np.float64)
    count = np.zeros(len(keys), dtype=np.int64)
    last = np.zeros((len(keys), 2), dtype=dtype)  # the values of the one lane that moved a key
    for r in reports:
        at = np.searchsorted(keys, r.keys.astype(keys.dtype, copy=False))
        new = r.zn.astype(np.float64)
        moved = (new != old[at]).any(axis=1)
        at, new = at[moved], new[moved]
        total[at] += new - old[at]
        count[at] += 1
        last[at] = r.zn[moved]
    zn = old.astype(dtype)
    several = count > 1
    zn[several] = (old[several] + total[several] / count[several, None]).astype(dtype)
    zn[count == 1] = last[count == 1]
    # (a reported key no lane moved is new, held at (0, 0): only zero values touched it, and
    # it stays, as single-node training keeps it)
    return Shared(keys, zn, merge_bias(shared.bias, [r.bias for r in reports if r.rows > 0]))


def merge_bias(bias: np.ndarray, trained: list[np.ndarray]) -> np.ndarray:
    """The bias after a round from ``bias``, given the biases of the lanes that trained rows
    (in lane order): that of the one lane, or the start plus the mean of their deltas, in
    float64 (the rule of data-parallel and partitioned rounds)."""
    if len(trained) == 1:
        return np.array(trained[0], dtype=np.float64)
    if not trained:
        return bias.copy()
    dz = sum(float(b[0]) - float(bias[0]) for b in trained)
    dn = sum(float(b[1]) - float(bias[1]) for b in trained)
    return np.array([bias[0] + dz / len(trained), bias[1] + dn / len(trained)])
