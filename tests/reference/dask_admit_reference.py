"""Data-parallel rounds with admission and a per-shard budget, slow and obvious, on the dict
FTRL oracle (the definition in ``sparsecross/dask/admit.py``).  Does NOT import sparsecross.

Per round, K lanes (one chunk each) train from the same global state.  The state is split into
S = K shards, key ``i`` in shard ``(fmix64(i) >> 32) mod S``; each shard has its own counting
filter (``ReferenceCountingFilter`` of ``shard_filter_bytes``) and a key limit ``max_keys``.

* A lane keeps, per key without state at the start of the round, a count that starts at its
  shard filter's estimate (the smaller of its two counters); each row in which the key occurs
  raises it by one (at most 15), and the key is admitted when it reaches ``after`` (Poisson: when
  the sighting's hash is below ``P * 2**64``, the single-node rule with the row's position in the
  epoch).  A key not admitted is left out of its row; an admitted key trains from z = n = 0.
* The merge, per key: the lanes that touched it and either found it with state or admitted it;
  one lane: its values; m lanes: start + mean of the deltas.  A key no lane admitted gets nothing.
* Each shard counts into its filter every sighting the lanes made of a key without state
  (lanes in order, a lane's keys in order of first appearance in its rows).
* Budget: the keys with state at the round's start are merged first; then each shard inserts
  its new keys in order of first appearance (lane 0's keys in the order its rows show them,
  then lane 1's...) in batches of ``b = max_keys - int(0.8 * max_keys)``; before a batch that
  would pass ``max_keys``, the shard's keys are evicted in rank order (``(0, n, key)`` for
  |z| <= l1, else ``(1, |z|, key)``) down to ``min(int(0.8 * max_keys), max_keys - len(batch))``.
  The bias: the mean of the lanes' deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.reference.admission_reference import ReferenceCountingFilter
from tests.reference.ftrl_reference import ReferenceFTRL
from tests.reference.hashing_reference import fmix64, xxh64

_MASK = (1 << 64) - 1

Row = tuple[list[tuple[int, float]], float]


@dataclass
class Result:
    z: dict[int, float]
    n: dict[int, float]
    bias: tuple[float, float]
    loss: float
    admitted: int = 0
    rejected: int = 0
    evicted: list[int] = field(default_factory=list)


def shard(key: int, n_shards: int) -> int:
    return (fmix64(key) >> 32) % n_shards


def reference_rounds(chunks: list[list[Row]], starts: list[int], lanes: int, alpha: float, beta: float,
                     l1: float, l2: float, *, after: int = 1, probability: float = 1.0, seed: int = 0,
                     shard_filter_bytes: int = 0, max_keys: int | None = None, epoch: int = 0) -> Result:
    """``chunks``: rows per chunk in reading order; ``starts``: each chunk's first row."""
    filters = [ReferenceCountingFilter(shard_filter_bytes, seed) for _ in range(lanes)] if after > 1 else []
    sighting_salt = xxh64(b"admit-sighting", (seed + epoch) & _MASK)
    threshold = min(int(probability * 2.0 ** 64), _MASK)
    res = Result({}, {}, (0.0, 0.0), 0.0)
    admitting = after > 1 or probability < 1
    for r0 in range(0, len(chunks), lanes):
        done = []
        for c in range(r0, min(r0 + lanes, len(chunks))):
            lane = ReferenceFTRL(alpha, beta, l1, l2)
            lane.z, lane.n, lane.z_b, lane.n_b = dict(res.z), dict(res.n), *res.bias
            count: dict[int, int] = {}  # keys without state at the round's start: running count
            seen: dict[int, int] = {}  # ... their sightings while without state (first-appearance order)
            admitted: set[int] = set()
            touched: dict[int, None] = {}  # in order of first appearance
            for pos, (items, y) in enumerate(chunks[c]):
                kept = []
                for i, x in ReferenceFTRL._active(items):
                    touched.setdefault(i)
                    if admitting and i not in res.z and i not in admitted:
                        seen[i] = seen.get(i, 0) + 1
                        if after > 1:
                            if i not in count:
                                f = filters[shard(i, lanes)]
                                count[i] = min(f.counters[p] for p in f.positions(i))
                            count[i] = min(count[i] + 1, 15)
                            ok = count[i] >= after
                        else:
                            ok = fmix64(fmix64(sighting_salt ^ (starts[c] + pos)) ^ i) < threshold
                        if not ok:
                            res.rejected += 1
                            continue
                        admitted.add(i)
                        lane.z[i], lane.n[i] = 0.0, 0.0
                    kept.append((i, x))
                res.loss += lane.update(kept, y)
            done.append((lane, touched, admitted, seen))
        _merge(res, done, lanes, l1, max_keys, admitting)
        for _lane, _t, _a, seen in done:
            for i, t in seen.items():
                for _ in range(min(t, 15) if filters else 0):
                    filters[shard(i, lanes)].sight(i)
    return res


def _merge(res: Result, done: list, n_shards: int, l1: float, max_keys: int | None, admitting: bool) -> None:
    start = set(res.z)
    contrib: dict[int, list[ReferenceFTRL]] = {}  # in order of first appearance, lanes in order
    for lane, touched, admitted, _seen in done:
        for i in touched:
            if i in start or i in admitted or not admitting:
                contrib.setdefault(i, []).append(lane)

    def merged(i: int) -> tuple[float, float]:
        mine = contrib[i]
        if len(mine) == 1:
            return mine[0].z[i], mine[0].n[i]
        z0, n0 = res.z.get(i, 0.0), res.n.get(i, 0.0)
        return (z0 + sum(lane.z[i] - z0 for lane in mine) / len(mine),
                n0 + sum(lane.n[i] - n0 for lane in mine) / len(mine))

    values = {i: merged(i) for i in contrib}
    for i in contrib:
        if i in start:
            res.z[i], res.n[i] = values[i]
    for s in range(n_shards):
        new = [i for i in contrib if i not in start and shard(i, n_shards) == s]
        step = len(new) if max_keys is None else max_keys - int(0.8 * max_keys)
        for b0 in range(0, len(new), max(step, 1)):
            batch = new[b0:b0 + step]
            held = [i for i in res.z if shard(i, n_shards) == s]
            if max_keys is not None and len(held) + len(batch) > max_keys:
                keep = min(int(0.8 * max_keys), max_keys - len(batch))

                def rank(i: int) -> tuple[int, float, int]:
                    return (0, res.n[i], i) if abs(res.z[i]) <= l1 else (1, abs(res.z[i]), i)

                gone = sorted(held, key=rank)[:len(held) - keep]
                for i in gone:
                    del res.z[i], res.n[i]
                res.evicted.extend(gone)
            for i in batch:
                res.z[i], res.n[i] = values[i]
                res.admitted += admitting
    zb, nb = res.bias
    res.bias = (zb + sum(lane.z_b - zb for lane, *_ in done) / len(done),
                nb + sum(lane.n_b - nb for lane, *_ in done) / len(done))
