"""Tests of scale-out on Dask (``sparsecross.distributed``, issue #6).

One module-scoped ``LocalCluster`` of 2 worker processes (processes, so that a worker can be
killed for real).  Data: ``sparsecross.generate`` (seed 0), small row groups so that a few
tens of thousands of rows make many units of work.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

import sparsecross  # noqa: E402
from sparsecross import CheckpointError, DataError, SchemaError, SparseCrossError, load_spec  # noqa: E402
from sparsecross.distributed import (  # noqa: E402
    DaskNotInstalledError,
    connect,
    evaluate_distributed,
    predict_distributed,
    train_distributed,
)
from sparsecross._kernels.ftrl import FTRLParams  # noqa: E402
from sparsecross.predict import evaluate, predict_file  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # `tests.reference` without a conftest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.reference.ftrl_reference import ReferenceFTRL  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.usefixtures("one_group_per_lane")]  # (see conftest)

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
TRAIN_ROWS = 40_000
GROUP_ROWS = 4_000


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of two files (10 row groups in all), a single file of the same rows, a test set."""
    d = tmp_path_factory.mktemp("dask-data")
    single = sparsecross.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=0, row_group_size=GROUP_ROWS)
    folder = d / "parts"
    folder.mkdir()
    table = pq.read_table(single)
    pq.write_table(table.slice(0, 24_000), folder / "part-0.parquet", row_group_size=GROUP_ROWS)
    pq.write_table(table.slice(24_000), folder / "part-1.parquet", row_group_size=GROUP_ROWS)
    test = sparsecross.generate(d / "test.parquet", rows=20_000, seed=0, row_group_size=5_000,
                                first_row=TRAIN_ROWS)
    return {"train": single, "folder": folder, "test": test, "dir": d}


@pytest.fixture(scope="module")
def client():
    """2 worker processes, 1 thread each, no dashboard (``local:2``: a start that fails on a
    loaded machine is retried)."""
    c, cluster = connect("local:2")
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture()
def healthy(client):
    """The shared client, with both workers up (a test may have killed one)."""
    client.wait_for_workers(2, timeout=180)  # a killed worker's replacement, on a loaded machine
    return client


@pytest.fixture(scope="module")
def reference(data):
    """Single-node model and state on the training folder."""
    return sparsecross.train(data["folder"], SPEC, return_state=True)


def same_model(a: sparsecross.SparseModel, b: sparsecross.SparseModel) -> bool:
    return (np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights)
            and a.bias == b.bias)


def same_state(a: sparsecross.FTRLState, b: sparsecross.FTRLState) -> bool:
    return a.as_dict() == b.as_dict() and np.array_equal(a.bias, b.bias) and a.touched == b.touched


# --------------------------------------------------------------------------- exactness
def test_one_lane_equals_single_node(data, healthy, reference):
    """K=1: every round trains one chunk from the global state = sequential training."""
    ref_model, ref_state = reference
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=1, return_state=True)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    assert model.stats["progressive_logloss"] == ref_model.stats["progressive_logloss"]
    assert model.params["lanes"] == 1 and model.params["mode"] == "data-parallel"
    assert model.run["rounds"] == TRAIN_ROWS // GROUP_ROWS


def test_one_lane_with_rows_per_round_and_holdout_equals_single_node(data, healthy):
    """Chunks that span row groups and files, a holdout split, float64 state, 2 epochs."""
    kw = dict(holdout=0.2, state_dtype="float64", epochs=2, alpha=0.2, l1=0.5)
    ref_model, ref_state = sparsecross.train(data["folder"], SPEC, return_state=True, **kw)
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=1, rows_per_round=6_500,
                                     return_state=True, **kw)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    for mine, ref in zip(model.stats["history"], ref_model.stats["history"]):
        for k in ("progressive_logloss", "train_rows", "valid_rows", "valid_logloss", "valid_auc"):
            assert mine[k] == ref[k], k


def test_exact_mode_equals_single_node(data, healthy, reference):
    ref_model, ref_state = reference
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, mode="exact", in_flight=3,
                                     return_state=True)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    assert model.params == ref_model.params  # exact mode is an execution strategy, not a parameter
    assert model.stats["history"] == ref_model.stats["history"]


def test_exact_mode_validation_equals_single_node(data, healthy):
    ref = sparsecross.train(data["train"], SPEC, valid=data["test"])
    model = sparsecross.train(data["train"], SPEC, client=healthy, mode="exact", valid=data["test"],
                              rows_per_round=7_000)
    assert same_model(model, ref)
    assert model.stats["history"] == ref.stats["history"]


