"""Command-line interface: ``sparsecross SUBCOMMAND ...``.

Every subcommand calls the library's public functions; this module only parses arguments,
shows progress and turns errors into one line on stderr with a non-zero exit (``--debug``
shows the traceback).  Exit codes: 0 success, 1 error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ._defaults import DEFAULT_BATCH_ROWS, DEFAULT_SHUFFLE_BUFFER_ROWS, PREDICT_BATCH_ROWS
from .cli_output import (  # noqa: F401  (cli_extra and tests use these through cli)
    _fmt,
    _fmt_bytes,
    _one_line,
    _print_json,
    _Progress,
    _quiet_closed_stdout,
    _show_warning,
    safe_text,
    strict_json,
)
from .errors import SparseCrossError, SparseCrossWarning

log = logging.getLogger("sparsecross")


# -------------------------------------------------------------------- helpers
def check_out(path: str, flag: str, example: str) -> Path:
    """``path`` as an output file name, checked before any work: not a folder, in a folder
    that exists."""
    out = Path(path)
    if out.is_dir():
        raise SparseCrossError(f"{flag} {path!r} is a folder; give a file name such as {example}")
    if not out.parent.exists():
        raise SparseCrossError(f"folder {str(out.parent)!r} of {flag} does not exist")
    return out


def guard_outputs(outputs: dict[str, Any], *, spec: str | None = None, model: str | None = None,
                  data: Any = None, valid: Any = None) -> None:
    """Refuse (one line, nothing written) an output that is one of the command's inputs."""
    from .files import check_outputs, input_files

    inputs: dict[str, list[Any]] = {
        "the spec": [spec] if spec else [],
        "the model": [model] if model else [],
        "an input data file": input_files(data),
        "a --valid file": input_files(valid),
    }
    check_outputs(outputs, inputs)


def _checkpoint_files(ckpt: str | None, out: str | None) -> dict[str, Any]:
    """The files training writes in the checkpoint folder, as outputs for :func:`guard_outputs`:
    ``state.npz``, the early-stopping states ``best-<epoch>.npz`` there, and the one ``--out``
    names if it has that form."""
    if not ckpt:
        return {}
    from .checkpoint import BEST_PREFIX
    from .files import _same_file

    files: dict[str, Any] = {"--checkpoint state file": os.path.join(ckpt, "state.npz")}
    best = sorted(Path(ckpt).glob(f"{BEST_PREFIX}*.npz")) if os.path.isdir(ckpt) else []
    if out and Path(out).name.startswith(BEST_PREFIX) and Path(out).suffix == ".npz" \
            and _same_file(Path(out).parent, Path(ckpt)):
        best.append(Path(ckpt) / Path(out).name)
    for f in best:
        files[f"--checkpoint early-stop state {f.name}"] = f
    return files


def _train_options(args: argparse.Namespace, spec: Any) -> dict[str, Any]:
    """CLI flags > the spec's [train] table > library defaults."""
    from .train import TrainParams

    defaults = TrainParams()
    out: dict[str, Any] = {}
    for name in ("alpha", "beta", "l1", "l2", "epochs", "label_smoothing", "holdout"):
        cli = getattr(args, name, None)
        if cli is not None:
            out[name] = cli
        elif name in spec.train:
            out[name] = spec.train[name]
        else:
            out[name] = getattr(defaults, name)
    if getattr(args, "valid", None) is not None and getattr(args, "holdout", None) is None:
        out["holdout"] = None  # --valid replaces a [train] holdout
    if getattr(args, "batch_rows", None) is None:  # flag > the spec's [train] table > default
        args.batch_rows = spec.train.get("batch_rows", DEFAULT_BATCH_ROWS)
    for name, default in (("shuffle", False), ("shuffle_seed", 0), ("shuffle_buffer_rows", None)):
        cli = getattr(args, name, None)
        out[name] = cli if cli is not None else spec.train.get(name, default)
    if not out["shuffle"] and (getattr(args, "shuffle_seed", None) is not None
                               or getattr(args, "shuffle_buffer_rows", None) is not None):
        raise SparseCrossError("--shuffle-seed and --shuffle-buffer-rows need --shuffle "
                               "(or [train] shuffle = true in the spec)")
    modes = ("admit_after", "admit_probability")
    given = [m for m in modes if getattr(args, m, None) is not None]
    if len(given) == 2:
        raise SparseCrossError("give either --admit-after or --admit-probability, not both")
    for m in modes:  # flag > [train] > off; an admission flag replaces the [train] table's mode
        out[m] = getattr(args, m) if given else spec.train.get(m)
    for name in ("admit_filter_mb", "max_state_mb"):  # flag > [train] > none
        v = getattr(args, name, None)
        out[name] = v if v is not None else spec.train.get(name)
    return out


