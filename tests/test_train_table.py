"""The spec's ``[train]`` table read the same way by the Python API and the CLI (arguments or
flags > ``[train]`` > defaults): for every key ``[train]`` accepts, ``train(spec with [train] key
= v)`` writes the model that ``train(spec, key=v)`` writes, an explicit argument (even the default
value) wins over the table, and ``sparsecross train`` / ``path`` / ``tune`` write the same bytes as
``sparsecross.train`` / ``regularization_path`` / ``tune`` for the same spec file."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

import pytest

import sparsecross
from sparsecross import load_spec, parse_spec
from sparsecross.cli import main
from sparsecross.export import model_bytes
from sparsecross.path import regularization_path
from sparsecross.spec import TRAIN_KEYS
from sparsecross.train_options import TRAIN_DEFAULTS, resolve_train_options
from sparsecross.tune import tune

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"  # 20,000 rows in 4 row groups of 5,000
SPEC_PATH = ROOT / "data" / "specs" / "synthetic.toml"


def _toml(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def _with_table(table: dict[str, object]) -> str:
    return SPEC_PATH.read_text() + "\n[train]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())


def _bytes(model) -> bytes:
    """The model's artifact bytes with the embedded spec's ``[train]`` table left out (the
    artifact records the spec as written; every other byte, params and stats included, counts)."""
    return model_bytes(replace(model, spec=replace(model.spec, train={})))


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


#: key -> (the [train] value, another explicit value that must win over it, the other arguments
#: of every run, whether the value changes the model bytes).  The explicit value is the default
#: where the default can be passed: passing the default must win over the table too.
CASES = {
    "alpha": (0.3, 0.1, {"holdout": 0.2}, True),
    "beta": (4.0, 1.0, {"holdout": 0.2}, True),
    "l1": (5.0, 1.0, {"holdout": 0.2}, True),
    "l2": (3.0, 0.0, {"holdout": 0.2}, True),
    "epochs": (2, 1, {"holdout": 0.2}, True),
    "label_smoothing": (0.2, 0.0, {"holdout": 0.2}, True),
    "holdout": (0.3, 0.1, {}, True),
    "batch_rows": (3000, 65536, {"holdout": 0.2}, False),  # results never depend on it: counted below
    "shuffle": (True, False, {"holdout": 0.2}, True),
    "shuffle_seed": (5, 0, {"holdout": 0.2, "shuffle": True}, True),
    "shuffle_buffer_rows": (3000, 262144, {"holdout": 0.2, "shuffle": True}, True),
    "early_stop": (1, 3, {"holdout": 0.2, "epochs": 3}, True),
    "max_state_mb": (1.0, 2.0, {"holdout": 0.2}, True),
    "admit_after": (3, 2, {"holdout": 0.2}, True),
    "admit_probability": (0.5, 0.25, {"holdout": 0.2}, True),
    "admit_filter_mb": (1.0, 2.0, {"holdout": 0.2, "admit_after": 2}, True),
    "state_bits": (16, 32, {"holdout": 0.2}, True),
}


def test_every_train_key_has_a_default_and_a_case():
    """A [train] key without a default would be dropped by the resolution: silently ignored."""
    assert set(TRAIN_DEFAULTS) == set(TRAIN_KEYS)
    assert set(CASES) == set(TRAIN_KEYS)


def test_resolution_rule_on_its_own():
    """Arguments (not None) > the table > defaults; the two rules that tie keys together."""
    tspec = parse_spec(_with_table({"l1": 5.0, "holdout": 0.2, "admit_after": 3, "admit_filter_mb": 2.0}))
    o = resolve_train_options(tspec, {"l1": None, "alpha": 0.3, "beta": 1.0, "source": "ignored"})
    assert (o["l1"], o["alpha"], o["beta"], o["l2"], o["holdout"]) == (5.0, 0.3, 1.0, 0.0, 0.2)
    assert (o["admit_after"], o["admit_probability"], o["admit_filter_mb"]) == (3, None, 2.0)
    assert resolve_train_options(tspec, {}, valid="v.parquet")["holdout"] is None
    assert resolve_train_options(tspec, {"holdout": 0.1}, valid="v.parquet")["holdout"] == 0.1  # train refuses both
    o = resolve_train_options(tspec, {"admit_probability": 0.5})
    assert (o["admit_after"], o["admit_probability"], o["admit_filter_mb"]) == (None, 0.5, 2.0)


@pytest.mark.parametrize("key", sorted(CASES))
def test_api_reads_every_train_key_as_an_argument(spec, key):
    value, other, extra, matters = CASES[key]
    tspec = parse_spec(_with_table({key: value}))
    explicit = sparsecross.train(SAMPLE, spec, **extra, **{key: value})
    from_table = sparsecross.train(SAMPLE, tspec, **extra)
    assert _bytes(from_table) == _bytes(explicit)
    default = sparsecross.train(SAMPLE, spec, **extra)
    if matters:
        assert _bytes(default) != _bytes(explicit)
    # an explicit argument wins over the table, the default value included
    won = sparsecross.train(SAMPLE, tspec, **extra, **{key: other})
    assert _bytes(won) == _bytes(sparsecross.train(SAMPLE, spec, **extra, **{key: other}))
    assert _bytes(won) != _bytes(explicit) or not matters


def test_api_reads_train_batch_rows(spec, monkeypatch):
    """``batch_rows`` changes no result, so count the batches ``train`` updates with."""
    train_module = importlib.import_module("sparsecross.train")  # `sparsecross.train` is the function
    sizes: list[int] = []
    real = train_module.train_batch

    def counting(state, batch, *args, **kwargs):
        sizes.append(len(batch.y))
        return real(state, batch, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_batch", counting)
    sparsecross.train(SAMPLE, parse_spec(_with_table({"batch_rows": 3000})))
    assert max(sizes) == 3000 and sum(sizes) == 20_000
    sizes.clear()
    sparsecross.train(SAMPLE, parse_spec(_with_table({"batch_rows": 3000})), batch_rows=2000)
    assert max(sizes) == 2000


def test_valid_data_replaces_a_train_holdout_in_the_api_as_in_the_cli(spec):
    tspec = parse_spec(_with_table({"holdout": 0.2}))
    a = sparsecross.train(SAMPLE, tspec, valid=SAMPLE)
    b = sparsecross.train(SAMPLE, spec, valid=SAMPLE)
    assert _bytes(a) == _bytes(b)


def test_an_admission_argument_replaces_the_tables_admission_mode(spec):
    tspec = parse_spec(_with_table({"admit_after": 3}))
    a = sparsecross.train(SAMPLE, tspec, holdout=0.2, admit_probability=0.5)
    b = sparsecross.train(SAMPLE, spec, holdout=0.2, admit_probability=0.5)
    assert _bytes(a) == _bytes(b)


#: A [train] table with many keys at once, as a user writes it (two of them: early stopping and
#: the state budget cannot go together).
TABLES = [
    {"alpha": 0.2, "beta": 2.0, "l1": 3.0, "l2": 1.0, "epochs": 3, "label_smoothing": 0.05, "holdout": 0.2,
     "batch_rows": 4000, "shuffle": True, "shuffle_seed": 7, "shuffle_buffer_rows": 3000, "early_stop": 1,
     "admit_after": 2, "admit_filter_mb": 1.0},
    {"alpha": 0.05, "l1": 0.5, "epochs": 2, "holdout": 0.25, "max_state_mb": 1.0, "admit_probability": 0.5},
]


@pytest.mark.parametrize("table", TABLES, ids=["early_stop", "budget"])
def test_cli_train_and_the_api_write_the_same_bytes_for_the_same_spec(tmp_path, table, spec):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(_with_table(table))
    out = tmp_path / "cli.scx"
    assert main(["train", str(spec_file), str(SAMPLE), "--out", str(out), "--quiet", "--names", "0"]) == 0
    api = sparsecross.train(SAMPLE, load_spec(spec_file))
    assert out.read_bytes() == model_bytes(api)
    assert _bytes(api) == _bytes(sparsecross.train(SAMPLE, spec, **table))
    assert _bytes(api) != _bytes(sparsecross.train(SAMPLE, spec, holdout=table["holdout"]))


PATH_TABLE = {"alpha": 0.2, "beta": 2.0, "epochs": 2, "label_smoothing": 0.05, "holdout": 0.2,
              "batch_rows": 4000, "shuffle": True, "shuffle_seed": 7, "shuffle_buffer_rows": 3000,
              "admit_after": 2, "max_state_mb": 1.0}


def test_path_api_reads_the_train_table_as_the_cli_does(tmp_path, spec):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(_with_table(PATH_TABLE))
    grid = dict(l1=[0.5, 2.0], max_nonzeros=10**9)
    api = regularization_path(SAMPLE, load_spec(spec_file), **grid)
    explicit = regularization_path(SAMPLE, spec, **grid, **PATH_TABLE)
    assert [_bytes(p.model) for p in api.points] == [_bytes(p.model) for p in explicit.points]
    plain = regularization_path(SAMPLE, spec, **grid, holdout=0.2)
    assert [_bytes(p.model) for p in api.points] != [_bytes(p.model) for p in plain.points]
    # an explicit argument wins over the table
    won = regularization_path(SAMPLE, load_spec(spec_file), **grid, alpha=0.1, epochs=1)
    ref = regularization_path(SAMPLE, spec, **grid, **{**PATH_TABLE, "alpha": 0.1, "epochs": 1})
    assert [_bytes(p.model) for p in won.points] == [_bytes(p.model) for p in ref.points]
    out = tmp_path / "path.scx"
    assert main(["path", str(spec_file), str(SAMPLE), "--l1", "0.5,2", "--max-nonzeros", str(10**9),
                 "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes() == model_bytes(api.chosen.model)


def _numbers(points) -> list[dict[str, object]]:
    """The points' numbers, without the artifact size (the embedded spec's [train] table counts in it)."""
    return [{k: v for k, v in p.to_dict().items() if k != "model_bytes"} for p in points]


TUNE_TABLE = {"beta": 2.0, "l2": 1.0, "label_smoothing": 0.05, "holdout": 0.2, "batch_rows": 4000,
              "shuffle": True, "shuffle_seed": 7, "shuffle_buffer_rows": 3000, "admit_after": 2,
              "max_state_mb": 1.0, "early_stop": 2}


def test_tune_api_reads_the_train_table_as_the_cli_does(tmp_path, spec):
    """``tune`` searches alpha, l1 and the epochs; every other key of ``[train]`` applies to every
    point, and ``[train] early_stop`` is its patience (the same rule: epochs without a lower
    validation logloss)."""
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(_with_table(TUNE_TABLE))
    grid = dict(alpha=[0.1, 0.4], l1=[0.5, 2.0], epochs_max=3)
    api = tune(SAMPLE, load_spec(spec_file), **grid)
    explicit = {k: v for k, v in TUNE_TABLE.items() if k != "early_stop"}
    ref = tune(SAMPLE, spec, **grid, **explicit, patience=2)
    assert api.patience == 2
    assert [_bytes(p.model) for p in api.points if p.model] == [_bytes(p.model) for p in ref.points if p.model]
    assert _numbers(api.points) == _numbers(ref.points)
    # [train] early_stop is the patience where it changes when points stop
    alone = dict(grid, holdout=0.2, l2=1.0, beta=2.0)
    stops = tune(SAMPLE, parse_spec(_with_table({"early_stop": 2})), **alone)
    assert _numbers(stops.points) == _numbers(tune(SAMPLE, spec, **alone, patience=2).points)
    assert _numbers(stops.points) != _numbers(tune(SAMPLE, spec, **alone).points)
    plain = tune(SAMPLE, spec, **grid, holdout=0.2)
    assert _numbers(api.points) != _numbers(plain.points)
    won = tune(SAMPLE, load_spec(spec_file), **grid, patience=1, beta=1.0)
    assert won.patience == 1
    ref_won = tune(SAMPLE, spec, **grid, **{**explicit, "beta": 1.0}, patience=1)
    assert _numbers(won.points) == _numbers(ref_won.points)
    out = tmp_path / "tune.scx"
    assert main(["tune", str(spec_file), str(SAMPLE), "--alpha", "0.1,0.4", "--l1", "0.5,2", "--epochs-max", "3",
                 "--out", str(out), "--quiet", "--names", "0"]) == 0
    assert out.read_bytes() == model_bytes(api.chosen.model)


# ---------------------------------------------------------------------------- estimator
ESTIMATOR_TABLE = {"alpha": 0.2, "beta": 2.0, "l1": 0.5, "l2": 0.1, "epochs": 2, "label_smoothing": 0.05,
                   "admit_after": 2, "admit_filter_mb": 0.25, "max_state_mb": 1.0}


@pytest.fixture(scope="module")
def rows():
    import pyarrow.parquet as pq

    return pq.read_table(SAMPLE).slice(0, 6000)


def test_estimator_keeps_its_parameters_says_so_and_from_spec_takes_the_table(rows):
    """scikit-learn's rule: the constructor's parameters are what ``fit`` uses (``get_params`` and
    ``clone`` see them); a [train] table that says otherwise is named in a warning, and
    ``FTRLClassifier.from_spec`` builds the estimator from the table: ``train``'s weights."""
    tspec = parse_spec(_with_table(ESTIMATOR_TABLE))
    X, y, _ = sparsecross.featurize(rows, tspec)
    with pytest.warns(sparsecross.SparseCrossWarning, match=r"l1=1\.0.*l1 = 0\.5.*from_spec"):
        plain = sparsecross.FTRLClassifier(spec=tspec, state_dtype="float32").fit(X, y)
    assert plain.get_params()["l1"] == 1.0
    clf = sparsecross.FTRLClassifier.from_spec(tspec, state_dtype="float32")
    assert {k: clf.get_params()[k] for k in ESTIMATOR_TABLE} == ESTIMATOR_TABLE
    clf.fit(X, y)  # no warning: filterwarnings = error
    got = clf.to_model()
    want = sparsecross.train(rows, tspec)
    assert got.weights.tobytes() == want.weights.tobytes() and got.bias == want.bias
    assert got.weights.tobytes() != plain.to_model().weights.tobytes()
    # an explicit parameter wins over the table, and the estimator then warns about it
    other = sparsecross.FTRLClassifier.from_spec(tspec, l1=1.0, state_dtype="float32")
    assert other.l1 == 1.0 and other.epochs == 2
    with pytest.warns(sparsecross.SparseCrossWarning, match=r"\(l1=1\.0\).*\(l1 = 0\.5\)"):
        other.fit(X, y)


def test_search_and_tune_gives_the_cross_search_the_tables_values(monkeypatch):
    """``tune --search-crosses`` (``search_and_tune``): the cross search trains with what the first
    tune resolved from [train], not with its own defaults."""
    import sparsecross.crosssearch as crosssearch

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    def search(source, spec, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(crosssearch, "search_crosses", search)
    tspec = parse_spec(_with_table({"beta": 2.0, "l2": 1.0, "holdout": 0.2, "early_stop": 2, "batch_rows": 4000,
                                    "admit_after": 2}))
    with pytest.raises(Stop):
        crosssearch.search_and_tune(SAMPLE, tspec, k=1, alpha=[0.1], l1=[1.0], epochs_max=1, l2=0.5)
    assert {k: seen[k] for k in ("beta", "l2", "holdout", "patience", "batch_rows", "admit_after")} == {
        "beta": 2.0, "l2": 0.5, "holdout": 0.2, "patience": 2, "batch_rows": 4000, "admit_after": 2}
