"""Tests of partitioned training on Dask (``mode="partitioned"``, ``partition=FEATURE``).

Each of K lanes owns the keys that hold its values of the partition feature (an exact feature)
and trains the rows of those values on its own state for the whole run; the other keys are
shared and merged at the end of every round (:mod:`sparsecross.dask.partitioned`).  The
model is checked against the plain-Python definition (:mod:`tests.reference.partitioned_reference`),
against single-node training at K=1, across clusters, checkpoints and a killed worker.

One module-scoped ``local:2`` cluster (processes, so that a worker can be killed for real);
data from ``sparsecross.generate`` (seed 0): 40,000 rows in two files of row groups of 4,000.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

import sparsecross  # noqa: E402
from sparsecross import CheckpointError, SparseCrossError, load_spec  # noqa: E402
from sparsecross.distributed import connect  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # `tests.reference` without a conftest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.reference.partitioned_reference import (  # noqa: E402
    OwnedRange,
    Partition,
    Result,
    holdout_logloss,
    train_partitioned,
)

pytestmark = [pytest.mark.dask]

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
TRAIN_ROWS = 40_000
GROUP_ROWS = 4_000
PARAMS = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)

#: A small spec whose partition feature ("cell", a 1-degree grid) is crossed exactly with
#: buckets, so that the lanes own cross blocks too: in ``cell*age`` the cell's stride is 7,
#: in ``income*cell`` it is 1 and its id wraps (``% card``).  ``device*cell`` is hashed (so
#: shared); so is ``device``.  Null ages are skipped, so partitioned by "age" a row with a
#: null age has no owned entry (and goes to the lane of its row number); a non-zero hashing
#: seed moves the holdout split.
SMALL_SPEC = """\
version = 1

[label]
column = "label"

[hashing]
bits = 18
seed = 7

[[features]]
name = "cell"
kind = "geo"
lat = "latitude"
lon = "longitude"
resolution_arcmin = 60.0

[[features]]
name = "age"
kind = "bucket"
column = "age"
boundaries = [25.0, 35.0, 45.0, 55.0, 65.0]
missing = "skip"

[[features]]
name = "income"
kind = "bucket"
column = "income"
boundaries = [15000.0, 30000.0, 50000.0, 85000.0]

[[features]]
name = "device"
kind = "categorical"
column = "device"

[[crosses]]
features = ["cell", "age"]

[[crosses]]
features = ["income", "cell"]

[[crosses]]
features = ["device", "cell"]
"""


#: The small spec with a numeric feature (values that are not 1: routing must carry them) and,
#: as WEIGHTED_SPEC, sample weights from the hour column (0-23: some rows weigh nothing).
NUMERIC_SPEC = SMALL_SPEC + """
[[features]]
name = "income_value"
kind = "numeric"
column = "income"
transform = "log1p"
"""
#: A numeric feature of a column that is 0 in every row: its key only ever sees the value 0,
#: so it keeps (z, n) = (0, 0), and single-node training still counts it as touched.
ZERO_SPEC = SMALL_SPEC + """
[[features]]
name = "clicks"
kind = "numeric"
column = "clicks"
"""
WEIGHTED_SPEC = NUMERIC_SPEC.replace('column = "label"\n', 'column = "label"\nweight = "hour"\n', 1)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A folder of two files (10 row groups of 4,000 rows), and 8,000 other rows (a warm start)."""
    d = tmp_path_factory.mktemp("partitioned-data")
    single = sparsecross.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=0, row_group_size=GROUP_ROWS)
    folder = d / "parts"
    folder.mkdir()
    table = pq.read_table(single)
    pq.write_table(table.slice(0, 24_000), folder / "part-0.parquet", row_group_size=GROUP_ROWS)
    pq.write_table(table.slice(24_000), folder / "part-1.parquet", row_group_size=GROUP_ROWS)
    warm = sparsecross.generate(d / "warm.parquet", rows=8_000, seed=0, row_group_size=GROUP_ROWS,
                                first_row=TRAIN_ROWS)
    (d / "small.toml").write_text(SMALL_SPEC)
    (d / "numeric.toml").write_text(NUMERIC_SPEC)
    (d / "weighted.toml").write_text(WEIGHTED_SPEC)
    (d / "zero.toml").write_text(ZERO_SPEC)
    return {"folder": folder, "warm": warm, "small": d / "small.toml", "numeric": d / "numeric.toml",
            "weighted": d / "weighted.toml", "zero": d / "zero.toml"}


