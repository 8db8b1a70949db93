"""Tests of the greedy cross search (sparsecross.crosssearch) and ``tune --search-crosses``.

Data: a tiny generator below (numpy + pyarrow): categoricals a, b, c with four values each, and
a label that depends on a x b only (a parity: no main effect at all) or on a and b additively
(no interaction).  3,000 training rows, 2,000 validation rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
from sparsecross.cli import main
from sparsecross.crosssearch import (AddedCross, candidate_crosses, search_and_tune, search_crosses,
                                     spec_text_with_crosses)
from sparsecross.errors import SparseCrossError, SpecError
from sparsecross.export import model_bytes

SPEC_TEXT = """# three categoricals; the search decides which to cross
[label]
column = "y"

[hashing]
bits = 12

[[features]]
name = "a"
kind = "categorical"
column = "a"

[[features]]
name = "b"
kind = "categorical"
column = "b"

[[features]]
name = "c"
kind = "categorical"
column = "c"

[[features]]
name = "x"
kind = "numeric"
column = "x"
"""


def make_table(path: Path, rows: int, seed: int, planted: bool) -> Path:
    rng = np.random.default_rng(seed)
    a, b, c = (rng.integers(0, 4, rows) for _ in range(3))
    if planted:  # a x b only: a parity of a + b, no main effect of a or b
        p = np.where((a + b) % 2 == 0, 0.8, 0.2)
    else:  # a and b, additively
        p = 1 / (1 + np.exp(-0.8 * ((a - 1.5) + (b - 1.5))))
    y = (rng.random(rows) < p).astype(np.int64)
    pq.write_table(pa.table({"a": a, "b": b, "c": c, "x": rng.normal(size=rows), "y": y}), path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("cross_world")
    spec_path = d / "spec.toml"
    spec_path.write_text(SPEC_TEXT, encoding="utf-8")
    return SimpleNamespace(
        dir=d, spec_path=spec_path, spec=sx.load_spec(spec_path),
        train=make_table(d / "train.parquet", 3000, 1, True), valid=make_table(d / "valid.parquet", 2000, 2, True),
        flat_train=make_table(d / "flat_train.parquet", 3000, 1, False),
        flat_valid=make_table(d / "flat_valid.parquet", 2000, 2, False))


# ------------------------------------------------------------------------ candidates
def test_candidates_are_pairs_and_extensions_of_chosen_crosses(world: SimpleNamespace) -> None:
    assert candidate_crosses(world.spec) == [("a", "b"), ("a", "c"), ("b", "c")]  # numeric x is never crossed
    spec = sx.parse_spec(SPEC_TEXT + '\n[[crosses]]\nfeatures = ["b", "a"]\n')
    assert candidate_crosses(spec) == [("a", "c"), ("b", "c")]  # b*a is a*b
    assert candidate_crosses(spec, [("b", "a")]) == [("a", "c"), ("b", "c"), ("b", "a", "c")]


# ------------------------------------------------------------------------ the search
def test_finds_the_planted_interaction(world: SimpleNamespace) -> None:
    # alpha tuned for these data (as search_and_tune does): with too small a learning rate a
    # cross that repeats a x b (a x b x c) "helps" by learning the interaction faster
    res = search_crosses(world.train, world.spec, k=3, valid=world.valid, l1=0.0, alpha=0.3, epochs_max=3)
    assert [a.features for a in res.added] == [("a", "b")]
    first = res.added[0]
    assert first.gain > 0.1 and first.logloss_after < first.logloss_before
    assert "no candidate gains" in res.stopped
    round1 = res.rounds[0]
    assert {tuple(c["features"]) for c in round1["candidates"]} == {("a", "b"), ("a", "c"), ("b", "c")}
    others = [c["gain"] for c in round1["candidates"] if c["features"] != ["a", "b"]]
    assert max(others) < 0.01
    assert [c.features for c in res.spec.crosses] == [("a", "b")]


def test_a_candidates_score_is_that_of_the_spec_with_the_cross(world: SimpleNamespace) -> None:
    """The per-candidate column block trains the same model as the spec with the cross added
    (an exact cross: only the column numbers differ, so only float summation order may)."""
    res = search_crosses(world.train, world.spec, k=1, valid=world.valid, l1=0.5, alpha=0.2, epochs_max=1)
    base = sx.train(world.train, world.spec, l1=0.5, alpha=0.2, valid=world.valid)
    assert res.rounds[0]["baseline_logloss"] == base.stats["valid_logloss"]
    for cand in res.rounds[0]["candidates"]:
        spec = sx.parse_spec(SPEC_TEXT + "\n[[crosses]]\nfeatures = " + json.dumps(cand["features"]) + "\n")
        m = sx.train(world.train, spec, l1=0.5, alpha=0.2, valid=world.valid)
        assert cand["valid_logloss"] == pytest.approx(m.stats["valid_logloss"], rel=1e-9, abs=0)


def test_admission_and_budget_reach_every_model_of_the_search(world: SimpleNamespace) -> None:
    """Every model of a round (baseline and candidates) has its own admission filter and budget:
    the baseline is train's model with them, a candidate that of the spec with its cross."""
    memory = dict(admit_after=3, max_state_mb=0.1)
    res = search_crosses(world.train, world.spec, k=1, valid=world.valid, l1=0.5, alpha=0.2, epochs_max=1,
                         **memory)
    assert res.params["admit_after"] == 3 and res.params["max_state_mb"] == 0.1
    base = sx.train(world.train, world.spec, l1=0.5, alpha=0.2, valid=world.valid, **memory)
    plain = sx.train(world.train, world.spec, l1=0.5, alpha=0.2, valid=world.valid)
    assert base.stats["rejected_sightings"] > 0 and base.stats["valid_logloss"] != plain.stats["valid_logloss"]
    assert res.rounds[0]["baseline_logloss"] == base.stats["valid_logloss"]
    for cand in res.rounds[0]["candidates"]:
        spec = sx.parse_spec(SPEC_TEXT + "\n[[crosses]]\nfeatures = " + json.dumps(cand["features"]) + "\n")
        m = sx.train(world.train, spec, l1=0.5, alpha=0.2, valid=world.valid, **memory)
        assert cand["valid_logloss"] == pytest.approx(m.stats["valid_logloss"], rel=1e-9, abs=0)
    with pytest.raises(SparseCrossError, match="max_state_mb 0.01 is too small"):
        search_crosses(world.train, world.spec, k=1, valid=world.valid, epochs_max=1, max_state_mb=0.01)
    # tune --search-crosses: the search and both tunes take them
    search, first, final = search_and_tune(world.train, world.spec, k=1, alpha=[0.2], l1=[0.5], epochs_max=1,
                                           valid=world.valid, **memory)
    assert search.params["admit_after"] == 3 and search.params["max_state_mb"] == 0.1
    for res in (first, final):
        assert res.chosen.model.params["admit_after"] == 3 and res.chosen.model.params["max_state_mb"] == 0.1
    assert model_bytes(first.chosen.model) == model_bytes(sx.train(world.train, world.spec, l1=0.5, alpha=0.2,
                                                                   valid=world.valid, **memory))


