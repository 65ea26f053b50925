"""What every fusionc command shares: exit codes, usage errors, loading and reporting a file, --limit."""
from __future__ import annotations

import argparse
import sys

from ..diagnostics import FusionError
from ..cost.budget import Limits
from ..frontend import Analysis, analyze_file

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class UsageError(FusionError):
    """Bad arguments or an unreadable file: fusionc prints it and exits with 2."""


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


def set_limits(limits: Limits) -> None:
    global _limits
    _limits = limits


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


def add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", action="append", default=[], metavar="NAME=N",
                   help=f"raise (or lower) a limit on what a compile may allocate: {', '.join(Limits.NAMES)} "
                        "(repeatable; see docs/limits.md)")