@pytest.fixture(scope="module")
def small(data) -> sparsecross.FeatureSpec:
    return load_spec(data["small"])


@pytest.fixture(scope="module")
def client():
    """2 worker processes, 1 thread each, no dashboard."""
    c, cluster = connect("local:2")
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture()
def healthy(client):
    """The shared client, with both workers up (a test may have killed one)."""
    client.wait_for_workers(2, timeout=180)
    return client


@pytest.fixture()
def chunk_per_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one row group each (``PARTITION_CHUNK_ROWS`` 1): 10 chunks, so K lanes make
    ceil(10 / K) rounds (the default, 2**20 rows, would make these 40,000 rows one chunk)."""
    from sparsecross import _defaults

    monkeypatch.setattr(_defaults, "PARTITION_CHUNK_ROWS", 1)


def same_model(a: sparsecross.SparseModel, b: sparsecross.SparseModel) -> bool:
    return (np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights)
            and a.bias == b.bias)


def same_state(a: sparsecross.FTRLState, b: sparsecross.FTRLState) -> bool:
    return a.as_dict() == b.as_dict() and np.array_equal(a.bias, b.bias) and a.touched == b.touched


# ----------------------------------------------------------------------- the reference
def reference_partition(spec: sparsecross.FeatureSpec, name: str, lanes: int) -> Partition:
    """The owned ranges of feature ``name``: every exact block (kind 0) that includes it."""
    fi = spec.feature_index[name]
    ranges = tuple(OwnedRange(o.offset, o.offset + int(o.cardinality), o.strides[o.components.index(fi)])
                   for o in spec.outputs if o.kind == 0 and fi in o.components)
    return Partition(ranges, int(spec.features[fi].cardinality), lanes)


@functools.lru_cache(maxsize=4)
def _rows(folder: Path, spec_path: Path | None) -> tuple:
    """Every row of ``folder`` (files in name order, row groups in order) as reference rows
    (global row number, [(column, value)], label), one tuple per row group."""
    spec = SPEC if spec_path is None else load_spec(spec_path)
    groups = []
    row = 0
    for path in sorted(folder.glob("*.parquet")):
        pf = pq.ParquetFile(path)
        for g in range(pf.metadata.num_row_groups):
            X, y, _ = sparsecross.featurize(pf.read_row_group(g), spec)
            rows = []
            for r in range(X.shape[0]):
                a, b = X.indptr[r], X.indptr[r + 1]
                rows.append((row + r, [(int(i), float(v)) for i, v in zip(X.indices[a:b], X.data[a:b])], float(y[r])))
            groups.append(tuple(rows))
            row += X.shape[0]
    return tuple(groups)


def reference_chunks(folder: Path, spec_path: Path | None, chunk_rows: int | None = None) -> list:
    """The chunks of partitioned training: one per row group, or ``chunk_rows`` consecutive
    rows each (``rows_per_round // lanes``: across row groups and files)."""
    groups = _rows(folder, spec_path)
    if chunk_rows is None:
        return list(groups)
    flat = [r for g in groups for r in g]
    return [flat[i:i + chunk_rows] for i in range(0, len(flat), chunk_rows)]


def assert_equals_reference(model: sparsecross.SparseModel, state: sparsecross.FTRLState, ref: Result) -> None:
    """Every key's (z, n), the bias and every epoch's progressive loss and trained rows equal
    the reference's to 1e-9 (float64 state; the FTRL kernel and the oracle round differently)."""
    got = state.as_dict()
    assert sorted(got) == sorted(ref.z)
    keys = sorted(got)
    mine = np.array([got[k] for k in keys], dtype=np.float64).reshape(-1, 2)
    theirs = np.array([(ref.z[k], ref.n[k]) for k in keys], dtype=np.float64).reshape(-1, 2)
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)
    assert state.touched == len(ref.z) == model.stats["touched_features"]
    assert state.bias[0] == pytest.approx(ref.bias[0], rel=1e-9)
    assert state.bias[1] == pytest.approx(ref.bias[1], rel=1e-9)
    history = model.stats["history"]
    assert len(history) == len(ref.losses)
    for h, loss, rows in zip(history, ref.losses, ref.rows):
        assert h["train_rows"] == rows
        assert h["progressive_logloss"] == pytest.approx(loss / rows, rel=1e-9)