def reference_data_parallel(path: Path, lanes: int, alpha: float, beta: float, l1: float, l2: float):
    """Data-parallel training as the issue defines it, in plain Python on the dict-based FTRL
    oracle: per round, K lanes (one row group each) train from the same global state; a key
    touched by one lane takes its values, by m lanes the average of their deltas; the bias
    likewise.  Returns (z, n, bias (z, n), total progressive loss)."""
    pf = pq.ParquetFile(path)
    chunks = []
    for g in range(pf.metadata.num_row_groups):
        X, y, _ = sparsecross.featurize(pf.read_row_group(g), SPEC)
        chunks.append([([(int(i), float(v)) for i, v in zip(X.indices[X.indptr[r]:X.indptr[r + 1]],
                                                            X.data[X.indptr[r]:X.indptr[r + 1]])], float(y[r]))
                       for r in range(X.shape[0])])
    z: dict[int, float] = {}
    n: dict[int, float] = {}
    zb = nb = 0.0
    loss = 0.0
    for r0 in range(0, len(chunks), lanes):
        done = []
        for rows in chunks[r0:r0 + lanes]:
            lane = ReferenceFTRL(alpha, beta, l1, l2)
            lane.z, lane.n, lane.z_b, lane.n_b = dict(z), dict(n), zb, nb
            loss += sum(lane.update(items, y) for items, y in rows)
            done.append((lane, {i for items, _ in rows for i, _ in items}))
        keys = sorted(set().union(*(k for _, k in done)))
        new_z, new_n = {}, {}
        for i in keys:
            mine = [lane for lane, k in done if i in k]
            if len(mine) == 1:
                new_z[i], new_n[i] = mine[0].z[i], mine[0].n[i]
            else:
                z0, n0 = z.get(i, 0.0), n.get(i, 0.0)
                new_z[i] = z0 + sum(lane.z[i] - z0 for lane in mine) / len(mine)
                new_n[i] = n0 + sum(lane.n[i] - n0 for lane in mine) / len(mine)
        z.update(new_z)
        n.update(new_n)
        zb, nb = (zb + sum(lane.z_b - zb for lane, _ in done) / len(done),
                  nb + sum(lane.n_b - nb for lane, _ in done) / len(done))
    return z, n, (zb, nb), loss


def test_data_parallel_equals_the_reference_definition(data, healthy):
    """K=3 lanes over 10 row groups (rounds of 3, 3, 3, 1 lanes), float64 state: the state and
    the progressive loss equal the plain-Python definition of data-parallel rounds."""
    params = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)
    model, state = sparsecross.train(data["train"], SPEC, client=healthy, lanes=3, state_dtype="float64",
                                     return_state=True, **params)
    z, n, (zb, nb), loss = reference_data_parallel(data["train"], 3, **params)
    got = state.as_dict()
    assert sorted(got) == sorted(z)
    for i, (zi, ni) in got.items():
        assert zi == pytest.approx(z[i], rel=1e-9, abs=1e-12) and ni == pytest.approx(n[i], rel=1e-9, abs=1e-12)
    assert state.bias[0] == pytest.approx(zb, rel=1e-9) and state.bias[1] == pytest.approx(nb, rel=1e-9)
    assert model.stats["progressive_logloss"] == pytest.approx(loss / TRAIN_ROWS, rel=1e-9)
    assert model.run["rounds"] == 4


def test_same_lanes_same_model_on_one_or_two_workers(data, healthy):
    """K is a model parameter: a 1-worker (in-process) cluster gives the very same model."""
    two, two_state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=3, return_state=True)
    # ":0": the module's cluster may hold the scheduler's default HTTP port 8787
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as one_client:
        one, one_state = sparsecross.train(data["folder"], SPEC, client=one_client, lanes=3, return_state=True)
    assert same_model(one, two)
    assert same_state(one_state, two_state)
    assert two.params["lanes"] == 3
    # ... and K matters: a different K is a different model
    other = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2)
    assert not same_model(other, two)


