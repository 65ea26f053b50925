"""fusionc: check / compile / render / eval / plan / verify / fmt.

Exit codes: 0 clean (warnings allowed), 1 errors in the input (or, for
verify, an error over tolerance; for fmt --check, a file that would change),
2 usage or I/O error, 3 an internal error (a bug: please report it).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from ..cost.budget import Limits
from ..diagnostics import InternalError
from ..files import write_atomic
from ..frontend.fmt import format_source
from ..frontend.syntax import ParseFailed
from ..ir import dump_ir
from ..version import __version__
from . import commands
from .common import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError, _load, _report, add_limits, set_limits


def cmd_check(args) -> int:
    analyses = [_load(p) for p in args.files]
    errors = _report(analyses, args.format)
    if args.emit == "ir":
        for a in analyses:
            if a.program is not None:
                print(dump_ir(a.diagrams))
    if args.format == "text" and not errors and not args.quiet:
        n = sum(len(a.diagrams) for a in analyses)
        print(f"ok: {len(analyses)} file{'s' * (len(analyses) != 1)}, {n} diagram{'s' * (n != 1)}", file=sys.stderr)
    return EXIT_ERRORS if errors else EXIT_OK


def cmd_fmt(args) -> int:
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

    for register in commands.REGISTER:     # compile, plan, verify, eval, render, build
        register(sub, _add_common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        set_limits(Limits.parse(getattr(args, "limit", None) or []))
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
