"""Tests of the scikit-learn-style estimator ``sparsecross.FTRLClassifier``: the API
(fit / partial_fit / decision_function / predict_proba / predict / get_params / set_params),
its equivalence with the streaming trainer's ``train_batch``, input validation, no input
mutation, huge column spaces, and (when scikit-learn is installed) a curated subset of
``sklearn.utils.estimator_checks``, ``clone`` and pickling."""

from __future__ import annotations

import math
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sparsecross import DataError, FTRLClassifier, FTRLState, NotFittedError  # noqa: E402
from sparsecross._kernels.ftrl import FTRLParams  # noqa: E402
from sparsecross.featurize import Batch  # noqa: E402
from sparsecross.train import train_batch  # noqa: E402
from tests.reference.ftrl_reference import ReferenceFTRL  # noqa: E402

try:
    import sklearn  # noqa: F401
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import parametrize_with_checks

    HAVE_SKLEARN = True
except ImportError:  # pragma: no cover - scikit-learn is optional
    HAVE_SKLEARN = False

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")

PARAMS = dict(alpha=0.3, beta=1.0, l1=0.2, l2=0.5, label_smoothing=0.05)
ALL_PARAM_NAMES = {"alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "state_dtype", "admit_after",
                   "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits", "spec"}


# =========================================================================================
# data
# =========================================================================================
def make_data(seed: int = 0, n: int = 400, d: int = 300, *, width: int | None = None):
    """Canonical CSR (int64 indices, float32 data, 1-8 entries a row, no explicit zeros) with
    labels from a planted sparse model.  ``width`` spreads the d used columns over a wider
    column space."""
    rng = np.random.default_rng(seed)
    width = d if width is None else width
    pool = np.sort(rng.choice(width, size=d, replace=False)) if width < 2**31 else \
        np.unique(rng.integers(0, width, size=d))
    effect = rng.normal(0, 2.0, size=len(pool)) * (rng.random(len(pool)) < 0.3)
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    y = np.empty(n, dtype=np.int64)
    for r in range(n):
        k = int(rng.integers(1, 9))
        pos = np.sort(rng.choice(len(pool), size=k, replace=False))
        vals = rng.choice([1.0, 1.0, 0.5, 2.0, -1.0], size=k).astype(np.float32)
        m = float(effect[pos] @ vals)
        y[r] = int(rng.random() < 1 / (1 + math.exp(-m)))
        indices.extend(int(pool[p]) for p in pos)
        data.extend(vals.tolist())
        indptr.append(len(indices))
    X = sp.csr_array((np.array(data, dtype=np.float32), np.array(indices, dtype=np.int64),
                      np.array(indptr, dtype=np.int64)), shape=(n, width))
    return X, y


@pytest.fixture(scope="module")
def data():
    return make_data()


def state_of(clf: FTRLClassifier) -> tuple[dict, tuple[float, float]]:
    return clf.state_.as_dict(), (float(clf.state_.bias[0]), float(clf.state_.bias[1]))


# =========================================================================================
# API
# =========================================================================================
def test_get_params_set_params():
    clf = FTRLClassifier()
    p = clf.get_params()
    assert set(p) == ALL_PARAM_NAMES
    assert p == dict(alpha=0.1, beta=1.0, l1=1.0, l2=0.0, epochs=1, label_smoothing=0.0, state_dtype="float64",
                     admit_after=None, admit_probability=None, admit_filter_mb=None, max_state_mb=None, state_bits=32,
                     spec=None)
    assert clf.set_params(admit_after=2, max_state_mb=0.5).get_params()["admit_after"] == 2
    assert clf.max_state_mb == 0.5 and "max_state_mb=0.5" in repr(clf)
    clf.set_params(admit_after=None, max_state_mb=None)
    assert clf.get_params(deep=False) == p
    assert clf.set_params(alpha=0.5, epochs=3) is clf
    assert clf.get_params()["alpha"] == 0.5 and clf.epochs == 3
    with pytest.raises(ValueError, match="gamma"):
        clf.set_params(gamma=1.0)
    clf2 = FTRLClassifier(**clf.get_params())
    assert clf2.get_params() == clf.get_params()
    assert "alpha=0.5" in repr(clf) and "epochs=3" in repr(clf)
    with pytest.raises(TypeError):
        FTRLClassifier(0.5)  # keyword-only