def test_default_rounds_take_whole_row_groups_near_a_target(data, healthy, monkeypatch, tmp_path):
    """Without ``rows_per_round`` a lane's chunk is consecutive whole row groups, as near
    ``LANE_ROWS_TARGET`` rows as they come (a round costs Dask milliseconds per task): with a
    target of 13,000 and groups of 4,000, three groups per lane (12,000: a fourth would be
    farther), across the two files, which is the very model of ``rows_per_round`` 2 x 12,000.
    The target is a run parameter: a checkpoint of another target is refused, never resumed
    with other rounds."""
    from sparsecross import _defaults

    monkeypatch.setattr(_defaults, "LANE_ROWS_TARGET", 13_000)
    ckpt = tmp_path / "ckpt"
    grouped = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2, checkpoint=ckpt)
    explicit = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2, rows_per_round=24_000)
    assert same_model(grouped, explicit)
    assert grouped.run["rounds"] == 2  # chunks of 12,000, 12,000, 12,000 and 4,000 rows
    assert grouped.params["lane_rows_target"] == 13_000 and grouped.params["rows_per_round"] is None
    assert "lane_rows_target" not in explicit.params
    monkeypatch.setattr(_defaults, "LANE_ROWS_TARGET", 1)  # one row group per lane: other rounds, another model
    per_group = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2)
    assert per_group.run["rounds"] == 5 and not same_model(per_group, grouped)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2, checkpoint=ckpt)


def test_last_snapshot_moves_only_the_weights(data, reference, monkeypatch):
    """Without a checkpoint, validation or ``return_state``, the end of training fetches only
    the shards' rows with a weight (a few percent of the state): the model, its touched count
    and the epoch-end event still equal single-node's (K=1)."""
    from sparsecross.dask import shards

    dumped: list[tuple[str, int]] = []  # (kernel, rows) of every dump (the tasks run in this process)
    for name in ("table_items", "table_live_items"):
        def spy(*args, _kernel=getattr(shards, name), _name=name):
            out = _kernel(*args)
            dumped.append((_name, len(out[0])))
            return out

        monkeypatch.setattr(shards, name, spy)
    events: list[sparsecross.ProgressEvent] = []
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        model = sparsecross.train(data["folder"], SPEC, client=c, lanes=1, checkpoint_rounds=4,
                                  on_progress=events.append)
    ref_model, ref_state = reference
    assert same_model(model, ref_model)
    assert model.stats["touched_features"] == ref_model.stats["touched_features"] == ref_state.touched
    end = [ev for ev in events if ev.phase == "epoch_end"][-1]
    assert (end.touched, end.nonzeros) == (ref_state.touched, ref_model.nonzeros)
    assert dumped[-1] == ("table_live_items", ref_model.nonzeros) and ref_model.nonzeros < ref_state.touched
    assert [k for k, _ in dumped[:-1]] == ["table_items"] * 2  # the recovery points: all rows


def test_data_parallel_quality_close_to_single_node(tmp_path, healthy):
    """Test logloss of K=4 data-parallel within 2 % of single-node (same world, later rows)."""
    train = sparsecross.generate(tmp_path / "train.parquet", rows=200_000, seed=0, row_group_size=10_000)
    test = sparsecross.generate(tmp_path / "test.parquet", rows=50_000, seed=0, row_group_size=25_000,
                                first_row=200_000)
    single = evaluate(sparsecross.train(train, SPEC), test)["logloss"]
    dp = evaluate(sparsecross.train(train, SPEC, client=healthy, lanes=4), test)["logloss"]
    assert dp <= single * 1.02, (dp, single)


# ------------------------------------------------------------------------------- faults
def test_worker_killed_mid_training_leaves_result_unchanged(data, healthy):
    kw = dict(lanes=2, rows_per_round=4_000)
    expected = sparsecross.train(data["folder"], SPEC, client=healthy, **kw)
    pids = healthy.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = threading.Event()

    def on_progress(ev: sparsecross.ProgressEvent) -> None:
        # (the callback runs when round 2 is done and round 3 already submitted: the worker
        # dies while round 3 is in flight, however slow the machine)
        if ev.extra.get("round") == 2 and not killed.is_set():
            os.kill(victim, signal.SIGKILL)
            killed.set()

    model = sparsecross.train(data["folder"], SPEC, client=healthy, on_progress=on_progress, **kw)
    assert killed.is_set()
    assert same_model(model, expected)
    assert model.run["rounds"] == 10
    assert model.run["recoveries"] == 1  # both workers hold a state shard: one was lost


