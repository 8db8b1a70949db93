"""The 16-bit training state end to end (``state_bits=16``): ``train``, the spec's ``[train]``
table, checkpoints and resume, the logloss criterion of issue 13 item 5 (within 0.01% of the
float32 state), refusals, the CLI flag, ``tune`` and ``path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsecross.errors import ParameterError

# ------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Generated geo data (train 60k rows, valid 20k later rows) and the synthetic spec."""
    import sparsecross
    from sparsecross.generate import generate

    root = tmp_path_factory.mktemp("state16")
    generate(root / "all.parquet", rows=80_000, seed=11, row_group_size=10_000)
    import pyarrow.parquet as pq

    t = pq.read_table(root / "all.parquet")
    pq.write_table(t.slice(0, 60_000), root / "train.parquet", row_group_size=10_000)
    pq.write_table(t.slice(60_000), root / "valid.parquet")
    spec = sparsecross.load_spec(Path(__file__).resolve().parents[1] / "data" / "specs" / "synthetic.toml")
    return root, spec


def _model_bytes(model) -> bytes:
    from sparsecross.export import model_bytes

    return model_bytes(model, "float32")


def test_train_16bit_is_deterministic_at_any_batch_size_and_recorded(world) -> None:
    import sparsecross

    root, spec = world
    a = sparsecross.train(root / "train.parquet", spec, state_bits=16, epochs=2, batch_rows=10_000)
    b = sparsecross.train(root / "train.parquet", spec, state_bits=16, epochs=2, batch_rows=10_000)
    c = sparsecross.train(root / "train.parquet", spec, state_bits=16, epochs=2, batch_rows=777)
    assert _model_bytes(a) == _model_bytes(b) == _model_bytes(c)
    assert a.params["state_bits"] == 16
    plain = sparsecross.train(root / "train.parquet", spec, epochs=2, batch_rows=10_000)
    assert "state_bits" not in plain.params  # 32 bits: the params (and bytes) of before
    assert plain.params == sparsecross.train(root / "train.parquet", spec, epochs=2, state_bits=32).params
    assert _model_bytes(plain) != _model_bytes(a)


def test_spec_train_table_sets_state_bits(world) -> None:
    import dataclasses

    import sparsecross
    from sparsecross.errors import SpecError
    from sparsecross.spec_parse import _parse_train

    root, spec = world
    spec16 = dataclasses.replace(spec, train={**spec.train, "state_bits": 16})
    a = sparsecross.train(root / "train.parquet", spec16)
    b = sparsecross.train(root / "train.parquet", spec, state_bits=16)
    assert a.params["state_bits"] == 16 and np.array_equal(a.weights, b.weights)
    assert "state_bits" not in sparsecross.train(root / "train.parquet", spec16, state_bits=32).params  # argument wins
    with pytest.raises(SpecError, match="state_bits"):
        _parse_train({"state_bits": 8})


