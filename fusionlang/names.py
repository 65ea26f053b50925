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
GENERATED_GLOBALS = frozenset({"torch", "_constant", "_table", "_check_argument", "__all__",
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


# e3nn's class attributes on every generated module (emit_torch._ModuleWriter.metadata): no buffer or
# parameter may take one (register_buffer refuses a name the class already has).
CLASS_ATTRIBUTES = ("irreps_in", "irreps_out", "weight_numel")
# The calling convention of graph diagrams (docs/graph-diagrams.md) fixes these argument names.
GRAPH_ARGUMENTS = ("edge_index", "num_nodes")


class ModuleNames:
    """Every Python identifier of one generated class: the class, its wires (forward arguments and
    locals), the weights (`<wire>_weights` arguments, `<wire>_weight` parameters), buffers and
    temporaries.  The emitter, the picture (render.py), the class docstring and `fusionc plan` all
    read names from here, so they cannot disagree.

    wires: the diagram's wires as written; external / internal: the wires whose vertex takes
    external weights / owns a weight parameter (for a vertex the planner moved, the wire it wrote
    in the diagram as written).  A weight name is the wire's own name plus the suffix (even where
    the wire itself needs another Python name: `lambda_weights` is a fine identifier), with
    underscores added until it meets nothing taken; no two weight names can meet (their stems
    differ before the added underscores), so a weight name does not depend on which other
    vertices have weights, and a caller that knows only some of them (the picture knows the
    external ones) gets the same names."""

    def __init__(self, diagram: str, wires, graph: bool = False, external=(), internal=()):
        self.class_name = python_name(diagram)
        self.fixed_arguments = GRAPH_ARGUMENTS if graph else ()
        self.wires = python_names(list(wires), self.fixed_arguments)
        self.used = set(RESERVED) | set(CLASS_ATTRIBUTES) | set(self.fixed_arguments) | set(self.wires.values())
        self.weight_arguments = {w: self._unused(f"{w}_weights") for w in external}
        self.weight_parameters = {w: self._unused(f"{w}_weight") for w in internal}

    def add_wires(self, wires) -> None:
        """Wires the planner added (a graph diagram's rewrites) after the names above were fixed."""
        for w in wires:
            if w not in self.wires:
                self.wires[w] = self._unused(python_name(w))

    def _unused(self, stem: str) -> str:
        name = derived_name(stem)
        while name in self.used:
            name += "_"
        self.used.add(name)
        return name

    def fresh(self, stem: str) -> str:
        """A new local or buffer: `<stem>_<k>` with the first k not taken."""
        stem = derived_name(stem)
        k = 0
        while f"{stem}_{k}" in self.used:
            k += 1
        self.used.add(f"{stem}_{k}")
        return f"{stem}_{k}"

    def fixed(self, stem: str) -> str:
        """A new local named after its role (`num_edges`, `sender`), underscores added if taken."""
        return self._unused(stem)


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