def _add_train_flags(p: argparse.ArgumentParser, *, grid: bool = False) -> None:
    g = p.add_argument_group("FTRL-Proximal hyperparameters (flags > the spec's [train] table > defaults)")
    g.add_argument("--alpha", type=float, help="learning-rate scale, > 0 (default 0.1); NOT sklearn's alpha")
    g.add_argument("--beta", type=float, help="learning-rate smoothing, >= 0 (default 1.0)")
    if not grid:
        g.add_argument("--l1", type=float, help="L1 strength, >= 0: weights are 0 while |z| <= l1 (default 1.0)")
        g.add_argument("--l2", type=float, help="L2 strength, >= 0 (default 0.0)")
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
                      else "not with --dask or --early-stop"))


# ---------------------------------------------------------------- subcommands
def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate

    if args.rows < 1:
        raise SparseCrossError(f"--rows must be >= 1, got {args.rows}")
    bar = _Progress(args.rows, "generate", enabled=None if not args.quiet else False)
    t0 = time.perf_counter()
    try:
        path = generate(args.out, rows=args.rows, seed=args.seed, row_group_size=args.row_group_size,
                        overwrite=args.overwrite, progress=lambda n: bar.update_to(n))
    except FileExistsError:
        raise SparseCrossError(f"{args.out!r} exists; pass --overwrite to replace it") from None
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
    from .train import peak_rss_bytes, train

    out = check_out(args.out, "--out", "model.scx")
    ckpt = args.checkpoint
    guard_outputs({"--out": out, "--checkpoint": ckpt, **_checkpoint_files(ckpt, out)},
                  spec=args.spec, data=args.data, valid=args.valid)
    spec = load_spec(args.spec).with_positive_weight(args.positive_weight)  # the flag > [label] positive_weight
    opts = _train_options(args, spec)
    early_stop = args.early_stop if args.early_stop is not None else spec.train.get("early_stop")
    if early_stop is not None:  # flag > the spec's [train] table; absent: no early stopping
        opts["early_stop"] = early_stop
    if opts["max_state_mb"] is not None:  # flag > the spec's [train] table; absent: no budget
        if args.dask:  # before a cluster starts
            from .errors import ParameterError

            raise ParameterError("--max-state-mb is not available with --dask; train without one of them")
    extra: dict[str, Any] = {}
    client = None
    cluster = None
    if args.dask:
        from .dask import connect

        _quiet_dask_logs()
        client, cluster = connect(args.dask)
        extra = {"mode": args.mode, "lanes": args.lanes, "rows_per_round": args.rows_per_round}
    on_progress, bar = _train_progress(args.quiet or args.json)
    t0 = time.perf_counter()
    try:
        model = train(
            args.data, spec, valid=args.valid, state_dtype=args.state_dtype,
            batch_rows=args.batch_rows, checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every, on_progress=on_progress, client=client, names=args.names,
            **opts, **extra,
        )
    finally:
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    seconds = time.perf_counter() - t0
    run = model.run
    nbytes = save_model(model, out, encoding=args.encoding)
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
    if "valid_logloss" in st:
        from .metrics import entropy

        report.update(valid_logloss=st["valid_logloss"], valid_auc=st["valid_auc"], valid_rows=st["valid_rows"],
                      baseline_logloss=entropy(st["valid_positive_rate"]))
    for k in ("best_epoch", "skipped_rows", "valid_skipped_rows", "evicted_features", "evictions",
              "admitted_features", "rejected_sightings", "admit_filter_bytes"):
        if k in st:
            report[k] = st[k]
    if args.json:
        _print_json(report)
    elif not args.quiet:
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


