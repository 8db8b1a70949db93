"""The compact, versioned model artifact (``.scx``): save, load, inspect.

Format version 1.1 (1.0 plus the input schema) is described byte for byte in ``docs/ARTIFACT.md``.  In short: a 56-byte
little-endian header, a canonical JSON metadata block, the sorted keys as LEB128 varints of
their deltas, the weights as float32 / float16 / q2.13 fixed point, and a CRC-32 of everything
before it.  No pickle: loading parses bytes and JSON and never executes code.

The same model (and library version) always gives the same bytes, including the lossy
encodings: q2.13's randomized rounding draws from a generator seeded from the model itself.
"""

from __future__ import annotations

import json
import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ._kernels.leb128 import STATUS_MESSAGES, STATUS_OK, decode_deltas
from .errors import ArtifactError, ClippedWeightsWarning, SpecError, shown, shown_path
from .files import atomic_output
from .hashing import HASH_CONTRACT
from .model import SparseModel
from .spec import FeatureSpec, parse_spec

__all__ = [
    "save_model",
    "load_model",
    "read_header",
    "model_bytes",
    "MAGIC",
    "FORMAT_VERSION",
    "ENCODINGS",
    "HEADER_SIZE",
]

MAGIC = b"SCXMODEL"
#: (major, minor) written by this library.  Files with a larger major are refused; a larger
#: minor of the same major only adds things a 1.0 reader may ignore.
FORMAT_VERSION = (1, 1)
#: Value encodings: name -> (header code, bytes per value, little-endian numpy dtype).
ENCODINGS: dict[str, tuple[int, int, str]] = {
    "float32": (0, 4, "<f4"),
    "float16": (1, 2, "<f2"),
    "q2.13": (2, 2, "<i2"),
}
_CODE_TO_ENCODING = {code: name for name, (code, _, _) in ENCODINGS.items()}
_HEADER = struct.Struct("<8sHHB3sQQQQd")
HEADER_SIZE = _HEADER.size  # 56
_CRC = struct.Struct("<I")
_TRAILER_SIZE = _CRC.size  # 4
_Q_SCALE = 2.0**13
_Q_MIN, _Q_MAX = -32768, 32767  # [-4, 4 - 2**-13]
_F16_MAX = float(np.finfo(np.float16).max)  # 65504
_REQUIRED_META = (
    "format_version", "library_version", "hash_contract", "spec", "spec_sha256",
    "params", "stats", "value_encoding",
)
#: Key of the sub-object of metadata ``stats`` that describes the file itself (written by
#: :func:`model_bytes`, removed again from ``SparseModel.stats`` by :func:`load_model`).
ARTIFACT_STATS_KEY = "artifact"
_CHUNK = 1 << 22


# =========================================================================== writing
def model_bytes(model: SparseModel, encoding: str | None = None) -> bytes:
    """Serialize ``model`` into artifact bytes (format 1.1), in memory.

    Parameters
    ----------
    model : SparseModel
    encoding : {"float32", "float16", "q2.13"} or None
        How the weights are stored; None uses ``model.value_encoding``.  ``float16`` rounds to
        nearest (clipped to +-65504); ``q2.13`` stores ``round(w * 2**13)`` as int16 with the
        randomized rounding ``floor(2**13 * w + R)``, ``R ~ U[0, 1)``, clipped to
        ``[-4, 4 - 2**-13]``.  Weights that are (or become) exactly 0 are left out.

    Returns
    -------
    bytes
        The complete file contents; identical for identical models.

    Raises
    ------
    ArtifactError
        Unknown encoding, keys not strictly increasing / outside the column space, a
        non-finite weight or bias, or params/stats that are not JSON data.
    """
    return _encode(model, encoding)[0]


