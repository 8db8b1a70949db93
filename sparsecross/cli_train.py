"""The ``train`` subcommand: its arguments, its progress bar or log lines, the run, and its
report (one summary, or ``--json``)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ._defaults import DEFAULT_LANES
from .cli_args import _add_train_flags, _train_options
from .cli_dask import _dask_client
from .cli_guards import _checkpoint_files, check_out, guard_outputs
from .cli_output import _fmt, _fmt_bytes, _print_json, _Progress
from .errors import SparseCrossError, shown

__all__ = ["cmd_train", "_train_progress"]

log = logging.getLogger("sparsecross")



def _train_progress(quiet: bool) -> tuple[Callable[[Any], None], _Progress]:
    bar = _Progress(None, "train", enabled=False if quiet else None)

    def on_progress(ev: Any) -> None:
        if bar.bar is None:
            if ev.phase == "epoch_end" and not quiet:
                extra = ""
                if ev.valid_logloss is not None:
                    extra = f"  valid logloss {_fmt(ev.valid_logloss)}  auc {_fmt(ev.valid_auc)}"
                log.info("epoch %d/%d  progressive logloss %s  touched %s  nonzeros %s  state %s%s", ev.epoch + 1,
                         ev.epochs, _fmt(ev.progressive_logloss), f"{ev.touched:,}",
                         f"{ev.nonzeros:,}" if ev.nonzeros is not None else "?",
                         _fmt_bytes(ev.state_bytes) if ev.state_bytes is not None else "?", extra)
            return
        if bar.bar.total != ev.rows_total:
            bar.reset(ev.rows_total, f"epoch {ev.epoch + 1}/{ev.epochs}")
        if ev.phase == "train":
            bar.bar.set_description(f"epoch {ev.epoch + 1}/{ev.epochs}")
            bar.update_to(ev.rows_seen, logloss=f"{ev.progressive_logloss:.4f}", touched=f"{ev.touched:,}",
                          nonzeros=f"{ev.nonzeros:,}" if ev.nonzeros is not None else "?",
                          state=_fmt_bytes(ev.state_bytes) if ev.state_bytes is not None else "?")
        elif ev.phase == "validate":
            bar.bar.set_description(f"epoch {ev.epoch + 1}/{ev.epochs} validating")
            bar.bar.refresh()
        else:
            bar.bar.write(
                f"epoch {ev.epoch + 1}/{ev.epochs}: progressive logloss {_fmt(ev.progressive_logloss)}"
                + (f", valid logloss {_fmt(ev.valid_logloss)}, auc {_fmt(ev.valid_auc)}"
                   if ev.valid_logloss is not None else "")
            )
            bar.reset(ev.rows_total, f"epoch {ev.epoch + 2}/{ev.epochs}")

    return on_progress, bar


def cmd_train(args: argparse.Namespace) -> int:
    from .export import save_model
    from .spec import load_spec

    out = check_out(args.out, "--out", "model.scx")
    ckpt = args.checkpoint
    guard_outputs({"--out": out, "--checkpoint": ckpt, **_checkpoint_files(ckpt, out)},
                  spec=args.spec, data=args.data, valid=args.valid)
    from ._values import check_count  # here, not at the top: it imports NumPy (--help must not)

    check_count("--names", args.names, 0)
    extra = _dask_options(args)  # before a cluster starts
    spec = load_spec(args.spec).with_positive_weight(args.positive_weight)  # the flag > [label] positive_weight
    opts = _train_options(args, spec)  # every [train] key, --early-stop included: flags > [train] > defaults
    from .train_options import _state_bits_option
    from .train_params import FLOAT_PARAMS, check_param

    _state_bits_option(opts["state_bits"], args.state_dtype, args.dask or None)  # before a cluster starts
    for name in FLOAT_PARAMS:  # before a cluster starts too (train_distributed checks them there)
        check_param(name, opts[name])
    if extra.get("mode") == "partitioned":
        _check_partitioned(spec, extra, opts)
    model, seconds = _run(args, spec, opts, extra)
    nbytes = save_model(model, out, encoding=args.encoding)
    report = _report(model, opts, out, nbytes, seconds)
    if args.json:
        _print_json(report)
    elif not args.quiet:
        _print_summary(report, model, opts, out, nbytes, seconds)
    return 0


def _check_partitioned(spec: Any, extra: dict[str, Any], opts: dict[str, Any]) -> None:
    """--partition names an exact feature of the spec, and no option partitioned mode lacks
    is given: checked before a cluster starts (train_distributed checks them again there)."""
    from .admission import policy_of
    from .dask.partition import partition_of
    from .dask.training import _check_ruled

    if not spec.needs_data:  # (quantile buckets: checked once resolved, on the cluster)
        partition_of(spec, extra["partition"], extra["lanes"])
    admitting = policy_of(opts.get("admit_after"), opts.get("admit_probability"), opts.get("admit_filter_mb")).active
    _check_ruled("partitioned", admitting, opts.get("max_state_mb"), None)


def _dask_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of --mode, --lanes, --partition and --rows-per-round for ``train`` with
    ``--dask``, checked: without --dask they do not apply, nor --lanes to --mode exact, nor
    --partition to another mode than partitioned, which needs it (refused, not ignored);
    counts in their ranges (rows per round at least one per lane)."""
    from ._values import check_count

    given = [flag for flag, value in (("--mode", args.mode), ("--lanes", args.lanes), ("--partition", args.partition),
                                      ("--rows-per-round", args.rows_per_round)) if value is not None]
    if not args.dask:
        if given:
            flags = given[0] if len(given) == 1 else ", ".join(given[:-1]) + " and " + given[-1]
            raise SparseCrossError(f"{flags} need{'s' if len(given) == 1 else ''} --dask (they set how a Dask "
                                   "cluster trains); give --dask ADDRESS or leave them out")
        return {}
    extra: dict[str, Any] = {"mode": args.mode or "data-parallel"}
    if extra["mode"] == "partitioned":
        if args.partition is None:
            raise SparseCrossError("--mode partitioned needs --partition FEATURE: the exact feature (such as a geo "
                                   "cell) whose values the lanes own")
        extra["partition"] = args.partition
    elif args.partition is not None:
        raise SparseCrossError(f"--partition applies to --mode partitioned only, not to {extra['mode']}; add "
                               "--mode partitioned or leave it out")
    lanes = 1
    if extra["mode"] == "exact":
        if args.lanes is not None:
            raise SparseCrossError("--lanes does not apply to --mode exact (lanes are data-parallel's rounds); "
                                   "leave it out or use --mode data-parallel")
    else:
        from .dask.training import MAX_LANES

        lanes = extra["lanes"] = check_count("--lanes", DEFAULT_LANES if args.lanes is None else args.lanes, 1,
                                             MAX_LANES)
    if args.rows_per_round is not None:
        extra["rows_per_round"] = check_count("--rows-per-round", args.rows_per_round, 1)
        if args.rows_per_round < lanes:
            raise SparseCrossError(f"--rows-per-round must be at least --lanes ({lanes:,}): every lane trains "
                                   f"rows-per-round / lanes rows, got {shown(args.rows_per_round)}")
    return extra


