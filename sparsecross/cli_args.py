"""The training flags shared by ``train``, ``path`` and ``tune`` (hyperparameters, order,
admission and the state budget), and how they meet the spec's ``[train]`` table: flags >
``[train]`` > defaults."""

from __future__ import annotations

import argparse
from typing import Any

from ._defaults import DEFAULT_BATCH_ROWS, DEFAULT_SHUFFLE_BUFFER_ROWS
from .errors import SparseCrossError

__all__ = ["_train_options", "_add_train_flags", "_add_memory_flags", "_check_budget_flags"]


def _check_budget_flags(args: argparse.Namespace) -> None:
    """``--max-nonzeros`` and ``--max-bytes`` of ``path`` and ``tune``, counts in [0, 2**63 - 1],
    checked before any work (0 is a budget: no model meets it, said after the run)."""
    from ._values import check_count  # here: it imports NumPy (--help must not)

    for flag, value in (("--max-nonzeros", args.max_nonzeros), ("--max-bytes", args.max_bytes)):
        if value is not None:
            check_count(flag, value, 0)


def _train_options(args: argparse.Namespace, spec: Any) -> dict[str, Any]:
    """Every key of the spec's [train] table: CLI flags > the table > library defaults, by the
    rule the Python API follows (:func:`sparsecross.train_options.resolve_train_options`);
    ``args.batch_rows`` is set to its resolved value, the rest is returned."""
    from .train_options import TRAIN_DEFAULTS, resolve_train_options

    if getattr(args, "admit_after", None) is not None and getattr(args, "admit_probability", None) is not None:
        raise SparseCrossError("give either --admit-after or --admit-probability, not both")
    given = {k: getattr(args, k, None) for k in TRAIN_DEFAULTS}
    out = resolve_train_options(spec, given, valid=getattr(args, "valid", None))
    if not out["shuffle"] and (given["shuffle_seed"] is not None or given["shuffle_buffer_rows"] is not None):
        raise SparseCrossError("--shuffle-seed and --shuffle-buffer-rows need --shuffle "
                               "(or [train] shuffle = true in the spec)")
    args.batch_rows = out.pop("batch_rows")
    return out


def _add_train_flags(p: argparse.ArgumentParser, *, grid: bool = False) -> None:
    g = p.add_argument_group("FTRL-Proximal hyperparameters (flags > the spec's [train] table > defaults)")
    g.add_argument("--alpha", type=float, help="learning-rate scale, in (0, 1e12] (default 0.1); NOT sklearn's alpha")
    g.add_argument("--beta", type=float, help="learning-rate smoothing, in [0, 1e12] (default 1.0)")
    if not grid:
        g.add_argument("--l1", type=float,
                       help="L1 strength, in [0, 1e12]: weights are 0 while |z| <= l1 (default 1.0)")
        g.add_argument("--l2", type=float, help="L2 strength, in [0, 1e12] (default 0.0)")
    g.add_argument("--epochs", type=int, help="passes over the data (default 1)")
    g.add_argument("--label-smoothing", type=float, dest="label_smoothing",
                   help="targets become y*(1-eps)+eps/2 (default 0)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--valid", metavar="DATA", help="validation Parquet (scored after every epoch)")
    v.add_argument("--holdout", type=float, metavar="F",
                   help="keep a seeded-hash fraction F of the rows out of training for validation")
    p.add_argument("--batch-rows", type=int, dest="batch_rows", default=None,
                   help=f"rows per Arrow batch (memory scales with it; results do not; default {DEFAULT_BATCH_ROWS:,})")
    p.add_argument("--state-dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the optimizer state (default float32)")
    o = p.add_argument_group("training order (flags > the spec's [train] table > defaults)")
    o.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                   help="read every epoch in a new seeded order: row groups permuted, then rows permuted "
                   "within a buffer (default: the files' order)")
    o.add_argument("--shuffle-seed", type=int, dest="shuffle_seed", metavar="SEED",
                   help="seed of the order (default 0): same seed, same model")
    o.add_argument("--shuffle-buffer-rows", type=int, dest="shuffle_buffer_rows", metavar="ROWS",
                   help="rows permuted together; memory grows with it, never with the data "
                   f"(default {DEFAULT_SHUFFLE_BUFFER_ROWS:,})")
    _add_memory_flags(p, per_point=grid)


def _add_memory_flags(p: argparse.ArgumentParser, *, per_point: bool = False) -> None:
    """Admission and the state budget (``per_point``: a grid command, where every point has
    its own filter and its own budget)."""
    a = p.add_argument_group("memory: admission (which features get optimizer state; default: every feature) and "
                             "the state budget (flags > the spec's [train] table)"
                             + ("; every grid point has its own filter and its own budget" if per_point else ""))
    a.add_argument("--state-bits", type=int, choices=(32, 16), dest="state_bits", default=None,
                   help="bits of each stored z and n: 16 packs a feature's state in 8 bytes instead of 12 "
                   "(randomized rounding; test logloss within 0.01%% where measured); float32 state only, "
                   "not with --dask; [train] state_bits (default 32)")
    a.add_argument("--admit-after", type=int, dest="admit_after", metavar="N",
                   help="a feature gets state from its N-th sighting on (2..15), counted in a counting Bloom "
                   "filter; its earlier gradients are dropped (1 = every feature)")
    a.add_argument("--admit-probability", type=float, dest="admit_probability", metavar="P",
                   help="Poisson inclusion: each sighting of a feature without state admits it with "
                   "probability P, 0 < P <= 1 (seeded, deterministic)")
    a.add_argument("--admit-filter-mb", type=float, dest="admit_filter_mb", metavar="MB",
                   help="size of --admit-after's filter in MiB, rounded down to a power of two (default: "
                   "1 byte per training row rounded up to a power of two, 64 KiB..256 MiB; about 4 bytes "
                   "per distinct feature keeps false 'seen before' under 5%%)")
    a.add_argument("--max-state-mb", type=float, dest="max_state_mb", metavar="M",
                   help="state budget in MiB: the optimizer state (table, growths included, and admission "
                   "filters) never exceeds M; when full, features are evicted (zero weights seen least first, "
                   "then the smallest |z|); [train] max_state_mb; "
                   + ("per point: the points' states together hold up to points x M" if per_point
                      else "with --dask: M / lanes per shard; not with --early-stop"))
