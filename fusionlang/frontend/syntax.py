"""Parsing: .fus text -> AST with source spans.  Syntax errors become Diagnostics.

The grammar lives beside this module in grammar/fusion.lark (package data, so
a wheel carries it).  Limits that keep every run bounded are
checked here, before and after the parser runs; see docs/limits.md.
"""
from __future__ import annotations

import bisect
import difflib
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import lark

from ..diagnostics import Diagnostic, FusionError, Span, span_field
from ..symmetry.groups import MAX_MULTIPLICITY

KEYWORDS = ("group", "convention", "let", "diagram", "in", "out", "wire", "fuse", "split", "linear", "sh",
            "per", "gather", "scatter")
MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_NESTING = 32
MAX_NAME_LENGTH = 128


# ----------------------------------------------------------------------------- AST


@dataclass
class Ident:
    name: str
    span: Span = span_field()


@dataclass
class Label:             # an irrep literal such as 1o or 3/2
    text: str
    span: Span = span_field()


@dataclass
class NameRef:           # a `let` name used inside an irreps expression
    name: str
    span: Span = span_field()


@dataclass
class Sh:                # sh(L)
    lmax: str
    span: Span = span_field()
    arg_span: Span = span_field()


@dataclass
class Paren:
    inner: "IrrepsExpr"
    span: Span = span_field()


@dataclass
class Term:
    mul: int | None
    atom: object         # Label | NameRef | Sh | Paren
    span: Span = span_field()
    mul_span: Span = span_field()


@dataclass
class IrrepsExpr:
    terms: list[Term]
    span: Span = span_field()


@dataclass
class Option:
    key: Ident
    value: Ident | None
    span: Span = span_field()


@dataclass
class Call:
    op: Ident
    args: list[Ident]
    options: list[Option]
    span: Span = span_field()


@dataclass
class Decl:              # in / out / wire, the last possibly with `= call`
    kind: str
    name: Ident
    irreps: IrrepsExpr
    call: Call | None = None
    domain: Ident | None = None      # `per node` / `per edge`: the name after `per`
    span: Span = span_field()


@dataclass
class Assign:
    targets: list[Ident]
    call: Call
    parenthesized: bool = False
    span: Span = span_field()


@dataclass
class DiagramDecl:
    name: Ident
    stmts: list[object]
    span: Span = span_field()


@dataclass
class Let:
    name: Ident
    value: IrrepsExpr
    span: Span = span_field()


@dataclass
class Comment:
    text: str
    span: Span = span_field()


@dataclass
class Program:
    group: Ident
    convention: Ident | None
    items: list[object]          # Let | DiagramDecl, in written order
    comments: list[Comment] = field(default_factory=list, compare=False, repr=False)
    span: Span = span_field()

    @property
    def diagrams(self) -> list[DiagramDecl]:
        return [i for i in self.items if isinstance(i, DiagramDecl)]

    @property
    def lets(self) -> list[Let]:
        return [i for i in self.items if isinstance(i, Let)]


# ----------------------------------------------------------------------------- grammar


def grammar_path() -> Path:
    """The grammar, package data beside this module."""
    path = Path(__file__).resolve().parent / "grammar" / "fusion.lark"
    if not path.is_file():
        raise FileNotFoundError("fusion.lark not found: the fusionlang installation is incomplete")
    return path


@functools.lru_cache(maxsize=1)
def parser() -> lark.Lark:
    return lark.Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="basic",
                     propagate_positions=True, maybe_placeholders=False)


# ----------------------------------------------------------------------------- entry points


