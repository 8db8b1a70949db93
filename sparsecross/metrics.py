"""Streaming metrics in bounded memory: weighted logloss and ROC AUC.

AUC is computed from histograms of the margins (``N_BINS`` bins over [-LIMIT, LIMIT], margins
outside are clipped to the end bins); pairs in the same bin count one half, as ties do.  With
2**18 bins the bin width is 1.5e-4 in logit units; on the test data it agrees with the exact
rank-based AUC to better than 1e-4.  Memory: 4 MiB, whatever the number of rows.
"""

from __future__ import annotations

import numpy as np

from ._kernels.score import accumulate_metrics

__all__ = ["StreamingMetrics", "entropy"]

N_BINS = 1 << 18
LIMIT = 20.0


def entropy(p: float) -> float:
    """Logloss (nats) of always predicting the rate ``p`` on data whose positive rate is ``p``:
    the constant-rate baseline.  NaN for NaN; 0 for a rate of 0 or 1."""
    if not 0.0 < p < 1.0:
        return float("nan") if p != p else 0.0
    return float(-(p * np.log(p) + (1.0 - p) * np.log1p(-p)))


class StreamingMetrics:
    """Accumulate (margin, label, weight) batches; read ``logloss``, ``auc``, ``rows``."""

    def __init__(self) -> None:
        self.pos = np.zeros(N_BINS, dtype=np.float64)
        self.neg = np.zeros(N_BINS, dtype=np.float64)
        self.acc = np.zeros(3, dtype=np.float64)  # loss sum, weight sum, rows
        self.skipped = 0  # rows left out for a missing label ([label] missing = "skip"), counted by callers

    def update(self, margins: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None,
               row_mask: np.ndarray | None = None) -> None:
        """Add rows; with ``row_mask`` only the rows where it is nonzero (e.g. holdout rows)."""
        sw = np.zeros(0) if sample_weight is None else sample_weight
        rm = np.zeros(0, dtype=np.uint8) if row_mask is None else row_mask
        accumulate_metrics(margins, y, sw, rm, self.pos, self.neg, self.acc, LIMIT)

    @property
    def rows(self) -> int:
        return int(self.acc[2])

    @property
    def logloss(self) -> float:
        return float(self.acc[0] / self.acc[1]) if self.acc[1] > 0 else float("nan")

    @property
    def auc(self) -> float:
        p_tot = self.pos.sum()
        n_tot = self.neg.sum()
        if p_tot == 0 or n_tot == 0:
            return float("nan")
        neg_below = np.cumsum(self.neg) - self.neg
        return float((self.pos * (neg_below + 0.5 * self.neg)).sum() / (p_tot * n_tot))

    @property
    def positive_rate(self) -> float:
        """Weighted share of positive rows (with sample weights: their weight's share)."""
        tot = self.pos.sum() + self.neg.sum()
        return float(self.pos.sum() / tot) if tot else float("nan")

    @property
    def baseline_logloss(self) -> float:
        """Logloss of predicting the data's own (weighted) positive rate for every row, weighted
        as :attr:`logloss`: the entropy of :attr:`positive_rate`."""
        return entropy(self.positive_rate)
