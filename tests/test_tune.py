"""Tests of ``tune`` (sparsecross.tune) and the ``tune`` subcommand.

Every point of a small grid is checked against separate ``train`` runs (the reference): the
same validation logloss at every epoch, the same early stop, and the chosen model written byte
for byte as ``train`` writes it.  Data: 6,000 generated training rows, 2,000 validation rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import SparseCrossError
from sparsecross.export import model_bytes
from sparsecross.tune import TuneResult, tune

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"
#: alpha 1.5 overfits after its first epoch (it stops early); alpha 0.05 still improves at epoch 3
ALPHA = [0.05, 1.5]
L1 = [0.3, 3.0]
EPOCHS_MAX = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("tune_world")
    train = sx.generate(d / "train.parquet", rows=6_000, seed=5, row_group_size=1_500)
    valid = sx.generate(d / "valid.parquet", rows=2_000, seed=5, first_row=6_000)
    return SimpleNamespace(dir=d, train=train, valid=valid, spec=sx.load_spec(SYNTHETIC_SPEC))


@pytest.fixture(scope="module")
def grid(data: SimpleNamespace) -> TuneResult:
    return tune(data.train, data.spec, alpha=ALPHA, l1=L1, epochs_max=EPOCHS_MAX, valid=data.valid, names=100)


def _argmin(points: list, ok=lambda p: True):
    return min((p for p in points if ok(p)), key=lambda p: p.valid_logloss)


# ------------------------------------------------------------------ against train()
def test_every_point_matches_separate_train_runs(grid: TuneResult, data: SimpleNamespace) -> None:
    assert [(p.alpha, p.l1) for p in grid.points] == [(a, b) for a in ALPHA for b in L1]
    for p in grid.points:
        # one train() run as long as the point ran gives its per-epoch validation losses
        ran = sx.train(data.train, data.spec, alpha=p.alpha, l1=p.l1, epochs=p.epochs_trained, valid=data.valid)
        assert [h["valid_logloss"] for h in ran.stats["history"]] == p.logloss_by_epoch, (p.alpha, p.l1)
        best = min(range(len(p.logloss_by_epoch)), key=lambda i: p.logloss_by_epoch[i]) + 1
        assert p.epochs == best
        kept = ran if p.epochs == p.epochs_trained else sx.train(data.train, data.spec, alpha=p.alpha, l1=p.l1,
                                                                   epochs=p.epochs, valid=data.valid)
        assert kept.stats["valid_logloss"] == p.valid_logloss and kept.stats["valid_auc"] == p.valid_auc
        assert kept.nonzeros == p.nonzeros
        assert len(model_bytes(kept)) < p.model_bytes  # p's bytes include the recorded names
    chosen = grid.chosen
    assert chosen is not None and chosen is _argmin(grid.points)
    # the chosen point's place in the search is said when it is at an edge
    assert any("--epochs-max" in h for h in grid.hints) == (chosen.epochs == EPOCHS_MAX)
    assert any("grid's largest" in h for h in grid.hints) == (chosen.alpha == ALPHA[-1])
    assert any("grid's smallest" in h for h in grid.hints) == (chosen.alpha == ALPHA[0])


def test_chosen_model_is_trains_model_byte_for_byte(grid: TuneResult, data: SimpleNamespace) -> None:
    c = grid.chosen
    assert c is not None and c.model is not None
    m = sx.train(data.train, data.spec, alpha=c.alpha, l1=c.l1, epochs=c.epochs, valid=data.valid, names=100)
    assert "names" in m.stats
    assert model_bytes(m) == model_bytes(c.model)
    assert c.model_bytes == len(model_bytes(m))
    # only the chosen model is kept: the others keep their numbers
    assert [p for p in grid.points if p.model is not None] == [c]


def test_each_point_stops_early_on_its_validation_loss(grid: TuneResult) -> None:
    stopped = [p for p in grid.points if p.epochs_trained < EPOCHS_MAX]
    full = [p for p in grid.points if p.epochs_trained == EPOCHS_MAX]
    assert stopped and full, [(p.alpha, p.l1, p.logloss_by_epoch) for p in grid.points]
    for p in stopped:  # patience 1: stopped at the first epoch that did not improve
        assert p.logloss_by_epoch[-1] >= p.logloss_by_epoch[-2]
        assert all(b < a for a, b in zip(p.logloss_by_epoch[:-1], p.logloss_by_epoch[1:-1]))
        assert p.epochs == p.epochs_trained - 1
    assert grid.reads == EPOCHS_MAX  # one read per epoch for all points, however many are live


def test_patience_two_runs_one_more_epoch(data: SimpleNamespace) -> None:
    res = tune(data.train, data.spec, alpha=[1.5], l1=[0.3], epochs_max=4, patience=2, valid=data.valid)
    (p,) = res.points
    ran = sx.train(data.train, data.spec, alpha=1.5, l1=0.3, epochs=4, valid=data.valid, early_stop=2)
    assert p.epochs == ran.stats["best_epoch"]
    assert p.epochs_trained == len(ran.stats["history"])
    assert p.valid_logloss == ran.stats["valid_logloss"]


def test_holdout_and_shuffle_match_train(data: SimpleNamespace) -> None:
    kw = dict(holdout=0.25, shuffle=True, shuffle_seed=3, shuffle_buffer_rows=1000)
    res = tune(data.train, data.spec, alpha=[0.1, 0.4], l1=[1.0], epochs_max=2, **kw)
    c = res.chosen
    assert c is not None and c.model is not None
    m = sx.train(data.train, data.spec, alpha=c.alpha, l1=c.l1, epochs=c.epochs, **kw)
    assert model_bytes(m) == model_bytes(c.model)


# ------------------------------------------------------- admission and the state budget
#: each point gets its own filter and its own budget; 0.1 MiB makes every point evict
MEMORY = [dict(admit_after=2), dict(admit_probability=0.5), dict(max_state_mb=0.1),
          dict(admit_after=3, admit_filter_mb=0.03, max_state_mb=0.08)]


@pytest.mark.parametrize("memory", MEMORY, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
def test_admission_and_state_budget_match_train_byte_for_byte(data: SimpleNamespace, memory: dict) -> None:
    res = tune(data.train, data.spec, alpha=[0.05, 1.5], l1=[0.3], epochs_max=2, valid=data.valid, names=100,
               **memory)
    for p in res.points:  # every point is train() with the same admission and budget
        ran = sx.train(data.train, data.spec, alpha=p.alpha, l1=p.l1, epochs=p.epochs_trained, valid=data.valid,
                       **memory)
        assert [h["valid_logloss"] for h in ran.stats["history"]] == p.logloss_by_epoch, (p.alpha, memory)
    c = res.chosen
    assert c is not None and c.model is not None
    m = sx.train(data.train, data.spec, alpha=c.alpha, l1=c.l1, epochs=c.epochs, valid=data.valid, names=100,
                 **memory)
    assert model_bytes(m) == model_bytes(c.model)
    if "max_state_mb" in memory:
        assert c.model.params["max_state_mb"] == memory["max_state_mb"] and c.model.stats["evictions"] > 0
    if "admit_after" in memory or "admit_probability" in memory:
        assert 0 < c.model.stats["admitted_features"] and c.model.stats["rejected_sightings"] > 0
    plain = sx.train(data.train, data.spec, alpha=c.alpha, l1=c.l1, epochs=c.epochs, valid=data.valid)
    assert plain.weights.tolist() != m.weights.tolist()  # the options changed the model


def test_a_stopped_point_keeps_its_best_epoch_under_a_state_budget(data: SimpleNamespace) -> None:
    """train refuses early_stop with a budget (its best copy is a second state); tune keeps a
    point's best epoch as an exported model, so a point that stops early under a budget still
    gives train(epochs=best, max_state_mb=M), byte for byte."""
    res = tune(data.train, data.spec, alpha=[1.5], l1=[0.3], epochs_max=3, valid=data.valid, max_state_mb=0.15)
    (p,) = res.points
    assert p.epochs < p.epochs_trained  # it stopped early: its state trained (and evicted) past its best
    m = sx.train(data.train, data.spec, alpha=1.5, l1=0.3, epochs=p.epochs, valid=data.valid, max_state_mb=0.15)
    assert m.stats["evictions"] > 0
    assert model_bytes(m) == model_bytes(p.model)


def test_cli_memory_flags_and_train_table_match_train(data: SimpleNamespace, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """tune's admission and budget flags, and the spec's [train] keys, give the file
    ``sparsecross train`` writes with the same settings."""
    spec2 = tmp_path / "spec.toml"
    spec2.write_text(SYNTHETIC_SPEC.read_text(encoding="utf-8") + "\n[train]\nmax_state_mb = 0.1\n"
                     "admit_probability = 0.5\n", encoding="utf-8")
    for spec, flags, mb in ((SYNTHETIC_SPEC, ["--admit-after", "2", "--admit-filter-mb", "0.015625",
                                              "--max-state-mb", "0.05"], 0.05),
                            (spec2, [], 0.1)):
        tuned, trained = tmp_path / "tuned.scx", tmp_path / "trained.scx"
        rc = main(["tune", str(spec), str(data.train), "--valid", str(data.valid), "--out", str(tuned),
                   "--alpha", "0.05", "--l1", "0.3", "--epochs-max", "1", "--json", *flags])
        stdout, err = capsys.readouterr()
        assert rc == 0, err
        assert json.loads(stdout)["chosen"]["epochs"] == 1
        rc = main(["train", str(spec), str(data.train), "--valid", str(data.valid), "--out", str(trained),
                   "--alpha", "0.05", "--l1", "0.3", "--epochs", "1", "-q", *flags])
        assert rc == 0, capsys.readouterr().err
        assert tuned.read_bytes() == trained.read_bytes()
        m = sx.load_model(tuned)
        assert m.params["max_state_mb"] == mb and m.stats["evictions"] > 0
        assert m.params.get("admit_after", m.params.get("admit_probability")) in (2, 0.5)
        tuned.unlink()
        trained.unlink()


@pytest.mark.parametrize("flags, message", [
    (["--admit-after", "2", "--admit-probability", "0.5"], "give either --admit-after or --admit-probability"),
    (["--admit-after", "16"], "admit_after must be between 1 and 15 (sightings before a feature gets state; 1 = every feature), got 16"),
    (["--max-state-mb", "0"], "max_state_mb must be a finite number of MiB > 0"),
    (["--max-state-mb", "0.01"], "max_state_mb 0.01 is too small"),
])
def test_bad_memory_options_are_one_line(flags: list[str], message: str, data: SimpleNamespace, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid),
               "--out", str(tmp_path / "m.scx"), "--alpha", "0.1", "--l1", "1", "--epochs-max", "1", "-q", *flags])
    _, err = capsys.readouterr()
    assert rc == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err, err


# --------------------------------------------------------------------------- budgets
def test_budget_picks_the_best_point_within_it(grid: TuneResult, data: SimpleNamespace) -> None:
    sizes = sorted(p.nonzeros for p in grid.points)
    budget = sizes[1]  # the two smallest models fit
    res = tune(data.train, data.spec, alpha=ALPHA, l1=L1, epochs_max=EPOCHS_MAX, valid=data.valid,
               max_nonzeros=budget)
    assert res.budget == {"max_nonzeros": budget}
    expected = _argmin(res.points, lambda p: p.nonzeros <= budget)
    assert res.chosen is expected and res.chosen.model is not None
    assert res.chosen.model.nonzeros <= budget
    res_b = tune(data.train, data.spec, alpha=ALPHA, l1=L1, epochs_max=EPOCHS_MAX, valid=data.valid,
                 max_bytes=min(p.model_bytes for p in res.points) + 1)
    assert res_b.chosen is min(res_b.points, key=lambda p: p.model_bytes)
    assert len(model_bytes(res_b.chosen.model)) == res_b.chosen.model_bytes


def test_a_budget_no_point_meets_names_the_closest(data: SimpleNamespace, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    res = tune(data.train, data.spec, alpha=[0.1], l1=[1.0, 3.0], epochs_max=1, valid=data.valid, max_nonzeros=5)
    assert res.chosen is None
    smallest = min(res.points, key=lambda p: p.nonzeros)
    assert "no point meets the budget of 5 nonzeros" in res.note and f"{smallest.nonzeros:,}" in res.note
    assert "l1=3" in res.note
    out = tmp_path / "best.scx"
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(out),
               "--alpha", "0.1", "--l1", "1,3", "--epochs-max", "1", "--max-nonzeros", "5", "-q"])
    _, err = capsys.readouterr()
    assert rc == 1 and not out.exists()
    assert err.count("\n") == 1 and "no point meets the budget" in err and "Traceback" not in err


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flags, message", [
    (["--alpha", ""], "--alpha: the grid is empty"),
    (["--l1", "1,0.3"], "--l1: the grid must be strictly increasing"),
    (["--alpha", "0,0.1"], "--alpha: values must be finite numbers > 0"),
    (["--l1", "a,b"], "--l1: expected comma-separated numbers"),
    (["--epochs-max", "0"], "epochs_max must be between 1 and 1,000,000, got 0"),
    (["--spec-out", "x.toml"], "--spec-out needs --search-crosses"),
])
def test_bad_grids_are_one_line(flags: list[str], message: str, data: SimpleNamespace, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid),
               "--out", str(tmp_path / "m.scx"), "-q", *flags])
    _, err = capsys.readouterr()
    assert rc == 1 and message in err and err.count("\n") == 1, err


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """tune and the cross search fail the test if they are reached: a refusal comes first."""
    import sparsecross.crosssearch as crosssearch
    import sparsecross.tune as tune_module

    def fail(*args: object, **kw: object) -> None:
        raise AssertionError("trained before refusing a bad flag")

    monkeypatch.setattr(tune_module, "tune", fail)
    monkeypatch.setattr(crosssearch, "search_and_tune", fail)


_GAIN = "min_gain must be a relative gain in [0, 1), got "


@pytest.mark.parametrize("flags, message", [
    (["--search-crosses", "1", "--min-gain", "nan"], _GAIN + "nan"),
    (["--search-crosses", "1", "--min-gain", "inf"], _GAIN + "inf"),
    (["--search-crosses", "1", "--min-gain=-inf"], _GAIN + "-inf"),
    (["--search-crosses", "1", "--min-gain", "1e400"], _GAIN + "inf"),
    (["--search-crosses", "1", "--min-gain", "1"], _GAIN + "1.0"),
    (["--search-crosses", "1", "--min-gain=-0.01"], _GAIN + "-0.01"),
    (["--min-gain", "nan"], "--min-gain needs --search-crosses"),
    (["--min-gain", "0.01"], "--min-gain needs --search-crosses"),
], ids=["nan", "inf", "-inf", "1e400", "1", "negative", "nan-without-search", "without-search"])
def test_a_bad_min_gain_is_refused_before_training(flags: list[str], message: str, data: SimpleNamespace,
                                                   tmp_path: Path, no_training: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--min-gain nan and inf were taken: ignored without --search-crosses (the grid trained
    as if it were not given), refused only by the cross search with it.  Now refused before
    any training, in one line: a finite relative gain in [0, 1), with --search-crosses."""
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid),
               "--out", str(tmp_path / "m.scx"), "-q", *flags])
    _, err = capsys.readouterr()
    assert rc == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["-1", "9" * 4000, str(2**63)])
