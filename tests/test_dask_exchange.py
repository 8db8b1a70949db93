"""The data-parallel exchange of one round, task by task, without a cluster.

The round loop submits, per round, one preparation per lane (the chunk stays on its worker,
its keys travel), one look-up per shard (for every lane's keys there), one training task per
lane (fed by every shard's look-up) and one merge per shard (taking every lane's whole
result).  Here those task functions are called in-process in the order the
loop's dependencies impose, with more shards than the test cluster has workers, and the
state they build is compared with the plain-Python definition of data-parallel rounds
(``reference_data_parallel``, the dict-based FTRL oracle).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")  # (the reference lives in the Dask test module)

import sparsecross  # noqa: E402
from sparsecross._kernels.ftrl import FTRLParams  # noqa: E402
from sparsecross.dask import shards  # noqa: E402
from sparsecross.dask.lane_tasks import _PREPARED, _task_prepare, _task_train_lane  # noqa: E402
from sparsecross.dask.plan import _plan  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_distributed import GROUP_ROWS, SPEC, TRAIN_ROWS, reference_data_parallel  # noqa: E402

PARAMS = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)


@pytest.fixture(scope="module")
def train_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("exchange")
    return sparsecross.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=0, row_group_size=GROUP_ROWS)


def _run_rounds(path: Path, lanes: int, n_shards: int, token: str):
    """Every round through the task functions; returns the state as {key: (z, n)}, the bias and
    the summed progressive loss."""
    params = FTRLParams(PARAMS["alpha"], PARAMS["beta"], PARAMS["l1"], PARAMS["l2"], 0.0)
    chunks, _ = _plan(path, SPEC)
    key_dtype = np.dtype(np.uint64).str
    after = [shards._task_shard_init(token, s, 0, np.zeros(0, np.uint64), np.zeros((0, 2)), SPEC.n_columns,
                                     "float64") for s in range(n_shards)]
    bias, acc = np.zeros(2), np.zeros(3)
    try:
        for i, r0 in enumerate(range(0, len(chunks), lanes)):
            lane_chunks = chunks[r0:r0 + lanes]
            keys = [_task_prepare(c, SPEC, 65536, None, 0, key_dtype, n_shards, token, 0) for c in lane_chunks]
            looked = [shards._task_lookup(token, s, i, keys, after[s]) for s in range(n_shards)]
            acc_in = [acc.copy() if j == 0 else np.zeros(3) for j in range(len(keys))]
            results = [_task_train_lane(keys[j], token, 0, c.index, bias.copy(), acc_in[j], params, j, *looked)
                       for j, c in enumerate(lane_chunks)]
            assert not any(k[0] == token for k in _PREPARED)  # a trained chunk is dropped
            merged = [shards._task_merge(token, s, i, keys, looked[s], results, after[s]) for s in range(n_shards)]
            # a merge run again (a retry after it was applied) changes nothing and says the same
            assert shards._task_merge(token, 0, i, keys, looked[0], results, after[0]) == merged[0]
            assert all(m[1] == [] for m in merged[1:])  # only shard 0 carries the lanes' bias and sums
            metas = merged[0][1]
            assert len(metas) == len(keys)
            for (b, a), r in zip(metas, results):
                assert np.array_equal(b, r[1]) and np.array_equal(a, r[2])
            trained = [b for b, a in metas]  # (every lane trains rows here: no holdout)
            bias = bias + sum(b - bias for b in trained) / len(trained)
            acc = sum(a for _, a in metas)
            after = [m[0] for m in merged]
        state = {}
        for s in range(n_shards):
            k, zn = shards._task_dump(token, s, i + 1, None)
            state.update({int(key): (float(z), float(n)) for key, (z, n) in zip(k, zn)})
        return state, bias, float(acc[0])
    finally:
        shards._drop_shards(token)
        assert not any(k[0] == token for k in _PREPARED)


@pytest.mark.parametrize("n_shards", [1, 3])
def test_round_tasks_equal_the_reference_definition(train_path, n_shards):
    """K=3 lanes over 10 row groups (rounds of 3, 3, 3, 1 lanes), float64 state, 1 or 3 shards."""
    state, (zb, nb), loss = _run_rounds(train_path, 3, n_shards, f"exchange-test-{n_shards}")
    z, n, (ref_zb, ref_nb), ref_loss = reference_data_parallel(train_path, 3, **PARAMS)
    assert sorted(state) == sorted(z)
    for key, (zi, ni) in state.items():
        assert zi == pytest.approx(z[key], rel=1e-9, abs=1e-12)
        assert ni == pytest.approx(n[key], rel=1e-9, abs=1e-12)
    assert zb == pytest.approx(ref_zb, rel=1e-9) and nb == pytest.approx(ref_nb, rel=1e-9)
    assert loss == pytest.approx(ref_loss, rel=1e-9)


def test_round_tasks_give_the_same_state_on_any_number_of_shards(train_path):
    """The shards split the keys, not the arithmetic: 1, 2 and 5 shards hold the same state, bit
    for bit."""
    runs = [_run_rounds(train_path, 2, s, f"exchange-same-{s}") for s in (1, 2, 5)]
    for state, bias, loss in runs[1:]:
        assert state == runs[0][0]
        assert np.array_equal(bias, runs[0][1]) and loss == runs[0][2]


def test_a_look_up_of_the_wrong_round_is_refused(train_path):
    """A look-up names the shard version it expects: one for a round the shard has not reached
    fails instead of reading another round's values."""
    token = "exchange-version"
    shards._task_shard_init(token, 0, 0, np.zeros(0, np.uint64), np.zeros((0, 2)), SPEC.n_columns, "float64")
    try:
        with pytest.raises(shards._ShardLost, match="holds round 0, not 1"):
            shards._task_lookup(token, 0, 1, [[np.zeros(1, np.uint64)]], None)
    finally:
        shards._drop_shards(token)


def test_a_lane_whose_prepared_chunk_is_gone_is_a_lost_shard(train_path):
    """A lane task on a worker that no longer holds its prepared chunk (restarted, or the run
    was dropped) fails as a lost shard (the round loop restarts from its snapshot), and a
    preparation of a dropped run keeps nothing."""
    chunks, _ = _plan(train_path, SPEC)
    key_dtype = np.dtype(np.uint64).str
    params = FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)
    keys = _task_prepare(chunks[0], SPEC, 65536, None, 0, key_dtype, 1, "exchange-gone-a0", 0)
    assert ("exchange-gone-a0", 0, 0) in _PREPARED
    shards._drop_shards("exchange-gone")  # the run and its attempts
    assert not any(k[0].startswith("exchange-gone") for k in _PREPARED)
    with pytest.raises(shards._ShardLost, match="prepared chunk 0 is not on this worker"):
        _task_train_lane(keys, "exchange-gone-a0", 0, 0, np.zeros(2), np.zeros(3), params, 0, [np.zeros((0, 2))])
    with pytest.raises(shards._ShardLost, match="was stopped"):
        _task_prepare(chunks[1], SPEC, 65536, None, 0, key_dtype, 1, "exchange-gone-a1", 0)
    assert not any(k[0].startswith("exchange-gone") for k in _PREPARED)
