"""Chunk planning (client) and chunk reading/featurizing (worker tasks).

A *chunk* is a Parquet row group (or a fixed number of consecutive rows, which may span row
groups and files), numbered in the order the single-node reader uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from .._kernels.lanes import csr_select_rows
from ..errors import DataError, SparseCrossError, shown_path
from ..featurize import Batch, _labels, featurize_features
from ..read import Source, _open, _short, open_checked, read_columns, resolve_files
from ..spec import FeatureSpec


@dataclass(frozen=True)
class _Piece:
    """Rows ``[offset, offset + rows)`` of row group ``group`` of file ``path``."""

    path: str
    group: int
    offset: int
    rows: int
    group_rows: int


@dataclass(frozen=True)
class _Chunk:
    """A unit of work: consecutive global rows ``[start_row, start_row + rows)``."""

    index: int
    start_row: int
    rows: int
    pieces: tuple[_Piece, ...]

    def describe(self) -> str:
        parts = []
        for p in self.pieces:
            part = f"{shown_path(p.path)} row group {p.group}"
            if p.offset or p.rows != p.group_rows:
                part += f" (rows {p.offset}-{p.offset + p.rows - 1} of the group)"
            parts.append(part)
        return ", ".join(parts)


def _plan(source: Source, spec: FeatureSpec, *, chunk_rows: int | None = None, start_row: int = 0,
          label: bool = True, extra_columns: Sequence[str] = (), target_rows: int | None = None
          ) -> tuple[list[_Chunk], int]:
    """Chunks of ``source`` (footers and schemas only, checked here on the client).

    One chunk per non-empty row group; with ``target_rows`` (and ``start_row`` 0), consecutive
    whole row groups (across files), as near that many rows as they come (:func:`_grouped`);
    or, with ``chunk_rows``, chunks of that many rows (boundaries at multiples of
    ``chunk_rows`` from row 0, whatever ``start_row``); rows before ``start_row`` are left
    out.  Returns (chunks, total rows of the source).
    """
    files = resolve_files(source)
    groups: list[tuple[str, int, int]] = []
    for path in files:
        pf, _strings = open_checked(path, spec, label=label, extra_columns=extra_columns)
        md = pf.metadata
        apath = os.path.abspath(path)
        for g in range(md.num_row_groups):
            n = md.row_group(g).num_rows
            if n > 0:
                groups.append((apath, g, n))
    total = sum(n for _, _, n in groups)
    chunks: list[_Chunk] = []
    if chunk_rows is None and target_rows is not None:
        if start_row:
            raise SparseCrossError("chunks of whole row groups start at row 0")
        return _grouped(groups, target_rows), total
    if chunk_rows is None:
        row = 0
        for path, g, n in groups:
            if row + n > start_row:
                off = max(start_row - row, 0)
                chunks.append(_Chunk(len(chunks), row + off, n - off, (_Piece(path, g, off, n - off, n),)))
            row += n
        return chunks, total
    if chunk_rows < 1:
        raise SparseCrossError(f"rows per chunk must be >= 1, got {chunk_rows!r}")
    pieces: list[_Piece] = []
    chunk_start = None
    filled = 0
    row = 0
    for path, g, n in groups:
        pos = 0
        while pos < n:
            gr = row + pos  # global row at pos
            boundary = (gr // chunk_rows + 1) * chunk_rows
            take = min(n - pos, boundary - gr)
            lo, hi = gr, gr + take
            if hi > start_row:
                a = max(lo, start_row)
                if chunk_start is None:
                    chunk_start = a
                pieces.append(_Piece(path, g, pos + (a - lo), hi - a, n))
                filled += hi - a
                if hi == boundary:
                    chunks.append(_Chunk(len(chunks), chunk_start, filled, tuple(pieces)))
                    pieces, chunk_start, filled = [], None, 0
            pos += take
        row += n
    if pieces:
        assert chunk_start is not None
        chunks.append(_Chunk(len(chunks), chunk_start, filled, tuple(pieces)))
    return chunks, total


def _grouped(groups: list[tuple[str, int, int]], target: int) -> list[_Chunk]:
    """Chunks of consecutive whole row groups (path, group, rows): a chunk takes the next
    group while that brings its rows strictly nearer ``target`` (so a group of ``target`` rows
    or more is a chunk of its own, and smaller ones are put together)."""
    chunks: list[_Chunk] = []
    pieces: list[_Piece] = []
    row = start = 0
    for path, g, n in groups:
        if pieces and 2 * (row - start) + n >= 2 * target:  # not nearer: close the chunk
            chunks.append(_Chunk(len(chunks), start, row - start, tuple(pieces)))
            pieces, start = [], row
        pieces.append(_Piece(path, g, 0, n, n))
        row += n
    if pieces:
        chunks.append(_Chunk(len(chunks), start, row - start, tuple(pieces)))
    return chunks


def _read_chunk(chunk: _Chunk, spec: FeatureSpec, *, batch_rows: int, label: bool = True,
                extra_columns: Sequence[str] = ()) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Record batches of one chunk, read exactly as :func:`sparsecross.read.iter_record_batches`
    reads them (same columns, strings as dictionaries); yields (batch, first global row)."""
    columns = read_columns(spec, label=label, extra_columns=extra_columns)
    row = chunk.start_row
    for piece in chunk.pieces:
        path = Path(piece.path)
        where = f"{shown_path(path)} row group {piece.group}"
        pf0, strings = open_checked(path, spec, label=label)
        pf = _open(path, strings) if strings else pf0
        pos = 0
        end = piece.offset + piece.rows
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[piece.group], columns=columns,
                                         use_threads=False):
                n = batch.num_rows
                lo = max(piece.offset - pos, 0)
                hi = min(end - pos, n)
                pos += n
                if hi > lo:
                    if lo or hi < n:
                        batch = batch.slice(lo, hi - lo)
                    yield batch, row
                    row += hi - lo
                if pos >= end:
                    break
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"cannot read {where} (row {row}): {_short(exc)}") from None
        if pos < end:
            raise DataError(f"cannot read {where}: it ended after {pos} rows, the footer says {piece.group_rows}")


