"""The geo pyramid of :func:`sparsecross.suggest.suggest_spec`: candidate pyramids from the point
density, the finest level (and bands, spacing) chosen by validation on the bounded sample.

Why validation and not a count rule: a fine cell that holds few rows costs little (L1 drops
the cells it cannot learn) and the cells that repeat (an address, a block, a building) are
learned, so the finest useful level depends on how the label varies in space, which no count
of rows per cell tells.  :func:`choose_pyramid` trains the whole suggested spec (the other
features and one candidate pyramid, no cross) on the bounded sample with a few FTRL settings for
a few epochs, scored by seeded cross-validation (up to :data:`MAX_FOLDS` folds on a small sample,
one 80 / 20 split on a large one; each candidate featurized once), and keeps the finest candidate
whose validation logloss is within :data:`GEO_TOLERANCE` of the lowest; then that pyramid
without bands, kept if it lowers the logloss by as much (:func:`choose_pyramid`).
Cost: candidates x folds x settings x epochs passes over the sample (seconds), never the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["GEO_LADDER", "MIN_CELL_ROWS", "CROSS_CELL_ROWS", "Pyramid", "pyramid_candidates", "choose_pyramid",
           "GEO_TOLERANCE", "VALID_SETTINGS", "VALID_EPOCHS"]

#: Candidate geo resolutions (arc-minutes), coarsest first: 10 degrees down to 0.02' (~37 m).
GEO_LADDER = (600.0, 300.0, 120.0, 60.0, 30.0, 15.0, 6.0, 3.0, 1.0, 0.5, 0.25, 0.1, 0.05, 0.02)
#: A finer level is a candidate only while a quarter of the rows sit in cells holding at least
#: this many training rows (a cell of one row teaches nothing; validation decides above that).
MIN_CELL_ROWS = 3
#: Rows per cell (median) of the geo level crossed with categoricals (shared by their values).
#: 1,000, not 300: with every ladder level in the pyramid, 300 picked levels 2-3x finer than
#: before (NYC 1' instead of 3'), and crossing there raised NYC's validation logloss by 0.6 %.
CROSS_CELL_ROWS = 1000
#: Relative validation-logloss difference below which two pyramids tie (the finer is kept; bands
#: are dropped only when that lowers the logloss by more).
GEO_TOLERANCE = 0.001
#: (alpha, l1) of the models that compare candidates (each scored at its best), and epochs.
VALID_SETTINGS = ((0.1, 0.0), (0.3, 1.0))
VALID_EPOCHS = 5
#: Rows of the sample the validation uses at most (a seeded subset beyond), and the folds: a
#: small sample is cross-validated in up to MAX_FOLDS folds (folds x rows <= FOLD_ROWS), a large
#: one in one 80 / 20 split: bounded time, less noise where the sample is small.
VALID_ROWS = 100_000
FOLD_ROWS = 60_000
MAX_FOLDS = 3


@dataclass(frozen=True)
class Pyramid:
    """A candidate: its levels (arc-minutes, coarsest first), bands, and what it scored."""

    levels: tuple[float, ...]
    bands: bool = True
    logloss: float = math.nan


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _thin(levels: list[float]) -> tuple[float, ...]:
    """At most the spec's :data:`~sparsecross.kinds.geo.MAX_LEVELS` of ``levels``: the coarsest,
    the finest, and levels evenly spread (by position on the ladder) in between."""
    from .kinds.geo import MAX_LEVELS

    if len(levels) <= MAX_LEVELS:
        return tuple(levels)
    keep = sorted({int(round(i)) for i in np.linspace(0, len(levels) - 1, MAX_LEVELS)})
    return tuple(levels[i] for i in keep)


def _cells(la: np.ndarray, lo: np.ndarray, r: float) -> np.ndarray:
    i = np.floor((la + 90) * 60 / r).astype(np.int64)
    j = np.floor((lo + 180) * 60 / r).astype(np.int64)
    return i * 100_000_000 + j


def pyramid_candidates(lat: np.ndarray, lon: np.ndarray, scale: float
                       ) -> tuple[list[Pyramid], dict[float, tuple[int, float, float]], float, list[str]]:
    """(candidate pyramids, coarsest first; per level (cells occupied in the sample, median and
    75th percentile of the training rows in a row's cell); the sample's span in arc-minutes;
    comment lines).

    The coarsest level is the largest of :data:`GEO_LADDER` with at least 4 cells across the
    1-99 % extent; each finer ladder level is the finest of a candidate while a quarter of the
    rows sit in cells of at least :data:`MIN_CELL_ROWS` training rows, down to the data's
    resolution (the first level whose cells separate 97 % of the sample's distinct points)."""
    with np.errstate(invalid="ignore"):
        ok = ~np.isnan(lat) & ~np.isnan(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    la, lo = lat[ok], lon[ok]
    span = 60 * max(float(np.subtract(*np.quantile(la, [0.99, 0.01]))),
                    float(np.subtract(*np.quantile(lo, [0.99, 0.01]))))
    points = len(np.unique(np.stack([la, lo]), axis=1)[0])
    coarse = [r for r in GEO_LADDER if r <= span / 4]
    coarsest = coarse[0] if coarse else GEO_LADDER[-1]
    stats: dict[float, tuple[int, float, float]] = {}
    finest = [coarsest]
    for r in GEO_LADDER:
        _, inv, cnt = np.unique(_cells(la, lo, r), return_inverse=True, return_counts=True)
        per_point = cnt[inv] * scale  # training rows in the cell of each sampled point
        stats[r] = (len(cnt), float(np.median(per_point)), float(np.quantile(per_point, 0.75)))
        if r < coarsest:
            if stats[r][2] < MIN_CELL_ROWS:
                break
            finest.append(r)
            if len(cnt) >= 0.97 * points:
                break  # finer cells would split no more points
    cands = [Pyramid(_thin([r for r in GEO_LADDER if f <= r <= coarsest])) for f in finest]
    why = (f"the sample spans about {span:,.0f} arc-minutes, so the coarsest level is the largest of "
           f"{[_num(r) for r in GEO_LADDER]} with at least 4 cells across it; each finer ladder level, down to "
           f"the finest where a quarter of the rows sit in cells of >= {MIN_CELL_ROWS} training rows (or the data's "
           "resolution), is the finest level of a candidate pyramid with every ladder level in between (on all four "
           "benchmark data sets such pyramids validated better than ones with levels about 4x apart)")
    return cands, stats, span, [why]


def _valid_spec(toml_of: Any, geo: dict[str, Any], p: Pyramid, resolved: dict[str, Any]) -> Any:
    """The candidate's spec, its data-resolved features (quantile buckets) taken from ``resolved``
    (filled by the first candidate: the other features are the same in every candidate)."""
    from .featurize import resolve_spec
    from .inputs import memory_source
    from .spec import parse_spec

    spec = parse_spec(toml_of({**geo, "resolution_arcmin": [float(v) for v in p.levels], "bands": p.bands}))
    if "table" in resolved:
        spec = resolve_spec(memory_source(resolved.pop("table")), spec)
        resolved.update((f.name, f) for f in spec.features)
    return spec.with_features({f.name: resolved[f.name] for f in spec.features if f.name in resolved
                               and f.kind != "geo" and f.pyramid is None})


def _folds(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) of each fold: ``k`` folds of a seeded permutation of (a
    seeded subset of at most :data:`VALID_ROWS` of) the ``n`` sampled rows, train rows in that
    shuffled order, validation rows in data order; one fold holds out a fifth of the rows."""
    order = np.random.default_rng([seed, 12]).permutation(n)[:VALID_ROWS]
    m = len(order)
    k = int(min(MAX_FOLDS, max(1, FOLD_ROWS // max(m, 1))))
    parts = 5 if k == 1 else k
    cuts = [round(m * i / parts) for i in range(k + 1)]
    return [(np.concatenate([order[:cuts[i]], order[cuts[i + 1]:]]), np.sort(order[cuts[i]:cuts[i + 1]]))
            for i in range(k)]


def _score(spec: Any, table: Any, folds: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Mean over ``folds`` (weighted by validation rows) of the best validation logloss over
    :data:`VALID_SETTINGS`, each trained up to :data:`VALID_EPOCHS` epochs and stopped when an
    epoch does not improve it; the sample is featurized once."""
    from .featurize import Batch, featurize

    X, y, w = featurize(table, spec)
    total = 0.0
    for train, valid in folds:
        def batch(rows: np.ndarray) -> Batch:
            Xr = X[rows]
            Xr.has_sorted_indices = True
            return Batch(Xr, y[rows], None if w is None else w[rows], 0)

        total += _fit(spec, batch(train), batch(valid)) * len(valid)
    return total / sum(len(v) for _, v in folds)


def _fit(spec: Any, train: Any, valid: Any) -> float:
    from .admission import policy_of
    from .multitrain import Lane, train_epoch, validate_lanes
    from .train import TrainParams

    admit = policy_of()
    lanes = [Lane.new(TrainParams(a, 1.0, l1, 0.0, VALID_EPOCHS, 0.0, None, "float32", admit), spec.n_columns,
                      len(train.y), seed=spec.hashing.seed) for a, l1 in VALID_SETTINGS]
    for epoch in range(VALID_EPOCHS):
        live = [lane for lane in lanes if lane.live]
        if not live:
            break
        train_epoch(live, [(train, ())], holdout=None, salt=0, first=epoch == 0, epoch=epoch)
        for lane, m in zip(live, validate_lanes(live, [(valid, ())], holdout=None, salt=0)):
            if math.isnan(lane.best_logloss) or m.logloss < lane.best_logloss:
                lane.best_logloss = m.logloss
            else:
                lane.live = False
    got = [lane.best_logloss for lane in lanes if not math.isnan(lane.best_logloss)]
    return min(got) if got else math.nan


def _within(new: float, best: float) -> bool:
    """``new`` is at most :data:`GEO_TOLERANCE` (relative) above ``best``."""
    return not math.isnan(new) and (math.isnan(best) or new <= best * (1 + GEO_TOLERANCE))


def choose_pyramid(table: Any, seed: int, toml_of: Any, geo: dict[str, Any], cands: list[Pyramid]
                   ) -> tuple[Pyramid, list[Pyramid], list[str]]:
    """(the chosen pyramid, every candidate scored, comment lines).

    ``table``: the labelled sample; ``toml_of(geo_table)``: the TOML of the whole suggested spec
    (label, hashing, the other features, no cross) with that geo feature; ``geo``: the geo
    feature's table; ``cands``: from :func:`pyramid_candidates`, coarsest first.

    The finest candidate within :data:`GEO_TOLERANCE` of the lowest validation logloss is kept
    (the richer pyramid on near ties: the models compared train on part of the sample, and finer
    cells gain with rows); then that pyramid without bands, kept only if it lowers the logloss by
    :data:`GEO_TOLERANCE`."""
    if len(cands) == 1:
        return cands[0], list(cands), [f"One candidate pyramid ({[_num(v) for v in cands[0].levels]}): nothing "
                                       "to validate"]
    if table.num_rows > VALID_ROWS:  # featurize no more rows than are validated
        table = table.take(np.sort(np.random.default_rng([seed, 13]).choice(table.num_rows, VALID_ROWS,
                                                                             replace=False)))
    folds = _folds(table.num_rows, seed)
    resolved: dict[str, Any] = {"table": table}

    def score(p: Pyramid) -> Pyramid:
        return replace(p, logloss=_score(_valid_spec(toml_of, geo, p, resolved), table, folds))

    scored = [score(p) for p in cands]
    low = min((p.logloss for p in scored if not math.isnan(p.logloss)), default=math.nan)
    chosen = next((p for p in reversed(scored) if _within(p.logloss, low)), scored[0])
    tried = []
    tried.append(score(replace(chosen, bands=False)))
    if tried[-1].logloss < chosen.logloss * (1 - GEO_TOLERANCE):
        chosen = tried[-1]
    rows = len(folds[0][0]) + len(folds[0][1])
    how = (f"{len(folds)}-fold cross-validation on {rows:,} sampled rows" if len(folds) > 1 else
           f"{len(folds[0][0]):,} sampled rows trained, {len(folds[0][1]):,} validation rows")
    why = [f"Chosen by validation on the sample ({how}, train rows in a seeded shuffled order; the whole spec "
           f"without crosses, best of (alpha, l1) in {list(VALID_SETTINGS)} over up to {VALID_EPOCHS} epochs): "
           f"the finest candidate within {GEO_TOLERANCE:.2%} of the lowest validation logloss (on near ties the "
           "finer: the final model trains on more rows, and L1 drops the cells it cannot learn), then without "
           f"bands if that lowers it by "
           f"{GEO_TOLERANCE:.2%}. Validation logloss per candidate pyramid:",
           "; ".join(f"{[_num(v) for v in p.levels]}{'' if p.bands else ' no bands'}: {p.logloss:.5f}"
                     for p in scored + tried)]
    return chosen, scored + tried, why
