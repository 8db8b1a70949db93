"""``suggest-spec`` / :func:`sparsecross.suggest_spec`: the suggested spec loads, trains, never
reads the label, the weight or a copy of the label, finds latitude/longitude pairs, proposes
pyramid candidates from the point density and picks one by validation on the sample (scores
checked against separate ``train`` runs); the sample is bounded and seeded; the output is
deterministic; every bad input is one line and exit 1 through the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sparsecross as sx
from sparsecross import cli
from sparsecross.suggest_profile import plan_units, read_sample

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _feature_columns(spec: sx.FeatureSpec) -> set[str]:
    return {c for f in spec.features for c in f.columns}


def _trains_better_than_constant(source: object, spec: sx.FeatureSpec) -> float:
    """Validation logloss of a one-epoch holdout train, checked below the constant rate's."""
    model = sx.train(source, spec, holdout=0.2, shuffle=bool(spec.train.get("shuffle", False))
                     and not isinstance(source, pa.Table))
    st = model.stats
    assert st["valid_logloss"] < _entropy(st["valid_positive_rate"])
    return float(st["valid_logloss"])


def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------- generated data
def test_generated_sample(sample_path: Path) -> None:
    res = sx.suggest_spec(sample_path, "label", sample_rows=5000)
    spec = res.spec
    assert spec.label.column == "label" and "label" not in spec.columns[1:] and len(spec.features) >= 3
    assert res.geo == (("latitude", "longitude"),)
    geo = [f for f in spec.features if f.kind == "geo"]
    assert geo and all(f.pyramid for f in geo)  # a pyramid, its levels chosen by validation
    assert "Validation logloss per candidate pyramid" in res.toml.replace("\n# ", " ")
    assert "label" not in _feature_columns(spec)
    assert ("label", "the label") in res.skipped
    kinds = {f.columns[0]: f.kind for f in spec.features if f.kind not in ("geo", "lat", "lon")}
    assert kinds["device"] == "categorical" and kinds["hour"] == "categorical"
    assert kinds["age"] == "bucket" and kinds["income"] == "bucket"
    assert spec.crosses and all(len(c.features) == 2 for c in spec.crosses)
    _trains_better_than_constant(sample_path, spec)


def test_same_data_same_seed_same_bytes(sample_path: Path) -> None:
    a = sx.suggest_spec(sample_path, "label", sample_rows=3000, seed=7).toml
    b = sx.suggest_spec(sample_path, "label", sample_rows=3000, seed=7).toml
    assert a == b


def test_sample_is_bounded(sample_path: Path) -> None:
    res = sx.suggest_spec(sample_path, "label", sample_rows=700)
    assert (res.rows_profiled, res.rows_total) == (700, 20_000)
    assert "700 labelled rows profiled of 20,000" in res.toml.replace("\n# ", " ")


