"""Adding a kind is one module and one registry entry (issue 11: "each kind one module").

Two tiny kinds defined here, and registered in :data:`sparsecross.kinds.KINDS` for the test
only, go through the whole product without any change elsewhere: the spec parser (keys,
validation, round trip), the schema check, the featurizer (standalone and in an exact and a
hashed cross), training with names recorded in the same pass, ``inspect``'s readable names and
a data-derived setting resolved from a sample of the data.  Their columns are checked against
the hash contract computed here with the pure-Python hashing reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import sparsecross as sx
from sparsecross.errors import SchemaError, SpecError
from sparsecross.featurize import _as_array
from sparsecross.kinds import KINDS
from sparsecross.kinds._base import Kind
from sparsecross.kinds.categorical import hash_dictionary
from sparsecross.spec import Feature
from tests.reference.hashing_reference import categorical_key, cross_key, hashed_column


# ------------------------------------------------------------------------ the two new kinds
class ModuloKind(Kind):
    """``kind = "modulo"``: an integer's remainder modulo ``m`` (exact: m ids + missing);
    ``m = "auto"`` takes the sample's largest value + 1 (a data-derived setting)."""

    name = "modulo"
    keys = frozenset({"column", "m"})

    def parse(self, where: str, t: Mapping[str, Any], stored: bool) -> dict[str, Any]:
        m = t.get("m")
        if m != "auto" and (isinstance(m, bool) or not isinstance(m, int) or not 2 <= m <= 100):
            raise SpecError(f"{where}.m: expected an integer in [2, 100] or \"auto\", got {m!r}")
        return {"options": (("m", m),)}

    def to_dict(self, f: Feature) -> dict[str, Any]:
        return {"column": f.columns[0], "m": f.option("m")}

    def needs_data(self, f: Feature) -> bool:
        return f.option("m") == "auto"

    def resolve(self, f: Feature, sample: np.ndarray) -> Feature:
        return replace(f, options=(("m", int(sample.max()) + 1),))

    def cardinality(self, f: Feature) -> int:
        return f.option("m") + 1

    def describe(self, f: Feature, lid: int) -> str:
        return f"{f.name}={lid} mod {f.option('m')}"

    def featurize(self, f, ctx, ids, missing):
        x = ctx.numeric(f.columns[0])
        miss = np.isnan(x)
        missing[:] = miss
        ids[:] = np.where(miss, f.option("m"), np.mod(np.nan_to_num(x), f.option("m"))).astype(np.uint64)


class InitialKind(Kind):
    """``kind = "initial"``: a string's first character, hashed as a categorical of it."""

    name = "initial"
    keys = frozenset({"column"})
    role = "categorical"

    def is_exact(self, f: Feature) -> bool:
        return False

    def check_type(self, f, col, t, where, crossed=False) -> bool:
        if not pa.types.is_string(t):
            raise SchemaError(f"feature {f.name!r}: column {col!r} in {where} has type {t}; expected strings")
        return False

    @staticmethod
    def _initials(arr: pa.Array) -> pa.Array:
        return pc.utf8_slice_codeunits(arr, 0, 1)

    def featurize(self, f, ctx, ids, missing):
        arr = self._initials(_as_array(ctx.table.column(f.columns[0])))
        enc = pc.dictionary_encode(arr)
        keys = hash_dictionary(enc.dictionary, ctx.salt)
        codes = enc.indices.fill_null(0).to_numpy(zero_copy_only=False)
        valid = np.asarray(arr.is_valid())
        ids[:] = np.where(valid, keys[codes] if len(keys) else ctx.missing_key, ctx.missing_key)
        missing[:] = ~valid

    def recorded_values(self, f, arr, salt, seen):
        u = pc.unique(self._initials(arr).drop_null())
        return u.cast(pa.large_string()), hash_dictionary(u, salt), bool(arr.null_count)


@pytest.fixture()
def registered(monkeypatch):
    monkeypatch.setitem(KINDS, "modulo", ModuloKind())
    monkeypatch.setitem(KINDS, "initial", InitialKind())