def test_the_reference_partition_of_the_small_spec(small):
    """The owned ranges the reference takes from the spec's layout are the ones the definition
    names (not a copy of whatever the layout holds): for "cell", its own block (stride 1),
    ``cell*age`` (stride 7) and ``income*cell`` (stride 1, the id wrapping every 64,801
    columns); for "age", its block and ``cell*age`` (stride 1, wrapping every 7)."""
    cell = reference_partition(small, "cell", 3)
    assert cell.card == 180 * 360 + 1
    assert cell.ranges == (OwnedRange(0, 64_801, 1), OwnedRange(64_814, 64_814 + 64_801 * 7, 7),
                           OwnedRange(518_421, 518_421 + 6 * 64_801, 1))
    age = reference_partition(small, "age", 3)
    assert age.card == 7 and age.ranges == (OwnedRange(64_801, 64_808, 1), OwnedRange(64_814, 518_421, 1))
    # the key of (cell 5, age 3) in cell*age holds cell 5 and age 3
    assert cell.key_lane(64_814 + 5 * 7 + 3) == cell.key_lane(5)
    assert age.key_lane(64_814 + 5 * 7 + 3) == age.key_lane(64_801 + 3)


@pytest.mark.parametrize("name", ["cell", "age"])
def test_key_and_row_lanes_equal_the_reference(small, name):
    """The library's lane of a key and of a row (its kernels) is the definition's: keys from
    every owned block and around its edges, shared keys (-1), rows with an owned entry, rows
    without one (the lane of their global row number), and holdout rows (no lane)."""
    from sparsecross._kernels.partition import row_lanes
    from sparsecross.dask.partition import partition_of

    ref = reference_partition(small, name, 3)
    part = partition_of(small, name, 3)
    rng = np.random.default_rng(0)
    keys = [rng.integers(q.lo, q.hi, 2_000) for q in ref.ranges]
    keys += [np.array([q.lo - 1, q.lo, q.hi - 1, q.hi]) for q in ref.ranges]
    keys.append(rng.integers(0, small.n_columns, 2_000))
    keys = np.unique(np.concatenate(keys)).astype(np.uint32)
    expected = [-1 if ref.key_lane(int(k)) is None else ref.key_lane(int(k)) for k in keys]
    assert part.lanes_of(keys).tolist() == expected
    assert {-1, 0, 1, 2} <= set(expected)
    # rows: one owned key (and a shared one) each; then rows of shared keys only
    shared = keys[np.array(expected) < 0][:50]
    owned = keys[np.array(expected) >= 0][:50]
    rows = [sorted({int(o), int(s)}) for o, s in zip(owned, shared)] + [[int(s)] for s in shared] + [[]]
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([k for r in rows for k in r], dtype=np.uint32)
    keep = np.ones(len(rows), dtype=np.uint8)
    keep[7] = 0
    start = 1_000_003
    lane, found, bad = row_lanes(indptr, indices, keep, *part.args(), start)
    want = [ref.row_lane(start + i, [(k, 1.0) for k in r]) for i, r in enumerate(rows)]
    want[7] = -1
    assert bad == -1 and lane.tolist() == want
    assert set(found.tolist()) == {int(s) for i, r in enumerate(rows) if i != 7 for s in r if s in set(shared.tolist())}
    # a row with owned entries of two lanes is refused (its index)
    two = [int(owned[np.array([ref.key_lane(int(k)) for k in owned]) == j][0]) for j in (0, 1)]
    _, _, bad = row_lanes(np.array([0, 1, 3]), np.array([int(owned[0])] + sorted(two), dtype=np.uint32),
                          np.zeros(0, dtype=np.uint8), *part.args(), 0)
    assert bad == 1


# --------------------------------------------------------------------------- exactness
PARTITIONED = dict(mode="partitioned", partition="cell")