def test_sampler_spreads_over_row_groups_and_keeps_the_bound(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    pq.write_table(pa.table({"row": np.arange(40 * 500, dtype=np.int64)}), path, row_group_size=500)
    s = read_sample(plan_units(path), ["row"], 100, seed=3)
    rows = s.table.column("row").to_numpy()
    assert len(rows) == 100 and len(np.unique(rows)) == 100  # exactly the bound, without replacement
    assert s.row_groups_read == 16 and s.row_groups_total == 40  # 16 row groups hold >= 4x the sample
    assert len(np.unique(rows // 500)) >= 8  # spread over the row groups read
    assert np.all(np.diff(rows) > 0)  # in data order
    again = read_sample(plan_units(path), ["row"], 100, seed=3).table.column("row").to_numpy()
    assert np.array_equal(rows, again)
    other = read_sample(plan_units(path), ["row"], 100, seed=4).table.column("row").to_numpy()
    assert not np.array_equal(rows, other)
    everything = read_sample(plan_units(path), ["row"], 10**6, seed=3).table.column("row").to_numpy()
    assert np.array_equal(everything, np.arange(20_000))


# --------------------------------------------------------------------- decisions
def _table(n: int = 4000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    u = rng.uniform(-2, 2, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * x + (u * u - 1.3))))).astype(np.int64)
    return pa.table({
        "y": y,
        "w": rng.uniform(0.5, 2, size=n),
        "linear": x,
        "ushape": u,
        "y_copy": y.copy(),
        "y_text": np.where(y == 1, "yes", "no"),
        "score": np.where(y == 1, 10.0, 0.0) + rng.uniform(0, 1, n),
        "row_id": np.arange(n, dtype=np.int64),
        "city": rng.choice(["a", "b", "c", "d"], size=n),
        "when": pa.array((1_600_000_000_000_000 + rng.integers(0, 400 * 86_400_000_000, n)).astype("datetime64[us]")),
        "tags": pa.array([["t1", "t2"] if v else ["t3"] for v in rng.random(n) < 0.5]),
    })


def test_label_weight_and_copies_are_never_features() -> None:
    res = sx.suggest_spec(_table(), "y", weight="w")
    cols = _feature_columns(res.spec)
    assert not cols & {"y", "w", "y_copy", "y_text", "score", "row_id"}
    reasons = dict(res.skipped)
    assert reasons["y"] == "the label" and reasons["w"] == "the sample weight column"
    for c in ("y_copy", "y_text", "score"):
        assert "copy of the label" in reasons[c]
    assert "identifier" in reasons["row_id"]
    assert res.spec.label.weight == "w"
    for c, r in res.skipped:  # every skipped column is named in the TOML's comments
        assert f"# - {c}: " in res.toml


def test_numeric_only_where_the_effect_is_monotone() -> None:
    spec = sx.suggest_spec(_table(), "y").spec
    numeric = {f.columns[0] for f in spec.features if f.kind == "numeric"}
    buckets = {f.columns[0] for f in spec.features if f.kind == "bucket"}
    assert numeric == {"linear"} and {"linear", "ushape"} <= buckets


def test_shuffle_only_when_the_label_drifts_with_the_order() -> None:
    t = _table()
    assert sx.suggest_spec(t, "y").spec.train == {}  # rows in random order
    ordered = t.take(np.argsort(t.column("linear").to_numpy(), kind="stable"))  # label rate rises with the row
    res = sx.suggest_spec(ordered, "y")
    assert res.spec.train == {"shuffle": True} and "drifts through the data's order" in res.toml


def test_time_parts_lists_and_training_in_memory() -> None:
    t = _table()
    res = sx.suggest_spec(t, "y")
    parts = {f.option("part") for f in res.spec.features if f.kind == "time"}
    assert {"hour", "dow", "month"} <= parts
    tags = [f for f in res.spec.features if f.columns == ("tags",)]
    assert tags and tags[0].kind == "categorical"
    _trains_better_than_constant(t, res.spec)


def test_date_strings_get_a_format() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    day = rng.integers(1, 29, n)
    hour = rng.integers(0, 24, n)
    y = (rng.random(n) < np.where(hour >= 18, 0.7, 0.2)).astype(np.int64)
    t = pa.table({"y": y, "d": [f"{m}/{d}/2019 {h:02d}:15" for m, d, h in zip(rng.integers(1, 13, n), day, hour)],
                  "eu": [f"{d}/{m}/2019" for m, d in zip(rng.integers(1, 13, n), day)]})
    spec = sx.suggest_spec(t, "y").spec
    fmt = {f.columns[0]: f.option("format") for f in spec.features if f.kind == "time"}
    assert fmt == {"d": "%m/%d/%Y %H:%M", "eu": "%d/%m/%Y"}
    _trains_better_than_constant(t, spec)


def _points(lat0: float, lon0: float, sd: float, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    lat = np.clip(lat0 + rng.normal(0, sd, n), -89, 89)
    lon = np.clip(lon0 + rng.normal(0, sd, n), -179, 179)
    return pa.table({"pickup_lat": lat, "pickup_lng": lon, "y": (rng.random(n) < 0.3).astype(np.int64)})


def test_pyramid_candidates_follow_the_density() -> None:
    from sparsecross.suggest_geo import pyramid_candidates

    city, world = _points(40.7, -74.0, 0.05, 40_000, 0), _points(0.0, 0.0, 40.0, 2_000, 1)
    got = {}
    for name, t in (("city", city), ("world", world)):
        cands, _, _, _ = pyramid_candidates(t.column("pickup_lat").to_numpy(), t.column("pickup_lng").to_numpy(), 1.0)
        got[name] = [c.levels for c in cands]
        for c in cands:  # every candidate: ladder levels from the coarsest down, bands on
            assert list(c.levels) == sorted(c.levels, reverse=True) and c.bands and c.levels[0] == cands[0].levels[0]
    assert got["city"][-1][-1] <= 0.25 and got["city"][0][0] <= 6.0  # dense, small: fine cells are candidates
    assert got["world"][-1][-1] >= 30.0 and got["world"][0][0] >= 600.0  # sparse, wide: coarse only


def test_a_categorical_the_area_determines_is_not_crossed_with_it() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    lat, lon = rng.uniform(40, 41, n), rng.uniform(-75, -74, n)
    zone = (np.floor((lat - 40) * 4) * 4 + np.floor((lon + 75) * 4)).astype(np.int64)  # 16 quarter-degree zones
    kind = rng.integers(0, 5, n)
    logit = 0.3 * (zone % 3) + 0.5 * kind - 1.5
    t = pa.table({"lat": lat, "lon": lon, "zone": zone, "kind": kind,
                  "y": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)})
    res = sx.suggest_spec(t, "y")
    geo_crossed = {c.features[1] for c in res.spec.crosses if "@" in c.features[0]}
    assert "kind" in geo_crossed and "zone" not in geo_crossed
    assert "zone: not crossed with the area" in res.toml


def _reference_candidates(lat: np.ndarray, lon: np.ndarray, scale: float) -> list[tuple[float, ...]]:
    """The documented rule, computed with Python counters: the coarsest level has at least 4
    cells across the 1-99 % extent; each finer ladder level is a candidate's finest while a
    quarter of the rows sit in cells of >= MIN_CELL_ROWS training rows, the last one being the
    first whose cells separate 97 % of the distinct points; a candidate holds every ladder
    level from the coarsest to its finest."""
    from collections import Counter

    from sparsecross.suggest_geo import GEO_LADDER, MIN_CELL_ROWS

    def pct(v: np.ndarray) -> float:
        return float(np.percentile(v, 99) - np.percentile(v, 1))

    span = 60 * max(pct(lat), pct(lon))
    coarsest = next((r for r in GEO_LADDER if r <= span / 4), GEO_LADDER[-1])
    points = len(set(zip(lat.tolist(), lon.tolist())))
    finest = [coarsest]
    for r in GEO_LADDER:
        if r >= coarsest:
            continue
        cells = [(math.floor((a + 90) * 60 / r), math.floor((b + 180) * 60 / r)) for a, b in zip(lat, lon)]
        count = Counter(cells)
        if sum(1 for c in cells if count[c] * scale >= MIN_CELL_ROWS) < len(cells) / 4:
            break
        finest.append(r)
        if len(count) >= 0.97 * points:
            break
    out = []
    for f in finest:
        levels = [r for r in GEO_LADDER if f <= r <= coarsest]
        if len(levels) > 8:  # the spec's limit: 8 evenly spread, ends kept
            levels = [levels[i] for i in sorted({round(j * (len(levels) - 1) / 7) for j in range(8)})]
        out.append(tuple(levels))
    return out


@pytest.mark.parametrize("sd, n, scale", [(0.05, 4000, 1.0), (0.3, 3000, 1.0), (3.0, 5000, 1.0), (40.0, 1500, 1.0),
                                          (0.05, 2000, 10.0)])
def test_pyramid_candidates_match_the_rule(sd: float, n: int, scale: float) -> None:
    from sparsecross.suggest_geo import pyramid_candidates

    t = _points(10.0, 20.0, sd, n, 5)
    lat, lon = t.column("pickup_lat").to_numpy(), t.column("pickup_lng").to_numpy()
    cands, _, _, _ = pyramid_candidates(lat, lon, scale)
    assert [c.levels for c in cands] == _reference_candidates(lat, lon, scale)


def test_candidates_stop_at_the_data_resolution() -> None:
    from sparsecross.suggest_geo import pyramid_candidates

    rng = np.random.default_rng(2)
    lat = np.round(40 + rng.uniform(0, 0.2, 50_000), 2)  # 0.01 degree = 0.6': finer cells split nothing
    lon = np.round(-74 + rng.uniform(0, 0.2, 50_000), 2)
    cands, _, _, _ = pyramid_candidates(lat, lon, 1.0)
    assert cands[-1].levels[-1] == 0.5 and 0.25 not in cands[-1].levels


def _addresses(n: int, seed: int, fine: bool) -> pa.Table:
    """Rows at 400 addresses in a 0.3-degree square.  ``fine``: each address has its own
    positive rate (0.1 or 0.9: only cells that separate addresses can learn it); else the rate
    depends on the north/south half only."""
    rng = np.random.default_rng(seed)
    lat0, lon0 = 40 + rng.uniform(0, 0.3, 400), -74 + rng.uniform(0, 0.3, 400)
    rate = np.where(rng.random(400) < 0.5, 0.1, 0.9) if fine else np.where(lat0 > 40.15, 0.7, 0.3)
    k = rng.integers(0, 400, n)
    return pa.table({"lat": lat0[k], "lon": lon0[k], "kind": rng.integers(0, 3, n),
                     "y": (rng.random(n) < rate[k]).astype(np.int64)})


def _geo_levels(spec: sx.FeatureSpec) -> list[float]:
    return [f.resolution_arcmin for f in spec.features if f.kind == "geo"]


def test_validation_chooses_fine_cells_only_where_they_pay() -> None:
    fine = sx.suggest_spec(_addresses(12_000, 0, True), "y")
    coarse = sx.suggest_spec(_addresses(12_000, 0, False), "y")
    assert min(_geo_levels(fine.spec)) <= 0.25  # cells that separate the addresses
    assert min(_geo_levels(coarse.spec)) >= 1.0  # the halves need no small cell
    for res in (fine, coarse):
        assert "Validation logloss per candidate pyramid" in res.toml.replace("\n# ", " ")


def test_candidate_scores_match_separate_training_runs() -> None:
    """Each candidate's validation logloss is the mean over the folds (weighted by their rows) of
    the best over the settings of ``train`` with early stopping (patience 1), computed here with
    separate ``sx.train`` runs on the fold tables."""
    from sparsecross.featurize import resolve_spec
    from sparsecross.inputs import memory_source
    from sparsecross.suggest_geo import (VALID_EPOCHS, VALID_SETTINGS, Pyramid, _folds, choose_pyramid)

    table = _addresses(3000, 1, True)
    head = "[label]\ncolumn = \"y\"\n[hashing]\nbits = 16\n[[features]]\nname = \"kind\"\nkind = \"bucket\"\n" \
        "column = \"kind\"\nquantiles = 2\n"

    def toml_of(g: dict) -> str:
        return head + ("[[features]]\nname = \"geo\"\nkind = \"geo\"\nlat = \"lat\"\nlon = \"lon\"\n"
                       f"resolution_arcmin = {g['resolution_arcmin']!r}\nbands = {str(g['bands']).lower()}\n")

    cands = [Pyramid((6.0, 3.0)), Pyramid((6.0, 3.0, 1.0, 0.5, 0.25))]
    chosen, scored, why = choose_pyramid(table, 0, toml_of, {}, cands)
    folds = _folds(table.num_rows, 0)
    assert len(folds) == 3 and sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(3000))
    for p in scored:
        spec = resolve_spec(memory_source(table), sx.parse_spec(toml_of({"resolution_arcmin": list(p.levels),
                                                                          "bands": p.bands})))
        total = 0.0
        for tr, va in folds:
            runs = [sx.train(table.take(tr), spec, alpha=a, l1=l1, epochs=VALID_EPOCHS, early_stop=1,
                             valid=table.take(va)).stats["valid_logloss"] for a, l1 in VALID_SETTINGS]
            total += min(runs) * len(va)
        assert p.logloss == pytest.approx(total / 3000, rel=1e-9)
    assert chosen.levels[-1] == 0.25 and f"{scored[0].logloss:.5f}" in " ".join(why)


