"""Checkpoints: the ``state.npz`` of one run, read back as untrusted input.

A checkpoint belongs to exactly one run: the same spec (its SHA-256), the same parameters and
the same data files, each fingerprinted by its resolved absolute path, size, modification
time and the SHA-256 of its Parquet footer (:func:`source_fingerprint`).

A checkpoint is a file on disk that anything may have truncated, corrupted or replaced, and
the Numba kernels that resume from it do not bounds-check (a full hash table makes a lookup
probe forever).  :func:`read_checkpoint` therefore opens the archive with :mod:`zipfile`
itself (stored members only, no more bytes than the file holds, no pickles, every ``.npy``
header checked before its data is read) and :func:`validate_checkpoint` checks every array
and meta value against the run before a kernel sees them.  Everything is linear in the size
of the file (plus a sort of the occupied keys).  Every failure is a
:class:`~sparsecross.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._values import is_int, is_num
from .admission import Admission, AdmitPolicy, check_arrays
from .errors import NAME_LIMIT, CheckpointError, DataError, plain, shown, shown_path
from .hashing import fmix64_array
from .read import Source, resolve_files
from .state import MAX_LOAD, FTRLState, _float_of, evicted_counts, word_dtype_for
from .state16 import State16, problems16

__all__ = ["CHECKPOINT_FILE", "open_checkpoint", "best_file", "save_best", "read_best", "read_checkpoint", "validate_checkpoint",
           "source_fingerprint", "parquet_footer_sha256", "start_over"]

#: Name of the checkpoint file inside a ``--checkpoint`` folder.
CHECKPOINT_FILE = "state.npz"

#: Longest Parquet footer accepted (the format stores its length in 4 bytes).
_MAX_FOOTER = 1 << 31

#: Members written by :meth:`FTRLState.save`: name -> (dtype, number of dimensions).
_MEMBERS: dict[str, tuple[tuple[np.dtype, ...], int]] = {
    "table": ((np.dtype(np.uint32), np.dtype(np.uint64)), 2),
    "count": ((np.dtype(np.int64),), 1),
    "bias": ((np.dtype(np.float64),), 1),
    "meta": ((np.dtype(np.uint8),), 1),
    "n_columns": ((np.dtype(np.int64),), 1),
    "dtype": ((np.dtype(np.uint8),), 1),
    "evicted": ((np.dtype(np.int64),), 1),  # (features evicted, sweeps) by the state budget
    # admission (only in a run that admits): checked against the run's policy by
    # admission.check_arrays
    "admit_filter": ((np.dtype(np.uint8),), 1),
    "admit_counts": ((np.dtype(np.int64),), 1),
    # a 16-bit state (state16.py): checked by state16.problems
    "state_bits": ((np.dtype(np.int64),), 1),
    "zbig": ((np.dtype(np.float32),), 1),
    "zstats": ((np.dtype(np.int64),), 1),
}
#: Members a checkpoint may lack: of an older version (read as zeros), or of a run without admission.
_OPTIONAL = {"evicted", "admit_filter", "admit_counts", "state_bits", "zbig", "zstats"}
_FIXED_SHAPES = {"count": (1,), "bias": (2,), "n_columns": (1,), "evicted": (2,), "admit_counts": (2,),
                 "state_bits": (1,), "zstats": (4,)}
NO_ADMISSION = AdmitPolicy()
_MAX_MEMBERS = 64  # np.savez writes 7 (9 with admission); more entries in the directory is not a checkpoint


#: Early stopping keeps the best epoch's state beside ``state.npz`` as ``best-<epoch>.npz``.
BEST_PREFIX = "best-"


# ----------------------------------------------------------------------- fingerprint
def parquet_footer_sha256(path: Path, size: int) -> str:
    """SHA-256 (hex) of the Thrift footer of the Parquet file ``path`` of ``size`` bytes.

    A Parquet file ends with the footer, its length (4 bytes, little-endian) and ``PAR1``.

    Raises
    ------
    DataError
        If the file does not end like a Parquet file or names an impossible footer length.
    """
    name = shown_path(path)  # how errors name the file
    if size < 12:
        raise DataError(f"{name} is not a Parquet file: {size} bytes is too short")
    try:
        with open(path, "rb") as fh:
            fh.seek(size - 8)
            tail = fh.read(8)
            if len(tail) != 8 or tail[4:] != b"PAR1":
                raise DataError(f"{name} is not a Parquet file: it does not end with 'PAR1'")
            length = int.from_bytes(tail[:4], "little")
            if length < 1 or length > min(size - 12, _MAX_FOOTER):
                raise DataError(f"{name} is not a Parquet file: its footer length {length:,} is "
                                f"impossible in a file of {size:,} bytes")
            fh.seek(size - 8 - length)
            digest = hashlib.sha256()
            left = length
            while left:
                block = fh.read(min(left, 1 << 20))
                if not block:
                    raise DataError(f"{name} changed while its footer was read")
                digest.update(block)
                left -= len(block)
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}") from None
    return digest.hexdigest()


def source_fingerprint(source: Source) -> list[list[Any]]:
    """The data files of a run: ``[resolved absolute path, size, st_mtime_ns, footer SHA-256]``
    per file, in the order they are read.  ``data.parquet`` and ``./data.parquet`` are the
    same file; a file rewritten in place differs by its mtime or its footer (the footer holds
    the row groups' offsets, sizes and statistics)."""
    out: list[list[Any]] = []
    for p in resolve_files(source):
        try:
            real = p.resolve()
            st = real.stat()
        except OSError as exc:
            raise DataError(f"cannot read {shown_path(p)}: {exc.strerror or exc}") from None
        out.append([str(real), int(st.st_size), int(st.st_mtime_ns), parquet_footer_sha256(real, int(st.st_size))])
    return out


# ---------------------------------------------------------------------------- errors
#: Words a refusal of the file ``path`` for ``what`` is wrong with it.
Refusal = Callable[[Path, str], CheckpointError]


def _bad(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {shown_path(path)} is damaged or not from this version of "
                           f"sparsecross: {what}; {start_over(path)}")


def start_over(path: str | os.PathLike[str]) -> str:
    """How a refusal of the checkpoint file ``path`` ends: delete its folder, named short."""
    return f"delete the folder {shown_path(Path(path).parent)} to start over"


# --------------------------------------------------------------------------- reading
#: Longest ``.npy`` header read: NumPy's own limit (``max_header_size``).
_MAX_HEADER = 10_000
#: A member's ``.npy`` header as NumPy writes it (the dict's keys sorted, each value's repr,
#: then spaces and a newline), for an array of one plain dtype.  Matched here, not parsed by
#: NumPy, whose parser warns (a Python 2 header, a deprecated dtype alias) and raises whatever
#: its tokenizer and ``ast.literal_eval`` raise: a warning cannot be made an error for one
#: thread (``catch_warnings`` changes the filters of every thread of the process).
_DIM = r"(?:0|[1-9]\d*)"
_NPY_HEADER = re.compile(rf"\{{'descr': '([<>|][biufcOSUV]\d*)', 'fortran_order': (False|True), "
                         rf"'shape': (\(\)|\({_DIM},\)|\({_DIM}(?:, {_DIM})+\)), \}} *\n")
#: What reading a header raises: ValueError (ours, ``read_magic``'s), TypeError and
#: OverflowError (``np.dtype`` of a descr it does not know).
_HEADER_ERRORS = (ValueError, TypeError, OverflowError)


def _read_exact(fh: Any, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError(f"{what} is truncated")
    return data


def _read_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, Fortran order, dtype) of the ``.npy`` member open at ``fh``, left at its data."""
    version = np.lib.format.read_magic(fh)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy version {version}")
    length = int.from_bytes(_read_exact(fh, 2 if version == (1, 0) else 4, "its header length"), "little")
    if length > _MAX_HEADER:
        raise ValueError(f"its header of {length:,} bytes is longer than {_MAX_HEADER:,}")
    text = _read_exact(fh, length, "its header").decode("latin-1")
    m = _NPY_HEADER.fullmatch(text)
    if m is None:
        raise ValueError(f"not a header NumPy writes: {text!r}")
    descr, fortran, shape = m.groups()
    return tuple(int(d) for d in re.findall(r"\d+", shape)), fortran == "True", np.dtype(descr)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, refuse: Refusal) -> np.ndarray:
    """One ``.npy`` member: header checked (version, dtype, shape, size) before the data is
    read; returns a writable C-contiguous array."""
    name = info.filename[:-4]
    dtypes, ndim = _MEMBERS[name]
    with zf.open(info) as fh:
        try:
            shape, fortran, dtype = _read_header(fh)
        except _HEADER_ERRORS as exc:
            detail = (str(exc).splitlines() or [""])[0] or type(exc).__name__
            raise refuse(path, f"member {name!r} is not an array ({plain(detail)})") from None
        if dtype.hasobject:
            raise refuse(path, f"member {name!r} holds Python objects (a pickle), which are never loaded")
        if dtype not in dtypes:
            raise refuse(path, f"member {name!r} has dtype {dtype.str}, expected "
                               f"{' or '.join(d.str for d in dtypes)}")
        if len(shape) != ndim:
            raise refuse(path, f"member {name!r} has shape {shape}, expected {ndim} dimension(s)")
        want = _FIXED_SHAPES.get(name)
        if want is not None and shape != want:
            raise refuse(path, f"member {name!r} has shape {shape}, expected {want}")
        nbytes = math.prod(shape) * dtype.itemsize
        header = fh.tell()
        if header + nbytes != info.file_size:
            raise refuse(path, f"member {name!r} holds {info.file_size - header:,} data bytes, its header says "
                               f"{nbytes:,}")
        # read into an array that owns its memory: the state table must be resizable (it grows in place)
        arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        with memoryview(arr) as view, view.cast("B") as raw:
            if fh.readinto(raw) != nbytes:
                raise refuse(path, f"member {name!r} is truncated")
    return np.ascontiguousarray(arr)


def read_checkpoint(path: str | os.PathLike[str], *, refuse: Refusal = _bad) -> tuple[FTRLState, dict[str, Any]]:
    """Read a checkpoint written by :meth:`FTRLState.save` as untrusted input: the archive's
    structure and every array's dtype and shape are checked (no pickle, no decompression, no
    more bytes than the file holds).  The *values* are not checked here: see
    :func:`validate_checkpoint`.  ``refuse(path, what)`` words the error (a checkpoint's by
    default; :meth:`FTRLState.load` names a saved state).  Returns (state, meta)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise refuse(path, f"it has {len(infos):,} members")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise refuse(path, "a member name appears twice")
            missing = sorted(f"{m}.npy" for m in _MEMBERS if f"{m}.npy" not in names and m not in _OPTIONAL)
            if missing:
                raise refuse(path, f"member(s) {', '.join(missing)} missing")
            total = 0
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                    raise refuse(path, f"member {shown(info.filename, NAME_LIMIT)} is compressed (sparsecross stores "
                                       "every member uncompressed)")
                total += info.file_size
            if total > size:
                raise refuse(path, f"its members claim {total:,} bytes in a file of {size:,}")
            for info in infos:
                if info.filename.endswith(".npy") and info.filename[:-4] in _MEMBERS:
                    arrays[info.filename[:-4]] = _read_member(zf, info, path, refuse)
    except CheckpointError:
        raise
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zipfile.BadZipFile,
            zipfile.LargeZipFile) as exc:
        raise refuse(path, f"it cannot be read as a zip archive ({type(exc).__name__}: "
                           f"{plain(str(exc).splitlines()[0]) if str(exc) else 'no detail'})") from None
    try:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise refuse(path, "its meta is not JSON") from None
    if not isinstance(meta, dict):
        raise refuse(path, "its meta is not a JSON object")
    try:
        dtype = arrays["dtype"].tobytes().decode("ascii")
    except UnicodeDecodeError:
        dtype = "?"
    if dtype not in ("float32", "float64"):
        raise refuse(path, f"its state dtype {dtype[:20]!r} is not 'float32' or 'float64'")
    table = arrays["table"]
    bits = int(arrays["state_bits"][0]) if "state_bits" in arrays else 32
    width = 2 if bits == 16 else 3
    if bits == 16 and ("zbig" not in arrays or "zstats" not in arrays or dtype != "float32"):
        raise refuse(path, "its 16-bit state lacks zbig or zstats, or is not float32")
    if bits not in (16, 32) or (bits == 32 and ("zbig" in arrays or "zstats" in arrays)):
        raise refuse(path, f"its state_bits {bits} is not 16, or a 32-bit state has 16-bit members")
    if table.shape[1] != width:
        raise refuse(path, f"its table has shape {table.shape}, expected (capacity, {width})")
    if bits == 16:
        st: FTRLState = State16.from_arrays(int(arrays["n_columns"][0]), table, arrays["count"], arrays["bias"],
                                            arrays["zbig"], arrays["zstats"])
    else:
        st = FTRLState.__new__(FTRLState)
        st.n_columns, st.dtype = int(arrays["n_columns"][0]), dtype
        st.table = table
        st.values = table.view(_float_of(table.dtype))
        st.count, st.bias = arrays["count"], arrays["bias"]
    evicted = arrays.get("evicted", np.zeros(2, dtype=np.int64))
    st.evicted_features, st.evictions = evicted_counts(evicted)
    if st.evicted_features < 0:
        raise refuse(path, f"its evicted counts {evicted.tolist()} are not (features >= sweeps >= 0)")
    st.admission_arrays = (arrays.get("admit_filter"), arrays.get("admit_counts"))  # checked by validate
    return st, meta


