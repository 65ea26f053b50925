"""The one authority over text that enters generated Python source.

The code generator never pastes an outside string into the source it writes.
Names of diagrams and wires go through `python_name` / `python_names`, which
accept only the language's identifiers and map them to Python identifiers that
shadow nothing the generated code relies on; free text (a file name, a path)
goes through `comment` or `docstring`, which escape everything that could end
a comment or a string literal or that Python refuses in source: line breaks of
every kind, quotes, backslashes, NUL, and the lone surrogates that
`os.fsdecode` makes of undecodable bytes in file names.
"""
from __future__ import annotations

import keyword
import re

from .diagnostics import FusionError

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# What the generated module reads as a global (torch, its own helpers, the builtins the
# helpers and methods call) or binds in every method: a diagram or wire with one of these
# names would shadow it, so it gets a trailing underscore instead.  Other builtins and the
# soft keywords (`_`, `match`, `case`) are ordinary identifiers wherever the generated code
# puts a name, so they stay as they are.  tests/test_codegen_trust.py checks that every
# global the generated code reads is listed here.
GENERATED_GLOBALS = frozenset({"torch", "_constant", "_check_argument", "__all__",
                               "_check_edge_index", "_check_rows", "_scatter_add",
                               "super", "ValueError", "TypeError", "IndexError", "tuple", "list", "type",
                               "int", "isinstance"}) | \
    frozenset({"os", "triton", "tl", "_INTERPRET", "_PARTIAL_LIMIT", "_use_kernels", "_differentiable_grads"})
# (the second set: module-level names of the Triton backend's files, triton_backend/emit.py; its
# per-vertex functions take a prefix that no class or wire starts with)
METHOD_LOCALS = frozenset({"self", "batch", "dtype"})
RESERVED = frozenset(keyword.kwlist) | GENERATED_GLOBALS | METHOD_LOCALS


class UnsafeName(FusionError, ValueError):
    """A name that is not an identifier of the language; the front end never produces one."""


def python_name(name: str) -> str:
    """The Python identifier for one diagram or wire name: the name itself, or with a trailing
    `_` where it is a keyword or reserved.  Not injective on its own (`class` and `class_`
    meet): python_names resolves that among wires, and the checker reports it among diagrams
    (F036)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise UnsafeName(f"not an identifier: {name!r}")
    if name.startswith("__"):
        # Python mangles `__x` inside a class body, and dunder names belong to Python itself.
        raise UnsafeName(f"names starting with `__` are reserved: {name!r}")
    return name + "_" if name in RESERVED else name


def python_names(names: list[str], extra: tuple[str, ...] = ()) -> dict[str, str]:
    """An injective name -> identifier map for the wires of one diagram: each keeps its own name
    unless python_name renames it or it is in `extra` (names a calling convention fixes, such as a
    graph diagram's `edge_index`); a renamed one gets underscores until it meets no other wire's
    name, nothing reserved and nothing in `extra`."""
    keep = {n for n in names if python_name(n) == n and n not in extra}
    used = set(RESERVED) | set(extra) | keep
    out = {}
    for n in names:
        if n in keep:
            out[n] = n
            continue
        candidate = python_name(n)
        while candidate in used:
            candidate += "_"
        used.add(candidate)
        out[n] = candidate
    return out


def derived_name(stem: str) -> str:
    """A stem for a name the generator derives from a wire's (`<wire>_weight`, `<wire>_cg`):
    never two leading underscores, so Python's private-name mangling inside the class cannot
    touch it (the wire `_` gives `_weight`, not `__weight`)."""
    return "_" + stem.lstrip("_") if stem.startswith("__") else stem


def _escape(text: str, quote: str = "") -> str:
    """Printable characters as they are; backslash, `quote` and everything else as a Python escape."""
    out = []
    for ch in text:
        if ch == "\\" or ch in quote:
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                       else f"\\U{code:08x}")
    return "".join(out)


def comment(text: str) -> str:
    """Text for the inside of a `#` comment: one line, no character Python or an editor could
    take for a line break, no NUL, nothing that cannot be written as UTF-8."""
    return _escape(str(text))


def docstring(lines: list[str]) -> str:
    """A triple-quoted string literal whose value is `lines` joined by newlines, exactly: each
    line is escaped, so none can end the literal, break a line or smuggle in a statement."""
    return '"""' + "\n".join(_escape(str(line), '"') for line in lines) + '"""'


def string_literal(text: str) -> str:
    """A one-line double-quoted literal for `text`."""
    return '"' + _escape(str(text), '"') + '"'