def test_validation_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import sparsecross.suggest_geo as sg

    import importlib

    fz = importlib.import_module("sparsecross.featurize")  # the module (sx.featurize is the function)
    table = _addresses(6000, 2, True)
    monkeypatch.setattr(sg, "VALID_ROWS", 1000)  # a seeded subset of the sample, cross-validated
    seen: list[int] = []
    real = fz.featurize
    monkeypatch.setattr(fz, "featurize", lambda data, spec, **kw: (seen.append(data.num_rows),
                                                                   real(data, spec, **kw))[1])
    assert "(3-fold cross-validation on 1,000 sampled rows" in sx.suggest_spec(table, "y").toml.replace("\n# ", " ")
    assert seen and max(seen) == 1000  # only the subset is featurized, once per candidate
    monkeypatch.setattr(sg, "FOLD_ROWS", 1000)  # folds x rows <= FOLD_ROWS: one split
    text = sx.suggest_spec(table, "y").toml.replace("\n# ", " ")
    assert "(800 sampled rows trained, 200 validation rows" in text


def test_odd_columns_load_and_train() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    x = rng.normal(size=n)
    x[:5], x[5:8] = np.inf, -np.inf
    hours = (np.arange(n) * 3600).astype("datetime64[s]")
    t = pa.table({
        "y": (rng.random(n) < 1 / (1 + np.exp(-x.clip(-3, 3)))).astype(np.int64),
        "x": x,
        "allnull": pa.nulls(n, pa.float64()),
        "date": [f"2020-01-0{1 + i % 9} 1{i % 10}:00" for i in range(n)],
        "date_hour": rng.integers(0, 3, n),  # the name a part of `date` would take
        "big": pa.array(rng.integers(0, 2**62, n, dtype=np.uint64) + np.uint64(2**63)),
        "dec": pa.array([1, 2, 3] * (n // 3), pa.decimal128(5, 2)),
        "ts": pa.array(hours).cast(pa.timestamp("s", tz="Europe/Paris")),
    })
    res = sx.suggest_spec(t, "y")
    names = [f.name for f in res.spec.features]
    assert len(names) == len(set(names))
    by_col = {(f.columns[0], f.kind) for f in res.spec.features}
    assert {("x", "bucket"), ("x", "numeric"), ("date", "time"), ("date_hour", "categorical"), ("big", "bucket"),
            ("dec", "bucket"), ("ts", "time")} <= by_col
    assert dict(res.skipped)["allnull"] == "no finite values in the sample"
    assert {f.option("timezone") for f in res.spec.features if f.columns == ("ts",)} == {"Europe/Paris"}
    _trains_better_than_constant(t, res.spec)


def test_untrusted_column_names_are_escaped_in_toml() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    weird = ['a "quoted" name', "new\nline", "tab\there", "back\\slash", "ünïcødé \u2028 sep", "#hash"]
    cols = {name: rng.choice(["p", "q", "r"], n) for name in weird}
    cols["y"] = (rng.random(n) < 0.4).astype(np.int64)
    res = sx.suggest_spec(pa.table(cols), "y")
    got = {f.columns[0] for f in res.spec.features}
    assert got == set(weird)
    for line in res.toml.splitlines():
        assert line.isprintable()


# --------------------------------------------------------------------- CLI
def test_cli_writes_and_check_spec_loads(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         sample_path: Path) -> None:
    out = tmp_path / "spec.toml"
    code, stdout, err = _cli(capsys, ["suggest-spec", str(sample_path), "--label", "label", "--sample-rows",
                                      "2000", "--out", str(out)])
    assert code == 0 and out.exists() and "wrote" in stdout
    assert "skipped column 'label': the label" in err
    assert _cli(capsys, ["check-spec", str(out), "--data", str(sample_path)])[0] == 0
    code, _, err = _cli(capsys, ["suggest-spec", str(sample_path), "--label", "label", "--out", str(out)])
    assert code == 1 and "exists; pass --force" in err
    before = out.read_bytes()
    assert _cli(capsys, ["suggest-spec", str(sample_path), "--label", "label", "--sample-rows", "2000",
                         "--out", str(out), "--force"])[0] == 0
    assert out.read_bytes() == before  # same data and seed: same bytes


def test_cli_json_is_strict(capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_path: Path) -> None:
    import json

    out = tmp_path / "s.toml"
    code, stdout, err = _cli(capsys, ["suggest-spec", str(sample_path), "--label", "label", "--sample-rows", "1000",
                                      "--out", str(out), "--json"])
    assert code == 0 and err == ""
    d = json.loads(stdout, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert d["rows_profiled"] == 1000 and d["rows_total"] == 20_000 and d["geo"] == [["latitude", "longitude"]]
    assert {"column": "label", "reason": "the label"} in d["skipped"]
    assert d["features"] == len(sx.load_spec(out).to_dict()["features"])


def _bad_inputs(tmp: Path, sample: Path) -> list[tuple[list[str], str]]:
    ids = tmp / "ids.parquet"
    pq.write_table(pa.table({"y": np.arange(100) % 2, "key": [f"k{i}" for i in range(100)]}), ids)
    mixed = tmp / "mixed"
    mixed.mkdir()
    pq.write_table(pa.table({"y": [0, 1] * 50, "a": np.arange(100.0)}), mixed / "1.parquet")
    pq.write_table(pa.table({"y": [0, 1] * 50, "a": np.arange(100)}), mixed / "2.parquet")
    s = str(sample)
    return [
        ([str(mixed), "--label", "y"], "column 'a' has type double in"),
        ([s, "--label", "lable"], "did you mean 'label'"),
        ([s, "--label", "income", "--threshold", "1e12"], "constant in the sample"),
        ([str(ids), "--label", "y"], "no usable feature column"),
        ([s, "--label", "device", "--positive", "ios", "--threshold", "1"], "exclude each other"),
        ([s, "--label", "income", "--threshold", "1", "--compare", "=>"], "label.compare"),
        ([s, "--label", "income", "--compare", ">="], "needs label.threshold"),
        ([s, "--label", "device"], "give the positive values"),
        ([s, "--label", "income"], "not 0/1"),
        ([s, "--label", "label", "--weight", "wieght"], "weight column 'wieght'"),
        ([s, "--label", "label", "--sample-rows", "0"], "--sample-rows"),
        ([str(tmp / "nothing.parquet"), "--label", "label"], "does not exist"),
    ]


def test_cli_bad_inputs_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, sample_path: Path) -> None:
    out = tmp_path / "out.toml"
    for argv, fragment in _bad_inputs(tmp_path, sample_path):
        code, stdout, err = _cli(capsys, ["suggest-spec", *argv, "--sample-rows", "500", "--out", str(out)]
                                 if "--sample-rows" not in argv else ["suggest-spec", *argv, "--out", str(out)])
        assert code == 1, argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sparsecross: error: "), (argv, err)
        assert fragment in lines[0], (argv, lines[0])
        assert not out.exists()


def test_cli_refuses_to_overwrite_the_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "d.parquet"
    pq.write_table(_table(500), data)
    before = data.read_bytes()
    code, _, err = _cli(capsys, ["suggest-spec", str(data), "--label", "y", "--out", str(data), "--force"])
    assert code == 1 and "refusing to overwrite an input" in err
    assert data.read_bytes() == before


# --------------------------------------------------------------------- shared data
SHARED = {
    "california_housing": ("california_housing/housing.parquet", "median_house_value", {"threshold": 265000},
                           ("latitude", "longitude")),
    "kc_house": ("kc_house/kc_house_data.parquet", "price", {"threshold": 450000}, ("lat", "long")),
    "nyc_airbnb_2019": ("nyc_airbnb_2019/AB_NYC_2019.parquet", "price", {"threshold": 150},
                        ("latitude", "longitude")),
    "chicago_assaults": ("chicago_assaults/chicago_aggravated_assaults.parquet", "loc_cat",
                         {"positive": ["residence"]}, ("latitude", "longitude")),
    "meteorite_landings": ("meteorite_landings/Meteorite_Landings.parquet", "fall", {"positive": ["Fell"]},
                           ("reclat", "reclong")),
    "melbourne_housing": ("melbourne_housing/melb_data.parquet", "Price", {"threshold": 1000000},
                          ("Lattitude", "Longtitude")),
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_data(name: str) -> None:
    rel, label, kw, pair = SHARED[name]
    path = SHARED_DATA / rel
    if not path.is_file():
        pytest.skip(f"real data not available: {path} is missing")
    res = sx.suggest_spec(path, label, sample_rows=20_000, **kw)
    spec = res.spec
    assert res.rows_profiled <= 20_000
    assert res.geo[0] == pair
    assert len([f for f in spec.features if f.kind == "geo"]) >= 2
    bands = {f.kind for f in spec.features} >= {"lat", "lon"}
    assert bands != ("bands = false" in res.toml)  # bands unless validation dropped them
    assert label not in _feature_columns(spec)
    _trains_better_than_constant(path, spec)


def test_a_non_integer_positive_on_a_numeric_label_is_refused() -> None:
    """1.7 was silently truncated to 1: a spec with another label than the one asked for."""
    t = pa.table({"y": [0, 1, 2] * 40, "c": ["a", "b", "c", "d"] * 30})
    with pytest.raises(sx.SparseCrossError, match="not integers"):
        sx.suggest_spec(t, "y", positive=[1.7])
    assert sx.suggest_spec(t, "y", positive=[2.0]).spec.label.positive == (2,)


def test_no_usable_column_names_the_weight_only_when_one_is_given() -> None:
    t = pa.table({"y": [0, 1] * 50, "c": ["a"] * 100, "w": [1.0] * 100})
    with pytest.raises(sx.SparseCrossError) as info:
        sx.suggest_spec(t.drop(["w"]), "y")
    assert "weight" not in str(info.value) and "c: " in str(info.value)
    with pytest.raises(sx.SparseCrossError, match="besides the label and weight"):
        sx.suggest_spec(t, "y", weight="w")


def test_an_integer_positive_is_kept_exact_and_a_huge_one_refused() -> None:
    """Integers went through float: 2^60 + 1 became 2^60, 10^400 raised OverflowError."""
    t = pa.table({"y": pa.array([0, 1, 2**60 + 1] * 40, pa.int64()), "c": ["a", "b", "c", "d"] * 30})
    assert sx.suggest_spec(t, "y", positive=[2**60 + 1]).spec.label.positive == (2**60 + 1,)
    assert sx.suggest_spec(t, "y", positive=[np.int64(2**60 + 1)]).spec.label.positive == (2**60 + 1,)
    with pytest.raises(sx.SparseCrossError, match="int64"):
        sx.suggest_spec(t, "y", positive=[10**400])


def test_untrusted_label_values_zones_and_names_are_shown_short() -> None:
    """A label's positive value, a column's time zone and the label's name come from the
    user's data or arguments: the spec's comments and the errors show them short and escaped."""
    rng = np.random.default_rng(4)
    n = 2000
    long_value = "v" * 100_000 + "\n[label]"
    bogus_zone = "Not/A\x1bZone" + "z" * 5_000
    t = pa.table({
        "lab": np.where(rng.random(n) < 0.4, long_value, "other"),
        "c": rng.choice(["p", "q", "r"], n),
        "ts": pa.array(np.arange(n) * 3600, type=pa.timestamp("s", tz=bogus_zone)),  # Arrow cannot use it
    })
    res = sx.suggest_spec(t, "lab", positive=[long_value])
    comments = [line for line in res.toml.splitlines() if line.lstrip().startswith("#")]
    assert max(map(len, comments)) < 600  # (the [label] table itself holds the value whole)
    assert all(line.isprintable() for line in res.toml.splitlines())
    assert any("cannot be used" in line for line in comments)
    assert all(f.option("timezone") is None for f in res.spec.features if f.columns == ("ts",))
    long_name = "y" * 1_000_000
    constant = pa.table({long_name: np.zeros(n, np.int64), "c": rng.choice(["p", "q"], n)})
    with pytest.raises(sx.DataError) as exc:
        sx.suggest_spec(constant, long_name)
    assert len(str(exc.value)) < 600 and "is constant" in str(exc.value)


def test_existing_output_is_named_short(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    t = pa.table({"y": (rng.random(500) < 0.4).astype(np.int64), "c": rng.choice(["p", "q"], 500)})
    res = sx.suggest_spec(t, "y")
    folder = tmp_path / ("d" * 200) / ("e" * 200)
    folder.mkdir(parents=True)
    out = folder / ("s" * 200 + "\x1b.toml")
    out.write_text("mine")
    with pytest.raises(sx.OutputError) as exc:
        res.write(out)
    assert len(str(exc.value)) < 400 and "\x1b" not in str(exc.value) and out.read_text() == "mine"


@pytest.mark.parametrize("zone", ["posix/Europe/Paris", "Factory", "+05:00"])
def test_a_zone_featurizing_cannot_use_is_not_written(zone, tmp_path: Path) -> None:
    """zoneinfo accepts 'posix/...' and 'Factory', Arrow refuses them; Arrow accepts '+05:00',
    zoneinfo refuses it.  Either way the parts are profiled in UTC, the spec names no zone,
    a comment says so, and the spec trains (review of 2026-12-03)."""
    rng = np.random.default_rng(4)
    n = 2000
    t = pa.table({
        "y": (rng.random(n) < 0.4).astype(np.int64),
        "c": rng.choice(["p", "q", "r"], n),
        "ts": pa.array(rng.integers(0, 400 * 86400, n), type=pa.timestamp("s", tz=zone)),
    })
    res = sx.suggest_spec(t, "y")
    zones = [f.option("timezone") for f in res.spec.features if f.columns == ("ts",)]
    assert zones and all(z is None for z in zones), zones
    assert any("parts are taken in UTC" in line for line in res.toml.splitlines())
    path = tmp_path / "d.parquet"
    pq.write_table(t, path)
    sx.train(path, res.spec)


def test_missing_label_lists_the_columns_short() -> None:
    name = "a\nforged: line" + "z" * 100_000
    t = pa.table({name: [1, 2], "b": [0, 1]})
    with pytest.raises(sx.SchemaError) as exc:
        sx.suggest_spec(t, "nope")
    assert len(str(exc.value)) < 800 and "\n" not in str(exc.value)


def test_a_long_label_name_from_the_file_is_named_short(tmp_path: Path) -> None:
    """A string or list label column with a 1 MB name (the file's own name for it): the
    refusal names it short and escaped."""
    rng = np.random.default_rng(6)
    name, listed = "\x1b[31m" + "y" * 1_000_000, "\x07" + "z" * 1_000_000
    t = pa.table({name: rng.choice(["a", "b"], 300), "c": rng.choice(["p", "q"], 300),
                  listed: pa.array([[1.0]] * 300)})
    for label in (name, listed):
        with pytest.raises(sx.SchemaError) as exc:
            sx.suggest_spec(t, label)
        assert len(str(exc.value)) < 400 and str(exc.value).isprintable(), str(exc.value)[:500]


@pytest.mark.parametrize("seed", [-1, 2**200, 1.5, True])
def test_a_bad_sample_seed_is_a_parameter_error(seed) -> None:
    """A negative seed was NumPy's ValueError, reported by the CLI as a bug."""
    rng = np.random.default_rng(7)
    t = pa.table({"y": (rng.random(300) < 0.4).astype(np.int64), "c": rng.choice(["p", "q"], 300)})
    with pytest.raises(sx.ParameterError, match="^seed must be between 0 and 18,446,744,073,709,551,615, got "):
        sx.suggest_spec(t, "y", seed=seed)
