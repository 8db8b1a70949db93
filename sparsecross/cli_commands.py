"""The small subcommands: ``generate``, ``check-spec``, ``predict``, ``eval`` and ``inspect``
(their arguments and what they run); ``train`` is in :mod:`sparsecross.cli_train`."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from ._defaults import PREDICT_BATCH_ROWS
from .cli_dask import _dask_client
from .cli_guards import check_out, guard_outputs
from .cli_output import _fmt, _fmt_bytes, _print_json, _Progress, safe_text
from .errors import SparseCrossError, shown_path

__all__ = ["cmd_generate", "cmd_check_spec", "cmd_predict", "cmd_eval", "cmd_inspect"]


def cmd_generate(args: argparse.Namespace) -> int:
    from ._values import MAX_ROWS, check_count
    from .generate import generate

    check_count("--rows", args.rows, 1, MAX_ROWS)  # before the bar and the first row (a huge one ran for ever)
    bar = _Progress(args.rows, "generate", enabled=None if not args.quiet else False)
    t0 = time.perf_counter()
    try:
        path = generate(args.out, rows=args.rows, seed=args.seed, row_group_size=args.row_group_size,
                        overwrite=args.overwrite, progress=lambda n: bar.update_to(n))
    except FileExistsError:
        raise SparseCrossError(f"{shown_path(args.out)} exists; pass --overwrite to replace it") from None
    except (ValueError, IsADirectoryError) as exc:
        raise SparseCrossError(str(exc)) from None
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    if not args.quiet:
        print(f"wrote {args.rows:,} rows to {path} ({_fmt_bytes(path.stat().st_size)}) in {dt:.1f} s")
    return 0


def cmd_check_spec(args: argparse.Namespace) -> int:
    from .spec import load_spec

    spec = load_spec(args.spec)
    if args.data:  # the same checks, and messages, as train's
        from .featurize import resolve_spec
        from .schema import source_schema

        source_schema(args.data, spec, role="the data")
        spec = resolve_spec(args.data, spec, holdout=spec.train.get("holdout"))
    if spec.needs_data:
        if args.json:
            _print_json({"spec": spec.to_dict(), "sha256": spec.sha256, "n_columns": None,
                         "note": "bucket quantiles are resolved from the training data (pass --data)"})
            return 0
        print("spec is valid; bucket quantiles are resolved from the training data (pass --data to see them)")
        print(json.dumps(spec.to_dict(), indent=2))
        return 0
    if args.json:
        _print_json({"spec": spec.to_dict(), "sha256": spec.sha256, "n_columns": spec.n_columns,
                     "blocks": [{"name": o.name, "offset": o.offset, "cardinality": o.cardinality,
                                 "hashed": o.kind != 0} for o in spec.outputs]})
        return 0
    print(f"spec OK  sha256 {spec.sha256[:16]}  hash contract v1")
    print(f"{'block':<24} {'kind':<8} {'offset':>14} {'columns':>14}")
    for o in spec.outputs:
        if o.kind == 0:
            print(f"{o.name:<24} {'exact':<8} {o.offset:>14,} {o.cardinality:>14,}")
    for o in spec.outputs:
        if o.kind != 0:
            print(f"{o.name:<24} {'hashed':<8} {o.offset:>14,} {'(shared)':>14}")
    print(f"total columns {spec.n_columns:,} (hashed block 2**{spec.hashing.bits} at {spec.hashed_offset:,})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .export import load_model
    from .predict import predict_file

    model = load_model(args.model)
    keep = [c.strip() for c in args.keep.split(",") if c.strip()] if args.keep else []
    if args.margin and args.dask:
        from .errors import ParameterError

        raise ParameterError("--margin is not supported with --dask yet; predict without --dask")
    out = check_out(args.out, "--out", "pred.parquet")
    guard_outputs({"--out": out}, model=args.model, data=args.data)
    bar = _Progress(None, "predict", enabled=False if args.quiet or args.dask else None)
    t0 = time.perf_counter()
    try:
        if args.dask:
            from .dask import predict_distributed

            with _dask_client(args.dask) as client:
                rows = predict_distributed(model, args.data, out, client=client, keep=keep)
        else:
            rows = predict_file(model, args.data, out, keep=keep, batch_rows=args.batch_rows, on_batch=bar.add,
                                margin=args.margin)
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    if not args.quiet:
        print(f"wrote {rows:,} predictions to {out} in {dt:.1f} s ({rows / max(dt, 1e-9):,.0f} rows/s)")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .export import load_model
    from .predict import evaluate

    model = load_model(args.model)
    model.spec = model.spec.with_positive_weight(args.positive_weight)  # the flag > the model's class weight
    bar = _Progress(None, "eval", enabled=False if (args.quiet or args.json or args.dask) else None)
    t0 = time.perf_counter()
    try:
        if args.dask:
            from .dask import evaluate_distributed

            with _dask_client(args.dask) as client:
                res = evaluate_distributed(model, args.data, client=client)
        else:
            res = evaluate(model, args.data, batch_rows=args.batch_rows, on_batch=bar.add)
    finally:
        bar.close()
    if "baseline_logloss" not in res:  # (Dask) the same: the entropy of the weighted positive rate
        from .metrics import entropy

        res["baseline_logloss"] = entropy(res["positive_rate"])
    res["seconds"] = time.perf_counter() - t0
    if args.json:
        _print_json(res)
    else:
        print(f"rows {res['rows']:,}  logloss {_fmt(res['logloss'])} (constant rate {_fmt(res['baseline_logloss'])})  "
              f"AUC {_fmt(res['auc'])}  positive rate {_fmt(res['positive_rate'])}"
              + (f"  skipped {res['skipped_rows']:,} rows with a missing label" if "skipped_rows" in res else ""))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ._values import check_count
    from .inspect import inspect_model

    info = inspect_model(args.model, top=check_count("--top", args.top, 0))
    if args.json:
        _print_json(info)
        return 0

    def say(line: str) -> None:  # everything read from the file is untrusted: escape it
        print(safe_text(line))

    say(f"{args.model}: sparsecross model, format {info['format_version']}, "
        f"values {info['value_encoding']}, library {info['library_version'] or '?'}")
    say(f"  nonzeros {info['nonzeros']:,} of {info['possible_features']:,} possible features; "
        f"bias {info['bias']:.6g}")
    per_nz = "n/a" if info["bytes_per_nonzero"] is None else f"{info['bytes_per_nonzero']:.2f}"
    say(f"  file {info['file_bytes']:,} bytes ({per_nz} bytes per nonzero); "
        f"a dense float32 vector would be {_fmt_bytes(info['dense_float32_bytes'])}")
    err = info.get("max_abs_error")
    if err is not None and info["value_encoding"] != "float32":
        say(f"  {info['value_encoding']} encoding: largest weight error {err:.3g}"
            + (f", {info['clipped']:,} weights clipped to the encoding's range" if info.get("clipped") else ""))
    say(f"  spec sha256 {info['spec_sha256'][:16]}; blocks: "
        + ", ".join(f"{b['name']} ({b['nonzeros']:,})" for b in info["blocks"]))
    if info["schema"]:
        say("  columns: " + ", ".join(f"{c} ({t})" for c, t in sorted(info["schema"].items())))
    params = info["params"]
    say("  params: " + ", ".join(f"{k}={params[k]}" for k in sorted(params)))
    st = info["stats"]
    for k in ("rows", "train_rows", "valid_rows", "skipped_rows", "valid_skipped_rows", "best_epoch",
              "touched_features", "admitted_features", "rejected_sightings", "admit_filter_bytes",
              "progressive_logloss", "valid_logloss", "valid_auc"):
        if k in st:
            say(f"  {k}: {_fmt(st[k])}" if not isinstance(st[k], int) else f"  {k}: {st[k]:,}")
    if info["top"]:
        say(f"  top {len(info['top'])} weights by magnitude:")
        for t in info["top"]:
            say(f"    {t['weight']:+.4f}  {t['block']:<16} {t['description']}")
    return 0


def add_generate(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``generate`` subcommand."""
    g = sub.add_parser("generate", help="write synthetic global geo data with a planted sparse model",
                       description="Write synthetic global geo data (population clusters plus a uniform "
                       "background, a low-cardinality string, a Zipf user id, numeric columns with nulls) "
                       "and a 0/1 label drawn from a planted logistic model with sparse arc-minute cell "
                       "effects, as one Parquet file written in row groups.")
    g.add_argument("--rows", type=int, default=1_000_000, help="number of rows (default 1,000,000)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--out", required=True, help="output Parquet file")
    g.add_argument("--row-group-size", type=int, default=500_000, dest="row_group_size",
                   help="rows per Parquet row group (default 500,000)")
    g.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    common(g)
    g.set_defaults(func=cmd_generate)