def test_adds_nothing_without_an_interaction(world: SimpleNamespace) -> None:
    res = search_crosses(world.flat_train, world.spec, k=2, valid=world.flat_valid, l1=0.0, alpha=0.3, epochs_max=3)
    assert res.added == []
    assert len(res.rounds) == 1 and "no candidate gains" in res.stopped
    assert res.spec.crosses == ()


def test_bad_arguments(world: SimpleNamespace) -> None:
    with pytest.raises(SparseCrossError, match="k must be between 1 and"):
        search_crosses(world.train, world.spec, k=0, valid=world.valid)
    with pytest.raises(SparseCrossError, match="min_gain"):
        search_crosses(world.train, world.spec, k=1, valid=world.valid, min_gain=-0.1)
    with pytest.raises(SparseCrossError, match="needs validation data"):
        search_crosses(world.train, world.spec, k=1)


@pytest.mark.parametrize("alpha, bad", [([0.1, -1], -1), (float("nan"), float("nan")), ([0.1, 2e12], 2e12),
                                        ([0.2, True], True), ("0.1", "0.1"), (None, None)])
def test_a_bad_alpha_is_refused_as_train_refuses_it(world: SimpleNamespace, alpha, bad) -> None:
    """The search said "alpha must be finite numbers > 0" of its own, without the 1e12 bound
    (TrainParams refused 2e12 later, in other words); a string was a list of its characters
    ("got '0'"), None a TypeError."""
    from sparsecross.errors import ParameterError

    with pytest.raises(ParameterError) as single:
        sx.TrainParams(alpha=bad)
    with pytest.raises(ParameterError) as info:
        search_crosses(world.train, world.spec, k=1, valid=world.valid, alpha=alpha)
    assert str(info.value) == str(single.value), info.value
    assert str(info.value).startswith("alpha must be a finite number > 0 and at most 1e+12, got "), info.value


