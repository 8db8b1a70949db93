"""Admission and the state budget in Dask data-parallel training (issue 13 item 4;
``sparsecross/dask/admit.py``): against a plain-Python definition of the rounds
(``tests/reference/dask_admit_reference.py``), on 1 or 2 workers, across a worker loss, and the
per-shard budget checked after every merge."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

distributed = pytest.importorskip("distributed")

import sparsecross  # noqa: E402
from sparsecross import ParameterError, SparseCrossError, load_spec  # noqa: E402
from sparsecross.admission import policy_of  # noqa: E402
from sparsecross.budget import MIB, apply_budget  # noqa: E402
from sparsecross.dask import admit as dask_admit  # noqa: E402
from sparsecross.dask import connect  # noqa: E402
from sparsecross.export import model_bytes  # noqa: E402
from sparsecross.state import MAX_LOAD, FTRLState  # noqa: E402

if str(Path(__file__).resolve().parents[1]) not in sys.path:  # `tests.reference` without a conftest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.reference.dask_admit_reference import reference_rounds  # noqa: E402

pytestmark = [pytest.mark.dask, pytest.mark.usefixtures("one_group_per_lane")]  # (see conftest)

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_spec(ROOT / "data" / "specs" / "synthetic.toml")
TRAIN_ROWS = 24_000
GROUP_ROWS = 3_000
PARAMS = dict(alpha=0.3, beta=1.0, l1=0.5, l2=0.1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dask-admit")
    train = sparsecross.generate(d / "train.parquet", rows=TRAIN_ROWS, seed=1, row_group_size=GROUP_ROWS)
    return {"train": train, "dir": d}


@pytest.fixture(scope="module")
def chunks(data) -> tuple[list, list[int]]:
    """The row groups as plain rows (library featurizer) and their first rows."""
    pf = pq.ParquetFile(data["train"])
    out, starts, row = [], [], 0
    for g in range(pf.metadata.num_row_groups):
        X, y, _ = sparsecross.featurize(pf.read_row_group(g), SPEC)
        out.append([([(int(i), float(v)) for i, v in zip(X.indices[X.indptr[r]:X.indptr[r + 1]],
                                                         X.data[X.indptr[r]:X.indptr[r + 1]])], float(y[r]))
                    for r in range(X.shape[0])])
        starts.append(row)
        row += X.shape[0]
    return out, starts


@pytest.fixture(scope="module")
def client():
    c, cluster = connect("local:2")
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture()
def healthy(client):
    client.wait_for_workers(2, timeout=180)
    return client


@pytest.fixture()
def one_worker():
    """An in-process cluster of 1 worker (its tasks run in this process: hooks see them)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def shard_max_keys(max_state_mb: float, lanes: int, admit: dict) -> int:
    """The key limit of one shard's budget (the library's sizing, as single-node's tests do)."""
    rules = dask_admit.shard_rules(policy_of(**admit).sized(TRAIN_ROWS), max_state_mb, lanes=lanes,
                                   seed=SPEC.hashing.seed, l1=PARAMS["l1"])
    st = FTRLState(SPEC.n_columns, "float64")
    if rules.admitting:
        st.admission = sparsecross.admission.Admission(rules.policy, rules.seed)
    apply_budget(st, rules.shard_mb)
    return int(st.max_capacity * MAX_LOAD)


def shard_filter_bytes(lanes: int, admit: dict) -> int:
    rules = dask_admit.shard_rules(policy_of(**admit).sized(TRAIN_ROWS), None, lanes=lanes,
                                   seed=SPEC.hashing.seed, l1=PARAMS["l1"])
    return rules.policy.filter_bytes


def assert_matches(state, model, ref) -> None:
    got = state.as_dict()
    assert sorted(got) == sorted(ref.z)
    for i, (zi, ni) in got.items():
        assert zi == pytest.approx(ref.z[i], rel=1e-9, abs=1e-12)
        assert ni == pytest.approx(ref.n[i], rel=1e-9, abs=1e-12)
    assert state.bias[0] == pytest.approx(ref.bias[0], rel=1e-9)
    assert model.stats["progressive_logloss"] == pytest.approx(ref.loss / TRAIN_ROWS, rel=1e-9)