# ------------------------------------------------------------------------ validation
def _home_slots(keys: np.ndarray, cap: int) -> np.ndarray:
    """First probe slot of each key (``slot_of``: fmix64(key) & (cap - 1)), vectorized."""
    return (fmix64_array(keys) & np.uint64(cap - 1)).astype(np.int64)


def _check_state(path: Path, st: FTRLState, n_columns: int, state_dtype: str, state_bits: int = 32) -> None:
    if st.bits != state_bits:
        raise _bad(path, f"its state is {st.bits}-bit, this run's is {state_bits}-bit")
    if st.n_columns != n_columns:
        raise _bad(path, f"its state has {st.n_columns:,} columns, this run has {n_columns:,}")
    if st.dtype != state_dtype:
        raise _bad(path, f"its state is {st.dtype}, this run's is {state_dtype}")
    word = word_dtype_for(n_columns, state_dtype)
    if st.table.dtype != word:
        raise _bad(path, f"its table has {st.table.dtype} words, a {state_dtype} state of {n_columns:,} "
                         f"columns has {word}")
    cap = st.capacity
    if cap < 1 or cap & (cap - 1):
        raise _bad(path, f"its table capacity {cap:,} is not a power of two")
    empty = np.iinfo(word).max
    keys = st.table[:, 0]
    occupied = keys != empty
    slots = np.flatnonzero(occupied)
    count = int(st.count[0])
    if count != len(slots):
        raise _bad(path, f"its count {count:,} differs from its {len(slots):,} occupied slots")
    if count > st.max_count:
        raise _bad(path, f"its table holds {count:,} keys, more than {st.max_count:,} (load {MAX_LOAD}) "
                         f"for {cap:,} slots")
    k = keys[slots]
    if len(k) and int(k.max()) >= n_columns:
        raise _bad(path, f"it has key {int(k.max()):,}, outside the {n_columns:,} columns")
    if len(k) > 1:
        ks = np.sort(k)
        if bool(np.any(ks[1:] == ks[:-1])):
            raise _bad(path, "a key occupies two slots")
    if isinstance(st, State16):
        wrong = problems16(st, slots)
        if wrong is not None:
            raise _bad(path, wrong)
    else:
        zn = st.values[slots, 1:3]
        if not bool(np.all(np.isfinite(zn))):
            raise _bad(path, "a z or n is not finite")
        if bool(np.any(zn[:, 1] < 0)):
            raise _bad(path, "an n is negative")
    # Every key must be found by linear probing from its home slot: no empty slot between.
    if len(k):
        empties = np.concatenate(([0], np.cumsum(~occupied, dtype=np.int64)))  # empties in [0, i)
        home = _home_slots(k, cap)
        gap = np.where(home <= slots, empties[slots] - empties[home],
                       empties[cap] - empties[home] + empties[slots])
        if bool(np.any(gap != 0)):
            raise _bad(path, "a key sits where a lookup cannot find it")
    if not bool(np.all(np.isfinite(st.bias))) or st.bias[1] < 0:
        raise _bad(path, f"its bias (z, n) = {st.bias.tolist()} is not finite with n >= 0")