# ------------------------------------------------------------------------ spec text
def test_spec_text_keeps_comments_and_reads_back() -> None:
    added = [AddedCross(("a", "b"), "a*b", 0.2, 0.69, 0.55, 1), AddedCross(("a", "b", "c"), "a*b*c", 0.01, 0.55,
                                                                          0.54, 2)]
    text = spec_text_with_crosses(SPEC_TEXT, added)
    assert text.startswith(SPEC_TEXT.rstrip("\n")) and "# round 1: gain 20.000%" in text
    assert [c.features for c in sx.parse_spec(text).crosses] == [("a", "b"), ("a", "b", "c")]
    inline = SPEC_TEXT.replace("[label]", 'crosses = [{features = ["a", "c"]}]\n[label]')
    with pytest.raises(SpecError, match="add them by hand: a x b"):
        spec_text_with_crosses(inline, added[:1])


# ------------------------------------------------------------------------------ CLI
def test_cli_search_writes_a_spec_that_trains_the_written_model(world: SimpleNamespace, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out, spec_out = tmp_path / "best.scx", tmp_path / "tuned.toml"
    rc = main(["tune", str(world.spec_path), str(world.train), "--valid", str(world.valid), "--out", str(out),
               "--alpha", "0.1,0.3", "--l1", "0,1", "--epochs-max", "2", "--search-crosses", "2",
               "--spec-out", str(spec_out), "--json"])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    report = json.loads(stdout)
    assert [a["features"] for a in report["cross_search"]["added"]] == [["a", "b"]]
    tuned = sx.load_spec(spec_out)
    assert [c.features for c in tuned.crosses] == [("a", "b")]
    assert spec_out.read_text(encoding="utf-8").startswith("# three categoricals")
    c = report["chosen"]
    m = sx.train(world.train, tuned, alpha=c["alpha"], l1=c["l1"], epochs=c["epochs"], valid=world.valid, names=100)
    assert model_bytes(m) == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.scx", "tuned.toml"]


def test_cli_spec_out_may_not_overwrite_the_spec(world: SimpleNamespace, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = world.spec_path.read_bytes()
    rc = main(["tune", str(world.spec_path), str(world.train), "--valid", str(world.valid),
               "--out", str(tmp_path / "m.scx"), "--search-crosses", "1", "--spec-out", str(world.spec_path), "-q"])
    _, err = capsys.readouterr()
    assert rc == 1 and err.count("\n") == 1 and "--spec-out" in err
    assert world.spec_path.read_bytes() == before


# ------------------------------------------------------------------------ geo pyramids
PYRAMID_SPEC = """[label]
column = "y"

[hashing]
bits = 18  # few collisions: the mini spec hashes its cross into a block of its own

[[features]]
name = "g"
kind = "geo"
lat = "lat"
lon = "lon"
resolution_arcmin = [60.0, 15.0]
bands = true

[[features]]
name = "a"
kind = "categorical"
column = "a"
"""


def _geo_table(path: Path, rows: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    lat, lon, a = rng.uniform(40, 42, rows), rng.uniform(-75, -73, rows), rng.integers(0, 4, rows)
    p = np.where((lat > 41) == (a % 2 == 0), 0.8, 0.2)  # a's effect flips with the latitude band
    y = (rng.random(rows) < p).astype(np.int64)
    pq.write_table(pa.table({"lat": lat, "lon": lon, "a": a, "y": y}), path)
    return path


def test_search_crosses_a_geo_pyramid_with_bands(tmp_path: Path) -> None:
    """Candidates whose components are a pyramid's levels or bands (what suggest-spec writes):
    the search used to stop on an AssertionError (a band alone in the candidate's mini spec), and
    every candidate scores as the spec with that cross written in."""
    train, valid = _geo_table(tmp_path / "t.parquet", 3000, 1), _geo_table(tmp_path / "v.parquet", 2000, 2)
    spec = sx.parse_spec(PYRAMID_SPEC)
    res = search_crosses(train, spec, k=1, valid=valid, l1=0.5, alpha=0.2, epochs_max=1)
    cands = res.rounds[0]["candidates"]
    assert {"g.lat@60", "a"} in [set(c["features"]) for c in cands]
    pyramid = {f.name for f in spec.features if f.pyramid is not None}
    assert len(pyramid) > 2 and all(len(pyramid & set(c["features"])) <= 1 for c in cands)  # no level x level
    for cand in cands:
        if "a" not in cand["features"]:
            continue
        with_cross = sx.parse_spec(PYRAMID_SPEC + "\n[[crosses]]\nfeatures = " + json.dumps(cand["features"]) + "\n")
        m = sx.train(train, with_cross, l1=0.5, alpha=0.2, valid=valid)
        assert cand["valid_logloss"] == pytest.approx(m.stats["valid_logloss"], rel=1e-9, abs=0)


# ------------------------------------------------------------- ranking the candidates
def _mi_reference(x: list, y: list) -> float:
    """Plug-in mutual information (bits) by counting, less the Miller-Madow term (k - 1) / (2 n ln 2)."""
    import math
    from collections import Counter

    n = len(y)
    cx, cy, cxy = Counter(x), Counter(y), Counter(zip(x, y))
    mi = sum(c / n * math.log2(c * n / (cx[a] * cy[b])) for (a, b), c in cxy.items())
    return mi - (len(cx) - 1) / (2 * n * math.log(2))


def test_interaction_score_matches_counting() -> None:
    from sparsecross.crosssearch_rank import interaction_score

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 3, 500), rng.integers(0, 5, 500)
    y = (rng.random(500) < np.where((a + b) % 2 == 0, 0.7, 0.3)).astype(np.int64)
    ref = (_mi_reference(list(zip(a.tolist(), b.tolist())), y.tolist()) - _mi_reference(a.tolist(), y.tolist())
           - _mi_reference(b.tolist(), y.tolist()))
    assert interaction_score(a, b, y) == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert ref > 0.05  # a parity: the joint says much, the parts little


def _many_features(path: Path, rows: int, seed: int) -> Path:
    """16 categoricals f00..f15 (4 values each); the label is a parity of f14 + f15 only."""
    rng = np.random.default_rng(seed)
    cols = {f"f{i:02d}": rng.integers(0, 4, rows) for i in range(16)}
    p = np.where((cols["f14"] + cols["f15"]) % 2 == 0, 0.8, 0.2)
    cols["y"] = (rng.random(rows) < p).astype(np.int64)
    pq.write_table(pa.table(cols), path)
    return path


def test_a_planted_interaction_beyond_the_first_candidates_is_tried_and_found(tmp_path: Path) -> None:
    """120 pairs in spec order, f14 x f15 the last: with 64 candidates a round, the first 64 in
    spec order would never try it; ranked by interaction information it is tried and added."""
    text = "[label]\ncolumn = \"y\"\n[hashing]\nbits = 14\n" + "".join(
        f"[[features]]\nname = \"f{i:02d}\"\nkind = \"categorical\"\ncolumn = \"f{i:02d}\"\n" for i in range(16))
    spec = sx.parse_spec(text)
    cands = candidate_crosses(spec)
    assert len(cands) == 120 and cands.index(("f14", "f15")) == 119
    train, valid = _many_features(tmp_path / "t.parquet", 3000, 1), _many_features(tmp_path / "v.parquet", 2000, 2)
    res = search_crosses(train, spec, k=1, valid=valid, l1=0.0, alpha=0.3, epochs_max=2, max_candidates=64)
    assert [a.features for a in res.added] == [("f14", "f15")]
    tried = [tuple(c["features"]) for c in res.rounds[0]["candidates"]]
    assert len(tried) == 64 and tried == sorted(tried, key=cands.index)  # the chosen ones, in spec order
    assert "120 candidates per round; the 64 with the highest interaction information" in res.note


def test_ranking_puts_the_interaction_first_and_extends_chosen_crosses(tmp_path: Path) -> None:
    from sparsecross.crosssearch_rank import feature_codes, rank_candidates

    path = _many_features(tmp_path / "t.parquet", 3000, 1)
    text = "[label]\ncolumn = \"y\"\n[hashing]\nbits = 14\n" + "".join(
        f"[[features]]\nname = \"f{i:02d}\"\nkind = \"categorical\"\ncolumn = \"f{i:02d}\"\n" for i in (0, 14, 15))
    spec = sx.parse_spec(text)
    codes, y = feature_codes(path, spec, ["f00", "f14", "f15"], rows=5000, seed=0)  # all 3,000 rows, in order
    t = pq.read_table(path)
    assert y.tolist() == t.column("y").to_pylist()
    for name in codes:  # a row's code is its value's: codes and values make the same partition
        pairs = set(zip(codes[name].tolist(), t.column(name).to_pylist()))
        assert len(pairs) == len(set(codes[name].tolist())) == len(set(t.column(name).to_pylist())) == 4
    ranked = rank_candidates([("f00", "f14"), ("f00", "f15"), ("f14", "f15")], [], codes, y)
    assert ranked[0][1] == 2 and ranked[0][0] > 0.2 and max(s for s, _ in ranked[1:]) < 0.01
    # f00 extending the chosen f14 x f15 adds nothing: scored as (f14 x f15) x f00
    ext = rank_candidates([("f14", "f15", "f00")], [("f14", "f15")], codes, y)
    assert ext[0][0] < 0.01


def test_the_ranking_sample_leaves_the_holdout_rows_out(tmp_path: Path) -> None:
    """With a holdout fraction the ranking must not look at the validation rows: the sampled
    labels are those of the rows the holdout rule (the kernel's, by global row position) trains
    on, in order, across several files and row groups."""
    from sparsecross._kernels.hash import holdout_mask
    from sparsecross.crosssearch_rank import feature_codes
    from sparsecross.hashing import holdout_salt

    folder = tmp_path / "d"
    folder.mkdir()
    parts = []
    for k in range(3):  # 3 files x 2 row groups: global positions run across them
        t = pq.read_table(_many_features(tmp_path / f"src{k}.parquet", 700, 10 + k))
        pq.write_table(t, folder / f"part-{k}.parquet", row_group_size=350)
        parts.append(t)
    whole = pa.concat_tables(parts)
    text = "[label]\ncolumn = \"y\"\n[hashing]\nbits = 14\n" + "".join(
        f"[[features]]\nname = \"f{i:02d}\"\nkind = \"categorical\"\ncolumn = \"f{i:02d}\"\n" for i in (14, 15))
    spec = sx.parse_spec(text)
    salt = holdout_salt(spec.hashing.seed)
    held = holdout_mask(0, whole.num_rows, 0.3, np.uint64(salt)).astype(bool)
    assert 0 < held.sum() < whole.num_rows
    codes, y = feature_codes(folder, spec, ["f14", "f15"], rows=10_000, seed=0, holdout=0.3)  # every row sampled
    assert y.tolist() == np.asarray(whole.column("y"))[~held].tolist()
    assert len(codes["f14"]) == int((~held).sum())
    _, y_all = feature_codes(folder, spec, ["f14"], rows=10_000, seed=0)  # no holdout: every row
    assert y_all.tolist() == whole.column("y").to_pylist()