def _run(args: argparse.Namespace, spec: Any, opts: dict[str, Any], extra: dict[str, Any]) -> tuple[Any, float]:
    """(the model that ``train`` trains, on Dask with ``--dask`` and ``extra``, the keywords of
    :func:`_dask_options`; the seconds training took)."""
    from .train import train

    on_progress, bar = _train_progress(args.quiet or args.json)
    if bar.bar is None and (args.quiet or args.json):
        on_progress = None  # it would print nothing: spare the run its events (each counts the nonzeros)
    t0 = time.perf_counter()
    try:
        with _dask_client(args.dask) if args.dask else contextlib.nullcontext() as client:
            model = train(
                args.data, spec, valid=args.valid, state_dtype=args.state_dtype,
                batch_rows=args.batch_rows, checkpoint=args.checkpoint,
                checkpoint_every=args.checkpoint_every, on_progress=on_progress, client=client, names=args.names,
                **opts, **extra,
            )
    finally:
        bar.close()
    return model, time.perf_counter() - t0


def _report(model: Any, opts: dict[str, Any], out: Any, nbytes: int, seconds: float) -> dict[str, Any]:
    """What ``train --json`` prints (and the summary shows)."""
    from .train import peak_rss_bytes

    run = model.run
    st = model.stats
    trained_rows = run.get("rows_trained", run.get("rows_processed", st["rows"]))  # all epochs of this run
    report = {
        "rows": st["rows"],
        "train_rows": st.get("train_rows", st["rows"]),
        "rows_processed": run.get("rows_processed", st["rows"]),
        "rows_trained": trained_rows,
        "epochs": opts["epochs"],
        "seconds": seconds,
        "rows_per_second": trained_rows / seconds if seconds > 0 else None,
        "nonzeros": model.nonzeros,
        "touched_features": st["touched_features"],
        "possible_features": model.spec.n_columns,
        "model_bytes": nbytes,
        "peak_rss_bytes": peak_rss_bytes(),
        "state_bytes_peak": run.get("state_bytes_peak"),
        "progressive_logloss": st.get("progressive_logloss"),
        "out": str(out),
    }
    if "lane_rows" in run:  # partitioned on Dask: the rows each lane trained (skew shows), the shared keys
        report["lane_rows"] = list(run["lane_rows"])
        report["shared_keys"] = run.get("shared_keys")
    if "valid_logloss" in st:
        from .metrics import entropy

        report.update(valid_logloss=st["valid_logloss"], valid_auc=st["valid_auc"], valid_rows=st["valid_rows"],
                      baseline_logloss=entropy(st["valid_positive_rate"]))
    for k in ("best_epoch", "skipped_rows", "valid_skipped_rows", "evicted_features", "evictions",
              "admitted_features", "rejected_sightings", "admit_filter_bytes", "promoted_features",
              "refused_promotions", "q213_clips", "sqrt_n_saturations"):
        if k in st:
            report[k] = st[k]
    return report


