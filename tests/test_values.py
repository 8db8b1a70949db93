"""The value checks shared by parameter and checkpoint validation (``sparsecross._values``),
against Python's own idea of an integer and of a finite number, and through their users."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsecross._values import is_int, is_num
from sparsecross.admission import AdmitPolicy
from sparsecross.budget import check_max_state_mb
from sparsecross.checkpoint import _check_meta
from sparsecross.errors import CheckpointError, ParameterError, SparseCrossError
from sparsecross.crosssearch import search_crosses
from sparsecross.path import check_grid, regularization_path
from sparsecross.spec import load_spec
from sparsecross.train_params import TrainParams
from sparsecross.tune import tune

INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


#: The least integer that rounds to 2^1024 (an infinity) as a float: halfway between the
#: largest double, 2^1024 - 2^971, and 2^1024 (a tie rounds to the even 2^1024).
FLOAT_OVERFLOW = (1 << 1024) - (1 << 970)


@given(st.integers(min_value=-(1 << 1100), max_value=1 << 1100))
def test_every_python_integer_is_an_int_and_a_number_within_floats_range(v):
    assert is_int(v)
    assert is_num(v) == (abs(v) < FLOAT_OVERFLOW)


@pytest.mark.parametrize("v,num", [(FLOAT_OVERFLOW - 1, True), (FLOAT_OVERFLOW, False), (10**400, False),
                                   (-(FLOAT_OVERFLOW - 1), True), (-(10**400), False), (1 << 70, True)],
                         ids=["below", "at", "1e400", "-below", "-1e400", "2^70"])
def test_an_integer_past_floats_range_is_not_a_number(v, num):
    assert is_int(v) and is_num(v) == num


@given(st.integers(min_value=0, max_value=127), st.sampled_from(INT_TYPES))
def test_numpy_integers_are_ints(v, t):
    assert is_int(t(v)) and is_num(t(v))


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from((float, np.float32, np.float64)))
def test_floats_are_numbers_when_finite_and_never_ints(v, t):
    with np.errstate(over="ignore"):  # a float64 past float32's range becomes an infinity
        x = t(v)
    assert not is_int(x)
    assert is_num(x) == math.isfinite(float(x))


@pytest.mark.parametrize("v", [True, False, np.bool_(True), np.bool_(False), None, "1", b"1", [1], 1j,
                               np.array([1]), np.array(1.0)])
def test_bools_and_non_numbers_are_neither(v):
    assert not is_int(v) and not is_num(v)


def test_the_users_refuse_a_bool_and_take_a_numpy_value():
    with pytest.raises(ParameterError, match="admit_after"):
        AdmitPolicy(after=True)
    assert AdmitPolicy(after=np.int64(3)).after == 3
    with pytest.raises(ParameterError, match="admit_probability"):
        AdmitPolicy(probability=float("nan"))
    with pytest.raises(ParameterError, match="max_state_mb"):
        check_max_state_mb(True)
    assert check_max_state_mb(np.float32(2.5)) == 2.5


def test_the_users_refuse_an_integer_past_floats_range():
    """A clear error, not an OverflowError from the float conversion."""
    with pytest.raises(ParameterError, match="max_state_mb"):
        check_max_state_mb(10**400)
    meta = json.loads('{"epoch": 0, "row": 0, "acc": [1' + "0" * 400 + ', 0, 0], "history": []}')
    with pytest.raises(CheckpointError, match="its acc"):
        _check_meta(Path("ck/state.npz"), meta, 2, 100, "row")


HUGE = 10**400  # an int past float's range: float(HUGE) raises OverflowError
ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"


@pytest.mark.parametrize("name", ["alpha", "beta", "l1", "l2", "label_smoothing", "holdout"])
@pytest.mark.parametrize("value", [HUGE, -HUGE], ids=["huge", "-huge"])
def test_train_params_refuse_an_integer_past_floats_range(name, value):
    with pytest.raises(ParameterError, match=rf"^{name} "):
        TrainParams(**{name: value})


def test_train_params_take_numpy_values_as_python_ones():
    """NumPy scalars are accepted and stored as Python int/float: the params' dict is the one
    of the same Python values and goes into strict JSON (stats, checkpoints)."""
    tp = TrainParams(alpha=np.float32(0.25), beta=np.int64(2), l1=np.float64(0.5), l2=np.int32(0),
                     epochs=np.int64(3), label_smoothing=np.float16(0.125), holdout=np.float64(0.2))
    plain = TrainParams(alpha=0.25, beta=2.0, l1=0.5, l2=0.0, epochs=3, label_smoothing=0.125, holdout=0.2)
    assert tp == plain and tp.to_dict() == plain.to_dict()
    assert [type(getattr(tp, k)) for k in ("alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "holdout")] \
        == [float, float, float, float, int, float, float]
    assert json.loads(json.dumps(tp.to_dict(), allow_nan=False)) == plain.to_dict()
    with pytest.raises(ParameterError, match="epochs"):
        TrainParams(epochs=np.bool_(True))
    with pytest.raises(ParameterError, match="epochs"):
        TrainParams(epochs=np.float64(2.0))


def test_grids_and_gains_refuse_an_integer_past_floats_range():
    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    with pytest.raises(SparseCrossError, match="--l1"):
        check_grid([0.5, HUGE], "l1")
    with pytest.raises(SparseCrossError, match="l2"):
        regularization_path(SAMPLE, spec, l1=[1.0], l2=[0.0, HUGE], holdout=0.2)
    with pytest.raises(SparseCrossError, match="alpha"):
        tune(SAMPLE, spec, alpha=[0.1, HUGE], l1=[1.0], holdout=0.2)
    with pytest.raises(SparseCrossError, match="min_gain"):
        search_crosses(SAMPLE, spec, k=1, min_gain=HUGE, holdout=0.2)
    for alpha in (HUGE, [0.1, HUGE]):
        with pytest.raises(SparseCrossError, match="alpha"):
            search_crosses(SAMPLE, spec, k=1, alpha=alpha, holdout=0.2)
    with pytest.raises(ParameterError, match="positive_weight"):
        spec.with_positive_weight(HUGE)


@pytest.mark.parametrize("call", [
    lambda v: check_max_state_mb(v),
    lambda v: TrainParams(alpha=v),
    lambda v: TrainParams(epochs=-v),
    lambda v: AdmitPolicy(after=v),
    lambda v: check_grid([1.0, v], "l1"),
], ids=["max_state_mb", "alpha", "epochs", "admit_after", "grid"])
@pytest.mark.parametrize("v", [10**400, 10**5000], ids=["401 digits", "5001 digits"])
def test_a_refused_number_is_shortened_in_its_message(call, v):
    """10**400 was echoed in 401 digits; 10**5000 made repr() itself raise ValueError (Python's
    4300-digit limit) in place of the typed error."""
    with pytest.raises(SparseCrossError) as info:
        call(v)
    msg = str(info.value)
    assert len(msg) < 200 and "digits" in msg, msg


@pytest.mark.parametrize("value", [HUGE, 10**5000, 2**63, 1_000_001], ids=["1e400", "1e5000", "2^63", "max+1"])
def test_epochs_and_early_stop_past_their_maximum_are_refused(value):
    """An epoch count is written into the model's JSON and checkpoints: beyond MAX_EPOCHS it
    is refused (an integer of more than 4,300 digits would make the artifact unreadable)."""
    from sparsecross.train_options import _check_early_stop
    from sparsecross.train_params import MAX_EPOCHS

    assert MAX_EPOCHS == 1_000_000 and TrainParams(epochs=MAX_EPOCHS).epochs == MAX_EPOCHS
    with pytest.raises(ParameterError, match=r"^epochs must be between 1 and 1,000,000, got ") as info:
        TrainParams(epochs=value)
    assert len(str(info.value)) < 120
    with pytest.raises(ParameterError, match=r"^early_stop must be between 1 and 1,000,000, got "):
        _check_early_stop(value, SAMPLE, None)
    assert _check_early_stop(np.int64(MAX_EPOCHS), SAMPLE, None) == MAX_EPOCHS


@pytest.mark.parametrize("name", ["epochs_max", "patience"])
@pytest.mark.parametrize("value", [0, 2_000_000, 10**400, "x", 2.0], ids=["0", "2e6", "1e400", "str", "float"])
def test_tune_and_the_cross_search_bound_epochs_max_and_patience(name, value):
    """As train's epochs and early_stop: an integer in [1, 1,000,000], refused before any
    data is read, the message naming the parameter (the search once ran patience=0 as 1 epoch
    and failed late on patience="x")."""
    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    with pytest.raises(ParameterError, match=rf"^{name} must be between 1 and 1,000,000, got ") as info:
        tune(SAMPLE, spec, **{name: value}, holdout=0.2)
    assert len(str(info.value)) < 120
    with pytest.raises(ParameterError, match=rf"^{name} must be between 1 and 1,000,000, got "):
        search_crosses(SAMPLE, spec, k=1, holdout=0.2, **{name: value})


def test_tune_takes_numpy_integers_for_epochs_max_and_patience():
    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    r = tune(SAMPLE, spec, alpha=[0.1], l1=[1.0], epochs_max=np.int64(2), patience=np.int32(1), holdout=0.2)
    assert (r.epochs_max, r.patience) == (2, 1) and type(r.epochs_max) is int and type(r.patience) is int


@pytest.mark.parametrize("value", [-(10**5000), -(10**400), "x" * 5000],
                         ids=["-1e5000", "-1e400", "long-str"])
def test_dask_counts_echo_a_refused_value_shortened(value):
    """One short line, not a ValueError from repr() past 4,300 digits or a 5,000-character echo."""
    from sparsecross.dask.training import _check_counts, train_distributed

    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    with pytest.raises(ParameterError, match="^retries must be between 0 and") as info:
        train_distributed(SAMPLE, spec, client=None, retries=value)
    assert len(str(info.value)) < 120
    with pytest.raises(SparseCrossError, match="^batch_rows must be between 1 and") as info:
        _check_counts(False, value, 2, None, None)
    assert len(str(info.value)) < 120


_MAX_ROWS = "9,223,372,036,854,775,807"


@pytest.mark.parametrize("options, refused", [
    ({"checkpoint_every": 0}, f"checkpoint_every must be between 1 and {_MAX_ROWS}, got 0"),
    ({"lanes": 0}, "lanes must be between 1 and 65,536, got 0"),
    ({"lanes": 65_537}, "lanes must be between 1 and 65,536, got 65537"),
    ({"lanes": 4, "rows_per_round": 3}, f"rows_per_round must be between 4 and {_MAX_ROWS}, got 3"),
    ({"mode": "exact", "rows_per_round": 0}, f"rows_per_round must be between 1 and {_MAX_ROWS}, got 0"),
    ({"checkpoint_rounds": 0}, f"checkpoint_rounds must be between 1 and {_MAX_ROWS}, got 0"),
    ({"retries": -1}, f"retries must be between 0 and {_MAX_ROWS}, got -1"),
    ({"prefetch_rounds": 2**63}, f"prefetch_rounds must be between 0 and {_MAX_ROWS}, got 9223372036854775808"),
    ({"in_flight": 0}, f"in_flight must be between 1 and {_MAX_ROWS}, got 0"),
    ({"lanes": True}, "lanes must be between 1 and 65,536, got True"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else None)
def test_train_distributed_words_a_bad_count_as_train_does(options, refused, tmp_path):
    """train_distributed said 'must be an integer >= N' (or '<= M') where train and the CLI
    say 'must be between N and M' (check_count): train(checkpoint_every=0) and
    train_distributed(checkpoint_every=0) now say the same, each bound as before, before any
    work."""
    from sparsecross.dask.training import train_distributed
    from sparsecross.train import train

    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
    with pytest.raises(ParameterError) as info:
        train_distributed(tmp_path / "missing.parquet", spec, client=None, **options)
    assert str(info.value) == refused
    if "checkpoint_every" in options:
        with pytest.raises(ParameterError) as single:
            train(tmp_path / "missing.parquet", spec, **options)
        assert str(single.value) == str(info.value)


@pytest.mark.parametrize("key", ["epochs", "early_stop"])
def test_a_specs_train_epochs_are_bounded_like_the_parameters(key):
    """check-spec must refuse what train would refuse: [train] epochs / early_stop past 1,000,000."""
    from sparsecross.errors import SpecError
    from sparsecross.spec import parse_spec

    base = {"label": {"column": "y"}, "features": [{"name": "c", "kind": "categorical", "column": "x"}]}
    assert parse_spec({**base, "train": {key: 1_000_000}}).train[key] == 1_000_000
    for bad in (1_000_001, 0):
        with pytest.raises(SpecError, match=rf"^train\.{key}: expected an integer in \[1, 1,000,000\]"):
            parse_spec({**base, "train": {key: bad}})


@pytest.mark.parametrize("key,bad", [("alpha", 0.0), ("alpha", math.nan), ("beta", -1.0), ("l1", -0.5),
                                     ("l2", math.inf), ("label_smoothing", 1.0), ("holdout", 5.0),
                                     ("holdout", 0.0)])
def test_a_specs_train_floats_are_checked_like_the_parameters(key, bad):
    """check-spec refuses what train would refuse (the spec fuzz campaign found these passing
    the parser, then refused by TrainParams after reading the data)."""
    from sparsecross.errors import SpecError
    from sparsecross.spec import parse_spec

    base = {"label": {"column": "y"}, "features": [{"name": "c", "kind": "categorical", "column": "x"}]}
    with pytest.raises(SpecError, match=rf"^train\.{key}: expected a finite number"):
        parse_spec({**base, "train": {key: bad}})
    with pytest.raises(ParameterError, match=rf"^{key} must be"):
        TrainParams(**{key: bad})
    good = {"alpha": 0.5, "beta": 0.0, "l1": 0.0, "l2": 0.0, "label_smoothing": 0.0, "holdout": 0.5}[key]
    assert parse_spec({**base, "train": {key: good}}).train[key] == good


#: Just past the bound of alpha, beta, l1 and l2 (1e12), and far past it.
PAST_FTRL_BOUND = [1.0000001e12, 2**64, 1e300]
FTRL_NAMES = ["alpha", "beta", "l1", "l2"]
_SPEC_BASE = {"label": {"column": "y"}, "features": [{"name": "c", "kind": "categorical", "column": "x"}]}


@pytest.mark.parametrize("name", FTRL_NAMES)
def test_ftrl_parameters_are_at_most_1e12(name):
    """alpha = 1e300 trained a whole run, then could not save its infinite weights; alpha =
    2**64 or l1 = 1e300 trained a useless model.  alpha, beta, l1 and l2 are at most
    MAX_FTRL_PARAM (1e12, as a row's weight), in TrainParams and a spec's [train] table: one
    short line naming the parameter and the bound; the bound itself is taken."""
    from sparsecross._values import MAX_FTRL_PARAM
    from sparsecross.errors import SpecError
    from sparsecross.spec import parse_spec

    assert MAX_FTRL_PARAM == 1e12
    assert getattr(TrainParams(**{name: 1e12}), name) == 1e12
    assert parse_spec({**_SPEC_BASE, "train": {name: 1e12}}).train[name] == 1e12
    for bad in PAST_FTRL_BOUND:
        with pytest.raises(ParameterError, match=rf"^{name} must be a finite number >=? 0 and at most 1e\+12, "
                                                 rf"got ") as info:
            TrainParams(**{name: bad})
        assert len(str(info.value)) < 120 and "\n" not in str(info.value)
        with pytest.raises(SpecError, match=rf"^train\.{name}: expected a finite number .+ and at most 1e\+12, got "):
            parse_spec({**_SPEC_BASE, "train": {name: float(bad)}})


def _ftrl_entry_points(missing: Path) -> dict[str, object]:
    """Each API entry point taking alpha, beta, l1 or l2, as ``call(name, value)``, on a file
    that does not exist: a refusal must come before the data is read."""
    from sparsecross.dask.training import train_distributed
    from sparsecross.estimator import FTRLClassifier
    from sparsecross.train import train

    spec = load_spec(ROOT / "data" / "specs" / "synthetic.toml")

    def grid(name, value, grids):  # a grid parameter gets a grid ending past the bound
        return {name: [0.5, value]} if name in grids else {name: value}

    return {
        "train": lambda n, v: train(missing, spec, checkpoint=missing.parent / "ck", **{n: v}),
        "train_distributed": lambda n, v: train_distributed(missing, spec, client=None, **{n: v}),
        "estimator": lambda n, v: FTRLClassifier(**{n: v}).fit(np.eye(2), [0, 1]),
        "path": lambda n, v: regularization_path(missing, spec, holdout=0.2,
                                                 **{"l1": [1.0], **grid(n, v, ("l1", "l2"))}),
        "tune": lambda n, v: tune(missing, spec, holdout=0.2, **{"alpha": [0.1], "l1": [1.0],
                                                                **grid(n, v, ("alpha", "l1"))}),
        "search_crosses": lambda n, v: search_crosses(missing, spec, k=1, holdout=0.2, **grid(n, v, ("alpha",))),
    }


@pytest.mark.parametrize("entry", ["train", "train_distributed", "estimator", "path", "tune", "search_crosses"])
@pytest.mark.parametrize("name", FTRL_NAMES)
def test_every_api_entry_point_refuses_a_parameter_past_the_bound_before_any_work(entry, name, tmp_path):
    """train, train_distributed, FTRLClassifier, regularization_path (l1 and l2 grids), tune
    (alpha and l1 grids) and search_crosses: a ParameterError naming the parameter and the
    bound, before the data is read, nothing written."""
    call = _ftrl_entry_points(tmp_path / "missing.parquet")[entry]
    for bad in PAST_FTRL_BOUND[:2]:
        with pytest.raises(ParameterError, match=rf"\b{name}\b.* at most 1e\+12, got ") as info:
            call(name, bad)
        assert len(str(info.value)) < 120
    assert list(tmp_path.iterdir()) == []
