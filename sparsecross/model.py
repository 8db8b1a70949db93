"""SparseModel: the inference model, only the nonzero weights plus everything needed to
rebuild the features (the spec) and to explain where the model came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ArtifactError
from .spec import FeatureSpec

__all__ = ["SparseModel"]


@dataclass(eq=False)
class SparseModel:
    """A trained sparse logistic-regression model.

    Attributes
    ----------
    keys : numpy.ndarray
        uint64, strictly increasing global column ids of the nonzero weights.
    weights : numpy.ndarray
        float32 weights, same length as ``keys`` (none of them zero).
    bias : float
        The unregularized intercept (a margin, not a probability).
    spec : FeatureSpec
        The resolved spec the features were built with.
    params : dict
        Training hyperparameters (alpha, beta, l1, l2, epochs, ...).
    stats : dict
        Training statistics (rows, touched features, progressive and validation metrics...).
    value_encoding : str
        How weights are (or will be) stored: ``"float32"``, ``"float16"`` or ``"q2.13"``.
    schema : dict
        ``{column: type class}`` of the data it was trained on (see :mod:`sparsecross.schema`);
        empty when unknown (a model from CSR rows, or a format 1.0 file).
    """

    keys: np.ndarray
    weights: np.ndarray
    bias: float
    spec: FeatureSpec
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    value_encoding: str = "float32"
    library_version: str = ""
    #: The format version (``"1.0"``...) of the file the model was loaded from; "" otherwise.
    format_version: str = field(default="", compare=False)
    #: Facts about the run that made the model (seconds, rows processed); never saved, so the
    #: file depends only on the data, the spec and the parameters.
    run: dict[str, Any] = field(default_factory=dict, repr=False)
    schema: dict[str, str] = field(default_factory=dict)
    #: What the file said about its own encoding (``stats["artifact"]`` of the file: value
    #: encoding, nonzeros, ``max_abs_error``...), for ``inspect``; empty for a model not loaded.
    artifact: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = np.ascontiguousarray(self.keys, dtype=np.uint64)
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        if self.keys.shape != self.weights.shape or self.keys.ndim != 1:
            raise ArtifactError(
                f"keys and weights must be 1-d of equal length, got {self.keys.shape} and {self.weights.shape}"
            )
        if len(self.keys) > 1 and not bool(np.all(self.keys[1:] > self.keys[:-1])):
            raise ArtifactError("model keys must be strictly increasing")
        if len(self.keys) and int(self.keys[-1]) >= self.spec.n_columns:
            raise ArtifactError(
                f"model key {int(self.keys[-1])} is outside the spec's column space ({self.spec.n_columns})"
            )
        self.bias = float(self.bias)
        self._table: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def nonzeros(self) -> int:
        """Number of stored (nonzero) weights."""
        return int(len(self.keys))

    @property
    def n_columns(self) -> int:
        return self.spec.n_columns

    def lookup_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Open-addressing table (keys, weights) for O(1) scoring, built once on first use."""
        if self._table is None:
            from ._kernels.table import build_lookup

            self._table = build_lookup(self.keys, self.weights, self.n_columns)
        return self._table

    def decision_function(self, X: Any) -> np.ndarray:
        """Margins ``X @ w + bias`` (float64) for a CSR matrix of this model's width."""
        from .predict import decision_function

        return decision_function(self, X)

    def predict_proba(self, data: Any) -> np.ndarray:
        """P(y = 1) (float64) for an Arrow table/batch, a pandas or polars DataFrame, anything
        with ``__arrow_c_stream__`` (featurized with the embedded spec) or a CSR matrix."""
        from .predict import predict_proba

        return predict_proba(self, data)

    def dense_weights(self) -> np.ndarray:
        """The full dense weight vector (float32). Only for small column spaces."""
        if self.n_columns > 1 << 26:
            raise MemoryError(f"refusing to build a dense vector of {self.n_columns} weights")
        w = np.zeros(self.n_columns, dtype=np.float32)
        w[self.keys.astype(np.int64)] = self.weights
        return w
