"""Readable names for hashed columns: which categorical value a hashed weight came from.

Hashing loses the value, so the values are recorded while training reads the data (no second
read): for every standalone categorical, every distinct value's hashed column, its full 64-bit
hash and the value itself.  Several values on one column (a hash collision, within a feature or
across features) are flagged ``(+more: hash collision)``; the name shown is the value with the
smallest (feature, full hash), so the names do not depend on the order the rows were seen in
(a resumed run names its weights exactly as an uninterrupted one).  Memory grows with the
distinct values of those features (a sorted array of columns, 24 bytes each, plus the values
as Arrow arrays), as the optimizer state grows with the touched features.

Hashed crosses are named by their parts (``device=ios x hour=7``, ``type=h x rooms=[3.0,4.0)``):
per batch, each row's full cross key is computed as ``build_csr`` does (the components' ids by
their kinds, for those features only, then ``_kernels.crosses.hashed_cross_rows``); the distinct
keys (``_kernels.distinct.unique_first``: ``np.unique``'s result, without sorting every row)
enter the same per-column entries, owned by ``len(features) + output index``, with the component
ids of their first row (exact components: the local id, named by ``describe_local``; categorical
ones: the full key, named through the values kept for that feature).  A key's components are
stored only when it may name its column, so once per (cross, key).  A cross with categorical
lists is named by its element tuples, crossed as the featurizer crosses them
(:mod:`sparsecross.listcross`): ``tags=sport x device=ios``.  What a hashed kind's values are (a
list's elements) is the kind's :meth:`Kind.recorded_values`.

The names of the ``top`` largest hashed weights go into the model's stats
(``stats["names"]``), so ``inspect`` shows ``device=ios`` instead of ``hashed bucket 118931``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from ._kernels.crosses import hashed_cross_rows
from ._kernels.distinct import unique_first
from .arrow_numpy import int64_array
from .featurize import _as_array, _float64, _plan
from .kinds import KINDS, Ctx
from .listcross import list_cross_entries
from .model import SparseModel
from .read import DEFAULT_BATCH_ROWS, Source, iter_record_batches
from .spec import FeatureSpec, describe_local

__all__ = ["NameRecorder", "record_names"]

_MISSING = -1  # value index of "the value was missing"


class _Entries:
    """Named columns, sorted and unique by column: (column, feature, full hash, value index,
    collided).  The entry of a column is its smallest (feature, full hash)."""

    def __init__(self) -> None:
        self.cols = np.zeros(0, dtype=np.int64)
        self.owner = np.zeros(0, dtype=np.int64)
        self.full = np.zeros(0, dtype=np.uint64)
        self.ref = np.zeros(0, dtype=np.int64)
        self.collided = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.cols)

    @classmethod
    def of(cls, cols: np.ndarray, owner: np.ndarray, full: np.ndarray, ref: np.ndarray,
           collided: np.ndarray) -> _Entries:
        """Entries from unsorted, possibly repeated columns (keeping the smallest of each)."""
        order = np.lexsort((full, owner, cols))
        cols, owner, full, ref, collided = cols[order], owner[order], full[order], ref[order], collided[order]
        first = np.ones(len(cols), dtype=bool)
        first[1:] = cols[1:] != cols[:-1]
        differs = np.zeros(len(cols), dtype=bool)
        differs[1:] = (owner[1:] != owner[:-1]) | (full[1:] != full[:-1])
        group = np.cumsum(first) - 1
        flag = np.zeros(int(first.sum()), dtype=bool)
        np.logical_or.at(flag, group, (~first & differs) | collided)
        e = cls()
        e.cols, e.owner, e.full, e.ref, e.collided = cols[first], owner[first], full[first], ref[first], flag
        return e

    def concat(self, other: _Entries) -> _Entries:
        """Both sets of entries (their columns must be disjoint), sorted."""
        return _Entries.of(*(np.concatenate([a, b]) for a, b in zip(self.arrays(), other.arrays())))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.cols, self.owner, self.full, self.ref, self.collided

    def find(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, positions) of ``cols`` among the entries."""
        pos = np.searchsorted(self.cols, cols)
        found = pos < len(self.cols)
        found[found] = self.cols[pos[found]] == cols[found]
        return found, pos

    def absorb(self, new: _Entries) -> _Entries:
        """Update the entries that ``new`` shares columns with (collisions, smaller names);
        return the entries of ``new`` on columns not here."""
        found, pos = self.find(new.cols)
        p = pos[found]
        n_owner, n_full, n_ref, n_coll = new.owner[found], new.full[found], new.ref[found], new.collided[found]
        differs = (self.owner[p] != n_owner) | (self.full[p] != n_full)
        self.collided[p] |= differs | n_coll
        smaller = (n_owner < self.owner[p]) | ((n_owner == self.owner[p]) & (n_full < self.full[p]))
        q = p[smaller]
        self.owner[q], self.full[q], self.ref[q] = n_owner[smaller], n_full[smaller], n_ref[smaller]
        rest = _Entries()
        keep = ~found
        rest.cols, rest.owner, rest.full, rest.ref, rest.collided = (a[keep] for a in new.arrays())
        return rest