# ------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("lanes, admit", [(3, {"admit_after": 2, "admit_filter_mb": 1 / 1024}),
                                          (2, {"admit_after": 3}),
                                          (2, {"admit_probability": 0.3})])
def test_admission_equals_the_reference_definition(data, chunks, healthy, lanes, admit):
    """Same admitted set, same weights, same counts as the plain-Python rounds (a 1 KiB filter:
    257-byte shards hold 256 bytes, so collisions happen)."""
    model, state = sparsecross.train(data["train"], SPEC, client=healthy, lanes=lanes, state_dtype="float64",
                                     return_state=True, **admit, **PARAMS)
    ref = reference_rounds(*chunks, lanes, **PARAMS, after=admit.get("admit_after", 1),
                           probability=admit.get("admit_probability", 1.0), seed=SPEC.hashing.seed,
                           shard_filter_bytes=shard_filter_bytes(lanes, admit))
    assert_matches(state, model, ref)
    assert model.stats["admitted_features"] == ref.admitted == state.touched
    assert model.stats["rejected_sightings"] == ref.rejected > 0
    assert model.params.get("admit_after", 1) == admit.get("admit_after", 1)
    every = sparsecross.train(data["train"], SPEC, client=healthy, lanes=lanes, state_dtype="float64", **PARAMS)
    assert state.touched < every.stats["touched_features"]  # admission keeps features out


def test_budget_and_admission_equal_the_reference_definition(data, chunks, healthy):
    lanes, admit, mb = 2, {"admit_after": 2}, 0.25
    model, state = sparsecross.train(data["train"], SPEC, client=healthy, lanes=lanes, state_dtype="float64",
                                     return_state=True, max_state_mb=mb, **admit, **PARAMS)
    max_keys = shard_max_keys(mb, lanes, admit)
    ref = reference_rounds(*chunks, lanes, **PARAMS, after=2, seed=SPEC.hashing.seed,
                           shard_filter_bytes=shard_filter_bytes(lanes, admit), max_keys=max_keys)
    assert len(ref.evicted) > 1000  # the budget bites
    assert_matches(state, model, ref)
    assert model.stats["evicted_features"] == len(ref.evicted)
    assert model.stats["admitted_features"] == ref.admitted
    assert model.params["max_state_mb"] == mb


def test_budget_alone_equals_the_reference_definition(data, chunks, healthy):
    lanes, mb = 3, 0.75
    model, state = sparsecross.train(data["train"], SPEC, client=healthy, lanes=lanes, state_dtype="float64",
                                     return_state=True, max_state_mb=mb, **PARAMS)
    ref = reference_rounds(*chunks, lanes, **PARAMS, max_keys=shard_max_keys(mb, lanes, {}))
    assert len(ref.evicted) > 1000
    assert_matches(state, model, ref)
    assert model.stats["evicted_features"] == len(ref.evicted)
    assert "admitted_features" not in model.stats


@pytest.mark.parametrize("admit", [{"admit_probability": 0.3}, {"admit_after": 2, "admit_filter_mb": 32}])
def test_one_lane_equals_single_node_admission(data, healthy, admit):
    """K = 1: the Poisson rule is the single-node one sighting for sighting; the counting
    filter too when it has no collisions (32 MiB for ~20,000 keys), so the model and counts are
    single-node's, byte for byte."""
    single = sparsecross.train(data["train"], SPEC, **admit)
    one = sparsecross.train(data["train"], SPEC, client=healthy, lanes=1, **admit)
    for k in ("admitted_features", "rejected_sightings", "touched_features", "progressive_logloss"):
        assert one.stats[k] == single.stats[k], k
    assert same_weights(one, single)


def test_a_budget_never_reached_gives_the_plain_data_parallel_model(data, healthy):
    """K shards instead of one per worker change nothing while nothing is evicted."""
    plain = sparsecross.train(data["train"], SPEC, client=healthy, lanes=3)
    roomy = sparsecross.train(data["train"], SPEC, client=healthy, lanes=3, max_state_mb=1e5)
    assert roomy.stats["evicted_features"] == 0
    assert same_weights(plain, roomy)
    assert 0 < roomy.run["state_bytes_peak"] < 1e5 * MIB