SPEC = {
    "label": {"column": "y"},
    "hashing": {"bits": 12, "seed": 7},
    "features": [
        {"name": "mod", "kind": "modulo", "column": "n", "m": "auto"},
        {"name": "ini", "kind": "initial", "column": "s"},
        {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.0]},
    ],
    "crosses": [{"features": ["mod", "b"]}, {"features": ["ini", "mod"]}],
}


def _table(n: int = 300) -> pa.Table:
    rng = np.random.default_rng(3)
    words = ["apple", "avocado", "banana", "cherry", "citrus", "date", None]
    return pa.table({
        "n": pa.array([None if v == 9 else int(v) for v in rng.integers(0, 10, n)], pa.int64()),
        "s": pa.array([words[int(v)] for v in rng.integers(0, len(words), n)]),
        "x": rng.normal(size=n), "y": rng.integers(0, 2, n),
    })


def test_a_new_kind_needs_nothing_outside_its_module_and_the_registry(registered, tmp_path, capsys) -> None:
    table = _table()
    spec = sx.parse_spec(SPEC)
    assert spec.needs_data  # m = "auto" is resolved from the data
    assert sx.parse_spec(spec.to_dict(), stored=True) == spec
    with pytest.raises(SpecError, match=r"features\[0\] \('mod'\)\.m: expected an integer"):
        sx.parse_spec({**SPEC, "features": [{"name": "mod", "kind": "modulo", "column": "n", "m": 1}]})
    with pytest.raises(SpecError, match=r"unknown key 'mm'.*did you mean 'm'"):
        sx.parse_spec({**SPEC, "features": [{"name": "mod", "kind": "modulo", "column": "n", "mm": 3}]})

    pq_path = tmp_path / "d.parquet"
    import pyarrow.parquet as pq

    pq.write_table(table, pq_path)
    resolved = sx.resolve_spec(pq_path, spec)
    assert resolved.feature("mod").option("m") == 9  # largest present value 8, + 1
    with pytest.raises(SchemaError, match=r"feature 'ini': column 's'.*expected strings"):
        sx.featurize(table.set_column(1, "s", pa.array(range(len(table)))), resolved)

    # columns: the contract computed by hand from the hashing reference
    X, _, _ = sx.featurize(table, resolved)
    seed, bits, H = 7, 12, resolved.hashed_offset
    outs = {o.name: o for o in resolved.outputs}
    for r, row in enumerate(table.to_pylist()):
        mod = 9 if row["n"] is None else row["n"] % 9
        b = 1 if row["x"] >= 0 else 0
        ini = categorical_key("ini", None if row["s"] is None else row["s"][0], seed)
        want = {outs["mod"].offset + mod, outs["b"].offset + b, outs["mod*b"].offset + mod * 3 + b,
                hashed_column(ini, bits, H), hashed_column(cross_key("ini*mod", [ini, mod], seed), bits, H)}
        assert X.indices[X.indptr[r]:X.indptr[r + 1]].tolist() == sorted(want), r

    # training records the hashed values' names in its pass; inspect names exact ids by describe
    model = sx.train(pq_path, spec, l1=0.0, alpha=0.5, names=10_000)
    names = model.stats["names"]
    assert hashed_column(categorical_key("ini", "a", seed), bits, H) in map(int, names)
    texts = set(names.values())
    assert {"ini=a", "ini=b", "ini=missing"} <= {t.split(" (+more")[0] for t in texts}
    assert any(t.startswith("ini=c x mod=") and " mod 9" in t for t in texts)
    assert model.spec.describe_column(outs["mod*b"].offset + 4 * 3 + 1) == ("mod*b", "mod=4 mod 9 x b=[0.0,inf)")

    # and the CLI's inspect prints those names
    from sparsecross.cli import main

    sx.save_model(model, tmp_path / "m.scx")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "m.scx"), "--top", "100000"]) in (0, None)
    out = capsys.readouterr().out
    assert "ini=c x mod=" in out and "mod=4 mod 9 x b=[0.0,inf)" in out


class OutOfRangeKind(ModuloKind):
    """A faulty kind: its featurizer writes local ids past its own cardinality."""

    name = "outofrange"

    def featurize(self, f, ctx, ids, missing):
        super().featurize(f, ctx, ids, missing)
        ids[-1] = f.option("m") + 5  # cardinality is m + 1