def test_resume_from_checkpoint_equals_uninterrupted(data, healthy, tmp_path):
    kw = dict(lanes=2, rows_per_round=6_000, epochs=2, checkpoint_rounds=2)
    full, full_state = sparsecross.train(data["folder"], SPEC, client=healthy, return_state=True,
                                         checkpoint=tmp_path / "a", **kw)

    class Crash(Exception):
        pass

    def crash(ev: sparsecross.ProgressEvent) -> None:
        if ev.epoch == 1 and ev.extra.get("round") == 5:
            raise Crash

    ckpt = tmp_path / "b"
    with pytest.raises(Crash):
        sparsecross.train(data["folder"], SPEC, client=healthy, checkpoint=ckpt, on_progress=crash, **kw)
    _, meta = sparsecross.FTRLState.load(ckpt / "state.npz")
    assert (meta["epoch"], meta["round"]) == (1, 4)
    rounds: list[int] = []
    resumed, resumed_state = sparsecross.train(
        data["folder"], SPEC, client=healthy, checkpoint=ckpt, return_state=True,
        on_progress=lambda ev: rounds.append(ev.extra["round"]) if "round" in ev.extra else None, **kw)
    assert rounds == [5, 6, 7]  # only what was left
    assert same_model(resumed, full)
    assert same_state(resumed_state, full_state)
    assert resumed.stats["history"] == full.stats["history"]
    # a checkpoint of another run is refused
    with pytest.raises(sparsecross.CheckpointError):
        sparsecross.train(data["folder"], SPEC, client=healthy, checkpoint=ckpt, **{**kw, "lanes": 3})


def test_exact_mode_resumes_a_checkpoint(data, healthy, reference, tmp_path):
    class Crash(Exception):
        pass

    def crash(ev: sparsecross.ProgressEvent) -> None:
        if ev.extra.get("chunk") == 5:
            raise Crash

    ckpt = tmp_path / "c"
    with pytest.raises(Crash):  # train() does not forward checkpoint_every: call the backend
        train_distributed(data["folder"], SPEC, client=healthy, mode="exact", checkpoint=ckpt,
                          checkpoint_every=8_000, on_progress=crash)
    _, meta = sparsecross.FTRLState.load(ckpt / "state.npz")
    assert meta["row"] == 16_000
    model = sparsecross.train(data["folder"], SPEC, client=healthy, mode="exact", checkpoint=ckpt)
    assert same_model(model, reference[0])


def _corrupt_row_group(src: Path, dst: Path, group: int) -> None:
    """Copy ``src`` with the page headers of column 0 of row group ``group`` overwritten."""
    raw = bytearray(src.read_bytes())
    col = pq.ParquetFile(src).metadata.row_group(group).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    raw[start:start + col.total_compressed_size] = b"\xab" * col.total_compressed_size
    dst.write_bytes(bytes(raw))


@pytest.mark.parametrize("mode", ["data-parallel", "exact"])
def test_corrupt_file_fails_naming_file_and_row_group(data, healthy, tmp_path, mode):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes((data["folder"] / "part-0.parquet").read_bytes())
    _corrupt_row_group(data["folder"] / "part-1.parquet", folder / "part-1.parquet", 2)
    with pytest.raises(DataError, match=r"part-1\.parquet' row group 2") as info:
        sparsecross.train(folder, SPEC, client=healthy, mode=mode, retries=1)
    assert "\n" not in str(info.value)


def shards_and_tasks(client) -> tuple[list[int], list[str]]:
    """State shards and prepared chunks held on each worker, and the sparsecross tasks the
    scheduler still holds."""
    def held() -> int:
        d = __import__("sparsecross.distributed").distributed
        return len(d._SHARDS) + len(d._PREPARED)

    shards = sorted(client.run(held).values())
    tasks = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks
                                                            if str(k).startswith("sparsecross-")])
    return shards, tasks


