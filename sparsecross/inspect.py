"""What a model file holds: format, spec, parameters, sizes and readable top weights."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._values import check_count
from .export import load_model
from .model import SparseModel

__all__ = ["inspect_model", "block_of"]


def block_of(model: SparseModel) -> np.ndarray:
    """Index (into ``model.spec.outputs`` exact blocks, or -1 for hashed) of every key."""
    keys = model.keys.astype(np.int64)
    out = np.full(len(keys), -1, dtype=np.int64)
    for b, o in enumerate(model.spec.outputs):
        if o.kind == 0:
            sel = (keys >= o.offset) & (keys < o.offset + int(o.cardinality or 0))
            out[sel] = b
    return out


def inspect_model(path: str | os.PathLike[str], *, top: int = 10) -> dict[str, Any]:
    """Summary of the model at ``path`` as a JSON-able dict.

    Keys: ``format_version``, ``value_encoding``, ``library_version``, ``nonzeros``,
    ``file_bytes``, ``bytes_per_nonzero``, ``possible_features``, ``dense_float32_bytes``,
    ``bias``, ``max_abs_error`` (largest |stored - trained| weight, recorded when the file was
    written), ``clipped`` (weights clipped to the encoding's range), ``schema``, ``spec``,
    ``spec_sha256``, ``params``, ``stats``, ``blocks`` (nonzeros per block) and ``top``
    (largest weights with readable descriptions): the ``top`` largest, 0 to 2**63 - 1 (0: none).
    """
    top = check_count("top", top, 0)
    model = load_model(path)
    file_bytes = os.path.getsize(path)
    spec = model.spec
    blocks = block_of(model)
    per_block = []
    for b, o in enumerate(spec.outputs):
        if o.kind == 0:
            per_block.append({"name": o.name, "nonzeros": int((blocks == b).sum()), "hashed": False})
    hashed_names = [o.name for o in spec.outputs if o.kind != 0]
    if hashed_names:
        per_block.append({"name": "hashed(" + ",".join(hashed_names) + ")",
                          "nonzeros": int((blocks == -1).sum()), "hashed": True})
    order = np.argsort(-np.abs(model.weights), kind="stable")[:top]
    top_list = []
    names = model.stats.get("names") or {}
    for i in order:
        key = int(model.keys[i])
        block, desc = spec.describe_column(key)
        if block == "hashed" and str(key) in names:
            desc = f"{names[str(key)]} ({desc})"
        top_list.append({"key": key, "weight": float(model.weights[i]), "block": block, "description": desc})
    return {
        "path": str(path),
        "format_version": model.format_version,
        "value_encoding": model.value_encoding,
        "library_version": model.library_version,
        "nonzeros": model.nonzeros,
        "file_bytes": file_bytes,
        "bytes_per_nonzero": file_bytes / model.nonzeros if model.nonzeros else None,
        "possible_features": spec.n_columns,
        "dense_float32_bytes": spec.n_columns * 4,
        "bias": model.bias,
        "max_abs_error": model.artifact.get("max_abs_error"),
        "clipped": model.artifact.get("clipped", 0),
        "schema": model.schema,
        "spec": spec.to_dict(),
        "spec_sha256": spec.sha256,
        "params": model.params,
        "stats": {k: v for k, v in model.stats.items() if k not in ("history", "names")},
        "history": model.stats.get("history", []),
        "blocks": per_block,
        "top": top_list,
    }