def _encode(model: SparseModel, encoding: str | None) -> tuple[bytes, dict[str, Any]]:
    """:func:`model_bytes`, and the ``stats.artifact`` record written into them."""
    enc = _resolve_encoding(model, encoding)
    code, width, dtype = ENCODINGS[enc]
    spec: FeatureSpec = model.spec
    keys = np.ascontiguousarray(model.keys, dtype=np.uint64)
    w = np.ascontiguousarray(model.weights, dtype=np.float32)
    if keys.ndim != 1 or keys.shape != w.shape:
        raise ArtifactError(
            f"cannot save model: keys and weights must be 1-d of equal length, got {keys.shape} and {w.shape}"
        )
    if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        raise ArtifactError("cannot save model: keys must be strictly increasing")
    if len(keys) and int(keys[-1]) >= spec.n_columns:
        raise ArtifactError(
            f"cannot save model: key {int(keys[-1])} is outside the spec's column space ({spec.n_columns})"
        )
    if not bool(np.all(np.isfinite(w))):
        bad = int(np.flatnonzero(~np.isfinite(w))[0])
        raise ArtifactError(
            f"cannot save model: weight of key {int(keys[bad])} is {float(w[bad])!r}; "
            "weights must be finite (did training diverge? lower alpha)"
        )
    bias = float(model.bias)
    if not math.isfinite(bias):
        raise ArtifactError(f"cannot save model: bias is {bias!r}; it must be finite")

    raw, approx = _quantize(w, enc, _rounding_rng(spec, len(w)))
    keep = approx != 0
    n = int(np.count_nonzero(keep))
    out_keys = keys[keep]
    values = raw[keep].astype(dtype, copy=False).tobytes()
    from ._kernels.varint import encode_deltas  # Numba: only when writing

    key_stream = encode_deltas(out_keys).tobytes()
    assert len(values) == n * width

    stats = _jsonable(dict(model.stats), "stats")
    stats[ARTIFACT_STATS_KEY] = artifact = {
        "value_encoding": enc,
        "input_weights": int(len(w)),
        "nonzeros": n,
        "dropped_zeros": int(len(w) - n),
        "keys_bytes": len(key_stream),
        "values_bytes": len(values),
        "max_abs_error": float(np.max(np.abs(approx.astype(np.float64) - w), initial=0.0)),
        "clipped": _clipped(w, enc),
    }
    from . import __version__

    meta = {
        "format_version": f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}",
        "library_version": __version__,
        "hash_contract": HASH_CONTRACT,
        "spec": spec.to_dict(),
        "spec_sha256": spec.sha256,
        "params": _jsonable(dict(model.params), "params"),
        "stats": stats,
        "value_encoding": enc,
        "schema": _jsonable(dict(model.schema), "schema"),
    }
    meta_bytes = json.dumps(
        meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
    header = _HEADER.pack(
        MAGIC, FORMAT_VERSION[0], FORMAT_VERSION[1], code, b"\0\0\0",
        n, len(meta_bytes), len(key_stream), len(values), bias,
    )
    body = b"".join((header, meta_bytes, key_stream, values))
    return body + _CRC.pack(zlib.crc32(body)), artifact


def save_model(model: SparseModel, path: str | os.PathLike[str], *, encoding: str | None = None) -> int:
    """Write ``model`` to ``path`` atomically; return the file size in bytes.

    The bytes (see :func:`model_bytes`) go to a fresh temporary file in the same folder
    (:func:`sparsecross.files.atomic_output`), which is flushed, fsynced and then renamed over
    ``path``.  If anything fails, the temporary file is removed and an existing ``path`` is left
    untouched.

    Raises
    ------
    ArtifactError
        The model cannot be serialized (see :func:`model_bytes`) or the file cannot be
        written (the message names the path).
    """
    data, artifact = _encode(model, encoding)
    with atomic_output(path, "model file", ArtifactError) as fh:
        fh.write(data)
    _warn_if_clipped(artifact)
    return len(data)


def _resolve_encoding(model: SparseModel, encoding: str | None) -> str:
    enc = model.value_encoding if encoding is None else encoding
    if enc not in ENCODINGS:
        raise ArtifactError(
            f"unknown value encoding {enc!r}; expected one of {', '.join(map(repr, ENCODINGS))}"
        )
    return enc


def _rounding_rng(spec: FeatureSpec, n: int) -> np.random.Generator:
    """The q2.13 randomized-rounding generator, seeded from the model (same model, same R)."""
    return np.random.default_rng(
        np.random.SeedSequence([int(spec.hashing.seed), int(n), int(spec.sha256[:16], 16)])
    )


def _quantize(w: np.ndarray, enc: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(stored values in the encoding's dtype, their float32 value) for float32 weights ``w``."""
    if enc == "float32":
        return w, w
    if enc == "float16":
        h = np.clip(w, -_F16_MAX, _F16_MAX).astype(np.float16)
        return h, h.astype(np.float32)
    # q2.13: floor(2**13 w + R) == floor(x) + (R < frac(x)); exact for x already integral.
    x = w.astype(np.float64) * _Q_SCALE
    fl = np.floor(x)
    r = rng.random(len(w))
    q = fl + (r < (x - fl))
    q = np.clip(q, _Q_MIN, _Q_MAX).astype(np.int16)
    return q, (q.astype(np.float32) * np.float32(2.0**-13))


def _clipped(w: np.ndarray, enc: str) -> int:
    """How many weights lie beyond the encoding's range (stored clipped to its ends)."""
    if enc == "float16":
        return int(np.count_nonzero(np.abs(w) > _F16_MAX))
    if enc == "q2.13":
        x = w.astype(np.float64) * _Q_SCALE
        return int(np.count_nonzero((x < _Q_MIN) | (x >= _Q_MAX + 1)))
    return 0


def _warn_if_clipped(art: dict[str, Any]) -> None:
    """One warning when a file stores clipped weights: how many, and the largest error."""
    if art["clipped"]:
        lo, hi = ("-65504", "65504") if art["value_encoding"] == "float16" else ("-4", "4")
        warnings.warn(
            f"{art['value_encoding']} encoding clipped {art['clipped']:,} weights to [{lo}, {hi}]; the "
            f"largest weight error is {art['max_abs_error']:.4g} (use --encoding float32 to keep them)",
            ClippedWeightsWarning, stacklevel=3,
        )


def _jsonable(obj: Any, where: str) -> Any:
    """A JSON-data copy of ``obj``: numpy scalars/arrays to Python, tuples to lists,
    non-finite floats to None.  Anything else that is not JSON data is an ArtifactError."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ArtifactError(f"cannot save model: {where} has a non-string key {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(obj, Path):
        return str(obj)
    raise ArtifactError(
        f"cannot save model: {where} is a {type(obj).__name__}, expected JSON data "
        "(numbers, strings, booleans, None, lists, dicts)"
    )


# =========================================================================== reading
def _parse_header(head: bytes, file_bytes: int, name: str) -> dict[str, Any]:
    """Validate the fixed header against the file size; nothing else is read or allocated.
    ``name``: the file as errors name it (``errors.shown``: a path is untrusted)."""
    if len(head) < len(MAGIC) or head[: len(MAGIC)] != MAGIC:
        raise ArtifactError(
            f"{name} is not a sparsecross model (expected the magic bytes {MAGIC!r} at offset 0, "
            f"got {bytes(head[:8])!r})"
        )
    if len(head) < HEADER_SIZE:
        raise ArtifactError(
            f"{name} is truncated: {file_bytes} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    _, major, minor, code, _reserved, n, meta_len, keys_len, values_len, bias = _HEADER.unpack(head)
    supported = f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
    if major > FORMAT_VERSION[0]:
        raise ArtifactError(
            f"{name} has artifact format version {major}.{minor}, newer than the version "
            f"{supported} this sparsecross supports; upgrade sparsecross to read it"
        )
    if major < 1:
        raise ArtifactError(
            f"{name} has artifact format version {major}.{minor}, which does not exist; "
            f"this sparsecross supports version {supported}"
        )
    if code not in _CODE_TO_ENCODING:
        raise ArtifactError(
            f"{name}: unknown value encoding code {code} in the header (expected 0, 1 or 2)"
        )
    enc = _CODE_TO_ENCODING[code]
    width = ENCODINGS[enc][1]
    expected = HEADER_SIZE + meta_len + keys_len + values_len + _TRAILER_SIZE
    if expected != file_bytes:
        raise ArtifactError(
            f"{name} is corrupted or truncated: the header announces {expected} bytes "
            f"(metadata {meta_len}, keys {keys_len}, values {values_len}), the file has {file_bytes}"
        )
    if n > keys_len:
        raise ArtifactError(
            f"{name} is corrupted: {n} weights cannot fit in a {keys_len}-byte key stream"
        )
    if values_len != n * width:
        raise ArtifactError(
            f"{name} is corrupted: {n} {enc} weights need {n * width} bytes, the header says {values_len}"
        )
    return {
        "format_version": f"{major}.{minor}",
        "major": major,
        "minor": minor,
        "value_encoding": enc,
        "value_width": width,
        "n_weights": n,
        "bias": bias,
        "meta_len": meta_len,
        "keys_len": keys_len,
        "values_len": values_len,
        "file_bytes": file_bytes,
    }


def _read_head(f: Any, name: str) -> tuple[int, bytes, dict[str, Any]]:
    """The file's size, its fixed header's bytes and their parse: the one way both readers start."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(HEADER_SIZE)
    return size, head, _parse_header(head, size, name)


def _check_crc(crc: int, stored: bytes, name: str) -> None:
    (want,) = _CRC.unpack(stored)
    if crc != want:
        raise ArtifactError(
            f"{name} is corrupted or truncated: CRC-32 checksum mismatch "
            f"(stored {want:08x}, computed {crc:08x})"
        )


def _parse_meta(raw: bytes | memoryview, hdr: dict[str, Any], name: str) -> tuple[dict[str, Any], FeatureSpec]:
    """Parse and check the metadata JSON; returns it with the rebuilt spec."""

    def reject_constant(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    try:
        meta = json.loads(bytes(raw).decode("utf-8"), parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"{name}: the metadata block is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{name}: the metadata must be a JSON object, got {type(meta).__name__}")
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise ArtifactError(f"{name}: the metadata lacks {', '.join(map(repr, missing))}")
    fv = meta["format_version"]
    if not isinstance(fv, str) or fv.split(".")[0] != str(hdr["major"]):
        raise ArtifactError(
            f"{name}: metadata format_version {shown(fv)} disagrees with the header ({hdr['format_version']})"
        )
    if meta["hash_contract"] != HASH_CONTRACT:
        raise ArtifactError(
            f"{name} was built with hash contract {shown(meta['hash_contract'])}; this sparsecross "
            f"implements {HASH_CONTRACT!r} and would compute different features"
        )
    if meta["value_encoding"] != hdr["value_encoding"]:
        raise ArtifactError(
            f"{name}: metadata value_encoding {shown(meta['value_encoding'])} disagrees with the "
            f"header ({hdr['value_encoding']!r})"
        )
    for key in ("params", "stats", "spec"):
        if not isinstance(meta[key], dict):
            raise ArtifactError(f"{name}: metadata {key!r} must be a JSON object")
    if not isinstance(meta["library_version"], str):
        raise ArtifactError(f"{name}: metadata 'library_version' must be a string")
    schema = meta.get("schema", {})  # format 1.1; absent in 1.0 files
    if not isinstance(schema, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in schema.items()):
        raise ArtifactError(f"{name}: metadata 'schema' must map column names to type names")
    try:
        # stored: the resolved form of quantile buckets, and what older versions accepted
        spec = parse_spec(meta["spec"], stored=True)
        sha = spec.sha256
        _ = spec.n_columns  # resolves the layout: a spec with unresolved quantiles is refused
    except SpecError as exc:
        raise ArtifactError(f"{name}: the embedded spec is invalid: {exc}") from None
    if meta["spec_sha256"] != sha:
        raise ArtifactError(
            f"{name}: the embedded spec hashes to {sha}, the metadata says {shown(meta['spec_sha256'])}"
        )
    return meta, spec


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate an artifact's header and metadata without decoding the weights.

    The whole file is streamed once to verify the CRC-32; keys and values are not decoded.

    Returns
    -------
    dict
        ``format_version`` ("1.0"), ``major``, ``minor``, ``value_encoding``, ``value_width``
        (bytes per value), ``n_weights`` (stored nonzeros), ``bias``, ``meta_len``,
        ``keys_len``, ``values_len``, ``file_bytes``, ``bytes_per_nonzero`` (file_bytes /
        n_weights, None for an empty model), ``crc32`` and ``metadata`` (the parsed JSON).

    Raises
    ------
    ArtifactError
        Missing/unreadable file, wrong magic, newer major version, inconsistent sizes,
        checksum mismatch or invalid metadata.
    """
    p = os.fspath(path)
    name = shown_path(p)  # how errors name the file
    try:
        with open(p, "rb") as f:
            size, head, hdr = _read_head(f, name)
            crc = zlib.crc32(head)
            meta_raw = f.read(hdr["meta_len"])
            crc = zlib.crc32(meta_raw, crc)
            left = hdr["keys_len"] + hdr["values_len"]
            while left > 0:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    break
                crc = zlib.crc32(chunk, crc)
                left -= len(chunk)
            stored = f.read(_TRAILER_SIZE)
    except OSError as exc:
        raise ArtifactError(f"cannot read model file {name}: {exc.strerror or exc}") from None
    if len(meta_raw) != hdr["meta_len"] or left or len(stored) != _TRAILER_SIZE:
        raise ArtifactError(f"{name} is corrupted or truncated: it changed while being read")
    _check_crc(crc, stored, name)
    meta, _ = _parse_meta(meta_raw, hdr, name)
    hdr["crc32"] = _CRC.unpack(stored)[0]
    hdr["bytes_per_nonzero"] = hdr["file_bytes"] / hdr["n_weights"] if hdr["n_weights"] else None
    hdr["metadata"] = meta
    return hdr


def load_model(path: str | os.PathLike[str]) -> SparseModel:
    """Load a model artifact written by :func:`save_model`.

    The 56-byte header is validated before anything else is read or allocated; then the rest
    is read in one go, the CRC-32 verified, the metadata parsed (spec rebuilt with
    :func:`~sparsecross.spec.parse_spec`) and the keys/values decoded.  No code is executed.

    Returns
    -------
    SparseModel
        keys (uint64), weights (float32, dequantized), bias, spec, params, stats (without the
        file's ``"artifact"`` entry, see :func:`read_header`), ``value_encoding`` of the file
        and the ``library_version`` that wrote it.

    Raises
    ------
    ArtifactError
        Missing/unreadable file, not an artifact, newer major version, corrupted or truncated
        file, invalid metadata or spec, other hash contract.  The message names the path.
    """
    p = os.fspath(path)
    name = shown_path(p)  # how errors name the file
    try:
        with open(p, "rb") as f:
            size, head, hdr = _read_head(f, name)
            rest = f.read(size - HEADER_SIZE)
    except OSError as exc:
        raise ArtifactError(f"cannot read model file {name}: {exc.strerror or exc}") from None
    if len(rest) != size - HEADER_SIZE:
        raise ArtifactError(f"{name} is corrupted or truncated: it changed while being read")
    view = memoryview(rest)
    _check_crc(zlib.crc32(view[:-_TRAILER_SIZE], zlib.crc32(head)), rest[-_TRAILER_SIZE:], name)

    meta_len, keys_len, n = hdr["meta_len"], hdr["keys_len"], hdr["n_weights"]
    meta, spec = _parse_meta(view[:meta_len], hdr, name)

    buf = np.frombuffer(rest, dtype=np.uint8, count=keys_len, offset=meta_len)
    keys, status = decode_deltas(buf, n)
    if status != STATUS_OK:
        raise ArtifactError(
            f"{name} is corrupted: {STATUS_MESSAGES.get(int(status), f'key stream error {int(status)}')}"
        )
    if len(keys) != n:  # pragma: no cover - guaranteed by the decoder
        raise ArtifactError(f"{name} is corrupted: decoded {len(keys)} keys, the header says {n}")

    enc = hdr["value_encoding"]
    raw = np.frombuffer(rest, dtype=ENCODINGS[enc][2], count=n, offset=meta_len + keys_len)
    if enc == "q2.13":
        weights = raw.astype(np.float32) * np.float32(2.0**-13)
    else:
        weights = raw.astype(np.float32)
    if n and not bool(np.all(np.isfinite(weights) & (weights != 0))):
        raise ArtifactError(f"{name} is corrupted: stored weights must be finite and nonzero")
    bias = hdr["bias"]
    if not math.isfinite(bias):
        raise ArtifactError(f"{name} is corrupted: the bias is {bias!r}")

    stats = dict(meta["stats"])
    artifact = stats.pop(ARTIFACT_STATS_KEY, None)
    try:
        return SparseModel(
            keys=keys,
            weights=weights,
            bias=bias,
            spec=spec,
            params=meta["params"],
            stats=stats,
            value_encoding=enc,
            library_version=meta["library_version"],
            format_version=hdr["format_version"],
            schema=dict(meta.get("schema", {})),
            artifact=artifact if isinstance(artifact, dict) else {},
        )
    except ArtifactError as exc:
        raise ArtifactError(f"{name}: {exc}") from None
