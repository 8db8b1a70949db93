"""Dict-based FTRL-Proximal, written straight from ``../shared/ALGORITHM.md``.

McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013, Algorithm 1
(per-coordinate FTRL-Proximal with L1 and L2, logistic loss). It does NOT import
``sparsecross``: it is the numerical oracle the Numba kernel is checked against (to ~1e-12).

Per coordinate i the state is ``z_i`` and ``n_i`` (Python floats = float64, both 0 at the
start). The weight is never stored; it is derived on demand (ALGORITHM.md, "State and update")::

    w_i = 0                                                          if |z_i| <= l1
    w_i = -(z_i - sign(z_i) * l1) / ((beta + sqrt(n_i)) / alpha + l2)  otherwise

For one example (x, y) with active coordinates I = {i : x_i != 0}::

    p = sigmoid(sum_{i in I} w_i * x_i + bias)
    for i in I:
        g_i     = (p - y') * x_i * sample_weight,   y' = y * (1 - eps) + eps / 2
        sigma_i = (sqrt(n_i + g_i^2) - sqrt(n_i)) / alpha     # uses the OLD n_i
        z_i    += g_i - sigma_i * w_i                          # w_i from BEFORE this update
        n_i    += g_i^2

The bias is one more coordinate, always active with x = 1, and unregularized (l1 = l2 = 0 in
its weight formula); its state is ``z_b``, ``n_b``.
"""

from __future__ import annotations

import math

__all__ = ["ReferenceFTRL", "sigmoid", "clipped_logloss", "LOGLOSS_EPS"]

LOGLOSS_EPS = 1e-15
"""Probabilities are clipped to ``[1e-15, 1 - 1e-15]`` before taking logs."""


def sigmoid(margin: float) -> float:
    """Logistic function, written so that ``math.exp`` never overflows."""
    if margin >= 0:
        return 1.0 / (1.0 + math.exp(-margin))
    e = math.exp(margin)
    return e / (1.0 + e)


def clipped_logloss(p: float, y: float) -> float:
    """``-(y log p + (1 - y) log(1 - p))`` with p clipped to ``[1e-15, 1 - 1e-15]``."""
    p = min(max(p, LOGLOSS_EPS), 1.0 - LOGLOSS_EPS)
    return -(y * math.log(p) + (1.0 - y) * math.log(1.0 - p))


def _ftrl_weight(z: float, n: float, alpha: float, beta: float, l1: float, l2: float) -> float:
    """The closed-form FTRL-Proximal weight of one coordinate (ALGORITHM.md)."""
    if abs(z) <= l1:
        return 0.0
    sign_z = 1.0 if z > 0 else -1.0
    return -(z - sign_z * l1) / ((beta + math.sqrt(n)) / alpha + l2)


