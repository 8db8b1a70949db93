"""``errors.shown``: a user's value as it is echoed in a one-line error, shortened."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross.errors import shown

#: Text with escapes in its repr: control characters, backslashes, quotes, a surrogate, a tag.
escapes = st.text(alphabet=st.characters(max_codepoint=0x20) | st.sampled_from("\\'\"ax\u2028\udc80\U000e0001"))
values = st.one_of(st.integers(), st.floats(), st.text(), escapes, st.lists(st.integers()), st.lists(escapes),
                   st.binary())


def _escape_ends(r: str) -> set[int]:
    """The positions in ``repr`` text ``r`` that are not inside an escape (``\\x1b``, ``\\n``,
    ``\\u2028``, ``\\U0001f600``, ``\\\\``...)."""
    ends, i = {0}, 0
    while i < len(r):
        i += {"x": 4, "u": 6, "U": 10}.get(r[i + 1:i + 2], 2) if r[i] == "\\" else 1
        ends.add(i)
    return ends


@settings(max_examples=500)
@given(values, st.integers(min_value=3, max_value=60))
def test_a_short_repr_is_kept_a_long_one_cut_between_escapes(v, limit):
    """A repr longer than ``limit`` is cut to its longest start of whole characters and escapes
    that leaves room for "..." (it was cut at ``limit - 3`` characters: ``'\\x1...``)."""
    r, s = repr(v), shown(v, limit)
    if len(r) <= limit:
        assert s == r
        return
    start, dots, digits = s.rpartition("...")
    assert dots and r.startswith(start) and len(start) <= limit - 3
    assert digits == ("" if not isinstance(v, int) else f" ({len(r.lstrip('-'))} digits)")
    ends = _escape_ends(r)
    assert len(start) in ends, f"cut inside an escape: {s!r}"
    assert not any(len(start) < e <= limit - 3 for e in ends), f"cut short: {s!r}"


def test_a_repr_is_not_cut_inside_an_escape():
    assert shown("ab" + "\x1b" * 50) == "'ab" + "\\x1b" * 8 + "..."  # was "...\\x..."
    assert shown("\U000e0001" * 5, 12) == "'..."  # was "'\\U000e00..."
    assert shown(b"\x00" * 20, 12) == "b'\\x00..."  # was "b'\\x00\\x0..."


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