def _concat(spec: FeatureSpec, parts: list[Batch], start_row: int) -> Batch:
    """One Batch from consecutive Batches (rows in order)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        X = sp.csr_array((np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(1, np.int64)),
                         shape=(0, spec.n_columns))
        return Batch(X, np.zeros(0), None, start_row)
    offsets = np.cumsum([0] + [p.X.nnz for p in parts])
    indptr = np.concatenate([parts[0].X.indptr[:1]] + [p.X.indptr[1:] + o for p, o in zip(parts, offsets[:-1])])
    indices = np.concatenate([p.X.indices for p in parts])
    data = np.concatenate([p.X.data for p in parts])
    X = sp.csr_array((data, indices, indptr), shape=(len(indptr) - 1, spec.n_columns))
    X.has_sorted_indices = True
    X.has_canonical_format = True
    y = np.concatenate([p.y for p in parts])
    w = None if parts[0].sample_weight is None else np.concatenate([p.sample_weight for p in parts])
    return Batch(X, y, w, start_row)


def _featurize_chunk(chunk: _Chunk, spec: FeatureSpec, batch_rows: int) -> Batch:
    """Read and featurize one chunk (labels included) into a single Batch."""
    parts = []
    # One Arrow batch per row group (the chunk is the unit of memory anyway): no CSR copies.
    for rb, row in _read_chunk(chunk, spec, batch_rows=max(batch_rows, chunk.rows)):
        y, w = _labels(spec, rb, row)
        parts.append(Batch(featurize_features(spec, rb, row), y, w, row))
    return _concat(spec, parts, chunk.start_row)


def _holdout_mask(start_row: int, n: int, holdout: float | None, salt: int) -> np.ndarray:
    from .._kernels.hash import holdout_mask

    if holdout is None:
        return np.zeros(0, dtype=np.uint8)
    return holdout_mask(start_row, n, float(holdout), np.uint64(salt))


def _task_featurize(chunk: _Chunk, spec: FeatureSpec, batch_rows: int) -> Batch:
    """Task: a chunk's featurized rows (exact mode: they travel to the client)."""
    return _featurize_chunk(chunk, spec, batch_rows)


def _task_featurize_valid(chunk: _Chunk, spec: FeatureSpec, batch_rows: int, holdout: float | None,
                          salt: int) -> Batch:
    """Task: a chunk's rows for validation (with ``holdout``: only the holdout rows)."""
    b = _featurize_chunk(chunk, spec, batch_rows)
    if holdout is None:
        return b
    rows = np.flatnonzero(_holdout_mask(b.start_row, b.X.shape[0], holdout, salt)).astype(np.int64)
    indptr, indices, data = csr_select_rows(b.X.indptr, b.X.indices, b.X.data, rows)
    X = sp.csr_array((data, indices, indptr), shape=(len(rows), spec.n_columns))
    X.has_sorted_indices = True
    X.has_canonical_format = True
    w = None if b.sample_weight is None else b.sample_weight[rows]
    return Batch(X, b.y[rows], w, b.start_row)
