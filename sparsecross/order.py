"""Training order: a deterministic, bounded-memory shuffle, and a warning for ordered data.

FTRL learns online, so the order of the rows matters: data sorted by the label (or by a
column that goes with it) trains a model that fits the end of the file, while its
progressive logloss looks excellent.  ``train(..., shuffle=True)`` (``--shuffle``) reads
each epoch in a shuffled order:

1. the *units* (Parquet row groups of every file) are permuted, by a seeded hash of their
   index, with a new permutation each epoch;
2. the rows of that stream are cut into consecutive *windows* of ``buffer_rows`` rows, and
   each window is permuted by a seeded hash of its rows' global numbers.

The order depends only on the data's files and row groups, the seed, the epoch and
``buffer_rows``; never on ``batch_rows`` nor on how the reader chunks a row group.  Every
row keeps its *global row number* (its position in the unshuffled reading order): the
holdout split and error messages use it, so a holdout row is the same row with or without
shuffling.  Memory holds one window of featurized rows (about ``buffer_rows`` x the bytes
of a featurized row) plus one reader chunk; never the data.

Resume: a position in a shuffled epoch is the number of rows of that epoch's order already
consumed.  It is rebuilt from the footers: the units before the window holding the position
are skipped without being read, and that window (at most ``buffer_rows`` rows, plus the start
of the row group it begins in) is re-read, featurized and permuted again, then its first
rows are dropped.  So resuming costs at most one window's read, not the epoch's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ._defaults import DEFAULT_BATCH_ROWS, DEFAULT_SHUFFLE_BUFFER_ROWS
from ._values import check_batch_rows, check_count
from .errors import DataQualityWarning, shown_path
from .hashing import fmix64_array, xxh64

__all__ = ["DEFAULT_SHUFFLE_BUFFER_ROWS", "OrderCheck", "Shuffle", "iter_shuffled_batches", "permutation_keys",
           "row_holdout_mask"]

_S11 = np.uint64(11)


def row_holdout_mask(rows: np.ndarray, fraction: float, salt: int) -> np.ndarray:
    """uint8 mask: 1 where global row ``rows[i]`` is in the holdout set.

    The same choice as the kernel ``holdout_mask(start, n, ...)`` for ``rows = start + arange(n)``
    (``fmix64(row ^ salt) >> 11`` as a fraction of 2**53, compared with ``fraction``), for rows
    in any order."""
    h = fmix64_array(np.asarray(rows, dtype=np.int64).view(np.uint64) ^ np.uint64(salt))
    return ((h >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0) < fraction).astype(np.uint8)


def permutation_keys(values: np.ndarray, salt: int) -> np.ndarray:
    """Sort keys that permute ``values`` (distinct non-negative integers): ``fmix64(v ^ salt)``."""
    return fmix64_array(np.asarray(values, dtype=np.int64).view(np.uint64) ^ np.uint64(salt))


def _order(values: np.ndarray, salt: int) -> np.ndarray:
    # fmix64 is a bijection of uint64, so distinct values never tie: the order is a function
    # of (values, salt) alone, whatever the sort algorithm, platform or NumPy version.
    return np.argsort(permutation_keys(values, salt))


@dataclass(frozen=True)
class Shuffle:
    """How to shuffle: ``seed`` (an integer in [0, 2**63)) and ``buffer_rows`` (rows permuted
    together; memory scales with it).

    Raises
    ------
    ParameterError
        A seed or a buffer size that is not an integer in range.
    """

    seed: int = 0
    buffer_rows: int = DEFAULT_SHUFFLE_BUFFER_ROWS

    def __post_init__(self) -> None:
        check_count("shuffle_seed", self.seed, 0, 2**63 - 1)
        check_count("shuffle_buffer_rows", self.buffer_rows, 1)  # a buffer of more rows than any source: refused

    def salts(self, epoch: int) -> tuple[int, int]:
        """(unit salt, row salt) of ``epoch``."""
        return (xxh64(f"shuffle/units/{epoch}".encode(), int(self.seed)),
                xxh64(f"shuffle/rows/{epoch}".encode(), int(self.seed)))

    def to_dict(self) -> dict[str, Any]:
        """What a model and a checkpoint record of the order."""
        return {"shuffle": True, "shuffle_seed": int(self.seed), "shuffle_buffer_rows": int(self.buffer_rows)}


# ---------------------------------------------------------------------------- the stream
@dataclass(frozen=True)
class _Unit:
    file: int
    row_group: int
    first_row: int  # global row number of its first row
    rows: int


def _units(files: list[Any], spec: Any, label: bool) -> tuple[list[_Unit], list[list[str]]]:
    """Every non-empty row group of every file, in reading order, after checking each file's
    schema (from the footers only); and each file's string columns."""
    from .read import open_checked

    units: list[_Unit] = []
    strings: list[list[str]] = []
    row = 0
    for fi, path in enumerate(files):
        pf, s = open_checked(path, spec, label=label)
        strings.append(s)
        md = pf.metadata
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if n > 0:
                units.append(_Unit(fi, g, row, n))
            row += n
    return units, strings