class ParseFailed(FusionError):
    """The text does not parse; carries the syntax diagnostics (its message: the first one's)."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(diagnostics[0].message if diagnostics else "parse failed")
        self.diagnostics = diagnostics


def source_too_large(size: int, limit: int, file: str) -> Diagnostic:
    shown = f" ({limit / 2**20:g} MiB)" if limit >= 2**20 else ""
    return Diagnostic("F005", f"the file is {size:,} bytes; the limit is {limit:,}{shown}", None,
                      "split the diagrams into several files, or raise the limit: `--limit source_bytes=N` "
                      "(see docs/limits.md)", file=file)


def decode_source(data: bytes, file: str = "<input>", max_bytes: int = MAX_SOURCE_BYTES
                  ) -> tuple[str | None, list[Diagnostic]]:
    """Bytes -> text, rejecting oversized, binary and non-UTF-8 input with a located error."""
    if len(data) > max_bytes:
        return None, [source_too_large(len(data), max_bytes, file)]
    nul = data.find(b"\x00")
    if nul >= 0:       # binary first: a binary file is rarely valid UTF-8 either
        before = data[:nul].decode("utf-8", "replace")
        return None, [Diagnostic("F008", "the file contains a NUL byte: it looks binary, not .fus text",
                                 _offset_span(before, len(before)), "pass a .fus text file", file=file)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8", "replace")
        return None, [Diagnostic("F008", f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                 f"at offset {exc.start})", _offset_span(before, len(before)),
                                 "save the file as UTF-8", file=file)]
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, []


def _line_starts(text: str) -> list[int]:
    """Offsets where lines begin: with them, an offset's line is a bisection, not a count from the
    start (which made files with many comments quadratic to parse)."""
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


_NEWLINE = re.compile("\n")


def _position(starts: list[int], offset: int) -> tuple[int, int]:
    """1-based (line, column) of an offset."""
    line = bisect.bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def _offset_span(text: str, offset: int, starts: list[int] | None = None) -> Span:
    """The one character at offset; zero-width at the end of a line or of the text."""
    line, col = _position(starts if starts is not None else _line_starts(text[:offset + 1]), offset)
    width = 0 if offset >= len(text) or text[offset] == "\n" else 1
    return Span(line, col, line, col + width, offset, offset + width)


def _span_between(text: str, start: int, end: int, starts: list[int]) -> Span:
    """The characters start..end (end exclusive, on one line)."""
    line, col = _position(starts, start)
    return Span(line, col, line, col + (end - start), start, end)


_COMMENT = re.compile(r"#[^\n]*")


def parse(text: str, file: str = "<input>", max_bytes: int = MAX_SOURCE_BYTES) -> Program:
    """Parse .fus text into a Program, or raise ParseFailed with located diagnostics."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise ParseFailed([source_too_large(len(text.encode("utf-8", "surrogatepass")), max_bytes, file)])
    code_only = _COMMENT.sub(lambda m: " " * len(m.group()), text)
    _check_nesting(code_only, file)
    _check_group_call(code_only, file)
    if not code_only.strip():
        raise ParseFailed([Diagnostic("F002", "the file is empty: a .fus file starts with `group O3`, "
                                      "`group SO3` or `group SU2`", Span(1, 1, 1, 1),
                                      "write for example `group O3` on the first line", file=file)])
    try:
        tree = parser().parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        raise ParseFailed([_syntax_diagnostic(exc, text, file)]) from None
    builder = _Builder(text, file)
    program = builder.program(tree)
    starts = _line_starts(text)
    program.comments = [Comment(m.group(), _span_between(text, m.start(), m.end(), starts))
                        for m in _COMMENT.finditer(text)]
    if builder.diagnostics:
        raise ParseFailed(builder.diagnostics)
    return program


_GROUP_CALL = re.compile(r"\A\s*group\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(\s*([0-9]+)\s*\)")
_GROUP_NAMES = ("O3", "SO3", "SU2")


def _check_group_call(code: str, file: str) -> None:
    """`group O(3)` / `group SU(2)`: the textbook spelling, which the grammar cannot parse."""
    m = _GROUP_CALL.match(code)
    if not m:
        return
    written = code[m.start(1):m.end()]
    guess = (m.group(1) + m.group(2)).upper()
    span = _offset_span(code, m.start(1)).to(_offset_span(code, m.end() - 1))
    help = (f"write `group {guess}` (no parentheses)" if guess in _GROUP_NAMES
            else "the groups are O3, SO3 and SU2, written without parentheses")
    raise ParseFailed([Diagnostic("F010", f"unknown group `{written}`", span, help, file=file)])


def _check_nesting(code: str, file: str) -> None:
    depth = 0
    for i, ch in enumerate(code):
        if ch == "(":
            depth += 1
            if depth > MAX_NESTING:
                raise ParseFailed([Diagnostic("F006", f"parentheses nest deeper than {MAX_NESTING} levels",
                                              _offset_span(code, i), "flatten the expression, or name parts with `let`",
                                              file=file)])
        elif ch == ")":
            depth = max(0, depth - 1)


_TOKEN_WORDS = {
    "LPAR": "`(`", "RPAR": "`)`", "LBRACE": "`{`", "RBRACE": "`}`", "LSQB": "`[`", "RSQB": "`]`",
    "COMMA": "`,`", "EQUAL": "`=`", "COLON": "`:`", "PLUS": "`+`", "NAME": "a name", "LABEL": "an irrep label",
    "MULX": "a multiplicity such as `16x`", "FUSE": "`fuse`", "SPLIT": "`split`", "LINEAR": "`linear`",
    "SH": "`sh`", "PER": "`per`", "GATHER": "`gather`", "SCATTER": "`scatter`", "$END": "the end of the file",
}


