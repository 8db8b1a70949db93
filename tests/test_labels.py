"""Issue 11 items 1, 4, 5: label forms ([label] positive / compare / missing / positive_weight),
early stopping, the constant-rate baseline and ``predict --margin``.

Labels are checked against the slow reference featurizer (``tests/reference``); training with
skipped rows or a class weight against training on data where the same thing is spelled out
(rows removed, a weight column); early stopping against a run of ``best_epoch`` epochs; the
baseline against its definition computed with NumPy from the data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import CheckpointError, DataError, ParameterError, SchemaError, SpecError
from sparsecross.export import load_model, model_bytes
from sparsecross.featurize import featurize, iter_batches
from sparsecross.labels import _label_rows
from sparsecross.predict import decision_function, evaluate, predict_file
from sparsecross.spec import parse_spec
from tests.reference.featurize_reference import reference_featurize
from tests.reference.hashing_reference import holdout as ref_holdout

FEATURES = [{"name": "c", "kind": "categorical", "column": "c"},
            {"name": "x", "kind": "bucket", "column": "x", "boundaries": [-1.0, 0.0, 1.0]}]


def spec_of(label: dict, **extra) -> dict:
    return {"label": label, "hashing": {"bits": 8}, "features": FEATURES, **extra}


# ----------------------------------------------------------------------------- spec
@pytest.mark.parametrize("label, fragment", [
    ({"column": "y", "positive": ["a"], "threshold": 1.0}, "'positive' and 'threshold' exclude"),
    ({"column": "y", "compare": ">="}, "label.compare: needs label.threshold"),
    ({"column": "y", "threshold": 1.0, "compare": "=="}, "label.compare: expected one of"),
    ({"column": "y", "positive": [1, "a"]}, "label.positive"),
    ({"column": "y", "positive": [1.5]}, "label.positive"),
    ({"column": "y", "positive": []}, "label.positive"),
    ({"column": "y", "positive": "a"}, "label.positive"),
    ({"column": "y", "missing": "drop"}, "label.missing"),
    ({"column": "y", "positive_weight": 0}, "label.positive_weight"),
    ({"column": "y", "positive_weight": float("inf")}, "label.positive_weight"),
    ({"column": "y", "positive_weight": 2.0**64}, "label.positive_weight"),
    ({"column": "y", "positive_weight": 1.0000001e12}, "label.positive_weight"),
    ({"column": "y", "positve": ["a"]}, "did you mean 'positive'"),
])
def test_bad_label_keys_are_one_clean_line(label, fragment):
    with pytest.raises(SpecError) as exc:
        parse_spec(spec_of(label))
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg


def test_row_weights_are_bounded_where_the_state_cannot_overflow():
    """A row's weight (the weight column times positive_weight) is at most MAX_ROW_WEIGHT
    (1e12): a squared gradient of 1e24 leaves float32's 3.4e38 room for 1e14 rows, while
    positive_weight = 2**64 made the bias NaN in training.  The bound itself is accepted."""
    from sparsecross.labels import MAX_ROW_WEIGHT

    assert MAX_ROW_WEIGHT == 1e12
    spec = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "positive_weight": 1e12}))
    assert spec.label.positive_weight == 1e12
    with pytest.raises(ParameterError, match="at most 1e\\+12"):
        spec.with_positive_weight(2.0**64)
    plain = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "weight": "w"}))
    table = pa.table({"y": ["Fell", "Found", "Fell"], "w": [1.0, 1e13, 1e6]})
    with pytest.raises(DataError, match=r"weight column 'w'.*1 values are above 1e\+12 \(first at row 1"):
        _label_rows(plain, table, 0)
    weighted = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "weight": "w", "positive_weight": 1e6}))
    # 1e6 x positive_weight 1e6 = 1e12 is the bound; 1e6 x 1e6 at row 2 with 1.5e6 is above
    ok = pa.table({"y": ["Fell", "Found", "Fell"], "w": [1.0, 1e12, 1e6]})
    _y, w, _skip = _label_rows(weighted, ok, 0)
    assert list(w) == [1e6, 1e12, 1e12]
    over = pa.table({"y": ["Fell", "Found", "Fell"], "w": [1.0, 1.0, 1.5e6]})
    with pytest.raises(DataError, match=r"times positive_weight .*above 1e\+12 \(first at row 2"):
        _label_rows(weighted, over, 0)


def test_early_stop_in_train_table_is_checked():
    assert parse_spec(spec_of({"column": "y"}, train={"early_stop": 2})).train["early_stop"] == 2
    with pytest.raises(SpecError, match="train.early_stop"):
        parse_spec(spec_of({"column": "y"}, train={"early_stop": 0}))


def test_new_keys_appear_in_to_dict_only_when_set():
    plain = parse_spec(spec_of({"column": "y", "threshold": 2.0, "weight": "w"}))
    assert plain.to_dict()["label"] == {"column": "y", "threshold": 2.0, "weight": "w"}
    # compare = ">" is the default: the same identity as no compare
    same = parse_spec(spec_of({"column": "y", "threshold": 2.0, "weight": "w", "compare": ">"}))
    assert same.sha256 == plain.sha256
    full = parse_spec(spec_of({"column": "y", "positive": ["Fell", "Slid"], "missing": "skip",
                               "positive_weight": 3, "weight": "w"}))
    assert full.to_dict()["label"] == {"column": "y", "positive": ["Fell", "Slid"], "weight": "w",
                                       "missing": "skip", "positive_weight": 3.0}
    assert full.sha256 != parse_spec(spec_of({"column": "y", "positive": ["Fell", "Slid"], "weight": "w"})).sha256
    for s in (plain, full, parse_spec(spec_of({"column": "y", "threshold": 1.0, "compare": "<="}))):
        back = parse_spec(json.loads(json.dumps(s.to_dict())), stored=True)
        assert back == s and back.sha256 == s.sha256


def test_positive_bools_keep_their_type_through_json():
    s = parse_spec(spec_of({"column": "y", "positive": [True]}))
    back = parse_spec(json.loads(s.canonical_json()), stored=True)
    assert back.label.positive == (True,) and isinstance(back.label.positive[0], bool)


@pytest.mark.parametrize("positive, column, fragment", [
    (["Fell"], pa.array([1, 0]), "are strings"),
    ([1], pa.array(["a", "b"]), "are integers"),
    ([True], pa.array([1, 0]), "are booleans"),
    ([1], pa.array([True, False]), "are integers"),
])
def test_positive_of_the_wrong_type_is_a_schema_error_naming_the_key(positive, column, fragment):
    spec = parse_spec(spec_of({"column": "y", "positive": positive}))
    table = pa.table({"c": ["u", "v"], "x": [0.5, 2.0], "y": column})
    with pytest.raises(SchemaError) as exc:
        featurize(table, spec)
    msg = str(exc.value)
    assert "label.positive" in msg and fragment in msg and "'y'" in msg and "\n" not in msg


def test_string_label_without_positive_hints_at_it():
    spec = parse_spec(spec_of({"column": "y"}))
    with pytest.raises(SchemaError, match="positive"):
        featurize(pa.table({"c": ["u"], "x": [0.5], "y": ["Fell"]}), spec)


def test_null_label_is_an_error_by_default_naming_the_column_and_hint():
    spec = parse_spec(spec_of({"column": "y", "positive": ["a"]}))
    with pytest.raises(DataError, match=r"label column 'y': 1 null values \(first at row 1\).*missing = \"skip\""):
        featurize(pa.table({"c": ["u", "v"], "x": [0.5, 2.0], "y": ["a", None]}), spec)


# ------------------------------------------------------------------ featurize vs reference
_LABEL_FORMS = st.sampled_from(["bool01", "threshold", "strings", "ints", "bools"])


@st.composite
def labelled_rows(draw):
    form = draw(_LABEL_FORMS)
    n = draw(st.integers(1, 30))
    label: dict = {"column": "y"}
    if form == "bool01":
        values = st.sampled_from([0.0, 1.0])
        arrow = pa.float64()
    elif form == "threshold":
        values = st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 1))
        label["threshold"] = draw(st.sampled_from([-1.0, 0.0, 0.5]))
        if draw(st.booleans()):
            label["compare"] = draw(st.sampled_from([">", ">=", "<", "<="]))
        arrow = pa.float64()
    elif form == "strings":
        values = st.sampled_from(["Fell", "Stood", "fell", ""])
        label["positive"] = draw(st.lists(st.sampled_from(["Fell", "fell", "Nope"]), min_size=1, max_size=2))
        arrow = pa.string()
    elif form == "ints":
        values = st.integers(-3, 3)
        label["positive"] = draw(st.lists(st.integers(-3, 3), min_size=1, max_size=3))
        arrow = pa.int64()
    else:
        values = st.booleans()
        label["positive"] = [draw(st.booleans())]
        arrow = pa.bool_()
    skip = draw(st.booleans())
    if skip:
        label["missing"] = "skip"
    if draw(st.booleans()):
        label["positive_weight"] = draw(st.sampled_from([0.5, 2.0, 3.0]))
    weighted = draw(st.booleans())
    if weighted:
        label["weight"] = "w"
    ys = draw(st.lists(st.one_of(values, st.none()) if skip else values, min_size=n, max_size=n))
    if skip and not any(v is not None for v in ys):
        ys[0] = draw(values)
    if skip and form == "threshold" and draw(st.booleans()):  # NaN is missing too
        ys = [float("nan") if v is None else v for v in ys]
    rows = [{"c": f"v{k % 3}", "x": float(k % 4) - 1.5, "y": ys[k], "w": float(k % 3)} for k in range(n)]
    table = pa.table({"c": pa.array([r["c"] for r in rows]), "x": pa.array([r["x"] for r in rows]),
                      "y": pa.array(ys, type=arrow), "w": pa.array([r["w"] for r in rows])})
    return spec_of(label), rows, table


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labelled_rows())
def test_labels_weights_and_skipped_rows_match_the_reference(case):
    raw, rows, table = case
    spec = parse_spec(raw)
    X, y, w = featurize(table, spec)
    ref_rows, ref_y, ref_w, width = reference_featurize(raw, rows)
    assert X.shape == (len(ref_rows), width)
    assert y.tolist() == ref_y
    assert (w is None) == (ref_w is None)
    if w is not None:
        assert w.tolist() == ref_w
    got = [list(zip(X.indices[X.indptr[i]:X.indptr[i + 1]].tolist(), X.data[X.indptr[i]:X.indptr[i + 1]].tolist()))
           for i in range(X.shape[0])]
    assert got == ref_rows
    assert X.indices.dtype == np.int64 and X.indptr.dtype == np.int64


def test_dictionary_encoded_string_labels(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"c": ["u", "v", "u"], "x": [0.5, 2.0, 0.0], "y": ["Fell", None, "Stood"]}), path)
    spec = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "missing": "skip"}))
    (batch,) = list(iter_batches(path, spec))
    assert batch.y.tolist() == [1.0, 0.0, 0.0] and batch.skip.tolist() == [0, 1, 0]


# --------------------------------------------------------------------------- training
def _data(tmp_path: Path, n: int = 4000, seed: int = 0, null_share: float = 0.15) -> tuple[Path, pa.Table]:
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 30, n)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-((c - 15) / 5 + x)))
    fell = rng.random(n) < p
    y = np.where(fell, "Fell", "Stood").astype(object)
    y[rng.random(n) < null_share] = None
    table = pa.table({"c": pa.array(c), "x": pa.array(x), "y": pa.array(list(y), type=pa.string()),
                      "w": pa.array(rng.integers(1, 4, n).astype(np.float64))})
    path = tmp_path / f"d{seed}.parquet"
    pq.write_table(table, path, row_group_size=900)
    return path, table


SKIP = {"column": "y", "positive": ["Fell"], "missing": "skip"}
OPTS = dict(l1=0.01, alpha=0.3, batch_rows=700, state_dtype="float64")


def _weights(model) -> tuple[list, list, float]:
    return model.keys.tolist(), model.weights.tolist(), model.bias


def test_skipped_rows_train_like_the_data_without_them(tmp_path):
    path, table = _data(tmp_path)
    spec = parse_spec(spec_of(SKIP))
    model = sx.train(path, spec, epochs=2, **OPTS)
    keep = pa.compute.is_valid(table.column("y"))
    kept = tmp_path / "kept.parquet"
    pq.write_table(table.filter(keep), kept, row_group_size=900)
    ref = sx.train(kept, parse_spec(spec_of({"column": "y", "positive": ["Fell"]})), epochs=2, **OPTS)
    assert _weights(model) == _weights(ref)
    n_null = table.num_rows - int(pa.compute.sum(keep).as_py())
    assert model.stats["skipped_rows"] == n_null
    assert model.stats["train_rows"] == table.num_rows - n_null
    assert [r["skipped_rows"] for r in model.stats["history"]] == [n_null, n_null]


def test_skipped_rows_with_holdout_are_neither_trained_nor_scored(tmp_path):
    path, table = _data(tmp_path)
    spec = parse_spec(spec_of(SKIP))
    model = sx.train(path, spec, holdout=0.25, **OPTS)
    null = [v is None for v in table.column("y").to_pylist()]
    held = [ref_holdout(r, 0.25, 0) for r in range(table.num_rows)]
    st_ = model.stats
    assert st_["skipped_rows"] == sum(null)
    assert st_["valid_skipped_rows"] == sum(h and z for h, z in zip(held, null))
    assert st_["valid_rows"] == sum(h and not z for h, z in zip(held, null))
    assert st_["train_rows"] == sum(not h and not z for h, z in zip(held, null))
    # the validation metrics are those of evaluate() on the held-out labelled rows
    valid = tmp_path / "valid.parquet"
    pq.write_table(table.filter(pa.array(held)), valid)
    res = evaluate(model, valid)
    assert res["rows"] == st_["valid_rows"] and res["skipped_rows"] == st_["valid_skipped_rows"]
    assert math.isclose(res["logloss"], st_["valid_logloss"], rel_tol=1e-6)


def test_positive_weight_equals_a_weight_column(tmp_path):
    path, table = _data(tmp_path, null_share=0.0)
    spec = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "positive_weight": 3.0}))
    model = sx.train(path, spec, holdout=0.2, **OPTS)
    fell = np.array([v == "Fell" for v in table.column("y").to_pylist()])
    wpath = tmp_path / "pw.parquet"
    pq.write_table(table.append_column("pw", pa.array(np.where(fell, 3.0, 1.0))), wpath, row_group_size=900)
    ref = sx.train(wpath, parse_spec(spec_of({"column": "y", "positive": ["Fell"], "weight": "pw"})),
                   holdout=0.2, **OPTS)
    assert _weights(model) == _weights(ref)
    for k in ("valid_logloss", "valid_auc", "valid_positive_rate", "progressive_logloss"):
        assert model.stats[k] == ref.stats[k], k
    # with a weight column too: the product
    both = parse_spec(spec_of({"column": "y", "positive": ["Fell"], "positive_weight": 3.0, "weight": "w"}))
    _, _, w = featurize(table, both)
    assert w.tolist() == (table.column("w").to_numpy() * np.where(fell, 3.0, 1.0)).tolist()


def test_eval_metrics_and_baseline_match_numpy(tmp_path):
    path, table = _data(tmp_path)
    spec = parse_spec(spec_of({**SKIP, "positive_weight": 2.0, "weight": "w"}))
    model = sx.train(path, spec, **OPTS)
    res = evaluate(model, path)
    ys = table.column("y").to_pylist()
    keep = np.array([v is not None for v in ys])
    y = np.array([v == "Fell" for v in ys], dtype=float)[keep]
    w = table.column("w").to_numpy()[keep] * np.where(y == 1, 2.0, 1.0)
    p = sx.predict_proba(model, table.filter(pa.array(keep)))
    ll = -np.sum(w * (y * np.log(p) + (1 - y) * np.log(1 - p))) / w.sum()
    rate = np.sum(w * y) / w.sum()
    base = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    assert res["rows"] == keep.sum() and res["skipped_rows"] == (~keep).sum()
    assert math.isclose(res["logloss"], ll, rel_tol=1e-9)
    assert math.isclose(res["positive_rate"], rate, rel_tol=1e-12)
    assert math.isclose(res["baseline_logloss"], base, rel_tol=1e-12)


def test_determinism_same_bytes(tmp_path):
    path, _ = _data(tmp_path)
    spec = parse_spec(spec_of({**SKIP, "positive_weight": 2.0}))
    a = sx.train(path, spec, holdout=0.2, epochs=4, early_stop=1, **OPTS)
    b = sx.train(path, spec, holdout=0.2, epochs=4, early_stop=1, **OPTS)
    assert model_bytes(a) == model_bytes(b)


# ---------------------------------------------------------------------- early stopping
ES = dict(l1=0.0, alpha=0.5, batch_rows=700, state_dtype="float64")  # best epoch 2 of 8, then it overfits


def _es_data(tmp_path):
    path, _ = _data(tmp_path, n=1500, null_share=0.1)
    return path, parse_spec({**spec_of(SKIP), "hashing": {"bits": 12},
                             "crosses": [{"features": ["c", "x"]}]})


def test_early_stop_keeps_the_best_epoch(tmp_path):
    path, spec = _es_data(tmp_path)
    full = sx.train(path, spec, holdout=0.3, epochs=8, **ES)
    losses = [r["valid_logloss"] for r in full.stats["history"]]
    best = int(np.argmin(losses)) + 1
    assert best < 8, "the data must overfit for this test to mean anything"
    k = 2
    model = sx.train(path, spec, holdout=0.3, epochs=8, early_stop=k, **ES)
    # it stops after k epochs without improvement (or at the end), keeping the best epoch's weights
    hist = model.stats["history"]
    assert [r["valid_logloss"] for r in hist] == losses[: len(hist)]
    first_best = next(i + 1 for i in range(len(hist)) if all(losses[i] <= v for v in losses[: len(hist)]))
    assert model.stats["best_epoch"] == first_best
    assert len(hist) == min(8, first_best + k) or all(
        losses[j] >= losses[first_best - 1] for j in range(first_best, len(hist)))
    ref = sx.train(path, spec, holdout=0.3, epochs=first_best, **ES)
    assert _weights(model) == _weights(ref)
    assert model.stats["valid_logloss"] == losses[first_best - 1]


def test_early_stop_needs_validation_data(tmp_path):
    path, spec = _es_data(tmp_path)
    with pytest.raises(ParameterError, match="early_stop needs validation data"):
        sx.train(path, spec, epochs=3, early_stop=1)
    for bad in (0, True, 2.0, np.float64(2), np.int64(0)):
        with pytest.raises(ParameterError, match=r"^early_stop must be between 1 and 1,000,000, got "):
            sx.train(path, spec, epochs=3, early_stop=bad, holdout=0.2)


def test_early_stop_takes_a_numpy_integer(tmp_path):
    """As admit_after does: the same model as the Python integer, recorded as one (the model
    file and the checkpoint are JSON)."""
    path, spec = _es_data(tmp_path)
    plain = sx.train(path, spec, holdout=0.3, epochs=5, early_stop=2, **ES)
    for t in (np.int64, np.uint8):
        model = sx.train(path, spec, holdout=0.3, epochs=5, early_stop=t(2), checkpoint=tmp_path / t.__name__, **ES)
        assert model_bytes(model) == model_bytes(plain)
        assert type(model.stats["early_stop"]) is int


class _Stop(Exception):
    pass


def _interrupt(at_epoch: int, phase: str):
    def on_progress(ev):
        if ev.epoch == at_epoch and ev.phase == phase:
            raise _Stop
    return on_progress


@pytest.mark.parametrize("at_epoch, phase", [(1, "epoch_end"), (2, "validate"), (3, "epoch_end")])
def test_resume_with_skip_and_early_stop_is_exact(tmp_path, at_epoch, phase):
    path, spec = _es_data(tmp_path)
    opts = dict(holdout=0.3, epochs=8, early_stop=2, checkpoint_every=400, **ES)
    whole = sx.train(path, spec, **opts)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        sx.train(path, spec, checkpoint=ckpt, on_progress=_interrupt(at_epoch, phase), **opts)
    assert whole.stats["best_epoch"] == 2 and len(whole.stats["history"]) == 4
    resumed = sx.train(path, spec, checkpoint=ckpt, **opts)
    assert model_bytes(resumed) == model_bytes(whole)
    assert sorted(p.name for p in ckpt.glob("best-*.npz")) == [f"best-{whole.stats['best_epoch']}.npz"]
    again = sx.train(path, spec, checkpoint=ckpt, **opts)  # a finished run stays finished
    assert model_bytes(again) == model_bytes(whole) and again.run["rows_processed"] == 0


def _stopped_early_stop_run(tmp_path: Path) -> tuple[Path, sx.FeatureSpec, dict, Path]:
    """(data, spec, options, checkpoint folder) of an early-stopping run interrupted at the end
    of its second epoch."""
    path, spec = _es_data(tmp_path)
    opts = dict(holdout=0.3, epochs=8, early_stop=2, **ES)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Stop):
        sx.train(path, spec, checkpoint=ckpt, on_progress=_interrupt(1, "epoch_end"), **opts)
    return path, spec, opts, ckpt


def test_missing_best_state_is_a_checkpoint_error(tmp_path):
    path, spec, opts, ckpt = _stopped_early_stop_run(tmp_path)
    for f in ckpt.glob("best-*.npz"):
        f.unlink()
    with pytest.raises(CheckpointError, match="best state of epoch"):
        sx.train(path, spec, checkpoint=ckpt, **opts)


def test_a_checkpoint_naming_another_best_epoch_names_the_folder_to_delete(tmp_path):
    """Its refusal said "delete the folder to start over" without naming the folder."""
    from sparsecross.errors import shown_path

    path, spec, opts, ckpt = _stopped_early_stop_run(tmp_path)
    with np.load(ckpt / "state.npz") as f:
        arrays = dict(f)
    meta = json.loads(arrays["meta"].tobytes())
    del meta["best_epoch"]  # a best epoch the history does not name
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(ckpt / "state.npz", "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(CheckpointError, match="names best epoch None") as info:
        sx.train(path, spec, checkpoint=ckpt, **opts)
    assert str(info.value).endswith(f"; delete the folder {shown_path(ckpt)} to start over"), info.value


# ------------------------------------------------------------------------------- CLI
def _run(capsys, argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _spec_file(tmp_path: Path, label_toml: str, train_toml: str = "") -> Path:
    p = tmp_path / "spec.toml"
    p.write_text(f"[label]\n{label_toml}\n[hashing]\nbits = 12\n" + "".join(
        f'[[features]]\nname = "{f["name"]}"\nkind = "{f["kind"]}"\ncolumn = "{f["column"]}"\n'
        + (f"boundaries = {f['boundaries']}\n" if "boundaries" in f else "") for f in FEATURES)
        + '[[crosses]]\nfeatures = ["c", "x"]\n' + (f"[train]\n{train_toml}\n" if train_toml else ""))
    return p


def test_cli_train_json_reports_and_flags(tmp_path, capsys):
    path, table = _data(tmp_path, n=1500, null_share=0.1)
    spec = _spec_file(tmp_path, 'column = "y"\npositive = ["Fell"]\nmissing = "skip"\npositive_weight = 2.0',
                      "epochs = 6\nalpha = 2.0\nl1 = 0.0\nearly_stop = 1")
    out = tmp_path / "m.scx"
    rc, o, e = _run(capsys, ["train", spec, path, "--out", out, "--holdout", 0.3, "--positive-weight", 4,
                             "--json", "--names", 0])
    assert rc == 0, e
    rep = json.loads(o)
    model = load_model(out)
    assert model.spec.label.positive_weight == 4.0  # the flag overrides [label] positive_weight
    assert rep["best_epoch"] == model.stats["best_epoch"] and model.stats["early_stop"] == 1
    assert rep["skipped_rows"] == sum(v is None for v in table.column("y").to_pylist())
    assert rep["valid_skipped_rows"] == model.stats["valid_skipped_rows"]
    r = model.stats["valid_positive_rate"]
    assert math.isclose(rep["baseline_logloss"], -(r * math.log(r) + (1 - r) * math.log(1 - r)), rel_tol=1e-12)
    # text
    rc, o, e = _run(capsys, ["train", spec, path, "--out", out, "--holdout", 0.3, "--early-stop", 3, "--names", 0])
    assert rc == 0, e
    assert "constant rate" in o and "skipped" in o and "early stopping: kept the model of epoch" in o
    assert load_model(out).stats["early_stop"] == 3  # the flag overrides [train] early_stop


def test_cli_early_stop_without_validation_and_bad_positive_weight(tmp_path, capsys):
    path, _ = _data(tmp_path, n=500)
    spec = _spec_file(tmp_path, 'column = "y"\npositive = ["Fell"]\nmissing = "skip"')
    for extra, fragment in ((["--early-stop", 2], "early_stop needs validation data"),
                            (["--positive-weight", -1], "positive_weight must be a finite number > 0"),
                            # 2**64 trained the whole run, then 'cannot save model: bias is nan'
                            (["--positive-weight", 2**64], "positive_weight must be a finite number > 0 and at most")):
        rc, o, e = _run(capsys, ["train", spec, path, "--out", tmp_path / "m.scx", *extra])
        assert rc == 1 and len(e.strip().splitlines()) == 1 and fragment in e, e
        assert not (tmp_path / "m.scx").exists()


def test_cli_eval_reports_baseline_and_skipped(tmp_path, capsys):
    path, _ = _data(tmp_path, n=1500)
    spec = parse_spec(spec_of(SKIP))
    out = tmp_path / "m.scx"
    sx.save_model(sx.train(path, spec, **OPTS), out)
    rc, o, e = _run(capsys, ["eval", out, path, "--json"])
    assert rc == 0, e
    rep = json.loads(o)
    lib = evaluate(load_model(out), path)
    assert rep["baseline_logloss"] == lib["baseline_logloss"] and rep["skipped_rows"] == lib["skipped_rows"] > 0
    rc, o, e = _run(capsys, ["eval", out, path])
    assert rc == 0 and "constant rate" in o and "skipped" in o


def test_cli_eval_positive_weight_weights_the_metrics_as_training_does(tmp_path, capsys):
    """eval --positive-weight W: logloss and positive rate weighted W on positive rows (a dense
    computation from the model's probabilities); the model's own class weight without it."""
    path, table = _data(tmp_path, n=1500)
    out = tmp_path / "m.scx"
    sx.save_model(sx.train(path, parse_spec(spec_of({**SKIP, "positive_weight": 2.0})), **OPTS), out)
    y_all = table.column("y").to_pylist()
    keep = [i for i, v in enumerate(y_all) if v is not None]
    y = np.array([y_all[i] == "Fell" for i in keep], dtype=np.float64)
    p = load_model(out).predict_proba(table)[keep].astype(np.float64)
    for flag, w_pos in (([], 2.0), (["--positive-weight", 5], 5.0)):
        rc, o, e = _run(capsys, ["eval", out, path, "--json", *flag])
        assert rc == 0, e
        rep = json.loads(o)
        w = np.where(y == 1.0, w_pos, 1.0)
        want = -np.sum(w * (y * np.log(p) + (1 - y) * np.log1p(-p))) / w.sum()
        assert math.isclose(rep["logloss"], want, rel_tol=1e-6)
        assert math.isclose(rep["positive_rate"], float(np.sum(w * y) / w.sum()), rel_tol=1e-12)
    rc, o, e = _run(capsys, ["eval", out, path, "--positive-weight", 0])
    assert rc == 1 and len(e.strip().splitlines()) == 1 and "positive_weight must be a finite number > 0" in e


# ----------------------------------------------------------------------------- margin
def test_predict_margin(tmp_path, capsys):
    path, table = _data(tmp_path, n=1200)
    spec = parse_spec(spec_of(SKIP))
    model = sx.train(path, spec, **OPTS)
    out = tmp_path / "p.parquet"
    predict_file(model, path, out, keep=["c"], margin=True)
    got = pq.read_table(out)
    assert got.schema.names == ["c", "probability", "margin"]
    assert got.schema.field("margin").type == pa.float64()
    X, _, _ = featurize(table.drop_columns(["y"]).append_column("y", pa.array([1.0] * table.num_rows)),
                        parse_spec(spec_of({"column": "y"})))
    m = decision_function(model, X)
    assert got.column("margin").to_numpy().tolist() == m.tolist()
    p = got.column("probability").to_numpy()
    assert np.allclose(p, 1 / (1 + np.exp(-m)), rtol=1e-12, atol=0)
    plain = tmp_path / "q.parquet"
    predict_file(model, path, plain)
    assert pq.read_table(plain).schema.names == ["probability"]
    with pytest.raises(ParameterError, match="'margin'"):
        predict_file(model, path, tmp_path / "r.parquet", keep=["margin"], margin=True)
    mpath = tmp_path / "m.scx"
    sx.save_model(model, mpath)
    rc, o, e = _run(capsys, ["predict", mpath, path, "--out", tmp_path / "s.parquet", "--margin"])
    assert rc == 0, e
    assert pq.read_table(tmp_path / "s.parquet").column("margin").to_numpy().tolist() == m.tolist()
    rc, o, e = _run(capsys, ["predict", mpath, path, "--out", tmp_path / "t.parquet", "--margin", "--keep", "margin"])
    assert rc == 1 and "margin" in e and len(e.strip().splitlines()) == 1


def test_dask_refuses_skip_and_early_stop_before_any_work(tmp_path):
    path, _ = _data(tmp_path, n=300)
    with pytest.raises(ParameterError, match="not supported with a Dask client"):
        sx.train(path, parse_spec(spec_of(SKIP)), client=object())
    with pytest.raises(ParameterError, match="not supported with a Dask client"):
        sx.train(path, parse_spec(spec_of({"column": "y", "positive": ["Fell"]})), client=object(),
                 holdout=0.2, early_stop=1)


def test_inspect_shows_skipped_rows_and_best_epoch(tmp_path, capsys):
    path, spec = _es_data(tmp_path)
    out = tmp_path / "m.scx"
    sx.save_model(sx.train(path, spec, holdout=0.3, epochs=8, early_stop=2, **ES), out)
    rc, o, e = _run(capsys, ["inspect", out])
    assert rc == 0, e
    assert "best_epoch: 2" in o and "skipped_rows:" in o and "valid_skipped_rows:" in o


def test_quantiles_are_resolved_from_labelled_rows_only():
    from sparsecross.featurize import resolve_spec

    x = np.arange(100, dtype=float)
    y = [None if v >= 50 else ("Fell" if v % 2 else "Stood") for v in x]  # the upper half has no label
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "q.parquet"
        pq.write_table(pa.table({"c": ["u"] * 100, "x": x, "y": pa.array(y, type=pa.string())}), path)
        feats = [FEATURES[0], {"name": "x", "kind": "bucket", "column": "x", "quantiles": 2}]
        skip = resolve_spec(path, parse_spec({"label": SKIP, "features": feats}))
        every = resolve_spec(path, parse_spec({"label": {**SKIP, "missing": "error"}, "features": feats}))
    assert skip.feature("x").boundaries == (float(np.quantile(x[:50], 0.5)),)
    assert every.feature("x").boundaries == (float(np.quantile(x, 0.5)),)


def _positive_reference(arr: pa.Array, positive: tuple) -> list[bool]:
    """pyarrow's own rule: the values ``pa.scalar(v, type=arr.type)`` can hold, compared row by row."""
    kept = []
    for v in positive:
        try:
            kept.append(pa.scalar(v, type=arr.type).as_py())
        except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return [x is not None and any(x == k and type(x) is type(k) for k in kept) for x in arr.to_pylist()]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_is_positive_matches_pyarrow_scalars(data) -> None:
    """The value set built from buffers keeps exactly the values pyarrow's scalars accept, at any
    slice offset (strings, bools, integers of each width and sign)."""
    from sparsecross.labels import _is_positive

    typ = data.draw(st.sampled_from([pa.string(), pa.large_string(), pa.string_view(), pa.bool_(), pa.int8(),
                                     pa.uint8(), pa.int32(), pa.uint64(), pa.int64()]))
    pool = ["yes", "no", "1", "", "é"] if typ in (pa.string(), pa.large_string(), pa.string_view()) else \
        [True, False] if typ == pa.bool_() else [0, 1, -1, 127, 128, 255, 300, -2**63, 2**63 - 1]
    values = data.draw(st.lists(st.one_of(st.none(), st.sampled_from(pool)), max_size=40))
    lo, hi = (-2**63, 2**63 - 1) if typ == pa.int64() else (0, 2**64 - 1) if typ == pa.uint64() else (None, None)
    if typ in (pa.int8(), pa.uint8(), pa.int32()):
        info = np.iinfo({"int8": np.int8, "uint8": np.uint8, "int32": np.int32}[str(typ)])
        lo, hi = int(info.min), int(info.max)
    if lo is not None:
        values = [v for v in values if v is None or lo <= v <= hi]
    arr = pa.array(values, type=typ).slice(data.draw(st.integers(0, 5)))
    positive = tuple(dict.fromkeys(data.draw(st.lists(st.sampled_from(
        ["yes", "1", "é", "", True, False, 0, 1, -1, 128, 255, 300, 2**63 - 1, -2**63]), min_size=1, max_size=5))))
    got = _is_positive(arr, positive)
    assert got.dtype == bool and got.tolist() == _positive_reference(arr, positive)
