"""``errors.shown``: a user's value as it is echoed in a one-line error, shortened."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross.errors import shown
from tests.hostile import CONTROL, hostile_name

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


# ----------------------------------------------------------------------------- paths
#: A path's components: any text (control characters, quotes, backslashes, a tag, a
#: surrogate), the hostile name of tests/hostile.py, never a separator.
components = st.one_of(st.text(min_size=1), escapes.filter(bool), st.sampled_from([CONTROL, hostile_name(300)]),
                       st.sampled_from(["data.parquet", "m.scx", "state.npz"])).map(lambda c: c.replace("/", "_"))
paths = st.lists(components, min_size=1, max_size=20).map("/".join)


def _escaped(text: str, quote: str) -> str:
    """``text`` as it is written inside a ``repr`` delimited by ``quote``."""
    return "".join("\\" + c if c == quote else repr(c)[1:-1] for c in text)


@settings(max_examples=500)
@given(paths, st.integers(min_value=3, max_value=250))
def test_a_long_path_is_shown_by_its_end_cut_between_escapes(path, limit):
    """A path whose repr is longer than ``limit`` is shown as "..." and the longest end of whole
    characters and escapes that fits: its file name, not its start (``shown`` kept the start)."""
    from sparsecross.errors import shown_path

    r, s = repr(path), shown_path(path, limit)
    assert s.isprintable() and len(s) <= limit
    if len(r) <= limit:
        assert s == shown(path, limit) == r
        return
    dots, end = s[:3], s[3:]
    assert dots == "..." and r.endswith(end) and len(end) <= limit - 3
    ends = _escape_ends(r)
    cut = len(r) - len(end)
    assert cut in ends, f"cut inside an escape: {s!r}"
    assert not any(len(r) - (limit - 3) <= e < cut for e in ends), f"cut short: {s!r}"
    name_end = _escaped(path.rpartition("/")[2], r[-1]) + r[-1]
    if 3 + len(name_end) <= limit:
        assert s.endswith(name_end), f"the file name is lost: {s!r}"


@given(paths)
def test_a_path_object_is_shown_as_its_text(path):
    from sparsecross.errors import shown_path

    assert shown_path(Path(path)) == shown_path(os.fspath(Path(path)))
    raw = os.fsencode(path)  # a bytes path: its repr's end too
    s = shown_path(raw, 30)
    assert s == repr(raw) if len(repr(raw)) <= 30 else s.startswith("...") and repr(raw).endswith(s[3:])
    assert len(s) <= 30 and s.isprintable()


def test_a_path_under_a_hostile_folder_keeps_its_file_name():
    from sparsecross.errors import NAME_LIMIT, shown_path

    folder = "/".join([CONTROL + "d" * 200] * 16)  # as tests/hostile.hostile_folder makes it
    s = shown_path(folder + "/model.scx")
    assert s.endswith("dddd/model.scx'") and s.startswith("...") and len(s) <= NAME_LIMIT and s.isprintable()
    assert shown_path("/tmp/m.scx") == shown("/tmp/m.scx") == "'/tmp/m.scx'"
    assert shown_path(folder + "/" + CONTROL).endswith("/\\x1b[31m\\r\\n\\x07'")
    assert shown_path(7) == shown(7)  # not a path (an OSError's filename may be a descriptor)


def test_shown_path_on_a_huge_path_reads_only_its_end():
    from sparsecross.errors import shown_path

    assert shown_path("\\" * 10_000_001 + "n", 12) == "..." + "\\\\" * 3 + "n'"
    assert shown_path("a" + "\\" * 10_000_000, 12) == "..." + "\\\\" * 4 + "'"
    assert shown_path("\x1b" * 10_000_000 + "ab", 12) == "...\\x1bab'"