def test_a_bad_names_is_refused_before_training(value: str, data: SimpleNamespace, tmp_path: Path,
                                                no_training: None, capsys: pytest.CaptureFixture[str]) -> None:
    """--names -1 was taken as 0 (no names) and a 4,000-digit --names as it was."""
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid),
               "--out", str(tmp_path / "m.scx"), "-q", "--search-crosses", "1", f"--names={value}"])
    _, err = capsys.readouterr()
    assert rc == 1 and "--names must be between 0 and 9,223,372,036,854,775,807" in err, err
    assert err.count("\n") == 1 and len(err) < 200 and list(tmp_path.iterdir()) == []
    with pytest.raises(SparseCrossError, match=r"^names must be between 0 and"):
        tune(data.train, data.spec, alpha=[0.1], l1=[1.0], valid=data.valid, names=int(value))


def test_no_validation_data(data: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SparseCrossError, match="tune needs validation data"):
        tune(data.train, data.spec, alpha=[0.1], l1=[1.0])
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--out", str(tmp_path / "m.scx"), "-q"])
    _, err = capsys.readouterr()
    assert rc == 1 and "needs validation data" in err and err.count("\n") == 1


def test_empty_validation_data(data: SimpleNamespace, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    empty = tmp_path / "empty.parquet"
    pq.write_table(pq.read_table(data.valid).slice(0, 0), empty)
    with pytest.raises(SparseCrossError, match="no rows|no validation rows"):
        tune(data.train, data.spec, alpha=[0.1], l1=[1.0], epochs_max=1, valid=empty)


def test_output_may_not_overwrite_an_input(data: SimpleNamespace, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(data.valid)])
    _, err = capsys.readouterr()
    assert rc == 1 and err.count("\n") == 1