def _check_meta(path: Path, meta: dict[str, Any], epochs: int, rows_total: int, position: str) -> None:
    epoch = meta.get("epoch")
    if not is_int(epoch) or not 0 <= epoch <= epochs:
        raise _bad(path, f"its epoch {shown(epoch)} is not an integer in [0, {epochs}]")
    if position not in meta:
        raise _bad(path, f"its meta has no {position!r}")
    for key in ("row", "round"):
        if key in meta:
            v = meta[key]
            if not is_int(v) or not 0 <= v <= rows_total:
                raise _bad(path, f"its {key} {shown(v)} is not an integer in [0, {rows_total:,}]")
    skipped = meta.get("skipped", 0)  # rows of this epoch skipped for a missing label so far
    if not is_int(skipped) or not 0 <= skipped <= rows_total:
        raise _bad(path, f"its skipped {shown(skipped)} is not an integer in [0, {rows_total:,}]")
    # accounting only: the run's peak (the best copy included), the live state's own
    for key in ("state_bytes_peak", "live_bytes_peak"):
        peak = meta.get(key, 0)
        if not is_int(peak) or peak < 0:
            raise _bad(path, f"its {key} {shown(peak)} is not an integer >= 0")
    best = meta.get("best_epoch")  # early stopping: the epoch whose state best-<epoch>.npz holds
    if best is not None and (not is_int(best) or not 1 <= best <= epoch):
        raise _bad(path, f"its best_epoch {shown(best)} is not an integer in [1, {epoch}]")
    acc = meta.get("acc")
    if (not isinstance(acc, list) or len(acc) != 3 or not all(is_num(a) for a in acc)
            or acc[0] < 0 or acc[1] < 0 or acc[2] < 0 or acc[2] != int(acc[2]) or acc[2] > rows_total):
        raise _bad(path, f"its acc {str(acc)[:80]} is not 3 finite sums (loss >= 0, weight >= 0, "
                         f"rows in [0, {rows_total:,}])")
    history = meta.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        raise _bad(path, f"its history is not a list of {epoch} epoch record(s)")
    for i, rec in enumerate(history):
        if not isinstance(rec, dict) or rec.get("epoch") != i + 1 or type(rec.get("epoch")) is not int:
            raise _bad(path, f"its history record {i} is not the record of epoch {i + 1}")