def _describe_expected(expected) -> str:
    words = []
    for name in sorted(expected):
        word = _TOKEN_WORDS.get(name)
        if word is None:
            word = f"`{name.lower()}`" if name.isalpha() else name
        if word not in words:
            words.append(word)
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _syntax_diagnostic(exc: lark.exceptions.UnexpectedInput, text: str, file: str) -> Diagnostic:
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        span = _offset_span(text, exc.pos_in_stream)
        help = None
        if ch == ";":
            help = "statements need no semicolons: put each on its own line"
        elif ch in "*":
            help = "write a multiplicity glued to `x`, as in `16x0e`"
        elif not ch.isascii() and (ch.isalpha() or ch.isdigit()):
            help = "names are ASCII: letters `A-Z a-z`, digits and `_`"
        elif ch in "-/." and text[max(0, exc.pos_in_stream - 1)].isdigit():
            help = "irreps are written like `1o`, `2e` (O3), `1`, `2` (SO3) or `1/2`, `3/2` (SU2)"
        shown = repr(ch) if not ch.isprintable() or ch == " " else f"`{ch}`"
        return Diagnostic("F001", f"unexpected character {shown}", span, help, file=file)
    token = getattr(exc, "token", None)
    expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
    if token is None or token.type == "$END" or isinstance(exc, lark.exceptions.UnexpectedEOF):
        # Just after the last code on the page (trailing blank lines and comments skipped).
        code = _COMMENT.sub(lambda m: " " * len(m.group()), text)
        unfinished = _stopped_after(text, len(text), expected, only_unfinished=True)
        if unfinished is not None and "multiplicity" in unfinished.message:
            unfinished.file = file
            return unfinished
        span = _offset_span(text, len(code.rstrip()))
        return Diagnostic("F002", f"unexpected end of file; expected {_describe_expected(expected)}",
                          span, "a diagram ends with `}`" if "RBRACE" in expected else None, file=file)
    span = Span(token.line, token.column, token.end_line or token.line,
                token.end_column or token.column + 1, token.start_pos or 0, token.end_pos or 0)
    value = str(token)
    broken = _broken_line(text, token, expected)
    if broken is not None:
        broken.file = file
        return broken
    if value in KEYWORDS and "NAME" in expected:
        return Diagnostic("F003", f"`{value}` is a keyword and cannot be used as a name", span,
                          f"rename it, for example `{value}_` or `x_{value}`", file=file)
    help = None
    first_statement = token.line == 1 and token.start_pos == _first_code_offset(text)
    if "GROUP" in {t.upper() for t in expected} or first_statement and value != "group":
        help = "a .fus file starts with `group O3`, `group SO3` or `group SU2`"
    elif token.type == "LABEL" and "MULX" not in expected and re.fullmatch(r"[0-9]+", value):
        help = "write a multiplicity glued to `x`, as in `16x0e`"
    elif token.type == "NAME" and re.fullmatch(r"x[0-9].*", value) and \
            re.search(r"[0-9]\s+$", text[:token.start_pos or 0]):
        help = f"write the multiplicity glued to its `x`, as in `16{value}`"
    elif expected == {"LPAR"} and text[:token.start_pos or 0].rstrip().endswith("sh"):
        help = "`sh` is a keyword: write `sh(L)` for spherical harmonics up to L, for example `sh(2)`"
    elif token.type == "NAME" and {"COMMA", "RPAR"} <= set(expected):
        help = "separate the arguments with `,`, as in `fuse(a, b)`"
    elif token.type == "NAME" and "EQUAL" in expected and "RPAR" not in expected:
        help = "a vertex is written `t = fuse(a, b)`"
    return Diagnostic("F001", f"unexpected {_describe_token(token)}; expected {_describe_expected(expected)}",
                      span, help, file=file)


_LAST_WORD = re.compile(r"(?<![A-Za-z0-9_/])[A-Za-z0-9_]+(/[0-9]+)?\Z")
_PUNCTUATION = "+:=,()[]{}"
# Tokens after which a statement cannot end: operators inside one, keywords that open one.
_NEEDS_MORE = "+:=,(["
_OPENING_KEYWORDS = ("group", "convention", "let", "diagram", "in", "out", "wire")
# Tokens the parser accepts where a statement may begin: when it expects one, it is between statements.
_STATEMENT_STARTS = {"RBRACE", "IN", "OUT", "WIRE", "LET", "DIAGRAM"}
_STATEMENT_LINE = re.compile(r"(in|out|wire)\s+[A-Za-z_][A-Za-z0-9_]*\s*:|let\s+[A-Za-z_][A-Za-z0-9_]*\s*="
                             r"|diagram\s+[A-Za-z_][A-Za-z0-9_]*\s*\{")
