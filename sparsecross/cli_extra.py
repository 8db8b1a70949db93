"""Subcommands for the main job: ``demo``, ``path`` and ``plot-weights``.

Registered into :mod:`sparsecross.cli` at start-up; they call the same library functions.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from . import cli
from .errors import SparseCrossError, shown, shown_path

DEMO_L1_GRID = (0.0, 0.3, 1.0, 3.0, 10.0, 30.0)


def _entropy(p: float) -> float:
    if not 0 < p < 1:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def builtin_spec_path() -> Path:
    """The spec shipped with the package for the synthetic data (same as data/specs/synthetic.toml)."""
    return Path(str(resources.files("sparsecross") / "specs" / "synthetic.toml"))


def ensure_demo_data(cache: Path, rows: int, valid_rows: int, seed: int, quiet: bool) -> tuple[Path, Path, bool]:
    """Generate (once) the demo's training and validation files; the validation rows continue
    the same world after the training rows (``first_row``).  Returns (train, valid, generated)."""
    from .generate import generate

    cache.mkdir(parents=True, exist_ok=True)
    train_path = cache / f"synthetic-seed{seed}-rows{rows}.parquet"
    valid_path = cache / f"synthetic-seed{seed}-rows{valid_rows}-from{rows}.parquet"
    made = False
    for path, n, first in ((train_path, rows, 0), (valid_path, valid_rows, rows)):
        if path.exists():
            continue
        made = True
        bar = cli._Progress(n, f"generating {path.name}", enabled=False if quiet else None)
        try:
            generate(path, rows=n, seed=seed, first_row=first, progress=lambda k: bar.update_to(k))
        finally:
            bar.close()
    return train_path, valid_path, made


def _check_demo_numbers(args: argparse.Namespace) -> None:
    """--rows, --valid-rows and --seed, checked (they name the cached files, and generate
    them: the validation rows follow the training rows); --l1 and --alpha by train's own rule,
    before the data is generated."""
    from ._values import MAX_ROWS, check_count
    from .generate import MAX_SEED
    from .train_params import TrainParams

    TrainParams(alpha=args.alpha, l1=args.l1)

    check_count("--rows", args.rows, 1000, MAX_ROWS)
    check_count("--valid-rows", args.valid_rows, 100, MAX_ROWS)
    if args.rows + args.valid_rows > MAX_ROWS:
        raise SparseCrossError(f"--rows + --valid-rows must be at most {MAX_ROWS:,} (the validation rows follow "
                               f"the training rows), got {shown(args.rows + args.valid_rows)}")
    check_count("--seed", args.seed, 0, MAX_SEED)


def cmd_demo(args: argparse.Namespace) -> int:
    import sparsecross as sx

    from .export import save_model
    from .path import default_cache_dir, regularization_path
    from .train import peak_rss_bytes

    say = (lambda *a: None) if args.json else print
    _check_demo_numbers(args)  # before they name the cache's files
    cache = Path(args.cache or default_cache_dir())
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    out = Path(args.out) if args.out else cache / "demo.scx"
    if args.out:
        cli.check_out(args.out, "--out", "demo.scx")
    train_path, valid_path, made = ensure_demo_data(cache, args.rows, args.valid_rows, args.seed, args.quiet or args.json)
    cli.guard_outputs({"--out": out}, data=train_path, valid=valid_path)
    t_gen = time.perf_counter() - t0
    say(f"data: {train_path} ({args.rows:,} rows) + validation {valid_path.name} ({args.valid_rows:,} rows)"
        + (f", generated in {t_gen:.1f} s" if made else ", cached"))
    t0 = time.perf_counter()
    sx.warmup()
    t_compile = time.perf_counter() - t0
    spec = sx.load_spec(builtin_spec_path())
    on_progress, bar = cli._train_progress(args.quiet or args.json)
    t0 = time.perf_counter()
    try:
        model = sx.train(train_path, spec, valid=valid_path, l1=args.l1, alpha=args.alpha, on_progress=on_progress)
    finally:
        bar.close()
    t_train = time.perf_counter() - t0
    nbytes = save_model(model, out)
    st = model.stats
    geo_cells = spec.feature("cell").grid[0] * spec.feature("cell").grid[1]
    baseline = _entropy(st["valid_positive_rate"])
    report: dict[str, Any] = {
        "rows": st["rows"], "valid_rows": st["valid_rows"], "seconds": t_train,
        "rows_per_second": st["rows"] / t_train, "compile_seconds": t_compile, "generate_seconds": t_gen,
        "peak_rss_bytes": peak_rss_bytes(), "possible_geo_cells": geo_cells,
        "possible_features": spec.n_columns, "touched_features": st["touched_features"],
        "nonzeros": model.nonzeros, "model_bytes": nbytes, "dense_float32_bytes": spec.n_columns * 4,
        "valid_logloss": st["valid_logloss"], "valid_auc": st["valid_auc"],
        "baseline_logloss": baseline, "model_path": str(out), "l1": args.l1, "alpha": args.alpha,
    }
    say("")
    say(f"trained FTRL-Proximal (alpha={args.alpha:g}, l1={args.l1:g}) on {st['rows']:,} rows in "
        f"{t_train:.1f} s = {report['rows_per_second']:,.0f} rows/s (compile/cache load {t_compile:.1f} s); "
        f"peak memory {cli._fmt_bytes(report['peak_rss_bytes'])}")
    say(f"possible features   {spec.n_columns:>15,}  ({geo_cells:,} arc-minute cells + buckets + 2**{spec.hashing.bits} hashed)")
    say(f"touched features    {st['touched_features']:>15,}  (the only ones with optimizer state)")
    say(f"nonzero weights     {model.nonzeros:>15,}  (L1 zeroed {1 - model.nonzeros / max(st['touched_features'], 1):.1%} of the touched)")
    say(f"model file          {nbytes:>15,} bytes  ({out}); a dense float32 vector: {spec.n_columns * 4:,} bytes "
        f"({spec.n_columns * 4 / nbytes:,.0f}x larger)")
    say(f"validation logloss  {st['valid_logloss']:>15.4f}  vs {baseline:.4f} for the best constant rate "
        f"({1 - st['valid_logloss'] / baseline:.1%} better); AUC {st['valid_auc']:.4f} vs 0.5")
    if not args.no_path:
        t0 = time.perf_counter()
        res = regularization_path(train_path, spec, l1=DEMO_L1_GRID, alpha=args.alpha, valid=valid_path)
        report["path"] = res.to_dict()
        report["path_seconds"] = time.perf_counter() - t0
        say("")
        say(f"L1 path ({len(res.points)} models trained in one read of the data, {report['path_seconds']:.1f} s):")
        say(f"  {'l1':>6} {'nonzeros':>10} {'bytes':>10} {'logloss':>8} {'AUC':>7}")
        for p in res.points:
            say(f"  {p.l1:>6g} {p.nonzeros:>10,} {p.model_bytes:>10,} {p.valid_logloss:>8.4f} {p.valid_auc:>7.4f}")
        say("  too small an l1 keeps every touched weight; an appropriate one zeroes most at almost no loss;"
            " too large a one collapses the model.")
        say("  Next: sparsecross path SPEC DATA --valid V --max-nonzeros N --out best.scx --plot path.png")
    report["total_seconds"] = time.perf_counter() - t_all
    if args.json:
        cli._print_json(report)
    else:
        say(f"\ndone in {report['total_seconds']:.1f} s; inspect the model with: sparsecross inspect {out}")
        say("Your own data: sparsecross suggest-spec DATA --label COLUMN --out spec.toml, then "
            "sparsecross tune spec.toml DATA --holdout 0.2 --out best.scx")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from .export import save_model
    from .path import parse_grid, regularization_path
    from .spec import load_spec

    l1 = parse_grid(args.l1, "l1")
    l2 = parse_grid(args.l2, "l2")
    cli._check_budget_flags(args)
    if args.plot:
        from .plots import require_matplotlib

        from .plots._common import check_size

        require_matplotlib()
        check_size(args.plot_width, args.plot_height)
        if not args.plot.lower().endswith(".png"):
            raise SparseCrossError(f"--plot must name a .png file, got {shown_path(args.plot)}")
        cli.check_out(args.plot, "--plot", "path.png")
    if args.out and args.max_nonzeros is None and args.max_bytes is None:
        raise SparseCrossError("--out needs a budget (--max-nonzeros or --max-bytes) to choose the model to write")
    if args.out:
        cli.check_out(args.out, "--out", "best.scx")
    cli.guard_outputs({"--out": args.out, "--plot": args.plot}, spec=args.spec, data=args.data, valid=args.valid)
    spec = load_spec(args.spec)
    opts = cli._train_options(args, spec)
    quiet = args.quiet or args.json
    # the same training settings for the path and for the L2-only comparison of --plot
    common = dict(alpha=opts["alpha"], beta=opts["beta"], epochs=opts["epochs"],
                  label_smoothing=opts["label_smoothing"], valid=args.valid, holdout=opts["holdout"],
                  batch_rows=args.batch_rows,
                  state_dtype=args.state_dtype, shuffle=opts["shuffle"], shuffle_seed=opts["shuffle_seed"],
                  shuffle_buffer_rows=opts["shuffle_buffer_rows"], admit_after=opts["admit_after"],
                  admit_probability=opts["admit_probability"], admit_filter_mb=opts["admit_filter_mb"],
                  max_state_mb=opts["max_state_mb"], state_bits=opts["state_bits"])
    res = regularization_path(
        args.data, spec, l1=l1, l2=l2, max_nonzeros=args.max_nonzeros, max_bytes=args.max_bytes,
        encoding=args.encoding,
        on_pass=None if quiet else (lambda k, n: print(f"pass {k}: training {n} model(s)", file=sys.stderr)),
        **common,
    )
    l2_res = None
    if args.plot:
        from .plots import plot_path

        l2_res = regularization_path(args.data, spec, l1=[0.0], l2=[0.1, 1.0, 10.0, 100.0, 1000.0], **common)
        plot_path(res.points, args.plot, l2_points=l2_res.points, chosen=res.chosen, budget=res.budget,
                  title=f"{Path(args.spec).name} on {_data_name(args.data)}: validation logloss and size over "
                        f"l1 ({len(res.points)} models, {res.rows:,} rows)",
                  width=args.plot_width, height=args.plot_height)
    written = None
    if args.out and res.chosen is not None and res.chosen.model is not None:
        written = save_model(res.chosen.model, args.out, encoding=args.encoding)
    if args.json:
        d = res.to_dict()
        d["written_bytes"] = written
        d["out"] = args.out if written else None
        cli._print_json(d)
    else:
        print(f"{'l1':>10} {'l2':>8} {'nonzeros':>10} {'bytes':>10} {'logloss':>8} {'AUC':>7}")
        for p in res.points:
            mark = "  <- chosen" if p is res.chosen else ""
            print(f"{p.l1:>10.4g} {p.l2:>8g} {p.nonzeros:>10,} {p.model_bytes:>10,} {p.valid_logloss:>8.4f} "
                  f"{p.valid_auc:>7.4f}{mark}")
        print(f"{len(res.points)} models, {res.passes} pass(es) over {res.rows:,} rows, {res.seconds:.1f} s")
        if res.note:
            print(res.note)
        if written:
            print(f"wrote {args.out} ({written:,} bytes)")
        if args.plot:
            print(f"wrote {args.plot}")
    if res.budget is not None and res.chosen is None:
        raise SparseCrossError(res.note)
    return 0


def _data_name(data: Any) -> str:
    """A short name of the training data for a plot title."""
    items = data if isinstance(data, (list, tuple)) else [data]
    first = Path(str(items[0])).name
    return first if len(items) == 1 else f"{first} (+{len(items) - 1})"


def cmd_plot_weights(args: argparse.Namespace) -> int:
    from .export import load_model
    from .plots import plot_weights_map, require_matplotlib
    from .plots._common import check_png, check_size
    from .plots._geo import parse_bbox

    require_matplotlib()
    check_png(args.out)
    check_size(args.width, args.height)
    view = parse_bbox(args.bbox) if args.bbox is not None else None
    from ._values import check_count

    check_count("--max-cells", args.max_cells, 1)
    if args.geo_effect and args.feature is not None:
        raise SparseCrossError("give --feature or --geo-effect, not both")
    cli.check_out(args.out, "--out", "map.png")
    cli.guard_outputs({"--out": args.out}, model=args.model)
    model = load_model(args.model)
    res = plot_weights_map(model, args.out, feature=args.feature, geo_effect=args.geo_effect, bbox=view,
                           max_cells=args.max_cells, name=Path(args.model).name, width=args.width,
                           height=args.height)
    if not args.quiet:
        lon0, lat0, lon1, lat1 = res.info["extent"]
        print(f"wrote {res.path} ({res.info['cells']:,} cells, view {lon0:.4f},{lat0:.4f},{lon1:.4f},{lat1:.4f})")
    return 0


def register(sub: Any, common: Any) -> None:
    d = sub.add_parser("demo", help="the whole story on generated data, in about a minute",
                       description="Generate (once, cached) a synthetic global geo data set, train FTRL-Proximal "
                       "on the 233,280,000-cell arc-minute geo cross plus other features, write the model file, "
                       "report size, speed and accuracy, and show the L1 path.")
    d.add_argument("--rows", type=int, default=2_000_000, help="training rows (default 2,000,000)")
    d.add_argument("--valid-rows", type=int, default=250_000, dest="valid_rows",
                   help="validation rows, from the same world (default 250,000)")
    d.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    d.add_argument("--cache", help="data/model folder (default $SPARSECROSS_CACHE or ~/.cache/sparsecross)")
    d.add_argument("--out", help="model file (default CACHE/demo.scx)")
    d.add_argument("--l1", type=float, default=1.0, help="L1 strength (default 1.0)")
    d.add_argument("--alpha", type=float, default=0.1, help="FTRL learning-rate scale (default 0.1)")
    d.add_argument("--no-path", action="store_true", dest="no_path", help="skip the L1 path")
    d.add_argument("--json", action="store_true", help="print a JSON report")
    common(d)
    d.set_defaults(func=cmd_demo)

    p = sub.add_parser("path", help="regularization path over l1 (x l2) with an optional size budget",
                       description="Train every (l1, l2) of the grid in one read of the data and report "
                       "nonzeros, artifact bytes, validation logloss and AUC. With --max-nonzeros or "
                       "--max-bytes, refine l1 near the budget and write the best model within it (--out).")
    p.add_argument("spec", help="feature spec (TOML)")
    p.add_argument("data", help="training Parquet")
    p.add_argument("--l1", default="0,0.1,0.3,1,3,10", help="increasing l1 grid (default 0,0.1,0.3,1,3,10)")
    p.add_argument("--l2", default="0", help="increasing l2 grid (default 0)")
    cli._add_train_flags(p, grid=True)
    b = p.add_mutually_exclusive_group()
    b.add_argument("--max-nonzeros", type=int, dest="max_nonzeros", help="budget: at most this many nonzero weights")
    b.add_argument("--max-bytes", type=int, dest="max_bytes", help="budget: artifact of at most this many bytes")
    p.add_argument("--out", help="write the chosen model here (needs a budget)")
    p.add_argument("--encoding", choices=("float32", "float16", "q2.13"), default="float32",
                   help="artifact encoding used for sizes and --out (default float32)")
    p.add_argument("--plot", metavar="PATH.png", help="plot nonzeros/logloss vs l1 and L1-vs-L2 weight histograms")
    p.add_argument("--plot-width", type=int, default=1200, dest="plot_width", help="plot width in pixels")
    p.add_argument("--plot-height", type=int, default=500, dest="plot_height", help="plot height in pixels")
    p.add_argument("--json", action="store_true", help="print JSON")
    common(p)
    p.set_defaults(func=cmd_path)

    w = sub.add_parser("plot-weights", help="map of a geo model's cell weights (PNG)",
                       description="Map the geo weights of MODEL: cells drawn at their true size on their grid, "
                       "zoomed to the extent of the weights (or --bbox), red positive and blue negative on a "
                       "scale centred at zero. With --geo-effect, the summed effect of every geo block.")
    w.add_argument("model", help="model file (.scx)")
    w.add_argument("--out", required=True, help="PNG file to write")
    w.add_argument("--feature", help="geo feature to draw (default: the first geo cell feature); of a geo "
                   "pyramid the finest level, or a level or band by its name (cell@6, cell.lat@6)")
    w.add_argument("--geo-effect", action="store_true", dest="geo_effect",
                   help="draw the summed geo effect: every geo cell level, lat/lon band and cross of geo "
                   "features only, evaluated on the model's finest geo grid (crosses with non-geo features "
                   "are not included)")
    w.add_argument("--bbox", metavar="LON0,LAT0,LON1,LAT1",
                   help="view in degrees: west,south,east,north (default: the extent of the weights)")
    w.add_argument("--max-cells", type=int, default=4_000_000, dest="max_cells",
                   help="most grid cells evaluated over the view (default 4,000,000); a feature's grid with more "
                   "cells than this or than the picture's pixels is drawn as k x k blocks of their mean weight, a "
                   "larger --geo-effect grid is refused")
    w.add_argument("--width", type=int, default=1400, help="width in pixels (default 1400)")
    w.add_argument("--height", type=int, default=750, help="height in pixels (default 750)")
    common(w)
    w.set_defaults(func=cmd_plot_weights)


if register not in cli._EXTRA_COMMANDS:
    cli._EXTRA_COMMANDS.append(register)

__all__ = ["register", "cmd_demo", "cmd_path", "cmd_plot_weights", "json"]
