"""Readable names for hashed columns: which categorical value a hashed weight came from.

Hashing loses the value, so after training we look it up: for the ``top`` largest hashed
weights of standalone categoricals, one extra read of just those columns finds a value that
lands on each column (the first in reading order; a collision is flagged with ``(+more)``).
The names are stored in the model's stats (``stats["names"]``), so ``inspect`` can show
``device=ios`` instead of ``hashed bucket 118931``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .featurize import _as_array, _categorical_keys, _plan
from .model import SparseModel
from .read import DEFAULT_BATCH_ROWS, Source, iter_record_batches

__all__ = ["record_names"]


def record_names(model: SparseModel, source: Source, *, top: int = 200,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> dict[str, str]:
    """Find the values behind the ``top`` largest hashed standalone-categorical weights.

    Returns (and stores in ``model.stats["names"]``) ``{str(column): "feature=value"}``.
    """
    spec = model.spec
    cats = [(i, f) for i, f in enumerate(spec.features) if f.kind == "categorical" and f.standalone]
    H = spec.hashed_offset
    hashed = model.keys >= np.uint64(H)
    if top <= 0 or not cats or not hashed.any():
        return {}
    idx = np.flatnonzero(hashed)
    idx = idx[np.argsort(-np.abs(model.weights[idx]), kind="stable")[:top]]
    targets = np.sort(model.keys[idx].astype(np.int64))
    plan = _plan(spec)
    found: dict[int, str] = {}
    collided: set[int] = set()
    mask = np.uint64((1 << spec.hashing.bits) - 1)
    for batch, _row in iter_record_batches(source, spec, batch_rows=batch_rows, label=False):
        for fi, f in cats:
            arr = _as_array(batch.column(f.columns[0]))
            n = len(arr)
            ids = np.empty(n, dtype=np.uint64)
            missing = np.empty(n, dtype=np.uint8)
            _categorical_keys(arr, plan.salts[fi], plan.missing_keys[fi], ids, missing)
            cols = H + (ids & mask).astype(np.int64)
            hit = np.flatnonzero(np.isin(cols, targets))
            if not len(hit):
                continue
            hit_cols = cols[hit]
            for c in np.unique(hit_cols).tolist():
                rows = hit[hit_cols == c]
                texts = [f"{f.name}=missing"] if missing[rows].any() else []
                present = rows[missing[rows] == 0]
                if len(present):
                    texts += [f"{f.name}={v}" for v in pc.unique(arr.take(pa.array(present))).to_pylist()]
                for text in texts:
                    old = found.get(c)
                    if old is None:
                        found[c] = text
                    elif old != text:
                        collided.add(c)
    names = {str(c): t + (" (+more: hash collision)" if c in collided else "") for c, t in sorted(found.items())}
    model.stats["names"] = names
    return names