def test_fit_predict_roundtrip(data):
    X, y = data
    clf = FTRLClassifier(alpha=0.5, l1=0.0, epochs=5)
    assert clf.fit(X, y) is clf
    assert clf.n_features_in_ == X.shape[1]
    assert clf.classes_.tolist() == [0, 1]
    m = clf.decision_function(X)
    assert m.shape == (X.shape[0],) and m.dtype == np.float64
    proba = clf.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-m)), rtol=1e-12, atol=1e-15)
    pred = clf.predict(X)
    assert np.array_equal(pred, (m > 0).astype(np.int64))
    assert clf.score(X, y) == pytest.approx(float(np.mean(pred == y)))
    assert clf.score(X, y) > 0.7  # a planted model is learnt
    assert clf.intercept_.shape == (1,)
    assert clf.n_nonzero_ == clf.coef_.nnz


def test_string_labels_and_classes_order(data):
    X, y = data
    labels = np.where(y == 1, "yes", "no")
    clf = FTRLClassifier(alpha=0.5, l1=0.0).fit(X, labels)
    ref = FTRLClassifier(alpha=0.5, l1=0.0).fit(X, y)
    assert clf.classes_.tolist() == ["no", "yes"]
    assert state_of(clf) == state_of(ref)
    assert np.array_equal(clf.predict(X), np.where(ref.predict(X) == 1, "yes", "no"))


def test_fit_equals_reset_plus_epochs_of_partial_fit(data):
    X, y = data
    fitted = FTRLClassifier(epochs=3, **PARAMS).fit(X, y)
    online = FTRLClassifier(epochs=3, **PARAMS)
    for _ in range(3):
        online.partial_fit(X, y, classes=[0, 1])
    assert state_of(fitted) == state_of(online)
    np.testing.assert_array_equal(fitted.decision_function(X), online.decision_function(X))
    # fit resets: a second fit on other data, then on (X, y), equals one fit on (X, y)
    X2, y2 = make_data(5, n=100, d=X.shape[1])
    again = FTRLClassifier(epochs=3, **PARAMS).fit(X2, y2).fit(X, y)
    assert state_of(again) == state_of(fitted)
    # and a fit after partial_fit also starts from scratch
    mixed = FTRLClassifier(epochs=3, **PARAMS)
    mixed.partial_fit(X2, y2, classes=[0, 1])
    mixed.fit(X, y)
    assert state_of(mixed) == state_of(fitted)


@pytest.mark.parametrize("cuts", [[1], [37, 200], [1, 2, 3, 399], list(range(10, 400, 10))])
def test_partial_fit_chunks_equal_one_fit(data, cuts):
    X, y = data
    whole = FTRLClassifier(**PARAMS).fit(X, y)
    online = FTRLClassifier(**PARAMS)
    bounds = [0, *cuts, X.shape[0]]
    for a, b in zip(bounds, bounds[1:]):
        online.partial_fit(X[a:b], y[a:b], classes=np.array([0, 1]))
    assert state_of(online) == state_of(whole)


def test_partial_fit_infers_classes_from_first_chunk(data):
    X, y = data
    clf = FTRLClassifier(**PARAMS).partial_fit(X, y)
    assert clf.classes_.tolist() == [0, 1]
    ref = FTRLClassifier(**PARAMS).fit(X, y)
    assert state_of(clf) == state_of(ref)


