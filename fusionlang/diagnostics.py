"""One Diagnostic type for syntax and semantic errors, rendered as text or JSON.

Codes are stable; each is listed with an example and its fix in
docs/diagnostics.md (tests check that every code used here is documented).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A source range: 1-based lines and columns, end exclusive; offsets into the text."""

    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    def to(self, other: "Span") -> "Span":
        """The span from the start of self to the end of other."""
        return Span(self.line, self.column, other.end_line, other.end_column, self.start, other.end)


def span_field():
    # Spans never take part in equality, so parse(fmt(x)) == parse(x) compares structure.
    return field(default=None, compare=False, repr=False)


@dataclass
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    help: str | None = None
    severity: str = "error"
    file: str = "<input>"
    notes: list[tuple[str, Span | None]] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict:
        span = self.span or Span(1, 1, 1, 1)
        out = {
            "file": self.file,
            "line": span.line,
            "column": span.column,
            "end_line": span.end_line,
            "end_column": span.end_column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.help:
            out["help"] = self.help
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    def render(self, source: str | None) -> str:
        """rustc-style text: header, location, the line as written, carets, notes, help.

        A note with a span (such as "first defined here") is shown as a second
        excerpt marked with `-`; a note without one as `= note:`.
        """
        lines = [f"{self.severity}[{self.code}]: {self.message}"]
        spans = [s for s in [self.span] + [s for _, s in self.notes] if s is not None]
        pad = " " * max([len(str(s.line)) for s in spans] + [1])   # one gutter width for the whole message
        if self.span is None:
            lines.append(f"{pad}--> {self.file}")
        else:
            lines.append(f"{pad}--> {self.file}:{self.span.line}:{self.span.column}")
            lines.extend(_excerpt(source, self.span, "^", pad))
        for text, span in self.notes:
            if span is None:
                lines.append(f"{pad} = note: {text}")
        if self.help:
            lines.append(f"{pad} = help: {self.help}")
        for text, span in self.notes:
            if span is not None:
                lines.append(f"note: {text}")
                lines.append(f"{pad}--> {self.file}:{span.line}:{span.column}")
                lines.extend(_excerpt(source, span, "-", pad))
        return "\n".join(lines)


MAX_SHOWN_LINE = 160


def _printable(ch: str) -> str:
    """One shown character per source character, so carets stay aligned."""
    if ch == "\t":
        return " "
    return ch if ch.isprintable() else "?"


@functools.lru_cache(maxsize=4)
def _lines(source: str) -> list[str]:
    """The source's lines, split once per source however many diagnostics quote it."""
    return source.split("\n")


def _excerpt(source: str | None, span: Span, mark: str = "^", gutter: str = " ") -> list[str]:
    if source is None:
        return []
    text_lines = _lines(source)
    if not 1 <= span.line <= len(text_lines):
        return []
    raw = text_lines[span.line - 1].rstrip("\r")
    start = span.column - 1
    end = span.end_column - 1 if span.end_line == span.line else len(raw)
    end = max(end, start + 1)
    # Very long lines are shown as a window around the span, so output stays readable.
    offset = 0
    if len(raw) > MAX_SHOWN_LINE:
        offset = max(0, start - 40)
        raw = ("..." if offset else "") + raw[offset:offset + MAX_SHOWN_LINE] + "..."
        shift = 3 if offset else 0
        start, end = start - offset + shift, min(end - offset + shift, len(raw))
    shown = "".join(_printable(ch) for ch in raw).rstrip()
    return [
        f"{gutter} |",
        f"{span.line:>{len(gutter)}} | {shown}".rstrip(),
        f"{gutter} | {' ' * start}{mark * max(1, end - start)}",
    ]


class FusionError(Exception):
    """The root of every exception fusionlang defines (docs/python-api.md#errors).

    Raised as it is by the Python API when a program has errors: it then carries every error
    diagnostic, and its message is their rendering against `source`.  Its subclasses name other
    failures (a bad irrep label, a picture that cannot be made, a bug: InternalError) and are made
    from a message; they carry no diagnostics unless they say so.
    """

    def __init__(self, diagnostics: list[Diagnostic] | str, source: str | None = None):
        if isinstance(diagnostics, str):       # a failure that a message describes
            self.diagnostics, self.source = [], source
            super().__init__(diagnostics)
            return
        self.diagnostics = diagnostics
        self.source = source
        super().__init__("\n\n".join(d.render(source) for d in diagnostics))


class FusionWarning(UserWarning):
    """The root of every warning fusionlang issues (the on-disk caches that could not be written)."""


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


REPORT_HINT = "please report it with the input file and this message"


class InternalError(FusionError):
    """A bug in fusionlang, never the user's fault: an exception that escaped a stage.  The CLI prints it
    as an internal error (exit code 3) and asks for a report; bad input gets diagnostics instead."""

    def __init__(self, message: str, cause: BaseException | None = None):
        super().__init__(message)
        self.cause = cause
        self.message = message

    @classmethod
    def wrapping(cls, exc: BaseException, stage: str = "") -> "InternalError":
        where = f" in {stage}" if stage else ""
        return cls(f"{type(exc).__name__}{where}: {exc}", exc)

    def render(self) -> str:
        return (f"internal error: {self.message}\n"
                f"  = note: this is a bug in fusionlang, not a problem with your input; {REPORT_HINT}")