def test_resume_from_checkpoint_equals_uninterrupted(world, tmp_path, monkeypatch) -> None:
    import sparsecross
    from sparsecross.state import FTRLState

    root, spec = world
    args = dict(state_bits=16, epochs=2, batch_rows=5_000, checkpoint_every=15_000)
    whole = sparsecross.train(root / "train.parquet", spec, **args)
    saves = []
    real = FTRLState.save

    def crash_on_third(self, path, meta):
        real(self, path, meta)
        saves.append(meta["row"])
        if len(saves) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(FTRLState, "save", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        sparsecross.train(root / "train.parquet", spec, checkpoint=tmp_path / "ck", **args)
    monkeypatch.setattr(FTRLState, "save", real)
    assert saves[-1] > 0  # stopped mid-epoch
    resumed = sparsecross.train(root / "train.parquet", spec, checkpoint=tmp_path / "ck", **args)
    assert _model_bytes(resumed) == _model_bytes(whole)
    with pytest.raises(sparsecross.CheckpointError, match="another run"):  # a 32-bit run does not resume it
        sparsecross.train(root / "train.parquet", spec, checkpoint=tmp_path / "ck", **{**args, "state_bits": 32})


def _rel(a: float, b: float) -> float:
    return a / b - 1


def test_logloss_within_0_01_percent_on_generated_data(world) -> None:
    import sparsecross

    root, spec = world
    m32 = sparsecross.train(root / "train.parquet", spec, valid=root / "valid.parquet", epochs=2)
    m16 = sparsecross.train(root / "train.parquet", spec, valid=root / "valid.parquet", epochs=2, state_bits=16)
    assert abs(_rel(m16.stats["valid_logloss"], m32.stats["valid_logloss"])) < 1e-4
    e32 = sparsecross.evaluate(m32, root / "valid.parquet")["logloss"]
    e16 = sparsecross.evaluate(m16, root / "valid.parquet")["logloss"]
    assert abs(_rel(e16, e32)) < 1e-4


def test_logloss_within_0_01_percent_on_california(california_path, tmp_path) -> None:
    import pyarrow.parquet as pq

    import sparsecross

    t = pq.read_table(california_path)
    perm = np.random.default_rng(0).permutation(t.num_rows)
    n_test = t.num_rows // 5
    pq.write_table(t.take(perm[n_test:]), tmp_path / "train.parquet")
    pq.write_table(t.take(perm[:n_test]), tmp_path / "test.parquet")
    spec = sparsecross.load_spec(Path(__file__).resolve().parents[1] / "data" / "specs" / "california.toml")
    for epochs in (1, 10):
        m32 = sparsecross.train(tmp_path / "train.parquet", spec, valid=tmp_path / "test.parquet", epochs=epochs)
        m16 = sparsecross.train(tmp_path / "train.parquet", spec, valid=tmp_path / "test.parquet", epochs=epochs,
                                state_bits=16)
        assert abs(_rel(m16.stats["valid_logloss"], m32.stats["valid_logloss"])) < 1e-4, epochs


def test_refused_combinations_are_one_clear_error(world) -> None:
    import sparsecross

    root, spec = world
    with pytest.raises(ParameterError, match="float64"):
        sparsecross.train(root / "train.parquet", spec, state_bits=16, state_dtype="float64")
    with pytest.raises(ParameterError, match="32 or 16"):
        sparsecross.train(root / "train.parquet", spec, state_bits=24)
    with pytest.raises(ParameterError, match="Dask client"):
        sparsecross.train(root / "train.parquet", spec, state_bits=16, client=object())


def test_cli_state_bits_flag(world, tmp_path, capsys) -> None:
    import json

    from sparsecross.cli import main

    root, _ = world
    spec_file = Path(__file__).resolve().parents[1] / "data" / "specs" / "synthetic.toml"
    out = tmp_path / "m.scx"
    assert main(["train", str(spec_file), str(root / "train.parquet"), "--out", str(out), "--state-bits", "16",
                 "--quiet"]) == 0
    import sparsecross

    assert sparsecross.load_model(out).params["state_bits"] == 16
    capsys.readouterr()
    assert main(["train", str(spec_file), str(root / "train.parquet"), "--out", str(tmp_path / "d.scx"),
                 "--state-bits", "16", "--dask", "local:1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--state-bits 16 is not available with --dask" in err and len(err.strip().splitlines()) == 1
    both = []
    for bits in ("32", "16"):
        assert main(["train", str(spec_file), str(root / "train.parquet"), "--out", str(tmp_path / f"{bits}.scx"),
                     "--state-bits", bits, "--json"]) == 0
        both.append(json.loads(capsys.readouterr().out))
    assert both[1]["state_bytes_peak"] < 0.75 * both[0]["state_bytes_peak"]  # 8-byte slots instead of 12
    # what the 16-bit forms lost is reported, as strict JSON integers (and not for 32 bits)
    keys16 = ("promoted_features", "refused_promotions", "q213_clips", "sqrt_n_saturations")
    assert not any(k in both[0] for k in keys16)
    model16 = sparsecross.load_model(tmp_path / "16.scx")
    assert all(type(both[1][k]) is int and both[1][k] == model16.stats[k] >= 0 for k in keys16)
    assert both[1]["promoted_features"] > 0


#: The synthetic spec plus income as a numeric feature: values around 45,000 saturate sqrt(n).
SCALED = "[[features]]\nname = \"income_x\"\nkind = \"numeric\"\ncolumn = \"income\"\n\n[[crosses]]"


def test_16bit_counts_reach_the_model_inspect_and_the_summary(world, tmp_path, capsys) -> None:
    """zstats (counted by the kernel, checked against the reference in test_state16) reach the
    model's stats: promoted features as many as the table's promoted slots; inspect and the
    train summary show them; the figures do not depend on the batch size.  Large values (a
    numeric income) saturate sqrt(n) and alpha=2 clips v, so the counters compared are not 0
    (refused promotions need zbig full, 65,536 promoted keys: the kernel test has that case)."""
    import json

    import sparsecross
    from sparsecross._kernels.half import PROMOTED
    from sparsecross.cli import main

    root, _ = world
    spec_file = tmp_path / "scaled.toml"
    spec_file.write_text((Path(__file__).resolve().parents[1] / "data" / "specs" / "synthetic.toml").read_text()
                         .replace("[[crosses]]", SCALED))
    spec = sparsecross.load_spec(spec_file)
    kw = dict(state_bits=16, epochs=2, alpha=2.0)
    model, state = sparsecross.train(root / "train.parquet", spec, **kw, batch_rows=10_000, return_state=True)
    occupied = state.table[:, 0] != np.uint32(0xFFFFFFFF)
    promoted = int(np.count_nonzero(occupied & ((state.table[:, 1] & PROMOTED) != 0)))
    keys = ("promoted_features", "refused_promotions", "q213_clips", "sqrt_n_saturations")
    st = model.stats
    assert st["promoted_features"] == promoted > 0
    assert [st[k] for k in keys] == state.zstats.tolist()
    assert st["q213_clips"] > 0 and st["sqrt_n_saturations"] > 0
    other = sparsecross.train(root / "train.parquet", spec, **kw, batch_rows=777)
    assert {k: other.stats[k] for k in keys} == {k: st[k] for k in keys}
    out = tmp_path / "m.scx"
    sparsecross.save_model(model, out)
    capsys.readouterr()
    assert main(["inspect", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert {k: shown["stats"][k] for k in keys} == {k: st[k] for k in keys}
    assert main(["train", str(spec_file), str(root / "train.parquet"), "--out", str(tmp_path / "s.scx"),
                 "--state-bits", "16", "--epochs", "2", "--alpha", "2"]) == 0
    assert (f"16-bit state: {promoted:,} features with a float32 z ({st['refused_promotions']:,} refused, zbig full), "
            f"{st['q213_clips']:,} updates clipped to q2.13, {st['sqrt_n_saturations']:,} with sqrt(n) saturated") \
        in capsys.readouterr().out


def test_tune_and_path_points_are_the_16bit_models_train_gives(world) -> None:
    import sparsecross
    from sparsecross.path import regularization_path
    from sparsecross.tune import tune

    root, spec = world
    res = tune(root / "train.parquet", spec, alpha=[0.1, 0.3], l1=[1.0], epochs_max=2, valid=root / "valid.parquet",
               state_bits=16)
    c = res.chosen
    assert c is not None and c.model is not None and c.model.params["state_bits"] == 16
    want = sparsecross.train(root / "train.parquet", spec, alpha=c.alpha, l1=c.l1, epochs=c.epochs,
                             valid=root / "valid.parquet", state_bits=16)
    assert _model_bytes(c.model) == _model_bytes(want)
    path = regularization_path(root / "train.parquet", spec, l1=[0.3, 1.0], l2=[0.0], valid=root / "valid.parquet",
                               state_bits=16)
    p = path.points[-1]
    want = sparsecross.train(root / "train.parquet", spec, l1=p.l1, valid=root / "valid.parquet", state_bits=16)
    assert p.nonzeros == want.nonzeros and p.valid_logloss == want.stats["valid_logloss"]
