"""Canonical formatting of .fus source: one statement a line, four-space indent, comments kept.

Comments are attached by line: a comment alone on its line is printed before
the next statement (blank lines between groups of statements are kept, at most
one); a comment after code stays at the end of that statement's line.
"""
from __future__ import annotations

from .syntax import Assign, Call, Decl, IrrepsExpr, Label, NameRef, Program, Sh, parse


def format_irreps(expr: IrrepsExpr) -> str:
    return " + ".join(_term(t) for t in expr.terms)


def _term(term) -> str:
    atom = term.atom
    if isinstance(atom, Label):
        text = atom.text
    elif isinstance(atom, NameRef):
        text = atom.name
    elif isinstance(atom, Sh):
        text = f"sh({atom.lmax})"
    else:
        text = f"({format_irreps(atom.inner)})"
    return f"{term.mul}x{text}" if term.mul is not None else text


def format_call(call: Call) -> str:
    text = f"{call.op.name}({', '.join(a.name for a in call.args)})"
    if call.options:
        opts = [o.key.name + (f"={o.value.name}" if o.value else "") for o in call.options]
        text += f" [{', '.join(opts)}]"
    return text


def format_stmt(stmt) -> str:
    if isinstance(stmt, Decl):
        head = f"{stmt.kind} {stmt.name.name} : {format_irreps(stmt.irreps)}"
        if stmt.domain is not None:
            head += f" per {stmt.domain.name}"
        return head + (f" = {format_call(stmt.call)}" if stmt.call else "")
    assert isinstance(stmt, Assign)
    names = ", ".join(t.name for t in stmt.targets)
    lhs = f"({names})" if stmt.parenthesized else names
    return f"{lhs} = {format_call(stmt.call)}"


class _Printer:
    def __init__(self, program: Program, source: str):
        self.lines: list[str] = []
        self.comments = sorted(program.comments, key=lambda c: c.span.start)
        self.next_comment = 0
        self.source_lines = source.split("\n")
        self.last_line = 0          # the last source line already printed

    def leading(self, line: int, indent: str) -> None:
        """Comments on their own lines before `line`, with blank lines between groups kept."""
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].span.line < line:
            c = self.comments[self.next_comment]
            self.blank_if_gap(c.span.line)
            self.lines.append(indent + c.text.rstrip())
            self.last_line = c.span.line
            self.next_comment += 1
        self.blank_if_gap(line)

    def blank_if_gap(self, line: int) -> None:
        if self.last_line and line > self.last_line + 1 and self.lines and self.lines[-1].strip() \
                and not self.lines[-1].rstrip().endswith("{"):
            gap = self.source_lines[self.last_line:line - 1]
            if any(not g.strip() for g in gap):
                self.lines.append("")

    def emit(self, text: str, span, indent: str = "") -> None:
        self.leading(span.line, indent)
        # Comments inside a statement that spans several lines go on their own lines before it
        # (the statement is printed on one line); the one on its last line stays at its end.
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].span.line < span.end_line:
            self.lines.append(indent + self.comments[self.next_comment].text.rstrip())
            self.next_comment += 1
        trailing = []
        while self.next_comment < len(self.comments) and self.comments[self.next_comment].span.line <= span.end_line:
            trailing.append(self.comments[self.next_comment].text.rstrip())
            self.next_comment += 1
        line = indent + text + ("  " + " ".join(trailing) if trailing else "")
        self.lines.append(line)
        self.last_line = span.end_line


def format_program(program: Program, source: str) -> str:
    p = _Printer(program, source)
    p.emit(f"group {program.group.name}", program.group.span)
    if program.convention:
        p.emit(f"convention {program.convention.name}", program.convention.span)
    for item in program.items:
        if hasattr(item, "stmts"):
            if p.lines and p.lines[-1].strip():
                p.lines.append("")
            p.emit(f"diagram {item.name.name} {{", item.name.span)
            for stmt in item.stmts:
                p.emit(format_stmt(stmt), stmt.span, "    ")
            close_line = item.span.end_line
            p.leading(close_line, "    ")
            p.lines.append("}")
            p.last_line = close_line
            # A comment after the closing brace on the same line stays there.
            while p.next_comment < len(p.comments) and p.comments[p.next_comment].span.line == close_line:
                p.lines[-1] += "  " + p.comments[p.next_comment].text.rstrip()
                p.next_comment += 1
        else:
            if p.lines and p.lines[-1].startswith("}"):
                p.lines.append("")
            p.emit(f"let {item.name.name} = {format_irreps(item.value)}", item.span)
    p.leading(len(p.source_lines) + 1, "")
    while p.lines and not p.lines[-1].strip():
        p.lines.pop()
    return "\n".join(p.lines) + "\n"


def format_source(text: str, file: str = "<input>") -> str:
    """Format .fus text; raises syntax.ParseFailed on a syntax error (nothing is lost)."""
    return format_program(parse(text, file), text)
