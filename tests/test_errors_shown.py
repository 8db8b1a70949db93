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


@given(st.text(), st.integers(min_value=3, max_value=60))
def test_plain_escapes_and_cuts_between_escapes(text, limit):
    from sparsecross.errors import plain

    s = plain(text, limit)
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    assert s.isprintable() and len(s) <= limit
    if len(escaped) <= limit:
        assert s == escaped
    else:  # a start of whole pieces (a character, or one's escape), then "..."
        assert s.endswith("...") and escaped.startswith(s[:-3])
        pieces = [c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text]
        n = 0
        for piece in pieces:
            if n >= len(s) - 3:
                break
            n += len(piece)
        assert n == len(s) - 3


def test_plain_on_a_huge_text_reads_only_its_start():
    from sparsecross.errors import plain

    assert plain("\x1b" * 10_000_000, 12) == "\\x1b\\x1b..."
    assert plain("ab\ncd") == "ab\\ncd" and plain("abc", 3) == "abc" and plain("abcd", 3) == "..."