def test_partial_fit_needs_two_classes_up_front(data):
    """A first chunk with one label (and no classes=) is refused at once, not by an
    IndexError at predict time; with classes= it is fine."""
    X, y = data
    ones = np.ones(X.shape[0], dtype=int)
    for kw in ({}, {"classes": [1]}):
        with pytest.raises(ValueError, match="greater than one"):
            FTRLClassifier(**PARAMS).partial_fit(X, ones, **kw)
    clf = FTRLClassifier(**PARAMS).partial_fit(X, ones, classes=[0, 1]).partial_fit(X, y)
    assert clf.classes_.tolist() == [0, 1] and set(clf.predict(X).tolist()) <= {0, 1}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_train_batch(data, dtype, weighted):
    X, y = data
    sw = np.random.default_rng(1).uniform(0, 2, X.shape[0]) if weighted else None
    clf = FTRLClassifier(epochs=2, state_dtype=dtype, **PARAMS).fit(X, y, sample_weight=sw)
    params = FTRLParams(PARAMS["alpha"], PARAMS["beta"], PARAMS["l1"], PARAMS["l2"], PARAMS["label_smoothing"])
    state = FTRLState(X.shape[1], dtype)
    for _ in range(2):
        train_batch(state, Batch(X, y.astype(np.float64), sw, 0), params, np.zeros(0, np.uint8), np.zeros(3))
    assert clf.state_.as_dict() == state.as_dict()
    assert np.array_equal(clf.state_.bias, state.bias)
    np.testing.assert_array_equal(clf.decision_function(X), state.margins(X, params))
    assert clf.intercept_[0] == state.bias_weight(params)


def test_matches_oracle(data):
    X, y = data
    clf = FTRLClassifier(**PARAMS).fit(X, y)
    ref = ReferenceFTRL(**PARAMS)
    for r in range(X.shape[0]):
        a, b = X.indptr[r], X.indptr[r + 1]
        ref.update([(int(i), float(v)) for i, v in zip(X.indices[a:b], X.data[a:b])], float(y[r]))
    got = clf.state_.as_dict()
    assert set(got) == set(ref.state())
    for k, (z, n) in ref.state().items():
        assert got[k][0] == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert got[k][1] == pytest.approx(n, rel=1e-9, abs=1e-12)
    coef = clf.coef_
    ref_w = ref.weights()
    assert set(coef.indices.tolist()) == {k for k, w in ref_w.items() if np.float32(w) != 0}
    for k, w in zip(coef.indices.tolist(), coef.data.tolist()):
        assert w == pytest.approx(ref_w[k], rel=1e-6)
    assert clf.intercept_[0] == pytest.approx(ref.bias(), rel=1e-9, abs=1e-12)


