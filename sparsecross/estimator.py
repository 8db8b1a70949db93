"""FTRLClassifier: a scikit-learn-style estimator over in-memory scipy CSR, sharing the
streaming trainer's kernels.  scikit-learn is not a dependency."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from .errors import DataError, NotFittedError, ParameterError
from .state import FTRLState, GrowthPlan
from .state16 import new_state
from .train import TrainParams, train_batch
from .featurize import Batch

if TYPE_CHECKING:
    from .model import SparseModel
    from .spec import FeatureSpec

__all__ = ["FTRLClassifier"]

#: The estimator's parameters that are keys of the spec's ``[train]`` table too.
_TABLE_PARAMS = ("alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "admit_after", "admit_probability",
                 "admit_filter_mb", "max_state_mb", "state_bits")


class FTRLClassifier:
    """Per-coordinate FTRL-Proximal logistic regression (McMahan et al. 2013, Algorithm 1).

    State exists only for the columns that were seen, so ``n_features_in_`` may be 2**40.

    Parameters
    ----------
    alpha : float, default 0.1
        Learning-rate scale (> 0).  This is FTRL's alpha, NOT scikit-learn's regularization
        ``alpha``: a larger value means larger steps, not stronger regularization.
    beta : float, default 1.0
        Learning-rate smoothing (>= 0).
    l1 : float, default 1.0
        L1 strength (>= 0): weights are exactly 0 while ``|z| <= l1``.
    l2 : float, default 0.0
        L2 strength (>= 0).
    epochs : int, default 1
        Passes over the rows in ``fit`` (rows are visited in the given order).
    label_smoothing : float, default 0.0
        Targets become ``y * (1 - eps) + eps / 2``.
    state_dtype : {"float32", "float64"}, default "float64"
        Precision of the optimizer state.
    admit_after : int or None, default None (every feature)
        Admission (:mod:`sparsecross.admission`), as :func:`sparsecross.train`'s: a feature gets
        state only from its ``admit_after``-th sighting (2..15), counted in a counting filter.
    admit_probability : float or None, default None (every feature)
        Poisson admission: each sighting of a feature without state admits it with this
        probability (0 < p <= 1), decided by a seeded hash of (feature, epoch, row position):
        ``fit``'s epoch ``e`` is epoch ``e`` with rows at positions 0..n-1, as in ``train``;
        successive ``partial_fit`` calls continue one epoch (positions counted on).
    admit_filter_mb : float or None, default None
        Size of ``admit_after``'s filter in MiB.  By default it is sized from the rows, as
        ``train`` sizes it: from ``X``'s rows in ``fit``, from the first chunk's in
        ``partial_fit`` (give it to make chunked ``partial_fit`` equal ``fit``).
    max_state_mb : float or None, default None (no budget)
        State budget in MiB (:mod:`sparsecross.budget`), as ``train``'s: the optimizer state
        (table, growths included, and the admission filter) never exceeds it; when full,
        features are evicted (zero weights with the smallest ``n`` first, then the smallest
        ``|z|``).
    state_bits : {32, 16}, default 32
        16: z and n stored in 16 bits each (8-byte slots; :mod:`sparsecross.state16`), with
        ``state_dtype="float32"`` only; the rounding is seeded by the spec's hashing seed (0
        without a spec).
    spec : FeatureSpec or None, default None
        The (resolved) spec the rows of ``X`` were featurized with
        (:func:`sparsecross.featurize`): ``X`` must then have ``spec.n_columns`` columns and
        ``y`` the 0/1 labels, and the fitted estimator can be turned into a
        :class:`~sparsecross.model.SparseModel` (:meth:`to_model`) or a ``.scx`` file
        (:meth:`save`) that scores Arrow tables and DataFrames by itself.  Fitted with the
        parameters of :func:`sparsecross.train` (same ``state_dtype`` included) on the same
        rows in the same order, it has the same weights (admission and the state budget
        included; the admission hash is seeded with ``spec.hashing.seed``, or 0 without a spec).
        The spec's ``[train]`` table is not read: as in scikit-learn, the constructor's
        parameters are the truth (``get_params``, ``clone`` and grid searches see what ``fit``
        uses); ``fit`` warns (:class:`~sparsecross.errors.SparseCrossWarning`) when the table
        sets one of them to another value, and :meth:`from_spec` builds the estimator from the
        table.  Its keys ``holdout``, ``batch_rows``, ``shuffle*`` and ``early_stop`` do not apply
        to ``fit`` on rows in memory (every row is fitted, in the given order).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_array(np.array([[1, 0], [0, 1]] * 50, dtype=np.float32))
    >>> y = np.array([1, 0] * 50)
    >>> clf = FTRLClassifier(alpha=0.5, l1=0.0).fit(X, y)
    >>> clf.predict(X[:2]).tolist()
    [1, 0]
    """

    def __init__(self, *, alpha: float = 0.1, beta: float = 1.0, l1: float = 1.0, l2: float = 0.0,
                 epochs: int = 1, label_smoothing: float = 0.0, state_dtype: str = "float64",
                 admit_after: int | None = None, admit_probability: float | None = None,
                 admit_filter_mb: float | None = None, max_state_mb: float | None = None,
                 state_bits: int = 32, spec: FeatureSpec | None = None) -> None:
        self.alpha = alpha
        self.beta = beta
        self.l1 = l1
        self.l2 = l2
        self.epochs = epochs
        self.label_smoothing = label_smoothing
        self.state_dtype = state_dtype
        self.admit_after = admit_after
        self.admit_probability = admit_probability
        self.admit_filter_mb = admit_filter_mb
        self.max_state_mb = max_state_mb
        self.state_bits = state_bits
        self.spec = spec

    # -------------------------------------------------------------- sklearn API
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "state_dtype", "admit_after",
                 "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits", "spec")}

    def set_params(self, **params: Any) -> FTRLClassifier:
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"invalid parameter {k!r} for FTRLClassifier; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import ClassifierTags, Tags, InputTags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=False, poor_score=True),
                    input_tags=InputTags(sparse=True, two_d_array=True))

    def _params(self) -> TrainParams:
        # invalid values raise ParameterError, a ValueError as scikit-learn expects
        from .admission import policy_of
        from .budget import check_max_state_mb

        check_max_state_mb(self.max_state_mb)
        return TrainParams(self.alpha, self.beta, self.l1, self.l2, self.epochs, self.label_smoothing,
                           None, self.state_dtype,
                           policy_of(self.admit_after, self.admit_probability, self.admit_filter_mb),
                           self.state_bits)

    def _new_state(self, params: TrainParams, rows: int) -> FTRLState:
        """A new state with the admission filter (sized from ``rows``) and the budget, as
        ``train`` starts one."""
        from .admission import Admission
        from .budget import apply_budget, check_max_state_mb

        seed = self.spec.hashing.seed if self.spec is not None else 0
        state = new_state(self.n_features_in_, params.state_dtype, params.state_bits, seed)
        if params.admit.active:
            state.admission = Admission(params.admit.sized(rows), seed)
        apply_budget(state, check_max_state_mb(self.max_state_mb))
        self._epoch, self._position = 0, 0
        return state

    def _check_X(self, X: Any, *, reset: bool) -> sp.csr_array:
        dtype = X.dtype if sp.issparse(X) else np.asarray(X).dtype
        if np.issubdtype(dtype, np.complexfloating):
            raise ValueError("Complex data not supported")
        if not sp.issparse(X):
            X = np.asarray(X, dtype=np.float64)
            if X.ndim != 2:
                raise ValueError(f"Expected 2D array, got {X.ndim}D array instead")
            X = sp.csr_array(X)
        X = sp.csr_array(X)
        if X.shape[0] == 0:
            raise ValueError("Found array with 0 sample(s) (shape=%r) while a minimum of 1 is required." % (X.shape,))
        if X.shape[1] == 0:
            raise ValueError("Found array with 0 feature(s) (shape=%r) while a minimum of 1 is required." % (X.shape,))
        data = np.asarray(X.data)
        if not np.all(np.isfinite(data)):
            raise ValueError("Input X contains NaN or infinity.")
        if not reset and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but FTRLClassifier is expecting {self.n_features_in_} features as input."
            )
        X = X.copy() if not X.has_canonical_format else X
        X.sum_duplicates()
        X.sort_indices()
        return sp.csr_array((X.data.astype(np.float32), X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                            shape=X.shape)

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1:
            y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
            if y.ndim != 1:
                raise ValueError(f"y must be 1-d, got shape {y.shape}")
        if len(y) != n:
            raise ValueError(f"X has {n} rows but y has {len(y)}")
        return y

    def _encode(self, y: np.ndarray, *, classes: Any = None) -> np.ndarray:
        if not hasattr(self, "classes_"):
            cls = np.unique(y) if classes is None else np.asarray(classes)
            if len(cls) > 2:
                raise ValueError(f"FTRLClassifier is binary; got {len(cls)} classes {cls[:5].tolist()}")
            if len(cls) < 2:
                raise ValueError(
                    f"The number of classes has to be greater than one; got {len(cls)} class"
                    + ("" if classes is not None else "; pass classes= to the first partial_fit")
                )
            self.classes_ = cls
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise DataError(f"y has labels {np.unique(y[unknown])[:5].tolist()} not in classes_ {self.classes_.tolist()}")
        return (y == self.classes_[-1]).astype(np.float64)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FTRLClassifier:
        """Reset, then run ``epochs`` passes of :meth:`partial_fit` over (X, y)."""
        for attr in ("state_", "classes_", "n_features_in_", "_epoch", "_position"):
            if hasattr(self, attr):
                delattr(self, attr)
        params = self._params()
        X = self._check_X(X, reset=True)
        self._check_spec(X)
        self._say_table()
        y = self._check_y(y, X.shape[0])
        self._encode(y)
        for epoch in range(params.epochs):
            if hasattr(self, "state_"):  # as train(): epoch e reads rows 0..n-1 again
                self._epoch, self._position = epoch, 0
            self._partial(X, y, sample_weight)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> FTRLClassifier:
        """One pass over (X, y) in order, continuing from the current state."""
        self._params()
        first = not hasattr(self, "state_")
        X = self._check_X(X, reset=first)
        if first:
            self._check_spec(X)
            self._say_table()
        y = self._check_y(y, X.shape[0])
        if first and not hasattr(self, "classes_"):
            self._encode(y, classes=classes)
        self._partial(X, y, sample_weight)
        return self

    def _partial(self, X: sp.csr_array, y: np.ndarray, sample_weight: Any) -> None:
        params = self._params()
        if not hasattr(self, "state_"):
            self.n_features_in_ = int(X.shape[1])
            self.state_ = self._new_state(params, X.shape[0])
        yy = self._encode(y)
        sw = None
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
            if len(sw) != len(yy) or not np.all(np.isfinite(sw)) or (sw < 0).any():
                raise ValueError("sample_weight must be finite, >= 0 and one per row")
        if self.state_.admission is not None:
            self.state_.admission.begin_epoch(self._epoch)
        self.state_.begin_epoch(self._epoch)  # a 16-bit state's rounding seed
        train_batch(self.state_, Batch(X, yy, sw, 0), params.ftrl, np.zeros(0, dtype=np.uint8),
                    np.zeros(3, dtype=np.float64), GrowthPlan(X.shape[0]), self._position)
        self._position += int(X.shape[0])

    def _check_spec(self, X: sp.csr_array) -> FeatureSpec | None:
        """The spec, after checking it is a resolved FeatureSpec as wide as ``X``."""
        spec = self.spec
        if spec is None:
            return None
        from .spec import FeatureSpec

        if not isinstance(spec, FeatureSpec):
            raise ParameterError(f"spec must be a FeatureSpec (sparsecross.load_spec / parse_spec), "
                                 f"got {type(spec).__name__}")
        if spec.needs_data:
            raise ParameterError("spec has quantiles = N buckets without boundaries; give the spec "
                                 "featurize used (sparsecross.resolve_spec(data, spec))")
        if X.shape[1] != spec.n_columns:
            raise ParameterError(f"X has {X.shape[1]} columns but spec makes {spec.n_columns}; featurize the "
                                 "rows with this spec (sparsecross.featurize(data, spec))")
        return spec

    def _say_table(self) -> None:
        """Warn when the spec's [train] table sets one of the parameters to another value: the
        constructor's are used (scikit-learn's rule), never silently."""
        if self.spec is None:
            return
        differ = {k: v for k, v in self.spec.train.items() if k in _TABLE_PARAMS and getattr(self, k) != v}
        if differ:
            import warnings

            from .errors import SparseCrossWarning

            mine = ", ".join(f"{k}={getattr(self, k)!r}" for k in differ)
            table = ", ".join(f"{k} = {v!r}" for k, v in differ.items())
            warnings.warn(f"FTRLClassifier fits with its own parameters ({mine}), not the spec's [train] table "
                          f"({table}); FTRLClassifier.from_spec(spec) takes the table's values", SparseCrossWarning,
                          stacklevel=3)

    @classmethod
    def from_spec(cls, spec: FeatureSpec, **params: Any) -> FTRLClassifier:
        """An estimator with ``spec`` whose parameters are ``params``, else the values of the
        spec's ``[train]`` table, else the defaults: the rule of :func:`sparsecross.train` and the
        CLI (:func:`~sparsecross.train_options.resolve_train_options`), applied once here, so the
        constructor's parameters (what ``get_params`` and ``clone`` see) are the ones ``fit`` uses.

        >>> import sparsecross as sx
        >>> spec = sx.parse_spec({"label": {"column": "y"}, "train": {"l1": 5.0, "epochs": 2},
        ...                       "features": [{"name": "c", "kind": "categorical", "column": "c"}]})
        >>> clf = FTRLClassifier.from_spec(spec, epochs=3)
        >>> clf.l1, clf.epochs, clf.alpha
        (5.0, 3, 0.1)
        """
        from .train_options import resolve_train_options

        o = resolve_train_options(spec, params)
        return cls(**{**{k: o[k] for k in _TABLE_PARAMS}, **params, "spec": spec})

    # ----------------------------------------------------------- model export
    def to_model(self) -> SparseModel:
        """The fitted weights as a :class:`~sparsecross.model.SparseModel`: the nonzero
        weights, the bias, the parameters and the spec (no training statistics beyond the
        weight counts; ``schema`` empty: the columns' types were not seen).

        Raises
        ------
        NotFittedError
            Before ``fit``.
        ParameterError
            Fitted without ``spec``, with another width than the spec's, or with labels
            other than 0/1 (the model predicts P(label = 1) of the spec's label).
        """
        self._check_fitted()
        if self.spec is None:
            raise ParameterError("to_model and save need the spec the rows were featurized with: "
                                 "FTRLClassifier(spec=spec).fit(X, y) with X, y from sparsecross.featurize(data, spec)")
        spec = self._check_spec(sp.csr_array((0, self.n_features_in_), dtype=np.float32))
        assert spec is not None
        cls = np.asarray(self.classes_)
        if not (cls.dtype.kind in "biuf" and len(cls) == 2 and cls[0] == 0 and cls[1] == 1):
            raise ParameterError(f"to_model needs the 0/1 labels featurize gives; classes_ is {cls.tolist()}")
        from . import __version__
        from .model import SparseModel

        from .train import record_budget

        params = self._params()
        adm = self.state_.admission
        if adm is not None:  # the filter size it was trained with, as train records it
            params = replace(params, admit=adm.policy)
        keys, weights = self.state_.nonzero_weights(params.ftrl)
        stats = {"touched_features": self.state_.touched, "nonzeros": int(len(keys)),
                 "possible_features": spec.n_columns}
        if adm is not None:
            stats.update(adm.stats())
        model = SparseModel(keys, weights, self.state_.bias_weight(params.ftrl), spec, params.to_dict(), stats,
                            library_version=__version__)
        record_budget(model, self.state_, self.max_state_mb)
        return model

    def save(self, path: str | os.PathLike[str], *, encoding: str | None = None) -> int:
        """Write :meth:`to_model` to ``path`` as a ``.scx`` model
        (:func:`sparsecross.save_model`); return the file size in bytes."""
        from .export import save_model

        return save_model(self.to_model(), path, encoding=encoding)

    # ------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "state_"):
            raise NotFittedError("This FTRLClassifier instance is not fitted yet. Call 'fit' first.")

    def decision_function(self, X: Any) -> np.ndarray:
        """Margins (log-odds of ``classes_[1]``)."""
        self._check_fitted()
        X = self._check_X(X, reset=False)
        return self.state_.margins(X, self._params().ftrl)

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, 2) probabilities of ``classes_[0]`` and ``classes_[1]``."""
        from .predict import sigmoid

        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        m = self.decision_function(X)
        return self.classes_[(m > 0).astype(np.int64)]

    def score(self, X: Any, y: Any) -> float:
        return float(np.mean(self.predict(X) == np.asarray(y)))

    @property
    def intercept_(self) -> np.ndarray:
        self._check_fitted()
        return np.array([self.state_.bias_weight(self._params().ftrl)])

    @property
    def n_nonzero_(self) -> int:
        self._check_fitted()
        return int(len(self.state_.nonzero_weights(self._params().ftrl)[0]))

    @property
    def coef_(self) -> sp.csr_array:
        """1 x n_features sparse row of the nonzero weights (never dense)."""
        self._check_fitted()
        keys, w = self.state_.nonzero_weights(self._params().ftrl)
        return sp.csr_array((w.astype(np.float64), keys.astype(np.int64), np.array([0, len(keys)])),
                            shape=(1, self.n_features_in_))

    def __repr__(self) -> str:
        defaults = FTRLClassifier().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return "FTRLClassifier(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"