@pytest.mark.parametrize("failure", ["corrupt file", "corrupt first chunk, state still loading", "callback"])
def test_failed_run_leaves_nothing_on_the_cluster(data, healthy, tmp_path, failure):
    """After an error (the exception still alive, as in a debugger), no shard and no prepared
    chunk stays in the workers' memory, even when the error comes while the shards are
    still being built from a large initial state."""
    folder = tmp_path / "bad"
    folder.mkdir()
    if failure == "corrupt first chunk, state still loading":
        _corrupt_row_group(data["folder"] / "part-0.parquet", folder / "part-0.parquet", 0)
    else:
        (folder / "part-0.parquet").write_bytes((data["folder"] / "part-0.parquet").read_bytes())
    if failure == "corrupt file":
        _corrupt_row_group(data["folder"] / "part-1.parquet", folder / "part-1.parquet", 3)
    else:
        (folder / "part-1.parquet").write_bytes((data["folder"] / "part-1.parquet").read_bytes())
    init = big_state(200_000)
    release = tmp_path / "release-shard-init"
    if "loading" in failure:  # shard 1 is still being built when the error arrives
        healthy.register_plugin(_HeldShardInit(str(release)), name="sparsecross-test-held-init")

    class Stop(Exception):
        pass

    def stop(ev: sparsecross.ProgressEvent) -> None:
        if ev.extra.get("round") == 2:
            raise Stop

    before = set(shards_and_tasks(healthy)[1])
    with pytest.raises(Stop if failure == "callback" else DataError) as info:
        sparsecross.train(folder, SPEC, client=healthy, lanes=2, retries=0, init_state=init,
                          on_progress=stop if failure == "callback" else None)

    def left() -> tuple[list[int], list[str], list[str]]:
        """Shards per worker, sparsecross tasks on the scheduler and on the workers (a
        cancelled task still running stays on its worker until it returns)."""
        shards, tasks = shards_and_tasks(healthy)
        running = healthy.run(lambda dask_worker: [str(k) for k in dask_worker.state.tasks
                                                   if str(k).startswith("sparsecross-")])
        return shards, sorted(set(tasks) - before), sorted(set().union(*running.values()) - before)

    try:
        release.touch()  # the held shard build goes on: it must not put its shard back
        deadline = time.monotonic() + 120  # (a bound, not a synchronisation)
        while left()[1:] != ([], []) and time.monotonic() < deadline:
            # (futures that only garbage reference cycles still hold are released at the
            # next collection: nothing reachable, e.g. from ``info``, may hold any)
            gc.collect()
            time.sleep(0.1)
        assert left() == ([0, 0], [], []), info
    finally:
        if "loading" in failure:
            healthy.unregister_worker_plugin("sparsecross-test-held-init")


class _HeldShardInit(distributed.WorkerPlugin):
    """Holds the building of state shard 1 until file ``release`` exists (at most 2 minutes),
    so that the error of chunk 0 arrives while it is still being built, however loaded the
    machine (restored on unregister)."""

    def __init__(self, release: str) -> None:
        self.release = release

    def setup(self, worker) -> None:
        import sparsecross.distributed as d

        self.original = d._task_shard_init
        release, original = self.release, self.original

        def slow(token, s, *args):
            if s == 1:  # shard 0 is ready at once, so chunk 0 (on its worker) fails early
                deadline = time.monotonic() + 120
                while not os.path.exists(release) and time.monotonic() < deadline:
                    time.sleep(0.05)
            return original(token, s, *args)

        d._task_shard_init = slow

    def teardown(self, worker) -> None:
        import sparsecross.distributed as d

        d._task_shard_init = self.original


def big_state(n_keys: int) -> sparsecross.FTRLState:
    from sparsecross._kernels.lanes import fill_table

    keys = np.arange(n_keys, dtype=np.uint32) * 7
    st = sparsecross.FTRLState(SPEC.n_columns, "float32", capacity=2 * n_keys)
    fill_table(st.table, st.values, st.count, keys, np.full((n_keys, 2), 0.5, np.float32))
    return st


def test_data_parallel_with_a_client_that_is_not_the_default(data, reference):
    """Waits go through the given client, not Dask's default one: in a process with no
    default client at all (a fresh interpreter), training still works."""
    script = (
        "import distributed, sparsecross, sys\n"
        "spec = sparsecross.load_spec(sys.argv[2])\n"
        "with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,\n"
        "                              dashboard_address=':0') as cluster, \\\n"
        "        distributed.Client(cluster, set_as_default=False) as mine:\n"
        "    m = sparsecross.train(sys.argv[1], spec, client=mine, lanes=1)\n"
        "print('nonzeros', m.nonzeros, 'bias', repr(m.bias))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(data["folder"]), str(ROOT / "data" / "specs" / "synthetic.toml")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = reference[0]
    assert f"nonzeros {ref.nonzeros} bias {ref.bias!r}" in proc.stdout


def test_epoch_end_events_count_the_trained_state(data, healthy):
    events: list[sparsecross.ProgressEvent] = []
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2, epochs=2, return_state=True,
                                     on_progress=events.append)
    ends = [ev for ev in events if ev.phase == "epoch_end"]
    assert len(ends) == 2 and ends[-1].touched == state.touched == model.stats["touched_features"]
    assert ends[-1].nonzeros == state.count_nonzero(FTRLParams(0.1, 1.0, 1.0, 0.0, 0.0)) > 0
    assert 0 < ends[0].touched <= ends[1].touched