def same_weights(a: sparsecross.SparseModel, b: sparsecross.SparseModel) -> bool:
    return np.array_equal(a.keys, b.keys) and np.array_equal(a.weights, b.weights) and a.bias == b.bias


def test_exact_mode_equals_single_node_with_admission_and_budget(data, healthy):
    kw = dict(admit_after=2, max_state_mb=0.25)
    single = sparsecross.train(data["train"], SPEC, **kw)
    exact = sparsecross.train(data["train"], SPEC, client=healthy, mode="exact", **kw)
    assert model_bytes(exact) == model_bytes(single)
    assert exact.stats["evicted_features"] == single.stats["evicted_features"] > 0
    assert exact.stats["admitted_features"] == single.stats["admitted_features"]
    # (the peaks differ: single-node sizes its growths from the keys' curve, exact mode doubles)
    assert 0.5 * 0.25 * MIB < exact.run["state_bytes_peak"] <= 0.25 * MIB


# ------------------------------------------------------------------------ determinism, faults
KW = dict(lanes=3, admit_after=2, max_state_mb=0.25)


def test_same_model_bytes_on_one_or_two_workers(data, healthy, one_worker):
    two = sparsecross.train(data["train"], SPEC, client=healthy, **KW)
    one = sparsecross.train(data["train"], SPEC, client=one_worker, **KW)
    assert model_bytes(one) == model_bytes(two)
    assert two.stats["evicted_features"] > 0 and two.stats["rejected_sightings"] > 0


