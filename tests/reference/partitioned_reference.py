"""Partitioned training (``mode="partitioned"`` on Dask), written straight from its definition.

It does NOT import ``sparsecross``: it is the plain-Python oracle that
``sparsecross.dask.partitioned`` is checked against, on the dict-based FTRL of
:mod:`.ftrl_reference` and the ``fmix64`` / holdout of :mod:`.hashing_reference`.

The definition:

* The partition feature P owns column ranges: every exact output block that includes P,
  ``[lo, hi)`` with P's stride in it.  A key ``k`` in a range holds P's local id
  ``((k - lo) // stride) % card_P``, whose lane is ``fmix64(id) % K``.  Keys in no owned range
  are *shared*.
* A row's lane is the lane of its entries in owned ranges (they must agree); a row with none
  goes to ``fmix64(row ^ 0x9E3779B97F4A7C15) % K`` (``row``: its global row number).  Holdout
  rows are not trained.
* A round is K consecutive chunks.  Each lane keeps its own FTRL state for the whole run.  At
  the start of a round every lane's shared keys and bias are set to the merged values G (every
  lane holds every key of G); lane j then trains its rows of the round in order (chunk order,
  then row order).
* End of a round, per shared key (G's keys and the shared keys the lanes hold): ``old`` = G's
  (z, n) or (0, 0); a lane *moved* the key if its (z, n) differs from ``old``; with m lanes
  that moved it: m = 0 keeps ``old``, m = 1 takes that lane's values, m > 1 gives
  ``old + (sum over lanes, in lane order, of (new - old)) / m``.  A key nobody moved keeps
  ``old`` (a key not in G that a lane holds: (0, 0), only zero values touched it).  The
  bias: over the lanes that trained at least one row in the round, one gives its bias,
  several give ``old`` plus the mean of their deltas, none leave it.
* The final state is the union of every lane's owned keys and G; the progressive loss of an
  epoch is the sum of all lanes' losses over it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .ftrl_reference import ReferenceFTRL, clipped_logloss, sigmoid
from .hashing_reference import MASK64, fmix64, holdout

__all__ = ["ROW_SALT", "OwnedRange", "Partition", "Result", "train_partitioned", "holdout_logloss", "Row"]

ROW_SALT = 0x9E3779B97F4A7C15
"""The salt of the lane of a row without a partition value: ``fmix64(row ^ ROW_SALT) % K``."""

#: One row: (global row number, [(column, value)], label).
Row = tuple[int, list[tuple[int, float]], float]


@dataclass(frozen=True)
class OwnedRange:
    """Columns ``[lo, hi)`` of an exact block that includes the partition feature, whose
    local id varies with ``stride`` in it."""

    lo: int
    hi: int
    stride: int


@dataclass(frozen=True)
class Partition:
    """The owned ranges of the partition feature (of cardinality ``card``), over ``lanes``."""

    ranges: tuple[OwnedRange, ...]
    card: int
    lanes: int

    def key_lane(self, k: int) -> int | None:
        """The lane owning column ``k``, None for a shared key."""
        for q in self.ranges:
            if q.lo <= k < q.hi:
                pid = ((k - q.lo) // q.stride) % self.card
                return fmix64(pid) % self.lanes
        return None

    def row_lane(self, row: int, items: Iterable[tuple[int, float]],
                 key_lane: Callable[[int], int | None] | None = None) -> int:
        """The lane of a row: that of its owned entries (which must agree), else the row's hash
        (``key_lane``: :meth:`key_lane`, or a function that remembers it)."""
        key_lane = key_lane or self.key_lane
        lanes = {key_lane(k) for k, _ in items} - {None}
        if len(lanes) > 1:
            raise ValueError(f"row {row} has entries owned by lanes {sorted(lanes)}")
        if lanes:
            return lanes.pop()  # type: ignore[return-value]
        return fmix64((row ^ ROW_SALT) & MASK64) % self.lanes


@dataclass
class Result:
    """The final state (``z``, ``n`` per key, ``bias`` as (z, n)) and, per epoch, the summed
    progressive loss and the trained rows."""

    z: dict[int, float]
    n: dict[int, float]
    bias: tuple[float, float]
    losses: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)


def _zn(lane: ReferenceFTRL, k: int) -> tuple[float, float]:
    return lane.z.get(k, 0.0), lane.n.get(k, 0.0)


def _merge(G: dict[int, tuple[float, float]], lanes: list[ReferenceFTRL], key_lane: Callable[[int], int | None]
           ) -> dict[int, tuple[float, float]]:
    """The shared keys after a round (the definition's merge rule)."""
    keys = set(G)
    for lane in lanes:
        keys.update(k for k in lane.z if key_lane(k) is None)
    out: dict[int, tuple[float, float]] = {}
    for k in sorted(keys):
        old = G.get(k, (0.0, 0.0))
        moved = [_zn(lane, k) for lane in lanes if _zn(lane, k) != old]
        if not moved:  # (in G, or a lane holds it at (0, 0): only zero values touched it)
            out[k] = old
        elif len(moved) == 1:
            out[k] = moved[0]
        else:
            dz = 0.0
            dn = 0.0
            for z, n in moved:  # lane order
                dz += z - old[0]
                dn += n - old[1]
            out[k] = (old[0] + dz / len(moved), old[1] + dn / len(moved))
    return out


def _merge_bias(bias: tuple[float, float], lanes: list[ReferenceFTRL], trained: list[int]
                ) -> tuple[float, float]:
    done = [lane for lane, rows in zip(lanes, trained) if rows > 0]
    if not done:
        return bias
    if len(done) == 1:
        return done[0].z_b, done[0].n_b
    dz = 0.0
    dn = 0.0
    for lane in done:
        dz += lane.z_b - bias[0]
        dn += lane.n_b - bias[1]
    return bias[0] + dz / len(done), bias[1] + dn / len(done)


def train_partitioned(chunks: Sequence[Sequence[Row]], part: Partition, *, alpha: float, beta: float,
                      l1: float, l2: float, epochs: int = 1, holdout_fraction: float | None = None,
                      holdout_seed: int = 0, init: dict[int, tuple[float, float]] | None = None,
                      init_bias: tuple[float, float] = (0.0, 0.0)) -> Result:
    """Partitioned training of ``chunks`` (the chunks of one epoch, in order; each a list of
    rows) with ``part.lanes`` lanes, from the state ``init`` / ``init_bias`` (a warm start:
    its owned keys go to their lanes, the others are the first G)."""
    K = part.lanes
    owner: dict[int, int | None] = {}

    def key_lane(k: int) -> int | None:  # (part.key_lane, remembered)
        if k not in owner:
            owner[k] = part.key_lane(k)
        return owner[k]

    lanes = [ReferenceFTRL(alpha, beta, l1, l2) for _ in range(K)]
    G: dict[int, tuple[float, float]] = {}
    bias = (float(init_bias[0]), float(init_bias[1]))
    for k, (z, n) in sorted((init or {}).items()):
        j = key_lane(k)
        if j is None:
            G[k] = (z, n)
        else:
            lanes[j].z[k], lanes[j].n[k] = z, n
    # each row's lane, once (None: a holdout row, never trained)
    routed: list[list[tuple[int, list[tuple[int, float]], float]]] = []
    for chunk in chunks:
        mine: list[tuple[int, list[tuple[int, float]], float]] = []
        for row, items, y in chunk:
            if holdout_fraction is not None and holdout(row, holdout_fraction, holdout_seed):
                continue
            mine.append((part.row_lane(row, items, key_lane), items, y))
        routed.append(mine)
    result = Result({}, {}, bias)
    for _epoch in range(epochs):
        loss = 0.0
        rows = 0
        for r0 in range(0, len(routed), K):
            for lane in lanes:
                for k, (z, n) in G.items():
                    lane.z[k], lane.n[k] = z, n
                lane.z_b, lane.n_b = bias
            trained = [0] * K
            for j, lane in enumerate(lanes):
                for chunk in routed[r0:r0 + K]:
                    for rj, items, y in chunk:
                        if rj == j:
                            loss += lane.update(items, y)
                            trained[j] += 1
            G = _merge(G, lanes, key_lane)
            bias = _merge_bias(bias, lanes, trained)
            rows += sum(trained)
        result.losses.append(loss)
        result.rows.append(rows)
    for j, lane in enumerate(lanes):
        for k in lane.z:
            if key_lane(k) is not None:
                if key_lane(k) != j:
                    raise AssertionError(f"lane {j} holds key {k} of lane {key_lane(k)}")
                result.z[k], result.n[k] = lane.z[k], lane.n[k]
    for k, (z, n) in G.items():
        result.z[k], result.n[k] = z, n
    result.bias = bias
    return result


def holdout_logloss(result: Result, rows: Iterable[Row], *, alpha: float, beta: float, l1: float, l2: float,
                    fraction: float, seed: int = 0) -> tuple[float, int]:
    """(mean clipped logloss, number of rows) of the final state on the holdout rows."""
    model = ReferenceFTRL(alpha, beta, l1, l2)
    model.z, model.n = dict(result.z), dict(result.n)
    model.z_b, model.n_b = result.bias
    total = 0.0
    count = 0
    for row, items, y in rows:
        if holdout(row, fraction, seed):
            p = sigmoid(model.predict_margin(items))
            total += clipped_logloss(p, y)
            count += 1
    return (total / count if count else math.nan), count