def shuffled_units(units: list[_Unit], shuffle: Shuffle, epoch: int) -> list[_Unit]:
    """The units in ``epoch``'s order."""
    if not units:
        return []
    perm = _order(np.arange(len(units), dtype=np.int64), shuffle.salts(epoch)[0])
    return [units[i] for i in perm]


def _read_stream(source: Any, spec: Any, files: list[Any], strings: list[list[str]], units: list[_Unit],
                 skip: int, read_rows: int, label: bool) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Arrow chunks ``(record_batch, first_global_row)`` of the units in the given order, each
    chunk contiguous in global rows, from position ``skip`` of that order on (whole units
    before it are not read)."""
    from .errors import DataError
    from .read import _open, _short, read_columns

    columns = read_columns(spec, label=label)
    opened: dict[int, Any] = {}  # the last few files opened (units of one file often follow)
    pos = 0
    for u in units:
        if pos + u.rows <= skip:
            pos += u.rows
            continue
        drop = max(0, skip - pos)
        pos += u.rows
        path = files[u.file]
        pf = opened.pop(u.file, None) or _open(path, strings[u.file])
        opened[u.file] = pf
        if len(opened) > 8:
            del opened[next(iter(opened))]
        cur = u.first_row
        try:
            for batch in pf.iter_batches(batch_size=read_rows, row_groups=[u.row_group], columns=columns,
                                         use_threads=False):
                n = batch.num_rows
                if drop >= n:
                    drop -= n
                    cur += n
                    continue
                if drop:
                    batch = batch.slice(drop)
                    cur += drop
                    n -= drop
                    drop = 0
                if n:
                    yield batch, cur
                cur += n
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {shown_path(path)} (row {cur}): {_short(exc)}") from None


class _Window:
    """Featurized rows of one window, in stream order (CSR parts, labels, weights, rows)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]] = []
        self.skips: list[np.ndarray] = []
        self.rows = 0

    def add(self, X: Any, y: np.ndarray, w: np.ndarray | None, first_row: int, skip: np.ndarray) -> None:
        self.parts.append((X.indptr, X.indices, X.data, y, w, first_row))
        self.skips.append(skip if len(skip) else np.zeros(len(y), dtype=np.uint8))
        self.rows += len(y)

    def skip(self) -> np.ndarray | None:
        """uint8 skip flags of the window's rows in stream order (None when no row is skipped)."""
        skip = np.concatenate(self.skips) if self.skips else np.zeros(0, dtype=np.uint8)
        self.skips = []
        return skip if skip.any() else None

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """(indptr, indices, data, y, w, global rows) of the whole window, in stream order."""
        n = self.rows
        indptr = np.empty(n + 1, dtype=np.int64)
        indptr[0] = 0
        r = 0
        base = 0
        for p, _, _, y, _, _ in self.parts:
            m = len(y)
            indptr[r + 1: r + m + 1] = p[1:] + base
            r += m
            base += int(p[-1])
        indices = np.concatenate([q[1] for q in self.parts]).astype(np.int64, copy=False)
        data = np.concatenate([q[2] for q in self.parts])
        y = np.concatenate([q[3] for q in self.parts])
        w = None if self.parts[0][4] is None else np.concatenate([q[4] for q in self.parts])  # type: ignore[misc]
        rows = np.concatenate([np.arange(q[5], q[5] + len(q[3]), dtype=np.int64) for q in self.parts])
        self.parts = []
        return indptr, indices, data, y, w, rows