class _Poison(distributed.WorkerPlugin):
    """Kills its worker process whenever it prepares chunk ``index`` for data-parallel
    training (re-installed on every replacement worker)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def setup(self, worker) -> None:
        import sparsecross.distributed as d

        original = d._task_prepare
        index = self.index

        def prepare(chunk, *args):
            if chunk.index == index:
                os._exit(1)
            return original(chunk, *args)

        d._task_prepare = prepare


def test_a_chunk_that_keeps_killing_workers_fails_naming_it(data):
    """On a cluster of its own (its workers die over and over), so the module's cluster stays
    healthy for the other tests.  However far the other chunks got when the worker died (on a
    loaded machine every chunk prepared so far may be in flight, their results lost with the
    worker), chunk 6 was on the lost worker at every loss, and is named in that group."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        c.register_plugin(_Poison(6), name="sparsecross-test-poison")
        with pytest.raises(SparseCrossError, match=r"died 3 times during round \d+ of epoch 1 ") as info:
            sparsecross.train(data["folder"], SPEC, client=c, lanes=2)
    msg = str(info.value)
    assert "\n" not in msg
    every = msg.split("chunks on the lost worker at every loss: ", 1)[1].split("; also in flight", 1)[0]
    # chunk 6 = part-1 row group 0 (part-0 holds row groups 0-5)
    assert "part-1.parquet' row group 0" in every.split(" and ")[0], msg


def _chunks(n: int) -> list:
    from sparsecross.distributed import _Chunk, _Piece

    return [_Chunk(i, 4_000 * i, 4_000, (_Piece(f"/d/part-{i}.parquet", 0, 0, 4_000, 4_000),)) for i in range(n)]


def test_suspects_on_the_lost_worker_at_every_loss_come_first():
    """What failed on a loaded machine: every chunk prepared so far in flight at each loss
    (0-7), the chunk that kills its worker (6) seventh in chunk order, past the names shown."""
    from sparsecross.distributed import _name_suspects, _rank_suspects

    everything = frozenset(range(8))
    losses = [({6}, everything), ({0, 6}, everything), ({6, 7}, everything)]
    assert _rank_suspects(losses) == [6, 0, 7, 1, 2, 3, 4, 5]
    msg = _name_suspects(_chunks(8), losses)
    assert msg == ("chunks on the lost worker at every loss: '/d/part-6.parquet' row group 0; also in flight: "
                   "'/d/part-0.parquet' row group 0; '/d/part-7.parquet' row group 0; '/d/part-1.parquet' row "
                   "group 0; '/d/part-2.parquet' row group 0; '/d/part-3.parquet' row group 0 and 2 more")
    # two chunks at every loss: both first, in chunk order
    losses = [({5, 6}, everything), ({5, 6}, everything), ({5, 6}, everything)]
    assert _rank_suspects(losses)[:2] == [5, 6]
    assert _name_suspects(_chunks(8), losses, limit=2) == (
        "chunks on the lost worker at every loss: '/d/part-5.parquet' row group 0; "
        "'/d/part-6.parquet' row group 0 and 6 more")


def test_suspects_without_the_schedulers_word_rank_by_losses_in_flight():
    """When the scheduler cannot say which tasks were on the lost worker: the chunks in flight
    at every loss first (the intersection), then by how many losses, then in chunk order."""
    from sparsecross.distributed import _name_suspects, _rank_suspects

    losses = [(set(), set(range(8))), (set(), {0, 1, 6, 7}), (set(), {0, 1, 5, 6})]
    assert _rank_suspects(losses) == [0, 1, 6, 5, 7, 2, 3, 4]
    assert _name_suspects(_chunks(8), losses, limit=3) == (
        "chunks in flight: '/d/part-0.parquet' row group 0; '/d/part-1.parquet' row group 0; "
        "'/d/part-6.parquet' row group 0 and 5 more")


def test_paused_shard_owner_is_a_clear_error(data, monkeypatch):
    """A worker near its memory limit is paused by Dask; shards cannot be spilled, so waiting
    would be forever: the call fails naming the worker (not killing it: terminate is off)."""
    import dask

    monkeypatch.setattr(sys.modules["sparsecross.distributed"], "PAUSED_LIMIT_S", 1.0)
    with dask.config.set({"distributed.worker.memory.terminate": False}):
        cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", memory_limit="420MB")
    with cluster, distributed.Client(cluster) as c:
        with pytest.raises(SparseCrossError, match=r"paused for 1 s .* memory limit \(0\.39 GiB\)"):
            sparsecross.train(data["train"], SPEC, client=c, lanes=2, init_state=big_state(4_000_000))


