"""The partition of partitioned training: which lane owns a key, and which lane trains a row.

A partitioned run names one exact feature of the spec (``partition``, such as a geo cell).
Every key that holds that feature's value (its own column block, and those of the exact
crosses that include it) belongs to the lane ``fmix64(id) % lanes`` of that value's local id:
the lane *owns* it, and it never leaves that lane during training.  Every other key is
*shared*: every lane keeps a copy, and the copies are merged at the end of every round.  A
row goes to the lane of its partition value (a row without one: to a lane chosen by its row
number), so the lanes' rows, and the model, depend on the data, the spec, ``lanes`` and
the rounds only, not on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SparseCrossError, shown
from ..spec import FeatureSpec


@dataclass(frozen=True)
class Partition:
    """The owned column ranges of a partition feature (see :mod:`sparsecross._kernels.partition`)."""

    name: str
    lanes: int
    lo: np.ndarray  # int64 per owned range
    hi: np.ndarray
    stride: np.ndarray
    card: int  # the partition feature's cardinality (local ids, the missing one included)

    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        return self.lo, self.hi, self.stride, self.card, self.lanes

    def lanes_of(self, keys: np.ndarray) -> np.ndarray:
        """The lane owning each key (int64), -1 for shared keys."""
        from .._kernels.partition import keys_lanes

        return keys_lanes(keys, *self.args())

    def owned(self, keys: np.ndarray) -> np.ndarray:
        """Whether each key is owned by a lane (bool)."""
        owned = np.zeros(len(keys), dtype=bool)
        k = keys.astype(np.int64, copy=False)
        for lo, hi in zip(self.lo, self.hi):
            owned |= (k >= lo) & (k < hi)
        return owned


def exact_features(spec: FeatureSpec) -> list[str]:
    """The names of the spec's exact features (the possible partitions)."""
    return [f.name for f in spec.features if f.is_exact]


def partition_of(spec: FeatureSpec, name: object, lanes: int) -> Partition:
    """The partition of ``spec`` by feature ``name`` into ``lanes`` lanes (SparseCrossError
    when ``name`` is not an exact feature of the spec)."""
    from .._values import check_count

    lanes = check_count("lanes", lanes, 1, 1 << 16)
    choices = exact_features(spec)
    hint = f"the spec's exact features: {', '.join(map(shown, choices))}" if choices else \
        "the spec has no exact feature (such as geo or bucket features; categoricals are hashed)"
    if not isinstance(name, str):
        raise SparseCrossError(f"partition must be the name of an exact feature of the spec, got {shown(name)}; "
                               f"{hint}")
    index = spec.feature_index
    if name not in index:
        raise SparseCrossError(f"partition names no feature of the spec: {shown(name)}; {hint}")
    fi = index[name]
    feature = spec.features[fi]
    if not feature.is_exact:
        raise SparseCrossError(f"partition feature {shown(name)} is hashed: partitioned training needs an exact "
                               f"feature, whose keys tell their value; {hint}")
    ranges = [(o.offset, o.offset + int(o.cardinality or 0), o.strides[o.components.index(fi)])
              for o in spec.outputs if o.kind == 0 and fi in o.components]
    if not ranges:
        raise SparseCrossError(f"partition feature {shown(name)} has no column of its own nor an exact cross: "
                               f"nothing for the lanes to own; {hint}")
    lo, hi, stride = (np.array(v, dtype=np.int64) for v in zip(*ranges))
    return Partition(name, lanes, lo, hi, stride, int(feature.cardinality or 1))