def _gather(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, idx: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR rows ``idx`` (in that order) of a CSR, keeping int64 indices and the data dtype."""
    starts = indptr[idx]
    lens = indptr[idx + 1] - starts
    out_ptr = np.empty(len(idx) + 1, dtype=np.int64)
    out_ptr[0] = 0
    np.cumsum(lens, out=out_ptr[1:])
    total = int(out_ptr[-1])
    src = np.repeat(starts - out_ptr[:-1], lens) + np.arange(total, dtype=np.int64)
    return out_ptr, indices[src], data[src]


def iter_shuffled_batches(source: Any, spec: Any, shuffle: Shuffle, *, epoch: int,
                          batch_rows: int = DEFAULT_BATCH_ROWS, start: int = 0,
                          observe: Callable[[pa.RecordBatch, int], object] | None = None) -> Iterator[Any]:
    """Featurized :class:`~sparsecross.featurize.Batch` es of ``source`` in ``epoch``'s
    shuffled order, from position ``start`` of that order (rows already consumed).

    Each batch carries its rows' global numbers in ``Batch.rows`` (``start_row`` is the
    global number of its first row).  ``observe(record_batch, first_row)`` sees the Arrow
    chunks as read (contiguous rows, before shuffling).  Batches never span two windows.

    Raises
    ------
    ParameterError, SchemaError, DataError
        As :func:`~sparsecross.featurize.iter_batches`; value errors name the global row.
    """
    import scipy.sparse as sp

    from .featurize import Batch, _label_rows, featurize_features, resolve_spec
    from .read import located, resolve_files

    check_batch_rows(batch_rows)
    if spec.needs_data:
        spec = resolve_spec(source, spec)
    files = resolve_files(source)
    units, strings = _units(files, spec, label=True)
    order = shuffled_units(units, shuffle, epoch)
    total = sum(u.rows for u in units)
    if start >= total:
        return
    n_buf = int(shuffle.buffer_rows)
    row_salt = shuffle.salts(epoch)[1]
    w0 = (start // n_buf) * n_buf  # first row (in this order) of the window holding `start`
    drop = start - w0
    read_rows = max(1, min(batch_rows, n_buf))

    def emit(win: _Window) -> Iterator[Any]:
        nonlocal drop
        skip = win.skip()
        indptr, indices, data, y, w, rows = win.build()
        perm = _order(rows, row_salt)[drop:]
        drop = 0
        for a in range(0, len(perm), batch_rows):
            idx = perm[a: a + batch_rows]
            ptr, ind, dat = _gather(indptr, indices, data, idx)
            X = sp.csr_array((dat, ind, ptr), shape=(len(idx), spec.n_columns))
            X.has_sorted_indices = True
            X.has_canonical_format = True
            r = rows[idx]
            yield Batch(X, y[idx], None if w is None else w[idx], int(r[0]), r,
                        None if skip is None else skip[idx])

    win = _Window()
    with located(source):
        for chunk, row in _read_stream(source, spec, files, strings, order, w0, read_rows, label=True):
            while chunk.num_rows:
                take = min(chunk.num_rows, n_buf - win.rows)
                part = chunk.slice(0, take) if take < chunk.num_rows else chunk
                if observe is not None:
                    observe(part, row)
                y, w, skip = _label_rows(spec, part, row)
                win.add(featurize_features(spec, part, row), y, w, row, skip)
                chunk = chunk.slice(take)
                row += take
                if win.rows == n_buf:
                    yield from emit(win)
                    win = _Window()
        if win.rows:
            yield from emit(win)


# ------------------------------------------------------------------ ordered-data check
class OrderCheck:
    """Watch one epoch's stream for signs of ordered data, in constant memory, and warn
    (:class:`~sparsecross.errors.DataQualityWarning`, naming ``--shuffle``) when:

    * the label rate drifts strongly through the epoch: the rows, cut into ``SEGMENTS``
      equal segments of the reading order, have positive rates so different that their
      between-segment share of the label's variance (phi squared of the segments x label
      table) exceeds ``DRIFT_PHI2``, with a chi-square far beyond chance; or
    * after the first epoch, the validation logloss is far worse than the progressive
      logloss (progressive logloss scores each row before training on it: on rows in random
      order it estimates the validation logloss; on ordered rows it does not).

    Only a first epoch read from its start is checked (a run resumed mid-epoch skips it).
    """

    SEGMENTS = 16
    DRIFT_PHI2 = 0.05
    LOSS_RATIO = 1.5
    LOSS_MARGIN = 0.02

    def __init__(self, rows_total: int, shuffle: Shuffle | None) -> None:
        self.rows_total = int(rows_total)
        self.seg_rows = max(1, math.ceil(self.rows_total / self.SEGMENTS))
        self.pos = np.zeros(self.SEGMENTS, dtype=np.float64)
        self.cnt = np.zeros(self.SEGMENTS, dtype=np.float64)
        self.shuffle = shuffle
        self.warned = False

    def update(self, position: int, y: np.ndarray) -> None:
        """Rows ``position, position + 1, ...`` of the epoch's order have labels ``y``."""
        n = len(y)
        i = 0
        while i < n:  # the consecutive rows of one segment at a time (labels are 0/1: exact sums)
            seg = min((position + i) // self.seg_rows, self.SEGMENTS - 1)
            end = n if seg == self.SEGMENTS - 1 else min(n, (seg + 1) * self.seg_rows - position)
            self.pos[seg] += float(np.sum(y[i:end]))
            self.cnt[seg] += end - i
            i = end

    def drift(self) -> tuple[float, float, float, float]:
        """(phi squared, chi square, lowest segment rate, highest segment rate)."""
        n = float(self.cnt.sum())
        p = float(self.pos.sum()) / n if n else 0.0
        if n == 0 or p <= 0.0 or p >= 1.0:
            return 0.0, 0.0, p, p
        used = self.cnt > 0
        rates = self.pos[used] / self.cnt[used]
        chi2 = float(np.sum(self.cnt[used] * (rates - p) ** 2) / (p * (1.0 - p)))
        return chi2 / n, chi2, float(rates.min()), float(rates.max())

    def _hint(self) -> str:
        if self.shuffle is None:
            return "train with --shuffle ([train] shuffle = true)"
        return (f"--shuffle is on with --shuffle-buffer-rows {self.shuffle.buffer_rows:,}: raise it, or "
                "write the data in more, smaller row groups")

    def _warn(self, what: str) -> None:
        if not self.warned:
            self.warned = True
            warnings.warn(f"the training data look ordered: {what}; {self._hint()}", DataQualityWarning,
                          stacklevel=4)  # _warn, finish, train: the caller of train

    def finish(self, progressive_logloss: float, valid_logloss: float | None) -> None:
        """End of the checked epoch: warn if the data look ordered."""
        phi2, chi2, lo, hi = self.drift()
        df = int(np.count_nonzero(self.cnt)) - 1
        if df > 0 and phi2 > self.DRIFT_PHI2 and chi2 > df + 10.0 * math.sqrt(2.0 * df):
            self._warn(f"the label rate drifts from {lo:.3g} to {hi:.3g} across the rows in training order")
        if (valid_logloss is not None and math.isfinite(valid_logloss) and math.isfinite(progressive_logloss)
                and valid_logloss > self.LOSS_RATIO * progressive_logloss + self.LOSS_MARGIN):
            self._warn(f"the validation logloss after the first epoch ({valid_logloss:.4g}) is far worse "
                       f"than the progressive logloss ({progressive_logloss:.4g}), so the rows in training "
                       "order are not a random sample (or the validation data differ from them)")
