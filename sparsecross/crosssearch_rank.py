"""Which candidate crosses a search round tries when there are more than it can train: a cheap
score of each candidate on a bounded sample of the training data.

The score is the interaction information between the cross's parts and the label,
``I(a x b; y) - I(a; y) - I(b; y)`` in bits, each term the bias-corrected (Miller-Madow) mutual
information of :func:`sparsecross.suggest_profile.mutual_information`: what the joint value says
about the label beyond what the parts say alone.  A pure interaction (the label depends on
``a x b`` only) scores its whole information while its parts score nothing; two parts that
repeat each other (a cell and its zip code) score below zero; a cross of many rare joint values
pays its chance information through the correction.  For a candidate extending a chosen cross
``c`` by ``f``, the parts are ``c`` and ``f``.

A feature's value in the sample is its column in the CSR of a one-feature spec (a value of a
multi-valued feature, such as a list, is represented by its smallest column; a row without a
value has its own "missing" code).  The sample is the seeded, row-group spread sample of
``suggest-spec`` (:func:`sparsecross.suggest_profile.read_sample`), at most
:data:`RANK_SAMPLE_ROWS` rows, without the holdout rows (the validation never ranks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

__all__ = ["RANK_SAMPLE_ROWS", "feature_codes", "rank_candidates", "interaction_score"]

#: Rows of the training data scored, at most.
RANK_SAMPLE_ROWS = 50_000


def feature_codes(source: Any, spec: Any, names: Sequence[str], *, rows: int = RANK_SAMPLE_ROWS,
                  seed: int = 0, holdout: float | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({feature name: int64 codes 0..k-1 per sampled row}, 0/1 label per sampled row) of a
    seeded sample of ``source`` under the resolved ``spec``; rows without a label are dropped,
    and with a ``holdout`` fraction the rows the holdout rule keeps for validation (the same
    rows as training's, by global position and the spec's holdout salt)."""
    from .featurize import featurize_features
    from .hashing import holdout_salt
    from .order import row_holdout_mask
    from .suggest_profile import label_of, plan_units, read_sample

    planned = plan_units(source)
    sample = read_sample(planned, list(spec.columns), rows, seed)
    table = sample.table
    y, missing = label_of(table, spec.label)
    drop = np.asarray(missing, dtype=bool)
    if holdout is not None:
        drop = drop | row_holdout_mask(sample.positions, float(holdout), holdout_salt(spec.hashing.seed)).astype(bool)
    if drop.any():
        import pyarrow as pa

        table = table.filter(pa.array(~drop))
        y = y[~drop]
    codes: dict[str, np.ndarray] = {}
    for name in names:
        f = spec.feature(name)
        one = replace(spec, features=(replace(f, standalone=True, pyramid=None),), crosses=(), train={})
        X = featurize_features(one, table)
        has = np.diff(X.indptr) > 0
        first = np.full(table.num_rows, -1, dtype=np.int64)
        first[has] = X.indices[X.indptr[:-1][has]]  # sorted rows: the smallest column
        codes[name] = np.unique(first, return_inverse=True)[1].ravel().astype(np.int64)
    return codes, y.astype(np.int64)


def _joint(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.unique(np.stack(parts), axis=1, return_inverse=True)[1].ravel().astype(np.int64)


def interaction_score(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    """``I(a x b; y) - I(a; y) - I(b; y)`` (bits, each bias-corrected) of two code arrays."""
    from .suggest_profile import mutual_information

    if len(y) == 0:
        return 0.0
    return (mutual_information(_joint([a, b]), y) - mutual_information(a, y) - mutual_information(b, y))


def rank_candidates(cands: Sequence[tuple[str, ...]], chosen: Sequence[tuple[str, ...]],
                    codes: dict[str, np.ndarray], y: np.ndarray) -> list[tuple[float, int]]:
    """(score, index in ``cands``) of every candidate, highest score first, ties in ``cands``
    order.  A candidate that extends a ``chosen`` cross by one feature is scored as (that
    cross) x (the feature); any other as (all its features but the last) x (the last)."""
    def codes_of(names: Sequence[str]) -> np.ndarray:
        return codes[names[0]] if len(names) == 1 else _joint([codes[f] for f in names])

    scored = []
    for i, feats in enumerate(cands):
        head = next((c for c in chosen if len(c) == len(feats) - 1 and set(c) <= set(feats)), feats[:-1])
        tail = [f for f in feats if f not in head]
        scored.append((interaction_score(codes_of(head), codes_of(tail), y), i))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return scored
