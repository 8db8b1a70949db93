"""FTRLState: per-coordinate (z, n) for touched coordinates only, in an open-addressing table.

Memory is proportional to the number of *touched* coordinates, never to ``2**bits`` or to the
column space: a slot costs ``key_bytes + 2 * state_bytes`` (uint32 keys + float32 z/n: 12
bytes) and the table doubles when it is ``MAX_LOAD`` full, so it is 35-70% full.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ._kernels.ftrl import FTRLParams, export_weights, state_margins
from ._kernels.table import rehash
from .errors import CheckpointError

__all__ = ["FTRLState", "MAX_LOAD"]

MAX_LOAD = 0.7
_MIN_CAPACITY = 1 << 10


def key_dtype_for(n_columns: int) -> np.dtype:
    """uint32 keys when every column id fits below the all-ones marker, else uint64."""
    return np.dtype(np.uint32) if n_columns < (1 << 32) - 1 else np.dtype(np.uint64)


class FTRLState:
    """Training state of FTRL-Proximal over the touched coordinates.

    Parameters
    ----------
    n_columns
        Width of the column space (only used to choose the key width).
    dtype
        ``"float32"`` (default: 12 bytes per slot with uint32 keys) or ``"float64"`` (exact
        agreement with a float64 reference implementation).
    capacity
        Initial number of slots (rounded up to a power of two).
    """

    def __init__(self, n_columns: int, dtype: str = "float32", capacity: int = _MIN_CAPACITY) -> None:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"state dtype must be 'float32' or 'float64', got {dtype!r}")
        self.n_columns = int(n_columns)
        self.dtype = dtype
        cap = _MIN_CAPACITY
        while cap < capacity:
            cap *= 2
        kd = key_dtype_for(self.n_columns)
        self.keys = np.full(cap, np.iinfo(kd).max, dtype=kd)
        self.zn = np.zeros((cap, 2), dtype=np.dtype(dtype))
        self.count = np.zeros(1, dtype=np.int64)
        self.bias = np.zeros(2, dtype=np.float64)

    # ---------------------------------------------------------------- sizing
    @property
    def capacity(self) -> int:
        return int(self.keys.shape[0])

    @property
    def touched(self) -> int:
        """Number of coordinates that have state (were seen at least once)."""
        return int(self.count[0])

    @property
    def max_count(self) -> int:
        return int(self.capacity * MAX_LOAD)

    @property
    def nbytes(self) -> int:
        """Bytes held by the table (keys + z + n), empty slots included."""
        return int(self.keys.nbytes + self.zn.nbytes + self.bias.nbytes)

    def grow(self, needed: int = 0) -> None:
        """Double the capacity (or more, to fit ``needed`` more keys) and rehash."""
        cap = self.capacity * 2
        while int(cap * MAX_LOAD) < self.touched + needed:
            cap *= 2
        keys = np.full(cap, np.iinfo(self.keys.dtype).max, dtype=self.keys.dtype)
        zn = np.zeros((cap, 2), dtype=self.zn.dtype)
        moved = rehash(self.keys, self.zn, keys, zn)
        assert moved == self.touched
        self.keys, self.zn = keys, zn

    # ---------------------------------------------------------------- views
    def as_dict(self) -> dict[int, tuple[float, float]]:
        """key -> (z, n) for every touched coordinate (for tests and debugging)."""
        empty = np.iinfo(self.keys.dtype).max
        occ = self.keys != empty
        return {int(k): (float(z), float(n)) for k, (z, n) in zip(self.keys[occ], self.zn[occ])}

    def margins(self, X: Any, params: FTRLParams) -> np.ndarray:
        """Margins of CSR rows ``X`` under the current weights (no update)."""
        return state_margins(X.indptr, X.indices, X.data, self.keys, self.zn, self.bias, params)

    def nonzero_weights(self, params: FTRLParams) -> tuple[np.ndarray, np.ndarray]:
        """(sorted uint64 keys, float32 weights) of the coordinates with ``|z| > l1`` whose
        weight is nonzero in float32."""
        keys, weights = export_weights(self.keys, self.zn, params)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        w32 = weights[order].astype(np.float32)
        keep = w32 != 0
        return keys[keep], w32[keep]

    def bias_weight(self, params: FTRLParams) -> float:
        z, n = self.bias
        return float(-z / ((params.beta + np.sqrt(n)) / params.alpha))

    def copy(self) -> FTRLState:
        other = FTRLState.__new__(FTRLState)
        other.n_columns, other.dtype = self.n_columns, self.dtype
        other.keys, other.zn = self.keys.copy(), self.zn.copy()
        other.count, other.bias = self.count.copy(), self.bias.copy()
        return other

    # ------------------------------------------------------------ checkpoint
    def save(self, path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
        """Write the state and ``meta`` (JSON-able) atomically to ``path`` (an ``.npz``)."""
        path = Path(path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        meta_bytes = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=self.keys, zn=self.zn, count=self.count, bias=self.bias,
                         meta=meta_bytes, n_columns=np.array([self.n_columns], dtype=np.int64))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[FTRLState, dict[str, Any]]:
        """Read a state written by :meth:`save` (no pickle). Returns (state, meta)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                keys, zn, count, bias = f["keys"], f["zn"], f["count"], f["bias"]
                meta = json.loads(bytes(f["meta"]).decode())
                n_columns = int(f["n_columns"][0])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from None
        if keys.shape[0] != zn.shape[0] or zn.ndim != 2 or keys.shape[0] & (keys.shape[0] - 1):
            raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent")
        st = cls.__new__(cls)
        st.n_columns, st.dtype = n_columns, str(zn.dtype)
        st.keys, st.zn, st.count, st.bias = keys, zn, count.astype(np.int64), bias.astype(np.float64)
        return st, meta
