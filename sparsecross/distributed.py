"""Compatibility face of :mod:`sparsecross.dask` (the former single module).

Re-exports the public API (``connect``, ``train_distributed``, ``predict_distributed``,
``evaluate_distributed``, ``DaskNotInstalledError``, ``MODES``) and the internal names the
old module had.  Setting one of those names here (a test's monkeypatch, a worker plugin
replacing a task function) sets it wherever :mod:`sparsecross.dask` holds it: in the module
that defines it and in every loaded module of the package that imported it from there (``from
.plan import _plan`` binds a name of its own, which a patch of the home module alone would not
reach), so such patches act on the code that runs and undoing one restores every binding.
A module of the package imported later takes the name from its home, patched or not.  New code
should import from :mod:`sparsecross.dask` (and patch where a name is used).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from .dask import MODES, DaskNotInstalledError, connect, evaluate_distributed, predict_distributed, train_distributed

__all__ = [
    "connect",
    "train_distributed",
    "predict_distributed",
    "evaluate_distributed",
    "DaskNotInstalledError",
    "MODES",
]

#: Module of sparsecross.dask -> the names of the old module it now defines.
_HOMES: dict[str, tuple[str, ...]] = {
    "cluster": ("_INSTALL_HINT", "_WORKER_ENVIRON", "_without_env", "_require_dask", "LOCAL_START_ATTEMPTS",
                "_START_FAILURES", "_start_failure", "_start_local", "_worker_versions", "_check_cluster",
                "_default_window", "_get_client", "log"),
    "runner": ("_NO_LARGE_GRAPH_WARNING", "_Runner", "_identity", "_ordered"),
    "plan": ("_Piece", "_Chunk", "_plan", "_read_chunk", "_concat", "_featurize_chunk", "_holdout_mask",
             "_task_featurize", "_task_featurize_valid"),
    "shards": ("_SHARDS", "_DROPPED", "_ShardLost", "_Shard", "_shard", "_dropped", "_task_shard_init",
               "_task_lookup", "_task_merge", "_task_dump", "_drop_shards", "_set_state", "_RowsState"),
    "lane_tasks": ("_LaneChunk", "_PREPARED", "_prepare", "_task_prepare", "_drop_prepared", "_task_train_lane"),
    "scoring": ("_task_predict", "_task_metrics", "_scoring"),
    "waiting": ("PAUSED_LIMIT_S",),
    "rounds": ("ROUND_FAILURES", "_train_rounds"),
    "faults": ("_rank_suspects", "_name_suspects"),
    "training": ("_validate",),
}
_HOME_OF = {name: f"{__package__}.dask.{mod}" for mod, names in _HOMES.items() for name in names}


_MISSING = object()


def _holders(name: str, home: str) -> list[types.ModuleType]:
    """The loaded modules of the package that bind ``name`` to the object its home module binds."""
    current = getattr(sys.modules[home], name)
    prefix = f"{__package__}.dask"
    return [m for k, m in list(sys.modules.items())
            if (k == prefix or k.startswith(prefix + ".")) and m is not None and getattr(m, name, _MISSING) is current]


class _Compat(types.ModuleType):
    """Setting a name of the old module sets it wherever the package binds it (see above)."""

    def __setattr__(self, name: str, value: Any) -> None:
        home = _HOME_OF.get(name)
        if home is not None:
            for module in _holders(name, home):  # the home among them
                setattr(module, name, value)
        super().__setattr__(name, value)


for _name, _home in _HOME_OF.items():
    globals()[_name] = getattr(importlib.import_module(_home), _name)
del _name, _home
sys.modules[__name__].__class__ = _Compat