def lanes_line(lane_rows: list[int], shared_keys: int | None = None) -> str:
    """The summary's line on a partitioned run's lanes ("" for one lane or no rows): the
    range of rows per lane and the busiest lane's share, flagged when it is more than twice
    an even share (its worker then does most of the work while the others wait), and the
    number of shared keys."""
    total = sum(lane_rows)
    k = len(lane_rows)
    if k < 2 or total <= 0:
        return ""
    busiest = max(range(k), key=lambda j: lane_rows[j])
    share = lane_rows[busiest] / total
    line = (f"lanes: {k} trained {min(lane_rows):,} to {max(lane_rows):,} rows each; the busiest (lane "
            f"{busiest}) {share:.1%} of them")
    if share > 2 / k:
        line += (f" - skewed (an even share is {1 / k:.1%}): a few partition values hold most rows; partition by "
                 "a feature whose rows spread more evenly, or use fewer lanes")
    if shared_keys is not None:
        line += f"; {shared_keys:,} keys shared by the lanes"
    return line


def _print_summary(report: dict[str, Any], model: Any, opts: dict[str, Any], out: Any, nbytes: int,
                   seconds: float) -> None:
    """The lines ``train`` prints at the end (without ``--quiet`` or ``--json``)."""
    st = model.stats
    held = report["rows"] - report["train_rows"]
    print(f"trained on {report['train_rows']:,} rows"
          + (f" ({held:,} of the {report['rows']:,} held out for validation)" if held > 0 else "")
          + f" x {opts['epochs']} epoch(s) in {seconds:.1f} s "
          f"({report['rows_per_second']:,.0f} rows/s), peak RSS {_fmt_bytes(report['peak_rss_bytes'])}"
          + (f", optimizer state at most {_fmt_bytes(report['state_bytes_peak'])}"
             if report["state_bytes_peak"] is not None else ""))
    print(f"touched {report['touched_features']:,} of {model.spec.n_columns:,} possible features; "
          f"{model.nonzeros:,} nonzero weights; model {out} {_fmt_bytes(nbytes)}")
    if "admitted_features" in report:
        print(f"admission: {report['admitted_features']:,} features admitted, {report['rejected_sightings']:,} "
              f"sightings of features without state dropped (filter {_fmt_bytes(report['admit_filter_bytes'])})")
    if "promoted_features" in report:
        print(f"16-bit state: {report['promoted_features']:,} features with a float32 z "
              f"({report['refused_promotions']:,} refused, zbig full), {report['q213_clips']:,} updates clipped "
              f"to q2.13, {report['sqrt_n_saturations']:,} with sqrt(n) saturated")
    line = lanes_line(report.get("lane_rows") or [], report.get("shared_keys"))
    if line:
        print(line)
    if "skipped_rows" in report:
        print(f"skipped {report['skipped_rows']:,} rows per epoch with a missing label"
              + (f" ({report['valid_skipped_rows']:,} in the validation data)"
                 if report.get("valid_skipped_rows") else ""))
    if "valid_logloss" in st:
        print(f"validation ({st['valid_rows']:,} rows): logloss {_fmt(st['valid_logloss'])} "
              f"(constant rate: {_fmt(report['baseline_logloss'])}), AUC {_fmt(st['valid_auc'])}")
    if "evictions" in report:
        print(f"state budget {opts['max_state_mb']:g} MiB: evicted {report['evicted_features']:,} features "
              f"in {report['evictions']:,} sweep(s)")
    if "best_epoch" in report:
        print(f"early stopping: kept the model of epoch {report['best_epoch']} (lowest validation logloss)")


