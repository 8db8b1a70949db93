"""The only place where Numba JIT options are defined.

``cache=True`` keeps compiled machine code on disk so a second process starts fast;
``nogil=True`` lets the reader thread featurize the next batch while the trainer runs.
No blanket ``fastmath``: results must be reproducible to the bit.

Numba decides whether a cached kernel is still valid from the SHA-256 of the one file that
defines it, but our kernels inline kernels of other files (``ftrl_pass`` inlines ``slot_from``
of ``table.py`` and ``admit_key`` of ``admit.py``): a change to ``table.py`` alone would leave
the old machine code running.  So every kernel of this folder is stamped with the digest of
ALL the folder's sources (:func:`kernels_digest`), through cache locators that differ from
Numba's only in that stamp; functions outside this folder are left to Numba's own locators.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from numba import njit

KERNELS_DIR = Path(__file__).resolve().parent


def kernels_digest(folder: Path = KERNELS_DIR) -> bytes:
    """SHA-256 over the names and bytes of the ``*.py`` files of ``folder``, in name order."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


_digest = functools.lru_cache(maxsize=1)(kernels_digest)


class _FolderStamp:
    """Mixin for Numba's source-file cache locators: only kernels of this folder, stamped
    with the whole folder's digest."""

    def get_source_stamp(self) -> Any:
        return _digest()

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        try:
            if Path(py_file).resolve().parent != KERNELS_DIR:
                return None
        except OSError:
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]


def _install_locators() -> None:
    """Put the folder-stamped locators ahead of Numba's (same order: a user's NUMBA_CACHE_DIR
    first, then the package's __pycache__, then the user-wide cache).  Numba's locator list is
    internal: if it is not where we expect, keep Numba's behaviour."""
    try:
        from numba.core import caching

        bases = [caching.UserProvidedCacheLocator, caching.InTreeCacheLocator, caching.UserWideCacheLocator]
        classes = caching.CacheImpl._locator_classes
    except AttributeError:  # pragma: no cover - another Numba layout
        return
    if any(getattr(k, "_sparsecross", False) for k in classes):
        return
    ours = [type(f"Sparsecross{b.__name__}", (_FolderStamp, b), {"_sparsecross": True}) for b in bases]
    classes[:0] = ours


_install_locators()

#: Serial kernels.
kernel = njit(cache=True, nogil=True)

#: Small kernels that a hot loop calls once per row or per entry: inlined into their callers
#: by Numba (``inline="always"``), where LLVM may keep them out of line (a call per row that
#: passes every array field on the stack).
inline_kernel = njit(cache=True, nogil=True, inline="always")

#: Row-parallel kernels (``prange`` over rows).
parallel_kernel = njit(cache=True, nogil=True, parallel=True)
