"""In-place growth of the open-addressing table (issue 14 item 3).

``rehash_in_place`` against a plain Python linear-probing table (hash: the pure-Python fmix64 of
``tests/reference``), including clusters that wrap around the end of the old table; and
``FTRLState.grow`` in place: same (key, z, n), same buffer extended, the copying fallback when a
view pins the buffer, and the peak RSS of a real growth (Linux/glibc)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsecross._kernels.table import first_empty, rehash_in_place
import sparsecross.state as state_module
from sparsecross.state import FTRLState, realloc_may_copy
from tests.reference.hashing_reference import fmix64


def _home(key: int, cap: int) -> int:
    return fmix64(key) & (cap - 1)


def _py_table(keys: list[int], vals: list[tuple[float, float]], cap: int, dtype: type) -> np.ndarray:
    """Linear-probing table built in pure Python: keys in insertion order at their probe slot."""
    empty = np.iinfo(dtype).max
    t = np.zeros((cap, 3), dtype=dtype)
    t[:, 0] = empty
    fv = t.view(np.float32 if dtype == np.uint32 else np.float64)
    for k, (z, n) in zip(keys, vals):
        s = _home(k, cap)
        while int(t[s, 0]) != empty:
            s = (s + 1) % cap
        t[s, 0] = k
        fv[s, 1], fv[s, 2] = z, n
    return t


def _check_valid(t: np.ndarray, expect: dict[int, tuple[float, float]]) -> None:
    """Every key reachable from its home over occupied slots only; the same keys and values;
    empty slots hold zero values."""
    cap, empty = t.shape[0], int(np.iinfo(t.dtype).max)
    fv = t.view(np.float32 if t.dtype == np.uint32 else np.float64)
    got = {}
    for p in range(cap):
        k = int(t[p, 0])
        if k == empty:
            assert fv[p, 1] == 0 and fv[p, 2] == 0, p
            continue
        s = _home(k, cap)
        while s != p:
            assert int(t[s, 0]) != empty, f"hole at {s} between home and slot {p} of key {k}"
            s = (s + 1) % cap
        assert k not in got
        got[k] = (float(fv[p, 1]), float(fv[p, 2]))
    assert got == expect


def _grow(t: np.ndarray, factor: int) -> np.ndarray:
    """The kernel's contract: the buffer extended (upper part empty), then the in-place rehash."""
    old_cap = t.shape[0]
    big = np.zeros((old_cap * factor, 3), dtype=t.dtype)
    big[:old_cap] = t
    big[old_cap:, 0] = np.iinfo(t.dtype).max
    e = int(first_empty(big, old_cap))
    assert e < old_cap
    stash = big[:e].copy()
    fv = big.view(np.float32 if t.dtype == np.uint32 else np.float64)
    placed = rehash_in_place(big, fv, old_cap, e, stash, stash.view(fv.dtype))
    assert placed == int(np.count_nonzero(t[:, 0] != np.iinfo(t.dtype).max))
    return big