def test_a_registered_kinds_exact_ids_past_its_cardinality_are_refused(monkeypatch) -> None:
    """build_csr trusts local ids (offset + id, no bounds check): an id past the feature's
    block would land in another feature's columns. A kind outside the shipped ones is checked."""
    monkeypatch.setitem(KINDS, "outofrange", OutOfRangeKind())
    spec = sx.parse_spec({"label": {"column": "y"},
                          "features": [{"name": "bad", "kind": "outofrange", "column": "n", "m": 9},
                                       {"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.0]}]})
    with pytest.raises(sx.SparseCrossError, match=r"kind 'outofrange'.*local id 14.*\[0, 10\)"):
        sx.featurize(_table(), spec)


def test_a_kind_registered_before_the_featurizer_loads_is_checked_too() -> None:
    """The usual plugin order: register on import, featurize later.  Whether the featurizer
    module was loaded before or after must not decide whether the check runs."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
import pyarrow as pa
from sparsecross.kinds import KINDS
from sparsecross.kinds._base import Kind

class Bad(Kind):
    name = "bad3"
    keys = frozenset({{"column"}})
    def parse(self, where, t, stored): return {{"options": ()}}
    def to_dict(self, f): return {{"column": f.columns[0]}}
    def cardinality(self, f): return 3
    def describe(self, f, lid): return str(lid)
    def featurize(self, f, ctx, ids, missing):
        missing[:] = 0
        ids[:] = 7

KINDS["bad3"] = Bad()
assert "sparsecross.featurize" not in sys.modules
import sparsecross as sx
spec = sx.parse_spec({{"label": {{"column": "y"}}, "features": [{{"name": "b", "kind": "bad3", "column": "n"}}]}})
try:
    sx.featurize(pa.table({{"n": [1.0, 2.0], "y": [0, 1]}}), spec)
except sx.SparseCrossError as e:
    print("refused:", e)
else:
    print("accepted")
""".format(root=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("refused:") and "local id 7" in out.stdout, out.stdout


def test_a_replaced_shipped_kind_is_checked(monkeypatch) -> None:
    """KINDS["bucket"] replaced by a faulty featurizer: the name is a shipped one, the object is not."""
    from sparsecross.kinds.bucket import BUCKET

    class BadBucket(type(BUCKET)):
        def featurize(self, f, ctx, ids, missing):
            super().featurize(f, ctx, ids, missing)
            ids[0] = 99

    monkeypatch.setitem(KINDS, "bucket", BadBucket())
    spec = sx.parse_spec({"label": {"column": "y"},
                          "features": [{"name": "b", "kind": "bucket", "column": "x", "boundaries": [0.0]}]})
    with pytest.raises(sx.SparseCrossError, match=r"kind 'bucket'.*local id 99"):
        sx.featurize(_table(), spec)


class SkipUnwrittenKind(ModuloKind):
    """Leaves the ids of its missing rows unwritten (garbage), as build_csr ignores them under
    missing = "skip"."""

    name = "skipunwritten"

    def featurize(self, f, ctx, ids, missing):
        super().featurize(f, ctx, ids, missing)
        ids[missing != 0] = np.uint64(2**63)


def test_ids_of_skipped_missing_rows_are_not_checked(monkeypatch) -> None:
    monkeypatch.setitem(KINDS, "skipunwritten", SkipUnwrittenKind())
    table = _table()
    spec = sx.parse_spec({"label": {"column": "y"},
                          "features": [{"name": "s", "kind": "skipunwritten", "column": "n", "m": 9,
                                        "missing": "skip"}]})
    X, _, _ = sx.featurize(table, spec)
    n = table.column("n").to_pylist()
    assert [X.indptr[r + 1] - X.indptr[r] for r in range(len(n))] == [0 if v is None else 1 for v in n]
    spec_bucket = sx.parse_spec({"label": {"column": "y"},
                                 "features": [{"name": "s", "kind": "skipunwritten", "column": "n", "m": 9}]})
    with pytest.raises(sx.SparseCrossError, match="local id"):  # missing = "bucket": the id is used
        sx.featurize(table, spec_bucket)
