"""The dense-array Numba FTRL yardstick as a whole command (for the ``process/*/dense`` rows):

    python benchmarks/proc_dense.py SPEC DATA OUT.scx [--alpha A --beta B --l1 L1 --l2 L2]

Same reader, featurizer and prefetch thread as ``sparsecross.train``, then
``bench_kernels.dense_ftrl_pass`` over dense float32 z and n of ``n_columns`` (``np.zeros``:
pages faulted in during the run), the nonzero weights exported and written with
``sparsecross.save_model`` (float32), as ``sparsecross train --out`` does.  Prints one JSON line
(rows, nonzeros, model bytes).  Timed from outside by ``tasks.py process``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--l1", type=float, default=1.0)
    ap.add_argument("--l2", type=float, default=0.0)
    a = ap.parse_args()

    import numpy as np
    from bench_kernels import dense_export, dense_ftrl_pass

    import sparsecross
    from sparsecross.model import SparseModel
    from sparsecross.train import prefetch

    spec = sparsecross.load_spec(a.spec)
    nc = spec.n_columns
    z = np.zeros(nc, np.float32)
    n = np.zeros(nc, np.float32)
    bias = np.zeros(2)
    acc = np.zeros(3)
    rows = 0
    for batch in prefetch(sparsecross.iter_batches(a.data, spec)):
        X = batch.X
        rows += dense_ftrl_pass(X.indptr, X.indices, X.data, batch.y, z, n, bias, a.alpha, a.beta, a.l1, a.l2, acc)
    keys, w = dense_export(z, n, a.alpha, a.beta, a.l1, a.l2)
    w32 = w.astype(np.float32)
    keep = w32 != 0
    bias_w = float(-bias[0] / ((a.beta + np.sqrt(bias[1])) / a.alpha))
    model = SparseModel(keys[keep].astype(np.uint64), w32[keep], bias_w, spec)
    nbytes = sparsecross.save_model(model, a.out)
    print(json.dumps({"rows": rows, "nonzeros": int(model.nonzeros), "model_bytes": int(nbytes)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