# =========================================================================================
# admission and the state budget: the same weights as train() with the same settings
# =========================================================================================
SYNTHETIC_SPEC = ROOT / "data" / "specs" / "synthetic.toml"
MEMORY = [dict(admit_after=2), dict(admit_probability=0.3), dict(max_state_mb=0.1),
          dict(admit_after=3, admit_filter_mb=1 / 64, max_state_mb=0.05)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import pyarrow.parquet as pq

    import sparsecross as sx

    path = sx.generate(tmp_path_factory.mktemp("estimator_world") / "train.parquet", rows=4_000, seed=2)
    spec = sx.load_spec(SYNTHETIC_SPEC)
    table = pq.read_table(path)
    X, y, w = sx.featurize(table, spec)
    return table, spec, X, y, w


@pytest.mark.parametrize("memory", MEMORY, ids=lambda m: ",".join(f"{k}={v:g}" for k, v in m.items()))
def test_admission_and_budget_match_train(world, memory):
    import sparsecross as sx

    table, spec, X, y, w = world
    kw = dict(alpha=0.2, l1=0.5, epochs=2, state_dtype="float32")
    trained = sx.train(table, spec, **kw, **memory)
    clf = FTRLClassifier(spec=spec, **kw, **memory).fit(X, y, sample_weight=w)
    coef = clf.coef_
    assert np.array_equal(coef.indices, trained.keys.astype(np.int64))
    assert np.array_equal(coef.data, trained.weights.astype(np.float64))
    assert clf.intercept_[0] == trained.bias
    m = clf.to_model()
    assert m.params == trained.params
    for k in ("touched_features", "admitted_features", "rejected_sightings", "evicted_features", "evictions"):
        assert m.stats.get(k) == trained.stats.get(k), k
    assert ("evictions" in m.stats) == ("max_state_mb" in memory)
    if "max_state_mb" in memory:
        assert m.stats["evictions"] > 0 and m.params["max_state_mb"] == memory["max_state_mb"]
    plain = sx.train(table, spec, **kw)
    assert not np.array_equal(plain.weights, trained.weights) or len(plain.keys) != len(trained.keys)


def test_admission_partial_fit_chunks_equal_fit_with_a_filter_size(world):
    """The default filter is sized from the rows fit sees (partial_fit: the first chunk's), so
    chunked partial_fit equals fit when admit_filter_mb fixes the size."""
    _, spec, X, y, _ = world
    kw = dict(alpha=0.2, l1=0.5, admit_after=2, admit_filter_mb=0.25, max_state_mb=0.5)
    whole = FTRLClassifier(**kw).fit(X, y)
    online = FTRLClassifier(**kw)
    for a, b in ((0, 1000), (1000, 2500), (2500, X.shape[0])):
        online.partial_fit(X[a:b], y[a:b], classes=[0, 1])
    assert state_of(online) == state_of(whole)
    assert np.array_equal(online.state_.admission.counts, whole.state_.admission.counts)
    back = pickle.loads(pickle.dumps(whole))  # the filter and the budget travel with the estimator
    back.partial_fit(X[:500], y[:500])
    whole.partial_fit(X[:500], y[:500])
    assert state_of(back) == state_of(whole) and back.state_.max_capacity == whole.state_.max_capacity > 0


def test_sample_weight_zero_rows_are_no_ops(data):
    X, y = data
    sw = np.ones(X.shape[0])
    sw[::3] = 0.0
    a = FTRLClassifier(**PARAMS).fit(X, y, sample_weight=sw)
    keep = sw > 0
    b = FTRLClassifier(**PARAMS).fit(X[keep], y[keep])
    # z, n and bias are identical; rows with weight 0 only add (0, 0) slots for their columns
    da, db = state_of(a)[0], state_of(b)[0]
    assert {k: v for k, v in da.items() if k in db} == db
    assert all(v == (0.0, 0.0) for k, v in da.items() if k not in db)
    assert state_of(a)[1] == state_of(b)[1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_bad_sample_weight_raises(data, bad):
    X, y = data
    sw = np.ones(X.shape[0])
    sw[7] = bad
    with pytest.raises(ValueError, match="sample_weight"):
        FTRLClassifier().fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="sample_weight"):
        FTRLClassifier().fit(X, y, sample_weight=np.ones(3))


@pytest.mark.parametrize("name,value", [("alpha", 0.0), ("alpha", -1.0), ("beta", -0.1), ("l1", np.nan),
                                        ("l2", -2.0), ("label_smoothing", 1.0), ("epochs", 0),
                                        ("state_dtype", "float16"), ("admit_after", 16), ("admit_after", 1.5),
                                        ("admit_probability", 0.0), ("admit_filter_mb", -1.0),
                                        ("max_state_mb", 0.0), ("max_state_mb", "big")])
def test_bad_hyperparameters_raise_value_error(data, name, value):
    X, y = data
    clf = FTRLClassifier(**{name: value})
    with pytest.raises(ValueError, match=name):
        clf.fit(X, y)
    with pytest.raises(ValueError, match=name):
        FTRLClassifier(**{name: value}).partial_fit(X, y, classes=[0, 1])


# =========================================================================================
# input handling
# =========================================================================================
def _messy_csr(X):
    """The same matrix as X, but float64 data, int32 indices, unsorted rows and each entry
    split in two duplicates (non-canonical)."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    cols = X.indices.astype(np.int64)
    vals = X.data.astype(np.float64)
    rows2 = np.concatenate([rows, rows])[::-1].copy()
    cols2 = np.concatenate([cols, cols])[::-1].copy()
    vals2 = np.concatenate([vals * 0.25, vals * 0.75])[::-1].copy()
    order = np.argsort(rows2, kind="stable")
    rows2, cols2, vals2 = rows2[order], cols2[order], vals2[order]
    indptr = np.searchsorted(rows2, np.arange(X.shape[0] + 1)).astype(np.int32)
    M = sp.csr_array((vals2, cols2.astype(np.int32), indptr), shape=X.shape)
    assert not M.has_canonical_format
    return M


def test_no_input_mutation(data):
    X, y = data
    M = _messy_csr(X)
    snap = (M.data.copy(), M.indices.copy(), M.indptr.copy(), M.has_sorted_indices)
    y_list = y.tolist()
    y_arr = y.copy()
    sw = np.linspace(0.5, 1.5, X.shape[0])
    sw_copy = sw.copy()
    clf = FTRLClassifier(**PARAMS)
    clf.fit(M, y_arr, sample_weight=sw)
    clf.partial_fit(M, y_arr, sample_weight=sw)
    clf.decision_function(M)
    clf.predict_proba(M)
    clf.predict(M)
    assert np.array_equal(M.data, snap[0]) and M.data.dtype == np.float64
    assert np.array_equal(M.indices, snap[1]) and M.indices.dtype == np.int32
    assert np.array_equal(M.indptr, snap[2])
    assert M.has_sorted_indices == snap[3]
    assert y_arr.tolist() == y_list
    assert np.array_equal(sw, sw_copy)
    D = X[:50].toarray()
    D_copy = D.copy()
    FTRLClassifier(**PARAMS).fit(D, y[:50]).predict(D)
    assert np.array_equal(D, D_copy)


def test_equivalent_inputs_give_the_same_model(data):
    """Non-canonical CSR (duplicates summed), csr_matrix, COO and dense inputs all train the
    same model as the canonical CSR."""
    X, y = data
    ref = FTRLClassifier(**PARAMS).fit(X, y)
    for variant in (_messy_csr(X), sp.csr_matrix(X), sp.coo_array(X), X.tocsc()):
        clf = FTRLClassifier(**PARAMS).fit(variant, y)
        assert state_of(clf) == state_of(ref), type(variant)
        np.testing.assert_array_equal(clf.decision_function(variant), ref.decision_function(X))
    small, ys = X[:60], y[:60]
    a = FTRLClassifier(**PARAMS).fit(small, ys)
    b = FTRLClassifier(**PARAMS).fit(small.toarray(), ys)
    c = FTRLClassifier(**PARAMS).fit(small.toarray().tolist(), ys.tolist())
    assert state_of(a) == state_of(b) == state_of(c)


def test_not_fitted_errors(data):
    X, _ = data
    clf = FTRLClassifier()
    for method in ("decision_function", "predict_proba", "predict"):
        with pytest.raises(NotFittedError, match="fit"):
            getattr(clf, method)(X)
    for attr in ("coef_", "intercept_", "n_nonzero_"):
        with pytest.raises(NotFittedError):
            getattr(clf, attr)
        assert not hasattr(clf, attr)  # NotFittedError is an AttributeError


def test_feature_count_mismatch(data):
    X, y = data
    clf = FTRLClassifier(**PARAMS).fit(X, y)
    wider = sp.csr_array((X.data, X.indices, X.indptr), shape=(X.shape[0], X.shape[1] + 1))
    for method in ("decision_function", "predict_proba", "predict"):
        with pytest.raises(ValueError, match=r"features"):
            getattr(clf, method)(wider)
    with pytest.raises(ValueError, match=r"features"):
        clf.partial_fit(wider, y)
    with pytest.raises(ValueError, match=r"features"):
        clf.predict(np.zeros((2, 5)))
    before = state_of(clf)
    assert state_of(clf) == before


def test_non_binary_y_raises(data):
    X, y = data
    y3 = y.copy()
    y3[:5] = 2
    with pytest.raises(ValueError, match="binary|class"):
        FTRLClassifier().fit(X, y3)
    with pytest.raises(ValueError, match="class"):
        FTRLClassifier().fit(X, np.zeros(X.shape[0], dtype=int))
    with pytest.raises(ValueError):
        FTRLClassifier().fit(X, np.linspace(0, 1, X.shape[0]))  # continuous target
    with pytest.raises(ValueError, match="binary|class"):
        FTRLClassifier().partial_fit(X, y, classes=[0, 1, 2])
    clf = FTRLClassifier().partial_fit(X, y, classes=[0, 1])
    with pytest.raises(DataError):
        clf.partial_fit(X[:10], y3[:10])
    with pytest.raises(ValueError):
        FTRLClassifier().fit(X, y[:-1])  # length mismatch
    with pytest.raises(ValueError):
        FTRLClassifier().fit(X, np.c_[y, y])  # 2-d y


def test_bad_x_raises(data):
    X, y = data
    with pytest.raises(ValueError, match="NaN|infinity"):
        FTRLClassifier().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="2D"):
        FTRLClassifier().fit(np.ones(3), [0, 1, 0])
    with pytest.raises(ValueError, match="0 sample"):
        FTRLClassifier().fit(np.zeros((0, 3)), [])
    with pytest.raises(ValueError, match="0 feature"):
        FTRLClassifier().fit(np.zeros((3, 0)), [0, 1, 0])


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_complex_x_is_rejected(kind):
    Xc = np.array([[1 + 1j, 0], [0, 2 - 1j], [1, 1j]])
    if kind == "sparse":
        Xc = sp.csr_array(Xc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # look at the outcome, not at numpy's warning
        try:
            FTRLClassifier().fit(Xc, [0, 1, 0])
        except ValueError:
            return
    pytest.fail("complex X was accepted")


def test_coef_is_sparse_row(data):
    X, y = data
    clf = FTRLClassifier(alpha=0.5, l1=0.5, epochs=3).fit(X, y)
    coef = clf.coef_
    assert sp.issparse(coef)
    assert coef.shape == (1, X.shape[1])
    assert coef.format == "csr"
    assert 0 < coef.nnz < X.shape[1]
    assert np.all(coef.data != 0)
    assert np.all(np.diff(coef.indices) > 0)
    keys, w = clf.state_.nonzero_weights(clf._params().ftrl)
    assert coef.indices.tolist() == keys.tolist()
    np.testing.assert_array_equal(coef.data, w.astype(np.float64))
    # float32 weights: the margins agree with X @ coef.T + intercept to float32 precision
    approx = (X @ coef.T).toarray().ravel() + clf.intercept_[0]
    np.testing.assert_allclose(approx, clf.decision_function(X), rtol=1e-5, atol=1e-5)
    # l1 = 0: every touched feature (with a non-zero gradient) has a weight
    dense_clf = FTRLClassifier(alpha=0.5, l1=0.0).fit(X, y)
    assert dense_clf.coef_.nnz == sum(1 for z, _ in dense_clf.state_.as_dict().values() if z != 0)


def test_huge_number_of_features():
    """n_features = 2**40: only touched columns cost memory; everything works."""
    X, y = make_data(3, n=500, d=400, width=1 << 40)
    assert X.shape[1] == 1 << 40
    clf = FTRLClassifier(alpha=0.5, l1=0.1, epochs=2).fit(X, y)
    assert clf.n_features_in_ == 1 << 40
    assert clf.state_.touched == len(np.unique(X.indices))
    assert clf.state_.nbytes < 1 << 20
    m = clf.decision_function(X)
    assert np.all(np.isfinite(m))
    assert clf.coef_.shape == (1, 1 << 40)
    assert clf.coef_.nnz == clf.n_nonzero_ > 0
    assert int(clf.coef_.indices.max()) >= 1 << 32
    assert clf.score(X, y) > 0.6
    # a dense row of the other width is rejected rather than allocated
    with pytest.raises(ValueError, match="features"):
        clf.predict(sp.csr_array((1, 1 << 39), dtype=np.float32))


# =========================================================================================
# scikit-learn interoperability
# =========================================================================================
@needs_sklearn
def test_sklearn_clone(data):
    X, y = data
    clf = FTRLClassifier(alpha=0.4, l1=0.3, epochs=2)
    c = clone(clf)
    assert c is not clf and c.get_params() == clf.get_params()
    clf.fit(X, y)
    c2 = clone(clf)
    assert not hasattr(c2, "state_") and not hasattr(c2, "classes_")
    assert c2.get_params() == clf.get_params()


def test_pickle_round_trip(data):
    X, y = data
    clf = FTRLClassifier(**PARAMS).fit(X, y)
    back = pickle.loads(pickle.dumps(clf))
    assert back.get_params() == clf.get_params()
    assert state_of(back) == state_of(clf)
    np.testing.assert_array_equal(back.decision_function(X), clf.decision_function(X))
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    # training continues identically after unpickling
    clf.partial_fit(X[:100], y[:100])
    back.partial_fit(X[:100], y[:100])
    assert state_of(back) == state_of(clf)
    unfitted = pickle.loads(pickle.dumps(FTRLClassifier(alpha=0.7)))
    assert unfitted.alpha == 0.7 and not hasattr(unfitted, "state_")


# Checks that cannot apply to this estimator, each with the reason.
SKIPPED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "online FTRL is order-dependent and per-row: weight 2 is one step with gradient 2g, not "
        "two steps (n accumulates g^2 per step), so weights != repeated rows by design",
    "check_sample_weight_equivalence_on_sparse_data":
        "same as check_sample_weight_equivalence_on_dense_data (online, per-row updates)",
    "check_all_zero_sample_weights_error":
        "fit is documented as reset + partial_fit passes; a chunk whose weights are all 0 is a "
        "legal no-op update for an online learner, not an error",
    "check_estimators_unfitted":
        "raises sparsecross.NotFittedError (an AttributeError); scikit-learn is not a dependency, "
        "so it cannot subclass sklearn.exceptions.NotFittedError (checked in test_not_fitted_errors)",
    "check_supervised_y_2d":
        "expects sklearn's own DataConversionWarning class (scikit-learn is not a dependency); a "
        "column-vector y is accepted and ravelled",
    "check_classifiers_regression_target":
        "a continuous target does raise ValueError ('binary; got N classes'); only the wording "
        "('Unknown label type'/'continuous') differs (checked in test_non_binary_y_raises)",
    "check_classifier_not_supporting_multiclass":
        "multiclass y does raise ValueError ('FTRLClassifier is binary; got 3 classes'); only "
        "the wording ('Only binary classification is supported') differs",
    "check_fit2d_predict1d":
        "1-d X does raise ValueError ('Expected 2D array, got 1D array instead'); sklearn wants "
        "its 'Reshape your data' wording (checked in test_bad_x_raises)",
    "check_requires_y_none":
        "y=None does raise ValueError ('y must be 1-d'); only the wording differs",
}

# Real estimator bugs found by the checks (strict xfail: they must fail until fixed).
BUG_CHECKS: dict[str, str] = {}


def _check_name(check) -> str:
    func = getattr(check, "func", check)
    return getattr(func, "__name__", str(func))


if HAVE_SKLEARN:
    with warnings.catch_warnings():
        # sklearn warns that FTRLClassifier does not inherit from BaseEstimator (by design:
        # scikit-learn is not a dependency).
        warnings.simplefilter("ignore")
        _sk_params = parametrize_with_checks(
            [FTRLClassifier(alpha=0.5, l1=0.0)],
            expected_failed_checks=lambda est: BUG_CHECKS,
            xfail_strict=True,
        )

    @_sk_params
    def test_sklearn_estimator_checks(estimator, check):
        name = _check_name(check)
        if name in SKIPPED_CHECKS:
            pytest.skip(f"{name}: {SKIPPED_CHECKS[name]}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not inherit from `sklearn.base.BaseEstimator`")
            check(estimator)
else:  # pragma: no cover - scikit-learn is optional

    @pytest.mark.skip(reason="scikit-learn is not installed")
    def test_sklearn_estimator_checks():
        pass
