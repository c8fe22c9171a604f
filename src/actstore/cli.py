"""The ``actstore`` command line: a thin dispatcher over the library.

User errors (:class:`actstore.errors.ActstoreError`) print one line, ``actstore: error: ...``, and
exit with status 2; ``--debug`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from actstore import show_progress
from actstore._version import __version__
from actstore.errors import ActstoreError, ActstoreWarning

__all__ = ["build_parser", "main"]

_EPILOG = """examples:
  actstore demo
  actstore extract --model /path/to/Qwen2.5-32B --prompts multiplication --out cache.zarr
  actstore info cache.zarr
  actstore probe fit cache.zarr --prompt-set arithmetic --target value
"""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like every other user error: the problem and where help is."""

    def error(self, message: str) -> NoReturn:
        print(
            f"actstore: error: {message}; see '{self.prog} --help' for usage",
            file=sys.stderr,
        )
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand found in :mod:`actstore.commands`."""
    import actstore.commands as commands

    parser = _Parser(
        prog="actstore",
        description="Extract per-token activations into a Zarr v3 cache; fit probes and detect.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"actstore {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks for errors (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"actstore.commands.{info.name}")
        module.register(sub)
    return parser


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """The project's own warnings as one line, ``actstore: warning: ...``; others as Python does."""
    if issubclass(category, ActstoreWarning):
        print(f"actstore: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line, so it can be added to any failing command as-is.
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    # progress of long commands: a bar on a terminal, log lines otherwise, none with --quiet/--json
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    try:
        with warnings.catch_warnings(), show_progress(False if quiet else None):
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except ActstoreError as exc:
        if args.debug:
            raise
        print(f"actstore: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # What no command turned into a message itself: an OS or storage failure on a location,
        # or a missing optional dependency, is still one line (exit 2); anything else is a bug.
        err = _as_user_error(exc, args)
        if err is None or args.debug:
            raise
        print(f"actstore: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("actstore: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


def _as_user_error(exc: BaseException, args: argparse.Namespace) -> ActstoreError | None:
    if isinstance(exc, ImportError):
        from actstore._extras import missing_extra

        return missing_extra(exc, f"`actstore {args.command}`")
    from actstore._locations import is_location_failure, location_error

    if not is_location_failure(exc):
        return None
    where = getattr(exc, "filename", None) or _location_of(args)
    return location_error(exc, str(where), "use") if where else None


def _location_of(args: argparse.Namespace) -> str | None:
    """The output (else the input) location a command was given, to name in a message."""
    for key in ("out", "dst", "cache", "src"):
        value = getattr(args, key, None)
        if isinstance(value, str) and value:
            return value
    return None
