"""The front end in one call: text -> AST -> IR -> checked IR, with every diagnostic."""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..cost.budget import Limits
from ..diagnostics import Diagnostic, has_errors
from ..ir import Diagram, debug_verify
from .check import check
from .lower import lower
from .syntax import MAX_SOURCE_BYTES, ParseFailed, Program, decode_source, parse, source_too_large


@dataclass
class Analysis:
    source: str | None
    file: str
    program: Program | None = None
    diagrams: list[Diagram] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    raw: bytes | None = field(default=None, repr=False)   # the bytes, when they are not valid text

    @property
    def shown_source(self) -> str | None:
        """The text to quote in diagnostics (a lossy decoding when the file is not UTF-8)."""
        if self.source is not None:
            return self.source
        return self.raw.decode("utf-8", "replace") if self.raw is not None else None

    @property
    def ok(self) -> bool:
        return self.program is not None and not has_errors(self.diagnostics)

    def diagram(self, name: str) -> Diagram:
        for d in self.diagrams:
            if d.name == name:
                return d
        raise KeyError(name)


def analyze(text: str, file: str = "<input>", limits: Limits | dict | None = None) -> Analysis:
    """limits: what a compile may allocate and compute (budget.Limits, or {name: n}); None for the defaults."""
    limits = Limits.of(limits)
    result = Analysis(text, file)
    # The front end allocates millions of small, acyclic objects for a large file; the cyclic garbage
    # collector would rescan all of them again and again (half the time of a 2 MiB check).
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            result.program = parse(text, file, max_bytes=limits.source_bytes)
        except ParseFailed as exc:
            result.diagnostics = exc.diagnostics
            return result
        result.diagrams, result.diagnostics = lower(result.program, file)
        result.diagnostics += check(result.diagrams, file, limits)
        debug_verify(result.diagrams, "check", checked=not has_errors(result.diagnostics))
    finally:
        if collecting:
            gc.enable()
    result.diagnostics.sort(key=lambda d: (d.span.line, d.span.column) if d.span else (0, 0))
    return result


def read_source(path: str | Path, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """Read a file's bytes, refusing directories and oversized files early (OSError for the CLI)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a .fus file")
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)
    return data


def analyze_bytes(data: bytes, file: str, limits: Limits | dict | None = None) -> Analysis:
    limits = Limits.of(limits)
    text, diagnostics = decode_source(data, file, max_bytes=limits.source_bytes)
    if text is None:
        return Analysis(None, file, diagnostics=diagnostics, raw=data)
    return analyze(text, file, limits)


def analyze_file(path: str | Path, limits: Limits | dict | None = None) -> Analysis:
    limits = Limits.of(limits)
    data = read_source(path, limits.source_bytes)
    if len(data) > limits.source_bytes:
        size = os.path.getsize(path)
        return Analysis(None, str(path), diagnostics=[source_too_large(size, limits.source_bytes, str(path))])
    return analyze_bytes(data, str(path), limits)
