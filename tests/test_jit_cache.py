"""The on-disk Numba cache of our kernels is invalidated by a change to ANY kernel source.

Numba stamps a cached function with the hash of its own file only, while our kernels inline
kernels of other files (``slot_of`` in ``table.py`` inlines ``fmix64`` of ``hash.py``): without
the folder-wide stamp of ``_kernels/_jit.py``, editing ``hash.py`` alone would keep running the
old machine code of ``slot_of`` from the cache.
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numba.core.bytecode import FunctionIdentity

import sparsecross
from sparsecross._kernels import _jit

PACKAGE = Path(sparsecross.__file__).resolve().parent

_PROBE = """
import numpy as np
from sparsecross._kernels.table import empty_table, slot_of
t = empty_table(1 << 10, 3, np.dtype(np.uint64))
print(int(slot_of(t, np.uint64(12345))))
"""


def _probe(root: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(root), "NUMBA_CACHE_DIR": ""}
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=root, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_kernels_use_the_folder_stamp() -> None:
    from sparsecross._kernels.ftrl import ftrl_pass

    locator = ftrl_pass._cache._impl._locator
    assert type(locator).__name__.startswith("Sparsecross")
    assert locator.get_source_stamp() == _jit.kernels_digest()


def test_digest_covers_every_kernel_source(tmp_path: Path) -> None:
    folder = tmp_path / "_kernels"
    shutil.copytree(PACKAGE / "_kernels", folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = _jit.kernels_digest(folder)
    (folder / "notes.txt").write_text("not a source")
    assert _jit.kernels_digest(folder) == before
    with open(folder / "table.py", "a", encoding="utf-8") as fh:
        fh.write("# changed\n")
    assert _jit.kernels_digest(folder) != before


def test_functions_elsewhere_keep_numbas_locator(tmp_path: Path) -> None:
    src = tmp_path / "elsewhere.py"
    src.write_text("def f():\n    return 1\n")
    ns: dict[str, object] = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)
    assert _jit._FolderStamp.from_function.__func__(type("L", (), {}), ns["f"], str(src)) is None


def test_a_change_to_an_inlined_kernel_reaches_a_cached_caller(tmp_path: Path) -> None:
    """A copy of the package: ``slot_of`` compiled and cached, then ``fmix64`` (hash.py) changed
    to the identity: the next process must compute the new home slot, not load the old code."""
    shutil.copytree(PACKAGE, tmp_path / "sparsecross", ignore=shutil.ignore_patterns("__pycache__"))
    first = _probe(tmp_path)
    assert any((tmp_path / "sparsecross" / "_kernels" / "__pycache__").glob("table.slot_of*.nbi"))
    hash_py = tmp_path / "sparsecross" / "_kernels" / "hash.py"
    text = hash_py.read_text(encoding="utf-8")
    body = '    """MurmurHash3 64-bit finalizer. ``x``: uint64. Returns uint64."""\n'
    assert body in text
    hash_py.write_text(text.replace(body, body + "    return x\n", 1), encoding="utf-8")
    assert _probe(tmp_path) == 12345 & ((1 << 10) - 1) != first


#: What Numba's own sorts are named by (``numba.misc.quicksort``, ``mergesort``, the lists' sorts).
NUMBA_SORTS = ("quicksort", "mergesort", "timsort")


def _kernel_dispatchers() -> dict[str, Any]:
    """Every Numba dispatcher defined in a module of ``sparsecross._kernels``, by ``module.name``."""
    from numba.core.dispatcher import Dispatcher

    import sparsecross._kernels as K

    found = {}
    for info in pkgutil.iter_modules(K.__path__):
        mod = importlib.import_module(f"sparsecross._kernels.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == mod.__name__:
                found[f"{info.name}.{name}"] = obj
    return found


def _linked_function_names(dispatcher: Any) -> set[str]:
    """The symbols (defined or called) of every compiled signature of ``dispatcher``: its code
    and the code of everything linked into it, compiled now or loaded from the cache."""
    names: set[str] = set()
    for cres in dispatcher.overloads.values():
        module = cres.library._get_module_for_linking()  # (numba internal; the cached code's bitcode too)
        names.update(fn.name for fn in module.functions)
    return names


def _exercise_sorting_kernels() -> None:
    """Compile (or load) the kernels that sort, with the types the package gives them."""
    from sparsecross._kernels.distinct import unique_first
    from sparsecross._kernels.lists import list_distinct, merge_entries

    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, 400).astype(np.uint64)
    offsets = np.array([0, 10, 400], dtype=np.int64)
    miss = np.zeros(400, dtype=np.uint8)
    list_distinct(offsets, keys, miss)
    frozen = [a.copy() for a in (offsets, keys, miss)]  # Arrow buffers: read-only
    for a in frozen:
        a.flags.writeable = False
    list_distinct(*frozen)
    indptr = np.array([0, 2, 3], dtype=np.int64)
    merge_entries(indptr, np.array([1, 5, 2], np.int64), np.ones(3, np.float32),
                  np.zeros(100, np.int64), rng.integers(0, 9, 100).astype(np.int64))
    unique_first(keys)


def test_no_kernel_embeds_a_numba_sort() -> None:
    """Numba names the functions its closure factories make (``make_quicksort_impl``'s
    ``run_quicksort1``: one for ``ndarray.sort``, another for ``np.argsort``) by qualified name,
    argument types and a per-process counter.  Two libraries cached by two processes can then
    define the same symbol for different code, and a third process that loads both links one
    to the other: on 2026-12-03 a cache written by a benchmark's processes made
    ``score_features``'s argsort run ``build_csr``'s in-place sort, and predictions for rows
    longer than SHORT_ROW came out NaN; the other library need not be ours (a user's cached
    ``ndarray.sort``, below).  So no kernel sorts with Numba's sorts: every compiled kernel
    (after ``warmup`` and the sorting kernels) is checked, with what is linked into it."""
    import sparsecross

    sparsecross.warmup()
    _exercise_sorting_kernels()
    kernels = _kernel_dispatchers()
    compiled = {name for name, d in kernels.items() if d.signatures}
    assert {"score.score_features", "crosses.build_csr", "distinct.unique_first",
            "lists.list_distinct", "lists.merge_entries", "ftrl.ftrl_pass"} <= compiled
    offenders = {name: sorted(s for s in _linked_function_names(kernels[name]) if any(k in s for k in NUMBA_SORTS))
                 for name in sorted(compiled)}
    assert {k: v for k, v in offenders.items() if v} == {}


#: Calls that make Numba generate a sort (or a selection) inside a kernel.
_SORTING_CALLS = {"sort", "argsort", "sorted", "unique", "median", "nanmedian", "percentile", "nanpercentile",
                  "quantile", "nanquantile", "partition", "argpartition", "lexsort", "searchsorted", "digitize",
                  "histogram", "isin", "in1d", "intersect1d", "setdiff1d", "setxor1d", "union1d"}


def test_no_kernel_source_calls_a_numba_sort() -> None:
    """The same, for kernels no test compiles: no call in ``_kernels/`` (but ``_jit.py``, plain
    Python) is to a function or method that makes Numba generate a sort."""
    calls = []
    for path in sorted((PACKAGE / "_kernels").glob("*.py")):
        if path.name == "_jit.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name in _SORTING_CALLS:
                    calls.append(f"{path.name}:{node.lineno} {name}")
    assert calls == []


_USER_SORT = """
import os

