"""The state budget's eviction policy on the dict-based FTRL oracle (slow and obvious).

It does NOT import ``sparsecross``.  Before a row is learned, if the keys held plus the row's
keys (all of them, whether held or not) exceed ``max_keys``, the held keys are sorted by

* ``(0, n, key)`` for a zero weight (``|z| <= l1``),
* ``(1, |z|, key)`` for a nonzero weight,

and the smallest are deleted until ``min(int(low_water * max_keys), max_keys - len(row))``
remain.  An evicted key starts again from ``z = n = 0`` when it is seen again.
"""

from __future__ import annotations

from .ftrl_reference import ReferenceFTRL

__all__ = ["BudgetedReferenceFTRL"]


class BudgetedReferenceFTRL(ReferenceFTRL):
    """:class:`ReferenceFTRL` that holds at most ``max_keys`` coordinates (see the module)."""

    def __init__(self, alpha: float, beta: float, l1: float, l2: float, *, max_keys: int,
                 low_water: float = 0.8, label_smoothing: float = 0.0) -> None:
        super().__init__(alpha, beta, l1, l2, label_smoothing=label_smoothing)
        self.max_keys = int(max_keys)
        self.low_water = float(low_water)
        self.evicted_features = 0
        self.evictions = 0
        self.evicted_keys: list[int] = []

    def rank(self, key: int) -> tuple[int, float, int]:
        z, n = self.z[key], self.n[key]
        if abs(z) <= self.l1:
            return (0, n, key)
        return (1, abs(z), key)

    def update(self, row: list[tuple[int, float]], y: float, sample_weight: float = 1.0) -> float:
        if len(self.z) + len(row) > self.max_keys:
            keep = min(int(self.low_water * self.max_keys), self.max_keys - len(row))
            order = sorted(self.z, key=self.rank)
            gone = order[:len(order) - keep]
            for key in gone:
                del self.z[key]
                del self.n[key]
            self.evicted_keys.extend(gone)
            self.evicted_features += len(gone)
            self.evictions += 1
        return super().update(row, y, sample_weight)