def test_corrupt_file_predict_writes_nothing(data, healthy, reference, tmp_path):
    bad = tmp_path / "bad.parquet"
    _corrupt_row_group(data["train"], bad, 7)
    out = tmp_path / "out" / "pred.parquet"
    out.parent.mkdir()
    with pytest.raises(DataError, match=r"bad\.parquet' row group 7"):
        predict_distributed(reference[0], bad, out, healthy, retries=1)
    assert list(out.parent.iterdir()) == []


def test_unreachable_scheduler_is_a_quick_one_line_error():
    t0 = time.perf_counter()
    with pytest.raises(SparseCrossError) as info:
        connect("tcp://127.0.0.1:1", timeout=2)
    assert time.perf_counter() - t0 < 60  # (a bound for a loaded machine: not the 10 s default wait)
    msg = str(info.value)
    assert "\n" not in msg and "tcp://127.0.0.1:1" in msg
    with pytest.raises(SparseCrossError, match="local:N"):
        connect("local:zero")


def _dying_preload(tmp_path: Path, times: int) -> Path:
    """A worker preload script that kills the first ``times`` worker processes that load it
    (counted with marker files, so across processes and clusters) as they start."""
    script = tmp_path / "die_at_start.py"
    script.write_text(
        "import os\n"
        f"for k in range({times}):\n"
        f"    try:\n"
        f"        os.close(os.open(os.path.join({str(tmp_path)!r}, f'died-{{k}}'), os.O_CREAT | os.O_EXCL))\n"
        "    except FileExistsError:\n"
        "        continue\n"
        "    os._exit(1)\n"
    )
    return script


