"""The Dask layer as a package (issue 15, item 3): the single-node path never imports it, the
old module ``sparsecross.distributed`` stays a working face, and every worker task is
importable by its new module path (Dask pickles functions by reference).

No cluster here: the behaviour of the package on a cluster is tests/test_distributed.py's.
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_single_node_training_imports_no_part_of_the_dask_layer(sample_path):
    code = (
        "import sys, sparsecross\n"
        f"spec = sparsecross.load_spec({str(ROOT / 'data' / 'specs' / 'synthetic.toml')!r})\n"
        f"sparsecross.train({str(sample_path)!r}, spec)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('sparsecross.dask', 'sparsecross.distributed')))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=600)


def test_train_hands_over_through_the_entry_point_only():
    """train.py names neither the package nor its functions: one door, _cluster_entry."""
    text = (ROOT / "sparsecross" / "train.py").read_text()
    assert "from ._cluster_entry import train_on" in text
    for name in ("from .dask", "from .distributed", "import sparsecross.dask", "train_distributed"):
        assert name not in text, name


def test_old_module_names_are_the_package_objects():
    import sparsecross.distributed as d

    for name, home in d._HOME_OF.items():
        assert getattr(d, name) is getattr(importlib.import_module(home), name), name
    for name in d.__all__:
        assert getattr(d, name) is getattr(importlib.import_module("sparsecross.dask"), name)


def test_setting_an_old_name_sets_it_where_it_is_used(monkeypatch):
    """Tests and worker plugins patch ``sparsecross.distributed.X``; the package module that
    defines and uses X must see it, and undoing the patch must restore both."""
    import sparsecross.distributed as d
    from sparsecross.dask import cluster, lane_tasks, waiting

    original = lane_tasks._task_prepare
    monkeypatch.setattr(d, "PAUSED_LIMIT_S", 1.5)
    monkeypatch.setattr(d, "LOCAL_START_ATTEMPTS", 7)
    monkeypatch.setattr(d, "_task_prepare", len)
    assert waiting.PAUSED_LIMIT_S == 1.5 and cluster.LOCAL_START_ATTEMPTS == 7
    assert lane_tasks._task_prepare is len
    monkeypatch.undo()
    assert waiting.PAUSED_LIMIT_S == d.PAUSED_LIMIT_S == 30.0
    assert lane_tasks._task_prepare is original is d._task_prepare


def test_setting_an_old_name_reaches_the_modules_that_imported_it(monkeypatch):
    """``rounds`` imports ``_task_prepare`` from ``lane_tasks``, four modules ``_plan`` from
    ``plan``, ``training`` ``_require_dask`` from ``cluster``: each binds a name of its own, and
    a patch that set only the home module's did nothing where the code runs."""
    import sparsecross.distributed as d
    from sparsecross.dask import cluster, exact, lane_tasks, plan, rounds, scoring, training

    users = {"_task_prepare": (lane_tasks, rounds), "_plan": (plan, rounds, exact, training, scoring),
             "_require_dask": (cluster, training)}
    originals = {name: getattr(mods[0], name) for name, mods in users.items()}
    marks = {name: object() for name in users}
    for name in users:
        monkeypatch.setattr(d, name, marks[name])
    for name, mods in users.items():
        assert all(getattr(m, name) is marks[name] for m in mods), name
    monkeypatch.undo()
    for name, mods in users.items():
        assert all(getattr(m, name) is originals[name] for m in mods), name
    assert not hasattr(lane_tasks, "_plan")  # a module that does not hold the name gets none


def test_a_patch_through_the_old_module_acts_on_the_running_code(sample_path, specs_dir, monkeypatch):
    """train_distributed calls its own binding of _require_dask: patched through the old module,
    the patch runs (before the fix the real check ran and the fake client failed later)."""
    pytest.importorskip("distributed")
    import sparsecross as sx
    import sparsecross.distributed as d

    class Reached(Exception):
        pass

    def refuse() -> None:
        raise Reached

    monkeypatch.setattr(d, "_require_dask", refuse)
    with pytest.raises(Reached):
        d.train_distributed(sample_path, sx.load_spec(specs_dir / "synthetic.toml"), client=object())


@pytest.mark.parametrize("module", ["plan", "shards", "lane_tasks", "scoring", "runner", "cluster"])
def test_worker_functions_pickle_by_reference_to_their_module(module):
    mod = importlib.import_module(f"sparsecross.dask.{module}")
    tasks = [v for k, v in vars(mod).items()
             if callable(v) and (k.startswith("_task_") or k in ("_identity", "_drop_shards", "_worker_versions"))
             and getattr(v, "__module__", None) == mod.__name__]
    if module in ("plan", "shards", "lane_tasks", "scoring"):
        assert tasks
    for fn in tasks:
        blob = pickle.dumps(fn)
        assert mod.__name__.encode() in blob
        assert pickle.loads(blob) is fn


@pytest.mark.parametrize("bad", [{"prefetch_rounds": -1}, {"prefetch_rounds": "2"}, {"retries": -1},
                                 {"in_flight": 0}, {"lanes": 0}, {"lanes": 10**30}, {"lanes": 65_537},
                                 {"rows_per_round": 10**30}, {"checkpoint_rounds": 2**63},
                                 {"retries": 10**30}, {"prefetch_rounds": 10**30}, {"in_flight": 10**30}])
def test_bad_counts_are_one_clear_error_before_any_cluster(sample_path, specs_dir, bad):
    """prefetch_rounds = -1 ended in a KeyError deep in the round loop; checked up front now.
    Huge counts too: lanes = 10**30 was taken (with admission, one shard per lane)."""
    pytest.importorskip("distributed")
    import sparsecross as sx
    from sparsecross.dask.training import train_distributed
    from sparsecross.errors import ParameterError

    spec = sx.load_spec(specs_dir / "synthetic.toml")
    with pytest.raises(ParameterError, match=next(iter(bad))):
        train_distributed(sample_path, spec, client=object(), **bad)
