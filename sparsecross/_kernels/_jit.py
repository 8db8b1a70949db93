"""The only place where Numba JIT options are defined.

``cache=True`` keeps compiled machine code on disk so a second process starts fast;
``nogil=True`` lets the reader thread featurize the next batch while the trainer runs.
No blanket ``fastmath``: results must be reproducible to the bit.
"""

from __future__ import annotations

from numba import njit

#: Serial kernels.
kernel = njit(cache=True, nogil=True)

#: Row-parallel kernels (``prange`` over rows).
parallel_kernel = njit(cache=True, nogil=True, parallel=True)