@st.composite
def tables(draw):
    log_cap = draw(st.integers(1, 9))
    cap = 1 << log_cap
    dtype = draw(st.sampled_from([np.uint32, np.uint64]))
    n = draw(st.integers(0, int(cap * 0.7) if cap > 2 else 1))
    pool = draw(st.sampled_from(["any", "tail"]))
    top = int(np.iinfo(dtype).max) - 1
    if pool == "tail":  # keys whose home is in the last quarter of the table: clusters that wrap
        keys: list[int] = []
        seed = draw(st.integers(0, 2 ** 32))
        rng = np.random.default_rng(seed)
        while len(keys) < n:
            k = int(rng.integers(0, min(top, 1 << 40)))
            if _home(k, cap) >= cap - max(1, cap // 4) and k not in keys:
                keys.append(k)
    else:
        keys = draw(st.lists(st.integers(0, top), min_size=n, max_size=n, unique=True))
    vals = [(float(i) + 0.5, float(i) * 2.0 + 1.0) for i in range(n)]
    factor = 1 << draw(st.integers(1, 3))
    return keys, vals, cap, dtype, factor


@settings(max_examples=400, deadline=None)
@given(tables())
def test_rehash_in_place_matches_a_python_table(case):
    keys, vals, cap, dtype, factor = case
    t = _py_table(keys, vals, cap, dtype)
    expect = dict(zip(keys, vals))
    _check_valid(t, expect)
    big = _grow(t, factor)
    _check_valid(big, expect)


def test_wrapping_clusters_are_exercised():
    """A full-ish small table whose cluster wraps from the last slot to slot 0 (the stash case)
    grows to valid tables for every growth factor."""
    cap = 64
    keys = [k for k in range(5000) if _home(k, cap) >= cap - 8][:40]
    vals = [(float(k), 1.0) for k in keys]
    t = _py_table(keys, vals, cap, np.uint32)
    assert int(first_empty(t, cap)) > 0 and t[cap - 1, 0] != np.iinfo(np.uint32).max  # it wraps
    for factor in (2, 4, 8, 16):
        _check_valid(_grow(t, factor), dict(zip(keys, vals)))


def _filled_state(n_keys: int, seed: int) -> FTRLState:
    state = FTRLState(1 << 30, "float32")
    rng = np.random.default_rng(seed)
    keys = rng.choice(1 << 30, size=n_keys, replace=False)
    while state.touched + n_keys > state.max_count:
        state.grow()
    grown = _py_table([int(k) for k in keys], [(float(i), float(i) + 1) for i in range(n_keys)],
                      state.capacity, np.uint32)
    state.table[:] = grown
    state.count[0] = n_keys
    return state


def test_state_grows_in_place_with_the_same_entries(monkeypatch):
    state = _filled_state(700, 3)
    before = state.as_dict()

    def no_copy(*args):
        raise AssertionError("copied into a new table")

    monkeypatch.setattr(state_module, "rehash", no_copy)  # (a reference would pin the buffer)
    for needed in (0, 2000):
        state.grow(needed)
        assert state.values.base is state.table and state.table.flags.owndata
        assert state.as_dict() == before
        _check_valid(state.table, before)
    assert state.capacity == 4096  # 1,024 -> 2,048 -> 4,096 (2,700 keys at 70%)
    # small blocks (realloc may copy them): extended in place (resize), never a new block
    assert [g[:4] for g in state.growth_log] == [(1024, 2048, 700, "realloc"), (2048, 4096, 700, "realloc")]
    assert all(g[4] >= 0 for g in state.growth_log)


def test_a_view_of_the_table_falls_back_to_a_copying_growth():
    state = _filled_state(500, 4)
    before = state.as_dict()
    keys = state.keys  # a view: the buffer cannot be resized while it lives
    old_bytes, nbytes = state.table.nbytes, state.nbytes
    table = state.table
    state.grow()
    assert state.table is not table and keys.base is table and state.capacity == 2048
    assert state.as_dict() == before
    assert state.bytes_peak == nbytes + 2 * old_bytes  # old and new held at once
    assert [g[:4] for g in state.growth_log] == [(1024, 2048, 500, "copy")]


def test_accounting_of_an_in_place_growth():
    state = FTRLState(1 << 30, "float32", capacity=1 << 22)  # 48 MiB: realloc moves the pages
    state.grow()
    # a block realloc may copy, large enough for huge pages, grows into a new block
    assert state.growth_log[0][:4] == (1 << 22, 1 << 23, 0, "new_block" if realloc_may_copy(48 << 20) else "realloc")
    if realloc_may_copy(48 << 20):
        assert state.bytes_peak >= state.nbytes + (48 << 20)
    else:
        assert state.bytes_peak == state.nbytes  # empty table: nothing set aside
    small = FTRLState(1 << 30, "float32")
    nbytes = small.nbytes
    small.grow()
    assert small.bytes_peak == nbytes + 2 * (1024 * 12)  # realloc of a small block may copy


_RSS_SCRIPT = textwrap.dedent("""
    import numpy as np
    from sparsecross._kernels.table import slot_of
    from sparsecross.state import FTRLState

    def hwm():
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024

    st = FTRLState(1 << 30, "float32", capacity=1 << 23)  # 96 MiB
    t = st.table
    for k in np.random.default_rng(1).choice(1 << 30, size=100_000, replace=False).astype(np.uint32):
        t[slot_of(t, k), 0] = k
    del t  # a reference would pin the buffer (and the growth would copy)
    st.count[0] = 100_000
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    base = hwm()
    st.grow()
    print(hwm() - base, st.table.nbytes, st.bytes_peak)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux") or realloc_may_copy(1 << 40),
                    reason="in-place realloc (mremap) is measured on Linux with glibc only")
def test_peak_rss_of_a_growth_is_the_new_table_not_old_plus_new():
    root = str(Path(__file__).resolve().parents[1])  # this checkout's sparsecross, not an installed one
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT], capture_output=True, text=True, check=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": root})
    delta, new_bytes, peak = map(int, out.stdout.split())
    # in place: the new half (96 MiB) comes on top of the old table; copying would add 192 MiB
    assert delta < 0.75 * new_bytes, (delta, new_bytes)
    assert new_bytes <= peak < new_bytes + (1 << 20)  # the accounting: the new table (+ a small stash)


def test_a_state_read_from_a_checkpoint_grows_in_place(tmp_path, monkeypatch):
    from sparsecross.checkpoint import read_checkpoint

    state = _filled_state(600, 5)
    state.save(tmp_path / "state.npz", {"a": 1})
    st2, meta = read_checkpoint(tmp_path / "state.npz")
    assert meta == {"a": 1} and st2.table.flags.owndata
    before = st2.as_dict()

    def no_copy(*args):
        raise AssertionError("copied into a new table")

    monkeypatch.setattr(state_module, "rehash", no_copy)
    st2.grow()
    assert st2.as_dict() == before and st2.capacity == 2048


@pytest.mark.skipif(realloc_may_copy(1 << 40), reason="in-place realloc only on Linux with glibc")
def test_budget_sizes_for_in_place_growth():
    from sparsecross.budget import MIB, capacity_for

    # 8M slots of 12 bytes = 96 MiB; growing into it may jump from a 2M-slot table (24 MiB,
    # below 32 MiB: realloc may copy it): 120 MiB + 16 bytes.  A copying growth needed 144 MiB.
    assert capacity_for(120 * MIB + 16, 12, 16) == 1 << 23
    assert capacity_for(120 * MIB + 15, 12, 16) == 1 << 22
    # 64M slots = 768 MiB: + 24 MiB (a possibly copied 2M-slot table; more than the 12 MiB reserve)
    assert capacity_for(792 * MIB + 16, 12, 16) == 1 << 26
    # 2^28 slots of 24 bytes = 6 GiB; reserve 1/64 = 96 MiB
    assert capacity_for(6 * 1024 * MIB + 96 * MIB, 24, 0) == 1 << 28
    assert capacity_for(6 * 1024 * MIB + 95 * MIB, 24, 0) == 1 << 27
    # small tables: realloc may copy, the old table (half) is reserved as before
    assert capacity_for(1.5 * 4096 * 12 + 16, 12, 16) == 4096
    assert capacity_for(1.5 * 4096 * 12 + 15, 12, 16) == 2048


def test_an_unpickled_state_shares_its_values_with_its_table_and_grows_in_place(monkeypatch):
    import pickle

    state = _filled_state(600, 6)
    st2 = pickle.loads(pickle.dumps(state))
    assert np.shares_memory(st2.values, st2.table) and st2.table.flags.owndata
    st2.values[3, 1] = 2.5  # z written through the view is the table's
    assert st2.table[3, 1] == np.float32(2.5).view(np.uint32)
    before = st2.as_dict()

    def no_copy(*args):
        raise AssertionError("copied into a new table")

    monkeypatch.setattr(state_module, "rehash", no_copy)
    st2.grow()
    assert st2.as_dict() == before


def _huge_page_advice(table: np.ndarray) -> tuple[int, int]:
    """(bytes of ``table``'s pages whose mapping has the huge-page advice (VmFlags ``hg``),
    bytes of its pages) from /proc/self/smaps."""
    lo, hi = table.ctypes.data, table.ctypes.data + table.nbytes
    advised = 0
    span = None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                a, b = (int(x, 16) for x in head.split("-"))
                span = (max(a, lo), min(b, hi)) if a < hi and b > lo else None
            elif span is not None and head == "VmFlags:" and "hg" in line.split()[1:]:
                advised += span[1] - span[0]
    return advised, hi - lo


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise advice read from /proc/self/smaps")
@pytest.mark.parametrize("capacity", [1024, 1 << 20])
def test_a_grown_table_keeps_the_huge_page_advice(capacity):
    """From a small (heap) table and from a numpy-allocated 12 MiB one, through growths that
    copy (below 32 MiB) and growths that realloc in place (48 -> 96 MiB): every page of the
    table stays advised for huge pages (a realloc'ed numpy buffer lost it: its pages came as
    4 KiB pages, a 96 MiB table of them trained 20-25% slower).  Entries unchanged."""
    state = FTRLState(1 << 30, "float32", capacity=capacity)
    keys = np.random.default_rng(7).choice(1 << 30, size=500, replace=False).astype(np.uint32)
    from sparsecross._kernels.table import slot_of

    for i, k in enumerate(keys):
        s = slot_of(state.table, k)
        state.table[s, 0] = k
        state.values[s, 1] = float(i)
    state.count[0] = len(keys)
    before = state.as_dict()
    while state.capacity < 1 << 23:
        state.grow(state.capacity)
        if state.table.nbytes >= state_module.HUGE_PAGES_FROM:
            advised, total = _huge_page_advice(state.table)
            assert advised == total, (state.capacity, advised, total)
    assert state.as_dict() == before
    assert state.values.base is state.table


def test_equal_states_pickle_to_equal_bytes_whatever_their_growth_timings():
    """growth_log holds wall-clock seconds: it must stay out of the pickle (determinism)."""
    import pickle

    a = FTRLState(1 << 20, capacity=1024)
    b = FTRLState(1 << 20, capacity=1024)
    for st in (a, b):
        st.grow(1500)
    b.growth_log = tuple((*g[:4], g[4] + 1.0) for g in b.growth_log)  # a slower machine
    assert a.growth_log and a.growth_log != b.growth_log
    assert pickle.dumps(a) == pickle.dumps(b)
    c = pickle.loads(pickle.dumps(a))
    assert c.growth_log == () and np.array_equal(c.table, a.table)