@pytest.mark.parametrize("kw, rounds", [
    ({}, 10),
    (dict(rows_per_round=6_500, holdout=0.2, state_dtype="float64", epochs=2, alpha=0.2, l1=0.5), 2 * 7),
], ids=["row-group-chunks", "rows-per-round-holdout-2-epochs"])
def test_one_lane_equals_single_node(data, healthy, chunk_per_group, kw, rounds):
    """K=1: one lane owns every key and trains every row in order, and the merge of a key
    only it moved takes its values exactly: sequential training, bit for bit (model, state,
    progressive loss, history), over 10 rounds of a row group, or chunks of 6,500 rows that
    span row groups and files with a holdout over 2 epochs."""
    single = {k: v for k, v in kw.items() if k != "rows_per_round"}
    ref_model, ref_state = sparsecross.train(data["folder"], SPEC, return_state=True, **single)
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=1, return_state=True,
                                     **PARTITIONED, **kw)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    assert model.stats["progressive_logloss"] == ref_model.stats["progressive_logloss"]
    for mine, ref in zip(model.stats["history"], ref_model.stats["history"], strict=True):
        for k in ("progressive_logloss", "train_rows", "valid_rows", "valid_logloss", "valid_auc"):
            assert mine.get(k) == ref.get(k), k
    assert (model.params["mode"], model.params["partition"], model.params["lanes"]) == ("partitioned", "cell", 1)
    assert model.run["rounds"] == rounds