# ------------------------------------------------------------------------------ CLI
def test_cli_json_lists_every_point_and_writes_the_chosen(grid: TuneResult, data: SimpleNamespace, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "best.scx"
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(out),
               "--alpha", ",".join(map(str, ALPHA)), "--l1", ",".join(map(str, L1)),
               "--epochs-max", str(EPOCHS_MAX), "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    keys = {"alpha", "l1", "epochs", "nonzeros", "model_bytes", "valid_logloss", "valid_auc"}
    assert all(keys <= set(p) for p in report["points"])
    assert [(p["alpha"], p["l1"], p["epochs"], p["valid_logloss"]) for p in report["points"]] == \
        [(p.alpha, p.l1, p.epochs, p.valid_logloss) for p in grid.points]
    c = grid.chosen
    assert report["chosen"]["alpha"] == c.alpha and report["chosen"]["l1"] == c.l1
    # the CLI records names as train's CLI does (--names 100): the same file
    assert out.read_bytes() == model_bytes(c.model) and report["written_bytes"] == out.stat().st_size
    assert not [p.name for p in tmp_path.iterdir() if p.name != "best.scx"]
    # the table marks the chosen point once
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(out),
               "--alpha", "0.1", "--l1", "1,3", "--epochs-max", "1", "-q"])
    stdout, _ = capsys.readouterr()
    assert rc == 0 and stdout.count("<- chosen") == 1 and f"wrote {out}" in stdout
    assert all(math.isfinite(p["valid_logloss"]) for p in report["points"])


def test_cli_plot_draws_the_grid_it_trained(data: SimpleNamespace, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--plot writes a PNG of the alpha x l1 grid (checked through the drawing's own grid of
    the JSON points: the best cell is the chosen point), and is refused as an input or as --out."""
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from sparsecross.plots.tune import tune_grid

    out, png = tmp_path / "best.scx", tmp_path / "tune.png"
    rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(out),
               "--alpha", "0.05,0.2", "--l1", "0,1", "--epochs-max", "1", "--plot", str(png), "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(stdout)
    assert report["plot"] == str(png) and imread(str(png)).ndim == 3
    alphas, l1s, loss, _nz = tune_grid(report["points"])
    assert alphas == [0.05, 0.2] and l1s == [0.0, 1.0] and not any(math.isnan(v) for v in loss.ravel())
    best = divmod(int(loss.argmin()), loss.shape[1])
    assert (alphas[best[0]], l1s[best[1]]) == (report["chosen"]["alpha"], report["chosen"]["l1"])
    for bad in (str(out), str(data.valid)):
        rc = main(["tune", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--out", str(out),
                   "--alpha", "0.1", "--l1", "1", "--epochs-max", "1", "--plot", bad, "-q"])
        _, err = capsys.readouterr()
        assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err, err
