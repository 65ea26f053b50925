"""Lowering: the AST of a program -> one Diagram (fusionlang/ir.py) per diagram.

Lowering resolves irreps expressions and reports structural errors (undefined,
duplicate, twice-produced wires; bad operations and options); check.py then
applies the selection rules.
"""
from __future__ import annotations

import networkx as nx

from ..diagnostics import Diagnostic, Span
from ..ir import DOMAINS, ENDPOINTS, OPERATIONS, WEIGHT_MODES, Diagram, Wire
from ..names import UnsafeName, python_name
from ..symmetry.groups import GROUPS, MAX_MULTIPLICITY, MAX_TWO_J, Group, Irreps, LabelError, MulIrrep
from .syntax import (Assign, Decl, DiagramDecl, IrrepsExpr, Label, Let, NameRef, Paren, Program, Sh, suggest)

MAX_WIRE_DIM = 1 << 20          # components of one wire (mul x dim summed)
MAX_TERMS = 4096                # terms in one irreps expression after expansion
CONVENTIONS = {"O3": ("e3nn",), "SO3": ("e3nn",), "SU2": ("condon_shortley",)}
PATH_MODES = ("merged", "separate")


class _Lowering:
    def __init__(self, program: Program, file: str):
        self.program = program
        self.file = file
        self.diagnostics: list[Diagnostic] = []
        self.group: Group | None = None
        self.lets: dict[str, Irreps] = {}

    def error(self, code, message, span, help=None, severity="error"):
        self.diagnostics.append(Diagnostic(code, message, span, help, severity, self.file))

    # -- irreps expressions --------------------------------------------------

    def resolve(self, expr: IrrepsExpr) -> Irreps | None:
        terms: list[MulIrrep] = []
        ok = True
        for term in expr.terms:
            inner = self.resolve_atom(term.atom)
            if inner is None:
                ok = False
                continue
            mul = term.mul or 1
            for t in inner:
                terms.append(MulIrrep(t.mul * mul, t.irrep))
            if ok and any(t.mul > MAX_MULTIPLICITY for t in terms):
                big = max(terms, key=lambda t: t.mul)
                self.error("F022", f"`{_clip(str(big))}`: multiplying out gives multiplicity {big.mul:,} for "
                           f"{big.irrep}; the limit is {MAX_MULTIPLICITY:,}", term.span,
                           "use fewer channels (a multiplicity applies to everything inside its parentheses)")
                return None
            if len(terms) > MAX_TERMS:
                self.error("F022", f"the expression expands to more than {MAX_TERMS:,} terms", expr.span,
                           "write repeated irreps with a multiplicity, as in `16x0e` for `0e + 0e + ...`")
                return None
        if not ok:
            return None
        irreps = Irreps(terms)
        if irreps.dim > MAX_WIRE_DIM:
            self.error("F022", f"`{_clip(str(irreps))}` has {irreps.dim:,} components; the limit for one wire is "
                       f"{MAX_WIRE_DIM:,}", expr.span,
                       "use fewer channels or smaller irreps")
            return None
        return irreps

    def resolve_atom(self, atom) -> Irreps | None:
        if isinstance(atom, Label):
            try:
                return Irreps([MulIrrep(1, self.group.parse_label(atom.text))])
            except LabelError as exc:
                help = exc.help or (f"l and j are at most {MAX_TWO_J // 2}; see docs/limits.md"
                                    if "limit" in exc.message else None)
                self.error("F020", exc.message, atom.span, help)
                return None
        if isinstance(atom, NameRef):
            if atom.name not in self.lets:
                close = suggest(atom.name, self.lets)
                self.error("F024", f"`{atom.name}` is not a defined irreps name", atom.span,
                           f"did you mean `{close}`?" if close else
                           f"define it first: `let {atom.name} = 16x0e + 8x1o`")
                return None
            return self.lets[atom.name]
        if isinstance(atom, Sh):
            if self.group.name == "SU2":
                self.error("F023", "`sh(L)` gives spherical-harmonic irreps, which group SU2 does not use",
                           atom.span, "list the spins instead, for example `0 + 1 + 2`")
                return None
            if not atom.lmax.isdigit() or len(atom.lmax) > 6 or int(atom.lmax) * 2 > MAX_TWO_J:
                self.error("F023", f"`sh({_clip(atom.lmax)})` needs a whole number L from 0 to {MAX_TWO_J // 2}",
                           atom.arg_span, "for example `sh(2)` = 0e + 1o + 2e")
                return None
            return Irreps(MulIrrep(1, ir) for ir in self.group.sh(int(atom.lmax)))
        if isinstance(atom, Paren):
            return self.resolve(atom.inner)
        raise TypeError(atom)

    # -- the program ---------------------------------------------------------

    def run(self) -> list[Diagram]:
        program = self.program
        gname = program.group.name
        if gname not in GROUPS:
            close = suggest(gname, GROUPS)
            self.error("F010", f"unknown group `{_clip(gname)}`", program.group.span,
                       f"did you mean `{close}`? The groups are O3, SO3 and SU2" if close
                       else "the groups are O3, SO3 and SU2")
            return []
        self.group = GROUPS[gname]
        if program.convention and program.convention.name not in CONVENTIONS[gname]:
            self.error("F011", f"unknown convention `{program.convention.name}` for group {gname}",
                       program.convention.span, f"write `convention {CONVENTIONS[gname][0]}` or leave it out")
        top_names: dict[str, Span] = {}
        python_classes: dict[str, object] = {}
        diagrams = []
        for item in program.items:
            name = item.name
            if name.name in top_names:
                self.error("F030", f"`{name.name}` is defined twice at file level", name.span,
                           "rename one of them", )
                self.diagnostics[-1].notes.append(("first defined here", top_names[name.name]))
                continue
            top_names[name.name] = name.span
            if isinstance(item, Let):
                value = self.resolve(item.value)
                if value is not None:
                    self.lets[name.name] = value
            else:
                self.python_class_collision(name, python_classes)
                diagrams.append(self.diagram(item))
        return diagrams

    def python_class_collision(self, name, seen: dict) -> None:
        """F036: a diagram whose name becomes the same Python class name as an earlier one's
        (`class` and `class_`: a keyword gets a trailing `_`) would replace it in the module."""
        try:
            python = python_name(name.name)
        except UnsafeName:   # F004 says why
            return
        other = seen.setdefault(python, name)
        if other is name:
            return
        renamed = [f"`{n}`" for n in (other.name, name.name) if n != python]
        self.error("F036", f"diagram `{name.name}` becomes the Python class `{python}`, as diagram "
                   f"`{other.name}` does", name.span,
                   f"rename one of them ({' and '.join(renamed)} "
                   f"{'is a Python keyword or a name' if len(renamed) == 1 else 'are Python keywords or names'} "
                   "that generated code uses, so it gets a trailing `_`)")
        self.diagnostics[-1].notes.append(("first defined here", other.span))

    def diagram(self, decl: DiagramDecl) -> Diagram:
        g = nx.MultiDiGraph(name=decl.name.name, group=self.group.name, inputs=[], outputs=[], wires={},
                            span=decl.span)
        wires: dict[str, Wire] = g.graph["wires"]
        # Pass 1: declarations (statements may come in any order).
        for stmt in decl.stmts:
            if isinstance(stmt, Decl):
                name = stmt.name.name
                irreps = self.resolve(stmt.irreps)
                if name in wires:
                    self.error("F030", f"wire `{name}` is declared twice in diagram `{decl.name.name}`",
                               stmt.name.span, "give each wire its own name")
                    self.diagnostics[-1].notes.append(("first declared here", wires[name].span))
                    continue
                wires[name] = Wire(name, stmt.kind, irreps if irreps is not None else Irreps(), stmt.name.span,
                                   resolved=irreps is not None)
                if stmt.domain is not None:
                    wires[name].domain_span = stmt.domain.span
                    if stmt.domain.name in DOMAINS:
                        wires[name].declared_domain = stmt.domain.name
                    else:
                        close = suggest(stmt.domain.name, DOMAINS)
                        self.error("F076", f"unknown domain `{_clip(stmt.domain.name)}`: a wire lives `per node` "
                                   "or `per edge`", stmt.domain.span,
                                   f"did you mean `per {close}`?" if close else "write `per node` or `per edge`")
                        g.graph["graph"] = True
                if stmt.kind == "in":
                    g.graph["inputs"].append(name)
                    g.add_node(f"in:{name}", kind="input", wire=name, irreps=wires[name].irreps, span=stmt.span)
                    wires[name].producer = f"in:{name}"
                elif stmt.kind == "out":
                    g.graph["outputs"].append(name)
                    g.add_node(f"out:{name}", kind="output", wire=name, irreps=wires[name].irreps, span=stmt.span)
        # Pass 2: vertices.  Names assigned without a declaration get one F033 each, not F031 at every read.
        self.assigned = {t.name for s in decl.stmts if isinstance(s, Assign) for t in s.targets}
        self.unknown_reported: set[str] = set()
        index = 0
        for stmt in decl.stmts:
            if isinstance(stmt, Decl) and stmt.call is None:
                continue
            if isinstance(stmt, Decl):
                targets, call = [stmt.name], stmt.call
                if stmt.kind != "wire":
                    continue   # grammar allows `= call` only on `wire`
            else:
                targets, call = stmt.targets, stmt.call
            node = f"v{index}"
            vertex = self.vertex(call, targets, wires, node)
            if vertex is None:
                for arg in call.args:
                    # A misspelt argument most likely meant its did-you-mean wire.
                    meant = arg.name if arg.name in wires else suggest(arg.name, wires)
                    if meant is not None:
                        wires[meant].read_by_invalid = True
                for target in targets:
                    if target.name in wires and wires[target.name].producer is None:
                        wires[target.name].produced_by_invalid = True
                continue
            index += 1
            g.add_node(node, index=index - 1, span=stmt.span, call_span=call.span, **vertex)
        # Pass 3: edges, one per read; then what is never produced or read.
        for node, data in list(g.nodes(data=True)):
            if data["kind"] not in OPERATIONS:
                continue
            for port, arg in enumerate(data["inputs"]):
                wire = wires[arg]
                wire.readers.append(node)
                if wire.producer is None:
                    continue
                src_port = g.nodes[wire.producer].get("outputs", [arg]).index(arg)
                g.add_edge(wire.producer, node, key=f"{arg}@{port}", wire=arg, irreps=wire.irreps,
                           src_port=src_port, dst_port=port)
        for name in g.graph["outputs"]:
            wire = wires[name]
            if wire.producer is not None:
                g.add_edge(wire.producer, f"out:{name}", key=f"{name}@0", wire=name, irreps=wire.irreps,
                           src_port=g.nodes[wire.producer].get("outputs", [name]).index(name), dst_port=0)
        unproduced: set[str] = set()
        for node, data in self._in_order(g):
            for arg_ident in data["arg_idents"]:
                wire = wires.get(arg_ident.name)
                if wire is not None and wire.producer is None and not wire.produced_by_invalid \
                        and wire.name not in unproduced:
                    unproduced.add(wire.name)
                    self.error("F035", f"wire `{arg_ident.name}` is read here but nothing produces it",
                               arg_ident.span, f"produce it with a vertex: `{arg_ident.name} = fuse(a, b)`, "
                               f"or make it an input: `in {arg_ident.name} : IRREPS`")
                    self.diagnostics[-1].notes.append(("declared here", wire.span))
        for name in g.graph["outputs"]:
            if wires[name].producer is None and not wires[name].produced_by_invalid:
                self.error("F034", f"output `{name}` is never produced", wires[name].span,
                           f"add a vertex such as `{name} = fuse(a, b)`")
        for node, data in g.nodes(data=True):
            data.pop("arg_idents", None)
        _infer_domains(g)
        return Diagram(g)

    @staticmethod
    def _in_order(g):
        return sorted(((n, d) for n, d in g.nodes(data=True) if d["kind"] in OPERATIONS),
                      key=lambda nd: nd[1]["index"])

    def vertex(self, call, targets, wires, node) -> dict | None:
        op = call.op.name
        if op not in OPERATIONS:
            close = suggest(op, OPERATIONS)
            self.error("F041", f"unknown operation `{op}`", call.op.span,
                       f"did you mean `{close}`?" if close else "the operations are fuse, split, linear, gather and scatter")
            return None
        n_in, n_out = len(call.args), len(targets)
        arity = {"fuse": (n_in >= 2 and n_out == 1, "`t = fuse(a, b, ...)`: two or more inputs, one output"),
                 "split": (n_in == 1 and n_out == 2, "`(a, b) = split(t)`: one input, two outputs"),
                 "linear": (n_in == 1 and n_out == 1, "`y = linear(x)`: one input, one output"),
                 "gather": (n_in == 2 and n_out == 1, "`e = gather(x, sender)`: a node wire and `sender` or "
                            "`receiver`, one output"),
                 "scatter": (n_in == 2 and n_out == 1, "`x = scatter(m, receiver)`: an edge wire and `receiver` or "
                             "`sender`, one output")}[op]
        if not arity[0]:
            self.error("F040", f"`{op}` takes {arity[1].split(':', 1)[1].strip()}; here it has "
                       f"{n_in} input{'s' * (n_in != 1)} and {n_out} output{'s' * (n_out != 1)}", call.span,
                       f"write {arity[1].split(':')[0]}")
            return None
        ok = True
        args, endpoint = list(call.args), {}
        if op in ("gather", "scatter"):
            # The second argument names an end of each edge, not a wire.
            end = args.pop()
            endpoint = {"endpoint": end.name, "endpoint_span": end.span}
            if end.name not in ENDPOINTS:
                close = suggest(end.name, ENDPOINTS)
                self.error("F075", f"`{op}`'s second argument is the end of each edge, `sender` or `receiver`; "
                           f"here it is `{_clip(end.name)}`", end.span,
                           f"did you mean `{close}`?" if close else
                           f"write `{op}({args[0].name}, sender)` or `{op}({args[0].name}, receiver)`")
                ok = False
        for target in targets:
            wire = wires.get(target.name)
            if wire is None:
                self.error("F033", f"`{target.name}` is assigned but not declared", target.span,
                           f"declare it: `wire {target.name} : IRREPS` (or `out {target.name} : IRREPS`)")
                ok = False
            elif wire.kind == "in":
                self.error("F032", f"`{target.name}` is an input and cannot also be produced by a vertex",
                           target.span, "give the vertex's output another name")
                ok = False
            elif wire.producer is not None:
                self.error("F032", f"wire `{target.name}` is produced twice", target.span,
                           "every wire has exactly one producer: rename one of the outputs")
                self.diagnostics[-1].notes.append(("first produced here", wires[target.name].produced_span))
                ok = False
        for arg in args:
            if arg.name not in wires:
                ok = False
                if arg.name in self.assigned or arg.name in self.unknown_reported:
                    continue        # reported once already (F033 at its assignment, or F031 before)
                self.unknown_reported.add(arg.name)
                close = suggest(arg.name, wires)
                self.error("F031", f"wire `{arg.name}` is not declared in this diagram", arg.span,
                           f"did you mean `{close}`?" if close else f"declare it: `in {arg.name} : IRREPS`")
                ok = False
        options = self.options(call, op)
        if not ok or options is None:
            return None
        for target in targets:
            wires[target.name].producer = node
            wires[target.name].produced_span = target.span
        return dict(kind=op, inputs=[a.name for a in args], outputs=[t.name for t in targets],
                    arg_idents=args, arg_spans=[a.span for a in args],
                    target_spans=[t.span for t in targets], **options, **endpoint)

    def option_value(self, opt, modes: tuple, what: str, fix: str) -> str | None:
        """The VALUE of `key=VALUE` when it is one of `modes`; otherwise F042 (with a did-you-mean) and None."""
        key, value = opt.key.name, opt.value.name if opt.value else None
        if value in modes:
            return value
        close = suggest(value or "", modes)
        self.error("F042", f"`{key}={value or ''}` is not a {what}", opt.span,
                   f"did you mean `{key}={close}`?" if close else fix)
        return None

    def options(self, call, op) -> dict | None:
        seen: dict[str, object] = {}
        ok = True
        symmetric_span = per_path_span = None
        for opt in call.options:
            key = opt.key.name
            if key in seen:
                self.error("F042", f"option `{key}` is given twice", opt.span, "keep one")
                ok = False
                continue
            if key == "weights":
                value = self.option_value(opt, WEIGHT_MODES, "weight mode", "write weights=uvw, uvu, uuu or none")
                if value is None:
                    ok = False
                elif op != "fuse":
                    self.error("F043", f"`{op}` takes no `weights=` option", opt.span,
                               "linear always mixes channels with a full matrix; split is a pure coupling"
                               if op == "linear" else f"{op} is a pure coupling: remove the option" if op == "split"
                               else f"{op} only moves values between nodes and edges: remove the option")
                    ok = False
                seen[key] = value
            elif key == "external":
                if opt.value is not None:
                    self.error("F042", "`external` takes no value", opt.span, "write `external` alone")
                    ok = False
                elif op in ("split", "gather", "scatter"):
                    self.error("F043", f"`{op}` has no weights to make external", opt.span, "remove the option")
                    ok = False
                seen[key] = True
            elif key == "symmetric":
                # docs/language.md section 10; check.py decides whether the vertex allows it.
                if opt.value is not None:
                    self.error("F042", "`symmetric` takes no value", opt.span, "write `symmetric` alone")
                    ok = False
                elif op != "fuse":
                    self.error("F043", f"`{op}` cannot be `symmetric`", opt.span,
                               "`symmetric` applies to a `fuse` of one wire with itself: remove the option")
                    ok = False
                seen[key] = True
                symmetric_span = opt.span
            elif key == "paths":
                # Per-path output (docs/language.md, `paths=separate`): how a fuse's paths meet its output.
                value = self.option_value(opt, PATH_MODES, "path mode",
                                          "write paths=separate (a block per path) or paths=merged (the default)")
                if value is None:
                    ok = False
                elif op != "fuse":
                    self.error("F084", f"`paths={value}` applies to `fuse` only, not `{op}`", opt.span,
                               "remove the option; only a fuse couples several paths into its output")
                    ok = False
                seen[key] = value
                per_path_span = opt.span
            else:
                close = suggest(key, ("weights", "external", "symmetric", "paths"))
                self.error("F042", f"unknown option `{key}`", opt.key.span,
                           f"did you mean `{close}`?" if close else
                           "the options are `weights=MODE`, `external`, `symmetric` and `paths=separate`")
                ok = False
        if not ok:
            return None
        if seen.get("paths") == "separate":
            clash = next((f"`{k}`" for k in ("external", "symmetric") if seen.get(k)), None)
            if seen.get("weights") not in (None, "none"):
                clash = f"`weights={seen['weights']}`"
            if clash:
                self.error("F083", f"`paths=separate` gives every path its own output block without weights, "
                           f"so it cannot be combined with {clash}", per_path_span,
                           "write `[paths=separate]` alone (it implies `weights=none`), or drop it and keep "
                           "the weights: weighted paths are summed into each output irrep")
                return None
        if seen.get("external") and seen.get("weights") == "none":
            self.error("F043", "`external` weights with `weights=none`: there are no weights", call.span,
                       "choose a weight mode such as `weights=uvu`, or drop `external`")
            return None
        return {"weights": seen.get("weights"), "external": bool(seen.get("external")),
                "symmetric": bool(seen.get("symmetric")), "symmetric_span": symmetric_span, "options_span": call.span,
                **({"per_path": True, "per_path_span": per_path_span} if seen.get("paths") == "separate" else {})}


