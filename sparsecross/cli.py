"""Command-line interface: ``sparsecross SUBCOMMAND ...``.

Every subcommand calls the library's public functions; this module only parses arguments,
shows progress and turns errors into one line on stderr with a non-zero exit (``--debug``
shows the traceback).  Exit codes: 0 success, 1 error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .cli_args import _add_memory_flags, _add_train_flags, _check_budget_flags, _train_options  # noqa: F401  (re-exported below)
from .cli_commands import (add_check_spec, add_eval, add_generate, add_inspect, add_predict,  # noqa: F401
                           cmd_check_spec, cmd_eval, cmd_generate, cmd_inspect, cmd_predict)
from .cli_dask import _dask_client, _quiet_dask_logs  # noqa: F401
from .cli_guards import _checkpoint_files, check_out, guard_outputs  # noqa: F401
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
from .cli_train import _train_progress, add_train, cmd_train  # noqa: F401
from .errors import SparseCrossWarning, plain, shown

# The subcommands live in cli_commands (generate, check-spec, predict, eval, inspect) and
# cli_train, the shared training flags in cli_args, the output checks in cli_guards; the names
# that cli_extra, cli_tune, cli_suggest and tests use through ``cli`` stay importable here.


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


class _Parser(argparse.ArgumentParser):
    """argparse, with a refused value shown short and escaped (``errors.shown``): its own
    messages quote the whole value (a 5,000-digit ``--epochs`` made a 6 KB error line).
    Sub-command parsers are of the same class (``add_subparsers`` uses the parent's)."""

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        convert = action.type
        if convert in (int, float) and isinstance(arg_string, str):
            try:
                return convert(arg_string)  # what argparse does, but for the message
            except (TypeError, ValueError):
                name = convert.__name__  # type: ignore[union-attr]
                raise argparse.ArgumentError(action, f"invalid {name} value: {shown(arg_string)}") from None
        return super()._get_value(action, arg_string)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is not None and value not in action.choices:
            offered = ", ".join(map(repr, action.choices))
            raise argparse.ArgumentError(action, f"invalid choice: {shown(value)} (choose from {offered})")

    def error(self, message: str) -> NoReturn:
        """One line, at most 300 characters, control characters escaped and the cut never inside
        an escape (``errors.plain``): argparse's own messages, e.g. "unrecognized arguments:
        ...", echo what was typed."""
        super().error(plain(message, 300))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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

    for add in (add_generate, add_check_spec, add_train, add_predict, add_eval, add_inspect):
        add(sub, common)
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
        # catch_warnings sets the filters of every thread of the process (Python < 3.14): safe
        # here, as main() is the program (the console script's entry point, in the main thread):
        # no thread of the command runs yet, and those it starts (the prefetch reader, Dask's)
        # are to show their warnings this way too.  Not for calling main() from several threads.
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
