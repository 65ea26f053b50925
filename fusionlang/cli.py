"""fusionc: check / compile / render / eval / plan / verify / fmt.

Exit codes: 0 clean (warnings allowed), 1 errors in the input (or, for
verify, an error over tolerance; for fmt --check, a file that would change),
2 usage or I/O error, 3 an internal error (a bug: please report it).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from . import __version__
from .budget import Limits
from .diagnostics import InternalError
from .files import write_atomic
from .frontend import Analysis, analyze_file

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(Exception):
    pass


def _report(analyses: list[Analysis], fmt: str, out=sys.stderr) -> bool:
    """Print diagnostics; True when any is an error."""
    errors = False
    for a in analyses:
        for d in a.diagnostics:
            errors |= d.is_error
            if fmt == "json":
                print(d.to_json(), file=sys.stdout)
            else:
                print(d.render(a.shown_source) + "\n", file=out)
    return errors


# The limits of this run (--limit NAME=N), set by main() before any command runs.
_limits = Limits()


def current_limits() -> Limits:
    return _limits


def _load(path: str) -> Analysis:
    try:
        return analyze_file(path, _limits)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a .fus file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def _load_checked(path: str, fmt: str = "text") -> Analysis | None:
    a = _load(path)
    if _report([a], fmt):
        return None
    return a


def cmd_check(args) -> int:
    analyses = [_load(p) for p in args.files]
    errors = _report(analyses, args.format)
    if args.emit == "ir":
        from .ir import dump_ir
        for a in analyses:
            if a.program is not None:
                print(dump_ir(a.diagrams))
    if args.format == "text" and not errors and not args.quiet:
        n = sum(len(a.diagrams) for a in analyses)
        print(f"ok: {len(analyses)} file{'s' * (len(analyses) != 1)}, {n} diagram{'s' * (n != 1)}", file=sys.stderr)
    return EXIT_ERRORS if errors else EXIT_OK


def cmd_fmt(args) -> int:
    from .fmt import format_source
    from .syntax import ParseFailed
    status = EXIT_OK
    for path in args.files:
        a = _load(path)
        if a.source is None:
            _report([a], "text")
            status = EXIT_ERRORS
            continue
        try:
            formatted = format_source(a.source, path)
        except ParseFailed as exc:
            for d in exc.diagnostics:
                print(d.render(a.source) + "\n", file=sys.stderr)
            status = EXIT_ERRORS
            continue
        if args.check:
            if formatted != a.source:
                print(f"{path}: would reformat", file=sys.stderr)
                status = EXIT_ERRORS
        elif args.stdout:
            sys.stdout.write(formatted)
        elif formatted != a.source:
            try:
                write_atomic(path, formatted)
            except OSError as exc:
                raise UsageError(f"{path}: {exc.strerror or exc}") from None
            print(f"{path}: formatted", file=sys.stderr)
    return status


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="diagnostics as text on stderr (default) or one JSON object per line on stdout")
    add_limits(p)


def add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help=f"raise (or lower) a limit on what a compile may allocate: {', '.join(Limits.NAMES)} "
                        "(repeatable; see docs/limits.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusionc", description="Compile .fus fusion diagrams.")
    parser.add_argument("--version", action="version", version=f"fusionlang {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="parse and check; diagnostics on stderr")
    p.add_argument("files", nargs="+", metavar="FILE")
    _add_common(p)
    p.add_argument("--emit", choices=("ir",), help="also print the diagram IR as node-link JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fmt", help="canonical formatting, comments kept")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    p.add_argument("--stdout", action="store_true", help="print the formatted text instead of rewriting")
    p.set_defaults(func=cmd_fmt)

    for register in _EXTRA_COMMANDS:
        register(sub, _add_common)
    return parser


_EXTRA_COMMANDS: list = []


def _register_extras() -> None:
    """Commands that live in their own modules (compile, plan, verify, eval, render)."""
    from . import commands
    _EXTRA_COMMANDS[:] = commands.REGISTER


def main(argv: list[str] | None = None) -> int:
    try:
        _register_extras()
    except ImportError:
        pass
    global _limits
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _limits = Limits.parse(getattr(args, "limit", None) or [])
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"fusionc: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fusionc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in fusionc, never the user's fault: bad input gets diagnostics
        error = exc if isinstance(exc, InternalError) else InternalError.wrapping(exc, f"`fusionc {args.command}`")
        traceback.print_exc()
        print(f"fusionc: {error.render()}", file=sys.stderr)
        return EXIT_INTERNAL


def _exit() -> None:
    sys.exit(main())
