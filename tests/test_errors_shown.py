"""``errors.shown``: a user's value as it is echoed in a one-line error, shortened."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from sparsecross.errors import SHOWN_LIMIT, shown

values = st.one_of(st.integers(), st.floats(), st.text(), st.lists(st.integers()), st.binary())


@given(values)
def test_a_short_repr_is_kept_a_long_one_cut_to_its_start(v):
    r, s = repr(v), shown(v)
    if len(r) <= SHOWN_LIMIT:
        assert s == r
    else:
        n = SHOWN_LIMIT - 3
        assert s[:n] == r[:n] and s[n:n + 3] == "..." and len(s) < SHOWN_LIMIT + 20


def test_a_huge_integer_says_how_many_digits_even_past_reprs_limit():
    assert shown(10**400) == "1" + "0" * 36 + "... (401 digits)"
    assert shown(-(10**400)).endswith("... (401 digits)") and shown(-(10**400)).startswith("-1000")
    assert shown(10**5000) == "an integer of 5001 digits"  # repr() raises ValueError past 4300 digits
    assert shown(-(10**5000)) == "an integer of 5001 digits"
    assert shown(np.int64(7)) == repr(np.int64(7))


@given(st.integers(min_value=1, max_value=10**1200))
def test_digits_counts_as_str_does(n):
    from sparsecross.errors import _digits

    assert _digits(n) == len(str(n))


def test_a_container_of_a_huge_integer_is_described():
    assert shown([1, 10**5000]) == "a list of 2 items"
    assert shown([1, 10**400]).startswith("[1, 1000") and shown([1, 10**400]).endswith("...")