class _Values:
    """The distinct values of one categorical, each stored once, found by full key."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)  # sorted full keys
        self.refs = np.zeros(0, dtype=np.int64)  # each key's value index
        self.chunks: list[pa.Array] = []
        self.count = 0
        self._all: pa.Array | None = None

    def add(self, keys: np.ndarray, values: pa.Array) -> np.ndarray:
        """The value index of every key, storing the values of the keys not seen before."""
        keys = keys.astype(np.uint64, copy=False)
        pos = np.searchsorted(self.keys, keys)
        found = pos < len(self.keys)
        found[found] = self.keys[pos[found]] == keys[found]
        refs = np.empty(len(keys), dtype=np.int64)
        refs[found] = self.refs[pos[found]]
        new = np.flatnonzero(~found)
        if len(new):
            refs[new] = self.count + np.arange(len(new), dtype=np.int64)
            self.chunks.append(values.take(int64_array(new)))
            self.count += len(new)
            order = np.argsort(keys[new], kind="stable")
            at = np.searchsorted(self.keys, keys[new][order])
            self.keys = np.insert(self.keys, at, keys[new][order])
            self.refs = np.insert(self.refs, at, refs[new][order])
            self._all = None
        return refs

    def value(self, ref: int) -> object:
        if self._all is None:
            self._all = pa.chunked_array(self.chunks, pa.large_string()).combine_chunks()
        return self._all[ref].as_py()

    def ref_of(self, key: int) -> int | None:
        i = int(np.searchsorted(self.keys, np.uint64(key)))
        return int(self.refs[i]) if i < len(self.keys) and self.keys[i] == np.uint64(key) else None


class NameRecorder:
    """Observe Arrow batches (in reading order or not) and name the hashed columns they hit.

    Call :meth:`observe` with every record batch of the data (the training pass does it in its
    reader thread), then :meth:`names_for` for the columns to name.  New columns are merged
    into a small sorted level first and into the main level when it grows past an eighth of
    it, so the work per batch is linear in the batch's distinct values (amortized).
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.features = [(i, f) for i, f in enumerate(spec.features) if not f.is_exact and f.standalone]
        # Hashed crosses: owner ``nf + o`` (after every feature) for output ``o``; their
        # components' ids are computed here for those features only (``_need``), as the
        # featurizer computes them.
        self.crosses = [(o, out) for o, out in enumerate(spec.outputs) if out.kind == 2]
        self._need = sorted({c for _, out in self.crosses for c in out.components})
        local = {fi: j for j, fi in enumerate(self._need)}
        self._cross_feat = {o: np.array([local[c] for c in out.components], dtype=np.int64)
                            for o, out in self.crosses}
        self._comps: dict[int, list[np.ndarray]] = {o: [] for o, _ in self.crosses}
        self._ncomps: dict[int, int] = {o: 0 for o, _ in self.crosses}
        # categoricals whose values are kept: the standalone ones and the crossed ones (a cross
        # is named by its categorical components' values, looked up by their full keys)
        valued = {fi for fi, _ in self.features} | {fi for fi in self._need if not spec.features[fi].is_exact}
        self._valued = [(fi, spec.features[fi]) for fi in sorted(valued)]
        self._offset = np.int64(spec.hashed_offset)
        self._mask = np.uint64((1 << spec.hashing.bits) - 1)
        plan = _plan(spec)
        self._salts = plan.salts
        self._missing_keys = plan.missing_keys
        self._main = _Entries()
        self._recent = _Entries()
        self._values: dict[int, _Values] = {fi: _Values() for fi in valued}
        self._standalone = {fi for fi, _ in self.features}
        # dictionaries already recorded; each entry keeps its dictionary alive so that its
        # buffer addresses cannot be reused by another dictionary while the entry exists
        self._seen_dicts: OrderedDict[tuple[int, int, int, int], pa.Array] = OrderedDict()

    @property
    def active(self) -> bool:
        return bool(self.features or self.crosses)

    def __len__(self) -> int:
        return len(self._main) + len(self._recent)

    # ------------------------------------------------------------------ recording
    def observe(self, batch: pa.RecordBatch | pa.Table, row: int = 0) -> None:
        """Record the values of the standalone and crossed categoricals in ``batch`` and the
        keys of its hashed crosses."""
        for fi, f in self._valued:
            arr = _as_array(batch.column(f.columns[0]))
            values, keys, has_missing = KINDS[f.kind].recorded_values(f, arr, self._salts[fi], self._seen_dicts)
            if values is not None and len(values):
                refs = self._values[fi].add(keys, values)
                if fi in self._standalone:
                    self._merge(fi, keys, refs)
            if has_missing and fi in self._standalone and f.missing != "skip":  # "skip": nothing emitted
                self._merge(fi, np.array([self._missing_keys[fi]], dtype=np.uint64),
                            np.array([_MISSING], dtype=np.int64))
        if self.crosses and batch.num_rows:
            self._observe_crosses(batch, row)

    def _observe_crosses(self, batch: pa.RecordBatch | pa.Table, row: int) -> None:
        """Each hashed cross's distinct full keys in ``batch`` (computed as ``build_csr`` does)
        with the component ids of their first row."""
        n = batch.num_rows
        ids = np.empty((len(self._need), n), dtype=np.uint64)
        missing = np.empty((len(self._need), n), dtype=np.uint8)
        floats: dict[str, np.ndarray] = {}

        def numeric(col: str) -> np.ndarray:
            x = floats.get(col)
            if x is None:
                x = floats[col] = _float64(_as_array(batch.column(col)))
            return x

        skip = np.array([self.spec.features[fi].missing == "skip" for fi in self._need], dtype=np.uint8)
        skip_given = skip.copy()  # a list kind sets its flag in ``skip`` (its entries come in ``lists``)
        lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # crossed elements of categorical lists
        for j, fi in enumerate(self._need):
            f = self.spec.features[fi]
            ctx = Ctx(batch, row, self._salts[fi], self._missing_keys[fi], numeric, j, skip, [], lists)
            KINDS[f.kind].featurize(f, ctx, ids[j], missing[j])
        for o, out in self.crosses:
            comp = self._cross_feat[o]
            listed = {p: lists[int(j)] for p, j in enumerate(comp) if int(j) in lists}
            if listed:  # element tuples, as the featurizer crosses them
                rows, keys, sub = list_cross_entries(ids[comp], missing[comp], skip_given[comp], listed,
                                                     np.uint64(out.seed))
            else:
                keys, emit = hashed_cross_rows(ids, missing, skip, comp, 0, len(comp), np.uint64(out.seed))
                rows = np.flatnonzero(emit) if not emit.all() else None
                if rows is not None:
                    keys = keys[rows]
                sub = ids[comp]
            keys, first = unique_first(np.ascontiguousarray(keys, dtype=np.uint64))  # np.unique's, sorting the distinct keys only
            if not len(keys):
                continue
            cols = first if listed or rows is None else rows[first]  # a column of ``sub``
            owner = len(self.spec.features) + o
            new = self._may_name(owner, keys)  # components kept only for keys that may name a column
            keys, cols = keys[new], cols[new]
            if not len(keys):
                continue
            self._comps[o].append(sub[:, cols])
            refs = self._ncomps[o] + np.arange(len(keys), dtype=np.int64)
            self._ncomps[o] += len(keys)
            self._merge(owner, keys, refs)

    def _may_name(self, owner: int, keys: np.ndarray) -> np.ndarray:
        """Mask of the ``keys`` of ``owner`` whose column has no entry yet or one larger than
        (owner, key): the others can never name their column (they only flag a collision, and
        a key already recorded does not even do that), so each (owner, key) is stored once."""
        cols = self._offset + (keys & self._mask).astype(np.int64)
        keep = np.ones(len(keys), dtype=bool)
        for level in (self._main, self._recent):
            found, pos = level.find(cols)
            p = pos[found]
            o, f = level.owner[p], level.full[p]
            beaten = (o < owner) | ((o == owner) & (f <= keys[found]))
            # a smaller entry: only a collision to flag (a different key on the column)
            collide = beaten & ((o != owner) | (f != keys[found]))
            level.collided[p[collide]] = True
            keep[np.flatnonzero(found)[beaten]] = False
        return keep

    def _merge(self, fi: int, keys: np.ndarray, refs: np.ndarray) -> None:
        cols = self._offset + (keys & self._mask).astype(np.int64)
        new = _Entries.of(cols, np.full(len(cols), fi, dtype=np.int64), keys.astype(np.uint64), refs,
                          np.zeros(len(cols), dtype=bool))
        new = self._recent.absorb(self._main.absorb(new))
        if len(new):
            self._recent = self._recent.concat(new)
        if len(self._recent) > max(1 << 16, len(self._main) // 8):
            self._main = self._main.concat(self._recent)
            self._recent = _Entries()

    # -------------------------------------------------------------------- naming
    def names_for(self, columns: np.ndarray) -> dict[str, str]:
        """``{str(column): "feature=value"}`` for the given hashed columns that were seen."""
        columns = np.unique(np.asarray(columns, dtype=np.int64))
        out: dict[str, str] = {}
        nf = len(self.spec.features)

        def value_of(fi: int, key: int) -> str:
            """``feature=value`` of categorical ``fi`` by its full key."""
            name = self.spec.features[fi].name
            if np.uint64(key) == self._missing_keys[fi]:
                return f"{name}=missing"
            ref = self._values[fi].ref_of(key)
            if ref is None:
                return f"{name}=?"  # not seen (cannot happen: a cross's rows carry its values)
            return f"{name}={self._values[fi].value(ref)}"

        comps: dict[int, np.ndarray] = {}
        for level in (self._main, self._recent):
            found, pos = level.find(columns)
            for c, p in zip(columns[found].tolist(), pos[found].tolist()):
                fi, r = int(level.owner[p]), int(level.ref[p])
                if fi >= nf:  # a hashed cross: its components' values
                    o = fi - nf
                    if o not in comps:
                        comps[o] = np.concatenate(self._comps[o], axis=1)
                    parts = []
                    for cf, lid in zip(self.spec.outputs[o].components, comps[o][:, r].tolist()):
                        f = self.spec.features[cf]
                        parts.append(describe_local(f, int(lid)) if f.is_exact else value_of(cf, lid))
                    text = " x ".join(parts)
                elif r == _MISSING:
                    text = f"{self.spec.features[fi].name}=missing"
                else:
                    text = f"{self.spec.features[fi].name}={self._values[fi].value(r)}"
                out[str(c)] = text + (" (+more: hash collision)" if level.collided[p] else "")
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    def top_names(self, model: SparseModel, top: int) -> dict[str, str]:
        """Names of the ``top`` largest hashed weights of ``model``."""
        hashed = np.flatnonzero(model.keys >= np.uint64(self.spec.hashed_offset))
        if top <= 0 or not self.active or not len(hashed):
            return {}
        idx = hashed[np.argsort(-np.abs(model.weights[hashed]), kind="stable")[:top]]
        return self.names_for(model.keys[idx].astype(np.int64))


def record_names(model: SparseModel, source: Source, *, top: int = 200,
                 batch_rows: int = DEFAULT_BATCH_ROWS,
                 recorder: NameRecorder | None = None, rows: tuple[int, int] | None = None,
                 on_batch: Callable[[int], object] | None = None) -> dict[str, str]:
    """Name the ``top`` largest hashed standalone-categorical weights of ``model`` by reading
    ``source`` (a second read: for models trained elsewhere, e.g. on Dask; ``train`` records
    names in its own pass).  With ``recorder``, its observations are kept and only the rows
    ``rows = (start, stop)`` are read (the part a resumed run did not see).

    Returns (and stores in ``model.stats["names"]``) ``{str(column): "feature=value"}``.
    """
    rec = recorder if recorder is not None else NameRecorder(model.spec)
    start, stop = rows if rows is not None else (0, None)
    if top > 0 and rec.active and stop != 0:
        for batch, row in iter_record_batches(source, model.spec, batch_rows=batch_rows, label=False,
                                              start_row=start):
            if stop is not None and row >= stop:
                break
            if stop is not None and row + batch.num_rows > stop:
                batch = batch.slice(0, stop - row)
            rec.observe(batch, row)
            if on_batch is not None:
                on_batch(batch.num_rows)
    names = rec.top_names(model, top)
    if names:
        model.stats["names"] = names
    return names