def _quiet_dask_logs() -> None:
    """Dask logs every scheduler/worker event at INFO; the CLI shows warnings and errors only."""
    try:
        import distributed  # noqa: F401  (configures its loggers; then we lower them)
    except ImportError:
        return  # connect() raises the error that names the extra

    for name in list(logging.root.manager.loggerDict):
        if name == "distributed" or name.startswith("distributed."):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    """A Dask client for ``local:N`` or ``tcp://HOST:PORT``, closed (with its local cluster) on exit."""
    from .dask import connect

    _quiet_dask_logs()
    client, cluster = connect(address)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_model

    info = inspect_model(args.model, top=args.top)
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


# -------------------------------------------------------------------- parsing
class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show program's version number and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from . import __version__

        sys.stdout.write(f"sparsecross {__version__}\n")  # stdout, as argparse's "version" action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sparsecross",
        description="Train very wide, very sparse logistic regression on feature crosses "
        "(FTRL-Proximal) from Parquet, and ship only the nonzero weights.",
        epilog="Run 'sparsecross demo' for the whole story on generated data, or "
        "'sparsecross SUBCOMMAND --help' for details.",
    )
    p.add_argument("--version", action=_VersionAction)
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND")

    def common(sp_: argparse.ArgumentParser) -> None:
        sp_.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
        sp_.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

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

    c = sub.add_parser("check-spec", help="validate a feature spec and show its column layout",
                       description="Validate a TOML feature spec (see the README) and print the global "
                       "column layout; with --data also check the data's schema and resolve quantiles.")
    c.add_argument("spec", help="feature spec (TOML)")
    c.add_argument("--data", help="Parquet file, folder or glob to check against")
    c.add_argument("--json", action="store_true", help="print JSON")
    common(c)
    c.set_defaults(func=cmd_check_spec)

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
    d.add_argument("--mode", choices=("data-parallel", "exact"), default="data-parallel",
                   help="data-parallel rounds (default) or exact (distributed read, single-process update)")
    d.add_argument("--lanes", type=int, default=4, help="K lanes per round (a model parameter, default 4)")
    d.add_argument("--rows-per-round", type=int, default=None, dest="rows_per_round",
                   help="rows per round over all lanes (default: one row group per lane)")
    common(t)
    t.set_defaults(func=cmd_train)

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

    i = sub.add_parser("inspect", help="show what a model file holds",
                       description="Format, spec, parameters, nonzeros, bytes per nonzero, and the "
                       "largest weights with readable feature names.")
    i.add_argument("model", help="model file (.scx)")
    i.add_argument("--top", type=int, default=10, help="how many of the largest weights to list (default 10)")
    i.add_argument("--json", action="store_true", help="print JSON")
    common(i)
    i.set_defaults(func=cmd_inspect)

    for register in _EXTRA_COMMANDS:
        register(sub, common)
    return p


#: Later modules (demo, path, plots) append ``register(subparsers, common)`` functions here.
_EXTRA_COMMANDS: list[Callable[[Any, Callable[[argparse.ArgumentParser], None]], None]] = []


def _register_extras() -> None:
    try:
        from . import cli_extra  # noqa: F401  (registers demo / path / plot subcommands)
    except ImportError as exc:  # pragma: no cover - only when the module itself is broken
        if "cli_extra" not in str(exc):
            raise
    from . import cli_tune  # noqa: F401  (registers tune)
    from . import cli_suggest  # noqa: F401  (registers suggest-spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if not getattr(args, "quiet", False) else logging.WARNING,
                        format="%(message)s", stream=sys.stderr)
    debug = getattr(args, "debug", False) or os.environ.get("SPARSECROSS_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", SparseCrossWarning)  # a CLI warning is a line, never an error
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except BrokenPipeError:
        _quiet_closed_stdout()  # `sparsecross inspect m.scx | head -1`: end quietly, as other tools do
        return 0
    except KeyboardInterrupt:
        print("sparsecross: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error becomes one line
        if debug:
            raise
        print(f"sparsecross: error: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