def validate_checkpoint(path: str | os.PathLike[str], state: FTRLState, meta: dict[str, Any], *,
                        n_columns: int, state_dtype: str, epochs: int, rows_total: int,
                        position: str = "row", admit: AdmitPolicy = NO_ADMISSION, seed: int = 0,
                        state_bits: int = 32) -> None:
    """Check a state and meta read by :func:`read_checkpoint` against the run before any
    kernel sees them: the table (dtype, capacity, ``count`` = occupied slots <= the load
    limit, so never full; keys unique, below ``n_columns`` and reachable by probing; z and n
    finite, n >= 0), the bias, and the meta (``epoch`` in [0, epochs], ``position`` -- "row"
    or "round" -- in [0, rows_total], ``acc`` and ``history``), and the admission filter and
    counters against the run's policy ``admit``; then attaches them (``state.admission``,
    ``seed``: the spec's hashing seed, which also seeds a 16-bit state's rounding) and restores
    ``state.bytes_peak`` (the live state's own peak, ``live_bytes_peak``; the run's,
    ``state_bytes_peak``, counts a best copy beside it and is the epoch loop's to restore).
    ``state_bits``: the run's (a 16-bit state's words and ``zbig`` are checked by
    :func:`sparsecross.state16.problems`).

    Raises
    ------
    CheckpointError
        Naming the file and what is wrong.
    """
    path = Path(path)
    _check_state(path, state, n_columns, state_dtype, state_bits)
    _check_meta(path, meta, epochs, rows_total, position)
    # read_checkpoint left them for this check; taken off so the state holds no second filter reference
    filt, counts = vars(state).pop("admission_arrays", (None, None))
    wrong = check_arrays(admit, filt, counts)
    if wrong is not None:
        raise _bad(path, wrong)
    if admit.active:
        assert filt is not None and counts is not None
        state.admission = Admission.from_arrays(admit, seed, filt, counts)
    if isinstance(state, State16):
        state.seed = int(seed)
    state.note_peak(_live_peak(meta))


