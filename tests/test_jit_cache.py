"""The on-disk Numba cache of our kernels is invalidated by a change to ANY kernel source.

Numba stamps a cached function with the hash of its own file only, while our kernels inline
kernels of other files (``slot_of`` in ``table.py`` inlines ``fmix64`` of ``hash.py``): without
the folder-wide stamp of ``_kernels/_jit.py``, editing ``hash.py`` alone would keep running the
old machine code of ``slot_of`` from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

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


def test_no_two_kernels_embed_different_numba_sorts_under_one_name() -> None:
    """Numba names the function a closure factory makes (``make_quicksort_impl``'s
    ``run_quicksort``: one for ``sort``, another for ``argsort``) by qualified name, argument
    types and a per-process counter.  Two kernels cached by two processes can then define the
    same symbol for different code, and a third process that loads both links one to the
    other: on 2026-12-03 a cache written by a benchmark's processes made ``score_features``'s
    argsort run ``build_csr``'s in-place sort, and predictions for rows longer than SHORT_ROW
    came out NaN.  So the featurizer sorts with a function of its own; only the scorer uses
    Numba's (arg)sort on int64 rows."""
    import numpy as np

    from sparsecross._kernels.crosses import _sort_row

    from numba import njit

    fresh = njit(_sort_row.py_func)  # (cached code cannot be inspected)
    for sort in (_sort_row, fresh):
        row = np.arange(100, 0, -1, dtype=np.int64)
        sort(row, 0, 0, 100)
        assert row.tolist() == list(range(1, 101))
    llvm = fresh.inspect_llvm(fresh.signatures[0])
    assert "quicksort" not in llvm and "mergesort" not in llvm