CASES = {
    # spec (None: synthetic.toml), partition, lanes, extra options, rows per chunk (None: a row group)
    "synthetic-cell": (None, "cell", 3, {}, None),
    "owned-crosses-2-epochs": ("small", "cell", 3, dict(epochs=2), None),
    "rows-without-partition-value": ("small", "age", 3, dict(rows_per_round=9_000), 3_000),
    "holdout": (None, "cell", 3, dict(holdout=0.2), None),
    "four-lanes": ("small", "cell", 4, dict(rows_per_round=14_000), 3_500),
    "numeric-values": ("numeric", "cell", 3, {}, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lanes_equal_the_reference_definition(data, healthy, chunk_per_group, case):
    """K>1, float64 state: every key's (z, n), the key set, the bias, each epoch's progressive
    loss and trained rows equal the plain-Python definition (lanes own their partition values'
    keys for the whole run; shared keys and the bias merged per round).  Rounds of 10 row
    groups by 3 (3, 3, 3, 1 chunks: the last round has fewer chunks than lanes); the small
    spec's owned cross blocks (partition "cell") over 2 epochs (the lanes keep their states
    across the epoch's end); partition "age", whose null ages leave rows with no owned entry
    (routed by row number), in chunks of 3,000 rows across row groups and files; a holdout
    (its rows never trained; the validation loss is the final state's on them); K=4."""
    spec_name, partition, lanes, kw, chunk_rows = CASES[case]
    spec_path = None if spec_name is None else data[spec_name]
    spec = SPEC if spec_path is None else load_spec(spec_path)
    model, state = sparsecross.train(data["folder"], spec, client=healthy, mode="partitioned", partition=partition,
                                     lanes=lanes, state_dtype="float64", return_state=True, **PARAMS, **kw)
    part = reference_partition(spec, partition, lanes)
    chunks = reference_chunks(data["folder"], spec_path, chunk_rows)
    ref = train_partitioned(chunks, part, **PARAMS, epochs=kw.get("epochs", 1),
                            holdout_fraction=kw.get("holdout"), holdout_seed=spec.hashing.seed)
    assert_equals_reference(model, state, ref)
    assert model.run["rounds"] == kw.get("epochs", 1) * -(-len(chunks) // lanes)
    if "holdout" not in kw:  # the rows each lane trained (the run's lane_rows): the definition's
        per_lane = [0] * lanes
        for g in chunks:
            for row, items, _ in g:
                per_lane[part.row_lane(row, items)] += kw.get("epochs", 1)
        assert model.run["lane_rows"] == per_lane
    assert sum(model.run["lane_rows"]) == sum(ref.rows)
    assert model.params["partition"] == partition and model.params["lanes"] == lanes
    if partition == "age":  # some rows did go by their row number
        assert any(all(part.key_lane(k) is None for k, _ in items) for g in chunks for _, items, _ in g)
    if "holdout" in kw:
        assert ref.rows[0] < TRAIN_ROWS * 0.85
        loss, n = holdout_logloss(ref, [r for g in chunks for r in g], **PARAMS, fraction=kw["holdout"],
                                  seed=spec.hashing.seed)
        h = model.stats["history"][-1]
        assert h["valid_rows"] == n == TRAIN_ROWS - ref.rows[0]
        assert h["valid_logloss"] == pytest.approx(loss, rel=1e-9)


def test_same_lanes_same_model_on_one_or_two_workers(data, healthy, chunk_per_group):
    """K is a model parameter, the cluster is not: the same K gives the very same model and
    state on an in-process cluster of one worker (every lane and chunk there) and on two
    (lanes 0 and 2 on one worker, lane 1 on the other, chunks alternating, so rows travel
    between workers through the pick tasks); a different K gives another model."""
    kw = dict(lanes=3, return_state=True, **PARTITIONED)
    with distributed.get_task_stream(client=healthy) as stream:
        two, two_state = sparsecross.train(data["folder"], SPEC, client=healthy, **kw)
    assert any("-pick-" in str(t["key"]) for t in stream.data)
    # ":0": the module's cluster may hold the scheduler's default HTTP port 8787
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as one_client:
        with distributed.get_task_stream(client=one_client) as stream:
            one, one_state = sparsecross.train(data["folder"], SPEC, client=one_client, **kw)
    assert not any("-pick-" in str(t["key"]) for t in stream.data)
    assert same_model(one, two)
    assert same_state(one_state, two_state)
    assert (two.run["workers"], one.run["workers"]) == (2, 1)
    other = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=2, **PARTITIONED)
    assert not same_model(other, two)


def test_weighted_rows_and_values_one_lane_single_node_and_any_worker_count(data, healthy, chunk_per_group):
    """Sample weights (some 0) and feature values that are not 1 travel with their rows: K=1
    equals single-node bit for bit, and K=3 gives the same model on one worker and on two
    (rows picked between workers)."""
    spec = load_spec(data["weighted"])
    assert spec.label.weight == "hour"
    ref = sparsecross.train(data["folder"], spec, **PARAMS)
    one_lane = sparsecross.train(data["folder"], spec, client=healthy, lanes=1, **PARAMS, **PARTITIONED)
    assert same_model(one_lane, ref)
    assert one_lane.stats["progressive_logloss"] == ref.stats["progressive_logloss"]
    kw = dict(lanes=3, return_state=True, **PARAMS, **PARTITIONED)
    two, two_state = sparsecross.train(data["folder"], spec, client=healthy, **kw)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as one_client:
        one, one_state = sparsecross.train(data["folder"], spec, client=one_client, **kw)
    assert same_model(one, two) and same_state(one_state, two_state)
    unweighted = sparsecross.train(data["folder"], load_spec(data["numeric"]), client=healthy, lanes=3, **PARAMS,
                                   **PARTITIONED)
    assert not same_model(unweighted, two)


def test_a_shared_key_only_zero_values_touched_is_kept_as_single_node_keeps_it(data, healthy, chunk_per_group,
                                                                               tmp_path):
    """A shared key whose entries all had value 0 (a numeric column of zeros) has (z, n) =
    (0, 0) after training: no lane moved it, yet the lanes that saw it hold it, and
    single-node training counts it as touched.  K=1 gives single-node's state bit for bit,
    touched count included (the key was dropped from the merged shared keys, so missing from
    the final state); with K=3 the final state holds every key single-node's does."""
    folder = tmp_path / "zeros"
    folder.mkdir()
    for path in sorted(data["folder"].glob("*.parquet")):
        table = pq.read_table(path)
        table = table.append_column("clicks", pa.array(np.zeros(table.num_rows, dtype=np.int64)))
        pq.write_table(table, folder / path.name, row_group_size=GROUP_ROWS)
    spec = load_spec(data["zero"])
    ref_model, ref_state = sparsecross.train(folder, spec, return_state=True, **PARAMS)
    zero_key = next(o.offset for o in spec.outputs if o.kind == 0 and len(o.components) == 1
                    and spec.features[o.components[0]].name == "clicks")
    assert ref_state.as_dict()[zero_key] == (0.0, 0.0)  # (the case is there)
    model, state = sparsecross.train(folder, spec, client=healthy, lanes=1, return_state=True, **PARAMS,
                                     **PARTITIONED)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    assert model.stats["touched_features"] == ref_model.stats["touched_features"]
    # K=3: every key some lane's rows touched is in the final state, as in single-node's (the
    # reference oracle skips zero entries, so it cannot tell)
    model, state = sparsecross.train(folder, spec, client=healthy, lanes=3, return_state=True, **PARAMS,
                                     **PARTITIONED)
    assert sorted(state.as_dict()) == sorted(ref_state.as_dict())
    assert state.as_dict()[zero_key] == (0.0, 0.0)
    assert model.stats["touched_features"] == ref_model.stats["touched_features"]


def test_many_shared_keys_are_reported_and_warned_about(data, healthy, chunk_per_group, monkeypatch):
    """Keys without the partition feature are shared: every lane holds them and every round
    merges them on every lane and the client (a hashed user-id feature makes millions, and
    partitioned rounds then cost many times single-node's CPU).  The run records how many
    there are (run["shared_keys"]: the final state's keys no lane owns), and warns once
    when they pass SHARED_WARN_KEYS and a tenth of the keys; a spec whose only shared keys
    are its age and income buckets does not warn."""
    import warnings

    from sparsecross.dask import partitioned
    from sparsecross.dask.partition import partition_of

    monkeypatch.setattr(partitioned, "SHARED_WARN_KEYS", 500)
    spec_path = data["small"].with_name("users.toml")
    spec_path.write_text(SMALL_SPEC + '\n[[features]]\nname = "user"\nkind = "categorical"\ncolumn = "user_id"\n')
    spec = load_spec(spec_path)
    with pytest.warns(sparsecross.SparseCrossWarning, match=r"partitioned training: [\d,]+ of the [\d,]+ keys "
                      r"after round 1 are shared") as caught:
        model, state = sparsecross.train(data["folder"], spec, client=healthy, lanes=3, return_state=True,
                                         **PARTITIONED)
    assert len([w for w in caught if "are shared" in str(w.message)]) == 1
    owned = partition_of(spec, "cell", 3).owned(np.array(sorted(state.as_dict()), dtype=np.int64))
    assert model.run["shared_keys"] == int((~owned).sum()) > 500
    few_path = data["small"].with_name("few.toml")  # (no hashed feature: the buckets' dozen keys are shared)
    few_path.write_text(SMALL_SPEC.split("[[features]]\nname = \"device\"")[0]
                        + '[[crosses]]\nfeatures = ["cell", "age"]\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error", sparsecross.SparseCrossWarning)
        few = sparsecross.train(data["folder"], load_spec(few_path), client=healthy, lanes=3, **PARTITIONED)
    assert 0 < few.run["shared_keys"] < 20


# -------------------------------------------------------------------- checkpoints, faults
def test_resume_from_checkpoint_equals_uninterrupted(data, healthy, chunk_per_group, tmp_path):
    """A run stopped in its second epoch (after round 2 of 4; the checkpoint holds round 1,
    written every round) and resumed with the same call trains only what was left and equals
    an uninterrupted run bit for bit: the lanes restart from the checkpoint's keys (each its
    own ones, plus the shared), so their states across the epoch's end are not lost.  A
    checkpoint of another partition, another K or another mode is refused before anything
    trains."""
    kw = dict(lanes=3, epochs=2, checkpoint_rounds=1, **PARTITIONED)
    full, full_state = sparsecross.train(data["folder"], SPEC, client=healthy, return_state=True,
                                         checkpoint=tmp_path / "a", **kw)

    class Crash(Exception):
        pass

    def crash(ev: sparsecross.ProgressEvent) -> None:
        if ev.epoch == 1 and ev.extra.get("round") == 2:
            raise Crash

    ckpt = tmp_path / "b"
    with pytest.raises(Crash):
        sparsecross.train(data["folder"], SPEC, client=healthy, checkpoint=ckpt, on_progress=crash, **kw)
    _, meta = sparsecross.FTRLState.load(ckpt / "state.npz")
    assert (meta["epoch"], meta["round"]) == (1, 1)
    rounds: list[int] = []
    resumed, resumed_state = sparsecross.train(
        data["folder"], SPEC, client=healthy, checkpoint=ckpt, return_state=True,
        on_progress=lambda ev: rounds.append(ev.extra["round"]) if "round" in ev.extra else None, **kw)
    assert rounds == [2, 3, 4]  # only what was left
    assert same_model(resumed, full)
    assert same_state(resumed_state, full_state)
    assert resumed.stats["history"] == full.stats["history"]
    events: list[sparsecross.ProgressEvent] = []
    for other in (dict(partition="age"), dict(lanes=2), dict(mode="data-parallel", partition=None)):
        with pytest.raises(CheckpointError, match=r"belongs to another run \(its params differs\)"):
            sparsecross.train(data["folder"], SPEC, client=healthy, checkpoint=ckpt, on_progress=events.append,
                              **{**kw, **other})
    assert events == []
    assert sparsecross.FTRLState.load(ckpt / "state.npz")[1]["epoch"] == 2  # (the resumed run's end)


@pytest.mark.parametrize("every", [1, None], ids=["snapshot-every-round", "no-snapshot-within-the-epoch"])
def test_worker_killed_mid_training_leaves_result_unchanged(data, healthy, chunk_per_group, every):
    """A worker killed (SIGKILL) after round 2, while round 3 is in flight, takes the lanes it
    holds with it: training restarts from the last snapshot (taken every round, or without
    a checkpoint folder none within the epoch: the start), on the replacement worker or the
    survivor, and the model, the history and the rows per lane are the uninterrupted run's."""
    kw = dict(lanes=3, checkpoint_rounds=every, **PARTITIONED)
    expected = sparsecross.train(data["folder"], SPEC, client=healthy, **kw)
    victim = sorted(healthy.run(os.getpid).values())[0]
    killed = threading.Event()
    rounds: list[int] = []

    def on_progress(ev: sparsecross.ProgressEvent) -> None:
        # (called when round 2 is done and round 3 already submitted, before round 4 is: the
        # worker dies with lanes that round 4 needs, however slow the machine)
        rounds.extend([ev.extra["round"]] if "round" in ev.extra else [])
        if ev.extra.get("round") == 2 and not killed.is_set():
            os.kill(victim, signal.SIGKILL)
            killed.set()

    model = sparsecross.train(data["folder"], SPEC, client=healthy, on_progress=on_progress, **kw)
    assert killed.is_set()
    assert same_model(model, expected)
    assert model.stats["history"] == expected.stats["history"]  # the loss sums restart from the snapshot's
    assert model.run["recoveries"] >= 1
    assert model.run["rounds"] == 4
    assert model.run["lane_rows"] == expected.run["lane_rows"]  # (the lost rounds' rows not counted twice)
    if every == 1:  # from the snapshot after round 2 (or 3), not from the start: rounds 1 and 2 ran once
        assert rounds[:2] == [1, 2] and rounds[-1] == 4 and not {1, 2} & set(rounds[2:]), rounds
    else:  # from the start: rounds 1 and 2 ran twice
        assert rounds[:2] == [1, 2] and rounds[-4:] == [1, 2, 3, 4] and len(rounds) >= 6, rounds



# ---------------------------------------------------------------------------- warm start
@pytest.fixture(scope="module")
def warm_state(data) -> sparsecross.FTRLState:
    """A float64 state trained single-node on 8,000 other rows (its keys: owned and shared)."""
    return sparsecross.train(data["warm"], SPEC, state_dtype="float64", return_state=True, **PARAMS)[1]


def test_warm_start_with_one_lane_equals_single_node(data, healthy, chunk_per_group, warm_state):
    """K=1 from ``init_state`` equals single-node from the same state, bit for bit (model,
    state, progressive loss), and the given state is not modified."""
    before = warm_state.as_dict()
    kw = dict(init_state=warm_state, state_dtype="float64", return_state=True, **PARAMS)
    ref_model, ref_state = sparsecross.train(data["folder"], SPEC, **kw)
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=1, **PARTITIONED, **kw)
    assert same_model(model, ref_model)
    assert same_state(state, ref_state)
    assert model.stats["progressive_logloss"] == ref_model.stats["progressive_logloss"]
    assert warm_state.as_dict() == before


def test_warm_start_equals_the_reference_from_that_state(data, healthy, chunk_per_group, warm_state):
    """K=3 from ``init_state``: the given state's owned keys start in their lanes, its shared
    keys and bias are the first merged values; the result equals the reference started from
    the same state (keys of the warm data that the training rows never touch included)."""
    model, state = sparsecross.train(data["folder"], SPEC, client=healthy, lanes=3, state_dtype="float64",
                                     init_state=warm_state, return_state=True, **PARTITIONED, **PARAMS)
    init = warm_state.as_dict()
    ref = train_partitioned(reference_chunks(data["folder"], None), reference_partition(SPEC, "cell", 3), **PARAMS,
                            init=init, init_bias=(float(warm_state.bias[0]), float(warm_state.bias[1])))
    assert_equals_reference(model, state, ref)
    untouched = set(init) - {k for g in _rows(data["folder"], None) for _, items, _ in g for k, _ in items}
    got = state.as_dict()
    assert untouched and all(got[k] == init[k] for k in untouched)


# ------------------------------------------------------------------------------ errors
NO_CELL = SMALL_SPEC.replace('resolution_arcmin = 60.0\n', 'resolution_arcmin = 60.0\nstandalone = false\n') \
    .replace('[[crosses]]\nfeatures = ["cell", "age"]\n\n[[crosses]]\nfeatures = ["income", "cell"]\n\n', '')


@pytest.mark.parametrize("kw, error", [
    (dict(mode="partitioned"), r"^mode 'partitioned' needs partition: the name of the exact feature"),
    (dict(partition="cell"), r"^partition applies to mode 'partitioned' only, not to 'data-parallel'$"),
    (dict(mode="exact", partition="cell"), r"^partition applies to mode 'partitioned' only, not to 'exact'$"),
    (dict(mode="partitioned", partition="cel"), r"^partition names no feature of the spec: 'cel'; the spec's "
                                                r"exact features: 'cell', 'age', 'income'$"),
    (dict(mode="partitioned", partition="device"), r"^partition feature 'device' is hashed: partitioned "
                                                   r"training needs an exact feature"),
    (dict(mode="partitioned", partition=3), r"^partition must be the name of an exact feature of the spec, got 3"),
    (dict(mode="partitioned", partition="cell", admit_after=2), r"^admit_after / admit_probability is not "
                                                                r"available in mode 'partitioned' yet"),
    (dict(mode="partitioned", partition="cell", max_state_mb=64), r"^max_state_mb is not available in mode "
                                                                  r"'partitioned' yet"),
    (dict(mode="partitioned", partition="cell", lanes=0), r"lanes"),
    (dict(mode="partitioned", partition="cell", lanes=4, rows_per_round=3), r"rows_per_round"),
    (dict(mode="partitioned", partition="cell", spec=NO_CELL), r"^partition feature 'cell' has no column of "
                                                               r"its own nor an exact cross"),
], ids=["no-partition", "data-parallel", "exact", "unknown", "hashed", "not-a-name", "admit-after",
        "max-state-mb", "no-lanes", "rows-per-round", "nothing-owned"])
def test_bad_partitioned_options_are_clear_errors(data, healthy, tmp_path, kw, error):
    """Each misuse is one SparseCrossError of one line that says what is wrong, raised
    before anything trains (no progress event, no checkpoint written)."""
    spec = SPEC
    if "spec" in kw:
        (tmp_path / "spec.toml").write_text(kw.pop("spec"))
        spec = load_spec(tmp_path / "spec.toml")
    events: list[sparsecross.ProgressEvent] = []
    with pytest.raises(SparseCrossError, match=error) as info:
        sparsecross.train(data["folder"], spec, client=healthy, on_progress=events.append,
                          checkpoint=tmp_path / "ckpt", **kw)
    assert "\n" not in str(info.value)
    assert events == []
    assert not (tmp_path / "ckpt" / "state.npz").exists()
