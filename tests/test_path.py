"""Tests of the regularization path (sparsecross.path) and the `path` subcommand.

Data: 30,000 generated training rows and 10,000 validation rows from the same world.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.errors import EmptyModelWarning, SparseCrossError
from sparsecross.export import model_bytes
from sparsecross.path import PathResult, check_grid, parse_grid, regularization_path

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_SPEC = REPO_ROOT / "data" / "specs" / "synthetic.toml"
GRID = [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0]
#: The 56-byte artifact header (docs/ARTIFACT.md): magic, major, minor, encoding, reserved,
#: n_weights, meta_len, keys_len, values_len, bias.
_HEADER = struct.Struct("<8sHHB3sQQQQd")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("path_world")
    train = sx.generate(d / "train.parquet", rows=30_000, seed=3, row_group_size=10_000)
    valid = sx.generate(d / "valid.parquet", rows=10_000, seed=3, first_row=30_000)
    return SimpleNamespace(dir=d, train=train, valid=valid, spec=sx.load_spec(SYNTHETIC_SPEC))


@pytest.fixture(scope="module")
def grid_path(data: SimpleNamespace) -> PathResult:
    return regularization_path(data.train, data.spec, l1=GRID, valid=data.valid)


def _line(points: list) -> list:
    return sorted(points, key=lambda p: p.l1)


def _assert_monotone(points: list) -> None:
    line = _line(points)
    nz = [p.nonzeros for p in line]
    bad = [(a.l1, a.nonzeros, b.l1, b.nonzeros) for a, b in zip(line, line[1:]) if b.nonzeros > a.nonzeros]
    assert not bad, f"nonzeros increase with l1 at (l1, nonzeros, l1', nonzeros'): {bad}; all: {nz}"


def _same_model(a: sx.SparseModel, b: sx.SparseModel) -> None:
    np.testing.assert_array_equal(a.keys, b.keys)
    assert a.weights.dtype == b.weights.dtype == np.float32
    np.testing.assert_array_equal(a.weights.view(np.uint32), b.weights.view(np.uint32))  # bitwise
    assert a.bias == b.bias
    assert a.spec.sha256 == b.spec.sha256


# --------------------------------------------------------------------------- the grid
def test_grid_points(grid_path: PathResult, data: SimpleNamespace) -> None:
    res = grid_path
    assert [p.l1 for p in res.points] == GRID
    assert all(p.l2 == 0.0 for p in res.points)
    assert res.passes == 1 and res.rows == 30_000
    assert res.chosen is None and res.budget is None and res.note == ""
    touched = {p.touched for p in res.points}
    assert len(touched) == 1  # which features are seen does not depend on l1
    (touched,) = touched
    for p in res.points:
        assert 0 < p.nonzeros <= touched
        assert p.model is not None and p.model.nonzeros == p.nonzeros
        assert p.model_bytes == len(model_bytes(p.model, encoding="float32"))
        assert 0 < p.valid_logloss < 1 and 0.5 < p.valid_auc < 1
    assert res.points[0].nonzeros >= 0.99 * touched  # l1 = 0 keeps (almost) every touched weight
    assert res.points[-1].nonzeros < 0.01 * touched  # a large l1 zeroes almost all
    d = res.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert [q["nonzeros"] for q in d["points"]] == [p.nonzeros for p in res.points]


def test_nonzeros_non_increasing_in_l1(grid_path: PathResult) -> None:
    _assert_monotone(grid_path.points)
    line = _line(grid_path.points)
    assert line[0].nonzeros > 10 * line[-1].nonzeros


def test_each_point_equals_a_separate_train(grid_path: PathResult, data: SimpleNamespace) -> None:
    """The path trains every point exactly: same model, bit for bit, as `train` with that l1."""
    for p in grid_path.points:
        m = sx.train(data.train, data.spec, l1=p.l1, valid=data.valid)
        assert m.nonzeros == p.nonzeros, p.l1
        _same_model(m, p.model)
        assert m.stats["touched_features"] == p.touched
        assert m.stats["valid_logloss"] == p.valid_logloss
        assert m.stats["valid_auc"] == p.valid_auc
        # One epoch: the path writes the same history record as train, so the artifacts (and
        # hence the --max-bytes sizes) are byte-identical.
        assert model_bytes(m) == model_bytes(p.model)
        assert p.model_bytes == len(model_bytes(m))


def test_other_settings_equal_separate_trains(data: SimpleNamespace) -> None:
    """l1 x l2 grid, two epochs, a holdout instead of validation data, smaller batches."""
    res = regularization_path(data.valid, data.spec, l1=[0.3, 1.0], l2=[0.0, 2.0], epochs=2, holdout=0.25,
                              alpha=0.2, beta=0.5, batch_rows=3000)
    assert [(p.l1, p.l2) for p in res.points] == [(0.3, 0.0), (1.0, 0.0), (0.3, 2.0), (1.0, 2.0)]
    for p in res.points:
        m = sx.train(data.valid, data.spec, l1=p.l1, l2=p.l2, epochs=2, holdout=0.25, alpha=0.2, beta=0.5)
        _same_model(m, p.model)
        assert m.stats["valid_logloss"] == p.valid_logloss
        assert m.stats["valid_rows"] == p.model.stats["valid_rows"]
        # the last epoch's progressive loss and rows, as train() reports them
        assert m.stats["train_rows"] == p.model.stats["train_rows"]
        assert m.stats["progressive_logloss"] == p.model.stats["progressive_logloss"]
        assert 0.15 * 10_000 < m.stats["valid_rows"] < 0.35 * 10_000
        assert m.params == p.model.params


@pytest.mark.parametrize("memory", [dict(max_state_mb=0.1),
                                    dict(admit_after=2, admit_filter_mb=1 / 64, max_state_mb=0.05)],
                         ids=["budget", "admission+budget"])
def test_state_budget_per_point_equals_separate_trains(data: SimpleNamespace, memory: dict) -> None:
    """Every point has its own state budget (and its own filter): each equals `train` with the
    same budget, byte for byte, evictions included."""
    res = regularization_path(data.valid, data.spec, l1=[0.0, 1.0], holdout=0.25, batch_rows=3000, **memory)
    for p in res.points:  # one epoch: the path writes train's history record, so the files are the same
        m = sx.train(data.valid, data.spec, l1=p.l1, holdout=0.25, **memory)
        assert m.stats["evictions"] > 0 and m.params["max_state_mb"] == memory["max_state_mb"]
        assert m.stats["evicted_features"] == p.model.stats["evicted_features"]
        assert p.touched == m.stats["touched_features"]
        assert m.params == p.model.params
        assert model_bytes(m) == model_bytes(p.model)


def test_cli_path_takes_the_state_budget(data: SimpleNamespace, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out, trained = tmp_path / "best.scx", tmp_path / "trained.scx"
    rc = main(["path", str(SYNTHETIC_SPEC), str(data.valid), "--holdout", "0.25", "--l1", "0.3,1",
               "--max-state-mb", "0.1", "--max-nonzeros", "100000", "--out", str(out), "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    l1 = json.loads(stdout)["chosen"]["l1"]
    rc = main(["train", str(SYNTHETIC_SPEC), str(data.valid), "--holdout", "0.25", "--l1", str(l1),
               "--max-state-mb", "0.1", "--names", "0", "--out", str(trained), "-q"])
    assert rc == 0, capsys.readouterr().err
    assert out.read_bytes() == trained.read_bytes()
    assert sx.load_model(out).stats["evictions"] > 0
    rc = main(["path", str(SYNTHETIC_SPEC), str(data.valid), "--holdout", "0.25", "--l1", "1",
               "--max-state-mb", "0.01", "-q"])
    _, err = capsys.readouterr()
    assert rc == 1 and "max_state_mb 0.01 is too small" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- budgets
def _bracket(grid_points: list, size, budget: int) -> tuple[float, float]:
    line = _line(grid_points)
    lo = max(p.l1 for p in line if size(p) > budget)
    hi = min(p.l1 for p in line if size(p) <= budget and p.l1 > lo)
    return lo, hi


@pytest.mark.parametrize("budget", [500, 2000])
def test_max_nonzeros(budget: int, grid_path: PathResult, data: SimpleNamespace) -> None:
    res = regularization_path(data.train, data.spec, l1=GRID, valid=data.valid, max_nonzeros=budget)
    assert res.budget == {"max_nonzeros": budget}
    chosen = res.chosen
    assert chosen is not None and chosen.model is not None and res.note == ""
    assert chosen.nonzeros <= budget and chosen.model.nonzeros == chosen.nonzeros
    within = [p for p in res.points if p.nonzeros <= budget]
    assert chosen.valid_logloss == min(p.valid_logloss for p in within)
    # the grid points are still there, unchanged
    grid_l1 = {p.l1: p for p in grid_path.points}
    for l1, g in grid_l1.items():
        (same,) = [p for p in res.points if p.l1 == l1]
        assert same.nonzeros == g.nonzeros and same.valid_logloss == g.valid_logloss
    # refinement: extra passes, new l1 values strictly inside the grid bracket of the budget
    lo, hi = _bracket(grid_path.points, lambda p: p.nonzeros, budget)
    new = [p for p in res.points if p.l1 not in grid_l1]
    assert new and res.passes >= 2
    assert all(lo < p.l1 < hi for p in new), (lo, hi, [p.l1 for p in new])
    assert [p.l1 for p in res.points] == sorted(p.l1 for p in res.points)
    # closer to the budget than the best grid point within it, and no worse
    grid_best = min((p for p in grid_path.points if p.nonzeros <= budget), key=lambda p: p.valid_logloss)
    assert budget - chosen.nonzeros < budget - grid_best.nonzeros
    assert chosen.valid_logloss <= grid_best.valid_logloss
    # every refined point is exactly what train gives too, and the whole path stays monotone
    _assert_monotone(res.points)
    m = sx.train(data.train, data.spec, l1=chosen.l1, valid=data.valid)
    _same_model(m, chosen.model)


def test_max_bytes(grid_path: PathResult, data: SimpleNamespace) -> None:
    budget = 5000
    res = regularization_path(data.train, data.spec, l1=GRID, valid=data.valid, max_bytes=budget)
    assert res.budget == {"max_bytes": budget}
    chosen = res.chosen
    assert chosen is not None and chosen.model is not None
    assert chosen.model_bytes <= budget
    assert chosen.model_bytes == len(model_bytes(chosen.model))
    within = [p for p in res.points if p.model_bytes <= budget]
    assert chosen.valid_logloss == min(p.valid_logloss for p in within)
    grid_l1 = {p.l1 for p in grid_path.points}
    lo, hi = _bracket(grid_path.points, lambda p: p.model_bytes, budget)
    new = [p for p in res.points if p.l1 not in grid_l1]
    assert new and all(lo < p.l1 < hi for p in new)
    grid_best = min((p for p in grid_path.points if p.model_bytes <= budget), key=lambda p: p.valid_logloss)
    assert budget - chosen.model_bytes < budget - grid_best.model_bytes
    _assert_monotone(res.points)


def test_max_bytes_with_16_bit_encoding(data: SimpleNamespace) -> None:
    res = regularization_path(data.train, data.spec, l1=[1.0, 3.0], valid=data.valid, max_bytes=10**9,
                              encoding="q2.13")
    for p in res.points:
        assert p.model_bytes == len(model_bytes(p.model, encoding="q2.13"))
    assert res.chosen is not None and res.passes == 1  # everything fits: no refinement


def test_budget_impossible(data: SimpleNamespace) -> None:
    res = regularization_path(data.train, data.spec, l1=[0.0, 0.1], valid=data.valid, max_nonzeros=10)
    assert res.chosen is None
    smallest = min(p.nonzeros for p in res.points)
    assert "no point meets the budget of 10 nonzeros" in res.note
    assert f"{smallest:,}" in res.note and "l1=0.1" in res.note
    assert res.to_dict()["chosen"] is None
    res = regularization_path(data.train, data.spec, l1=[1.0], valid=data.valid, max_bytes=100)
    assert res.chosen is None and "100 bytes" in res.note and f"{res.points[0].model_bytes:,}" in res.note


def test_budget_met_by_every_grid_point(grid_path: PathResult, data: SimpleNamespace) -> None:
    big = max(p.nonzeros for p in grid_path.points)
    res = regularization_path(data.train, data.spec, l1=GRID, valid=data.valid, max_nonzeros=big)
    assert res.passes == 1 and len(res.points) == len(GRID)
    assert res.chosen.valid_logloss == min(p.valid_logloss for p in grid_path.points)


def test_path_argument_errors(data: SimpleNamespace) -> None:
    with pytest.raises(SparseCrossError, match="validation"):
        regularization_path(data.train, data.spec, l1=[1.0])
    with pytest.raises(SparseCrossError, match="not both"):
        regularization_path(data.train, data.spec, l1=[1.0], valid=data.valid, holdout=0.1)
    with pytest.raises(SparseCrossError, match="one budget"):
        regularization_path(data.train, data.spec, l1=[1.0], valid=data.valid, max_nonzeros=1, max_bytes=1)
    with pytest.raises(SparseCrossError, match="max_nonzeros must be between 0 and"):
        regularization_path(data.train, data.spec, l1=[1.0], valid=data.valid, max_nonzeros=-1)
    with pytest.raises(SparseCrossError, match="increasing"):
        regularization_path(data.train, data.spec, l1=[1.0, 0.1], valid=data.valid)
    with pytest.raises(SparseCrossError, match="empty"):
        regularization_path(data.train, data.spec, l1=[], valid=data.valid)
    with pytest.raises(SparseCrossError, match="l2"):
        regularization_path(data.train, data.spec, l1=[1.0], l2=[-1.0], valid=data.valid)
    with pytest.raises(SparseCrossError, match="alpha"):
        regularization_path(data.train, data.spec, l1=[1.0], valid=data.valid, alpha=float("nan"))


def test_parse_grid() -> None:
    assert parse_grid("0,0.1, 1 ,10", "l1") == [0.0, 0.1, 1.0, 10.0]
    assert parse_grid("3", "l2") == [3.0]
    for text, msg in [("", "empty"), ("1,0.1", "increasing"), ("1,1", "increasing"), ("x", "numbers"),
                      ("0,nan", "finite"), ("-1", ">= 0")]:
        with pytest.raises(SparseCrossError, match=msg):
            parse_grid(text, "l1")
    check_grid([0.0, 1e-9, 1.0], "l1")


def test_empty_models_on_the_path_do_not_warn(data: SimpleNamespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyModelWarning)
        res = regularization_path(data.valid, data.spec, l1=[1e6], valid=data.valid)
    assert res.points[0].nonzeros == 0


# ------------------------------------------------------------------------------- CLI
def test_cli_path_writes_the_chosen_model(data: SimpleNamespace, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    budget = 1000
    out = tmp_path / "best.scx"
    rc = main(["path", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--l1", "0,0.3,1,3,10",
               "--max-nonzeros", str(budget), "--out", str(out), "--json"])
    stdout, stderr = capsys.readouterr()
    assert rc == 0, stderr
    report = json.loads(stdout)
    assert report["budget"] == {"max_nonzeros": budget}
    assert report["out"] == str(out)
    assert report["written_bytes"] == out.stat().st_size == report["chosen"]["model_bytes"]
    model = sx.load_model(out)
    assert 0 < model.nonzeros <= budget
    assert model.nonzeros == report["chosen"]["nonzeros"]
    assert model.params["l1"] == report["chosen"]["l1"]
    assert len(report["points"]) > 5 and report["passes"] >= 2
    assert not [p.name for p in tmp_path.iterdir() if p.name != "best.scx"]

    # text output marks the chosen point
    rc = main(["path", str(SYNTHETIC_SPEC), str(data.train), "--valid", str(data.valid), "--l1", "0.3,1,3",
               "--max-bytes", "20000", "--out", str(out)])
    stdout, _ = capsys.readouterr()
    assert rc == 0
    assert stdout.count("<- chosen") == 1 and f"wrote {out}" in stdout
    assert out.stat().st_size <= 20000
