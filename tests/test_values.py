"""The value checks shared by parameter and checkpoint validation (``sparsecross._values``),
against Python's own idea of an integer and of a finite number, and through their users."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsecross._values import is_int, is_num
from sparsecross.admission import AdmitPolicy
from sparsecross.budget import check_max_state_mb
from sparsecross.errors import ParameterError

INT_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


@given(st.integers(min_value=-(1 << 70), max_value=1 << 70))
def test_every_python_integer_is_an_int_and_a_number(v):
    assert is_int(v) and is_num(v)


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