class ReferenceFTRL:
    """Per-coordinate FTRL-Proximal with L1/L2 and logistic loss, state in plain dicts.

    Parameters
    ----------
    alpha, beta
        Per-coordinate learning rate ``alpha / (beta + sqrt(n_i))`` (``alpha`` is a learning-rate
        scale, not a regularisation strength).
    l1, l2
        Regularisation of the non-bias coordinates (the bias is never regularized).
    label_smoothing
        ``eps``: the gradient uses ``y' = y * (1 - eps) + eps / 2`` instead of ``y``.
    """

    def __init__(self, alpha: float, beta: float, l1: float, l2: float,
                 label_smoothing: float = 0.0) -> None:
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        if not (l1 >= 0 and l2 >= 0):
            raise ValueError(f"l1 and l2 must be >= 0, got {l1!r}, {l2!r}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.l1 = float(l1)
        self.l2 = float(l2)
        self.label_smoothing = float(label_smoothing)
        self.z: dict[int, float] = {}
        self.n: dict[int, float] = {}
        self.z_b = 0.0
        self.n_b = 0.0

    # -- weights -------------------------------------------------------------------------------

    def weight(self, i: int) -> float:
        """Weight of coordinate ``i`` from its current (z_i, n_i); 0 for untouched coordinates."""
        return _ftrl_weight(self.z.get(i, 0.0), self.n.get(i, 0.0),
                            self.alpha, self.beta, self.l1, self.l2)

    def bias(self) -> float:
        """The bias weight: the same formula with l1 = l2 = 0 on (z_b, n_b)."""
        return _ftrl_weight(self.z_b, self.n_b, self.alpha, self.beta, 0.0, 0.0)

    def weights(self) -> dict[int, float]:
        """``{i: w_i}`` for every coordinate whose weight is nonzero (i.e. ``|z_i| > l1``)."""
        out = {}
        for i in sorted(self.z):
            w = self.weight(i)
            if w != 0.0:
                out[i] = w
        return out

    def state(self) -> dict[int, tuple[float, float]]:
        """``{i: (z_i, n_i)}`` for every touched coordinate (bias excluded)."""
        return {i: (self.z[i], self.n[i]) for i in sorted(self.z)}

    # -- scoring and learning ------------------------------------------------------------------

    @staticmethod
    def _active(row: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Active coordinates ``{i : x_i != 0}``; a row must not repeat a column."""
        seen: set[int] = set()
        active = []
        for i, x in row:
            if i in seen:
                raise ValueError(f"column {i!r} appears twice in a row; rows must be canonical")
            seen.add(i)
            if x != 0.0:
                active.append((int(i), float(x)))
        return active

    def predict_margin(self, row: list[tuple[int, float]]) -> float:
        """``sum_{i in I} w_i * x_i + bias`` with the current weights."""
        margin = 0.0
        for i, x in self._active(row):
            margin += self.weight(i) * x
        return margin + self.bias()

    def predict_proba(self, row: list[tuple[int, float]]) -> float:
        """``sigmoid(predict_margin(row))``."""
        return sigmoid(self.predict_margin(row))

    def update(self, row: list[tuple[int, float]], y: float, sample_weight: float = 1.0) -> float:
        """One FTRL-Proximal step on ``(row, y)``; returns the progressive logloss of the row.

        The row is scored BEFORE the update (progressive validation); the returned loss is
        ``clipped_logloss(p, y) * sample_weight`` against the raw label ``y`` (not the smoothed
        one). Every sigma uses the old ``n_i`` and every ``w_i`` is the weight used for the
        prediction, i.e. computed before this row's update.
        """
        if y not in (0, 1, 0.0, 1.0):
            raise ValueError(f"y must be 0 or 1, got {y!r}")
        if not (math.isfinite(sample_weight) and sample_weight >= 0):
            raise ValueError(f"sample_weight must be finite and >= 0, got {sample_weight!r}")
        y = float(y)
        active = self._active(row)

        # Weights BEFORE the update: the same ones are used to predict and in z's correction.
        w_before = {i: self.weight(i) for i, _ in active}
        w_bias = self.bias()
        margin = 0.0
        for i, x in active:
            margin += w_before[i] * x
        margin += w_bias
        p = sigmoid(margin)
        loss = clipped_logloss(p, y) * sample_weight

        eps = self.label_smoothing
        y_smooth = y * (1.0 - eps) + eps / 2.0

        for i, x in active:
            g = (p - y_smooth) * x * sample_weight
            n_old = self.n.get(i, 0.0)
            sigma = (math.sqrt(n_old + g * g) - math.sqrt(n_old)) / self.alpha
            self.z[i] = self.z.get(i, 0.0) + g - sigma * w_before[i]
            self.n[i] = n_old + g * g

        g_b = (p - y_smooth) * 1.0 * sample_weight
        sigma_b = (math.sqrt(self.n_b + g_b * g_b) - math.sqrt(self.n_b)) / self.alpha
        self.z_b = self.z_b + g_b - sigma_b * w_bias
        self.n_b = self.n_b + g_b * g_b
        return loss

    def fit_rows(self, rows: list[list[tuple[int, float]]], ys: list[float],
                 sample_weights: list[float] | None = None) -> float:
        """Update on every row in order; returns the summed progressive logloss."""
        total = 0.0
        for k, (row, y) in enumerate(zip(rows, ys, strict=True)):
            sw = 1.0 if sample_weights is None else sample_weights[k]
            total += self.update(row, y, sw)
        return total
