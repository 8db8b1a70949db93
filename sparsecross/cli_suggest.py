"""Subcommand ``suggest-spec``: a thin face over :func:`sparsecross.suggest.suggest_spec`.

Registered into :mod:`sparsecross.cli` at start-up, like :mod:`sparsecross.cli_extra`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import cli
from .errors import SparseCrossError, shown_path

__all__ = ["register", "cmd_suggest_spec"]


def cmd_suggest_spec(args: argparse.Namespace) -> int:
    from ._values import check_count
    from .suggest import suggest_spec

    check_count("--sample-rows", args.sample_rows, 1)
    out = cli.check_out(args.out, "--out", "spec.toml")
    cli.guard_outputs({"--out": args.out}, data=args.data)
    if out.exists() and not args.force:
        raise SparseCrossError(f"--out {shown_path(args.out)} exists; pass --force to replace it")
    res = suggest_spec(args.data, args.label, positive=args.positive, threshold=args.threshold,
                       compare=args.compare, weight=args.weight, sample_rows=args.sample_rows, seed=args.seed)
    res.write(out, force=True)
    if args.json:
        cli._print_json({"out": str(out), "rows_profiled": res.rows_profiled, "rows_total": res.rows_total,
                         "features": len(res.spec.to_dict()["features"]), "crosses": len(res.spec.crosses),
                         "geo": [list(g) for g in res.geo],
                         "skipped": [{"column": c, "reason": r} for c, r in res.skipped]})
        return 0
    if not args.quiet:
        for col, reason in res.skipped:
            print(f"sparsecross: skipped column {cli.safe_text(repr(col))}: {cli.safe_text(reason)}", file=sys.stderr)
        n_feat = len(res.spec.to_dict()["features"])
        print(f"wrote {cli.safe_text(str(out))}: {n_feat} features, {len(res.spec.crosses)} crosses "
              f"({res.rows_profiled:,} of {res.rows_total:,} rows profiled); check it with: "
              f"sparsecross check-spec {cli.safe_text(str(out))} --data DATA")
    return 0


def register(sub: Any, common: Any) -> None:
    s = sub.add_parser("suggest-spec", help="profile a sample of the data and write a commented feature spec",
                       description="Read a bounded, seeded sample of DATA and write a commented TOML spec: a "
                       "geo pyramid with bands for latitude/longitude pairs, quantile buckets (and numeric "
                       "features) for numbers, categoricals, time parts of dates, and a few crosses. The "
                       "label, the weight and columns that copy the label are never features; skipped columns "
                       "are named with the reason (in the spec and on stderr).")
    s.add_argument("data", help="Parquet file, folder or glob")
    s.add_argument("--label", required=True, help="label column")
    s.add_argument("--positive", nargs="+", action="extend", metavar="V",
                   help="positive label values (y = label in V...), for a string, integer or bool label")
    s.add_argument("--threshold", type=float, metavar="T", help="y = label > T (see --compare)")
    s.add_argument("--compare", metavar="OP", help="with --threshold: '>' (default), '>=', '<' or '<='")
    s.add_argument("--weight", metavar="COLUMN", help="sample-weight column (never a feature)")
    s.add_argument("--out", required=True, help="spec file to write (e.g. spec.toml)")
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.add_argument("--sample-rows", type=int, default=100_000, dest="sample_rows",
                   help="most rows read into memory for profiling (default 100,000)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    s.add_argument("--json", action="store_true", help="print a JSON summary (skipped columns included)")
    common(s)
    s.set_defaults(func=cmd_suggest_spec)


if register not in cli._EXTRA_COMMANDS:
    cli._EXTRA_COMMANDS.append(register)