def _live_peak(meta: dict[str, Any]) -> int:
    """The live state's own peak in a checkpoint's meta.  An older checkpoint has only the
    run's peak: the live state's own while no best copy is held (no ``best_epoch``), else
    unknown (0: the run's peak is restored by the epoch loop, not here)."""
    if "live_bytes_peak" in meta:
        return int(meta["live_bytes_peak"])
    return 0 if "best_epoch" in meta else int(meta.get("state_bytes_peak", 0))


def open_checkpoint(checkpoint: str | os.PathLike[str] | None, run_meta: dict[str, Any], *,
                    n_columns: int, state_dtype: str, epochs: int, rows_total: int, position: str = "row",
                    admit: AdmitPolicy = NO_ADMISSION, seed: int = 0, state_bits: int = 32
                    ) -> tuple[Path | None, tuple[FTRLState, dict[str, Any]] | None]:
    """The checkpoint file of folder ``checkpoint`` (created if needed; None without one) and,
    if it holds a checkpoint, (state, meta) after checking that it belongs to this run (the
    same spec, parameters and data files as ``run_meta``) and is sound
    (:func:`validate_checkpoint`)."""
    if checkpoint is None:
        return None, None
    ckpt_path = Path(checkpoint) / CHECKPOINT_FILE
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    if not ckpt_path.exists():
        return ckpt_path, None
    state, meta = read_checkpoint(ckpt_path)
    for k in ("spec_sha256", "params", "data"):
        if meta.get(k) != run_meta[k]:
            raise CheckpointError(
                f"checkpoint {shown_path(ckpt_path)} belongs to another run (its {k} differs); "
                "use another --checkpoint folder or delete it"
            )
    validate_checkpoint(ckpt_path, state, meta, n_columns=n_columns, state_dtype=state_dtype, epochs=epochs,
                        rows_total=rows_total, position=position, admit=admit, seed=seed, state_bits=state_bits)
    return ckpt_path, (state, meta)