from numba import njit
from numba.core.bytecode import FunctionIdentity

for _ in range(int(os.environ.get("SKIP", "0"))):  # as many functions compiled before in this process
    next(FunctionIdentity._unique_ids)


@njit(cache=True)
def sort_in_place(a):
    a.sort()
"""

#: A Numba quicksort entry point on a C-contiguous 1-d array: its per-process counter and dtype code.
_RUN_QUICKSORT = re.compile(rb"run_quicksort1B\d+v(\d+)B\w+?E5ArrayI([a-z])Li1E1C")


def _quicksort_uids(folder: Path, pattern: str, dtype_code: str) -> list[int]:
    """The counters of the quicksort entry points defined in the cached code ``folder/**/pattern``."""
    uids = set()
    for path in folder.rglob(pattern):
        for m in _RUN_QUICKSORT.finditer(path.read_bytes()):
            if m.group(2) == dtype_code.encode():
                uids.add(int(m.group(1)))
    return sorted(uids)


def _run(code: str, cache: Path, user_dir: Path, skip: int = 0) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), str(user_dir)]),
           "NUMBA_CACHE_DIR": str(cache), "SKIP": str(skip)}
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=PACKAGE.parent, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _user_sort_aimed_at(tmp_path: Path, cache: Path, pattern: str, dtype: str, code: str) -> Path:
    """Write the user's module and cache its ``sort_in_place`` on ``dtype`` arrays in ``cache``,
    compiled with the counter our cached kernels (``pattern``) gave a Numba quicksort of that
    dtype, if any: two processes that happened to compile as many functions before."""
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "usersort.py").write_text(_USER_SORT, encoding="utf-8")
    calibrate = f"import numpy as np\nfrom usersort import sort_in_place\nsort_in_place(np.zeros(3, np.{dtype}))\n"
    _run(calibrate, tmp_path / "private", user_dir)
    (own,) = _quicksort_uids(tmp_path / "private", "usersort.*.nbc", code)
    targets = _quicksort_uids(cache, pattern, code)
    skip = targets[0] - own if targets else 0
    assert skip >= 0
    _run(calibrate, cache, user_dir, skip)
    if targets:  # the name collides
        assert _quicksort_uids(cache, "usersort.*.nbc", code) == targets[:1]
    return user_dir


_LOAD_BOTH = """
import numpy as np
from usersort import sort_in_place
from {module} import {kernel}