def test_local_cluster_whose_worker_dies_at_start_is_started_again(tmp_path, caplog):
    """A worker process that dies while local:N starts makes Dask's LocalCluster raise
    ("Nanny failed to start."); connect starts a fresh cluster, which works."""
    import dask

    script = _dying_preload(tmp_path, times=1)
    with dask.config.set({"distributed.worker.preload": [str(script)]}):
        c, cluster = connect("local:1")
    try:
        assert (tmp_path / "died-0").exists()  # the first start did fail
        assert len(c.scheduler_info()["workers"]) == 1
        assert sum(c.run(lambda: 1).values()) == 1
    finally:
        c.close()
        cluster.close()
    assert any("failed to start" in r.getMessage() and "attempt 2 of 3" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_local_cluster_whose_workers_keep_dying_at_start_is_a_one_line_error(tmp_path, monkeypatch):
    import dask

    import sparsecross.distributed as d

    monkeypatch.setattr(d, "LOCAL_START_ATTEMPTS", 2)
    script = _dying_preload(tmp_path, times=1_000)
    with dask.config.set({"distributed.worker.preload": [str(script)]}), \
            pytest.raises(SparseCrossError, match=r"local:1: the Dask workers failed to start 2 times "
                                                   r"\(Nanny failed to start.*\); .*local:1") as info:
        connect("local:1")
    assert "\n" not in str(info.value)
    assert (tmp_path / "died-1").exists() and not (tmp_path / "died-2").exists()  # 2 clusters, no more


def test_local_cluster_start_errors_are_retried_then_one_line(monkeypatch):
    """Without starting processes: the exception classes Dask raises for a failed start (a
    nanny, a timeout) are retried with a fresh cluster; other errors are not."""
    starts: list[int] = []

    class Failing:
        def __init__(self, *args, **kwargs):
            starts.append(1)
            exc = RuntimeError("Nanny failed to start.")
            exc.__cause__ = RuntimeError("Nanny failed to start worker process")
            raise exc if len(starts) % 2 else TimeoutError("Nanny start timed out after 60s.")

    monkeypatch.setattr(distributed, "LocalCluster", Failing)
    with pytest.raises(SparseCrossError) as info:
        connect("local:3")
    assert len(starts) == 3
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("--dask local:3: the Dask workers failed to start 3 times "
                                             "(Nanny failed to start: Nanny failed to start worker process)")

    class Broken:
        def __init__(self, *args, **kwargs):
            starts.append(1)
            raise KeyError("not a start failure")

    starts.clear()
    monkeypatch.setattr(distributed, "LocalCluster", Broken)
    with pytest.raises(KeyError):
        connect("local:1")
    assert len(starts) == 1


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(DaskNotInstalledError, match=r"pip install 'sparsecross\[dask\]'") as info:
        connect("local:1")
    assert isinstance(info.value, SparseCrossError) and isinstance(info.value, ImportError)


def test_single_node_path_does_not_import_dask(sample_path):
    code = (
        "import sys, sparsecross\n"
        f"spec = sparsecross.load_spec({str(ROOT / 'data' / 'specs' / 'synthetic.toml')!r})\n"
        f"sparsecross.train({str(sample_path)!r}, spec)\n"
        "import sparsecross.distributed\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=600)


# ---------------------------------------------------------------------- predict / eval
def test_predict_distributed_equals_local(data, healthy, reference, tmp_path):
    model = reference[0]
    keep = ["device", "user_id", "age"]
    local = tmp_path / "local.parquet"
    dist = tmp_path / "dist.parquet"
    n_local = predict_file(model, data["folder"], local, keep=keep, batch_rows=3_000)
    seen: list[int] = []
    n_dist = predict_distributed(model, data["folder"], dist, healthy, keep=keep, on_batch=seen.append)
    assert n_dist == n_local == TRAIN_ROWS and sum(seen) == TRAIN_ROWS
    assert pq.read_table(dist).equals(pq.read_table(local))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist.parquet", "local.parquet"]


def test_evaluate_distributed_matches_local(data, healthy, reference):
    model = reference[0]
    local = evaluate(model, data["test"])
    dist = evaluate_distributed(model, data["test"], healthy)
    assert dist["rows"] == local["rows"]
    assert dist["auc"] == local["auc"]
    assert dist["positive_rate"] == local["positive_rate"]
    assert dist["logloss"] == pytest.approx(local["logloss"], rel=1e-12)
    assert evaluate_distributed(model, data["test"], healthy) == dist  # deterministic


def test_distributed_scoring_refuses_a_column_of_another_type(data, healthy, reference, tmp_path):
    """The schema recorded in the model is checked before any task runs (as predict_file does)."""
    model = reference[0]
    t = pq.read_table(data["test"])
    t = t.set_column(t.schema.get_field_index("hour"), "hour", t.column("hour").cast(pa.string()))
    pq.write_table(t, tmp_path / "strings.parquet")
    with pytest.raises(SchemaError, match=r"'hour'.* is string.*integer"):
        evaluate_distributed(model, tmp_path / "strings.parquet", healthy)
    with pytest.raises(SchemaError, match=r"'hour'.* is string.*integer"):
        predict_distributed(model, tmp_path / "strings.parquet", tmp_path / "p.parquet", healthy)
    assert not (tmp_path / "p.parquet").exists()


# ------------------------------------------------------------------------ API details
def test_progress_per_round_and_run_stats(data, healthy):
    events: list[sparsecross.ProgressEvent] = []
    model = sparsecross.train(data["train"], SPEC, client=healthy, lanes=4, on_progress=events.append)
    rounds = [ev for ev in events if ev.phase == "train"]
    assert [ev.extra["round"] for ev in rounds] == [1, 2, 3]  # 10 row groups / 4 lanes
    assert all(ev.extra["rounds"] == 3 and ev.extra["lanes"] == 4 for ev in rounds)
    assert [ev.rows_seen for ev in rounds] == [16_000, 32_000, 40_000]
    assert events[-1].phase == "epoch_end"
    run = model.run
    assert run["workers"] == 2 and run["rows_processed"] == TRAIN_ROWS and run["rounds"] == 3


def test_bad_options(data, healthy):
    with pytest.raises(SparseCrossError, match="mode"):
        sparsecross.train(data["train"], SPEC, client=healthy, mode="fast")
    with pytest.raises(SparseCrossError, match="lanes"):
        sparsecross.train(data["train"], SPEC, client=healthy, lanes=0)
    with pytest.raises(SparseCrossError, match="rows_per_round"):
        sparsecross.train(data["train"], SPEC, client=healthy, lanes=4, rows_per_round=3)
    with pytest.raises(SparseCrossError, match="either"):
        sparsecross.train(data["train"], SPEC, client=healthy, holdout=0.1, valid=data["test"])


def test_connect_local_cluster():
    c, cluster = connect("local:1")
    try:
        assert cluster is not None
        assert len(c.scheduler_info()["workers"]) == 1
        # workers without Dask's MALLOC_TRIM_THRESHOLD_ (it makes every large array page-fault)
        assert list(c.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == [None]
        # results come from the workers, not through the scheduler (in this process)
        assert c.direct_to_workers is True
        assert c.submit(np.arange, 5).result().tolist() == [0, 1, 2, 3, 4]
    finally:
        c.close()
        cluster.close()
