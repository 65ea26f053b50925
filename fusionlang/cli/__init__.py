"""fusionc, the command line: main.py (the parser, check and fmt), commands.py (the other commands),
common.py (what they share).  The entry point is fusionlang.cli:main."""
from .common import EXIT_ERRORS, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError
from .main import build_parser, main

__all__ = ["EXIT_ERRORS", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]
