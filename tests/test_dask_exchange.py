"""The data-parallel exchange of one round, task by task, without a cluster.

The round loop submits, per round, one preparation per lane (the chunk stays on its worker,
its keys travel), one look-up per shard (for every lane's keys there), one training task per
lane (fed by every shard's look-up) and one merge per shard (taking every lane's whole
result).  Here those task functions are called in-process in the order the
loop's dependencies impose, with more shards than the test cluster has workers, and the
state they build is compared with the plain-Python definition of data-parallel rounds
(``reference_data_parallel``, the dict-based FTRL oracle).  The admission / budget tasks
(``sparsecross.dask.admit``) go through the same exchange: without limits they build the
plain tasks' state bit for bit; with admission their counters add up (their rounds are
compared with their own plain-Python definition, on a cluster, in ``test_dask_admit.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("distributed")  # (the reference lives in the Dask test module)

import sparsecross  # noqa: E402
from sparsecross._kernels.ftrl import FTRLParams  # noqa: E402
from sparsecross.admission import policy_of  # noqa: E402
from sparsecross.dask import admit as dask_admit  # noqa: E402
from sparsecross.dask import shards  # noqa: E402
from sparsecross.dask.growth import _epoch_rows, _observe, _room, _round_rows  # noqa: E402
from sparsecross.dask.lane_tasks import _PREPARED, _task_prepare, _task_train_lane  # noqa: E402
from sparsecross.dask.plan import _Chunk, _plan  # noqa: E402
from sparsecross.state import FTRLState  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_distributed import GROUP_ROWS, SPEC, TRAIN_ROWS, reference_data_parallel  # noqa: E402

PARAMS = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)


@pytest.fixture(scope="module")
def train_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("exchange")
    return sparsecross.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=0, row_group_size=GROUP_ROWS)


def _run_rounds(path: Path, lanes: int, n_shards: int, token: str, book=None, *, sized: bool = False,
                growths: list[int] | None = None, batch_rows: int = 65536, chunk_rows: int | None = None):
    """Every round through the task functions (with ``book``, an ``admit.ShardBook``: its
    admission / budget tasks); returns the state as {key: (z, n)}, the bias and the summed
    progressive loss (and with ``book`` the shards' extras).  ``sized``: the merges are told
    the rows (``growth._round_rows``, as the round loop does) and size their growths;
    ``growths``: gets each shard's number of growths."""
    params = FTRLParams(PARAMS["alpha"], PARAMS["beta"], PARAMS["l1"], PARAMS["l2"], 0.0)
    chunks, _ = _plan(path, SPEC, chunk_rows=chunk_rows)
    key_dtype = np.dtype(np.uint64).str
    fn = {"init": shards._task_shard_init, "lookup": shards._task_lookup, "merge": shards._task_merge,
          "dump": shards._task_dump}
    fn.update({} if book is None else book.tasks())
    extra = () if book is None else (None,)
    after = [fn["init"](token, s, 0, np.zeros(0, np.uint64), np.zeros((0, 2)), SPEC.n_columns, "float64", *extra)
             for s in range(n_shards)]
    bias, acc = np.zeros(2), np.zeros(3)
    try:
        for i, r0 in enumerate(range(0, len(chunks), lanes)):
            lane_chunks = chunks[r0:r0 + lanes]
            keys = [_task_prepare(c, SPEC, batch_rows, None, 0, key_dtype, n_shards, token, 0) for c in lane_chunks]
            looked = [fn["lookup"](token, s, i, keys, after[s]) for s in range(n_shards)]
            acc_in = [acc.copy() if j == 0 else np.zeros(3) for j in range(len(keys))]
            train = [_task_train_lane if book is None else book.lane_task(0, c.start_row) for c in lane_chunks]
            results = [train[j](keys[j], token, 0, c.index, bias.copy(), acc_in[j], params, j, *looked)
                       for j, c in enumerate(lane_chunks)]
            assert not any(k[0] == token for k in _PREPARED)  # a trained chunk is dropped
            sizing = (_round_rows(0, lane_chunks, _epoch_rows(chunks)),) if sized else ()
            merged = [fn["merge"](token, s, i, keys, looked[s], results, after[s], *sizing) for s in range(n_shards)]
            # a merge run again (a retry after it was applied) changes nothing and says the same
            dumped = fn["dump"](token, 0, i + 1, None)
            assert fn["merge"](token, 0, i, keys, looked[0], results, after[0], *sizing) == merged[0]
            assert _same(fn["dump"](token, 0, i + 1, None), dumped)
            assert all(m[1] == [] for m in merged[1:])  # only shard 0 carries the lanes' bias and sums
            metas = merged[0][1]
            assert len(metas) == len(keys)
            for (b, a), r in zip(metas, results):
                assert np.array_equal(b, r[1]) and np.array_equal(a, r[2])
            trained = [b for b, a in metas]  # (every lane trains rows here: no holdout)
            bias = bias + sum(b - bias for b in trained) / len(trained)
            acc = sum(a for _, a in metas)
            after = [m[0] for m in merged]
        state, extras = {}, []
        for s in range(n_shards):
            k, zn, *ex = fn["dump"](token, s, i + 1, None)
            state.update({int(key): (float(z), float(n)) for key, (z, n) in zip(k, zn)})
            extras += ex
        if growths is not None:
            growths += [shards._SHARDS[(token, s)].state.growths for s in range(n_shards)]
        return (state, bias, float(acc[0])) + (() if book is None else (extras,))
    finally:
        shards._drop_shards(token)
        assert not any(k[0] == token for k in _PREPARED)


def _same(a, b) -> bool:
    """Two dumps (arrays, tuples of arrays and numbers) equal, bit for bit."""
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(a, b)


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


@pytest.mark.parametrize("admit", [None, {"admit_probability": 0.3}, {"admit_after": 2, "admit_filter_mb": 1 / 1024}])
def test_chunks_prepared_in_parts_train_the_same(train_path, monkeypatch, admit):
    """A lane's chunk is read, featurized and renumbered in parts (``lane_tasks.PART_ROWS``):
    parts of 37 rows (across row-group boundaries too, with chunks of 2.5 row groups) train
    the same state, bias and loss, bit for bit, as one part per row group; with admission
    too (its rows and estimates run on from part to part)."""
    from sparsecross.dask import lane_tasks

    name = "none" if admit is None else "-".join(admit)

    def run(tag, part_rows, batch_rows, chunk_rows):
        monkeypatch.setattr(lane_tasks, "PART_ROWS", part_rows)
        book = None if admit is None else _book(2, admit, None)
        return _run_rounds(train_path, 2, 2, f"exchange-parts-{name}-{tag}", book, batch_rows=batch_rows,
                           chunk_rows=chunk_rows)

    for chunk_rows in (None, 5 * GROUP_ROWS // 2):
        whole = run(f"whole-{chunk_rows}", 1 << 30, 65536, chunk_rows)
        parts = run(f"parts-{chunk_rows}", 37, 37, chunk_rows)
        assert parts[0] == whole[0] and np.array_equal(parts[1], whole[1]) and parts[2] == whole[2]
        if admit is not None:
            assert _same(parts[3], whole[3])


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


def _book(lanes: int, admit: dict, max_state_mb: float | None):
    rules = dask_admit.shard_rules(policy_of(**admit).sized(TRAIN_ROWS), max_state_mb, lanes=lanes,
                                   seed=SPEC.hashing.seed, l1=PARAMS["l1"])
    return dask_admit.ShardBook(rules)


def test_admission_tasks_without_limits_give_the_plain_exchange_state(train_path):
    """The admission / budget tasks of the same exchange (one look-up and one merge per shard,
    one lane task per lane) with a budget never reached and no admission: the plain tasks'
    state, bias and loss, bit for bit, on K = 2 shards."""
    plain = _run_rounds(train_path, 2, 2, "exchange-plain")
    ruled = _run_rounds(train_path, 2, 2, "exchange-ruled", _book(2, {}, 1e5))
    assert ruled[0] == plain[0] and np.array_equal(ruled[1], plain[1]) and ruled[2] == plain[2]
    assert sum(e[2] for e in ruled[3]) == 0  # nothing evicted


@pytest.mark.parametrize("admit", [{"admit_after": 2, "admit_filter_mb": 1 / 1024}, {"admit_probability": 0.3}])
def test_admission_tasks_keep_keys_out_and_count_them(train_path, admit):
    """With admission the same exchange admits fewer keys than the plain one; the shards'
    counters add up: every key held was admitted at a merge (a merge re-run counts nothing
    twice, checked in ``_run_rounds``), and sightings were rejected."""
    name = "-".join(admit)  # (a dropped run's token is never used again)
    plain = _run_rounds(train_path, 2, 2, f"exchange-noadmit-{name}")
    state, _bias, _loss, extras = _run_rounds(train_path, 2, 2, f"exchange-admit-{name}", _book(2, admit, None))
    assert 0 < len(state) < len(plain[0]) and set(state) <= set(plain[0])
    assert sum(int(e[1][0]) for e in extras) == len(state)
    assert sum(int(e[1][1]) for e in extras) > 0


@pytest.fixture(scope="module")
def many_rounds_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200,000 rows in row groups of 1,000: 100 rounds of K = 2 lanes, ~112,000 keys a shard."""
    d = tmp_path_factory.mktemp("growth")
    return sparsecross.generate(d / "train.parquet", rows=200_000, seed=0, row_group_size=1_000)


def test_shards_grow_like_single_node_tables_and_train_the_same(many_rounds_path):
    """Told where each round starts in the epoch, a shard sizes its growths from its own
    distinct-key curve (``state.GrowthPlan``): a handful of growths (single-node grows 4 times
    on these rows) where doubling takes 7, and the same state, bias and loss, bit for bit."""
    plain_growths, sized_growths = [], []
    plain = _run_rounds(many_rounds_path, 2, 2, "exchange-doubling", growths=plain_growths)
    sized = _run_rounds(many_rounds_path, 2, 2, "exchange-sized", sized=True, growths=sized_growths)
    assert sized[0] == plain[0] and np.array_equal(sized[1], plain[1]) and sized[2] == plain[2]
    assert min(plain_growths) >= 6
    assert max(sized_growths) <= 4


def test_round_rows_size_the_first_epoch_only():
    """A round's merges get (rows of the epoch before the round, rows of the epoch) in the
    first epoch, nothing after (no new keys: the table doubles if it must, as single-node)."""
    chunks = [_Chunk(i, 1_000 * i, 1_000 if i < 4 else 500, ()) for i in range(5)]
    rows = _epoch_rows(chunks)
    assert _round_rows(0, chunks[:2], rows) == (0, 4_500)
    assert _round_rows(0, chunks[2:4], rows) == (2_000, 4_500)
    assert _round_rows(0, chunks[4:], rows) == (4_000, 4_500)
    assert _round_rows(1, chunks[2:4], rows) is None


def test_a_shard_plans_from_the_rows_it_sees_and_a_new_epoch_size_starts_a_new_plan():
    """``growth._room``: without rows a growth makes room for the keys absent from the shard;
    with them, for the keys projected from the points the shard observed (none projected
    before a point at half the rows); a plan for other epoch rows is a new plan."""
    st = FTRLState(SPEC.n_columns, "float64")
    sh = shards._Shard(st, 0, {})

    def room(rows):  # what a merge does: observe at every round, project when it grows
        _observe(sh, rows)
        return _room(sh, 7, rows)

    assert room(None) == 7 and sh.plan is None
    assert room((0, 1_000_000)) == 7  # no keys yet
    st.count[0] = 1_000
    assert room((10_000, 1_000_000)) == 7  # one point: no curve yet
    st.count[0] = 1_800
    # Heaps' exponent log(1.8) / log(2) out to 8 x 20,000 rows: 1,800 * 1.8**3 = 10,497.6 keys
    assert room((20_000, 1_000_000)) == 10_498 - 1_800
    assert room((20_000, 2_000_000)) == 7 and sh.plan.rows_total == 2_000_000  # new plan


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.integers(1, 120), st.integers(1, 3))
def test_whole_row_groups_nearest_a_target(sizes, target, files):
    """``_plan(target_rows=...)``'s chunks: every row group whole, once, in order (across
    files); consecutive rows; a chunk takes the next group while that brings it nearer the
    target (strictly), and stops when the next group would not."""
    from sparsecross.dask.plan import _grouped

    groups = [(f"f{g * files // len(sizes)}", g, n) for g, n in enumerate(sizes)]
    chunks = _grouped(groups, target)
    assert [(p.path, p.group, p.offset, p.rows, p.group_rows) for c in chunks for p in c.pieces] == [
        (path, g, 0, n, n) for path, g, n in groups]
    assert [c.index for c in chunks] == list(range(len(chunks)))
    row = 0
    for c in chunks:
        assert c.start_row == row and c.rows == sum(p.rows for p in c.pieces)
        row += c.rows
        filled = 0
        for p in c.pieces:  # each group brought it nearer (the first is always taken)
            assert filled == 0 or abs(filled + p.rows - target) < abs(filled - target)
            filled += p.rows
    for c, nxt in zip(chunks, chunks[1:]):  # ... and the next one would not have
        assert abs(c.rows + nxt.pieces[0].rows - target) >= abs(c.rows - target)