# ------------------------------------------------------------------- early stopping
def best_file(ckpt_path: Path, epoch: int) -> Path:
    """The file that holds the state of the best epoch ``epoch`` (early stopping), beside the
    checkpoint file ``ckpt_path``."""
    return ckpt_path.parent / f"{BEST_PREFIX}{int(epoch)}.npz"


def save_best(ckpt_path: Path, state: FTRLState, meta: dict[str, Any]) -> None:
    """Write the best state (a checkpoint of the end of epoch ``meta["epoch"]``, through the
    same atomic writer) before ``state.npz`` names it: a crash in between leaves the previous
    best file, which ``state.npz`` still names, in place."""
    state.save(best_file(ckpt_path, int(meta["epoch"])), meta)


def prune_best(ckpt_path: Path, keep: int | None) -> None:
    """Delete the best-state files other than epoch ``keep``'s (once ``state.npz`` names it)."""
    for f in ckpt_path.parent.glob(f"{BEST_PREFIX}*.npz"):
        if keep is None or f.name != best_file(ckpt_path, keep).name:
            try:
                f.unlink()
            except OSError:
                pass


def read_best(ckpt_path: Path, epoch: int, run_meta: dict[str, Any], *, n_columns: int, state_dtype: str,
              epochs: int, rows_total: int, admit: AdmitPolicy = NO_ADMISSION, seed: int = 0,
              state_bits: int = 32) -> FTRLState:
    """The best state of epoch ``epoch`` that the checkpoint ``ckpt_path`` names, checked as
    :func:`open_checkpoint` checks ``state.npz`` (same run, sound arrays, written at the end of
    that epoch).

    Raises
    ------
    CheckpointError
        The file is missing, damaged or of another run."""
    path = best_file(ckpt_path, epoch)
    if not path.exists():
        raise _bad(path, f"the best state of epoch {epoch} (early stopping) is missing")
    state, meta = read_checkpoint(path)
    for k in ("spec_sha256", "params", "data"):
        if meta.get(k) != run_meta[k]:
            raise _bad(path, f"it belongs to another run (its {k} differs)")
    validate_checkpoint(path, state, meta, n_columns=n_columns, state_dtype=state_dtype, epochs=epochs,
                        rows_total=rows_total, admit=admit, seed=seed, state_bits=state_bits)
    if meta.get("epoch") != epoch or meta.get("row") != 0:
        raise _bad(path, f"it is not the state at the end of epoch {epoch}")
    return state