def test_budget_never_exceeded_per_shard(data, one_worker):
    """The test hook sees every merge of every shard: state bytes and peak within M / S."""
    seen: list[tuple[int, int, int, float]] = []
    hook = lambda s, st, limit: seen.append((s, st.nbytes, st.bytes_peak, limit))  # noqa: E731
    dask_admit.AFTER_MERGE.append(hook)
    try:
        model = sparsecross.train(data["train"], SPEC, client=one_worker, **KW)
    finally:
        dask_admit.AFTER_MERGE.remove(hook)
    limit = KW["max_state_mb"] / KW["lanes"] * MIB
    rounds = -(-(TRAIN_ROWS // GROUP_ROWS) // KW["lanes"])
    assert len(seen) == KW["lanes"] * rounds  # every merge of every shard
    assert all(lim == limit and nbytes <= limit and peak <= limit for _s, nbytes, peak, lim in seen)
    assert max(peak for _s, _b, peak, _l in seen) > 0.5 * limit  # the shards did fill their budget
    assert model.run["state_bytes_peak"] <= KW["max_state_mb"] * MIB
    assert model.run["state_bytes_peak"] == sum(max(p for s2, _b, p, _l in seen if s2 == s) for s in range(3))


def test_worker_killed_mid_training_leaves_the_model_unchanged(data, healthy):
    kw = dict(KW, rows_per_round=3 * 1_000)
    expected = sparsecross.train(data["train"], SPEC, client=healthy, **kw)
    victim = sorted(healthy.run(os.getpid).values())[0]
    killed = threading.Event()

    def on_progress(ev: sparsecross.ProgressEvent) -> None:
        if ev.extra.get("round") == 3 and not killed.is_set():
            os.kill(victim, signal.SIGKILL)
            killed.set()

    model = sparsecross.train(data["train"], SPEC, client=healthy, on_progress=on_progress, **kw)
    assert killed.is_set() and model.run["recoveries"] >= 1
    assert model_bytes(model) == model_bytes(expected)


@pytest.mark.parametrize("admit", [{"admit_after": 2}, {"admit_probability": 0.3}])
def test_resume_from_a_checkpoint_equals_uninterrupted(data, healthy, tmp_path, admit):
    """The checkpoint holds the shards' filters (one after the other in the run's filter) and
    their counters; a resumed run ends with the uninterrupted run's model and counts."""
    kw = dict(lanes=3, rows_per_round=3 * 1_000, epochs=2, checkpoint_rounds=2, max_state_mb=0.25, **admit)
    full = sparsecross.train(data["train"], SPEC, client=healthy, checkpoint=tmp_path / "a", **kw)
    assert full.stats["evicted_features"] > 0

    class Crash(Exception):
        pass

    def crash(ev: sparsecross.ProgressEvent) -> None:
        if ev.epoch == 1 and ev.extra.get("round") == 5:
            raise Crash

    ckpt = tmp_path / "b"
    with pytest.raises(Crash):
        sparsecross.train(data["train"], SPEC, client=healthy, checkpoint=ckpt, on_progress=crash, **kw)
    state, meta = sparsecross.FTRLState.load(ckpt / "state.npz")
    assert (meta["epoch"], meta["round"]) == (1, 4) and len(meta["shards"]) == 3
    rounds: list[int] = []
    resumed = sparsecross.train(
        data["train"], SPEC, client=healthy, checkpoint=ckpt,
        on_progress=lambda ev: rounds.append(ev.extra["round"]) if "round" in ev.extra else None, **kw)
    assert rounds == [5, 6, 7, 8]  # only what was left
    assert model_bytes(resumed) == model_bytes(full)
    for k in ("admitted_features", "rejected_sightings", "evicted_features", "evictions"):
        assert resumed.stats[k] == full.stats[k], k
    # a checkpoint of a run without admission is refused
    with pytest.raises(sparsecross.CheckpointError):
        sparsecross.train(data["train"], SPEC, client=healthy, checkpoint=ckpt,
                          **{k: v for k, v in kw.items() if not k.startswith("admit")})


def test_a_checkpoint_with_bad_shard_counters_names_the_folder_to_delete(data, healthy, tmp_path):
    """Its refusals said "delete the folder to start over" without naming the file or the folder."""
    import json

    from sparsecross.errors import shown_path

    kw = {"lanes": 2, "rows_per_round": 2 * 1_000, "epochs": 1, "max_state_mb": 0.25, "admit_after": 2}
    ckpt = tmp_path / "ck"
    sparsecross.train(data["train"], SPEC, client=healthy, checkpoint=ckpt, **kw)
    with np.load(ckpt / "state.npz") as f:
        genuine = dict(f)
    meta = json.loads(genuine["meta"].tobytes())
    shards = meta["shards"]
    for bad, fragment in (([shards[0]], "does not hold the counters of 2 state shards"),
                          ([[shards[0][0] + 1, *shards[0][1:]], shards[1]], "counters that disagree with its totals")):
        arrays = {**genuine, "meta": np.frombuffer(json.dumps({**meta, "shards": bad}).encode(), dtype=np.uint8)}
        with open(ckpt / "state.npz", "wb") as fh:
            np.savez(fh, **arrays)
        with pytest.raises(sparsecross.CheckpointError, match=fragment) as info:
            sparsecross.train(data["train"], SPEC, client=healthy, checkpoint=ckpt, **kw)
        msg = str(info.value)
        assert msg.startswith(f"checkpoint {shown_path(ckpt / 'state.npz')} "), msg
        assert msg.endswith(f"; delete the folder {shown_path(ckpt)} to start over"), msg


# ------------------------------------------------------------------------------ bad options
def test_bad_combinations_are_one_line_errors(data, healthy, tmp_path):
    f = data["train"]
    cases = [             (SparseCrossError, "warm start", dict(admit_after=2, init_state=FTRLState(SPEC.n_columns))),
             (ParameterError, "not both", dict(admit_after=2, admit_probability=0.5)),
             (ParameterError, r"too small for 4 shards .*give at least", dict(lanes=4, max_state_mb=0.05)),
             (ParameterError, r"less than 64 per state shard \(4 lanes", dict(lanes=4, admit_after=2,
                                                                            admit_filter_mb=128 / MIB)),
             ]
    for err, match, kw in cases:
        with pytest.raises(err, match=match) as exc:
            sparsecross.train(f, SPEC, client=healthy, **kw)
        assert "\n" not in str(exc.value)


def test_cli_trains_with_admission_on_dask(data, tmp_path, capsys):
    import json

    from sparsecross.cli import main

    out = tmp_path / "m.scx"
    rc = main(["train", str(ROOT / "data" / "specs" / "synthetic.toml"), str(data["train"]), "--out", str(out),
               "--dask", "local:1", "--lanes", "2", "--admit-after", "2", "--max-state-mb", "1", "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    assert "admitted_features" in text and "state_bytes_peak" in text
    assert np.isfinite(sparsecross.load_model(out).bias)