a = np.array([5, 3, 9, 1, 7, 2, 8, 0, 6, 4] * 4, dtype=np.{dtype})
if {user_first}:
    sort_in_place(a)
{body}
if not {user_first}:
    sort_in_place(a)
assert a.tolist() == sorted(a.tolist()), "the user's sort did not sort"
assert sort_in_place.stats.cache_hits and {kernel}.stats.cache_hits, "not both loaded from the cache"
print("ok")
"""


def test_a_users_cached_sort_does_not_change_unique_first(tmp_path: Path) -> None:
    """Two processes write one cache: ours (``unique_first``, which sorted its distinct keys with
    ``np.argsort``) and a user's (``ndarray.sort`` of uint64 keys), having compiled as many
    functions before; a third loads both, in either order.  With Numba's argsort in the
    kernel, one linked the other's code: ``unique_first`` returned the wrong rows (user's
    first) or the user's array came back unsorted (ours first)."""
    if not hasattr(FunctionIdentity, "_unique_ids"):  # pragma: no cover - another Numba layout
        pytest.skip("Numba's per-process function counter is not where expected")
    cache = tmp_path / "cache"
    probe = ("import numpy as np\nfrom sparsecross._kernels.distinct import unique_first\n"
             "print(unique_first(np.array([3, 1, 2, 0, 3], dtype=np.uint64))[1].tolist())\n")
    assert _run(probe, cache, tmp_path).strip() == "[3, 1, 2, 0]"
    user_dir = _user_sort_aimed_at(tmp_path, cache, "distinct.unique_first*.nbc", "uint64", "y")
    body = ("keys = np.array([3, 1, 2, 0, 3], dtype=np.uint64)\n"
            "got = unique_first(keys)\n"
            "ref = np.unique(keys, return_index=True)\n"
            "assert got[0].tolist() == ref[0].tolist() and got[1].tolist() == ref[1].tolist(), got\n")
    for user_first in (True, False):
        code = _LOAD_BOTH.format(module="sparsecross._kernels.distinct", kernel="unique_first", dtype="uint64",
                                 user_first=user_first, body=body)
        assert _run(code, cache, user_dir).strip() == "ok"


@pytest.mark.slow
def test_a_users_cached_sort_does_not_change_fused_predictions(tmp_path: Path) -> None:
    """The same with ``score_features`` (its argsort of a long row's int64 columns) and a user's
    ``ndarray.sort`` of int64 arrays: fused margins equal ``score_csr``'s on rows of ~300
    outputs, whichever library is loaded first."""
    if not hasattr(FunctionIdentity, "_unique_ids"):  # pragma: no cover - another Numba layout
        pytest.skip("Numba's per-process function counter is not where expected")
    cache = tmp_path / "cache"
    scenario = "from tests.test_predict import test_fused_scoring_long_rows_with_collisions as scenario\n"
    _run(scenario + "scenario()\n", cache, tmp_path)
    user_dir = _user_sort_aimed_at(tmp_path, cache, "score.*.nbc", "int64", "x")
    body = scenario + "scenario()\n"
    for user_first in (True, False):
        code = _LOAD_BOTH.format(module="sparsecross._kernels.score", kernel="score_features", dtype="int64",
                                 user_first=user_first, body=body)
        assert _run(code, cache, user_dir).strip() == "ok"