def add_check_spec(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``check-spec`` subcommand."""
    c = sub.add_parser("check-spec", help="validate a feature spec and show its column layout",
                       description="Validate a TOML feature spec (see the README) and print the global "
                       "column layout; with --data also check the data's schema and resolve quantiles.")
    c.add_argument("spec", help="feature spec (TOML)")
    c.add_argument("--data", help="Parquet file, folder or glob to check against")
    c.add_argument("--json", action="store_true", help="print JSON")
    common(c)
    c.set_defaults(func=cmd_check_spec)


def add_predict(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``predict`` subcommand."""
    pr = sub.add_parser("predict", help="score Parquet with a model, writing Parquet",
                        description="Featurize DATA with the spec inside MODEL and write P(y=1) as "
                        "column 'probability' (plus --keep columns) to --out, streaming.")
    pr.add_argument("model", help="model file (.scx)")
    pr.add_argument("data", help="Parquet file, folder or glob")
    pr.add_argument("--out", required=True, help="output Parquet file")
    pr.add_argument("--keep", help="comma-separated input columns to copy to the output (e.g. an id)")
    pr.add_argument("--margin", action="store_true",
                    help="also write the raw log-odds X @ w + bias as column 'margin' (float64)")
    pr.add_argument("--batch-rows", type=int, default=PREDICT_BATCH_ROWS, dest="batch_rows",
                    help=f"rows per batch (default {PREDICT_BATCH_ROWS:,})")
    pr.add_argument("--dask", metavar="ADDRESS", help="score on Dask: local:N or tcp://HOST:PORT (same result)")
    common(pr)
    pr.set_defaults(func=cmd_predict)


def add_eval(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``eval`` subcommand."""
    e = sub.add_parser("eval", help="logloss and ROC AUC of a model on labelled Parquet",
                       description="Score labelled Parquet with MODEL (label from the embedded spec) and "
                       "print rows, logloss and ROC AUC.")
    e.add_argument("model", help="model file (.scx)")
    e.add_argument("data", help="Parquet file, folder or glob")
    e.add_argument("--json", action="store_true", help="print JSON with keys rows, logloss, auc")
    e.add_argument("--batch-rows", type=int, default=PREDICT_BATCH_ROWS, dest="batch_rows",
                   help=f"rows per batch (default {PREDICT_BATCH_ROWS:,})")
    e.add_argument("--positive-weight", type=float, dest="positive_weight", metavar="W",
                   help="class weight of positive rows in the weighted metrics (default: the model's, "
                   "as it was trained)")
    e.add_argument("--dask", metavar="ADDRESS", help="evaluate on Dask: local:N or tcp://HOST:PORT")
    common(e)
    e.set_defaults(func=cmd_eval)


def add_inspect(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``inspect`` subcommand."""
    i = sub.add_parser("inspect", help="show what a model file holds",
                       description="Format, spec, parameters, nonzeros, bytes per nonzero, and the "
                       "largest weights with readable feature names.")
    i.add_argument("model", help="model file (.scx)")
    i.add_argument("--top", type=int, default=10, help="how many of the largest weights to list, 0 for none (default 10)")
    i.add_argument("--json", action="store_true", help="print JSON")
    common(i)
    i.set_defaults(func=cmd_inspect)
