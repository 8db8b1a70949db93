"""Run every kernel once on tiny inputs (compiles them, or loads them from Numba's cache)."""

from __future__ import annotations

import pyarrow as pa


def warmup() -> None:
    from .predict import predict_proba
    from .spec import parse_spec
    from .state16 import new_state
    from .train import train_batch
    from .featurize import Batch, featurize
    from ._kernels.ftrl import FTRLParams
    import numpy as np

    spec = parse_spec({
        "label": {"column": "y"}, "hashing": {"bits": 4},
        "features": [
            {"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon"},
            {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.0]},
            {"name": "s", "kind": "categorical", "column": "s"},
            {"name": "i", "kind": "categorical", "column": "i"},
        ],
        "crosses": [{"features": ["s", "b"]}],
    })
    table = pa.table({"lat": [0.0, 1.0], "lon": [0.0, 1.0], "x": [0.5, None], "s": ["a", None],
                      "i": [1, 2], "y": [1, 0]})
    X, y, w = featurize(table, spec)
    params = FTRLParams(0.1, 1.0, 0.0, 0.0, 0.0)
    for dtype, bits in (("float32", 16), ("float64", 32), ("float32", 32)):  # the float32 state last: exported
        st = new_state(spec.n_columns, dtype, bits)
        train_batch(st, Batch(X, y, None, 0), params, np.zeros(0, np.uint8), np.zeros(3))
        st.margins(X, params)
        st.nonzero_weights(params)
        st.count_nonzero(params)
        st.grow()  # compiles the in-place rehash kernels
        _warm_eviction(st)
    from .train import TrainParams, export_state

    model = export_state(st, spec, TrainParams(l1=0.0), [], 2, warn_empty=False)
    predict_proba(model, table)
    from .metrics import StreamingMetrics

    labels = np.array([0.0, 1.0])
    StreamingMetrics().update(np.zeros(2), labels)
    labels.flags.writeable = False  # evaluate's labels: a read-only view of an Arrow buffer
    StreamingMetrics().update(np.zeros(2), labels)


def _warm_eviction(st) -> None:
    """Compile the state budget's kernels: evict the lowest-ranked key of a copy of ``st``."""
    import numpy as np

    from ._kernels.evict import evict_upto, rank_threshold

    st = st.copy()
    fbuf = np.zeros(1)
    ubuf = fbuf.view(np.uint64)
    vals = st.values if st.bits == 32 else (st.table, st.zbig, np.array([0.1, 1.0, 0.0]))  # 16 bits: decoded ranks
    t_score, t_key = rank_threshold(st.table, vals, 0.0, np.int64(1), fbuf, ubuf)
    evict_upto(st.table, vals, st.count, 0.0, np.uint64(t_score), np.uint64(t_key), fbuf, ubuf)
    if st.bits == 16:
        from ._kernels.ftrl16 import compact_zbig

        compact_zbig(st.table, st.zbig, st.zstats)