def _infer_domains(g: nx.MultiDiGraph) -> None:
    """Give every wire of a graph diagram its domain (docs/language.md section 9): inputs as declared,
    a gather's output per edge, a scatter's per node, any other vertex's output that of its inputs
    when they agree (check.py reports where they do not).  Where the producer decides nothing, the
    declared domain stands.  A pure function of the graph; cycles (an error) end after one sweep each."""
    wires: dict[str, Wire] = g.graph["wires"]
    vertices = sorted(((n, d) for n, d in g.nodes(data=True) if d["kind"] in OPERATIONS), key=lambda nd: nd[1]["index"])
    graph = g.graph.get("graph", False) or any(w.declared_domain for w in wires.values()) \
        or any(d["kind"] in ("gather", "scatter") for _, d in vertices)
    g.graph["graph"] = graph
    if not graph:
        return
    for wire in wires.values():
        wire.domain = wire.declared_domain
    for _ in range(len(vertices) + 1):        # a fixpoint in at most one sweep per vertex
        changed = False
        for node, data in vertices:
            if data["kind"] == "gather":
                out = "edge"
            elif data["kind"] == "scatter":
                out = "node"
            else:
                seen = {wires[w].domain for w in data["inputs"]} - {None}
                out = seen.pop() if len(seen) == 1 else None
            for w in data["outputs"]:
                if wires[w].produced_domain != out:
                    wires[w].produced_domain = out
                    wires[w].domain = out if out is not None else wires[w].declared_domain
                    changed = True
        if not changed:
            break


def lower(program: Program, file: str = "<input>") -> tuple[list[Diagram], list[Diagnostic]]:
    lowering = _Lowering(program, file)
    diagrams = lowering.run()
    return diagrams, lowering.diagnostics


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
