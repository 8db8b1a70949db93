"""The ordered-data warning (``sparsecross.order.OrderCheck``): label-sorted data warns and
names ``--shuffle``, shuffled or i.i.d. data stays quiet, the segment counts against a dense
count, and the real meteorite landings sorted by name (split from tests/test_order.py)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsecross
from sparsecross import load_spec, parse_spec
from sparsecross.errors import DataQualityWarning
from sparsecross.order import OrderCheck

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.parquet"  # 20,000 rows in 4 row groups of 5,000
SPEC_PATH = ROOT / "data" / "specs" / "synthetic.toml"
METEORITES = ROOT.parent / "shared" / "data" / "meteorite_landings" / "Meteorite_Landings.parquet"


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC_PATH)


# =========================================================================================
# the ordered-data warning
# =========================================================================================
@pytest.fixture(scope="module")
def label_sorted(tmp_path_factory):
    t = pq.read_table(SAMPLE)
    t = t.take(pc.sort_indices(t, [("label", "ascending")]))
    path = tmp_path_factory.mktemp("sorted") / "sorted.parquet"
    pq.write_table(t, path, row_group_size=2000)
    return path


def test_warning_on_label_sorted_data_names_shuffle(spec, label_sorted):
    with pytest.warns(DataQualityWarning, match="--shuffle") as rec:
        model = sparsecross.train(label_sorted, spec, holdout=0.2, l1=0.5)
    assert len([w for w in rec if issubclass(w.category, DataQualityWarning)]) == 1
    assert model.stats["valid_logloss"] > 2 * model.stats["progressive_logloss"]


def test_no_warning_on_shuffled_or_unordered_data(spec, label_sorted):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        mixed = sparsecross.train(label_sorted, spec, holdout=0.2, l1=0.5, shuffle=True,
                                  shuffle_buffer_rows=1 << 15)
        sparsecross.train(SAMPLE, spec, holdout=0.2, l1=0.5)
    assert mixed.stats["valid_logloss"] < 1.2 * mixed.stats["progressive_logloss"] + 0.02


def test_warning_with_a_small_buffer_asks_for_a_larger_one(spec, label_sorted):
    with pytest.warns(DataQualityWarning, match="--shuffle-buffer-rows 1,000: raise it"):
        sparsecross.train(label_sorted, spec, holdout=0.2, l1=0.5, shuffle=True, shuffle_buffer_rows=1000)


@settings(max_examples=40, deadline=None)
@given(p=st.floats(0.02, 0.98), n=st.integers(2_000, 200_000), seed=st.integers(0, 2**32))
def test_order_check_is_quiet_on_iid_labels(p, n, seed):
    y = (np.random.default_rng(seed).random(n) < p).astype(np.float64)
    check = OrderCheck(n, None)
    for a in range(0, n, 1234):
        check.update(a, y[a:a + 1234])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        check.finish(0.5, 0.5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5_000), cuts=st.lists(st.integers(0, 5_000), max_size=12), seed=st.integers(0, 2**32))
def test_order_check_segments_equal_a_dense_count(n, cuts, seed):
    """The per-segment label sums and row counts, from batches cut anywhere, against every
    row's segment computed on its own."""
    y = (np.random.default_rng(seed).random(n) < 0.3).astype(np.float64)
    check = OrderCheck(n, None)
    bounds = [0] + sorted(min(c, n) for c in cuts) + [n]
    for a, b in zip(bounds, bounds[1:]):
        check.update(a, y[a:b])
    seg_rows = -(-n // OrderCheck.SEGMENTS)
    seg = [min(r // seg_rows, OrderCheck.SEGMENTS - 1) for r in range(n)]
    want_pos = [sum(y[r] for r in range(n) if seg[r] == s) for s in range(OrderCheck.SEGMENTS)]
    want_cnt = [seg.count(s) for s in range(OrderCheck.SEGMENTS)]
    assert check.pos.tolist() == want_pos
    assert check.cnt.tolist() == want_cnt


def test_order_check_loss_rule():
    check = OrderCheck(100, None)
    check.update(0, np.tile([0.0, 1.0], 50))
    with pytest.warns(DataQualityWarning, match=r"validation logloss .* far worse .*--shuffle"):
        check.finish(0.05, 0.9)


@pytest.mark.skipif(not METEORITES.exists(), reason="../shared/data/meteorite_landings is absent")
def test_meteorites_sorted_by_name_warn_and_shuffle_helps(tmp_path):
    """The issue's example: meteorite landings (sorted by name in the file), label fall == "Fell".
    In file order the model is worse than it looks; shuffled, the warning stays quiet."""
    t = pq.read_table(METEORITES, columns=["reclat", "reclong", "fall", "recclass"])
    keep = pc.fill_null(pc.and_(pc.is_valid(t["reclat"]),
                                pc.invert(pc.and_(pc.equal(t["reclat"], 0), pc.equal(t["reclong"], 0)))), False)
    t = t.filter(keep)
    t = pa.table({"lat": t["reclat"], "lon": t["reclong"], "recclass": t["recclass"],
                  "fell": pc.cast(pc.equal(t["fall"], "Fell"), pa.int8())})
    path = tmp_path / "meteorites.parquet"
    pq.write_table(t, path, row_group_size=4096)
    spec = parse_spec({"label": {"column": "fell"}, "hashing": {"bits": 18},
                       "features": [{"name": "cell", "kind": "geo", "lat": "lat", "lon": "lon",
                                     "resolution_arcmin": 60.0, "invalid": "missing"},
                                    {"name": "recclass", "kind": "categorical", "column": "recclass"}]})
    with pytest.warns(DataQualityWarning, match="--shuffle"):
        ordered = sparsecross.train(path, spec, holdout=0.2, l1=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataQualityWarning)
        mixed = sparsecross.train(path, spec, holdout=0.2, l1=0.1, shuffle=True)
    assert mixed.stats["valid_logloss"] < ordered.stats["valid_logloss"]
    assert math.isfinite(mixed.stats["valid_logloss"])


def test_cli_prints_the_ordered_data_warning_as_one_line(label_sorted, tmp_path, capsys):
    from sparsecross.cli import main

    args = ["train", SPEC_PATH, label_sorted, "--out", tmp_path / "m.scx", "-q", "--holdout", "0.2", "--names", "0"]
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code == 0
    lines = [line for line in out.err.splitlines() if "--shuffle" in line]
    assert len(lines) == 1 and "look ordered" in lines[0]