def add_train(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``train`` subcommand."""
    t = sub.add_parser("train", help="train a model from Parquet and write the artifact",
                       description="Stream Parquet -> featurize -> FTRL-Proximal, for --epochs passes, "
                       "in bounded memory; write only the nonzero weights (with the spec) to --out. "
                       "With --checkpoint DIR, re-running the same command after a crash resumes.")
    t.add_argument("spec", help="feature spec (TOML)")
    t.add_argument("data", help="training Parquet: a file, a folder or a glob")
    t.add_argument("--out", required=True, help="model file to write (e.g. model.scx)")
    _add_train_flags(t)
    t.add_argument("--positive-weight", type=float, dest="positive_weight", metavar="W",
                   help="class weight of positive rows, > 0: multiplies their sample weight in training and in "
                   "the weighted metrics (overrides [label] positive_weight)")
    t.add_argument("--early-stop", type=int, dest="early_stop", metavar="N",
                   help="with --valid or --holdout: stop after N epochs without a lower validation logloss and "
                   "keep the best epoch's model (doubles the optimizer state's memory; [train] early_stop)")
    t.add_argument("--checkpoint", metavar="DIR", help="folder for resumable training state")
    t.add_argument("--checkpoint-every", type=int, default=5_000_000, dest="checkpoint_every", metavar="ROWS",
                   help="rows between checkpoints (default 5,000,000; also at every epoch end)")
    t.add_argument("--encoding", choices=("float32", "float16", "q2.13"), default="float32",
                   help="how weights are stored in the artifact (default float32)")
    t.add_argument("--names", type=int, default=100, metavar="K",
                   help="record the values behind the K largest hashed weights (categoricals and hashed "
                   "crosses, e.g. device=ios x hour=7), for "
                   "'inspect', while training reads the data (with --dask: one extra read of those "
                   "columns; 0 turns it off; default 100)")
    t.add_argument("--json", action="store_true", help="print a JSON report at the end")
    d = t.add_argument_group("scale-out on Dask (pip install 'sparsecross[dask]')")
    d.add_argument("--dask", metavar="ADDRESS", help="local:N for a local cluster of N workers, or tcp://HOST:PORT")
    d.add_argument("--mode", choices=("data-parallel", "exact", "partitioned"), default=None,
                   help="data-parallel rounds (default), exact (distributed read, single-process update), or "
                   "partitioned (lanes that own the keys of their values of --partition)")
    d.add_argument("--lanes", type=int, default=None,
                   help=f"K lanes per round, data-parallel and partitioned (a model parameter, default "
                   f"{DEFAULT_LANES})")
    d.add_argument("--partition", metavar="FEATURE", default=None,
                   help="partitioned mode: the exact feature (such as a geo cell) whose values the lanes own; "
                   "every row with a value is trained by that value's lane, and only the other keys are merged "
                   "at each round's end (a model parameter)")
    d.add_argument("--rows-per-round", type=int, default=None, dest="rows_per_round",
                   help="rows per round over all lanes, at least K (default: each lane takes consecutive whole row "
                   "groups, as near 262,144 rows as they come; partitioned: chunks near 1,048,576 rows, K per "
                   "round); exact mode: rows per chunk")
    common(t)
    t.set_defaults(func=cmd_train)
