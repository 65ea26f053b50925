"""Shared helpers for the front-end property tests: example sources and the span invariant."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE = ROOT.parent / "shared" / "LANGUAGE.md"
DOCS_COPY = ROOT / "docs" / "language.md"


def language_blocks() -> list[str]:
    source = LANGUAGE if LANGUAGE.exists() else DOCS_COPY
    if not source.exists():
        return []
    blocks = re.findall(r"```\n(.*?)```", source.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if b.lstrip().startswith(("group", "#"))]


def example_sources() -> list[tuple[str, str]]:
    """(name, text) for every LANGUAGE.md block and every examples/diagrams/*.fus."""
    out = [(f"LANGUAGE.md#{i}", b) for i, b in enumerate(language_blocks())]
    for path in sorted((ROOT / "examples" / "diagrams").glob("*.fus")):
        out.append((path.name, path.read_text(encoding="utf-8")))
    return out


def span_problems(text: str, diagnostics) -> list[str]:
    """Every diagnostic has no span or one inside the text (columns up to line length + 1)."""
    lines = text.split("\n")
    problems = []
    for d in diagnostics:
        for label, span in [("span", d.span)] + [("note", s) for _, s in d.notes]:
            if span is None:
                continue
            ok = 1 <= span.line <= len(lines) and 1 <= span.column <= len(lines[span.line - 1]) + 1
            ok = ok and span.line <= span.end_line <= len(lines) \
                and 1 <= span.end_column <= len(lines[span.end_line - 1]) + 1
            if not ok:
                problems.append(f"{d.code} {label} {span} outside the text ({len(lines)} lines)")
    return problems