_STATEMENT_HEAD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\s*=|\(\s*[A-Za-z_][A-Za-z0-9_]*\s*,")


def _last_token(code: str, starts: list[int]) -> tuple[str, Span] | None:
    """The last token of comment-blanked, right-stripped code, and its span."""
    if not code:
        return None
    if code[-1] in _PUNCTUATION:
        return code[-1], _span_between(code, len(code) - 1, len(code), starts)
    m = _LAST_WORD.search(code)
    if m is None:
        return None
    return m.group(), _span_between(code, m.start(), m.end(), starts)


def _stopped_after(text: str, offset: int, expected, only_unfinished: bool) -> Diagnostic | None:
    """A diagnostic under the last token before offset, where the statement stopped: always (for a
    parser that wanted more), or only_unfinished, where that token cannot end a statement."""
    code = _COMMENT.sub(lambda m: " " * len(m.group()), text[:offset]).rstrip()
    starts = _line_starts(code)
    last = _last_token(code, starts)
    if last is None:
        return None
    word, span = last
    opened = []                  # brackets left open on the last line
    for i in range(starts[-1], len(code)):
        if code[i] in "([":
            opened.append(i)
        elif code[i] in ")]" and opened:
            opened.pop()
    wanted = f"; expected {_describe_expected(expected)}" if expected else ""
    if re.fullmatch(r"[0-9]+x", word):
        return Diagnostic("F001", f"`{word}` is a multiplicity with no irrep after it", span,
                          f"write the irrep right after it, as in `{word}0e`, or remove it")
    if word in _NEEDS_MORE or word in _OPENING_KEYWORDS:
        return Diagnostic("F001", f"the statement stops after `{word}` at the end of its line{wanted}", span)
    if opened:
        where = _span_between(code, opened[-1], opened[-1] + 1, starts)
        return Diagnostic("F001", f"this `{code[opened[-1]]}` is not closed on its line{wanted}", where,
                          f"close it with `{')' if code[opened[-1]] == '(' else ']'}` before the line ends")
    if not only_unfinished:
        return Diagnostic("F001", f"the statement stops after `{word}` at the end of its line{wanted}", span)
    return None


def _broken_line(text: str, token, expected) -> Diagnostic | None:
    """Newlines are plain whitespace, so a statement cut short at the end of a line (`in x : 1x`,
    `t = a +`) swallows the next line's first token, or makes the next line's first token
    unexpected.  The offending token is then where the statement stopped, not where the parser
    noticed: the last token of the earlier line."""
    start = token.start_pos or 0
    code = _COMMENT.sub(lambda m: " " * len(m.group()), text[:start])
    line_start = code.rfind("\n") + 1
    first = line_start + len(code[line_start:]) - len(code[line_start:].lstrip())
    if first < start and code[:first].strip() and _STATEMENT_HEAD.match(text, first):
        # The line begins like a statement, but its first token was taken into an earlier line's.
        found = _stopped_after(text, first, (), only_unfinished=True)
        return found if found is not None and found.span.line < token.line else None
    if first == start and code[:first].strip() and not (set(expected) & _STATEMENT_STARTS) and \
            (str(token) not in KEYWORDS or _STATEMENT_LINE.match(text, start)):
        # The parser wanted more of the earlier line's statement, and got a new line (a keyword that
        # begins a whole statement there, not one used as a name).
        return _stopped_after(text, start, expected, only_unfinished=False)
    return None


def _first_code_offset(text: str) -> int:
    code = _COMMENT.sub(lambda m: " " * len(m.group()), text)
    stripped = len(code) - len(code.lstrip())
    return stripped


def _describe_token(token) -> str:
    value = str(token)
    if len(value) > 40:
        value = value[:37] + "..."
    if value in KEYWORDS:
        return f"keyword `{value}`"
    return f"`{value}`"


def _span_of(node) -> Span:
    if isinstance(node, lark.Token):
        return Span(node.line, node.column, node.end_line, node.end_column, node.start_pos, node.end_pos)
    m = node.meta
    return Span(m.line, m.column, m.end_line, m.end_column, m.start_pos, m.end_pos)


class _Builder:
    """lark tree -> AST, collecting limit violations found on the way."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self.reported: set[str] = set()      # each bad name is reported once, where it first occurs

    def error(self, code, message, span, help=None):
        self.diagnostics.append(Diagnostic(code, message, span, help, file=self.file))

    def ident(self, token: lark.Token, keyword_ok: bool = False) -> Ident:
        span = _span_of(token)
        name = str(token)
        if name in self.reported:
            return Ident(name, span)
        if len(name) > MAX_NAME_LENGTH:
            self.error("F007", f"a name of {len(name):,} characters is over the limit of {MAX_NAME_LENGTH}",
                       span, "use a shorter name")
        elif name.startswith("__"):
            self.error("F004", f"`{_clip(name)}` starts with `__`, which is reserved for generated code", span,
                       f"rename it, for example `{name.lstrip('_') or 'x'}`")
        elif name in KEYWORDS and not keyword_ok:
            self.error("F003", f"`{name}` is a keyword and cannot be used as a name", span,
                       f"rename it, for example `{name}_` or `x_{name}`")
        else:
            return Ident(name, span)
        self.reported.add(name)
        return Ident(name, span)

    def program(self, tree) -> Program:
        children = list(tree.children)
        group = self.ident(children.pop(0).children[0], keyword_ok=True)
        convention = None
        if children and getattr(children[0], "data", None) == "convention_decl":
            convention = self.ident(children.pop(0).children[0])
        items = [self.item(c) for c in children]
        return Program(group, convention, items, span=_span_of(tree) if tree.meta.line else None)

    def item(self, tree):
        if tree.data == "let_decl":
            name, value = tree.children
            return Let(self.ident(name), self.irreps(value), _span_of(tree))
        name, *stmts = tree.children
        return DiagramDecl(self.ident(name), [self.stmt(s) for s in stmts], _span_of(tree))

    def stmt(self, tree):
        kind = tree.data
        if kind in ("in_decl", "out_decl", "wire_decl"):
            name, irreps, *rest = tree.children
            domain = None
            if rest and rest[0].data == "domain":
                domain = self.ident(rest.pop(0).children[0], keyword_ok=True)
            call = self.call(rest[0]) if rest else None
            return Decl(kind[:-5], self.ident(name), self.irreps(irreps), call, domain, _span_of(tree))
        targets_tree, call = tree.children
        targets = [self.ident(t) for t in targets_tree.children]
        return Assign(targets, self.call(call), targets_tree.data == "tuple_target", _span_of(tree))

    def call(self, tree) -> Call:
        op_tree, *rest = tree.children
        op = self.ident(op_tree.children[0], keyword_ok=True)
        args, options = [], []
        for child in rest:
            if isinstance(child, lark.Token):
                args.append(self.ident(child))
            else:
                for opt in child.children:
                    key, *value = opt.children
                    options.append(Option(self.ident(key), self.ident(value[0]) if value else None, _span_of(opt)))
        return Call(op, args, options, _span_of(tree))

    def irreps(self, tree) -> IrrepsExpr:
        return IrrepsExpr([self.term(t) for t in tree.children], _span_of(tree))

    def term(self, tree) -> Term:
        if tree.data == "mul_term":
            mul_token, atom = tree.children
            mul_span = _span_of(mul_token)
            digits = str(mul_token)[:-1]
            mul = int(digits) if len(digits) <= 9 else MAX_MULTIPLICITY + 1
            if not 1 <= mul <= MAX_MULTIPLICITY:
                self.error("F021", f"multiplicity {digits if len(digits) <= 20 else digits[:20] + '...'} "
                           f"is out of range: it must be 1 to {MAX_MULTIPLICITY:,}", mul_span,
                           "drop the term to have none of an irrep" if mul == 0 else
                           "fusionlang bounds multiplicities so that every tensor stays allocatable")
            return Term(mul, self.atom(atom), _span_of(tree), mul_span)
        return Term(None, self.atom(tree.children[0]), _span_of(tree))

    def atom(self, tree):
        if tree.data == "label":
            return Label(str(tree.children[0]), _span_of(tree))
        if tree.data == "name_ref":
            ident = self.ident(tree.children[0])
            return NameRef(ident.name, ident.span)
        if tree.data == "sh":
            arg = tree.children[1]
            return Sh(str(arg), _span_of(tree), _span_of(arg))
        return Paren(self.irreps(tree.children[0]), _span_of(tree))


def suggest(word: str, choices) -> str | None:
    """The closest of choices to word, for did-you-mean help lines (case differences first)."""
    choices = list(choices)
    if len(word) > MAX_NAME_LENGTH:
        return None
    folded = [c for c in choices if c.lower() == word.lower() and c != word]
    if folded:
        return folded[0]
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return match[0] if match else None


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
