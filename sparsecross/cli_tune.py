"""The ``tune`` subcommand: alpha x l1 grid with early stopping, and optional cross search.

Registered into :mod:`sparsecross.cli` at start-up; a thin face over
:func:`sparsecross.tune.tune` and :func:`sparsecross.crosssearch.search_and_tune`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import cli
from .cli_output import safe_text
from .errors import SparseCrossError


def _grid(text: str | None, default: tuple[float, ...], name: str) -> list[float]:
    from .path import parse_grid

    return list(default) if text is None else parse_grid(text, name)


def cmd_tune(args: argparse.Namespace) -> int:
    from ._defaults import CROSS_MIN_GAIN as DEFAULT_MIN_GAIN
    from ._values import check_count
    from .crosssearch import check_min_gain
    from .export import save_model
    from .spec import load_spec
    from .tune import DEFAULT_ALPHA, DEFAULT_L1

    alpha = _grid(args.alpha_grid, DEFAULT_ALPHA, "alpha")
    l1 = _grid(args.l1_grid, DEFAULT_L1, "l1")
    if args.spec_out and args.search_crosses is None:
        raise SparseCrossError("--spec-out needs --search-crosses K (it writes the spec with the crosses found)")
    if args.search_crosses is not None:
        check_count("--search-crosses", args.search_crosses, 1)
    if args.min_gain is not None and args.search_crosses is None:
        raise SparseCrossError("--min-gain needs --search-crosses K (it is the gain a cross must bring)")
    min_gain = DEFAULT_MIN_GAIN if args.min_gain is None else check_min_gain(args.min_gain)
    check_count("--names", args.names, 0)
    cli._check_budget_flags(args)
    cli.check_out(args.out, "--out", "best.scx")
    if args.spec_out:
        cli.check_out(args.spec_out, "--spec-out", "tuned.toml")
    if args.plot:  # checked before any training: matplotlib present, a .png in a folder that exists
        from .plots import require_matplotlib
        from .plots._common import check_png

        require_matplotlib()
        check_png(args.plot)
        cli.check_out(args.plot, "--plot", "tune.png")
    cli.guard_outputs({"--out": args.out, "--spec-out": args.spec_out, "--plot": args.plot}, spec=args.spec,
                      data=args.data, valid=args.valid)
    named = [Path(f).resolve() for f in (args.out, args.spec_out, args.plot) if f]
    if len(set(named)) < len(named):
        raise SparseCrossError("--out, --spec-out and --plot must name different files")
    spec = load_spec(args.spec)
    # beta, l2, label smoothing, holdout, order, admission, state budget: flags > [train] > defaults;
    # --patience > [train] early_stop > 1 (tune resolves it); alpha, l1, epochs: the grids and --epochs-max
    opts = cli._train_options(args, spec)
    quiet = args.quiet or args.json
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    options: dict[str, Any] = dict(
        alpha=alpha, l1=l1, l2=opts["l2"], beta=opts["beta"], epochs_max=args.epochs_max, patience=args.patience,
        label_smoothing=opts["label_smoothing"], valid=args.valid, holdout=opts["holdout"],
        max_nonzeros=args.max_nonzeros, max_bytes=args.max_bytes, encoding=args.encoding,
        batch_rows=args.batch_rows, state_dtype=args.state_dtype, shuffle=opts["shuffle"],
        shuffle_seed=opts["shuffle_seed"], shuffle_buffer_rows=opts["shuffle_buffer_rows"], names=args.names,
        admit_after=opts["admit_after"], admit_probability=opts["admit_probability"],
        admit_filter_mb=opts["admit_filter_mb"], max_state_mb=opts["max_state_mb"], state_bits=opts["state_bits"],
        on_epoch=lambda e, n: say(f"epoch {e}: training {n} point(s)"),
    )
    search = None
    if args.search_crosses is not None:
        from .crosssearch import search_and_tune, spec_text_with_crosses, write_spec

        search, _first, res = search_and_tune(
            args.data, spec, k=args.search_crosses, min_gain=min_gain,
            on_round=lambda r, n: say(f"cross search round {r}: {n} candidate(s)"), **options)
        if args.spec_out:
            text = Path(args.spec).read_text(encoding="utf-8")
            write_spec(spec_text_with_crosses(text, search.added), args.spec_out)
    else:
        from .tune import tune

        res = tune(args.data, spec, **options)
    written = None
    if res.chosen is not None and res.chosen.model is not None:
        written = save_model(res.chosen.model, args.out, encoding=args.encoding)
    if args.plot:
        from .cli_extra import _data_name
        from .plots import plot_tune

        plot_tune(res.points, args.plot, title=f"tune {Path(args.spec).name} on {_data_name(args.data)}: validation "
                  f"logloss (nonzeros) over {len(alpha)} alpha x {len(l1)} l1, {res.rows:,} rows")
    if args.json:
        d = res.to_dict()
        d.update(written_bytes=written, out=args.out if written else None)
        if search is not None:
            d["cross_search"] = search.to_dict()
            d["spec_out"] = args.spec_out
        d["plot"] = args.plot
        cli._print_json(d)
    else:
        _print_table(res, search, args, written)
    if res.budget is not None and res.chosen is None:
        raise SparseCrossError(res.note)
    return 0


#: Flags that change the model, repeated in the `train` command the summary names.
_MEMORY_FLAGS = ("admit_after", "admit_probability", "admit_filter_mb", "max_state_mb", "state_bits")


def _print_table(res: Any, search: Any, args: argparse.Namespace, written: int | None) -> None:
    if search is not None:
        for a in search.added:
            print(f"cross {safe_text(' x '.join(a.features))}: validation logloss {a.logloss_before:.5f} -> "
                  f"{a.logloss_after:.5f} (gain {a.gain:.2%})")
        print(f"cross search: {len(search.added)} cross(es) added; stopped: {safe_text(search.stopped)}"
              + (f"; {search.note}" if search.note else ""))
        if args.spec_out:
            print(f"wrote {args.spec_out}")
    print(f"{'alpha':>8} {'l1':>8} {'epochs':>6} {'nonzeros':>10} {'bytes':>10} {'logloss':>8} {'AUC':>7}")
    for p in res.points:
        mark = "  <- chosen" if p is res.chosen else ""
        stop = "" if p.epochs_trained == res.epochs_max and p.epochs == p.epochs_trained else f" ({p.epochs_trained})"
        print(f"{p.alpha:>8g} {p.l1:>8g} {p.epochs:>6}{stop} {p.nonzeros:>10,} {p.model_bytes:>10,} "
              f"{p.valid_logloss:>8.4f} {p.valid_auc:>7.4f}{mark}")
    print(f"{len(res.points)} points, {res.reads} read(s) of {res.rows:,} rows, {res.seconds:.1f} s "
          f"(epochs: the best epoch, kept; in parentheses the epochs trained before stopping)")
    if res.note:
        print(res.note)
    for hint in res.hints:
        print(f"note: {hint}")
    if args.plot:
        print(f"wrote {args.plot}")
    if written:
        c = res.chosen
        same = "".join(f" --{name.replace('_', '-')} {getattr(args, name):g}" for name in _MEMORY_FLAGS
                       if getattr(args, name, None) is not None)
        print(f"wrote {args.out} ({written:,} bytes): alpha={c.alpha:g}, l1={c.l1:g}, epochs={c.epochs} "
              f"(the same model as `sparsecross train --alpha {c.alpha:g} --l1 {c.l1:g} --epochs {c.epochs}{same}`)")


def register(sub: Any, common: Any) -> None:
    from ._defaults import CROSS_MIN_GAIN as DEFAULT_MIN_GAIN
    from ._defaults import TUNE_ALPHA as DEFAULT_ALPHA
    from ._defaults import TUNE_EPOCHS_MAX as DEFAULT_EPOCHS_MAX
    from ._defaults import TUNE_L1 as DEFAULT_L1

    def show(g: tuple[float, ...]) -> str:
        return ",".join(f"{v:g}" for v in g)

    p = sub.add_parser(
        "tune", help="tune alpha x l1 (early stopping per point, size budget); optionally search crosses",
        description="Train the alpha x l1 grid in one read of the data per epoch, validate every point after "
        "every epoch (one read of the validation data), stop each point when its validation logloss gets worse, "
        "and write the best point within the budget: its trained model, not a retrain. With --search-crosses K, "
        "first add up to K pairwise crosses, greedily, by validation gain.")
    p.add_argument("spec", help="feature spec (TOML)")
    p.add_argument("data", help="training Parquet")
    p.add_argument("--out", required=True, help="write the chosen model here (e.g. best.scx)")
    p.add_argument("--alpha", dest="alpha_grid", metavar="GRID",
                   help=f"increasing alpha grid, values > 0 (default {show(DEFAULT_ALPHA)})")
    p.add_argument("--l1", dest="l1_grid", metavar="GRID", help=f"increasing l1 grid (default {show(DEFAULT_L1)})")
    p.add_argument("--l2", type=float, help="L2 strength of every point (default 0)")
    p.add_argument("--beta", type=float, help="learning-rate smoothing of every point (default 1.0)")
    p.add_argument("--label-smoothing", type=float, dest="label_smoothing", help="as train's (default 0)")
    p.add_argument("--epochs-max", type=int, default=DEFAULT_EPOCHS_MAX, dest="epochs_max", metavar="N",
                   help=f"most epochs per point (default {DEFAULT_EPOCHS_MAX})")
    p.add_argument("--patience", type=int, default=None,
                   help="stop a point after this many epochs without a lower validation logloss "
                   "(default: the spec's [train] early_stop, else 1)")
    v = p.add_mutually_exclusive_group()
    v.add_argument("--valid", metavar="DATA", help="validation Parquet (scored after every epoch)")
    v.add_argument("--holdout", type=float, metavar="F",
                   help="keep a seeded-hash fraction F of the rows out of training for validation")
    b = p.add_mutually_exclusive_group()
    b.add_argument("--max-nonzeros", type=int, dest="max_nonzeros", help="budget: at most this many nonzero weights")
    b.add_argument("--max-bytes", type=int, dest="max_bytes", help="budget: artifact of at most this many bytes")
    p.add_argument("--encoding", choices=("float32", "float16", "q2.13"), default="float32",
                   help="artifact encoding used for sizes and --out (default float32)")
    p.add_argument("--names", type=int, default=100, metavar="K",
                   help="as train's: record the values behind the K largest hashed weights (default 100)")
    p.add_argument("--batch-rows", type=int, dest="batch_rows", default=None, help="rows per Arrow batch")
    p.add_argument("--state-dtype", choices=("float32", "float64"), default="float32",
                   help="precision of the optimizer state (default float32)")
    o = p.add_argument_group("training order (flags > the spec's [train] table > defaults)")
    o.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None,
                   help="read every epoch in a new seeded order, as train --shuffle")
    o.add_argument("--shuffle-seed", type=int, dest="shuffle_seed", metavar="SEED", help="seed of the order")
    o.add_argument("--shuffle-buffer-rows", type=int, dest="shuffle_buffer_rows", metavar="ROWS",
                   help="rows permuted together")
    cli._add_memory_flags(p, per_point=True)
    c = p.add_argument_group("cross search")
    c.add_argument("--search-crosses", type=int, dest="search_crosses", metavar="K",
                   help="add up to K crosses (pairs of features, or a chosen cross and one more feature)")
    c.add_argument("--min-gain", type=float, default=None, dest="min_gain", metavar="G",
                   help=f"keep a cross only if it lowers the validation logloss by this fraction, "
                   f"0 <= G < 1 (default {DEFAULT_MIN_GAIN:g})")
    c.add_argument("--spec-out", dest="spec_out", metavar="TOML", help="write the spec with the crosses found")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="PATH.png",
                   help="draw the alpha x l1 grid as a heat map of validation logloss with nonzeros (matplotlib)")
    common(p)
    p.set_defaults(func=cmd_tune)


if register not in cli._EXTRA_COMMANDS:
    cli._EXTRA_COMMANDS.append(register)

__all__ = ["register", "cmd_tune"]
